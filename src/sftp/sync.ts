/**
 * Directory sync for `getDir`/`putDir`: rsync's "quick check" without rsync on the server.
 *
 * - {@link planSync} compares the source tree with the destination tree and decides, per file,
 *   copy or skip (`compare: 'size-mtime'` as rsync's default quick check, whole seconds;
 *   `'checksum'` as `rsync -c`, SHA-256), and which destination entries `delete` removes
 *   (as `rsync --delete`: entries the source does not have; entries the caller's filter leaves
 *   out are protected, as rsync's excludes protect receiver files).
 * - {@link RemoteHasher} hashes remote files with `sha256sum` (GNU coreutils) or `shasum -a 256`
 *   (Perl) run over exec, many files per command, and falls back to reading the file over SFTP
 *   when no exec is available or the tool is missing.
 * - {@link removeLocalEntry} / {@link removeRemoteEntry} delete one planned entry, confined to the
 *   destination directory (every path is the root joined with safe components found by the walk,
 *   which never follows a symlink; locally the parent is also resolved and checked).
 * - {@link walkEntries}: the streaming walk behind `SftpClient.walk` ({@link walkRemote} runs it over SFTP).
 *
 * Own code rather than a package: the npm rsync wrappers spawn `rsync` (needed on both sides);
 * this compares over SFTP/exec only.
 *
 * @internal
 * @module sftp/sync
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { SshError } from '../errors.js';
import { relBytes, type TreeSource, type WalkedTree } from './dir-walk.js';
import { SftpStatus, SshSftpError } from './errors.js';
import { limitError, listEntries } from './ops.js';
import { isConfinedRel, isInsideDir, joinBytes, joinRemote, showName, toBytes, unsafeNameReason, type SftpEntry, type SftpEntryType } from './paths.js';
import { OpenFlags, type RemotePath, type SftpSession } from './session.js';
import type { RemoteCommand, SftpWalkEntry, SftpWarning, SyncCompare } from './types.js';
import { OrderedReader } from './streams.js';

/** The sync options of a directory transfer. */
export interface SyncSettings {
  compare: SyncCompare;
  delete: boolean;
  dryRun: boolean;
}

/** The sync settings of checked `getDir`/`putDir` options (sftp/options.ts checked them). */
export function syncSettings(o: { compare?: SyncCompare | undefined; delete?: boolean | undefined; dryRun?: boolean | undefined }): SyncSettings {
  return { compare: o.compare ?? 'always', delete: o.delete ?? false, dryRun: o.dryRun ?? false };
}

/** Whether the destination tree must be walked (to compare or to delete). */
export function needsDestination(settings: SyncSettings): boolean {
  return settings.compare !== 'always' || settings.delete;
}

/** A destination entry `delete` removes (relative path held as latin1, see {@link WalkedTree}). */
export interface PlannedRemoval {
  rel: string;
  type: SftpEntryType;
}

/** What {@link planSync} decided. Relative paths are latin1 strings, as in {@link WalkedTree}. */
export interface SyncPlan {
  /** Source files to copy. */
  copy: WalkedTree['files'];
  /** Source files left alone: the destination already matches. */
  unchanged: string[];
  /**
   * Destination entries to remove (only with `delete`): every non-directory first, then the
   * directories, deepest first, so each directory is empty when its turn comes.
   */
  remove: PlannedRemoval[];
}

/**
 * Hashes files on both sides. `same(candidates)` resolves with the relative paths (latin1) whose
 * source and destination contents hash the same.
 */
export type SameContent = (candidates: readonly string[]) => Promise<Set<string>>;

/**
 * Compares the source tree with the destination tree (`undefined`: the destination does not
 * exist yet).
 *
 * - `'always'`: every source file is copied.
 * - `'size-mtime'`: a file is unchanged when the destination holds a regular file of the same
 *   size and the same modification time in whole seconds (rsync's quick check; both sides must
 *   state the time).
 * - `'checksum'`: a file is unchanged when the destination holds a regular file of the same size
 *   whose SHA-256 matches (`same`).
 *
 * With `delete`, a destination entry is removed when the source has nothing at its path, or has
 * a file where the destination has a directory, a directory where it has a file, or a file
 * where it has a symlink or special file (so that the copy creates a regular file rather than
 * write through a link); everything below a removed directory is removed too. A source symlink
 * or special file (not copied) keeps whatever the destination has at its path.
 */
