// Issue 12 §2: one backoff function (src/internal/backoff.ts) for the reconnect loop, remote
// forwards, the known_hosts lock and the channel retry. Contract: no delay below minDelayMs nor
// above maxDelayMs, for every attempt and every draw of the random source.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pRetry from 'p-retry';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, type BackoffPolicy } from '../../src/internal/backoff.js';
import { DEFAULTS } from '../../src/options.js';
import { LOCK_BACKOFF } from '../../src/known-hosts/file.js';
import { CHANNEL_RETRY_BACKOFF } from '../../src/channel/open.js';

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** A seeded PRNG (mulberry32), so a failure names a reproducible draw. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every user of the backoff, by the policy it passes. */
const users: Record<string, BackoffPolicy> = {
  'reconnect (DEFAULTS.reconnect)': DEFAULTS.reconnect,
  'remote forward requests (DEFAULTS.forward.remoteRetry)': DEFAULTS.forward.remoteRetry,
  'known_hosts lock (LOCK_BACKOFF)': LOCK_BACKOFF,
  'session channel retry (CHANNEL_RETRY_BACKOFF)': CHANNEL_RETRY_BACKOFF,
  'reconnect as the tests configure it': { minDelayMs: 100, maxDelayMs: 800, factor: 2 },
  'factor 1': { minDelayMs: 250, maxDelayMs: 1_000, factor: 1 },
  'min == max': { minDelayMs: 300, maxDelayMs: 300, factor: 2 },
  'min 0': { minDelayMs: 0, maxDelayMs: 1_000, factor: 2 },
  'large factor (overflows to Infinity)': { minDelayMs: 1, maxDelayMs: 2_147_483_647, factor: 1e300 },
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('backoffDelay bounds', () => {
  for (const [name, policy] of Object.entries(users)) {
    it(`${name}: every delay within [minDelayMs, maxDelayMs], whole ms, over 20,000 draws`, () => {
      const rnd = mulberry32(0x5eed ^ policy.minDelayMs);
      // The extremes of the source as well as random draws (and out-of-range values, clamped).
      const fixed = [0, 1 - Number.EPSILON, 0.5, 1, -1, 2];
      let n = 0;
      for (let attempt = 1; attempt <= 40; attempt++) {
        for (let i = 0; i < 500 + fixed.length; i++) {
          const r = i < fixed.length ? fixed[i]! : rnd();
          const d = backoffDelay(attempt, policy, () => r);
          n += 1;
          if (!(d >= policy.minDelayMs && d <= policy.maxDelayMs && Number.isInteger(d))) {
            expect.fail(`attempt ${attempt}, draw ${r}: delay ${d} outside [${policy.minDelayMs}, ${policy.maxDelayMs}]`);
          }
        }
      }
      expect(n).toBeGreaterThanOrEqual(20_000);
    });
  }

  it('grows by factor from minDelayMs with jitter x1-x2 until the cap', () => {
    const p = { minDelayMs: 100, maxDelayMs: 800, factor: 2 };
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, p, () => 0))).toEqual([100, 200, 400, 800, 800]);
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, p, () => 0.5))).toEqual([150, 300, 600, 800, 800]);
    // The first delay is never below minDelayMs (the old reconnect jitter drew x0.5-x1: 50..100 here).
    expect(backoffDelay(1, p, () => 0)).toBe(100);
    // Non-decreasing in the attempt for a fixed draw.
    const rnd = mulberry32(7);
    for (let k = 0; k < 200; k++) {
      const r = rnd();
      for (let a = 1; a < 30; a++) expect(backoffDelay(a + 1, DEFAULTS.reconnect, () => r)).toBeGreaterThanOrEqual(backoffDelay(a, DEFAULTS.reconnect, () => r));
    }
    expect(backoffDelay(0, p, () => 0)).toBe(100);
    expect(backoffDelay(-3, p, () => 0)).toBe(100);
  });

  it('uses Math.random by default', () => {
    const spy = vi.spyOn(Math, 'random').mockReturnValue(0.25);
    expect(backoffDelay(2, { minDelayMs: 100, maxDelayMs: 10_000, factor: 3 })).toBe(375);
    expect(spy).toHaveBeenCalledTimes(1);
  });
});

describe('same computation as p-retry (randomize: true)', () => {
  it('for the same draw, p-retry waits exactly backoffDelay(n) before retry n', async () => {
    const policies = [DEFAULTS.reconnect, DEFAULTS.forward.remoteRetry, LOCK_BACKOFF, CHANNEL_RETRY_BACKOFF, { minDelayMs: 100, maxDelayMs: 800, factor: 2 }];
    for (const r of [0, 0.37, 0.999]) {
      for (const p of policies) {
        const seen: number[] = [];
        vi.spyOn(Math, 'random').mockReturnValue(r);
        // Record the delays p-retry schedules instead of waiting them.
        vi.spyOn(globalThis, 'setTimeout').mockImplementation((fn: () => void, ms?: number) => {
          seen.push(ms ?? 0);
          queueMicrotask(fn);
          return { unref: () => undefined, ref: () => undefined } as unknown as NodeJS.Timeout;
        });
        const retries = 8;
        await pRetry(
          () => {
            throw new Error('refused');
          },
          { retries, minTimeout: p.minDelayMs, maxTimeout: p.maxDelayMs, factor: p.factor, randomize: true },
        ).catch(() => undefined);
        vi.restoreAllMocks();
        expect(seen.length).toBe(retries);
        expect(seen).toEqual(seen.map((_, i) => backoffDelay(i + 1, p, () => r)));
      }
    }
  });
});

describe('every user takes its delay from backoffDelay', () => {
  const read = (f: string): string => readFileSync(path.join(src, f), 'utf8');
  it('connection.ts, forward/remote.ts, known-hosts/file.ts and channel/open.ts call it; no hand-made jitter is left', () => {
    expect(read('connection/connection.ts')).toMatch(/backoffDelay\(attempt, p\)/);
    expect(read('forward/remote.ts')).toMatch(/backoffDelay\(n - 1, policy\)/);
    expect(read('known-hosts/file.ts')).toMatch(/backoffDelay\(attempt, LOCK_BACKOFF\)/);
    expect(read('channel/open.ts').match(/backoffDelay\(transientRetries, CHANNEL_RETRY_BACKOFF\)/g)?.length).toBe(2);
    // p-retry no longer computes a delay of its own in remote.ts (minTimeout/maxTimeout 0, no randomize).
    expect(read('forward/remote.ts')).not.toMatch(/randomize:\s*true/);
    for (const f of ['connection/connection.ts', 'forward/remote.ts', 'known-hosts/file.ts', 'channel/open.ts']) {
      expect(read(f), f).not.toMatch(/Math\.random\(\)\s*[*/]|[*/]\s*Math\.random\(\)|\*\*\s*transientRetries/);
    }
  });
});
