/**
 * Server quirks from the server matrix (issue 13 item 3), each against a real server or a
 * hostile one built on ssh2's `Server`:
 * - `compression: true` without ssh_config negotiates zlib (seen from sshd's own debug log);
 * - a server that never answers `tcpip-forward`: `forwardRemote()` fails `ERR_SSH_FORWARD` in time,
 *   and a late acceptance is cancelled;
 * - `forwarded-tcpip` opens reported for port 0 (asyncssh 2.10): carried to the one port-0
 *   forward, refused with a `warning` when ambiguous;
 * - one session per connection (tinysshd): a refused second session is a clear
 *   `ERR_SSH_CHANNEL_OPEN`.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshChannelOpenError, SshClient, SshError, type SshClientOptions, type SshConfigWarning } from '../../src/index.js';
import { clientOptions } from '../helpers/client.js';
import { useClients, waitFor } from '../helpers/common.js';
import { serverLogs, startTestServer, type TestServer } from '../helpers/servers.js';

const tracked = useClients();
function track(c: SshClient): SshClient {
  c.on('error', () => undefined);
  return tracked(c);
}

/** A TCP echo server on 127.0.0.1. */
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
  return {
    port: (srv.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of socks) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

describe('compression: true with sshConfig: false (OpenSSH sshd, LogLevel DEBUG1)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('openssh', { extra: { extraConfig: ['LogLevel DEBUG1'] } });
  }, 60_000);
  afterAll(async () => {
    await server?.remove();
  });

  /** The compression sshd chose for client->server in the connection of `port` (from its debug log). */
  async function negotiated(compression: boolean): Promise<string | undefined> {
    const ssh = track(new SshClient(clientOptions(server, { compression, reconnect: false })));
    await ssh.connect();
    expect((await ssh.exec('echo compressed')).stdout).toBe('compressed\n');
    await ssh.close();
    const lines = serverLogs(server).split('\n');
    const kex = lines.filter((l) => /kex: client->server cipher: \S+ MAC: \S+ compression: \S+/.test(l)).pop();
    return /compression: (\S+)/.exec(kex ?? '')?.[1];
  }

  it('negotiates zlib@openssh.com; without it, none', async () => {
    expect(await negotiated(true)).toBe('zlib@openssh.com');
    expect(await negotiated(false)).toBe('none');
  });
});

