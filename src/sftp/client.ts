/**
 * `SftpClient`: a complete, fast, resumable SFTP file API on top of one SFTP session per client.
 *
 * Protocol: SFTP version 3 (draft-ietf-secsh-filexfer-02) as OpenSSH's sftp-server speaks it,
 * with the OpenSSH extensions `posix-rename@openssh.com` and `limits@openssh.com` (OpenSSH
 * `PROTOCOL` file, sections 4.3 and 4.8). Transfers follow the approach of OpenSSH's `sftp`
 * (sftp-client.c): many read/write requests in flight on one handle.
 *
 * @module sftp/client
 */
import { constants as bufferConstants } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { EventEmitter } from 'eventemitter3';
import type ssh2 from 'ssh2';
import { SshConfigError, SshError, SshInvalidArgError, mapChannelError } from '../errors.js';
import type { Link, LinkProvider } from '../connection/link.js';
import { abortReason, operationScope, raceSignals } from '../internal/cancel.js';
import { DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES, relBytes, walkTree, type WalkedTree, type WalkEntry, type WalkLimits } from './dir-walk.js';
import { runGet, runPut, readIntoBuffer, writeBuffer, ProgressReporter, type TransferProgress } from './engine.js';
import { SftpStatus, SshSftpError, type SftpErrorReason } from './errors.js';
import { OpenFlags, SftpSession, type RawAttrs, type RemotePath, type SetAttrs, type SftpCounters } from './session.js';
import { OrderedReader, SftpReadStream, SftpWriteStream } from './streams.js';
import {
  RemoteHasher,
  hashLocalFiles,
  localTreeSource,
  needsDestination,
  parseSyncOptions,
  planSync,
  removeLocalEntry,
  removeRemoteEntry,
  walkEntries,
  type PlannedRemoval,
  type RemoteCommand,
  type SftpWalkEntry,
  type SyncCompare,
} from './sync.js';
import {
  baseOf,
  isConfinedRel,
  isInsideDir,
  joinBytes,
  joinRemote,
  parentOf,
  showName,
  showPath,
  toBytes,
  toStats,
  typeOfMode,
  type SftpEntry,
  type SftpEntryType,
  type SftpStats,
} from './paths.js';

export type { RemotePath } from './session.js';
export type { SftpEntry, SftpEntryType, SftpStats } from './paths.js';
export type { TransferProgress } from './engine.js';
export type { RemoteCommand, SftpWalkEntry, SyncCompare } from './sync.js';

/** Options of {@link SftpClient}. */
export interface SftpOptions {
  /**
   * Opens the SFTP channel on a link. Default: `link.client.sftp()` (one session channel).
   * The SshClient facade passes one that goes through its MaxSessions channel limiter.
   * Must reject (never hang) when `signal` aborts.
   */
  openSftp?: (link: Link, signal: AbortSignal) => Promise<ssh2.SFTPWrapper>;
  /**
   * Runs a command on the server over exec and collects its stdout. Used by directory
   * transfers with `compare: 'checksum'` to hash remote files with `sha256sum` /
   * `shasum -a 256` instead of reading them over SFTP. The SshClient facade passes one built on
   * its `exec`; without it, remote files are hashed by reading them.
   */
  remoteCommand?: RemoteCommand | undefined;
}

/** Cancellation options accepted by every operation. */
export interface SftpOperationOptions {
  /** Abort the operation: it rejects with `ERR_SSH_ABORTED` and closes the handles it opened. */
  signal?: AbortSignal | undefined;
  /** Give up after this many milliseconds with `ERR_SSH_TIMEOUT`. Default: no limit. */
  timeoutMs?: number | undefined;
}

/** Options of {@link SftpClient.mkdir}. */
export interface MkdirOptions extends SftpOperationOptions {
  /** Create missing parents and accept an existing directory (`mkdir -p`). Default `false`. */
  recursive?: boolean | undefined;
  /** Permission bits of created directories (e.g. `0o755`; the server's umask applies). */
  mode?: number | undefined;
}

/** Options of {@link SftpClient.rm}. */
export interface RmOptions extends SftpOperationOptions {
  /** Remove directories and their contents (`rm -r`); symlinks are removed, never followed. Default `false`. */
  recursive?: boolean | undefined;
  /** Ignore paths that do not exist (`rm -f`). Default `false`. */
  force?: boolean | undefined;
}

/** Options of {@link SftpClient.rename}. */
export interface RenameOptions extends SftpOperationOptions {
  /**
   * Replace an existing `to`. Uses `posix-rename@openssh.com` (atomic rename(2)) when the server
   * offers it; otherwise removes `to` first (not atomic). Default `false`: plain SFTP rename,
   * which fails (`FAILURE` on OpenSSH) when `to` exists.
   */
  overwrite?: boolean | undefined;
}

/** Options of {@link SftpClient.readFile}. */
export interface ReadFileOptions extends SftpOperationOptions {
  /** Decode the content with this encoding; without it a Buffer is returned. */
  encoding?: BufferEncoding | undefined;
  /**
   * Largest content kept in memory, in bytes. A file whose stated size is larger, or whose
   * content grows past it while read (a size the server did not send, or 0 as for `/proc`
   * files), fails with `ERR_SSH_MAX_BUFFER` before more is read or allocated.
   * @default 1073741824 (1 GiB)
   */
  maxBytes?: number | undefined;
}

/** Options of {@link SftpClient.list}. */
export interface ListOptions extends SftpOperationOptions {
  /**
   * Most names the listing may return, counted as READDIR replies arrive (`.` and `..`
   * included), so a directory that never ends is cut as it streams in. Past it the call fails
   * with `ERR_SSH_SFTP`, `reason: 'limit'`. Lower than a tree walk's default (1,000,000): a
   * listing holds every entry in memory as an object with its name, path and raw bytes (about
   * 1 KiB each), so 1,000,000 would let a hostile server make the client hold about 1 GiB; pass a
   * higher value for a directory known to be that large.
   * @default 100000
   */
  maxEntries?: number | undefined;
  /**
   * Keep only some entries: a function returning `true` for the entries to keep, or a RegExp
   * tested on the entry's name. Default: every entry.
   */
  filter?: ((entry: SftpEntry) => boolean) | RegExp | undefined;
}

/** Options of {@link SftpClient.walk}. */
export interface WalkOptions {
  /**
   * Which entries to yield. A function: `false` skips the entry, and for a directory its whole
   * subtree (it is not entered). A RegExp: tested on the relative path (`path`, e.g.
   * `src/a.ts`); entries that do not match are not yielded, but every directory is still
   * entered (so `/\.ts$/` finds `.ts` files at any depth). Default: every entry.
   */
  filter?: ((entry: SftpWalkEntry) => boolean) | RegExp | undefined;
  /** Stops the walk: the iteration rejects with `ERR_SSH_ABORTED`. */
  signal?: AbortSignal | undefined;
  /**
   * Most names the walk may see (counted as READDIR replies arrive); past it the iteration
   * rejects with `ERR_SSH_SFTP`, `reason: 'limit'`.
   * @default 1000000
   */
  maxEntries?: number | undefined;
  /**
   * Deepest level entered (the directory's own subdirectories are level 1). Past it, or on a
   * directory met twice (same canonical path: a loop), the iteration rejects with
   * `ERR_SSH_SFTP`, `reason: 'limit'`.
   * @default 256
   */
  maxDepth?: number | undefined;
}

/** Default of {@link ListOptions.maxEntries}: one listing's entries are all held in memory. */
const DEFAULT_LIST_MAX_ENTRIES = 100_000;

/**
 * What `preserve` copies. OpenSSH's `sftp`/`scp -p` keep only `mode & 0777` ("perm & 0777" in
 * sftp-client.c), so setuid, setgid and sticky bits chosen by the other side are dropped unless
 * asked for.
 */
export interface PreserveOptions {
  /**
   * `'permissions'` (default): the permission bits only (`mode & 0o777`); `'all'`: also the
   * setuid, setgid and sticky bits (`mode & 0o7777`).
   * @default 'permissions'
   */
  mode?: 'permissions' | 'all' | undefined;
}

/** Options of {@link SftpClient.writeFile}. */
export interface WriteFileOptions extends SftpOperationOptions {
  /** Permission bits of the file (e.g. `0o600`), set explicitly after writing (not subject to umask). */
  mode?: number | undefined;
  /**
   * Write a temporary sibling (`.<name>.tether-<random>.tmp`), then rename it over the target,
   * so readers see the old or the new content, never a part. With `posix-rename@openssh.com`
   * (OpenSSH) the replacement is atomic. Without `mode`, an existing target's mode is kept.
   * Default `false`.
   */
  atomic?: boolean | undefined;
}

