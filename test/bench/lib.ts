/**
 * Shared helpers of the benchmark suite (`npm run bench`): the target every bench module gets,
 * the row shape of the sftp/forward benches, statistics, timing, child processes and markdown
 * tables.
 *
 * Statistics are written here rather than taken from npm: a median/percentile over an array is a
 * few lines, and the benchmark packages on npm (tinybench, benchmark.js) run a function in a
 * tight loop, which does not fit round trips to a server that must be interleaved between tools.
 *
 * No forced garbage collection: the bench runs without `--expose-gc`. That flag alone changes
 * V8's collection heuristics for Buffer-heavy code (measured on the forward bench: raw ssh2
 * `forwardOut` upload 487 MB/s and 133 mark-compacts with the flag, 541 MB/s and 10 without),
 * so it would measure every in-process tool under conditions no user runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { opensshArgs } from '../helpers/sshd.js';
import { clientOptions } from '../helpers/client.js';
import type { SshdHandle } from '../helpers/sshd.js';
import type { SshClientOptions } from '../../src/index.js';

// ---------------------------------------------------------------------------------------------
// the target

/**
 * The one sshd of a bench run, handed to every bench module (`benchCore`, `benchSftp`,
 * `benchForward`). Fields are those of the harness handle (`test/helpers/sshd.ts`); the server is
 * started with default `MaxSessions` (10).
 */
export interface BenchTarget
  extends Pick<
    SshdHandle,
    | 'host'
    | 'port'
    | 'username'
    | 'privateKeyPath'
    | 'privateKey'
    | 'publicKey'
    | 'knownHostsPath'
    | 'hostPublicKey'
    | 'hostKeyFingerprint'
    | 'homeDir'
    | 'dir'
  > {
  /** `BENCH_QUICK=1`: a smoke run with few iterations (numbers are not meaningful). */
  quick: boolean;
  /** Pid of the sshd listener (for the server-side CPU of a transfer: {@link treeCpuSeconds}). */
  sshdPid?: number | undefined;
}

/** Builds a {@link BenchTarget} from the harness handle. */
export function targetOf(h: SshdHandle, quick: boolean): BenchTarget {
  return {
    host: h.host,
    port: h.port,
    username: h.username,
    privateKeyPath: h.privateKeyPath,
    privateKey: h.privateKey,
    publicKey: h.publicKey,
    knownHostsPath: h.knownHostsPath,
    hostPublicKey: h.hostPublicKey,
    hostKeyFingerprint: h.hostKeyFingerprint,
    homeDir: h.homeDir,
    dir: h.dir,
    quick,
    sshdPid: h.pid,
  };
}

/** Whether `BENCH_QUICK` is set to something other than `''`/`0`. */
export function isQuick(): boolean {
  const v = process.env.BENCH_QUICK;
  return v !== undefined && v !== '' && v !== '0';
}

/** `full` iterations normally, `quick` under `BENCH_QUICK=1`. */
export function iterations(full: number, quick: number): number {
  return isQuick() ? quick : full;
}

/**
 * One measured result of the sftp/forward benches. Any extra numeric field is shown as its own
 * column. Higher `mbPerSec` (MB = 10^6 bytes, per wall-clock second) and `connPerSec` are better;
 * lower `cpuSecPerGiB` (client CPU seconds per GiB moved) is better.
 */
export interface Row {
  /** What was measured, e.g. `'upload 64 MiB'`. Rows of different tools with the same name are compared. */
  name: string;
  /** Who did it, e.g. `'ssh-tether'`, `'ssh2-sftp-client'`, `'sftp (OpenSSH)'`. */
  tool: string;
  mbPerSec?: number;
  connPerSec?: number;
  /** Execs completed per second (the latency bench's exec rows). */
  execPerSec?: number;
  cpuSecPerGiB?: number;
  notes?: string;
  [extra: string]: string | number | undefined;
}

// ---------------------------------------------------------------------------------------------
// algorithms pinned for every tool

/** The algorithms every tool is pinned to, so the comparison is like for like. */
export const PINNED = Object.freeze({
  cipher: 'aes128-gcm@openssh.com',
  kex: 'curve25519-sha256',
  serverHostKey: 'ssh-ed25519',
});

