/**
 * Validation of every {@link SftpClient} argument, before any I/O: strict zod schemas for the
 * option objects (an unknown option such as `concurency` fails naming it, with the closest
 * accepted name and the list of accepted ones), and checks of the positional arguments (paths,
 * modes, ids, times, data). Every failure is {@link SshInvalidArgError} `ERR_SSH_INVALID_ARG`
 * with `field` naming the argument (a bad call argument, not a configuration error).
 *
 * @internal
 * @module sftp/options
 */
import { z } from 'zod';
import { SshInvalidArgError } from '../errors.js';
import { parseOrThrow, signalSchema, timeoutMsSchema } from '../internal/validate.js';
import { MAX_CHANNELS } from './striped.js';
import type {
  DirTransferOptions,
  ListOptions,
  MkdirOptions,
  ReadFileOptions,
  ReadStreamOptions,
  RenameOptions,
  RmOptions,
  SftpOperationOptions,
  SftpOptions,
  TransferOptions,
  WalkOptions,
  WriteFileOptions,
  WriteStreamOptions,
} from './types.js';
import type { RemotePath } from './wire.js';

/** A whole number from `min` to `max`. */
const int = (what: string, min: number, max = Number.MAX_SAFE_INTEGER): z.ZodNumber => {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
  return z
    .number({ error: `expected ${what} as a number` })
    .int({ error: `expected ${what} as an integer ${range}` })
    .min(min, { error: `expected ${what} as an integer ${range}` })
    .max(max, { error: `expected ${what} as an integer ${range}` });
};
const fn = (what: string) => z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', { error: `expected ${what} as a function` });
const bool = (what: string) => z.boolean({ error: `expected ${what} as true or false` });
const modeBits = int('mode (permission bits, e.g. 0o644)', 0, 0o7777);

/** `signal` and `timeoutMs`, accepted by every operation. */
const opShape = {
  signal: signalSchema.optional(),
  timeoutMs: timeoutMsSchema().optional(),
};

const resumeSchema = z.union([z.boolean(), z.strictObject({ verify: z.enum(['size', 'sha256']).optional() })], {
  error: "expected resume as true, false or { verify: 'size' | 'sha256' }",
});
const preserveSchema = z.union([z.boolean(), z.strictObject({ mode: z.enum(['permissions', 'all']).optional() })], {
  error: "expected preserve as true, false or { mode: 'permissions' | 'all' }",
});

/** A `filter` of `list`/`walk`: a function or a RegExp. */
const filterSchema = z.union([fn('filter'), z.instanceof(RegExp)], { error: 'expected filter as a function or a RegExp' });

const schemas = {
  sftp: z.strictObject({
    openSftp: fn('openSftp').optional(),
    openExtraSftp: fn('openExtraSftp').optional(),
    channelsPersistMs: int('channelsPersistMs', 0, 2 ** 31 - 1).optional(),
    remoteCommand: fn('remoteCommand').optional(),
  }),
  operation: z.strictObject(opShape),
  list: z.strictObject({ ...opShape, maxEntries: int('maxEntries', 1).optional(), filter: filterSchema.optional() }),
  walk: z.strictObject({
    filter: filterSchema.optional(),
    signal: signalSchema.optional(),
    maxEntries: int('maxEntries', 1).optional(),
    maxDepth: int('maxDepth', 0).optional(),
  }),
  mkdir: z.strictObject({ ...opShape, recursive: bool('recursive').optional(), mode: modeBits.optional() }),
  rm: z.strictObject({ ...opShape, recursive: bool('recursive').optional(), force: bool('force').optional() }),
  rename: z.strictObject({ ...opShape, overwrite: bool('overwrite').optional() }),
  readFile: z.strictObject({
    ...opShape,
    encoding: z.custom<BufferEncoding>((v) => typeof v === 'string' && Buffer.isEncoding(v), { error: 'expected encoding as a Buffer encoding (utf8, latin1, base64...)' }).optional(),
    maxBytes: int('maxBytes', 0).optional(),
  }),
  writeFile: z.strictObject({ ...opShape, mode: modeBits.optional(), atomic: bool('atomic').optional() }),
  appendFile: z.strictObject({ ...opShape, mode: modeBits.optional() }),
  readStream: z.strictObject({
    start: int('start', 0).optional(),
    end: int('end', 0).optional(),
    concurrency: int('concurrency', 1, 1024).optional(),
    chunkSize: int('chunkSize', 1).optional(),
    highWaterMark: int('highWaterMark', 1).optional(),
    signal: signalSchema.optional(),
  }),
  writeStream: z.strictObject({
    flags: z.enum(['w', 'wx', 'a', 'r+'], { error: "expected flags as 'w', 'wx', 'a' or 'r+'" }).optional(),
    start: int('start', 0).optional(),
    mode: modeBits.optional(),
    concurrency: int('concurrency', 1, 1024).optional(),
    highWaterMark: int('highWaterMark', 1).optional(),
    signal: signalSchema.optional(),
  }),
  transfer: z
    .strictObject({
      ...opShape,
      concurrency: int('concurrency', 1, 1024).optional(),
      maxConcurrency: int('maxConcurrency', 1, 1024).optional(),
      chunkSize: int('chunkSize', 1).optional(),
      onProgress: fn('onProgress').optional(),
      resume: resumeSchema.optional(),
      preserve: preserveSchema.optional(),
      channels: int('channels (SFTP channels for one large file)', 1, MAX_CHANNELS).optional(),
      channelsMinBytes: int('channelsMinBytes (bytes)', 0).optional(),
    })
    .refine((o) => o.concurrency === undefined || o.maxConcurrency === undefined || o.maxConcurrency >= o.concurrency, {
      error: 'expected maxConcurrency >= concurrency (maxConcurrency is the most requests in flight, concurrency those at the start)',
      path: ['maxConcurrency'],
    }),
  dirTransfer: z.strictObject({
    ...opShape,
    filter: fn('filter').optional(),
    concurrency: int('concurrency', 1, 256).optional(),
    fileConcurrency: int('fileConcurrency', 1, 1024).optional(),
    onProgress: fn('onProgress').optional(),
    resume: resumeSchema.optional(),
    preserve: preserveSchema.optional(),
    maxEntries: int('maxEntries', 1).optional(),
    maxDepth: int('maxDepth', 0).optional(),
    compare: z.enum(['always', 'size-mtime', 'checksum'], { error: "expected compare as 'always', 'size-mtime' or 'checksum'" }).optional(),
    delete: bool('delete').optional(),
    dryRun: bool('dryRun').optional(),
  }),
};