/** Options of {@link SftpClient.createReadStream}. */
export interface ReadStreamOptions {
  /** First byte to read. Default 0. */
  start?: number | undefined;
  /** Last byte to read, inclusive (as `fs.createReadStream`). Default: to the end of the file. */
  end?: number | undefined;
  /** Read requests kept in flight. Default 16. */
  concurrency?: number | undefined;
  /** Bytes per read request. Default: the server's max read length (255 KiB on OpenSSH). */
  chunkSize?: number | undefined;
  /** Readable buffer size in bytes. Default 1 MiB. */
  highWaterMark?: number | undefined;
  /** Destroys the stream with `ERR_SSH_ABORTED`. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link SftpClient.createWriteStream}. */
export interface WriteStreamOptions {
  /**
   * `'w'` create or truncate (default), `'wx'` create, failing if it exists, `'a'` append
   * (create if missing), `'r+'` write into an existing file without truncating.
   */
  flags?: 'w' | 'wx' | 'a' | 'r+' | undefined;
  /** Offset of the first write (`'w'`, `'wx'`, `'r+'`). Default 0. */
  start?: number | undefined;
  /** Permission bits for a created file (the server's umask applies). */
  mode?: number | undefined;
  /** Write requests kept in flight. Default 16. */
  concurrency?: number | undefined;
  /** Writable buffer size in bytes. Default 1 MiB. */
  highWaterMark?: number | undefined;
  /** Destroys the stream with `ERR_SSH_ABORTED`. */
  signal?: AbortSignal | undefined;
}

/** How `resume` checks that the destination holds a prefix of the source. */
export interface ResumeOptions {
  /**
   * `'size'` (default): a destination strictly shorter than the source is taken as a prefix and
   * continued; one of the same size (or longer) is copied again in full, since equal sizes do not
   * prove equal content. `'sha256'`: the destination's bytes must hash the same as the source's
   * first bytes (reads them on both sides); an equal-size destination with the same hash is
   * complete and nothing is copied.
   */
  verify?: 'size' | 'sha256' | undefined;
}

/** Options of {@link SftpClient.get} and {@link SftpClient.put}. */
export interface TransferOptions extends SftpOperationOptions {
  /** Requests in flight (each up to `chunkSize`). Default 16: more in flight than the SFTP channel window holds makes downloads slower (measured: 64 x 255 KiB halved get throughput). */
  concurrency?: number | undefined;
  /** Bytes per request. Default (and maximum): the server's max read/write length (255 KiB on OpenSSH). */
  chunkSize?: number | undefined;
  /** Called with progress at most every 100 ms, and once at the end. */
  onProgress?: ((progress: TransferProgress) => void) | undefined;
  /**
   * Continue from what the destination already holds. When the check fails (with `'size'`: the
   * destination is not shorter than the source; with `'sha256'`: longer, or its hash differs)
   * the whole file is copied again, so a complete-looking destination with other content is
   * never reported as copied. Default `false`.
   */
  resume?: boolean | ResumeOptions | undefined;
  /**
   * Copy the source's permission bits and access/modification times to the destination.
   * `true` keeps `mode & 0o777` (setuid, setgid and sticky bits dropped, as OpenSSH's sftp);
   * `{ mode: 'all' }` keeps `mode & 0o7777` (see {@link PreserveOptions}).
   * @default false
   */
  preserve?: boolean | PreserveOptions | undefined;
}

/** Result of {@link SftpClient.get} / {@link SftpClient.put}. */
export interface TransferResult {
  /** Bytes copied by this call. */
  transferredBytes: number;
  /** Size of the destination when done. */
  totalBytes: number;
  /** Offset the copy started at (non-zero when `resume` continued a partial file). */
  resumedFrom: number;
}

/** An entry offered to a directory transfer `filter`. */
export interface DirFilterEntry {
  /** Path relative to the source directory, `/`-separated, decoded as UTF-8. */
  path: string;
  /** Exact bytes of the relative path. */
  rawPath: Buffer;
  type: SftpEntryType;
  size: number;
}

/** Options of {@link SftpClient.getDir} and {@link SftpClient.putDir}. */
export interface DirTransferOptions extends SftpOperationOptions {
  /** Return `false` to skip an entry (a skipped directory is skipped with its contents). */
  filter?: ((entry: DirFilterEntry) => boolean) | undefined;
  /** Files copied in parallel. Default 32: small files are latency-bound (one open, write and close round trip each), so more in parallel is faster (measured: 1,000 files of 1-16 KiB, 2,200 files/s with 8, 3,500-3,700 with 32). */
  concurrency?: number | undefined;
  /** Requests in flight per file. Default 4 (with 32 files in parallel at most 128 requests in flight, as 8 x 16 before). */
  fileConcurrency?: number | undefined;
  /** One overall progress for the whole tree (total: the sum of the file sizes). */
  onProgress?: ((progress: TransferProgress) => void) | undefined;
  /** Per file, as {@link TransferOptions.resume}. */
  resume?: boolean | ResumeOptions | undefined;
  /** Per file, as {@link TransferOptions.preserve} (`true`: `mode & 0o777`). */
  preserve?: boolean | PreserveOptions | undefined;
  /**
   * Most names the walk of the source tree may see, counted as READDIR replies (or local
   * listings) arrive. Past it the call fails with `ERR_SSH_SFTP`, `reason: 'limit'`, before
   * anything is copied.
   * @default 1000000
   */
  maxEntries?: number | undefined;
  /**
   * Deepest directory level the walk may enter (the source's subdirectories are level 1). Past
   * it, or when a directory is met a second time (a loop: same canonical path on the server,
   * same device and inode locally), the call fails with `ERR_SSH_SFTP`, `reason: 'limit'`.
   * @default 256
   */
  maxDepth?: number | undefined;
  /**
   * Which files to copy (rsync's "quick check"):
   * - `'always'` (default): every file.
   * - `'size-mtime'`: skip a file when the destination holds a regular file of the same size and
   *   the same modification time in whole seconds (as `rsync -a`). Copied files get the
   *   source's mtime (and atime), so the next run skips them.
   * - `'checksum'`: skip a file when the destination holds a regular file of the same size
   *   whose SHA-256 matches (as `rsync -c`). Remote files are hashed on the server with
   *   `sha256sum` or `shasum -a 256` over exec when the client has exec (`SshClient.sftp()`),
   *   many files per command; otherwise (or when neither tool is there) by reading them over
   *   SFTP. Copied files get the source's mtime too.
   * Skipped files are listed in the summary's `unchanged`.
   * @default 'always'
   */
  compare?: SyncCompare | undefined;
  /**
   * Remove destination entries the source does not have (as `rsync --delete`): files,
   * symlinks (removed themselves, never followed), special files, and directories with
   * everything below them; also a destination entry whose type differs from the source's
   * (a directory where the source has a file...). Only entries found by walking the
   * destination directory are removed: every path is the destination joined with safe
   * components, symlinks are never entered, and locally each parent must resolve inside the
   * destination. Entries `filter` leaves out are kept (as rsync's excludes). Runs before the
   * copies. Removed paths are listed in `deleted`; a removal that fails is listed in `failed`.
   * @default false
   */
  delete?: boolean | undefined;
  /**
   * Change nothing: walk both trees, compare, and report in the summary what would be copied
   * (`copied`), left alone (`unchanged`) and removed (`deleted`); `transferredBytes` is 0.
   * @default false
   */
  dryRun?: boolean | undefined;
}

/** Summary of {@link SftpClient.getDir} / {@link SftpClient.putDir}. Paths are relative to the source directory. */
export interface DirTransferSummary {
  /** Files copied. */
  copied: string[];
  /**
   * Entries not copied, and why: `'filter'`, `'symlink'`, `'other'` (special files), or
   * `'unsafe-name'`: a name that is not one safe path component (empty, `.`, `..`, holding `/`
   * or NUL, or `\` on Windows), as a hostile server can send to write outside the target
   * (CVE-2019-6111's class; OpenSSH's sftp refuses it as a "suspect path"). Each unsafe name
   * is also reported as a `warning` event ({@link SftpWarning}).
   */
  skipped: { path: string; reason: 'filter' | 'symlink' | 'other' | 'unsafe-name' }[];
  /** Files (or directories) that failed, with the error. */
  failed: { path: string; error: SshError }[];
  /** Bytes copied. */
  transferredBytes: number;
  /** Files not copied because the destination already matched (see {@link DirTransferOptions.compare}). */
  unchanged: string[];
  /** Destination entries removed by {@link DirTransferOptions.delete} (paths relative to the destination directory). */
  deleted: string[];
}

const DEFAULT_CONCURRENCY = 16;
const DEFAULT_STREAM_CONCURRENCY = 16;
const DEFAULT_DIR_CONCURRENCY = 32;
const DEFAULT_DIR_FILE_CONCURRENCY = 4;
const DEFAULT_HWM = 1024 * 1024;
const CLOSE_TIMEOUT_MS = 5_000;
const MAX_DEPTH = 4096;
/** Default of {@link ReadFileOptions.maxBytes}. */
const DEFAULT_READ_MAX_BYTES = 1024 * 1024 * 1024;
/** Bytes of the one read past a file's stated size (it must find EOF). */
const PROBE_LEN = 64 * 1024;

/** A `warning` event of {@link SftpClient}: something the server sent was refused and skipped. */
export interface SftpWarning {
  /** `'unsafe-name'`: a directory entry name that would leave the target (see {@link DirTransferSummary.skipped}). */
  reason: 'unsafe-name';
  /** The operation that met it. */
  operation: 'getDir' | 'putDir' | 'walk';
  /** The path relative to the source directory, decoded as UTF-8 (control characters kept; see `message`). */
  path: string;
  /** Its exact bytes. */
  rawPath: Buffer;
  /** A sentence for a log, with control characters escaped (`\xNN`). */
  message: string;
}

/** The events of {@link SftpClient} (eventemitter3; no `error` event). */
export interface SftpEvents {
  /** A server-sent name was refused (also listed in the summary's `skipped`). */
  warning: [info: SftpWarning];
}

// ---------------------------------------------------------------------------------------------
// validation

function checkInt(field: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new SshConfigError(`${field} must be an integer from ${min} to ${max}, got ${typeof v === 'number' ? v : typeof v}`, { field });
  }
  return v;
}