export async function planSync(src: WalkedTree, dest: WalkedTree | undefined, settings: SyncSettings, same: SameContent): Promise<SyncPlan> {
  const remove: PlannedRemoval[] = [];
  const removedDirs = new Set<string>();
  const srcFiles = new Set(src.files.map((f) => f.rel));
  const srcDirs = new Set(src.dirs);
  const srcOthers = new Set(src.others.map((o) => o.rel));
  if (dest && settings.delete) {
    const underRemoved = (rel: string): boolean => {
      const at = rel.lastIndexOf('/');
      return at > 0 && removedDirs.has(rel.slice(0, at));
    };
    // dest.dirs is breadth first: a parent is decided before its children
    for (const d of dest.dirs) {
      if (underRemoved(d) || (!srcDirs.has(d) && !srcOthers.has(d))) removedDirs.add(d);
    }
    for (const f of dest.files) {
      if (underRemoved(f.rel) || !(srcFiles.has(f.rel) || srcOthers.has(f.rel))) remove.push({ rel: f.rel, type: 'file' });
    }
    for (const o of dest.others) {
      if (underRemoved(o.rel) || !srcOthers.has(o.rel)) remove.push({ rel: o.rel, type: o.type });
    }
    for (let i = dest.dirs.length - 1; i >= 0; i--) {
      const d = dest.dirs[i]!;
      if (removedDirs.has(d)) remove.push({ rel: d, type: 'directory' });
    }
  }
  if (settings.compare === 'always' || !dest) return { copy: src.files, unchanged: [], remove };

  const removedFiles = new Set(remove.filter((r) => r.type === 'file').map((r) => r.rel));
  const destFiles = new Map<string, { size: number; mtime?: number | undefined }>();
  for (const f of dest.files) if (!removedFiles.has(f.rel)) destFiles.set(f.rel, f);
  const copy: WalkedTree['files'] = [];
  const unchanged: string[] = [];
  const candidates: WalkedTree['files'] = [];
  for (const f of src.files) {
    const d = destFiles.get(f.rel);
    if (!d || d.size !== f.size) copy.push(f);
    else if (settings.compare === 'size-mtime') {
      if (f.mtime !== undefined && d.mtime !== undefined && f.mtime === d.mtime) unchanged.push(f.rel);
      else copy.push(f);
    } else candidates.push(f);
  }
  if (candidates.length > 0) {
    const equal = await same(candidates.map((c) => c.rel));
    for (const f of candidates) {
      if (equal.has(f.rel)) unchanged.push(f.rel);
      else copy.push(f);
    }
  }
  return { copy, unchanged, remove };
}

// ---------------------------------------------------------------------------------------------
// trees

/**
 * A local directory tree for {@link walkTree}: `fs.readdir` with file types (symlinks are
 * reported as such, never followed), sizes and whole-second mtimes from `lstat`, loops told by
 * device and inode.
 */
export function localTreeSource(root: Buffer, limit: (what: string) => Error): TreeSource {
  const abs = (rel: Buffer): Buffer => (rel.length === 0 ? root : joinBytes(root, rel));
  return {
    list: async (rel, count) => {
      // a local directory is not server input: counted once read
      const entries = await fsp.readdir(abs(rel), { withFileTypes: true, encoding: 'buffer' });
      count(entries.length);
      return entries.map((e) => ({
        rawName: e.name,
        type: e.isDirectory() ? 'directory' : e.isFile() ? 'file' : e.isSymbolicLink() ? 'symlink' : 'other',
        size: 0,
      }));
    },
    fileStat: async (rel) => {
      const st = await fsp.lstat(abs(rel));
      return { size: st.size, mtime: Math.floor(st.mtimeMs / 1000) };
    },
    identity: async (rel) => {
      const st = await fsp.stat(abs(rel), { bigint: true });
      return `${st.dev}:${st.ino}`;
    },
    limit,
  };
}

