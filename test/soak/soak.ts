/**
 * Soak (issue 6 item 14): forced reconnect cycles with the SFTP session restored each time, plus
 * many execs, while watching for leaks: heap used after GC, open fds (`/proc/self/fd`), active
 * resources (`process.getActiveResourcesInfo()`), listener counts on the client, its ssh2 client
 * and `process`, and `MaxListenersExceededWarning`s.
 *
 * `npm run soak` runs the full size (1,000 cycles, 10,000 execs; `SOAK_CYCLES` / `SOAK_EXECS`
 * override) against its own sshd and prints the figures at the start and the end; exit code 1 when
 * a figure grew past its tolerance. `test/reliability/soak.test.ts` runs a short variant
 * inside `npm test` (and the full one with `SOAK_FULL=1`).
 *
 * What is restored after each reconnect is a list of {@link Restorable}s (each: set up once,
 * then checked after every cycle): {@link sftpRestorable} by default; `npm run soak` and the
 * reliability test add {@link forwardRestorable} (a local and a remote forward, one round trip
 * each per cycle).
 */
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SshClient, type LocalForward, type RemoteForward } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startSshd, describeSshd, type SshdInfo } from '../helpers/sshd.js';
import { clientOptions } from '../helpers/client.js';

/** Something the client must bring back after every reconnect. */
export interface Restorable {
  name: string;
  /** Called once, on the first link. */
  setup(ssh: SshClient): Promise<void>;
  /** Called after every reconnect: resolves when the thing works again (throws otherwise). */
  check(ssh: SshClient): Promise<void>;
  /** Called once at the end. */
  teardown?(ssh: SshClient): Promise<void>;
}

/** The SFTP session: reopened by the client after a reconnect, checked with a stat. */
export const sftpRestorable: Restorable = {
  name: 'sftp session',
  async setup(ssh) {
    await (await ssh.sftp()).stat('.', { timeoutMs: 10_000 });
  },
  async check(ssh) {
    const st = await (await ssh.sftp()).stat('.', { timeoutMs: 10_000 });
    if (st.type !== 'directory') throw new Error('sftp stat of the home directory is not a directory');
  },
};

/** Options of {@link forwardRestorable}. */
export interface ForwardRestorableOptions {
  /**
   * Also keep a remote forward (server port -> a local echo server) and check it after every
   * reconnect. It needs the server to free the dead session's port quickly: the soak's
   * `FaultProxy.reset()` resets the server side too, so sshd drops the session at once (a
   * silent drop would need sshd `ClientAliveInterval`). @default true
   */
  remote?: boolean;
  /** How long to wait for the remote forward to be up again after a reconnect, in ms. @default 20000 */
  upWaitMs?: number;
}

/** A {@link Restorable} of forwards, with what it checked so far. */
export interface ForwardRestorable extends Restorable {
  /** Round trips carried (and checked) through the forwards so far. */
  roundTrips(): number;
  /** The longest wait, in ms, from the start of a check until the remote forward was up again (0 without one). */
  slowestRemoteUpMs(): number;
}

/** Sends `msg` to `127.0.0.1:port`, reads the echo, closes; rejects unless the echo matches (bounded: 10 s). */
function echoRoundTrip(port: number, msg: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let out = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`round trip through port ${port} timed out (got '${out}')`));
    }, 10_000);
    s.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.length >= msg.length) s.end();
    });
    s.on('error', (e) => {
      clearTimeout(t);
      reject(new Error(`round trip through port ${port} failed: ${e.message}`));
    });
    s.on('close', () => {
      clearTimeout(t);
      if (out === msg) resolve();
      else reject(new Error(`round trip through port ${port}: sent '${msg}', got '${out}'`));
    });
    s.write(msg);
  });
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Forwards kept across reconnects: a local forward (its listener stays bound) and, unless
 * `remote: false`, a remote forward (requested again on its port after each reconnect), both to
 * an echo server of its own. Each check carries one round trip through each, then waits until
 * no connection is left open on either and checks the client still lists exactly these forwards
 * on the same ports (handles stay flat).
 */
