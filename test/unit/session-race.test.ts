// Issue 18 item 5: which refusals the session limiter treats as a race with our own closes.
import { describe, expect, it } from 'vitest';
import { SessionLimiter } from '../../src/channel/limiter.js';

/** Acquires a slot and marks the open as sent, as openSession does. */
async function openOne(l: SessionLimiter): Promise<{ release: () => void; mark: ReturnType<SessionLimiter['openMark']> }> {
  const release = await l.acquire();
  return { release, mark: l.openMark() };
}

describe('SessionLimiter close races', () => {
  it('a refusal right after our own close, within what the server already held, is a race; once answered for, it is not', async () => {
    const l = new SessionLimiter(10);
    const first = await Promise.all([openOne(l), openOne(l), openOne(l)]);
    for (const o of first) {
      expect(o.mark.unconfirmed).toBe(false);
      l.confirmCloses(o.mark);
      l.noteSuccess(o.mark);
    }
    // nothing closed yet: a refusal now is a real limit
    expect(l.isCloseRace(first[2].mark)).toBe(false);
    // close one, reuse its slot before the server answered anything sent after the close
    l.noteClosed();
    first[0].release();
    const next = await openOne(l);
    expect(next.mark).toEqual({ closes: 1, unconfirmed: true });
    expect(l.open).toBe(3);
    expect(l.isCloseRace(next.mark)).toBe(true);
    // the refusal answers for the close: the retry's mark is confirmed, so a second refusal is real
    l.confirmCloses(next.mark);
    const retryMark = l.openMark();
    expect(retryMark.unconfirmed).toBe(false);
    expect(l.isCloseRace(retryMark)).toBe(false);
    expect(l.learnedLimit).toBe(10);
    next.release();
    first[1].release();
    first[2].release();
  });

  it('an open beyond what the server has held at once is no race, even right after a close (a smaller server limit)', async () => {
    const l = new SessionLimiter(10);
    const a = await openOne(l);
    const b = await openOne(l);
    for (const o of [a, b]) {
      l.confirmCloses(o.mark);
      l.noteSuccess(o.mark);
    }
    l.noteClosed();
    a.release();
    const c = await openOne(l);
    const d = await openOne(l); // 3 held: the server never held 3 for us
    expect(d.mark.unconfirmed).toBe(true);
    expect(l.isCloseRace(d.mark)).toBe(false);
    l.lowerLimit();
    expect(l.learnedLimit).toBe(2);
    expect(l.stats).toEqual({ learnedLimit: 2, lowered: 1, raceRetries: 0 });
    for (const o of [b, c, d]) o.release();
  });

  it('counts channels closed after an open was sent as held by the server when it confirmed that open', async () => {
    const l = new SessionLimiter(10);
    const a = await openOne(l);
    l.confirmCloses(a.mark);
    l.noteSuccess(a.mark);
    const b = await openOne(l); // sent while a is open
    l.noteClosed(); // a closes before b is confirmed: the server still held a when b arrived
    a.release();
    l.confirmCloses(b.mark);
    l.noteSuccess(b.mark);
    l.noteClosed();
    b.release();
    // proven 2: an open with 2 held right after a close is a race
    const c = await openOne(l);
    const d = await openOne(l);
    expect(l.isCloseRace(d.mark)).toBe(true);
    c.release();
    d.release();
  });

  it('a new link forgets closes and what the old server held', async () => {
    const l = new SessionLimiter(4);
    const a = await openOne(l);
    l.confirmCloses(a.mark);
    l.noteSuccess(a.mark);
    l.noteClosed();
    a.release();
    l.reset();
    const b = await openOne(l);
    expect(b.mark.unconfirmed).toBe(false);
    expect(l.isCloseRace(b.mark)).toBe(false);
    b.release();
  });
});
