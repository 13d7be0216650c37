// Failover list (issue 17 item 1): `host: ['primary', 'backup']`, each an ssh_config alias
// resolved on its own (HostName, Port, User, IdentityFile) and checked against known_hosts under
// its own name. Two private sshds with different host keys and different user keys.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SshClient, SshError, type SshClientOptions } from '../../src/index.js';
import { freePort, startSshd, type SshdHandle } from '../helpers/sshd.js';
import net from 'node:net';
import { useClients, waitFor, writeSshConfig } from '../helpers/common.js';

let primary: SshdHandle;
let backup: SshdHandle;
let dir: string;
let sshConfig: string;
let knownHosts: string;
/** Every client a test makes is closed after it. */
const track = useClients();

function options(overrides: Partial<SshClientOptions> = {}): SshClientOptions {
  return {
    host: ['primary', 'backup'],
    sshConfig,
    knownHostsFiles: [knownHosts],
    globalKnownHostsFiles: [],
    agent: false,
    reconnect: { minDelayMs: 200, maxDelayMs: 400 },
    keepaliveIntervalMs: 1_000,
    connectTimeoutMs: 5_000,
    ...overrides,
  };
}

/** The server port the command ran on (from sshd's SSH_CONNECTION). */
function serverPort(sshConnection: string): number {
  return Number(sshConnection.trim().split(' ')[3]);
}

beforeAll(async () => {
  [primary, backup] = await Promise.all([startSshd(), startSshd()]);
  expect(primary.hostPublicKey).not.toBe(backup.hostPublicKey);
  dir = mkdtempSync(join(tmpdir(), 'tether-failover-'));
  sshConfig = writeSshConfig(
    [primary, backup].map((s, i) => ({ host: i === 0 ? 'primary' : 'backup', HostName: s.host, Port: s.port, User: s.username, IdentityFile: s.privateKeyPath })),
    dir,
  );
  knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, readFileSync(primary.knownHostsPath, 'utf8') + readFileSync(backup.knownHostsPath, 'utf8'), { mode: 0o600 });
});
afterAll(async () => {
  await Promise.all([primary.remove(), backup.remove()]);
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await Promise.all([primary.start(), backup.start()]);
});

