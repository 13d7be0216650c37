/**
 * Core benchmarks: connect-to-ready time and exec round trips (sequential, 8 and 32 concurrent),
 * ssh-tether vs raw ssh2 (with and without TCP_NODELAY), node-ssh and OpenSSH `ssh`, all on one
 * sshd and pinned to the same algorithms ({@link PINNED}).
 *
 * Samples of different tools are interleaved (round robin per iteration) so a slow spell of the
 * machine hits every tool alike. Medians are reported; ratios are "this tool's median divided by
 * ssh-tether's" (> 1: ssh-tether is faster).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import ssh2 from 'ssh2';
import { SshClient } from '../../src/index.js';
// Observed only (never changed): how often ssh-tether's session limiter learns a lower limit.
import { SessionLimiter } from '../../src/channel/limiter.js';
import { opensshArgs } from '../helpers/sshd.js';
import {
  fmt,
  hostKeyVerifier,
  iterations,
  nowMs,
  pinnedAlgorithms,
  pinnedOpensshArgs,
  ratio,
  runProcess,
  sleep,
  startControlMaster,
  summarize,
  tetherOptions,
  trackChild,
  withTimeout,
  type BenchTarget,
  type Section,
  type Summary,
  type TargetCheck,
} from './lib.js';

/** What {@link benchCore} returns: one section per measurement and the target checks. */
export interface CoreResult {
  sections: Section[];
  targets: TargetCheck[];
}

/** Tool labels, in table order. */
const TETHER = 'ssh-tether';
const RAW = 'raw ssh2';
const RAW_ND = 'raw ssh2 + noDelay';
const NODE_SSH = 'node-ssh';
const OPENSSH = 'OpenSSH ssh';
const RAW_ND_Q = 'raw ssh2 + noDelay, 10-slot queue';

const CMD = 'echo x';
const EXPECTED = 'x\n';
const OP_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// node-ssh (optional: a devDependency)

interface NodeSshLike {
  connect(config: Record<string, unknown>): Promise<unknown>;
  execCommand(cmd: string): Promise<{ stdout: string; stderr: string; code: number | null }>;
  dispose(): void | Promise<void>;
  connection: ssh2.Client | null;
}
type NodeSshCtor = new () => NodeSshLike;

async function loadNodeSsh(): Promise<NodeSshCtor | undefined> {
  try {
    const mod = (await import('node-ssh')) as { NodeSSH?: NodeSshCtor };
    return mod.NodeSSH;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// connecting, per tool

function ssh2Config(t: BenchTarget, noDelay: boolean): ssh2.ConnectConfig {
  const cfg: ssh2.ConnectConfig = {
    host: t.host,
    port: t.port,
    username: t.username,
    privateKey: t.privateKey,
    algorithms: pinnedAlgorithms() as ssh2.Algorithms,
    hostVerifier: hostKeyVerifier(t),
    readyTimeout: OP_TIMEOUT_MS,
  };
  if (noDelay) cfg.sock = net.connect({ host: t.host, port: t.port, noDelay: true });
  return cfg;
}

/** Connects a raw ssh2 client; resolves at 'ready'. The client always has an 'error' listener. */
export function ssh2Connect(t: BenchTarget, noDelay: boolean): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    let settled = false;
    c.on('error', (err) => {
      if (settled) return;
      settled = true;
      c.end();
      reject(err);
    });
    c.once('ready', () => {
      if (settled) return;
      settled = true;
      resolve(c);
    });
    c.connect(ssh2Config(t, noDelay));
  });
}

/** Ends a raw ssh2 client and waits (bounded) for its 'close'. */
export async function ssh2End(c: ssh2.Client): Promise<void> {
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
  c.end();
  try {
    await withTimeout(closed, 5_000, 'ssh2 close');
  } catch {
    c.destroy();
  }
}

