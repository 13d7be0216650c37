/**
 * Latency benchmark (issue 18 items 1 and 7; DESIGN.md section 6): the bulk and exec rows again,
 * through a delay line (test/bench/delay-line.ts: every chunk delivered D ms later in each
 * direction, order kept, throughput not limited) at RTT ~10 ms (D = 5) and ~50 ms (D = 25):
 *
 * - the delay line itself, verified: its measured 1-byte round trip and its bulk throughput
 *   (a plain TCP download through it), printed with the results;
 * - SFTP get/put: ssh-tether `get`/`put`, raw ssh2 `fastGet`/`fastPut`, OpenSSH `sftp` and `scp`
 *   (over a ControlMaster, so no row pays for a connection);
 * - local forward download/upload: ssh-tether `forwardLocal`, raw ssh2 `forwardOut` + pipe,
 *   `ssh -L` (the forwarders of test/bench/forward.ts; the load runs in its own process);
 * - 1 exec (median of several in a row) and 32 concurrent execs (sshd MaxSessions 10):
 *   ssh-tether, raw ssh2 (+ a 10-slot queue for 32), `ssh -S` over a ControlMaster;
 * - connect to ready: ssh-tether `connect()`, raw ssh2 'ready', OpenSSH until "Authenticated to".
 *
 * Tools alternate within each round (rotated from round to round) and each row is the median
 * over the rounds, so every ratio compares numbers of one run.
 *
 * Plus, on loopback: the host's event-loop delay (`perf_hooks.monitorEventLoopDelay`, 1 ms
 * resolution) while ssh-tether `get`s 256 MiB, p50/p99/max, next to the same measurement while
 * `fs.createReadStream` copies a local file of that size (what a plain Node service does).
 *
 * Sizes: SFTP 128 MiB, forward 64 MiB, event loop 256 MiB (8/8/32 MiB with BENCH_QUICK).
 * `BENCH_LATENCY_DELAYS=5,25` sets the one-way delays (ms).
 *
 * Run alone: `node --import ./scripts/ts-node-register.mjs test/bench/latency.ts` (starts its own
 * sshd), or `npm run bench -- latency`.
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
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
  median,
  nowMs,
  pinnedOpensshArgs,
  runAsRowBenchChild,
  runProcess,
  startControlMaster,
  targetOf,
  tetherOptions,
  trackChild,
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
  const check = (label: string, name: RegExp, ours: string, theirs: string, key: string, min: number): void => {
    const a = rows.find((r) => rtt50.test(r.name) && name.test(r.name) && r.tool === ours)?.[key];
    const b = rows.find((r) => rtt50.test(r.name) && name.test(r.name) && r.tool === theirs)?.[key];
    if (typeof a !== 'number' || typeof b !== 'number') {
      out.push({ name: label, pass: false, detail: `not measured (${ours}: ${String(a)}, ${theirs}: ${String(b)})` });
      return;
    }
    out.push({ name: label, pass: a >= b * min, detail: `${ours} ${a} vs ${theirs} ${b}: ${(a / b).toFixed(2)}x` });
  };
  check('RTT ~50 ms: forward download >= 2x ssh -L (issue 18 item 2)', /forward download/, `${TETHER} forwardLocal`, 'ssh -L (OpenSSH)', 'mbPerSec', 2);
  check('RTT ~50 ms: forward upload >= 1.0x ssh -L (issue 18 item 2)', /forward upload/, `${TETHER} forwardLocal`, 'ssh -L (OpenSSH)', 'mbPerSec', 1);
  check('RTT ~50 ms: get >= 5x OpenSSH sftp (issue 18 item 3)', /SFTP get/, `${TETHER} get`, 'sftp (OpenSSH)', 'mbPerSec', 5);
  check('RTT ~50 ms: put >= 3x OpenSSH sftp (issue 18 item 4)', /SFTP put/, `${TETHER} put`, 'sftp (OpenSSH)', 'mbPerSec', 3);
  const c32 = rows.find((r) => rtt50.test(r.name) && /32 concurrent/.test(r.name) && r.tool === TETHER);
  out.push({
    name: 'RTT ~50 ms: 32 concurrent execs, 0 failures for ssh-tether (issue 18 item 5)',
    pass: c32 !== undefined && c32.failures === 0,
    detail: c32 ? `${String(c32.failures)} failed, ${String(c32.ms)} ms per batch` : 'not measured',
  });
  const el = find(/event-loop delay/, `${TETHER} get`);
  out.push({
    name: 'loopback: host event-loop delay p99 <= 5 ms during a get (issue 18 item 7)',
    pass: typeof el?.elP99Ms === 'number' && el.elP99Ms <= 5,
    detail: el ? `p99 ${String(el.elP99Ms)} ms, max ${String(el.elMaxMs)} ms` : 'not measured',
  });
  return out;
}

/** Event-loop delay (ms) of this process while `fn` runs: p50, p99, max. */
async function loopDelay(fn: () => Promise<unknown>): Promise<{ seconds: number; p50: number; p99: number; max: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  const t0 = nowMs();
  h.enable();
  try {
    await fn();
  } finally {
    h.disable();
  }
  return { seconds: (nowMs() - t0) / 1000, p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
}

/** Writes `bytes` random bytes to `file`. */
function randomFile(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w');
  const block = Buffer.allocUnsafe(16 * MiB);
  for (let off = 0; off < bytes; off += block.length) fs.writeSync(fd, randomFillSync(block), 0, Math.min(block.length, bytes - off), off);
  fs.closeSync(fd);
}

/** Item 7: the host's event-loop delay during a loopback `get`, and during a local stream copy. */
async function eventLoopRows(target: BenchTarget, local: string, rounds: number): Promise<Row[]> {
  const sizeMiB = target.quick ? 32 : 256;
  const bytes = sizeMiB * MiB;
  const src = path.join(local, 'el-src.bin');
  const dst = path.join(local, 'el-dst.bin');
  randomFile(src, bytes);
  const client = new SshClient(tetherOptions(target));
  await client.connect();
  const remote = path.posix.join(target.homeDir, `bench-el-${randomBytes(4).toString('hex')}.bin`);
  const rows: Row[] = [];
  try {
    const sftp = await client.sftp();
    await sftp.put(src, remote);
    const tools = [
      { tool: `${TETHER} get`, name: `loopback: host event-loop delay during a ${sizeMiB} MiB get`, fn: () => sftp.get(remote, dst) },
      {
        tool: 'fs.createReadStream -> fs.createWriteStream',
        name: `loopback: host event-loop delay during a ${sizeMiB} MiB local file copy (baseline)`,
        fn: () => pipeline(fs.createReadStream(src), fs.createWriteStream(dst)),
      },
    ];
    const got = new Map<string, { seconds: number; p50: number; p99: number; max: number }[]>();
    for (let r = 0; r < rounds; r++) {
      for (const t of rotate(tools, r)) {
        const m = await loopDelay(t.fn);
        got.set(t.tool, [...(got.get(t.tool) ?? []), m]);
      }
    }
    for (const t of tools) {
      const ms = got.get(t.tool) ?? [];
      rows.push({
        name: t.name,
        tool: t.tool,
        mbPerSec: round1(median(ms.map((m) => bytes / 1e6 / m.seconds))),
        elP50Ms: round2(median(ms.map((m) => m.p50))),
        elP99Ms: round2(median(ms.map((m) => m.p99))),
        elMaxMs: round2(median(ms.map((m) => m.max))),
        notes: `monitorEventLoopDelay (1 ms resolution) of the bench process; median over ${ms.length} run(s)`,
      });
    }
    await sftp.unlink(remote).catch(() => undefined);
  } finally {
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

    // SFTP get / put
    for (const [what, tools] of [
      [
        `SFTP get ${B / MiB} MiB`,
        [
          { tool: `${TETHER} get`, once: mbps(B, () => sftp.get(files.remoteSrc, files.dst)) },
          { tool: 'ssh2 fastGet', once: mbps(B, () => fastXfer('get')) },
          { tool: 'sftp (OpenSSH)', once: mbps(B, () => cliOk('sftp', ['-q', '-b', getBatch, ...ossh, ...viaMaster, dest])) },
          { tool: 'scp (OpenSSH)', once: mbps(B, () => cliOk('scp', ['-q', ...ossh, ...viaMaster, `${dest}:${files.remoteSrc}`, files.dst])) },
        ],
      ],
      [
        `SFTP put ${B / MiB} MiB`,
        [
          { tool: `${TETHER} put`, once: mbps(B, () => sftp.put(files.src, files.remoteDst)) },
          { tool: 'ssh2 fastPut', once: mbps(B, () => fastXfer('put')) },
          { tool: 'sftp (OpenSSH)', once: mbps(B, () => cliOk('sftp', ['-q', '-b', putBatch, ...ossh, ...viaMaster, dest])) },
          { tool: 'scp (OpenSSH)', once: mbps(B, () => cliOk('scp', ['-q', ...ossh, ...viaMaster, files.src, `${dest}:${files.remoteDst}`])) },
        ],
      ],
    ] as const) {
      process.stderr.write(`latency: D=${delayMs} ms: ${what}...\n`);
      const r = new Rounds();
      await r.run(rounds, tools);
      for (const t of tools) rows.push(rateRow(`${label}: ${what}`, t.tool, r, 'mbPerSec'));
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
      for (const t of tools) rows.push(rateRow(`${label}: ${what}`, t.tool, r, 'mbPerSec'));
    }

    // exec: 1 at a time, and 32 at once (sshd MaxSessions 10)
    process.stderr.write(`latency: D=${delayMs} ms: exec...\n`);
    const tetherExec = async (): Promise<void> => {
      const r = await client.exec(CMD);
      if (r.exitCode !== 0 || r.stdout !== 'x\n') throw new Error(`exit ${String(r.exitCode)}, stdout ${JSON.stringify(r.stdout)}`);
    };
    const rawExec = async (): Promise<void> => {
      const out = await ssh2Exec(rawClient, CMD);
      if (out !== 'x\n') throw new Error(`stdout ${JSON.stringify(out)}`);
    };
    const master = cm;
    const muxExec = async (): Promise<void> => {
      const r = await runProcess('ssh', ['-S', master.sockPath, '-o', 'ControlMaster=no', ...opensshArgs(t2), t2.host, CMD], OP_TIMEOUT_MS);
      if (r.code !== 0 || r.stdout !== 'x\n') throw new Error(`ssh -S exit ${String(r.code)}: ${r.stderr.trim().slice(0, 200)}`);
    };
    const perExec = (n: number, fn: () => Promise<void>) => async (): Promise<number> => {
      const t0 = nowMs();
      for (let i = 0; i < n; i++) await fn();
      return (nowMs() - t0) / n;
    };
    const seqN = target.quick ? 3 : 10;
    const one = [
      { tool: TETHER, once: perExec(seqN, tetherExec) },
      { tool: 'raw ssh2 + noDelay', once: perExec(seqN, rawExec) },
      { tool: 'OpenSSH ssh -S', once: perExec(seqN, muxExec) },
    ];
    const r1 = new Rounds();
    await r1.run(rounds, one);
    for (const t of one) rows.push(msRow(`${label}: 1 exec (echo x)`, t.tool, r1, 1, `${seqN} in a row per round`));

    const failures = new Map<string, number>();
    const batchOf = (tool: string, fn: () => Promise<void>) => async (): Promise<number> => {
      const t0 = nowMs();
      const res = await Promise.allSettled(Array.from({ length: 32 }, () => fn()));
      failures.set(tool, (failures.get(tool) ?? 0) + res.filter((x) => x.status === 'rejected').length);
      return nowMs() - t0;
    };
    const rawQueued = limited(10, rawExec);
    const conc = [
      { tool: TETHER, once: batchOf(TETHER, tetherExec) },
      { tool: 'raw ssh2 + noDelay, 10-slot queue', once: batchOf('raw ssh2 + noDelay, 10-slot queue', rawQueued) },
      { tool: 'OpenSSH ssh -S', once: batchOf('OpenSSH ssh -S', muxExec) },
    ];
    const r32 = new Rounds();
    await r32.run(rounds, conc);
    for (const t of conc) {
      const row = msRow(`${label}: 32 concurrent execs (MaxSessions 10)`, t.tool, r32, 32, 'time per batch of 32');
      row.failures = failures.get(t.tool) ?? 0;
      if (t.tool === TETHER) row.notes = `${row.notes ?? ''}; session limit at the end ${client.health().sessionLimit}`;
      rows.push(row);
    }

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

/** A throughput row: the median of the samples. */
function rateRow(name: string, tool: string, r: Rounds, key: 'mbPerSec'): Row {
  const m = r.median(tool);
  const err = r.errors.get(tool);
  return { name, tool, ...(m === undefined ? {} : { [key]: round1(m) }), ...(err ? { notes: `error: ${err}` } : {}) };
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
    process.stderr.write('latency: event-loop delay on loopback...\n');
    rows.push(...(await eventLoopRows(target, local, rounds)));
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
