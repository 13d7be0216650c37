// The connection state machine, waiters and reconnect loop without a server: every transport is a
// fake (ConnectionHooks.openTransport), opened, failed or killed by the test. Timers are real but
// tiny (backoff of a few ms); every wait is bounded.
import { describe, expect, it } from 'vitest';
import type ssh2 from 'ssh2';
import { EventEmitter } from 'node:events';
import { Connection, type ConnectionHooks } from '../../src/connection/connection.js';
import type { Transport, TransportOptions } from '../../src/connection/transport.js';
import type { Link } from '../../src/connection/link.js';
import type { ConnectionState } from '../../src/connection/state.js';
import { resolveOptions, type ResolvedOptions, type SshClientOptions } from '../../src/options.js';
import { SshAuthError, SshError } from '../../src/errors.js';

/** A transport that does nothing on the wire: the test kills it with die(). */
class FakeTransport implements Transport {
  readonly client = new EventEmitter() as unknown as ssh2.Client;
  readonly since = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  cause: SshError | undefined;
  destroyed = false;
  ended = false;
  readonly #ctl = new AbortController();

  get signal(): AbortSignal {
    return this.#ctl.signal;
  }

  /** Dies by itself, as SshTransport does (keep-alive timeout, socket closed). */
  die(cause: SshError): void {
    if (this.signal.aborted) return;
    this.cause = cause;
    this.#ctl.abort(cause.code === 'ERR_SSH_CONNECTION_LOST' ? cause : new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${cause.message}`, { cause }));
  }

  destroy(reason: SshError): void {
    this.cause ??= reason;
    this.destroyed = true;
    if (!this.signal.aborted) this.#ctl.abort(reason);
  }

  end(_graceMs?: number, reason: SshError = new SshError('ERR_SSH_CLOSED', 'ended')): Promise<void> {
    this.cause ??= reason;
    this.ended = true;
    if (!this.signal.aborted) this.#ctl.abort(reason);
    return Promise.resolve();
  }
}

/** One call of openTransport, settled by the test. */
interface Open {
  options: TransportOptions;
  resolve: (t: FakeTransport) => void;
  reject: (err: SshError) => void;
}

/** A scripted openTransport: each call is queued for the test (or answered by `auto`). */
class Opener {
  readonly calls: Open[] = [];
  #waiting: Array<(o: Open) => void> = [];
  #unanswered: Open[] = [];
  /** Answers calls at once when set: a transport, or an error to reject with. */
  auto: (() => FakeTransport | SshError) | undefined;

  readonly open = (_o: ResolvedOptions, options: TransportOptions): Promise<Transport> =>
    new Promise<Transport>((resolve, reject) => {
      const call: Open = { options, resolve, reject };
      this.calls.push(call);
      const a = this.auto?.();
      if (a instanceof SshError) reject(a);
      else if (a) resolve(a);
      else {
        const w = this.#waiting.shift();
        if (w) w(call);
        else this.#unanswered.push(call);
      }
    });