export function forwardRestorable(options: ForwardRestorableOptions = {}): ForwardRestorable {
  const withRemote = options.remote ?? true;
  const upWaitMs = options.upWaitMs ?? 20_000;
  const sockets = new Set<net.Socket>();
  const echo = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
    sock.pipe(sock);
  });
  let local: LocalForward | undefined;
  let remote: RemoteForward | undefined;
  let remotePort = 0;
  let trips = 0;
  let slowestUpMs = 0;
  const once = async (ssh: SshClient): Promise<void> => {
    if (!local) throw new Error('forwardRestorable: check() before setup()');
    await echoRoundTrip(local.localPort, `local ${trips}`);
    trips++;
    if (remote) {
      const r = remote;
      const t0 = Date.now();
      await until(() => r.state === 'up', upWaitMs, `the remote forward up again (state ${r.state})`);
      slowestUpMs = Math.max(slowestUpMs, Date.now() - t0);
      if (r.remotePort !== remotePort) throw new Error(`the remote forward moved from port ${remotePort} to ${r.remotePort}`);
      await echoRoundTrip(r.remotePort, `remote ${trips}`);
      trips++;
    }
    const l = local;
    await until(() => l.stats().connectionsActive === 0 && (remote?.stats().connectionsActive ?? 0) === 0, 5_000, 'the forwarded connections closed');
    const listed = ssh.health().forwards.map((f) => f.id);
    const expected = remote ? 2 : 1;
    if (listed.length !== expected) throw new Error(`expected ${expected} forwards, the client lists ${listed.join(', ')}`);
  };
  return {
    name: withRemote ? 'local + remote forward' : 'local forward',
    async setup(ssh) {
      await new Promise<void>((resolve, reject) => {
        echo.once('error', reject);
        echo.listen(0, '127.0.0.1', () => {
          echo.off('error', reject);
          resolve();
        });
      });
      const echoPort = (echo.address() as net.AddressInfo).port;
      local = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: echoPort });
      if (withRemote) {
        remote = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localHost: '127.0.0.1', localPort: echoPort });
        remotePort = remote.remotePort;
      }
      await once(ssh);
    },
    check: once,
    async teardown() {
      await remote?.close();
      await local?.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => echo.close(() => r()));
    },
    roundTrips: () => trips,
    slowestRemoteUpMs: () => slowestUpMs,
  };
}

/** One measurement of the process. */
export interface Snapshot {
  heapUsedMiB: number;
  fds: number;
  resources: Record<string, number>;
  listeners: Record<string, number>;
}

/** Limits on growth between the first and the last snapshot. */
export const TOLERANCE = Object.freeze({
  /** Heap used after GC may grow by this many MiB (JIT, caches, the figures themselves). */
  heapMiB: 8,
  /** Open file descriptors may grow by this many. */
  fds: 3,
  /** Each resource type may grow by this many (a timer or socket in flight at the moment of measuring). */
  resources: 2,
  /** Listener counts must not grow at all. */
  listeners: 0,
});

/** Options of {@link runSoak}. */
export interface SoakOptions {
  server: SshdInfo;
  cycles: number;
  execs: number;
  restorables?: Restorable[];
  log?: (line: string) => void;
}

/** What {@link runSoak} measured. */
export interface SoakResult {
  cyclesSurvived: number;
  execsRun: number;
  start: Snapshot;
  end: Snapshot;
  warnings: string[];
  /** Figures that grew past {@link TOLERANCE}, as text; empty when flat. */
  leaks: string[];
  seconds: number;
}

function gcFn(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function emitterCounts(prefix: string, e: { eventNames(): (string | symbol)[]; listenerCount(n: string | symbol): number }): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of e.eventNames()) out[`${prefix}.${String(n)}`] = e.listenerCount(n);
  return out;
}

async function snapshot(ssh: SshClient): Promise<Snapshot> {
  const gc = gcFn();
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const resources: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  const link = await ssh.link();
  return {
    heapUsedMiB: Math.round((process.memoryUsage().heapUsed / 1024 / 1024) * 10) / 10,
    fds: readdirSync('/proc/self/fd').length,
    resources,
    listeners: { ...emitterCounts('client', ssh), ...emitterCounts('ssh2', link.client), ...emitterCounts('process', process) },
  };
}

function compare(a: Snapshot, b: Snapshot): string[] {
  const leaks: string[] = [];
  if (b.heapUsedMiB - a.heapUsedMiB > TOLERANCE.heapMiB) leaks.push(`heap used ${a.heapUsedMiB} -> ${b.heapUsedMiB} MiB`);
  if (b.fds - a.fds > TOLERANCE.fds) leaks.push(`fds ${a.fds} -> ${b.fds}`);
  for (const [k, v] of Object.entries(b.resources)) if (v - (a.resources[k] ?? 0) > TOLERANCE.resources) leaks.push(`resource ${k} ${a.resources[k] ?? 0} -> ${v}`);
  for (const [k, v] of Object.entries(b.listeners)) if (v - (a.listeners[k] ?? 0) > TOLERANCE.listeners) leaks.push(`listeners ${k} ${a.listeners[k] ?? 0} -> ${v}`);
  return leaks;
}

