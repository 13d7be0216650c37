/**
 * File and tree transfers behind {@link SftpClient.get}, `put`, `getDir` and `putDir`: one file
 * copied with the parallel engines (sftp/engine.ts) and `resume`/`preserve`; a directory tree
 * walked (sftp/dir-walk.ts), its directories created inside the target, and its files copied
 * `concurrency` at a time (`p-limit`) with one overall progress and one summary.
 *
 * Options reach these functions already checked (sftp/client.ts validates them before any I/O).
 *
 * @internal
 * @module sftp/transfer
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { SshError } from '../errors.js';
import { abortReason } from '../internal/cancel.js';
import { relBytes, walkTree, type WalkedTree, type WalkLimits } from './dir-walk.js';
import { ProgressReporter, runGet, runPut } from './engine.js';
import { asError, DEFAULT_STREAM_CONCURRENCY, closeBounded, limitError, listLean, localError, mkdirp, runLimited } from './ops.js';
import { isConfinedRel, isInsideDir, joinBytes, joinRemote, showName, toBytes, typeOfMode, type SftpEntryType } from './paths.js';
import { OrderedReader } from './streams.js';
import { OpenFlags, type SftpSession } from './session.js';
import type { DirFilterEntry, DirTransferSummary, SftpWarning, TransferProgress, TransferResult } from './types.js';
import type { RemotePath, SetAttrs } from './wire.js';

/** The checked options of one file transfer. */
export interface FilePlan {
  /** Requests in flight. */
  concurrency: number;
  /** Bytes per request (capped by the server's limit), or the server's limit. */
  chunkSize: number | undefined;
  resume: false | 'size' | 'sha256';
  /** Mode mask of `preserve` (0: do not preserve). */
  preserve: number;
  onProgress?: ((progress: TransferProgress) => void) | undefined;
}

/** The checked options of one tree transfer. */
export interface DirPlan {
  /** Files copied in parallel. */
  parallel: number;
  /** Requests in flight per file. */
  perFile: number;
  maxEntries: number;
  maxDepth: number;
  filter?: ((entry: DirFilterEntry) => boolean) | undefined;
  onProgress?: ((progress: TransferProgress) => void) | undefined;
  resume: false | 'size' | 'sha256';
  preserve: number;
}

interface FileJob {
  concurrency: number;
  chunkSize: number | undefined;
  resume: false | 'size' | 'sha256';
  /** Mode mask of `preserve` (0: do not preserve). */
  preserve: number;
  progress: ProgressReporter;
  signal: AbortSignal;
  /**
   * Set by `getDir`: the canonical local root. The local file is then opened with O_NOFOLLOW
   * (a symlink planted at the destination is not followed).
   */
  confined?: boolean;
}

/** What differs between {@link SftpClient.getDir} and {@link SftpClient.putDir}. */
interface TreeSide {
  /** Lists the source tree. */
  walk(s: SftpSession, signal: AbortSignal, limits: WalkLimits): Promise<WalkedTree>;
  /** Creates the destination root and `dirs` (relative to it, parents first; latin1, see {@link WalkedTree}). */
  makeDirs(s: SftpSession, signal: AbortSignal, dirs: readonly string[]): Promise<void>;
  /** Copies one file, `rel` relative to both roots. */
  copy(s: SftpSession, rel: Buffer, job: FileJob): Promise<TransferResult>;
}

/** A size from the server usable as a byte count, or undefined (absent, 0, or past 2^53: unknown). */
function knownSize(size: number | undefined): number | undefined {
  return size !== undefined && size > 0 && Number.isSafeInteger(size) ? size : undefined;
}

/** {@link SftpClient.get} once the session is open. */
export async function getOne(s: SftpSession, signal: AbortSignal, remote: RemotePath, local: string | Buffer, plan: FilePlan): Promise<TransferResult> {
  const progress = new ProgressReporter(0, plan.onProgress);
  const res = await getFile(s, remote, local, { ...plan, progress, signal }, true);
  progress.final();
  return res;
}

