import { generateEd25519 } from '../../src/internal/keygen.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { SshClient, SshError } from '../../src/index.js';
import { startServer, type SshServer } from '../../src/server/index.js';
import { findScript } from '../../src/server/session.js';
import { alive, echoServer, rawClient, rawExec, roundTrip } from './util.js';
import { waitFor } from '../helpers/wait.js';

describe('in-process server: defaults, exec, shell, env, signals, pty', () => {
  let server: SshServer;
  let ssh: SshClient;
  const errors: SshError[] = [];
  beforeAll(async () => {
    server = await startServer();
    server.on('error', (e) => errors.push(e));
    ssh = new SshClient(server.clientOptions());
    await ssh.connect();
  });
  afterAll(async () => {
    await ssh.close();
    await server.stop();
  });

  it('listens on 127.0.0.1 with a fresh root, a host key line and a known_hosts line', () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
    expect(server.hostKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+$/);
    expect(server.knownHostsLine).toBe(`[127.0.0.1]:${server.port} ${server.hostKey}`);
    expect(readFileSync(server.knownHostsPath, 'utf8')).toBe(`${server.knownHostsLine}\n`);
    expect(existsSync(server.root)).toBe(true);
    const o = server.clientOptions();
    expect(o).toMatchObject({ host: '127.0.0.1', port: server.port, username: userInfo().username, agent: false, sshConfig: false });
    expect(typeof o.privateKey).toBe('string');
  });

  it('runs exec in root with exit status, stdout and stderr', async () => {
    const r = await ssh.exec('echo out; pwd; echo "$HOME"; echo err >&2; exit 7');
    expect(r).toEqual({ stdout: `out\n${server.root}\n${server.root}\n`, stderr: 'err\n', exitCode: 7, signal: null });
  });

  it('maps a command killed by a signal to exit-signal (RFC 4254 6.10)', async () => {
    const r = await ssh.exec('kill -USR1 $$');
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe('SIGUSR1');
  });

  it('feeds stdin and reports events', async () => {
    const seen: string[] = [];
    const f = ({ command }: { command: string }): void => {
      seen.push(command);
    };
    server.on('exec', f);
    const r = await ssh.exec('tr a-z A-Z', { stdin: 'hello\n' });
    server.off('exec', f);
    expect(r.stdout).toBe('HELLO\n');
    expect(seen).toEqual(['tr a-z A-Z']);
  });

  it('delivers a signal request to the running command (its process group)', async () => {
    const proc = await ssh.spawn('echo $$; exec sleep 30');
    const pid = await new Promise<number>((resolve) => proc.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    expect(alive(pid)).toBe(true);
    proc.signal('TERM');
    const end = await proc.exited;
    expect(end.signal).toBe('SIGTERM');
    expect(alive(pid)).toBe(false);
  });

  it('accepts env requests and runs shell sessions', async () => {
    const c = await rawClient(server);
    try {
      const r = await rawExec(c, 'echo "$TETHER_X"', { env: { TETHER_X: 'from-env' } });
      expect(r.out).toBe('from-env\n');
      const shell = await new Promise<string>((resolve, reject) => {
        c.shell(false, (err, ch) => {
          if (err) return reject(err);
          let out = '';
          ch.on('data', (d: Buffer) => (out += d.toString()));
          ch.on('close', () => resolve(out));
          ch.end('echo shell-ok\nexit\n');
        });
      });
      expect(shell).toContain('shell-ok');
    } finally {
      c.end();
    }
  });

  it(`gives a PTY through script(1) where it exists (here: ${findScript() ?? 'none'}), else refuses it`, async () => {
    const c = await rawClient(server);
    try {
      if (findScript() !== null) {
        const r = await rawExec(c, 'tty; echo "$TERM"; stty size', { pty: { term: 'xterm', rows: 33, cols: 101 } });
        expect(r.out).toMatch(/^\/dev\/pts\/\d+\r?\nxterm\r?\n33 101\r?\n/);
        expect(r.code).toBe(0);
      } else {
        await expect(rawExec(c, 'tty', { pty: true })).rejects.toThrow();
      }
    } finally {
      c.end();
    }
  });

  it('serves local (direct-tcpip) and remote (tcpip-forward) forwards', async () => {
    const echo = await echoServer();
    try {
      const local = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: echo.port });
      expect(await roundTrip(local.localPort, 'one')).toBe('echo:one');
      const remote = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localHost: '127.0.0.1', localPort: echo.port });
      expect(remote.remotePort).toBeGreaterThan(0);
      expect(await roundTrip(remote.remotePort, 'two')).toBe('echo:two');
      await remote.close();
      await expect(roundTrip(remote.remotePort, 'three', 2_000)).rejects.toThrow();
      await local.close();
    } finally {
      await echo.close();
    }
  });

  it('answers keepalive@openssh.com probes, so an idle link with a short keep-alive stays up', async () => {
    const idle = new SshClient({ ...server.clientOptions(), keepaliveIntervalMs: 100, keepaliveCountMax: 2 });
    let lost = 0;
    idle.on('disconnect', () => lost++);
    await idle.connect();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(lost).toBe(0);
    expect(idle.state).toBe('ready');
    expect(idle.health().keepaliveRtt?.count ?? 0).toBeGreaterThan(0);
    await idle.close();
  });

  it('never emitted an error for well-formed use', () => {
    expect(errors).toEqual([]);
  });
});

