/**
 * Forward benchmark: bulk throughput (256 MiB each direction; 32 MiB with BENCH_QUICK) through a
 * local forward to a loopback sink/source, and the new-connection rate (connect, 1-byte echo,
 * close) through it: ssh-tether's ForwardManager vs a plain raw-ssh2 `forwardOut` + `pipe`
 * forwarder vs OpenSSH `ssh -L` (`ControlMaster=no`), all with the cipher pinned
 * (aes128-gcm@openssh.com) on one sshd. The sink/source/echo servers and the TCP clients that
 * load each forward run in a separate process (test/bench/endpoints.ts) for every tool alike, so
 * the forwarder we measure (this process, or the `ssh -L` process) does nothing but forward.
 * Medians over the runs; client CPU s/GiB is this process's CPU for the in-process tools and the
 * `ssh` process's CPU (from /proc) for `ssh -L` (plus this idle process's, for symmetry).
 *
 * `BENCH_FORWARD_TOOLS=ssh-tether,raw` limits the run to the tools whose names start with those
 * words (for profiling one tool); the default runs all three.
 *
 * Run alone: `node --import ./scripts/ts-node-register.mjs test/bench/forward.ts`.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ssh2 from 'ssh2';
import { SshError } from '../../src/errors.js';
import type { Link, LinkProvider } from '../../src/connection/link.js';
import { SshClient } from '../../src/index.js';
import { opensshArgs, startSshd } from '../helpers/sshd.js';
import { cpuSeconds, hostKeyVerifier, iterations, median, nowMs, pinnedAlgorithms, pinnedOpensshArgs, procCpuSeconds, sleep, targetOf, tetherOptions, trackChild, ratioTarget, runAsRowBenchChild, type BenchTarget, type Row, type TargetCheck } from './lib.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TETHER = 'ssh-tether';
const RAW = 'raw ssh2 forwardOut + pipe';
const OPENSSH = 'ssh -L (OpenSSH)';

/** A LinkProvider over one ssh2 client with the pinned algorithms and TCP_NODELAY (no reconnect). */
class BenchLinks implements LinkProvider {
  private link_: Promise<Link> | undefined;
  constructor(private readonly t: BenchTarget) {}
  link(): Promise<Link> {
    this.link_ ??= new Promise<Link>((resolve, reject) => {
      const client = new ssh2.Client();
      const ctl = new AbortController();
      client.on('error', (err) => {
        ctl.abort(new SshError('ERR_SSH_CONNECTION_LOST', err.message));
        reject(err);
      });
      client.on('close', () => ctl.abort(new SshError('ERR_SSH_CONNECTION_LOST', 'closed')));
      client.on('ready', () => {
        client.setNoDelay(true);
        resolve({ client, epoch: 1, signal: ctl.signal });
      });
      client.connect({
        host: this.t.host,
        port: this.t.port,
        username: this.t.username,
        privateKey: this.t.privateKey,
        algorithms: pinnedAlgorithms() as ssh2.Algorithms,
        hostVerifier: hostKeyVerifier(this.t),
        readyTimeout: 10_000,
      });
    });
    return this.link_;
  }
  onLink(): () => void {
    return () => undefined;
  }
  async close(): Promise<void> {
    const l = await this.link_?.catch(() => undefined);
    l?.client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// loopback endpoints, in a process of their own (test/bench/endpoints.ts)

export interface Endpoints {
  sink: number;
  source: number;
  echo: number;
  upload(port: number, bytes: number): Promise<void>;
  download(port: number): Promise<number>;
  pings(port: number, n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startEndpoints(bytes: number): Promise<Endpoints> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const register = path.resolve(here, '../../scripts/ts-node-register.mjs');
  const child = fork(path.join(here, 'endpoints.ts'), [], {
    execArgv: ['--import', pathToFileURL(register).href],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  trackChild(child);
  let pending: { resolve(v: Record<string, unknown>): void; reject(e: Error): void } | undefined;
  child.on('message', (m: Record<string, unknown>) => {
    const p = pending;
    pending = undefined;
    if (typeof m.error === 'string') p?.reject(new Error(`endpoints: ${m.error}`));
    else p?.resolve(m);
  });
  child.on('exit', (code) => pending?.reject(new Error(`endpoints process exited with ${code}`)));
  const ask = (req: object): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      if (pending) return reject(new Error('endpoints: one request at a time'));
      pending = { resolve, reject };
      child.send(req);
    });
  const ports = await ask({ op: 'servers', bytes });
  return {
    sink: Number(ports.sink),
    source: Number(ports.source),
    echo: Number(ports.echo),
    upload: async (port, n) => void (await ask({ op: 'upload', port, bytes: n })),
    download: async (port) => Number((await ask({ op: 'download', port })).bytes),
    pings: async (port, n) => void (await ask({ op: 'pings', port, n })),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.send({ op: 'exit' });
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// forwarders under test

export interface Forwarder {
  tool: string;
  /** Opens a forward to 127.0.0.1:`targetPort`; returns the local port and a closer. */
  open(targetPort: number): Promise<{ port: number; close(): Promise<void> }>;
  /** CPU seconds used by the forwarder outside this process so far (ssh -L), else 0. */
  extraCpu(): number;
  shutdown(): Promise<void>;
}

export function tetherForwarder(t: BenchTarget): Forwarder {
  const client = new SshClient(tetherOptions(t));
  return {
    tool: TETHER,
    async open(targetPort) {
      if (client.state !== 'ready') await client.connect();
      const f = await client.forwardLocal({ remoteHost: '127.0.0.1', remotePort: targetPort });
      return { port: f.localPort, close: () => f.close() };
    },
    extraCpu: () => 0,
    shutdown: () => client.close(),
  };
}

export function rawForwarder(t: BenchTarget): Forwarder {
  const links = new BenchLinks(t);
  return {
    tool: RAW,
    async open(targetPort) {
      const { client } = await links.link();
      const sockets = new Set<net.Socket>();
      const server = net.createServer((s) => {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
        client.forwardOut('127.0.0.1', 0, '127.0.0.1', targetPort, (err, ch) => {
          if (err) return s.destroy();
          ch.on('error', () => s.destroy());
          ch.on('close', () => s.destroy());
          s.pipe(ch).pipe(s);
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
    shutdown: () => links.close(),
  };
}

async function waitListening(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = nowMs() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ssh -L exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (nowMs() > deadline) throw new Error('ssh -L did not start listening');
    await sleep(50);
  }
}

export function opensshForwarder(t: BenchTarget): Forwarder {
  let children: ChildProcess[] = [];
  return {
    tool: OPENSSH,
    async open(targetPort) {
      const port = await new Promise<number>((r) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as net.AddressInfo).port;
          s.close(() => r(p));
        });
      });
      const child = spawn(
        'ssh',
        [
          ...opensshArgs({ ...t, knownHostsPath: t.knownHostsPath }),
          ...pinnedOpensshArgs(),
          '-o', 'ControlMaster=no',
          '-o', 'ControlPath=none',
          '-o', 'ExitOnForwardFailure=yes',
          '-N',
          '-L', `127.0.0.1:${port}:127.0.0.1:${targetPort}`,
          t.host,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      trackChild(child);
      children.push(child);
      await waitListening(port, child, 10_000);
      return {
        port,
        close: () =>
          new Promise<void>((r) => {
            if (child.exitCode !== null) return r();
            child.once('exit', () => r());
            child.kill('SIGTERM');
          }),
      };
    },
    extraCpu: () => children.reduce((a, c) => a + procCpuSeconds(c.pid), 0),
    shutdown() {
      for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
      children = [];
      return Promise.resolve();
    },
  };
}

// ---------------------------------------------------------------------------------------------

export async function timed(f: Forwarder, fn: () => Promise<void>): Promise<{ seconds: number; cpu: number }> {
  const c0 = cpuSeconds() + f.extraCpu();
  const t0 = nowMs();
  await fn();
  const seconds = (nowMs() - t0) / 1000;
  return { seconds, cpu: cpuSeconds() + f.extraCpu() - c0 };
}

/** Issue 3's targets: throughput >= 1.0x `ssh -L` upload and download, in the same run. */
export function targetsOf(rows: readonly Row[]): TargetCheck[] {
  return [
    ratioTarget(rows, 'local forward upload >= 1.0x ssh -L (MB/s)', /^upload /, TETHER, OPENSSH, 'mbPerSec', 1.0),
    ratioTarget(rows, 'local forward download >= 1.0x ssh -L (MB/s)', /^download /, TETHER, OPENSSH, 'mbPerSec', 1.0),
  ];
}

/**
 * Runs the forward benchmark against `target`.
 *
 * @returns rows `upload N MiB` / `download N MiB` (mbPerSec, cpuSecPerGiB) and
 *   `new connections` (connPerSec) for each tool.
 */
export async function benchForward(target: BenchTarget): Promise<Row[]> {
  const bytes = (target.quick ? 32 : 256) * MiB;
  const runs = iterations(5, 1);
  const conns = target.quick ? 50 : 300;
  const only = process.env.BENCH_FORWARD_TOOLS?.split(',');
  const forwarders = [tetherForwarder(target), rawForwarder(target), opensshForwarder(target)].filter(
    (f) => only === undefined || only.some((o) => f.tool.startsWith(o)),
  );
  const ep = await startEndpoints(bytes);
  const rows: Row[] = [];
  try {
    const samples = new Map<string, { up: number[]; upCpu: number[]; down: number[]; downCpu: number[]; conn: number[] }>();
    const fwds = new Map<string, { up: Awaited<ReturnType<Forwarder['open']>>; down: Awaited<ReturnType<Forwarder['open']>>; ping: Awaited<ReturnType<Forwarder['open']>> }>();
    for (const f of forwarders) {
      fwds.set(f.tool, { up: await f.open(ep.sink), down: await f.open(ep.source), ping: await f.open(ep.echo) });
      samples.set(f.tool, { up: [], upCpu: [], down: [], downCpu: [], conn: [] });
    }
    // Interleave the tools per run so a slow spell of the machine hits all alike.
    for (let i = 0; i < runs; i++) {
      for (const f of forwarders) {
        const fw = fwds.get(f.tool)!;
        const s = samples.get(f.tool)!;
        const u = await timed(f, () => ep.upload(fw.up.port, bytes));
        s.up.push(bytes / 1e6 / u.seconds);
        s.upCpu.push((u.cpu * GiB) / bytes);
        let got = 0;
        const d = await timed(f, async () => {
          got = await ep.download(fw.down.port);
        });
        if (got !== bytes) throw new Error(`${f.tool}: downloaded ${got} of ${bytes} bytes`);
        s.down.push(bytes / 1e6 / d.seconds);
        s.downCpu.push((d.cpu * GiB) / bytes);
        const t0 = nowMs();
        await ep.pings(fw.ping.port, conns);
        s.conn.push(conns / ((nowMs() - t0) / 1000));
      }
    }
    const r1 = (x: number): number => Math.round(x * 10) / 10;
    const r2 = (x: number): number => Math.round(x * 100) / 100;
    for (const f of forwarders) {
      const s = samples.get(f.tool)!;
      rows.push({ name: `upload ${bytes / MiB} MiB`, tool: f.tool, mbPerSec: r1(median(s.up)), cpuSecPerGiB: r2(median(s.upCpu)) });
    }
    for (const f of forwarders) {
      const s = samples.get(f.tool)!;
      rows.push({ name: `download ${bytes / MiB} MiB`, tool: f.tool, mbPerSec: r1(median(s.down)), cpuSecPerGiB: r2(median(s.downCpu)) });
    }
    for (const f of forwarders) {
      const s = samples.get(f.tool)!;
      rows.push({ name: `new connections (sequential, 1-byte echo)`, tool: f.tool, connPerSec: r1(median(s.conn)), notes: `${conns} per run` });
    }
    for (const fw of fwds.values()) {
      await fw.up.close();
      await fw.down.close();
      await fw.ping.close();
    }
  } finally {
    for (const f of forwarders) await f.shutdown();
    await ep.close();
  }
  return rows;
}

// run alone (or as one of the processes `npm run bench` starts)
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]) && !(await runAsRowBenchChild(benchForward))) {
  const sshd = await startSshd();
  try {
    const rows = await benchForward(targetOf(sshd, process.env.BENCH_QUICK === '1'));
    console.table(rows);
  } finally {
    await sshd.stop();
  }
}
