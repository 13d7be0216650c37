/**
 * The public shapes of the SFTP feature: the options of every {@link SftpClient} method, their
 * results and the events. Kept apart from the code so that the client, the transfers and the
 * tree walk share them without importing each other.
 *
 * @module sftp/types
 */
import type ssh2 from 'ssh2';
import type { Link } from '../connection/link.js';
import type { SshError } from '../errors.js';
import type { SftpEntry, SftpEntryType } from './paths.js';

export type { RemotePath } from './wire.js';
export type { SftpEntry, SftpEntryType, SftpStats } from './paths.js';

/** Options of {@link SftpClient}. */
export interface SftpOptions {
  /**
   * Opens the SFTP channel on a link. Default: `link.client.sftp()` (one session channel).
   * The SshClient facade passes one that goes through its MaxSessions channel limiter.
   * Must reject (never hang) when `signal` aborts.
   */
  openSftp?: (link: Link, signal: AbortSignal) => Promise<ssh2.SFTPWrapper>;
  /**
   * Opens one more SFTP channel for a striped `get`/`put` ({@link TransferOptions.channels}).
   * Must not wait for a free session slot: reject at once when none is free or the server
   * refuses (the transfer then uses fewer channels). Must reject (never hang) when `signal`
   * aborts. Default: `link.client.sftp()`. The SshClient facade passes one that takes a free
   * `MaxSessions` slot from its channel limiter, and gives it back when the channel closes.
   */
  openExtraSftp?: (link: Link, signal: AbortSignal) => Promise<ssh2.SFTPWrapper>;
  /**
   * How long the extra SFTP channels of a striped `get`/`put` stay open after it succeeded, in
   * ms, for the next striped transfer on the same link (which then takes them instead of opening
   * new ones: each open is 4 round trips, ~210 ms on a 50 ms link). `0` closes them when the
   * transfer ends. Kept channels hold no file handle and count against `MaxSessions`: the
   * SshClient facade closes them at once when another channel waits for a slot. A whole number
   * from 0 to 2^31-1. Default 30000 (OpenSSH's `ControlPersist`, for channels).
   */
  channelsPersistMs?: number | undefined;
  /**
   * Runs a command on the server over exec and collects its stdout. Used by directory
   * transfers with `compare: 'checksum'` to hash remote files with `sha256sum` /
   * `shasum -a 256` instead of reading them over SFTP. The SshClient facade passes one built on
   * its `exec`; without it, remote files are hashed by reading them.
   */
  remoteCommand?: RemoteCommand | undefined;
}

/** Cancellation options accepted by every operation. */
export interface SftpOperationOptions {
  /** Abort the operation: it rejects with `ERR_SSH_ABORTED` and closes the handles it opened. */
  signal?: AbortSignal | undefined;
  /**
   * Give up after this many milliseconds with `ERR_SSH_TIMEOUT`: a whole number from 1 to
   * 2^31-1 (the longest Node timer); anything else is `ERR_SSH_INVALID_ARG`. Default: no limit.
   */
  timeoutMs?: number | undefined;
}

/** Options of {@link SftpClient.mkdir}. */
export interface MkdirOptions extends SftpOperationOptions {
  /** Create missing parents and accept an existing directory (`mkdir -p`). Default `false`. */
  recursive?: boolean | undefined;
  /** Permission bits of created directories (e.g. `0o755`; the server's umask applies). */
  mode?: number | undefined;
}

/** Options of {@link SftpClient.rm}. */
export interface RmOptions extends SftpOperationOptions {
  /** Remove directories and their contents (`rm -r`); symlinks are removed, never followed. Default `false`. */
  recursive?: boolean | undefined;
  /** Ignore paths that do not exist (`rm -f`). Default `false`. */
  force?: boolean | undefined;
}

/** Options of {@link SftpClient.rename}. */
export interface RenameOptions extends SftpOperationOptions {
  /**
   * Replace an existing `to`. Uses `posix-rename@openssh.com` (atomic rename(2)) when the server
   * offers it; otherwise removes `to` first (not atomic). Default `false`: plain SFTP rename,
   * which fails (`FAILURE` on OpenSSH) when `to` exists.
   */
  overwrite?: boolean | undefined;
}

/** Options of {@link SftpClient.readFile}. */
export interface ReadFileOptions extends SftpOperationOptions {
  /** Decode the content with this encoding; without it a Buffer is returned. */
  encoding?: BufferEncoding | undefined;
  /**
   * Largest content kept in memory, in bytes. A file whose stated size is larger, or whose
   * content grows past it while read (a size the server did not send, or 0 as for `/proc`
   * files), fails with `ERR_SSH_MAX_BUFFER` before more is read or allocated.
   * @default 1073741824 (1 GiB)
   */
  maxBytes?: number | undefined;
}

