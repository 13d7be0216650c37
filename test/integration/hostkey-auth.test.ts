import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshClient, SshError, SshHostKeyError } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions } from '../helpers/client.js';
import { startSshd } from '../helpers/sshd.js';

const info = sharedSshd();
const hostName = `[${info.host}]:${info.port}`;
const clients: SshClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});
function client(overrides: Parameters<typeof clientOptions>[1]): SshClient {
  const c = new SshClient(clientOptions(info, overrides));
  clients.push(c);
  return c;
}
function tmpFile(name: string, content: string, mode = 0o600): string {
  const f = join(mkdtempSync(join(tmpdir(), 'tether-hk-')), name);
  writeFileSync(f, content, { mode });
  return f;
}
function otherKeyLine(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tether-k-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
  return readFileSync(join(dir, 'k.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
}

describe('host key verification', () => {
  it('a known host connects', async () => {
    const ssh = client({});
    await ssh.connect();
    expect(ssh.state).toBe('ready');
  });

  it("unknown host under 'yes': ERR_SSH_HOST_KEY_UNKNOWN with the SHA256 fingerprint, not retried, and closed", async () => {
    const ssh = client({ knownHostsFiles: [tmpFile('kh', '')] });
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshHostKeyError;
    expect(err).toBeInstanceOf(SshHostKeyError);
    expect(err.code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
    expect(err.message).toContain(info.hostKeyFingerprint);
    expect(err.known).toBeUndefined();
    expect(err.retryable).toBe(false);
    expect(ssh.state).toBe('closed');
  });

  it('a changed key: ERR_SSH_HOST_KEY_MISMATCH under yes and accept-new; the file is untouched; `known` names the line on file', async () => {
    for (const mode of ['yes', 'accept-new'] as const) {
      // The host's key on line 3, after a comment and another host's line.
      const content = `# keys\nother.example ${otherKeyLine()}\n${hostName} ${otherKeyLine()}\n`;
      const kh = tmpFile('kh', content);
      const err = (await client({ knownHostsFiles: [kh], strictHostKeyChecking: mode }).connect().catch((e: unknown) => e)) as SshHostKeyError;
      expect(err).toBeInstanceOf(SshHostKeyError);
      expect(err.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
      expect(err.known).toEqual({ file: kh, line: 3, keyType: 'ssh-ed25519' });
      expect(readFileSync(kh, 'utf8')).toBe(content);
    }
  });

  it("a revoked key is refused even under 'no'; `known` names the @revoked line", async () => {
    const kh = tmpFile('kh', `${hostName} ${info.hostPublicKey}\n@revoked * ${info.hostPublicKey}\n`);
    const err = (await client({ knownHostsFiles: [kh], strictHostKeyChecking: 'no' }).connect().catch((e: unknown) => e)) as SshHostKeyError;
    expect(err.code).toBe('ERR_SSH_HOST_KEY_REVOKED');
    expect(err.known).toEqual({ file: kh, line: 2, keyType: info.hostPublicKey.split(' ')[0] });
  });

  it('a hashed entry (ssh-keygen -H) is trusted', async () => {
    const kh = tmpFile('kh', `${hostName} ${info.hostPublicKey}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', kh], { stdio: 'ignore' });
    expect(readFileSync(kh, 'utf8')).toMatch(/^\|1\|/);
    const ssh = client({ knownHostsFiles: [kh] });
    await ssh.connect();
    expect(ssh.state).toBe('ready');
  });

  it('accept-new records the key in a line that `ssh-keygen -F` finds, and trusts it next time', async () => {
    const kh = tmpFile('kh', '# no trailing newline');
    const ssh = client({ knownHostsFiles: [kh], strictHostKeyChecking: 'accept-new' });
    const seen: string[] = [];
    ssh.on('hostkey', (i) => seen.push(i.action));
    await ssh.connect();
    expect(seen).toEqual(['added']);
    const found = execFileSync('ssh-keygen', ['-F', hostName, '-f', kh], { encoding: 'utf8' });
    expect(found).toContain(info.hostPublicKey.split(' ')[1]);
    expect(readFileSync(kh, 'utf8').startsWith('# no trailing newline\n')).toBe(true);
    const again = client({ knownHostsFiles: [kh], strictHostKeyChecking: 'yes' });
    await again.connect();
    expect(again.state).toBe('ready');
  });
});

describe('keys and authentication', () => {
  it('accept-new while another process holds the known_hosts lock: a retryable ERR_SSH_TIMEOUT, the client stays usable, the next connect records the key', async () => {
    const kh = tmpFile('kh', '');
    // A fresh lock (not stale: younger than 10 s) held for the whole first attempt (5 s lock wait).
    writeFileSync(`${kh}.lock`, '999999\n');
    const ssh = client({ knownHostsFiles: [kh], strictHostKeyChecking: 'accept-new' });
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err).toBeInstanceOf(SshError);
    expect(err.code).toBe('ERR_SSH_TIMEOUT');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`${kh}.lock`);
    expect(readFileSync(kh, 'utf8')).toBe('');
    expect(ssh.state).toBe('idle');
    rmSync(`${kh}.lock`);
    await ssh.connect();
    expect(ssh.state).toBe('ready');
    expect(readFileSync(kh, 'utf8')).toContain(info.hostPublicKey.split(' ')[1]);
  }, 20_000);

  it('a key file with mode 0644 is refused with ERR_SSH_KEY, as OpenSSH does', async () => {
    const f = join(mkdtempSync(join(tmpdir(), 'tether-key-')), 'id');
    copyFileSync(info.privateKeyPath, f);
    chmodSync(f, 0o644);
    const ssh = client({ identityFiles: [f] });
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_KEY');
    expect(err.message).toContain('0644');
    expect(ssh.state).toBe('closed');
  });

  it('a wrong passphrase is ERR_SSH_KEY', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-enc-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'right-pass', '-f', join(dir, 'id')]);
    const err = (await client({ identityFiles: [join(dir, 'id')], passphrase: 'wrong-pass' }).connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_KEY');
    expect(err.message).not.toContain('wrong-pass');
  });

  it('failed authentication is ERR_SSH_AUTH listing the methods tried, and is not retried', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-other-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
    const ssh = client({ identityFiles: [join(dir, 'id')], password: 'not-the-password' });
    let attempts = 0;
    ssh.on('reconnecting', () => attempts++);
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError & { methodsTried: string[] };
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(err.retryable).toBe(false);
    expect(err.methodsTried.some((m) => m.startsWith('publickey ssh-ed25519 SHA256:'))).toBe(true);
    expect(err.message).toContain('the server allows: publickey');
    expect(err.message).not.toContain('not-the-password');
    expect(attempts).toBe(0);
    expect(ssh.state).toBe('closed');
  });

  it('40 concurrent execs against a server with MaxSessions 2 all succeed', async () => {
    const server = await startSshd({ extraConfig: ['MaxSessions 2'] });
    try {
      const { describeSshd } = await import('../helpers/sshd.js');
      const ssh = new SshClient(clientOptions(describeSshd(server)));
      clients.push(ssh);
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => ssh.exec(`echo ${i}; exit ${i % 5}`)));
      results.forEach((r, i) => {
        expect(r.stdout).toBe(`${i}\n`);
        expect(r.exitCode).toBe(i % 5);
      });
      await ssh.close();
    } finally {
      await server.remove();
    }
  });
});