/** {@link PINNED} as an ssh2 / ssh-tether `algorithms` option. */
export function pinnedAlgorithms(): { cipher: string[]; kex: string[]; serverHostKey: string[] } {
  return { cipher: [PINNED.cipher], kex: [PINNED.kex], serverHostKey: [PINNED.serverHostKey] };
}

/** {@link PINNED} as OpenSSH client options (`ssh`, `sftp`, `scp`). */
export function pinnedOpensshArgs(): string[] {
  return ['-c', PINNED.cipher, '-o', `KexAlgorithms=${PINNED.kex}`, '-o', `HostKeyAlgorithms=${PINNED.serverHostKey}`];
}

/**
 * An ssh2 `hostVerifier` that accepts only the target's host key (so raw ssh2 and node-ssh verify
 * the key like ssh-tether and OpenSSH do, at the cost of one buffer compare).
 */
export function hostKeyVerifier(target: Pick<BenchTarget, 'hostPublicKey'>): (key: Buffer) => boolean {
  const b64 = target.hostPublicKey.trim().split(/\s+/)[1] ?? '';
  const expected = Buffer.from(b64, 'base64');
  return (key: Buffer) => Buffer.isBuffer(key) && key.equals(expected);
}

// ---------------------------------------------------------------------------------------------
// statistics

/** Sorted copy. */
function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Linear-interpolated percentile `p` (0..100) of `xs`; `NaN` for an empty array. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = sorted(xs);
  const idx = ((s.length - 1) * Math.min(100, Math.max(0, p))) / 100;
  const lo = Math.floor(idx);
  const hi = Math.ceil(idx);
  const a = s[lo]!;
  const b = s[hi]!;
  return a + (b - a) * (idx - lo);
}

/** Median of `xs`; `NaN` for an empty array. */
export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

/** Summary of a sample: count, median, p10, p90, min, max. */
export interface Summary {
  n: number;
  median: number;
  p10: number;
  p90: number;
  min: number;
  max: number;
}

/** {@link Summary} of `xs`. */
export function summarize(xs: readonly number[]): Summary {
  return {
    n: xs.length,
    median: median(xs),
    p10: percentile(xs, 10),
    p90: percentile(xs, 90),
    min: xs.length ? Math.min(...xs) : Number.NaN,
    max: xs.length ? Math.max(...xs) : Number.NaN,
  };
}

// ---------------------------------------------------------------------------------------------
// timing

/** A monotonic clock in milliseconds (fractional). */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `Error(what + ' timed out after N ms')` when `p` does not settle within `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** The CPU time (user + system) this process used so far, in seconds. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// child processes

/** Outcome of {@link runProcess}. */
export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ms. */
  elapsedMs: number;
}

/** Child processes spawned by bench helpers and not yet exited; killed by {@link killAllChildren}. */
const children = new Set<ChildProcess>();

/**
 * Spawns `file args` (stdin ignored), collects its output and resolves on exit. Never rejects:
 * a spawn error resolves with `code: null` and the message in `stderr`. Killed with SIGKILL after
 * `timeoutMs` (default 30 s).
 */
export function runProcess(file: string, args: readonly string[], timeoutMs = 30_000): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const t0 = nowMs();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      if (stdout.length < 1 << 20) stdout += s;
    });
    child.stderr.on('data', (s: string) => {
      if (stderr.length < 1 << 20) stderr += s;
    });
    let done = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const finish = (code: number | null, signal: NodeJS.Signals | null, extra = ''): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr: stderr + extra, elapsedMs: nowMs() - t0 });
    };
    child.on('error', (err) => finish(null, null, `spawn error: ${err.message}`));
    child.on('close', (code, signal) => finish(code, signal));
  });
}

/** Registers a child spawned elsewhere so {@link killAllChildren} covers it; unregisters on exit. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
}

/** SIGKILLs every child still tracked (the bench's last resort at exit). Returns how many. */
export function killAllChildren(): number {
  let n = 0;
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      n++;
    }
  }
  children.clear();
  return n;
}

// ---------------------------------------------------------------------------------------------
// formatting

/** A number with `digits` decimals (fewer for large values); `'-'` for `NaN`/`undefined`. */
export function fmt(x: number | undefined, digits = 2): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return x.toFixed(Math.min(digits, 1));
  return x.toFixed(digits);
}

/** `a / b` formatted as `1.23x`, `'-'` when either is missing or zero. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || a <= 0 || b <= 0) return '-';
  return `${(a / b).toFixed(2)}x`;
}

/** A section of the report: a titled markdown table with optional notes under it. */
export interface Section {
  title: string;
  columns: string[];
  rows: string[][];
  notes?: string[];
}

/** A target checked by a bench: printed as PASS/FAIL, never fails the process. */
export interface TargetCheck {
  name: string;
  pass: boolean;
  detail: string;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** Renders a markdown table (numbers right-aligned when the column is all numeric-ish). */
export function markdownTable(columns: readonly string[], rows: readonly (readonly string[])[]): string {
  const numeric = columns.map((_, i) => rows.length > 0 && rows.every((r) => /^(-|[-+]?[\d.]+(x|%| ms)?|\d+\/\d+)$/.test(r[i] ?? '-')));
  const widths = columns.map((c, i) => Math.max(3, cell(c).length, ...rows.map((r) => cell(r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (numeric[i] ? cell(c).padStart(widths[i]!) : cell(c).padEnd(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (numeric[i] ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(columns), sep, ...rows.map((r) => line(columns.map((_, i) => r[i] ?? '')))].join('\n');
}

/** Renders a {@link Section} as markdown (heading, table, notes). */
export function renderSection(s: Section): string {
  const parts = [`### ${s.title}`, '', markdownTable(s.columns, s.rows)];
  if (s.notes && s.notes.length > 0) parts.push('', ...s.notes.map((n) => `- ${n}`));
  return parts.join('\n');
}

