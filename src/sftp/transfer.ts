/**
 * File and tree transfers behind {@link SftpClient.get}, `put`, `getDir`, `putDir` (and the
 * whole-content `readFile`/`writeFile`/`appendFile`): one file
 * copied with the parallel engines (sftp/engine.ts) and `resume`/`preserve`; a directory tree
 * walked (sftp/dir-walk.ts), its directories created inside the target, and its files copied
 * `concurrency` at a time (`p-limit`) with one overall progress and one summary.
 *
 * Options reach these functions already checked (sftp/client.ts validates them before any I/O).
 *
 * @internal
 * @module sftp/transfer
 */
import { constants as bufferConstants } from 'node:buffer';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { SshError } from '../errors.js';
import { abortReason } from '../internal/cancel.js';
import { relBytes, walkTree, type WalkedTree, type WalkLimits } from './dir-walk.js';
import { ProgressReporter, readIntoBuffer, runGet, runPut, writeBuffer, type EngineParams } from './engine.js';
import { appendOffset, asError, DEFAULT_STREAM_CONCURRENCY, CLOSE_TIMEOUT_MS, closeBounded, isStatus, limitError, listLean, localError, mkdirp, runLimited, settleWithin } from './ops.js';
import { SftpStatus } from './errors.js';
import { isConfinedRel, isInsideDir, joinBytes, joinRemote, showName, showPath, toBytes, typeOfMode } from './paths.js';
import {
  hashLocalFiles,
  localTreeSource,
  needsDestination,
  planSync,
  removeLocalEntry,
  removeRemoteEntry,
  type PlannedRemoval,
  type RemoteHasher,
  type SyncSettings,
} from './sync.js';
import type { ExtraSessionPool } from './extra-pool.js';
import { OrderedReader } from './streams.js';
import { DEFAULT_CHANNELS, DEFAULT_CHANNELS_MIN_BYTES, OpenedExtras, PreopenedExtras, STRIPE_MIN_RTT_MS, runStriped, type OpenChannel } from './striped.js';
import { OpenFlags, type SftpSession } from './session.js';
import type { DirFilterEntry, DirTransferSummary, SftpWarning, TransferProgress, TransferResult } from './types.js';
import type { RawAttrs, RemotePath, SetAttrs } from './wire.js';

/** The checked options of one file transfer. */
export interface FilePlan {
  /** Requests in flight (at the start). */
  concurrency: number;
  /** The most requests in flight the engine may grow to (absent: fixed `concurrency`). */
  maxConcurrency?: number | undefined;
  /** Bytes per request (capped by the server's limit), or the server's limit. */
  chunkSize: number | undefined;
  resume: false | 'size' | 'sha256';
  /** Mode mask of `preserve` (0: do not preserve). */
  preserve: number;
  onProgress?: ((progress: TransferProgress) => void) | undefined;
  /** Striping (sftp/striped.ts): sessions at most (default 4), from how many remaining bytes (default 64 MiB), and how to open one more. */
  channels?: number | undefined;
  channelsMinBytes?: number | undefined;
  openChannel?: OpenChannel | undefined;
  /** Extra sessions kept between striped transfers (sftp/extra-pool.ts). */
  pool?: ExtraSessionPool | undefined;
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
  /** `compare`, `delete`, `dryRun` (sftp/sync.ts). */
  sync: SyncSettings;
  /** Hashes remote files for `compare: 'checksum'`. */
  hasher: RemoteHasher;
}

interface FileJob {
  concurrency: number;
  maxConcurrency?: number | undefined;
  chunkSize: number | undefined;
  resume: false | 'size' | 'sha256';
  /** Mode mask of `preserve` (0: do not preserve). */
  preserve: number;
  progress: ProgressReporter;
  signal: AbortSignal;
  /** Give the destination the source's access and modification times (set by `compare`). */
  times?: boolean;
  /**
   * Set by `getDir`: the canonical local root. The local file is then opened with O_NOFOLLOW
   * (a symlink planted at the destination is not followed).
   */
  confined?: boolean;
  /** Striping of one large file (only `get`/`put` set these; see {@link FilePlan}). */
  channels?: number | undefined;
  channelsMinBytes?: number | undefined;
  openChannel?: OpenChannel | undefined;
  pool?: ExtraSessionPool | undefined;
}

