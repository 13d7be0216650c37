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
import type { DirFilterEntry, DirTransferSummary } from './types.js';
import { showName, unsafeNameReason, type SftpEntryType } from './paths.js';

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

/**
 * What a walk found. Paths are relative to the root, held as latin1 strings (one char per byte,
 * so any name survives; `Buffer.from(rel, 'latin1')` gives the bytes back): a string costs a
 * third of a Buffer, which matters at a million entries.
 */
export interface WalkedTree {
  /** Files to copy, with their sizes. */
  files: { rel: string; size: number }[];
  /** Directories to create, parents before children. */
  dirs: string[];
  /** Entries left out (by the filter, unsafe names, symlinks and special files), in walk order. */
  skipped: DirTransferSummary['skipped'];
}

/** The bytes of a relative path held as latin1 by {@link WalkedTree}. */
export function relBytes(rel: string): Buffer {
  return Buffer.from(rel, 'latin1');
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
  const seenDirs = new Set<string>();
  let seen = 0;
  const count = (n: number): void => {
    seen += n;
    if (seen > limits.maxEntries) throw source.limit(`more than maxEntries (${limits.maxEntries}) entries`);
  };
  // tree.dirs is the breadth-first queue itself (directories are listed in the order found);
  // depths run alongside
  const depths: number[] = [];
  for (let head = -1; head < tree.dirs.length; head++) {
    const rel = head < 0 ? '' : tree.dirs[head]!;
    const depth = head < 0 ? 0 : depths[head]!;
    const relB = relBytes(rel);
    const [entries, id] = await Promise.all([source.list(relB, count), source.identity ? source.identity(relB) : undefined]);
    if (id !== undefined) {
      if (seenDirs.has(id)) throw source.limit(`directory loop: ${JSON.stringify(showName(relB))} is a directory already walked`);
      seenDirs.add(id);
    }
    const prefix = rel.length === 0 ? '' : `${rel}/`;
    for (const e of entries) {
      const relPath = prefix + e.rawName.toString('latin1');
      const why = unsafeNameReason(e.rawName);
      if (why !== undefined) {
        const b = relBytes(relPath);
        tree.skipped.push({ path: b.toString('utf8'), reason: 'unsafe-name' });
        limits.onUnsafe?.(b, why);
        continue;
      }
      let size = e.size;
      if (e.type === 'file' && source.fileSize) size = await source.fileSize(relBytes(relPath));
      if (limits.filter) {
        const raw = relBytes(relPath);
        if (!limits.filter({ path: raw.toString('utf8'), rawPath: raw, type: e.type, size })) {
          tree.skipped.push({ path: raw.toString('utf8'), reason: 'filter' });
          continue;
        }
      }
      if (e.type === 'directory') {
        if (depth + 1 > limits.maxDepth) throw source.limit(`deeper than maxDepth (${limits.maxDepth}) at ${JSON.stringify(showName(relPath))}`);
        tree.dirs.push(relPath);
        depths.push(depth + 1);
      } else if (e.type === 'file') tree.files.push({ rel: relPath, size });
      else tree.skipped.push({ path: relBytes(relPath).toString('utf8'), reason: e.type === 'symlink' ? 'symlink' : 'other' });
    }
  }
  return tree;
}