/** Renders target checks as a markdown list with PASS/FAIL. */
export function renderTargets(targets: readonly TargetCheck[]): string {
  return targets.map((t) => `- **${t.pass ? 'PASS' : 'FAIL'}** ${t.name}: ${t.detail}`).join('\n');
}

const KNOWN_ORDER = ['filesPerSec', 'mbPerSec', 'connPerSec', 'execPerSec', 'cpuSecPerGiB'];
const HIGHER_IS_BETTER = new Set(['filesPerSec', 'mbPerSec', 'connPerSec', 'execPerSec']);

/**
 * Turns bench {@link Row}s into a {@link Section}: columns `name`, `tool`, every numeric field
 * present (known ones first), a ratio column comparing ssh-tether's primary metric (the first of
 * `mbPerSec`/`connPerSec` present) with each row of the same `name`, and `notes`.
 */
export function rowsToSection(title: string, rows: readonly Row[]): Section {
  const numericKeys: string[] = [];
  for (const k of KNOWN_ORDER) if (rows.some((r) => typeof r[k] === 'number')) numericKeys.push(k);
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === 'number' && !numericKeys.includes(k)) numericKeys.push(k);
    }
  }
  const isTether = (r: Row): boolean => /tether/i.test(r.tool);
  const primaryOf = (r: Row): string | undefined => KNOWN_ORDER.find((k) => HIGHER_IS_BETTER.has(k) && typeof r[k] === 'number');
  const hasRatio = rows.some((r) => !isTether(r) && rows.some((t) => isTether(t) && t.name === r.name));
  const columns = ['name', 'tool', ...numericKeys, ...(hasRatio ? ['ssh-tether vs this'] : []), 'notes'];
  const out = rows.map((r) => {
    const cells = [r.name, r.tool, ...numericKeys.map((k) => fmt(typeof r[k] === 'number' ? r[k] : undefined))];
    if (hasRatio) {
      const t = rows.find((x) => isTether(x) && x.name === r.name);
      const key = primaryOf(r);
      cells.push(t && key && !isTether(r) ? ratio(t[key] as number | undefined, r[key] as number | undefined) : '-');
    }
    cells.push(r.notes ?? '');
    return cells;
  });
  return {
    title,
    columns,
    rows: out,
    notes: hasRatio ? ['"ssh-tether vs this": the files/s, MB/s, conn/s or exec/s (the first of those a row has) of the first ssh-tether row with the same name divided by this row\'s; > 1 means ssh-tether is faster.'] : [],
  };
}

/**
 * ssh-tether client options for a bench target: the harness key and known_hosts, no agent, no
 * ssh_config (hermetic), the pinned algorithms and no reconnect (a bench measures one connection).
 */
export function tetherOptions(t: BenchTarget): SshClientOptions {
  return clientOptions(t, { algorithms: pinnedAlgorithms(), reconnect: false });
}

