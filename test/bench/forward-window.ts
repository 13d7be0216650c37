/**
 * Forward windows (issue 18 item 2): what justifies src/forward/carry.ts `FORWARD_WINDOW`, and
 * what it costs on loopback. ssh-tether's `forwardLocal` (and the forwarders of
 * test/bench/forward.ts) reach the sshd through the delay line of test/bench/delay-line.ts (a
 * child process: every chunk delivered D ms later each way, throughput not limited; RTT ~= 2 x D).
 * Sections (row names start with the section):
 *
 * 1. **delay line**: its measured 1-byte round trip and a plain TCP download through it.
 * 2. **window**: ssh-tether downloads with the forward window set to ssh2's own rule (2 MiB,
 *    refilled below half) and to eager windows of 4 MiB (top-up after 1/8 and 1/64) and 5/6/8 MiB (1/64), interleaved
 *    round by round (carry.ts `forwardWindowSetting`, read by new channels): MB/s, time p50/p90/
 *    max, slow outliers (time > 2x the median), and the sshd CPU per GiB (median and max; a slow
 *    run in which sshd burned several times its CPU was seen at 16 MiB).
 * 3. **soak**: `BENCH_SOAK_N` (default 50) downloads and as many uploads with the default window
 *    (carry.ts `forwardWindowFor`: sized to the link's round trip, `FORWARD_WINDOW` = 5 MiB, top-up 1/64, at
 *    RTT ~50 ms),
 *    alternating: the same columns.
 * 4. **delay**: ssh-tether vs `ssh -L` (OpenSSH) vs raw ssh2 `forwardOut` + `pipe`, download and
 *    upload, interleaved; per-round ratios in the notes. The targets: download >= 2x `ssh -L`,
 *    upload >= 1.0x.
 * 5. **loopback**: no delay line, 256 MiB, interleaved rounds: ssh-tether with the default
 *    window (on loopback: ssh2's rule), with a fixed 8 MiB eager window (the default before the
 *    RTT sizing), with ssh2's rule forced, raw ssh2 and `ssh -L`, with client and sshd CPU per
 *    GiB and per-round ratios to raw ssh2: "loopback no worse than today".
 *
 * `BENCH_WINDOW_SIZES=0,4,4:64,5:64,6:64,8:64` (the default; MiB, top-up 1/8; `4:32` = 4 MiB, top-up 1/32; 0 = ssh2's rule) and `BENCH_WINDOW_ROUNDS=12` set the
 * window section. `BENCH_LOOP_WINDOWS=2:8,8:2` adds ssh-tether rows with those windows (MiB : 1/top-up fraction) to
 * the loopback section.
 *
 * `BENCH_QUICK=1`: 8/32 MiB transfers, 2 rounds, 5 soak transfers (a smoke run).
 * `BENCH_WINDOW_DELAY_MS` (default 25) sets the one-way delay; `BENCH_WINDOW_SECTIONS=window,soak`
 * runs only the named sections (delay line is always measured).
 *
 * Run alone: `nice -n 10 node --import ./scripts/ts-node-register.mjs test/bench/forward-window.ts`,
 * or `nice -n 10 npm run bench -- forward-window` (writes RESULTS.md). About 7 minutes.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { forwardWindowSetting } from '../../src/forward/carry.js';
import { knownHostsFor } from '../helpers/client.js';
import { startSshd } from '../helpers/sshd.js';
import { spawnDelayLine, type DelayLine } from './delay-line.js';
import { opensshForwarder, rawForwarder, startEndpoints, tetherForwarder, type Endpoints, type Forwarder } from './forward.js';
import { verifyDelayLine } from './latency.js';
import { cpuSeconds, median, percentile, ratioTarget, runAsRowBenchChild, targetOf, trackChild, treeCpuSeconds, type BenchTarget, type Row, type TargetCheck } from './lib.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TETHER = 'ssh-tether';
const OPENSSH = 'ssh -L (OpenSSH)';
const RAW = 'raw ssh2 forwardOut + pipe';
const TETHER_OFF = "ssh-tether, eager window off (ssh2's rule)";
/** The default before the RTT sizing: 8 MiB eager on every forward channel. */
const OLD_FIXED = Object.freeze({ sizeBytes: 8 * MiB, topUpFraction: 1 / 8 });
const TETHER_FIXED = 'ssh-tether, eager 8 MiB always (the default before the RTT sizing)';

type Win = Readonly<{ sizeBytes: number; topUpFraction: number }> | null | 'auto';
const winName = (w: Win): string =>
  w === 'auto' ? 'window sized to the RTT (default)' : w === null ? "ssh2's rule (2 MiB, refill below half)" : `eager ${w.sizeBytes / MiB} MiB, top-up 1/${Math.round(1 / w.topUpFraction)}`;