export function formatSnapshot(s: Snapshot): string {
  const res = Object.entries(s.resources)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const lis = Object.values(s.listeners).reduce((x, y) => x + y, 0);
  return `heapUsed ${s.heapUsedMiB} MiB, fds ${s.fds}, resources [${res}], listeners ${lis} total`;
}

/**
 * Runs the soak against `server` through a fault proxy (each cycle: `reset()` every connection,
 * wait for the client to reconnect, check every restorable), then `execs` execs in batches of 20.
 */
export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const log = o.log ?? (() => undefined);
  const restorables = o.restorables ?? [sftpRestorable];
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(`${w.name}: ${w.message}`);
  };
  process.on('warning', onWarning);
  const proxy = await FaultProxy.start({ host: o.server.host, port: o.server.port });
  const ssh = new SshClient(clientOptions(o.server, { reconnect: { minDelayMs: 1, maxDelayMs: 20 }, connectTimeoutMs: 10_000 }, proxy));
  const t0 = Date.now();
  let cycles = 0;
  let execs = 0;
  let tornDown = false;
  try {
    await ssh.connect();
    for (const r of restorables) await r.setup(ssh);
    // warm up (JIT, lazily created state), then take the baseline
    for (let i = 0; i < 5; i++) await cycle();
    await Promise.all(Array.from({ length: 20 }, () => ssh.exec('true')));
    const start = await snapshot(ssh);
    log(`soak start: ${formatSnapshot(start)}`);
    async function cycle(): Promise<void> {
      let onReady: () => void = () => undefined;
      const ready = new Promise<void>((resolve) => {
        onReady = resolve;
        ssh.once('ready', onReady);
      });
      proxy.reset();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no reconnect within 30 s after cycle ${cycles} (state ${ssh.state})`)), 30_000);
      });
      try {
        await Promise.race([ready, timeout]);
      } finally {
        clearTimeout(timer);
        ssh.off('ready', onReady);
      }
      for (const r of restorables) await r.check(ssh);
    }
    for (let i = 0; i < o.cycles; i++) {
      await cycle();
      cycles++;
      if ((i + 1) % 100 === 0) log(`  ${i + 1} cycles`);
    }
    const BATCH = 20;
    for (let i = 0; i < o.execs; i += BATCH) {
      const n = Math.min(BATCH, o.execs - i);
      const rs = await Promise.all(Array.from({ length: n }, (_, j) => ssh.exec(['echo', String(i + j)])));
      rs.forEach((r, j) => {
        if (r.stdout !== `${i + j}\n` || r.exitCode !== 0) throw new Error(`exec ${i + j} returned ${JSON.stringify(r)}`);
      });
      execs += n;
      if (execs % 1000 === 0) log(`  ${execs} execs`);
    }
    const end = await snapshot(ssh);
    log(`soak end:   ${formatSnapshot(end)}`);
    tornDown = true;
    for (const r of restorables) await r.teardown?.(ssh);
    const leaks = compare(start, end);
    return { cyclesSurvived: cycles, execsRun: execs, start, end, warnings, leaks, seconds: Math.round((Date.now() - t0) / 100) / 10 };
  } finally {
    process.off('warning', onWarning);
    // after a failure too: restorables may hold servers of their own
    if (!tornDown) for (const r of restorables) await r.teardown?.(ssh).catch(() => undefined);
    await ssh.close();
    await proxy.close();
  }
}

async function main(): Promise<void> {
  const cycles = Number(process.env.SOAK_CYCLES ?? 1_000);
  const execs = Number(process.env.SOAK_EXECS ?? 10_000);
  const server = await startSshd();
  try {
    console.log(`soak: ${cycles} forced reconnect cycles (SFTP, a local and a remote forward restored each time), then ${execs} execs`);
    const forwards = forwardRestorable();
    const r = await runSoak({ server: describeSshd(server), cycles, execs, restorables: [sftpRestorable, forwards], log: (l) => console.log(l) });
    console.log(`soak: ${forwards.roundTrips()} round trips through the forwards`);
    console.log(`soak: ${r.cyclesSurvived} cycles, ${r.execsRun} execs in ${r.seconds} s; tolerance ${JSON.stringify(TOLERANCE)}`);
    for (const w of r.warnings) console.log(`warning: ${w}`);
    for (const l of r.leaks) console.log(`LEAK: ${l}`);
    process.exitCode = r.leaks.length > 0 || r.warnings.length > 0 ? 1 : 0;
  } finally {
    await server.remove();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
