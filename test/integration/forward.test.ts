// Local, remote and dynamic forwards against the shared real sshd (via RawLinkProvider).
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { SocksClient } from 'socks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedSshd } from '../helpers/shared.js';
import type { RawLinkProvider } from '../helpers/raw-link.js';
import { SshError, SshInvalidArgError } from '../../src/errors.js';
import type { ForwardManager } from '../../src/forward/index.js';
import { canBind, connect, dataServer, echoServer, exchange, httpServer, MiB, roundTrip, setup, waitFor } from './forward-util.js';

let provider: RawLinkProvider;
let manager: ForwardManager;

beforeAll(() => {
  const info = sharedSshd();
  ({ provider, manager } = setup(info));
});
afterAll(async () => {
  await manager.closeAll();
  await provider.close();
});

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A raw SOCKS5 CONNECT (no auth); resolves with the reply code. */
function socksConnectRaw(port: number, host: string, dstPort: number): Promise<{ rep: number; sock: net.Socket }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    sock.on('error', reject);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 2 + 10) {
        sock.removeAllListeners('data');
        resolve({ rep: buf[3]!, sock });
      }
    });
    const name = Buffer.from(host);
    sock.write(Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([dstPort >> 8, dstPort & 255])]));
  });
}

describe('local forward', () => {
  it('carries 64 MiB each way, byte-exact, on a port assigned from 0, bound to 127.0.0.1', async () => {
    const target = await dataServer(64 * MiB);
    await using fwd = await manager.forwardLocal({ remoteHost: '127.0.0.1', remotePort: target.port });
    expect(fwd.localHost).toBe('127.0.0.1');
    expect(fwd.localPort).toBeGreaterThan(0);
    const sock = await connect(fwd.localPort);
    const mine = await exchange(sock, 64 * MiB);
    const theirs = await target.connections[0]!;
    expect(theirs.receivedBytes).toBe(64 * MiB);
    expect(theirs.received).toBe(mine.sent);
    expect(mine.receivedBytes).toBe(64 * MiB);
    expect(mine.received).toBe(theirs.sent);
    await waitFor(() => fwd.stats().connectionsActive === 0, 10_000, 'connection closed');
    expect(fwd.stats()).toEqual({ connectionsTotal: 1, connectionsActive: 0, bytesIn: 64 * MiB, bytesOut: 64 * MiB });
    await target.close();
  }, 60_000);

  it('close() frees the port at once and closes open connections', async () => {
    const echo = await echoServer();
    const fwd = await manager.forwardLocal({ remotePort: echo.port });
    expect(await roundTrip(fwd.localPort, 'hello')).toBe('hello');
    const open = await connect(fwd.localPort);
    const closed = new Promise<void>((r) => {
      open.once('end', () => r());
      open.once('close', () => r());
    });
    open.on('error', () => undefined);
    expect(manager.list()).toContain(fwd);
    await fwd.close();
    expect(fwd.closed).toBe(true);
    expect(manager.list()).not.toContain(fwd);
    expect(await canBind(fwd.localPort)).toBe(true);
    await closed;
    open.destroy();
    await fwd.close(); // idempotent
    await echo.close();
  });

  it('fails with ERR_SSH_FORWARD (cause EADDRINUSE) when the port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    const err = await manager.forwardLocal({ localPort: port, remotePort: 22 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_FORWARD');
    expect(((err as SshError).cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    await new Promise<void>((r) => blocker.close(() => r()));
  });

  it('rejects invalid ports with ERR_SSH_INVALID_ARG naming the field', async () => {
    for (const bad of [-1, 65536, 1.5]) {
      const err = await manager.forwardLocal({ localPort: bad, remotePort: 80 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SshInvalidArgError);
      expect((err as SshInvalidArgError).field).toBe('localPort');
    }
    await expect(manager.forwardRemote({ localPort: 70000 })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'localPort' });
    await expect(manager.forwardDynamic({ localPort: -5 })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'localPort' });
    await expect(manager.forwardRemote({ localPort: 1, timeoutMs: 0 })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'timeoutMs' });
  });

  it('closes the accepted connection when the server cannot connect to the target', async () => {
    const port = await new Promise<number>((r) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => r(p));
      });
    });
    await using fwd = await manager.forwardLocal({ remoteHost: '127.0.0.1', remotePort: port });
    // Closed without data: a clean EOF, or a reset when our byte was still unread.
    const got = await roundTrip(fwd.localPort, 'x').catch((e: NodeJS.ErrnoException) => e.code);
    expect(['', 'ECONNRESET']).toContain(got);
    await waitFor(() => fwd.stats().connectionsActive === 0);
  });

  it('forwards to a Unix socket on the server (direct-streamlocal)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fwd-unix-'));
    chmodSync(dir, 0o755);
    const sockPath = path.join(dir, 'echo.sock');
    const server = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(sockPath, r));
    chmodSync(sockPath, 0o777); // the login user (not root) connects to it
    try {
      await using fwd = await manager.forwardLocal({ remotePath: sockPath });
      expect(fwd.remotePath).toBe(sockPath);
      expect(await roundTrip(fwd.localPort, 'via unix socket')).toBe('via unix socket');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('remote forward', () => {
  it('carries 64 MiB each way on the port the server bound (0 asked)', async () => {
    const target = await dataServer(64 * MiB);
    await using fwd = await manager.forwardRemote({ remoteHost: '127.0.0.1', localPort: target.port });
    expect(fwd.state).toBe('up');
    expect(fwd.remotePort).toBeGreaterThan(1024);
    const sock = await connect(fwd.remotePort);
    const mine = await exchange(sock, 64 * MiB);
    const theirs = await target.connections[0]!;
    expect(theirs.received).toBe(mine.sent);
    expect(mine.received).toBe(theirs.sent);
    expect(mine.receivedBytes).toBe(64 * MiB);
    await waitFor(() => fwd.stats().connectionsActive === 0, 10_000, 'connection closed');
    expect(fwd.stats()).toMatchObject({ connectionsTotal: 1, bytesIn: 64 * MiB, bytesOut: 64 * MiB });
    await target.close();
  }, 60_000);

  it('close() cancels the forward on the server', async () => {
    const echo = await echoServer();
    const fwd = await manager.forwardRemote({ remoteHost: '127.0.0.1', localPort: echo.port });
    expect(await roundTrip(fwd.remotePort, 'ping')).toBe('ping');
    await fwd.close();
    expect(fwd.state).toBe('closed');
    // sshd closed its listener: the port no longer answers.
    await expect(roundTrip(fwd.remotePort, 'ping', '127.0.0.1', 3_000)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await echo.close();
  });

  it('forwards from a Unix socket on the server (streamlocal-forward)', async () => {
    const info = sharedSshd();
    const sockPath = path.join(info.homeDir, `fwd-${process.pid}-${Date.now()}.sock`);
    const echo = await echoServer();
    try {
      await using fwd = await manager.forwardRemote({ remotePath: sockPath, localPort: echo.port });
      expect(fwd.remotePath).toBe(sockPath);
      const got = await new Promise<string>((resolve, reject) => {
        const s = net.connect(sockPath);
        let out = '';
        s.on('error', reject);
        s.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.length >= 5) s.end();
        });
        s.on('close', () => resolve(out));
        s.write('hello');
      });
      expect(got).toBe('hello');
    } finally {
      rmSync(sockPath, { force: true });
      await echo.close();
    }
  });
});

