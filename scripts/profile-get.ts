/**
 * Issue 18 §6/§7 measurement script: CPU per GiB, GC counts and the host's event-loop delay of a
 * loopback SFTP `get`/`put` through ssh-tether, next to OpenSSH `sftp`/`scp` on the same harness
 * sshd (cipher pinned like the bench: aes128-gcm@openssh.com). Not a test and not the bench: a
 * tool to find and check the costs of our layer.
 *
 *   npm run build   # the children import dist/ by default
 *   nice -n 10 node --import ./scripts/ts-node-register.mjs scripts/profile-get.ts \
 *     [--size MiB=256] [--rounds N=5] [--tools tether-get,sftp-get,scp-get,tether-put,sftp-put]
 *     [--impl dist|src] [--warmup] [--ticks] [--cpu-prof DIR] [--perf FILE] [--alloc] [--child-args "--trace-gc"]
 *
 * Tools: `copy` (fs.createReadStream -> fs.createWriteStream of the local file in a child, the
 * bench's event-loop baseline), `tether-get`, `tether-put`, `sftp-get`, `scp-get`, `sftp-put`, `scp-put`, and
 * `tether-get@/path/to/other/checkout/dist/index.js` (the same run with another build, for A/B),
 * `tether-get@src` (this checkout's sources through ts-node, as the bench runs them).
 *
 * Each ssh-tether transfer runs in a fresh child process (scripts/profile-child.mjs; plain node
 * importing dist/, or the sources through ts-node with `--impl src` as the bench does), so every
 * tool pays alike for its own process and no heap or JIT state of an earlier round carries over.
 * The child connects, reports ready, and is measured only around the transfer: wall time,
 * `process.cpuUsage()` (all threads), GC entries (`PerformanceObserver` 'gc': major =
 * mark-compact, minor = scavenge), `monitorEventLoopDelay` (1 ms resolution, as the bench:
 * p50/p99/max). The OpenSSH clients run direct (no ControlMaster, so each does its own crypto)
 * under `/usr/bin/time` (user+sys of the tool and of the `ssh` it spawns). sshd's CPU is
 * measured for every tool alike by sampling /proc every 20 ms over sshd's process tree (see
 * `sshdCpuMeter`). Tools run interleaved (rotated each round); a JSON line per run, then medians.
 *
 * `--ticks`: per "burst" (socket data handled from the first 'data' to the next setImmediate,
 * i.e. one poll phase) its wall time and bytes: shows how much one event-loop turn handles.
 * `--cpu-prof DIR`: a V8 profile of the child (wall-clock samples of the main thread; summarize
 * with scripts/cpuprofile-summary.mjs). `--perf FILE`: `perf record -g` (on-CPU samples, every
 * thread) of the child during the transfer only; summarize with
 * `perf script -F comm,pid,tid,ip,sym,dso -i FILE.<pid> | node scripts/perf-summary.mjs`.
 * `--alloc`: sampled heap allocations during the transfer (including collected objects).
 */
import { fork, spawn } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { descendants, opensshArgs, startSshd, type SshdInfo } from '../test/helpers/sshd.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const CIPHER = 'aes128-gcm@openssh.com';
const OSSH = ['-c', CIPHER, '-o', 'KexAlgorithms=curve25519-sha256', '-o', 'HostKeyAlgorithms=ssh-ed25519'];

interface ChildJob {
  info: SshdInfo;
  op: 'get' | 'put' | 'copy';
  copyTo?: string;
  remote: string;
  local: string;
  alloc: boolean;
  elResolution: number;
  /** `src`, `dist`, or the path of another build's dist/index.js (A/B runs). */
  impl: string;
  ticks: boolean;
  /** One untimed transfer first in the same process (the bench's "after one warm-up" rows). */
  warmup?: boolean;
}