function checkPath(field: string, p: unknown): RemotePath {
  if ((typeof p === 'string' && p.length > 0) || (Buffer.isBuffer(p) && p.length > 0)) return p;
  throw new SshConfigError(`${field} must be a non-empty string or Buffer`, { field });
}

function checkLocal(field: string, p: unknown): string | Buffer {
  if ((typeof p === 'string' && p.length > 0) || (Buffer.isBuffer(p) && p.length > 0)) return p;
  throw new SshConfigError(`${field} must be a non-empty local path (string or Buffer)`, { field });
}

/** A `filter` option: a function or a RegExp. */
function checkFilter<F extends (...args: never[]) => boolean>(f: F | RegExp | undefined): F | RegExp | undefined {
  if (f === undefined || typeof f === 'function' || f instanceof RegExp) return f;
  throw new SshInvalidArgError('invalid filter: expected a function or a RegExp', { field: 'filter' });
}

/** `re.test(text)` from the start of the text each time (a global RegExp keeps `lastIndex`). */
function testRegExp(re: RegExp, text: string): boolean {
  re.lastIndex = 0;
  return re.test(text);
}

function checkFn(field: string, f: unknown): void {
  if (f !== undefined && typeof f !== 'function') throw new SshConfigError(`${field} must be a function`, { field });
}

function checkOp(o: SftpOperationOptions | undefined): void {
  if (o === undefined) return;
  if (typeof o !== 'object' || o === null) throw new SshConfigError('options must be an object', { field: 'options' });
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new SshConfigError('signal must be an AbortSignal', { field: 'signal' });
  }
  if (o.timeoutMs !== undefined && o.timeoutMs !== Infinity) checkInt('timeoutMs', o.timeoutMs, 1);
}

function resumeMode(r: boolean | ResumeOptions | undefined): false | 'size' | 'sha256' {
  if (r === undefined || r === false) return false;
  if (r === true) return 'size';
  if (typeof r === 'object' && r !== null) {
    if (r.verify === undefined || r.verify === 'size') return 'size';
    if (r.verify === 'sha256') return 'sha256';
  }
  throw new SshConfigError("resume must be a boolean or { verify: 'size' | 'sha256' }", { field: 'resume' });
}

/** The mode mask `preserve` applies: 0 (no preserve), 0o777 (`true`) or 0o7777 (`{ mode: 'all' }`). */
function preserveMask(p: boolean | PreserveOptions | undefined): number {
  if (p === undefined || p === false) return 0;
  if (p === true) return 0o777;
  if (typeof p === 'object' && p !== null && (p.mode === undefined || p.mode === 'permissions' || p.mode === 'all')) {
    return p.mode === 'all' ? 0o7777 : 0o777;
  }
  throw new SshConfigError("preserve must be a boolean or { mode: 'permissions' | 'all' }", { field: 'preserve' });
}

/** A size from the server usable as a byte count, or undefined (absent, 0, or past 2^53: unknown). */
function knownSize(size: number | undefined): number | undefined {
  return size !== undefined && size > 0 && Number.isSafeInteger(size) ? size : undefined;
}

/** The offset to append at from a stated size: absent is 0; past 2^53 the server lies (`reason: 'protocol'`). */
function appendOffset(size: number | undefined, what: string, p: RemotePath): number {
  if (size === undefined) return 0;
  if (!Number.isSafeInteger(size)) throw limitError(what, `the server stated an impossible file size (${size})`, p, 'protocol');
  return size;
}

function limitError(what: string, message: string, path: RemotePath | undefined, reason: SftpErrorReason = 'limit'): SshSftpError {
  return new SshSftpError(`sftp ${what}: ${message}`, { statusCode: SftpStatus.FAILURE, path, reason });
}

function isStatus(err: unknown, code: number): boolean {
  return err instanceof SshSftpError && err.statusCode === code;
}

function localError(err: unknown, what: string, p: string | Buffer): SshError {
  if (err instanceof SshError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new SshError('ERR_SSH_SFTP', `local ${what} ${JSON.stringify(showPath(p))} failed: ${msg}`, { cause: err, retryable: false });
}

function toDate(field: string, v: Date | number): number {
  if (v instanceof Date && !Number.isNaN(v.getTime())) return Math.floor(v.getTime() / 1000);
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.floor(v);
  throw new SshConfigError(`${field} must be a Date or a number of seconds since the epoch`, { field });
}

/** Whether `signal` fired with the caller's deadline (`ERR_SSH_TIMEOUT`). */
function timedOut(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof SshError && signal.reason.code === 'ERR_SSH_TIMEOUT';
}

/**
 * Waits for `p` at most `ms`, and never past the caller's deadline: once `signal` fires with
 * `ERR_SSH_TIMEOUT` (the caller's `timeoutMs`) the wait ends (an abort by the caller's own
 * signal still waits, bounded by `ms`, so that an aborted operation releases what it held
 * before it rejects). Never rejects.
 */
function settleWithin(p: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<void> {
  p.catch(() => undefined);
  if (signal && timedOut(signal)) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => {
      if (signal && timedOut(signal)) done();
    };
    const t = setTimeout(done, ms);
    t.unref?.();
    if (signal && !signal.aborted) signal.addEventListener('abort', onAbort, { once: true });
    p.then(done, done);
  });
}

/** Runs `fn` over `items` with at most `n` at a time; stops starting new ones once `stop()` is true. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>, stop: () => boolean): Promise<void> {
  let i = 0;
  const worker = async (): Promise<void> => {
    while (i < items.length && !stop()) {
      const item = items[i++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

function defaultOpenSftp(link: Link, signal: AbortSignal): Promise<ssh2.SFTPWrapper> {
  return new Promise<ssh2.SFTPWrapper>((resolve, reject) => {
    let done = false;
    const onAbort = (): void => {
      if (done) return;
      done = true;
      reject(abortReason(signal, 'sftp open'));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      link.client.sftp((err, sftp) => {
        signal.removeEventListener('abort', onAbort);
        if (done) {
          // arrived after the caller gave up: close it
          if (!err) sftp.end();
          return;
        }
        done = true;
        if (err) reject(mapChannelError(err));
        else resolve(sftp);
      });
    } catch (err) {
      signal.removeEventListener('abort', onAbort);
      done = true;
      reject(mapChannelError(err));
    }
  });
}

interface FileJob {
  concurrency: number;
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

/**
 * A complete SFTP file API over one SFTP session per client. The session is opened on first use
 * on the current link and opened again on the new link after a reconnect. An operation in flight
 * when the link dies rejects with `ERR_SSH_CONNECTION_LOST`; after {@link SftpClient.close},
 * every call rejects with `ERR_SSH_CLOSED`.
 *
 * Remote paths are strings (sent as UTF-8) or Buffers (sent as the exact bytes; entries from
 * {@link SftpClient.list} carry `rawPath` for names that are not UTF-8).
 *
 * Errors (every method): `ERR_SSH_SFTP` ({@link SshSftpError}, with `status`, `statusCode` and
 * `path`) for a status the server returned; `ERR_SSH_CONFIG` for bad arguments (naming the
 * field); `ERR_SSH_CONNECTION_LOST`; `ERR_SSH_ABORTED`; `ERR_SSH_TIMEOUT`; `ERR_SSH_CLOSED`; and
 * whatever the link provider rejects with while connecting (`ERR_SSH_CONNECT`,
 * `ERR_SSH_AUTH`...). Local file errors in transfers are `ERR_SSH_SFTP` with the local error as
 * `cause` (no `status`: `statusCode` is `FAILURE`). When ssh-tether stops an operation itself
 * because of what a (possibly hostile) server sent, the `ERR_SSH_SFTP` carries a `reason`
 * (`'limit'`, `'unsafe-name'`, `'outside-target'`, `'protocol'`; see {@link SftpErrorReason}).
 *
 * Events (eventemitter3): `warning` ({@link SftpWarning}) for a server name refused by a
 * directory transfer.
 */