const r1 = (x: number): number => Math.round(x * 10) / 10;
const r2 = (x: number): number => Math.round(x * 100) / 100;

/** `BENCH_LOOP_WINDOWS=2:8,8:2` (MiB:1/fraction): more ssh-tether windows for the loopback A/B. */
function extraWindows(): Win[] {
  return (process.env.BENCH_LOOP_WINDOWS ?? '')
    .split(',')
    .map((s) => s.trim().split(':').map(Number))
    .filter((p): p is [number, number] => p.length === 2 && p.every((x) => Number.isFinite(x) && x > 0))
    .map(([mib, k]) => ({ sizeBytes: Math.round(mib * MiB), topUpFraction: 1 / k }));
}

/** One transfer: wall seconds, client CPU s (this process + the tool's own process), sshd CPU s. */
interface Sample {
  seconds: number;
  cpu: number;
  sshdCpu: number;
}

/** `xs` rotated left by `k`. */
function rotate<T>(xs: readonly T[], k: number): T[] {
  const r = xs.length === 0 ? 0 : k % xs.length;
  return [...xs.slice(r), ...xs.slice(0, r)];
}

async function sample(target: BenchTarget, f: Forwarder | undefined, fn: () => Promise<void>): Promise<Sample> {
  const c0 = cpuSeconds() + (f?.extraCpu() ?? 0);
  const s0 = treeCpuSeconds(target.sshdPid);
  const t0 = performance.now();
  await fn();
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, cpu: cpuSeconds() + (f?.extraCpu() ?? 0) - c0, sshdCpu: treeCpuSeconds(target.sshdPid) - s0 };
}

/** A row summarising `xs` transfers of `bytes` each: MB/s at the median time, p50/p90/max time, outliers, sshd CPU/GiB. */
function soakRow(name: string, tool: string, xs: readonly Sample[], bytes: number, notes = ''): Row {
  const t = xs.map((x) => x.seconds);
  const med = median(t);
  const outliers = t.filter((x) => x > 2 * med).length;
  const sshd = xs.map((x) => (x.sshdCpu * GiB) / bytes);
  return {
    name,
    tool,
    mbPerSec: r1(bytes / 1e6 / med),
    n: xs.length,
    p50Ms: Math.round(med * 1000),
    p90Ms: Math.round(percentile(t, 90) * 1000),
    maxMs: Math.round(Math.max(...t) * 1000),
    outliers,
    sshdCpuSecPerGiB: r2(median(sshd)),
    sshdCpuMaxSecPerGiB: r2(Math.max(...sshd)),
    notes: `outlier = time > 2x the median${notes ? `; ${notes}` : ''}`,
  };
}

/** Issue 18 item 2's targets (same run): at RTT ~50 ms download >= 2x `ssh -L`, upload >= 1.0x; loopback no worse. */
export function targetsOf(rows: readonly Row[]): TargetCheck[] {
  const soak = rows.filter((r) => r.name.startsWith('soak:'));
  const soakOutliers = soak.reduce((a, r) => a + (typeof r.outliers === 'number' ? r.outliers : 0), 0);
  return [
    ratioTarget(rows, 'forward download at RTT ~50 ms >= 2x ssh -L (MB/s)', /^delay .*: download /, TETHER, OPENSSH, 'mbPerSec', 2.0),
    ratioTarget(rows, 'forward upload at RTT ~50 ms >= 1.0x ssh -L (MB/s)', /^delay .*: upload /, TETHER, OPENSSH, 'mbPerSec', 1.0),
    {
      name: 'soak at RTT ~50 ms with the current window: no slow outliers (time > 2x median)',
      pass: soak.length > 0 && soakOutliers === 0,
      detail: soak.length > 0 ? soak.map((r) => `${r.name}: ${String(r.outliers)} of ${String(r.n)}, max ${String(r.maxMs)} ms vs p50 ${String(r.p50Ms)} ms`).join('; ') : 'not measured',
    },
    ratioTarget(rows, 'loopback forward download >= 1.0x raw ssh2 (MB/s)', /^loopback: download /, TETHER, RAW, 'mbPerSec', 1.0),
    ratioTarget(rows, 'loopback forward upload >= 1.0x raw ssh2 (MB/s)', /^loopback: upload /, TETHER, RAW, 'mbPerSec', 1.0),
  ];
}

/** A forward per tool to the source and the sink, opened once. */
interface Opened {
  tool: string;
  f: Forwarder;
  down: number;
  up: number;
  /** Run before each transfer (selects the window for the next channel). */
  before?: () => void;
  close(): Promise<void>;
}

