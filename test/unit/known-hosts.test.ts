import { createHash, createHmac, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshConfigError, SshError, SshHostKeyError } from '../../src/errors.js';
import {
  appendKnownHost,
  checkHostKey,
  createHostVerifier,
  fingerprintSha256,
  hashHostName,
  hostPattern,
  loadKnownHosts,
  matchPattern,
  matchPatternList,
  parseKnownHosts,
  toSsh2HostVerifier,
  validateKeyBlob,
  type NewHostKeyInfo,
} from '../../src/known-hosts/index.js';

// ---- synthetic, structurally valid key blobs (RFC 4253 s6.6) ----
const sshString = (b: Buffer | string): Buffer => {
  const d = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(d.length);
  return Buffer.concat([len, d]);
};
const blob = (...parts: (Buffer | string)[]): Buffer => Buffer.concat(parts.map(sshString));
const mpint = (n: number): Buffer => Buffer.concat([Buffer.from([0]), Buffer.from([0x80 | (n & 0x7f)]), randomBytes(n - 2)]);
const ed25519 = (): Buffer => blob('ssh-ed25519', randomBytes(32));
const ecdsa = (bits: 256 | 384 | 521): Buffer =>
  blob(`ecdsa-sha2-nistp${bits}`, `nistp${bits}`, Buffer.concat([Buffer.from([4]), randomBytes(2 * Math.ceil(bits / 8))]));
const rsa = (): Buffer => blob('ssh-rsa', Buffer.from([1, 0, 1]), mpint(257));
const dss = (): Buffer => blob('ssh-dss', mpint(129), mpint(21), mpint(128), mpint(128));
const skEd25519 = (): Buffer => blob('sk-ssh-ed25519@openssh.com', randomBytes(32), 'ssh:');
const skEcdsa = (): Buffer => blob('sk-ecdsa-sha2-nistp256@openssh.com', 'nistp256', Buffer.concat([Buffer.from([4]), randomBytes(64)]), 'ssh:');
const typeOf = (k: Buffer): string => k.subarray(4, 4 + k.readUInt32BE(0)).toString();
const line = (hosts: string, k: Buffer, rest = ''): string => `${hosts} ${typeOf(k)} ${k.toString('base64')}${rest}`;

describe('matchPattern / matchPatternList (OpenSSH match.c)', () => {
  it.each([
    ['host', 'host', true],
    ['host', 'hos', false],
    ['host', 'hostx', false],
    ['a.example.com', '*.example.com', true],
    ['example.com', '*.example.com', false],
    ['a.b.example.com', '*.example.com', true],
    ['host1', 'host?', true],
    ['host12', 'host?', false],
    ['abcbc', 'a*bc', true],
    ['axbyc', 'a*b*c', true],
    ['axbyd', 'a*b*c', false],
    ['anything', '*', true],
    ['', '*', true],
    ['[h]:2222', '*', true],
    ['[h]:2222', '[h]:*', true],
    ['[h]:2222', 'h', false],
    ['10.0.0.7', '10.0.0.?', true],
  ])('%s vs %s -> %s', (text, pattern, expected) => {
    expect(matchPattern(text, pattern)).toBe(expected);
  });

  it('handles pathological patterns without blowing up', () => {
    expect(matchPattern('a'.repeat(500), '*a*a*a*a*a*a*a*a*a*b')).toBe(false);
  });

  it('negation excludes the host whatever the order of patterns', () => {
    expect(matchPatternList('bad.example.com', '*.example.com,!bad.example.com')).toBe(-1);
    expect(matchPatternList('bad.example.com', '!bad.example.com,*.example.com')).toBe(-1);
    expect(matchPatternList('good.example.com', '*.example.com,!bad.example.com')).toBe(1);
    expect(matchPatternList('other.org', '*.example.com,!bad.example.com')).toBe(0);
    expect(matchPatternList('x', '!y')).toBe(0);
  });

  it('lowercases patterns', () => {
    expect(matchPatternList('host.example.com', 'HOST.Example.COM')).toBe(1);
  });
});

