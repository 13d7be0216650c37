/**
 * The parallel transfer engines behind `get`/`put`/`readFile`/`writeFile`: many SFTP read or
 * write requests in flight at once on one handle (as OpenSSH's `sftp` does with its request
 * queue, sftp-client.c), each sized to the server's `limits@openssh.com` lengths, with
 * positional I/O on the local file. Each slot owns one buffer and one set of callbacks for the
 * whole transfer (no closure or buffer per chunk).
 *
 * How many requests are in flight adapts (issue 18 item 3) when the caller gives a
 * `maxConcurrency` above `concurrency`: an {@link InflightController} (sftp/pacing.ts) starts at
 * `concurrency`, grows while the measured delivery rate still rises and settles at about twice
 * the measured bandwidth x round trip, never above `maxConcurrency` nor above
 * `maxBufferBytes` of slot buffers (default {@link DEFAULT_MAX_BUFFER_BYTES}). Slots (and their
 * buffers) are made as the limit grows and kept for reuse when it shrinks, so the memory held is
 * at most `peak limit x chunk`.
 *
 * @internal
 * @module sftp/engine
 */
import fs from 'node:fs';
import { SshError } from '../errors.js';
import { abortReason } from '../internal/cancel.js';
import { mapSftpError, SftpStatus } from './errors.js';
import { DEFAULT_MAX_BUFFER_BYTES, InflightController, type PacingStats } from './pacing.js';
import type { RemotePath, SftpSession } from './session.js';
import type { TransferProgress } from './types.js';

/** Calls `onProgress` at most every `intervalMs` (and always on {@link ProgressReporter.final}). */
export class ProgressReporter {
  transferred = 0;
  private readonly startedAt = performance.now();
  private lastAt = 0;
  private base = 0;

  constructor(
    public total: number,
    private readonly onProgress: ((p: TransferProgress) => void) | undefined,
    private readonly intervalMs = 100,
  ) {}

  /** Marks `n` bytes as already present (resume): counted as transferred, not in the rate. */
  skip(n: number): void {
    this.transferred += n;
    this.base += n;
  }

  add(n: number): void {
    this.transferred += n;
    if (!this.onProgress) return;
    const now = performance.now();
    if (now - this.lastAt >= this.intervalMs) {
      this.lastAt = now;
      this.emit(now);
    }
  }

  final(): void {
    if (this.onProgress) this.emit(performance.now());
  }

  private emit(now: number): void {
    const elapsedS = Math.max((now - this.startedAt) / 1000, 1e-6);
    try {
      this.onProgress?.({
        transferredBytes: this.transferred,
        totalBytes: this.total,
        bytesPerSecond: Math.round((this.transferred - this.base) / elapsedS),
      });
    } catch {
      // a throwing progress callback must not break the transfer
    }
  }
}

/** Parameters of one engine run. */
export interface EngineParams {
  session: SftpSession;
  handle: Buffer;
  remotePath: RemotePath;
  /** Local file descriptor (positional reads/writes). */
  fd: number;
  /** First byte offset to copy. */
  start: number;
  /** Offset to stop at (exclusive). */
  end: number;
  chunkSize: number;
  /** Requests in flight at the start (and, without `maxConcurrency`, throughout). */
  concurrency: number;
  /**
   * The most requests in flight the run may grow to (see the module comment). Absent or not above
   * `concurrency`: exactly `concurrency` in flight, as before the adaptive engine (directory
   * transfers keep this; every lane of a striped transfer adapts, sftp/striped.ts).
   */
  maxConcurrency?: number | undefined;
  /**
   * Requests in flight at the start of an adaptive run (clamped to `[concurrency, cap]`).
   * Default: the bytes in flight the session's last run in this direction ended with
   * (`SftpSession.pacingMemo`) in requests of this run's size, else `concurrency`.
   */
  startConcurrency?: number | undefined;
  /** Growth stops before the slot buffers would exceed this many bytes. Default {@link DEFAULT_MAX_BUFFER_BYTES}. */
  maxBufferBytes?: number | undefined;
  /**
   * Where slot buffers come from and go back to when a slot is done for good (the runs of a
   * striped transfer share one). Absent: every slot allocates its own.
   */
  buffers?: SlotBuffers | undefined;
  /** Receives the run's {@link EngineControl} when it starts (a striped transfer's lanes). */
  onControl?: ((control: EngineControl) => void) | undefined;
  onBytes: (n: number) => void;
  /** The caller's cancellation (already combined with timeouts). */
  signal: AbortSignal | undefined;
}