async function nodeSshConnect(Ctor: NodeSshCtor, t: BenchTarget): Promise<NodeSshLike> {
  const n = new Ctor();
  await n.connect({
    host: t.host,
    port: t.port,
    username: t.username,
    privateKey: t.privateKey.toString('utf8'),
    algorithms: pinnedAlgorithms(),
    hostVerifier: hostKeyVerifier(t),
    readyTimeout: OP_TIMEOUT_MS,
  });
  return n;
}

async function nodeSshEnd(n: NodeSshLike): Promise<void> {
  const c = n.connection;
  if (c) {
    c.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    await n.dispose();
    try {
      await withTimeout(closed, 5_000, 'node-ssh close');
    } catch {
      c.destroy();
    }
  } else {
    await n.dispose();
  }
}

/**
 * OpenSSH: spawns `ssh -v ... true` and resolves with the ms from spawn until stderr shows
 * "Authenticated to" (the moment OpenSSH is where ssh2's 'ready' is), then kills it.
 */
export function opensshAuthenticatedMs(t: BenchTarget): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = ['-v', ...opensshArgs(t), ...pinnedOpensshArgs(), '-o', 'ControlMaster=no', '-o', 'ControlPath=none', t.host, 'true'];
    const t0 = nowMs();
    const child = spawn('ssh', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    trackChild(child);
    let buf = '';
    let atMs: number | undefined;
    let settled = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), OP_TIMEOUT_MS);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (atMs !== undefined) return;
      buf += s;
      if (buf.includes('Authenticated to')) {
        atMs = nowMs() - t0;
        child.kill('SIGTERM');
      } else if (buf.length > 256 * 1024) {
        buf = buf.slice(-1024);
      }
    });
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (atMs !== undefined) resolve(atMs);
      else reject(err ?? new Error(`ssh exited before "Authenticated to": ${buf.slice(-2000)}`));
    };
    child.on('error', (err) => finish(err));
    child.on('close', () => finish());
  });
}

// ---------------------------------------------------------------------------------------------
// exec, per tool

/** One exec on a raw ssh2 client; resolves with stdout, rejects on open failure or non-zero exit. */
export function ssh2Exec(c: ssh2.Client, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, ch) => {
      if (err) {
        reject(err);
        return;
      }
      let out = '';
      let code: number | undefined;
      ch.setEncoding('utf8');
      ch.on('data', (s: string) => {
        out += s;
      });
      ch.stderr.resume();
      ch.on('error', reject);
      ch.on('exit', (c: number | null) => {
        code = c ?? undefined;
      });
      ch.on('close', () => {
        if (code === 0) resolve(out);
        else reject(new Error(`exit code ${String(code)}`));
      });
    });
  });
}

/** An open connection of one tool, able to exec {@link CMD} and be closed. */
interface ExecTool {
  name: string;
  exec(): Promise<void>;
  close(): Promise<void>;
  note?: string;
}

function check(stdout: string, tool: string): void {
  if (stdout !== EXPECTED && stdout !== EXPECTED.trimEnd()) throw new Error(`${tool}: unexpected stdout ${JSON.stringify(stdout)}`);
}

async function openTether(t: BenchTarget): Promise<ExecTool> {
  const c = new SshClient(tetherOptions(t));
  c.on('error', () => undefined);
  await c.connect({ timeoutMs: OP_TIMEOUT_MS });
  return {
    name: TETHER,
    exec: async () => {
      // No timeoutMs, like the raw ssh2 and node-ssh rows (a timeout makes the command report its
      // pid so it can be killed); the harness bounds the call instead, as it does theirs.
      const r = await withTimeout(c.exec(CMD), OP_TIMEOUT_MS, TETHER);
      if (r.exitCode !== 0) throw new Error(`exit ${String(r.exitCode)}`);
      check(r.stdout, TETHER);
    },
    close: () => c.close(),
    note: 'queues past MaxSessions',
  };
}

async function openRaw(t: BenchTarget, noDelay: boolean): Promise<ExecTool> {
  const c = await ssh2Connect(t, noDelay);
  const name = noDelay ? RAW_ND : RAW;
  return {
    name,
    // Bounded like every in-process tool's exec (the same timer and race for all of them).
    exec: async () => check(await withTimeout(ssh2Exec(c, CMD), OP_TIMEOUT_MS, name), name),
    close: () => ssh2End(c),
    note: noDelay ? 'own socket with TCP_NODELAY' : 'ssh2 as is (Nagle on)',
  };
}

