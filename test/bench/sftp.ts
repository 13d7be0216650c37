/**
 * SFTP benchmark: 256 MiB download/upload (32 MiB with BENCH_QUICK) through ssh-tether's
 * SftpClient (`client.sftp()`: get/put and the pipelined streams), raw ssh2 fastGet/fastPut,
 * node-ssh, ssh2-sftp-client, and the OpenSSH `scp` and `sftp` CLIs over a ControlMaster socket,
 * all on the same sshd with the cipher pinned (aes128-gcm@openssh.com); and 1,000 small files
 * uploaded as a tree (`putDir`, `sftp put -R`, `scp -r`, ssh2-sftp-client `uploadDir`). Reports
 * the median over the runs and client CPU seconds per GiB (this process for the in-process
 * tools; for the CLIs `/usr/bin/time` user+sys of the tool plus the ControlMaster's CPU over the
 * same span, since the master does the transport and the crypto).
 *
 * Run alone: `node --import ./scripts/ts-node-register.mjs test/bench/sftp.ts` (starts its own sshd).
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { NodeSSH } from 'node-ssh';
import { SshClient } from '../../src/index.js';
import { opensshArgs, startSshd } from '../helpers/sshd.js';
import {
  cpuSeconds,
  hostKeyVerifier,
  iterations,
  median,
  nowMs,
  pinnedAlgorithms,
  pinnedOpensshArgs,
  procCpuSeconds,
  runProcess,
  startControlMaster,
  targetOf,
  tetherOptions,
  ratioTarget,
  runAsRowBenchChild,
  type BenchTarget,
  type Row,
  type TargetCheck,
} from './lib.js';

const GiB = 1024 * 1024 * 1024;

function connectConfig(t: BenchTarget): ssh2.ConnectConfig {
  return {
    host: t.host,
    port: t.port,
    username: t.username,
    privateKey: t.privateKey,
    algorithms: pinnedAlgorithms() as ssh2.Algorithms,
    hostVerifier: hostKeyVerifier(t),
    readyTimeout: 10_000,
  };
}

interface Measure {
  seconds: number;
  cpu: number;
}

/** Runs `fn` `n` times; returns the median MB/s and CPU s/GiB. */
async function measure(n: number, bytes: number, fn: () => Promise<Measure>): Promise<{ mbPerSec: number; cpuSecPerGiB: number }> {
  const rates: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = await fn();
    rates.push(bytes / 1e6 / m.seconds);
    cpus.push((m.cpu * GiB) / bytes);
  }
  return { mbPerSec: Math.round(median(rates) * 10) / 10, cpuSecPerGiB: Math.round(median(cpus) * 100) / 100 };
}

/** Times an in-process operation (wall and this process's CPU). */
async function inProcess(fn: () => Promise<unknown>): Promise<Measure> {
  const c0 = cpuSeconds();
  const t0 = nowMs();
  await fn();
  return { seconds: (nowMs() - t0) / 1000, cpu: cpuSeconds() - c0 };
}

/**
 * Times a CLI under /usr/bin/time: user+sys CPU of the tool itself, plus the CPU the process
 * `extraPid` (the ControlMaster carrying the tool's session) used over the same span.
 */
async function cli(file: string, args: string[], extraPid?: number): Promise<Measure> {
  const e0 = procCpuSeconds(extraPid);
  const r = await runProcess('/usr/bin/time', ['-f', 'TIME %U %S', file, ...args], 300_000);
  const extra = procCpuSeconds(extraPid) - e0;
  if (r.code !== 0) throw new Error(`${file} failed (${String(r.code)}): ${r.stderr.slice(-2000)}`);
  const m = /TIME ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  return { seconds: r.elapsedMs / 1000, cpu: m ? Number(m[1]) + Number(m[2]) + extra : Number.NaN };
}

function fastXfer(sftp: ssh2.SFTPWrapper, dir: 'get' | 'put', a: string, b: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (dir === 'get') sftp.fastGet(a, b, {}, cb);
    else sftp.fastPut(a, b, {}, cb);
  });
}

const SMALL_FILES = 1000;

interface TreeStats {
  files: number;
  dirs: number;
  bytes: number;
}

/**
 * Writes `files` small files (1 to 16 KiB of random bytes, sizes from a fixed seed) in 10
 * subdirectories of `root`.
 */