export class SftpClient extends EventEmitter<SftpEvents> {
  private readonly provider: LinkProvider;
  private readonly openSftp: (link: Link, signal: AbortSignal) => Promise<ssh2.SFTPWrapper>;
  private live: SftpSession | undefined;
  private pending: Promise<SftpSession> | undefined;
  private closed = false;
  private readonly closeCtl = new AbortController();
  private readonly counters: SftpCounters = { bytesRead: 0, bytesWritten: 0 };
  /** Hashes remote files for `compare: 'checksum'` (exec when given, else SFTP reads). @internal */
  readonly remoteHasher: RemoteHasher;

  /** File content bytes read from and written to the server over this client's SFTP sessions (all links). */
  stats(): { bytesRead: number; bytesWritten: number } {
    return { bytesRead: this.counters.bytesRead, bytesWritten: this.counters.bytesWritten };
  }

  /**
   * Made by {@link SshClient.sftp}; not constructed by users.
   *
   * @param provider - gives the current link (see `src/connection/link.ts`).
   * @param options - `openSftp` to open the SFTP channel (default: `link.client.sftp()`).
   * @internal
   */
  constructor(provider: LinkProvider, options: SftpOptions = {}) {
    super();
    this.provider = provider;
    checkFn('openSftp', options.openSftp);
    this.openSftp = options.openSftp ?? defaultOpenSftp;
    checkFn('remoteCommand', options.remoteCommand);
    this.remoteHasher = new RemoteHasher(options.remoteCommand);
  }

  // -------------------------------------------------------------------------------------------
  // session

  private acquire(signal: AbortSignal): Promise<SftpSession> {
    if (this.closed) return Promise.reject(new SshError('ERR_SSH_CLOSED', 'SFTP client is closed'));
    const live = this.live;
    if (live && !live.dead.aborted) return Promise.resolve(live);
    this.pending ??= this.openSession().finally(() => {
      this.pending = undefined;
    });
    return raceSignals(this.pending, [signal], 'sftp');
  }

  private async openSession(): Promise<SftpSession> {
    const close = this.closeCtl.signal;
    const link = await raceSignals(this.provider.link({ signal: close }), [close], 'sftp');
    const ctl = new AbortController();
    const onAbort = function (this: AbortSignal): void {
      ctl.abort(abortReason(this, 'sftp open'));
    };
    if (link.signal.aborted) ctl.abort(abortReason(link.signal, 'sftp open'));
    else if (close.aborted) ctl.abort(abortReason(close, 'sftp open'));
    link.signal.addEventListener('abort', onAbort, { once: true });
    close.addEventListener('abort', onAbort, { once: true });
    try {
      const wrapper = await raceSignals(this.openSftp(link, ctl.signal), [ctl.signal], 'sftp open');
      const session = new SftpSession(link, wrapper, this.counters);
      if (this.closed) {
        session.kill(new SshError('ERR_SSH_CLOSED', 'SFTP client is closed'));
        throw new SshError('ERR_SSH_CLOSED', 'SFTP client is closed');
      }
      this.live = session;
      session.dead.addEventListener(
        'abort',
        () => {
          if (this.live === session) this.live = undefined;
        },
        { once: true },
      );
      return session;
    } finally {
      link.signal.removeEventListener('abort', onAbort);
      close.removeEventListener('abort', onAbort);
    }
  }

  /** Runs one operation with its cancellation scope and the session. */
  private async op<T>(what: string, options: SftpOperationOptions | undefined, fn: (s: SftpSession, signal: AbortSignal) => Promise<T>): Promise<T> {
    checkOp(options);
    const scope = operationScope(options ?? {}, `sftp ${what}`);
    try {
      const s = await this.acquire(scope.signal);
      return await fn(s, scope.signal);
    } catch (err) {
      // every error leaving the library is an SshError (a RangeError from a hostile size...)
      if (err instanceof SshError) throw err;
      throw new SshSftpError(`sftp ${what} failed: ${err instanceof Error ? err.message : String(err)}`, { statusCode: SftpStatus.FAILURE, cause: err });
    } finally {
      scope.dispose();
    }
  }

  /**
   * Closes the SFTP session. Operations in flight reject with `ERR_SSH_CLOSED`; later calls
   * reject with `ERR_SSH_CLOSED`. Idempotent; does not close the SSH connection.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const reason = new SshError('ERR_SSH_CLOSED', 'SFTP client is closed');
    this.closeCtl.abort(reason);
    this.live?.kill(reason);
    this.live = undefined;
    return Promise.resolve();
  }

  /** `await using sftp = ...` support: same as {@link SftpClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -------------------------------------------------------------------------------------------
  // metadata

  /**
   * Attributes of `path`, following symlinks (SSH_FXP_STAT).
   * @returns `{ type, size, mode, mtime, atime, uid, gid }`.
   * @throws `ERR_SSH_SFTP` (`NO_SUCH_FILE`, `PERMISSION_DENIED`...), and see the class errors.
   */
  async stat(path: RemotePath, options?: SftpOperationOptions): Promise<SftpStats> {
    const p = checkPath('path', path);
    return await this.op('stat', options, async (s, sig) => toStats(await s.stat(p, sig)));
  }

  /** Attributes of `path` itself, not following a final symlink (SSH_FXP_LSTAT). Errors as {@link SftpClient.stat}. */
  async lstat(path: RemotePath, options?: SftpOperationOptions): Promise<SftpStats> {
    const p = checkPath('path', path);
    return await this.op('lstat', options, async (s, sig) => toStats(await s.lstat(p, sig)));
  }

  /**
   * Whether `path` exists (`lstat`, so a dangling symlink exists). Resolves `false` only for
   * `NO_SUCH_FILE`; any other error (e.g. `PERMISSION_DENIED`) rejects.
   */
  async exists(path: RemotePath, options?: SftpOperationOptions): Promise<boolean> {
    const p = checkPath('path', path);
    return await this.op('exists', options, async (s, sig) => {
      try {
        await s.lstat(p, sig);
        return true;
      } catch (err) {
        if (isStatus(err, SftpStatus.NO_SUCH_FILE)) return false;
        throw err;
      }
    });
  }

  /**
   * Lists a directory (SSH_FXP_OPENDIR/READDIR), without `.` and `..`. Entry types come from
   * the server's `lstat` view: symlinks are `'symlink'`. Names are returned as the server sent
   * them (they may hold `/` or `..` on a hostile server: `getDir` refuses such names, a caller
   * building local paths from `name` should check them too).
   * `filter` keeps only some entries (a function, or a RegExp tested on the name).
   * @returns entries `{ name, path, rawName, rawPath, type, size, mode, mtime, atime, uid, gid }`.
   * @throws `ERR_SSH_SFTP` with `reason: 'limit'` past {@link ListOptions.maxEntries}; and see the class errors.
   * @example
   * ```ts
   * const logs = await sftp.list('/var/log/app', { filter: /\.log$/ });
   * const big = await sftp.list('/srv/data', { filter: (e) => e.type === 'file' && e.size > 1e9 });
   * ```
   */
  async list(dir: RemotePath, options?: ListOptions): Promise<SftpEntry[]> {
    const d = checkPath('dir', dir);
    const max = checkInt('maxEntries', options?.maxEntries, 1) ?? DEFAULT_LIST_MAX_ENTRIES;
    const filter = checkFilter(options?.filter);
    return await this.op('list', options, async (s, sig) => {
      const all = await this.listWith(s, d, sig, this.counter('list', d, max));
      if (filter === undefined) return all;
      return all.filter((e) => (typeof filter === 'function' ? filter(e) : testRegExp(filter, e.name)));
    });
  }

