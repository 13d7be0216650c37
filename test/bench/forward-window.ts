/**
 * Forward windows on a long link (issue 18 item 2): the forwarders of test/bench/forward.ts
 * reach the sshd through a delay-line proxy (test/helpers/fault-proxy.ts `delay(ms)`: every chunk
 * in both directions forwarded `ms` later, so RTT ~= 2 x ms + loopback; its queue is raised so it
 * does not cap throughput). Sections:
 *
 * 1. **proxy check**: the 1-byte TCP round trip through a proxy with the same delay, and its bulk
 *    throughput without SSH (it must be far above the rows below).
 * 2. **window sweep**: raw ssh2 `forwardOut` + `pipe` with src/ssh2/window.ts `eagerWindow` of
 *    2/4/8/16 MiB (top-up after 1/8 consumed), and 8 MiB with 1/4 and 1/16: what justifies
 *    carry.ts `FORWARD_WINDOW`.
 * 3. **compare**: ssh-tether (eager window) vs `ssh -L` (OpenSSH) vs plain raw ssh2 `forwardOut`
 *    (ssh2's own 2 MiB window), download and upload, interleaved per run.
 * 4. **soak**: 50 downloads of 64 MiB through ssh-tether: min / median / max MB/s (a slow
 *    outlier would show as a max-to-min gap).
 * 5. **loopback**: the same compare with no delay (no worse than before).
 *
 * `BENCH_QUICK=1`: 8 MiB transfers, 1 run, 5 soak transfers (checks that it works; numbers
 * mean little). `BENCH_WINDOW_DELAY_MS` (default 25) sets the one-way delay.
 *
 * Run alone: `node --import ./scripts/ts-node-register.mjs test/bench/forward-window.ts`.
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { eagerWindow } from '../../src/ssh2/window.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { knownHostsFor } from '../helpers/client.js';
import { startSshd } from '../helpers/sshd.js';
import { opensshForwarder, rawForwarder, startEndpoints, tetherForwarder, timed, type Endpoints, type Forwarder } from './forward.js';
import { hostKeyVerifier, iterations, median, nowMs, pinnedAlgorithms, ratioTarget, runAsRowBenchChild, targetOf, type BenchTarget, type Row, type TargetCheck } from './lib.js';

const MiB = 1024 * 1024;
const TETHER = 'ssh-tether';
const OPENSSH = 'ssh -L (OpenSSH)';

/** Raw ssh2 `forwardOut` + `pipe`, each channel given `eagerWindow(size, fraction)`. */
function eagerRawForwarder(t: BenchTarget, sizeBytes: number, topUpFraction: number): Forwarder {
  let client: ssh2.Client | undefined;
  const tool = `raw ssh2 + eagerWindow ${sizeBytes / MiB} MiB, top-up 1/${Math.round(1 / topUpFraction)}`;
  const connected = (): Promise<ssh2.Client> =>
    new Promise((resolve, reject) => {
      const c = new ssh2.Client();
      c.on('error', reject);
      c.on('ready', () => {
        c.setNoDelay(true);
        resolve(c);
      });
      c.connect({
        host: t.host,
        port: t.port,
        username: t.username,
        privateKey: t.privateKey,
        algorithms: pinnedAlgorithms() as ssh2.Algorithms,
        hostVerifier: hostKeyVerifier(t),
        readyTimeout: 10_000,
      });
    });
  return {
    tool,
    async open(targetPort) {
      client ??= await connected();
      const c = client;
      const sockets = new Set<net.Socket>();
      const server = net.createServer((s) => {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
        c.forwardOut('127.0.0.1', 0, '127.0.0.1', targetPort, (err, ch) => {
          if (err) return s.destroy();
          ch.on('error', () => s.destroy());
          ch.on('close', () => s.destroy());
          s.pipe(ch).pipe(s);
          eagerWindow(ch, { sizeBytes, topUpFraction, sink: s });
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return {
        port: (server.address() as net.AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      };
    },
    extraCpu: () => 0,
    shutdown() {
      client?.end();
      return Promise.resolve();
    },
  };
}

/** Median 1-byte round trip (ms) over `n` through a fresh delay proxy in front of the echo endpoint. */
async function proxyRtt(echoPort: number, delayMs: number, n: number): Promise<number> {
  const p = await FaultProxy.start({ host: '127.0.0.1', port: echoPort }, { queueHighWaterBytes: 256 * MiB });
  p.delay(delayMs);
  try {
    const s = net.connect({ port: p.port, host: '127.0.0.1', noDelay: true });
    await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
    const rtts: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = nowMs();
      await new Promise<void>((r) => {
        s.once('data', () => r());
        s.write('x');
      });
      rtts.push(nowMs() - t0);
    }
    s.destroy();
    return median(rtts);
  } finally {
    await p.close();
  }
}

/** MB/s of one download from the source endpoint through a fresh delay proxy (no SSH). */
async function proxyBulk(ep: Endpoints, delayMs: number, bytes: number): Promise<number> {
  const p = await FaultProxy.start({ host: '127.0.0.1', port: ep.source }, { queueHighWaterBytes: 256 * MiB });
  p.delay(delayMs);
  try {
    const t0 = nowMs();
    const got = await ep.download(p.port);
    if (got !== bytes) throw new Error(`proxy check: downloaded ${got} of ${bytes}`);
    return bytes / 1e6 / ((nowMs() - t0) / 1000);
  } finally {
    await p.close();
  }
}

type Opened = Awaited<ReturnType<Forwarder['open']>>;

/** Download (and optionally upload) MB/s per forwarder, `runs` times, interleaved. */
async function measure(fs: Forwarder[], ep: Endpoints, bytes: number, runs: number, upload: boolean): Promise<Map<string, { down: number[]; up: number[] }>> {
  const opened = new Map<string, { up: Opened; down: Opened }>();
  const out = new Map<string, { down: number[]; up: number[] }>();
  for (const f of fs) {
    opened.set(f.tool, { up: await f.open(ep.sink), down: await f.open(ep.source) });
    out.set(f.tool, { down: [], up: [] });
  }
  for (let i = 0; i < runs; i++) {
    for (const f of fs) {
      const fw = opened.get(f.tool)!;
      const s = out.get(f.tool)!;
      let got = 0;
      const d = await timed(f, async () => {
        got = await ep.download(fw.down.port);
      });
      if (got !== bytes) throw new Error(`${f.tool}: downloaded ${got} of ${bytes} bytes`);
      s.down.push(bytes / 1e6 / d.seconds);
      if (upload) {
        const u = await timed(f, () => ep.upload(fw.up.port, bytes));
        s.up.push(bytes / 1e6 / u.seconds);
      }
    }
  }
  for (const fw of opened.values()) {
    await fw.up.close();
    await fw.down.close();
  }
  return out;
}

const r1 = (x: number): number => Math.round(x * 10) / 10;

/** Issue 18 item 2's targets at RTT ~50 ms (same run): download >= 2x `ssh -L`, upload >= 1.0x. */
export function targetsOf(rows: readonly Row[]): TargetCheck[] {
  return [
    ratioTarget(rows, 'forward download at RTT ~50 ms >= 2x ssh -L (MB/s)', /^delay: download /, TETHER, OPENSSH, 'mbPerSec', 2.0),
    ratioTarget(rows, 'forward upload at RTT ~50 ms >= 1.0x ssh -L (MB/s)', /^delay: upload /, TETHER, OPENSSH, 'mbPerSec', 1.0),
    ratioTarget(rows, 'loopback forward download >= 1.0x raw ssh2 (MB/s)', /^loopback: download /, TETHER, 'raw ssh2 forwardOut + pipe', 'mbPerSec', 1.0),
  ];
}

/**
 * Runs the forward-window benchmark against `target` (see the module comment).
 *
 * @returns rows named `proxy: ...`, `sweep: download N MiB`, `delay: download|upload N MiB`,
 *   `soak: 50 x download 64 MiB` (with min/max MB/s) and `loopback: download|upload N MiB`.
 */
export async function benchForwardWindow(target: BenchTarget): Promise<Row[]> {
  const quick = target.quick;
  const delayMs = Number(process.env.BENCH_WINDOW_DELAY_MS ?? 25);
  const bytes = (quick ? 8 : 64) * MiB;
  const runs = iterations(5, 1);
  const soakN = quick ? 5 : 50;
  const rows: Row[] = [];
  const ep = await startEndpoints(bytes);
  const proxy = await FaultProxy.start({ host: target.host, port: target.port }, { queueHighWaterBytes: 256 * MiB });
  proxy.delay(delayMs);
  // the same sshd, reached through the proxy (its host key recorded under the proxy's port)
  const via: BenchTarget = { ...target, port: proxy.port, knownHostsPath: knownHostsFor(target, target.host, proxy.port) };
  const all: Forwarder[] = [];
  const track = (f: Forwarder): Forwarder => (all.push(f), f);
  try {
    // 1. the proxy itself
    rows.push({ name: `proxy: 1-byte TCP round trip, delay ${delayMs} ms each way`, tool: 'delay-line proxy', rttMs: r1(await proxyRtt(ep.echo, delayMs, quick ? 5 : 20)) });
    rows.push({ name: `proxy: download ${bytes / MiB} MiB without SSH`, tool: 'delay-line proxy', mbPerSec: r1(await proxyBulk(ep, delayMs, bytes)) });

    // 2. the sweep
    const sweep = [
      [2, 1 / 8],
      [4, 1 / 8],
      [8, 1 / 8],
      [16, 1 / 8],
      [8, 1 / 4],
      [8, 1 / 16],
    ].map(([mib, f]) => track(eagerRawForwarder(via, mib! * MiB, f!)));
    const plainRaw = track(rawForwarder(via));
    const sw = await measure([plainRaw, ...sweep], ep, bytes, runs, false);
    for (const f of [plainRaw, ...sweep]) {
      const d = sw.get(f.tool)!.down;
      rows.push({ name: `sweep: download ${bytes / MiB} MiB`, tool: f.tool, mbPerSec: r1(median(d)), minMbPerSec: r1(Math.min(...d)), maxMbPerSec: r1(Math.max(...d)) });
    }
    for (const f of [plainRaw, ...sweep]) await f.shutdown();

    // 3. compare at delay
    const cmp = [track(tetherForwarder(via)), track(opensshForwarder(via)), track(rawForwarder(via))];
    const cm = await measure(cmp, ep, bytes, runs, true);
    for (const kind of ['download', 'upload'] as const) {
      for (const f of cmp) {
        const s = cm.get(f.tool)!;
        rows.push({ name: `delay: ${kind} ${bytes / MiB} MiB`, tool: f.tool, mbPerSec: r1(median(kind === 'download' ? s.down : s.up)) });
      }
    }

    // 4. soak: ssh-tether only, one forward, many downloads
    const tether = cmp[0]!;
    const fw = await tether.open(ep.source);
    const soak: number[] = [];
    for (let i = 0; i < soakN; i++) {
      const t0 = nowMs();
      const got = await ep.download(fw.port);
      if (got !== bytes) throw new Error(`soak: downloaded ${got} of ${bytes} bytes`);
      soak.push(bytes / 1e6 / ((nowMs() - t0) / 1000));
    }
    await fw.close();
    rows.push({
      name: `soak: ${soakN} x download ${bytes / MiB} MiB`,
      tool: TETHER,
      mbPerSec: r1(median(soak)),
      minMbPerSec: r1(Math.min(...soak)),
      maxMbPerSec: r1(Math.max(...soak)),
      notes: `below half the median: ${soak.filter((x) => x < median(soak) / 2).length}`,
    });
    for (const f of cmp) await f.shutdown();

    // 5. loopback (no proxy)
    const loop = [track(tetherForwarder(target)), track(opensshForwarder(target)), track(rawForwarder(target))];
    const lm = await measure(loop, ep, bytes, runs, true);
    for (const kind of ['download', 'upload'] as const) {
      for (const f of loop) {
        const s = lm.get(f.tool)!;
        rows.push({ name: `loopback: ${kind} ${bytes / MiB} MiB`, tool: f.tool, mbPerSec: r1(median(kind === 'download' ? s.down : s.up)) });
      }
    }
  } finally {
    for (const f of all) await f.shutdown().catch(() => undefined);
    await proxy.close();
    await ep.close();
  }
  return rows;
}

// run alone (or as one of the processes `npm run bench` starts)
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]) && !(await runAsRowBenchChild(benchForwardWindow))) {
  const sshd = await startSshd();
  try {
    const rows = await benchForwardWindow(targetOf(sshd, process.env.BENCH_QUICK === '1'));
    console.table(rows);
    for (const t of targetsOf(rows)) console.log(`${t.pass ? 'PASS' : 'FAIL'} ${t.name}: ${t.detail}`);
  } finally {
    // sshd's process handle is unref'd: hold the event loop open while it stops (as run.ts does)
    const hold = setInterval(() => undefined, 1_000);
    await sshd.stop();
    clearInterval(hold);
  }
}
