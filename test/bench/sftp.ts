/**
 * SFTP benchmark: 256 MiB download/upload (32 MiB with BENCH_QUICK) through ssh-tether's
 * SftpClient (get/put and the pipelined streams), raw ssh2 fastGet/fastPut, node-ssh, and the
 * OpenSSH `scp` and `sftp` CLIs, all on the same sshd with the cipher pinned
 * (aes128-gcm@openssh.com). Reports the median MB/s over the runs and client CPU seconds per GiB
 * (this process for the in-process tools; `/usr/bin/time` user+sys for the CLIs).
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
import { SshError } from '../../src/errors.js';
import type { Link, LinkProvider } from '../../src/connection/link.js';
import { SftpClient } from '../../src/sftp/index.js';
import { opensshArgs, startSshd } from '../helpers/sshd.js';
import {
  cpuSeconds,
  gc,
  hostKeyVerifier,
  iterations,
  median,
  nowMs,
  pinnedAlgorithms,
  pinnedOpensshArgs,
  runProcess,
  targetOf,
  type BenchTarget,
  type Row,
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
      client.connect(connectConfig(this.t));
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

interface Measure {
  seconds: number;
  cpu: number;
}

/** Runs `fn` `n` times; returns the median MB/s and CPU s/GiB. */
async function measure(n: number, bytes: number, fn: () => Promise<Measure>): Promise<{ mbPerSec: number; cpuSecPerGiB: number }> {
  const rates: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < n; i++) {
    gc();
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

/** Times a CLI under /usr/bin/time (user+sys CPU of the tool itself). */
async function cli(file: string, args: string[]): Promise<Measure> {
  const r = await runProcess('/usr/bin/time', ['-f', 'TIME %U %S', file, ...args], 300_000);
  if (r.code !== 0) throw new Error(`${file} failed (${String(r.code)}): ${r.stderr.slice(-2000)}`);
  const m = /TIME ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  return { seconds: r.elapsedMs / 1000, cpu: m ? Number(m[1]) + Number(m[2]) : Number.NaN };
}

function fastXfer(sftp: ssh2.SFTPWrapper, dir: 'get' | 'put', a: string, b: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (dir === 'get') sftp.fastGet(a, b, {}, cb);
    else sftp.fastPut(a, b, {}, cb);
  });
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
  const dest = `${target.username}@${target.host}`;

  const links = new BenchLinks(target);
  const sftp = new SftpClient(links);
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
    await attempt('scp', async () => {
      add(down, 'scp (OpenSSH)', await measure(n, bytes, () => cli('scp', ['-q', ...ossh, `${dest}:${remoteSrc}`, dst])), 'SFTP protocol (OpenSSH 9 default)');
      add(up, 'scp (OpenSSH)', await measure(n, bytes, () => cli('scp', ['-q', ...ossh, src, `${dest}:${remoteDst}`])), 'SFTP protocol (OpenSSH 9 default)');
    });
    await attempt('sftp', async () => {
      const batchGet = path.join(local, 'get.batch');
      const batchPut = path.join(local, 'put.batch');
      fs.writeFileSync(batchGet, `get ${remoteSrc} ${dst}\n`);
      fs.writeFileSync(batchPut, `put ${src} ${remoteDst}\n`);
      add(down, 'sftp (OpenSSH)', await measure(n, bytes, () => cli('sftp', ['-q', '-b', batchGet, ...ossh, dest])));
      add(up, 'sftp (OpenSSH)', await measure(n, bytes, () => cli('sftp', ['-q', '-b', batchPut, ...ossh, dest])));
    });
  } finally {
    await sftp.rm(remoteDir, { recursive: true, force: true }).catch(() => undefined);
    await sftp.close();
    await links.close();
    await fsp.rm(local, { recursive: true, force: true });
  }
  return rows;
}

// run alone
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const sshd = await startSshd();
  try {
    const rows = await benchSftp(targetOf(sshd, process.env.BENCH_QUICK === '1'));
    console.table(rows);
  } finally {
    await sshd.stop();
  }
}