/**
 * A running engine run, as a striped transfer sees it: how much of its range is not requested
 * yet, and a way to end it earlier so another lane copies the rest.
 */
export interface EngineControl {
  /** The first byte not requested yet (the run's end once all is requested). */
  readonly next: number;
  /** Where the run stops (exclusive): its `end`, lowered by {@link EngineControl.cut} or a short source. */
  readonly end: number;
  /**
   * Ends the run at `at` instead of its end (`next <= at < end`): bytes from `at` on are no
   * longer copied by this run. False (nothing changed) when `at` is out of those bounds or the
   * run has settled or failed.
   */
  cut(at: number): boolean;
}

/** Outcome of an engine run: where the copy stopped (below `end` when the source was shorter). */
export interface EngineResult {
  endedAt: number;
  /** The in-flight controller's final state (diagnostics and tests). */
  pacing?: PacingStats;
}

export { DEFAULT_MAX_BUFFER_BYTES };

/**
 * Test and diagnostics hook: called with the controller's final state after every `runGet`/`runPut`.
 * @internal
 */
export const engineHooks: { onPacing: ((kind: 'get' | 'put', stats: PacingStats) => void) | undefined } = { onPacing: undefined };

/** The hard cap of a run: `maxConcurrency`, bounded by the memory bound, never below `concurrency`. */
export function inflightCap(p: Pick<EngineParams, 'concurrency' | 'maxConcurrency' | 'maxBufferBytes'>, bufLen: number): number {
  const initial = Math.max(1, p.concurrency);
  const want = p.maxConcurrency ?? initial;
  if (want <= initial) return initial;
  const byMemory = Math.floor((p.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES) / Math.max(1, bufLen));
  return Math.max(initial, Math.min(want, byMemory));
}

/** Calls `onAbort` once the session dies or `signal` aborts; false (after calling it) when one already has. */
function watchAbort(session: SftpSession, signal: AbortSignal | undefined, onAbort: () => void): boolean {
  if (session.dead.aborted || signal?.aborted) {
    onAbort();
    return false;
  }
  session.dead.addEventListener('abort', onAbort, { once: true });
  signal?.addEventListener('abort', onAbort, { once: true });
  return true;
}

/** Undoes {@link watchAbort}. */
function unwatchAbort(session: SftpSession, signal: AbortSignal | undefined, onAbort: () => void): void {
  session.dead.removeEventListener('abort', onAbort);
  signal?.removeEventListener('abort', onAbort);
}

/** The error for an abort seen by {@link watchAbort}: the session's death first, else the signal's reason. */
function abortError(session: SftpSession, signal: AbortSignal | undefined, what: string): SshError {
  return abortReason(session.dead.aborted ? session.dead : signal!, what);
}

/**
 * Slot buffers kept between the engine runs of one transfer (a striped transfer runs one per
 * range, dozens per file), so each run does not allocate its own set of `chunkSize` buffers
 * (external memory that outlives a range run's scavenges: an 80 MiB get over 2 channels
 * allocated 42 MiB of them, at most 24 MiB with reuse). Buffers are handed back only by slots
 * with nothing in flight, so a buffer is never in two requests at once.
 *
 * @internal
 */
export class SlotBuffers {
  private readonly free = new Map<number, Buffer[]>();
  private heldBytes = 0;

  /** @param maxBytes - The most bytes kept for reuse (more given back are dropped). */
  constructor(private readonly maxBytes: number) {}

  /** A buffer of exactly `len` bytes: a kept one when there is one, else a new one. */
  take(len: number): Buffer {
    const buf = this.free.get(len)?.pop();
    if (buf === undefined) return Buffer.allocUnsafe(len);
    this.heldBytes -= len;
    return buf;
  }

  /** Keeps `buf` for a later {@link SlotBuffers.take} (nothing may still read or write it). */
  give(buf: Buffer): void {
    if (this.heldBytes + buf.length > this.maxBytes) return;
    let list = this.free.get(buf.length);
    if (list === undefined) this.free.set(buf.length, (list = []));
    list.push(buf);
    this.heldBytes += buf.length;
  }
}

/** Builds one slot of an engine around its buffer. */
type SlotClass = new (e: Engine, buf: Buffer) => Slot;

const now = (): number => performance.now();

/** Rounds a run must have measured before its final limit starts the session's next run. @internal */
export const MEMO_MIN_ROUNDS = 4;

