/**
 * Host-group benchmarks (issue 17 §2, §5): `group.exec('true')` on N hosts (20 and 200 by
 * default) with bounded concurrency, against
 * - a sequential loop of `SshClient.exec` over N connected clients (what a user writes first),
 * - N `ssh -S` processes in parallel over N OpenSSH ControlMasters (one per host, started before
 *   the clock starts), bounded by the same concurrency as the group,
 * and the memory each idle connected host costs: ssh-tether's RSS and V8 heap after connecting N
 * clients and forcing GC, divided by N, next to one OpenSSH ControlMaster's RSS.
 *
 * Every "host" is the one bench sshd (127.0.0.1, its port): each entry still gets its own client
 * and TCP connection, so the client side does the same work as with N machines; the sshd and the
 * loopback are shared, as with one sshd listening on N addresses. Samples of the three tools are
 * interleaved (round robin per repetition); medians are reported, and ratios are "this row's
 * median divided by the group's" (> 1: the group is faster).
 *
 * Environment: `BENCH_GROUP_HOSTS=20,200` (host counts), `BENCH_QUICK=1` (5 and 20 hosts, 2
 * repetitions). Run alone: `node --import ./scripts/ts-node-register.mjs test/bench/group.ts`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pLimit from 'p-limit';
import { SshClient, SshGroup } from '../../src/index.js';
import { opensshArgs, startSshd } from '../helpers/sshd.js';
import {
  fmt,
  iterations,
  nowMs,
  ratio,
  renderSection,
  renderTargets,
  runProcess,
  startControlMaster,
  summarize,
  targetOf,
  tetherOptions,
  type BenchTarget,
  type ControlMaster,
  type Section,
  type TargetCheck,
} from './lib.js';

/** What {@link benchGroup} returns (as `benchCore`). */
export interface GroupBenchResult {
  sections: Section[];
  targets: TargetCheck[];
}

const OP_TIMEOUT_MS = 60_000;
/** Concurrency of the group and of the parallel `ssh -S` runs (the issue's 200-host case uses 50). */
const CONCURRENCY = 50;

function hostCounts(quick: boolean): number[] {
  const env = process.env.BENCH_GROUP_HOSTS;
  if (env !== undefined && env.trim() !== '') {
    const ns = env.split(',').map((s) => Number(s.trim()));
    if (ns.every((n) => Number.isInteger(n) && n >= 1 && n <= 1000)) return ns;
    throw new Error(`BENCH_GROUP_HOSTS: expected host counts 1..1000 separated by commas, got ${JSON.stringify(env)}`);
  }
  return quick ? [5, 20] : [20, 200];
}

/** A full GC, also when node was not started with `--expose-gc`. */
function forceGc(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
}

/** Resident set size of `pid` in bytes (`VmRSS` of /proc), NaN when unreadable. */
function rssOf(pid: number): number {
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? Number.NaN : Number(kb) * 1024;
  } catch {
    return Number.NaN;
  }
}

const MiB = 2 ** 20;

/** Times one call of `fn` in ms. */
async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = nowMs();
  await fn();
  return nowMs() - t0;
}

interface ExecRound {
  group: number[];
  sequential: number[];
  sshMux: number[];
  /** First group.exec, connects included. */
  groupCold: number;
}

async function execRound(target: BenchTarget, n: number, reps: number): Promise<ExecRound> {
  const opts = tetherOptions(target);
  const group = new SshGroup(
    Array.from({ length: n }, () => ({ ...opts, connectTimeoutMs: OP_TIMEOUT_MS })),
    { concurrency: CONCURRENCY },
  );
  const clients: SshClient[] = [];
  const masters: ControlMaster[] = [];
  const limit = pLimit(CONCURRENCY);
  try {
    const groupExec = async (): Promise<void> => {
      const r = await group.exec('true', { timeoutMs: OP_TIMEOUT_MS });
      const bad = r.filter((x) => !x.ok || x.value.exitCode !== 0);
      if (bad.length > 0) throw new Error(`group exec: ${bad.length}/${n} hosts failed: ${bad.map((x) => (x.ok ? `exit ${String(x.value.exitCode)}` : x.error.code)).slice(0, 3).join(', ')}`);
    };
    process.stderr.write(`group: ${n} hosts: group connect + exec...\n`);
    const groupCold = await timed(groupExec);

    process.stderr.write(`group: ${n} hosts: connecting ${n} clients for the sequential loop...\n`);
    for (let i = 0; i < n; i++) clients.push(new SshClient(opts));
    await Promise.all(clients.map((c) => limit(() => c.connect({ timeoutMs: OP_TIMEOUT_MS }))));
    const sequential = async (): Promise<void> => {
      for (const c of clients) {
        const r = await c.exec('true', { timeoutMs: OP_TIMEOUT_MS });
        if (r.exitCode !== 0) throw new Error(`sequential exec: exit ${String(r.exitCode)}`);
      }
    };

    process.stderr.write(`group: ${n} hosts: starting ${n} ControlMasters...\n`);
    const cmLimit = pLimit(10);
    masters.push(...(await Promise.all(Array.from({ length: n }, () => cmLimit(() => startControlMaster(target, OP_TIMEOUT_MS))))));
    const base = opensshArgs(target);
    const sshMux = async (): Promise<void> => {
      await Promise.all(
        masters.map((cm) =>
          limit(async () => {
            const r = await runProcess('ssh', ['-S', cm.sockPath, '-o', 'ControlMaster=no', ...base, target.host, 'true'], OP_TIMEOUT_MS);
            if (r.code !== 0) throw new Error(`ssh -S exit ${String(r.code)}: ${r.stderr.trim()}`);
          }),
        ),
      );
    };

    const out: ExecRound = { group: [], sequential: [], sshMux: [], groupCold };
    const tools: [keyof Omit<ExecRound, 'groupCold'>, () => Promise<void>][] = [
      ['group', groupExec],
      ['sequential', sequential],
      ['sshMux', sshMux],
    ];
    process.stderr.write(`group: ${n} hosts: ${reps} interleaved repetitions...\n`);
    for (let i = 0; i < reps; i++) {
      for (let k = 0; k < tools.length; k++) {
        const [name, fn] = tools[(i + k) % tools.length]!;
        out[name].push(await timed(fn));
      }
    }
    return out;
  } finally {
    await group.close();
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await Promise.all(masters.map((m) => m.close().catch(() => undefined)));
  }
}