/** {@link SftpClient.put} once the session is open. */
export async function putOne(s: SftpSession, signal: AbortSignal, local: string | Buffer, remote: RemotePath, plan: FilePlan): Promise<TransferResult> {
  const progress = new ProgressReporter(0, plan.onProgress);
  const res = await putFile(s, local, remote, { ...plan, progress, signal }, true);
  progress.final();
  return res;
}

async function getFile(s: SftpSession, remote: RemotePath, local: string | Buffer, job: FileJob, setTotal: boolean): Promise<TransferResult> {
  const { signal } = job;
  const handle = await s.open(remote, OpenFlags.READ, undefined, signal);
  let fd: number | undefined;
  try {
    const st = await s.fstat(handle, remote, signal);
    // No size, 0 (a /proc file) or an absurd one: unknown, read until EOF.
    const size = knownSize(st.size) ?? Infinity;
    if (setTotal) job.progress.total = size === Infinity ? 0 : size;
    try {
      const C = fs.constants;
      // getDir: never follow a symlink planted at the destination name
      const noFollow = job.confined === true ? C.O_NOFOLLOW : 0;
      fd = await openFd(local, (job.resume ? C.O_RDWR : C.O_WRONLY | C.O_TRUNC) | C.O_CREAT | noFollow);
    } catch (err) {
      throw localError(err, 'open', local);
    }
    const have = job.resume ? (await fstatFd(fd)).size : 0;
    const { start, endedAt } = await copyRange(runGet, s, handle, remote, fd, have, size, s.maxReadLen, job);
    try {
      // A resumed file is cut only when it was copied again from 0 and the source ended
      // before its old end (a kept prefix makes endedAt >= have): never on a size the server
      // did not state, where the copy continued from what was already there.
      if (job.resume && endedAt < have) await ftruncateFd(fd, endedAt);
      if (job.preserve !== 0) {
        await futimesFd(fd, st.atime ?? 0, st.mtime ?? 0);
        if (st.mode !== undefined) await fchmodFd(fd, st.mode & job.preserve);
      }
      const f = fd;
      fd = undefined;
      await closeFd(f);
    } catch (err) {
      throw localError(err, 'write', local);
    }
    await s.close(handle, remote, signal);
    return { transferredBytes: endedAt - start, totalBytes: endedAt, resumedFrom: start };
  } catch (err) {
    if (fd !== undefined) await closeFd(fd).catch(() => undefined);
    await closeBounded(s, handle, signal);
    throw err;
  }
}

async function putFile(s: SftpSession, local: string | Buffer, remote: RemotePath, job: FileJob, setTotal: boolean): Promise<TransferResult> {
  const { signal } = job;
  let fd: number;
  let lst: fs.Stats;
  try {
    fd = await openFd(local, 'r');
    lst = await fstatFd(fd);
  } catch (err) {
    throw localError(err, 'open', local);
  }
  let handle: Buffer | undefined;
  try {
    if (!lst.isFile()) throw localError(new Error('not a regular file'), 'read', local);
    const size = lst.size;
    if (setTotal) job.progress.total = size;
    const flags = OpenFlags.WRITE | OpenFlags.CREAT | (job.resume ? 0 : OpenFlags.TRUNC) | (job.resume === 'sha256' ? OpenFlags.READ : 0);
    handle = await s.open(remote, flags, job.preserve !== 0 ? { mode: lst.mode & job.preserve } : undefined, signal);
    const remoteSize = job.resume ? ((await s.fstat(handle, remote, signal)).size ?? 0) : 0;
    const { start, endedAt } = await copyRange(runPut, s, handle, remote, fd, remoteSize, size, s.maxWriteLen, job);
    const attrs: SetAttrs = {};
    if (remoteSize > endedAt || endedAt < size) attrs.size = endedAt;
    if (job.preserve !== 0) {
      attrs.mode = lst.mode & job.preserve;
      attrs.atime = Math.floor(lst.atimeMs / 1000);
      attrs.mtime = Math.floor(lst.mtimeMs / 1000);
    }
    if (Object.keys(attrs).length > 0) await s.fsetstat(handle, remote, attrs, signal);
    const h = handle;
    handle = undefined;
    await s.close(h, remote, signal);
    return { transferredBytes: endedAt - start, totalBytes: endedAt, resumedFrom: start };
  } catch (err) {
    if (handle) await closeBounded(s, handle, signal);
    throw err;
  } finally {
    await closeFd(fd).catch(() => undefined);
  }
}