async function openNodeSsh(Ctor: NodeSshCtor, t: BenchTarget): Promise<ExecTool> {
  const n = await nodeSshConnect(Ctor, t);
  // node-ssh adds an 'error' listener to the ssh2 Client per execCommand: silence the
  // MaxListenersExceededWarning at 32 concurrent execs (its behaviour, measured as is).
  n.connection?.setMaxListeners(0);
  return {
    name: NODE_SSH,
    exec: async () => {
      const r = await withTimeout(n.execCommand(CMD), OP_TIMEOUT_MS, NODE_SSH);
      if (r.code !== 0) throw new Error(`exit ${String(r.code)}`);
      check(r.stdout, NODE_SSH);
    },
    close: () => nodeSshEnd(n),
  };
}

/** An OpenSSH ControlMaster (`ssh -M -N -f`, ControlPersist) and `ssh -S` execs through it. */
async function openControlMaster(t: BenchTarget): Promise<ExecTool> {
  const cm = await startControlMaster(t, OP_TIMEOUT_MS);
  const muxArgs = ['-S', cm.sockPath, '-o', 'ControlMaster=no', ...opensshArgs(t), t.host, CMD];
  return {
    name: 'OpenSSH ssh -S',
    exec: async () => {
      const r = await runProcess('ssh', muxArgs, OP_TIMEOUT_MS);
      if (r.code !== 0) throw new Error(`ssh -S exit ${String(r.code)}: ${r.stderr.trim()}`);
      check(r.stdout, 'ssh -S');
    },
    close: () => cm.close(),
    note: 'one ssh process per exec over a ControlMaster',
  };
}

/** `xs` rotated left by `k` (so no tool always runs right after the same other tool). */
function rotate<T>(xs: readonly T[], k: number): T[] {
  const n = xs.length;
  if (n === 0) return [];
  const r = ((k % n) + n) % n;
  return [...xs.slice(r), ...xs.slice(0, r)];
}

/**
 * A FIFO semaphore of `n` slots around `fn` (the obvious queue a raw-ssh2 user would write for
 * MaxSessions; ten lines, so not worth a dependency such as p-limit).
 */
export function limited(n: number, fn: () => Promise<void>): () => Promise<void> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async () => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// sections

interface ConnectTool {
  name: string;
  /** One sample: ms to ready/authenticated (the teardown is not timed). */
  sample(): Promise<number>;
  note: string;
}

