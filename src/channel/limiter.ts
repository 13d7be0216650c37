import { abortReason } from '../internal/cancel.js';
import type { SshError } from '../errors.js';

/** How often a stalled queue at a lowered limit probes one more slot, in ms. */
export const RECOVERY_PROBE_MS = 1_000;

/**
 * A FIFO counting semaphore for session channels (sshd_config `MaxSessions`).
 *
 * `limit` is the configured maximum; `learnedLimit` is lowered when the server refuses a session
 * channel for lack of resources while others are open (it then holds fewer than we were told),
 * and reset by {@link SessionLimiter.reset} on a new link.
 */
/** What {@link SessionLimiter.openMark} notes when a CHANNEL_OPEN is sent. */
export interface OpenMark {
  /** Slots released (their CLOSE written) before the open was sent. */
  readonly closes: number;
  /** Some of those closes had not been answered for by the server yet. */
  readonly unconfirmed: boolean;
}

export class SessionLimiter {
  #open = 0;
  #learned: number;
  #successes = 0;
  readonly #queue: Array<{ grant: () => void; fail: (e: SshError) => void }> = [];
  readonly #idleWaiters = new Set<() => void>();
  readonly #queueListeners = new Set<() => void>();
  #recovery: NodeJS.Timeout | undefined;
  #pumpScheduled = false;
  /** Slots released so far (each after its channel's CLOSE was written). */
  #closes = 0;
  /** Of those, how many the server is known to have processed (it answered a later open). */
  #confirmedCloses = 0;
  #raceRetries = 0;
  #lowered = 0;
  /** Our channels the server confirmed and we have not closed (on this link). */
  #established = 0;
  /** The most channels the server has held open at once for us on this link. */
  #proven = 0;

  /**
   * @param limit - maximum channels open at once (>= 1).
   * @param owner - what diagnostics_channel messages about these channels name as `client`.
   */
  constructor(
    readonly limit: number,
    readonly owner?: object,
  ) {
    this.#learned = limit;
  }

  /** Channels currently holding a slot. */
  get open(): number {
    return this.#open;
  }

  /** Callers waiting for a slot. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The limit in force (lowered after a server refusal). */
  get learnedLimit(): number {
    return this.#learned;
  }