async function openAll(tools: { tool: string; f: Forwarder; before?: () => void }[], ep: Endpoints): Promise<Opened[]> {
  const out: Opened[] = [];
  for (const t of tools) {
    t.before?.();
    const down = await t.f.open(ep.source);
    const up = await t.f.open(ep.sink);
    out.push({
      tool: t.tool,
      f: t.f,
      down: down.port,
      up: up.port,
      ...(t.before ? { before: t.before } : {}),
      close: async () => {
        await down.close();
        await up.close();
      },
    });
  }
  return out;
}

async function download(target: BenchTarget, o: Opened, ep: Endpoints, bytes: number): Promise<Sample> {
  o.before?.();
  return sample(target, o.f, async () => {
    const got = await ep.download(o.down);
    if (got !== bytes) throw new Error(`${o.tool}: downloaded ${got} of ${bytes} bytes`);
  });
}

async function upload(target: BenchTarget, o: Opened, ep: Endpoints, bytes: number): Promise<Sample> {
  o.before?.();
  return sample(target, o.f, () => ep.upload(o.up, bytes));
}

/** Interleaved rounds of download + upload for every tool; rows with medians and per-round ratios of each tool to `base`. */
async function compare(target: BenchTarget, label: string, opened: Opened[], ep: Endpoints, bytes: number, rounds: number, base: string): Promise<Row[]> {
  const got = new Map<string, { down: Sample[]; up: Sample[] }>(opened.map((o) => [o.tool, { down: [], up: [] }]));
  for (let r = 0; r < rounds; r++) {
    for (const o of rotate(opened, r)) got.get(o.tool)!.down.push(await download(target, o, ep, bytes));
    for (const o of rotate(opened, r)) got.get(o.tool)!.up.push(await upload(target, o, ep, bytes));
  }
  const rows: Row[] = [];
  for (const dir of ['down', 'up'] as const) {
    const b = got.get(base)![dir];
    for (const o of opened) {
      const xs = got.get(o.tool)![dir];
      const mb = xs.map((x) => bytes / 1e6 / x.seconds);
      const perRound = o.tool === base ? '' : `; per round vs ${base}: ${xs.map((x, i) => (b[i]!.seconds / x.seconds).toFixed(2)).join(' ')}`;
      rows.push({
        name: `${label}: ${dir === 'down' ? 'download' : 'upload'} ${bytes / MiB} MiB`,
        tool: o.tool,
        mbPerSec: r1(median(mb)),
        cpuSecPerGiB: r2(median(xs.map((x) => (x.cpu * GiB) / bytes))),
        sshdCpuSecPerGiB: r2(median(xs.map((x) => (x.sshdCpu * GiB) / bytes))),
        notes: `${rounds} rounds, ${r1(Math.min(...mb))}-${r1(Math.max(...mb))} MB/s${perRound}`,
      });
    }
  }
  return rows;
}

/**
 * Runs the forward-window benchmark against `target` (see the module comment).
 *
 * @returns rows named `delay line: ...`, `window: download N MiB`, `soak: download|upload N MiB`,
 *   `delay: download|upload N MiB` and `loopback: download|upload N MiB`.
 */