describe('dynamic forward (SOCKS5)', () => {
  it('carries 64 MiB each way through the socks npm client, byte-exact', async () => {
    const target = await dataServer(64 * MiB);
    await using fwd = await manager.forwardDynamic({});
    expect(fwd.localPort).toBeGreaterThan(0);
    const { socket } = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port: fwd.localPort, type: 5 },
      command: 'connect',
      destination: { host: '127.0.0.1', port: target.port },
      timeout: 10_000,
    });
    socket.allowHalfOpen = true;
    const mine = await exchange(socket, 64 * MiB);
    const theirs = await target.connections[0]!;
    expect(theirs.received).toBe(mine.sent);
    expect(mine.received).toBe(theirs.sent);
    await waitFor(() => fwd.stats().connectionsActive === 0, 10_000, 'connection closed');
    expect(fwd.stats()).toMatchObject({ connectionsTotal: 1, bytesIn: 64 * MiB, bytesOut: 64 * MiB });
    await target.close();
  }, 60_000);

  it('serves curl --socks5-hostname with a domain name and an IPv6 literal', async () => {
    const v4 = await httpServer('127.0.0.1');
    const v6 = await httpServer('::1');
    await using fwd = await manager.forwardDynamic({});
    const proxy = `127.0.0.1:${fwd.localPort}`;
    const byName = await curl(['--socks5-hostname', proxy, `http://localhost:${v4.port}/name`]);
    // 'localhost' is resolved by the server; either address family may be tried first.
    expect(byName.stderr).toBe('');
    expect(byName.stdout).toBe('hello from 127.0.0.1 /name');
    const byV6 = await curl(['--socks5-hostname', proxy, `http://[::1]:${v6.port}/v6`]);
    expect(byV6.stdout).toBe('hello from ::1 /v6');
    // The socks npm client with an IPv6 destination (ATYP 4).
    const { socket } = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port: fwd.localPort, type: 5 },
      command: 'connect',
      destination: { host: '::1', port: v6.port },
      timeout: 10_000,
    });
    const body = await new Promise<string>((resolve) => {
      let out = '';
      socket.on('data', (c: Buffer) => (out += c.toString()));
      socket.on('close', () => resolve(out));
      socket.write('GET /npm HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(body).toContain('hello from ::1 /npm');
    await v4.close();
    await v6.close();
  });

  it('answers 0x05 at once for a refused target', async () => {
    const port = await new Promise<number>((r) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => r(p));
      });
    });
    await using fwd = await manager.forwardDynamic({});
    const { rep, sock } = await socksConnectRaw(fwd.localPort, '127.0.0.1', port);
    sock.destroy();
    expect(rep).toBe(0x05);
    const r = await curl(['--socks5-hostname', `127.0.0.1:${fwd.localPort}`, `http://127.0.0.1:${port}/`]);
    expect(r.code).not.toBe(0);
  });

  it('requires username/password when auth is set (RFC 1929)', async () => {
    const echo = await echoServer();
    await using fwd = await manager.forwardDynamic({ auth: { username: 'alice', password: 'pa55' } });
    const ok = await curl(['--socks5-hostname', `127.0.0.1:${fwd.localPort}`, '--proxy-user', 'alice:pa55', `telnet://127.0.0.1:${echo.port}`, '--max-time', '1']);
    // telnet:// with no stdin data: curl connects then times out (28) - a refusal would be 97.
    expect([0, 28]).toContain(ok.code);
    const bad = await curl(['--socks5-hostname', `127.0.0.1:${fwd.localPort}`, '--proxy-user', 'alice:nope', `http://127.0.0.1:${echo.port}/`]);
    expect(bad.code).toBe(97);
    expect(String(fwd)).not.toContain('pa55');
    await echo.close();
  });

  it('carries 200 concurrent SOCKS connections', async () => {
    const echo = await echoServer();
    await using fwd = await manager.forwardDynamic({});
    const n = 200;
    const conns = await Promise.all(
      Array.from({ length: n }, () =>
        SocksClient.createConnection({
          proxy: { host: '127.0.0.1', port: fwd.localPort, type: 5 },
          command: 'connect',
          destination: { host: '127.0.0.1', port: echo.port },
          timeout: 20_000,
        }),
      ),
    );
    expect(fwd.stats().connectionsActive).toBe(n);
    const replies = await Promise.all(
      conns.map(
        ({ socket }, i) =>
          new Promise<string>((resolve) => {
            const msg = `message ${i};`;
            let out = '';
            socket.on('data', (c: Buffer) => {
              out += c.toString();
              if (out.length >= msg.length) resolve(out);
            });
            socket.write(msg);
          }),
      ),
    );
    replies.forEach((r, i) => expect(r).toBe(`message ${i};`));
    for (const { socket } of conns) socket.destroy();
    await waitFor(() => fwd.stats().connectionsActive === 0, 10_000, 'all closed');
    expect(fwd.stats().connectionsTotal).toBe(n);
    await echo.close();
  }, 60_000);

  it('closes connections beyond maxSocksConnections', async () => {
    const { provider: p2, manager: m2 } = setup(sharedSshd(), { maxSocksConnections: 2 });
    try {
      const echo = await echoServer();
      const fwd = await m2.forwardDynamic({});
      const open = await Promise.all(
        [0, 1].map(() =>
          SocksClient.createConnection({
            proxy: { host: '127.0.0.1', port: fwd.localPort, type: 5 },
            command: 'connect',
            destination: { host: '127.0.0.1', port: echo.port },
            timeout: 10_000,
          }),
        ),
      );
      await expect(
        SocksClient.createConnection({
          proxy: { host: '127.0.0.1', port: fwd.localPort, type: 5 },
          command: 'connect',
          destination: { host: '127.0.0.1', port: echo.port },
          timeout: 10_000,
        }),
      ).rejects.toThrow();
      expect(fwd.rejectedConnections).toBe(1);
      for (const { socket } of open) socket.destroy();
      await echo.close();
    } finally {
      await m2.closeAll();
      await p2.close();
    }
  });

  it('close() frees the port at once', async () => {
    const fwd = await manager.forwardDynamic({});
    await fwd.close();
    expect(await canBind(fwd.localPort)).toBe(true);
  });
});