/** {@link SftpClient.getDir} once the session is open. */
export function getTree(
  s: SftpSession,
  sig: AbortSignal,
  r: RemotePath,
  l: string | Buffer,
  plan: DirPlan,
  warn: (w: SftpWarning) => void,
): Promise<DirTransferSummary> {
  const localBytes = toBytes(l);
  let rootReal: Buffer | undefined;
  const confine = (rel: Buffer): Buffer => {
    if (!isConfinedRel(rel)) throw limitError('getDir', `refusing local path ${JSON.stringify(showName(rel))} (outside localDir)`, rel, 'unsafe-name');
    return joinBytes(localBytes, rel);
  };
  return transferTree(s, sig, 'getDir', r, plan, warn, {
    walk: (s, sig, limits) =>
      walkTree(
        {
          list: async (rel, count) => {
            const dir = rel.length === 0 ? r : joinRemote(r, rel);
            return await listLean(s, dir, sig, count);
          },
          identity: async (rel) => {
            const dir = rel.length === 0 ? r : joinRemote(r, rel);
            // the canonical path; a server that cannot tell is bounded by maxDepth/maxEntries
            const real = await s.realpath(dir, sig).catch(() => undefined);
            return real?.toString('latin1');
          },
          limit: (what) => limitError('getDir', what, r),
        },
        limits,
      ),
    makeDirs: async (_s, _sig, dirs) => {
      try {
        await fsp.mkdir(l, { recursive: true });
        rootReal = await fsp.realpath(localBytes, { encoding: 'buffer' });
      } catch (err) {
        throw localError(err, 'mkdir', l);
      }
      // parents come first: create one level at a time and check where each one really is
      for (const d of dirs) {
        const abs = confine(relBytes(d));
        try {
          await fsp.mkdir(abs);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw localError(err, 'mkdir', abs);
        }
        let real: Buffer;
        try {
          real = await fsp.realpath(abs, { encoding: 'buffer' });
        } catch (err) {
          throw localError(err, 'realpath', abs);
        }
        if (!isInsideDir(rootReal, real)) {
          throw limitError('getDir', `local directory ${JSON.stringify(showName(abs))} resolves outside localDir (${JSON.stringify(showName(real))})`, abs, 'outside-target');
        }
      }
    },
    copy: (s, rel, job) => getFile(s, joinRemote(r, rel), confine(rel), { ...job, confined: true }, false),
  });
}

