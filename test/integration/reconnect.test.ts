import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, SshExecError } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startSshd, type SshdHandle, describeSshd } from '../helpers/sshd.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';

const info = sharedSshd();
const clients: SshClient[] = [];
function track(c: SshClient): SshClient {
  clients.push(c);
  return c;
}
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

describe('dead link detection and reconnect', () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
  });
  afterAll(async () => {
    await proxy.close();
  });

  it('blackhole mid `sleep 30`: exec rejects ERR_SSH_CONNECTION_LOST within interval x (countMax + 1) + 1 s, then ready again after resume', async () => {
    proxy.resume();
    const intervalMs = 500;
    const countMax = 2;
    const ssh = track(
      new SshClient(
        clientOptions(info, { keepaliveIntervalMs: intervalMs, keepaliveCountMax: countMax, reconnect: { minDelayMs: 100, maxDelayMs: 400 }, connectTimeoutMs: 2_000 }, proxy),
      ),
    );
    const events: string[] = [];
    ssh.on('disconnect', ({ cause }) => events.push(`disconnect:${cause.code}`));
    await ssh.connect();
    const running = ssh.exec('echo started; sleep 30');
    await new Promise((r) => setTimeout(r, 300));
    proxy.blackhole();
    const t0 = Date.now();
    const err = await running.catch((e: unknown) => e);
    const elapsed = Date.now() - t0;
    expect(err).toBeInstanceOf(SshExecError);
    expect((err as SshError).code).toBe('ERR_SSH_CONNECTION_LOST');
    expect((err as SshExecError).result.exitCode).toBeNull();
    expect(elapsed).toBeLessThanOrEqual(intervalMs * (countMax + 1) + 1_000);
    expect(events).toContain('disconnect:ERR_SSH_KEEPALIVE_TIMEOUT');
    expect(['reconnecting', 'ready']).toContain(ssh.state);
    proxy.resume();
    expect(await waitFor(() => ssh.state === 'ready', 10_000)).toBe(true);
    expect((await ssh.exec('echo back')).stdout).toBe('back\n');
    expect(ssh.health().reconnects).toBeGreaterThanOrEqual(1);
  });

  it('a TCP reset is a lost connection: in-flight exec rejects, the client reconnects', async () => {
    proxy.resume();
    const ssh = track(new SshClient(clientOptions(info, { reconnect: { minDelayMs: 50, maxDelayMs: 200 } }, proxy)));
    await ssh.connect();
    const running = ssh.exec('sleep 30');
    await new Promise((r) => setTimeout(r, 200));
    proxy.reset();
    const err = await running.catch((e: unknown) => e);
    expect((err as SshError).code).toBe('ERR_SSH_CONNECTION_LOST');
    expect((await ssh.exec('echo again')).stdout).toBe('again\n');
  });

  it('operations issued while reconnecting wait for ready and run once, in order', async () => {
    proxy.resume();
    // maxSessions 1 serialises the channels, so completion order is start order.
    const ssh = track(new SshClient(clientOptions(info, { maxSessions: 1, reconnect: { minDelayMs: 300, maxDelayMs: 300 } }, proxy)));
    await ssh.connect();
    proxy.reset();
    await waitFor(() => ssh.state === 'reconnecting', 5_000);
    expect(ssh.state).toBe('reconnecting');
    const order: number[] = [];
    const ops = Array.from({ length: 50 }, (_, i) => ssh.exec(`echo ${i}`).then((r) => order.push(Number(r.stdout.trim()))));
    await Promise.all(ops);
    expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('operations with a deadline fail with ERR_SSH_TIMEOUT while the link is down', async () => {
    proxy.resume();
    const ssh = track(new SshClient(clientOptions(info, { keepaliveIntervalMs: 200, keepaliveCountMax: 1, reconnect: { minDelayMs: 100, maxDelayMs: 200 }, connectTimeoutMs: 500 }, proxy)));
    await ssh.connect();
    proxy.blackhole();
    await waitFor(() => ssh.state === 'reconnecting', 5_000);
    const err = await ssh.exec('true', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect((err as SshError).code).toBe('ERR_SSH_TIMEOUT');
    proxy.resume();
  });
});

describe('server-side failures', () => {
  let server: SshdHandle;
  beforeAll(async () => {
    server = await startSshd();
  });
  afterAll(async () => {
    await server.remove();
  });

  it('the server session process killed: reconnects by itself', async () => {
    const sinfo = describeSshd(server);
    const ssh = track(new SshClient(clientOptions(sinfo, { reconnect: { minDelayMs: 50, maxDelayMs: 200 } })));
    const states: string[] = [];
    ssh.on('state', ({ state }) => states.push(state));
    await ssh.connect();
    const killed = await server.killSessions();
    expect(killed).toBeGreaterThanOrEqual(1);
    expect(await waitFor(() => states.includes('reconnecting') && ssh.state === 'ready', 10_000)).toBe(true);
    expect((await ssh.exec('echo healed')).stdout).toBe('healed\n');
  });

  it('sshd stopped for a while then restarted on the same port: reconnects with growing, capped delays', async () => {
    const sinfo = describeSshd(server);
    const ssh = track(new SshClient(clientOptions(sinfo, { reconnect: { minDelayMs: 100, maxDelayMs: 800, factor: 2 }, connectTimeoutMs: 1_000 })));
    const delays: number[] = [];
    ssh.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    await ssh.connect();
    await server.stop();
    expect(await waitFor(() => delays.length >= 5, 15_000)).toBe(true);
    await server.start();
    expect(await waitFor(() => ssh.state === 'ready', 10_000)).toBe(true);
    // base delays 100, 200, 400, 800, 800...; jitter x1-x2 keeps each in [base, min(2 base, 800)]
    // (internal/backoff.ts): they grow until capped, and none is below minDelayMs or above maxDelayMs.
    for (let i = 1; i < Math.min(delays.length, 4); i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!);
    for (const d of delays) expect(d).toBeLessThanOrEqual(800);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(100);
    delays.forEach((d, i) => expect(d).toBeGreaterThanOrEqual(Math.min(800, 100 * 2 ** i)));
    for (const d of delays.slice(3)) expect(d).toBe(800);
    expect((await ssh.exec('echo restarted')).stdout).toBe('restarted\n');
  });

  it('close() during backoff returns at once and leaves no timer or socket', async () => {
    const sinfo = describeSshd(server);
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'TCPSocketWrap').length;
    const ssh = new SshClient(clientOptions(sinfo, { reconnect: { minDelayMs: 5_000, maxDelayMs: 5_000 } }));
    await ssh.connect();
    await server.stop();
    expect(await waitFor(() => ssh.state === 'reconnecting', 5_000)).toBe(true);
    const t0 = Date.now();
    await ssh.close();
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(ssh.state).toBe('closed');
    await server.start();
    await new Promise((r) => setTimeout(r, 50));
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'TCPSocketWrap').length;
    expect(after).toBeLessThanOrEqual(before);
    const err = await ssh.exec('true').catch((e: unknown) => e);
    expect((err as SshError).code).toBe('ERR_SSH_CLOSED');
  });
});