// ---------------------------------------------------------------------------------------------
// hashing

/** Files hashed at once on one side when reading them (locally, or over SFTP). */
const HASH_PARALLEL = 8;
/** Files per `sha256sum` command, and the most bytes of paths in one command line. */
const HASH_BATCH_FILES = 256;
const HASH_BATCH_BYTES = 64 * 1024;
/** Largest output accepted from one hash command (a hostile server could send more). */
const HASH_MAX_OUTPUT = 4 * 1024 * 1024;


/** The SHA-256 of local files (`undefined` for a file that cannot be read). `noFollow`: open with O_NOFOLLOW. */
export async function hashLocalFiles(root: Buffer, rels: readonly string[], noFollow: boolean, signal: AbortSignal): Promise<(Buffer | undefined)[]> {
  const out: (Buffer | undefined)[] = new Array<Buffer | undefined>(rels.length).fill(undefined);
  await eachLimited(rels.length, HASH_PARALLEL, signal, async (i) => {
    out[i] = await hashLocalFile(joinBytes(root, relBytes(rels[i]!)), noFollow).catch(() => undefined);
  });
  return out;
}

async function hashLocalFile(p: Buffer, noFollow: boolean): Promise<Buffer> {
  const fh = await fsp.open(p, fs.constants.O_RDONLY | (noFollow ? fs.constants.O_NOFOLLOW : 0));
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(256 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
    return h.digest();
  } finally {
    await fh.close();
  }
}

/**
 * Parses the output of `sha256sum -- f1 f2 ...` / `shasum -a 256 -- ...`: one line per file
 * read, in argument order (`<64 hex>  <name>`, or `<64 hex> *<name>` in binary mode; GNU
 * prefixes the line with `\` and escapes `\`, newline and CR in the name when the name holds
 * one). A file the tool could not read has no line (its error goes to stderr). Every line is
 * matched to its argument by name, so a missing line or a name written differently leaves that
 * file `undefined` (it is then hashed over SFTP), never paired with another file's hash.
 *
 * @param stdout - the command's output (untrusted: only lines of the exact form are used).
 * @param names - the exact bytes of each argument, in order.
 */
export function parseShaOutput(stdout: Buffer, names: readonly Buffer[]): (Buffer | undefined)[] {
  const out: (Buffer | undefined)[] = new Array<Buffer | undefined>(names.length).fill(undefined);
  const wanted = names.map((n) => n.toString('latin1'));
  let next = 0;
  const text = stdout.toString('latin1');
  for (const line of text.split('\n')) {
    if (next >= wanted.length) break;
    const m = /^(\\?)([0-9a-f]{64}) [ *]([^]*)$/.exec(line);
    if (!m) continue;
    let name = m[3]!;
    if (m[1] === '\\') {
      // GNU escaping: \\ -> \, \n -> newline, \r -> CR; anything else is not ours
      let ok = true;
      name = name.replace(/\\(.?)/g, (_, c: string) => {
        if (c === '\\') return '\\';
        if (c === 'n') return '\n';
        if (c === 'r') return '\r';
        ok = false;
        return '';
      });
      if (!ok) continue;
    }
    // the tool skips files it cannot read: find the argument this line belongs to
    const at = wanted.indexOf(name, next);
    if (at < 0) continue;
    out[at] = Buffer.from(m[2]!, 'hex');
    next = at + 1;
  }
  return out;
}

/**
 * Hashes remote files: with a {@link RemoteCommand}, `sha256sum` (else `shasum -a 256`) over
 * exec, up to 256 files (64 KiB of paths) per command; the tool found is remembered. Files the
 * tool did not report, paths that are not UTF-8 (an exec command line is text), and every file
 * when there is no exec or no tool are read over SFTP instead (8 at a time).
 */