  /** The next call not answered automatically (waits up to 2 s). */
  next(): Promise<Open> {
    const ready = this.#unanswered.shift();
    if (ready) return Promise.resolve(ready);
    return within(new Promise<Open>((resolve) => this.#waiting.push(resolve)), 'next openTransport call');
  }
}

function within<T>(p: Promise<T>, what: string, ms = 2_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function once<T>(conn: Connection, event: 'close' | 'ready' | 'disconnect' | 'error'): Promise<T> {
  return within(new Promise<T>((resolve) => conn.once(event, ((v: T) => resolve(v)) as never)), `'${event}'`);
}

function setup(options: Partial<SshClientOptions> = {}, hooks: Partial<ConnectionHooks> = {}) {
  const o = resolveOptions({ host: '127.0.0.1', username: 'u', sshConfig: false, keepaliveIntervalMs: 0, ...options });
  const opener = new Opener();
  const conn = new Connection(o, { hostKeyCheckFor: () => () => Promise.resolve(), openTransport: opener.open, ...hooks });
  const states: ConnectionState[] = [];
  conn.on('state', (e) => states.push(e.state));
  const errors: SshError[] = [];
  conn.on('error', (e) => errors.push(e));
  return { conn, opener, states, errors };
}

const refused = (): SshError => new SshError('ERR_SSH_CONNECT', 'connection refused (fake)');

describe('Connection with a fake transport', () => {
  it('backoff: every reconnect delay is within the policy bounds, grows, and the loop gives up after `retries`', async () => {
    const policy = { retries: 6, minDelayMs: 4, maxDelayMs: 20, factor: 2 };
    const { conn, opener, errors } = setup({ reconnect: policy });
    const first = new FakeTransport();
    opener.auto = () => (opener.calls.length === 1 ? first : refused());
    await conn.connect();
    const delays: number[] = [];
    conn.on('reconnecting', (e) => delays.push(e.delayMs));
    const closed = once<{ cause?: SshError }>(conn, 'close');
    first.die(new SshError('ERR_SSH_KEEPALIVE_TIMEOUT', 'no packet (fake)'));
    const { cause } = await closed;
    // retries + 1 attempts (p-retry), each announced with its delay.
    expect(delays).toHaveLength(policy.retries + 1);
    for (const d of delays) {
      // internal/backoff.ts: jitter x1 to x2 of the base, capped: never below minDelayMs.
      expect(d).toBeGreaterThanOrEqual(policy.minDelayMs);
      expect(d).toBeLessThanOrEqual(policy.maxDelayMs);
    }
    // The base doubles (4, 8, 16, 32...): from the 4th retry on the delay is the cap.
    expect(delays.slice(3)).toEqual(delays.slice(3).map(() => policy.maxDelayMs));
    expect(opener.calls).toHaveLength(1 + policy.retries + 1);
    expect(conn.state).toBe('closed');
    expect(cause?.code).toBe('ERR_SSH_CONNECT');
    expect(errors).toEqual([cause]);
    await expect(conn.link()).rejects.toBe(cause);
  });

  it('a fatal first-connect error (auth) closes the client at once: no retry, `error` then `close`, later calls reject with it', async () => {
    const { conn, opener, states, errors } = setup({ retryFirstConnect: true, reconnect: { retries: 5, minDelayMs: 1, maxDelayMs: 2, factor: 1 } });
    const auth = new SshAuthError('all methods failed (fake)', { methodsTried: ['publickey'] });
    opener.auto = () => auth;
    await expect(conn.connect()).rejects.toBe(auth);
    expect(opener.calls).toHaveLength(1);
    expect(conn.state).toBe('closed');
    expect(conn.closedBy).toBe(auth);
    expect(errors).toEqual([auth]);
    expect(states).toEqual(['connecting', 'closed']);
    await expect(conn.link()).rejects.toBe(auth);
    // The client's lifetime signal was aborted: the attempt's signal says so.
    expect(opener.calls[0]?.options.signal.aborted).toBe(true);
  });

  it('a retryable first-connect error goes back to idle; the next call connects again', async () => {
    const { conn, opener, states, errors } = setup();
    opener.auto = () => refused();
    await expect(conn.connect()).rejects.toMatchObject({ code: 'ERR_SSH_CONNECT' });
    expect(conn.state).toBe('idle');
    const t = new FakeTransport();
    opener.auto = () => t;
    const link = await conn.link();
    expect(link.client).toBe(t.client);
    expect(link.signal).toBe(t.signal);
    expect(states).toEqual(['connecting', 'idle', 'connecting', 'ready']);
    expect(errors).toEqual([]);
    expect(opener.calls).toHaveLength(2);
  });

  it('retryFirstConnect: retryable failures are retried under the policy, a fatal one during the retries stops them', async () => {
    const { conn, opener } = setup({ retryFirstConnect: true, reconnect: { retries: 10, minDelayMs: 1, maxDelayMs: 2, factor: 1 } });
    const t = new FakeTransport();
    opener.auto = () => (opener.calls.length < 3 ? refused() : t);
    await conn.connect();
    expect(conn.state).toBe('ready');
    expect(opener.calls).toHaveLength(3);

    const { conn: c2, opener: o2 } = setup({ retryFirstConnect: true, reconnect: { retries: 10, minDelayMs: 1, maxDelayMs: 2, factor: 1 } });
    const hostKey = new SshError('ERR_SSH_HOST_KEY_MISMATCH', 'changed (fake)');
    o2.auto = () => (o2.calls.length < 2 ? refused() : hostKey);
    await expect(c2.connect()).rejects.toBe(hostKey);
    expect(o2.calls).toHaveLength(2);
    expect(c2.state).toBe('closed');
  });

  it('close() while connecting: waiters reject ERR_SSH_CLOSED, the attempt is aborted, a transport that arrives late is destroyed', async () => {
    const { conn, opener, states } = setup();
    const connecting = conn.connect();
    const call = await opener.next();
    expect(conn.state).toBe('connecting');
    await conn.close();
    await expect(connecting).rejects.toMatchObject({ code: 'ERR_SSH_CLOSED' });
    expect(call.options.signal.aborted).toBe(true);
    expect(conn.state).toBe('closed');
    // SshTransport.open rejects with the signal's reason; a fake that resolves anyway is torn down.
    const late = new FakeTransport();
    call.resolve(late);
    await within(
      (async () => {
        while (!late.destroyed) await new Promise((r) => setTimeout(r, 1));
      })(),
      'the late transport destroyed',
    );
    expect(states).toEqual(['connecting', 'closing', 'closed']);
    await expect(conn.link()).rejects.toMatchObject({ code: 'ERR_SSH_CLOSED' });
  });

  it('a link dying before ready (during beforeReady) fails the attempt with ERR_SSH_CONNECTION_LOST, never `ready` without a link', async () => {
    let release: (() => void) | undefined;
    const { conn, opener, states } = setup(
      {},
      {
        beforeReady: () =>
          new Promise<void>((resolve) => {
            release = resolve;
          }),
      },
    );
    const t = new FakeTransport();
    opener.auto = () => t;
    const connecting = conn.connect();
    await within(
      (async () => {
        while (!release) await new Promise((r) => setTimeout(r, 1));
      })(),
      'beforeReady',
    );
    t.die(new SshError('ERR_SSH_CONNECTION_LOST', 'connection to 127.0.0.1:22 closed (fake)'));
    release?.();
    const err = (await connecting.catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_CONNECTION_LOST');
    expect(err.retryable).toBe(true);
    expect(conn.state).toBe('idle');
    expect(states).toEqual(['connecting', 'idle']);
    // A transport dead on arrival (no beforeReady) is the same failure.
    const { conn: c2, opener: o2 } = setup();
    const dead = new FakeTransport();
    dead.die(new SshError('ERR_SSH_CONNECTION_LOST', 'gone (fake)'));
    o2.auto = () => dead;
    await expect(c2.connect()).rejects.toMatchObject({ code: 'ERR_SSH_CONNECTION_LOST' });
    expect(c2.state).toBe('idle');
  });

  it('reconnect after loss: disconnect carries the cause, the old link aborts ERR_SSH_CONNECTION_LOST, waiters get the new link', async () => {
    const { conn, opener, states } = setup({ reconnect: { retries: 3, minDelayMs: 1, maxDelayMs: 2, factor: 1 } });
    const a = new FakeTransport();
    a.bytesIn = 100;
    a.bytesOut = 40;
    opener.auto = () => a;
    const first = await conn.link();
    opener.auto = undefined;
    const disconnected = once<{ cause: SshError }>(conn, 'disconnect');
    const timeout = new SshError('ERR_SSH_KEEPALIVE_TIMEOUT', 'no packet (fake)');
    a.die(timeout);
    expect((await disconnected).cause).toBe(timeout);
    expect(conn.state).toBe('reconnecting');
    expect(first.signal.reason).toMatchObject({ code: 'ERR_SSH_CONNECTION_LOST', cause: timeout });
    // An operation issued now waits for the new link.
    const waiting = conn.link();
    const call = await opener.next();
    const b = new FakeTransport();
    b.bytesIn = 5;
    call.resolve(b);
    const second: Link = await within(waiting, 'the new link');
    expect(second.client).toBe(b.client);
    expect(second.epoch).toBeGreaterThan(first.epoch);
    expect(states).toEqual(['connecting', 'ready', 'reconnecting', 'ready']);
    const s = conn.stats();
    expect(s.reconnects).toBe(1);
    expect(s.disconnects).toBe(1);
    expect(s.lastDisconnectCause).toBe(timeout);
    expect(s.bytesIn).toBe(105);
    expect(s.bytesOut).toBe(40);
    await conn.close();
    expect(b.ended).toBe(true);
    expect(conn.state).toBe('closed');
  });

  it('without a reconnect policy a lost link closes the client with the loss as cause, and no `error`', async () => {
    const { conn, opener, errors } = setup({ reconnect: false });
    const t = new FakeTransport();
    opener.auto = () => t;
    await conn.connect();
    const closed = once<{ cause?: SshError }>(conn, 'close');
    t.die(new SshError('ERR_SSH_CONNECTION_LOST', 'connection to 127.0.0.1:22 closed (fake)'));
    const { cause } = await closed;
    expect(cause?.code).toBe('ERR_SSH_CONNECTION_LOST');
    expect(conn.state).toBe('closed');
    expect(conn.closedBy).toBe(cause);
    expect(errors).toEqual([]);
    await expect(conn.link()).rejects.toBe(cause);
  });

  it('destroy(err) tears the live transport down at once; idempotent', async () => {
    const { conn, opener } = setup();
    const t = new FakeTransport();
    opener.auto = () => t;
    const link = await conn.link();
    const boom = new SshError('ERR_SSH_ABORTED', 'destroyed (fake)');
    conn.destroy(boom);
    conn.destroy();
    expect(t.destroyed).toBe(true);
    expect(link.signal.reason).toBe(boom);
    expect(conn.closedBy).toBe(boom);
    await expect(conn.link()).rejects.toBe(boom);
  });
});