describe('hostPattern (OpenSSH put_host_port)', () => {
  it('is the bare host for port 22 and [host]:port otherwise, lowercased', () => {
    expect(hostPattern('Example.COM', 22)).toBe('example.com');
    expect(hostPattern('127.0.0.1', 2222)).toBe('[127.0.0.1]:2222');
    expect(hostPattern('::1', 22)).toBe('::1');
    expect(hostPattern('::1', 2200)).toBe('[::1]:2200');
  });

  it.each([
    ['', 22, 'host'],
    ['a b', 22, 'host'],
    ['a,b', 22, 'host'],
    ['*.x', 22, 'host'],
    ['[::1]', 22, 'host'],
    ['|1|x', 22, 'host'],
    ['@revoked', 22, 'host'],
    ['h', 0, 'port'],
    ['h', 65536, 'port'],
    ['h', 22.5, 'port'],
  ])('rejects host %j port %j (field %s)', (host, port, field) => {
    let err: unknown;
    try {
      hostPattern(host, port);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SshConfigError);
    expect((err as SshConfigError).code).toBe('ERR_SSH_CONFIG');
    expect((err as SshConfigError).field).toBe(field);
  });
});

describe('parseKnownHosts', () => {
  it('parses comments, blank lines, CRLF, tabs, leading blanks, no final newline', () => {
    const k1 = ed25519();
    const k2 = rsa();
    const k3 = ecdsa(256);
    const text = [
      '# a comment',
      '',
      '   ',
      line('host1,10.0.0.1', k1, ' my comment here') + '\r',
      '\t' + line('host2', k2).replace(' ', '\t\t') + '\r',
      '  # indented comment',
      line('[host3]:2222', k3),
    ].join('\n');
    const { entries, warnings } = parseKnownHosts(text, 'kh');
    expect(warnings).toEqual([]);
    expect(entries.map((e) => [e.file, e.line, e.hostField, e.keyType, e.comment, e.marker])).toEqual([
      ['kh', 4, 'host1,10.0.0.1', 'ssh-ed25519', 'my comment here', undefined],
      ['kh', 5, 'host2', 'ssh-rsa', '', undefined],
      ['kh', 7, '[host3]:2222', 'ecdsa-sha2-nistp256', '', undefined],
    ]);
    expect(entries[0]!.key.equals(k1)).toBe(true);
    expect(entries[2]!.key.equals(k3)).toBe(true);
  });

  it.each([
    ['ssh-ed25519', ed25519],
    ['ecdsa-sha2-nistp256', () => ecdsa(256)],
    ['ecdsa-sha2-nistp384', () => ecdsa(384)],
    ['ecdsa-sha2-nistp521', () => ecdsa(521)],
    ['ssh-rsa', rsa],
    ['ssh-dss', dss],
    ['sk-ssh-ed25519@openssh.com', skEd25519],
    ['sk-ecdsa-sha2-nistp256@openssh.com', skEcdsa],
  ])('accepts key type %s', (type, make) => {
    const k = make();
    const { entries, warnings } = parseKnownHosts(line('h', k));
    expect(warnings).toEqual([]);
    expect(entries[0]?.keyType).toBe(type);
    expect(checkHostKey(entries, 'h', 22, k)).toEqual({ status: 'known', file: '<inline>', line: 1 });
  });

  it('parses @revoked and @cert-authority markers', () => {
    const k = ed25519();
    const { entries, warnings } = parseKnownHosts(`@revoked * ${typeOf(k)} ${k.toString('base64')}\n@cert-authority\t*.lan ${typeOf(k)} ${k.toString('base64')}`);
    expect(warnings).toEqual([]);
    expect(entries.map((e) => e.marker)).toEqual(['revoked', 'cert-authority']);
  });

  it('parses a hashed host field', () => {
    const k = ed25519();
    const { entries } = parseKnownHosts(line(hashHostName('[h]:2222'), k));
    expect(entries[0]?.hosts.kind).toBe('hashed');
  });

  const good = ed25519();
  const goodB64 = good.toString('base64');
  const p256 = ecdsa(256);
  const salt = randomBytes(20).toString('base64');
  const hash = createHmac('sha1', Buffer.from(salt, 'base64')).update('h').digest('base64');
  // Every line below is about host "h" and key `good` (or p256); none may grant trust.
  it.each([
    ['bad base64 characters', `h ssh-ed25519 ${goodB64.slice(0, 8)}*${goodB64.slice(9)}`, good],
    ['base64 without padding', `h ecdsa-sha2-nistp256 ${p256.toString('base64').replace(/=+$/, '')}`, p256],
    ['non-canonical base64 (trailing bits)', `h ssh-ed25519 ${goodB64.slice(0, -2)}B=`, good],
    ['unknown marker', `@trusted h ssh-ed25519 ${goodB64}`, good],
    ['two markers', `@revoked @cert-authority h ssh-ed25519 ${goodB64}`, good],
    ['marker only', `@revoked`, good],
    ['missing key field', `h ssh-ed25519`, good],
    ['missing type and key', `h`, good],
    ['hashed: salt of wrong length', `|1|${randomBytes(16).toString('base64')}|${hash} ssh-ed25519 ${goodB64}`, good],
    ['hashed: salt not base64', `|1|!!!!|${hash} ssh-ed25519 ${goodB64}`, good],
    ['hashed: no hash part', `|1|${salt} ssh-ed25519 ${goodB64}`, good],
    ['hashed: wrong magic', `|2|${salt}|${hash} ssh-ed25519 ${goodB64}`, good],
    ['hashed: hash of wrong length', `|1|${salt}|${randomBytes(19).toString('base64')} ssh-ed25519 ${goodB64}`, good],
    ['type field differs from blob type', `h ssh-rsa ${goodB64}`, good],
    ['unknown key type', `h ssh-foo ${blob('ssh-foo', randomBytes(32)).toString('base64')}`, blob('ssh-foo', randomBytes(32))],
    ['truncated blob', `h ssh-ed25519 ${good.subarray(0, 30).toString('base64')}`, good],
    ['blob with trailing garbage', `h ssh-ed25519 ${Buffer.concat([good, Buffer.from([0, 0, 0, 1, 7])]).toString('base64')}`, good],
    ['ed25519 key of wrong size', `h ssh-ed25519 ${blob('ssh-ed25519', randomBytes(31)).toString('base64')}`, good],
    ['ecdsa curve mismatch', `h ecdsa-sha2-nistp256 ${blob('ecdsa-sha2-nistp256', 'nistp384', randomBytes(65)).toString('base64')}`, p256],
    ['empty pattern in list', `h,,x ssh-ed25519 ${goodB64}`, good],
    ['lone negation', `h,! ssh-ed25519 ${goodB64}`, good],
  ])('skips malformed line (%s) with a warning and never trusts it', (_name, text, key) => {
    const { entries, warnings } = parseKnownHosts(`# header\n${text}\n`, 'f');
    expect(entries).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ file: 'f', line: 2 });
    expect(warnings[0]!.message).not.toContain(goodB64);
    expect(checkHostKey(entries, 'h', 22, key).status).toBe('unknown');
  });
});

