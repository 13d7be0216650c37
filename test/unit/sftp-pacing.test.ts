// The adaptive in-flight controller of SFTP transfers (src/sftp/pacing.ts; issue 18 item 3) as a
// pure class, driven by a simulated link (no timers, no real time): requests of `B` bytes cross a
// link of one-way delay R/2 to a server that answers them one after the other at `C` bytes per ms.
// With L requests in flight the link delivers min(C, L x B / R): throughput rises with L until the
// pipe is full (L ~ C x R / B), then only the queue (and the round trip) grows.
// Plus the option checks of get/put's `maxConcurrency` and the engine's cap (memory bound).
import { describe, expect, it } from 'vitest';
import { SshInvalidArgError } from '../../src/errors.js';
import type { LinkProvider } from '../../src/connection/link.js';
import { inflightCap } from '../../src/sftp/engine.js';
import { SftpClient } from '../../src/sftp/index.js';
import { DEFAULT_MAX_BUFFER_BYTES, InflightController, SFTP_WINDOW } from '../../src/sftp/pacing.js';

const KiB = 1024;
const B = 255 * KiB;

interface Link {
  /** Round trip without queueing, ms. */
  rttMs: number;
  /** Server rate, bytes per ms (200_000 = 200 MB/s). */
  rate: number;
}

interface Run {
  c: InflightController;
  /** The limit after each completion. */
  limits: number[];
  /** Bytes delivered per ms over the whole run. */
  throughput: number;
  /** Most requests ever in flight at once. */
  maxInflight: number;
}

/**
 * Runs `requests` requests of `B` bytes through `link` with the controller deciding how many are
 * in flight; `rateAt(i)` may change the server's rate for the i-th request. Bounded: exactly
 * `requests` completions.
 */
function simulate(link: Link, requests: number, initial: number, max: number, rateAt?: (i: number) => number, start?: number): Run {
  const c = new InflightController({ initial, max, start, startMs: 0 });
  const limits: number[] = [];
  // completion times of the requests in flight, kept sorted (the server answers in order)
  const pending: { sentAt: number; doneAt: number }[] = [];
  let serverFreeAt = 0;
  let sent = 0;
  let now = 0;
  let maxInflight = 0;
  const send = (): void => {
    while (pending.length < c.limit && sent < requests) {
      const arrives = now + link.rttMs / 2;
      const start = Math.max(arrives, serverFreeAt);
      serverFreeAt = start + B / (rateAt?.(sent) ?? link.rate);
      pending.push({ sentAt: now, doneAt: serverFreeAt + link.rttMs / 2 });
      sent++;
    }
    maxInflight = Math.max(maxInflight, pending.length);
  };
  send();
  for (let done = 0; done < requests; done++) {
    const r = pending.shift()!;
    now = r.doneAt;
    c.onComplete(B, now - r.sentAt, now);
    limits.push(c.limit);
    send();
  }
  return { c, limits, throughput: (requests * B) / now, maxInflight };
}