/** One `runGet`/`runPut`: hands out ranges to its slots and settles once they are all done. */
class Engine {
  next: number;
  end: number;
  active = 0;
  localPending = 0;
  failed: SshError | undefined;
  settled = false;
  eofAt = Infinity;
  readonly p: EngineParams;
  pacer!: InflightController;
  /** Slots made by {@link Engine.fill} and retired by {@link Slot.delivered} when the limit shrank, for reuse. */
  private readonly spare: Slot[] = [];
  private bufLen = 1;
  private resolve!: (r: EngineResult) => void;
  private reject!: (e: SshError) => void;
  readonly promise: Promise<EngineResult>;
  private readonly onAbort: () => void;

  constructor(
    p: EngineParams,
    private readonly slotClass: SlotClass,
    private readonly kind: 'get' | 'put',
  ) {
    this.p = p;
    this.next = p.start;
    this.end = p.end;
    this.promise = new Promise<EngineResult>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.onAbort = (): void => this.fail(abortError(p.session, p.signal, 'sftp transfer'));
  }

  run(): Promise<EngineResult> {
    const chunk = Math.max(1, this.p.chunkSize);
    const size = Math.max(0, this.end - this.next);
    this.bufLen = Math.max(1, Math.min(chunk, size));
    const initial = Math.max(1, this.p.concurrency);
    const max = inflightCap(this.p, this.bufLen);
    const memo = this.p.session.pacingMemo[this.kind];
    const start = max > initial ? (this.p.startConcurrency ?? (memo === undefined ? undefined : Math.ceil(memo / this.bufLen))) : undefined;
    this.pacer = new InflightController({ initial, max, start, startMs: now() });
    this.p.onControl?.(this.control());
    if (!watchAbort(this.p.session, this.p.signal, this.onAbort)) return this.promise;
    if (size === 0) {
      this.check();
      return this.promise;
    }
    this.fill();
    return this.promise;
  }

  private control(): EngineControl {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the control is a view of this run
    const e = this;
    return {
      get next() {
        return e.next;
      },
      get end() {
        return e.end;
      },
      cut(at: number): boolean {
        if (e.settled || e.failed || !(at >= e.next && at < e.end)) return false;
        e.end = at;
        e.check();
        return true;
      },
    };
  }

  /** Starts slots (reusing retired ones first) until the limit is in flight or no range is left. */
  fill(): void {
    while (!this.failed && this.active < this.pacer.limit && this.next < this.end) {
      (this.spare.pop() ?? new this.slotClass(this, this.p.buffers?.take(this.bufLen) ?? Buffer.allocUnsafe(this.bufLen))).start();
    }
  }

  /** A request completed: feeds the controller and starts more slots if the limit grew. */
  completed(bytes: number, sentAt: number): void {
    const t = now();
    const before = this.pacer.limit;
    this.pacer.onComplete(bytes, t - sentAt, t);
    if (this.pacer.limit > before) this.fill();
  }

  /** Whether a slot that just finished should stop (the limit shrank); keeps it for reuse. */
  retire(slot: Slot): boolean {
    if (this.active < this.pacer.limit) return false;
    this.spare.push(slot);
    return true;
  }

  /** Takes the next range for a slot, or undefined when done/failed. */
  take(chunk: number): [number, number] | undefined {
    if (this.failed || this.next >= this.end) return undefined;
    const pos = this.next;
    const len = Math.min(chunk, this.end - pos);
    this.next += len;
    this.active++;
    return [pos, len];
  }

  /** The slot finished its range (or gave up). */
  release(): void {
    this.active--;
    this.check();
  }

  /** The source ended at `at` (shorter than expected). */
  sourceEnded(at: number): void {
    if (at < this.eofAt) this.eofAt = at;
    if (at < this.end) this.end = at;
  }

  fail(err: SshError): void {
    if (!this.failed) this.failed = err;
    this.check();
  }

  /** The slot gave up its range with `err`. */
  abandon(err: SshError): void {
    this.fail(err);
    this.release();
  }

  check(): void {
    if (this.settled) return;
    if (this.failed) {
      // local I/O on the fd must finish before the caller closes it; remote replies need not
      if (this.localPending > 0) return;
      this.finish();
      this.reject(this.failed);
      return;
    }
    if (this.active === 0 && this.next >= this.end) {
      this.finish();
      // an adaptive run that measured the link (a few rounds) leaves its limit to the next one
      const st = this.pacer.stats();
      if (st.max > st.initial && st.rounds >= MEMO_MIN_ROUNDS) this.p.session.pacingMemo[this.kind] = st.limit * this.bufLen;
      this.resolve({ endedAt: Math.min(this.end, this.eofAt), pacing: this.pacer.stats() });
    }
  }