  /**
   * Counters for health and the bench: `lowered` counts refusals that lowered the learned limit,
   * `raceRetries` refusals retried without lowering it because they directly followed one of our
   * own closes (see {@link SessionLimiter.openMark}).
   */
  get stats(): { learnedLimit: number; lowered: number; raceRetries: number } {
    return { learnedLimit: this.#learned, lowered: this.#lowered, raceRetries: this.#raceRetries };
  }

  /**
   * Taken just before a CHANNEL_OPEN is sent: how many slots were released (their CLOSE written)
   * by then, and whether any of those closes may not have been processed by the server yet.
   *
   * Why: sshd frees a session slot only when it garbage-collects the closed channel, after it has
   * dispatched every packet of the read that carried our CLOSE (OpenSSH `server_loop2`:
   * `process_buffered_input_packets` before `channel_prepare_poll`). A CHANNEL_OPEN written right
   * after our CLOSE usually arrives in the same read, and sshd refuses it ("open failed", reason 2)
   * with the slot about to be freed. Measured against sshd `MaxSessions 10`: 13 refusals in 96
   * execs, 40 in 300. Such a refusal is not a smaller server limit.
   */
  openMark(): OpenMark {
    return { closes: this.#closes, unconfirmed: this.#closes > this.#confirmedCloses };
  }

  /**
   * The server answered (confirmed or refused) an open taken at `mark`: it had processed every
   * close written before that open (SSH packets are processed in order, RFC 4253 section 6.4), and
   * sshd writes the answer after its channel garbage collection, so those slots are free there.
   */
  confirmCloses(mark: OpenMark): void {
    if (mark.closes > this.#confirmedCloses) this.#confirmedCloses = mark.closes;
  }

  /** A channel's CLOSE was written (call before releasing its slot). */
  noteClosed(): void {
    this.#closes += 1;
    if (this.#established > 0) this.#established -= 1;
  }

  /**
   * Whether a refusal (for lack of resources) of an open taken at `mark` directly followed our own
   * closes rather than a smaller server limit: some close written before the open had not been
   * answered for yet, and the slots we hold (this one included) are no more than the server has
   * already held open for us at once. Then the server was still counting a channel we had closed.
   */
  isCloseRace(mark: OpenMark): boolean {
    return mark.unconfirmed && this.#open <= this.#proven;
  }

  /** A refusal that followed our own unconfirmed closes is retried without lowering the limit. */
  noteRaceRetry(): void {
    this.#raceRetries += 1;
  }

  /**
   * Waits (FIFO) for a slot. Resolves with a `release` function to call exactly once (extra calls
   * are ignored). Rejects with the signal's SshError reason if it aborts first.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal, 'waiting for a session channel'));
    if (this.#open < this.#learned && this.#queue.length === 0) {
      this.#open += 1;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve, reject) => {
      const entry = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          this.#open += 1;
          resolve(this.#releaser());
        },
        fail: (e: SshError) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = (): void => {
        const i = this.#queue.indexOf(entry);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(abortReason(signal as AbortSignal, 'waiting for a session channel'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(entry);
      this.#scheduleRecovery();
      for (const fn of this.#queueListeners) {
        try {
          fn();
        } catch {
          // a listener must not break the queue
        }
      }
    });
  }

  /**
   * Calls `fn` each time a caller of {@link SessionLimiter.acquire} has to wait for a slot (e.g.
   * to close channels kept open only for reuse).
   *
   * @returns a function that removes `fn`.
   */
  onQueue(fn: () => void): () => void {
    this.#queueListeners.add(fn);
    return () => this.#queueListeners.delete(fn);
  }

  /**
   * A slot now, without waiting: the `release` function, or `undefined` when none is free or
   * callers are queued (they come first). For channels worth opening only if a slot is free
   * (the extra channels of a striped SFTP transfer).
   */
  tryAcquire(): (() => void) | undefined {
    if (this.#open >= this.#learned || this.#queue.length > 0) return undefined;
    this.#open += 1;
    return this.#releaser();
  }

  /**
   * The server refused a channel for lack of resources while `open` channels (including the
   * refused one's slot) are held: learn a lower limit (never below 1).
   */
  lowerLimit(): void {
    this.#lowered += 1;
    this.#learned = Math.max(1, Math.min(this.#learned, this.#open - 1));
    this.#successes = 0;
    this.#scheduleRecovery();
  }

  /**
   * A channel opened. Refusals can be transient (sshd frees a session slot a little after the
   * client sees the channel close), so after `learnedLimit` successful opens in a row the
   * learned limit climbs back by one, up to the configured limit (additive increase).
   */
  noteSuccess(mark?: OpenMark): void {
    // The server held at once: this channel, our channels it had confirmed before it (the
    // answers come in order) that are still open, and those we closed after sending this open
    // (their CLOSE reached it after this OPEN).
    const held = this.#established + 1 + (mark ? this.#closes - mark.closes : 0);
    if (held > this.#proven) this.#proven = Math.min(held, this.limit);
    this.#established += 1;
    if (this.#learned >= this.limit) return;
    if (++this.#successes >= this.#learned) {
      this.#successes = 0;
      this.#learned += 1;
      this.#pump();
    }
  }

  /** Back to the configured limit (a new link may be a different server). */
  reset(): void {
    this.#stopRecovery();
    this.#learned = this.limit;
    this.#successes = 0;
    // Closes and channels on the old link no longer matter to the new one.
    this.#confirmedCloses = this.#closes;
    this.#established = 0;
    this.#proven = 0;
    this.#pump();
  }

  /** Resolves when no slot is held (or after `timeoutMs`). */
  idle(timeoutMs: number): Promise<void> {
    if (this.#open === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.#idleWaiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, timeoutMs);
      this.#idleWaiters.add(done);
    });
  }

  /** Rejects every queued caller with `err`. */
  failAll(err: SshError): void {
    this.#stopRecovery();
    for (const e of this.#queue.splice(0)) e.fail(err);
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open -= 1;
      this.#schedulePump();
      if (this.#open === 0) for (const w of [...this.#idleWaiters]) w();
    };
  }

  /**
   * A lowered limit recovers through successes, but successes need grants: when every slot is
   * held by a long-lived channel (the SFTP session, a shell, a `tail -f`), no release ever comes
   * and the queue would wait forever (seen: sshd refusing channels during churn lowered the limit
   * to 1, held by the SFTP session). So while callers wait at a lowered limit, probe one more slot
   * every {@link RECOVERY_PROBE_MS}; a refusal lowers it again. The timer exists only then.
   */
  #scheduleRecovery(): void {
    if (this.#recovery !== undefined || this.#learned >= this.limit || this.#queue.length === 0) return;
    this.#recovery = setTimeout(() => {
      this.#recovery = undefined;
      if (this.#learned < this.limit && this.#queue.length > 0 && this.#open >= this.#learned) {
        this.#learned += 1;
        this.#successes = 0;
        this.#pump();
      }
      this.#scheduleRecovery();
    }, RECOVERY_PROBE_MS);
    this.#recovery.unref();
  }

  #stopRecovery(): void {
    if (this.#recovery !== undefined) clearTimeout(this.#recovery);
    this.#recovery = undefined;
  }

  /**
   * A freed slot goes to the next waiting caller one event-loop turn later (`setImmediate`), so
   * that the rest of the read that carried the server's CLOSE (often the refusal of an open that
   * raced an earlier close) is handled first and a retried open is sent before a new one.
   * Measured against sshd MaxSessions 10, 100 concurrent execs: granting at once, one open in
   * ~600 was refused 9 times in a row (new opens overtook its retries); deferred, none more than 4.
   */
  #schedulePump(): void {
    if (this.#pumpScheduled || this.#queue.length === 0) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#open < this.#learned && this.#queue.length > 0) {
      this.#queue.shift()?.grant();
    }
  }
}
