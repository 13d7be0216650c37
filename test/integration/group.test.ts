/**
 * SshGroup (issue 17 §2) against the shared OpenSSH sshd. Each "host" is a fault proxy of its own
 * in front of that sshd (a distinct port, so a distinct client and connection), which lets a test
 * take one host down or count the TCP connections it accepted.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshGroup, type SshClientOptions } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { clientOptions } from '../helpers/client.js';
import { waitFor, writeSshConfig } from '../helpers/common.js';
import { freePort } from '../helpers/sshd.js';
import { sharedSshd } from '../helpers/shared.js';

const info = sharedSshd();
const dir = mkdtempSync(join(tmpdir(), 'tether-group-'));
const proxies: FaultProxy[] = [];

/** `n` proxies in front of the shared sshd and one known_hosts file trusting all of them. */
async function hosts(n: number): Promise<{ proxies: FaultProxy[]; knownHosts: string }> {
  const list = await Promise.all(Array.from({ length: n }, () => FaultProxy.start({ host: info.host, port: info.port })));
  proxies.push(...list);
  const knownHosts = join(dir, `known_hosts_${proxies.length}`);
  writeFileSync(knownHosts, list.map((p) => `[${p.host}]:${p.port} ${info.hostPublicKey.trim()}\n`).join(''), { mode: 0o600 });
  return { proxies: list, knownHosts };
}

function optionsFor(p: FaultProxy, knownHosts: string, overrides: Partial<SshClientOptions> = {}): SshClientOptions {
  return clientOptions(info, { host: p.host, port: p.port, knownHostsFiles: [knownHosts], connectTimeoutMs: 10_000, ...overrides });
}

/** The largest number of `+`-without-`-` markers open at once in a log of `+ id` / `- id` lines. */
function maxOverlap(log: string): number {
  let open = 0;
  let max = 0;
  for (const line of log.split('\n')) {
    if (line.startsWith('+')) max = Math.max(max, ++open);
    else if (line.startsWith('-')) open--;
  }
  return max;
}

/** Reads a file on the server through a fresh exec of the harness user. */
function serverFile(path: string): string {
  try {
    return execFileSync('cat', [path], { encoding: 'utf8' });
  } catch {
    return '';
  }
}

beforeAll(() => {
  // The log lives in the login user's home so the user's shell may append to it.
  execFileSync('mkdir', ['-p', join(info.homeDir, 'group-test')]);
  execFileSync('chown', ['-R', `${info.username}`, join(info.homeDir, 'group-test')], { stdio: 'ignore' });
});

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
});

