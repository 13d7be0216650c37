// Each fault of the in-process server, seen through ssh-tether's client.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { SshClient, type SshClientOptions, type SshError } from '../../src/index.js';
import { startServer, type SshServer } from '../../src/server/index.js';
import { untilState } from './util.js';

const open: Array<{ close(): Promise<void> } | SshServer> = [];
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await ('faults' in x ? x.stop() : x.close());
});

async function setup(extra: Partial<SshClientOptions> = {}): Promise<{ server: SshServer; ssh: SshClient; causes: string[] }> {
  const server = await startServer();
  open.push(server);
  const ssh = new SshClient({
    ...server.clientOptions(),
    keepaliveIntervalMs: 300,
    keepaliveCountMax: 2,
    connectTimeoutMs: 3_000,
    reconnect: { minDelayMs: 50, maxDelayMs: 300 },
    ...extra,
  });
  open.push(ssh);
  const causes: string[] = [];
  ssh.on('disconnect', ({ cause }: { cause: SshError }) => causes.push(cause.code));
  ssh.on('error', () => undefined);
  await ssh.connect();
  return { server, ssh, causes };
}

describe('in-process server: faults', () => {
  it('blackhole(): no FIN/RST, the client detects the dead link by keep-alive; after resume() it reconnects', async () => {
    const { server, ssh, causes } = await setup();
    expect((await ssh.exec('echo before')).stdout).toBe('before\n');
    const reconnecting = untilState(ssh, 'reconnecting');
    server.faults.blackhole();
    expect(server.connections.map((c) => c.blackholed)).toEqual([true]);
    await reconnecting;
    expect(causes).toEqual(['ERR_SSH_KEEPALIVE_TIMEOUT']);
    // new connections are held too while the blackhole lasts
    const before = server.connections.length;
    const ready = untilState(ssh, 'ready');
    await new Promise((r) => setTimeout(r, 500));
    expect(ssh.state).toBe('reconnecting');
    expect(server.connections.length).toBeGreaterThanOrEqual(before);
    server.faults.resume();
    await ready;
    expect((await ssh.exec('echo after')).stdout).toBe('after\n');
  });

  it('reset(): every connection gets an RST and the client reconnects', async () => {
    const { server, ssh, causes } = await setup({ keepaliveIntervalMs: 0 });
    let connections = 0;
    server.on('connection', () => connections++);
    const ready = untilState(ssh, 'ready');
    server.faults.reset();
    await ready;
    expect(causes).toEqual(['ERR_SSH_CONNECTION_LOST']);
    expect(connections).toBeGreaterThanOrEqual(1);
    expect((await ssh.exec('echo again')).stdout).toBe('again\n');
  });

  it('refuseChannels(n): refused opens (reason 2) are retried by the client, and queued behind open sessions', async () => {
    const { server, ssh } = await setup();
    const refused: string[] = [];
    server.on('channel-refused', ({ why }) => refused.push(why));
    server.faults.refuseChannels(2);
    expect((await ssh.exec('echo through')).stdout).toBe('through\n');
    expect(refused).toEqual(['fault', 'fault']);
    // with two sessions open, a refusal makes the limiter wait for one to close
    const long = [ssh.exec('sleep 0.4; echo a'), ssh.exec('sleep 0.4; echo b')];
    await new Promise((r) => setTimeout(r, 150));
    server.faults.refuseChannels(1);
    const third = await ssh.exec('echo c');
    expect(third.stdout).toBe('c\n');
    expect((await Promise.all(long)).map((r) => r.stdout)).toEqual(['a\n', 'b\n']);
    expect(refused).toEqual(['fault', 'fault', 'fault']);
  });

  it('restart(): same port and host key (known_hosts is strict), the client reconnects', async () => {
    const { server, ssh, causes } = await setup();
    const port = server.port;
    const key = server.hostKey;
    const ready = untilState(ssh, 'ready');
    await server.faults.restart();
    await ready;
    expect(server.port).toBe(port);
    expect(server.hostKey).toBe(key);
    expect(causes).toHaveLength(1);
    expect((await ssh.exec('echo restarted')).stdout).toBe('restarted\n');
  });

  it('stop()/start(): an outage refuses connections until start()', async () => {
    const { server, ssh } = await setup();
    const reconnecting = untilState(ssh, 'reconnecting');
    await server.faults.stop();
    await reconnecting;
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(server.port, server.host);
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    const ready = untilState(ssh, 'ready');
    await server.faults.start();
    await ready;
    expect((await ssh.exec('echo up')).stdout).toBe('up\n');
  });

  it('delay(ms): every chunk arrives at least ms later in each direction', async () => {
    const { server, ssh } = await setup({ keepaliveIntervalMs: 0 });
    server.faults.delay(150);
    const t0 = Date.now();
    expect((await ssh.exec('echo slow')).stdout).toBe('slow\n');
    // channel open + exec request + reply: at least two round trips of 2 x 150 ms
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
    server.faults.delay(0);
    expect((await ssh.exec('echo fast')).stdout).toBe('fast\n');
    expect(() => server.faults.delay(-1)).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG' }));
  });

  it('dropAfterBytes(n): the connection is reset mid-transfer; the transfer fails, the client reconnects', async () => {
    const { server, ssh, causes } = await setup({ keepaliveIntervalMs: 0 });
    const sftp = await ssh.sftp();
    server.faults.dropAfterBytes(64 * 1024);
    const err = await sftp.writeFile('big.bin', Buffer.alloc(1024 * 1024)).then(
      () => undefined,
      (e: SshError) => e,
    );
    expect(err?.code).toMatch(/^ERR_SSH_(CONNECTION_LOST|SFTP)$/);
    expect(causes[0]).toBe('ERR_SSH_CONNECTION_LOST');
    server.faults.resume();
    if (ssh.state !== 'ready') await untilState(ssh, 'ready');
    expect((await ssh.exec('echo healed')).stdout).toBe('healed\n');
    expect(() => server.faults.dropAfterBytes(Number.NaN)).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG' }));
    expect(() => server.faults.refuseChannels(-1)).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG' }));
  });
});