export class RemoteHasher {
  /** The tool that worked, `null` when none did (or exec failed), `undefined` before the first try. */
  private tool: readonly string[] | null | undefined;
  /** Paths hashed over exec and over SFTP, for tests and the bench. */
  readonly counts = { exec: 0, sftp: 0 };

  constructor(private readonly run: RemoteCommand | undefined) {
    if (!run) this.tool = null;
  }

  /**
   * SHA-256 of each file `root/rel` (`undefined` for one that could not be read).
   * @param s - the SFTP session (for the canonical root and for the fallback reads).
   * @param sizes - each file's size from the walk: a fallback read stops one byte past it.
   */
  async hash(s: SftpSession, root: RemotePath, rels: readonly string[], sizes: readonly number[], signal: AbortSignal): Promise<(Buffer | undefined)[]> {
    const out: (Buffer | undefined)[] = new Array<Buffer | undefined>(rels.length).fill(undefined);
    const paths = rels.map((r) => joinBytes(toBytes(root), relBytes(r)));
    if (this.tool !== null && this.run) {
      // absolute paths: the exec shell starts in the login directory, SFTP's relative paths too,
      // but a canonical root leaves no doubt
      const real = await s.realpath(root, signal).catch(() => undefined);
      if (real) {
        const abs = rels.map((r) => joinBytes(real, relBytes(r)));
        const text = abs.map((p) => {
          const t = p.toString('utf8');
          return Buffer.from(t, 'utf8').equals(p) && !t.includes('\0') ? t : undefined;
        });
        let i = 0;
        while (i < abs.length && this.tool !== null) {
          const batch: number[] = [];
          let bytes = 0;
          for (; i < abs.length && batch.length < HASH_BATCH_FILES && bytes < HASH_BATCH_BYTES; i++) {
            if (text[i] === undefined) continue;
            batch.push(i);
            bytes += abs[i]!.length;
          }
          if (batch.length === 0) continue;
          const got = await this.runBatch(
            batch.map((b) => text[b]!),
            batch.map((b) => abs[b]!),
            signal,
          );
          if (got) batch.forEach((b, k) => (out[b] = got[k]));
        }
      }
    }
    const missing = out.flatMap((h, i) => (h === undefined ? [i] : []));
    this.counts.exec += rels.length - missing.length;
    this.counts.sftp += missing.length;
    await eachLimited(missing.length, HASH_PARALLEL, signal, async (k) => {
      const i = missing[k]!;
      out[i] = await hashRemoteFile(s, paths[i]!, sizes[i]!, signal).catch((err: unknown) => {
        if (!(err instanceof SshSftpError)) throw err;
        return undefined;
      });
    });
    return out;
  }

  /** One command; `undefined` when no tool works (then `tool` is `null`). */
  private async runBatch(args: string[], names: Buffer[], signal: AbortSignal): Promise<(Buffer | undefined)[] | undefined> {
    const tools: (readonly string[])[] = this.tool ? [this.tool] : [['sha256sum'], ['shasum', '-a', '256']];
    for (const tool of tools) {
      let res: { stdout: Buffer; exitCode: number | null };
      try {
        res = await this.run!([...tool, '--', ...args], { signal, maxBufferBytes: HASH_MAX_OUTPUT });
      } catch (err) {
        if (signal.aborted || !(err instanceof SshError) || err.code === 'ERR_SSH_CONNECTION_LOST' || err.code === 'ERR_SSH_CLOSED') throw err;
        // exec refused (a server with SFTP only), output too large...: read over SFTP
        this.tool = null;
        return undefined;
      }
      // 127: not found (POSIX sh); 126: not executable. 1: some file unreadable (others printed)
      if (res.exitCode === 127 || res.exitCode === 126) continue;
      this.tool = tool;
      return parseShaOutput(res.stdout, names);
    }
    this.tool = null;
    return undefined;
  }
}

