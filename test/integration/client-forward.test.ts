import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { SshClient, SshError, type ForwardEvent } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { describeSshd, freePort, startSshd, type SshdHandle } from '../helpers/sshd.js';

const info = sharedSshd();

/** A loopback echo server that prefixes replies, so a round trip proves the path. */
async function echoServer(prefix: string): Promise<net.Server> {
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (d) => s.write(`${prefix}${d.toString()}`));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return srv;
}
function portOf(srv: net.Server): number {
  return (srv.address() as net.AddressInfo).port;
}
async function roundTrip(port: number, msg: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error('round trip timed out'));
    }, 10_000);
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on('data', (d) => {
      clearTimeout(t);
      s.destroy();
      resolve(d.toString());
    });
    s.write(msg);
  });
}

const clients: SshClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

describe('forwards through SshClient', () => {
  let echo: net.Server;
  let proxy: FaultProxy;
  // The server must notice the dead session to free its remote-forward port (as with autossh,
  // OpenSSH needs ClientAliveInterval for that); this one does, after ~2 s.
  let server: SshdHandle;
  beforeAll(async () => {
    echo = await echoServer('echo:');
    server = await startSshd({ extraConfig: ['ClientAliveInterval 1', 'ClientAliveCountMax 2'] });
    proxy = await FaultProxy.start({ host: server.host, port: server.port });
  });
  afterAll(async () => {
    await proxy.close();
    await server.remove();
    await new Promise((r) => echo.close(r));
  });

  it('local and remote forwards carry traffic, show in health(), and survive a dead link on the same ports', async () => {
    proxy.resume();
    const ssh = new SshClient(clientOptions(describeSshd(server), { keepaliveIntervalMs: 300, keepaliveCountMax: 2, connectTimeoutMs: 1_500, reconnect: { minDelayMs: 50, maxDelayMs: 300 } }, proxy));
    clients.push(ssh);
    const events: string[] = [];
    ssh.on('forward', (ev: ForwardEvent) => events.push(`${ev.forward.type}:${ev.state}`));
    const local = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: portOf(echo) });
    expect(local.localHost).toBe('127.0.0.1');
    expect(await roundTrip(local.localPort, 'one')).toBe('echo:one');
    const remotePort = await freePort();
    const remote = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort, localHost: '127.0.0.1', localPort: portOf(echo) });
    expect(remote.remotePort).toBe(remotePort);
    expect(await roundTrip(remotePort, 'two')).toBe('echo:two');
    const h = ssh.health().forwards;
    expect(h.map((f) => f.type).sort()).toEqual(['local', 'remote']);
    expect(h.find((f) => f.type === 'local')!.connectionsTotal).toBe(1);

    proxy.blackhole();
    expect(await waitFor(() => ssh.state === 'reconnecting', 5_000)).toBe(true);
    // a connection accepted while the link is down waits for it, then is carried
    const waiting = roundTrip(local.localPort, 'three');
    await new Promise((r) => setTimeout(r, 200));
    proxy.resume();
    expect(await waiting).toBe('echo:three');
    expect(await waitFor(() => remote.state === 'up', 20_000)).toBe(true);
    expect(remote.remotePort).toBe(remotePort);
    expect(await roundTrip(remotePort, 'four')).toBe('echo:four');
    expect(events).toContain('remote:down');
    expect(events.filter((e) => e === 'remote:up').length).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('a dynamic (SOCKS5) forward is created through the client', async () => {
    const ssh = new SshClient(clientOptions(info));
    clients.push(ssh);
    const socks = await ssh.forwardDynamic();
    const { SocksClient } = await import('socks');
    const { socket } = await SocksClient.createConnection({
      proxy: { host: socks.localHost, port: socks.localPort, type: 5 },
      command: 'connect',
      destination: { host: '127.0.0.1', port: portOf(echo) },
    });
    const reply = await new Promise<string>((resolve) => {
      socket.once('data', (d: Buffer) => resolve(d.toString()));
      socket.write('five');
    });
    socket.destroy();
    expect(reply).toBe('echo:five');
  });

  it('declared forwards are set up by connect(); with ExitOnForwardFailure a failing one rejects ERR_SSH_FORWARD and leaves nothing bound', async () => {
    const port = await freePort();
    const ok = new SshClient(clientOptions(info, { forwards: [{ type: 'local', localPort: port, remoteHost: '127.0.0.1', remotePort: portOf(echo) }] }));
    clients.push(ok);
    await ok.connect();
    expect(await roundTrip(port, 'six')).toBe('echo:six');

    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const free = await freePort();
    const bad = new SshClient(
      clientOptions(info, {
        forwards: [
          { type: 'local', localPort: free, remoteHost: '127.0.0.1', remotePort: portOf(echo) },
          { type: 'local', localPort: portOf(busy), remoteHost: '127.0.0.1', remotePort: portOf(echo) },
        ],
      }),
    );
    clients.push(bad);
    const err = (await bad.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_FORWARD');
    // the first forward was closed again: its port can be bound
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(free, '127.0.0.1', resolve);
    });
    await new Promise((r) => probe.close(r));
    await new Promise((r) => busy.close(r));
  });

  it('bad forward options: ERR_SSH_CONFIG in the client options, ERR_SSH_INVALID_ARG at the call, naming the field', async () => {
    expect(() => new SshClient(clientOptions(info, { forwards: [{ type: 'local', localPort: 70000, remoteHost: 'x', remotePort: 1 }] }))).toThrow(/forwards\.0\.localPort/);
    const ssh = new SshClient(clientOptions(info));
    clients.push(ssh);
    await expect(ssh.forwardLocal({ localPort: -1, remoteHost: 'x', remotePort: 1 })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'localPort' });
  });
});