  private finish(): void {
    this.settled = true;
    // retired slots have nothing in flight
    for (const slot of this.spare) slot.giveBuffer();
    this.spare.length = 0;
    unwatchAbort(this.p.session, this.p.signal, this.onAbort);
    const hook = engineHooks.onPacing;
    if (hook) {
      try {
        hook(this.kind, this.pacer.stats());
      } catch {
        // a diagnostics hook must not break the transfer
      }
    }
  }

  remoteError(err: unknown, op: string): SshError {
    return mapSftpError(err, op, this.p.remotePath, this.p.session.deadReason);
  }
}

function localError(err: unknown, what: string): SshError {
  const msg = err instanceof Error ? err.message : String(err);
  return new SshError('ERR_SSH_SFTP', `local ${what} failed: ${msg}`, { cause: err, retryable: false });
}

/**
 * One slot of an engine, owning one buffer for the whole transfer: takes a range, fills the
 * buffer from the source (asking again after a short read), hands it to the destination, then
 * takes the next range.
 */
abstract class Slot {
  pos = 0;
  len = 0;
  got = 0;
  /** When the current remote request was sent (performance.now()). */
  sentAt = 0;

  constructor(
    protected readonly e: Engine,
    protected readonly buf: Buffer,
  ) {}

  start(): void {
    const r = this.e.take(this.buf.length);
    // done for good, with nothing in flight: its buffer can serve another slot
    if (!r) return this.giveBuffer();
    [this.pos, this.len] = r;
    this.got = 0;
    this.read();
  }

  /** Hands the buffer to the run's {@link SlotBuffers} (only once nothing is in flight on it). */
  giveBuffer(): void {
    this.e.p.buffers?.give(this.buf);
  }

  /** Reads `[pos + got, pos + len)` from the source into the buffer at `got`. */
  protected abstract read(): void;

  /**
   * `n` more bytes arrived from the source (0: it ended). True when the buffer is ready for the
   * destination; false when the slot asked for the rest or gave up its (empty) range.
   */
  protected received(n: number): boolean {
    if (n > 0) {
      this.got += n;
      if (this.got < this.len) {
        this.read(); // short read: ask for the rest
        return false;
      }
    } else {
      this.e.sourceEnded(this.pos + this.got);
    }
    if (this.got === 0) {
      this.e.release();
      return false;
    }
    return true;
  }

  /** The destination has the whole buffer: count it and go on with the next range. */
  protected delivered(): void {
    const e = this.e;
    e.p.onBytes(this.got);
    e.active--;
    if (e.failed) return e.check();
    if (!e.retire(this)) this.start();
    e.check();
  }
}

/** One download slot: remote read into its buffer, then a positional local write. */
class GetSlot extends Slot {
  written = 0;

  protected read(): void {
    const { session, handle } = this.e.p;
    this.sentAt = now();
    try {
      session.sftp.read(handle, this.buf, this.got, this.len - this.got, this.pos + this.got, this.onRead);
    } catch (err) {
      this.e.abandon(this.e.remoteError(err, 'read'));
    }
  }

  private readonly onRead = (err: Error | undefined, nb: number): void => {
    const e = this.e;
    if (e.failed) return e.release();
    if (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== SftpStatus.EOF) return e.abandon(e.remoteError(err, 'read'));
      nb = 0;
    }
    e.p.session.counters.bytesRead += nb;
    e.completed(nb, this.sentAt);
    if (!this.received(nb)) return;
    this.written = 0;
    this.write();
  };

  private write(): void {
    this.e.localPending++;
    fs.write(this.e.p.fd, this.buf, this.written, this.got - this.written, this.pos + this.written, this.onWrite);
  }

  private readonly onWrite = (err: NodeJS.ErrnoException | null, n: number): void => {
    const e = this.e;
    e.localPending--;
    if (err) return e.abandon(localError(err, 'write'));
    this.written += n;
    if (this.written < this.got && !e.failed) return this.write();
    this.delivered();
  };
}

/** One upload slot: positional local read into its buffer, then a remote write. */
class PutSlot extends Slot {
  protected read(): void {
    this.e.localPending++;
    fs.read(this.e.p.fd, this.buf, this.got, this.len - this.got, this.pos + this.got, this.onRead);
  }