  /**
   * Walks the tree below `dir` breadth first, one directory listing at a time (SSH_FXP_OPENDIR /
   * READDIR), yielding every entry with its path relative to `dir`. Symlinks are yielded as
   * `'symlink'` entries and never followed, so the walk never leaves `dir` through one. Names
   * that are not one safe path component (empty, `.`, `..`, holding `/` or NUL: a hostile
   * server's) are skipped and reported as a `warning` event (`operation: 'walk'`). Breaking out
   * of the loop stops the walk (no handle stays open between listings).
   *
   * @param dir - the directory to walk.
   * @param options - `filter`, `signal`, `maxEntries` (default 1,000,000 names), `maxDepth`
   *   (default 256 levels); see {@link WalkOptions}.
   * @returns an async iterable of {@link SftpWalkEntry} (`path` relative to `dir`, `fullPath`,
   *   `depth`, and the stats of {@link SftpEntry}).
   * @throws (from the iteration) `ERR_SSH_SFTP` with `reason: 'limit'` past `maxEntries`,
   *   deeper than `maxDepth`, or on a directory loop; `ERR_SSH_ABORTED` when `signal` aborts;
   *   `ERR_SSH_INVALID_ARG` / `ERR_SSH_CONFIG` for bad options (on the first iteration); and
   *   see the class errors.
   * @example
   * ```ts
   * let bytes = 0;
   * for await (const e of sftp.walk('/srv/app', { filter: /\.js$/ })) {
   *   if (e.type === 'file') bytes += e.size;
   * }
   * // skip whole subtrees with a function filter
   * for await (const e of sftp.walk('/srv/app', { filter: (e) => e.name !== 'node_modules' })) console.log(e.path);
   * ```
   */
  async *walk(dir: RemotePath, options?: WalkOptions): AsyncGenerator<SftpWalkEntry, void, undefined> {
    const d = checkPath('dir', dir);
    const filter = checkFilter(options?.filter);
    const maxEntries = checkInt('maxEntries', options?.maxEntries, 1) ?? DEFAULT_MAX_ENTRIES;
    const maxDepth = checkInt('maxDepth', options?.maxDepth, 0) ?? DEFAULT_MAX_DEPTH;
    const signal = options?.signal;
    checkOp({ signal });
    yield* walkEntries(
      d,
      { filter, maxEntries, maxDepth },
      {
        list: (abs, count) =>
          this.op('walk', { signal }, async (s, sig) => {
            const [entries, real] = await Promise.all([this.listWith(s, abs, sig, count), s.realpath(abs, sig).catch(() => undefined)]);
            return { entries, identity: real?.toString('latin1') };
          }),
        limit: (what) => limitError('walk', what, d),
        onUnsafe: (rel, why) => {
          this.emit('warning', {
            reason: 'unsafe-name',
            operation: 'walk',
            path: rel.toString('utf8'),
            rawPath: rel,
            message: `sftp walk ${JSON.stringify(showName(toBytes(d)))}: skipped ${JSON.stringify(showName(rel))}: ${why} (a name that could leave the walked directory)`,
          });
        },
      },
    );
  }

  /** A name counter for one listing or walk: throws `reason: 'limit'` once more than `max` names arrived. */
  private counter(what: string, path: RemotePath, max: number): (n: number) => void {
    let seen = 0;
    return (n) => {
      seen += n;
      if (seen > max) throw limitError(what, `more than maxEntries (${max}) entries`, path);
    };
  }

  /** Lists `dir`; `count(n)` is called as each READDIR reply of `n` names arrives (it may throw to stop). */
  private async listWith(s: SftpSession, dir: RemotePath, signal: AbortSignal, count: (n: number) => void): Promise<SftpEntry[]> {
    const out: SftpEntry[] = [];
    const dirBytes = toBytes(dir);
    await this.readDir(s, dir, signal, count, (nm, attrs) => {
      const rawPath = joinBytes(dirBytes, nm);
      out.push({ ...toStats(attrs), name: nm.toString('utf8'), path: rawPath.toString('utf8'), rawName: nm, rawPath });
    });
    return out;
  }

  /** Lists `dir` for a walk: only what the walk needs (name, type, size), no per-entry objects beyond that. */
  private async listLean(s: SftpSession, dir: RemotePath, signal: AbortSignal, count: (n: number) => void): Promise<WalkEntry[]> {
    const out: WalkEntry[] = [];
    await this.readDir(s, dir, signal, count, (rawName, attrs) => {
      out.push({ rawName, type: typeOfMode(attrs.mode), size: attrs.size ?? 0, mtime: attrs.mtime });
    });
    return out;
  }

  /**
   * OPENDIR, READDIR until EOF, CLOSE; `each` gets every name but `.` and `..`. `count(n)` is
   * called as each reply of `n` names arrives (at least 1 per reply, so endless empty replies
   * count too); it throws to stop, and the handle is then closed without waiting.
   */
  private async readDir(
    s: SftpSession,
    dir: RemotePath,
    signal: AbortSignal,
    count: (n: number) => void,
    each: (name: Buffer, attrs: RawAttrs) => void,
  ): Promise<void> {
    const handle = await s.opendir(dir, signal);
    let failed = true;
    try {
      for (;;) {
        const names = await s.readdir(handle, dir, signal);
        if (!names) break;
        count(Math.max(1, names.length));
        for (const n of names) {
          const nm = n.filename;
          if ((nm.length === 1 && nm[0] === 0x2e) || (nm.length === 2 && nm[0] === 0x2e && nm[1] === 0x2e)) continue;
          each(nm, n.attrs);
        }
      }
      failed = false;
    } finally {
      if (failed) s.closeQuietly(handle);
      else await s.close(handle, dir, signal);
    }
  }

  /**
   * Creates a directory (SSH_FXP_MKDIR). With `recursive`, creates missing parents and succeeds
   * when the directory exists (fails with `FAILURE` when a non-directory is in the way).
   */
  async mkdir(path: RemotePath, options?: MkdirOptions): Promise<void> {
    const p = checkPath('path', path);
    const mode = checkInt('mode', options?.mode, 0, 0o7777);
    const recursive = options?.recursive === true;
    return await this.op('mkdir', options, async (s, sig) => {
      if (recursive) await this.mkdirp(s, p, mode, sig, 0);
      else await s.mkdir(p, mode === undefined ? undefined : { mode }, sig);
    });
  }

  private async mkdirp(s: SftpSession, p: RemotePath, mode: number | undefined, signal: AbortSignal, depth: number): Promise<void> {
    const attrs = mode === undefined ? undefined : { mode };
    try {
      await s.mkdir(p, attrs, signal);
      return;
    } catch (err) {
      if (!(err instanceof SshSftpError)) throw err;
      const st = await s.stat(p, signal).catch(() => undefined);
      if (st) {
        if (typeOfMode(st.mode) === 'directory') return;
        throw new SshSftpError(`sftp mkdir ${JSON.stringify(showPath(p))} failed: exists and is not a directory`, {
          statusCode: SftpStatus.FAILURE,
          path: p,
          cause: err,
        });
      }
      if (err.statusCode !== SftpStatus.NO_SUCH_FILE) throw err;
      const parent = parentOf(p);
      if (toBytes(parent).equals(toBytes(p)) || depth >= MAX_DEPTH) throw err;
      await this.mkdirp(s, parent, mode, signal, depth + 1);
      try {
        await s.mkdir(p, attrs, signal);
      } catch (err2) {
        const st2 = await s.stat(p, signal).catch(() => undefined);
        if (!st2 || typeOfMode(st2.mode) !== 'directory') throw err2;
      }
    }
  }

  /** Removes an empty directory (SSH_FXP_RMDIR; a non-empty one fails with `FAILURE` on OpenSSH). */
  async rmdir(path: RemotePath, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    return await this.op('rmdir', options, (s, sig) => s.rmdir(p, sig));
  }

  /** Removes a file or symlink (SSH_FXP_REMOVE). */
  async unlink(path: RemotePath, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    return await this.op('unlink', options, (s, sig) => s.remove(p, sig));
  }

  /**
   * Removes a file, symlink or (with `recursive`) a directory tree. Symlinks inside the tree are
   * removed themselves, never followed. With `force`, a missing path is not an error. Without
   * `recursive`, a directory fails with `ERR_SSH_SFTP` status `FAILURE`.
   */
  async rm(path: RemotePath, options?: RmOptions): Promise<void> {
    const p = checkPath('path', path);
    const recursive = options?.recursive === true;
    const force = options?.force === true;
    return await this.op('rm', options, async (s, sig) => {
      let st;
      try {
        st = await s.lstat(p, sig);
      } catch (err) {
        if (force && isStatus(err, SftpStatus.NO_SUCH_FILE)) return;
        throw err;
      }
      if (typeOfMode(st.mode) !== 'directory') {
        await this.tolerate(s.remove(p, sig), force);
        return;
      }
      if (!recursive) {
        throw new SshSftpError(`sftp rm ${JSON.stringify(showPath(p))}: is a directory (pass { recursive: true })`, {
          statusCode: SftpStatus.FAILURE,
          path: p,
        });
      }
      await this.rmTree(s, p, force, sig, 0, this.counter('rm', p, DEFAULT_MAX_ENTRIES));
    });
  }

  private async tolerate(p: Promise<void>, force: boolean): Promise<void> {
    try {
      await p;
    } catch (err) {
      if (!(force && isStatus(err, SftpStatus.NO_SUCH_FILE))) throw err;
    }
  }

  private async rmTree(s: SftpSession, dir: RemotePath, force: boolean, signal: AbortSignal, depth: number, count: (n: number) => void): Promise<void> {
    if (depth >= DEFAULT_MAX_DEPTH) throw limitError('rm', `deeper than ${DEFAULT_MAX_DEPTH} levels`, dir);
    let entries: SftpEntry[];
    try {
      entries = await this.listWith(s, dir, signal, count);
    } catch (err) {
      if (force && isStatus(err, SftpStatus.NO_SUCH_FILE)) return;
      throw err;
    }
    let firstErr: unknown;
    await pool(
      entries,
      8,
      async (e) => {
        try {
          if (e.type === 'directory') await this.rmTree(s, e.rawPath, force, signal, depth + 1, count);
          else await this.tolerate(s.remove(e.rawPath, signal), force);
        } catch (err) {
          firstErr ??= err;
        }
      },
      () => firstErr !== undefined,
    );
    if (firstErr !== undefined) throw asError(firstErr);
    await this.tolerate(s.rmdir(dir, signal), force);
  }

