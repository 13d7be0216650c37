/**
 * Latency benchmark (issue 18 items 1, 5, 6 and 7; DESIGN.md section 6): the bulk and exec rows
 * again, through a delay line (test/bench/delay-line.ts: every chunk delivered D ms later in each
 * direction, order kept, throughput not limited) at RTT ~10 ms (D = 5) and ~50 ms (D = 25):
 *
 * - the delay line itself, verified: its measured 1-byte round trip and its bulk throughput
 *   (a plain TCP download through it), printed with the results;
 * - SFTP get/put: ssh-tether `get`/`put` with the library defaults (so whatever pipelining the
 *   build has is what is measured), `get`/`put` with `channels: 4` and with `channels: 1` (one
 *   adaptive channel) when the build has that option (striped transfers, item 4; else an 'n/a'
 *   row), the default `get`/`put` of the built package in a process of its own (as a service
 *   runs it: a fresh process per sample, connected, after one untimed transfer; the targets use
 *   these rows when dist/ exists, as the loopback row does), raw ssh2 `fastGet`/`fastPut`, OpenSSH
 *   `sftp` and `scp` (over a ControlMaster, so no row pays for a connection);
 * - local forward download/upload: ssh-tether `forwardLocal`, raw ssh2 `forwardOut` + pipe,
 *   `ssh -L` (the forwarders of test/bench/forward.ts; the load runs in its own process);
 * - 1 exec (median of several in a row) and 32 concurrent execs (sshd MaxSessions 10):
 *   ssh-tether (with its learned `health().sessionLimit` after the run), raw ssh2 with an ideal
 *   10-slot queue (a slot is reused only once the server provably freed it, see `idealQueue`),
 *   raw ssh2 with a naive 10-slot queue (reuses a slot at 'close': refusals), `ssh -S` over a
 *   ControlMaster; also on loopback;
 * - connect to ready: ssh-tether `connect()`, raw ssh2 'ready', OpenSSH until "Authenticated to".
 *
 * Tools alternate within each round (rotated from round to round) and each row is the median
 * over the rounds, so every ratio compares numbers of one run; the notes list the per-round
 * ratios.
 *
 * Plus, on loopback (items 6 and 7): a 256 MiB get by ssh-tether, OpenSSH `sftp` and `scp`, with
 * MB/s, client CPU s/GiB (ours: process.cpuUsage; OpenSSH: /usr/bin/time of the tool plus its
 * ControlMaster's CPU), sshd CPU s/GiB (the sshd process tree, /proc), and for the in-process
 * runs this process's GCs (major/minor) and event-loop delay p50/p99/max
 * (`perf_hooks.monitorEventLoopDelay`, 1 ms resolution), next to the same figures while
 * `fs.createReadStream` copies a local file of that size (what a plain Node service does).
 * With dist/ built, the get also runs in a fresh process importing it (the targets' row), and
 * again in one that holds 64 MiB of live JS heap through the get, as a service does (V8 sizes
 * its old-generation limit from the live heap: a bare 12 MB process runs a mark-compact every
 * ~20 ms of a warm get, a service's does not); the targets are printed for both.
 *
 * Sizes: SFTP 128 MiB, forward 64 MiB, loopback get 256 MiB (8/8/32 MiB with BENCH_QUICK).
 * `BENCH_LATENCY_DELAYS=5,25` sets the one-way delays (ms); `BENCH_LATENCY_DELAYS=25` runs only
 * RTT ~50 ms. About 5-6 minutes on a quiet 2-core machine.
 *
 * Run alone: `node --import ./scripts/ts-node-register.mjs test/bench/latency.ts` (starts its own
 * sshd), or `npm run bench -- latency`.
 */
import { execFileSync, fork } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { SshClient } from '../../src/index.js';
import { knownHostsFor } from '../helpers/client.js';
import { opensshArgs, startSshd } from '../helpers/sshd.js';
import { limited, opensshAuthenticatedMs, ssh2Connect, ssh2End, ssh2Exec } from './core.js';
import { spawnDelayLine, type DelayLine } from './delay-line.js';
import { opensshForwarder, rawForwarder, startEndpoints, tetherForwarder, type Endpoints, type Forwarder } from './forward.js';
import {
  cpuSeconds,
  median,
  nowMs,
  pinnedOpensshArgs,
  procCpuSeconds,
  runAsRowBenchChild,
  runProcess,
  startControlMaster,
  targetOf,
  tetherOptions,
  trackChild,
  treeCpuSeconds,
  withTimeout,
  type BenchTarget,
  type ControlMaster,
  type Row,
  type TargetCheck,
} from './lib.js';

const MiB = 1024 * 1024;
const TETHER = 'ssh-tether';
const OP_TIMEOUT_MS = 120_000;
const CMD = 'echo x';
const IDEAL_QUEUE = 'raw ssh2 + noDelay, ideal 10-slot queue';
const NAIVE_QUEUE = 'raw ssh2 + noDelay, naive 10-slot queue';

