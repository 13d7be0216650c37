/**
 * The source-tree walk shared by `getDir` and `putDir`: breadth first, bounded in the number of
 * entries, with the caller's `filter` applied to every entry. Only the listing differs between
 * the two directions (remote `readdir` or local `fs.readdir`), so it is passed in.
 *
 * @internal
 * @module sftp/dir-walk
 */
import type { DirFilterEntry, DirTransferOptions, DirTransferSummary } from './client.js';
import { joinBytes, type SftpEntryType } from './paths.js';

/** Entries one walk may see before it gives up. */
const MAX_TREE_ENTRIES = 10_000_000;

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
  /** Lists the directory at `rel`, relative to the root (empty for the root itself). */
  list(rel: Buffer): Promise<readonly WalkEntry[]>;
  /** Size of the file at `rel`, for a listing that does not give sizes. */
  fileSize?: ((rel: Buffer) => Promise<number>) | undefined;
  /** The error to throw once the tree has more than `MAX_TREE_ENTRIES` entries. */
  tooMany(): Error;
}

/** What a walk found. Paths are relative to the root. */
export interface WalkedTree {
  /** Files to copy, with their sizes. */
  files: { rel: Buffer; size: number }[];
  /** Directories to create, parents before children. */
  dirs: Buffer[];
  /** Entries left out (by the filter, or symlinks and special files), in walk order. */
  skipped: DirTransferSummary['skipped'];
}

/** Walks the tree of `source` breadth first, offering each entry to `options.filter`. */
export async function walkTree(source: TreeSource, options: DirTransferOptions | undefined): Promise<WalkedTree> {
  const tree: WalkedTree = { files: [], dirs: [], skipped: [] };
  const queue: Buffer[] = [Buffer.alloc(0)];
  let seen = 0;
  while (queue.length > 0) {
    const rel = queue.shift()!;
    const entries = await source.list(rel);
    for (const e of entries) {
      if (++seen > MAX_TREE_ENTRIES) throw source.tooMany();
      const relPath = rel.length === 0 ? e.rawName : joinBytes(rel, e.rawName);
      const size = e.type === 'file' && source.fileSize ? await source.fileSize(relPath) : e.size;
      const fe: DirFilterEntry = { path: relPath.toString('utf8'), rawPath: relPath, type: e.type, size };
      if (options?.filter && !options.filter(fe)) {
        tree.skipped.push({ path: fe.path, reason: 'filter' });
        continue;
      }
      if (e.type === 'directory') {
        tree.dirs.push(relPath);
        queue.push(relPath);
      } else if (e.type === 'file') tree.files.push({ rel: relPath, size });
      else tree.skipped.push({ path: fe.path, reason: e.type === 'symlink' ? 'symlink' : 'other' });
    }
  }
  return tree;
}