describe('SshGroup', () => {
  it('20 hosts, 3 of them down, refusing auth or unknown: 17 ok results and 3 typed errors, in order; concurrency never exceeded on the server; connections reused on a second call', async () => {
    const { proxies: ps, knownHosts } = await hosts(20);
    const log = join(info.homeDir, 'group-test', `overlap-${process.pid}-${Date.now()}.log`);
    const wrongKey = join(dir, 'wrong_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
    const emptyKnownHosts = join(dir, 'empty_known_hosts');
    writeFileSync(emptyKnownHosts, '');
    const down = ps[4]!;
    await down.close(); // port closed: ECONNREFUSED
    const entries = ps.map((p, i) => {
      if (i === 9) return optionsFor(p, knownHosts, { identityFiles: [wrongKey] });
      if (i === 15) return optionsFor(p, emptyKnownHosts);
      return optionsFor(p, knownHosts);
    });
    const group = new SshGroup(entries, { concurrency: 5 });
    const ready: string[] = [];
    group.on('ready', ({ host }) => ready.push(host));
    try {
      const cmd = `echo "+ $$" >> ${log}; sleep 0.3; echo "- $$" >> ${log}; echo "$SSH_CONNECTION"`;
      const results = await group.exec(cmd, { timeoutMs: 20_000 });
      expect(results.map((r) => r.index)).toEqual([...Array(20).keys()]);
      expect(results.map((r) => r.host)).toEqual(group.hosts);
      const failed = results.filter((r) => !r.ok);
      expect(failed.map((r) => r.index)).toEqual([4, 9, 15]);
      const codes = failed.map((r) => (r.ok ? '' : r.error.code));
      expect(codes).toEqual(['ERR_SSH_CONNECT', 'ERR_SSH_AUTH', 'ERR_SSH_HOST_KEY_UNKNOWN']);
      for (const r of results) {
        if (r.ok) {
          expect(r.value.exitCode).toBe(0);
          // each host's command really ran over its own connection
          expect(r.value.stdout).toMatch(/^127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+\n$/);
        }
      }
      const overlap = maxOverlap(serverFile(log));
      expect(serverFile(log).split('\n').filter((l) => l.startsWith('+'))).toHaveLength(17);
      expect(overlap).toBeLessThanOrEqual(5);
      expect(overlap).toBeGreaterThan(1); // hosts really worked in parallel

      const accepted = ps.map((p) => p.acceptedCount);
      const readyBefore = ready.length;
      const again = await group.exec('echo again');
      expect(again.filter((r) => r.ok)).toHaveLength(17);
      // no new TCP connection to any working host, no new ready event: the clients were reused
      expect(ps.map((p) => p.acceptedCount).filter((_, i) => ![4, 9, 15].includes(i))).toEqual(accepted.filter((_, i) => ![4, 9, 15].includes(i)));
      expect(ready.length).toBe(readyBefore);
      const health = group.health();
      expect(health).toHaveLength(20);
      expect(health.filter((h) => h.health?.state === 'ready')).toHaveLength(17);
    } finally {
      await group.close();
    }
    expect(group.health().every((h) => h.health === undefined)).toBe(true);
    await expect(group.exec('true')).rejects.toMatchObject({ code: 'ERR_SSH_CLOSED' });
  });

  it('run(): any per-host work, a thrown plain Error becomes ERR_SSH_TASK, a per-host timeout stops only that host', async () => {
    const { proxies: ps, knownHosts } = await hosts(3);
    await using group = new SshGroup(
      ps.map((p) => optionsFor(p, knownHosts)),
      { concurrency: 3 },
    );
    const results = await group.run(
      async (ssh, { index, signal }) => {
        if (index === 1) throw new Error('boom');
        if (index === 2) await ssh.exec('sleep 20', { signal });
        return (await ssh.exec(['echo', `host ${index}`])).stdout;
      },
      { timeoutMs: 2_000 },
    );
    expect(results[0]).toMatchObject({ ok: true, value: 'host 0\n' });
    expect(results[1]).toMatchObject({ ok: false, error: { code: 'ERR_SSH_TASK', retryable: false } });
    expect(results[2]).toMatchObject({ ok: false, error: { code: 'ERR_SSH_TIMEOUT' } });
  });

  it('events carry the host; idleTimeoutMs closes an idle client and the next call reconnects', async () => {
    const { proxies: ps, knownHosts } = await hosts(2);
    const group = new SshGroup(
      ps.map((p) => optionsFor(p, knownHosts)),
      { idleTimeoutMs: 300 },
    );
    const states: string[] = [];
    group.on('state', ({ host, state }) => states.push(`${host} ${state}`));
    try {
      expect((await group.exec('true')).every((r) => r.ok)).toBe(true);
      expect(states).toContain(`${group.hosts[0]!} ready`);
      expect(states).toContain(`${group.hosts[1]!} ready`);
      const closed = (): boolean => group.hosts.every((h) => states.includes(`${h} closed`));
      await waitFor(() => group.health().every((h) => h.health === undefined) && closed(), 10_000);
      expect(group.health().every((h) => h.health === undefined)).toBe(true);
      expect(states).toContain(`${group.hosts[0]!} closed`);
      const before = ps.map((p) => p.acceptedCount);
      expect((await group.exec('true')).every((r) => r.ok)).toBe(true);
      expect(ps.map((p) => p.acceptedCount)).toEqual(before.map((n) => n + 1));
    } finally {
      await group.close();
    }
  });

  it('every client event reaches the group with its host: failover, warning, hostkey, keepalive, forward, state', async () => {
    const up = (await hosts(1)).proxies[0]!;
    const closedPort = await freePort();
    // One host given as a failover list: `gdown` (nothing listens) then `gup` (the proxy), whose
    // block also holds a keyword that is never applied (a `warning`).
    const config = writeSshConfig([
      { host: 'gdown', HostName: '127.0.0.1', Port: closedPort },
      { host: 'gup', HostName: up.host, Port: up.port, LocalCommand: 'echo never' },
      { host: '*', User: info.username, IdentityFile: info.privateKeyPath },
    ]);
    const emptyKnownHosts = join(dir, 'known_hosts_events');
    writeFileSync(emptyKnownHosts, '', { mode: 0o600 });
    const entry: SshClientOptions = {
      host: ['gdown', 'gup'],
      sshConfig: config,
      knownHostsFiles: [emptyKnownHosts],
      globalKnownHostsFiles: [],
      strictHostKeyChecking: 'accept-new',
      agent: false,
      keepaliveIntervalMs: 100,
      connectTimeoutMs: 10_000,
    };
    await using group = new SshGroup([clientOptions(info, { connectTimeoutMs: 10_000 }, up), entry]);
    const seen: string[] = [];
    const label = group.hosts[1]!;
    group.on('failover', ({ host, index, from, to, cause }) => seen.push(`failover ${host} ${index} ${from}->${to} ${cause.code}`));
    group.on('warning', ({ host, warning }) => seen.push(`warning ${host} ${warning.keyword}`));
    group.on('hostkey', ({ host, key }) => seen.push(`hostkey ${host} ${key.action}`));
    group.on('keepalive', ({ host, rttMs }) => seen.push(`keepalive ${host} ${typeof rttMs}`));
    group.on('forward', ({ host, event }) => seen.push(`forward ${host} ${event.forward.type} ${event.state}`));
    group.on('state', ({ host, state }) => seen.push(`state ${host} ${state}`));
    const results = await group.run(async (ssh, { index }) => {
      if (index === 0) return 'first';
      const fwd = await ssh.forwardRemote({ remotePort: 0, localPort: 9 });
      // Bounded: a few keep-alive intervals.
      await waitFor(() => seen.includes(`keepalive ${label} number`), 5_000);
      await fwd.close();
      return ssh.health().alias;
    });
    expect(results.map((r) => (r.ok ? r.value : r.error.code))).toEqual(['first', 'gup']);
    expect(label).toBe('gdown,gup');
    expect(seen.filter((e) => e.startsWith('failover'))).toEqual([`failover ${label} 1 gdown->gup ERR_SSH_CONNECT`]);
    expect(seen).toContain(`warning ${label} LocalCommand`);
    expect(seen).toContain(`hostkey ${label} added`);
    expect(seen).toContain(`keepalive ${label} number`);
    expect(seen).toContain(`forward ${label} remote up`);
    expect(seen).toContain(`state ${label} ready`);
    expect(seen).toContain(`state ${group.hosts[0]!} ready`);
    // The events of host 0 never carry host 1's label and vice versa.
    expect(seen.filter((e) => e.includes(group.hosts[0]!) && e.includes(label))).toEqual([]);
  });

  it('bad input: empty host list, a typo in a host option, bad concurrency: ERR_SSH_CONFIG naming the field', () => {
    expect(() => new SshGroup([])).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG', field: 'hosts' }));
    expect(() => new SshGroup([{ host: 'a', identityFile: ['x'] } as unknown as SshClientOptions])).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG' }));
    expect(() => new SshGroup(['a'], { concurrency: 0 })).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG', field: 'concurrency' }));
    expect(() => new SshGroup(['a'], { concurency: 2 } as never)).toThrow(/unknown option 'concurency'/);
  });

  it('bad run() arguments are ERR_SSH_INVALID_ARG naming the field (group options stay ERR_SSH_CONFIG)', async () => {
    const g = new SshGroup(['a']);
    try {
      await expect(g.run(() => 1, { timeoutMs: 0 })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'timeoutMs' });
      await expect(g.run(() => 1, { timeoutMs: 1.5 })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'timeoutMs' });
      await expect(g.run(() => 1, { concurrency: 0 })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'concurrency' });
      await expect(g.run('x' as never)).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'task' });
    } finally {
      await g.close();
    }
    expect(() => new SshGroup(['a'], { idleTimeoutMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONFIG', field: 'idleTimeoutMs' }));
  });

  it('200 hosts with concurrency 50: every host succeeds', async () => {
    const { proxies: ps, knownHosts } = await hosts(200);
    const group = new SshGroup(
      ps.map((p) => optionsFor(p, knownHosts, { connectTimeoutMs: 30_000 })),
      { concurrency: 50 },
    );
    try {
      const results = await group.exec('echo ok', { timeoutMs: 60_000 });
      const failures = results.filter((r) => !r.ok).map((r) => (r.ok ? '' : `${r.host}: ${r.error.code} ${r.error.message}`));
      expect(failures).toEqual([]);
      expect(results.every((r) => r.ok && r.value.stdout === 'ok\n')).toBe(true);
    } finally {
      await group.close();
    }
  }, 120_000);
});
