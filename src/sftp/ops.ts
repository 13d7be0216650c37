/**
 * Pieces shared by the thin operations (sftp/client.ts) and the transfers (sftp/transfer.ts):
 * directory listing, `mkdir -p`, bounded handle close, bounded parallel runs, and the errors
 * both raise; and the bodies of the `SftpClient` operations that are more than one request
 * (opening the SFTP channel, `exists`, a filtered `list`, `mkdir`, a recursive `rm`, `rename`
 * over an existing target, the temporary file of an atomic `writeFile`). Each takes the session
 * and the operation's signal; `SftpClient` checks the arguments, gets the session and calls them.
 *
 * @internal
 * @module sftp/ops
 */
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type ssh2 from 'ssh2';
import type { Link } from '../connection/link.js';
import { SshError, mapChannelError } from '../errors.js';
import { abortReason } from '../internal/cancel.js';
import { DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES, type WalkEntry } from './dir-walk.js';
import { SftpStatus, SshSftpError, type SftpErrorReason } from './errors.js';
import { baseOf, isSafeName, joinBytes, joinRemote, parentOf, showName, showPath, toBytes, toStats, typeOfMode, type SftpEntry } from './paths.js';
import type { SftpSession } from './session.js';
import type { SftpWarning } from './types.js';
import type { RawAttrs, RemotePath } from './wire.js';

/** How long a CLOSE after a failure is awaited, ms. */
export const CLOSE_TIMEOUT_MS = 5_000;
/** Requests in flight for readFile/writeFile/streams and the resume hash. */
export const DEFAULT_STREAM_CONCURRENCY = 16;
/** Deepest `mkdir -p` recursion. */
const MAX_DEPTH = 4096;

/** An `ERR_SSH_SFTP` raised by ssh-tether itself (default `reason: 'limit'`). */
export function limitError(what: string, message: string, path: RemotePath | undefined, reason: SftpErrorReason = 'limit'): SshSftpError {
  return new SshSftpError(`sftp ${what}: ${message}`, { statusCode: SftpStatus.FAILURE, path, reason });
}

/** The offset to append at from a stated size: absent is 0; past 2^53 the server lies (`reason: 'protocol'`). */
export function appendOffset(size: number | undefined, what: string, p: RemotePath): number {
  if (size === undefined) return 0;
  if (!Number.isSafeInteger(size)) throw limitError(what, `the server stated an impossible file size (${size})`, p, 'protocol');
  return size;
}

/** Whether `err` is an SFTP status error with this code. */
export function isStatus(err: unknown, code: number): boolean {
  return err instanceof SshSftpError && err.statusCode === code;
}