/** SHA-256 of a remote file read over SFTP, at most `size + 1` bytes (a longer file differs anyway). */
async function hashRemoteFile(s: SftpSession, p: RemotePath, size: number, signal: AbortSignal): Promise<Buffer> {
  const handle = await s.open(p, OpenFlags.READ, undefined, signal);
  let ok = false;
  try {
    const h = createHash('sha256');
    const reader = new OrderedReader(s, handle, p, 0, size + 1, s.maxReadLen, 16, signal);
    try {
      // bounded: at most size + 1 bytes, at least one byte per chunk
      for (let i = 0; i <= size + 1; i++) {
        const chunk = await reader.next();
        if (chunk === null) break;
        h.update(chunk);
      }
    } finally {
      reader.dispose();
    }
    ok = true;
    return h.digest();
  } finally {
    if (ok) await s.close(handle, p, signal);
    else s.closeQuietly(handle);
  }
}

/** Runs `fn(0..n-1)`, at most `limit` at a time; stops starting new ones once `signal` aborts. */
async function eachLimited(n: number, limit: number, signal: AbortSignal, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n && !signal.aborted) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, n)) }, worker));
}

// ---------------------------------------------------------------------------------------------
// deleting

function refuse(what: string, rel: Buffer): SshSftpError {
  return new SshSftpError(`sftp ${what}: refusing to delete ${JSON.stringify(showName(rel))} (outside the destination directory)`, {
    statusCode: SftpStatus.FAILURE,
    path: rel,
    reason: 'unsafe-name',
  });
}

/**
 * Removes one planned entry below the local directory whose canonical path is `rootReal`: the
 * relative path must be made of safe components, and its parent must resolve (`realpath`)
 * inside the root, so a directory swapped for a symlink since the walk is not followed. A
 * symlink is removed itself (`unlink`), never followed; a directory must be empty (`rmdir`).
 */
export async function removeLocalEntry(root: Buffer, rootReal: Buffer, entry: PlannedRemoval): Promise<void> {
  const rel = relBytes(entry.rel);
  if (!isConfinedRel(rel)) throw refuse('getDir', rel);
  const abs = joinBytes(root, rel);
  const at = rel.lastIndexOf(0x2f);
  const parent = at < 0 ? root : joinBytes(root, rel.subarray(0, at));
  const parentReal = await fsp.realpath(parent, { encoding: 'buffer' });
  if (!isInsideDir(rootReal, parentReal)) throw refuse('getDir', rel);
  if (entry.type === 'directory') await fsp.rmdir(abs);
  else await fsp.unlink(abs);
}

/**
 * Removes one planned entry below the remote directory `root` (SSH_FXP_REMOVE for a file,
 * symlink or special file, which removes a symlink itself; SSH_FXP_RMDIR for an empty
 * directory). The relative path must be made of safe components.
 */
export async function removeRemoteEntry(s: SftpSession, root: RemotePath, entry: PlannedRemoval, signal: AbortSignal): Promise<void> {
  const rel = relBytes(entry.rel);
  if (!isConfinedRel(rel)) throw refuse('putDir', rel);
  const p = joinRemote(root, rel);
  if (entry.type === 'directory') await s.rmdir(p, signal);
  else await s.remove(p, signal);
}

// ---------------------------------------------------------------------------------------------
// walk

/** What {@link walkEntries} needs from the client. */
export interface WalkHooks {
  /** Lists the directory `abs` (its entries' `rawName` and stats; `count(n)` as names arrive) and tells its canonical path. */
  list(abs: RemotePath, count: (n: number) => void): Promise<{ entries: SftpEntry[]; identity: string | undefined }>;
  /** The error for a limit or a loop. */
  limit(what: string): Error;
  /** Reports a name refused as unsafe. */
  onUnsafe(rel: Buffer, why: string): void;
}

/** Options of {@link walkEntries}, checked. */
export interface WalkSettings {
  filter: ((entry: SftpWalkEntry) => boolean) | RegExp | undefined;
  maxEntries: number;
  maxDepth: number;
}