async function benchConnect(t: BenchTarget, NodeSSH: NodeSshCtor | undefined): Promise<{ section: Section; stats: Map<string, Summary> }> {
  const n = iterations(30, 3);
  const tools: ConnectTool[] = [
    {
      name: TETHER,
      note: '`new SshClient()` + `connect()` (reads key + known_hosts)',
      sample: async () => {
        const t0 = nowMs();
        const c = new SshClient(tetherOptions(t));
        c.on('error', () => undefined);
        await c.connect({ timeoutMs: OP_TIMEOUT_MS });
        const ms = nowMs() - t0;
        await c.close();
        return ms;
      },
    },
    {
      name: RAW,
      note: "`'ready'`, ssh2 as is (Nagle on)",
      sample: async () => {
        const t0 = nowMs();
        const c = await ssh2Connect(t, false);
        const ms = nowMs() - t0;
        await ssh2End(c);
        return ms;
      },
    },
    {
      name: RAW_ND,
      note: "`'ready'`, own socket with TCP_NODELAY",
      sample: async () => {
        const t0 = nowMs();
        const c = await ssh2Connect(t, true);
        const ms = nowMs() - t0;
        await ssh2End(c);
        return ms;
      },
    },
  ];
  if (NodeSSH) {
    tools.push({
      name: NODE_SSH,
      note: '`connect()`',
      sample: async () => {
        const t0 = nowMs();
        const c = await nodeSshConnect(NodeSSH, t);
        const ms = nowMs() - t0;
        await nodeSshEnd(c);
        return ms;
      },
    });
  }
  tools.push({
    name: OPENSSH,
    note: 'spawn `ssh -v` until "Authenticated to" on stderr',
    sample: () => opensshAuthenticatedMs(t),
  });

  const samples = new Map<string, number[]>(tools.map((x) => [x.name, []]));
  const failures = new Map<string, number>(tools.map((x) => [x.name, 0]));
  const lastError = new Map<string, string>();
  // One warm-up round (JIT, page cache), not counted.
  for (const tool of tools) await tool.sample().catch(() => undefined);
  for (let i = 0; i < n; i++) {
    for (const tool of rotate(tools, i)) {
      try {
        samples.get(tool.name)!.push(await tool.sample());
      } catch (err) {
        failures.set(tool.name, failures.get(tool.name)! + 1);
        lastError.set(tool.name, String(err));
      }
    }
  }
  const stats = new Map([...samples].map(([k, v]) => [k, summarize(v)]));
  const tether = stats.get(TETHER)?.median;
  const rows = tools.map((tool) => {
    const s = stats.get(tool.name)!;
    const f = failures.get(tool.name)!;
    return [
      tool.name,
      String(s.n),
      fmt(s.median),
      fmt(s.p10),
      fmt(s.p90),
      tool.name === TETHER ? '-' : ratio(s.median, tether),
      `${f}/${n}`,
      tool.note + (lastError.has(tool.name) ? ` (last error: ${lastError.get(tool.name)!.slice(0, 120)})` : ''),
    ];
  });
  if (!NodeSSH) rows.push([NODE_SSH, '0', '-', '-', '-', '-', '-', 'node-ssh not installed']);
  return {
    section: {
      title: 'Connect to ready (ms, lower is better)',
      columns: ['tool', 'n', 'median ms', 'p10 ms', 'p90 ms', 'this / ssh-tether', 'failures', 'what is timed'],
      rows,
      notes: [
        'Interleaved round robin (start rotated each round), one uncounted warm-up round. Teardown is not timed.',
        '"this / ssh-tether" > 1 means ssh-tether is faster.',
      ],
    },
    stats,
  };
}

async function benchExecSequential(tools: readonly ExecTool[]): Promise<{ section: Section; stats: Map<string, Summary> }> {
  const n = iterations(300, 10);
  const samples = new Map<string, number[]>(tools.map((x) => [x.name, []]));
  const failures = new Map<string, number>(tools.map((x) => [x.name, 0]));
  for (const tool of tools) for (let i = 0; i < 5; i++) await tool.exec().catch(() => undefined);
  for (let i = 0; i < n; i++) {
    for (const tool of rotate(tools, i)) {
      const t0 = nowMs();
      try {
        await tool.exec();
        samples.get(tool.name)!.push(nowMs() - t0);
      } catch {
        failures.set(tool.name, failures.get(tool.name)! + 1);
      }
    }
  }
  const stats = new Map([...samples].map(([k, v]) => [k, summarize(v)]));
  const tether = stats.get(TETHER)?.median;
  const rows = tools.map((tool) => {
    const s = stats.get(tool.name)!;
    return [
      tool.name,
      String(s.n),
      fmt(s.median, 3),
      fmt(s.p10, 3),
      fmt(s.p90, 3),
      tool.name === TETHER ? '-' : ratio(s.median, tether),
      `${failures.get(tool.name)!}/${n}`,
      tool.note ?? '',
    ];
  });
  return {
    section: {
      title: `Exec round trip, sequential (\`${CMD}\` on an open connection; ms, lower is better)`,
      columns: ['tool', 'n', 'median ms', 'p10 ms', 'p90 ms', 'this / ssh-tether', 'failures', 'notes'],
      rows,
      notes: ['Interleaved round robin (start rotated each round) after 5 uncounted execs per tool. "this / ssh-tether" > 1 means ssh-tether is faster.'],
    },
    stats,
  };
}

