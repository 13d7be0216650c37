// carry.ts forwardWindowFor (issue 18 item 2): the forward window is sized to the link's round
// trip. Short links keep ssh2's own rule (a large window there only lets sshd's channel buffer
// fill, see the FORWARD_WINDOW comment); long links get an eager window, at most FORWARD_WINDOW.
import { describe, expect, it } from 'vitest';
import { FORWARD_WINDOW, forwardWindowFor } from '../../src/forward/carry.js';

const MiB = 1024 * 1024;

describe('forwardWindowFor', () => {
  it("keeps ssh2's own rule up to ~5 ms round trip (loopback, LAN)", () => {
    for (const rtt of [0, 0.2, 1, 5]) expect(forwardWindowFor(rtt)).toBeNull();
  });
  it('grows in powers of two with the round trip, top-up 1/64, capped at FORWARD_WINDOW (5 MiB)', () => {
    expect(forwardWindowFor(6)).toEqual({ sizeBytes: 2 * MiB, topUpFraction: 1 / 64 });
    expect(forwardWindowFor(10)).toEqual({ sizeBytes: 2 * MiB, topUpFraction: 1 / 64 });
    expect(forwardWindowFor(11)).toEqual({ sizeBytes: 4 * MiB, topUpFraction: 1 / 64 });
    expect(forwardWindowFor(20)).toEqual({ sizeBytes: 4 * MiB, topUpFraction: 1 / 64 });
    expect(forwardWindowFor(22)).toEqual(FORWARD_WINDOW);
    expect(forwardWindowFor(51)).toEqual(FORWARD_WINDOW);
    expect(forwardWindowFor(10_000)).toEqual(FORWARD_WINDOW);
    expect(FORWARD_WINDOW).toEqual({ sizeBytes: 5 * MiB, topUpFraction: 1 / 64 });
  });
  it('an unknown round trip (no channel opened on the link yet) gets FORWARD_WINDOW', () => {
    expect(forwardWindowFor(undefined)).toBe(FORWARD_WINDOW);
    expect(forwardWindowFor(Number.NaN)).toBe(FORWARD_WINDOW);
  });
});
