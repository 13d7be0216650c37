/**
 * How many SFTP requests a transfer keeps in flight (issue 18 item 3): a pure controller, fed
 * with each completed request (bytes, round trip, time) and telling the engine its current limit.
 * No timers: it acts only on completions, and every value it produces is bounded by `[initial, max]`.
 *
 * The model is TCP's: a long link needs bandwidth x delay bytes in flight to stay full (RFC 7323
 * section 1.1; one SFTP request of `chunk` bytes is one "segment" here), and the limit is found
 * the way TCP slow start / BBR startup find it:
 *
 * - **grow**: +1 request per completed request (the limit doubles per round trip, RFC 5681
 *   section 3.1), measuring the delivery rate once per *round* (the time in which as many
 *   requests completed as the limit allowed when the round began: about one round trip). The
 *   first round only measures (it gives the least round trip: requests sent into an idle pipe),
 *   and in every later round the growth of its first 8 completions is held back until their
 *   round trips passed the delay test below (then granted at once), so a pipe that is already
 *   full at `initial` (loopback: the server is the bottleneck) is not grown at all;
 * - a round's *rate* is measured over the last rounds spanning at least 50 ms (with a short round
 *   trip one round is shorter than a busy host's bursts: timer ticks, GC, scheduling slices), and
 *   the *best rate* is the best that two rounds in a row sustained (a burst of replies that a
 *   busy host held back and then delivered at once makes one round look fast);
 * - **full pipe**: when a round's rate x the least round trip shows that half the requests it
 *   began with would have carried it (Little's law: the requests in flight are not what limits
 *   the rate, the server or the CPU is), when 3 rounds in a row did not raise the best rate by
 *   25% (BBR's startup exit, draft-cardwell-iccrg-bbr-congestion-control section 4.3.1.2), or
 *   when the least round trip of a round rose above 1.5 x the least ever + 2 ms (a queue is
 *   building: HyStart's delay-increase exit, RFC 9406 section 4.2, with a margin for a busy
 *   host), growth stops and the limit becomes `gain x best rate x least round trip / bytes per request` (2x the estimated
 *   bandwidth-delay product, BBR's cwnd_gain), never below `initial`, never above `max`;
 * - **hold**: that estimate is refreshed every round (the rate and round-trip estimates only
 *   improve, so the limit only rises, up to `max`); two rounds in a row 25% faster than the best
 *   so far (the link got better) start growing again;
 * - **error**: {@link InflightController.onError} halves the limit (not below `initial`) and
 *   stops growth, as TCP's multiplicative decrease.
 *
 * On loopback the least round trip is about a millisecond: the first round already shows (Little's
 * law) that `initial` requests are more than the rate needs, and the transfer keeps `initial`
 * (as before this controller); on a long link the limit grows until the rate stops rising or
 * `max` is reached.
 *
 * Written here rather than taken from npm: no maintained package offers a transport-agnostic
 * rate/RTT pacing controller; this is ~100 lines of arithmetic.
 *
 * @internal
 * @module sftp/pacing
 */

/**
 * Slot buffers an adaptive transfer may hold at most, bytes: 8 MiB (32 requests of 255 KiB,
 * OpenSSH's read length; 32 x 255 KiB per 51 ms round trip is a 160 MB/s ceiling). It is also
 * about what the server buffers for us: the replies to the requests in flight wait in
 * sftp-server's output queue or in sshd's channel buffer (OpenSSH channels.c `channel_pre_open`
 * reads the subsystem while its buffer is below the receive window). Measured through a 50 ms
 * delay line on a busy 2-core host (128 MiB gets, interleaved): with 64 requests (16 MiB) or more
 * in flight, 5 runs of 14 had sshd burn 4-12x its usual CPU (1.3-3.8 s instead of ~0.3 s) and
 * crawl at 10-28 MB/s (issue 18 saw the same with 16 MiB forward windows); with 32, no run of 19
 * went above 0.73 s. The cause (profiled with forward windows, forward/carry.ts
 * `FORWARD_WINDOW`): OpenSSH 9.2's sshd copies a channel buffer whole at every 16 KiB it grows,
 * so the replies it holds for us cost CPU with the square of their amount. A striped transfer
 * has this bound per channel, each channel its own sshd buffer.
 */
export const DEFAULT_MAX_BUFFER_BYTES = 8 * 1024 * 1024;

/**
 * The SFTP channel's receive window (src/ssh2/window.ts `eagerSftpWindow`): 10 MiB, topped up
 * whenever 1/16 of it (640 KiB) was consumed, so the server may always have at least 9.4 MiB
 * of replies on the way: more than one adaptive transfer's most bytes in flight
 * ({@link DEFAULT_MAX_BUFFER_BYTES}) plus reply headers. A window below the bytes asked for makes
 * the server wait for the next top-up each round trip (ssh2's own rule, 2 MiB refilled below
 * half, would cap a 50 ms link near 20 MB/s). Costs no memory here: replies are copied into the
 * buffers of the requests they answer as they arrive (sftp/inbound.ts).
 */
