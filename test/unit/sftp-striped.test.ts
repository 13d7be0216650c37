/**
 * Issue 18 item 4, pure parts of striped transfers (src/sftp/striped.ts): how the span still to
 * copy is cut into ranges, and where a resume may continue when ranges complete out of order.
 */
import { describe, expect, it } from 'vitest';
import { completedPrefix, RANGE_LIMITS, splitRanges, type ByteRange } from '../../src/sftp/striped.js';

const MiB = 1024 * 1024;

/** The ranges cover [start, end) exactly, in order, none empty. */
function expectCover(ranges: ByteRange[], start: number, end: number): void {
  expect(ranges.length).toBeGreaterThan(0);
  expect(ranges[0]!.start).toBe(start);
  expect(ranges.at(-1)!.end).toBe(end);
  for (let i = 0; i < ranges.length; i++) {
    expect(ranges[i]!.end).toBeGreaterThan(ranges[i]!.start);
    if (i > 0) expect(ranges[i]!.start).toBe(ranges[i - 1]!.end);
  }
}

describe('splitRanges', () => {
  it('covers the span exactly for many sizes, starts and channel counts; sizes within the limits; starts aligned', () => {
    const spans = [1, 1000, 64 * 1024 - 1, 8 * MiB, 40 * MiB + 12_345, 128 * MiB, 1024 * MiB + 7, 10 * 1024 * MiB];
    for (const span of spans) {
      for (const start of [0, 1, 3 * MiB + 5]) {
        for (const channels of [1, 2, 3, 4, 8, 64]) {
          const r = splitRanges(start, start + span, channels);
          expectCover(r, start, start + span);
          const size = r[0]!.end - r[0]!.start;
          // one size for all but the last
          for (const x of r.slice(0, -1)) expect(x.end - x.start).toBe(size);
          expect(size % RANGE_LIMITS.align === 0 || r.length === 1).toBe(true);
          expect(size).toBeLessThanOrEqual(RANGE_LIMITS.maxBytes);
          // large spans: at least the smallest range size; never coarser than an even split
          if (span >= channels * RANGE_LIMITS.minBytes) expect(size).toBeGreaterThanOrEqual(RANGE_LIMITS.minBytes);
          // never much more than an even split over the channels (every lane can get a range)
          expect(size).toBeLessThan(Math.max(RANGE_LIMITS.align, Math.ceil(span / channels)) + RANGE_LIMITS.align);
        }
      }
    }
  });

  it('a small span is split so that every channel gets a range', () => {
    const r = splitRanges(0, 6 * MiB, 3);
    expect(r).toEqual([
      { start: 0, end: 2 * MiB },
      { start: 2 * MiB, end: 4 * MiB },
      { start: 4 * MiB, end: 6 * MiB },
    ]);
  });

  it('about perChannel ranges per channel for a large span; at most maxBytes each', () => {
    expect(splitRanges(0, 1024 * MiB, 4)).toHaveLength(32); // 32 MiB each
    expect(splitRanges(0, 40 * MiB, 4)).toHaveLength(5); // 8 MiB each (the minimum)
    const huge = splitRanges(0, 1024 * 1024 * MiB, 4); // 1 TiB: 64 MiB each
    expect(huge).toHaveLength(16384);
    expect(huge[0]!.end).toBe(64 * MiB);
  });

  it('honours custom limits (the 8-per-channel aim, alignment)', () => {
    const r = splitRanges(0, 1000, 2, { perChannel: 2, minBytes: 1, maxBytes: 1000, align: 100 });
    expect(r.map((x) => x.end - x.start)).toEqual([300, 300, 300, 100]);
  });

  it('an empty or negative span gives no ranges', () => {
    expect(splitRanges(5, 5, 4)).toEqual([]);
    expect(splitRanges(10, 5, 4)).toEqual([]);
  });
});

describe('completedPrefix (where resume may continue)', () => {
  const ranges = splitRanges(100, 100 + 40 * MiB, 4); // 5 ranges of 8 MiB from 100
  it('is the start of the lowest range not done, whatever completed above it', () => {
    expect(completedPrefix(ranges, [false, true, true, true, true])).toBe(100);
    expect(completedPrefix(ranges, [true, false, true, false, true])).toBe(ranges[1]!.start);
    expect(completedPrefix(ranges, [true, true, true, true, false])).toBe(ranges[4]!.start);
  });
  it('is the end when every range is done; the early end of the source when it ended first', () => {
    expect(completedPrefix(ranges, [true, true, true, true, true])).toBe(100 + 40 * MiB);
    expect(completedPrefix(ranges, [true, true, false, false, false], ranges[1]!.start + 10)).toBe(ranges[1]!.start + 10);
    expect(completedPrefix(ranges, [true, true, true, true, true], 12_345)).toBe(12_345);
  });
  it('no ranges: 0', () => {
    expect(completedPrefix([], [])).toBe(0);
  });
});