describe('InflightController (simulated links)', () => {
  it('grows on a long link while throughput rises: 16 in flight become enough to fill the pipe', () => {
    // RTT 50 ms, 200 MB/s: the pipe holds 200_000 x 50 / 261_120 = 38 requests
    const link = { rttMs: 50, rate: 200_000 };
    const run = simulate(link, 2_000, 16, 128);
    const s = run.c.stats();
    expect(s.peak).toBeGreaterThan(38);
    expect(run.c.limit).toBeGreaterThanOrEqual(38);
    expect(run.c.limit).toBeLessThanOrEqual(128);
    // a fixed 16 would deliver 16 x B / 50 ms = 83.6 kB/ms; the controller gets near the link rate
    const fixed = simulate(link, 2_000, 16, 16);
    expect(fixed.throughput).toBeLessThan(90_000);
    expect(run.throughput).toBeGreaterThan(0.85 * link.rate);
    expect(run.throughput).toBeGreaterThan(2 * fixed.throughput);
    expect(s.minRttMs).toBeGreaterThanOrEqual(50);
    expect(s.minRttMs).toBeLessThan(52);
  });

  it('stops growing once throughput stalls, and settles near 2x the bandwidth-delay product', () => {
    const link = { rttMs: 20, rate: 100_000 }; // pipe: 100_000 x 20 / 261_120 = 7.7 requests
    const run = simulate(link, 3_000, 4, 1_000);
    const s = run.c.stats();
    expect(s.phase).toBe('hold');
    // grew past the pipe (to find its end) but far from the cap, then came back to ~2 x 7.7
    expect(s.peak).toBeGreaterThan(8);
    expect(s.peak).toBeLessThan(200);
    expect(run.c.limit).toBeGreaterThanOrEqual(15);
    expect(run.c.limit).toBeLessThanOrEqual(20);
    // and stays there: the last thousand completions saw one limit
    expect(new Set(run.limits.slice(-1_000)).size).toBe(1);
    expect(run.throughput).toBeGreaterThan(0.9 * link.rate);
  });

  it('a flat rate with a steady round trip (no queue seen) still ends growth after 3 rounds without 25% more', () => {
    // replies arrive one per ms whatever the limit: the rate never rises; the round trip stays 50 ms
    const c = new InflightController({ initial: 4, max: 1_000, startMs: 0 });
    const phases: string[] = [];
    const limits: number[] = [];
    for (let i = 1; i <= 400; i++) {
      c.onComplete(B, 50, i);
      phases.push(c.stats().phase);
      limits.push(c.limit);
    }
    const s = c.stats();
    expect(s.phase).toBe('hold');
    // rounds of 4 (only measures), 4, 8, 16, 32 completions: the first two set the best
    // (sustained) rate, the next 3 are flat
    expect(phases.indexOf('hold')).toBe(4 + 4 + 8 + 16 + 32 - 1);
    // then 2 x (B per ms) x 50 ms / B = 100 requests, and it stays there
    expect(c.limit).toBe(100);
    expect(new Set(limits.slice(phases.indexOf('hold')))).toEqual(new Set([100]));
    // while growing: nothing in round 1, then +1 per completion (the first 8 of a round granted together)
    expect(limits.slice(0, 4)).toEqual([4, 4, 4, 4]);
    expect(limits[phases.indexOf('hold') - 1]).toBe(4 + 4 + 8 + 16 + 32 - 1);
  });

  it("Little's law: a round whose rate x least RTT needs under half the requests it began with ends growth (round trips that show no queue)", () => {
    // every reply 1 ms after its request, but only one reply per ms: 16 in flight carry 16x what is delivered
    const c = new InflightController({ initial: 16, max: 64, startMs: 0 });
    const limits: number[] = [];
    for (let i = 1; i <= 200; i++) {
      c.onComplete(B, 1, i);
      limits.push(c.limit);
    }
    expect(c.stats().phase).toBe('hold');
    expect(c.stats().rounds).toBeGreaterThan(10);
    expect(new Set(limits)).toEqual(new Set([16]));
  });

  it('on a loopback-like link (the server is the bottleneck at 16 already) does not grow at all', () => {
    const run = simulate({ rttMs: 0.2, rate: 400_000 }, 2_000, 16, 128);
    expect(run.c.stats().phase).toBe('hold');
    expect(new Set(run.limits)).toEqual(new Set([16]));
    expect(run.maxInflight).toBe(16);
  });

  it('never exceeds the cap, however large the pipe', () => {
    const run = simulate({ rttMs: 300, rate: 2_000_000 }, 3_000, 16, 40);
    expect(Math.max(...run.limits)).toBe(40);
    expect(run.maxInflight).toBe(40);
    expect(run.c.stats().peak).toBe(40);
  });

  it('max === initial is a fixed count (no growth at all)', () => {
    const run = simulate({ rttMs: 50, rate: 200_000 }, 500, 16, 16);
    expect(new Set(run.limits)).toEqual(new Set([16]));
    expect(run.maxInflight).toBe(16);
  });

  it('grows again when the link gets faster while holding', () => {
    // slow server (pipe ~4 requests) for the first 600 requests, then 10x faster (pipe ~40)
    const run = simulate({ rttMs: 50, rate: 20_000 }, 4_000, 8, 256, (i) => (i < 600 ? 20_000 : 200_000));
    const atSwitch = run.limits[599]!;
    expect(atSwitch).toBeLessThan(20);
    expect(run.c.limit).toBeGreaterThan(38);
    expect(run.c.limit).toBeLessThanOrEqual(256);
  });

  it('an error halves the limit, not below initial, and stops growth', () => {
    const c = new InflightController({ initial: 4, max: 100, startMs: 0 });
    for (let i = 0; i < 30; i++) c.onComplete(B, 50, 50 + i);
    expect(c.limit).toBe(30);
    expect(c.stats().phase).toBe('grow');
    c.onError();
    expect(c.limit).toBe(15);
    expect(c.stats().phase).toBe('hold');
    c.onError();
    c.onError();
    c.onError();
    expect(c.limit).toBe(4);
    // holding: completions alone do not grow it (+1 each while growing)
    const before = c.limit;
    c.onComplete(B, 50, 100);
    expect(c.limit).toBe(before);
  });

  it('start (the session memo of an earlier transfer): begins there, clamped to [initial, max]; the floor stays initial', () => {
    expect(new InflightController({ initial: 16, max: 32, start: 30, startMs: 0 }).limit).toBe(30);
    expect(new InflightController({ initial: 16, max: 32, start: 100, startMs: 0 }).limit).toBe(32);
    expect(new InflightController({ initial: 16, max: 32, start: 4, startMs: 0 }).limit).toBe(16);
    expect(new InflightController({ initial: 16, max: 32, start: undefined, startMs: 0 }).limit).toBe(16);
    const c = new InflightController({ initial: 16, max: 64, start: 40, startMs: 0 });
    expect(c.stats()).toMatchObject({ initial: 16, start: 40, limit: 40, peak: 40 });
    c.onError();
    expect(c.limit).toBe(20);
    c.onError();
    expect(c.limit).toBe(16);
  });

  it('a start learned on a long link, then a loopback-like link: the first rounds bring it back down to initial', () => {
    const run = simulate({ rttMs: 0.2, rate: 400_000 }, 2_000, 16, 128, undefined, 64);
    expect(run.limits[0]).toBe(64);
    expect(run.c.stats().phase).toBe('hold');
    expect(run.c.limit).toBe(16);
  });

  it('a start at the pipe size on a long link: full rate from the first round trip (no slow start)', () => {
    // pipe ~ 200 MB/s x 50 ms / 255 KiB ~ 38 requests
    const cold = simulate({ rttMs: 50, rate: 200_000 }, 120, 16, 64);
    const warm = simulate({ rttMs: 50, rate: 200_000 }, 120, 16, 64, undefined, 48);
    expect(warm.limits[0]).toBe(48);
    expect(warm.throughput).toBeGreaterThan(cold.throughput);
  });

  it('a round measured in no time (clock granularity) is extended, not divided by zero', () => {
    const c = new InflightController({ initial: 2, max: 8, startMs: 10 });
    c.onComplete(B, 0, 10);
    c.onComplete(B, 0, 10);
    c.onComplete(B, 0, 10);
    expect(c.stats().rounds).toBe(0);
    expect(Number.isFinite(c.stats().bestRate)).toBe(true);
    c.onComplete(B, 1, 11);
    expect(c.stats().rounds).toBe(1);
  });

  it('rejects bad options (a programming error: RangeError)', () => {
    expect(() => new InflightController({ initial: 0, max: 4, startMs: 0 })).toThrow(RangeError);
    expect(() => new InflightController({ initial: 4, max: 3, startMs: 0 })).toThrow(RangeError);
    expect(() => new InflightController({ initial: 1.5, max: 3, startMs: 0 })).toThrow(RangeError);
    expect(() => new InflightController({ initial: 1, max: 3, startMs: 0, gain: 0 })).toThrow(RangeError);
  });
});

