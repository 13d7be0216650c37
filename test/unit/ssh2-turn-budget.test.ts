/**
 * TurnBudget (src/ssh2/sftp.ts, issue 18 item 7): once a turn of the event loop handled the
 * budget of channel data, the transport stream is paused until the end of that turn
 * (setImmediate) and resumed then; a stream paused by someone else stays paused; bytes are never
 * lost or reordered by it. Real streams, real event loop (no fake timers: the point is the turn).
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TURN_BUDGET_BYTES, TurnBudget, turnBudgetOf } from '../../src/ssh2/sftp.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A flowing stream (a 'data' listener attached), as ssh2 keeps its socket. */
function flowing(): { s: PassThrough; got: Buffer[] } {
  const s = new PassThrough();
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  return { s, got };
}

describe('TurnBudget', () => {
  it('below the budget the stream keeps flowing; at the budget it pauses until the turn ends, then flows again', async () => {
    const { s } = flowing();
    const b = new TurnBudget(s, 1000);
    b.consume(600);
    expect(s.isPaused()).toBe(false);
    b.consume(400);
    expect(s.isPaused()).toBe(true);
    expect(b.pauses).toBe(1);
    // more data in the same turn does not pause twice
    b.consume(5000);
    expect(b.pauses).toBe(1);
    await nextTurn();
    expect(s.isPaused()).toBe(false);
    // a new turn has a new budget
    b.consume(999);
    expect(s.isPaused()).toBe(false);
    await nextTurn();
    b.consume(999);
    expect(s.isPaused()).toBe(false);
    b.consume(1);
    expect(s.isPaused()).toBe(true);
    await nextTurn();
    expect(s.isPaused()).toBe(false);
    expect(b.pauses).toBe(2);
  });

  it('data written while paused is held and delivered in order after the turn', async () => {
    const { s, got } = flowing();
    const b = new TurnBudget(s, 4);
    s.write(Buffer.from('ab'));
    b.consume(4);
    expect(s.isPaused()).toBe(true);
    s.write(Buffer.from('cd'));
    s.write(Buffer.from('ef'));
    await new Promise((r) => process.nextTick(r));
    expect(Buffer.concat(got).toString()).toBe('ab');
    await nextTurn();
    await nextTurn();
    expect(Buffer.concat(got).toString()).toBe('abcdef');
  });

  it('leaves a stream paused by someone else paused (before or during the turn)', async () => {
    const { s } = flowing();
    const b = new TurnBudget(s, 10);
    s.pause();
    b.consume(50);
    expect(b.pauses).toBe(0);
    await nextTurn();
    expect(s.isPaused()).toBe(true);
    // once the owner resumes, the budget works again
    s.resume();
    b.consume(50);
    expect(b.pauses).toBe(1);
    expect(s.isPaused()).toBe(true);
    await nextTurn();
    expect(s.isPaused()).toBe(false);
  });

  it('does not resume a destroyed stream', async () => {
    const { s } = flowing();
    s.on('error', () => undefined);
    const b = new TurnBudget(s, 10);
    b.consume(10);
    s.destroy();
    await nextTurn();
    expect(s.destroyed).toBe(true);
    expect(s.isPaused()).toBe(true);
  });

  it('one budget per transport stream, shared by every SFTP session on it', () => {
    const { s } = flowing();
    const { s: other } = flowing();
    expect(turnBudgetOf(s)).toBe(turnBudgetOf(s));
    expect(turnBudgetOf(s)).not.toBe(turnBudgetOf(other));
    expect(turnBudgetOf(s).budget).toBe(TURN_BUDGET_BYTES);
  });
});
