/**
 * The defaults of SftpClient's operations and the checked plans of its transfers, built from the
 * caller's options before any I/O (get/put: {@link filePlan}; getDir/putDir: {@link dirPlan}).
 *
 * @internal
 * @module sftp/plans
 */
import { DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES } from './dir-walk.js';
import { preserveMask, resumeMode } from './options.js';
import { syncSettings, type RemoteHasher } from './sync.js';
import type { DirPlan, FilePlan } from './transfer.js';
import type { DirTransferOptions, TransferOptions } from './types.js';

/** Default of {@link ListOptions.maxEntries}: one listing's entries are all held in memory. */
export const DEFAULT_LIST_MAX_ENTRIES = 100_000;

export const DEFAULT_CONCURRENCY = 16;
/** Default `maxConcurrency` of get/put (the memory bound of sftp/engine.ts caps it at 32 requests of 255 KiB). */
export const DEFAULT_MAX_CONCURRENCY = 256;
export const DEFAULT_DIR_CONCURRENCY = 32;
export const DEFAULT_DIR_FILE_CONCURRENCY = 4;
/** Default of {@link ReadFileOptions.maxBytes}. */
export const DEFAULT_READ_MAX_BYTES = 1024 * 1024 * 1024;

/**
 * Checks the options of `get`/`put` (before any I/O); `openChannel` opens an extra SFTP channel
 * for striping, `pool` keeps them between striped transfers.
 */
export function filePlan(o: TransferOptions, openChannel: FilePlan['openChannel'], pool?: FilePlan['pool']): FilePlan {
  return {
    concurrency: o.concurrency ?? Math.min(DEFAULT_CONCURRENCY, o.maxConcurrency ?? DEFAULT_CONCURRENCY),
    maxConcurrency: o.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY,
    chunkSize: o.chunkSize,
    resume: resumeMode(o.resume),
    preserve: preserveMask(o.preserve),
    onProgress: o.onProgress,
    channels: o.channels,
    channelsMinBytes: o.channelsMinBytes,
    openChannel,
    pool,
  };
}

/** Checks the options of `getDir`/`putDir` (before any I/O). */
export function dirPlan(o: DirTransferOptions, hasher: RemoteHasher): DirPlan {
  return {
    parallel: o.concurrency ?? DEFAULT_DIR_CONCURRENCY,
    perFile: o.fileConcurrency ?? DEFAULT_DIR_FILE_CONCURRENCY,
    maxEntries: o.maxEntries ?? DEFAULT_MAX_ENTRIES,
    maxDepth: o.maxDepth ?? DEFAULT_MAX_DEPTH,
    filter: o.filter,
    onProgress: o.onProgress,
    resume: resumeMode(o.resume),
    preserve: preserveMask(o.preserve),
    sync: syncSettings(o),
    hasher,
  };
}