/** `xs` rotated left by `k`. */
function rotate<T>(xs: readonly T[], k: number): T[] {
  const n = xs.length;
  if (n === 0) return [];
  const r = k % n;
  return [...xs.slice(r), ...xs.slice(0, r)];
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const round2 = (x: number): number => Math.round(x * 100) / 100;

/** Samples per tool, in rounds; tools rotate their order every round. */
/** Writes back every dirty page (`sync(1)`), bounded; errors ignored (a bench helper, not timed). */
function settleDirtyPages(): void {
  try {
    execFileSync('sync', [], { timeout: 60_000, stdio: 'ignore' });
  } catch {
    // no sync(1): the rows keep that noise
  }
}

class Rounds {
  readonly samples = new Map<string, number[]>();
  readonly errors = new Map<string, string>();
  add(tool: string, x: number): void {
    const a = this.samples.get(tool) ?? [];
    a.push(x);
    this.samples.set(tool, a);
  }
  async run(rounds: number, tools: readonly { tool: string; once(): Promise<number> }[]): Promise<void> {
    for (let r = 0; r < rounds; r++) {
      for (const t of rotate(tools, r)) {
        if (this.errors.has(t.tool)) continue;
        // untimed: the dirty pages the previous tool left (every tool writes a 128 MiB file) are
        // written back now, not during the next tool's run (that made the row after a big
        // write up to 40% slower, whichever tool it was)
        settleDirtyPages();
        try {
          this.add(t.tool, await withTimeout(t.once(), OP_TIMEOUT_MS, t.tool));
        } catch (err) {
          this.errors.set(t.tool, err instanceof Error ? err.message.slice(0, 200) : String(err));
        }
      }
    }
  }
  median(tool: string): number | undefined {
    const xs = this.samples.get(tool);
    return xs && xs.length > 0 ? median(xs) : undefined;
  }
}

/** The latency targets, as ratios in the same run (reported, never failing the process). */
export function targetsOf(rows: readonly Row[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const find = (name: RegExp, tool: string): Row | undefined => rows.find((r) => name.test(r.name) && r.tool === tool);
  const rtt50 = /^RTT ~50 ms/;
  const check = (label: string, name: RegExp, ours: string, theirs: string, key: string, min: number, at = rtt50): void => {
    const a = rows.find((r) => at.test(r.name) && name.test(r.name) && r.tool === ours)?.[key];
    const b = rows.find((r) => at.test(r.name) && name.test(r.name) && r.tool === theirs)?.[key];
    if (typeof a !== 'number' || typeof b !== 'number') {
      out.push({ name: label, pass: false, detail: `not measured (${ours}: ${String(a)}, ${theirs}: ${String(b)})` });
      return;
    }
    out.push({ name: label, pass: a >= b * min, detail: `${ours} ${a} vs ${theirs} ${b}: ${(a / b).toFixed(2)}x` });
  };
  check('RTT ~50 ms: forward download >= 2x ssh -L (issue 18 item 2)', /forward download/, `${TETHER} forwardLocal`, 'ssh -L (OpenSSH)', 'mbPerSec', 2);
  check('RTT ~50 ms: forward upload >= 1.0x ssh -L (issue 18 item 2)', /forward upload/, `${TETHER} forwardLocal`, 'ssh -L (OpenSSH)', 'mbPerSec', 1);
  // as on loopback: the built package in its own process when measured, else the in-process row
  const ours = (op: 'get' | 'put', at: RegExp): string => (rows.some((r) => at.test(r.name) && r.tool === tetherOwn(op) && typeof r.mbPerSec === 'number') ? tetherOwn(op) : `${TETHER} ${op}`);
  check('RTT ~50 ms: get >= 5x OpenSSH sftp (issue 18 item 3)', /SFTP get/, ours('get', rtt50), 'sftp (OpenSSH)', 'mbPerSec', 5);
  check('RTT ~50 ms: put >= 3x OpenSSH sftp (issue 18 item 4)', /SFTP put/, ours('put', rtt50), 'sftp (OpenSSH)', 'mbPerSec', 3);
  check('RTT ~10 ms: get >= 3x OpenSSH sftp (issue 18 item 3)', /SFTP get/, ours('get', /^RTT ~10 ms/), 'sftp (OpenSSH)', 'mbPerSec', 3, /^RTT ~10 ms/);
  const stripedPut = rows.find((r) => rtt50.test(r.name) && /SFTP put/.test(r.name) && /striped/.test(r.tool));
  if (stripedPut && typeof stripedPut.mbPerSec === 'number') check('RTT ~50 ms: put striped over 4 channels >= 3x OpenSSH sftp (issue 18 item 4)', /SFTP put/, stripedPut.tool, 'sftp (OpenSSH)', 'mbPerSec', 3);
  for (const where of ['loopback', 'RTT ~50 ms']) {
    const c32 = rows.find((r) => r.name.startsWith(`${where}:`) && /32 concurrent/.test(r.name) && r.tool === TETHER);
    const ideal = rows.find((r) => r.name.startsWith(`${where}:`) && /32 concurrent/.test(r.name) && r.tool === IDEAL_QUEUE);
    out.push({
      name: `${where}: 32 concurrent execs <= 1.1x the ideal 10-slot queue, 0 failures, learned session limit stays 10 (issue 18 item 5)`,
      pass: c32 !== undefined && ideal !== undefined && c32.failures === 0 && typeof c32.ms === 'number' && typeof ideal.ms === 'number' && c32.ms <= 1.1 * ideal.ms && c32.sessionLimit === 10,
      detail:
        c32 && ideal
          ? `${TETHER} ${String(c32.ms)} ms vs ideal queue ${String(ideal.ms)} ms (${String(c32.vsIdealQueue)}x), ${String(c32.failures)} failed (ideal queue: ${String(ideal.failures)}), sessionLimit ${String(c32.sessionLimit)}`
          : 'not measured',
    });
  }
  // The built package in its own process is what a service runs; the in-process row (sources
  // through ts-node, sharing the bench's heap) is the fallback when dist/ is missing.
  const scp = find(/^loopback: get /, 'scp (OpenSSH)');
  const sftpRow = find(/^loopback: get /, 'sftp (OpenSSH)');
  const n = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
  // the bare process (the target rows as the issue set them), then the same with a service's heap
  const bare = find(/^loopback: get /, TETHER_OWN) ?? find(/^loopback: get /, `${TETHER} get`);
  const service = find(/^loopback: get /, TETHER_SERVICE);
  for (const [get, suffix] of [
    [bare, ''],
    [service, `, in a process holding ${SERVICE_HEAP_MIB} MiB of live heap`],
  ] as const) {
    if (get === undefined && suffix !== '') continue;
    const [gm, sm, gc, fc] = [n(get?.mbPerSec), n(scp?.mbPerSec), n(get?.cpuSecPerGiB), n(sftpRow?.cpuSecPerGiB)];
    out.push({
      name: `loopback: get >= 1.0x scp (issue 18 item 6)${suffix}`,
      pass: gm !== undefined && sm !== undefined && gm >= sm,
      detail: gm !== undefined && sm !== undefined ? `${get?.tool ?? TETHER} ${gm} MB/s vs scp ${sm}: ${(gm / sm).toFixed(2)}x` : 'not measured',
    });
    out.push({
      name: `loopback: get client CPU per GiB <= 1.3x OpenSSH sftp (issue 18 item 6)${suffix}`,
      pass: gc !== undefined && fc !== undefined && gc <= 1.3 * fc,
      detail: gc !== undefined && fc !== undefined ? `${get?.tool ?? TETHER} ${gc} s/GiB vs sftp ${fc} s/GiB: ${(gc / fc).toFixed(2)}x` : 'not measured',
    });
    out.push({
      name: `loopback: host event-loop delay p99 <= 5 ms during a get (issue 18 item 7)${suffix}`,
      pass: typeof get?.elP99Ms === 'number' && get.elP99Ms <= 5,
      detail: get ? `${get.tool}: p99 ${String(get.elP99Ms)} ms, p50 ${String(get.elP50Ms)} ms, max ${String(get.elMaxMs)} ms; ${String(get.gcMajor)} major / ${String(get.gcMinor)} minor GCs per get` : 'not measured',
    });
  }
  return out;
}

/** What one loopback-get sample measured. */
interface GetSample {
  seconds: number;
  /** Client CPU s: this process (in-process tools) or the CLI + its ControlMaster. */
  cpu: number;
  /** sshd CPU s (listener, per-connection processes, sftp-server), when its pid is known. */
  sshdCpu: number;
  gcMajor?: number;
  gcMinor?: number;
  el?: { p50: number; p99: number; max: number };
}

/** Counts this process's GCs (PerformanceObserver 'gc' entries) from now until `stop()`. */
function gcCounter(): { stop(): { major: number; minor: number } } {
  let major = 0;
  let minor = 0;
  const count = (entries: readonly PerformanceEntry[]): void => {
    for (const e of entries) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) major++;
      else if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) minor++;
    }
  };
  const obs = new PerformanceObserver((list) => count(list.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  return {
    stop: () => {
      count(obs.takeRecords());
      obs.disconnect();
      return { major, minor };
    },
  };
}

/** Runs in-process `fn`: wall time, this process's CPU, sshd's CPU, GC counts, event-loop delay p50/p99/max (ms). */
async function inProcessSample(target: BenchTarget, fn: () => Promise<unknown>): Promise<GetSample> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  const gc = gcCounter();
  const s0 = treeCpuSeconds(target.sshdPid);
  const c0 = cpuSeconds();
  const t0 = nowMs();
  h.enable();
  try {
    await fn();
  } finally {
    h.disable();
  }
  const seconds = (nowMs() - t0) / 1000;
  const cpu = cpuSeconds() - c0;
  const sshdCpu = treeCpuSeconds(target.sshdPid) - s0;
  const g = gc.stop();
  return { seconds, cpu, sshdCpu, gcMajor: g.major, gcMinor: g.minor, el: { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 } };
}