/** {@link SftpClient.putDir} once the session is open. */
export function putTree(
  s: SftpSession,
  sig: AbortSignal,
  l: string | Buffer,
  r: RemotePath,
  plan: DirPlan,
  warn: (w: SftpWarning) => void,
): Promise<DirTransferSummary> {
  const localBytes = toBytes(l);
  const confine = (rel: Buffer): RemotePath => {
    if (!isConfinedRel(rel)) throw limitError('putDir', `refusing remote path ${JSON.stringify(showName(rel))} (outside remoteDir)`, rel, 'unsafe-name');
    return joinRemote(r, rel);
  };
  return transferTree(s, sig, 'putDir', r, plan, warn, {
    walk: async (_s, _sig, limits) => {
      try {
        return await walkTree(
          {
            list: async (rel, count) => {
              const abs = rel.length === 0 ? localBytes : joinBytes(localBytes, rel);
              // a local directory is not server input: counted once read
              const entries = await fsp.readdir(abs, { withFileTypes: true, encoding: 'buffer' });
              count(entries.length);
              return entries.map((e) => ({ rawName: e.name, type: localType(e), size: 0 }));
            },
            fileSize: async (rel) => (await fsp.lstat(joinBytes(localBytes, rel))).size,
            identity: async (rel) => {
              const st = await fsp.stat(rel.length === 0 ? localBytes : joinBytes(localBytes, rel), { bigint: true });
              return `${st.dev}:${st.ino}`;
            },
            limit: (what) => limitError('putDir', what, l),
          },
          limits,
        );
      } catch (err) {
        throw localError(err, 'readdir', l);
      }
    },
    makeDirs: async (s, sig, dirs) => {
      await mkdirp(s, r, undefined, sig);
      for (const d of dirs) {
        const rd = confine(relBytes(d));
        try {
          await s.mkdir(rd, undefined, sig);
        } catch (err) {
          const st = await s.stat(rd, sig).catch(() => undefined);
          if (!st || typeOfMode(st.mode) !== 'directory') throw err;
        }
      }
    },
    copy: (s, rel, job) => putFile(s, joinBytes(localBytes, rel), confine(rel), job, false),
  });
}

/**
 * What {@link SftpClient.getDir} and {@link SftpClient.putDir} share: walks the source tree,
 * creates the destination directories, then copies the files `parallel` at a time with one
 * overall progress and one summary.
 */
async function transferTree(
  s: SftpSession,
  sig: AbortSignal,
  what: 'getDir' | 'putDir',
  root: RemotePath,
  plan: DirPlan,
  warn: (w: SftpWarning) => void,
  side: TreeSide,
): Promise<DirTransferSummary> {
  const limits: WalkLimits = {
    maxEntries: plan.maxEntries,
    maxDepth: plan.maxDepth,
    filter: plan.filter,
    onUnsafe: (rel, why) => {
      warn({
        reason: 'unsafe-name',
        operation: what,
        path: rel.toString('utf8'),
        rawPath: rel,
        message: `sftp ${what} ${JSON.stringify(showName(toBytes(root)))}: skipped ${JSON.stringify(showName(rel))}: ${why} (a name that could leave the target directory)`,
      });
    },
  };
  const tree = await side.walk(s, sig, limits);
  const summary: DirTransferSummary = { copied: [], skipped: tree.skipped, failed: [], transferredBytes: 0 };
  await side.makeDirs(s, sig, tree.dirs);
  const progress = new ProgressReporter(
    tree.files.reduce((a, f) => a + f.size, 0),
    plan.onProgress,
  );
  const job: FileJob = { concurrency: plan.perFile, chunkSize: undefined, resume: plan.resume, preserve: plan.preserve, progress, signal: sig };
  let fatal: unknown;
  await runLimited(
    tree.files,
    plan.parallel,
    async (f) => {
      const rel = relBytes(f.rel);
      try {
        const res = await side.copy(s, rel, job);
        summary.copied.push(rel.toString('utf8'));
        summary.transferredBytes += res.transferredBytes;
      } catch (err) {
        if (isFatal(err)) fatal ??= err;
        else summary.failed.push({ path: rel.toString('utf8'), error: err as SshError });
      }
    },
    () => fatal !== undefined || sig.aborted,
  );
  if (fatal !== undefined) throw asError(fatal);
  if (sig.aborted) throw abortReason(sig, `sftp ${what}`);
  progress.final();
  return summary;
}

/** Errors that end a whole directory transfer (not one file's problem). */
function isFatal(err: unknown): boolean {
  if (!(err instanceof SshError)) return true;
  return err.code !== 'ERR_SSH_SFTP';
}

