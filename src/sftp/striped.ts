/**
 * Striped transfers behind {@link SftpClient.get} / {@link SftpClient.put} of a large file: the
 * byte range still to copy is cut into ranges, and several SFTP sessions (RFC 4254 6.5 `sftp`
 * subsystem channels, each its own sftp-server on the server) copy them at once, each with the
 * unchanged single-handle engine (sftp/engine.ts `runGet`/`runPut`).
 *
 * Why: on a long link one channel is held to its window per round trip (sshd and ssh2 both
 * advertise 2 MiB), so one `put` at RTT 51 ms stays near OpenSSH `sftp`'s 34 MB/s; every
 * channel has its own window, so 4 channels carry ~4 windows per round trip (issue 18: 123 MB/s
 * with 4, 180 with 8). The same idea as rclone's `--multi-thread-streams` and lftp's
 * `pget -n`.
 *
 * How:
 * - The client's own SFTP session takes ranges at once; each extra session is opened through
 *   the `openChannel` hook (the SshClient facade's takes a free `MaxSessions` slot from the
 *   session limiter, never waits for one, and a refusal lowers the learned limit), opens the
 *   same file (READ for get, WRITE for put) and joins. A server that refuses more channels only
 *   leaves fewer lanes: the transfer goes on, at worst on the one session it had.
 * - Ranges are handed out lowest first. A lane starts its next range while the last requests of
 *   the current one are in flight, so a range boundary costs no round trip. Once all are handed
 *   out, a lane with nothing left to request takes the back half of the busiest run's
 *   unrequested bytes ({@link STEAL_MIN_BYTES} or more) as a new range, placed after the one it
 *   was cut from, so a slow channel does not finish the file alone.
 * - The range runs share one set of request buffers ({@link SlotBuffers}), and a lane carries to
 *   its next range the bytes in flight its last one ended with (in requests of its own size).
 * - Every lane adapts its requests in flight like a single-channel run (sftp/pacing.ts), within
 *   its share of {@link STRIPE_MAX_BUFFER_BYTES}, and starts a range at the limit its last
 *   finished range ended with (its first range: at its session's pacing memo) rather than
 *   probing again from `concurrency`.
 * - Resume: while a striped copy runs, the destination is first set to the source's full size,
 *   so a copy stopped where nothing could be cleaned up (process killed, link lost during a put)
 *   leaves a destination of the source's size, which `resume` never takes as a prefix (`'size'`
 *   copies it again; `'sha256'` finds the hash differs). When the copy fails or is aborted, the
 *   destination is cut back to its contiguous complete prefix (the start of the lowest range not
 *   completed), so `resume` continues from there and never skips a hole: always for get (a
 *   local ftruncate once every local write has settled); for put once every extra handle's
 *   CLOSE was answered (the server processed all earlier writes of that channel, RFC 4253 6.4
 *   order; sftp-server handles requests in order) and the main session is alive, with an
 *   FSETSTAT size on the main session.
 * - Every extra channel is done with (handle CLOSE, then channel close, each awaited at most 5 s
 *   and not past the caller's `timeoutMs`) before the transfer settles, on success, failure or
 *   abort; on success this runs while the caller closes the main handle (`closing`), and with a
 *   pool (sftp/extra-pool.ts) the channel is kept for the next striped transfer once its handle
 *   CLOSE was answered.
 *
 * @internal
 * @module sftp/striped
 */
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import type ssh2 from 'ssh2';
import type { Link } from '../connection/link.js';
import { SshError } from '../errors.js';
import { abortReason } from '../internal/cancel.js';
import { runGet, runPut, SlotBuffers, type EngineControl, type EngineParams, type EngineResult } from './engine.js';
import type { ExtraSessionPool } from './extra-pool.js';
import { CLOSE_TIMEOUT_MS, settleWithin } from './ops.js';
import { OpenFlags, SftpSession } from './session.js';
import type { RemotePath } from './wire.js';