/** The built package (`dist/index.js`), when `npm run build` has made it. */
const DIST_INDEX = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
const PROFILE_CHILD = fileURLToPath(new URL('../../scripts/profile-child.mjs', import.meta.url));
/** Tool label of the get run from the built package in a process of its own. */
const TETHER_OWN = `${TETHER} get (built package, own process, after one warm-up get)`;
/**
 * Live JS heap the "service" row's process holds through its get. V8 sizes its old-generation
 * limit from the live heap: a bare process (12 MB live) ends up starting a mark-compact every
 * ~20 ms of a get once its new space has grown, which a process with a service's heap does not.
 */
const SERVICE_HEAP_MIB = 64;
const TETHER_SERVICE = `${TETHER} get (built package, own process holding ${SERVICE_HEAP_MIB} MiB of live JS heap as a service does, after one warm-up get)`;
/** Tool label of a get/put run from the built package in a process of its own, on a long link. */
const tetherOwn = (op: 'get' | 'put'): string => `${TETHER} ${op} (built package, own process, after one warm-up ${op})`;

/**
 * Runs one get in a fresh Node process importing the built package (scripts/profile-child.mjs, as
 * a service would load it: no ts-node compiler on the heap, so its GC counts are the library's):
 * wall time, that process's CPU, GCs and event-loop delay around the transfer only, sshd's CPU.
 */