describe('engine cap and channel window', () => {
  it('maxConcurrency is bounded by the memory bound (8 MiB of slot buffers), never below concurrency; absent: fixed', () => {
    expect(DEFAULT_MAX_BUFFER_BYTES).toBe(8 * 1024 * 1024);
    expect(inflightCap({ concurrency: 16, maxConcurrency: 256 }, B)).toBe(32);
    expect(inflightCap({ concurrency: 16, maxConcurrency: 24 }, B)).toBe(24);
    expect(inflightCap({ concurrency: 16, maxConcurrency: 256 }, 32 * KiB)).toBe(256);
    expect(inflightCap({ concurrency: 16, maxConcurrency: 1024 }, 8 * KiB)).toBe(1024);
    expect(inflightCap({ concurrency: 16, maxConcurrency: 256, maxBufferBytes: 2 * 1024 * 1024 }, B)).toBe(16);
    expect(inflightCap({ concurrency: 200, maxConcurrency: 256 }, B)).toBe(200);
    expect(inflightCap({ concurrency: 16, maxConcurrency: 256, maxBufferBytes: 32 * 1024 * 1024 }, B)).toBe(128);
    expect(inflightCap({ concurrency: 16 }, B)).toBe(16);
    expect(inflightCap({ concurrency: 16, maxConcurrency: 8 }, B)).toBe(16);
  });

  it("the SFTP window the server always sees (after a top-up is due) exceeds a transfer's most bytes in flight plus reply headers", () => {
    const least = SFTP_WINDOW.sizeBytes * (1 - SFTP_WINDOW.topUpFraction);
    const cap = inflightCap({ concurrency: 16, maxConcurrency: 1024 }, B);
    expect(least).toBeGreaterThan(cap * (B + 13));
  });
});

describe('get/put maxConcurrency option (checked before any I/O)', () => {
  const noIo: LinkProvider = {
    link: () => Promise.reject(new Error('validation must happen before any I/O')),
    onLink: () => () => undefined,
  };
  const sftp = new SftpClient(noIo);
  const fieldOf = async (p: Promise<unknown>): Promise<string | undefined> => {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(SshInvalidArgError);
      expect((e as SshInvalidArgError).code).toBe('ERR_SSH_INVALID_ARG');
      return (e as SshInvalidArgError).field;
    }
    return undefined;
  };
  it.each([
    ['get', (o: object) => sftp.get('/r', '/tmp/l', o)],
    ['put', (o: object) => sftp.put('/tmp/l', '/r', o)],
  ] as const)('%s: maxConcurrency outside 1-1024, not an integer, or below concurrency is ERR_SSH_INVALID_ARG naming it', async (_name, call) => {
    expect(await fieldOf(call({ maxConcurrency: 0 }))).toBe('maxConcurrency');
    expect(await fieldOf(call({ maxConcurrency: 1025 }))).toBe('maxConcurrency');
    expect(await fieldOf(call({ maxConcurrency: 2.5 }))).toBe('maxConcurrency');
    expect(await fieldOf(call({ concurrency: 32, maxConcurrency: 16 }))).toBe('maxConcurrency');
    expect(await fieldOf(call({ maxConcurency: 16 }))).toBe('maxConcurency');
  });
});