/** What differs between {@link SftpClient.getDir} and {@link SftpClient.putDir}. */
interface TreeSide {
  /** Lists the source tree. */
  walk(s: SftpSession, signal: AbortSignal, limits: WalkLimits): Promise<WalkedTree>;
  /** Creates the destination root and `dirs` (relative to it, parents first; latin1, see {@link WalkedTree}). */
  makeDirs(s: SftpSession, signal: AbortSignal, dirs: readonly string[]): Promise<void>;
  /** Copies one file, `rel` relative to both roots. */
  copy(s: SftpSession, rel: Buffer, job: FileJob): Promise<TransferResult>;
  /** Walks the destination tree (`undefined` when the destination directory does not exist). */
  walkDest(s: SftpSession, signal: AbortSignal, limits: WalkLimits): Promise<WalkedTree | undefined>;
  /** SHA-256 of source files and of destination files (`rels` latin1; `undefined`: unreadable). */
  hashSource(s: SftpSession, signal: AbortSignal, rels: readonly string[], sizes: readonly number[]): Promise<(Buffer | undefined)[]>;
  hashDest(s: SftpSession, signal: AbortSignal, rels: readonly string[], sizes: readonly number[]): Promise<(Buffer | undefined)[]>;
  /** Removes one destination entry planned by `delete`. */
  remove(s: SftpSession, signal: AbortSignal, entry: PlannedRemoval): Promise<void>;
}