/** A hostile server on ssh2's `Server`: any login accepted; its behaviour per connection given by `onReady`. */
async function hostileServer(onReady: (conn: ssh2.Connection) => void): Promise<{ port: number; knownHosts: string; close: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-hostile-'));
  const keyPath = join(dir, 'host');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
  const conns = new Set<ssh2.Connection>();
  const srv = new ssh2.Server({ hostKeys: [readFileSync(keyPath)] }, (conn) => {
    conns.add(conn);
    conn.on('error', () => undefined);
    conn.on('close', () => conns.delete(conn));
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('ready', () => onReady(conn));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${readFileSync(`${keyPath}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
  return {
    port,
    knownHosts,
    close: async () => {
      for (const c of conns) c.end();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function hostileOptions(port: number, knownHosts: string, extra: Partial<SshClientOptions> = {}): SshClientOptions {
  return {
    host: '127.0.0.1',
    port,
    username: 'someone',
    password: 'anything',
    knownHostsFiles: [knownHosts],
    globalKnownHostsFiles: [],
    identityFiles: [],
    agent: false,
    sshConfig: false,
    reconnect: false,
    keepaliveIntervalMs: 0,
    ...extra,
  };
}

describe('forwardRemote() against a server that never answers tcpip-forward', () => {
  const requests: string[] = [];
  let late: Array<() => void> = [];
  let srv: Awaited<ReturnType<typeof hostileServer>>;
  beforeAll(async () => {
    srv = await hostileServer((conn) => {
      conn.on('request', (accept, _reject, name, info) => {
        requests.push(`${name}:${(info as { bindPort?: number }).bindPort ?? ''}`);
        if (name === 'tcpip-forward') {
          // Never answers now; the test may accept it late.
          late.push(() => accept?.(40_000));
          return;
        }
        accept?.();
      });
    });
  });
  afterAll(async () => {
    await srv.close();
  });

  it('rejects ERR_SSH_FORWARD after timeoutMs, and after connectTimeoutMs by default', async () => {
    const ssh = track(new SshClient(hostileOptions(srv.port, srv.knownHosts, { connectTimeoutMs: 3_000 })));
    await ssh.connect();
    const t0 = Date.now();
    const err = await ssh.forwardRemote({ remotePort: 0, localPort: 9, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_FORWARD');
    expect((err as SshError).message).toMatch(/did not answer .* within 300 ms/);
    // Default: connectTimeoutMs (3000 ms here; roomy enough for a loaded box to connect).
    const dflt = await ssh.forwardRemote({ remotePort: 0, localPort: 9 }).catch((e: unknown) => e);
    expect((dflt as SshError).code).toBe('ERR_SSH_FORWARD');
    expect((dflt as SshError).message).toMatch(/within 3000 ms/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(ssh.state).toBe('ready');
    expect(ssh.health().forwards).toEqual([]);
  });

  it('a late acceptance is cancelled on the server at once', async () => {
    late = [];
    requests.length = 0;
    const ssh = track(new SshClient(hostileOptions(srv.port, srv.knownHosts)));
    await ssh.connect();
    const err = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localPort: 9, timeoutMs: 200 }).catch((e: unknown) => e);
    expect((err as SshError).code).toBe('ERR_SSH_FORWARD');
    expect(late).toHaveLength(1);
    late[0]?.();
    expect(await waitFor(() => requests.includes('cancel-tcpip-forward:40000'), 5_000)).toBe(true);
  });
});

describe('forwarded-tcpip opens reported for port 0 (asyncssh 2.10 behaviour, on ssh2 Server)', () => {
  let next = 41_000;
  let conns: ssh2.Connection[] = [];
  let srv: Awaited<ReturnType<typeof hostileServer>>;
  beforeAll(async () => {
    srv = await hostileServer((conn) => {
      conns.push(conn);
      conn.on('request', (accept, _reject, name) => {
        // Binds nothing: answers with a made-up port; the test opens the channels itself.
        if (name === 'tcpip-forward') accept?.(next++);
        else accept?.();
      });
    });
  });
  afterAll(async () => {
    await srv.close();
  });

  /** Opens a forwarded-tcpip channel for 127.0.0.1:0 (as asyncssh does) and echoes `data` through it. */
  function openPortZero(conn: ssh2.Connection, data: string): Promise<string> {
    return new Promise((resolve) => {
      conn.forwardOut('127.0.0.1', 0, '127.0.0.1', 55555, (err, ch) => {
        if (err) return resolve(`refused: ${err.message}`);
        let got = '';
        ch.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.length >= data.length) {
            ch.close();
            resolve(got);
          }
        });
        ch.on('close', () => resolve(got));
        ch.write(data);
      });
    });
  }

  it('one port-0 forward: the connection is carried to it', async () => {
    conns = [];
    const echo = await echoServer();
    try {
      const ssh = track(new SshClient(hostileOptions(srv.port, srv.knownHosts)));
      const warnings: SshConfigWarning[] = [];
      ssh.on('warning', (w) => warnings.push(w));
      await ssh.connect();
      const fwd = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localPort: echo.port });
      expect(fwd.remotePort).toBeGreaterThanOrEqual(41_000);
      const conn = conns[0];
      if (!conn) throw new Error('no server connection');
      expect(await openPortZero(conn, 'hello through port 0')).toBe('hello through port 0');
      expect(fwd.stats().connectionsTotal).toBe(1);
      expect(warnings).toEqual([]);
      // Once it is closed, such opens are refused again.
      await fwd.close();
      expect(await openPortZero(conn, 'x')).toMatch(/^refused/);
    } finally {
      await echo.close();
    }
  });

  it('two port-0 forwards on the same address: refused, and a warning names the server bug', async () => {
    conns = [];
    const echo = await echoServer();
    try {
      const ssh = track(new SshClient(hostileOptions(srv.port, srv.knownHosts)));
      const warnings: SshConfigWarning[] = [];
      ssh.on('warning', (w) => warnings.push(w));
      await ssh.connect();
      const a = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localPort: echo.port });
      const b = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localPort: echo.port });
      const conn = conns[0];
      if (!conn) throw new Error('no server connection');
      expect(await openPortZero(conn, 'ambiguous')).toMatch(/^refused/);
      expect(a.stats().connectionsTotal + b.stats().connectionsTotal).toBe(0);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.keyword).toBe('forwarded-tcpip');
      expect(warnings[0]?.message).toMatch(/127\.0\.0\.1:0 instead of the port it bound \(a server bug, e\.g\. asyncssh/);
      // After one of them closes, the other owns such opens unambiguously.
      await b.close();
      expect(await openPortZero(conn, 'now unambiguous')).toBe('now unambiguous');
      expect(a.stats().connectionsTotal).toBe(1);
    } finally {
      await echo.close();
    }
  });
});

describe('one session channel per connection (tinysshd)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('tinysshd');
  }, 60_000);
  afterAll(async () => {
    await server?.remove();
  });

  it('a second session while one is open: ERR_SSH_CHANNEL_OPEN naming the cause', async () => {
    expect(server.traits.sessionsPerConnection).toBe(1);
    const ssh = track(new SshClient(clientOptions(server, { reconnect: { minDelayMs: 50, maxDelayMs: 200 } })));
    await ssh.connect();
    const held = await ssh.spawn('sleep 1; echo held');
    const err = await ssh.exec('true').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshChannelOpenError);
    expect((err as SshChannelOpenError).code).toBe('ERR_SSH_CHANNEL_OPEN');
    expect((err as SshChannelOpenError).reason).toBe(1);
    expect((err as Error).message).toMatch(/allows one session channel per connection .*only one 'session' channel allowed.*close the open exec/);
    const out: Buffer[] = [];
    held.stdout.on('data', (b: Buffer) => out.push(b));
    expect((await held.exited).exitCode).toBe(0);
    expect(Buffer.concat(out).toString()).toBe('held\n');
  });
});

describe('Dropbear 2022.83 under concurrent session opens: the maxSessions workaround', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('dropbear');
  }, 60_000);
  afterAll(async () => {
    await server?.remove();
  });

  it('40 concurrent execs with maxSessions: 1 all succeed', async () => {
    const ssh = track(new SshClient(clientOptions(server, { maxSessions: 1 })));
    await ssh.connect();
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => ssh.exec(['echo', String(i)])));
    expect(rs.map((r) => r.stdout)).toEqual(Array.from({ length: 40 }, (_, i) => `${i}\n`));
  });
});