/** CPU seconds (user + system) a live process has used so far, from `/proc/<pid>/stat`; 0 when gone. */
export function procCpuSeconds(pid: number | undefined): number {
  if (pid === undefined || !Number.isInteger(pid)) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100; // utime + stime, in clock ticks
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system, own and reaped children's) of `root` and every live process below
 * it, from /proc: e.g. the sshd listener with its per-connection processes and sftp-servers. A
 * difference of two readings is the server-side CPU of what ran in between (a process that
 * exited was reaped by its parent, whose `cutime`/`cstime` then holds its CPU). 0 when `root`
 * is undefined or gone.
 */
export function treeCpuSeconds(root: number | undefined): number {
  if (root === undefined || !Number.isInteger(root)) return 0;
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(e), Number(rest[1]));
      // utime stime cutime cstime (fields 14-17 of proc(5)), in clock ticks
      ticks.set(Number(e), Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]));
    } catch {
      // gone meanwhile
    }
  }
  let sum = 0;
  for (const [pid, t] of ticks) {
    let p: number | undefined = pid;
    for (let depth = 0; p !== undefined && p > 1 && depth < 64; depth++) {
      if (p === root) {
        sum += t;
        break;
      }
      p = parent.get(p);
    }
  }
  return sum / 100;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A running OpenSSH ControlMaster: its socket, its pid (for CPU accounting) and a closer. */
export interface ControlMaster {
  /** The ControlPath: pass `-S sockPath` (or `-o ControlPath=`) to ssh, scp and sftp. */
  sockPath: string;
  /** The master's pid (from `ssh -O check`); `NaN` when it could not be read. */
  pid: number;
  /** `ssh -O exit`, waits (bounded) for the master to leave, removes its directory. */
  close(): Promise<void>;
}

/**
 * Starts an OpenSSH ControlMaster (`ssh -M -N -f`, `ControlPersist=yes`) to `t` with the pinned
 * algorithms; ssh, scp and sftp then run their sessions over it (`-S sockPath`), so no transfer
 * or exec pays for a connection of its own.
 */
