/* global setTimeout, setImmediate, performance, Buffer */
/* eslint-disable @typescript-eslint/unbound-method, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- a measurement script: V8 profile JSON and IPC messages are untyped */
// The measured side of scripts/profile-get.ts: one ssh-tether `get` or `put` in a fresh process.
// Receives the job over IPC, connects, says `ready`, waits for `go`, transfers, and sends back
// wall time, process CPU, GC counts and event-loop delay measured around the transfer only.
// `impl: 'dist'` imports the build (run `npm run build` first); `'src'` the TypeScript sources
// (the parent then runs this file with ts-node's loader, as the bench does).
import fs from 'node:fs';
import inspector from 'node:inspector';
import { pipeline } from 'node:stream/promises';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

const MiB = 1024 * 1024;
const CIPHER = 'aes128-gcm@openssh.com';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * With `job.ticks`: every socket 'data' starts (if none is open) a "burst" that ends at the next
 * setImmediate (the end of that poll phase): its wall time, socket bytes and chunk count are kept.
 */
const bursts = [];
let burst;
let measuring = false;
function watchSocketBursts() {
  const emit = net.Socket.prototype.emit;
  net.Socket.prototype.emit = function (ev, ...args) {
    if (ev === 'data' && measuring) {
      if (!burst) {
        burst = { t0: performance.now(), bytes: 0, chunks: 0 };
        const b = burst;
        setImmediate(() => {
          b.ms = performance.now() - b.t0;
          bursts.push(b);
          burst = undefined;
        });
      }
      burst.bytes += args[0].length;
      burst.chunks++;
    }
    return emit.call(this, ev, ...args);
  };
}

/**
 * PROFILE_BUFFER_SITES=1: bytes of Buffers of 4 KiB or more made by Buffer.alloc/allocUnsafe/
 * allocUnsafeSlow/concat during the transfer, by caller (external memory the GC has to free).
 */
