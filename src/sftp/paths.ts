/**
 * Remote path helpers (POSIX `/` separated; strings or raw bytes) and attribute conversion.
 *
 * @internal
 * @module sftp/paths
 */
import type { RawAttrs, RemotePath } from './wire.js';

/** What a directory entry or stat result is. */
export type SftpEntryType = 'file' | 'directory' | 'symlink' | 'other';

/**
 * File metadata, from SFTP v3 ATTRS (draft-ietf-secsh-filexfer-02 section 5). Fields the server
 * did not send are 0 (times: the epoch).
 */
export interface SftpStats {
  /** `'file'`, `'directory'`, `'symlink'` (only from `lstat`/`list`) or `'other'`. */
  type: SftpEntryType;
  /** Size in bytes. */
  size: number;
  /** The full `st_mode` (file type bits and permission bits, e.g. `0o100644`). */
  mode: number;
  /** Last modification time (SFTP v3 carries whole seconds). */
  mtime: Date;
  /** Last access time (whole seconds). */
  atime: Date;
  /** Owner user id. */
  uid: number;
  /** Owner group id. */
  gid: number;
}

/** One directory entry, as returned by `list()`. Symlinks are reported as such, not followed. */
export interface SftpEntry extends SftpStats {
  /** The entry's name, decoded as UTF-8 (invalid bytes become U+FFFD; see `rawName`). */
  name: string;
  /** The directory path joined with the name, decoded as UTF-8 (see `rawPath`). */
  path: string;
  /** The exact bytes of the name, as the server sent them. */
  rawName: Buffer;
  /** The exact bytes of the path: pass it back to any method to address this entry. */
  rawPath: Buffer;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** Entry type from `st_mode`. */
export function typeOfMode(mode: number | undefined): SftpEntryType {
  if (mode === undefined) return 'other';
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'directory';
    case S_IFLNK:
      return 'symlink';
    default:
      return 'other';
  }
}

/** Converts raw ATTRS to {@link SftpStats}. */
export function toStats(a: RawAttrs): SftpStats {
  return {
    type: typeOfMode(a.mode),
    size: a.size ?? 0,
    mode: a.mode ?? 0,
    mtime: new Date((a.mtime ?? 0) * 1000),
    atime: new Date((a.atime ?? 0) * 1000),
    uid: a.uid ?? 0,
    gid: a.gid ?? 0,
  };
}

const SLASH = 0x2f;

/** Bytes of a remote path. */
export function toBytes(p: RemotePath): Buffer {
  return Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8');
}

/** Joins a directory and a name with one `/` (keeps strings as strings when both are). */
export function joinRemote(dir: RemotePath, name: RemotePath): RemotePath {
  if (typeof dir === 'string' && typeof name === 'string') {
    if (dir === '') return name;
    return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
  }
  const d = toBytes(dir);
  const n = toBytes(name);
  if (d.length === 0) return n;
  return d[d.length - 1] === SLASH ? Buffer.concat([d, n]) : Buffer.concat([d, Buffer.from('/'), n]);
}

/** Joins raw bytes: `dir/name`. */
export function joinBytes(dir: Buffer, name: Buffer): Buffer {
  const j = joinRemote(dir, name);
  return Buffer.isBuffer(j) ? j : Buffer.from(j, 'utf8');
}

/** The parent directory of a remote path (`'/'` for `/x`, `'.'` for `x`). */
export function parentOf(p: RemotePath): RemotePath {
  const b = toBytes(p);
  let end = b.length;
  while (end > 1 && b[end - 1] === SLASH) end--;
  const idx = b.lastIndexOf(SLASH, end - 1);
  const out = idx < 0 ? Buffer.from('.') : idx === 0 ? Buffer.from('/') : b.subarray(0, idx);
  return typeof p === 'string' ? out.toString('utf8') : out;
}

/** The last component of a remote path. */
export function baseOf(p: RemotePath): Buffer {
  const b = toBytes(p);
  let end = b.length;
  while (end > 1 && b[end - 1] === SLASH) end--;
  const idx = b.lastIndexOf(SLASH, end - 1);
  return b.subarray(idx + 1, end);
}

/** Displays a path (for messages). */
export function showPath(p: RemotePath): string {
  return Buffer.isBuffer(p) ? p.toString('utf8') : p;
}

const NUL = 0x00;
const DOT = 0x2e;
const BACKSLASH = 0x5c;

/**
 * Why `name` (one directory entry name sent by the server, or one local name) cannot be used as
 * a single path component below a target directory, or `undefined` when it can.
 *
 * Unsafe: empty, `.` or `..`, containing `/` or NUL, and on Windows (`windows`) containing `\`.
 * This follows OpenSSH's sftp, which refuses a READDIR name holding `/` ("Server sent suspect
 * path", sftp-client.c `download_dir_internal`, the fix for CVE-2019-6111's class of attacks
 * where a server names an entry `../x` to write outside the target).
 *
 * @param name - the raw bytes (or a string, taken as UTF-8).
 * @param windows - also refuse `\` (default: `process.platform === 'win32'`).
 */
export function unsafeNameReason(name: Buffer | string, windows = process.platform === 'win32'): string | undefined {
  const b = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  if (b.length === 0) return 'empty name';
  if (b.length === 1 && b[0] === DOT) return "the name '.'";
  if (b.length === 2 && b[0] === DOT && b[1] === DOT) return "the name '..'";
  if (b.includes(SLASH)) return "contains '/'";
  if (b.includes(NUL)) return 'contains NUL';
  if (windows && b.includes(BACKSLASH)) return "contains '\\'";
  return undefined;
}

/** Whether `name` is safe as one path component (see {@link unsafeNameReason}). */
export function isSafeName(name: Buffer | string, windows = process.platform === 'win32'): boolean {
  return unsafeNameReason(name, windows) === undefined;
}

/**
 * Whether the relative path `rel` (`/`-separated bytes) stays inside the directory it is relative
 * to: every component is a safe name ({@link isSafeName}), so no `..`, no absolute path, no empty
 * component. The lexical half of the second line of defence of `getDir`/`putDir`.
 */
export function isConfinedRel(rel: Buffer, windows = process.platform === 'win32'): boolean {
  if (rel.length === 0) return false;
  let from = 0;
  for (;;) {
    const at = rel.indexOf(SLASH, from);
    const part = rel.subarray(from, at < 0 ? rel.length : at);
    if (!isSafeName(part, windows)) return false;
    if (at < 0) return true;
    from = at + 1;
  }
}

/**
 * Whether the absolute, resolved local path `p` is `root` itself or lies below it (byte prefix
 * followed by the separator). Both must already be canonical (`fs.realpath`).
 */
export function isInsideDir(root: Buffer, p: Buffer, sep = process.platform === 'win32' ? BACKSLASH : SLASH): boolean {
  if (p.equals(root)) return true;
  const base = root.length > 0 && root[root.length - 1] === sep ? root.length - 1 : root.length;
  return p.length > base + 1 && p.subarray(0, base).equals(root.subarray(0, base)) && p[base] === sep;
}

/** Escapes control characters (C0, DEL, C1) of a name for a message: `\xNN`. */
export function showName(name: Buffer | string): string {
  const s = typeof name === 'string' ? name : name.toString('utf8');
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