/** Bytes of the one read past a file's stated size (it must find EOF). */
const PROBE_LEN = 64 * 1024;

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
  // A STAT goes out with the OPEN. Its size (answered with the OPEN, before the FSTAT) lets the
  // reads start a round trip earlier, and, when the copy may be striped, starts the extra
  // channels early. Best effort, never waited for: a STAT not answered by the time the FSTAT is
  // (a server that ignores it, or answers out of order) changes nothing. The FSTAT of the open
  // handle still goes out at once and stays the authority: its attributes are the ones
  // preserved, and a file it finds longer than the STAT did is copied to its end.
  let preopened: PreopenedExtras | undefined;
  // extra sessions kept from an earlier striped transfer: the file's OPEN goes out on them now,
  // next to this one (a small file gives them back)
  let opened: OpenedExtras | undefined;
  let hintClosed = false;
  const endHint = async (): Promise<void> => {
    hintClosed = true;
    const p = preopened;
    const o = opened;
    preopened = undefined;
    opened = undefined;
    void o?.release();
    await p?.discard();
  };
  const rttMs = s.minRttMs;
  const mayLanes = job.resume || job.openChannel === undefined ? 1 : stripeLanes('get', job, rttMs, Number.MAX_SAFE_INTEGER);
  const mayStripe = mayLanes > 1;
  const open = job.openChannel;
  const stated = s.stat(remote, signal).then(
    (a): RawAttrs => {
      const lanes = mayStripe ? stripeLanes('get', job, rttMs, knownSize(a.size)) : 1;
      const more = lanes - 1 - (opened?.size ?? 0) - (job.pool?.available(s.link) ?? 0);
      if (!hintClosed && more > 0 && open !== undefined && !signal?.aborted) preopened = new PreopenedExtras(s.link, open, more, signal);
      return a;
    },
    () => undefined,
  );
  let handle: Buffer;
  try {
    const mine = s.open(remote, OpenFlags.READ, undefined, signal);
    if (mayStripe && job.pool !== undefined && job.pool.available(s.link) > 0) opened = new OpenedExtras(job.pool, s.link, mayLanes - 1, remote, signal);
    handle = await mine;
  } catch (err) {
    await endHint();
    throw err;
  }
  let fd: number | undefined;
  // the CLOSE once sent (never sent twice: the server may give the handle to another OPEN)
  let closed: Promise<void> | undefined;
  const fstated = s.fstat(handle, remote, signal);
  fstated.catch(() => undefined);
  try {
    // whichever answers first: the STAT (sent first) on a server that answers in order
    const first = await Promise.race([stated.then((a) => (a !== undefined && knownSize(a.size) !== undefined ? a : fstated)), fstated]);
    // what the STAT started by now is used; a later answer starts nothing
    hintClosed = true;
    // No size, 0 (a /proc file) or an absurd one: unknown, read until EOF.
    let size = knownSize(first.size) ?? Infinity;
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
    const pre = preopened;
    const ahead = opened;
    preopened = undefined;
    opened = undefined;
    const r = await copyRange('get', s, handle, remote, fd, have, size, s.maxReadLen, job, s.minRttMs, pre, ahead);
    const { start, channels, closing } = r;
    let { endedAt } = r;
    let st: RawAttrs;
    try {
      st = await fstated;
      // the open file is longer than the STAT said (it grew, or the name was replaced between
      // the STAT and the OPEN): the rest, up to what the FSTAT says, on this channel
      const fsize = knownSize(st.size) ?? Infinity;
      if (endedAt === size && fsize > size) {
        size = fsize;
        if (setTotal) job.progress.total = size === Infinity ? 0 : size;
        endedAt = (await runGet(engineParams(s, handle, remote, fd, endedAt, size, s.maxReadLen, job))).endedAt;
      }
    } catch (err) {
      await closing;
      throw err;
    }
    try {
      // every byte is here: the CLOSE goes out now, its round trip overlapping the local work
      // and the closing of a striped copy's extra channels
      closed = s.close(handle, remote, signal);
      closed.catch(() => undefined);
      try {
        // A resumed file is cut only when it was copied again from 0 and the source ended
        // before its old end (a kept prefix makes endedAt >= have): never on a size the server
        // did not state, where the copy continued from what was already there.
        if (job.resume && endedAt < have) await ftruncateFd(fd, endedAt);
        if (job.preserve !== 0 || job.times === true) await futimesFd(fd, st.atime ?? 0, st.mtime ?? 0);
        if (job.preserve !== 0 && st.mode !== undefined) await fchmodFd(fd, st.mode & job.preserve);
        const f = fd;
        fd = undefined;
        await closeFd(f);
      } catch (err) {
        throw localError(err, 'write', local);
      }
      await closed;
    } finally {
      await closing;
    }
    return { transferredBytes: endedAt - start, totalBytes: endedAt, resumedFrom: start, ...(channels === undefined ? {} : { channels }) };
  } catch (err) {
    await endHint();
    if (fd !== undefined) await closeFd(fd).catch(() => undefined);
    if (closed === undefined) await closeBounded(s, handle, signal);
    else await settleWithin(closed, CLOSE_TIMEOUT_MS, signal);
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
  let preopened: PreopenedExtras | undefined;
  try {
    if (!lst.isFile()) throw localError(new Error('not a regular file'), 'read', local);
    const size = lst.size;
    if (setTotal) job.progress.total = size;
    const flags = OpenFlags.WRITE | OpenFlags.CREAT | (job.resume ? 0 : OpenFlags.TRUNC) | (job.resume === 'sha256' ? OpenFlags.READ : 0);
    // A fresh put knows what it will copy before the OPEN: the extra channels of a striped copy
    // open meanwhile, and join a round trip earlier (copyRange takes or closes them).
    const lanes = stripeLanes('put', job, s.minRttMs, size);
    const more = lanes - 1 - (job.pool?.available(s.link) ?? 0);
    if (more > 0 && !job.resume && job.openChannel !== undefined) preopened = new PreopenedExtras(s.link, job.openChannel, more, signal);
    handle = await s.open(remote, flags, job.preserve !== 0 ? { mode: lst.mode & job.preserve } : undefined, signal);
    const remoteSize = job.resume ? ((await s.fstat(handle, remote, signal)).size ?? 0) : 0;
    const pre = preopened;
    preopened = undefined;
    const { start, endedAt, channels, closing } = await copyRange('put', s, handle, remote, fd, remoteSize, size, s.maxWriteLen, job, s.minRttMs, pre);
    try {
      const attrs: SetAttrs = {};
      if (remoteSize > endedAt || endedAt < size) attrs.size = endedAt;
      if (job.preserve !== 0) attrs.mode = lst.mode & job.preserve;
      if (job.preserve !== 0 || job.times === true) {
        attrs.atime = Math.floor(lst.atimeMs / 1000);
        attrs.mtime = Math.floor(lst.mtimeMs / 1000);
      }
      // (while the extra channels of a striped copy close)
      if (Object.keys(attrs).length > 0) await s.fsetstat(handle, remote, attrs, signal);
      const h = handle;
      handle = undefined;
      await s.close(h, remote, signal);
    } finally {
      await closing;
    }
    return { transferredBytes: endedAt - start, totalBytes: endedAt, resumedFrom: start, ...(channels === undefined ? {} : { channels }) };
  } catch (err) {
    await preopened?.discard();
    if (handle) await closeBounded(s, handle, signal);
    throw err;
  } finally {
    await closeFd(fd).catch(() => undefined);
  }
}