/** A local file error as `ERR_SSH_SFTP` (the local error as `cause`). */
export function localError(err: unknown, what: string, p: string | Buffer): SshError {
  if (err instanceof SshError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new SshError('ERR_SSH_SFTP', `local ${what} ${JSON.stringify(showPath(p))} failed: ${msg}`, { cause: err, retryable: false });
}

export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
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
export function settleWithin(p: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<void> {
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

/**
 * Closes `handle` after a failure, waiting for the reply at most 5 s and never past the
 * caller's `timeoutMs` (the CLOSE is still sent; `signal` is the operation's scope).
 */
export function closeBounded(s: SftpSession, handle: Buffer, signal?: AbortSignal): Promise<void> {
  if (!s.alive) return Promise.resolve();
  return settleWithin(s.close(handle, undefined), CLOSE_TIMEOUT_MS, signal);
}

/**
 * Runs `fn` over `items` with at most `n` at a time (`p-limit`); once `stop()` is true, items
 * not yet started are skipped.
 */
export async function runLimited<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>, stop: () => boolean): Promise<void> {
  const limit = pLimit(Math.max(1, n));
  await limit.map(items, async (item) => {
    if (!stop()) await fn(item);
  });
}

/** A name counter for one listing or walk: throws `reason: 'limit'` once more than `max` names arrived. */
export function nameCounter(what: string, path: RemotePath, max: number): (n: number) => void {
  let seen = 0;
  return (n) => {
    seen += n;
    if (seen > max) throw limitError(what, `more than maxEntries (${max}) entries`, path);
  };
}

/**
 * OPENDIR, READDIR until EOF, CLOSE; `each` gets every name but `.` and `..`. `count(n)` is
 * called as each reply of `n` names arrives (at least 1 per reply, so endless empty replies
 * count too); it throws to stop, and the handle is then closed without waiting.
 */
async function readDir(s: SftpSession, dir: RemotePath, signal: AbortSignal, count: (n: number) => void, each: (name: Buffer, attrs: RawAttrs) => void): Promise<void> {
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

/** Lists `dir`; `count(n)` is called as each READDIR reply of `n` names arrives (it may throw to stop). */
export async function listEntries(s: SftpSession, dir: RemotePath, signal: AbortSignal, count: (n: number) => void): Promise<SftpEntry[]> {
  const out: SftpEntry[] = [];
  const dirBytes = toBytes(dir);
  await readDir(s, dir, signal, count, (nm, attrs) => {
    const rawPath = joinBytes(dirBytes, nm);
    out.push({ ...toStats(attrs), name: nm.toString('utf8'), path: rawPath.toString('utf8'), rawName: nm, rawPath });
  });
  return out;
}

/** Lists `dir` for a walk: only what the walk needs (name, type, size, mtime), no per-entry objects beyond that. */
export async function listLean(s: SftpSession, dir: RemotePath, signal: AbortSignal, count: (n: number) => void): Promise<WalkEntry[]> {
  const out: WalkEntry[] = [];
  await readDir(s, dir, signal, count, (rawName, attrs) => {
    out.push({ rawName, type: typeOfMode(attrs.mode), size: attrs.size ?? 0, mtime: attrs.mtime });
  });
  return out;
}

/** `mkdir -p`: creates missing parents, accepts an existing directory, fails on a non-directory in the way. */
export async function mkdirp(s: SftpSession, p: RemotePath, mode: number | undefined, signal: AbortSignal, depth = 0): Promise<void> {
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
    await mkdirp(s, parent, mode, signal, depth + 1);
    try {
      await s.mkdir(p, attrs, signal);
    } catch (err2) {
      const st2 = await s.stat(p, signal).catch(() => undefined);
      if (!st2 || typeOfMode(st2.mode) !== 'directory') throw err2;
    }
  }
}

/**
 * `SftpClient`'s default `openSftp`: opens the SFTP channel of `link` (`link.client.sftp()`, the
 * `sftp` subsystem, RFC 4254 section 6.5). A channel that arrives after `signal` aborted is
 * closed at once.
 *
 * @throws `ERR_SSH_ABORTED` / `ERR_SSH_TIMEOUT` / `ERR_SSH_CLOSED` (the reason of `signal`), or
 *   ssh2's error mapped by `mapChannelError` (`ERR_SSH_CHANNEL_OPEN`...).
 */
export function defaultOpenSftp(link: Link, signal: AbortSignal): Promise<ssh2.SFTPWrapper> {
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

/** `SftpClient.exists`: LSTAT; `false` only for `NO_SUCH_FILE`, any other error rethrown. */
export async function pathExists(s: SftpSession, p: RemotePath, signal: AbortSignal): Promise<boolean> {
  try {
    await s.lstat(p, signal);
    return true;
  } catch (err) {
    if (isStatus(err, SftpStatus.NO_SUCH_FILE)) return false;
    throw err;
  }
}

/**
 * `SftpClient.list`: lists `dir` (at most `maxEntries` names, `reason: 'limit'` past it) and keeps
 * the entries `filter` accepts (a function, or a RegExp tested on the name; `undefined`: all).
 */
export async function listFiltered(
  s: SftpSession,
  dir: RemotePath,
  signal: AbortSignal,
  maxEntries: number,
  filter: ((entry: SftpEntry) => boolean) | RegExp | undefined,
): Promise<SftpEntry[]> {
  const all = await listEntries(s, dir, signal, nameCounter('list', dir, maxEntries));
  if (filter === undefined) return all;
  return all.filter((e) => {
    if (typeof filter === 'function') return filter(e);
    filter.lastIndex = 0;
    return filter.test(e.name);
  });
}

/** `SftpClient.mkdir`: MKDIR, or with `recursive` {@link mkdirp}. */
export async function makeDir(s: SftpSession, p: RemotePath, mode: number | undefined, recursive: boolean, signal: AbortSignal): Promise<void> {
  if (recursive) await mkdirp(s, p, mode, signal);
  else await s.mkdir(p, mode === undefined ? undefined : { mode }, signal);
}

/**
 * `SftpClient.rm`: removes a file or symlink (REMOVE), or with `recursive` a directory tree
 * (symlinks inside removed, never followed; at most 1,000,000 names and 256 levels). With
 * `force`, a missing path is not an error. A server-listed name that is not one safe path
 * component is never joined into a REMOVE/RMDIR path: it is reported to `warn` (operation `'rm'`),
 * its directory kept, and the call fails.
 *
 * @throws `ERR_SSH_SFTP` `FAILURE` for a directory without `recursive` or after unsafe names;
 *   `reason: 'limit'` past the bounds; the server's status errors.
 */
export async function removePath(
  s: SftpSession,
  p: RemotePath,
  how: { recursive: boolean; force: boolean },
  signal: AbortSignal,
  warn: (w: SftpWarning) => void,
): Promise<void> {
  const { recursive, force } = how;
  let st;
  try {
    st = await s.lstat(p, signal);
  } catch (err) {
    if (force && isStatus(err, SftpStatus.NO_SUCH_FILE)) return;
    throw err;
  }
  if (typeOfMode(st.mode) !== 'directory') {
    await tolerate(s.remove(p, signal), force);
    return;
  }
  if (!recursive) {
    throw new SshSftpError(`sftp rm ${JSON.stringify(showPath(p))}: is a directory (pass { recursive: true })`, {
      statusCode: SftpStatus.FAILURE,
      path: p,
    });
  }
  await rmTree(s, p, force, signal, 0, nameCounter('rm', p, DEFAULT_MAX_ENTRIES), warn);
}

/** Awaits `p`; with `force`, `NO_SUCH_FILE` is not an error. */
async function tolerate(p: Promise<void>, force: boolean): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!(force && isStatus(err, SftpStatus.NO_SUCH_FILE))) throw err;
  }
}