interface RunResult {
  tool: string;
  seconds: number;
  cpu: number;
  sshdCpu: number;
  gcMajor?: number;
  gcMinor?: number;
  gcMs?: number;
  elP50?: number;
  elP99?: number;
  elMax?: number;
  heapAllocTop?: string[];
  allocMiB?: number;
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

/** utime+stime (clock ticks) of `pid` and each live descendant. */
function treeTicks(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(p, Number(f[11]) + Number(f[12]));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * CPU (s) used by sshd's process tree from now until `stop()`: the tree is sampled every 20 ms
 * and each process counts from its first sample (0 for processes born meanwhile) to its last.
 * Reading the listener's cutime instead loses the per-connection processes' CPU (sshd's
 * privilege-separated child is not reaped into it), so this samples; a process's last < 20 ms
 * before it exits are missed.
 */
function sshdCpuMeter(pid: number): { stop(): number } {
  const first = treeTicks(pid);
  const last = new Map(first);
  const sample = (): void => {
    for (const [p, t] of treeTicks(pid)) {
      if (!first.has(p)) first.set(p, 0);
      last.set(p, t);
    }
  };
  const timer = setInterval(sample, 20);
  return {
    stop(): number {
      clearInterval(timer);
      sample();
      let ticks = 0;
      for (const [p, t] of last) ticks += t - (first.get(p) ?? 0);
      return ticks / 100;
    },
  };
}


// ---------------------------------------------------------------------------------------------
// parent

/** `--perf FILE`: `perf record` (cpu-clock, call graphs) of the child during the transfer only. */
const perfOut = process.argv.includes('--perf') ? arg('perf', '/tmp/tether-get.perf.data') : '';

function runChild(job: ChildJob, sshdPid: number, execArgv: string[]): Promise<Omit<RunResult, 'tool'>> {
  if (perfOut) execArgv = [...execArgv, '--perf-basic-prof'];
  return new Promise((resolve, reject) => {
    const childFile = fileURLToPath(new URL('./profile-child.mjs', import.meta.url));
    // `--impl src` runs the TypeScript sources through ts-node (as the bench does); `dist` the build
    const loader = job.impl === 'src' ? process.execArgv : [];
    const cp = fork(childFile, [], { execArgv: [...loader, ...execArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let meter: { stop(): number } | undefined;
    let perf: ReturnType<typeof spawn> | undefined;
    const timer = setTimeout(() => cp.kill('SIGKILL'), 300_000);
    cp.on('message', (m: { ready?: boolean; result?: Omit<RunResult, 'tool' | 'sshdCpu'> }) => {
      if (m.ready) {
        const go = (): void => {
          meter = sshdCpuMeter(sshdPid);
          cp.send({ go: true });
        };
        if (!perfOut) return go();
        perf = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '1999', '-g', '-p', String(cp.pid), '-o', `${perfOut}.${String(cp.pid)}`], { stdio: 'inherit' });
        setTimeout(go, 500); // perf attaches
      } else if (m.result) {
        const r = m.result;
        const sshdCpu = meter?.stop() ?? Number.NaN;
        perf?.kill('SIGINT');
        cp.once('exit', () => {
          clearTimeout(timer);
          resolve({ ...r, sshdCpu });
        });
      }
    });
    cp.send(job);
    cp.on('error', reject);
    cp.on('exit', (code) => {
      if (code !== 0) {
        clearTimeout(timer);
        reject(new Error(`child exited ${String(code)}`));
      }
    });
  });
}

function runCli(file: string, args: string[], sshdPid: number): Promise<Omit<RunResult, 'tool'>> {
  return new Promise((resolve, reject) => {
    const meter = sshdCpuMeter(sshdPid);
    const t0 = performance.now();
    const cp = spawn('/usr/bin/time', ['-f', 'TIME %U %S', file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    cp.stderr.on('data', (d: Buffer) => (err += d.toString()));
    cp.on('error', reject);
    cp.on('exit', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) return reject(new Error(`${file} exited ${String(code)}: ${err.slice(-1000)}`));
      const m = /TIME ([\d.]+) ([\d.]+)\s*$/.exec(err);
      resolve({ seconds, cpu: m ? Number(m[1]) + Number(m[2]) : Number.NaN, sshdCpu: meter.stop() });
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function parent(): Promise<void> {
  const sizeMiB = Number(arg('size', '256'));
  const rounds = Number(arg('rounds', '5'));
  const tools = arg('tools', 'tether-get,sftp-get,scp-get,tether-put,sftp-put').split(',');
  const profDir = arg('cpu-prof', '');
  const alloc = process.argv.includes('--alloc');
  const elResolution = Number(arg('el-resolution', '1'));
  const ticks = process.argv.includes('--ticks');
  const impl = arg('impl', 'dist') === 'src' ? 'src' : 'dist';
  const bytes = sizeMiB * MiB;
  const sshd = await startSshd();
  const info: SshdInfo = {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    dir: sshd.dir,
    privateKeyPath: sshd.privateKeyPath,
    knownHostsPath: sshd.knownHostsPath,
    hostKeyPath: sshd.hostKeyPath,
    hostPublicKey: sshd.hostPublicKey,
    hostKeyFingerprint: sshd.hostKeyFingerprint,
    homeDir: sshd.homeDir,
    configPath: sshd.configPath,
    pid: sshd.pid,
    publicKey: sshd.publicKey,
  };
  const local = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-prof-'));
  const src = path.join(local, 'src.bin');
  const dst = path.join(local, 'dst.bin');
  const tag = randomBytes(4).toString('hex');
  const remoteSrc = path.posix.join(sshd.homeDir, `prof-src-${tag}.bin`);
  const remoteDst = path.posix.join(sshd.homeDir, `prof-dst-${tag}.bin`);
  const fd = fs.openSync(src, 'w');
  const block = Buffer.allocUnsafe(16 * MiB);
  for (let off = 0; off < bytes; off += block.length) fs.writeSync(fd, randomFillSync(block), 0, Math.min(block.length, bytes - off), off);
  fs.closeSync(fd);
  const srcHash = await hashOf(src);
  const sshdPid = sshd.pid!;
  const base = [...opensshArgs(info), ...OSSH];
  const dest = `${info.username}@${info.host}`;
  // the remote source, once, with the OpenSSH client (independent of the code under test)
  await runCli('scp', ['-q', ...base, src, `${dest}:${remoteSrc}`], sshdPid);
  const warmup = process.argv.includes('--warmup');
  const childArgs = arg('child-args', '').split(' ').filter((a) => a !== '');
  const prof = (name: string): string[] => [
    ...childArgs,
    ...(profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`] : []),
  ];
  // `tether-get@/other/checkout/dist/index.js`: the same run with another build (A/B)
  const runnerOf = (tool: string): (() => Promise<Omit<RunResult, 'tool'>>) => {
    const [name, build] = tool.split('@') as [string, string | undefined];
    if (build === undefined) return runners[name]!;
    const op = name === 'tether-get' ? 'get' : 'put';
    const job = { info, op, remote: op === 'get' ? remoteSrc : remoteDst, local: op === 'get' ? dst : src, alloc, elResolution, impl: build, ticks, warmup } as const;
    return () => runChild(job, sshdPid, prof(`${op}-ab`));
  };
  const runners: Record<string, () => Promise<Omit<RunResult, 'tool'>>> = {
    'tether-get': () => runChild({ info, op: 'get', remote: remoteSrc, local: dst, alloc, elResolution, impl, ticks, warmup }, sshdPid, prof('get')),
    'tether-put': () => runChild({ info, op: 'put', remote: remoteDst, local: src, alloc, elResolution, impl, ticks, warmup }, sshdPid, prof('put')),
    copy: () => runChild({ info, op: 'copy', remote: remoteSrc, local: src, copyTo: dst, alloc, elResolution, impl, ticks, warmup }, sshdPid, prof('copy')),
    'sftp-get': () => runCli('sftp', ['-q', ...base, `${dest}:${remoteSrc}`, dst], sshdPid),
    'scp-get': () => runCli('scp', ['-q', ...base, `${dest}:${remoteSrc}`, dst], sshdPid),
    'sftp-put': () => runCli('sh', ['-c', `echo 'put ${src} ${remoteDst}' | sftp -q -b - ${base.map((a) => `'${a}'`).join(' ')} ${dest}`], sshdPid),
    'scp-put': () => runCli('scp', ['-q', ...base, src, `${dest}:${remoteDst}`], sshdPid),
  };
  const all: RunResult[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < tools.length; i++) {
        const tool = tools[(i + r) % tools.length]!;
        fs.rmSync(dst, { force: true });
        const res = { tool, ...(await runnerOf(tool)()) };
        if ((tool === 'copy' || tool.split('@')[0]!.endsWith('-get')) && (await hashOf(dst)) !== srcHash) throw new Error(`${tool}: downloaded file differs`);
        if (tool.split('@')[0]!.endsWith('-put') && (await hashOf(path.join(remoteDst))) !== srcHash) throw new Error(`${tool}: uploaded file differs`);
        all.push(res);
        const { heapAllocTop, ...line } = res as RunResult & { heapAllocTop?: string[] };
        console.log(JSON.stringify(line));
        if (heapAllocTop) console.log(heapAllocTop.join('\n'));
      }
    }
  } finally {
    fs.rmSync(local, { recursive: true, force: true });
    fs.rmSync(remoteSrc, { force: true });
    fs.rmSync(remoteDst, { force: true });
  }
  console.log(`\n${sizeMiB} MiB, ${rounds} rounds, medians (cpu = client process s/GiB; sshd = server s/GiB)`);
  const f = (x: number | undefined, d = 2): string => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
  console.log('tool                  MB/s  cpu/GiB  sshd/GiB  gcMajor gcMinor  gcMs  elP50  elP99  elMax  burstMaxKiB  bursts>5ms');
  const label = (t: string): string => {
    const [name, build] = t.split('@') as [string, string | undefined];
    if (build === undefined) return name;
    return `${name}@${build.includes('/') ? path.basename(path.dirname(path.dirname(build))) : build}`;
  };
  for (const t of tools) {
    const rs = all.filter((x) => x.tool === t);
    const med = (k: keyof RunResult): number | undefined => {
      const v = rs.map((x) => x[k]).filter((x): x is number => typeof x === 'number');
      return v.length ? median(v) : undefined;
    };
    const medB = (k: string): number | undefined => {
      const v = rs.map((x) => (x as { bursts?: Record<string, number> }).bursts?.[k]).filter((x): x is number => typeof x === 'number');
      return v.length ? median(v) : undefined;
    };
    const mbs = median(rs.map((x) => bytes / 1e6 / x.seconds));
    const cpu = median(rs.map((x) => (x.cpu * GiB) / bytes));
    const sshdCpu = median(rs.map((x) => (x.sshdCpu * GiB) / bytes));
    console.log(
      `${label(t).padEnd(20)} ${f(mbs, 1).padStart(6)} ${f(cpu).padStart(8)} ${f(sshdCpu).padStart(9)} ${f(med('gcMajor'), 0).padStart(8)} ${f(med('gcMinor'), 0).padStart(7)} ${f(med('gcMs'), 0).padStart(5)} ${f(med('elP50')).padStart(6)} ${f(med('elP99')).padStart(6)} ${f(med('elMax')).padStart(6)} ${f(medB('kibMax'), 0).padStart(12)} ${f(medB('over5ms'), 0).padStart(11)}`,
    );
  }
  await sshd.remove();
}

async function hashOf(file: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file, { highWaterMark: 4 * MiB })) h.update(c as Buffer);
  return h.digest('hex');
}

parent().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
    process.exit(1);
  },
);