  /**
   * Renames `from` to `to`. See {@link RenameOptions.overwrite} for replacing an existing target
   * (`posix-rename@openssh.com`, OpenSSH PROTOCOL section 4.3).
   */
  async rename(from: RemotePath, to: RemotePath, options?: RenameOptions): Promise<void> {
    const f = checkPath('from', from);
    const t = checkPath('to', to);
    const overwrite = options?.overwrite === true;
    return await this.op('rename', options, (s, sig) => this.renameWith(s, f, t, overwrite, sig));
  }

  private async renameWith(s: SftpSession, from: RemotePath, to: RemotePath, overwrite: boolean, signal: AbortSignal): Promise<void> {
    if (!overwrite) return s.rename(from, to, signal);
    if (s.hasPosixRename) return s.posixRename(from, to, signal);
    try {
      await s.rename(from, to, signal);
    } catch (err) {
      if (!isStatus(err, SftpStatus.FAILURE)) throw err;
      await s.remove(to, signal);
      await s.rename(from, to, signal);
    }
  }

  /** Sets permission bits (SSH_FXP_SETSTAT), e.g. `0o644`. */
  async chmod(path: RemotePath, mode: number, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    const m = checkInt('mode', mode, 0, 0o7777)!;
    return await this.op('chmod', options, (s, sig) => s.setstat(p, { mode: m }, sig));
  }

  /** Sets the owner user and group ids (SSH_FXP_SETSTAT; usually needs privileges on the server). */
  async chown(path: RemotePath, uid: number, gid: number, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    const u = checkInt('uid', uid, 0, 0xffffffff)!;
    const g = checkInt('gid', gid, 0, 0xffffffff)!;
    return await this.op('chown', options, (s, sig) => s.setstat(p, { uid: u, gid: g }, sig));
  }

  /**
   * Sets access and modification times (SSH_FXP_SETSTAT). Numbers are seconds since the epoch
   * (as `fs.utimes`); SFTP v3 keeps whole seconds.
   */
  async utimes(path: RemotePath, atime: Date | number, mtime: Date | number, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    const a = toDate('atime', atime);
    const m = toDate('mtime', mtime);
    return await this.op('utimes', options, (s, sig) => s.setstat(p, { atime: a, mtime: m }, sig));
  }

  /** Creates a symlink at `linkPath` pointing to `target` (SSH_FXP_SYMLINK). */
  async symlink(target: RemotePath, linkPath: RemotePath, options?: SftpOperationOptions): Promise<void> {
    const t = checkPath('target', target);
    const l = checkPath('linkPath', linkPath);
    return await this.op('symlink', options, (s, sig) => s.symlink(t, l, sig));
  }

  /** The target of a symlink (SSH_FXP_READLINK), decoded as UTF-8. */
  async readlink(path: RemotePath, options?: SftpOperationOptions): Promise<string> {
    const p = checkPath('path', path);
    return await this.op('readlink', options, async (s, sig) => (await s.readlink(p, sig)).toString('utf8'));
  }

  /** The canonical absolute path (SSH_FXP_REALPATH; `'.'` gives the login directory), decoded as UTF-8. */
  async realpath(path: RemotePath, options?: SftpOperationOptions): Promise<string> {
    const p = checkPath('path', path);
    return await this.op('realpath', options, async (s, sig) => (await s.realpath(p, sig)).toString('utf8'));
  }

  // -------------------------------------------------------------------------------------------
  // content

  /**
   * Reads a whole file with parallel requests. Resolves with a Buffer, or a string when
   * `encoding` is given.
   *
   * With a stated size (FSTAT), reads at most that many bytes plus one probe read (up to 64 KiB)
   * that must find EOF. When the server sends no size, or 0 (`/proc` files on OpenSSH), reads
   * until EOF, one read (up to 64 KiB) at a time. Never holds more than `maxBytes`.
   *
   * @throws `ERR_SSH_MAX_BUFFER` when the stated size, or the content read so far, exceeds
   *   {@link ReadFileOptions.maxBytes} (default 1 GiB; checked before allocating, so an absurd
   *   size such as 2^64-1 fails at once); `ERR_SSH_SFTP` with `reason: 'protocol'` when the
   *   probe finds data past the stated size (the file is longer than the server said: it grew
   *   while read, or the server lies; `get` or `createReadStream` read to EOF), or a READ reply
   *   holds more data than asked for; and see the class errors.
   */
  readFile(path: RemotePath, options: ReadFileOptions & { encoding: BufferEncoding }): Promise<string>;
  readFile(path: RemotePath, options?: ReadFileOptions): Promise<Buffer>;
  async readFile(path: RemotePath, options?: ReadFileOptions): Promise<Buffer | string> {
    const p = checkPath('path', path);
    const enc = options?.encoding;
    if (enc !== undefined && !Buffer.isEncoding(enc)) throw new SshConfigError('encoding must be a Buffer encoding', { field: 'encoding' });
    const maxBytes = checkInt('maxBytes', options?.maxBytes, 0) ?? DEFAULT_READ_MAX_BYTES;
    const tooBig = (n: number | string): SshError =>
      new SshError('ERR_SSH_MAX_BUFFER', `sftp readFile ${JSON.stringify(showPath(p))}: ${n} bytes exceed maxBytes (${maxBytes})`, { retryable: false });
    return await this.op('readFile', options, async (s, sig) => {
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
    });
  }

  /**
   * Writes `data` to a file (created or truncated) with parallel requests; see
   * {@link WriteFileOptions.atomic}. Resolves only after every write was acknowledged and the
   * handle closed. On failure with `atomic`, the temporary file is removed and the target is
   * untouched.
   */
  async writeFile(path: RemotePath, data: string | Uint8Array, options?: WriteFileOptions): Promise<void> {
    const p = checkPath('path', path);
    const buf = toBuffer(data);
    const mode = checkInt('mode', options?.mode, 0, 0o7777);
    const atomic = options?.atomic === true;
    return await this.op('writeFile', options, async (s, sig) => {
      if (!atomic) {
        await this.writeWhole(s, p, buf, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.TRUNC, mode, undefined, sig);
        return;
      }
      let keepMode = mode;
      if (keepMode === undefined) {
        const st = await s.stat(p, sig).catch(() => undefined);
        if (st?.mode !== undefined) keepMode = st.mode & 0o7777;
      }
      const tmp = joinRemote(parentOf(p), Buffer.concat([Buffer.from('.'), baseOf(p), Buffer.from(`.tether-${randomBytes(6).toString('hex')}.tmp`)]));
      try {
        await this.writeWhole(s, tmp, buf, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL, keepMode, undefined, sig);
        await this.renameWith(s, tmp, p, true, sig);
      } catch (err) {
        if (s.alive) await settleWithin(s.remove(tmp), CLOSE_TIMEOUT_MS, sig);
        throw err;
      }
    });
  }

  /** Appends `data` to a file (created when missing). */
  async appendFile(path: RemotePath, data: string | Uint8Array, options?: Omit<WriteFileOptions, 'atomic'>): Promise<void> {
    const p = checkPath('path', path);
    const buf = toBuffer(data);
    const mode = checkInt('mode', options?.mode, 0, 0o7777);
    return await this.op('appendFile', options, (s, sig) =>
      this.writeWhole(s, p, buf, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.APPEND, mode, 'end', sig),
    );
  }

