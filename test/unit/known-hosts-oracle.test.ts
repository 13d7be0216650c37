// Cross-checks the known_hosts module against OpenSSH's own ssh-keygen (no sshd needed):
// `ssh-keygen -F` (lookup), `ssh-keygen -H` (hashing), `ssh-keygen -lf` (fingerprints, parsing).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendKnownHost,
  checkHostKey,
  createHostVerifier,
  entryMatchesHost,
  fingerprintSha256,
  hostPattern,
  loadKnownHosts,
  parseKnownHosts,
  type NewHostKeyInfo,
} from '../../src/known-hosts/index.js';

const run = promisify(execFile);

interface GenKey {
  type: string;
  b64: string;
  blob: Buffer;
  pubFile: string;
}

let dir: string;
const keys: Record<string, GenKey> = {};

async function genKey(name: string, args: string[]): Promise<GenKey> {
  const f = join(dir, name);
  await run('ssh-keygen', ['-q', '-N', '', '-C', `${name}@test`, '-f', f, ...args]);
  const pub = (await readFile(`${f}.pub`, 'utf8')).trim().split(' ');
  return { type: pub[0]!, b64: pub[1]!, blob: Buffer.from(pub[1]!, 'base64'), pubFile: `${f}.pub` };
}

/** Line numbers `ssh-keygen -F query -f file` reports (exit 1 = none found). */
async function keygenFind(query: string, file: string): Promise<number[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('ssh-keygen', ['-F', query, '-f', file]));
  } catch (err) {
    if ((err as { code?: unknown }).code === 1) return [];
    throw err;
  }
  return [...stdout.matchAll(/^# Host .* found: line (\d+)/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kh-oracle-'));
  const specs: [string, string[]][] = [
    ['ed25519', ['-t', 'ed25519']],
    ['ecdsa256', ['-t', 'ecdsa', '-b', '256']],
    ['ecdsa384', ['-t', 'ecdsa', '-b', '384']],
    ['ecdsa521', ['-t', 'ecdsa', '-b', '521']],
    ['rsa', ['-t', 'rsa', '-b', '1024']],
    ['dsa', ['-t', 'dsa']],
  ];
  const made = await Promise.all(specs.map(([name, args]) => genKey(name, args)));
  specs.forEach(([name], i) => (keys[name] = made[i]!));
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fingerprints and key parsing vs ssh-keygen -lf', () => {
  it('fingerprintSha256 equals ssh-keygen -lf for every key type', async () => {
    for (const k of Object.values(keys)) {
      const { stdout } = await run('ssh-keygen', ['-lf', k.pubFile]);
      expect(stdout.split(' ')[1]).toBe(fingerprintSha256(k.blob));
      // and the parser accepts the real key with the type ssh-keygen wrote
      const { entries, warnings } = parseKnownHosts(`h ${k.type} ${k.b64}`);
      expect(warnings).toEqual([]);
      expect(entries[0]?.keyType).toBe(k.type);
    }
  });
});

