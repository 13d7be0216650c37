/**
 * Conformance suite: the same checks against every server kind (test/helpers/servers.ts):
 * OpenSSH sshd, Dropbear, asyncssh, tinysshd, and ssh-tether's own in-process server
 * (`ssh-tether/server`), which is held to sshd's behaviour where it claims it. Tests branch on the server's `traits`
 * (SFTP, forwards, sessions per connection), never on its kind. A server without a feature is
 * checked for a clean, typed failure instead.
 *
 * Exec kill/timeout conformance lives with the exec tests, not here.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, SshExecError, type SshClientOptions } from '../../src/index.js';
import { clientOptions } from '../helpers/client.js';
import { useClients, waitFor } from '../helpers/common.js';
import { startTestServer, type ServerKind, type TestServer } from '../helpers/servers.js';

const KINDS: ServerKind[] = ['openssh', 'dropbear', 'asyncssh', 'tinysshd', 'inproc'];

/** A TCP echo server on 127.0.0.1 (the forward target). */
async function echoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => undefined);
    s.on('close', () => socks.delete(s));
    s.pipe(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  if (addr === null || typeof addr === 'string') throw new Error('echo server has no port');
  return {
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of socks) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

/** Sends `data` to 127.0.0.1:`port` and collects what comes back until `data.length` bytes or close (bounded). */
function roundTrip(port: number, data: Buffer, timeoutMs = 10_000): Promise<{ back: Buffer; closedEarly: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let len = 0;
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (closedEarly: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ back: Buffer.concat(chunks), closedEarly });
    };
    const timer = setTimeout(() => done(true), timeoutMs);
    sock.on('error', () => undefined);
    sock.on('connect', () => sock.write(data));
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      len += c.length;
      if (len >= data.length) done(false);
    });
    sock.on('close', () => done(true));
  });
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.each(KINDS)('conformance: %s', (kind) => {
  let server: TestServer;
  /** Every client a test makes is closed after it. */
  const track = useClients();

  beforeAll(async () => {
    server = await startTestServer(kind);
  }, 60_000);

  afterAll(async () => {
    await server?.remove();
  });

  function client(overrides: Partial<SshClientOptions> = {}): SshClient {
    const c = new SshClient(clientOptions(server, { reconnect: { minDelayMs: 100, maxDelayMs: 500 }, connectTimeoutMs: 10_000, ...overrides }));
    c.on('error', () => undefined);
    return track(c);
  }

  /**
   * Runs `fn` with a connected client. A server that allows one session per connection (and
   * closes the connection with it) gets a fresh client per call; others share one per test.
   */
  let shared: SshClient | undefined;
  afterEach(() => {
    shared = undefined;
  });
  async function withSession<T>(fn: (c: SshClient) => Promise<T>): Promise<T> {
    if (server.traits.sessionsPerConnection === 1) {
      const c = client();
      await c.connect();
      try {
        return await fn(c);
      } finally {
        await c.close();
      }
    }
    if (!shared) {
      shared = client();
      await shared.connect();
    }
    return fn(shared);
  }

  it('connects, checks the host key, and rejects a changed one', async () => {
    const c = client();
    await c.connect();
    expect(c.state).toBe('ready');
    await c.close();
    const dir = mkdtempSync(join(tmpdir(), 'tether-conf-kh-'));
    try {
      const kh = join(dir, 'known_hosts');
      // A different ed25519 key for the same [host]:port.
      writeFileSync(kh, `[${server.host}]:${server.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMx7mUtrKXYxCQQZV3Zk2oBZ0IkX6e6b8U8i1RdbkDyd\n`);
      const bad = client({ knownHostsFiles: [kh], reconnect: false });
      const err = await bad.connect().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compression: true connects and runs commands (zlib where the server offers it, else none)', async () => {
    const c = client({ compression: true });
    await c.connect();
    const data = 'x'.repeat(100_000);
    const r = await c.exec('cat', { stdin: data });
    expect(r.stdout).toBe(data);
  });

  it('exec: stdout, stderr and exit codes', async () => {
    const r = await withSession((c) => c.exec('echo out; echo err >&2; exit 3'));
    expect(r).toEqual({ stdout: 'out\n', stderr: 'err\n', exitCode: 3, signal: null });
    const ok = await withSession((c) => c.exec('true'));
    expect(ok.exitCode).toBe(0);
    const err = await withSession((c) => c.exec('exit 7', { check: true })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshExecError);
    expect((err as SshExecError).code).toBe('ERR_SSH_EXIT');
    expect((err as SshExecError).result.exitCode).toBe(7);
  });

  it('exec: a command killed by a signal reports the signal, not an exit code', async () => {
    const r = await withSession((c) => c.exec('kill -KILL $$'));
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe('SIGKILL');
  });

  it('exec: stdin (small and 2 MiB) reaches the command', async () => {
    const small = await withSession((c) => c.exec('cat', { stdin: 'hello\nworld\n' }));
    expect(small.stdout).toBe('hello\nworld\n');
    const big = randomBytes(2 * 1024 * 1024);
    const r = await withSession((c) => c.exec('sha256sum', { stdin: big }));
    expect(r.stdout.split(' ')[0]).toBe(sha256(big));
  });

  it('exec: large stdout (4 MiB) arrives whole', async () => {
    const r = await withSession((c) => c.exec('head -c 4194304 /dev/zero', { encoding: 'buffer' }));
    expect(r.stdout.length).toBe(4 * 1024 * 1024);
    expect(r.stdout.every((b) => b === 0)).toBe(true);
  });

  it('exec: argv is quoted for the remote shell', async () => {
    const args = ['a b', "it's", '$HOME', '*', '"q"', 'back\\slash', 'tab\there', ''];
    const r = await withSession((c) => c.exec(['printf', '[%s]\\n', ...args]));
    expect(r.stdout).toBe(args.map((a) => `[${a}]\n`).join(''));
  });

  it('exec: env and cwd', async () => {
    const r = await withSession((c) => c.exec('printf "%s|%s|" "$TETHER_A" "$TETHER_B"; pwd', { env: { TETHER_A: 'one two', TETHER_B: "x'y" }, cwd: '/tmp' }));
    expect(r.stdout).toBe("one two|x'y|/tmp\n");
    const home = await withSession((c) => c.exec('pwd'));
    expect(home.stdout).toBe(`${server.homeDir}\n`);
  });

  it('spawn: streams stdin to stdout and reports the exit', async () => {
    await withSession(async (c) => {
      const p = await c.spawn('cat; echo done >&2; exit 5');
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      p.stdout.on('data', (b: Buffer) => out.push(b));
      p.stderr.on('data', (b: Buffer) => err.push(b));
      p.stdin.write('line 1\n');
      p.stdin.end('line 2\n');
      const r = await p.exited;
      expect(r.exitCode).toBe(5);
      expect(await waitFor(() => Buffer.concat(out).toString() === 'line 1\nline 2\n', 5_000)).toBe(true);
      expect(await waitFor(() => Buffer.concat(err).toString() === 'done\n', 5_000)).toBe(true);
    });
  });

  it('keep-alive: probes on an idle link are answered and the link stays up', async () => {
    const c = client({ keepaliveIntervalMs: 200, keepaliveCountMax: 2 });
    const lost: string[] = [];
    c.on('disconnect', ({ cause }) => lost.push(cause.code));
    await c.connect();
    const before = c.health();
    // Idle for several intervals, longer than interval x (countMax + 1).
    await new Promise((r) => setTimeout(r, 1_500));
    const after = c.health();
    expect(lost).toEqual([]);
    expect(c.state).toBe('ready');
    expect(after.bytesOut).toBeGreaterThan(before.bytesOut);
    expect(after.bytesIn).toBeGreaterThan(before.bytesIn);
  });

  it('reconnect: a command in flight fails ERR_SSH_CONNECTION_LOST when the server stops; the client is back after it starts', async () => {
    const c = client({ keepaliveIntervalMs: 300, keepaliveCountMax: 2 });
    await c.connect();
    const running = c.exec('echo started; sleep 30').catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 300));
    await server.stop();
    const err = await running;
    expect(err).toBeInstanceOf(SshExecError);
    expect((err as SshExecError).code).toBe('ERR_SSH_CONNECTION_LOST');
    expect((err as SshExecError).result.exitCode).toBeNull();
    await server.start();
    expect(await waitFor(() => c.state === 'ready', 15_000)).toBe(true);
    expect((await c.exec('echo back')).stdout).toBe('back\n');
    expect(c.health().reconnects).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('SFTP: round trip of files and directories, cross-checked by exec', async () => {
    const c = client();
    await c.connect();
    if (!server.traits.sftp) {
      const err = await c.sftp().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SshError);
      return;
    }
    const sftp = await c.sftp();
    const dir = `${server.homeDir}/conf-${kind}-${Date.now()}`;
    const local = mkdtempSync(join(tmpdir(), 'tether-conf-sftp-'));
    try {
      await sftp.mkdir(dir);
      const data = randomBytes(3 * 1024 * 1024 + 17);
      await sftp.writeFile(`${dir}/a.bin`, data);
      expect((await sftp.stat(`${dir}/a.bin`)).size).toBe(data.length);
      expect(sha256(await sftp.readFile(`${dir}/a.bin`))).toBe(sha256(data));
      // put / get through local files
      const src = join(local, 'src.bin');
      writeFileSync(src, randomBytes(1024 * 1024 + 3));
      await sftp.put(src, `${dir}/b.bin`);
      await sftp.get(`${dir}/b.bin`, join(local, 'back.bin'));
      expect(sha256(readFileSync(join(local, 'back.bin')))).toBe(sha256(readFileSync(src)));
      await sftp.rename(`${dir}/b.bin`, `${dir}/c.bin`);
      const names = (await sftp.list(dir)).map((e) => e.name).sort();
      expect(names).toEqual(['a.bin', 'c.bin']);
      // The server's own view of the file, through a command (its own connection if need be).
      const remoteSum = await withSession((x) => x.exec(['sha256sum', `${dir}/a.bin`]));
      expect(remoteSum.stdout.split(' ')[0]).toBe(sha256(data));
      await sftp.unlink(`${dir}/a.bin`);
      expect(await sftp.exists(`${dir}/a.bin`)).toBe(false);
      await sftp.rm(dir, { recursive: true });
      expect(await sftp.exists(dir)).toBe(false);
    } finally {
      rmSync(local, { recursive: true, force: true });
      await sftp.close();
    }
  });

  it('local forward (direct-tcpip): bytes round-trip, or the connection is refused cleanly', async () => {
    const echo = await echoServer();
    try {
      const c = client();
      await c.connect();
      const fwd = await c.forwardLocal({ localPort: 0, remoteHost: '127.0.0.1', remotePort: echo.port });
      const data = randomBytes(256 * 1024);
      const r = await roundTrip(fwd.localPort, data);
      if (server.traits.localForward) {
        expect(r.closedEarly).toBe(false);
        expect(sha256(r.back)).toBe(sha256(data));
        expect(fwd.stats().connectionsTotal).toBe(1);
      } else {
        expect(r.back.length).toBe(0);
        expect(r.closedEarly).toBe(true);
      }
      await fwd.close();
      expect(c.state).toBe('ready');
    } finally {
      await echo.close();
    }
  });

  it('remote forward (tcpip-forward) on port 0: bytes round-trip, or ERR_SSH_FORWARD within its timeout', async () => {
    const echo = await echoServer();
    try {
      const c = client();
      await c.connect();
      if (!server.traits.remoteForward) {
        const err = await c.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localPort: echo.port, timeoutMs: 1_000 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SshError);
        expect((err as SshError).code).toBe('ERR_SSH_FORWARD');
        return;
      }
      const fwd = await c.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localPort: echo.port });
      expect(fwd.remotePort).toBeGreaterThan(0);
      const data = randomBytes(128 * 1024);
      const r = await roundTrip(fwd.remotePort, data);
      expect(r.closedEarly).toBe(false);
      expect(sha256(r.back)).toBe(sha256(data));
      await fwd.close();
    } finally {
      await echo.close();
    }
  });
});