export async function benchForwardWindow(target: BenchTarget): Promise<Row[]> {
  const quick = target.quick;
  const delayMs = Number(process.env.BENCH_WINDOW_DELAY_MS ?? 25);
  const bytes = (quick ? 8 : 64) * MiB;
  const loopBytes = (quick ? 32 : 256) * MiB;
  const soakN = Number(process.env.BENCH_SOAK_N ?? (quick ? 5 : 50));
  const windowRounds = Number(process.env.BENCH_WINDOW_ROUNDS ?? (quick ? 2 : 12));
  const rounds = quick ? 2 : 5;
  const loopRounds = quick ? 2 : 7;
  const only = process.env.BENCH_WINDOW_SECTIONS?.split(',').map((s) => s.trim());
  const want = (s: string): boolean => only === undefined || only.includes(s);
  const label = `RTT ~${2 * delayMs} ms`;
  const rows: Row[] = [];
  const ep = await startEndpoints(bytes);
  const epLoop = await startEndpoints(loopBytes);
  const dl: DelayLine = await spawnDelayLine({ host: target.host, port: target.port }, delayMs, trackChild);
  // the same sshd, reached through the delay line (its host key recorded under the line's port)
  const via: BenchTarget = { ...target, port: dl.port, knownHostsPath: knownHostsFor(target, target.host, dl.port) };
  const all: Forwarder[] = [];
  const track = (f: Forwarder): Forwarder => (all.push(f), f);
  const setWin = (w: Win) => (): void => {
    forwardWindowSetting.current = w;
  };
  const current: Win = 'auto';
  try {
    // 1. the delay line itself
    const v = await verifyDelayLine(ep, delayMs, bytes);
    rows.push({ name: `delay line: D = ${delayMs} ms each way`, tool: 'delay line', rttMs: r2(v.rttMs), mbPerSec: r1(v.mbPerSec), notes: `1-byte TCP echo round trip (median of 20); plain TCP download of ${bytes / MiB} MiB` });
    process.stderr.write(`forward-window: delay line RTT ${v.rttMs.toFixed(1)} ms, ${v.mbPerSec.toFixed(0)} MB/s\n`);

    const tether = track(tetherForwarder(via));
    // 2. window sizes, interleaved per round
    if (want('window')) {
      process.stderr.write(`forward-window: window sizes, ${windowRounds} rounds...\n`);
      // `4` = 4 MiB, top-up 1/8; `4:32` = 4 MiB, top-up 1/32; `0` = ssh2's rule
      const sizes = (process.env.BENCH_WINDOW_SIZES ?? '0,4,4:64,5:64,6:64,8:64')
        .split(',')
        .map((x) => {
          const [m = NaN, k = 8] = x.split(':').map(Number);
          return { m, k };
        })
        .filter(({ m, k }) => Number.isFinite(m) && m >= 0 && Number.isFinite(k) && k >= 1);
      const wins: Win[] = sizes.map(({ m, k }) => (m === 0 ? null : { sizeBytes: Math.round(m * MiB), topUpFraction: 1 / k }));
      const opened = await openAll([{ tool: TETHER, f: tether }], ep);
      const o = opened[0]!;
      const got = new Map<Win, Sample[]>(wins.map((w) => [w, []]));
      for (let r = 0; r < windowRounds; r++) {
        for (const w of rotate(wins, r)) got.get(w)!.push(await download(target, { ...o, before: setWin(w) }, ep, bytes));
      }
      for (const w of wins) rows.push(soakRow(`window: download ${bytes / MiB} MiB at ${label}`, `${TETHER}, ${winName(w)}`, got.get(w)!, bytes, 'interleaved with the other sizes'));
      await o.close();
    }

    // 3. soak with the current window
    if (want('soak')) {
      process.stderr.write(`forward-window: soak, ${soakN} downloads and uploads...\n`);
      const opened = await openAll([{ tool: TETHER, f: tether, before: setWin(current) }], ep);
      const o = opened[0]!;
      const down: Sample[] = [];
      const up: Sample[] = [];
      for (let i = 0; i < soakN; i++) {
        down.push(await download(target, o, ep, bytes));
        up.push(await upload(target, o, ep, bytes));
      }
      rows.push(soakRow(`soak: download ${bytes / MiB} MiB at ${label}`, `${TETHER}, ${winName(current)}`, down, bytes));
      rows.push(soakRow(`soak: upload ${bytes / MiB} MiB at ${label}`, `${TETHER}, ${winName(current)}`, up, bytes, "upload is bounded by sshd's window, not ours"));
      await o.close();
    }

    // 4. compare at delay
    if (want('delay')) {
      process.stderr.write('forward-window: compare at delay...\n');
      const opened = await openAll(
        [
          { tool: TETHER, f: tether, before: setWin(current) },
          // what the eager window does to each direction at this RTT
          { tool: TETHER_OFF, f: tether, before: setWin(null) },
          { tool: OPENSSH, f: track(opensshForwarder(via)) },
          { tool: RAW, f: track(rawForwarder(via)) },
        ],
        ep,
      );
      rows.push(...(await compare(target, `delay (${label})`, opened, ep, bytes, rounds, OPENSSH)));
      for (const o of opened) await o.close();
    }
    forwardWindowSetting.current = current;
    await tether.shutdown();

    // 5. loopback A/B: eager window on vs off
    if (want('loopback')) {
      process.stderr.write('forward-window: loopback...\n');
      const loopTether = track(tetherForwarder(target));
      const opened = await openAll(
        [
          { tool: TETHER, f: loopTether, before: setWin(current) },
          { tool: TETHER_FIXED, f: loopTether, before: setWin(OLD_FIXED) },
          { tool: TETHER_OFF, f: loopTether, before: setWin(null) },
          ...extraWindows().map((w) => ({ tool: `${TETHER}, ${winName(w)}`, f: loopTether, before: setWin(w) })),
          { tool: RAW, f: track(rawForwarder(target)) },
          { tool: OPENSSH, f: track(opensshForwarder(target)) },
        ],
        epLoop,
      );
      rows.push(...(await compare(target, 'loopback', opened, epLoop, loopBytes, loopRounds, RAW)));
      for (const o of opened) await o.close();
    }
  } finally {
    forwardWindowSetting.current = current;
    for (const f of all) await f.shutdown().catch(() => undefined);
    await dl.close();
    await ep.close();
    await epLoop.close();
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