describe('checkHostKey', () => {
  const k1 = ed25519();
  const k2 = ed25519();
  const r1 = rsa();
  const e256 = ecdsa(256);

  it('reports known/unknown/changed(same type)/changed(other type)', () => {
    const { entries } = parseKnownHosts([line('a', k1), line('b', r1), line('c', k1), line('c', e256)].join('\n'), 'kh');
    expect(checkHostKey(entries, 'a', 22, k1)).toEqual({ status: 'known', file: 'kh', line: 1 });
    expect(checkHostKey(entries, 'zzz', 22, k1)).toEqual({ status: 'unknown' });
    expect(checkHostKey(entries, 'a', 22, k2)).toEqual({ status: 'changed', file: 'kh', line: 1, knownKeyType: 'ssh-ed25519' });
    expect(checkHostKey(entries, 'b', 22, k2)).toEqual({ status: 'changed', file: 'kh', line: 2, knownKeyType: 'ssh-rsa' });
    // same-type known key is preferred in the report
    expect(checkHostKey(entries, 'c', 22, ecdsa(256))).toEqual({ status: 'changed', file: 'kh', line: 4, knownKeyType: 'ecdsa-sha2-nistp256' });
  });

  it('finds any of several keys for one host', () => {
    const { entries } = parseKnownHosts([line('h', k1), line('h', r1), line('h', e256)].join('\n'));
    expect(checkHostKey(entries, 'h', 22, e256)).toMatchObject({ status: 'known', line: 3 });
    expect(checkHostKey(entries, 'h', 22, r1)).toMatchObject({ status: 'known', line: 2 });
  });

  it('matches host patterns: lists, wildcards, negation, case', () => {
    const { entries } = parseKnownHosts(line('web1,*.example.com,!evil.example.com,10.0.0.?', k1));
    expect(checkHostKey(entries, 'web1', 22, k1).status).toBe('known');
    expect(checkHostKey(entries, 'WEB1', 22, k1).status).toBe('known');
    expect(checkHostKey(entries, 'a.example.com', 22, k1).status).toBe('known');
    expect(checkHostKey(entries, '10.0.0.5', 22, k1).status).toBe('known');
    // negated: the line is excluded even though *.example.com matches
    expect(checkHostKey(entries, 'evil.example.com', 22, k1).status).toBe('unknown');
    expect(checkHostKey(entries, 'evil.example.com', 22, k2).status).toBe('unknown');
    expect(checkHostKey(entries, '10.0.0.55', 22, k1).status).toBe('unknown');
  });

  it('distinguishes ports: bare host is port 22 only, [host]:port only that port', () => {
    const { entries } = parseKnownHosts([line('h', k1), line('[h]:2222', k2)].join('\n'));
    expect(checkHostKey(entries, 'h', 22, k1).status).toBe('known');
    expect(checkHostKey(entries, 'h', 2222, k1).status).toBe('changed');
    expect(checkHostKey(entries, 'h', 2222, k2).status).toBe('known');
    expect(checkHostKey(entries, 'h', 2223, k2).status).toBe('unknown');
    expect(checkHostKey(entries, 'h', 22, k2).status).toBe('changed');
    const wild = parseKnownHosts(line('[*.lan]:*', k1)).entries;
    expect(checkHostKey(wild, 'x.lan', 8022, k1).status).toBe('known');
    expect(checkHostKey(wild, 'x.lan', 22, k1).status).toBe('unknown');
  });

  it('matches hashed entries by HMAC-SHA1 of host or [host]:port', () => {
    const saltBytes = randomBytes(20);
    const field = hashHostName('[127.0.0.1]:2222', saltBytes);
    const expected = createHmac('sha1', saltBytes).update('[127.0.0.1]:2222').digest('base64');
    expect(field).toBe(`|1|${saltBytes.toString('base64')}|${expected}`);
    const { entries } = parseKnownHosts([line(field, k1), line(hashHostName('example.com'), r1)].join('\n'));
    expect(checkHostKey(entries, '127.0.0.1', 2222, k1).status).toBe('known');
    expect(checkHostKey(entries, '127.0.0.1', 22, k1).status).toBe('unknown');
    expect(checkHostKey(entries, '127.0.0.2', 2222, k1).status).toBe('unknown');
    expect(checkHostKey(entries, 'Example.com', 22, r1).status).toBe('known');
    expect(checkHostKey(entries, 'example.com', 22, k1).status).toBe('changed');
  });

  it('@revoked wins over a plain line with the same key, in any file order', () => {
    const plain = parseKnownHosts(line('h', k1), 'user').entries;
    const revoked = parseKnownHosts(`@revoked * ${typeOf(k1)} ${k1.toString('base64')}`, 'global').entries;
    expect(checkHostKey([...plain, ...revoked], 'h', 22, k1)).toEqual({ status: 'revoked', file: 'global', line: 1, keyType: typeOf(k1) });
    expect(checkHostKey([...revoked, ...plain], 'h', 2222, k1)).toEqual({ status: 'revoked', file: 'global', line: 1, keyType: typeOf(k1) });
    // a revoked line for another key or another host does not affect this key
    expect(checkHostKey([...plain, ...revoked], 'h', 22, k2).status).toBe('changed');
    const otherHost = parseKnownHosts(`@revoked other ${typeOf(k1)} ${k1.toString('base64')}`).entries;
    expect(checkHostKey([...plain, ...otherHost], 'h', 22, k1).status).toBe('known');
    // a revoked line alone does not make a host "known" or "changed"
    expect(checkHostKey(revoked, 'h', 22, k2).status).toBe('unknown');
  });

  it('@cert-authority lines never grant trust and do not make a host changed', () => {
    const { entries } = parseKnownHosts(`@cert-authority h ${typeOf(k1)} ${k1.toString('base64')}`);
    expect(entries).toHaveLength(1);
    expect(checkHostKey(entries, 'h', 22, k1).status).toBe('unknown');
    expect(checkHostKey(entries, 'h', 22, k2).status).toBe('unknown');
  });
});