function makeTree(root: string, files: number): TreeStats {
  let seed = 0x5eed;
  const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  let bytes = 0;
  const dirs = 10;
  for (let d = 0; d < dirs; d++) fs.mkdirSync(path.join(root, `d${d}`), { recursive: true });
  for (let i = 0; i < files; i++) {
    const size = 1024 + (next() % (15 * 1024));
    fs.writeFileSync(path.join(root, `d${i % dirs}`, `f${i}.bin`), randomBytes(size));
    bytes += size;
  }
  return { files, dirs, bytes };
}

/** Runs `fn` `n` times; the median files/s and MB/s, and CPU s/GiB, for a tree of `t`. */
async function measureFiles(n: number, t: TreeStats, fn: () => Promise<Measure>): Promise<{ filesPerSec: number; mbPerSec: number; cpuSecPerGiB: number }> {
  const rates: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = await fn();
    rates.push(t.files / m.seconds);
    cpus.push((m.cpu * GiB) / t.bytes);
  }
  const filesPerSec = median(rates);
  return {
    filesPerSec: Math.round(filesPerSec * 10) / 10,
    mbPerSec: Math.round(((filesPerSec * t.bytes) / t.files / 1e6) * 10) / 10,
    cpuSecPerGiB: Math.round(median(cpus) * 100) / 100,
  };
}

/**
 * Issue 4's targets, as ratios in the same run: get >= 1.0x scp, put >= 1.1x sftp, get >= 3x
 * ssh2-sftp-client fastGet, createReadStream/createWriteStream >= 0.8x sftp, client CPU per GiB
 * <= sftp's (get and put).
 */
export function targetsOf(rows: readonly Row[]): TargetCheck[] {
  const down = /^download /;
  const up = /^upload \d+ MiB$/;
  return [
    ratioTarget(rows, 'get >= 1.0x OpenSSH scp (MB/s)', down, 'ssh-tether get', 'scp (OpenSSH)', 'mbPerSec', 1.0),
    ratioTarget(rows, 'put >= 1.1x OpenSSH sftp (MB/s)', up, 'ssh-tether put', 'sftp (OpenSSH)', 'mbPerSec', 1.1),
    ratioTarget(rows, 'get >= 3x ssh2-sftp-client fastGet (MB/s)', down, 'ssh-tether get', 'ssh2-sftp-client fastGet', 'mbPerSec', 3),
    ratioTarget(rows, 'createReadStream >= 0.8x OpenSSH sftp get (MB/s)', down, 'ssh-tether createReadStream', 'sftp (OpenSSH)', 'mbPerSec', 0.8),
    ratioTarget(rows, 'createWriteStream >= 0.8x OpenSSH sftp put (MB/s)', up, 'ssh-tether createWriteStream', 'sftp (OpenSSH)', 'mbPerSec', 0.8),
    ratioTarget(rows, 'get client CPU/GiB <= OpenSSH sftp get', down, 'ssh-tether get', 'sftp (OpenSSH)', 'cpuSecPerGiB', 1.0),
    ratioTarget(rows, 'put client CPU/GiB <= OpenSSH sftp put', up, 'ssh-tether put', 'sftp (OpenSSH)', 'cpuSecPerGiB', 1.0),
  ];
}