  private async writeWhole(
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
      else await this.closeBounded(s, handle, signal);
    }
  }

  /**
   * Closes `handle` after a failure, waiting for the reply at most 5 s and never past the
   * caller's `timeoutMs` (the CLOSE is still sent; `signal` is the operation's scope).
   */
  private closeBounded(s: SftpSession, handle: Buffer, signal?: AbortSignal): Promise<void> {
    if (!s.alive) return Promise.resolve();
    return settleWithin(s.close(handle, undefined), CLOSE_TIMEOUT_MS, signal);
  }

  // -------------------------------------------------------------------------------------------
  // streams

  /**
   * A Readable of a remote file keeping `concurrency` reads in flight, each up to the server's
   * max read length. Errors (see the class) are emitted as 'error'; the handle is closed when
   * the stream ends or is destroyed.
   */
  createReadStream(path: RemotePath, options: ReadStreamOptions = {}): Readable {
    const p = checkPath('path', path);
    const start = checkInt('start', options.start, 0) ?? 0;
    const endIncl = checkInt('end', options.end, 0);
    const concurrency = checkInt('concurrency', options.concurrency, 1, 1024) ?? DEFAULT_STREAM_CONCURRENCY;
    const chunkSize = checkInt('chunkSize', options.chunkSize, 1);
    const highWaterMark = checkInt('highWaterMark', options.highWaterMark, 1) ?? DEFAULT_HWM;
    checkOp({ signal: options.signal });
    const signal = options.signal;
    const holder: { s?: SftpSession } = {};
    const stream = new SftpReadStream({
      get session(): SftpSession {
        return holder.s!;
      },
      path: p,
      open: async () => {
        const scope = operationScope({ signal }, 'sftp createReadStream');
        try {
          const s = await this.acquire(scope.signal);
          holder.s = s;
          const handle = await s.open(p, OpenFlags.READ, undefined, scope.signal);
          try {
            const st = await s.fstat(handle, p, scope.signal);
            return { handle, size: st.size ?? Infinity };
          } catch (err) {
            s.closeQuietly(handle);
            throw err;
          }
        } finally {
          scope.dispose();
        }
      },
      start,
      end: endIncl === undefined ? Infinity : endIncl + 1,
      get chunkSize(): number {
        return Math.min(chunkSize ?? Infinity, holder.s?.maxReadLen ?? 32 * 1024);
      },
      concurrency,
      highWaterMark,
      signal,
    });
    return stream;
  }

  /**
   * A Writable to a remote file keeping `concurrency` writes in flight. 'finish' is emitted only
   * after every write was acknowledged and the handle closed; errors are emitted as 'error'.
   */
  createWriteStream(path: RemotePath, options: WriteStreamOptions = {}): Writable {
    const p = checkPath('path', path);
    const flags = options.flags ?? 'w';
    if (!['w', 'wx', 'a', 'r+'].includes(flags)) throw new SshConfigError("flags must be 'w', 'wx', 'a' or 'r+'", { field: 'flags' });
    const start = checkInt('start', options.start, 0) ?? 0;
    const mode = checkInt('mode', options.mode, 0, 0o7777);
    const concurrency = checkInt('concurrency', options.concurrency, 1, 1024) ?? DEFAULT_STREAM_CONCURRENCY;
    const highWaterMark = checkInt('highWaterMark', options.highWaterMark, 1) ?? DEFAULT_HWM;
    checkOp({ signal: options.signal });
    const signal = options.signal;
    const holder: { s?: SftpSession } = {};
    const pflags = {
      w: OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.TRUNC,
      wx: OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL,
      a: OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.APPEND,
      'r+': OpenFlags.READ | OpenFlags.WRITE,
    }[flags];
    return new SftpWriteStream({
      get session(): SftpSession {
        return holder.s!;
      },
      path: p,
      open: async () => {
        const scope = operationScope({ signal }, 'sftp createWriteStream');
        try {
          const s = await this.acquire(scope.signal);
          holder.s = s;
          const handle = await s.open(p, pflags, mode === undefined ? undefined : { mode }, scope.signal);
          if (flags !== 'a') return { handle, start };
          try {
            const st = await s.fstat(handle, p, scope.signal);
            return { handle, start: appendOffset(st.size, 'createWriteStream', p) };
          } catch (err) {
            s.closeQuietly(handle);
            throw err;
          }
        } finally {
          scope.dispose();
        }
      },
      concurrency,
      highWaterMark,
      signal,
    });
  }

  // -------------------------------------------------------------------------------------------
  // transfers

  private fileJob(options: TransferOptions | undefined, progress: ProgressReporter, signal: AbortSignal): FileJob {
    return {
      concurrency: checkInt('concurrency', options?.concurrency, 1, 1024) ?? DEFAULT_CONCURRENCY,
      chunkSize: checkInt('chunkSize', options?.chunkSize, 1),
      resume: resumeMode(options?.resume),
      preserve: preserveMask(options?.preserve),
      progress,
      signal,
    };
  }

  /**
   * Downloads `remotePath` to `localPath` with `concurrency` parallel reads of `chunkSize`,
   * written to the local file with positional writes. Resolves once every byte is written and
   * both files are closed. On failure or abort the local file is left as far as it got (so that
   * `resume` can continue it) and the remote handle is closed before the promise rejects (the
   * CLOSE reply is awaited at most 5 s, and not past the caller's `timeoutMs`: with a server that
   * never answers CLOSE, a timeout rejects on time and the CLOSE stays sent).
   * @returns `{ transferredBytes, totalBytes, resumedFrom }`.
   */
  async get(remotePath: RemotePath, localPath: string | Buffer, options?: TransferOptions): Promise<TransferResult> {
    const r = checkPath('remotePath', remotePath);
    const l = checkLocal('localPath', localPath);
    checkFn('onProgress', options?.onProgress);
    return await this.op('get', options, async (s, sig) => {
      const progress = new ProgressReporter(0, options?.onProgress);
      const res = await this.getFile(s, r, l, this.fileJob(options, progress, sig), true);
      progress.final();
      return res;
    });
  }

  private async getFile(s: SftpSession, remote: RemotePath, local: string | Buffer, job: FileJob, setTotal: boolean): Promise<TransferResult> {
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
        if (job.preserve !== 0 || job.times === true) await futimesFd(fd, st.atime ?? 0, st.mtime ?? 0);
        if (job.preserve !== 0 && st.mode !== undefined) await fchmodFd(fd, st.mode & job.preserve);
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
      await this.closeBounded(s, handle, signal);
      throw err;
    }
  }

  /**
   * Uploads `localPath` to `remotePath` with `concurrency` parallel writes of `chunkSize`.
   * Resolves only after every write was acknowledged and the remote handle closed without error,
   * so a partially written file is never reported complete. On failure or abort the remote
   * handle is closed before the promise rejects (bounded as in {@link SftpClient.get}; the remote file keeps what was written, for
   * `resume`).
   * @returns `{ transferredBytes, totalBytes, resumedFrom }`.
   */
  async put(localPath: string | Buffer, remotePath: RemotePath, options?: TransferOptions): Promise<TransferResult> {
    const l = checkLocal('localPath', localPath);
    const r = checkPath('remotePath', remotePath);
    checkFn('onProgress', options?.onProgress);
    return await this.op('put', options, async (s, sig) => {
      const progress = new ProgressReporter(0, options?.onProgress);
      const res = await this.putFile(s, l, r, this.fileJob(options, progress, sig), true);
      progress.final();
      return res;
    });
  }

  private async putFile(s: SftpSession, local: string | Buffer, remote: RemotePath, job: FileJob, setTotal: boolean): Promise<TransferResult> {
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
      if (job.preserve !== 0) attrs.mode = lst.mode & job.preserve;
      if (job.preserve !== 0 || job.times === true) {
        attrs.atime = Math.floor(lst.atimeMs / 1000);
        attrs.mtime = Math.floor(lst.mtimeMs / 1000);
      }
      if (Object.keys(attrs).length > 0) await s.fsetstat(handle, remote, attrs, signal);
      const h = handle;
      handle = undefined;
      await s.close(h, remote, signal);
      return { transferredBytes: endedAt - start, totalBytes: endedAt, resumedFrom: start };
    } catch (err) {
      if (handle) await this.closeBounded(s, handle, signal);
      throw err;
    } finally {
      await closeFd(fd).catch(() => undefined);
    }
  }

  /**
   * Downloads a remote directory tree into `localDir` (created as needed): `concurrency` files
   * in parallel, one overall progress. Symlinks and special files are skipped (listed in
   * `skipped`). A file that fails is listed in `failed` and the others continue; losing the
   * connection, abort or timeout rejects the whole call.
   *
   * The server's names are confined to `localDir` (CVE-2019-6111's class of attacks): a READDIR
   * name that is not one safe path component (empty, `.`, `..`, holding `/` or NUL; `\` on
   * Windows) is never used: it is listed in `skipped` with reason `'unsafe-name'` and reported
   * as a `warning` event, as OpenSSH's sftp refuses a "suspect path". As a second line of
   * defence every local path is checked before anything is created: its relative part must be
   * made of safe components, each directory is created one level at a time and must resolve
   * (`realpath`) inside `localDir` (a symlink planted in the target is not followed), and files
   * are opened with `O_NOFOLLOW`.
   *
   * Sync (rsync's quick check, nothing needed on the server but SFTP, and exec for
   * `'checksum'`): `compare: 'size-mtime'` or `'checksum'` copies only the files that differ
   * (the others are listed in `unchanged`), `delete: true` removes local entries the remote
   * tree does not have (listed in `deleted`; symlinks removed, never followed; each parent
   * checked to resolve inside `localDir`), `dryRun: true` reports without changing anything.
   * See {@link DirTransferOptions.compare}.
   *
   * @returns `{ copied, skipped, failed, transferredBytes, unchanged, deleted }`.
   * @throws `ERR_SSH_SFTP` with `reason: 'limit'` past `maxEntries`/`maxDepth` or on a directory
   *   loop (nothing is copied then); `reason: 'outside-target'` when a directory of the target
   *   resolves outside `localDir`; `ERR_SSH_INVALID_ARG` for a bad `compare`, `delete` or
   *   `dryRun`; and see the class errors.
   * @example
   * ```ts
   * // mirror a remote directory: fetch what changed, drop what the server no longer has
   * const plan = await sftp.getDir('/srv/reports', './reports', { compare: 'size-mtime', delete: true, dryRun: true });
   * console.log('would copy', plan.copied, 'would delete', plan.deleted);
   * await sftp.getDir('/srv/reports', './reports', { compare: 'size-mtime', delete: true });
   * ```
   */
  async getDir(remoteDir: RemotePath, localDir: string | Buffer, options?: DirTransferOptions): Promise<DirTransferSummary> {
    const r = checkPath('remoteDir', remoteDir);
    const l = checkLocal('localDir', localDir);
    const localBytes = toBytes(l);
    let rootReal: Buffer | undefined;
    const confine = (rel: Buffer): Buffer => {
      if (!isConfinedRel(rel)) throw limitError('getDir', `refusing local path ${JSON.stringify(showName(rel))} (outside localDir)`, rel, 'unsafe-name');
      return joinBytes(localBytes, rel);
    };
    return await this.transferTree('getDir', r, options, {
      walk: (s, sig, limits) => this.remoteTree(s, r, sig, limits, 'getDir'),
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
      copy: (s, rel, job) => this.getFile(s, joinRemote(r, rel), confine(rel), { ...job, confined: true }, false),
      walkDest: async (_s, _sig, limits) => {
        if (!(await localDirExists(l))) return undefined;
        try {
          return await walkTree(localTreeSource(localBytes, (what) => limitError('getDir', what, l)), limits);
        } catch (err) {
          throw localError(err, 'readdir', l);
        }
      },
      hashSource: (s, sig, rels, sizes) => this.remoteHasher.hash(s, r, rels, sizes, sig),
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

  /**
   * Uploads a local directory tree into `remoteDir` (created as needed, `mkdir -p`): `concurrency`
   * files in parallel, one overall progress. Symlinks and special files are skipped. Every
   * remote path is built from local names checked to be safe components (as {@link getDir};
   * a refused name is skipped with reason `'unsafe-name'` and a `warning`). Errors as
   * {@link SftpClient.getDir}. With `compare`, `delete` and `dryRun` it syncs, as
   * {@link SftpClient.getDir} (remote names met while walking the destination are confined
   * the same way).
   * @returns `{ copied, skipped, failed, transferredBytes, unchanged, deleted }`.
   * @example
   * ```ts
   * // deploy: copy only what changed since the last run, remove what was deleted locally
   * const r = await sftp.putDir('./dist', '/srv/app', { compare: 'size-mtime', delete: true });
   * console.log(`${r.copied.length} copied, ${r.unchanged.length} unchanged, ${r.deleted.length} deleted`);
   * ```
   */
  async putDir(localDir: string | Buffer, remoteDir: RemotePath, options?: DirTransferOptions): Promise<DirTransferSummary> {
    const l = checkLocal('localDir', localDir);
    const r = checkPath('remoteDir', remoteDir);
    const localBytes = toBytes(l);
    const confine = (rel: Buffer): RemotePath => {
      if (!isConfinedRel(rel)) throw limitError('putDir', `refusing remote path ${JSON.stringify(showName(rel))} (outside remoteDir)`, rel, 'unsafe-name');
      return joinRemote(r, rel);
    };
    return await this.transferTree('putDir', r, options, {
      walk: async (_s, _sig, limits) => {
        try {
          return await walkTree(localTreeSource(localBytes, (what) => limitError('putDir', what, l)), limits);
        } catch (err) {
          throw localError(err, 'readdir', l);
        }
      },
      makeDirs: async (s, sig, dirs) => {
        await this.mkdirp(s, r, undefined, sig, 0);
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
      copy: (s, rel, job) => this.putFile(s, joinBytes(localBytes, rel), confine(rel), job, false),
      walkDest: async (s, sig, limits) => {
        try {
          await s.stat(r, sig);
        } catch (err) {
          if (isStatus(err, SftpStatus.NO_SUCH_FILE)) return undefined;
          throw err;
        }
        return await this.remoteTree(s, r, sig, limits, 'putDir');
      },
      hashSource: (_s, sig, rels) => hashLocalFiles(localBytes, rels, false, sig),
      hashDest: (s, sig, rels, sizes) => this.remoteHasher.hash(s, r, rels, sizes, sig),
      remove: (s, sig, entry) => removeRemoteEntry(s, r, entry, sig),
    });
  }

  /** Walks the remote tree at `root` (lean listings; loops told by the canonical path). */
  private remoteTree(s: SftpSession, root: RemotePath, sig: AbortSignal, limits: WalkLimits, what: string): Promise<WalkedTree> {
    return walkTree(
      {
        list: async (rel, count) => await this.listLean(s, rel.length === 0 ? root : joinRemote(root, rel), sig, count),
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

  /**
   * What {@link SftpClient.getDir} and {@link SftpClient.putDir} share: checks the options,
   * walks the source tree (and, to compare or delete, the destination tree: see `sync.ts`),
   * removes what `delete` planned, creates the destination directories, then copies the files
   * `concurrency` at a time with one overall progress and one summary.
   */
  private async transferTree(what: 'getDir' | 'putDir', root: RemotePath, options: DirTransferOptions | undefined, side: TreeSide): Promise<DirTransferSummary> {
    checkFn('filter', options?.filter);
    checkFn('onProgress', options?.onProgress);
    const sync = parseSyncOptions(options, what);
    const parallel = checkInt('concurrency', options?.concurrency, 1, 256) ?? DEFAULT_DIR_CONCURRENCY;
    const perFile = checkInt('fileConcurrency', options?.fileConcurrency, 1, 1024) ?? DEFAULT_DIR_FILE_CONCURRENCY;
    const warnUnsafe =
      (where: string) =>
      (rel: Buffer, why: string): void => {
        this.emit('warning', {
          reason: 'unsafe-name',
          operation: what,
          path: rel.toString('utf8'),
          rawPath: rel,
          message: `sftp ${what} ${JSON.stringify(showName(toBytes(root)))}: skipped ${JSON.stringify(showName(rel))}${where}: ${why} (a name that could leave the target directory)`,
        });
      };
    const limits: WalkLimits = {
      maxEntries: checkInt('maxEntries', options?.maxEntries, 1) ?? DEFAULT_MAX_ENTRIES,
      maxDepth: checkInt('maxDepth', options?.maxDepth, 0) ?? DEFAULT_MAX_DEPTH,
      filter: options?.filter,
      onUnsafe: warnUnsafe(''),
    };
    const fileOptions = { concurrency: perFile, resume: options?.resume, preserve: options?.preserve };
    resumeMode(fileOptions.resume);
    preserveMask(fileOptions.preserve);
    return await this.op(what, options, async (s, sig) => {
      const tree = await side.walk(s, sig, limits);
      const summary: DirTransferSummary = { copied: [], skipped: tree.skipped, failed: [], transferredBytes: 0, unchanged: [], deleted: [] };
      let files = tree.files;
      let fatal: unknown;
      const fail = (rel: Buffer, err: unknown): void => {
        if (isFatal(err)) fatal ??= err;
        else summary.failed.push({ path: rel.toString('utf8'), error: err as SshError });
      };
      if (needsDestination(sync)) {
        // the destination walk: the same limits and filter (what the filter leaves out is kept)
        const dest = await side.walkDest(s, sig, { ...limits, onUnsafe: warnUnsafe(' in the destination') });
        const plan = await planSync(tree, dest, sync, async (rels) => {
          const sizeOf = new Map(tree.files.map((f) => [f.rel, f.size]));
          const sizes = rels.map((r) => sizeOf.get(r) ?? 0);
          const [a, b] = await Promise.all([side.hashSource(s, sig, rels, sizes), side.hashDest(s, sig, rels, sizes)]);
          return new Set(rels.filter((_, i) => a[i] !== undefined && b[i] !== undefined && a[i].equals(b[i])));
        });
        files = plan.copy;
        summary.unchanged = plan.unchanged.map((r) => relBytes(r).toString('utf8'));
        // non-directories in parallel, then directories deepest first (each empty by its turn)
        const firstDir = plan.remove.findIndex((e) => e.type === 'directory');
        const flat = firstDir < 0 ? plan.remove : plan.remove.slice(0, firstDir);
        const dirs = firstDir < 0 ? [] : plan.remove.slice(firstDir);
        const removeOne = async (e: PlannedRemoval): Promise<void> => {
          const rel = relBytes(e.rel);
          try {
            if (!sync.dryRun) await side.remove(s, sig, e);
            summary.deleted.push(rel.toString('utf8'));
          } catch (err) {
            fail(rel, err);
          }
        };
        await pool(flat, parallel, removeOne, () => fatal !== undefined || sig.aborted);
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
        options?.onProgress,
      );
      const job = this.fileJob(fileOptions, progress, sig);
      if (sync.compare !== 'always') job.times = true;
      await pool(
        files,
        parallel,
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
    });
  }
}

/** Errors that end a whole directory transfer (not one file's problem). */
function isFatal(err: unknown): boolean {
  if (!(err instanceof SshError)) return true;
  return err.code !== 'ERR_SSH_SFTP';
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

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function toBuffer(data: unknown): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new SshConfigError('data must be a string, Buffer or Uint8Array', { field: 'data' });
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