describe('lookup vs ssh-keygen -F, before and after ssh-keygen -H', () => {
  // Lowercase names: ssh-keygen -H lowercases names, -F hashes the query as given.
  const lines = (): string[] => {
    const k = (n: string): string => `${keys[n]!.type} ${keys[n]!.b64}`;
    return [
      '# test file',
      `plain.example ${k('ed25519')}`,
      `plain.example ${k('rsa')}`,
      `[127.0.0.1]:2222 ${k('ecdsa256')}`,
      `127.0.0.1,localhost ${k('ecdsa384')}`,
      `*.wild.example,!bad.wild.example ${k('ecdsa521')}`,
      `[*.wild.example]:2200 ${k('dsa')}`,
      `web?.farm.example ${k('ed25519')}`,
      `@revoked * ${k('rsa')}`,
      `@cert-authority *.ca.example ${k('ed25519')}`,
      `[::1]:2222,::1 ${k('ed25519')}`,
      '',
      `multi1,multi2,[multi3]:2022 ${k('ecdsa256')}`,
    ];
  };
  const queries: [string, number][] = [
    ['plain.example', 22],
    ['plain.example', 2222],
    ['127.0.0.1', 2222],
    ['127.0.0.1', 22],
    ['localhost', 22],
    ['a.wild.example', 22],
    ['bad.wild.example', 22],
    ['a.wild.example', 2200],
    ['web1.farm.example', 22],
    ['web12.farm.example', 22],
    ['x.ca.example', 22],
    ['::1', 2222],
    ['::1', 22],
    ['multi2', 22],
    ['multi3', 2022],
    ['multi3', 22],
    ['nowhere', 22],
  ];

  it('matches the same lines as ssh-keygen -F, and the same keys once hashed', async () => {
    const file = join(dir, 'lookup_known_hosts');
    await writeFile(file, lines().join('\n') + '\n');
    const plain = parseKnownHosts(await readFile(file, 'utf8'), file);
    expect(plain.warnings).toEqual([]);

    const keysFor = (entries: typeof plain.entries, q: string): string[] =>
      entries
        .filter((e) => entryMatchesHost(e, q))
        .map((e) => `${e.marker ?? ''} ${e.keyType} ${e.key.toString('base64')}`)
        .sort();

    const expectedKeys = new Map<string, string[]>();
    for (const [host, port] of queries) {
      const q = hostPattern(host, port);
      const ours = plain.entries.filter((e) => entryMatchesHost(e, q)).map((e) => e.line);
      expect({ q, lines: ours }).toEqual({ q, lines: await keygenFind(q, file) });
      expectedKeys.set(q, keysFor(plain.entries, q));
    }

    await run('ssh-keygen', ['-H', '-f', file]);
    const hashedText = await readFile(file, 'utf8');
    expect(hashedText).toMatch(/^\|1\|/m);
    const hashed = parseKnownHosts(hashedText, file);
    expect(hashed.warnings).toEqual([]);
    expect(hashed.entries.filter((e) => e.hosts.kind === 'hashed').length).toBeGreaterThan(5);
    for (const [host, port] of queries) {
      const q = hostPattern(host, port);
      const ours = hashed.entries.filter((e) => entryMatchesHost(e, q)).map((e) => e.line);
      expect({ q, lines: ours }).toEqual({ q, lines: await keygenFind(q, file) });
      expect({ q, keys: keysFor(hashed.entries, q) }).toEqual({ q, keys: expectedKeys.get(q) });
    }
    // and the verdicts agree on the hashed file
    expect(checkHostKey(hashed.entries, '127.0.0.1', 2222, keys.ecdsa256!.blob).status).toBe('known');
    expect(checkHostKey(hashed.entries, 'plain.example', 22, keys.rsa!.blob).status).toBe('revoked');
    expect(checkHostKey(hashed.entries, 'plain.example', 22, keys.ed25519!.blob).status).toBe('known');
    expect(checkHostKey(hashed.entries, 'plain.example', 22, keys.dsa!.blob).status).toBe('changed');
    expect(checkHostKey(hashed.entries, 'x.ca.example', 22, keys.ed25519!.blob).status).toBe('unknown');
  });
});