  private readonly onRead = (err: NodeJS.ErrnoException | null, n: number): void => {
    const e = this.e;
    e.localPending--;
    if (err) return e.abandon(localError(err, 'read'));
    if (e.failed) return e.release();
    if (!this.received(n)) return;
    const { session, handle } = e.p;
    this.sentAt = now();
    try {
      session.write(handle, this.buf, 0, this.got, this.pos, true, this.onWrite);
    } catch (error) {
      e.abandon(e.remoteError(error, 'write'));
    }
  };

  private readonly onWrite = (err?: Error | null): void => {
    const e = this.e;
    if (err) return e.abandon(e.remoteError(err, 'write'));
    if (e.failed) return e.release();
    e.p.session.counters.bytesWritten += this.got;
    e.completed(this.got, this.sentAt);
    this.delivered();
  };
}

/** Downloads `[start, end)` of the open remote handle into the local fd. */
export function runGet(p: EngineParams): Promise<EngineResult> {
  return new Engine(p, GetSlot, 'get').run();
}

/** Uploads `[start, end)` of the local fd into the open remote handle. */
export function runPut(p: EngineParams): Promise<EngineResult> {
  return new Engine(p, PutSlot, 'put').run();
}

/**
 * Writes `data` to the open remote handle at `offset`, with up to `concurrency` writes in flight.
 * Rejects with the first error, the session's death reason or the signal's reason.
 */
export function writeBuffer(
  session: SftpSession,
  handle: Buffer,
  remotePath: RemotePath,
  data: Buffer,
  offset: number,
  concurrency: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const chunk = session.maxWriteLen;
  return new Promise<void>((resolve, reject) => {
    let next = 0;
    let inflight = 0;
    let done = false;
    const finish = (err?: SshError): void => {
      if (done) return;
      done = true;
      unwatchAbort(session, signal, onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = (): void => finish(abortError(session, signal, 'sftp write'));
    const onWrite = (err?: Error | null): void => {
      inflight--;
      if (done) return;
      if (err) return finish(mapSftpError(err, 'write', remotePath, session.deadReason));
      pump();
    };
    const onWriteOf =
      (len: number) =>
      (err?: Error | null): void => {
        if (!err) session.counters.bytesWritten += len;
        onWrite(err);
      };
    const pump = (): void => {
      while (!done && inflight < concurrency && next < data.length) {
        const len = Math.min(chunk, data.length - next);
        inflight++;
        try {
          session.write(handle, data, next, len, offset + next, true, onWriteOf(len));
        } catch (err) {
          inflight--;
          return finish(mapSftpError(err, 'write', remotePath, session.deadReason));
        }
        next += len;
      }
      if (!done && inflight === 0 && next >= data.length) finish();
    };
    if (watchAbort(session, signal, onAbort)) pump();
  });
}

/**
 * Reads `[start, start + length)` of the open remote handle into one buffer, with up to
 * `concurrency` reads in flight. Resolves with the bytes read (fewer when the file ended first).
 */
export function readIntoBuffer(
  session: SftpSession,
  handle: Buffer,
  remotePath: RemotePath,
  start: number,
  length: number,
  concurrency: number,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  const chunk = session.maxReadLen;
  return new Promise<Buffer>((resolve, reject) => {
    let next = 0;
    let inflight = 0;
    let done = false;
    let endAt = length;
    const finish = (err?: SshError): void => {
      if (done) return;
      done = true;
      unwatchAbort(session, signal, onAbort);
      if (err) reject(err);
      else resolve(endAt < length ? out.subarray(0, endAt) : out);
    };
    const onAbort = (): void => finish(abortError(session, signal, 'sftp read'));
    const issue = (off: number, len: number): void => {
      inflight++;
      try {
        session.sftp.read(handle, out, off, len, start + off, (err, nb) => {
          inflight--;
          if (done) return;
          if (err && (err as { code?: unknown }).code !== SftpStatus.EOF) {
            return finish(mapSftpError(err, 'read', remotePath, session.deadReason));
          }
          const n = err ? 0 : nb;
          session.counters.bytesRead += n;
          if (n === 0) endAt = Math.min(endAt, off);
          else if (n < len && off + n < endAt) issue(off + n, len - n);
          pump();
        });
      } catch (err) {
        inflight--;
        finish(mapSftpError(err, 'read', remotePath, session.deadReason));
      }
    };
    const pump = (): void => {
      while (!done && inflight < concurrency && next < endAt) {
        const len = Math.min(chunk, endAt - next);
        issue(next, len);
        next += len;
      }
      if (!done && inflight === 0 && next >= endAt) finish();
    };
    if (watchAbort(session, signal, onAbort)) pump();
  });
}
