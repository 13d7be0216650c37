/**
 * Directory sync benchmark (issue 17 §5): re-sync of an UNCHANGED tree of 1,000 small files
 * (100 with BENCH_QUICK; `BENCH_SYNC_FILES=n` overrides), local -> remote, on the same sshd:
 *
 * - ssh-tether `putDir(..., { compare: 'size-mtime' })`: rsync's quick check over SFTP (one
 *   remote walk, nothing copied);
 * - ssh-tether `putDir(..., { compare: 'checksum' })`: every file hashed on both sides
 *   (remote side `sha256sum` over exec);
 * - `rsync -a -e ssh` (OpenSSH ssh over a ControlMaster, so no connection setup is timed, as
 *   ssh-tether's client is already connected): rsync's quick check, rsync on both ends;
 * - ssh-tether `putDir` with the default `compare: 'always'`: the full copy it replaces.
 *
 * Reported as files checked per second and ms per run (median), each row's time as a multiple
 * of the size-mtime row's (`timeVsSizeMtime`), and the table's ratio of the first ssh-tether row
 * to each other tool, all in the same run. Every run checks that nothing was copied (the
 * summary's `copied`; rsync's `--stats`), so a row never measures a different amount of work.
 *
 * Run alone: `node --import ./scripts/ts-node-register.mjs test/bench/sync.ts` (starts its own sshd).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SshClient } from '../../src/index.js';
import { opensshArgs, startSshd } from '../helpers/sshd.js';
import { iterations, median, nowMs, pinnedOpensshArgs, runAsRowBenchChild, runProcess, startControlMaster, targetOf, tetherOptions, type BenchTarget, type Row } from './lib.js';

/** Files in the tree. */
function treeFiles(quick: boolean): number {
  const env = Number(process.env.BENCH_SYNC_FILES);
  return Number.isInteger(env) && env > 0 ? env : quick ? 100 : 1000;
}

/** Writes `files` files of 1-16 KiB (sizes from a fixed seed) in 10 directories, mtimes fixed. */
function makeTree(root: string, files: number): number {
  let seed = 0x5eed;
  const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, `d${i % 10}`);
    fs.mkdirSync(dir, { recursive: true });
    const size = 1024 + (next() % (15 * 1024));
    const p = path.join(dir, `f${i}.bin`);
    fs.writeFileSync(p, randomBytes(size));
    fs.utimesSync(p, 1_600_000_000 + i, 1_600_000_000 + i);
    bytes += size;
  }
  return bytes;
}

/** A POSIX shell word (for rsync's `-e` command line). */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_/.:,@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs `fn` `n` times; the median files/s and ms. */
async function timed(n: number, files: number, fn: () => Promise<void>): Promise<{ filesPerSec: number; ms: number }> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    await fn();
    ms.push(nowMs() - t0);
  }
  const m = median(ms);
  return { filesPerSec: Math.round((files / (m / 1000)) * 10) / 10, ms: Math.round(m * 10) / 10 };
}

/** The rows of the sync bench. */
export async function benchSync(target: BenchTarget): Promise<Row[]> {
  const files = treeFiles(target.quick);
  const n = iterations(5, 1);
  const rows: Row[] = [];
  const local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-bench-sync-'));
  const tree = path.join(local, 'tree');
  const bytes = makeTree(tree, files);
  const remoteDir = path.posix.join(target.homeDir, `bench-sync-${randomBytes(4).toString('hex')}`);
  const remoteTree = `${remoteDir}/tree`;
  const name = `re-sync unchanged tree: ${files} files (${(bytes / 1024 / 1024).toFixed(1)} MiB), local -> remote`;

  const client = new SshClient(tetherOptions(target));
  await client.connect();
  const sftp = await client.sftp();
  const cm = await startControlMaster(target);
  const attempt = async (tool: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      rows.push({ name, tool, notes: `error: ${err instanceof Error ? err.message.slice(0, 200) : String(err)}` });
    }
  };
  try {
    await sftp.mkdir(remoteDir, { recursive: true });
    // the first sync copies everything and sets the mtimes the quick check compares
    const first = await sftp.putDir(tree, remoteTree, { compare: 'size-mtime' });
    if (first.copied.length !== files) throw new Error(`initial putDir copied ${first.copied.length} of ${files}`);

    await attempt('ssh-tether putDir size-mtime', async () => {
      const r = await timed(n, files, async () => {
        const s = await sftp.putDir(tree, remoteTree, { compare: 'size-mtime' });
        if (s.copied.length !== 0 || s.unchanged.length !== files) throw new Error(`copied ${s.copied.length}, unchanged ${s.unchanged.length}`);
      });
      rows.push({ name, tool: 'ssh-tether putDir size-mtime', ...r, notes: 'SFTP walk of both trees, nothing copied' });
    });

    await attempt('rsync -a -e ssh', async () => {
      const e = ['ssh', ...opensshArgs(target), ...pinnedOpensshArgs(), '-o', `ControlPath=${cm.sockPath}`, '-o', 'ControlMaster=no'].map(shellWord).join(' ');
      const rsync = async (): Promise<string> => {
        const res = await runProcess('rsync', ['-a', '--stats', '-e', e, `${tree}/`, `${target.username}@${target.host}:${remoteTree}/`], 300_000);
        if (res.code !== 0) throw new Error(`rsync failed (${String(res.code)}): ${res.stderr.slice(-500)}`);
        return res.stdout;
      };
      // one run first: rsync -a also settles directory times and permissions
      await rsync();
      const r = await timed(n, files, async () => {
        const out = await rsync();
        const sent = /Number of regular files transferred: ([\d,]+)/.exec(out)?.[1];
        if (sent !== '0') throw new Error(`rsync transferred ${sent ?? '?'} files`);
      });
      rows.push({ name, tool: 'rsync -a -e ssh (OpenSSH)', ...r, notes: 'quick check (size + mtime), over a ControlMaster; rsync on both ends' });
    });

    await attempt('ssh-tether putDir checksum', async () => {
      const r = await timed(n, files, async () => {
        const s = await sftp.putDir(tree, remoteTree, { compare: 'checksum' });
        if (s.copied.length !== 0) throw new Error(`copied ${s.copied.length}`);
      });
      rows.push({ name, tool: 'ssh-tether putDir checksum', ...r, notes: 'SHA-256 of every file: locally, and with sha256sum over exec' });
    });

    await attempt('ssh-tether putDir (full copy)', async () => {
      const r = await timed(n, files, async () => {
        const s = await sftp.putDir(tree, remoteTree);
        if (s.copied.length !== files) throw new Error(`copied ${s.copied.length}`);
      });
      rows.push({ name, tool: 'ssh-tether putDir (full copy)', ...r, notes: "compare: 'always' (the default): every file copied" });
    });
    // every row's time as a multiple of the quick check's, in this run
    const base = rows.find((r) => r.tool === 'ssh-tether putDir size-mtime')?.ms;
    for (const r of rows) if (typeof base === 'number' && typeof r.ms === 'number') r.timeVsSizeMtime = Math.round((r.ms / base) * 100) / 100;
  } finally {
    await sftp.rm(remoteDir, { recursive: true, force: true }).catch(() => undefined);
    await client.close();
    await cm.close();
    await fsp.rm(local, { recursive: true, force: true });
  }
  return rows;
}

// run alone (or as one of the processes `npm run bench` starts)
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]) && !(await runAsRowBenchChild(benchSync))) {
  const sshd = await startSshd();
  try {
    console.table(await benchSync(targetOf(sshd, process.env.BENCH_QUICK === '1')));
  } finally {
    await sshd.stop();
  }
}
