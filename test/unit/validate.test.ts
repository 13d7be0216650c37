import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SshConfigError, SshError, SshInvalidArgError } from '../../src/errors.js';
import { MAX_TIMER_MS, durationMsSchema, listenPortSchema, parseOrThrow, portSchema, signalSchema, timeoutMsSchema } from '../../src/internal/validate.js';

const opts = z.strictObject({ timeoutMs: timeoutMsSchema().optional(), port: portSchema().optional(), signal: signalSchema.optional() });

function thrown(fn: () => unknown): SshError {
  try {
    fn();
  } catch (e) {
    return e as SshError;
  }
  throw new Error('did not throw');
}

describe('internal/validate', () => {
  it('parses a good object and returns the parsed value', () => {
    const signal = new AbortController().signal;
    expect(parseOrThrow(opts, { timeoutMs: 5, port: 22, signal }, 'test options')).toEqual({ timeoutMs: 5, port: 22, signal });
  });

  it('an unknown key is ERR_SSH_INVALID_ARG naming it, with the closest accepted name', () => {
    const e = thrown(() => parseOrThrow(opts, { timeoutM: 5 }, 'get options'));
    expect(e).toBeInstanceOf(SshInvalidArgError);
    expect(e.code).toBe('ERR_SSH_INVALID_ARG');
    expect(e.retryable).toBe(false);
    expect((e as SshInvalidArgError).field).toBe('timeoutM');
    expect(e.message).toContain("unknown option 'timeoutM'");
    expect(e.message).toContain('did you mean `timeoutMs`?');
    expect(e.message).toContain('accepted options: timeoutMs, port, signal');
  });

  it("kind 'config' gives ERR_SSH_CONFIG", () => {
    const e = thrown(() => parseOrThrow(opts, { port: 0 }, 'SshClient options', 'config'));
    expect(e).toBeInstanceOf(SshConfigError);
    expect(e.code).toBe('ERR_SSH_CONFIG');
    expect((e as SshConfigError).field).toBe('port');
    expect(e.message).toContain('1-65535');
  });

  it('one rule for durations: whole ms, 0..2^31-1; timeoutMs >= 1', () => {
    const d = durationMsSchema('x');
    expect(d.safeParse(0).success).toBe(true);
    expect(d.safeParse(MAX_TIMER_MS).success).toBe(true);
    for (const bad of [-1, 1.5, MAX_TIMER_MS + 1, Infinity, Number.NaN, '5']) expect(d.safeParse(bad).success).toBe(false);
    expect(timeoutMsSchema().safeParse(0).success).toBe(false);
    expect(timeoutMsSchema().safeParse(1).success).toBe(true);
    const e = thrown(() => parseOrThrow(opts, { timeoutMs: 2 ** 40 }, 'exec options'));
    expect(e.message).toContain("'timeoutMs'");
    expect(e.message).toContain('2^31-1');
  });

  it('ports: connect 1..65535, listen 0..65535', () => {
    expect(portSchema().safeParse(0).success).toBe(false);
    expect(portSchema().safeParse(65535).success).toBe(true);
    expect(portSchema().safeParse(65536).success).toBe(false);
    expect(listenPortSchema().safeParse(0).success).toBe(true);
    expect(listenPortSchema().safeParse(-1).success).toBe(false);
    expect(listenPortSchema().safeParse(1.5).success).toBe(false);
  });

  it('signal must be an AbortSignal', () => {
    const e = thrown(() => parseOrThrow(opts, { signal: {} }, 'exec options'));
    expect(e.code).toBe('ERR_SSH_INVALID_ARG');
    expect((e as SshInvalidArgError).field).toBe('signal');
    expect(e.message).toContain('AbortSignal');
  });
});
