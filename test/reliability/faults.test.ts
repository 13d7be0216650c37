/**
 * Fault tests, issue 6 items 1-9: a real sshd, reached directly or through the test TCP proxy.
 * No `error` listener is attached to any client (item 25, see guard.ts).
 *
 * Item 3, "sshd down for minutes": the outage is simulated with `FaultProxy.refuse(true)` (every
 * new TCP connection is reset), 6 s by default and 60 s with `RELIABILITY_LONG=1`.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, type SshClientOptions } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startSshd, describeSshd, type SshdHandle } from '../helpers/sshd.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { reliabilitySuite } from './guard.js';
import { activeResources, kexinitPacket, openFds, rawServer, rejection, settle, sleep } from './util.js';

const suite = reliabilitySuite('Faults (items 1-9)');
const info = sharedSshd();
const LONG = process.env.RELIABILITY_LONG === '1';
const clients: SshClient[] = [];
function track(o: SshClientOptions): SshClient {
  const c = new SshClient(o);
  clients.push(c);
  return c;
}
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

let proxy: FaultProxy;
beforeAll(async () => {
  proxy = await FaultProxy.start({ host: info.host, port: info.port });
});
afterAll(async () => {
  await proxy.close();
});

describe('item 1: the link goes silent (no FIN)', () => {
  it('every in-flight exec, spawn and SFTP transfer rejects ERR_SSH_CONNECTION_LOST within interval x (countMax + 1) + 1 s; nothing succeeds; reconnects after', async () => {
    proxy.resume();
    const intervalMs = 500;
    const countMax = 2;
    const boundMs = intervalMs * (countMax + 1) + 1_000;
    const ssh = track(
      clientOptions(info, { keepaliveIntervalMs: intervalMs, keepaliveCountMax: countMax, reconnect: { minDelayMs: 100, maxDelayMs: 400 }, connectTimeoutMs: 2_000 }, proxy),
    );
    await ssh.connect();
    const remote = `silent-${process.pid}.bin`;
    await ssh.exec(`head -c 67108864 /dev/urandom > ${remote}`, { check: true });
    const sftp = await ssh.sftp();
    const proc = await ssh.spawn('while :; do echo tick; sleep 0.1; done');
    proc.stdout.resume();
    let blackholedAt = 0;
    const ops: Promise<unknown>[] = [ssh.exec('sleep 30'), ssh.exec(['sh', '-c', 'cat > /dev/null'], { stdin: Buffer.alloc(1) }), proc.exited];
    const transfer = sftp.get(remote, join(process.env.TMPDIR ?? '/tmp', `tether-silent-${process.pid}.bin`), {
      onProgress: () => {
        if (blackholedAt === 0) {
          blackholedAt = Date.now();
          proxy.blackhole();
        }
      },
    });
    ops.push(transfer);
    const results = await Promise.all(ops.map((p) => settle(p)));
    expect(blackholedAt).toBeGreaterThan(0);
    const codes = results.map((r) => (r.ok ? 'resolved' : r.code));
    // `cat > /dev/null` with 1 byte of stdin may have finished before the blackhole: success is allowed only for it
    expect(codes[0]).toBe('ERR_SSH_CONNECTION_LOST');
    expect(codes[2]).toBe('ERR_SSH_CONNECTION_LOST');
    expect(codes[3]).toBe('ERR_SSH_CONNECTION_LOST');
    if (!results[1]!.ok) expect(codes[1]).toBe('ERR_SSH_CONNECTION_LOST');
    for (const r of results) if (!r.ok) expect(r.at - blackholedAt).toBeLessThanOrEqual(boundMs);
    const worst = Math.max(...results.filter((r) => !r.ok).map((r) => r.at - blackholedAt));
    suite.figure('item 1: slowest in-flight rejection after blackhole (bound 2500 ms)', `${worst} ms`);
    proxy.resume();
    expect(await waitFor(() => ssh.state === 'ready', 10_000)).toBe(true);
    expect((await ssh.exec('echo back')).stdout).toBe('back\n');
    expect((await sftp.stat(remote)).size).toBe(64 * 1024 * 1024);
    await sftp.unlink(remote);
  });
});

describe('item 2: latency', () => {
  it('a busy inbound stream with 300 ms added latency each way: no false keep-alive timeout', async () => {
    proxy.resume();
    const p2 = await FaultProxy.start({ host: info.host, port: info.port });
    try {
      p2.delay(300);
      // probes are due after 1 s of inbound silence; the link would be declared dead after 3 s of it
      const ssh = track(clientOptions(info, { keepaliveIntervalMs: 1_000, keepaliveCountMax: 2, reconnect: false, connectTimeoutMs: 15_000 }, p2));
      const disconnects: string[] = [];
      let probes = 0;
      ssh.on('disconnect', ({ cause }) => disconnects.push(cause.code));
      ssh.on('keepalive', () => probes++);
      await ssh.connect();
      const r = await ssh.exec('i=0; while [ $i -lt 60 ]; do echo line $i; i=$((i+1)); sleep 0.1; done');
      expect(r.exitCode).toBe(0);
      expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(60);
      // then an idle stretch: the probes (600 ms round trip) are answered in time
      await sleep(3_500);
      expect(disconnects).toEqual([]);
      expect(ssh.state).toBe('ready');
      expect(probes).toBeGreaterThanOrEqual(1);
      expect((await ssh.exec('echo still')).stdout).toBe('still\n');
      suite.figure('item 2: keep-alive probes answered over a 300 ms-delay link', probes);
    } finally {
      await p2.close();
    }
  });
});

describe('item 3: resets, clean closes, long outages', () => {
  it('the server closes the connection cleanly (sshd UnusedConnectionTimeout): disconnect, then reconnected', async () => {
    const server = await startSshd({ extraConfig: ['UnusedConnectionTimeout 1'] });
    try {
      const ssh = track(clientOptions(describeSshd(server), { reconnect: { minDelayMs: 50, maxDelayMs: 200 } }));
      const causes: string[] = [];
      ssh.on('disconnect', ({ cause }) => causes.push(cause.code));
      await ssh.connect();
      expect(await waitFor(() => causes.length >= 1, 10_000)).toBe(true);
      expect(causes[0]).toBe('ERR_SSH_CONNECTION_LOST');
      expect((await ssh.exec('echo after-clean-close')).stdout).toBe('after-clean-close\n');
      expect(ssh.health().reconnects).toBeGreaterThanOrEqual(1);
    } finally {
      await server.remove();
    }
  });

  it(`an outage of ${LONG ? 60 : 6} s (every connection refused): delays grow and are capped, queued work runs after; close() during backoff leaves no timer, socket or fd`, async () => {
    proxy.resume();
    const p3 = await FaultProxy.start({ host: info.host, port: info.port });
    try {
      const fds0 = openFds();
      const res0 = activeResources();
      const ssh = new SshClient(clientOptions(info, { reconnect: { minDelayMs: 100, maxDelayMs: 1_000, factor: 2 }, connectTimeoutMs: 2_000 }, p3));
      const delays: number[] = [];
      ssh.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
      await ssh.connect();
      p3.refuse(true);
      p3.reset();
      expect(await waitFor(() => ssh.state === 'reconnecting', 5_000)).toBe(true);
      const queued = ssh.exec('echo queued');
      await sleep(LONG ? 60_000 : 6_000);
      p3.refuse(false);
      expect((await queued).stdout).toBe('queued\n');
      expect(ssh.state).toBe('ready');
      // bases 100, 200, 400, 800, then capped at 1000; jitter x1-x2 keeps each delay in
      // [base, min(2 base, 1000)] (internal/backoff.ts): never below minDelayMs nor above maxDelayMs
      const bases = [100, 200, 400, 800];
      delays.forEach((d, i) => {
        const base = bases[i] ?? 1_000;
        expect(d).toBeGreaterThanOrEqual(base);
        expect(d).toBeLessThanOrEqual(Math.min(2 * base, 1_000));
      });
      expect(delays.length).toBeGreaterThanOrEqual(5);
      suite.figure(`item 3: reconnect attempts during a ${LONG ? 60 : 6} s outage`, delays.length);
      suite.figure('item 3: reconnect delays (ms)', delays.slice(0, 8).join(', ') + (delays.length > 8 ? ', ...' : ''));

      // close() during backoff
      p3.refuse(true);
      p3.reset();
      expect(await waitFor(() => ssh.state === 'reconnecting', 5_000)).toBe(true);
      const t0 = Date.now();
      await ssh.close();
      const closeMs = Date.now() - t0;
      expect(closeMs).toBeLessThan(1_000);
      suite.figure('item 3: close() during backoff returned after', `${closeMs} ms`);
      await p3.close();
      await sleep(100);
      const res1 = activeResources();
      expect(res1.Timeout ?? 0).toBeLessThanOrEqual(res0.Timeout ?? 0);
      expect(res1.TCPSocketWrap ?? 0).toBeLessThanOrEqual(res0.TCPSocketWrap ?? 0);
      expect(openFds()).toBeLessThanOrEqual(fds0);
      expect((await rejection(ssh.exec('true'))).code).toBe('ERR_SSH_CLOSED');
    } finally {
      await p3.close();
    }
  }, 120_000);
});

describe('item 4: stalled handshakes', () => {
  const cases: [string, (s: net.Socket) => void][] = [
    ['no banner', () => undefined],
    ['a partial banner', (s) => s.write('SSH-2.0-Open')],
    ['a stall after KEXINIT', (s) => s.write(Buffer.concat([Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), kexinitPacket()]))],
  ];
  for (const [name, behave] of cases) {
    it(`${name}: ERR_SSH_CONNECT_TIMEOUT, rejected once, not retried`, async () => {
      let sawClientKexinit = false;
      const srv = await rawServer((s) => {
        s.on('data', (d: Buffer) => {
          if (d.includes(Buffer.from('curve25519'))) sawClientKexinit = true;
        });
        behave(s);
      });
      try {
        const ssh = track(clientOptions(info, { port: srv.port, connectTimeoutMs: 700 }));
        const states: string[] = [];
        ssh.on('state', ({ state }) => states.push(state));
        const [a, b] = await Promise.all([settle(ssh.connect()), settle(ssh.exec('true'))]);
        expect(a.ok ? 'resolved' : a.code).toBe('ERR_SSH_CONNECT_TIMEOUT');
        expect(b.ok ? 'resolved' : b.code).toBe('ERR_SSH_CONNECT_TIMEOUT');
        expect(!a.ok && !b.ok && a.error === b.error).toBe(true); // one attempt, one error
        await sleep(1_000);
        expect(srv.count()).toBe(1);
        expect(states).toEqual(['connecting', 'idle']);
        if (name.includes('KEXINIT')) expect(sawClientKexinit).toBe(true);
      } finally {
        await srv.close();
      }
    });
  }
});

describe('item 5: MaxStartups', () => {
  it('reconnect attempts dropped by sshd (MaxStartups 1 held by an unauthenticated connection) are retried; connected once the slot frees', async () => {
    const server = await startSshd({ extraConfig: ['MaxStartups 1'] });
    const sinfo = describeSshd(server);
    const p5 = await FaultProxy.start({ host: sinfo.host, port: sinfo.port });
    let hog: net.Socket | undefined;
    try {
      const ssh = track(clientOptions(sinfo, { reconnect: { minDelayMs: 100, maxDelayMs: 300 }, connectTimeoutMs: 3_000 }, p5));
      const attempts: string[] = [];
      ssh.on('reconnecting', ({ cause }) => attempts.push(cause.code));
      await ssh.connect();
      // an unauthenticated connection takes the only startup slot (once sshd counts the client's
      // own connection as authenticated)
      await sleep(500);
      let hogClosed = false;
      hog = net.connect({ host: sinfo.host, port: sinfo.port });
      hog.on('error', () => undefined);
      hog.on('close', () => (hogClosed = true));
      await new Promise<void>((resolve) => hog!.once('data', () => resolve()));
      await sleep(300);
      expect(hogClosed).toBe(false);
      p5.reset();
      const got = await waitFor(() => attempts.length >= 4, 15_000);
      if (!got) console.log(attempts, ssh.state, server.logs().slice(-3000));
      expect(got).toBe(true);
      expect(ssh.state).toBe('reconnecting');
      hog.destroy();
      expect(await waitFor(() => ssh.state === 'ready', 10_000)).toBe(true);
      expect((await ssh.exec('echo slot')).stdout).toBe('slot\n');
      expect(server.logs()).toMatch(/MaxStartups|past Maxstartups|drop connection/i);
      suite.figure('item 5: reconnect attempts refused by MaxStartups before the slot freed', attempts.length - 1);
    } finally {
      hog?.destroy();
      await p5.close();
      await server.remove();
    }
  });
});

describe('item 6: host key changes between two connects', () => {
  it('ERR_SSH_HOST_KEY_MISMATCH before any auth packet; known_hosts untouched; no further retries', async () => {
    const a = await startSshd();
    const port = a.port;
    const kh = describeSshd(a).knownHostsPath;
    let b: SshdHandle | undefined;
    try {
      const ssh = new SshClient(clientOptions(describeSshd(a), { strictHostKeyChecking: 'accept-new', reconnect: { minDelayMs: 100, maxDelayMs: 200 } }));
      clients.push(ssh);
      let reconnecting = 0;
      const closes: (string | undefined)[] = [];
      ssh.on('reconnecting', () => reconnecting++);
      ssh.on('close', ({ cause }) => closes.push(cause?.code));
      await ssh.connect();
      const before = readFileSync(kh);
      const mtime = statSync(kh).mtimeMs;
      await a.stop();
      b = await startSshd({ port, extraConfig: ['LogLevel DEBUG1'] });
      const pending = settle(ssh.exec('true'));
      expect(await waitFor(() => ssh.state === 'closed', 15_000)).toBe(true);
      const err = await pending;
      expect(err.ok ? 'resolved' : err.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
      expect(closes).toEqual(['ERR_SSH_HOST_KEY_MISMATCH']);
      const n = reconnecting;
      await sleep(1_000);
      expect(reconnecting).toBe(n);
      expect(readFileSync(kh).equals(before)).toBe(true);
      expect(statSync(kh).mtimeMs).toBe(mtime);
      // sshd saw the key exchange, never an authentication request
      const logs = b.logs();
      expect(logs).toMatch(/Connection (closed|reset) by|kex|KEX/);
      expect(logs).not.toMatch(/userauth-request|Accepted|Failed publickey|Postponed/);
      expect((await rejection(ssh.exec('true'))).code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
    } finally {
      await a.remove();
      await b?.remove();
    }
  });
});

describe('item 7: server-side channel timeout', () => {
  // OpenSSH 9.2 names the type `session:command` (plain `session` matches nothing there). It also
  // closed channels opened in the same instant as the idle one (all at once, on its first check),
  // so the busy command starts a second later.
  it('ChannelTimeout session:command=2 closes the idle channel: that exec gets a typed error, the others and the connection carry on', async () => {
    const server = await startSshd({ extraConfig: ['ChannelTimeout session:command=2'] });
    try {
      const ssh = track(clientOptions(describeSshd(server)));
      const disconnects: string[] = [];
      ssh.on('disconnect', ({ cause }) => disconnects.push(cause.code));
      await ssh.connect();
      const idle = settle(ssh.exec('sleep 8'));
      await sleep(1_000);
      const busy = ssh.exec('i=0; while [ $i -lt 40 ]; do echo $i; i=$((i+1)); sleep 0.1; done');
      const i = await idle;
      expect(i.ok).toBe(false);
      if (!i.ok) {
        expect(i.error).toBeInstanceOf(SshError);
        expect(i.code).toBe('ERR_SSH_CONNECTION_LOST');
      }
      const r = await busy;
      expect(r.exitCode).toBe(0);
      expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(40);
      expect((await ssh.exec('echo next')).stdout).toBe('next\n');
      expect(server.logs()).toMatch(/closing after 2 seconds of inactivity/);
      expect(disconnects).toEqual([]);
      expect(ssh.state).toBe('ready');
      expect(ssh.health().reconnects).toBe(0);
    } finally {
      await server.remove();
    }
  });
});

describe('item 9: attempt epoch', () => {
  it('timers of dead links and failed attempts never touch the live connection', async () => {
    proxy.resume();
    const p9 = await FaultProxy.start({ host: info.host, port: info.port });
    try {
      // link 1 dies by keep-alive (its timers were live); attempts 1.. fail fast by RST while their
      // 3 s connect timers would still be pending; then a live link runs a 5 s command.
      const ssh = track(clientOptions(info, { keepaliveIntervalMs: 300, keepaliveCountMax: 1, connectTimeoutMs: 3_000, reconnect: { minDelayMs: 50, maxDelayMs: 100 } }, p9));
      const events: string[] = [];
      ssh.on('disconnect', ({ cause }) => events.push(`disconnect:${cause.code}`));
      ssh.on('ready', () => events.push('ready'));
      await ssh.connect();
      p9.blackhole();
      expect(await waitFor(() => ssh.state === 'reconnecting', 5_000)).toBe(true);
      p9.resume();
      p9.refuse(true);
      await sleep(500);
      p9.refuse(false);
      expect(await waitFor(() => ssh.state === 'ready', 5_000)).toBe(true);
      const r = await ssh.exec('sleep 5; echo survived');
      expect(r.stdout).toBe('survived\n');
      expect(events).toEqual(['ready', 'disconnect:ERR_SSH_KEEPALIVE_TIMEOUT', 'ready']);
      expect(ssh.health().disconnects).toBe(1);
    } finally {
      await p9.close();
    }
  }, 40_000);
});