/**
 * {@link SftpClient.readFile} once the session is open: with a stated size (FSTAT), that many
 * bytes plus one probe read that must find EOF; without one (or 0), until EOF. Never holds more
 * than `maxBytes`.
 */
export async function readWhole(s: SftpSession, sig: AbortSignal, p: RemotePath, enc: BufferEncoding | undefined, maxBytes: number): Promise<Buffer | string> {
  const tooBig = (n: number | string): SshError =>
    new SshError('ERR_SSH_MAX_BUFFER', `sftp readFile ${JSON.stringify(showPath(p))}: ${n} bytes exceed maxBytes (${maxBytes})`, { retryable: false });
    const handle = await s.open(p, OpenFlags.READ, undefined, sig);
    let ok = false;
    try {
      const st = await s.fstat(handle, p, sig);
      const stated = st.size ?? 0;
      if (stated > Math.min(maxBytes, bufferConstants.MAX_LENGTH)) throw tooBig(Number.isSafeInteger(stated) ? stated : `about ${stated.toExponential(3)}`);
      const parts: Buffer[] = [];
      let pos = 0;
      if (stated > 0) {
        const b = await readIntoBuffer(s, handle, p, 0, stated, DEFAULT_STREAM_CONCURRENCY, sig);
        parts.push(b);
        pos = b.length;
        if (pos === stated) {
          // one probe read past the stated size: it must find EOF
          const more = await readIntoBuffer(s, handle, p, pos, Math.min(PROBE_LEN, s.maxReadLen), 1, sig);
          if (more.length > 0) {
            throw limitError(
              'readFile',
              `the file is longer than the ${stated} bytes the server stated (it grew while read, or the server lies); use get() or createReadStream() to read to EOF`,
              p,
              'protocol',
            );
          }
        }
      } else {
        // no size (absent, or 0 as for /proc files): read to EOF, never past maxBytes
        for (;;) {
          const more = await readIntoBuffer(s, handle, p, pos, Math.min(PROBE_LEN, s.maxReadLen, maxBytes - pos + 1), 1, sig);
          if (more.length === 0) break;
          parts.push(more);
          pos += more.length;
          if (pos > maxBytes) throw tooBig(`more than ${maxBytes}`);
        }
      }
      ok = true;
      const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      return enc === undefined ? out : out.toString(enc);
    } finally {
      if (ok) await s.close(handle, p, sig);
      else s.closeQuietly(handle);
    }
}