export async function startControlMaster(t: BenchTarget, timeoutMs = 20_000): Promise<ControlMaster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-bench-cm-'));
  const sockPath = path.join(dir, 'cm');
  const logPath = path.join(dir, 'master.log');
  const base = opensshArgs(t);
  const start = await runProcess(
    'ssh',
    ['-M', '-N', '-f', '-E', logPath, ...base, ...pinnedOpensshArgs(), '-o', `ControlPath=${sockPath}`, '-o', 'ControlPersist=yes', t.host],
    timeoutMs,
  );
  if (start.code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`ssh -M failed (code ${String(start.code)}): ${start.stderr}`);
  }
  const chk = await runProcess('ssh', ['-S', sockPath, '-O', 'check', ...base, t.host], 5_000);
  const pid = Number(/pid=(\d+)/.exec(chk.stderr)?.[1] ?? Number.NaN);
  return {
    sockPath,
    pid,
    async close() {
      const r = await runProcess('ssh', ['-S', sockPath, '-O', 'exit', ...base, t.host], 5_000);
      if (r.code !== 0 && Number.isInteger(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      // The master leaves after -O exit; wait (bounded) so no process outlives the bench.
      for (let i = 0; i < 100 && Number.isInteger(pid) && alive(pid); i++) await sleep(20);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The row named `name` by `tool` (exact), if measured. */
function rowOf(rows: readonly Row[], name: RegExp, tool: string): Row | undefined {
  return rows.find((r) => name.test(r.name) && r.tool === tool);
}

/**
 * A target "`ours` is at least `min` x `theirs`" on `key` (higher is better), or for
 * `cpuSecPerGiB` "at most `min` x theirs". Missing rows make a failed check that says so.
 */
export function ratioTarget(
  rows: readonly Row[],
  label: string,
  name: RegExp,
  ours: string,
  theirs: string,
  key: 'mbPerSec' | 'connPerSec' | 'filesPerSec' | 'cpuSecPerGiB',
  min: number,
): TargetCheck {
  const a = rowOf(rows, name, ours)?.[key];
  const b = rowOf(rows, name, theirs)?.[key];
  if (typeof a !== 'number' || typeof b !== 'number') return { name: label, pass: false, detail: `not measured (${ours}: ${String(a)}, ${theirs}: ${String(b)})` };
  if (key === 'cpuSecPerGiB') {
    return { name: label, pass: a <= b * min, detail: `${ours} ${a} s/GiB vs ${theirs} ${b} s/GiB (${(a / b).toFixed(2)}x)` };
  }
  return { name: label, pass: a >= b * min, detail: `${ours} ${a} vs ${theirs} ${b}: ${(a / b).toFixed(2)}x` };
}

// ---------------------------------------------------------------------------------------------
// row benches in fresh processes

const TARGET_ENV = 'BENCH_TARGET_JSON';
const ROWS_PREFIX = 'BENCH_ROWS ';

/**
 * When this process was started by {@link runRowBenchInProcesses}: runs `bench` on the target it
 * was given, prints the rows for the parent and returns true. Otherwise returns false (the caller
 * runs stand-alone).
 */
export async function runAsRowBenchChild(bench: (t: BenchTarget) => Promise<Row[]>): Promise<boolean> {
  const json = process.env[TARGET_ENV];
  if (json === undefined) return false;
  const raw = JSON.parse(json) as BenchTarget & { privateKey: string };
  const target: BenchTarget = { ...raw, privateKey: Buffer.from(raw.privateKey, 'base64') };
  const rows = await bench(target);
  process.stdout.write(`${ROWS_PREFIX}${JSON.stringify(rows)}\n`);
  return true;
}

/**
 * Runs the row bench `file` (test/bench/<file>.ts) `processes` times, each in a fresh Node
 * process against `target`, and merges the rows: every numeric field is the median over the
 * processes, and the notes say how many processes and the spread of the first of
 * files/s, MB/s or conn/s.
 *
 * Why: V8's garbage collector settles per process into one of two modes for Buffer-heavy
 * transfers (a mark-compact every 20-40 ms, or rarely), which moves every in-process tool's
 * throughput by 30-40% together; one process is one draw of that. The median over several
 * processes is the steadier figure.
 */
export async function runRowBenchInProcesses(file: string, target: BenchTarget, processes: number): Promise<Row[]> {
  const script = path.join(path.dirname(new URL(import.meta.url).pathname), `${file}.ts`);
  const register = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../scripts/ts-node-register.mjs');
  const env = { ...process.env, [TARGET_ENV]: JSON.stringify({ ...target, privateKey: target.privateKey.toString('base64') }) };
  const all: Row[][] = [];
  for (let i = 0; i < processes; i++) {
    const rows = await new Promise<Row[]>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', register, script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
      trackChild(child);
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => (out += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30 * 60_000);
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const line = out.split('\n').find((l) => l.startsWith(ROWS_PREFIX));
        if (code !== 0 || line === undefined) return reject(new Error(`bench ${file} process ${i + 1} failed (${String(code ?? signal)})`));
        resolve(JSON.parse(line.slice(ROWS_PREFIX.length)) as Row[]);
      });
    });
    all.push(rows);
  }
  return mergeRows(all);
}

/** Medians of each (name, tool) row over the runs, in the first run's order. */
export function mergeRows(runs: readonly (readonly Row[])[]): Row[] {
  const first = runs[0] ?? [];
  if (runs.length <= 1) return [...first];
  return first.map((r) => {
    const same = runs.map((rows) => rows.find((x) => x.name === r.name && x.tool === r.tool)).filter((x): x is Row => x !== undefined);
    const merged: Row = { name: r.name, tool: r.tool };
    for (const [k, v] of Object.entries(r)) {
      if (typeof v !== 'number') continue;
      const xs = same.map((x) => x[k]).filter((x): x is number => typeof x === 'number');
      merged[k] = Math.round(median(xs) * 100) / 100;
    }
    const key = ['filesPerSec', 'mbPerSec', 'connPerSec'].find((k) => typeof r[k] === 'number');
    const xs = key ? same.map((x) => x[key]).filter((x): x is number => typeof x === 'number') : [];
    const spread = xs.length > 1 ? `; ${same.length} processes, ${Math.min(...xs)}-${Math.max(...xs)}` : '';
    const notes = `${r.notes ?? ''}${spread}`.replace(/^; /, '');
    if (notes !== '') merged.notes = notes;
    return merged;
  });
}