describe('in-process server: authentication and MaxSessions', () => {
  it('accepts password and keyboard-interactive, refuses a wrong password and an unknown key', async () => {
    const pair = generateEd25519();
    const other = generateEd25519();
    await using server = await startServer({
      users: [
        { username: 'alice', password: 's3cret' },
        { username: 'bob', authorizedKeys: [pair.public] },
      ],
    });
    const base = { ...server.clientOptions('alice'), connectTimeoutMs: 10_000, reconnect: false as const };
    expect(base.password).toBe('s3cret');
    {
      await using ok = new SshClient(base);
      await ok.connect();
      expect((await ok.exec('echo "$USER"')).stdout).toBe('alice\n');
    }
    {
      const { password: _pw, ...noPassword } = base;
      await using ki = new SshClient({ ...noPassword, keyboardInteractive: () => ['s3cret'] });
      await ki.connect();
      expect((await ki.exec('echo ki')).stdout).toBe('ki\n');
    }
    await expect(new SshClient({ ...base, password: 'wrong' }).connect()).rejects.toMatchObject({ code: 'ERR_SSH_AUTH' });
    {
      await using bob = new SshClient({ ...server.clientOptions('bob'), privateKey: pair.private, reconnect: false });
      await bob.connect();
    }
    await expect(new SshClient({ ...server.clientOptions('bob'), privateKey: other.private, reconnect: false }).connect()).rejects.toMatchObject({
      code: 'ERR_SSH_AUTH',
    });
    expect(() => server.clientOptions('nobody')).toThrow(/no user named "nobody"/);
  });

  it('refuses the session beyond maxSessions with reason 2, like sshd, and the client queues', async () => {
    await using server = await startServer({ maxSessions: 2 });
    const refused: string[] = [];
    server.on('channel-refused', ({ why }) => refused.push(why));
    const c = await rawClient(server);
    try {
      const open = (): Promise<ssh2.ClientChannel> =>
        new Promise((resolve, reject) => c.exec('sleep 5', (err, ch) => (err ? reject(err) : resolve(ch))));
      const a = await open();
      const b = await open();
      const third = await open().then(
        () => undefined,
        (e: { reason?: number; message: string }) => e,
      );
      expect(third?.reason).toBe(2);
      expect(refused).toEqual(['max-sessions']);
      expect(server.channels.filter((ch) => ch.type === 'session')).toHaveLength(2);
      a.close();
      b.close();
    } finally {
      c.end();
    }
    // SshClient with a larger limit than the server learns it and queues instead of failing.
    await using ssh = new SshClient({ ...server.clientOptions(), maxSessions: 6 });
    await ssh.connect();
    let most = 0;
    server.on('exec', () => (most = Math.max(most, server.channels.filter((ch) => ch.type === 'session').length)));
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => ssh.exec(`sleep 0.2; echo ${i}`)));
    expect(results.map((r) => r.stdout)).toEqual(['0\n', '1\n', '2\n', '3\n', '4\n', '5\n']);
    expect(most).toBeLessThanOrEqual(2);
  });

  it('rejects bad options with ERR_SSH_CONFIG naming the field', async () => {
    await expect(startServer({ maxSessions: 0 })).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', field: 'maxSessions' });
    await expect(startServer({ users: [{ username: 'x', authorizedKeys: ['not a key'] }] })).rejects.toMatchObject({
      code: 'ERR_SSH_CONFIG',
      field: 'users.0.authorizedKeys.0',
    });
    await expect(startServer({ root: '/nonexistent/tether' })).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', field: 'root' });
    await expect(startServer({ shell: '/nonexistent/sh' })).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG', field: 'shell' });
    await expect(startServer({ bogus: 1 } as never)).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG' });
  });

  it('keeps a given root on stop() and removes its own temp files', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'tether-given-root-'));
    try {
      const server = await startServer({ root, banner: 'hello banner\n' });
      const kh = server.knownHostsPath;
      const key = server.privateKeyPath;
      expect(key).toBeDefined();
      await server.stop();
      expect(existsSync(root)).toBe(true);
      expect(existsSync(kh)).toBe(false);
      expect(existsSync(key!)).toBe(false);
      const own = await startServer();
      const ownRoot = own.root;
      await own.stop();
      expect(existsSync(ownRoot)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('kills leftover commands on stop()', async () => {
    const server = await startServer();
    const ssh = new SshClient({ ...server.clientOptions(), reconnect: false });
    ssh.on('error', () => undefined);
    await ssh.connect();
    const proc = await ssh.spawn('echo $$; exec sleep 60');
    proc.exited.catch(() => undefined);
    const pid = await new Promise<number>((resolve) => proc.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    expect(alive(pid)).toBe(true);
    await server.stop();
    await ssh.close();
    expect(await waitFor(() => !alive(pid), 5_000)).toBe(true);
  });
});
