import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import { Registry } from 'prom-client';
import { SshAuthError, SshClient, SshError } from '../../src/index.js';
import { METRIC_NAMES, registerMetrics } from '../../src/metrics/prometheus.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { startSshd, type SshdHandle } from '../helpers/sshd.js';

const info = sharedSshd();
const clients: SshClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});
let sshd: SshdHandle | undefined;
afterAll(async () => {
  await sshd?.remove();
});

function client(overrides: Parameters<typeof clientOptions>[1] = {}, target = info): SshClient {
  const c = new SshClient(clientOptions(target, { sshConfig: false, ...overrides }));
  clients.push(c);
  return c;
}

/** The value of one series in the exposition text, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe('ssh-tether/prometheus registerMetrics()', () => {
  it('exposes up, channels, keep-alive RTT and reconnects of a live client; unregister removes everything', async () => {
    const registry = new Registry();
    const ssh = client({ keepaliveIntervalMs: 100 });
    const before = ssh.eventNames().map((e) => [e, ssh.listenerCount(e)]);
    const unregister = registerMetrics(ssh, { registry, labels: { host: 'box1' } });
    let text = await registry.metrics();
    expect(sample(text, 'ssh_tether_up{host="box1"}')).toBe(0);

    await ssh.connect();
    const keepalive = new Promise((r) => ssh.once('keepalive', r));
    await keepalive;
    const running = ssh.exec('sleep 1');
    expect(await waitFor(() => ssh.health().openChannels === 1, 5_000)).toBe(true);
    text = await registry.metrics();
    expect(sample(text, 'ssh_tether_up{host="box1"}')).toBe(1);
    expect(sample(text, 'ssh_tether_channels_open{host="box1"}')).toBe(1);
    expect(sample(text, 'ssh_tether_channel_queue_depth{host="box1"}')).toBe(0);
    expect(sample(text, 'ssh_tether_reconnects_total{host="box1"}')).toBe(0);
    expect(sample(text, 'ssh_tether_keepalive_rtt_seconds_count{host="box1"}')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/# TYPE ssh_tether_keepalive_rtt_seconds histogram/);
    expect(text).toMatch(/ssh_tether_keepalive_rtt_seconds_bucket\{le="0.001",host="box1"\} \d+/);
    expect((await running).exitCode).toBe(0);

    unregister();
    unregister();
    expect(await registry.metrics()).not.toMatch(/ssh_tether/);
    for (const n of METRIC_NAMES) expect(registry.getSingleMetric(n)).toBeUndefined();
    expect(ssh.eventNames().map((e) => [e, ssh.listenerCount(e)])).toEqual(before);
  });

  it('counts disconnects by reason and reconnects after a server-side drop', async () => {
    sshd = await startSshd();
    const registry = new Registry();
    const ssh = client({ reconnect: { minDelayMs: 50, maxDelayMs: 200 } }, sshd);
    const unregister = registerMetrics(ssh, { registry });
    await ssh.connect();
    const ready = new Promise<void>((r) => ssh.once('disconnect', () => ssh.once('ready', () => r())));
    expect(await sshd.killSessions()).toBeGreaterThanOrEqual(1);
    await ready;
    // The reconnect is counted once the attempt that emitted 'ready' returns.
    expect(await waitFor(() => ssh.health().reconnects === 1, 5_000)).toBe(true);
    const text = await registry.metrics();
    const lines = text.split('\n').filter((l) => l.startsWith('ssh_tether_disconnects_total{'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ssh_tether_disconnects_total\{reason="ERR_SSH_[A-Z_]+"\} 1$/);
    expect(sample(text, 'ssh_tether_reconnects_total')).toBe(1);
    expect(sample(text, 'ssh_tether_up')).toBe(1);
    unregister();
  });

  it('counts authentication failures by reason', async () => {
    const registry = new Registry();
    const dir = mkdtempSync(join(tmpdir(), 'tether-met-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
    const ssh = client({ identityFiles: [join(dir, 'k')] });
    const unregister = registerMetrics(ssh, { registry, labels: { host: 'bad' } });
    const err = await ssh.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_AUTH');
    const text = await registry.metrics();
    expect((err as SshAuthError).reason).toBe('all-methods-failed');
    expect(sample(text, 'ssh_tether_auth_failures_total{host="bad",reason="rejected"}')).toBe(1);
    expect(sample(text, 'ssh_tether_up{host="bad"}')).toBe(0);
    unregister();
  });

  it('auth failure reasons come from SshAuthError.reason: nothing to offer -> no_method; MaxAuthTries -> too_many_attempts', async () => {
    const registry = new Registry();
    const none = client({ identityFiles: [], agent: false });
    const unregisterNone = registerMetrics(none, { registry, labels: { host: 'none' } });
    const e1 = await none.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(e1).toBeInstanceOf(SshAuthError);
    expect((e1 as SshAuthError).reason).toBe('no-credentials');

    const strict = await startSshd({ extraConfig: ['MaxAuthTries 2'] });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'tether-met-'));
      const keys = ['a', 'b', 'c', 'd'].map((n) => {
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, n)]);
        return join(dir, n);
      });
      const many = client({ identityFiles: [...keys, strict.privateKeyPath], agent: false }, strict);
      const unregisterMany = registerMetrics(many, { registry, labels: { host: 'many' } });
      const e2 = await many.connect().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(e2).toBeInstanceOf(SshAuthError);
      expect((e2 as SshAuthError).reason).toBe('too-many-attempts');
      const text = await registry.metrics();
      expect(sample(text, 'ssh_tether_auth_failures_total{host="none",reason="no_method"}')).toBe(1);
      expect(sample(text, 'ssh_tether_auth_failures_total{host="many",reason="too_many_attempts"}')).toBe(1);
      expect(sample(text, 'ssh_tether_auth_failures_total{host="many",reason="rejected"}')).toBeUndefined();
      unregisterMany();
    } finally {
      await strict.remove();
    }
    unregisterNone();
  });

  it('two clients share a registry with distinct labels; label names must agree', async () => {
    const registry = new Registry();
    const a = client();
    const b = client();
    const ua = registerMetrics(a, { registry, labels: { host: 'a' } });
    const ub = registerMetrics(b, { registry, labels: { host: 'b' } });
    expect(() => registerMetrics(a, { registry, labels: { other: 'x' } })).toThrow(/label names/);
    expect(() => registerMetrics(a, { registry, labels: { reason: 'x' } })).toThrow(SshError);
    await a.connect();
    let text = await registry.metrics();
    expect(sample(text, 'ssh_tether_up{host="a"}')).toBe(1);
    expect(sample(text, 'ssh_tether_up{host="b"}')).toBe(0);
    ua();
    text = await registry.metrics();
    expect(sample(text, 'ssh_tether_up{host="a"}')).toBeUndefined();
    expect(sample(text, 'ssh_tether_up{host="b"}')).toBe(0);
    ub();
    expect(await registry.metrics()).toBe('\n');
  });

  it('maps forwards and SFTP byte counts from health() at scrape time (documented health shape)', async () => {
    // A stand-in exposing the documented health() fields; the series mapping is what is tested here.
    class Stub extends EventEmitter {
      h = {
        state: 'ready',
        reconnects: 2,
        openChannels: 3,
        queuedChannels: 1,
        forwards: [
          { id: 'L:127.0.0.1:5432', type: 'local', state: 'up', bind: '127.0.0.1:5432', target: 'db:5432', connectionsTotal: 4, connectionsActive: 1, bytesIn: 100, bytesOut: 50 },
        ],
        sftp: { bytesRead: 1000, bytesWritten: 2000 },
      };
      health(): unknown {
        return this.h;
      }
    }
    const stub = new Stub();
    const registry = new Registry();
    const unregister = registerMetrics(stub as unknown as SshClient, { registry });
    stub.emit('keepalive', { rttMs: 3 });
    stub.emit('disconnect', { cause: new SshError('ERR_SSH_KEEPALIVE_TIMEOUT', 'x') });
    stub.emit('error', new SshAuthError('authentication failed', { methodsTried: ['publickey'], reason: 'too-many-attempts' }));
    let text = await registry.metrics();
    expect(sample(text, 'ssh_tether_forward_connections_total{forward="L:127.0.0.1:5432"}')).toBe(4);
    expect(sample(text, 'ssh_tether_forward_bytes_total{forward="L:127.0.0.1:5432",direction="in"}')).toBe(100);
    expect(sample(text, 'ssh_tether_forward_bytes_total{forward="L:127.0.0.1:5432",direction="out"}')).toBe(50);
    expect(sample(text, 'ssh_tether_sftp_bytes_total{direction="read"}')).toBe(1000);
    expect(sample(text, 'ssh_tether_sftp_bytes_total{direction="write"}')).toBe(2000);
    expect(sample(text, 'ssh_tether_reconnects_total')).toBe(2);
    expect(sample(text, 'ssh_tether_channel_queue_depth')).toBe(1);
    expect(sample(text, 'ssh_tether_keepalive_rtt_seconds_sum')).toBe(0.003);
    expect(sample(text, 'ssh_tether_disconnects_total{reason="ERR_SSH_KEEPALIVE_TIMEOUT"}')).toBe(1);
    expect(sample(text, 'ssh_tether_auth_failures_total{reason="too_many_attempts"}')).toBe(1);
    // Counters follow health() between scrapes.
    stub.h.sftp.bytesRead = 1500;
    text = await registry.metrics();
    expect(sample(text, 'ssh_tether_sftp_bytes_total{direction="read"}')).toBe(1500);
    unregister();
    expect(stub.listenerCount('keepalive') + stub.listenerCount('disconnect') + stub.listenerCount('error')).toBe(0);
  });
});

describe('forward and SFTP series from a real client', () => {
  it('scrapes ssh_tether_forward_* and ssh_tether_sftp_bytes_total after real traffic', async () => {
    const info = sharedSshd();
    const { clientOptions } = await import('../helpers/client.js');
    const net = await import('node:net');
    const registry = new Registry();
    const ssh = new SshClient(clientOptions(info));
    const unregister = registerMetrics(ssh, { registry });
    try {
      const echo = net.createServer((s) => s.on('data', (d) => s.end(d)));
      await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
      const fwd = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: (echo.address() as import('node:net').AddressInfo).port });
      await new Promise<void>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: fwd.localPort });
        s.on('error', reject);
        s.on('data', () => undefined);
        s.on('close', () => resolve());
        s.write('ping');
      });
      const sftp = await ssh.sftp();
      const path = `${info.homeDir}/metrics-${process.pid}.bin`;
      await sftp.writeFile(path, Buffer.alloc(50_000, 7));
      await sftp.readFile(path);
      await sftp.unlink(path);
      const text = await registry.metrics();
      expect(text).toMatch(/ssh_tether_forward_connections_total\{forward="L:127\.0\.0\.1:\d+->127\.0\.0\.1:\d+"\} 1/);
      expect(text).toMatch(/ssh_tether_forward_bytes_total\{forward="L:[^"]+",direction="out"\} 4/);
      expect(text).toMatch(/ssh_tether_sftp_bytes_total\{direction="write"\} 50000/);
      expect(text).toMatch(/ssh_tether_sftp_bytes_total\{direction="read"\} 50000/);
      await new Promise((r) => echo.close(r));
    } finally {
      unregister();
      await ssh.close();
    }
  });
});