function childSample(target: BenchTarget, remote: string, local: string, op: 'get' | 'put' = 'get', heapMiB = 0): Promise<GetSample> {
  return new Promise<GetSample>((resolve, reject) => {
    const env = heapMiB > 0 ? { ...process.env, PROFILE_BALLAST_MIB: String(heapMiB) } : process.env;
    const cp = fork(PROFILE_CHILD, [], { execArgv: [], env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let s0 = 0;
    const timer = setTimeout(() => cp.kill('SIGKILL'), OP_TIMEOUT_MS);
    let result: GetSample | undefined;
    cp.on('message', (m: { ready?: boolean; result?: { seconds: number; cpu: number; gcMajor: number; gcMinor: number; elP50: number; elP99: number; elMax: number } }) => {
      if (m.ready) {
        s0 = treeCpuSeconds(target.sshdPid);
        cp.send({ go: true });
      } else if (m.result) {
        const r = m.result;
        result = { seconds: r.seconds, cpu: r.cpu, sshdCpu: treeCpuSeconds(target.sshdPid) - s0, gcMajor: r.gcMajor, gcMinor: r.gcMinor, el: { p50: r.elP50, p99: r.elP99, max: r.elMax } };
      }
    });
    cp.on('error', reject);
    cp.on('exit', (code) => {
      clearTimeout(timer);
      if (result && code === 0) resolve(result);
      else reject(new Error(`the ${op} child exited ${String(code)} without a result`));
    });
    cp.send({
      info: { host: target.host, port: target.port, username: target.username, privateKeyPath: target.privateKeyPath, knownHostsPath: target.knownHostsPath },
      op,
      remote,
      local,
      alloc: false,
      elResolution: 1,
      impl: 'dist',
      ticks: false,
      warmup: true,
    });
  });
}

/** Runs an OpenSSH CLI under /usr/bin/time: wall time, the tool's CPU plus its ControlMaster's, sshd's CPU. */
async function cliSample(target: BenchTarget, file: string, args: string[], masterPid: number): Promise<GetSample> {
  const s0 = treeCpuSeconds(target.sshdPid);
  const m0 = procCpuSeconds(masterPid);
  const r = await runProcess('/usr/bin/time', ['-f', 'TIME %U %S', file, ...args], OP_TIMEOUT_MS);
  const master = procCpuSeconds(masterPid) - m0;
  const sshdCpu = treeCpuSeconds(target.sshdPid) - s0;
  if (r.code !== 0) throw new Error(`${file} failed (${String(r.code)}): ${r.stderr.slice(-500)}`);
  const m = /TIME ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  return { seconds: r.elapsedMs / 1000, cpu: m ? Number(m[1]) + Number(m[2]) + master : Number.NaN, sshdCpu };
}

/** Writes `bytes` random bytes to `file`. */
function randomFile(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w');
  const block = Buffer.allocUnsafe(16 * MiB);
  for (let off = 0; off < bytes; off += block.length) fs.writeSync(fd, randomFillSync(block), 0, Math.min(block.length, bytes - off), off);
  fs.closeSync(fd);
}

/**
 * Items 6 and 7 on loopback: a 256 MiB get by ssh-tether (library defaults), OpenSSH `sftp` and
 * `scp` (over a ControlMaster), and a local `fs.createReadStream` -> `fs.createWriteStream` copy
 * of the same size (what a plain Node service does): MB/s, client CPU s/GiB, sshd CPU s/GiB, this
 * process's GCs (major = mark-compact, minor = scavenge) and event-loop delay p50/p99/max.
 */
async function loopbackGetRows(target: BenchTarget, local: string, rounds: number): Promise<Row[]> {
  const sizeMiB = target.quick ? 32 : 256;
  const bytes = sizeMiB * MiB;
  const src = path.join(local, 'el-src.bin');
  const dst = path.join(local, 'el-dst.bin');
  randomFile(src, bytes);
  const client = new SshClient(tetherOptions(target));
  await client.connect();
  const remote = path.posix.join(target.homeDir, `bench-el-${randomBytes(4).toString('hex')}.bin`);
  const rows: Row[] = [];
  let cm: ControlMaster | undefined;
  try {
    const sftp = await client.sftp();
    await sftp.put(src, remote);
    cm = await startControlMaster(target);
    const master = cm;
    const dest = `${target.username}@${target.host}`;
    const ossh = [...opensshArgs(target), ...pinnedOpensshArgs(), '-o', `ControlPath=${master.sockPath}`, '-o', 'ControlMaster=no'];
    const getBatch = path.join(local, 'el-get.batch');
    fs.writeFileSync(getBatch, `get ${remote} ${dst}\n`);
    const name = `loopback: get ${sizeMiB} MiB (CPU, GC, host event loop)`;
    const tools: { tool: string; name?: string; once(): Promise<GetSample> }[] = [
      { tool: `${TETHER} get`, once: () => inProcessSample(target, () => sftp.get(remote, dst)) },
      ...(fs.existsSync(DIST_INDEX)
        ? [
            { tool: TETHER_OWN, once: () => childSample(target, remote, dst) },
            { tool: TETHER_SERVICE, once: () => childSample(target, remote, dst, 'get', SERVICE_HEAP_MIB) },
          ]
        : []),
      { tool: 'sftp (OpenSSH)', once: () => cliSample(target, 'sftp', ['-q', '-b', getBatch, ...ossh, dest], master.pid) },
      { tool: 'scp (OpenSSH)', once: () => cliSample(target, 'scp', ['-q', ...ossh, `${dest}:${remote}`, dst], master.pid) },
      {
        tool: 'fs.createReadStream -> fs.createWriteStream',
        name: `loopback: local copy of ${sizeMiB} MiB (baseline for GC and event loop)`,
        once: () => inProcessSample(target, () => pipeline(fs.createReadStream(src), fs.createWriteStream(dst))),
      },
    ];
    const got = new Map<string, GetSample[]>();
    for (let r = 0; r < rounds; r++) {
      for (const t of rotate(tools, r)) got.set(t.tool, [...(got.get(t.tool) ?? []), await withTimeout(t.once(), OP_TIMEOUT_MS, t.tool)]);
    }
    const gib = bytes / 2 ** 30;
    const tetherRuns = got.get(`${TETHER} get`) ?? [];
    for (const t of tools) {
      const ms = got.get(t.tool) ?? [];
      const med = (f: (m: GetSample) => number | undefined): number | undefined => {
        const xs = ms.map(f).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
        return xs.length > 0 ? median(xs) : undefined;
      };
      const isLocal = t.name !== undefined;
      const perRound = t.tool === `${TETHER} get` || isLocal ? '' : `; per round ${TETHER} / this: ${ms.map((m, i) => (tetherRuns[i] ? (m.seconds / tetherRuns[i].seconds).toFixed(2) : '-')).join(' ')}`;
      const el = t.tool.startsWith(TETHER) || isLocal;
      const own = t.tool === TETHER_OWN || t.tool === TETHER_SERVICE;
      const row: Row = {
        name: t.name ?? name,
        tool: t.tool,
        mbPerSec: round1(median(ms.map((m) => bytes / 1e6 / m.seconds))),
        cpuSecPerGiB: round2((med((m) => m.cpu) ?? Number.NaN) / gib),
        ...(isLocal || target.sshdPid === undefined ? {} : { sshdCpuSecPerGiB: round2((med((m) => m.sshdCpu) ?? Number.NaN) / gib) }),
        ...(el ? { gcMajor: med((m) => m.gcMajor), gcMinor: med((m) => m.gcMinor), elP50Ms: med((m) => m.el?.p50), elP99Ms: med((m) => m.el?.p99), elMaxMs: med((m) => m.el?.max) } : {}),
        notes: `median over ${ms.length} round(s)${perRound}${own ? '; a fresh Node process importing dist/ (npm run build), measured on its second get (the first warms the JIT up): its CPU, GCs and event loop (monitorEventLoopDelay, 1 ms resolution)' : el ? '; GC and event loop of the bench process (monitorEventLoopDelay, 1 ms resolution; the sources run through ts-node)' : '; client CPU = the tool + its ControlMaster (/usr/bin/time, /proc)'}`,
      };
      for (const k of ['elP50Ms', 'elP99Ms', 'elMaxMs'] as const) if (typeof row[k] === 'number') row[k] = round2(row[k]);
      rows.push(row);
    }
    await sftp.unlink(remote).catch(() => undefined);
  } finally {
    await cm?.close();
    await client.close();
  }
  return rows;
}

/** Median round trip (ms) of `n` 1-byte ping-pongs on one TCP connection to the echo server at `port`. */
function tcpRtt(port: number, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    const times: number[] = [];
    let t0 = 0;
    const ping = (): void => {
      t0 = nowMs();
      s.write('x');
    };
    s.on('error', reject);
    s.on('connect', ping);
    s.on('data', () => {
      times.push(nowMs() - t0);
      if (times.length >= n) {
        s.destroy();
        resolve(median(times));
      } else ping();
    });
  });
}

