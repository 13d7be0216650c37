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
import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { EventEmitter } from 'eventemitter3';
import type ssh2 from 'ssh2';
import { SshConfigError, SshError, mapChannelError } from '../errors.js';
import type { Link, LinkProvider } from '../connection/link.js';
import { abortReason, operationScope, raceSignals } from '../internal/cancel.js';
import { DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES } from './dir-walk.js';
import { readIntoBuffer, writeBuffer } from './engine.js';
import { SftpStatus, SshSftpError } from './errors.js';
import {
  CLOSE_TIMEOUT_MS,
  DEFAULT_STREAM_CONCURRENCY,
  asError,
  closeBounded,
  isStatus,
  limitError,
  listEntries,
  mkdirp,
  nameCounter,
  runLimited,
  settleWithin,
} from './ops.js';
import { baseOf, joinRemote, parentOf, showPath, toStats, typeOfMode, type SftpEntry, type SftpStats } from './paths.js';
import { OpenFlags, SftpSession, type SftpCounters } from './session.js';
import { SftpReadStream, SftpWriteStream } from './streams.js';
import { getOne, getTree, putOne, putTree, type DirPlan, type FilePlan } from './transfer.js';
import type {
  DirTransferOptions,
  DirTransferSummary,
  ListOptions,
  MkdirOptions,
  PreserveOptions,
  ReadFileOptions,
  ReadStreamOptions,
  RenameOptions,
  ResumeOptions,
  RmOptions,
  SftpEvents,
  SftpOperationOptions,
  SftpOptions,
  TransferOptions,
  TransferResult,
  WriteFileOptions,
  WriteStreamOptions,
} from './types.js';
import type { RemotePath } from './wire.js';

export type * from './types.js';

// ---------------------------------------------------------------------------------------------
// validation

/** Default of {@link ListOptions.maxEntries}: one listing's entries are all held in memory. */
const DEFAULT_LIST_MAX_ENTRIES = 100_000;

const DEFAULT_CONCURRENCY = 16;
const DEFAULT_DIR_CONCURRENCY = 32;
const DEFAULT_DIR_FILE_CONCURRENCY = 4;
const DEFAULT_HWM = 1024 * 1024;
/** Default of {@link ReadFileOptions.maxBytes}. */
const DEFAULT_READ_MAX_BYTES = 1024 * 1024 * 1024;
/** Bytes of the one read past a file's stated size (it must find EOF). */
const PROBE_LEN = 64 * 1024;


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

/** The offset to append at from a stated size: absent is 0; past 2^53 the server lies (`reason: 'protocol'`). */
function appendOffset(size: number | undefined, what: string, p: RemotePath): number {
  if (size === undefined) return 0;
  if (!Number.isSafeInteger(size)) throw limitError(what, `the server stated an impossible file size (${size})`, p, 'protocol');
  return size;
}

