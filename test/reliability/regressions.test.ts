/**
 * Unit-level regression tests for bugs the reliability suite found (see the issue 6 report):
 * the session limiter starving when every slot of a lowered limit is held by a long-lived channel.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RECOVERY_PROBE_MS, SessionLimiter } from '../../src/channel/limiter.js';
import { reliabilitySuite } from './guard.js';

reliabilitySuite('Regressions');
afterEach(() => {
  vi.useRealTimers();
});

describe('session limiter at a lowered limit', () => {
  it('probes one more slot when every held slot is long-lived, and stops its timer when the queue is empty', async () => {
    vi.useFakeTimers();
    const l = new SessionLimiter(10);
    const held = await l.acquire(); // the SFTP session: never released
    const burst = await Promise.all(Array.from({ length: 9 }, () => l.acquire()));
    // transient refusals while 10 are open drive the learned limit down to 1
    for (let i = 0; i < 9; i++) {
      l.lowerLimit();
      burst.pop()?.();
    }
    expect(l.learnedLimit).toBe(1);
    expect(l.open).toBe(1);
    let granted = false;
    const waiting = l.acquire().then((release) => {
      granted = true;
      release();
    });
    await vi.advanceTimersByTimeAsync(RECOVERY_PROBE_MS - 1);
    expect(granted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await waiting;
    expect(granted).toBe(true);
    expect(l.learnedLimit).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
    held();
  });

  it('a new link (reset) clears the probe timer', async () => {
    vi.useFakeTimers();
    const l = new SessionLimiter(2);
    const a = await l.acquire();
    const b = await l.acquire();
    l.lowerLimit();
    const waiting = l.acquire();
    expect(vi.getTimerCount()).toBe(1);
    l.reset();
    expect(vi.getTimerCount()).toBe(0);
    a();
    // a freed slot goes to the next caller one event-loop turn later (setImmediate)
    await vi.advanceTimersByTimeAsync(0);
    (await waiting)();
    b();
  });
});
