// Password and keyboard-interactive authentication, and the ssh_config switches that govern
// methods (PreferredAuthentications, PasswordAuthentication, PubkeyAuthentication, BatchMode).
//
// Password: a real sshd (`PasswordAuthentication yes`, `UsePAM no`, so sshd checks /etc/shadow)
// and a dedicated user `tetherpw` whose password this file sets with chpasswd (as root).
// Keyboard-interactive: OpenSSH's sshd on Linux offers it only through PAM (its other devices,
// bsdauth and skey, are not built on Debian), and the harness runs `UsePAM no`; so the
// keyboard-interactive exchange (RFC 4256) is tested against an ssh2 `Server` instead.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import { SshClient, type SshClientOptions, type SshError } from '../../src/index.js';
import { startSshd, describeSshd, type SshdHandle } from '../helpers/sshd.js';
import { clientOptions } from '../helpers/client.js';
import { useClients, waitFor, writeSshConfig } from '../helpers/common.js';

const USER = 'tetherpw';
const PASSWORD = 'Tether-pw-7f3a';
const dir = mkdtempSync(join(tmpdir(), 'tether-pw-'));
/** Every client a test makes is closed after it. */
const track = useClients();
let server: SshdHandle;

function client(o: Partial<SshClientOptions>): SshClient {
  const c = new SshClient({ ...clientOptions(describeSshd(server), { reconnect: false }), username: USER, identityFiles: [], ...o });
  return track(c);
}

function sshConfig(lines: string[]): string {
  return writeSshConfig(`Host *\n${lines.map((l) => `  ${l}`).join('\n')}\n`, mkdtempSync(join(dir, 'cfg-')));
}

