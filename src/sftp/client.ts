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
import type { Readable, Writable } from 'node:stream';
import { EventEmitter } from 'eventemitter3';
import type ssh2 from 'ssh2';
import { SshError } from '../errors.js';
import type { Link, LinkProvider } from '../connection/link.js';
import { abortReason, operationScope, raceSignals } from '../internal/cancel.js';
import { DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES } from './dir-walk.js';
import { DEFAULT_CHANNELS_PERSIST_MS, ExtraSessionPool } from './extra-pool.js';
import { SftpStatus, SshSftpError } from './errors.js';
import { checkData, checkInt, checkLocal, checkOptions, checkPath, checkTime } from './options.js';
import { defaultOpenSftp, listFiltered, makeDir, pathExists, removePath, renameOver, replaceAtomically } from './ops.js';
import { toStats, type SftpEntry, type SftpStats } from './paths.js';
import { OpenFlags, SftpSession, type SftpCounters } from './session.js';
import { remoteReadStream, remoteWriteStream } from './streams.js';
import { RemoteHasher, walkRemote } from './sync.js';
import { getOne, getTree, putOne, putTree, readWhole, writeWhole } from './transfer.js';
import type {
  DirTransferOptions,
  DirTransferSummary,
  ListOptions,
  MkdirOptions,
  ReadFileOptions,
  ReadStreamOptions,
  RenameOptions,
  RmOptions,
  SftpEvents,
  SftpOperationOptions,
  SftpOptions,
  TransferOptions,
  TransferResult,
  SftpWalkEntry,
  WalkOptions,
  WriteFileOptions,
  WriteStreamOptions,
} from './types.js';
import type { RemotePath } from './wire.js';
import { DEFAULT_LIST_MAX_ENTRIES, DEFAULT_READ_MAX_BYTES, dirPlan, filePlan } from './plans.js';

