// RemoteForward's state machine (issue 12 item 5): the transition table, and the one writer
// driven through a real RemoteForward over a fake link (ssh2's forwardIn answered in-process).
import type ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { Link } from '../../src/connection/link.js';
import { SshError } from '../../src/errors.js';
import type { ForwardEvent } from '../../src/forward/handles.js';
import { canRemoteTransition, REMOTE_TRANSITIONS, RemoteForward, type RemoteContext, type RemoteForwardState } from '../../src/forward/remote.js';

const STATES: RemoteForwardState[] = ['pending', 'up', 'down', 'error', 'closed'];

describe('REMOTE_TRANSITIONS', () => {
  it('lists exactly the allowed moves', () => {
    const allowed = STATES.flatMap((from) => STATES.filter((to) => canRemoteTransition(from, to)).map((to) => `${from}->${to}`));
    expect(allowed.sort()).toEqual(
      [
        'pending->up',
        'pending->error',
        'pending->closed',
        'up->down',
        'up->up',
        'up->error',
        'up->closed',
        'down->up',
        'down->error',
        'down->closed',
        'error->up',
        'error->error',
        'error->closed',
      ].sort(),
    );
  });

  it('forbids: leaving closed, going back to pending, down without having been up, and down -> down', () => {
    for (const to of STATES) expect(canRemoteTransition('closed', to)).toBe(false);
    for (const from of STATES) expect(canRemoteTransition(from, 'pending')).toBe(false);
    expect(canRemoteTransition('pending', 'down')).toBe(false);
    expect(canRemoteTransition('error', 'down')).toBe(false);
    expect(canRemoteTransition('down', 'down')).toBe(false);
    expect(Object.isFrozen(REMOTE_TRANSITIONS)).toBe(true);
  });
});

/** A link whose client answers tcpip-forward with `answer()` (undefined: accept on port 4000). */
function fakeLink(answer: () => Error | undefined): { link: Link; die(): void } {
  const ctl = new AbortController();
  const client = {
    forwardIn(_host: string, port: number, cb: (err: Error | undefined, port: number) => void) {
      const err = answer();
      queueMicrotask(() => cb(err, port === 0 ? 4000 : port));
    },
    unforwardIn(_h: string, _p: number, cb: () => void) {
      queueMicrotask(cb);
    },
  } as unknown as ssh2.Client;
  return { link: { client, epoch: 1, signal: ctl.signal }, die: () => ctl.abort(new SshError('ERR_SSH_CONNECTION_LOST', 'gone')) };
}

function fakeCtx(events: ForwardEvent[]): RemoteContext {
  return {
    provider: { link: () => Promise.reject(new Error('unused')), onLink: () => () => undefined },
    connectionWaitMs: 1_000,
    maxSocksConnections: 1,
    socksHandshakeTimeoutMs: 1_000,
    localConnectTimeoutMs: 1_000,
    remoteRetry: { retries: 0, minDelayMs: 1, maxDelayMs: 1, factor: 1 },
    remoteRequestTimeoutMs: 1_000,
    warn: () => undefined,
    emit: (ev) => events.push(ev),
    onLinkDeath: (link, fn) => {
      const on = (): void => fn(link.signal.reason as SshError);
      link.signal.addEventListener('abort', on, { once: true });
      return () => link.signal.removeEventListener('abort', on);
    },
    attach: () => undefined,
    route: () => undefined,
    release: () => undefined,
  };
}

describe('RemoteForward state writer', () => {
  it('pending -> up -> down -> error -> up -> closed, one event per change, nothing after closed', async () => {
    const events: ForwardEvent[] = [];
    const fwd = new RemoteForward(fakeCtx(events), { remoteHost: '127.0.0.1', remotePort: 0, localHost: '127.0.0.1', localPort: 1 });
    const seen: string[] = [fwd.state];

    const a = fakeLink(() => undefined);
    await fwd.ensureOn(a.link, false);
    seen.push(fwd.state);
    expect(fwd.remotePort).toBe(4000);

    a.die();
    seen.push(fwd.state);

    const b = fakeLink(() => new Error('port in use'));
    await expect(fwd.ensureOn(b.link, false)).rejects.toMatchObject({ code: 'ERR_SSH_FORWARD' });
    await Promise.resolve();
    seen.push(fwd.state);

    const c = fakeLink(() => undefined);
    await fwd.ensureOn(c.link, false);
    seen.push(fwd.state);

    await fwd.close();
    seen.push(fwd.state);
    // a late link death changes nothing
    c.die();
    seen.push(fwd.state);

    expect(seen).toEqual(['pending', 'up', 'down', 'error', 'up', 'closed', 'closed']);
    expect(events.map((e) => e.state)).toEqual(['up', 'down', 'error', 'up']);
    expect(events[1]?.cause?.code).toBe('ERR_SSH_CONNECTION_LOST');
    expect(events[2]?.cause?.code).toBe('ERR_SSH_FORWARD');
    await expect(fwd.ensureOn(fakeLink(() => undefined).link, false)).rejects.toMatchObject({ code: 'ERR_SSH_CLOSED' });
    expect(fwd.state).toBe('closed');
  });
});
