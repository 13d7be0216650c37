/**
 * Keep-alive as its own small unit with an injectable clock (tested with fake timers).
 *
 * Semantics follow OpenSSH's `ServerAliveInterval` / `ServerAliveCountMax` (ssh_config(5)):
 * when nothing has been received for `intervalMs`, send a probe (`keepalive@openssh.com`
 * global request, want-reply); ANY inbound packet resets the missed count (unlike ssh2's own
 * keep-alive, which resets only on replies); after `countMax` unanswered probes the link is dead.
 * A silent link is therefore declared dead `intervalMs x (countMax + 1)` after the last packet.
 * A probe that cannot be sent (`sendProbe` throws) ends the keep-alive at once: `onDead` with the cause.
 */
import { SshError } from '../errors.js';

/** Timer functions, injectable for tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock: `performance.now()` and unref'd Node timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** What the keep-alive drives. */
export interface KeepaliveHooks {
  /**
   * Sends one probe; `onReply` is called once when the server answers (any answer: success,
   * failure or UNIMPLEMENTED). Throws when the probe cannot be sent.
   */
  sendProbe(onReply: () => void): void;
  /**
   * Called once when `countMax` probes went unanswered (`cause` undefined), or when a probe could not
   * be sent (`cause`: the error, an `SshError`, e.g. `ERR_SSH_CONNECTION_LOST`).
   */
  onDead(missed: number, cause?: SshError): void;
  /** Called with the round trip of every answered probe, in ms. */
  onRtt(rttMs: number): void;
}

/** Watches one link. Call {@link Keepalive.received} on every inbound chunk. */
export class Keepalive {
  private lastRx: number;
  private missed = 0;
  private timer: unknown;
  private stopped = false;

  /**
   * @param intervalMs - quiet time before a probe, in ms (> 0).
   * @param countMax - unanswered probes before the link is dead (>= 1).
   */
  constructor(
    private readonly intervalMs: number,
    private readonly countMax: number,
    private readonly hooks: KeepaliveHooks,
    private readonly clock: Clock = systemClock,
  ) {
    this.lastRx = clock.now();
    this.schedule(intervalMs);
  }

  /** Records inbound traffic: cheap (no timer work), safe to call per chunk. */
  received(): void {
    this.lastRx = this.clock.now();
    this.missed = 0;
  }

  /** Number of probes sent since the last inbound packet. */
  get missedProbes(): number {
    return this.missed;
  }

  /** Stops all timers. Idempotent. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => this.tick(), Math.max(1, ms));
  }

  private tick(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const quietMs = this.clock.now() - this.lastRx;
    // Probe k (1-based) is due intervalMs x k after the last packet; death at intervalMs x (countMax + 1).
    const dueAt = this.intervalMs * (this.missed + 1);
    if (quietMs < dueAt) {
      this.schedule(dueAt - quietMs);
      return;
    }
    if (this.missed >= this.countMax) {
      this.stop();
      this.hooks.onDead(this.missed);
      return;
    }
    this.missed += 1;
    const sentAt = this.clock.now();
    try {
      this.hooks.sendProbe(() => {
        if (!this.stopped) this.hooks.onRtt(this.clock.now() - sentAt);
      });
    } catch (err) {
      // A probe that cannot be sent is a visible failure, never a silent skip.
      this.stop();
      this.hooks.onDead(
        this.missed,
        err instanceof SshError ? err : new SshError('ERR_SSH_CONNECTION_LOST', `keep-alive probe could not be sent: ${String(err)}`, { cause: err }),
      );
      return;
    }
    this.schedule(this.intervalMs);
  }
}