export type * from './types.js';

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
 * `path`) for a status the server returned; `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError},
 * with `field`) for a bad argument or option, checked before any I/O (an unknown option such
 * as `concurency` fails naming it and the closest accepted name; `timeoutMs` is a whole number
 * of ms from 1 to 2^31-1; a bad call argument is `ERR_SSH_INVALID_ARG`, not `ERR_SSH_CONFIG`,
 * which is kept for the client's options and ssh_config); `ERR_SSH_CONNECTION_LOST`; `ERR_SSH_ABORTED`; `ERR_SSH_TIMEOUT`; `ERR_SSH_CLOSED`; and
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
  /** @internal */
  private readonly provider: LinkProvider;
  /** @internal */
  private readonly openSftp: (link: Link, signal: AbortSignal) => Promise<ssh2.SFTPWrapper>;
  /** Opens the extra channels of a striped get/put (sftp/striped.ts). @internal */
  private readonly openExtraSftp: (link: Link, signal: AbortSignal) => Promise<ssh2.SFTPWrapper>;
  /** Extra sessions of striped transfers kept for the next one. */
  private readonly pool: ExtraSessionPool;
  /** @internal */
  private live: SftpSession | undefined;
  /** @internal */
  private pending: Promise<SftpSession> | undefined;
  /** @internal */
  private closed = false;
  /** @internal */
  private readonly closeCtl = new AbortController();
  /** @internal */
  private readonly counters: SftpCounters = { bytesRead: 0, bytesWritten: 0 };
  /** Hashes remote files for `compare: 'checksum'` (exec when given, else SFTP reads). @internal */
  readonly remoteHasher: RemoteHasher;
  /** Operations and streams in flight (idle persist: a session with none does not keep the link). @internal */
  private active = 0;

  /**
   * `true` while an operation or an unclosed stream of this client is in flight, or a session is
   * being opened. Read by the `SshClient` facade for idle persist (`idleTimeoutMs`): an open SFTP
   * session with nothing in flight does not keep the link.
   * @internal
   */
  get busy(): boolean {
    return this.active > 0 || this.pending !== undefined;
  }

  /** Counts one operation or stream in flight until the returned function is called (idempotent). @internal */
  private hold(): () => void {
    this.active += 1;
    let held = true;
    return () => {
      if (held) {
        held = false;
        this.active -= 1;
      }
    };
  }

  /** File content bytes read from and written to the server over this client's SFTP sessions (all links). */
  stats(): { bytesRead: number; bytesWritten: number } {
    return { bytesRead: this.counters.bytesRead, bytesWritten: this.counters.bytesWritten };
  }

  /**
   * Made by {@link SshClient.sftp}; not constructed by users.
   *
   * @param provider - gives the current link (see `src/connection/link.ts`).
   * @param options - `openSftp` to open the SFTP channel (default: `link.client.sftp()`);
   *   `openExtraSftp` to open the extra channels of a striped get/put (same default);
   *   `channelsPersistMs` how long those are kept for the next striped transfer (default 30000);
   *   `remoteCommand` to hash remote files over exec for `compare: 'checksum'`.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}) for an unknown option or an `openSftp` that is not a function.
   * @internal
   */
  constructor(provider: LinkProvider, options: SftpOptions = {}) {
    super();
    this.provider = provider;
    const o = checkOptions('sftp', 'SftpClient', options);
    this.openSftp = o.openSftp ?? defaultOpenSftp;
    this.openExtraSftp = o.openExtraSftp ?? defaultOpenSftp;
    this.pool = new ExtraSessionPool(o.channelsPersistMs ?? DEFAULT_CHANNELS_PERSIST_MS);
    this.remoteHasher = new RemoteHasher(o.remoteCommand);
  }

  /**
   * Closes the extra SFTP channels kept from earlier striped transfers now (see
   * `SftpOptions.channelsPersistMs`). The SshClient facade calls it when another channel waits
   * for a `MaxSessions` slot.
   * @returns how many were kept.
   * @internal
   */
  releaseIdleChannels(): number {
    return this.pool.release();
  }

  // -------------------------------------------------------------------------------------------
  // session

  /** @internal */
  private acquire(signal: AbortSignal): Promise<SftpSession> {
    if (this.closed) return Promise.reject(new SshError('ERR_SSH_CLOSED', 'SFTP client is closed'));
    const live = this.live;
    if (live && !live.dead.aborted) return Promise.resolve(live);
    this.pending ??= this.openSession().finally(() => {
      this.pending = undefined;
    });
    return raceSignals(this.pending, [signal], 'sftp');
  }

  /** @internal */
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

  /** Runs one operation with its cancellation scope and the session. @internal */
  private async op<T>(what: string, options: SftpOperationOptions, fn: (s: SftpSession, signal: AbortSignal) => Promise<T>): Promise<T> {
    const scope = operationScope(options, `sftp ${what}`);
    const release = this.hold();
    try {
      const s = await this.acquire(scope.signal);
      return await fn(s, scope.signal);
    } catch (err) {
      // every error leaving the library is an SshError (a RangeError from a hostile size...)
      if (err instanceof SshError) throw err;
      throw new SshSftpError(`sftp ${what} failed: ${err instanceof Error ? err.message : String(err)}`, { statusCode: SftpStatus.FAILURE, cause: err });
    } finally {
      release();
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
    this.pool.close();
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
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path`, an unknown option or a bad `signal`/`timeoutMs` (whole ms, 1 to 2^31-1).
   */
  async stat(path: RemotePath, options?: SftpOperationOptions): Promise<SftpStats> {
    const p = checkPath('path', path);
    const o = checkOptions('operation', 'stat', options);
    return await this.op('stat', o, async (s, sig) => toStats(await s.stat(p, sig)));
  }

  /**
   * Attributes of `path` itself, not following a final symlink (SSH_FXP_LSTAT). Errors as {@link SftpClient.stat}.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, as {@link SftpClient.stat}.
   */
  async lstat(path: RemotePath, options?: SftpOperationOptions): Promise<SftpStats> {
    const p = checkPath('path', path);
    const o = checkOptions('operation', 'lstat', options);
    return await this.op('lstat', o, async (s, sig) => toStats(await s.lstat(p, sig)));
  }

  /**
   * Whether `path` exists (`lstat`, so a dangling symlink exists). Resolves `false` only for
   * `NO_SUCH_FILE`; any other error (e.g. `PERMISSION_DENIED`) rejects.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, as {@link SftpClient.stat}.
   */
  async exists(path: RemotePath, options?: SftpOperationOptions): Promise<boolean> {
    const p = checkPath('path', path);
    const o = checkOptions('operation', 'exists', options);
    return await this.op('exists', o, (s, sig) => pathExists(s, p, sig));
  }

  /**
   * Lists a directory (SSH_FXP_OPENDIR/READDIR), without `.` and `..`. Entry types come from
   * the server's `lstat` view: symlinks are `'symlink'`. Names are returned as the server sent
   * them (they may hold `/` or `..` on a hostile server: `getDir` refuses such names, a caller
   * building local paths from `name` should check them too).
   * `filter` keeps only some entries (a function, or a RegExp tested on the name).
   * @returns entries `{ name, path, rawName, rawPath, type, size, mode, mtime, atime, uid, gid }`.
   * @throws `ERR_SSH_SFTP` with `reason: 'limit'` past {@link ListOptions.maxEntries}; and see the class errors.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `dir`, an unknown option, `maxEntries` not an integer >= 1, or a `filter` that is neither a function nor a RegExp.
   * @example
   * ```ts
   * const logs = await sftp.list('/var/log/app', { filter: /\.log$/ });
   * const big = await sftp.list('/srv/data', { filter: (e) => e.type === 'file' && e.size > 1e9 });
   * ```
   */
  async list(dir: RemotePath, options?: ListOptions): Promise<SftpEntry[]> {
    const d = checkPath('dir', dir);
    const o = checkOptions('list', 'list', options);
    const max = o.maxEntries ?? DEFAULT_LIST_MAX_ENTRIES;
    const filter = o.filter;
    return await this.op('list', o, (s, sig) => listFiltered(s, d, sig, max, filter));
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
   *   `ERR_SSH_INVALID_ARG` for bad options (on the first iteration); and
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
    const o = checkOptions('walk', 'walk', options);
    const maxEntries = o.maxEntries ?? DEFAULT_MAX_ENTRIES;
    const maxDepth = o.maxDepth ?? DEFAULT_MAX_DEPTH;
    const { filter, signal } = o;
    yield* walkRemote(
      d,
      { filter, maxEntries, maxDepth },
      (fn) => this.op('walk', { signal }, fn),
      (w) => this.emit('warning', w),
    );
  }

  /**
   * Creates a directory (SSH_FXP_MKDIR). With `recursive`, creates missing parents and succeeds
   * when the directory exists (fails with `FAILURE` when a non-directory is in the way).
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path`, an unknown option, or `mode` outside 0-0o7777.
   */
  async mkdir(path: RemotePath, options?: MkdirOptions): Promise<void> {
    const p = checkPath('path', path);
    const o = checkOptions('mkdir', 'mkdir', options);
    const mode = o.mode;
    const recursive = o.recursive === true;
    return await this.op('mkdir', o, (s, sig) => makeDir(s, p, mode, recursive, sig));
  }

  /**
   * Removes an empty directory (SSH_FXP_RMDIR; a non-empty one fails with `FAILURE` on OpenSSH).
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path` or an unknown option; `recursive` is refused with a pointer to `rm(dir, { recursive: true })`.
   */
  async rmdir(path: RemotePath, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    const o = checkOptions('operation', 'rmdir', options);
    return await this.op('rmdir', o, (s, sig) => s.rmdir(p, sig));
  }

  /**
   * Removes a file or symlink (SSH_FXP_REMOVE).
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path` or an unknown option.
   */
  async unlink(path: RemotePath, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    const o = checkOptions('operation', 'unlink', options);
    return await this.op('unlink', o, (s, sig) => s.remove(p, sig));
  }

  /**
   * Removes a file, symlink or (with `recursive`) a directory tree. Symlinks inside the tree are
   * removed themselves, never followed. With `force`, a missing path is not an error. Without
   * `recursive`, a directory fails with `ERR_SSH_SFTP` status `FAILURE`.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path` or an unknown option.
   */
  async rm(path: RemotePath, options?: RmOptions): Promise<void> {
    const p = checkPath('path', path);
    const o = checkOptions('rm', 'rm', options);
    const recursive = o.recursive === true;
    const force = o.force === true;
    return await this.op('rm', o, (s, sig) => removePath(s, p, { recursive, force }, sig, (w) => this.emit('warning', w)));
  }

  /**
   * Renames `from` to `to`. See {@link RenameOptions.overwrite} for replacing an existing target
   * (`posix-rename@openssh.com`, OpenSSH PROTOCOL section 4.3).
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `from`/`to` or an unknown option.
   */
  async rename(from: RemotePath, to: RemotePath, options?: RenameOptions): Promise<void> {
    const f = checkPath('from', from);
    const t = checkPath('to', to);
    const o = checkOptions('rename', 'rename', options);
    const overwrite = o.overwrite === true;
    return await this.op('rename', o, (s, sig) => renameOver(s, f, t, overwrite, sig));
  }

  /**
   * Sets permission bits (SSH_FXP_SETSTAT), e.g. `0o644`.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path`, `mode` outside 0-0o7777 or an unknown option.
   */
  async chmod(path: RemotePath, mode: number, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    const m = checkInt('mode', mode, 0, 0o7777);
    const o = checkOptions('operation', 'chmod', options);
    return await this.op('chmod', o, (s, sig) => s.setstat(p, { mode: m }, sig));
  }

  /**
   * Sets the owner user and group ids (SSH_FXP_SETSTAT; usually needs privileges on the server).
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path`, `uid`/`gid` outside 0-2^32-1 or an unknown option.
   */
  async chown(path: RemotePath, uid: number, gid: number, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    const u = checkInt('uid', uid, 0, 0xffffffff);
    const g = checkInt('gid', gid, 0, 0xffffffff);
    const o = checkOptions('operation', 'chown', options);
    return await this.op('chown', o, (s, sig) => s.setstat(p, { uid: u, gid: g }, sig));
  }

  /**
   * Sets access and modification times (SSH_FXP_SETSTAT). Numbers are seconds since the epoch
   * (as `fs.utimes`); SFTP v3 keeps whole seconds.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path`, a time that is not a valid Date or seconds >= 0, or an unknown option.
   */
  async utimes(path: RemotePath, atime: Date | number, mtime: Date | number, options?: SftpOperationOptions): Promise<void> {
    const p = checkPath('path', path);
    const a = checkTime('atime', atime);
    const m = checkTime('mtime', mtime);
    const o = checkOptions('operation', 'utimes', options);
    return await this.op('utimes', o, (s, sig) => s.setstat(p, { atime: a, mtime: m }, sig));
  }

  /**
   * Creates a symlink at `linkPath` pointing to `target` (SSH_FXP_SYMLINK).
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `target`/`linkPath` or an unknown option.
   */
  async symlink(target: RemotePath, linkPath: RemotePath, options?: SftpOperationOptions): Promise<void> {
    const t = checkPath('target', target);
    const l = checkPath('linkPath', linkPath);
    const o = checkOptions('operation', 'symlink', options);
    return await this.op('symlink', o, (s, sig) => s.symlink(t, l, sig));
  }

  /**
   * The target of a symlink (SSH_FXP_READLINK), decoded as UTF-8.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path` or an unknown option.
   */
  async readlink(path: RemotePath, options?: SftpOperationOptions): Promise<string> {
    const p = checkPath('path', path);
    const o = checkOptions('operation', 'readlink', options);
    return await this.op('readlink', o, async (s, sig) => (await s.readlink(p, sig)).toString('utf8'));
  }

  /**
   * The canonical absolute path (SSH_FXP_REALPATH; `'.'` gives the login directory), decoded as UTF-8.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path` or an unknown option.
   */
  async realpath(path: RemotePath, options?: SftpOperationOptions): Promise<string> {
    const p = checkPath('path', path);
    const o = checkOptions('operation', 'realpath', options);
    return await this.op('realpath', o, async (s, sig) => (await s.realpath(p, sig)).toString('utf8'));
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
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path`, an unknown option, an `encoding` Buffer does not know, or `maxBytes` < 0.
   */
  readFile(path: RemotePath, options: ReadFileOptions & { encoding: BufferEncoding }): Promise<string>;
  readFile(path: RemotePath, options?: ReadFileOptions): Promise<Buffer>;
  async readFile(path: RemotePath, options?: ReadFileOptions): Promise<Buffer | string> {
    const p = checkPath('path', path);
    const o = checkOptions('readFile', 'readFile', options);
    const enc = o.encoding;
    const maxBytes = o.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    return await this.op('readFile', o, (s, sig) => readWhole(s, sig, p, enc, maxBytes));
  }

  /**
   * Writes `data` to a file (created or truncated) with parallel requests; see
   * {@link WriteFileOptions.atomic}. Resolves only after every write was acknowledged and the
   * handle closed. On failure with `atomic`, the temporary file is removed and the target is
   * untouched.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty `path`, `data` not a string/Buffer/Uint8Array, `mode` outside 0-0o7777 or an unknown option.
   */
  async writeFile(path: RemotePath, data: string | Uint8Array, options?: WriteFileOptions): Promise<void> {
    const p = checkPath('path', path);
    const buf = checkData(data);
    const o = checkOptions('writeFile', 'writeFile', options);
    const mode = o.mode;
    const atomic = o.atomic === true;
    return await this.op('writeFile', o, (s, sig) =>
      atomic
        ? replaceAtomically(s, p, mode, sig, (tmp, keepMode) => writeWhole(s, tmp, buf, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL, keepMode, undefined, sig))
        : writeWhole(s, p, buf, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.TRUNC, mode, undefined, sig),
    );
  }

  /**
   * Appends `data` to a file (created when missing).
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, as {@link SftpClient.writeFile} (`atomic` is not accepted).
   */
  async appendFile(path: RemotePath, data: string | Uint8Array, options?: Omit<WriteFileOptions, 'atomic'>): Promise<void> {
    const p = checkPath('path', path);
    const buf = checkData(data);
    const o = checkOptions('appendFile', 'appendFile', options);
    const mode = o.mode;
    return await this.op('appendFile', o, (s, sig) =>
      writeWhole(s, p, buf, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.APPEND, mode, 'end', sig),
    );
  }

  // -------------------------------------------------------------------------------------------
  // streams

  /**
   * A Readable of a remote file keeping `concurrency` reads in flight, each up to the server's
   * max read length. Errors (see the class) are emitted as 'error'; the handle is closed when
   * the stream ends or is destroyed.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, thrown at once, for an empty `path`, an unknown option (there is no `timeoutMs`: use `signal`), `start`/`end` < 0, `concurrency` outside 1-1024, or `chunkSize`/`highWaterMark` < 1.
   */
  createReadStream(path: RemotePath, options?: ReadStreamOptions): Readable {
    const p = checkPath('path', path);
    const o = checkOptions('readStream', 'createReadStream', options);
    const stream = remoteReadStream((sig) => this.acquire(sig), p, o);
    stream.once('close', this.hold());
    return stream;
  }

  /**
   * A Writable to a remote file keeping `concurrency` writes in flight. 'finish' is emitted only
   * after every write was acknowledged and the handle closed; errors are emitted as 'error'.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, thrown at once, for an empty `path`, an unknown option (there is no `timeoutMs`: use `signal`), `flags` other than `'w'`, `'wx'`, `'a'`, `'r+'`, `start` < 0, `mode` outside 0-0o7777, `concurrency` outside 1-1024 or `highWaterMark` < 1.
   */
  createWriteStream(path: RemotePath, options?: WriteStreamOptions): Writable {
    const p = checkPath('path', path);
    const o = checkOptions('writeStream', 'createWriteStream', options);
    const stream = remoteWriteStream((sig) => this.acquire(sig), p, o);
    stream.once('close', this.hold());
    return stream;
  }

  // -------------------------------------------------------------------------------------------
  // transfers

  /**
   * Downloads `remotePath` to `localPath` with parallel reads of `chunkSize` (`concurrency` at
   * first, adapting up to `maxConcurrency` to the link's round trip and throughput), written to
   * the local file with positional writes. Resolves once every byte is written and
   * both files are closed. On failure or abort the local file is left as far as it got (so that
   * `resume` can continue it) and the remote handle is closed before the promise rejects (the
   * CLOSE reply is awaited at most 5 s, and not past the caller's `timeoutMs`: with a server that
   * never answers CLOSE, a timeout rejects on time and the CLOSE stays sent). A file with at
   * least `channelsMinBytes` (default 64 MiB) to copy goes over up to `channels` (default 4)
   * SFTP channels at once, within the free `MaxSessions` slots (see {@link TransferOptions.channels}).
   * @returns `{ transferredBytes, totalBytes, resumedFrom }`, and `channels` when striped.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty path, an unknown option (e.g. `concurency`), `concurrency` or `maxConcurrency` outside 1-1024, `maxConcurrency` below `concurrency`, `chunkSize` < 1, `channels` outside 1-64, `channelsMinBytes` < 0, or a `resume`/`preserve`/`onProgress` of the wrong shape.
   */
  async get(remotePath: RemotePath, localPath: string | Buffer, options?: TransferOptions): Promise<TransferResult> {
    const r = checkPath('remotePath', remotePath);
    const l = checkLocal('localPath', localPath);
    const o = checkOptions('transfer', 'get', options);
    const plan = filePlan(o, this.openExtraSftp, this.pool);
    return await this.op('get', o, (s, sig) => getOne(s, sig, r, l, plan));
  }

  /**
   * Uploads `localPath` to `remotePath` with `concurrency` parallel writes of `chunkSize`.
   * Resolves only after every write was acknowledged and the remote handle closed without error,
   * so a partially written file is never reported complete. On failure or abort the remote
   * handle is closed before the promise rejects (bounded as in {@link SftpClient.get}; the remote file keeps what was written, for
   * `resume`). Large files are striped over several channels as in {@link SftpClient.get}.
   * @returns `{ transferredBytes, totalBytes, resumedFrom }`, and `channels` when striped.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, as {@link SftpClient.get}.
   */
  async put(localPath: string | Buffer, remotePath: RemotePath, options?: TransferOptions): Promise<TransferResult> {
    const l = checkLocal('localPath', localPath);
    const r = checkPath('remotePath', remotePath);
    const o = checkOptions('transfer', 'put', options);
    const plan = filePlan(o, this.openExtraSftp, this.pool);
    return await this.op('put', o, (s, sig) => putOne(s, sig, l, r, plan));
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
   *   resolves outside `localDir`; and see the class errors.
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, for an empty path, an unknown option, `concurrency` outside 1-256, `fileConcurrency` outside 1-1024, `maxEntries` < 1, `maxDepth` < 0, a `filter`/`resume`/`preserve`/`onProgress` of the wrong shape, or a bad `compare`/`delete`/`dryRun`.
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
    const o = checkOptions('dirTransfer', 'getDir', options);
    const plan = dirPlan(o, this.remoteHasher);
    return await this.op('getDir', o, (s, sig) => getTree(s, sig, r, l, plan, (w) => this.emit('warning', w)));
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
   * @throws `ERR_SSH_INVALID_ARG` ({@link SshInvalidArgError}, with `field`), before any I/O, as {@link SftpClient.getDir}.
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
    const o = checkOptions('dirTransfer', 'putDir', options);
    const plan = dirPlan(o, this.remoteHasher);
    return await this.op('putDir', o, (s, sig) => putTree(s, sig, l, r, plan, (w) => this.emit('warning', w)));
  }
}