/** Options of {@link SftpClient.list}. */
export interface ListOptions extends SftpOperationOptions {
  /**
   * Most names the listing may return, counted as READDIR replies arrive (`.` and `..`
   * included), so a directory that never ends is cut as it streams in. Past it the call fails
   * with `ERR_SSH_SFTP`, `reason: 'limit'`. Lower than a tree walk's default (1,000,000): a
   * listing holds every entry in memory as an object with its name, path and raw bytes (about
   * 1 KiB each), so 1,000,000 would let a hostile server make the client hold about 1 GiB; pass a
   * higher value for a directory known to be that large.
   * @default 100000
   */
  maxEntries?: number | undefined;
  /**
   * Keep only some entries: a function returning `true` for the entries to keep, or a RegExp
   * tested on the entry's name. Default: every entry.
   */
  filter?: ((entry: SftpEntry) => boolean) | RegExp | undefined;
}

/** Options of {@link SftpClient.walk}. */
export interface WalkOptions {
  /**
   * Which entries to yield. A function: `false` skips the entry, and for a directory its whole
   * subtree (it is not entered). A RegExp: tested on the relative path (`path`, e.g.
   * `src/a.ts`); entries that do not match are not yielded, but every directory is still
   * entered (so `/\.ts$/` finds `.ts` files at any depth). Default: every entry.
   */
  filter?: ((entry: SftpWalkEntry) => boolean) | RegExp | undefined;
  /** Stops the walk: the iteration rejects with `ERR_SSH_ABORTED`. */
  signal?: AbortSignal | undefined;
  /**
   * Most names the walk may see (counted as READDIR replies arrive); past it the iteration
   * rejects with `ERR_SSH_SFTP`, `reason: 'limit'`.
   * @default 1000000
   */
  maxEntries?: number | undefined;
  /**
   * Deepest level entered (the directory's own subdirectories are level 1). Past it, or on a
   * directory met twice (same canonical path: a loop), the iteration rejects with
   * `ERR_SSH_SFTP`, `reason: 'limit'`.
   * @default 256
   */
  maxDepth?: number | undefined;
}

/**
 * What `preserve` copies. OpenSSH's `sftp`/`scp -p` keep only `mode & 0777` ("perm & 0777" in
 * sftp-client.c), so setuid, setgid and sticky bits chosen by the other side are dropped unless
 * asked for.
 */
export interface PreserveOptions {
  /**
   * `'permissions'` (default): the permission bits only (`mode & 0o777`); `'all'`: also the
   * setuid, setgid and sticky bits (`mode & 0o7777`).
   * @default 'permissions'
   */
  mode?: 'permissions' | 'all' | undefined;
}

/** Options of {@link SftpClient.writeFile}. */
export interface WriteFileOptions extends SftpOperationOptions {
  /** Permission bits of the file (e.g. `0o600`), set explicitly after writing (not subject to umask). */
  mode?: number | undefined;
  /**
   * Write a temporary sibling (`.<name>.tether-<random>.tmp`), then rename it over the target,
   * so readers see the old or the new content, never a part. With `posix-rename@openssh.com`
   * (OpenSSH) the replacement is atomic. Without `mode`, an existing target's mode is kept.
   * Default `false`.
   */
  atomic?: boolean | undefined;
}

