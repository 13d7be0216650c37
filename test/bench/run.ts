/**
 * `npm run bench [-- core|sftp|forward|forward-window|group|latency|sync ...]`: starts ONE sshd (default MaxSessions 10), runs the
 * selected bench modules against it (default: all that exist), prints one markdown table per
 * section and the target checks (PASS/FAIL, never a failing exit code for a miss), and updates
 * `test/bench/RESULTS.md` (only the blocks of the modules that ran; the header with the machine
 * is rewritten).
 *
 * Environment:
 * - `BENCH_QUICK=1`: few iterations, a smoke run. RESULTS.md is NOT updated unless
 *   `BENCH_RESULTS` names a file.
 * - `BENCH_RESULTS=path`: write the results there instead of `test/bench/RESULTS.md`.
 * - `BENCH_PROCESSES=n` (default 3; 1 with BENCH_QUICK): the sftp and forward benches run n
 *   times, each in a fresh Node process, and report the median (V8's GC mode is per process).
 *
 * `test/bench/sftp.ts` (`benchSftp(target): Promise<Row[]>`), `test/bench/forward.ts`
 * (`benchForward(target): Promise<Row[]>`) and `test/bench/latency.ts` (`benchLatency`; `npm run
 * bench -- latency` runs only it) are imported only when the files exist.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { startSshd, type SshdHandle } from '../helpers/sshd.js';
import { benchCore } from './core.js';
import {
  isQuick,
  killAllChildren,
  renderSection,
  renderTargets,
  rowsToSection,
  runRowBenchInProcesses,
  targetOf,
  type BenchTarget,
  type Row,
  type Section,
  type TargetCheck,
} from './lib.js';

const BENCHES = ['core', 'sftp', 'forward', 'forward-window', 'group', 'latency', 'sync'] as const;
type BenchName = (typeof BENCHES)[number];

interface BenchOutput {
  sections: Section[];
  targets: TargetCheck[];
  /** Why the bench did not run, when it did not. */
  skipped?: string;
  elapsedMs: number;
  /** 1-minute load average before and after (other work on the box skews numbers). */
  load?: [number, number];
}

const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));

function parseArgs(argv: readonly string[]): BenchName[] {
  const names = argv.filter((a) => a !== '--');
  const bad = names.filter((a) => !(BENCHES as readonly string[]).includes(a));
  if (bad.length > 0) {
    process.stderr.write(`bench: unknown bench ${bad.map((b) => JSON.stringify(b)).join(', ')}; expected any of ${BENCHES.join(', ')} (default: all)\n`);
    process.exit(2);
  }
  return names.length === 0 ? [...BENCHES] : BENCHES.filter((b) => names.includes(b));
}

interface RowBench {
  run(t: BenchTarget): Promise<Row[]>;
  /** The issue's targets checked against the rows (optional export `targetsOf`). */
  targets(rows: readonly Row[]): TargetCheck[];
}

/** Loads `./<file>.ts` when it exists: its exported function `fn` and its optional `targetsOf`. */
async function loadRowBench(file: string, fn: string): Promise<RowBench | string> {
  if (!existsSync(here(`./${file}.ts`))) return `test/bench/${file}.ts does not exist yet`;
  const mod = (await import(new URL(`./${file}.js`, import.meta.url).href)) as Record<string, unknown>;
  const f = mod[fn];
  if (typeof f !== 'function') return `test/bench/${file}.ts does not export ${fn}()`;
  const t = mod.targetsOf;
  return {
    run: f as (t: BenchTarget) => Promise<Row[]>,
    targets: typeof t === 'function' ? (t as (rows: readonly Row[]) => TargetCheck[]) : () => [],
  };
}

async function runBench(name: BenchName, target: BenchTarget): Promise<BenchOutput> {
  const load0 = os.loadavg()[0] ?? Number.NaN;
  const out = await runBenchInner(name, target);
  return { ...out, load: [load0, os.loadavg()[0] ?? Number.NaN] };
}

async function runBenchInner(name: BenchName, target: BenchTarget): Promise<BenchOutput> {
  const t0 = Date.now();
  if (name === 'core') {
    const r = await benchCore(target);
    return { ...r, elapsedMs: Date.now() - t0 };
  }
  if (name === 'group') {
    const { benchGroup } = await import('./group.js');
    const r = await benchGroup(target);
    return { ...r, elapsedMs: Date.now() - t0 };
  }
  const [file, fn, title] =
    name === 'sftp'
      ? ['sftp', 'benchSftp', 'SFTP']
      : name === 'forward-window'
        ? ['forward-window', 'benchForwardWindow', 'Forward windows on a long link (delay-line proxy)']
        : name === 'latency'
          ? ['latency', 'benchLatency', 'Latency: through a delay line (RTT ~10 and ~50 ms), and the host event loop']
          : name === 'sync'
            ? ['sync', 'benchSync', 'Directory sync (issue 17)']
            : ['forward', 'benchForward', 'Port forwarding'];
  const f = await loadRowBench(file, fn);
  if (typeof f === 'string') return { sections: [], targets: [], skipped: f, elapsedMs: 0 };
  // Each run in fresh processes (the median over them; see runRowBenchInProcesses for why).
  // latency, forward-window: one process (their rounds interleave the tools and take medians already; they run long)
  const processes = name === 'latency' || name === 'forward-window' ? 1 : Math.max(1, Math.floor(Number(process.env.BENCH_PROCESSES ?? (target.quick ? 1 : 3))) || 1);
  const rows = processes === 1 ? await f.run(target) : await runRowBenchInProcesses(file, target, processes);
  return { sections: [rowsToSection(title, rows)], targets: f.targets(rows), elapsedMs: Date.now() - t0 };
}

