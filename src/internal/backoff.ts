/**
 * The one backoff computation of the library: the reconnect loop, remote forward requests, the
 * known_hosts lock and the session-channel retry all take their delays from
 * {@link backoffDelay}.
 *
 * @module internal/backoff
 */

/** How retry delays grow. Every duration is in milliseconds. */
export interface BackoffPolicy {
  /** The smallest delay, and the base of the first one. */
  readonly minDelayMs: number;
  /** The largest delay: every delay is capped here. Must be `>= minDelayMs`. */
  readonly maxDelayMs: number;
  /** Growth of the base per attempt (`>= 1`). */
  readonly factor: number;
}

/**
 * The delay before retry number `attempt` (1 for the first retry): exponential backoff with
 * jitter, as p-retry computes it with `randomize: true` (its `minTimeout`, `factor`,
 * `maxTimeout`): `base = minDelayMs * factor^(attempt - 1)`, times a random factor in `[1, 2)`,
 * rounded, capped at `maxDelayMs`.
 *
 * Contract: `minDelayMs <= delay <= maxDelayMs` for every attempt and every draw (given
 * `minDelayMs <= maxDelayMs`, which the option schemas enforce). The jitter only ever lengthens
 * a delay, so no retry comes sooner than `minDelayMs` (the reconnect loop used to draw ×0.5–×1,
 * which put the first delay below `minDelayMs` while the option docs said ×1–×2).
 *
 * Own code rather than p-retry's: p-retry does not export its `calculateDelay`, draws from
 * `Math.random` with no way to inject a source (the bounds are tested over many draws with an
 * injected one), and computes the delay only after the failure handler ran, while the reconnect
 * loop announces `delayMs` (event `reconnecting`) before it waits. The formula is p-retry's, and
 * a unit test checks both give the same delays for the same draw.
 *
 * @param attempt - the retry number, from 1 (values below 1 count as 1).
 * @param policy - `minDelayMs`, `maxDelayMs`, `factor`.
 * @param random - a source of numbers in `[0, 1)`; default `Math.random`. Values outside are clamped.
 * @returns the delay in whole milliseconds.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const { minDelayMs: min, maxDelayMs: max, factor } = policy;
  const n = Math.max(1, Math.floor(attempt));
  const r = Math.min(Math.max(random(), 0), 1);
  // min 0: every delay is 0 (avoids 0 * Infinity); a base past the cap is the cap.
  const base = min <= 0 ? 0 : min * factor ** (n - 1);
  const delay = Number.isFinite(base) && base < max ? Math.round((1 + r) * base) : max;
  return Math.min(max, Math.max(min, delay));
}
