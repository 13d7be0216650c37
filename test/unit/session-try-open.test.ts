// Issue 18 item 4: the extra SFTP channels of a striped transfer open only in a free session slot
// (openSession with wait: false): never queued, a refusal lowers the learned limit and fails at once.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { SessionLimiter } from '../../src/channel/limiter.js';
import { openSession } from '../../src/channel/open.js';
import type { Link, LinkProvider } from '../../src/connection/link.js';
import { SshChannelOpenError } from '../../src/errors.js';

const link = { client: {}, epoch: 1, signal: new AbortController().signal } as unknown as Link;
const provider: LinkProvider = { link: () => Promise.resolve(link), onLink: () => () => undefined };
const never = new AbortController().signal;

class FakeChannel extends EventEmitter {
  close(): void {
    this.emit('close');
  }
}

describe('openSession(wait: false)', () => {
  it('takes a free slot; with none free it rejects at once (reason 4) without opening or queueing', async () => {
    const l = new SessionLimiter(2);
    const held = await l.acquire();
    let opens = 0;
    const open = (): Promise<FakeChannel> => {
      opens++;
      return Promise.resolve(new FakeChannel());
    };
    const a = await openSession(provider, l, open, never, undefined, false);
    expect(l.open).toBe(2);
    const err = await openSession(provider, l, open, never, undefined, false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshChannelOpenError);
    expect((err as SshChannelOpenError).reason).toBe(4);
    expect(opens).toBe(1);
    expect(l.queued).toBe(0);
    // the slot comes back when the channel closes
    a.channel.close();
    expect(l.open).toBe(1);
    held();
    expect(l.open).toBe(0);
  });

  it('onQueue: called once per caller that has to wait (not for a slot granted at once), until removed', async () => {
    const l = new SessionLimiter(1);
    let calls = 0;
    const off = l.onQueue(() => calls++);
    const held = await l.acquire();
    expect(calls).toBe(0);
    const w1 = l.acquire();
    const w2 = l.acquire();
    expect(calls).toBe(2);
    off();
    const w3 = l.acquire();
    expect(calls).toBe(2);
    held();
    (await w1)();
    (await w2)();
    (await w3)();
    expect(l.open).toBe(0);
  });

  it('never overtakes callers already waiting for a slot', async () => {
    const l = new SessionLimiter(1);
    const held = await l.acquire();
    const waiting = l.acquire();
    expect(l.tryAcquire()).toBeUndefined();
    held();
    const r = await waiting;
    r();
    const free = l.tryAcquire();
    expect(free).toBeTypeOf('function');
    free!();
    expect(l.open).toBe(0);
  });

  it('a refusal for lack of resources while another session is open lowers the learned limit and rejects without waiting', async () => {
    const l = new SessionLimiter(10);
    const held = await l.acquire(); // the client's SFTP session
    const refuse = (): Promise<FakeChannel> => Promise.reject(Object.assign(new Error('open failed'), { reason: 2 }));
    const err = await openSession(provider, l, refuse, never, undefined, false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshChannelOpenError);
    expect((err as SshChannelOpenError).reason).toBe(2);
    expect(l.learnedLimit).toBe(1);
    expect(l.open).toBe(1);
    expect(l.queued).toBe(0);
    held();
  });
});
