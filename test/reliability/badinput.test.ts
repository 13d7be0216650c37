/**
 * Bad input, issue 6 items 15, 17, 18 and 20 (item 16, ssh_config garbage / `Host __proto__` /
 * Include loops, is covered by test/unit/ssh-config.test.ts). Property-based with fast-check where
 * it fits. No `error` listener is attached to any client (item 25, see guard.ts).
 *
 * Item 18: JS strings are sent as UTF-8, so "every byte value 1-255" means the characters
 * U+0001..U+00FF, which must arrive as their UTF-8 encoding (checked with `od` on the server).
 * Raw non-UTF-8 bytes cannot be carried by a string argv element; Buffer argv elements are not
 * supported (see the report).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SshClient, SshConfigError, SshError, type SshClientOptions } from '../../src/index.js';
import { clientOptionsSchema, resolveOptions } from '../../src/options.js';
import { checkHostKey, createHostVerifier, hashHostName, loadKnownHosts, parseKnownHosts, MAX_KNOWN_HOSTS_BYTES } from '../../src/known-hosts/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions } from '../helpers/client.js';
import { reliabilitySuite } from './guard.js';
import { rejection } from './util.js';

const suite = reliabilitySuite('Bad input (items 15, 17, 18, 20)');
const info = sharedSshd();
const dir = mkdtempSync(join(tmpdir(), 'tether-rel-bad-'));
const clients: SshClient[] = [];
afterAll(async () => {
  for (const c of clients.splice(0)) await c.close();
});

describe('item 15: known_hosts', () => {
  const [keyType, keyB64] = info.hostPublicKey.trim().split(' ') as [string, string];
  const key = Buffer.from(keyB64, 'base64');
  const host = '127.0.0.1';
  const port = 2222;
  const name = `[${host}]:${port}`;
  const valid = `${name} ${keyType} ${keyB64}`;

  /** Lines that look like the valid one but are broken in one way each. */
  const broken = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    // one character of the base64 replaced, dropped or added
    fc.tuple(fc.nat(keyB64.length - 1), fc.constantFrom(...'ABCxyz019+/=!. ')).map(([i, c]) => `${name} ${keyType} ${keyB64.slice(0, i)}${c}${keyB64.slice(i + 1)}`),
    fc.nat(keyB64.length - 1).map((i) => `${name} ${keyType} ${keyB64.slice(0, i)}`),
    fc.string({ maxLength: 8 }).map((m) => `@${m.replace(/\s/g, '')}x ${valid}`),
    fc.constantFrom(`@revoked @revoked ${valid}`, `@cert-authority ${valid}`, `${name} ssh-rsa ${keyB64}`, `${name} ${keyType}`, `${name}`, `#${valid}`),
    fc.uint8Array({ minLength: 0, maxLength: 30 }).map((salt) => `|1|${Buffer.from(salt).toString('base64')}|${hashHostName(name).split('|')[3] ?? ''} ${keyType} ${keyB64}`),
    fc.string({ maxLength: 30 }).map((s) => `|1|${s}|${s} ${keyType} ${keyB64}`),
    // a negated pattern for the host wins over any other pattern on the line (even `*`)
    fc.string({ maxLength: 20 }).map((p) => `!${name},${p.replace(/[\s,]/g, '') || '*'} ${keyType} ${keyB64}`),
  ).filter((l) => l.trim() !== valid);
  const file = (lines: string[], crlf: boolean, trailing: boolean): string => lines.join(crlf ? '\r\n' : '\n') + (trailing ? (crlf ? '\r\n' : '\n') : '');

  it('a malformed line never grants trust (10,000 random files)', () => {
    let runs = 0;
    fc.assert(
      fc.property(fc.array(broken, { maxLength: 20 }), fc.boolean(), fc.boolean(), (lines, crlf, trailing) => {
        runs++;
        const set = parseKnownHosts(file(lines, crlf, trailing));
        expect(checkHostKey(set.entries, host, port, key).status).not.toBe('known');
      }),
      { numRuns: 10_000 },
    );
    suite.figure('item 15: random malformed known_hosts files, none granted trust', runs);
  });

  it('malformed lines around the valid one do not hide it (CRLF, no trailing newline)', () => {
    fc.assert(
      fc.property(fc.array(broken, { maxLength: 10 }), fc.array(broken, { maxLength: 10 }), fc.boolean(), fc.boolean(), (a, b, crlf, trailing) => {
        const lines = [...a, valid, ...b].filter((l) => !/^\s*@revoked/.test(l) || !l.includes(keyB64));
        const set = parseKnownHosts(file(lines, crlf, trailing));
        expect(checkHostKey(set.entries, host, port, key).status).toBe('known');
      }),
      { numRuns: 2_000 },
    );
  });

  it(`huge files: ${MAX_KNOWN_HOSTS_BYTES / 1024 / 1024} MiB of junk still finds the key; a bigger file fails closed`, async () => {
    const junk = `${'x'.repeat(100)} ssh-ed25519 AAAA\n`;
    const big = join(dir, 'big_known_hosts');
    const fill = Math.floor((MAX_KNOWN_HOSTS_BYTES - 1024) / junk.length);
    writeFileSync(big, junk.repeat(fill) + valid);
    const set = await loadKnownHosts([big]);
    expect(checkHostKey(set.entries, host, port, key).status).toBe('known');
    const huge = join(dir, 'huge_known_hosts');
    writeFileSync(huge, junk.repeat(fill + 100) + valid);
    const err = await rejection(loadKnownHosts([huge]));
    expect(err.code).toBe('ERR_SSH_CONFIG');
    const verify = createHostVerifier({ host, port, knownHostsFiles: [huge], globalKnownHostsFiles: [], strictHostKeyChecking: 'accept-new' });
    expect((await rejection(verify(key))).code).toBe('ERR_SSH_CONFIG');
  });

  it('an unreadable file (a directory, a path through a file) fails closed under every setting', async () => {
    for (const f of [dir, join(dir, 'big_known_hosts', 'x')]) {
      for (const strict of ['yes', 'accept-new', 'no'] as const) {
        const verify = createHostVerifier({ host, port, knownHostsFiles: [f], globalKnownHostsFiles: [], strictHostKeyChecking: strict });
        const err = await rejection(verify(key));
        expect(err.code).toBe('ERR_SSH_CONFIG');
      }
    }
  });
});