export const SFTP_WINDOW = Object.freeze({ sizeBytes: 10 * 1024 * 1024, topUpFraction: 1 / 16 });

/** Options of {@link InflightController}. */
export interface InflightControllerOptions {
  /** Requests in flight at the start, and the least the limit goes to. Integer >= 1. */
  initial: number;
  /** The most requests in flight ever (hard cap, e.g. from the memory bound). Integer >= `initial`. */
  max: number;
  /**
   * Requests in flight at the start when a transfer before this one on the same session already
   * measured the link (its final limit: see `SftpSession.pacingMemo`), as Linux caches a
   * destination's congestion window (`tcp_metrics`) instead of slow-starting every connection.
   * Clamped to `[initial, max]`; the limit may still fall to `initial`. Default `initial`.
   */
  start?: number | undefined;
  /** Time the first requests were sent, ms (same clock as `nowMs` of {@link InflightController.onComplete}). */
  startMs: number;
  /** Multiplier of the bandwidth-delay product when growth stops. Default 2. */
  gain?: number | undefined;
}

/** A snapshot of {@link InflightController} (for tests, diagnostics and bench notes). */
export interface PacingStats {
  /** The least requests in flight (the floor). */
  initial: number;
  /** Requests in flight at the start (`initial`, or the session's memo: see `InflightControllerOptions.start`). */
  start: number;
  /** The hard cap. */
  max: number;
  /** Current limit. */
  limit: number;
  /** Highest limit reached. */
  peak: number;
  /** `'grow'` while still probing for more throughput, `'hold'` after. */
  phase: 'grow' | 'hold';
  /** Rounds measured. */
  rounds: number;
  /** Best delivery rate sustained over two rounds in a row, bytes per ms (= kB/s). 0 before the second round ended. */
  bestRate: number;
  /** Least round trip of one request seen, ms (Infinity before the first completion). */
  minRttMs: number;
  /** Requests completed. */
  completed: number;
}

/** A round must raise the best rate by this factor to count as growth (BBR: 1.25). */
const GROWTH = 1.25;
/** Rounds without growth before the pipe is taken as full (BBR: 3). */
const FLAT_ROUNDS = 3;
/** A round whose least round trip exceeds the least ever by this factor... */
const DELAY_FACTOR = 1.5;
/** ...plus this many ms (timer noise on a busy host) ends growth. */
const DELAY_SLACK_MS = 2;
/** The delivery rate is measured over the last rounds spanning at least this long, ms... */
const RATE_WINDOW_MS = 50;
/** ...but at most this many rounds. */
const RATE_ROUNDS = 16;
/** Round trips a round needs before its least one is believed (RFC 9406: N_RTT_SAMPLE = 8). */
const DELAY_SAMPLES = 8;

/**
 * The adaptive in-flight limit of one transfer (see the module comment).
 *
 * @throws RangeError for `initial` < 1, `max` < `initial`, non-integers or a `gain` <= 0 (a
 *   programming error: the public options are checked in sftp/options.ts).
 */
export class InflightController {
  /** Requests the engine may have in flight now: always within `[initial, max]`. */
  limit: number;
  private phase: 'grow' | 'hold' = 'grow';
  private readonly initial: number;
  private readonly start: number;
  private readonly max: number;
  private readonly gain: number;
  private peak: number;
  private rounds = 0;
  private flat = 0;
  private bestRate = 0;
  private lastRate = 0;
  /** (bytes, ms) of the last rounds, flat. */
  private readonly history: number[] = [];
  private minRttMs = Infinity;
  private completed = 0;
  private bytes = 0;
  // the current round
  private roundStartMs: number;
  private roundBytes = 0;
  private roundCount = 0;
  private roundMinRtt = Infinity;
  /** Growth held back in this round until the delay test could run. */
  private deferred = 0;
  private roundTarget: number;

  constructor(o: InflightControllerOptions) {
    if (!Number.isInteger(o.initial) || o.initial < 1) throw new RangeError(`InflightController: initial must be an integer >= 1, got ${o.initial}`);
    if (!Number.isInteger(o.max) || o.max < o.initial) throw new RangeError(`InflightController: max must be an integer >= initial (${o.initial}), got ${o.max}`);
    const gain = o.gain ?? 2;
    if (!(gain > 0 && Number.isFinite(gain))) throw new RangeError(`InflightController: gain must be > 0, got ${gain}`);
    this.initial = o.initial;
    this.max = o.max;
    this.gain = gain;
    const start = o.start !== undefined && Number.isFinite(o.start) ? Math.min(o.max, Math.max(o.initial, Math.floor(o.start))) : o.initial;
    this.start = start;
    this.limit = start;
    this.peak = start;
    this.roundStartMs = o.startMs;
    this.roundTarget = start;
    if (this.max === this.initial) this.phase = 'hold';
  }