/** The SFTP rows of the bench table. */
export async function benchSftp(target: BenchTarget): Promise<Row[]> {
  const sizeMiB = target.quick ? 32 : 256;
  const bytes = sizeMiB * 1024 * 1024;
  const n = iterations(3, 1);
  const rows: Row[] = [];
  const local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-bench-sftp-'));
  const remoteDir = path.posix.join(target.homeDir, `bench-sftp-${randomBytes(4).toString('hex')}`);
  const src = path.join(local, 'src.bin');
  const dst = path.join(local, 'dst.bin');
  const remoteSrc = `${remoteDir}/src.bin`;
  const remoteDst = `${remoteDir}/dst.bin`;
  const fd = fs.openSync(src, 'w');
  const block = Buffer.allocUnsafe(16 * 1024 * 1024);
  for (let off = 0; off < bytes; off += block.length) fs.writeSync(fd, randomFillSync(block), 0, Math.min(block.length, bytes - off), off);
  fs.closeSync(fd);
  const down = `download ${sizeMiB} MiB`;
  const up = `upload ${sizeMiB} MiB`;
  const ossh = [...opensshArgs(target), ...pinnedOpensshArgs()];
  const tree = path.join(local, 'tree');
  const treeStats = makeTree(tree, SMALL_FILES);
  const dest = `${target.username}@${target.host}`;

  const client = new SshClient(tetherOptions(target));
  await client.connect();
  const sftp = await client.sftp();
  const cm = await startControlMaster(target);
  const viaMaster = ['-o', `ControlPath=${cm.sockPath}`, '-o', 'ControlMaster=no'];
  const add = (name: string, tool: string, r: { mbPerSec: number; cpuSecPerGiB: number }, notes?: string): void => {
    rows.push({ name, tool, ...r, ...(notes === undefined ? {} : { notes }) });
  };
  const attempt = async (label: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      rows.push({ name: label, tool: 'error', notes: err instanceof Error ? err.message.slice(0, 200) : String(err) });
    }
  };
  try {
    await sftp.mkdir(remoteDir, { recursive: true });
    await sftp.put(src, remoteSrc);

    // ssh-tether
    await attempt('ssh-tether', async () => {
      add(down, 'ssh-tether get', await measure(n, bytes, () => inProcess(() => sftp.get(remoteSrc, dst))), '16 x 255 KiB requests');
      add(up, 'ssh-tether put', await measure(n, bytes, () => inProcess(() => sftp.put(src, remoteDst))), '16 x 255 KiB requests');
      add(
        down,
        'ssh-tether createReadStream',
        await measure(n, bytes, () => inProcess(() => pipeline(sftp.createReadStream(remoteSrc), fs.createWriteStream(dst)))),
        '16 reads in flight',
      );
      add(
        up,
        'ssh-tether createWriteStream',
        await measure(n, bytes, () =>
          inProcess(() => pipeline(fs.createReadStream(src, { highWaterMark: 256 * 1024 }), sftp.createWriteStream(remoteDst))),
        ),
        '16 writes in flight, 256 KiB source chunks',
      );
    });

    // raw ssh2 fastGet/fastPut (defaults: 64 x 32 KiB)
    await attempt('ssh2', async () => {
      const c = new ssh2.Client();
      await new Promise<void>((resolve, reject) => {
        c.once('ready', () => resolve());
        c.once('error', reject);
        c.connect(connectConfig(target));
      });
      c.setNoDelay(true);
      try {
        const w = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => c.sftp((e, s) => (e ? reject(e) : resolve(s))));
        add(down, 'ssh2 fastGet', await measure(n, bytes, () => inProcess(() => fastXfer(w, 'get', remoteSrc, dst))), 'defaults, TCP_NODELAY');
        add(up, 'ssh2 fastPut', await measure(n, bytes, () => inProcess(() => fastXfer(w, 'put', src, remoteDst))), 'defaults, TCP_NODELAY');
      } finally {
        c.end();
      }
    });

    // node-ssh (ssh2 fastGet/fastPut underneath; no TCP_NODELAY)
    await attempt('node-ssh', async () => {
      const ns = new NodeSSH();
      await ns.connect({ ...connectConfig(target), privateKey: target.privateKey.toString('utf8') });
      try {
        add(down, 'node-ssh getFile', await measure(n, bytes, () => inProcess(() => ns.getFile(dst, remoteSrc))));
        add(up, 'node-ssh putFile', await measure(n, bytes, () => inProcess(() => ns.putFile(src, remoteDst))));
      } finally {
        ns.dispose();
      }
    });

    // ssh2-sftp-client (ssh2 underneath; its get = one stream read at a time, fastGet = ssh2 fastGet)
    await attempt('ssh2-sftp-client', async () => {
      const { default: SftpClientLib } = await import('ssh2-sftp-client');
      const sc = new SftpClientLib();
      await sc.connect({ ...connectConfig(target), privateKey: target.privateKey });
      try {
        add(down, 'ssh2-sftp-client fastGet', await measure(n, bytes, () => inProcess(async () => void (await sc.fastGet(remoteSrc, dst)))), 'ssh2 fastGet, no TCP_NODELAY');
        add(up, 'ssh2-sftp-client fastPut', await measure(n, bytes, () => inProcess(async () => void (await sc.fastPut(src, remoteDst)))), 'ssh2 fastPut, no TCP_NODELAY');
        add(down, 'ssh2-sftp-client get', await measure(n, bytes, () => inProcess(async () => void (await sc.get(remoteSrc, dst)))), 'stream based');
      } finally {
        await sc.end();
      }
    });

    // OpenSSH CLIs
    const cmNote = 'over a ControlMaster; SFTP protocol (OpenSSH 9 default)';
    await attempt('scp', async () => {
      add(down, 'scp (OpenSSH)', await measure(n, bytes, () => cli('scp', ['-q', ...ossh, ...viaMaster, `${dest}:${remoteSrc}`, dst], cm.pid)), cmNote);
      add(up, 'scp (OpenSSH)', await measure(n, bytes, () => cli('scp', ['-q', ...ossh, ...viaMaster, src, `${dest}:${remoteDst}`], cm.pid)), cmNote);
    });
    await attempt('sftp', async () => {
      const batchGet = path.join(local, 'get.batch');
      const batchPut = path.join(local, 'put.batch');
      fs.writeFileSync(batchGet, `get ${remoteSrc} ${dst}\n`);
      fs.writeFileSync(batchPut, `put ${src} ${remoteDst}\n`);
      add(down, 'sftp (OpenSSH)', await measure(n, bytes, () => cli('sftp', ['-q', '-b', batchGet, ...ossh, ...viaMaster, dest], cm.pid)), 'over a ControlMaster');
      add(up, 'sftp (OpenSSH)', await measure(n, bytes, () => cli('sftp', ['-q', '-b', batchPut, ...ossh, ...viaMaster, dest], cm.pid)), 'over a ControlMaster');
    });

    // 1,000 small files as a tree, each run into a fresh remote directory
    const smallName = `upload ${SMALL_FILES} small files (${(treeStats.bytes / 1024 / 1024).toFixed(1)} MiB)`;
    const smallNote = (extra: string): string => `${treeStats.dirs} directories; ${extra}`;
    let k = 0;
    const fresh = (tool: string): string => `${remoteDir}/tree-${tool}-${k++}`;
    await attempt('ssh-tether putDir', async () => {
      add(smallName, 'ssh-tether putDir', await measureFiles(n, treeStats, () => inProcess(async () => {
        const r = await sftp.putDir(tree, fresh('t'));
        if (r.failed.length > 0 || r.copied.length !== SMALL_FILES) throw new Error(`putDir copied ${r.copied.length}, failed ${r.failed.length}`);
      })), smallNote('defaults (32 files in parallel)'));
    });
    await attempt('sftp put -R', async () => {
      add(smallName, 'sftp (OpenSSH) put -R', await measureFiles(n, treeStats, () => {
        const batch = path.join(local, `tree-${k}.batch`);
        fs.writeFileSync(batch, `put -R ${tree} ${fresh('s')}\n`);
        return cli('sftp', ['-q', '-b', batch, ...ossh, ...viaMaster, dest], cm.pid);
      }), smallNote('over a ControlMaster'));
    });
    await attempt('scp -r', async () => {
      add(smallName, 'scp (OpenSSH) -r', await measureFiles(n, treeStats, () => cli('scp', ['-q', '-r', ...ossh, ...viaMaster, tree, `${dest}:${fresh('c')}`], cm.pid)), smallNote('over a ControlMaster'));
    });
    await attempt('ssh2-sftp-client uploadDir', async () => {
      const { default: SftpClientLib } = await import('ssh2-sftp-client');
      const sc = new SftpClientLib();
      await sc.connect({ ...connectConfig(target), privateKey: target.privateKey });
      try {
        add(smallName, 'ssh2-sftp-client uploadDir', await measureFiles(n, treeStats, () => inProcess(async () => void (await sc.uploadDir(tree, fresh('u'))))), smallNote('its defaults'));
      } finally {
        await sc.end();
      }
    });
  } finally {
    await sftp.rm(remoteDir, { recursive: true, force: true }).catch(() => undefined);
    await client.close();
    await cm.close();
    await fsp.rm(local, { recursive: true, force: true });
  }
  return rows;
}

// run alone (or as one of the processes `npm run bench` starts)
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]) && !(await runAsRowBenchChild(benchSftp))) {
  const sshd = await startSshd();
  try {
    const rows = await benchSftp(targetOf(sshd, process.env.BENCH_QUICK === '1'));
    console.table(rows);
  } finally {
    await sshd.stop();
  }
}