describe('item 17: options', () => {
  const fields = Object.keys(clientOptionsSchema.shape);
  const bad: unknown[] = [null, 42, -1, 0, 1.5, NaN, Infinity, 'x', '', true, [], [1], {}, { a: 1 }, () => 0, Symbol('s'), 10n, new Date(0), Buffer.alloc(1)];

  function outcome(field: string, value: unknown): 'accepted' | 'rejected' {
    try {
      resolveOptions({ host: 'h', username: 'u', [field]: value }, {});
      return 'accepted';
    } catch (err) {
      expect(err).toBeInstanceOf(SshConfigError);
      const e = err as SshConfigError;
      expect(e.code).toBe('ERR_SSH_CONFIG');
      expect(`${e.field ?? ''} ${e.message}`, `${field} = ${fc.stringify(value)}`).toContain(field);
      return 'rejected';
    }
  }

  it('every field with wrong types: ERR_SSH_CONFIG naming the field, or accepted; never another error', () => {
    let rejected = 0;
    for (const f of fields) {
      let here = 0;
      for (const v of bad) if (outcome(f, v) === 'rejected') here++;
      expect(here, `no bad value rejected for ${f}`).toBeGreaterThan(0);
      rejected += here;
    }
    suite.figure('item 17: option fields checked / bad values rejected', `${fields.length} / ${rejected}`);
  });

  it('out-of-range values are rejected naming the field', () => {
    const cases: [string, unknown][] = [
      ['port', 0],
      ['port', 65536],
      ['port', 22.5],
      ['connectTimeoutMs', 0],
      ['connectTimeoutMs', -5],
      ['keepaliveIntervalMs', -1],
      ['keepaliveIntervalMs', 0.5],
      ['keepaliveCountMax', 0],
      ['maxSessions', 0],
      ['maxSessions', 10_001],
      ['closeTimeoutMs', -1],
      ['reconnect', { minDelayMs: -1 }],
      ['reconnect', { factor: 0.5 }],
      ['reconnect', { retries: -1 }],
      ['reconnect', { retries: 1.5 }],
      ['reconnect', { minDelayMs: 500, maxDelayMs: 100 }],
      ['reconnect', { jitter: true }],
      ['strictHostKeyChecking', 'ask'],
      ['knownHostsFiles', []],
      ['algorithms', { kex: [] }],
      ['algorithms', { mac: ['x'] }],
    ];
    for (const [f, v] of cases) expect(outcome(f, v), `${f} = ${JSON.stringify(v)}`).toBe('rejected');
  });

  it('random values for every field (fast-check): accepted or ERR_SSH_CONFIG naming the field', () => {
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.anything({ withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true }), (f, v) => {
        outcome(f, v);
      }),
      { numRuns: 3_000 },
    );
  });

  it('an unknown option and a non-object are ERR_SSH_CONFIG', () => {
    for (const o of [undefined, null, 'host', 42, [], { host: 'h', hots: 1 }]) {
      expect(() => new SshClient(o as SshClientOptions)).toThrow(SshConfigError);
    }
  });
});