/**
 * Walks `dir` breadth first, one directory listing at a time, yielding each entry with its path
 * relative to `dir`. Symlinks are yielded as `'symlink'` entries and never followed; a name that
 * is not one safe path component is skipped (`onUnsafe`); a directory met twice (same canonical
 * path) or deeper than `maxDepth`, or more than `maxEntries` names, throws `limit()`.
 */
export async function* walkEntries(dir: RemotePath, settings: WalkSettings, hooks: WalkHooks): AsyncGenerator<SftpWalkEntry, void, undefined> {
  const root = toBytes(dir);
  let seen = 0;
  const count = (n: number): void => {
    seen += n;
    if (seen > settings.maxEntries) throw hooks.limit(`more than maxEntries (${settings.maxEntries}) entries`);
  };
  const ids = new Set<string>();
  const queue: { rel: Buffer; depth: number }[] = [{ rel: Buffer.alloc(0), depth: 0 }];
  const { filter } = settings;
  for (let head = 0; head < queue.length; head++) {
    const { rel, depth } = queue[head]!;
    queue[head] = { rel: Buffer.alloc(0), depth: 0 }; // drop the reference: the queue only grows
    const abs = rel.length === 0 ? root : joinBytes(root, rel);
    const { entries, identity } = await hooks.list(abs, count);
    if (identity !== undefined) {
      if (ids.has(identity)) throw hooks.limit(`directory loop: ${JSON.stringify(showName(rel))} is a directory already walked`);
      ids.add(identity);
    }
    for (const e of entries) {
      const relPath = rel.length === 0 ? e.rawName : joinBytes(rel, e.rawName);
      const why = unsafeNameReason(e.rawName);
      if (why !== undefined) {
        hooks.onUnsafe(relPath, why);
        continue;
      }
      const full = joinBytes(root, relPath);
      const entry: SftpWalkEntry = { ...e, path: relPath.toString('utf8'), rawPath: relPath, fullPath: full.toString('utf8'), rawFullPath: full, depth: depth + 1 };
      let yieldIt = true;
      let descend = e.type === 'directory';
      if (typeof filter === 'function') {
        yieldIt = filter(entry);
        descend &&= yieldIt;
      } else if (filter) {
        filter.lastIndex = 0;
        yieldIt = filter.test(entry.path);
      }
      if (descend) {
        if (depth + 1 > settings.maxDepth) throw hooks.limit(`deeper than maxDepth (${settings.maxDepth}) at ${JSON.stringify(showName(relPath))}`);
        queue.push({ rel: relPath, depth: depth + 1 });
      }
      if (yieldIt) yield entry;
    }
  }
}

/**
 * `SftpClient.walk`: {@link walkEntries} over SFTP. Each directory is listed (OPENDIR/READDIR,
 * with its REALPATH as the loop guard's identity) by `run`, one client operation per listing, so
 * no handle stays open between listings and a reconnect between two listings opens a new session.
 * Unsafe names are reported to `warn` (operation `'walk'`); limits and loops throw
 * `ERR_SSH_SFTP` `reason: 'limit'`.
 */
export function walkRemote(
  dir: RemotePath,
  settings: WalkSettings,
  run: <T>(fn: (s: SftpSession, signal: AbortSignal) => Promise<T>) => Promise<T>,
  warn: (w: SftpWarning) => void,
): AsyncGenerator<SftpWalkEntry, void, undefined> {
  return walkEntries(dir, settings, {
    list: (abs, count) =>
      run(async (s, sig) => {
        const [entries, real] = await Promise.all([listEntries(s, abs, sig, count), s.realpath(abs, sig).catch(() => undefined)]);
        return { entries, identity: real?.toString('latin1') };
      }),
    limit: (what) => limitError('walk', what, dir),
    onUnsafe: (rel, why) => {
      warn({
        reason: 'unsafe-name',
        operation: 'walk',
        path: rel.toString('utf8'),
        rawPath: rel,
        message: `sftp walk ${JSON.stringify(showName(toBytes(dir)))}: skipped ${JSON.stringify(showName(rel))}: ${why} (a name that could leave the walked directory)`,
      });
    },
  });
}