/** Default of `TransferOptions.channels`. */
export const DEFAULT_CHANNELS = 4;
/** Default of `TransferOptions.channelsMinBytes` (64 MiB). */
export const DEFAULT_CHANNELS_MIN_BYTES = 64 * 1024 * 1024;
/**
 * Least round trip (ms) for which the default `channels` stripes, by direction: the SFTP
 * session's fastest request so far (the file's own OPEN/FSTAT included; a minimum, so a busy
 * moment does not count). An explicit `channels` is used whatever the round trip.
 *
 * - `put` from 5 ms: each channel's writes are held to sshd's own 2 MiB window per round trip,
 *   so more channels pay as soon as that window is the limit (RTT ~11 ms, 128 MiB, 2 cores:
 *   125 MB/s over one channel, 198 over 4).
 * - `get` from 25 ms: our receive window is eager and one channel's reads adapt up to 8 MiB in
 *   flight, which carries ~250 MB/s to ~20 ms; below that CPU is the limit and every extra
 *   channel (one more sftp-server and cipher stream) costs throughput (RTT ~11 ms: 248 vs 224
 *   MB/s; ~21 ms: 214 vs 203; ~31 ms: 157 vs 179; loopback: 372 vs 218).
 */
export const STRIPE_MIN_RTT_MS: Readonly<Record<'get' | 'put', number>> = Object.freeze({ get: 25, put: 5 });
/**
 * Request buffers a striped transfer may hold over all its lanes, bytes: 12 MiB (each lane gets
 * its share: 3 MiB, 12 requests of 255 KiB, over 4 channels; never below its `concurrency`).
 * The bound is for the server: every reply in flight waits in sshd's channel buffer, which
 * OpenSSH 9.2 grows with a whole copy per 16 KiB (see `DEFAULT_MAX_BUFFER_BYTES` in
 * sftp/pacing.ts), and one sshd process serves all the channels. Measured through a 52 ms delay
 * line (128 MiB gets over 4 channels, lanes starting at the session's memo, 2 cores):
 * - 8 MiB per lane (32 MiB in all): 1 get of 3 crawled at 7-15 MB/s for a second while sshd
 *   burned 1.46 s of CPU (0.3-0.4 s otherwise);
 * - 16 MiB in all: 1 of 45 took 2.0 s (sshd 1.54 s), the others 164-183 MB/s;
 * - 12 MiB in all: 50 in a row, mean 160 MB/s, slowest 108 MB/s (sshd 0.74 s), the others
 *   146-170.
 */
export const STRIPE_MAX_BUFFER_BYTES = 12 * 1024 * 1024;

/**
 * A lane with nothing left to request takes half of another run's unrequested bytes only when
 * that run has at least this many (so what it takes is worth a run of its own: 1 MiB or more).
 * @internal
 */
export const STEAL_MIN_BYTES = 2 * 1024 * 1024;

/** Most channels one transfer may use (sshd's default `MaxSessions` is 10). */
export const MAX_CHANNELS = 64;

/** A session's pacing memo (bytes in flight) in requests of `chunk` bytes; undefined without one. */
function memoRequests(memo: number | undefined, chunk: number): number | undefined {
  return memo === undefined ? undefined : Math.ceil(memo / Math.max(1, chunk));
}

/** Opens one more SFTP channel on `link` (see `SftpOptions.openExtraSftp`). */
export type OpenChannel = (link: Link, signal: AbortSignal) => Promise<ssh2.SFTPWrapper>;

/** A half-open byte range `[start, end)`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** How {@link splitRanges} sizes ranges. */
export interface RangeLimits {
  /** Ranges per channel aimed at (more: finer resume, and a slow lane holds less). */
  perChannel: number;
  /** Smallest range in bytes (unless the whole span split over the channels is smaller). */
  minBytes: number;
  /** Largest range in bytes. */
  maxBytes: number;
  /** Range starts (but the first) are multiples of this many bytes after `start`. */
  align: number;
}

/**
 * 8 ranges per channel, 8 MiB to 64 MiB each, 64 KiB aligned: a 1 GiB put over 4 channels is
 * 32 ranges of 32 MiB. What a resume after a failure copies again is at most the ranges in
 * flight (2 per channel: up to 8 x 64 MiB over 4 channels, typically about 4 ranges); larger
 * ranges would cost that granularity, smaller ones a buffer set (concurrency x chunk) per
 * engine run.
 */
export const RANGE_LIMITS: Readonly<RangeLimits> = Object.freeze({ perChannel: 8, minBytes: 8 * 1024 * 1024, maxBytes: 64 * 1024 * 1024, align: 64 * 1024 });

/**
 * Cuts `[start, end)` into consecutive ranges for `channels` lanes: about `perChannel` ranges per
 * lane, each from `minBytes` to `maxBytes` (but never so large that a lane gets nothing: when
 * the span is under `channels * minBytes` it is split into `channels` near-equal ranges), sizes
 * rounded up to `align`. Pure; the ranges cover the span exactly, in order, none empty.
 */