/** The delay line's own round trip (1-byte echo) and bulk rate (a TCP download through it). */
export async function verifyDelayLine(ep: Endpoints, delayMs: number, bytes: number): Promise<{ rttMs: number; mbPerSec: number }> {
  const echo = await spawnDelayLine({ host: '127.0.0.1', port: ep.echo }, delayMs, trackChild);
  const source = await spawnDelayLine({ host: '127.0.0.1', port: ep.source }, delayMs, trackChild);
  try {
    const rttMs = await withTimeout(tcpRtt(echo.port, 20), 60_000, 'delay line RTT');
    const t1 = nowMs();
    const got = await ep.download(source.port);
    if (got !== bytes) throw new Error(`delay line download: ${got} of ${bytes} bytes`);
    return { rttMs, mbPerSec: bytes / 1e6 / ((nowMs() - t1) / 1000) };
  } finally {
    await echo.close();
    await source.close();
  }
}

/** The latency rows for one delay. */
async function benchAt(target: BenchTarget, ep: Endpoints, delayMs: number, files: { src: string; dst: string; remoteSrc: string; remoteDst: string }, sizes: { sftp: number; fwd: number }, rounds: number): Promise<Row[]> {
  const rows: Row[] = [];
  const dl: DelayLine = await spawnDelayLine({ host: target.host, port: target.port }, delayMs, trackChild);
  const t2: BenchTarget = { ...target, port: dl.port, knownHostsPath: knownHostsFor(target, target.host, dl.port) };
  const verified = await verifyDelayLine(ep, delayMs, sizes.fwd);
  // rows are named by the nominal round trip (2 x D); the delay line row shows the measured one
  const label = `RTT ~${2 * delayMs} ms`;
  rows.push({
    name: `${label}: the delay line itself (D = ${delayMs} ms each way)`,
    tool: 'delay line',
    rttMs: round2(verified.rttMs),
    mbPerSec: round1(verified.mbPerSec),
    notes: `median 1-byte TCP echo round trip (20 on one connection); plain TCP download of ${sizes.fwd / MiB} MiB through it`,
  });
  process.stderr.write(`latency: D=${delayMs} ms: delay line RTT ${verified.rttMs.toFixed(1)} ms, ${verified.mbPerSec.toFixed(0)} MB/s\n`);

  const client = new SshClient(tetherOptions(t2));
  client.on('error', () => undefined);
  let raw: ssh2.Client | undefined;
  let cm: ControlMaster | undefined;
  const forwarders: Forwarder[] = [];
  const forwards: { close(): Promise<void> }[] = [];
  const dest = `${t2.username}@${t2.host}`;
  const ossh = [...opensshArgs(t2), ...pinnedOpensshArgs()];
  try {
    await client.connect();
    const sftp = await client.sftp();
    raw = await ssh2Connect(t2, true);
    const rawClient = raw;
    const rawSftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => rawClient.sftp((e, s) => (e ? reject(e) : resolve(s))));
    cm = await startControlMaster(t2);
    const viaMaster = ['-o', `ControlPath=${cm.sockPath}`, '-o', 'ControlMaster=no'];
    const mbps = (bytes: number, fn: () => Promise<unknown>) => async (): Promise<number> => {
      const t0 = nowMs();
      await fn();
      return bytes / 1e6 / ((nowMs() - t0) / 1000);
    };
    const cliOk = async (file: string, args: string[]): Promise<void> => {
      const r = await runProcess(file, args, OP_TIMEOUT_MS);
      if (r.code !== 0) throw new Error(`${file} failed (${String(r.code)}): ${r.stderr.slice(-500)}`);
    };
    const fastXfer = (dir: 'get' | 'put'): Promise<void> =>
      new Promise((resolve, reject) => {
        const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
        if (dir === 'get') rawSftp.fastGet(files.remoteSrc, files.dst, {}, cb);
        else rawSftp.fastPut(files.src, files.remoteDst, {}, cb);
      });
    const batch = (name: string, line: string): string => {
      const f = path.join(path.dirname(files.src), name);
      fs.writeFileSync(f, `${line}\n`);
      return f;
    };
    const getBatch = batch('get.batch', `get ${files.remoteSrc} ${files.dst}`);
    const putBatch = batch('put.batch', `put ${files.src} ${files.remoteDst}`);
    const B = sizes.sftp;
    // striped transfers (item 4): measured only when this build has the option
    const striped = await hasChannelsOption(sftp, path.dirname(files.src), path.posix.dirname(files.remoteSrc));
    const STRIPES = 4;
    // the built package in a process of its own, as a service runs it (needs `npm run build`)
    const own = fs.existsSync(DIST_INDEX);
    const stripedOpts = { channels: STRIPES };

    // SFTP get / put
    for (const [what, tools] of [
      [
        `SFTP get ${B / MiB} MiB`,
        [
          { tool: `${TETHER} get`, once: mbps(B, () => sftp.get(files.remoteSrc, files.dst)) },
          ...(own ? [{ tool: tetherOwn('get'), once: async () => B / 1e6 / (await childSample(t2, files.remoteSrc, files.dst, 'get')).seconds }] : []),
          ...(striped ? [{ tool: `${TETHER} get, striped over ${STRIPES} channels`, once: mbps(B, () => sftp.get(files.remoteSrc, files.dst, stripedOpts)) }] : []),
          ...(striped ? [{ tool: `${TETHER} get, one channel`, once: mbps(B, () => sftp.get(files.remoteSrc, files.dst, { channels: 1 })) }] : []),
          { tool: 'ssh2 fastGet', once: mbps(B, () => fastXfer('get')) },
          { tool: 'sftp (OpenSSH)', once: mbps(B, () => cliOk('sftp', ['-q', '-b', getBatch, ...ossh, ...viaMaster, dest])) },
          { tool: 'scp (OpenSSH)', once: mbps(B, () => cliOk('scp', ['-q', ...ossh, ...viaMaster, `${dest}:${files.remoteSrc}`, files.dst])) },
        ],
      ],
      [
        `SFTP put ${B / MiB} MiB`,
        [
          { tool: `${TETHER} put`, once: mbps(B, () => sftp.put(files.src, files.remoteDst)) },
          ...(own ? [{ tool: tetherOwn('put'), once: async () => B / 1e6 / (await childSample(t2, files.remoteDst, files.src, 'put')).seconds }] : []),
          ...(striped ? [{ tool: `${TETHER} put, striped over ${STRIPES} channels`, once: mbps(B, () => sftp.put(files.src, files.remoteDst, stripedOpts)) }] : []),
          ...(striped ? [{ tool: `${TETHER} put, one channel`, once: mbps(B, () => sftp.put(files.src, files.remoteDst, { channels: 1 })) }] : []),
          { tool: 'ssh2 fastPut', once: mbps(B, () => fastXfer('put')) },
          { tool: 'sftp (OpenSSH)', once: mbps(B, () => cliOk('sftp', ['-q', '-b', putBatch, ...ossh, ...viaMaster, dest])) },
          { tool: 'scp (OpenSSH)', once: mbps(B, () => cliOk('scp', ['-q', ...ossh, ...viaMaster, files.src, `${dest}:${files.remoteDst}`])) },
        ],
      ],
    ] as const) {
      process.stderr.write(`latency: D=${delayMs} ms: ${what}...\n`);
      const r = new Rounds();
      await r.run(rounds, tools);
      for (const t of tools) {
        const row = rateRow(`${label}: ${what}`, t.tool, r, 'mbPerSec', tools[0].tool);
        if (t.tool === tetherOwn('get') || t.tool === tetherOwn('put')) {
          const why =
            'a fresh Node process importing dist/ per sample: it connects through the delay line, makes one untimed transfer (JIT warm; it leaves the session its pacing memo and, when striped, its kept extra channels), then the measured one';
          row.notes = row.notes ? `${row.notes}; ${why}` : why;
        }
        rows.push(row);
      }
      if (!striped) rows.push({ name: `${label}: ${what}`, tool: `${TETHER} ${what.startsWith('SFTP get') ? 'get' : 'put'}, striped over ${STRIPES} channels`, notes: 'n/a: this build has no `channels` option on get/put' });
    }

    // forward download / upload (the forwarders and load process of forward.ts)
    process.stderr.write(`latency: D=${delayMs} ms: forwards...\n`);
    const F = sizes.fwd;
    const fwdTools: { tool: string; down: number; up: number }[] = [];
    for (const f of [tetherForwarder(t2), rawForwarder(t2), opensshForwarder(t2)]) {
      forwarders.push(f);
      const down = await f.open(ep.source);
      forwards.push(down);
      const up = await f.open(ep.sink);
      forwards.push(up);
      fwdTools.push({ tool: f.tool === TETHER ? `${TETHER} forwardLocal` : f.tool, down: down.port, up: up.port });
    }
    for (const [what, make] of [
      [`forward download ${F / MiB} MiB`, (p: { down: number }) => mbps(F, async () => {
        const got = await ep.download(p.down);
        if (got !== F) throw new Error(`download: ${got} of ${F} bytes`);
      })],
      [`forward upload ${F / MiB} MiB`, (p: { up: number }) => mbps(F, () => ep.upload(p.up, F))],
    ] as const) {
      const tools = fwdTools.map((t) => ({ tool: t.tool, once: make(t) }));
      const r = new Rounds();
      await r.run(rounds, tools);
      for (const t of tools) rows.push(rateRow(`${label}: ${what}`, t.tool, r, 'mbPerSec', `${TETHER} forwardLocal`));
    }

    // exec: 1 at a time, and 32 at once (sshd MaxSessions 10)
    process.stderr.write(`latency: D=${delayMs} ms: exec...\n`);
    rows.push(...(await execRows(t2, label, client, rawClient, cm, rounds)));

    // connect to ready
    process.stderr.write(`latency: D=${delayMs} ms: connect...\n`);
    const connectTools = [
      {
        tool: TETHER,
        once: async (): Promise<number> => {
          const c = new SshClient(tetherOptions(t2));
          c.on('error', () => undefined);
          const t0 = nowMs();
          try {
            await c.connect();
            return nowMs() - t0;
          } finally {
            await c.close();
          }
        },
      },
      {
        tool: 'raw ssh2 + noDelay',
        once: async (): Promise<number> => {
          const t0 = nowMs();
          const c = await ssh2Connect(t2, true);
          const ms = nowMs() - t0;
          await ssh2End(c);
          return ms;
        },
      },
      { tool: 'OpenSSH ssh', once: () => opensshAuthenticatedMs(t2) },
    ];
    const rc = new Rounds();
    await rc.run(rounds * (target.quick ? 1 : 3), connectTools);
    for (const t of connectTools) {
      const ms = rc.median(t.tool);
      rows.push({
        name: `${label}: connect to ready`,
        tool: t.tool,
        ...(ms === undefined ? {} : { connPerSec: round2(1000 / ms), ms: round1(ms) }),
        notes: rc.errors.get(t.tool) ?? (t.tool === 'OpenSSH ssh' ? 'until "Authenticated to" (ssh -v)' : 'until ready'),
      });
    }
  } finally {
    for (const f of forwards) await f.close().catch(() => undefined);
    for (const f of forwarders) await f.shutdown().catch(() => undefined);
    if (raw) await ssh2End(raw);
    await client.close();
    await cm?.close();
    await dl.close();
  }
  return rows;
}