/** Writes all of `data` to `p` opened with `flags` (at the end with `at: 'end'`), then sets `mode`. */
export async function writeWhole(
  s: SftpSession,
  p: RemotePath,
  data: Buffer,
  flags: number,
  mode: number | undefined,
  at: 'end' | undefined,
  signal: AbortSignal,
): Promise<void> {
  const handle = await s.open(p, flags, mode === undefined ? undefined : { mode }, signal);
  let ok = false;
  try {
    let offset = 0;
    if (at === 'end') offset = appendOffset((await s.fstat(handle, p, signal)).size, 'appendFile', p);
    await writeBuffer(s, handle, p, data, offset, DEFAULT_STREAM_CONCURRENCY, signal);
    if (mode !== undefined) await s.fsetstat(handle, p, { mode }, signal);
    ok = true;
  } finally {
    if (ok) await s.close(handle, p, signal);
    else await closeBounded(s, handle, signal);
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
    walk: (s, sig, limits) => remoteTree(s, r, sig, limits, 'getDir'),
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
    walkDest: async (_s, _sig, limits) => {
      if (!(await localDirExists(l))) return undefined;
      try {
        return await walkTree(localTreeSource(localBytes, (what) => limitError('getDir', what, l)), limits);
      } catch (err) {
        throw localError(err, 'readdir', l);
      }
    },
    hashSource: (s, sig, rels, sizes) => plan.hasher.hash(s, r, rels, sizes, sig),
    hashDest: (_s, sig, rels) => hashLocalFiles(localBytes, rels, true, sig),
    remove: async (_s, _sig, entry) => {
      try {
        rootReal ??= await fsp.realpath(localBytes, { encoding: 'buffer' });
        await removeLocalEntry(localBytes, rootReal, entry);
      } catch (err) {
        throw localError(err, entry.type === 'directory' ? 'rmdir' : 'unlink', joinBytes(localBytes, relBytes(entry.rel)));
      }
    },
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
        return await walkTree(localTreeSource(localBytes, (what) => limitError('putDir', what, l)), limits);
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
    walkDest: async (s, sig, limits) => {
      try {
        await s.stat(r, sig);
      } catch (err) {
        if (isStatus(err, SftpStatus.NO_SUCH_FILE)) return undefined;
        throw err;
      }
      return await remoteTree(s, r, sig, limits, 'putDir');
    },
    hashSource: (_s, sig, rels) => hashLocalFiles(localBytes, rels, false, sig),
    hashDest: (s, sig, rels, sizes) => plan.hasher.hash(s, r, rels, sizes, sig),
    remove: (s, sig, entry) => removeRemoteEntry(s, r, entry, sig),
  });
}

/** Walks the remote tree at `root` (lean listings; loops told by the canonical path). */
function remoteTree(s: SftpSession, root: RemotePath, sig: AbortSignal, limits: WalkLimits, what: string): Promise<WalkedTree> {
  return walkTree(
    {
      list: async (rel, count) => await listLean(s, rel.length === 0 ? root : joinRemote(root, rel), sig, count),
      identity: async (rel) => {
        // the canonical path; a server that cannot tell is bounded by maxDepth/maxEntries
        const real = await s.realpath(rel.length === 0 ? root : joinRemote(root, rel), sig).catch(() => undefined);
        return real?.toString('latin1');
      },
      limit: (msg) => limitError(what, msg, root),
    },
    limits,
  );
}

/** Whether the local directory `p` exists (`ENOENT`: no; anything else is an error). */
async function localDirExists(p: string | Buffer): Promise<boolean> {
  try {
    await fsp.stat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw localError(err, 'stat', p);
  }
}