export function splitRanges(start: number, end: number, channels: number, limits: Readonly<RangeLimits> = RANGE_LIMITS): ByteRange[] {
  const span = end - start;
  if (!(span > 0)) return [];
  const lanes = Math.max(1, Math.floor(channels));
  let size = Math.ceil(span / (lanes * Math.max(1, limits.perChannel)));
  size = Math.min(Math.max(size, limits.minBytes), limits.maxBytes);
  // every lane gets a range when the span allows it
  size = Math.min(size, Math.ceil(span / lanes));
  const align = Math.max(1, limits.align);
  size = Math.max(align, Math.ceil(size / align) * align);
  const out: ByteRange[] = [];
  for (let at = start; at < end; at += size) out.push({ start: at, end: Math.min(end, at + size) });
  return out;
}

/**
 * The end of the contiguous complete prefix: the start of the lowest range not `done`, or
 * `eofAt` when the source ended before it (capped by the last range's end). Pure.
 */
export function completedPrefix(ranges: readonly ByteRange[], done: readonly boolean[], eofAt = Infinity): number {
  if (ranges.length === 0) return 0;
  let at = ranges[ranges.length - 1]!.end;
  for (let i = 0; i < ranges.length; i++) {
    if (!done[i]) {
      at = ranges[i]!.start;
      break;
    }
  }
  return Math.min(at, eofAt);
}

/** What a striped transfer needs beyond the engine parameters. */
export interface StripeOptions {
  /** Lanes aimed at, the client's own session included (>= 2). */
  channels: number;
  openChannel: OpenChannel;
  /** Extra channels already being opened (taken by the transfer; the rest are opened with `openChannel`). */
  preopened?: PreopenedExtras | undefined;
  /**
   * Extra sessions kept from earlier striped transfers: taken first (no setup), and given back
   * (their handle closed) after a successful copy instead of being closed.
   */
  pool?: ExtraSessionPool | undefined;
  /** Kept sessions taken ahead, the file's OPEN already sent on each (a get: see {@link OpenedExtras}). */
  opened?: OpenedExtras | undefined;
}

/**
 * Kept extra sessions (sftp/extra-pool.ts) taken ahead of a get that may be striped, each with
 * the file's OPEN sent at once, next to the client's own OPEN: their lanes read from the same
 * round trip as the client's own session instead of one later. Whoever holds it hands it to
 * {@link runStriped} (`StripeOptions.opened`) or calls {@link OpenedExtras.release}.
 */
export class OpenedExtras {
  private readonly lanes: { session: SftpSession; handle: Promise<Buffer | undefined> }[] = [];
  private taken = false;

  /** Takes up to `n` kept sessions on `link` from `pool` and sends the OPEN of `remote` (read) on each. */
  constructor(
    private readonly pool: ExtraSessionPool,
    link: Link,
    n: number,
    private readonly remote: RemotePath,
    signal: AbortSignal | undefined,
  ) {
    for (let i = 0; i < n; i++) {
      const session = pool.take(link);
      if (session === undefined) break;
      const handle = session.open(remote, OpenFlags.READ, undefined, signal).then(
        (h) => h,
        () => undefined,
      );
      this.lanes.push({ session, handle });
    }
  }

  /** Sessions taken. */
  get size(): number {
    return this.lanes.length;
  }

  /** Hands up to `n` sessions over (once; then `[]`); the others are given back to the pool. */
  take(n: number): { session: SftpSession; handle: Promise<Buffer | undefined> }[] {
    if (this.taken) return [];
    this.taken = true;
    for (const l of this.lanes.slice(n)) void giveBack(this.pool, l.session, l.handle, this.remote);
    return this.lanes.slice(0, n);
  }

  /** Not taken: closes each file (answered within 5 s) and gives the session back to the pool, else closes it. Idempotent. */
  async release(): Promise<void> {
    if (this.taken) return;
    this.taken = true;
    await Promise.all(this.lanes.map((l) => giveBack(this.pool, l.session, l.handle, this.remote)));
  }
}

/**
 * Closes `handle` on `session` (when there is one; answered within 5 s and not past `signal`) so
 * that the session can be kept: true when it is closed and the session still alive.
 */
async function closeForKeeping(session: SftpSession, handle: Buffer | undefined, remote: RemotePath, signal?: AbortSignal): Promise<boolean> {
  if (handle !== undefined) {
    let ok = false;
    if (session.alive) {
      await settleWithin(
        session.close(handle, remote).then(() => {
          ok = true;
        }),
        CLOSE_TIMEOUT_MS,
        signal,
      );
    }
    if (!ok) return false;
  }
  return session.alive;
}