/**
 * A FIFO of `n` exec slots on raw ssh2 that reuses a slot only once the server has freed it:
 * after the channel's 'close' (ssh2 has then written our CHANNEL_CLOSE), one global request
 * with want-reply (`cancel-tcpip-forward` of a port never forwarded; sshd answers
 * REQUEST_FAILURE) is sent and the slot is released on its answer. The server handles packets
 * in order, so the answer proves our CLOSE was processed, and the next CHANNEL_OPEN arrives
 * after sshd's next loop turn freed the session: no self-inflicted refusals, at the cost of at
 * most one round trip per slot. Issue 18 item 5's "ideal 10-slot queue".
 */
function idealQueue(raw: ssh2.Client, n: number, exec: () => Promise<void>): () => Promise<void> {
  let active = 0;
  const waiting: (() => void)[] = [];
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  return async () => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      await exec();
    } finally {
      try {
        raw.unforwardIn('127.0.0.1', 1, () => release());
      } catch {
        release();
      }
    }
  };
}

/** 1 exec (sequential) and 32 concurrent execs: ssh-tether, raw ssh2 (+ queues), `ssh -S`. */
async function execRows(t2: BenchTarget, label: string, client: SshClient, rawClient: ssh2.Client, master: ControlMaster, rounds: number): Promise<Row[]> {
  const rows: Row[] = [];
  const tetherExec = async (): Promise<void> => {
    const r = await client.exec(CMD);
    if (r.exitCode !== 0 || r.stdout !== 'x\n') throw new Error(`exit ${String(r.exitCode)}, stdout ${JSON.stringify(r.stdout)}`);
  };
  const rawExec = async (): Promise<void> => {
    const out = await ssh2Exec(rawClient, CMD);
    if (out !== 'x\n') throw new Error(`stdout ${JSON.stringify(out)}`);
  };
  const muxExec = async (): Promise<void> => {
    const r = await runProcess('ssh', ['-S', master.sockPath, '-o', 'ControlMaster=no', ...opensshArgs(t2), t2.host, CMD], OP_TIMEOUT_MS);
    if (r.code !== 0 || r.stdout !== 'x\n') throw new Error(`ssh -S exit ${String(r.code)}: ${r.stderr.trim().slice(0, 200)}`);
  };
  const perExec = (n: number, fn: () => Promise<void>) => async (): Promise<number> => {
    const t0 = nowMs();
    for (let i = 0; i < n; i++) await fn();
    return (nowMs() - t0) / n;
  };
  const seqN = t2.quick ? 3 : 10;
  const one = [
    { tool: TETHER, once: perExec(seqN, tetherExec) },
    { tool: 'raw ssh2 + noDelay', once: perExec(seqN, rawExec) },
    { tool: 'OpenSSH ssh -S', once: perExec(seqN, muxExec) },
  ];
  const r1 = new Rounds();
  await r1.run(rounds, one);
  for (const t of one) rows.push(msRow(`${label}: 1 exec (echo x)`, t.tool, r1, 1, `${seqN} in a row per round`));

  const failures = new Map<string, number>();
  const failureExample = new Map<string, string>();
  const batchOf = (tool: string, fn: () => Promise<void>) => async (): Promise<number> => {
    const t0 = nowMs();
    const res = await Promise.allSettled(Array.from({ length: 32 }, () => fn()));
    failures.set(tool, (failures.get(tool) ?? 0) + res.filter((x) => x.status === 'rejected').length);
    const bad = res.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (bad && !failureExample.has(tool)) failureExample.set(tool, bad.reason instanceof Error ? bad.reason.message.slice(0, 120) : String(bad.reason));
    return nowMs() - t0;
  };
  // The ideal queue on a connection of its own: the naive queue's last closes (same connection)
  // would otherwise still hold slots when an ideal batch starts.
  const idealRaw = await ssh2Connect(t2, true);
  const idealExec = async (): Promise<void> => {
    const out = await ssh2Exec(idealRaw, CMD);
    if (out !== 'x\n') throw new Error(`stdout ${JSON.stringify(out)}`);
  };
  const conc = [
    { tool: TETHER, once: batchOf(TETHER, tetherExec) },
    { tool: IDEAL_QUEUE, once: batchOf(IDEAL_QUEUE, idealQueue(idealRaw, 10, idealExec)) },
    { tool: NAIVE_QUEUE, once: batchOf(NAIVE_QUEUE, limited(10, rawExec)) },
    { tool: 'OpenSSH ssh -S', once: batchOf('OpenSSH ssh -S', muxExec) },
  ];
  const r32 = new Rounds();
  // 32 execs are cheap: more rounds than the bulk rows
  const n32 = rounds * (t2.quick ? 1 : 3);
  try {
    await r32.run(n32, conc);
  } finally {
    await ssh2End(idealRaw);
  }
  const idealMs = r32.median(IDEAL_QUEUE);
  for (const t of conc) {
    const row = msRow(`${label}: 32 concurrent execs (MaxSessions 10)`, t.tool, r32, 32, `time per batch of 32, median of ${n32}`);
    row.failures = failures.get(t.tool) ?? 0;
    const ex = failureExample.get(t.tool);
    if (ex !== undefined) row.notes = `${row.notes ?? ''}; e.g. "${ex}"`;
    const ms = r32.median(t.tool);
    if (idealMs !== undefined && ms !== undefined) row.vsIdealQueue = round2(ms / idealMs);
    if (t.tool === TETHER) {
      row.sessionLimit = client.health().sessionLimit;
      row.notes = `${row.notes ?? ''}; sessionLimit = health().sessionLimit after the run (sshd: 10)`;
    }
    if (t.tool === IDEAL_QUEUE) row.notes = `${row.notes ?? ''}; slot reused after the server answered a global request sent after our CLOSE`;
    if (t.tool === NAIVE_QUEUE) row.notes = `${row.notes ?? ''}; slot reused at 'close' (refusals expected)`;
    rows.push(row);
  }
  return rows;
}