/** Entry type of a local directory entry (not following symlinks). */
function localType(e: { isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean }): SftpEntryType {
  return e.isDirectory() ? 'directory' : e.isFile() ? 'file' : e.isSymbolicLink() ? 'symlink' : 'other';
}

/**
 * The engine run of {@link SftpClient.get} / {@link SftpClient.put} once both files are open:
 * with `resume`, keeps the `have` bytes already at the destination when they are a prefix of the
 * source (`'size'`: the destination is strictly shorter; `'sha256'`: checked by hashing both,
 * which also accepts an equal-size destination with the same content), then copies
 * `[start, size)` with `run`.
 */
async function copyRange(
  run: typeof runGet,
  s: SftpSession,
  handle: Buffer,
  remote: RemotePath,
  fd: number,
  have: number,
  size: number,
  maxLen: number,
  job: FileJob,
): Promise<{ start: number; endedAt: number }> {
  let start = 0;
  // 'size' trusts a strictly shorter destination to be a prefix; one of the same size is not
  // "complete" (its content may differ: issue 17), so it is copied again. 'sha256' compares the
  // whole prefix, so an equal-size destination with the same hash is complete.
  if (job.resume && have > 0 && (have < size || (have === size && job.resume === 'sha256'))) {
    start = have;
    if (job.resume === 'sha256') {
      const [a, b] = await Promise.all([hashLocal(fd, have), hashRemote(s, handle, remote, have, job.signal)]);
      if (!a.equals(b)) start = 0;
    }
  }
  job.progress.skip(start);
  const { endedAt } = await run({
    session: s,
    handle,
    remotePath: remote,
    fd,
    start,
    end: size,
    chunkSize: Math.min(job.chunkSize ?? Infinity, maxLen),
    concurrency: job.concurrency,
    onBytes: (n) => job.progress.add(n),
    signal: job.signal,
  });
  return { start, endedAt };
}

async function hashLocal(fd: number, length: number): Promise<Buffer> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(1, length)));
  let pos = 0;
  while (pos < length) {
    const n = await readFd(fd, buf, 0, Math.min(buf.length, length - pos), pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  return h.digest();
}

async function hashRemote(s: SftpSession, handle: Buffer, p: RemotePath, length: number, signal: AbortSignal): Promise<Buffer> {
  const h = createHash('sha256');
  const reader = new OrderedReader(s, handle, p, 0, length, s.maxReadLen, DEFAULT_STREAM_CONCURRENCY, signal, length);
  try {
    for (let i = 0; i < 10_000_000; i++) {
      const chunk = await reader.next();
      if (chunk === null) break;
      h.update(chunk);
    }
  } finally {
    reader.dispose();
  }
  return h.digest();
}

// promisified fd helpers (callback fs keeps positional I/O on the same fd as the engines)
function openFd(p: string | Buffer, flags: string | number): Promise<number> {
  return new Promise((res, rej) => fs.open(p, flags, 0o666, (e, fd) => (e ? rej(e) : res(fd))));
}
function fstatFd(fd: number): Promise<fs.Stats> {
  return new Promise((res, rej) => fs.fstat(fd, (e, st) => (e ? rej(e) : res(st))));
}
function closeFd(fd: number): Promise<void> {
  return new Promise((res, rej) => fs.close(fd, (e) => (e ? rej(e) : res())));
}
function ftruncateFd(fd: number, len: number): Promise<void> {
  return new Promise((res, rej) => fs.ftruncate(fd, len, (e) => (e ? rej(e) : res())));
}
function futimesFd(fd: number, atimeS: number, mtimeS: number): Promise<void> {
  return new Promise((res, rej) => fs.futimes(fd, atimeS, mtimeS, (e) => (e ? rej(e) : res())));
}
function fchmodFd(fd: number, mode: number): Promise<void> {
  return new Promise((res, rej) => fs.fchmod(fd, mode, (e) => (e ? rej(e) : res())));
}
function readFd(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((res, rej) => fs.read(fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res(n))));
}