/** Closes `handle` (when it opened) and keeps `session` in `pool`; a session that cannot be kept is closed. */
async function giveBack(pool: ExtraSessionPool, session: SftpSession, handle: Promise<Buffer | undefined>, remote: RemotePath): Promise<void> {
  if (!((await closeForKeeping(session, await handle, remote)) && pool.give(session))) session.kill(new SshError('ERR_SSH_CLOSED', 'extra SFTP channel not needed: closed'));
}

/**
 * Extra SFTP channels opened ahead of a striped transfer, while the client's own session still
 * opens the file (a put knows its size before that), so that they join a round trip earlier
 * (each open is 4 round trips: channel, subsystem, SFTP version, limits). Whoever holds it
 * either hands it to {@link runStriped} (which takes and closes them like its own) or calls
 * {@link PreopenedExtras.discard}.
 */
export class PreopenedExtras {
  private readonly ac = new AbortController();
  private readonly wrappers: Promise<ssh2.SFTPWrapper | undefined>[];
  private taken = false;
  private readonly offOuter: () => void;

  /** Starts `n` opens of `open` on `link`; `signal` (the caller's) aborts those still pending. */
  constructor(link: Link, open: OpenChannel, n: number, signal: AbortSignal | undefined) {
    setMaxListeners(0, this.ac.signal);
    const onOuter = (): void => this.ac.abort(signal?.reason);
    if (signal?.aborted) onOuter();
    else signal?.addEventListener('abort', onOuter, { once: true });
    this.offOuter = () => signal?.removeEventListener('abort', onOuter);
    this.wrappers = Array.from({ length: Math.max(0, n) }, () =>
      open(link, this.ac.signal).then(
        (w) => w,
        () => undefined,
      ),
    );
  }

  /** Hands the opens over (once; then `[]`): `stop` aborts those still pending. */
  take(stop: AbortSignal): Promise<ssh2.SFTPWrapper | undefined>[] {
    if (this.taken) return [];
    this.taken = true;
    this.offOuter();
    if (stop.aborted) this.ac.abort(stop.reason);
    else stop.addEventListener('abort', () => this.ac.abort(stop.reason), { once: true });
    return this.wrappers;
  }

  /** Not taken: aborts the pending opens and closes the channels that arrived (each awaited at most 5 s). Idempotent. */
  async discard(): Promise<void> {
    if (this.taken) return;
    this.taken = true;
    this.offOuter();
    this.ac.abort(new SshError('ERR_SSH_ABORTED', 'striped transfer not needed'));
    await Promise.all(this.wrappers.map(async (p) => closeWrapper(await p)));
  }
}

/** One promise per channel (a kept session joins many transfers: one listener, not one each). */
const closedPromises = new WeakMap<ssh2.SFTPWrapper, Promise<void>>();

/** Resolves when the channel has closed. */
function channelClosed(w: ssh2.SFTPWrapper): Promise<void> {
  let p = closedPromises.get(w);
  if (p === undefined) {
    p = new Promise<void>((resolve) => w.once('close', () => resolve()));
    closedPromises.set(w, p);
  }
  return p;
}

/** Ends an SFTP channel nobody uses and waits (at most 5 s) for its close. */
async function closeWrapper(w: ssh2.SFTPWrapper | undefined, signal?: AbortSignal): Promise<void> {
  if (w === undefined) return;
  const closed = channelClosed(w);
  w.end();
  await settleWithin(closed, CLOSE_TIMEOUT_MS, signal);
}

/** Outcome of {@link runStriped}. */
export interface StripedResult extends EngineResult {
  /** Sessions that carried ranges (1 when the server refused every extra channel). */
  channels: number;
  /**
   * After a striped copy, the closing of the extra channels (started, not awaited: the caller
   * closes its own handle meanwhile). Never rejects; each close is bounded (5 s, and the caller's signal). The
   * caller must await it before the transfer settles. Absent when one session carried it all.
   */
  closing?: Promise<void>;
}

/** One session copying ranges. */
interface Lane {
  session: SftpSession;
  handle: Buffer;
  chunk: number;
  /** Engine runs in flight on this lane (at most 2: one in its tail). */
  runs: number;
  /** Of those, runs whose remaining bytes are all requested. */
  tails: number;
  /**
   * Requests in flight the lane's last finished range ended with (its in-flight controller's
   * limit): the next range starts there instead of probing again from `concurrency`.
   */
  learned?: number | undefined;
}

