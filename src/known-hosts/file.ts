/**
 * Reading and appending known_hosts files.
 *
 * @module known-hosts/file
 */
import { constants as fsc } from 'node:fs';
import { mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SshConfigError, SshError } from '../errors.js';
import { backoffDelay, type BackoffPolicy } from '../internal/backoff.js';
import { checkHostKey } from './check.js';
import { validateKeyBlob } from './key-blob.js';
import { hashHostName, parseKnownHosts, type KnownHostsEntry, type KnownHostsSet, type KnownHostsWarning } from './parse.js';
import { hostPattern } from './pattern.js';

/** Largest known_hosts file we read: 16 MiB (a line is ~100-750 bytes). */
export const MAX_KNOWN_HOSTS_BYTES = 16 * 1024 * 1024;

function errCode(err: unknown): string | undefined {
  const c = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof c === 'string' ? c : undefined;
}

/**
 * Reads a whole known_hosts file, or returns `undefined` when it does not exist.
 * Non-regular files (directories, FIFOs, devices) and files over {@link MAX_KNOWN_HOSTS_BYTES}
 * are errors. Opened non-blocking so a FIFO cannot hang the read.
 */
async function readKnownHostsFile(file: string): Promise<string | undefined> {
  // `UserKnownHostsFile /dev/null` is a common way to say "no file" in ssh_config.
  if (file === '/dev/null') return undefined;
  let fh: FileHandle;
  try {
    fh = await open(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return undefined;
    throw unreadable(file, err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw unreadable(file, Object.assign(new Error('not a regular file'), { code: st.isDirectory() ? 'EISDIR' : 'EINVAL' }));
    if (st.size > MAX_KNOWN_HOSTS_BYTES) {
      throw new SshConfigError(`known_hosts file ${file} is larger than ${MAX_KNOWN_HOSTS_BYTES} bytes; refusing to read it`, {
        field: 'knownHostsFiles',
      });
    }
    return await fh.readFile({ encoding: 'utf8' });
  } catch (err) {
    if (err instanceof SshConfigError) throw err;
    throw unreadable(file, err);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

function isPathList(v: unknown): v is readonly string[] {
  return Array.isArray(v) && v.every((f) => typeof f === 'string' && f.length > 0);
}

function unreadable(file: string, err: unknown): SshConfigError {
  const code = errCode(err) ?? 'error';
  return new SshConfigError(
    `cannot read known_hosts file ${file} (${code}); fix its permissions or remove it from knownHostsFiles. Host keys are not trusted while it cannot be read.`,
    { field: 'knownHostsFiles', cause: err },
  );
}

/**
 * Reads and parses known_hosts files, in order (OpenSSH reads `UserKnownHostsFile` entries, then
 * `GlobalKnownHostsFile` entries; sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").
 *
 * A file that does not exist contributes nothing. Any other failure fails closed.
 * Paths are used as given (no `~` expansion: the config layer resolves them).
 *
 * @param files - paths of known_hosts files.
 * @returns all entries (file order, then line order) and all warnings about skipped lines.
 * @throws SshConfigError `ERR_SSH_CONFIG` (field `knownHostsFiles`) when `files` is not an array of
 *   non-empty paths, or naming the file when it exists
 *   but cannot be read (EACCES, EISDIR, not a regular file, larger than
 *   {@link MAX_KNOWN_HOSTS_BYTES}); the underlying error is the `cause`.
 */
export async function loadKnownHosts(files: readonly string[]): Promise<KnownHostsSet> {
  if (!isPathList(files)) {
    throw new SshConfigError('knownHostsFiles must be an array of non-empty file paths', { field: 'knownHostsFiles' });
  }
  const entries: KnownHostsEntry[] = [];
  const warnings: KnownHostsWarning[] = [];
  for (const file of files) {
    const text = await readKnownHostsFile(file);
    if (text === undefined) continue;
    const parsed = parseKnownHosts(text, file);
    // A loop, not push(...spread): a 16 MiB file can hold ~10^5 lines, past the argument limit
    // of a spread call (RangeError: Maximum call stack size exceeded).
    for (const e of parsed.entries) entries.push(e);
    for (const w of parsed.warnings) warnings.push(w);
  }
  return { entries, warnings };
}

/** Options of {@link appendKnownHost}. */
export interface AppendKnownHostOptions {
  /**
   * Write the host name hashed (`|1|salt|hash`), as OpenSSH's `HashKnownHosts yes`.
   * @default false
   */
  hash?: boolean;
  /**
   * Skip the write when the file (re-read under the lock) already trusts this key for this host,
   * so concurrent `accept-new` connects add one line, not one per connect.
   * @default false
   */
  ifAbsent?: boolean;
  /**
   * Give up waiting for another writer's lock after this many milliseconds.
   * @default 5000
   */
  lockTimeoutMs?: number;
  /**
   * A lock file older than this many milliseconds is considered left behind by a crashed
   * process and is removed.
   * @default 10000
   */
  staleLockMs?: number;
}

/** Backoff between tries of the known_hosts lock (internal/backoff.ts): 5 ms doubling, at most 100 ms. */
export const LOCK_BACKOFF: BackoffPolicy = Object.freeze({ minDelayMs: 5, maxDelayMs: 100, factor: 2 });

/**
 * Holds `<file>.lock` (created with O_EXCL) while `fn` runs. Retries with a capped, jittered
 * backoff ({@link LOCK_BACKOFF}) until `timeoutMs`; breaks a lock older than `staleMs` by renaming it away (atomic, so
 * only one waiter breaks it).
 */
async function withLock<T>(file: string, timeoutMs: number, staleMs: number, fn: () => Promise<T>): Promise<T> {
  const lockPath = `${file}.lock`;
  const deadline = Date.now() + timeoutMs;
  let attempt = 0;
  for (;;) {
    let fh: FileHandle | undefined;
    try {
      fh = await open(lockPath, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (err) {
      if (fh !== undefined) {
        // created but could not write it: do not leave our own lock behind
        await fh.close().catch(() => undefined);
        await unlink(lockPath).catch(() => undefined);
      }
      if (fh !== undefined || errCode(err) !== 'EEXIST') {
        throw new SshConfigError(`cannot create lock file ${lockPath} (${errCode(err) ?? 'error'})`, {
          field: 'knownHostsFiles',
          cause: err,
        });
      }
    }
    const st = await stat(lockPath).catch(() => undefined);
    if (st !== undefined && Date.now() - st.mtimeMs > staleMs) {
      const aside = `${lockPath}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
      // Whoever renames first breaks the lock; losers get ENOENT and simply retry.
      if (await rename(lockPath, aside).then(() => true, () => false)) await unlink(aside).catch(() => undefined);
      continue;
    }
    if (Date.now() >= deadline) {
      // Another writer holds the lock: a transient condition, not a configuration error.
      throw new SshError(
        'ERR_SSH_TIMEOUT',
        `timed out after ${timeoutMs} ms waiting for lock file ${lockPath}; if no other process is writing ${file}, delete the lock file`,
        { retryable: true },
      );
    }
    attempt += 1;
    const delayMs = backoffDelay(attempt, LOCK_BACKOFF);
    await sleep(Math.min(delayMs, Math.max(1, deadline - Date.now())));
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

/**
 * Appends a `host keytype base64` line to a known_hosts file, as `ssh` does for a new host key
 * (OpenSSH `hostfile.c` `add_host_to_hostfile()`).
 *
 * Safe against concurrent writers, in this or other processes using this function: the write
 * happens while holding `<file>.lock` (created with O_EXCL, retried with backoff up to
 * `lockTimeoutMs`, broken when older than `staleLockMs`) and is a single append of the whole
 * line. If the file's last byte is not a newline, a newline is written first. A missing file is
 * created with mode 0600 and a missing directory with mode 0700.
 *
 * @param file - the known_hosts file.
 * @param host - host name or IP address (see {@link hostPattern}).
 * @param port - TCP port; 22 writes `host`, others `[host]:port`.
 * @param key - the SSH wire-format public key blob.
 * @param options - see {@link AppendKnownHostOptions}.
 * @returns `true` when a line was written, `false` when `ifAbsent` found the key already trusted.
 * @throws SshConfigError `ERR_SSH_CONFIG`: field `host`/`port` for invalid values; field `key`
 *   when the blob is not a supported, well-formed public key; field `knownHostsFiles` when the
 *   directory, file or lock cannot be created or written.
 * @throws SshError `ERR_SSH_TIMEOUT` (retryable) when another writer held the lock for
 *   `lockTimeoutMs`: nothing was written.
 */
export async function appendKnownHost(
  file: string,
  host: string,
  port: number,
  key: Buffer,
  options: AppendKnownHostOptions = {},
): Promise<boolean> {
  const lookup = hostPattern(host, port);
  if (!Buffer.isBuffer(key)) throw new SshConfigError('key must be a Buffer holding an SSH public key blob', { field: 'key' });
  const v = validateKeyBlob(key);
  if (!v.ok) throw new SshConfigError(`key is not a usable SSH public key blob: ${v.reason}`, { field: 'key' });
  if (typeof file !== 'string' || file.length === 0) {
    throw new SshConfigError('known_hosts file must be a non-empty path', { field: 'knownHostsFiles' });
  }
  const timeoutMs = options.lockTimeoutMs ?? 5000;
  const staleMs = options.staleLockMs ?? 10_000;
  for (const [name, value] of [['lockTimeoutMs', timeoutMs], ['staleLockMs', staleMs]] as const) {
    if (!Number.isFinite(value) || value < 0) {
      throw new SshConfigError(`${name} must be a finite number of milliseconds >= 0`, { field: name });
    }
  }
  const hostField = options.hash === true ? hashHostName(lookup) : lookup;
  const line = `${hostField} ${v.type} ${key.toString('base64')}\n`;

  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new SshConfigError(`cannot create directory ${dirname(file)} (${errCode(err) ?? 'error'})`, {
      field: 'knownHostsFiles',
      cause: err,
    });
  }
  return withLock(file, timeoutMs, staleMs, async () => {
    let fh: FileHandle;
    try {
      fh = await open(file, 'a+', 0o600);
    } catch (err) {
      throw new SshConfigError(`cannot open known_hosts file ${file} for appending (${errCode(err) ?? 'error'})`, {
        field: 'knownHostsFiles',
        cause: err,
      });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
      let prefix = '';
      if (options.ifAbsent === true && st.size > 0 && st.size <= MAX_KNOWN_HOSTS_BYTES) {
        const text = (await fh.readFile()).toString('utf8');
        if (checkHostKey(parseKnownHosts(text, file).entries, host, port, key).status === 'known') return false;
        if (!text.endsWith('\n')) prefix = '\n';
      } else if (st.size > 0) {
        const last = Buffer.alloc(1);
        await fh.read(last, 0, 1, st.size - 1);
        if (last[0] !== 0x0a) prefix = '\n';
      }
      const data = Buffer.from(prefix + line, 'utf8');
      // O_APPEND: every write lands at the end. One write for a line this short on a regular
      // file; the loop only guards against a short write (bounded by data.length).
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
        off += bytesWritten;
      }
      return true;
    } catch (err) {
      throw new SshConfigError(`cannot append to known_hosts file ${file} (${errCode(err) ?? 'error'})`, {
        field: 'knownHostsFiles',
        cause: err,
      });
    } finally {
      await fh.close().catch(() => undefined);
    }
  });
}
