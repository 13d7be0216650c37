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
export class SessionLimiter {
  #open = 0;
  #learned: number;
  #successes = 0;
  readonly #queue: Array<{ grant: () => void; fail: (e: SshError) => void }> = [];
  readonly #idleWaiters = new Set<() => void>();
  #recovery: NodeJS.Timeout | undefined;

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
    });
  }

  /**
   * The server refused a channel for lack of resources while `open` channels (including the
   * refused one's slot) are held: learn a lower limit (never below 1).
   */
  lowerLimit(): void {
    this.#learned = Math.max(1, Math.min(this.#learned, this.#open - 1));
    this.#successes = 0;
    this.#scheduleRecovery();
  }

  /**
   * A channel opened. Refusals can be transient (sshd frees a session slot a little after the
   * client sees the channel close), so after `learnedLimit` successful opens in a row the
   * learned limit climbs back by one, up to the configured limit (additive increase).
   */
  noteSuccess(): void {
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
      this.#pump();
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

  #pump(): void {
    while (this.#open < this.#learned && this.#queue.length > 0) {
      this.#queue.shift()?.grant();
    }
  }
}