/** One extra session and what it holds. */
interface Extra {
  session: SftpSession;
  /** Resolves when the channel has closed. */
  closed: Promise<void>;
  handle?: Buffer | undefined;
}

/**
 * Copies `[p.start, p.end)` as {@link runGet} (`kind: 'get'`) or {@link runPut} would, over the
 * client's session `p.session` (with its open handle `p.handle`) and up to `channels - 1` extra
 * sessions. Resolves with where the copy ended (below `p.end` when the source was shorter) and
 * the sessions used. On failure every extra channel is closed, the destination is cut back to
 * its complete prefix (see the module notes), and the first error is thrown: the one that
 * failed a range, or the signal's reason.
 *
 * Needs a regular local file (`p.fd`) for get: anything else runs on one session.
 */
export async function runStriped(kind: 'get' | 'put', remotePath: RemotePath, p: EngineParams, o: StripeOptions): Promise<StripedResult> {
  const run = kind === 'get' ? runGet : runPut;
  const ranges = splitRanges(p.start, p.end, o.channels);
  if (ranges.length < 2 || (kind === 'get' && !(await isRegularFd(p.fd)))) {
    await o.preopened?.discard();
    await o.opened?.release();
    return { ...(await run(p)), channels: 1 };
  }
  // While ranges land out of order, the destination has the source's size (never a prefix).
  // Put: the FSETSTAT is not awaited here (its order against writes does not matter: it only
  // extends the file, or cuts what lies past the source's size). The main session writes its
  // ranges in order meanwhile (no hole); extra sessions join only once it succeeded.
  let ready: Promise<boolean>;
  if (kind === 'get') {
    try {
      await ftruncateFd(p.fd, p.end);
    } catch (err) {
      throw localFailure(err, 'truncate');
    }
    ready = Promise.resolve(true);
  } else {
    ready = p.session.fsetstat(p.handle, remotePath, { size: p.end }, p.signal).then(
      () => true,
      () => false,
    );
  }
  return await new Striper(kind, remotePath, p, o, ranges, ready).run();
}