/**
 * What {@link SftpClient.getDir} and {@link SftpClient.putDir} share: walks the source tree
 * (and, to compare or delete, the destination tree: see sftp/sync.ts), removes what `delete`
 * planned, creates the destination directories, then copies the files `parallel` at a time
 * with one overall progress and one summary.
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
  const { sync } = plan;
  const warnUnsafe =
    (where: string) =>
    (rel: Buffer, why: string): void => {
      warn({
        reason: 'unsafe-name',
        operation: what,
        path: rel.toString('utf8'),
        rawPath: rel,
        message: `sftp ${what} ${JSON.stringify(showName(toBytes(root)))}: skipped ${JSON.stringify(showName(rel))}${where}: ${why} (a name that could leave the target directory)`,
      });
    };
  const limits: WalkLimits = { maxEntries: plan.maxEntries, maxDepth: plan.maxDepth, filter: plan.filter, onUnsafe: warnUnsafe('') };
  // both trees at once (the destination walk: the same limits and filter; what the filter
  // leaves out is kept); the first error is thrown once both walks have settled
  const walks = await Promise.allSettled([
    side.walk(s, sig, limits),
    needsDestination(sync) ? side.walkDest(s, sig, { ...limits, onUnsafe: warnUnsafe(' in the destination') }) : Promise.resolve(undefined),
  ]);
  for (const w of walks) if (w.status === 'rejected') throw w.reason;
  const tree = (walks[0] as PromiseFulfilledResult<WalkedTree>).value;
  const dest = (walks[1] as PromiseFulfilledResult<WalkedTree | undefined>).value;
  const summary: DirTransferSummary = { copied: [], skipped: tree.skipped, failed: [], transferredBytes: 0, unchanged: [], deleted: [] };
  let files = tree.files;
  let fatal: unknown;
  const fail = (rel: Buffer, err: unknown): void => {
    if (isFatal(err)) fatal ??= err;
    else summary.failed.push({ path: rel.toString('utf8'), error: err as SshError });
  };
  if (needsDestination(sync)) {
    const plan2 = await planSync(tree, dest, sync, async (rels) => {
      const sizeOf = new Map(tree.files.map((f) => [f.rel, f.size]));
      const sizes = rels.map((r) => sizeOf.get(r) ?? 0);
      const [a, b] = await Promise.all([side.hashSource(s, sig, rels, sizes), side.hashDest(s, sig, rels, sizes)]);
      return new Set(rels.filter((_, i) => a[i] !== undefined && b[i] !== undefined && a[i].equals(b[i])));
    });
    files = plan2.copy;
    summary.unchanged = plan2.unchanged.map((r) => relBytes(r).toString('utf8'));
    // non-directories in parallel, then directories deepest first (each empty by its turn)
    const firstDir = plan2.remove.findIndex((e) => e.type === 'directory');
    const flat = firstDir < 0 ? plan2.remove : plan2.remove.slice(0, firstDir);
    const dirs = firstDir < 0 ? [] : plan2.remove.slice(firstDir);
    const removeOne = async (e: PlannedRemoval): Promise<void> => {
      const rel = relBytes(e.rel);
      try {
        if (!sync.dryRun) await side.remove(s, sig, e);
        summary.deleted.push(rel.toString('utf8'));
      } catch (err) {
        fail(rel, err);
      }
    };
    await runLimited(flat, plan.parallel, removeOne, () => fatal !== undefined || sig.aborted);
    for (const d of dirs) {
      if (fatal !== undefined || sig.aborted) break;
      await removeOne(d);
    }
    if (fatal !== undefined) throw asError(fatal);
  }
  if (sync.dryRun) {
    summary.copied = files.map((f) => relBytes(f.rel).toString('utf8'));
    return summary;
  }
  await side.makeDirs(s, sig, tree.dirs);
  const progress = new ProgressReporter(
    files.reduce((a, f) => a + f.size, 0),
    plan.onProgress,
  );
  const job: FileJob = {
    concurrency: plan.perFile,
    chunkSize: undefined,
    resume: plan.resume,
    preserve: plan.preserve,
    progress,
    signal: sig,
    // compare needs the source's mtime on every copy, or the next run copies again
    times: sync.compare !== 'always',
  };
  await runLimited(
    files,
    plan.parallel,
    async (f) => {
      const rel = relBytes(f.rel);
      try {
        const res = await side.copy(s, rel, job);
        summary.copied.push(rel.toString('utf8'));
        summary.transferredBytes += res.transferredBytes;
      } catch (err) {
        fail(rel, err);
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


/**
 * The engine run of {@link SftpClient.get} / {@link SftpClient.put} once both files are open:
 * with `resume`, keeps the `have` bytes already at the destination when they are a prefix of the
 * source (`'size'`: the destination is strictly shorter; `'sha256'`: checked by hashing both,
 * which also accepts an equal-size destination with the same content), then copies
 * `[start, size)` with the engine, striped over several sessions (sftp/striped.ts) when at
 * least `channelsMinBytes` of a known size remain and `channels` > 1 (`channels` in the result
 * then says how many carried it). The default `channels` stripes only when `rttMs` (the
 * session's fastest request round trip, its OPEN and FSTAT of this file included) is at least
 * {@link STRIPE_MIN_RTT_MS} for its direction (get 25 ms, put 5 ms); an explicit one always. After a striped copy, `closing` is the
 * closing of the extra channels, still under way: the caller finishes its own handle meanwhile
 * and must await it (it never rejects) before it settles.
 */