  /**
   * One request completed: `bytes` delivered (0 for an empty reply), `rttMs` after it was sent,
   * observed at `nowMs`. Updates {@link InflightController.limit}.
   */
  onComplete(bytes: number, rttMs: number, nowMs: number): void {
    this.completed++;
    this.bytes += bytes;
    if (rttMs >= 0 && rttMs < this.minRttMs) this.minRttMs = rttMs;
    if (rttMs >= 0 && rttMs < this.roundMinRtt) this.roundMinRtt = rttMs;
    this.roundBytes += bytes;
    this.roundCount++;
    if (this.phase === 'grow' && this.rounds > 0) {
      if (this.roundCount < Math.min(DELAY_SAMPLES, this.roundTarget)) {
        this.deferred++;
      } else if (this.queueBuilding()) {
        this.phase = 'hold';
        this.deferred = 0;
        this.setLimit(this.target());
      } else {
        this.setLimit(this.limit + 1 + this.deferred);
        this.deferred = 0;
      }
    }
    if (this.roundCount >= this.roundTarget) this.endRound(nowMs);
  }

  /** A request failed in a way that may mean overload: halve the limit (not below `initial`) and stop growing. */
  onError(): void {
    this.phase = 'hold';
    this.flat = 0;
    this.setLimit(Math.max(this.initial, Math.ceil(this.limit / 2)));
  }

  /** A snapshot of the controller's state. */
  stats(): PacingStats {
    return {
      initial: this.initial,
      start: this.start,
      max: this.max,
      limit: this.limit,
      peak: this.peak,
      phase: this.phase,
      rounds: this.rounds,
      bestRate: this.bestRate,
      minRttMs: this.minRttMs,
      completed: this.completed,
    };
  }

  /** HyStart's delay test: this round's least round trip rose well above the least ever. */
  private queueBuilding(): boolean {
    return this.roundMinRtt > this.minRttMs * DELAY_FACTOR + DELAY_SLACK_MS;
  }

  private endRound(nowMs: number): void {
    const elapsed = nowMs - this.roundStartMs;
    // a round with no measurable time (clock granularity) tells nothing: extend it
    if (!(elapsed > 0)) return;
    // the rate over the last rounds that span at least RATE_WINDOW_MS: rounds of a short round
    // trip are shorter than a busy host's bursts (timer ticks, GC, scheduling slices)
    this.history.push(this.roundBytes, elapsed);
    if (this.history.length > 2 * RATE_ROUNDS) this.history.splice(0, 2);
    let sumBytes = 0;
    let sumMs = 0;
    for (let i = this.history.length - 2; i >= 0 && sumMs < RATE_WINDOW_MS; i -= 2) {
      sumBytes += this.history[i]!;
      sumMs += this.history[i + 1]!;
    }
    const rate = sumBytes / sumMs;
    // the best rate counts only what two rounds in a row sustained: one round that caught a
    // burst (replies held up by a busy host, then delivered together) must not inflate it
    const sustained = Math.min(rate, this.lastRate);
    this.lastRate = rate;
    this.rounds++;
    if (this.phase === 'grow' ? rate >= this.bestRate * GROWTH : this.bestRate > 0 && sustained >= this.bestRate * GROWTH) {
      this.flat = 0;
      // the link got better while holding: probe again
      if (this.phase === 'hold' && this.limit < this.max) this.phase = 'grow';
    } else if (this.phase === 'grow' && ++this.flat >= FLAT_ROUNDS) {
      this.phase = 'hold';
    }
    if (sustained > this.bestRate) this.bestRate = sustained;
    // Little's law: `gain` x rate x least RTT below the requests the round began with means the
    // pipe was full already (on loopback the first round shows it)
    const perRequest = this.bytes / this.completed;
    if (this.phase === 'grow' && perRequest > 0 && Number.isFinite(this.minRttMs) && (this.gain * rate * this.minRttMs) / perRequest < this.roundTarget) {
      this.phase = 'hold';
    }
    if (this.phase === 'hold') this.setLimit(this.target());
    this.roundStartMs = nowMs;
    this.roundBytes = 0;
    this.roundCount = 0;
    this.roundMinRtt = Infinity;
    this.deferred = 0;
    this.roundTarget = this.limit;
  }

  /** `gain` x the bandwidth-delay product, in requests, within `[initial, max]`. */
  private target(): number {
    const perRequest = this.completed > 0 ? this.bytes / this.completed : 0;
    if (!(perRequest > 0) || !Number.isFinite(this.minRttMs)) return this.limit;
    const bdp = Math.ceil((this.gain * this.bestRate * this.minRttMs) / perRequest);
    return Math.min(this.max, Math.max(this.initial, bdp));
  }

  private setLimit(n: number): void {
    this.limit = Math.min(this.max, Math.max(this.initial, n));
    if (this.limit > this.peak) this.peak = this.limit;
  }
}