describe('appendKnownHost vs ssh-keygen', () => {
  it('writes lines ssh-keygen -F finds, plain and hashed, and keeps a newline-less file valid', async () => {
    const file = join(dir, 'append_known_hosts');
    await writeFile(file, `existing.example ${keys.rsa!.type} ${keys.rsa!.b64}`); // no final newline
    await appendKnownHost(file, '127.0.0.1', 2222, keys.ed25519!.blob);
    await appendKnownHost(file, 'hashed.example', 22, keys.ecdsa384!.blob, { hash: true });
    await appendKnownHost(file, '::1', 2022, keys.dsa!.blob, { hash: true });
    expect(await keygenFind('existing.example', file)).toEqual([1]);
    expect(await keygenFind('[127.0.0.1]:2222', file)).toEqual([2]);
    expect(await keygenFind('hashed.example', file)).toEqual([3]);
    expect(await keygenFind('[::1]:2022', file)).toEqual([4]);
    expect(await keygenFind('127.0.0.1', file)).toEqual([]);
    const { stdout } = await run('ssh-keygen', ['-lf', file]);
    expect(stdout.trim().split('\n').map((l) => l.split(' ')[1])).toEqual(
      [keys.rsa!, keys.ed25519!, keys.ecdsa384!, keys.dsa!].map((k) => fingerprintSha256(k.blob)),
    );
  });

  it('20 processes appending at once produce one well-formed line each', async () => {
    // Bundle the module once (esbuild ships with tsup) so plain `node` children can import it.
    const { build } = await import('esbuild');
    const bundle = join(dir, 'known-hosts.mjs');
    await build({
      entryPoints: [resolve('src/known-hosts/index.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: bundle,
      logLevel: 'silent',
    });
    const file = join(dir, 'concurrent', 'known_hosts');
    const go = join(dir, 'go');
    // Start from a file without a final newline: every writer must see the newline the first one added.
    await appendKnownHost(file, 'seed.example', 22, keys.ed25519!.blob);
    await writeFile(file, (await readFile(file, 'utf8')).trimEnd());
    const script = `
      import { appendKnownHost } from ${JSON.stringify(pathToFileURL(bundle).href)};
      import { existsSync } from 'node:fs';
      import { setTimeout as sleep } from 'node:timers/promises';
      const [file, go, idx, ...b64s] = process.argv.slice(1);
      process.stdout.write('ready\\n');
      for (let i = 0; i < 2000 && !existsSync(go); i++) await sleep(5);
      for (const [j, b64] of b64s.entries()) {
        await appendKnownHost(file, 'host' + idx, 2200 + j, Buffer.from(b64, 'base64'), { hash: j % 2 === 1, lockTimeoutMs: 30000 });
      }
    `;
    const N = 20;
    const PER = 3;
    const blobs: Buffer[][] = [];
    const children = [];
    for (let i = 0; i < N; i++) {
      const mine = Array.from({ length: PER }, () =>
        Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), randomBytes(32)]),
      );
      blobs.push(mine);
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, file, go, String(i), ...mine.map((b) => b.toString('base64'))], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const ready = new Promise<void>((res) => child.stdout.once('data', () => res()));
      const exited = new Promise<void>((res, rej) => {
        child.on('error', rej);
        child.on('close', (code) => (code === 0 ? res() : rej(new Error(`child ${i} exited ${code}: ${stderr}`))));
      });
      children.push({ ready, exited });
    }
    await Promise.all(children.map((c) => c.ready));
    await writeFile(go, '');
    await Promise.all(children.map((c) => c.exited));

    const text = await readFile(file, 'utf8');
    const textLines = text.split('\n');
    expect(textLines.pop()).toBe('');
    expect(textLines.shift()).toBe(`seed.example ${keys.ed25519!.type} ${keys.ed25519!.b64}`);
    expect(textLines).toHaveLength(N * PER);
    for (const l of textLines) expect(l).toMatch(/^(\[host\d+\]:22\d\d|\|1\|\S+) ssh-ed25519 [A-Za-z0-9+/]+=*$/);
    const { entries, warnings } = await loadKnownHosts([file]);
    expect(warnings).toEqual([]);
    expect(entries).toHaveLength(N * PER + 1);
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < PER; j++) {
        expect(checkHostKey(entries, `host${i}`, 2200 + j, blobs[i]![j]!).status).toBe('known');
      }
    }
    // OpenSSH parses every line too
    const { stdout } = await run('ssh-keygen', ['-lf', file]);
    expect(stdout.trim().split('\n')).toHaveLength(N * PER + 1);
    expect(await keygenFind('[host7]:2201', file)).toHaveLength(1);
  }, 60_000);
});

describe('createHostVerifier with ssh-keygen keys', () => {
  it('accept-new writes a line ssh-keygen -F finds; yes then knows it; changed and revoked are refused', async () => {
    const user = join(dir, 'verifier', 'known_hosts');
    const global = join(dir, 'global_known_hosts');
    await writeFile(global, `@revoked * ${keys.dsa!.type} ${keys.dsa!.b64}\n`);
    const base = { host: '127.0.0.1', port: 2222, knownHostsFiles: [user], globalKnownHostsFiles: [global] };
    const added: NewHostKeyInfo[] = [];

    const strictYes = createHostVerifier({ ...base, strictHostKeyChecking: 'yes' });
    await expect(strictYes(keys.ed25519!.blob)).rejects.toMatchObject({
      code: 'ERR_SSH_HOST_KEY_UNKNOWN',
      fingerprint: fingerprintSha256(keys.ed25519!.blob),
    });

    const acceptNew = createHostVerifier({ ...base, strictHostKeyChecking: 'accept-new', onNewKey: (i) => added.push(i) });
    await acceptNew(keys.ed25519!.blob);
    expect(added).toHaveLength(1);
    expect(await keygenFind('[127.0.0.1]:2222', user)).toEqual([1]);
    const { stdout } = await run('ssh-keygen', ['-lf', user]);
    expect(stdout.split(' ')[1]).toBe(fingerprintSha256(keys.ed25519!.blob));

    await expect(strictYes(keys.ed25519!.blob)).resolves.toBeUndefined();
    await expect(strictYes(keys.ecdsa256!.blob)).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_MISMATCH' });
    await expect(acceptNew(keys.ecdsa256!.blob)).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_MISMATCH' });
    const strictNo = createHostVerifier({ ...base, strictHostKeyChecking: 'no' });
    await expect(strictNo(keys.ecdsa256!.blob)).resolves.toBeUndefined();
    await expect(strictNo(keys.dsa!.blob)).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_REVOKED' });
    expect(execFileSync('wc', ['-l', user]).toString().trim().split(' ')[0]).toBe('1');
  });
});