/** Runs a short command; its stdout and stderr together, trimmed (`ssh -V` prints on stderr). */
function sh(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5_000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || 'unknown';
}

function machine(): string[] {
  let cpu = 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  const ssh2Version = (JSON.parse(readFileSync(here('../../node_modules/ssh2/package.json'), 'utf8')) as { version: string }).version;
  return [
    `- CPUs (nproc): ${sh('nproc', [])}`,
    `- CPU model: ${cpu}`,
    `- Memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- OS: ${os.type()} ${os.release()}`,
    `- Node: ${process.version}`,
    `- ssh2: ${ssh2Version}`,
    `- OpenSSH: ${sh('ssh', ['-V'])}`,
  ];
}

function renderBlock(name: BenchName, out: BenchOutput, quick: boolean): string {
  const head = `## ${name}\n\nMeasured ${new Date().toISOString()} (${quick ? 'BENCH_QUICK smoke run: too few iterations to mean much' : 'full run'}, ${(out.elapsedMs / 1000).toFixed(0)} s; 1-min load average ${out.load ? `${out.load[0].toFixed(2)} before, ${out.load[1].toFixed(2)} after` : 'unknown'} on ${os.cpus().length} CPUs).`;
  if (out.skipped) return `## ${name}\n\nNot run: ${out.skipped}.`;
  const parts = [head, ...out.sections.map(renderSection)];
  if (out.targets.length > 0) parts.push(`### Targets\n\n${renderTargets(out.targets)}`);
  return parts.join('\n\n');
}

const HEADER_END = '<!-- bench:header:end -->';
const marker = (name: string, edge: 'start' | 'end'): string => `<!-- bench:${name}:${edge} -->`;

/** Rewrites the header and the blocks of the benches that ran; keeps the other blocks. */
function writeResults(file: string, blocks: Map<BenchName, string>): void {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const header = [
    '# ssh-tether benchmarks',
    '',
    'Generated by `npm run bench` (`test/bench/run.ts`); do not edit by hand. All tools run against one',
    'OpenSSH sshd on loopback (default MaxSessions 10), pinned to aes128-gcm@openssh.com,',
    'curve25519-sha256 and ssh-ed25519. Each block below records when it was measured.',
    '',
    `Machine (as of ${new Date().toISOString()}):`,
    '',
    ...machine(),
    '',
    HEADER_END,
  ].join('\n');
  const body = BENCHES.map((name) => {
    const fresh = blocks.get(name);
    if (fresh !== undefined) return `${marker(name, 'start')}\n${fresh}\n${marker(name, 'end')}`;
    const s = old.indexOf(marker(name, 'start'));
    const e = old.indexOf(marker(name, 'end'));
    if (s >= 0 && e > s) return old.slice(s, e + marker(name, 'end').length);
    return undefined;
  }).filter((b): b is string => b !== undefined);
  writeFileSync(file, `${header}\n\n${body.join('\n\n')}\n`);
}

async function main(): Promise<number> {
  const selected = parseArgs(process.argv.slice(2));
  const quick = isQuick();
  const started = Date.now();
  process.stderr.write(`bench: ${selected.join(', ')}${quick ? ' (BENCH_QUICK)' : ''}; starting sshd...\n`);
  let sshd: SshdHandle | undefined;
  const blocks = new Map<BenchName, string>();
  const allTargets: TargetCheck[] = [];
  let failed = false;
  try {
    sshd = await startSshd();
    const target = targetOf(sshd, quick);
    for (const name of selected) {
      let out: BenchOutput;
      try {
        out = await runBench(name, target);
      } catch (err) {
        failed = true;
        process.stderr.write(`bench ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        continue;
      }
      if (out.skipped) {
        process.stdout.write(`\n## ${name}: skipped (${out.skipped})\n`);
      } else {
        process.stdout.write(`\n## ${name}\n\n${out.sections.map(renderSection).join('\n\n')}\n`);
        if (out.targets.length > 0) process.stdout.write(`\n### Targets (${name})\n\n${renderTargets(out.targets)}\n`);
      }
      allTargets.push(...out.targets);
      blocks.set(name, renderBlock(name, out, quick));
    }
  } finally {
    const killed = killAllChildren();
    if (killed > 0) process.stderr.write(`bench: killed ${killed} leftover child process(es)\n`);
    // The harness unrefs sshd's process handle, so nothing would keep the event loop alive
    // while remove() waits for the exit event: node would quit mid-cleanup. Hold it open.
    const hold = setInterval(() => undefined, 1_000);
    try {
      await sshd?.remove();
    } catch (err) {
      process.stderr.write(`bench: stopping sshd failed: ${String(err)}\n`);
    } finally {
      clearInterval(hold);
    }
  }
  const resultsPath = process.env.BENCH_RESULTS ?? (quick ? undefined : here('./RESULTS.md'));
  if (resultsPath !== undefined && blocks.size > 0) {
    writeResults(resultsPath, blocks);
    process.stderr.write(`bench: wrote ${resultsPath}\n`);
  } else if (quick) {
    process.stderr.write('bench: BENCH_QUICK run, RESULTS.md not updated (set BENCH_RESULTS=path to write one)\n');
  }
  const missed = allTargets.filter((t) => !t.pass).length;
  process.stderr.write(`bench: done in ${((Date.now() - started) / 1000).toFixed(1)} s; targets ${allTargets.length - missed}/${allTargets.length} PASS\n`);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    // The process should now exit by itself; if a handle leaked, say which and exit anyway.
    const watchdog = setTimeout(() => {
      process.stderr.write(`bench: handles still open after 10 s: ${JSON.stringify(process.getActiveResourcesInfo())}; exiting\n`);
      process.exit(code === 0 ? 3 : code);
    }, 10_000);
    watchdog.unref();
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