interface BatchStats {
  summary: Summary;
  failures: number;
  total: number;
  lastError: string | undefined;
}

async function benchExecConcurrent(
  tools: readonly ExecTool[],
  levels: readonly number[],
  extraNotes: () => string[],
): Promise<{ section: Section; stats: Map<string, BatchStats> }> {
  const reps = iterations(15, 2);
  const stats = new Map<string, BatchStats>();
  const rows: string[][] = [];
  for (const level of levels) {
    const times = new Map<string, number[]>(tools.map((x) => [x.name, []]));
    const fails = new Map<string, number>(tools.map((x) => [x.name, 0]));
    const lastErr = new Map<string, string>();
    for (let r = 0; r < reps; r++) {
      for (const tool of rotate(tools, r)) {
        const t0 = nowMs();
        const results = await Promise.allSettled(Array.from({ length: level }, () => tool.exec()));
        times.get(tool.name)!.push(nowMs() - t0);
        for (const res of results) {
          if (res.status === 'rejected') {
            fails.set(tool.name, fails.get(tool.name)! + 1);
            lastErr.set(tool.name, String(res.reason instanceof Error ? res.reason.message : res.reason));
          }
        }
        // Let refused/closed channels and exited processes settle before the next batch.
        await sleep(20);
      }
    }
    const tether = summarize(times.get(TETHER) ?? []).median;
    for (const tool of tools) {
      const s = summarize(times.get(tool.name)!);
      const f = fails.get(tool.name)!;
      const total = level * reps;
      stats.set(`${tool.name}@${level}`, { summary: s, failures: f, total, lastError: lastErr.get(tool.name) });
      rows.push([
        tool.name,
        String(level),
        fmt(s.median, 1),
        fmt(s.p90, 1),
        fmt((level - f / reps) / (s.median / 1000), 0),
        tool.name === TETHER ? '-' : ratio(s.median, tether),
        `${f}/${total}`,
        lastErr.has(tool.name) ? `e.g. "${lastErr.get(tool.name)!.slice(0, 80)}"` : '',
      ]);
    }
  }
  return {
    section: {
      title: 'Exec, concurrent batches (whole batch; ms, lower is better)',
      columns: ['tool', 'concurrency', 'median batch ms', 'p90 batch ms', 'ok execs/s', 'this / ssh-tether', 'failures', 'failure example'],
      rows,
      notes: [
        `${reps} batches per tool and level, interleaved. sshd runs with the default MaxSessions 10: clients that do not queue get channel-open refusals past 10 sessions.`,
        'Batch time counts failed execs too (a refused channel returns fast), so compare failures before times.',
        `"${RAW_ND_Q}" is raw ssh2 with the obvious FIFO semaphore of 10 (no retry): the floor for a client that queues.`,
        ...extraNotes(),
      ],
    },
    stats,
  };
}

// ---------------------------------------------------------------------------------------------
// entry point

/**
 * Runs the core benchmarks against `target` (one sshd with default `MaxSessions`).
 * Closes every connection and process it opened before returning.
 */