/** Options of {@link SftpClient.createReadStream}. */
export interface ReadStreamOptions {
  /** First byte to read. Default 0. */
  start?: number | undefined;
  /** Last byte to read, inclusive (as `fs.createReadStream`). Default: to the end of the file. */
  end?: number | undefined;
  /** Read requests kept in flight. Default 16. */
  concurrency?: number | undefined;
  /** Bytes per read request. Default: the server's max read length (255 KiB on OpenSSH). */
  chunkSize?: number | undefined;
  /** Readable buffer size in bytes. Default 1 MiB. */
  highWaterMark?: number | undefined;
  /** Destroys the stream with `ERR_SSH_ABORTED`. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link SftpClient.createWriteStream}. */
export interface WriteStreamOptions {
  /**
   * `'w'` create or truncate (default), `'wx'` create, failing if it exists, `'a'` append
   * (create if missing), `'r+'` write into an existing file without truncating.
   */
  flags?: 'w' | 'wx' | 'a' | 'r+' | undefined;
  /** Offset of the first write (`'w'`, `'wx'`, `'r+'`). Default 0. */
  start?: number | undefined;
  /** Permission bits for a created file (the server's umask applies). */
  mode?: number | undefined;
  /** Write requests kept in flight. Default 16. */
  concurrency?: number | undefined;
  /** Writable buffer size in bytes. Default 1 MiB. */
  highWaterMark?: number | undefined;
  /** Destroys the stream with `ERR_SSH_ABORTED`. */
  signal?: AbortSignal | undefined;
}

/** How `resume` checks that the destination holds a prefix of the source. */
export interface ResumeOptions {
  /**
   * `'size'` (default): a destination strictly shorter than the source is taken as a prefix and
   * continued; one of the same size (or longer) is copied again in full, since equal sizes do not
   * prove equal content. `'sha256'`: the destination's bytes must hash the same as the source's
   * first bytes (reads them on both sides); an equal-size destination with the same hash is
   * complete and nothing is copied.
   */
  verify?: 'size' | 'sha256' | undefined;
}

/** Options of {@link SftpClient.get} and {@link SftpClient.put}. */
export interface TransferOptions extends SftpOperationOptions {
  /**
   * Requests in flight at the start (each up to `chunkSize`), 1-1024. Default 16. The count then
   * adapts up to `maxConcurrency`; never below this. Above `maxConcurrency`:
   * `ERR_SSH_INVALID_ARG` (field `maxConcurrency`).
   */
  concurrency?: number | undefined;
  /**
   * The most requests the transfer may keep in flight, 1-1024. Default 256. The count starts at
   * `concurrency` (or at `maxConcurrency` when that is lower than the default 16) and grows while
   * the measured throughput still rises, then settles at about twice the measured throughput x
   * round trip, as TCP sizes its window (issue 18: on a 50 ms link 16 x 255 KiB in flight cap a
   * download near 80 MB/s). Growth also stops at 8 MiB of request buffers (32 requests of
   * 255 KiB) per channel, the memory a transfer may hold per channel (a striped transfer has one
   * such count per channel; more in flight on one channel made sshd burn several times its CPU
   * on a busy host: see src/sftp/pacing.ts). Set it equal to `concurrency` for a fixed count.
   * The SFTP channel's receive window is kept above that (src/ssh2/sftp.ts), so the server is
   * not held back by the window.
   */
  maxConcurrency?: number | undefined;
  /** Bytes per request. Default (and maximum): the server's max read/write length (255 KiB on OpenSSH). */
  chunkSize?: number | undefined;
  /** Called with progress at most every 100 ms, and once at the end. */
  onProgress?: ((progress: TransferProgress) => void) | undefined;
  /**
   * Continue from what the destination already holds. When the check fails (with `'size'`: the
   * destination is not shorter than the source; with `'sha256'`: longer, or its hash differs)
   * the whole file is copied again, so a complete-looking destination with other content is
   * never reported as copied. Default `false`.
   */
  resume?: boolean | ResumeOptions | undefined;
  /**
   * Copy the source's permission bits and access/modification times to the destination.
   * `true` keeps `mode & 0o777` (setuid, setgid and sticky bits dropped, as OpenSSH's sftp);
   * `{ mode: 'all' }` keeps `mode & 0o7777` (see {@link PreserveOptions}).
   * @default false
   */
  preserve?: boolean | PreserveOptions | undefined;
  /**
   * SFTP channels (RFC 4254 6.5 `sftp` subsystem sessions, each its own sftp-server and its own
   * 2 MiB channel window) one large file is copied over at once, each copying its own byte
   * ranges, the client's SFTP session included (as rclone's `--multi-thread-streams`; OpenSSH's
   * `sftp` has no such option). On a long link one channel is held to one window per round trip,
   * so more channels multiply throughput (issue 18, RTT 51 ms: put 123 MB/s over 4 channels,
   * 3.7x OpenSSH `sftp`). Used when at least {@link TransferOptions.channelsMinBytes} remain to
   * be copied and the size is known; `concurrency` and `chunkSize` apply per channel.
   *
   * Extra channels take only session slots that are free (sshd `MaxSessions`, default 10: the
   * SshClient's limiter, `health().sessionLimit`), never wait for one, and are closed when the
   * transfer ends, fails or is aborted. A server that refuses more channels (MaxSessions
   * reached: the limiter learns the lower limit) does not fail the transfer: it runs on the
   * channels it got, at worst one. `1` turns striping off.
   *
   * With striping the destination is given the source's full size first, and a failed or
   * aborted copy is cut back to its contiguous complete prefix, so `resume` continues from there
   * (get: always; put: when the server answered the close of every extra handle, else the
   * remote file keeps the full size and `resume` copies it again in full, never leaving a hole).
   *
   * Left out, the file is striped over 4 channels only when the SFTP session's fastest request
   * round trip so far (this file's OPEN included) is at least 5 ms for `put` (each channel's
   * writes are held to the server's window, 2 MiB per round trip on OpenSSH) and 25 ms for
   * `get` (one channel's reads adapt up to 8 MiB in flight): below that CPU, not the window, is
   * the limit and more channels cost throughput (loopback get 218 MB/s over 4 channels vs 372
   * over one, 2 cores). Given, it is used whatever the round trip.
   * @default 4 when the file's round trip is >= 5 ms (put) / >= 25 ms (get), else 1 (an integer from 1 to 64; anything else is `ERR_SSH_INVALID_ARG`)
   */
  channels?: number | undefined;
  /**
   * Smallest number of bytes still to copy (the size minus what `resume` keeps) for which
   * {@link TransferOptions.channels} > 1 is used, in bytes (rclone's `--multi-thread-cutoff`):
   * below it, opening channels costs more than it brings.
   * @default 67108864 (64 MiB; a whole number >= 0, else `ERR_SSH_INVALID_ARG`)
   */
  channelsMinBytes?: number | undefined;
}

/** Result of {@link SftpClient.get} / {@link SftpClient.put}. */
export interface TransferResult {
  /** Bytes copied by this call. */
  transferredBytes: number;
  /** Size of the destination when done. */
  totalBytes: number;
  /** Offset the copy started at (non-zero when `resume` continued a partial file). */
  resumedFrom: number;
  /**
   * Present when the file was large enough to stripe ({@link TransferOptions.channels}): how
   * many SFTP channels carried it (1 when the server refused every extra channel).
   */
  channels?: number;
}

/** An entry offered to a directory transfer `filter`. */
export interface DirFilterEntry {
  /** Path relative to the source directory, `/`-separated, decoded as UTF-8. */
  path: string;
  /** Exact bytes of the relative path. */
  rawPath: Buffer;
  type: SftpEntryType;
  size: number;
}

/** Options of {@link SftpClient.getDir} and {@link SftpClient.putDir}. */
export interface DirTransferOptions extends SftpOperationOptions {
  /** Return `false` to skip an entry (a skipped directory is skipped with its contents). */
  filter?: ((entry: DirFilterEntry) => boolean) | undefined;
  /** Files copied in parallel. Default 32: small files are latency-bound (one open, write and close round trip each), so more in parallel is faster (measured: 1,000 files of 1-16 KiB, 2,200 files/s with 8, 3,500-3,700 with 32). */
  concurrency?: number | undefined;
  /** Requests in flight per file. Default 4 (with 32 files in parallel at most 128 requests in flight, as 8 x 16 before). */
  fileConcurrency?: number | undefined;
  /** One overall progress for the whole tree (total: the sum of the file sizes). */
  onProgress?: ((progress: TransferProgress) => void) | undefined;
  /** Per file, as {@link TransferOptions.resume}. */
  resume?: boolean | ResumeOptions | undefined;
  /** Per file, as {@link TransferOptions.preserve} (`true`: `mode & 0o777`). */
  preserve?: boolean | PreserveOptions | undefined;
  /**
   * Most names the walk of the source tree may see, counted as READDIR replies (or local
   * listings) arrive. Past it the call fails with `ERR_SSH_SFTP`, `reason: 'limit'`, before
   * anything is copied.
   * @default 1000000
   */
  maxEntries?: number | undefined;
  /**
   * Deepest directory level the walk may enter (the source's subdirectories are level 1). Past
   * it, or when a directory is met a second time (a loop: same canonical path on the server,
   * same device and inode locally), the call fails with `ERR_SSH_SFTP`, `reason: 'limit'`.
   * @default 256
   */
  maxDepth?: number | undefined;
  /**
   * Which files to copy (rsync's "quick check"):
   * - `'always'` (default): every file.
   * - `'size-mtime'`: skip a file when the destination holds a regular file of the same size and
   *   the same modification time in whole seconds (as `rsync -a`). Copied files get the
   *   source's mtime (and atime), so the next run skips them.
   * - `'checksum'`: skip a file when the destination holds a regular file of the same size
   *   whose SHA-256 matches (as `rsync -c`). Remote files are hashed on the server with
   *   `sha256sum` or `shasum -a 256` over exec when the client has exec (`SshClient.sftp()`),
   *   many files per command; otherwise (or when neither tool is there) by reading them over
   *   SFTP. Copied files get the source's mtime too.
   * Skipped files are listed in the summary's `unchanged`.
   * @default 'always'
   */
  compare?: SyncCompare | undefined;
  /**
   * Remove destination entries the source does not have (as `rsync --delete`): files,
   * symlinks (removed themselves, never followed), special files, and directories with
   * everything below them; also a destination entry whose type differs from the source's
   * (a directory where the source has a file...). Only entries found by walking the
   * destination directory are removed: every path is the destination joined with safe
   * components, symlinks are never entered, and locally each parent must resolve inside the
   * destination. Entries `filter` leaves out are kept (as rsync's excludes). Runs before the
   * copies. Removed paths are listed in `deleted`; a removal that fails is listed in `failed`.
   * @default false
   */
  delete?: boolean | undefined;
  /**
   * Change nothing: walk both trees, compare, and report in the summary what would be copied
   * (`copied`), left alone (`unchanged`) and removed (`deleted`); `transferredBytes` is 0.
   * @default false
   */
  dryRun?: boolean | undefined;
}

/** Summary of {@link SftpClient.getDir} / {@link SftpClient.putDir}. Paths are relative to the source directory. */
export interface DirTransferSummary {
  /** Files copied. */
  copied: string[];
  /**
   * Entries not copied, and why: `'filter'`, `'symlink'`, `'other'` (special files), or
   * `'unsafe-name'`: a name that is not one safe path component (empty, `.`, `..`, holding `/`
   * or NUL, or `\` on Windows), as a hostile server can send to write outside the target
   * (CVE-2019-6111's class; OpenSSH's sftp refuses it as a "suspect path"). Each unsafe name
   * is also reported as a `warning` event ({@link SftpWarning}).
   */
  skipped: { path: string; reason: 'filter' | 'symlink' | 'other' | 'unsafe-name' }[];
  /** Files (or directories) that failed, with the error. */
  failed: { path: string; error: SshError }[];
  /** Bytes copied. */
  transferredBytes: number;
  /** Files not copied because the destination already matched (see {@link DirTransferOptions.compare}). */
  unchanged: string[];
  /** Destination entries removed by {@link DirTransferOptions.delete} (paths relative to the destination directory). */
  deleted: string[];
}

/** A `warning` event of {@link SftpClient}: something the server sent was refused and skipped. */
export interface SftpWarning {
  /** `'unsafe-name'`: a directory entry name that would leave the target (see {@link DirTransferSummary.skipped}). */
  reason: 'unsafe-name';
  /** The operation that met it (`rm`: a recursive `rm` keeps the directory and fails). */
  operation: 'getDir' | 'putDir' | 'walk' | 'rm';
  /** The path relative to the source directory, decoded as UTF-8 (control characters kept; see `message`). */
  path: string;
  /** Its exact bytes. */
  rawPath: Buffer;
  /** A sentence for a log, with control characters escaped (`\xNN`). */
  message: string;
}

/** The events of {@link SftpClient} (eventemitter3; no `error` event). */
export interface SftpEvents {
  /** A server-sent name was refused (also listed in the summary's `skipped`). */
  warning: [info: SftpWarning];
}

/** Progress of one transfer (or one directory copy), as given to `onProgress`. */
export interface TransferProgress {
  /** Bytes transferred so far (including bytes skipped by `resume`). */
  transferredBytes: number;
  /** Total bytes expected (the source size), when known. */
  totalBytes: number;
  /** Average rate since the transfer started, bytes per second (resumed bytes excluded). */
  bytesPerSecond: number;
}

/** How a directory transfer decides that a file needs copying (see {@link DirTransferOptions.compare}). */
export type SyncCompare = 'always' | 'size-mtime' | 'checksum';

/**
 * Runs one command on the server over exec (RFC 4254 6.5 `exec`) and collects its stdout (see
 * {@link SftpOptions.remoteCommand}). `argv` is quoted for a POSIX shell by the exec layer.
 */
export type RemoteCommand = (argv: readonly string[], options: { signal: AbortSignal; maxBufferBytes: number }) => Promise<{ stdout: Buffer; exitCode: number | null }>;

/** One entry of {@link SftpClient.walk}: its stats and where it is, relative to the walked directory. */
export interface SftpWalkEntry extends SftpEntry {
  /**
   * The path relative to the walked directory, `/`-separated, decoded as UTF-8 (e.g.
   * `src/index.ts`). `rawPath` holds its exact bytes.
   */
  path: string;
  /** The exact bytes of {@link SftpWalkEntry.path}. */
  rawPath: Buffer;
  /** The full remote path (the walked directory joined with `path`), decoded as UTF-8. */
  fullPath: string;
  /** The exact bytes of the full remote path: pass it to any method to address this entry. */
  rawFullPath: Buffer;
  /** 1 for the walked directory's own entries, 2 for theirs, and so on. */
  depth: number;
}