function toDate(field: string, v: Date | number): number {
  if (v instanceof Date && !Number.isNaN(v.getTime())) return Math.floor(v.getTime() / 1000);
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.floor(v);
  throw new SshConfigError(`${field} must be a Date or a number of seconds since the epoch`, { field });
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
   * @returns entries `{ name, path, rawName, rawPath, type, size, mode, mtime, atime, uid, gid }`.
   * @throws `ERR_SSH_SFTP` with `reason: 'limit'` past {@link ListOptions.maxEntries}; and see the class errors.
   */
  async list(dir: RemotePath, options?: ListOptions): Promise<SftpEntry[]> {
    const d = checkPath('dir', dir);
    const max = checkInt('maxEntries', options?.maxEntries, 1) ?? DEFAULT_LIST_MAX_ENTRIES;
    return await this.op('list', options, (s, sig) => listEntries(s, d, sig, nameCounter('list', d, max)));
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
      if (recursive) await mkdirp(s, p, mode, sig);
      else await s.mkdir(p, mode === undefined ? undefined : { mode }, sig);
    });
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
      await this.rmTree(s, p, force, sig, 0, nameCounter('rm', p, DEFAULT_MAX_ENTRIES));
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
      entries = await listEntries(s, dir, signal, count);
    } catch (err) {
      if (force && isStatus(err, SftpStatus.NO_SUCH_FILE)) return;
      throw err;
    }
    let firstErr: unknown;
    await runLimited(
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
      else await closeBounded(s, handle, signal);
    }
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

  /**
   * Checks the options of `get`/`put` (before any I/O).
   */
  private filePlan(options: TransferOptions | undefined): FilePlan {
    checkFn('onProgress', options?.onProgress);
    return {
      concurrency: checkInt('concurrency', options?.concurrency, 1, 1024) ?? DEFAULT_CONCURRENCY,
      chunkSize: checkInt('chunkSize', options?.chunkSize, 1),
      resume: resumeMode(options?.resume),
      preserve: preserveMask(options?.preserve),
      onProgress: options?.onProgress,
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
    const plan = this.filePlan(options);
    return await this.op('get', options, (s, sig) => getOne(s, sig, r, l, plan));
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
    const plan = this.filePlan(options);
    return await this.op('put', options, (s, sig) => putOne(s, sig, l, r, plan));
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
   * @returns `{ copied, skipped, failed, transferredBytes }`.
   * @throws `ERR_SSH_SFTP` with `reason: 'limit'` past `maxEntries`/`maxDepth` or on a directory
   *   loop (nothing is copied then); `reason: 'outside-target'` when a directory of the target
   *   resolves outside `localDir`; and see the class errors.
   */
  async getDir(remoteDir: RemotePath, localDir: string | Buffer, options?: DirTransferOptions): Promise<DirTransferSummary> {
    const r = checkPath('remoteDir', remoteDir);
    const l = checkLocal('localDir', localDir);
    const plan = dirPlan(options);
    return await this.op('getDir', options, (s, sig) => getTree(s, sig, r, l, plan, (w) => this.emit('warning', w)));
  }

  /**
   * Uploads a local directory tree into `remoteDir` (created as needed, `mkdir -p`): `concurrency`
   * files in parallel, one overall progress. Symlinks and special files are skipped. Every
   * remote path is built from local names checked to be safe components (as {@link getDir};
   * a refused name is skipped with reason `'unsafe-name'` and a `warning`). Errors as
   * {@link SftpClient.getDir}.
   * @returns `{ copied, skipped, failed, transferredBytes }`.
   */
  async putDir(localDir: string | Buffer, remoteDir: RemotePath, options?: DirTransferOptions): Promise<DirTransferSummary> {
    const l = checkLocal('localDir', localDir);
    const r = checkPath('remoteDir', remoteDir);
    const plan = dirPlan(options);
    return await this.op('putDir', options, (s, sig) => putTree(s, sig, l, r, plan, (w) => this.emit('warning', w)));
  }
}

/** Checks the options of `getDir`/`putDir` (before any I/O). */
function dirPlan(options: DirTransferOptions | undefined): DirPlan {
  checkFn('filter', options?.filter);
  checkFn('onProgress', options?.onProgress);
  return {
    parallel: checkInt('concurrency', options?.concurrency, 1, 256) ?? DEFAULT_DIR_CONCURRENCY,
    perFile: checkInt('fileConcurrency', options?.fileConcurrency, 1, 1024) ?? DEFAULT_DIR_FILE_CONCURRENCY,
    maxEntries: checkInt('maxEntries', options?.maxEntries, 1) ?? DEFAULT_MAX_ENTRIES,
    maxDepth: checkInt('maxDepth', options?.maxDepth, 0) ?? DEFAULT_MAX_DEPTH,
    filter: options?.filter,
    onProgress: options?.onProgress,
    resume: resumeMode(options?.resume),
    preserve: preserveMask(options?.preserve),
  };
}

function toBuffer(data: unknown): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new SshConfigError('data must be a string, Buffer or Uint8Array', { field: 'data' });
}
