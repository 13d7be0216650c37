/**
 * The source-tree walk shared by `getDir` and `putDir`: breadth first, bounded in the number of
 * entries (counted as names arrive, not after a directory was gathered), in depth, and guarded
 * against directory loops; every name is checked to be one safe path component before it is
 * used, and the caller's `filter` is applied to every entry. Only the listing differs between
 * the two directions (remote `readdir` or local `fs.readdir`), so it is passed in.
 *
 * @internal
 * @module sftp/dir-walk
 */
import type { DirFilterEntry, DirTransferSummary } from './client.js';
import { joinBytes, showName, unsafeNameReason, type SftpEntryType } from './paths.js';

/** Default of `maxEntries`: names one walk (or one listing) may see before it fails. */
export const DEFAULT_MAX_ENTRIES = 1_000_000;
/** Default of `maxDepth`: directory levels below the root a walk may enter. */
export const DEFAULT_MAX_DEPTH = 256;

/** One entry of a listed directory, as the walk needs it (an `SftpEntry` is one). */
export interface WalkEntry {
  /** Exact bytes of the entry's name. */
  rawName: Buffer;
  type: SftpEntryType;
  /** The file's size (not read when the source has {@link TreeSource.fileSize}). */
  size: number;
}

/** How to read one side's tree. */
export interface TreeSource {
  /**
   * Lists the directory at `rel`, relative to the root (empty for the root itself), calling
   * `count(n)` as each batch of `n` names arrives (it throws once the walk's budget is spent, so a
   * directory that never ends is cut as it streams in).
   */
  list(rel: Buffer, count: (n: number) => void): Promise<readonly WalkEntry[]>;
  /** Size of the file at `rel`, for a listing that does not give sizes. */
  fileSize?: ((rel: Buffer) => Promise<number>) | undefined;
  /**
   * A key naming the directory at `rel` itself (its canonical path, or device and inode): two
   * directories with the same key are the same, so the walk is in a loop. Optional.
   */
  identity?: ((rel: Buffer) => Promise<string | undefined>) | undefined;
  /** The error to throw when a limit is reached (`what` says which). */
  limit(what: string): Error;
}

/** What the walk may do, and what it reports on the side. */
export interface WalkLimits {
  /** Names the whole walk may see. */
  maxEntries: number;
  /** The deepest directory level it may enter (the root's subdirectories are level 1). */
  maxDepth: number;
  /** The caller's filter. */
  filter?: ((entry: DirFilterEntry) => boolean) | undefined;
  /** Called for every name refused as unsafe (it is also listed in `skipped`). */
  onUnsafe?: ((path: Buffer, why: string) => void) | undefined;
}

/** What a walk found. Paths are relative to the root. */
export interface WalkedTree {
  /** Files to copy, with their sizes. */
  files: { rel: Buffer; size: number }[];
  /** Directories to create, parents before children. */
  dirs: Buffer[];
  /** Entries left out (by the filter, unsafe names, symlinks and special files), in walk order. */
  skipped: DirTransferSummary['skipped'];
}

/**
 * Walks the tree of `source` breadth first, offering each entry to `limits.filter`. A name that
 * is not one safe path component ({@link unsafeNameReason}) is never used: it is listed in
 * `skipped` with reason `'unsafe-name'` and reported to `onUnsafe`.
 *
 * @throws the source's `limit()` error once more than `maxEntries` names arrived, a directory lies
 *   deeper than `maxDepth`, or a directory is met twice (same {@link TreeSource.identity}).
 */
export async function walkTree(source: TreeSource, limits: WalkLimits): Promise<WalkedTree> {
  const tree: WalkedTree = { files: [], dirs: [], skipped: [] };
  const queue: { rel: Buffer; depth: number }[] = [{ rel: Buffer.alloc(0), depth: 0 }];
  const seenDirs = new Set<string>();
  let seen = 0;
  const count = (n: number): void => {
    seen += n;
    if (seen > limits.maxEntries) throw source.limit(`more than maxEntries (${limits.maxEntries}) entries`);
  };
  for (let head = 0; head < queue.length; head++) {
    const { rel, depth } = queue[head]!;
    queue[head] = undefined as never; // let finished directories go
    const [entries, id] = await Promise.all([source.list(rel, count), source.identity ? source.identity(rel) : undefined]);
    if (id !== undefined) {
      if (seenDirs.has(id)) throw source.limit(`directory loop: ${JSON.stringify(showName(rel))} is a directory already walked`);
      seenDirs.add(id);
    }
    for (const e of entries) {
      const why = unsafeNameReason(e.rawName);
      const relPath = rel.length === 0 ? e.rawName : joinBytes(rel, e.rawName);
      if (why !== undefined) {
        tree.skipped.push({ path: relPath.toString('utf8'), reason: 'unsafe-name' });
        limits.onUnsafe?.(relPath, why);
        continue;
      }
      const size = e.type === 'file' && source.fileSize ? await source.fileSize(relPath) : e.size;
      const fe: DirFilterEntry = { path: relPath.toString('utf8'), rawPath: relPath, type: e.type, size };
      if (limits.filter && !limits.filter(fe)) {
        tree.skipped.push({ path: fe.path, reason: 'filter' });
        continue;
      }
      if (e.type === 'directory') {
        if (depth + 1 > limits.maxDepth) throw source.limit(`deeper than maxDepth (${limits.maxDepth}) at ${JSON.stringify(showName(relPath))}`);
        tree.dirs.push(relPath);
        queue.push({ rel: relPath, depth: depth + 1 });
      } else if (e.type === 'file') tree.files.push({ rel: relPath, size });
      else tree.skipped.push({ path: fe.path, reason: e.type === 'symlink' ? 'symlink' : 'other' });
    }
  }
  return tree;
}