/** Which option object each method takes. */
interface OptionsOf {
  sftp: SftpOptions;
  operation: SftpOperationOptions;
  list: ListOptions;
  walk: WalkOptions;
  mkdir: MkdirOptions;
  rm: RmOptions;
  rename: RenameOptions;
  readFile: ReadFileOptions;
  writeFile: WriteFileOptions;
  appendFile: Omit<WriteFileOptions, 'atomic'>;
  readStream: ReadStreamOptions;
  writeStream: WriteStreamOptions;
  transfer: TransferOptions;
  dirTransfer: DirTransferOptions;
}

/**
 * Checks the option object of method `method` (`undefined` is no options) with the strict
 * schema of `kind`, and returns it (never `undefined`).
 *
 * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` naming the option (an unknown one with the closest accepted name).
 */
export function checkOptions<K extends keyof OptionsOf>(kind: K, method: string, options: unknown): OptionsOf[K] {
  if (options === undefined) return {};
  if (method === 'rmdir' && typeof options === 'object' && options !== null && 'recursive' in options) {
    throw new SshInvalidArgError('invalid rmdir options: rmdir removes one empty directory and takes no `recursive`; use rm(dir, { recursive: true }) to remove a tree', {
      field: 'recursive',
    });
  }
  parseOrThrow(schemas[kind], options, `${method} options`);
  // the caller's object as given (functions and AbortSignals untouched)
  return options as OptionsOf[K];
}

/** A remote path: a non-empty string or Buffer. */
export function checkPath(field: string, p: unknown): RemotePath {
  if ((typeof p === 'string' && p.length > 0) || (Buffer.isBuffer(p) && p.length > 0)) return p;
  throw new SshInvalidArgError(`invalid ${field}: expected a non-empty string or Buffer`, { field });
}

/** A local path: a non-empty string or Buffer. */
export function checkLocal(field: string, p: unknown): string | Buffer {
  if ((typeof p === 'string' && p.length > 0) || (Buffer.isBuffer(p) && p.length > 0)) return p;
  throw new SshInvalidArgError(`invalid ${field}: expected a non-empty local path (string or Buffer)`, { field });
}

/** A whole number from `min` to `max` (positional arguments: `mode`, `uid`, `gid`). */
export function checkInt(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new SshInvalidArgError(`invalid ${field}: expected an integer from ${min} to ${max}, got ${typeof v === 'number' ? v : typeof v}`, { field });
  }
  return v;
}

/** A time for `utimes`: a valid Date or seconds since the epoch (>= 0); returns whole seconds. */
export function checkTime(field: string, v: unknown): number {
  if (v instanceof Date && !Number.isNaN(v.getTime())) return Math.floor(v.getTime() / 1000);
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.floor(v);
  throw new SshInvalidArgError(`invalid ${field}: expected a Date or a number of seconds since the epoch`, { field });
}

/** File content: a string (written as UTF-8), Buffer or Uint8Array. */
export function checkData(data: unknown): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new SshInvalidArgError('invalid data: expected a string, Buffer or Uint8Array', { field: 'data' });
}

/** The `resume` mode of checked options. */
export function resumeMode(r: boolean | { verify?: 'size' | 'sha256' | undefined } | undefined): false | 'size' | 'sha256' {
  if (r === undefined || r === false) return false;
  if (r === true) return 'size';
  return r.verify ?? 'size';
}

/** The mode mask `preserve` applies: 0 (no preserve), 0o777 (`true`) or 0o7777 (`{ mode: 'all' }`). */
export function preserveMask(p: boolean | { mode?: 'permissions' | 'all' | undefined } | undefined): number {
  if (p === undefined || p === false) return 0;
  if (p === true) return 0o777;
  return p.mode === 'all' ? 0o7777 : 0o777;
}
