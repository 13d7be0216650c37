/**
 * Pieces shared by the thin operations (sftp/client.ts) and the transfers (sftp/transfer.ts):
 * directory listing, `mkdir -p`, bounded handle close, bounded parallel runs, and the errors
 * both raise.
 *
 * @internal
 * @module sftp/ops
 */
import pLimit from 'p-limit';
import { SshError } from '../errors.js';
import type { WalkEntry } from './dir-walk.js';
import { SftpStatus, SshSftpError, type SftpErrorReason } from './errors.js';
import { joinBytes, parentOf, showPath, toBytes, toStats, typeOfMode, type SftpEntry } from './paths.js';
import type { SftpSession } from './session.js';
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
export async function readDir(s: SftpSession, dir: RemotePath, signal: AbortSignal, count: (n: number) => void, each: (name: Buffer, attrs: RawAttrs) => void): Promise<void> {
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

/** Lists `dir` for a walk: only what the walk needs (name, type, size), no per-entry objects beyond that. */
export async function listLean(s: SftpSession, dir: RemotePath, signal: AbortSignal, count: (n: number) => void): Promise<WalkEntry[]> {
  const out: WalkEntry[] = [];
  await readDir(s, dir, signal, count, (rawName, attrs) => {
    out.push({ rawName, type: typeOfMode(attrs.mode), size: attrs.size ?? 0 });
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