describe('backpressure', () => {
  it('keeps memory bounded while a reader stops reading for 10 s (both directions)', async () => {
    // Download: the target sends without end; the local client does not read.
    // Upload: the client sends without end; the target does not read.
    const sources: Readable[] = [];
    const counted = { produced: 0, uploaded: 0 };
    const endless = (key: 'produced' | 'uploaded'): Readable => {
      const r = new Readable({
        highWaterMark: 256 * 1024,
        read() {
          counted[key] += 256 * 1024;
          this.push(Buffer.alloc(256 * 1024, 7));
        },
      });
      sources.push(r);
      return r;
    };
    const pushers = new Set<net.Socket>();
    const target = net.createServer((s) => {
      pushers.add(s);
      s.on('error', () => undefined);
      endless('produced').pipe(s);
      s.pause(); // never reads what the client uploads
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const port = (target.address() as net.AddressInfo).port;
    await using fwd = await manager.forwardLocal({ remoteHost: '127.0.0.1', remotePort: port });
    const client = await connect(fwd.localPort);
    client.pause(); // never read
    client.on('error', () => undefined);
    const up = endless('uploaded');
    up.pipe(client);

    global.gc?.();
    const before = process.memoryUsage();
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 1_000));
      const m = process.memoryUsage();
      samples.push(m.arrayBuffers + m.heapUsed - (before.arrayBuffers + before.heapUsed));
    }
    const after = process.memoryUsage();
    const stats = fwd.stats();
    for (const r of sources) r.destroy();
    client.destroy();
    for (const s of pushers) s.destroy();
    await new Promise<void>((r) => target.close(() => r()));

    // Each direction stalls after the SSH window (2 MiB) plus socket/stream buffers fill up.
    expect(stats.bytesOut).toBeLessThan(64 * MiB);
    expect(stats.bytesIn).toBeLessThan(64 * MiB);
    expect(counted.produced).toBeLessThan(64 * MiB);
    expect(counted.uploaded).toBeLessThan(64 * MiB);
    const growth = after.arrayBuffers + after.heapUsed - (before.arrayBuffers + before.heapUsed);
    expect(growth).toBeLessThan(64 * MiB);
    expect(Math.max(...samples)).toBeLessThan(64 * MiB);
  }, 30_000);
});
