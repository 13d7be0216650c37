/**
 * Path confinement for the in-process server's SFTP: every path must lie inside `root` after
 * resolving `..` and symbolic links. Relative paths resolve against `root`.
 *
 * The checks are done before each operation (realpath of the parent + lstat of the last
 * component, following symlinks when the operation does); a concurrent local process that swaps
 * a directory for a symlink between the check and the use is not defended against (this is a
 * test server, not a sandbox). Files are opened with `O_NOFOLLOW` after the check.
 */
import { lstat, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';

/** A path refused because it leaves the root (mapped to SSH_FX_PERMISSION_DENIED). */
export class OutsideRootError extends Error {
  readonly code = 'EOUTSIDEROOT';
  constructor(p: string) {
    super(`path is outside the server root: ${p}`);
  }
}

/** Symlink hops followed before giving up (Linux's MAXSYMLINKS). */
const MAX_HOPS = 40;

/** Whether `p` (absolute, normalized) is `root` or lies below it. */
export function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root === '/' ? '/' : `${root}/`);
}

function errnoError(code: string, p: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${p}`);
  err.code = code;
  return err;
}

/**
 * Resolves `p` to a real absolute path inside `root` (which must itself be a real path).
 *
 * @param root - the confinement root (already realpath'd).
 * @param p - the path as the client sent it (absolute, or relative to `root`).
 * @param follow - follow a symlink in the last component (stat/open/opendir), or not (lstat, remove,
 *   rename, readlink, symlink, hardlink). A dangling symlink being followed resolves to where its
 *   target would be (so `open(O_CREAT)` through it is checked too).
 * @returns the real path; the last component may not exist.
 * @throws {@link OutsideRootError} when the path or a symlink on it leaves `root`; an errno error
 *   (`ENOENT`, `ENOTDIR`, `ELOOP`) when a parent directory does not resolve.
 */
export async function resolveInside(root: string, p: string, follow: boolean): Promise<string> {
  let abs = path.resolve(root, p);
  for (let hop = 0; hop <= MAX_HOPS; hop++) {
    if (!isInside(root, abs)) throw new OutsideRootError(p);
    if (abs === root) return root;
    const parent = await realpath(path.dirname(abs));
    if (!isInside(root, parent)) throw new OutsideRootError(p);
    const full = path.join(parent, path.basename(abs));
    if (!follow) return full;
    let isLink: boolean;
    try {
      isLink = (await lstat(full)).isSymbolicLink();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return full;
      throw err;
    }
    if (!isLink) return full;
    const target = await readlink(full);
    abs = path.resolve(parent, target);
  }
  throw errnoError('ELOOP', p);
}