describe('failover list', () => {
  it('primary stopped: moves to the backup on the second reconnect attempt, `failover` fires once, an exec issued during the switch runs once, on the backup', async () => {
    const ssh = track(new SshClient(options()));
    const failovers: { from: string; to: string; code: string }[] = [];
    ssh.on('failover', ({ from, to, cause }) => failovers.push({ from, to, code: cause.code }));
    const attempts: number[] = [];
    ssh.on('reconnecting', ({ attempt }) => attempts.push(attempt));
    await ssh.connect();
    expect(ssh.health()).toMatchObject({ state: 'ready', alias: 'primary', hostIndex: 0, port: primary.port });
    expect(serverPort((await ssh.exec('echo $SSH_CONNECTION')).stdout)).toBe(primary.port);
    expect(failovers).toEqual([]);

    const marker = join('/tmp', `tether-failover-${randomBytes(6).toString('hex')}`);
    try {
      await primary.stop();
      expect(await waitFor(() => ssh.state !== 'ready', 5_000)).toBe(true);
      // Issued while the client is switching: waits for the new link and runs once.
      const r = await ssh.exec(`echo run >> ${marker}; echo $SSH_CONNECTION`, { timeoutMs: 15_000 });
      expect(r.exitCode).toBe(0);
      expect(serverPort(r.stdout)).toBe(backup.port);
      expect(readFileSync(marker, 'utf8')).toBe('run\n');
    } finally {
      if (existsSync(marker)) rmSync(marker);
    }
    expect(failovers).toEqual([{ from: 'primary', to: 'backup', code: 'ERR_SSH_CONNECT' }]);
    // Attempt 1 retried the host it was on; attempt 2 (one backoff step later) reached the backup.
    expect(attempts).toEqual([1, 2]);
    const h = ssh.health();
    expect(h).toMatchObject({ state: 'ready', alias: 'backup', hostIndex: 1, host: backup.host, port: backup.port, reconnects: 1 });
    expect(ssh.port).toBe(backup.port);
    expect(ssh.alias).toBe('backup');
  });

  it('connect() tries the entries in order: the primary down, the first connect lands on the backup', async () => {
    await primary.stop();
    const ssh = track(new SshClient(options()));
    const failovers: string[] = [];
    ssh.on('failover', ({ from, to }) => failovers.push(`${from}->${to}`));
    await ssh.connect();
    expect(failovers).toEqual(['primary->backup']);
    expect(ssh.health()).toMatchObject({ state: 'ready', hostIndex: 1, port: backup.port });
    expect(serverPort((await ssh.exec('echo $SSH_CONNECTION')).stdout)).toBe(backup.port);
  });

  it('each entry has its own host-key check: a wrong key recorded for the backup stops the failover (ERR_SSH_HOST_KEY_MISMATCH, closed)', async () => {
    // known_hosts: the primary's real key, and the primary's key under the backup's name.
    const wrong = join(dir, 'known_hosts_wrong');
    const primaryKey = primary.hostPublicKey.trim();
    writeFileSync(wrong, `[${primary.host}]:${primary.port} ${primaryKey}\n[${backup.host}]:${backup.port} ${primaryKey}\n`, { mode: 0o600 });
    const ssh = track(new SshClient(options({ knownHostsFiles: [wrong] })));
    let failovers = 0;
    ssh.on('failover', () => (failovers += 1));
    const closed = new Promise<SshError | undefined>((resolve) => ssh.once('close', ({ cause }) => resolve(cause)));
    await ssh.connect();
    expect(ssh.health().hostIndex).toBe(0);
    await primary.stop();
    const cause = await closed;
    expect(cause?.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
    expect(ssh.state).toBe('closed');
    expect(failovers).toBe(0);
  });

  it('both entries down, first connect without retry: rejects and stays idle; a one-entry list behaves as a plain host', async () => {
    await Promise.all([primary.stop(), backup.stop()]);
    const ssh = track(new SshClient(options()));
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err).toBeInstanceOf(SshError);
    expect(err.code).toBe('ERR_SSH_CONNECT');
    expect(ssh.state).toBe('idle');
    await backup.start();
    const one = track(new SshClient(options({ host: ['backup'] })));
    await one.connect();
    expect(one.health()).toMatchObject({ hostIndex: 0, alias: 'backup', port: backup.port });
  });

  it('failbackIntervalMs: once the primary answers again, moves back when no operation runs (a running spawn delays it)', async () => {
    await primary.stop();
    const ssh = track(new SshClient(options({ failbackIntervalMs: 300 })));
    const failovers: string[] = [];
    ssh.on('failover', ({ from, to, failback }) => failovers.push(`${from}->${to}${failback ? ' (failback)' : ''}`));
    await ssh.connect();
    expect(ssh.health().hostIndex).toBe(1);
    const p = await ssh.spawn('sleep 30');
    await primary.start();
    // The primary answers probes now, but the spawned command runs on the backup: stay.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(ssh.health()).toMatchObject({ state: 'ready', hostIndex: 1 });
    p.kill();
    await p.exited.catch(() => undefined);
    expect(await waitFor(() => ssh.state === 'ready' && ssh.health().hostIndex === 0, 10_000)).toBe(true);
    expect(failovers).toEqual(['primary->backup', 'backup->primary (failback)']);
    expect(serverPort((await ssh.exec('echo $SSH_CONNECTION')).stdout)).toBe(primary.port);
    expect(ssh.health()).toMatchObject({ alias: 'primary', port: primary.port });
  });

  it('a declared remote forward is set up again on the backup after the failover (same server port)', async () => {
    const echo = net.createServer((c) => {
      c.on('error', () => undefined);
      c.on('data', (d) => c.write(`echo:${d.toString()}`));
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const remotePort = await freePort();
    const ask = (): Promise<string> =>
      new Promise<string>((resolve, reject) => {
        const c = net.connect({ host: '127.0.0.1', port: remotePort });
        const t = setTimeout(() => {
          c.destroy();
          reject(new Error('no echo within 5 s'));
        }, 5_000);
        c.on('error', (e) => {
          clearTimeout(t);
          reject(e);
        });
        c.on('data', (d) => {
          clearTimeout(t);
          c.destroy();
          resolve(d.toString());
        });
        c.write('hi');
      });
    try {
      const ssh = track(new SshClient(options({ forwards: [{ type: 'remote', remoteHost: '127.0.0.1', remotePort, localHost: '127.0.0.1', localPort: echoPort }] })));
      await ssh.connect();
      expect(ssh.health().hostIndex).toBe(0);
      expect(await ask()).toBe('echo:hi');
      await primary.stop(); // the primary's listener on remotePort dies with it
      expect(await waitFor(() => ssh.state === 'ready' && ssh.health().hostIndex === 1 && ssh.health().forwards.every((f) => f.state === 'up'), 10_000)).toBe(true);
      // Now only the backup's sshd can be listening on remotePort.
      expect(await ask()).toBe('echo:hi');
      expect(ssh.health().forwards).toHaveLength(1);
    } finally {
      await new Promise((r) => echo.close(r));
    }
  });

  it('rejects an empty list or an empty entry with ERR_SSH_CONFIG naming host', () => {
    for (const host of [[], ['primary', '']]) {
      let err: unknown;
      try {
        new SshClient(options({ host }));
      } catch (e) {
        err = e;
      }
      expect((err as SshError).code).toBe('ERR_SSH_CONFIG');
      expect((err as SshError).message).toContain('host');
    }
  });
});
