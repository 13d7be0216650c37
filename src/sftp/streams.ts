/**
 * Pipelined SFTP streams: several read or write requests in flight at once (ssh2's own streams
 * keep one), each at most the server's `limits@openssh.com` length.
 *
 * @internal
 * @module sftp/streams
 */
import { Readable, Writable } from 'node:stream';
import { SshError } from '../errors.js';
import { abortReason, operationScope } from '../internal/cancel.js';
import { mapSftpError, SftpStatus } from './errors.js';
import { appendOffset, DEFAULT_STREAM_CONCURRENCY } from './ops.js';
import { OpenFlags, type RemotePath, type SftpSession } from './session.js';
import type { ReadStreamOptions, WriteStreamOptions } from './types.js';

const PROBE_LEN = 64 * 1024;

interface Pending {
  pos: number;
  len: number;
  buf: Buffer;
  got: number;
  done: boolean;
  eof: boolean;
}

/**
 * Reads a remote handle in order, keeping up to `concurrency` requests in flight ahead of the
 * consumer. `next()` resolves with the next chunk, or `null` at the end.
 *
 * @internal
 */
export class OrderedReader {
  private readonly queue: Pending[] = [];
  private nextPos: number;
  private ended = false;
  private error: SshError | undefined;
  private wake: (() => void) | undefined;
  private readonly onAbort: () => void;

