// Pure pieces of src/ssh2 and its users: mpint sizes (RFC 4251 section 5), the keep-alive's
// handling of a probe that cannot be sent, and which keyboard-interactive prompts a password may answer.
import { getDiffieHellman } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Keepalive, type Clock } from '../../src/connection/keepalive.js';
import { isPasswordPrompt } from '../../src/connection/auth.js';
import { SshError } from '../../src/errors.js';
import { mpintBits } from '../../src/ssh2/index.js';

function fakeClock(): Clock & { advance(ms: number): void; pending(): number } {
  let now = 0;
  let timers: { at: number; fn: () => void; id: number }[] = [];
  let seq = 0;
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = ++seq;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (h) => {
      timers = timers.filter((t) => t.id !== h);
    },
    pending: () => timers.length,
    advance(ms: number) {
      const end = now + ms;
      for (let guard = 0; guard < 10_000; guard++) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        now = t.at;
        t.fn();
      }
      now = end;
    },
  };
}

describe('mpintBits (OpenSSH BN_num_bits of a DH group prime)', () => {
  it('counts the magnitude, ignoring the sign byte and leading zeros', () => {
    expect(mpintBits(Buffer.alloc(0))).toBe(0);
    expect(mpintBits(Buffer.from([0, 0]))).toBe(0);
    expect(mpintBits(Buffer.from([1]))).toBe(1);
    expect(mpintBits(Buffer.from([0x00, 0x80]))).toBe(8);
    expect(mpintBits(Buffer.from([0x01, 0x00]))).toBe(9);
    expect(mpintBits(Buffer.concat([Buffer.from([0]), getDiffieHellman('modp2').getPrime()]))).toBe(1024);
    expect(mpintBits(getDiffieHellman('modp14').getPrime())).toBe(2048);
  });
});

describe('keep-alive: a probe that cannot be sent is a visible failure', () => {
  it('sendProbe throwing ends the keep-alive at once: onDead with that SshError, no more timers', () => {
    const clock = fakeClock();
    const dead: Array<{ missed: number; cause: SshError | undefined }> = [];
    const lost = new SshError('ERR_SSH_CONNECTION_LOST', 'keep-alive probe not sent: the connection is no longer writable');
    new Keepalive(
      1_000,
      3,
      {
        sendProbe: () => {
          throw lost;
        },
        onDead: (missed, cause) => dead.push({ missed, cause }),
        onRtt: () => undefined,
      },
      clock,
    );
    clock.advance(999);
    expect(dead).toEqual([]);
    clock.advance(1);
    expect(dead).toEqual([{ missed: 1, cause: lost }]);
    expect(clock.pending()).toBe(0);
    clock.advance(10_000);
    expect(dead).toHaveLength(1);
  });

  it('a non-SshError from sendProbe becomes ERR_SSH_CONNECTION_LOST with it as cause', () => {
    const clock = fakeClock();
    let got: SshError | undefined;
    const boom = new TypeError('boom');
    new Keepalive(
      500,
      2,
      {
        sendProbe: () => {
          throw boom;
        },
        onDead: (_m, cause) => (got = cause),
        onRtt: () => undefined,
      },
      clock,
    );
    clock.advance(500);
    expect(got?.code).toBe('ERR_SSH_CONNECTION_LOST');
    expect(got?.cause).toBe(boom);
  });

  it('unanswered probes still end with onDead and no cause (the timeout path is unchanged)', () => {
    const clock = fakeClock();
    const dead: Array<[number, SshError | undefined]> = [];
    new Keepalive(1_000, 2, { sendProbe: () => undefined, onDead: (m, c) => dead.push([m, c]), onRtt: () => undefined }, clock);
    clock.advance(3_000);
    expect(dead).toEqual([[2, undefined]]);
  });
});

describe('isPasswordPrompt: which keyboard-interactive prompts the password answers', () => {
  it.each([
    ['Password: ', false, true],
    ["tether@box's password: ", false, true],
    ['Password for tether@EXAMPLE.COM: ', false, true],
    ['Passwort: ', false, true],
    ['Password: ', true, false],
    ['Username: ', true, false],
    ['Username: ', false, false],
    ['Verification code: ', false, false],
    ['Enter PASSCODE: ', false, false],
    ['One-time password (OATH) for `tether\': ', false, false],
    ['OTP password: ', false, false],
    ['Token: ', false, false],
  ])('%j echo=%s -> %s', (prompt, echo, want) => {
    expect(isPasswordPrompt({ prompt, echo })).toBe(want);
  });
});