describe('fingerprintSha256 / validateKeyBlob', () => {
  it('formats like ssh-keygen -l: SHA256: + unpadded base64', () => {
    const k = ed25519();
    const fp = fingerprintSha256(k);
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(fp).toBe('SHA256:' + createHash('sha256').update(k).digest('base64').slice(0, 43));
  });

  it('rejects blobs that are not SSH public keys', () => {
    expect(validateKeyBlob(Buffer.alloc(0)).ok).toBe(false);
    expect(validateKeyBlob(Buffer.from([0, 0, 0, 9, 1])).ok).toBe(false);
    expect(validateKeyBlob(blob('ssh-rsa', Buffer.from([1, 0, 1]))).ok).toBe(false);
    expect(validateKeyBlob(rsa())).toEqual({ ok: true, type: 'ssh-rsa' });
  });
});

describe('loadKnownHosts / appendKnownHost', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kh-unit-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('treats a missing file as empty and concatenates files in order', async () => {
    const k = ed25519();
    const a = join(dir, 'load-a');
    const b = join(dir, 'load-b');
    await writeFile(a, `garbage line\n${line('h', k)}\n`);
    await writeFile(b, line('h', rsa()));
    const set = await loadKnownHosts([join(dir, 'nope'), a, b]);
    expect(set.entries.map((e) => [e.file, e.line])).toEqual([
      [a, 2],
      [b, 1],
    ]);
    expect(set.warnings).toEqual([{ file: a, line: 1, message: expect.any(String) }]);
  });

  it('fails closed on a known_hosts path that is a directory or a FIFO', async () => {
    const d = join(dir, 'is-a-dir');
    await mkdir(d);
    await expect(loadKnownHosts([d])).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', message: expect.stringContaining(d) });
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(loadKnownHosts([fifo])).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', message: expect.stringContaining(fifo) });
  });

  it('creates directory (0700) and file (0600), writes host or [host]:port lines', async () => {
    const file = join(dir, 'new', 'sub', 'known_hosts');
    const k1 = ed25519();
    const k2 = ecdsa(384);
    expect(await appendKnownHost(file, 'Host.Example', 22, k1)).toBe(true);
    expect(await appendKnownHost(file, '127.0.0.1', 2222, k2)).toBe(true);
    expect((await stat(join(dir, 'new', 'sub'))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toBe(
      `host.example ssh-ed25519 ${k1.toString('base64')}\n[127.0.0.1]:2222 ecdsa-sha2-nistp384 ${k2.toString('base64')}\n`,
    );
  });

  it('keeps a file without a final newline well-formed', async () => {
    const file = join(dir, 'no-newline');
    const k0 = ed25519();
    const k1 = ed25519();
    await writeFile(file, line('old', k0));
    await appendKnownHost(file, 'new', 22, k1);
    const { entries, warnings } = await loadKnownHosts([file]);
    expect(warnings).toEqual([]);
    expect(entries.map((e) => e.hostField)).toEqual(['old', 'new']);
    // and with ifAbsent (which re-reads the file under the lock)
    const file2 = join(dir, 'no-newline-2');
    await writeFile(file2, line('old', k0));
    expect(await appendKnownHost(file2, 'new', 22, k1, { ifAbsent: true })).toBe(true);
    expect((await loadKnownHosts([file2])).entries.map((e) => e.hostField)).toEqual(['old', 'new']);
  });

  it('hashes the host name when asked, and ifAbsent skips a key already trusted', async () => {
    const file = join(dir, 'hashed');
    const k = ed25519();
    expect(await appendKnownHost(file, 'Secret-Host', 2022, k, { hash: true })).toBe(true);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}= ssh-ed25519 \S+\n$/);
    expect(text.toLowerCase()).not.toContain('secret-host');
    const { entries } = await loadKnownHosts([file]);
    expect(checkHostKey(entries, 'secret-host', 2022, k).status).toBe('known');
    expect(await appendKnownHost(file, 'secret-host', 2022, k, { ifAbsent: true, hash: true })).toBe(false);
    expect(await appendKnownHost(file, 'secret-host', 2023, k, { ifAbsent: true })).toBe(true);
    expect((await loadKnownHosts([file])).entries).toHaveLength(2);
  });

  it('breaks a stale lock and times out on a fresh one (ERR_SSH_TIMEOUT, retryable)', async () => {
    const file = join(dir, 'locked');
    const k = ed25519();
    await writeFile(`${file}.lock`, '999999\n');
    const old = new Date(Date.now() - 60_000);
    await utimes(`${file}.lock`, old, old);
    expect(await appendKnownHost(file, 'h', 22, k)).toBe(true);
    await expect(stat(`${file}.lock`)).rejects.toMatchObject({ code: 'ENOENT' });

    await writeFile(`${file}.lock`, '999999\n');
    // A held lock is transient, not a configuration error: ERR_SSH_TIMEOUT, retryable.
    await expect(appendKnownHost(file, 'h2', 22, k, { lockTimeoutMs: 50 })).rejects.toMatchObject({
      code: 'ERR_SSH_TIMEOUT',
      retryable: true,
      message: expect.stringContaining(`${file}.lock`),
    });
    expect((await loadKnownHosts([file])).entries).toHaveLength(1);
    await rm(`${file}.lock`);
  });

  it('rejects invalid keys, hosts and ports with ERR_SSH_CONFIG naming the field', async () => {
    const file = join(dir, 'invalid');
    await expect(appendKnownHost(file, 'h', 22, Buffer.from('nope'))).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', field: 'key' });
    await expect(appendKnownHost(file, 'a b', 22, ed25519())).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', field: 'host' });
    await expect(appendKnownHost(file, 'h', 0, ed25519())).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', field: 'port' });
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('createHostVerifier', () => {
  let dir: string;
  let n = 0;
  const fresh = (): string => join(dir, `kh-${n++}`);
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kh-verifier-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const known = ed25519();
  const other = ed25519();
  const revoked = ed25519();
  async function files(): Promise<{ user: string; global: string }> {
    const user = fresh();
    const global = fresh();
    await writeFile(user, `${line('[127.0.0.1]:2222', known)}\n`);
    await writeFile(global, `@revoked * ${typeOf(revoked)} ${revoked.toString('base64')}\n${line('[127.0.0.1]:2222', revoked)}\n`);
    return { user, global };
  }
  const hostKeyError = async (p: Promise<void>): Promise<SshHostKeyError> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SshHostKeyError);
    return err as SshHostKeyError;
  };

  it.each(['yes', 'accept-new', 'no'] as const)('%s: accepts a known key, refuses a revoked key', async (strict) => {
    const { user, global } = await files();
    const seen: NewHostKeyInfo[] = [];
    const verify = createHostVerifier({
      host: '127.0.0.1',
      port: 2222,
      knownHostsFiles: [user],
      globalKnownHostsFiles: [global],
      strictHostKeyChecking: strict,
      onNewKey: (i) => seen.push(i),
    });
    await expect(verify(known)).resolves.toBeUndefined();
    const err = await hostKeyError(verify(revoked));
    expect(err.code).toBe('ERR_SSH_HOST_KEY_REVOKED');
    expect(err.retryable).toBe(false);
    expect(err.fingerprint).toBe(fingerprintSha256(revoked));
    expect(err.message).toContain(global);
    expect(seen).toEqual([]);
  });

  it.each(['yes', 'accept-new'] as const)('%s: refuses a changed key with ERR_SSH_HOST_KEY_MISMATCH', async (strict) => {
    const { user } = await files();
    const verify = createHostVerifier({ host: '127.0.0.1', port: 2222, knownHostsFiles: [user], strictHostKeyChecking: strict });
    const err = await hostKeyError(verify(other));
    expect(err.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
    expect(err.host).toBe('[127.0.0.1]:2222');
    expect(err.message).toContain(fingerprintSha256(other));
    expect(err.message).toContain(`${user}:1`);
    expect(err.message).toContain('ssh-keygen -R');
    expect(await readFile(user, 'utf8')).toBe(`${line('[127.0.0.1]:2222', known)}\n`);
  });

  it('yes: refuses an unknown key with the fingerprint and how to trust it', async () => {
    const { user } = await files();
    const verify = createHostVerifier({ host: '127.0.0.1', port: 2200, knownHostsFiles: [user], strictHostKeyChecking: 'yes' });
    const err = await hostKeyError(verify(known));
    expect(err.code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(fingerprintSha256(known));
    expect(err.message).toContain('[127.0.0.1]:2200');
    expect(err.message).toContain(`ssh-keyscan -p 2200 127.0.0.1 >> ${user}`);
    expect(err.message).toContain('accept-new');
  });

  it('accept-new: appends an unknown key to the first user file (hashed if asked), then knows it', async () => {
    const { user, global } = await files();
    const second = fresh();
    const seen: NewHostKeyInfo[] = [];
    const verify = createHostVerifier({
      host: 'NewHost',
      port: 22,
      knownHostsFiles: [user, second],
      globalKnownHostsFiles: [global],
      strictHostKeyChecking: 'accept-new',
      hashKnownHosts: true,
      onNewKey: (i) => seen.push(i),
    });
    await expect(verify(other)).resolves.toBeUndefined();
    expect(seen).toEqual([{ action: 'added', host: 'newhost', keyType: 'ssh-ed25519', fingerprint: fingerprintSha256(other), file: user, written: true }]);
    const text = await readFile(user, 'utf8');
    expect(text.split('\n')[1]).toMatch(/^\|1\|\S+ ssh-ed25519 /);
    await expect(stat(second)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(verify(other)).resolves.toBeUndefined();
    expect(seen).toHaveLength(1);
    // now the host is known: another key is a mismatch
    expect((await hostKeyError(verify(ed25519()))).code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
  });

  it('no: accepts unknown and changed keys, reports them, writes nothing', async () => {
    const { user } = await files();
    const before = await readFile(user, 'utf8');
    const seen: NewHostKeyInfo[] = [];
    const verify = createHostVerifier({
      host: '127.0.0.1',
      port: 2222,
      knownHostsFiles: [user],
      strictHostKeyChecking: 'no',
      onNewKey: (i) => {
        seen.push(i);
        throw new Error('callback errors are ignored');
      },
    });
    await expect(verify(other)).resolves.toBeUndefined();
    const unknownHost = createHostVerifier({ host: 'x', port: 22, knownHostsFiles: [user], strictHostKeyChecking: 'no', onNewKey: (i) => seen.push(i) });
    await expect(unknownHost(other)).resolves.toBeUndefined();
    expect(seen.map((s) => s.action)).toEqual(['accepted-changed', 'accepted-unknown']);
    expect(seen[0]).toMatchObject({ file: user, line: 1, knownKeyType: 'ssh-ed25519', fingerprint: fingerprintSha256(other) });
    expect(await readFile(user, 'utf8')).toBe(before);
  });

  it.each(['yes', 'accept-new', 'no'] as const)('%s: an unreadable known_hosts file fails closed', async (strict) => {
    const bad = join(dir, `dir-${strict}`);
    await mkdir(bad);
    const verify = createHostVerifier({ host: 'h', port: 22, knownHostsFiles: [fresh()], globalKnownHostsFiles: [bad], strictHostKeyChecking: strict });
    await expect(verify(known)).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', message: expect.stringContaining(bad) });
  });

  it('accept-new: refuses when the new key cannot be written', async () => {
    const notADir = fresh();
    await writeFile(notADir, '');
    const verify = createHostVerifier({ host: 'h', port: 22, knownHostsFiles: [join(notADir, 'known_hosts')], strictHostKeyChecking: 'accept-new' });
    await expect(verify(known)).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', field: 'knownHostsFiles' });
  });

  it('refuses a malformed presented key under every setting', async () => {
    for (const strict of ['yes', 'accept-new', 'no'] as const) {
      const target = fresh();
      const verify = createHostVerifier({ host: 'h', port: 22, knownHostsFiles: [target], strictHostKeyChecking: strict });
      expect((await hostKeyError(verify(Buffer.from('junk')))).code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
      await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    }
  });

  it.each([
    [{ host: 'h', port: 22, knownHostsFiles: [], strictHostKeyChecking: 'accept-new' }, 'knownHostsFiles'],
    [{ host: 'h', port: 22, knownHostsFiles: ['x'], strictHostKeyChecking: 'ask' }, 'strictHostKeyChecking'],
    [{ host: 'h', port: 22, knownHostsFiles: ['x'], strictHostKeyChecking: 'yes', bogus: 1 }, 'bogus'],
    [{ host: 'h', port: 22, knownHostsFiles: 'x', strictHostKeyChecking: 'yes' }, 'knownHostsFiles'],
    [{ host: 'h', port: 22, knownHostsFiles: ['x'], globalKnownHostsFiles: [''], strictHostKeyChecking: 'yes' }, 'globalKnownHostsFiles.0'],
    [{ host: '', port: 22, knownHostsFiles: ['x'], strictHostKeyChecking: 'yes' }, 'host'],
    [{ host: 'h', port: -1, knownHostsFiles: ['x'], strictHostKeyChecking: 'yes' }, 'port'],
    [{ host: 'h', port: 22, knownHostsFiles: ['x'], strictHostKeyChecking: 'yes', hashKnownHosts: 'yes' }, 'hashKnownHosts'],
  ])('rejects invalid options %j (field %s)', (options, field) => {
    expect(() => createHostVerifier(options as never)).toThrow(SshConfigError);
    try {
      createHostVerifier(options as never);
    } catch (e) {
      expect((e as SshConfigError).field).toBe(field);
    }
  });
});

describe('toSsh2HostVerifier', () => {
  it('reports success before calling verify(true), exactly once', async () => {
    const events: string[] = [];
    const fn = toSsh2HostVerifier(
      () => Promise.resolve(),
      (err) => events.push(`result:${String(err)}`),
    );
    const done = new Promise<void>((resolve) => {
      const ret: unknown = fn(ed25519(), (ok) => {
        events.push(`verify:${String(ok)}`);
        resolve();
      });
      expect(ret).toBeUndefined(); // ssh2 waits for verify() only when hostVerifier returns undefined
    });
    await done;
    expect(events).toEqual(['result:undefined', 'verify:true']);
  });

  it('hands the typed error to onResult before verify(false)', async () => {
    const k = ed25519();
    const typed = new SshHostKeyError('ERR_SSH_HOST_KEY_UNKNOWN', 'nope', { host: 'h', fingerprint: fingerprintSha256(k) });
    const events: unknown[] = [];
    await new Promise<void>((resolve) => {
      toSsh2HostVerifier(
        () => Promise.reject(typed),
        (err) => events.push(err),
      )(k, (ok) => {
        events.push(ok);
        resolve();
      });
    });
    expect(events).toEqual([typed, false]);
  });

  it('wraps a non-SshError rejection or a synchronous throw as non-retryable ERR_SSH_HANDSHAKE', async () => {
    for (const verifier of [() => Promise.reject(new Error('boom')), (): Promise<void> => { throw new Error('sync boom'); }]) {
      const err = await new Promise<SshError | undefined>((resolve) => {
        let got: SshError | undefined;
        toSsh2HostVerifier(verifier, (e) => (got = e))(ed25519(), () => resolve(got));
      });
      expect(err).toBeInstanceOf(SshError);
      expect(err?.code).toBe('ERR_SSH_HANDSHAKE');
      expect(err?.retryable).toBe(false);
    }
  });

  it('copies the key (ssh2 passes a slice of its packet buffer)', async () => {
    const k = ed25519();
    const original = Buffer.from(k);
    let seen: Buffer | undefined;
    await new Promise<void>((resolve) => {
      toSsh2HostVerifier(
        async (key) => {
          await new Promise((r) => setImmediate(r));
          seen = key;
        },
        () => undefined,
      )(k, () => resolve());
      k.fill(0);
    });
    expect(seen?.equals(original)).toBe(true);
  });

  it('refuses a non-Buffer key (ssh2 hostHash option set) and survives throwing callbacks', async () => {
    const err = await new Promise<SshError | undefined>((resolve) => {
      let got: SshError | undefined;
      toSsh2HostVerifier(
        () => Promise.resolve(),
        (e) => {
          got = e;
          throw new Error('ignored');
        },
      )('deadbeef' as unknown as Buffer, (ok) => {
        expect(ok).toBe(false);
        resolve(got);
      });
    });
    expect(err?.code).toBe('ERR_SSH_HANDSHAKE');
  });
});

describe('input validation', () => {
  it('rejects non-string text, non-Buffer keys and non-array file lists with ERR_SSH_CONFIG', async () => {
    expect(() => parseKnownHosts(42 as never)).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG', field: 'text' }));
    expect(() => checkHostKey([], 'h', 22, 'key' as never)).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG', field: 'key' }));
    await expect(loadKnownHosts('/etc/ssh/ssh_known_hosts' as never)).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', field: 'knownHostsFiles' });
  });
});