  constructor(
    private readonly session: SftpSession,
    private readonly handle: Buffer,
    private readonly path: RemotePath,
    start: number,
    private readonly end: number,
    private readonly chunk: number,
    private readonly concurrency: number,
    private readonly signal?: AbortSignal,
    private readonly expected = Infinity,
  ) {
    this.nextPos = start;
    this.onAbort = () => {
      this.error ??= abortReason(session.dead.aborted ? session.dead : signal!, 'sftp read');
      this.poke();
    };
    if (session.dead.aborted || signal?.aborted) this.onAbort();
    else {
      session.dead.addEventListener('abort', this.onAbort, { once: true });
      signal?.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /** Stops listening; outstanding replies are ignored. */
  dispose(): void {
    this.ended = true;
    this.session.dead.removeEventListener('abort', this.onAbort);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private fill(): void {
    for (;;) {
      if (this.ended || this.error || this.nextPos >= this.end) return;
      // past the size seen at open: one small request at a time, until EOF
      const beyond = this.nextPos >= this.expected;
      if (this.queue.length >= (beyond ? 1 : this.concurrency)) return;
      const len = Math.min(beyond ? PROBE_LEN : this.chunk, this.end - this.nextPos, beyond ? Infinity : this.expected - this.nextPos);
      const req: Pending = { pos: this.nextPos, len, buf: Buffer.allocUnsafe(len), got: 0, done: false, eof: false };
      this.nextPos += len;
      this.queue.push(req);
      this.issue(req);
    }
  }

  private issue(req: Pending): void {
    try {
      this.session.sftp.read(this.handle, req.buf, req.got, req.len - req.got, req.pos + req.got, (err, nb) => {
        if (err && (err as { code?: unknown }).code !== SftpStatus.EOF) {
          this.error ??= mapSftpError(err, 'read', this.path, this.session.deadReason);
        } else if (!err && nb > 0) {
          req.got += nb;
          this.session.counters.bytesRead += nb;
          if (req.got < req.len && !this.ended) return this.issue(req);
        } else {
          req.eof = true;
        }
        req.done = true;
        this.poke();
      });
    } catch (err) {
      this.error ??= mapSftpError(err, 'read', this.path, this.session.deadReason);
      req.done = true;
    }
  }

  /** The next chunk in order, or `null` at the end of the range / file. */
  async next(): Promise<Buffer | null> {
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (this.error) throw this.error;
      if (this.ended) return null;
      this.fill();
      const head = this.queue[0];
      if (!head) {
        this.ended = true;
        return null;
      }
      if (head.done) {
        this.queue.shift();
        if (head.eof) {
          // the file ended inside this request: nothing after it counts
          this.ended = true;
          this.queue.length = 0;
          return head.got > 0 ? head.buf.subarray(0, head.got) : null;
        }
        this.fill();
        return head.got === head.len ? head.buf : head.buf.subarray(0, head.got);
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
    throw new SshError('ERR_SSH_SFTP', 'sftp read: no progress', { retryable: false });
  }
}

/** Options of {@link SftpReadStream} (internal form). */
export interface ReadStreamParams {
  session: SftpSession;
  path: RemotePath;
  /** Opens the handle; resolves with it and the file size seen at open (Infinity: unknown). */
  open: () => Promise<{ handle: Buffer; size: number }>;
  start: number;
  /** Exclusive end offset (Infinity: to the end of the file). */
  end: number;
  chunkSize: number;
  concurrency: number;
  highWaterMark: number;
  signal: AbortSignal | undefined;
}

/**
 * A Readable over a remote file with up to `concurrency` reads in flight. The handle is opened
 * on construction and closed when the stream ends or is destroyed ('close' is emitted after).
 *
 * @internal
 */
export class SftpReadStream extends Readable {
  private handle: Buffer | undefined;
  private reader: OrderedReader | undefined;
  private reading = false;
  /** Bytes pushed so far. */
  bytesRead = 0;

  constructor(private readonly params: ReadStreamParams) {
    super({ highWaterMark: params.highWaterMark });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    const p = this.params;
    p.open().then(
      ({ handle, size }) => {
        this.handle = handle;
        this.reader = new OrderedReader(p.session, handle, p.path, p.start, p.end, p.chunkSize, p.concurrency, p.signal, size);
        callback();
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override _read(): void {
    if (this.reading || !this.reader) return;
    this.reading = true;
    const reader = this.reader;
    const loop = async (): Promise<void> => {
      for (;;) {
        const chunk = await reader.next();
        if (chunk === null) {
          this.push(null);
          return;
        }
        this.bytesRead += chunk.length;
        if (!this.push(chunk)) return;
      }
    };
    loop().then(
      () => {
        this.reading = false;
      },
      (err: unknown) => {
        this.reading = false;
        this.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.reader?.dispose();
    const handle = this.handle;
    this.handle = undefined;
    if (!handle || !this.params.session.alive) return callback(err);
    this.params.session.close(handle, this.params.path).then(
      () => callback(err),
      (closeErr: unknown) => callback(err ?? (closeErr instanceof Error ? closeErr : new Error(String(closeErr)))),
    );
  }
}

/** Options of {@link SftpWriteStream} (internal form). */
export interface WriteStreamParams {
  session: SftpSession;
  path: RemotePath;
  /** Opens the handle; resolves with it and the offset of the first write. */
  open: () => Promise<{ handle: Buffer; start: number }>;
  concurrency: number;
  highWaterMark: number;
  signal: AbortSignal | undefined;
}

/**
 * A Writable over a remote file that keeps up to `concurrency` writes in flight. 'finish' is
 * emitted only after every write was acknowledged and the handle closed successfully, so a
 * partially written file is never reported complete.
 *
 * @internal
 */
export class SftpWriteStream extends Writable {
  private handle: Buffer | undefined;
  private pos = 0;
  private inflight = 0;
  private error: SshError | undefined;
  private waiting: (() => void) | undefined;
  private readonly onAbort: () => void;
  /** Bytes acknowledged by the server so far. */
  bytesWritten = 0;

  constructor(private readonly params: WriteStreamParams) {
    super({ highWaterMark: params.highWaterMark, decodeStrings: true });
    this.onAbort = () => {
      const s = params.session.dead.aborted ? params.session.dead : params.signal!;
      this.error ??= abortReason(s, 'sftp write');
      this.poke();
      this.destroy(this.error);
    };
  }

  private poke(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  override _construct(callback: (error?: Error | null) => void): void {
    const p = this.params;
    p.open().then(
      ({ handle, start }) => {
        this.handle = handle;
        this.pos = start;
        if (p.session.dead.aborted || p.signal?.aborted) {
          this.onAbort();
          return callback(this.error);
        }
        p.session.dead.addEventListener('abort', this.onAbort, { once: true });
        p.signal?.addEventListener('abort', this.onAbort, { once: true });
        callback();
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.error) return callback(this.error);
    const handle = this.handle!;
    const p = this.params;
    const len = chunk.length;
    const pos = this.pos;
    this.pos += len;
    this.inflight++;
    try {
      // The stream calls back before the reply (writes in flight), so queued bytes are copied.
      p.session.write(handle, chunk, 0, len, pos, false, (err) => {
        this.inflight--;
        if (err) this.error ??= mapSftpError(err, 'write', p.path, p.session.deadReason);
        else {
          this.bytesWritten += len;
          p.session.counters.bytesWritten += len;
        }
        this.poke();
      });
    } catch (err) {
      this.inflight--;
      this.error ??= mapSftpError(err, 'write', p.path, p.session.deadReason);
      return callback(this.error);
    }
    if (this.inflight < p.concurrency) return callback();
    this.waitBelow(p.concurrency, callback);
  }

  /** Calls back once fewer than `limit` writes are in flight (or with the first error). */
  private waitBelow(limit: number, callback: (error?: Error | null) => void): void {
    if (this.error) return callback(this.error);
    if (this.inflight < limit) return callback();
    this.waiting = () => this.waitBelow(limit, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.waitBelow(1, (err) => {
      if (err) return callback(err);
      const handle = this.handle;
      this.handle = undefined;
      if (!handle) return callback();
      this.params.session.close(handle, this.params.path).then(
        () => callback(),
        (closeErr: unknown) => callback(closeErr instanceof Error ? closeErr : new Error(String(closeErr))),
      );
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const p = this.params;
    p.session.dead.removeEventListener('abort', this.onAbort);
    p.signal?.removeEventListener('abort', this.onAbort);
    const handle = this.handle;
    this.handle = undefined;
    if (!handle || !p.session.alive) return callback(err);
    p.session.close(handle, p.path).then(
      () => callback(err),
      () => callback(err),
    );
  }
}

/** Default Readable/Writable buffer size, bytes. */
const DEFAULT_HWM = 1024 * 1024;

/** Gives the live session (opening one if needed); rejects when `signal` aborts. */
export type AcquireSession = (signal: AbortSignal) => Promise<SftpSession>;

/** {@link SftpClient.createReadStream} with checked options. */
export function remoteReadStream(acquire: AcquireSession, p: RemotePath, o: ReadStreamOptions): SftpReadStream {
  const { chunkSize, signal } = o;
  const holder: { s?: SftpSession } = {};
  return new SftpReadStream({
    get session(): SftpSession {
      return holder.s!;
    },
    path: p,
    open: async () => {
      const scope = operationScope({ signal }, 'sftp createReadStream');
      try {
        const s = await acquire(scope.signal);
        holder.s = s;
        const handle = await s.open(p, OpenFlags.READ, undefined, scope.signal);
        try {
          const st = await s.fstat(handle, p, scope.signal);
          return { handle, size: st.size ?? Infinity };
        } catch (err) {
          s.closeQuietly(handle);
          throw err;
        }
      } finally {
        scope.dispose();
      }
    },
    start: o.start ?? 0,
    end: o.end === undefined ? Infinity : o.end + 1,
    get chunkSize(): number {
      return Math.min(chunkSize ?? Infinity, holder.s?.maxReadLen ?? 32 * 1024);
    },
    concurrency: o.concurrency ?? DEFAULT_STREAM_CONCURRENCY,
    highWaterMark: o.highWaterMark ?? DEFAULT_HWM,
    signal,
  });
}

/** {@link SftpClient.createWriteStream} with checked options. */
export function remoteWriteStream(acquire: AcquireSession, p: RemotePath, o: WriteStreamOptions): SftpWriteStream {
  const flags = o.flags ?? 'w';
  const start = o.start ?? 0;
  const { mode, signal } = o;
  const holder: { s?: SftpSession } = {};
  const pflags = {
    w: OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.TRUNC,
    wx: OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL,
    a: OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.APPEND,
    'r+': OpenFlags.READ | OpenFlags.WRITE,
  }[flags];
  return new SftpWriteStream({
    get session(): SftpSession {
      return holder.s!;
    },
    path: p,
    open: async () => {
      const scope = operationScope({ signal }, 'sftp createWriteStream');
      try {
        const s = await acquire(scope.signal);
        holder.s = s;
        const handle = await s.open(p, pflags, mode === undefined ? undefined : { mode }, scope.signal);
        if (flags !== 'a') return { handle, start };
        try {
          const st = await s.fstat(handle, p, scope.signal);
          return { handle, start: appendOffset(st.size, 'createWriteStream', p) };
        } catch (err) {
          s.closeQuietly(handle);
          throw err;
        }
      } finally {
        scope.dispose();
      }
    },
    concurrency: o.concurrency ?? DEFAULT_STREAM_CONCURRENCY,
    highWaterMark: o.highWaterMark ?? DEFAULT_HWM,
    signal,
  });
}