async function copyRange(
  kind: 'get' | 'put',
  s: SftpSession,
  handle: Buffer,
  remote: RemotePath,
  fd: number,
  have: number,
  size: number,
  maxLen: number,
  job: FileJob,
  rttMs: number,
  preopened?: PreopenedExtras,
  opened?: OpenedExtras,
): Promise<{ start: number; endedAt: number; channels?: number; closing?: Promise<void> }> {
  try {
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
    const params = engineParams(s, handle, remote, fd, start, size, maxLen, job);
    const channels = stripeLanes(kind, job, rttMs, Number.isSafeInteger(size) ? size - start : undefined);
    if (channels > 1 && job.openChannel !== undefined) {
      // Every lane adapts like a single-channel run (its own memory bound: up to channels x 8 MiB
      // in flight), and starts each range at the limit its last range ended with. RTT 52 ms, 128
      // MiB get over 4 channels (3 runs, medians): 137.6 MB/s against 113.9 with 16 fixed per lane.
      const r = await runStriped(kind, remote, params, { channels, openChannel: job.openChannel, preopened, pool: job.pool, opened });
      return { start, endedAt: r.endedAt, channels: r.channels, ...(r.closing === undefined ? {} : { closing: r.closing }) };
    }
    const { endedAt } = await (kind === 'get' ? runGet : runPut)(params);
    return { start, endedAt };
  } finally {
    // not handed to a striped copy (one channel after all, or a failure first): closed; the
    // sessions taken ahead are kept again once their file is closed (not waited for: a small
    // file's get does not wait for that round trip)
    void opened?.release();
    await preopened?.discard();
  }
}

/** The engine's parameters for `[start, end)` of `job` on `s`. */
function engineParams(s: SftpSession, handle: Buffer, remote: RemotePath, fd: number, start: number, end: number, maxLen: number, job: FileJob): EngineParams {
  return {
    session: s,
    handle,
    remotePath: remote,
    fd,
    start,
    end,
    chunkSize: Math.min(job.chunkSize ?? Infinity, maxLen),
    concurrency: job.concurrency,
    maxConcurrency: job.maxConcurrency,
    onBytes: (n) => job.progress.add(n),
    signal: job.signal,
  };
}

/**
 * Channels a striped copy of `bytes` (`undefined`: not known) by `job` would use on a link of
 * `rttMs`: `job.channels`, or 4 from {@link STRIPE_MIN_RTT_MS} of its direction; 1 (no
 * striping) without an extra-channel opener, below `channelsMinBytes` or for an unknown size.
 */
function stripeLanes(kind: 'get' | 'put', job: FileJob, rttMs: number, bytes: number | undefined): number {
  if (job.openChannel === undefined || bytes === undefined || !Number.isSafeInteger(bytes)) return 1;
  if (bytes < Math.max(1, job.channelsMinBytes ?? DEFAULT_CHANNELS_MIN_BYTES)) return 1;
  return job.channels ?? (rttMs >= STRIPE_MIN_RTT_MS[kind] ? DEFAULT_CHANNELS : 1);
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