/** Item 5 on loopback: the exec rows of {@link execRows} straight to the sshd. */
async function loopbackExecRows(target: BenchTarget, rounds: number): Promise<Row[]> {
  const client = new SshClient(tetherOptions(target));
  client.on('error', () => undefined);
  let raw: ssh2.Client | undefined;
  let cm: ControlMaster | undefined;
  try {
    await client.connect();
    raw = await ssh2Connect(target, true);
    cm = await startControlMaster(target);
    return await execRows(target, 'loopback', client, raw, cm, rounds);
  } finally {
    if (raw) await ssh2End(raw);
    await client.close();
    await cm?.close();
  }
}

/**
 * Whether this build's `get`/`put` take the option `channels` (striped transfers, issue 18 item
 * 4): a 1-byte put with `channels: 1`; an `ERR_SSH_INVALID_ARG` naming `channels` means no.
 */
async function hasChannelsOption(sftp: Awaited<ReturnType<SshClient['sftp']>>, localDir: string, remoteDir: string): Promise<boolean> {
  const f = path.join(localDir, 'probe-channels.bin');
  fs.writeFileSync(f, 'x');
  try {
    await sftp.put(f, `${remoteDir}/probe-channels.bin`, { channels: 1 });
    return true;
  } catch (err) {
    const e = err as { code?: unknown; field?: unknown; message?: unknown };
    if (e.code === 'ERR_SSH_INVALID_ARG' && (e.field === 'channels' || String(e.message).includes('channels'))) return false;
    throw err;
  }
}