class Striper {
  private readonly engine: (p: EngineParams) => Promise<EngineResult>;
  /** Ranges copied whole. */
  private readonly done = new Set<ByteRange>();
  /** The running engine run of each range being copied. */
  private readonly controls = new Map<ByteRange, EngineControl>();
  private next = 0;
  private eofAt = Infinity;
  private failed: SshError | undefined;
  /** Engine runs in flight over every lane. */
  private running = 0;
  private lanes = 0;
  private readonly stop = new AbortController();
  /** Request buffers every range run of every lane takes from and gives back to. */
  private readonly buffers = new SlotBuffers(STRIPE_MAX_BUFFER_BYTES);
  private readonly extras: Extra[] = [];
  private readonly opens: Promise<void>[] = [];
  private settle!: () => void;
  private readonly settled = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    private readonly kind: 'get' | 'put',
    private readonly remotePath: RemotePath,
    private readonly p: EngineParams,
    private readonly o: StripeOptions,
    private readonly ranges: ByteRange[],
    /** Whether the destination was given its full size (extra lanes join only then). */
    private readonly ready: Promise<boolean>,
  ) {
    this.engine = kind === 'get' ? runGet : runPut;
    // every engine run and request of every lane listens to it
    setMaxListeners(0, this.stop.signal);
  }

  async run(): Promise<StripedResult> {
    const { p, stop } = this;
    const main = p.session;
    const outer = p.signal;
    // the caller's abort, and the main session's death (the client closed, the link lost) stop every lane
    const onOuter = (): void => this.fail(abortReason(outer!, 'sftp transfer'));
    const onMainDead = (): void => this.fail(abortReason(main.dead, 'sftp transfer'));
    if (outer?.aborted) onOuter();
    else outer?.addEventListener('abort', onOuter, { once: true });
    if (main.dead.aborted) onMainDead();
    else main.dead.addEventListener('abort', onMainDead, { once: true });
    let copied = false;
    try {
      this.addLane(main, p.handle);
      let lanes = 1;
      // kept sessions whose OPEN of the file went out with the client's own, then other kept
      // sessions (no channel setup), then new channels
      for (const x of this.o.opened?.take(this.o.channels - 1) ?? []) {
        lanes++;
        this.opens.push(this.joinExtra(x.session, channelClosed(x.session.sftp), x.handle));
      }
      while (lanes < this.o.channels) {
        const kept = this.o.pool?.take(main.link);
        if (kept === undefined) break;
        lanes++;
        this.opens.push(this.joinExtra(kept, channelClosed(kept.sftp)));
      }
      const pre = this.o.preopened?.take(stop.signal) ?? [];
      const wanted = Math.max(0, this.o.channels - lanes);
      for (let i = 0; i < wanted && !stop.signal.aborted; i++) this.opens.push(this.openExtra(pre[i]));
      // preopened beyond the lanes wanted: closed
      for (const w of pre.slice(wanted)) this.opens.push(w.then((x) => closeWrapper(x, p.signal)));
      await this.settled;
      copied = this.failed === undefined;
    } finally {
      outer?.removeEventListener('abort', onOuter);
      main.dead.removeEventListener('abort', onMainDead);
      if (!copied) {
        await this.cleanup();
        await this.ready;
      }
    }
    if (this.failed) {
      await this.cutBack();
      throw this.failed;
    }
    // Every range is copied: the extra channels close while the caller finishes the main handle
    // (one round trip instead of two); the caller awaits `closing` before it settles.
    const closing = this.cleanup().then(
      () => undefined,
      () => undefined,
    );
    try {
      await this.ready;
      const endedAt = Math.min(this.p.end, this.eofAt);
      if (this.kind === 'get' && endedAt < this.p.end) {
        // the source ended early: drop the preallocated rest
        try {
          await ftruncateFd(p.fd, endedAt);
        } catch (err) {
          throw localFailure(err, 'truncate');
        }
      }
      return { endedAt, channels: this.lanes, closing };
    } catch (err) {
      await closing;
      throw err;
    }
  }

  /** First failure wins; every lane stops (its engine rejects with this reason). */
  private fail(err: SshError): void {
    if (this.failed) return;
    this.failed = err;
    this.stop.abort(err);
    this.check();
  }

  private check(): void {
    if (this.running === 0 && (this.failed !== undefined || this.next >= this.ranges.length)) this.settle();
  }

  private addLane(session: SftpSession, handle: Buffer): void {
    const maxLen = this.kind === 'get' ? session.maxReadLen : session.maxWriteLen;
    const lane: Lane = { session, handle, chunk: Math.max(1, Math.min(this.p.chunkSize, maxLen)), runs: 0, tails: 0 };
    this.lanes += 1;
    this.pump(lane);
  }

  /** Starts a range on `lane` when it has none, or when its only one has all its bytes requested. */
  private pump(lane: Lane): void {
    while (!this.failed && this.next < this.ranges.length && lane.runs < 2 && lane.runs - lane.tails < 1) this.startRange(lane, this.ranges[this.next++]!);
    if (!this.failed && this.next >= this.ranges.length && lane.runs < 2 && lane.runs - lane.tails < 1) this.steal(lane);
  }

  /**
   * Every range is handed out and `lane` has nothing left to request: it takes the back half of
   * the bytes not yet requested by the run that has the most of them (when that is at least
   * {@link STEAL_MIN_BYTES}) as a new range, so the last ranges do not end one lane at a time
   * while the others idle. The new range follows the one it was cut from in `ranges`, so the
   * complete prefix stays the lowest range not done.
   */
  private steal(lane: Lane): void {
    let from: ByteRange | undefined;
    let most = 0;
    for (const [range, c] of this.controls) {
      if (c.end - c.next > most) {
        most = c.end - c.next;
        from = range;
      }
    }
    if (from === undefined || most < STEAL_MIN_BYTES) return;
    const c = this.controls.get(from)!;
    const end = c.end;
    const at = end - Math.floor(most / 2 / RANGE_LIMITS.align) * RANGE_LIMITS.align;
    if (!c.cut(at)) return;
    from.end = at;
    const stolen: ByteRange = { start: at, end };
    this.ranges.splice(this.ranges.indexOf(from) + 1, 0, stolen);
    this.next += 1;
    this.startRange(lane, stolen);
  }

  private startRange(lane: Lane, r: ByteRange): void {
    const concurrency = Math.max(1, lane.learned ?? this.p.concurrency);
    // once this many bytes or fewer remain, every request of the range is in flight
    const lookahead = lane.chunk * concurrency;
    let delivered = 0;
    let tail = false;
    const enterTail = (): void => {
      if (tail) return;
      tail = true;
      lane.tails += 1;
      this.pump(lane);
    };
    lane.runs += 1;
    this.running += 1;
    const onBytes = this.p.onBytes;
    // this lane's share of the striped transfer's request buffers
    const share = Math.floor(STRIPE_MAX_BUFFER_BYTES / Math.max(1, this.o.channels));
    const runBytes = r.end - r.start;
    this.engine({
      ...this.p,
      session: lane.session,
      handle: lane.handle,
      start: r.start,
      end: r.end,
      chunkSize: lane.chunk,
      concurrency,
      maxBufferBytes: share,
      buffers: this.buffers,
      // a lane's first range starts where the main session's last transfer ended (its memo)
      startConcurrency: lane.learned === undefined ? memoRequests(lane.session.pacingMemo[this.kind] ?? this.p.session.pacingMemo[this.kind], lane.chunk) : undefined,
      maxConcurrency: this.p.maxConcurrency === undefined ? undefined : Math.max(concurrency, this.p.maxConcurrency),
      signal: this.stop.signal,
      onBytes: (n) => {
        onBytes(n);
        delivered += n;
        // `r.end` moves down when another lane takes part of the range
        if (!tail && r.end - r.start - delivered <= lookahead) enterTail();
      },
      onControl: (c) => this.controls.set(r, c),
    }).then(
      (res) => {
        this.controls.delete(r);
        if (res.endedAt < r.end && res.endedAt < this.eofAt) this.eofAt = res.endedAt;
        if (res.pacing !== undefined && this.p.maxConcurrency !== undefined) {
          // the run's limit counts requests of its own size (a range's tail may be a few KiB):
          // the lane keeps the bytes in flight it ended with, in requests of its chunk, within
          // its share of the buffers
          const bytes = res.pacing.limit * Math.max(1, Math.min(lane.chunk, runBytes));
          lane.learned = Math.max(this.p.concurrency, Math.min(Math.round(bytes / lane.chunk), Math.floor(share / lane.chunk)));
          // the lane's session remembers it for its next transfer (a range is too short in
          // rounds for the engine's own memo rule): the client's own, or a kept extra one
          lane.session.pacingMemo[this.kind] = lane.learned * lane.chunk;
        }
        this.done.add(r);
        this.finishRange(lane, tail);
      },
      (err: unknown) => {
        this.controls.delete(r);
        this.fail(err instanceof SshError ? err : new SshError('ERR_SSH_SFTP', `sftp ${this.kind} failed: ${String(err)}`, { cause: err }));
        this.finishRange(lane, tail);
      },
    );
  }

  private finishRange(lane: Lane, tail: boolean): void {
    lane.runs -= 1;
    if (tail) lane.tails -= 1;
    this.running -= 1;
    this.pump(lane);
    this.check();
  }

  /** Opens one extra session and the file on it; joins as a lane while ranges are left. Never rejects. */
  private async openExtra(preopened?: Promise<ssh2.SFTPWrapper | undefined>): Promise<void> {
    const { stop, p } = this;
    let wrapper: ssh2.SFTPWrapper;
    if (preopened !== undefined) {
      const w = await preopened;
      // refused, or the transfer ended first: fewer lanes
      if (w === undefined) return;
      if (stop.signal.aborted) return closeWrapper(w, p.signal);
      wrapper = w;
    } else {
      try {
        wrapper = await this.o.openChannel(p.session.link, stop.signal);
      } catch {
        // refused (MaxSessions reached, no free slot), or the transfer ended first: fewer lanes
        return;
      }
    }
    const closed = channelClosed(wrapper);
    let session: SftpSession;
    try {
      session = new SftpSession(p.session.link, wrapper, p.session.counters);
    } catch {
      wrapper.end();
      await settleWithin(closed, CLOSE_TIMEOUT_MS, p.signal);
      return;
    }
    await this.joinExtra(session, closed);
  }

  /** Opens the file on an extra session and joins it as a lane while ranges are left. Never rejects. */
  private async joinExtra(session: SftpSession, closed: Promise<void>, sent?: Promise<Buffer | undefined>): Promise<void> {
    const { stop } = this;
    const extra: Extra = { session, closed };
    this.extras.push(extra);
    if (sent !== undefined) {
      // the OPEN went out ahead (OpenedExtras): its handle is this extra's, whatever happens next
      const h = await sent;
      if (h !== undefined) extra.handle = h;
      if (h === undefined || !(await this.ready) || stop.signal.aborted || this.next >= this.ranges.length) return;
      this.addLane(session, h);
      return;
    }
    if (stop.signal.aborted || this.next >= this.ranges.length) return;
    // The file's OPEN goes out at once, its round trip overlapping a put's FSETSTAT to the full
    // size; the lane writes only once that succeeded (`ready`). Opening for writing without
    // CREAT or TRUNC changes nothing in the file.
    const opened = session.open(this.remotePath, this.kind === 'get' ? OpenFlags.READ : OpenFlags.WRITE, undefined, stop.signal).then(
      (h) => {
        extra.handle = h;
        return true;
      },
      () => false,
    );
    const [ready, open] = await Promise.all([this.ready, opened]);
    if (!ready || !open || extra.handle === undefined || stop.signal.aborted || this.next >= this.ranges.length) return;
    this.addLane(session, extra.handle);
  }

  private cleaned: Promise<boolean> | undefined;

  /**
   * Ends every extra session. After a copy that succeeded, with a pool (`StripeOptions.pool`):
   * the session's handle is closed (CLOSE awaited, bounded) and the session kept for the next
   * striped transfer. Otherwise the session is closed (its channel close awaited, bounded):
   * after a failed put, first its handle (CLOSE awaited, bounded: see {@link Striper.cutBack});
   * otherwise the handle goes with the channel (every range of it was acknowledged, or the get's
   * local writes settled), which saves a round trip. Resolves with whether every needed CLOSE
   * was answered. Once.
   */
  private cleanup(): Promise<boolean> {
    this.cleaned ??= (async () => {
      const outer = this.p.signal;
      if (!this.stop.signal.aborted) this.stop.abort(new SshError('ERR_SSH_ABORTED', 'striped transfer finished'));
      // pending opens reject at once on the abort (a channel that still arrives is closed by the opener)
      await Promise.all(this.opens);
      const reason = new SshError('ERR_SSH_CLOSED', 'striped transfer finished: extra SFTP channel closed');
      const pool = this.failed === undefined ? this.o.pool : undefined;
      const acks = await Promise.all(
        this.extras.map(async (x) => {
          // after a copy that succeeded, a live session is kept for the next striped transfer
          // (its handle closed first: a kept session holds none)
          if (pool !== undefined && x.session.alive) {
            const h = x.handle;
            x.handle = undefined;
            if ((await closeForKeeping(x.session, h, this.remotePath, outer)) && pool.give(x.session)) return true;
          }
          const needAck = x.handle !== undefined && this.failed !== undefined && this.kind === 'put';
          let acked = !needAck;
          if (needAck && x.handle !== undefined && x.session.alive) {
            const close = x.session.close(x.handle, this.remotePath).then(() => {
              acked = true;
            });
            await settleWithin(close, CLOSE_TIMEOUT_MS, outer);
          }
          x.session.kill(reason);
          await settleWithin(x.closed, CLOSE_TIMEOUT_MS, outer);
          return acked;
        }),
      );
      return acks.every(Boolean);
    })();
    return this.cleaned;
  }

  /**
   * After a failure: cuts the destination back to its complete prefix, so `resume` continues
   * from there. Get: always (local writes have settled). Put: only when every extra handle's
   * CLOSE was answered (no write of theirs can land later) and the main session is alive;
   * otherwise the remote file keeps the source's full size (which resume does not trust).
   */
  private async cutBack(): Promise<void> {
    const prefix = completedPrefix(
      this.ranges,
      this.ranges.map((r) => this.done.has(r)),
      this.eofAt,
    );
    if (this.kind === 'get') {
      await ftruncateFd(this.p.fd, prefix).catch(() => undefined);
      return;
    }
    const main = this.p.session;
    if (!(await this.cleanup()) || !main.alive) return;
    await settleWithin(main.fsetstat(this.p.handle, this.remotePath, { size: prefix }), CLOSE_TIMEOUT_MS, this.p.signal);
  }
}

function localFailure(err: unknown, what: string): SshError {
  if (err instanceof SshError) return err;
  return new SshError('ERR_SSH_SFTP', `local ${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err, retryable: false });
}

function isRegularFd(fd: number): Promise<boolean> {
  return new Promise((resolve) => fs.fstat(fd, (e, st) => resolve(!e && st.isFile())));
}

function ftruncateFd(fd: number, len: number): Promise<void> {
  return new Promise((res, rej) => fs.ftruncate(fd, len, (e) => (e ? rej(e) : res())));
}