describe('item 18: exec argv bytes', () => {
  it('every character U+0001..U+00FF, in one argument and one per argument, arrives as its UTF-8 bytes (od on the server)', async () => {
    const ssh = new SshClient(clientOptions(info));
    clients.push(ssh);
    const chars = Array.from({ length: 255 }, (_, i) => String.fromCharCode(i + 1));
    const all = chars.join('');
    const one = await ssh.exec(['sh', '-c', 'printf %s "$1" | od -An -v -tx1', 'sh', all]);
    const hex = (s: string): string => s.replace(/\s+/g, '');
    expect(hex(one.stdout)).toBe(Buffer.from(all, 'utf8').toString('hex'));
    const each = await ssh.exec(['sh', '-c', 'printf "%s\\n" "$@" | od -An -v -tx1', 'sh', ...chars]);
    expect(hex(each.stdout)).toBe(Buffer.from(chars.map((c) => `${c}\n`).join(''), 'utf8').toString('hex'));
    // and U+0000 cannot be carried: a TypeError before anything is sent
    await expect(ssh.exec(['echo', 'a\0b'])).rejects.toThrow(TypeError);
  });
});

describe('item 20: private keys', () => {
  const keyText = readFileSync(info.privateKeyPath, 'utf8');
  const pubText = readFileSync(`${info.privateKeyPath}.pub`, 'utf8');
  const enc = join(dir, 'enc');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'right-passphrase', '-f', enc]);
  const ppk = [
    'PuTTY-User-Key-File-3: ssh-ed25519',
    'Encryption: aes256-cbc',
    'Comment: test',
    'Public-Lines: 2',
    'AAAAC3NzaC1lZDI1NTE5AAAAIDxx',
    'yyyy',
    'Key-Derivation: Argon2id',
    'Private-Lines: 1',
    'AAAAIGZha2U=',
    'Private-MAC: 00',
    '',
  ].join('\n');
  const cases: { name: string; o: Partial<SshClientOptions> }[] = [
    { name: 'truncated', o: { privateKey: keyText.slice(0, Math.floor(keyText.length / 2)) } },
    { name: 'truncated body, intact armour', o: { privateKey: keyText.replace(/\n[A-Za-z0-9+/=]+\n-----END/, '\n-----END') } },
    { name: 'a public key', o: { privateKey: pubText } },
    { name: 'random text', o: { privateKey: 'not a key at all\n' } },
    { name: 'random bytes', o: { privateKey: Buffer.from(Array.from({ length: 400 }, (_, i) => (i * 37) % 256)) } },
    { name: 'an encrypted PPK with junk', o: { privateKey: ppk, passphrase: 'x' } },
    { name: 'a wrong passphrase', o: { privateKey: readFileSync(enc), passphrase: 'wrong' } },
    { name: 'no passphrase for an encrypted key', o: { privateKey: readFileSync(enc) } },
    { name: 'a truncated file', o: { identityFiles: [writeTemp('trunc', keyText.slice(0, 100))] } },
    { name: 'a PPK file', o: { identityFiles: [writeTemp('k.ppk', ppk)], passphrase: 'x' } },
  ];
  function writeTemp(n: string, text: string): string {
    const p = join(dir, n);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  }
  for (const c of cases) {
    it(`${c.name}: ERR_SSH_KEY, not retried, the secret not echoed`, async () => {
      const ssh = new SshClient(clientOptions(info, { identityFiles: [], reconnect: false, ...c.o }));
      clients.push(ssh);
      const err = await rejection(ssh.connect());
      expect(err).toBeInstanceOf(SshError);
      expect(err.code).toBe('ERR_SSH_KEY');
      expect(err.retryable).toBe(false);
      expect(err.message).not.toContain('right-passphrase');
      expect(err.message).not.toContain(keyText.split('\n')[2] ?? '-');
    });
  }
});