/** A throughput row: the median of the samples. */
function rateRow(name: string, tool: string, r: Rounds, key: 'mbPerSec', base?: string): Row {
  const m = r.median(tool);
  const err = r.errors.get(tool);
  const xs = r.samples.get(tool) ?? [];
  const bs = base === undefined ? [] : (r.samples.get(base) ?? []);
  const perRound = base !== undefined && base !== tool && xs.length === bs.length && xs.length > 0 ? `per round ${base} / this: ${xs.map((x, i) => (bs[i]! / x).toFixed(2)).join(' ')}` : '';
  const notes = err ? `error: ${err}` : perRound;
  return { name, tool, ...(m === undefined ? {} : { [key]: round1(m) }), ...(notes ? { notes } : {}) };
}

/** A latency row: median ms, and `execPerSec` (ops per batch / ms) so the ratio column compares it. */
function msRow(name: string, tool: string, r: Rounds, ops: number, notes: string): Row {
  const m = r.median(tool);
  const err = r.errors.get(tool);
  return { name, tool, ...(m === undefined ? {} : { execPerSec: round1((ops * 1000) / m), ms: round1(m) }), notes: err ? `error: ${err}` : notes };
}

/** The latency rows of the bench table (see the file comment). */
export async function benchLatency(target: BenchTarget): Promise<Row[]> {
  const quick = target.quick;
  const rounds = quick ? 1 : 3;
  const sizes = { sftp: (quick ? 8 : 128) * MiB, fwd: (quick ? 8 : 64) * MiB };
  const delays = (process.env.BENCH_LATENCY_DELAYS ?? '5,25').split(',').map((s) => Number(s.trim())).filter((d) => Number.isFinite(d) && d >= 0);
  const local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-bench-latency-'));
  const rows: Row[] = [];
  const ep = await startEndpoints(sizes.fwd);
  const remoteDir = path.posix.join(target.homeDir, `bench-latency-${randomBytes(4).toString('hex')}`);
  const setup = new SshClient(tetherOptions(target));
  try {
    process.stderr.write('latency: loopback get (CPU, GC, event loop)...\n');
    rows.push(...(await loopbackGetRows(target, local, rounds)));
    process.stderr.write('latency: loopback execs...\n');
    rows.push(...(await loopbackExecRows(target, rounds)));
    const files = { src: path.join(local, 'src.bin'), dst: path.join(local, 'dst.bin'), remoteSrc: `${remoteDir}/src.bin`, remoteDst: `${remoteDir}/dst.bin` };
    randomFile(files.src, sizes.sftp);
    await setup.connect();
    const sftp = await setup.sftp();
    await sftp.mkdir(remoteDir, { recursive: true });
    await sftp.put(files.src, files.remoteSrc);
    for (const d of delays) rows.push(...(await benchAt(target, ep, d, files, sizes, rounds)));
    await sftp.rm(remoteDir, { recursive: true, force: true }).catch(() => undefined);
  } finally {
    await setup.close();
    await ep.close();
    await fsp.rm(local, { recursive: true, force: true });
  }
  return rows;
}

// run alone (or as a process `npm run bench` starts)
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]) && !(await runAsRowBenchChild(benchLatency))) {
  const sshd = await startSshd();
  try {
    const rows = await benchLatency(targetOf(sshd, process.env.BENCH_QUICK === '1'));
    console.table(rows);
  } finally {
    await sshd.stop();
  }
}