const bufferSites = new Map();
function watchBufferAllocs() {
  for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow', 'concat']) {
    const orig = Buffer[name];
    Buffer[name] = function (...args) {
      const b = orig.apply(this, args);
      if (measuring && b.length >= 4096) {
        const stack = (new Error().stack ?? '').split('\n').slice(2, 5).map((l) => l.trim().replace(/^at /, '').replace(/\(.*\/(node_modules|src|dist)\//, '($1/')).join(' < ');
        const k = `${name} ${stack}`;
        const e = bufferSites.get(k) ?? { bytes: 0, n: 0 };
        e.bytes += b.length;
        e.n++;
        bufferSites.set(k, e);
      }
      return b;
    };
  }
}

/** PROFILE_BALLAST_MIB=N: N MiB of live JS objects held throughout (a service's own heap). */
const ballast = [];

async function run(job) {
  const ballastBytes = Number(process.env.PROFILE_BALLAST_MIB ?? 0) * MiB;
  const heapBefore = process.memoryUsage().heapUsed;
  while (process.memoryUsage().heapUsed - heapBefore < ballastBytes) ballast.push(Array.from({ length: 8192 }, (_, j) => ({ j })));
  if (job.ticks) watchSocketBursts();
  if (process.env.PROFILE_BUFFER_SITES) watchBufferAllocs();
  const { SshClient } = await import(job.impl === 'src' ? '../src/index.ts' : job.impl === 'dist' ? '../dist/index.js' : pathToFileURL(job.impl).href);
  const client = new SshClient({
    host: job.info.host,
    port: job.info.port,
    username: job.info.username,
    identityFiles: [job.info.privateKeyPath],
    knownHostsFiles: [job.info.knownHostsPath],
    globalKnownHostsFiles: [],
    agent: false,
    sshConfig: false,
    reconnect: false,
    algorithms: { cipher: [CIPHER], kex: ['curve25519-sha256'], serverHostKey: ['ssh-ed25519'] },
    // PROFILE_CLIENT_OPTIONS='{"sftpChannelsPersistMs":0}': other client options (A/B runs)
    ...(process.env.PROFILE_CLIENT_OPTIONS ? JSON.parse(process.env.PROFILE_CLIENT_OPTIONS) : {}),
  });
  await client.connect();
  const sftp = await client.sftp();
  // `warmup`: one untimed transfer first (a long-running service has its JIT warm; a fresh
  // process's first 256 MiB is partly interpreted code)
  if (job.warmup && job.op === 'get') await sftp.get(job.remote, job.local);
  if (job.warmup && job.op === 'put') await sftp.put(job.local, job.remote);
  // PROFILE_FORGET_MEMO=1: the warm-up's pacing memo forgotten (A/B of the memo's effect)
  if (process.env.PROFILE_FORGET_MEMO && sftp.live) for (const k of Object.keys(sftp.live.pacingMemo)) delete sftp.live.pacingMemo[k];
  let post;
  if (job.alloc) {
    const s = new inspector.Session();
    s.connect();
    post = (m, p) => new Promise((res, rej) => s.post(m, p ?? {}, (e, r) => (e ? rej(e) : res(r))));
    await post('HeapProfiler.enable');
    await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  await new Promise((resolve) => {
    process.once('message', () => resolve());
    process.send({ ready: true });
  });
  let gcMajor = 0;
  let gcMinor = 0;
  let gcMs = 0;
  let gcMaxMs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = e.detail?.kind ?? 0;
      if (kind & 4) gcMajor++;
      else if (kind & 1) gcMinor++;
      gcMs += e.duration;
      gcMaxMs = Math.max(gcMaxMs, e.duration);
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const heap0 = process.memoryUsage();
  const h = monitorEventLoopDelay({ resolution: job.elResolution });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  h.enable();
  measuring = true;
  if (job.op === 'get') await sftp.get(job.remote, job.local);
  else if (job.op === 'put') await sftp.put(job.local, job.remote);
  // the bench's baseline row: a local stream copy in the same process, measured alike
  else await pipeline(fs.createReadStream(job.local), fs.createWriteStream(job.copyTo));
  h.disable();
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  await sleep(50); // the last gc entries
  obs.disconnect();
  let heapAllocTop;
  let allocMiB;
  if (post) {
    const { profile } = await post('HeapProfiler.stopSampling');
    const sites = new Map();
    let total = 0;
    const walk = (n, stack) => {
      const f = n.callFrame;
      const here = `${f.functionName || '(anon)'} ${path.basename(f.url)}:${f.lineNumber + 1}`;
      if (n.selfSize > 0) {
        const key = [here, ...stack.slice(-3).reverse()].join(' < ');
        sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
        total += n.selfSize;
      }
      for (const ch of n.children) walk(ch, [...stack, here]);
    };
    walk(profile.head, []);
    allocMiB = total / MiB;
    heapAllocTop = [...sites.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 25)
      .map(([k, v]) => `${(v / MiB).toFixed(2).padStart(8)} MiB  ${k}`);
  }
  if (bufferSites.size > 0) {
    const top = [...bufferSites.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 12);
    for (const [k, v] of top) process.stderr.write(`${(v.bytes / MiB).toFixed(1).padStart(8)} MiB ${String(v.n).padStart(6)}x  ${k}\n`);
  }
  await client.close();
  process.send({
    result: {
      seconds,
      cpu: (c.user + c.system) / 1e6,
      user: c.user / 1e6,
      sys: c.system / 1e6,
      gcMajor,
      gcMinor,
      gcMs,
      gcMaxMs,
      heapUsedMiB: heap0.heapUsed / MiB,
      elP50: h.percentile(50) / 1e6,
      elP99: h.percentile(99) / 1e6,
      elMax: h.max / 1e6,
      ...(heapAllocTop ? { heapAllocTop, allocMiB } : {}),
      ...(job.ticks ? { bursts: burstSummary() } : {}),
    },
  });
}

function burstSummary() {
  const q = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0;
  };
  const ms = bursts.map((b) => b.ms);
  const kib = bursts.map((b) => b.bytes / 1024);
  const chunks = bursts.map((b) => b.chunks);
  return {
    n: bursts.length,
    msP50: q(ms, 50),
    msP99: q(ms, 99),
    msMax: q(ms, 100),
    kibP50: q(kib, 50),
    kibP99: q(kib, 99),
    kibMax: q(kib, 100),
    chunksP50: q(chunks, 50),
    chunksMax: q(chunks, 100),
    over5ms: ms.filter((x) => x > 5).length,
  };
}

process.once('message', (job) => {
  run(job).then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
});