export async function benchCore(target: BenchTarget): Promise<CoreResult> {
  const NodeSSH = await loadNodeSsh();
  const sections: Section[] = [];
  const targets: TargetCheck[] = [];

  process.stderr.write('core: connect to ready...\n');
  const connect = await benchConnect(target, NodeSSH);
  sections.push(connect.section);

  process.stderr.write('core: opening connections for exec...\n');
  const tools: ExecTool[] = [];
  try {
    tools.push(await openTether(target));
    tools.push(await openRaw(target, true));
    tools.push(await openRaw(target, false));
    if (NodeSSH) tools.push(await openNodeSsh(NodeSSH, target));
    tools.push(await openControlMaster(target));

    process.stderr.write('core: exec sequential...\n');
    const seq = await benchExecSequential(tools);
    sections.push(seq.section);

    process.stderr.write('core: exec concurrent...\n');
    const rawNdTool = tools.find((x) => x.name === RAW_ND);
    const concTools = [...tools];
    if (rawNdTool) {
      concTools.splice(concTools.indexOf(rawNdTool) + 1, 0, {
        name: RAW_ND_Q,
        exec: limited(10, () => rawNdTool.exec()),
        close: () => Promise.resolve(),
      });
    }
    const lowered = { count: 0, min: Number.POSITIVE_INFINITY };
    const proto = SessionLimiter.prototype;
    const original = Object.getOwnPropertyDescriptor(proto, 'lowerLimit');
    const origFn = original?.value as (this: SessionLimiter) => void;
    proto.lowerLimit = function (this: SessionLimiter): void {
      origFn.call(this);
      lowered.count++;
      lowered.min = Math.min(lowered.min, this.learnedLimit);
    };
    let conc: Awaited<ReturnType<typeof benchExecConcurrent>>;
    try {
      conc = await benchExecConcurrent(concTools, [8, 32], () => [
        lowered.count === 0
          ? "ssh-tether's session limiter kept its limit of 10 throughout."
          : `ssh-tether's session limiter lowered its learned limit ${lowered.count} time(s) after "open failed" refusals, down to ${lowered.min} (it climbs back by one after as many successful opens, and resets on reconnect), so later ssh-tether batches ran with fewer sessions.`,
      ]);
    } finally {
      if (original) Object.defineProperty(proto, 'lowerLimit', original);
    }
    sections.push(conc.section);

    // ---- targets
    const tSeq = seq.stats.get(TETHER)?.median;
    const rawNd = seq.stats.get(RAW_ND)?.median;
    const raw = seq.stats.get(RAW)?.median;
    const sshS = seq.stats.get('OpenSSH ssh -S')?.median;
    const pct = (a: number | undefined, b: number | undefined): number => (a !== undefined && b !== undefined && b > 0 ? (a / b - 1) * 100 : Number.NaN);
    const overNd = pct(tSeq, rawNd);
    targets.push({
      name: 'wrapper adds <= 10% to raw ssh2 exec latency (vs raw ssh2 + noDelay)',
      pass: Number.isFinite(overNd) && overNd <= 10,
      detail: `ssh-tether ${fmt(tSeq, 3)} ms vs raw ssh2 + noDelay ${fmt(rawNd, 3)} ms: ${fmt(overNd, 1)}% (vs raw ssh2 as is, ${fmt(raw, 3)} ms: ${fmt(pct(tSeq, raw), 1)}%)`,
    });
    const c32 = conc.stats.get(`${TETHER}@32`);
    targets.push({
      name: '32 concurrent execs, zero failures for ssh-tether',
      pass: c32 !== undefined && c32.failures === 0 && c32.total > 0,
      detail: c32 ? `${c32.failures}/${c32.total} failed${c32.lastError ? ` (e.g. ${c32.lastError})` : ''}` : 'not measured',
    });
    const speedup = tSeq !== undefined && sshS !== undefined && tSeq > 0 ? sshS / tSeq : Number.NaN;
    targets.push({
      name: 'exec >= 2x faster than `ssh -S` (ControlMaster)',
      pass: Number.isFinite(speedup) && speedup >= 2,
      detail: `ssh -S ${fmt(sshS, 3)} ms vs ssh-tether ${fmt(tSeq, 3)} ms: ${fmt(speedup, 2)}x`,
    });
    const cT = connect.stats.get(TETHER)?.median;
    const cO = connect.stats.get(OPENSSH)?.median;
    targets.push({
      name: 'connect-to-ready no slower than OpenSSH reaching "Authenticated to"',
      pass: cT !== undefined && cO !== undefined && Number.isFinite(cT) && cT <= cO,
      detail: `ssh-tether ${fmt(cT)} ms vs OpenSSH ${fmt(cO)} ms (${ratio(cO, cT)} OpenSSH / ssh-tether)`,
    });
  } finally {
    for (const tool of tools.reverse()) {
      await tool.close().catch((err: unknown) => process.stderr.write(`core: closing ${tool.name} failed: ${String(err)}\n`));
    }
  }
  return { sections, targets };
}
