/**
 * `follow()`: `tail -F` over SSH as an async iterable of lines that survives reconnects.
 *
 * @module jobs/follow
 */
import { z } from 'zod';
import { parseOrThrow, signalSchema } from '../internal/validate.js';
import { SshInvalidArgError } from '../errors.js';
import { operationScope } from '../internal/cancel.js';
import type { JobsHost } from './remote.js';
import { tailChunks } from './tail.js';

/** Options of {@link SshClient.follow}. */
export interface FollowOptions {
  /**
   * Where to start: `'end'` (only lines written from now on, as `tail -F -n 0`), `'start'`
   * (the whole file), or a byte offset (put it at a line start: a line cut by it is delivered
   * from that byte on). A file that does not exist yet is read from its start once it appears.
   * @default 'end'
   */
  from?: 'start' | 'end' | number;
  /** Only lines matching this are yielded (tested locally, on the line without its `\n`). */
  filter?: RegExp | ((line: string) => boolean);
  /** Ends the iteration (the loop's `for await` then throws `ERR_SSH_ABORTED`, or the reason's SshError). */
  signal?: AbortSignal;
  /** How long to wait between polls once the end of the file is reached, in ms. @default 250 */
  pollIntervalMs?: number;
  /** Largest piece read in one poll, in bytes. @default 1048576 (1 MiB) */
  chunkBytes?: number;
  /** A partial last line longer than this (no `\n` yet) is delivered as a line of its own, in bytes. @default 1048576 */
  maxLineBytes?: number;
}

/** One line of a followed file. */
export interface FollowLine {
  /** The line, decoded as UTF-8, without its `\n`. */
  line: string;
  /** Byte offset of the line's first byte in the file it came from (it restarts at 0 after a rotation or truncation). */
  offset: number;
}

const followSchema = z.strictObject({
  from: z.union([z.literal('start'), z.literal('end'), z.number().int().min(0)], { error: "expected 'start', 'end' or a byte offset >= 0" }).optional(),
  filter: z
    .custom<RegExp | ((line: string) => boolean)>((v) => v instanceof RegExp || typeof v === 'function', { error: 'expected a RegExp or a function (line) => boolean' })
    .optional(),
  signal: signalSchema.optional(),
  pollIntervalMs: z.number({ error: 'expected milliseconds' }).int().min(10, { error: 'expected milliseconds >= 10' }).optional(),
  chunkBytes: z.number({ error: 'expected bytes' }).int().min(1024, { error: 'expected bytes >= 1024' }).max(64 * 1024 * 1024).optional(),
  maxLineBytes: z.number({ error: 'expected bytes' }).int().min(1).optional(),
});

/**
 * Validates `options` (so that a typo throws at the call, not at the first `next()`). @internal
 */
export function checkFollowOptions(path: string, options: FollowOptions): void {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
    throw new SshInvalidArgError("invalid follow path: expected a non-empty remote path without NUL bytes", { field: 'path' });
  }
  parseOrThrow(followSchema, options, 'follow options');
}

/** The lines of `path`, followed. @internal */
export async function* followLines(host: JobsHost, path: string, options: FollowOptions): AsyncGenerator<FollowLine, void, undefined> {
  const filter = options.filter;
  const test = filter === undefined ? undefined : filter instanceof RegExp ? (l: string): boolean => { filter.lastIndex = 0; return filter.test(l); } : filter;
  const maxLine = options.maxLineBytes ?? 1024 * 1024;
  const scope = operationScope({ signal: options.signal }, 'follow');
  let partial: Buffer[] = [];
  let partialLen = 0;
  let partialStart = 0;
  let generation = 0;
  try {
    for await (const chunk of tailChunks(host, path, {
      from: options.from ?? 'end',
      follow: true,
      pollIntervalMs: options.pollIntervalMs ?? 250,
      chunkBytes: options.chunkBytes ?? 1024 * 1024,
      signal: scope.signal,
    })) {
      if (chunk.generation !== generation) {
        // Another file now: the old file's unterminated last line is complete.
        generation = chunk.generation;
        if (partialLen > 0) {
          const line = Buffer.concat(partial, partialLen).toString('utf8');
          const at = partialStart;
          partial = [];
          partialLen = 0;
          if (!test || test(line)) yield { line, offset: at };
        }
      }
      const data = chunk.data;
      let start = 0;
      if (partialLen === 0) partialStart = chunk.offset;
      for (;;) {
        const nl = data.indexOf(0x0a, start);
        if (nl < 0) break;
        const piece = data.subarray(start, nl);
        const at = partialLen > 0 ? partialStart : chunk.offset + start;
        const line = (partialLen > 0 ? Buffer.concat([...partial, piece], partialLen + piece.length) : piece).toString('utf8');
        partial = [];
        partialLen = 0;
        start = nl + 1;
        partialStart = chunk.offset + start;
        if (!test || test(line)) yield { line, offset: at };
      }
      if (start < data.length) {
        if (partialLen === 0) partialStart = chunk.offset + start;
        partial.push(data.subarray(start));
        partialLen += data.length - start;
        if (partialLen >= maxLine) {
          const line = Buffer.concat(partial, partialLen).toString('utf8');
          const at = partialStart;
          partial = [];
          partialLen = 0;
          partialStart = chunk.offset + data.length;
          if (!test || test(line)) yield { line, offset: at };
        }
      }
    }
  } finally {
    scope.dispose();
  }
}
