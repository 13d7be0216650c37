/**
 * Reading config files and expanding `Include` globs (ssh_config(5) `Include`).
 *
 * A small glob over `*` and `?` (no `[...]` classes) is written here: Node 20 has no
 * `fs.glob`, and OpenSSH's rules (per-segment wildcards, no match of a leading `.`, sorted
 * results, missing paths silently skipped) are a few lines on top of {@link matchGlobSegment}.
 *
 * @module config/ssh-config/files
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { SshConfigError } from '../../errors.js';
import { matchGlobSegment } from './patterns.js';

/** Largest config file read, in bytes. */
export const MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024;
/** Most directory entries one Include glob may produce. */
const MAX_GLOB_RESULTS = 4096;

function byteCompare(a: string, b: string): number {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return Buffer.compare(x, y);
}

function hasMagic(s: string): boolean {
  return /[*?]/.test(s);
}

/**
 * Expands an absolute path whose segments may hold `*` / `?` wildcards into the sorted list of
 * existing regular files (and other non-directories) it matches. Missing paths yield `[]`.
 */
export async function globFiles(pattern: string): Promise<string[]> {
  const segments = pattern.split('/');
  // Start from the longest prefix without wildcards.
  let firstMagic = segments.findIndex(hasMagic);
  if (firstMagic < 0) firstMagic = segments.length;
  let candidates = [segments.slice(0, firstMagic).join('/') || '/'];
  for (let i = firstMagic; i < segments.length; i++) {
    const seg = segments[i]!;
    const next: string[] = [];
    for (const dir of candidates) {
      if (seg === '') {
        next.push(dir);
        continue;
      }
      if (!hasMagic(seg)) {
        next.push(path.join(dir, seg));
        continue;
      }
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch {
        continue;
      }
      for (const n of names.sort(byteCompare)) {
        if (matchGlobSegment(n, seg)) next.push(path.join(dir, n));
        if (next.length > MAX_GLOB_RESULTS) {
          throw new SshConfigError(`Include ${pattern}: matches more than ${MAX_GLOB_RESULTS} paths`, { field: 'sshConfig' });
        }
      }
    }
    candidates = next;
  }
  const out: string[] = [];
  for (const c of candidates) {
    try {
      const st = await fsp.stat(c);
      if (!st.isDirectory()) out.push(c);
    } catch {
      // a path that does not exist is skipped, as glob(3) GLOB_NOMATCH
    }
  }
  return out.sort(byteCompare);
}

/**
 * Reads one config file. Returns undefined when it does not exist.
 *
 * @param checkPerm - apply OpenSSH's SSHCONF_CHECKPERM rule: the file must be owned by root or
 * the current user and not be group- or world-writable.
 * @throws SshConfigError `ERR_SSH_CONFIG` (field `sshConfig`) for bad permissions, a file over
 * {@link MAX_CONFIG_FILE_BYTES}, or a read error other than "not found".
 */
export async function readConfigFile(file: string, checkPerm: boolean): Promise<string | undefined> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new SshConfigError(`cannot open ssh_config file ${file}: ${(err as Error).message}`, { field: 'sshConfig', cause: err });
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) return undefined;
    const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
    if (checkPerm && uid !== undefined && ((st.uid !== 0 && st.uid !== uid) || (st.mode & 0o022) !== 0)) {
      throw new SshConfigError(`Bad owner or permissions on ${file} (must be owned by you or root and not writable by others)`, {
        field: 'sshConfig',
      });
    }
    if (st.size > MAX_CONFIG_FILE_BYTES) {
      throw new SshConfigError(`ssh_config file ${file} is larger than ${MAX_CONFIG_FILE_BYTES} bytes`, { field: 'sshConfig' });
    }
    const buf = await handle.readFile();
    if (buf.length > MAX_CONFIG_FILE_BYTES) {
      throw new SshConfigError(`ssh_config file ${file} is larger than ${MAX_CONFIG_FILE_BYTES} bytes`, { field: 'sshConfig' });
    }
    return buf.toString('utf8');
  } catch (err) {
    if (err instanceof SshConfigError) throw err;
    throw new SshConfigError(`cannot read ssh_config file ${file}: ${(err as Error).message}`, { field: 'sshConfig', cause: err });
  } finally {
    await handle.close();
  }
}