interface MemoryResult {
  n: number;
  rssPerHost: number;
  heapPerHost: number;
  masterRss: number;
}

/** Memory of `n` idle connected hosts of one group (after a forced GC), and of one ControlMaster. */
async function memoryRound(target: BenchTarget, n: number): Promise<MemoryResult> {
  forceGc();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  const opts = tetherOptions(target);
  const group = new SshGroup(
    Array.from({ length: n }, () => ({ ...opts, connectTimeoutMs: OP_TIMEOUT_MS })),
    { concurrency: CONCURRENCY },
  );
  let master: ControlMaster | undefined;
  try {
    const r = await group.run((client) => client.health().state, { timeoutMs: OP_TIMEOUT_MS });
    if (!r.every((x) => x.ok)) throw new Error('memory round: a host did not connect');
    // Let the handshakes' garbage go, then measure the idle state.
    await new Promise((resolve) => setTimeout(resolve, 500));
    forceGc();
    const mem = process.memoryUsage();
    master = await startControlMaster(target, OP_TIMEOUT_MS);
    await new Promise((resolve) => setTimeout(resolve, 200));
    return { n, rssPerHost: (mem.rss - rss0) / n, heapPerHost: (mem.heapUsed - heap0) / n, masterRss: rssOf(master.pid) };
  } finally {
    await group.close();
    await master?.close();
  }
}

/** Runs the group benchmarks against `target`; closes every client and process it started. */
export async function benchGroup(target: BenchTarget): Promise<GroupBenchResult> {
  const reps = iterations(5, 2);
  const counts = hostCounts(target.quick);
  const rows: string[][] = [];
  const targets: TargetCheck[] = [];
  // Memory first: RSS does not shrink after the exec rounds' garbage, so measured later it hides growth.
  const memN = counts[counts.length - 1]!;
  process.stderr.write(`group: memory of ${memN} idle hosts...\n`);
  const mem = await memoryRound(target, memN);
  for (const n of counts) {
    const r = await execRound(target, n, reps);
    const g = summarize(r.group);
    const s = summarize(r.sequential);
    const m = summarize(r.sshMux);
    const hostsPerSec = (ms: number): string => fmt((n / ms) * 1000, 1);
    rows.push(
      [`${n} hosts`, `ssh-tether SshGroup (concurrency ${Math.min(CONCURRENCY, n)}), connected`, fmt(g.median), fmt(g.p90), hostsPerSec(g.median), '1.00x', `${reps} runs`],
      [`${n} hosts`, 'ssh-tether SshGroup, first call (connects included)', fmt(r.groupCold), '-', hostsPerSec(r.groupCold), ratio(r.groupCold, g.median), '1 run'],
      [`${n} hosts`, 'ssh-tether SshClient.exec, sequential loop, connected', fmt(s.median), fmt(s.p90), hostsPerSec(s.median), ratio(s.median, g.median), `${reps} runs`],
      [`${n} hosts`, `OpenSSH: ${n} ControlMasters, ssh -S in parallel (at most ${Math.min(CONCURRENCY, n)})`, fmt(m.median), fmt(m.p90), hostsPerSec(m.median), ratio(m.median, g.median), `${reps} runs; one ssh process per host`],
    );
    targets.push({
      name: `group.exec on ${n} hosts faster than a sequential loop`,
      pass: g.median < s.median,
      detail: `${fmt(g.median)} ms vs ${fmt(s.median)} ms (${ratio(s.median, g.median)})`,
    });
  }
  return {
    sections: [
      {
        title: "group.exec('true') on N hosts",
        columns: ['hosts', 'tool', 'median ms', 'p90 ms', 'hosts/s', 'this vs group', 'notes'],
        rows,
        notes: [
          '"this vs group": this row\'s median time divided by the connected group\'s; > 1 means the group is faster.',
          `Every host is the one bench sshd (own client and TCP connection per host). Group and ssh -S bounded at ${CONCURRENCY} at once.`,
        ],
      },
      {
        title: `Memory per idle connected host (${memN} hosts, after a forced GC)`,
        columns: ['what', 'MiB per host', 'notes'],
        rows: [
          ['ssh-tether SshGroup: process RSS growth / N', fmt(mem.rssPerHost / MiB, 3), 'one SshClient + ssh2 connection + socket each'],
          ['ssh-tether SshGroup: V8 heap used growth / N', fmt(mem.heapPerHost / MiB, 3), ''],
          ['OpenSSH ControlMaster (ssh -M): RSS of one master process', fmt(mem.masterRss / MiB, 3), `${ratio(mem.masterRss, mem.rssPerHost)} ssh-tether's RSS per host`],
        ],
      },
    ],
    targets,
  };
}

// run alone
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const sshd = await startSshd();
  try {
    const r = await benchGroup(targetOf(sshd, process.env.BENCH_QUICK === '1'));
    process.stdout.write(`${r.sections.map(renderSection).join('\n\n')}\n\n${renderTargets(r.targets)}\n`);
  } finally {
    await sshd.remove();
  }
}
