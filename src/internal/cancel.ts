import { setMaxListeners } from 'node:events';
import { SshError } from '../errors.js';

const never = new AbortController().signal;
// Every unbounded operation in flight listens to it: many at once is normal, not a leak.
setMaxListeners(0, never);
const UNBOUNDED: OperationScope = Object.freeze({ signal: never, dispose: () => undefined });

/** A combined cancellation scope for one operation: caller's signal + optional timeout. */
export interface OperationScope {
  /** Aborted with an SshError (`ERR_SSH_ABORTED` or `ERR_SSH_TIMEOUT`) as its reason. */
  readonly signal: AbortSignal;
  /** Clears the timer and detaches from the caller's signal. Idempotent. */
  dispose(): void;
}

/**
 * Turns any abort reason into an SshError: an SshError reason is kept; anything else becomes
 * `ERR_SSH_ABORTED` with the reason as `cause`.
 */
export function abortReason(signal: AbortSignal, what = 'operation'): SshError {
  const r: unknown = signal.reason;
  if (r instanceof SshError) return r;
  return new SshError('ERR_SSH_ABORTED', `${what} aborted`, { cause: r });
}

/**
 * Builds the cancellation scope of one operation from the caller's `signal` and `timeoutMs`.
 * The returned signal aborts with `ERR_SSH_TIMEOUT` after `timeoutMs`, or with
 * `ERR_SSH_ABORTED` (or the caller's SshError reason) when the caller aborts.
 */
export function operationScope(
  options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined },
  what = 'operation',
): OperationScope {
  // Nothing can cancel this operation: share one signal that never aborts (hot path of exec).
  if (options.signal === undefined && (options.timeoutMs === undefined || options.timeoutMs === Infinity)) return UNBOUNDED;
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const outer = options.signal;
  const onAbort = (): void => {
    if (outer) ctl.abort(abortReason(outer, what));
  };
  if (outer) {
    if (outer.aborted) onAbort();
    else outer.addEventListener('abort', onAbort, { once: true });
  }
  if (options.timeoutMs !== undefined && options.timeoutMs !== Infinity && !ctl.signal.aborted) {
    const ms = options.timeoutMs;
    timer = setTimeout(() => {
      ctl.abort(new SshError('ERR_SSH_TIMEOUT', `${what} timed out after ${ms} ms`));
    }, ms);
    timer.unref?.();
  }
  let disposed = false;
  return {
    signal: ctl.signal,
    dispose(): void {
      if (disposed) return;
      disposed = true;
      if (timer) clearTimeout(timer);
      outer?.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * Waits `ms` milliseconds; rejects at once with the signal's SshError reason when it aborts
 * (before or during the wait). The timer and listener are removed either way.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Resolves or rejects like `promise`, but rejects with the signal's SshError reason as soon as
 * any of `signals` aborts. Listeners are removed when it settles.
 */
export function raceSignals<T>(promise: Promise<T>, signals: ReadonlyArray<AbortSignal | undefined>, what = 'operation'): Promise<T> {
  const live = signals.filter((s): s is AbortSignal => s !== undefined);
  for (const s of live) if (s.aborted) return Promise.reject(abortReason(s, what));
  if (live.length === 0) return promise;
  return new Promise<T>((resolve, reject) => {
    const cleanup = (): void => {
      for (const s of live) s.removeEventListener('abort', onAbort);
    };
    function onAbort(this: AbortSignal): void {
      cleanup();
      reject(abortReason(this, what));
    }
    for (const s of live) s.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        cleanup();
        resolve(v);
      },
      (e: unknown) => {
        cleanup();
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