beforeAll(async () => {
  try {
    execFileSync('getent', ['passwd', USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', '-s', '/bin/sh', USER], { stdio: 'ignore' });
  }
  execFileSync('chpasswd', { input: `${USER}:${PASSWORD}\n` });
  server = await startSshd({ extraConfig: ['PasswordAuthentication yes'] });
});
afterAll(async () => {
  // lock the password again: nothing can log in as tetherpw with it after this file
  execFileSync('usermod', ['-p', '!', USER]);
  await server.remove();
});

describe('password authentication (real sshd)', () => {
  it('logs in with the password; sshd logs "Accepted password"', async () => {
    const ssh = client({ password: PASSWORD });
    expect((await ssh.exec('id -un')).stdout).toBe(`${USER}\n`);
    expect(await waitFor(() => server.logs().includes(`Accepted password for ${USER}`), 3_000)).toBe(true);
  });

  it('a wrong password is ERR_SSH_AUTH naming the method and the allowed methods, never the password', async () => {
    const err = (await client({ password: 'wrong-secret-123' })
      .connect()
      .catch((e: unknown) => e)) as SshError & { methodsTried: string[] };
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(err.methodsTried).toContain('password');
    expect(err.message).toMatch(/the server allows: .*password/);
    expect(err.message).not.toContain('wrong-secret-123');
  });

  it('ssh_config PasswordAuthentication no: the password is not tried', async () => {
    const err = (await client({ password: PASSWORD, sshConfig: sshConfig(['PasswordAuthentication no']) })
      .connect()
      .catch((e: unknown) => e)) as SshError & { methodsTried: string[] };
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(err.methodsTried).toEqual([]);
  });

  it('ssh_config PreferredAuthentications password: keys are not offered, the password is', async () => {
    const keyDir = mkdtempSync(join(dir, 'k-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keyDir, 'id')]);
    const ssh = client({ password: PASSWORD, identityFiles: [join(keyDir, 'id')], sshConfig: sshConfig(['PreferredAuthentications password']) });
    await ssh.connect();
    const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(keyDir, 'id.pub')], { encoding: 'utf8' }).split(/\s+/)[1] ?? '';
    expect(server.logs()).not.toContain(fp);
  });

  it('ssh_config PubkeyAuthentication no: an encrypted key is not even read (no passphrase asked)', async () => {
    const keyDir = mkdtempSync(join(dir, 'k-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'pp', '-f', join(keyDir, 'id')]);
    let asked = 0;
    const ssh = client({
      password: PASSWORD,
      identityFiles: [join(keyDir, 'id')],
      passphrase: () => {
        asked++;
        return 'pp';
      },
      sshConfig: sshConfig(['PubkeyAuthentication no']),
    });
    await ssh.connect();
    expect(asked).toBe(0);
  });

  it('ssh_config BatchMode yes: the passphrase callback is not asked; the encrypted key is skipped', async () => {
    const keyDir = mkdtempSync(join(dir, 'k-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'pp', '-f', join(keyDir, 'id')]);
    let asked = 0;
    const err = (await client({
      identityFiles: [join(keyDir, 'id')],
      passphrase: () => {
        asked++;
        return 'pp';
      },
      sshConfig: sshConfig(['BatchMode yes']),
    })
      .connect()
      .catch((e: unknown) => e)) as SshError;
    expect(asked).toBe(0);
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(err.message).toContain('BatchMode');
  });
});

describe('keyboard-interactive (ssh2 Server: sshd offers it only through PAM)', () => {
  let kbd: ssh2.Server;
  let port = 0;
  let knownHosts = '';
  const seen: Array<{ name: string; instructions: string; prompts: Array<{ prompt: string; echo: boolean }> }> = [];

  beforeAll(async () => {
    const keyPath = join(dir, 'kbd_host');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
    kbd = new ssh2.Server({ hostKeys: [readFileSync(keyPath)] }, (conn) => {
      conn.on('error', () => undefined);
      conn.on('authentication', (ctx) => {
        if (ctx.method !== 'keyboard-interactive') return ctx.reject(['keyboard-interactive']);
        ctx.prompt(
          [
            { prompt: 'Password: ', echo: false },
            { prompt: 'Token: ', echo: true },
          ],
          'tether-login',
          'two questions',
          (answers) => (answers[0] === PASSWORD && answers[1] === '424242' ? ctx.accept() : ctx.reject()),
        );
      });
      conn.on('ready', () => conn.end());
    });
    await new Promise<void>((resolve) => kbd.listen(0, '127.0.0.1', resolve));
    port = (kbd.address() as AddressInfo).port;
    knownHosts = join(dir, 'kbd_known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${readFileSync(`${keyPath}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => kbd.close(() => resolve()));
  });

  const base = (): SshClientOptions => ({
    host: '127.0.0.1',
    port,
    username: 'someone',
    knownHostsFiles: [knownHosts],
    globalKnownHostsFiles: [],
    identityFiles: [],
    agent: false,
    sshConfig: false,
    reconnect: false,
    keepaliveIntervalMs: 0,
  });

  it('the keyboardInteractive callback receives the prompts and its answers log in', async () => {
    const ssh = new SshClient({
      ...base(),
      keyboardInteractive: (prompts, info) => {
        seen.push({ ...info, prompts: [...prompts] });
        return [PASSWORD, '424242'];
      },
    });
    track(ssh);
    await ssh.connect();
    expect(seen).toEqual([
      {
        name: 'tether-login',
        instructions: 'two questions',
        prompts: [
          { prompt: 'Password: ', echo: false },
          { prompt: 'Token: ', echo: true },
        ],
      },
    ]);
  });

  it('wrong answers are ERR_SSH_AUTH listing keyboard-interactive', async () => {
    const ssh = new SshClient({ ...base(), keyboardInteractive: () => ['x', 'y'] });
    track(ssh);
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError & { methodsTried: string[] };
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(err.methodsTried).toContain('keyboard-interactive');
  });

  it('without a callback, the password answers every prompt (here: wrong for the token)', async () => {
    const ssh = new SshClient({ ...base(), password: PASSWORD });
    track(ssh);
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError & { methodsTried: string[] };
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(err.methodsTried[0]).toBe('keyboard-interactive');
  });

  it('BatchMode: the callback is not asked', async () => {
    let asked = 0;
    const cfg = sshConfig(['BatchMode yes']);
    const ssh = new SshClient({
      ...base(),
      sshConfig: cfg,
      keyboardInteractive: () => {
        asked++;
        return [PASSWORD, '424242'];
      },
    });
    track(ssh);
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(asked).toBe(0);
  });
});
