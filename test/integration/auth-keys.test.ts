// Public-key authentication with encrypted keys of every type ssh-keygen makes, against a real
// sshd; OpenSSH is the oracle: ssh-keygen makes the keys and prints their fingerprints, and
// sshd's VERBOSE log ("Accepted publickey for ... SHA256:...") names the key that logged in.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshClient, type SshClientOptions, type SshError } from '../../src/index.js';
import { startSshd, describeSshd, type SshdHandle } from '../helpers/sshd.js';
import { clientOptions, waitFor } from '../helpers/client.js';

interface Key {
  name: string;
  path: string;
  passphrase: string;
  fingerprint: string;
}

const KINDS: ReadonlyArray<{ name: string; args: string[] }> = [
  { name: 'ed25519', args: ['-t', 'ed25519'] },
  { name: 'ecdsa-256', args: ['-t', 'ecdsa', '-b', '256'] },
  { name: 'ecdsa-384', args: ['-t', 'ecdsa', '-b', '384'] },
  { name: 'ecdsa-521', args: ['-t', 'ecdsa', '-b', '521'] },
  { name: 'rsa', args: ['-t', 'rsa', '-b', '2048'] },
  { name: 'rsa-pem', args: ['-t', 'rsa', '-b', '2048', '-m', 'PEM'] },
  { name: 'ecdsa-pem', args: ['-t', 'ecdsa', '-b', '256', '-m', 'PEM'] },
];

const dir = mkdtempSync(join(tmpdir(), 'tether-authkeys-'));
const keys: Key[] = [];
let server: SshdHandle;
const clients: SshClient[] = [];

function fingerprintOf(pubPath: string): string {
  const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubPath], { encoding: 'utf8' }).split(/\s+/)[1];
  if (!fp?.startsWith('SHA256:')) throw new Error(`no fingerprint for ${pubPath}`);
  return fp;
}

function makeKey(name: string, args: string[], passphrase: string): Key {
  const path = join(dir, `id_${name}`);
  execFileSync('ssh-keygen', ['-q', ...args, '-N', passphrase, '-C', `tether-${name}`, '-f', path]);
  return { name, path, passphrase, fingerprint: fingerprintOf(`${path}.pub`) };
}

function client(o: Partial<SshClientOptions>): SshClient {
  const c = new SshClient({ ...clientOptions(describeSshd(server), { reconnect: false }), ...o });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  server = await startSshd();
  for (const k of KINDS) {
    const key = makeKey(k.name, k.args, `pass-${k.name}`);
    keys.push(key);
    appendFileSync(join(server.dir, 'authorized_keys'), readFileSync(`${key.path}.pub`, 'utf8'));
  }
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});
afterAll(async () => {
  await server.remove();
});

async function acceptedInLog(fp: string): Promise<boolean> {
  return waitFor(() => server.logs().includes(`Accepted publickey for ${server.username}`) && server.logs().includes(fp), 2_000);
}

describe('encrypted private keys (ssh-keygen -N)', () => {
  it.each(KINDS.map((k) => k.name))('%s: connects with the passphrase, and sshd accepted that key', async (name) => {
    const key = keys.find((k) => k.name === name)!;
    const ssh = client({ identityFiles: [key.path], passphrase: key.passphrase });
    const r = await ssh.exec('echo ok');
    expect(r.stdout).toBe('ok\n');
    expect(await acceptedInLog(key.fingerprint)).toBe(true);
  });

  it('a passphrase callback is asked once per encrypted key, with the key path', async () => {
    const asked: string[] = [];
    const byPath = new Map(keys.map((k) => [k.path, k.passphrase]));
    const picked = [keys[1]!, keys[4]!, keys[5]!];
    const ssh = client({
      identityFiles: picked.map((k) => k.path),
      passphrase: ({ keyPath }) => {
        asked.push(keyPath);
        return Promise.resolve(byPath.get(keyPath) ?? '');
      },
    });
    await ssh.connect();
    expect(asked).toEqual(picked.map((k) => k.path));
    expect(await acceptedInLog(picked[0]!.fingerprint)).toBe(true);
  });

  it.each(['ed25519', 'rsa-pem'])('%s: a wrong passphrase is ERR_SSH_KEY (not retried, no secret in the message)', async (name) => {
    const key = keys.find((k) => k.name === name)!;
    const ssh = client({ identityFiles: [key.path], passphrase: 'not-the-passphrase', reconnect: {} });
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_KEY');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(key.path);
    expect(err.message).not.toContain('not-the-passphrase');
    expect(ssh.state).toBe('closed');
  });

  it('a wrong passphrase from the callback is ERR_SSH_KEY too', async () => {
    const key = keys[0]!;
    const err = (await client({ identityFiles: [key.path], passphrase: () => 'nope' })
      .connect()
      .catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_KEY');
  });

  it('an encrypted key without any passphrase is ERR_SSH_KEY', async () => {
    const err = (await client({ identityFiles: [keys[0]!.path] })
      .connect()
      .catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_KEY');
    expect(err.message).toMatch(/encrypted/);
  });
});

describe('RSA signatures are rsa-sha2-512/256, never SHA-1 ssh-rsa', () => {
  async function withServer(algos: string, fn: (s: SshdHandle) => Promise<void>): Promise<void> {
    const s = await startSshd({ extraConfig: [`PubkeyAcceptedAlgorithms ${algos}`] });
    try {
      const rsa = keys.find((k) => k.name === 'rsa')!;
      appendFileSync(join(s.dir, 'authorized_keys'), readFileSync(`${rsa.path}.pub`, 'utf8'));
      await fn(s);
    } finally {
      await s.remove();
    }
  }
  const rsaOptions = (s: SshdHandle): SshClientOptions => {
    const rsa = keys.find((k) => k.name === 'rsa')!;
    return { ...clientOptions(describeSshd(s), { reconnect: false }), identityFiles: [rsa.path], passphrase: rsa.passphrase };
  };

  // sshd announces every RSA algorithm it knows in server-sig-algs (RFC 8308), whatever
  // PubkeyAcceptedAlgorithms says, and ssh2 then signs with rsa-sha2-256: a server that accepts
  // rsa-sha2-512 alone is out of reach (ssh2 does not fall back from one SHA-2 to the other).
  it.each(['rsa-sha2-256', 'rsa-sha2-256,rsa-sha2-512'])('a server accepting only %s lets the RSA key in', async (algo) => {
    await withServer(algo, async (s) => {
      const ssh = new SshClient(rsaOptions(s));
      try {
        await ssh.connect();
        expect(ssh.state).toBe('ready');
      } finally {
        await ssh.close();
      }
    });
  });

  it('a server accepting only ssh-rsa (SHA-1) refuses it: ERR_SSH_AUTH', async () => {
    await withServer('ssh-rsa', async (s) => {
      const ssh = new SshClient(rsaOptions(s));
      const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
      expect(err.code).toBe('ERR_SSH_AUTH');
      expect(s.logs()).not.toContain('Accepted publickey');
    });
  });
});