/** Removes the tree below `dir` (8 removals in flight), then `dir`; see {@link removePath}. */
async function rmTree(
  s: SftpSession,
  dir: RemotePath,
  force: boolean,
  signal: AbortSignal,
  depth: number,
  count: (n: number) => void,
  warn: (w: SftpWarning) => void,
): Promise<void> {
  if (depth >= DEFAULT_MAX_DEPTH) throw limitError('rm', `deeper than ${DEFAULT_MAX_DEPTH} levels`, dir);
  let entries: SftpEntry[];
  try {
    entries = await listEntries(s, dir, signal, count);
  } catch (err) {
    if (force && isStatus(err, SftpStatus.NO_SUCH_FILE)) return;
    throw err;
  }
  // Names come from the server: one that is not a single safe path component (`..`, `/etc/x`,
  // `a/../../b`) is never joined into a REMOVE/RMDIR path; it is reported and the directory kept.
  const unsafe = entries.filter((e) => !isSafeName(e.rawName));
  for (const e of unsafe) {
    warn({
      reason: 'unsafe-name',
      operation: 'rm',
      path: e.rawPath.toString('utf8'),
      rawPath: e.rawPath,
      message: `sftp rm: skipped a directory entry with an unsafe name ${showName(e.rawName)} in ${showName(toBytes(dir))} (it would leave the directory)`,
    });
  }
  entries = entries.filter((e) => isSafeName(e.rawName));
  let firstErr: unknown;
  await runLimited(
    entries,
    8,
    async (e) => {
      try {
        if (e.type === 'directory') await rmTree(s, e.rawPath, force, signal, depth + 1, count, warn);
        else await tolerate(s.remove(e.rawPath, signal), force);
      } catch (err) {
        firstErr ??= err;
      }
    },
    () => firstErr !== undefined,
  );
  if (firstErr !== undefined) throw asError(firstErr);
  if (unsafe.length > 0) {
    throw new SshSftpError(
      `sftp rm ${JSON.stringify(showPath(dir))}: the server listed ${unsafe.length} entr${unsafe.length === 1 ? 'y' : 'ies'} with an unsafe name (e.g. ${showName(unsafe[0]!.rawName)}); they were not removed and the directory was kept`,
      { statusCode: SftpStatus.FAILURE, path: dir },
    );
  }
  await tolerate(s.rmdir(dir, signal), force);
}

/**
 * `SftpClient.rename`: RENAME; with `overwrite`, `posix-rename@openssh.com` (OpenSSH PROTOCOL
 * section 4.3) when the server has it, else RENAME and, on `FAILURE`, REMOVE of the target and
 * RENAME again.
 */
export async function renameOver(s: SftpSession, from: RemotePath, to: RemotePath, overwrite: boolean, signal: AbortSignal): Promise<void> {
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

/**
 * The atomic `writeFile`: `write(tmp, mode)` creates a temporary file `.NAME.tether-HEX.tmp` beside
 * `p` (with `mode`, or else the permission bits `p` has now, when it exists), which is then
 * renamed over `p` ({@link renameOver}). On failure the temporary file is removed (the REMOVE
 * awaited at most 5 s) and the target is untouched.
 */
export async function replaceAtomically(
  s: SftpSession,
  p: RemotePath,
  mode: number | undefined,
  signal: AbortSignal,
  write: (tmp: RemotePath, mode: number | undefined) => Promise<void>,
): Promise<void> {
  let keepMode = mode;
  if (keepMode === undefined) {
    const st = await s.stat(p, signal).catch(() => undefined);
    if (st?.mode !== undefined) keepMode = st.mode & 0o7777;
  }
  const tmp = joinRemote(parentOf(p), Buffer.concat([Buffer.from('.'), baseOf(p), Buffer.from(`.tether-${randomBytes(6).toString('hex')}.tmp`)]));
  try {
    await write(tmp, keepMode);
    await renameOver(s, tmp, p, true, signal);
  } catch (err) {
    if (s.alive) await settleWithin(s.remove(tmp), CLOSE_TIMEOUT_MS, signal);
    throw err;
  }
}
