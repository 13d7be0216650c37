/**
 * Remote forwards (ssh(1) `-R`): the server listens (`tcpip-forward`, RFC 4254 section 7.1, or
 * `streamlocal-forward@openssh.com`, OpenSSH PROTOCOL 2.4) and each connection it accepts is
 * carried back here (`forwarded-tcpip` / `forwarded-streamlocal@openssh.com` channels) to
 * `localHost:localPort`.
 *
 * @module forward/remote
 */
import { DEFAULTS } from '../defaults.js';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import pRetry from 'p-retry';
import { backoffDelay } from '../internal/backoff.js';
import type ssh2 from 'ssh2';
import type { Link } from '../connection/link.js';
import { SshError, isConnectionLost } from '../errors.js';
import { carry, linkLost, Traffic } from './carry.js';
import { fmtHostPort } from './listener.js';
import type { ResolvedRemoteForward } from './options.js';
import type { ForwardContext, ForwardStats } from './types.js';

/** The state of a remote forward. */
export type RemoteForwardState = 'pending' | 'up' | 'down' | 'error' | 'closed';

/**
 * Every allowed transition of a {@link RemoteForward}: `REMOTE_TRANSITIONS[from]` lists the states
 * `from` may move to (one writer, `#setState`, enforces it; test/unit/remote-forward-state.test.ts).
 */
export const REMOTE_TRANSITIONS: Readonly<Record<RemoteForwardState, readonly RemoteForwardState[]>> = Object.freeze({
  // the first request: accepted -> up; refused or unanswered -> error; close() -> closed
  pending: ['up', 'error', 'closed'],
  // the link died or the forward was withdrawn -> down; a request on a newer link accepted (up
  // again, same state) or failed before the old link's death was seen -> error; close() -> closed
  up: ['down', 'up', 'error', 'closed'],
  // requested again on the next link: accepted -> up, failed -> error; close() -> closed
  down: ['up', 'error', 'closed'],
  // tried again on the next link (and every failure is reported again)
  error: ['up', 'error', 'closed'],
  closed: [],
});

/** `true` when `from -> to` is in {@link REMOTE_TRANSITIONS}. */
export function canRemoteTransition(from: RemoteForwardState, to: RemoteForwardState): boolean {
  return REMOTE_TRANSITIONS[from].includes(to);
}

/**
 * The manager's context as a remote forward gets it: a {@link ForwardContext} that also routes the
 * server's incoming connections for the forward's bind address to it.
 *
 * @internal
 */
export interface RemoteContext extends ForwardContext<RemoteForward> {
  /** Routes incoming connections for `key` to `forward`; `undefined` removes the route. */
  route(key: string, forward: RemoteForward | undefined): void;
}

/** How long `close()` waits for the server to answer `cancel-tcpip-forward`. */
const CANCEL_TIMEOUT_MS = 5_000;

interface Attempt {
  readonly link: Link;
  readonly promise: Promise<void>;
}

/** Dispatch key of a TCP remote forward, as ssh2 reports incoming connections (bind address, port). */
export function tcpRouteKey(bindAddr: string, port: number): string {
  return `tcp:${bindAddr}:${port}`;
}

/** Dispatch key of a Unix-socket remote forward. */
export function unixRouteKey(path: string): string {
  return `unix:${path}`;
}

/**
 * A remote forward. The server binds {@link RemoteForward.remoteHost}:{@link RemoteForward.remotePort}
 * (or the Unix socket {@link RemoteForward.remotePath}); connections to it are carried to
 * `localHost:localPort` here. After every reconnect it is requested again on the same port
 * (with backoff while the dead session still holds the port on the server); its
 * {@link RemoteForward.state} follows, and the manager emits `forward` events `down`, `up`
 * (only once the server accepted) or `error`.
 */
export class RemoteForward implements AsyncDisposable {
  /** Always `'remote'`. */
  readonly type = 'remote' as const;
  /** The address the server binds (TCP only). */
  readonly remoteHost: string | undefined;
  /** The Unix socket path the server listens on (stream-local only). */
  readonly remotePath: string | undefined;
  /** Where connections are carried to, on this side. */
  readonly localHost: string;
  /** Port connections are carried to, on this side. */
  readonly localPort: number;

  readonly #ctx: RemoteContext;
  readonly #traffic = new Traffic();
  readonly #closeCtl = new AbortController();
  #port: number;
  /** The port asked for in the request that is (or was last) up on {@link RemoteForward.#upOn}. */
  #askedPort: number | undefined;
  readonly #timeoutMs: number;
  #state: RemoteForwardState = 'pending';
  #current: Attempt | undefined;
  #upOn: Link | undefined;
  #offDeath: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  /** @internal */
  constructor(ctx: RemoteContext, opts: ResolvedRemoteForward) {
    this.#ctx = ctx;
    this.remotePath = opts.remotePath;
    this.remoteHost = opts.remotePath === undefined ? (opts.remoteHost ?? DEFAULTS.forward.remoteHost) : undefined;
    this.#port = opts.remotePath === undefined ? (opts.remotePort ?? 0) : 0;
    this.localHost = opts.localHost;
    this.localPort = opts.localPort;
    this.#timeoutMs = opts.timeoutMs ?? ctx.remoteRequestTimeoutMs;
  }

  /**
   * The port the server bound (the assigned one when 0 was asked, known once it was first
   * accepted; kept across reconnects). 0 for a Unix-socket forward.
   */
  get remotePort(): number {
    return this.#port;
  }

  /**
   * `pending` (first request in flight), `up` (the server accepted it on the live link),
   * `down` (the link died; waiting for the next one), `error` (the last request failed; tried
   * again on the next link), `closed`.
   */
  get state(): RemoteForwardState {
    return this.#state;
  }

  /** `true` once {@link RemoteForward.close} was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Connection and byte counters (see {@link ForwardStats}). */
  stats(): ForwardStats {
    return this.#traffic.stats();
  }

  /**
   * Cancels the forward on the server (`cancel-tcpip-forward` /
   * `cancel-streamlocal-forward@openssh.com`, waiting up to 5 s for the answer), closes every
   * connection and stops re-requesting it. Idempotent; never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const wasUpOn = this.#upOn;
      this.#setState('closed');
      this.#closeCtl.abort(new SshError('ERR_SSH_CLOSED', 'forward closed'));
      this.#down();
      this.#traffic.killAll();
      if (wasUpOn && !wasUpOn.signal.aborted) await this.#cancelOn(wasUpOn);
      this.#ctx.release(this);
    })();
    return this.#closing;
  }

  /** Same as {@link RemoteForward.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** A short description, e.g. `remote localhost:8080 -> 127.0.0.1:3000`. */
  toString(): string {
    const from = this.remotePath ?? fmtHostPort(this.remoteHost ?? DEFAULTS.forward.remoteHost, this.#port);
    return `remote ${from} -> ${fmtHostPort(this.localHost, this.localPort)}`;
  }

  /**
   * Makes sure the forward is requested on `link`: starts a request (retried with backoff when
   * `retry` is set) unless one for this link exists already, and resolves once the server
   * accepted it.
   *
   * @throws {SshError} `ERR_SSH_FORWARD` (server refusal, cause: ssh2's error),
   *   `ERR_SSH_CONNECTION_LOST` (the link died first), `ERR_SSH_CLOSED` (forward closed).
   * @internal
   */
  ensureOn(link: Link, retry: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new SshError('ERR_SSH_CLOSED', 'forward closed'));
    if (this.#current?.link === link) return this.#current.promise;
    const promise = this.#establish(link, retry);
    const attempt: Attempt = { link, promise };
    this.#current = attempt;
    promise.catch((err: unknown) => {
      if (this.#current !== attempt || this.closed || link.signal.aborted) return;
      this.#setState('error', asForwardError(err));
    });
    return promise;
  }

  async #establish(link: Link, retry: boolean): Promise<void> {
    this.#ctx.attach(link);
    const scope = new AbortController();
    const onAbort = function (this: AbortSignal): void {
      scope.abort(this.reason);
    };
    link.signal.addEventListener('abort', onAbort, { once: true });
    this.#closeCtl.signal.addEventListener('abort', onAbort, { once: true });
    if (link.signal.aborted) scope.abort(link.signal.reason);
    try {
      const policy = this.#ctx.remoteRetry;
      // The delay is the library's one backoff (internal/backoff.ts, unref'd); p-retry counts and filters.
      const request = async (n: number): Promise<void> => {
        if (n > 1) await delay(backoffDelay(n - 1, policy), undefined, { signal: scope.signal, ref: false });
        await this.#requestOn(link);
      };
      await pRetry(request, {
        retries: retry ? policy.retries : 0,
        minTimeout: 0,
        maxTimeout: 0,
        factor: 1,
        signal: scope.signal,
        // Only a refusal by the server is worth retrying (the dead session may hold the port);
        // a request the server never answered is not.
        shouldRetry: ({ error }) => error instanceof SshError && error.code === 'ERR_SSH_FORWARD' && !unanswered.has(error),
      });
    } catch (err) {
      if (this.closed) throw new SshError('ERR_SSH_CLOSED', 'forward closed');
      if (link.signal.aborted) throw linkLost(link);
      throw err;
    } finally {
      link.signal.removeEventListener('abort', onAbort);
      this.#closeCtl.signal.removeEventListener('abort', onAbort);
    }
    if (this.closed) {
      if (!link.signal.aborted) await this.#cancelOn(link);
      throw new SshError('ERR_SSH_CLOSED', 'forward closed');
    }
    if (link.signal.aborted) throw linkLost(link);
    this.#up(link);
  }

  /**
   * One `tcpip-forward` / `streamlocal-forward@openssh.com` request, bounded by the forward's
   * `timeoutMs`: a server that never answers (tinysshd replies UNIMPLEMENTED, which ssh2 does
   * not match to the request) fails it with `ERR_SSH_FORWARD`. Should the server accept it
   * after all, the late forward is cancelled at once.
   */
  #requestOn(link: Link): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const client = link.client;
      const asked = this.#port;
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        const err = new SshError(
          'ERR_SSH_FORWARD',
          `the server did not answer the request for ${this.toString()} within ${this.#timeoutMs} ms (it may not support remote forwarding)`,
        );
        unanswered.add(err);
        reject(err);
      }, this.#timeoutMs);
      timer.unref();
      const done = (err: Error | null | undefined, port?: number): void => {
        if (settled) {
          // Answered after the timeout: do not leave a forward bound on the server.
          if (!err && !link.signal.aborted) {
            const bound = port !== undefined && port > 0 ? port : asked;
            try {
              if (this.remotePath !== undefined) client.openssh_unforwardInStreamLocal(this.remotePath, () => undefined);
              else client.unforwardIn(this.remoteHost ?? DEFAULTS.forward.remoteHost, bound, () => undefined);
            } catch {
              // the link is going away: nothing to cancel
            }
          }
          return;
        }
        settled = true;
        clearTimeout(timer);
        if (err) {
          const lost = link.signal.aborted || isConnectionLost(err);
          reject(
            lost
              ? new SshError('ERR_SSH_CONNECTION_LOST', `connection lost while requesting ${this.toString()}`, { cause: err })
              : new SshError('ERR_SSH_FORWARD', `the server refused ${this.toString()}: ${err.message}`, { cause: err }),
          );
          return;
        }
        this.#askedPort = asked;
        if (port !== undefined && port > 0) this.#port = port;
        resolve();
      };
      try {
        if (this.remotePath !== undefined) client.openssh_forwardInStreamLocal(this.remotePath, (err) => done(err));
        else client.forwardIn(this.remoteHost ?? DEFAULTS.forward.remoteHost, asked, (err, port) => done(err, port));
      } catch (err) {
        settled = true;
        clearTimeout(timer);
        reject(new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  /**
   * Whether this TCP forward is up on `link` after a request for port 0 (the server picked the
   * port): the one forward that port-0 `forwarded-tcpip` opens can belong to.
   *
   * @internal
   */
  askedForAnyPortOn(link: Link): boolean {
    return this.remotePath === undefined && this.#upOn === link && this.#askedPort === 0;
  }

  /**
   * The link this TCP forward is up on after a request for port 0, else `undefined`.
   *
   * @internal
   */
  get portZeroLink(): Link | undefined {
    return this.remotePath === undefined && this.#askedPort === 0 ? this.#upOn : undefined;
  }

  /**
   * The one writer of {@link RemoteForward.state}: checks `next` against
   * {@link REMOTE_TRANSITIONS} and emits the manager's `forward` event for `up`, `down` and
   * `error` (every time, also when the state stays `error` or `up`).
   *
   * @throws Error "internal: illegal remote forward transition" for a transition not in the table (a bug).
   */
  #setState(next: RemoteForwardState, cause?: SshError): void {
    const previous = this.#state;
    if (!canRemoteTransition(previous, next)) throw new Error(`internal: illegal remote forward transition ${previous} -> ${next}`);
    this.#state = next;
    if (next === 'up') this.#ctx.emit({ forward: this, state: 'up' });
    else if (next === 'down' || next === 'error') this.#ctx.emit({ forward: this, state: next, ...(cause ? { cause } : {}) });
  }

  #routeKey(): string {
    return this.remotePath !== undefined ? unixRouteKey(this.remotePath) : tcpRouteKey(this.remoteHost ?? DEFAULTS.forward.remoteHost, this.#port);
  }

  #up(link: Link): void {
    this.#upOn = link;
    this.#ctx.route(this.#routeKey(), this);
    this.#offDeath = this.#ctx.onLinkDeath(link, (cause) => {
      if (this.#upOn !== link) return;
      this.#down();
      this.#setState('down', cause);
    });
    this.#setState('up');
  }

  #down(): void {
    this.#offDeath?.();
    this.#offDeath = undefined;
    if (this.#upOn) this.#ctx.route(this.#routeKey(), undefined);
    this.#upOn = undefined;
  }

  /**
   * Takes the forward down on `link` (cancelled on the server) without closing it: it is
   * requested again on the next link. Emits `down` with `cause` when it was up there.
   *
   * @internal
   */
  async withdraw(link: Link, cause: SshError): Promise<void> {
    if (this.#upOn !== link) return;
    this.#down();
    this.#setState('down', cause);
    if (!link.signal.aborted) await this.#cancelOn(link);
  }

  #cancelOn(link: Link): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CANCEL_TIMEOUT_MS);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      try {
        if (this.remotePath !== undefined) link.client.openssh_unforwardInStreamLocal(this.remotePath, done);
        else link.client.unforwardIn(this.remoteHost ?? DEFAULTS.forward.remoteHost, this.#port, done);
      } catch {
        done();
      }
    });
  }

  /**
   * An incoming `forwarded-tcpip` / `forwarded-streamlocal@openssh.com` channel open for this
   * forward: connects to `localHost:localPort` first and accepts the channel once connected
   * (rejects it, as OpenSSH does, when the local connect fails).
   *
   * @internal
   */
  incoming(link: Link, accept: () => ssh2.Channel, reject: () => void): void {
    if (this.closed || this.#upOn !== link) {
      if (!link.signal.aborted) reject();
      return;
    }
    const sock = net.connect({ host: this.localHost, port: this.localPort, allowHalfOpen: true, noDelay: true });
    sock.on('error', () => undefined);
    const tracked = this.#traffic.add(sock);
    const timer = setTimeout(() => sock.destroy(), this.#ctx.localConnectTimeoutMs);
    timer.unref();
    let connected = false;
    sock.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      if (this.closed || link.signal.aborted) {
        sock.destroy();
        if (!link.signal.aborted) reject();
        return;
      }
      carry(this.#ctx, link, sock, accept(), tracked);
    });
    sock.once('close', () => {
      clearTimeout(timer);
      if (!connected && !link.signal.aborted) reject();
    });
  }
}

/** `ERR_SSH_FORWARD` errors of requests the server never answered (not retried). */
const unanswered = new WeakSet<SshError>();

/** Wraps anything into an `ERR_SSH_FORWARD` SshError (an SshError of that code is kept). */
export function asForwardError(err: unknown, what?: string): SshError {
  if (err instanceof SshError && err.code === 'ERR_SSH_FORWARD' && what === undefined) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new SshError('ERR_SSH_FORWARD', what === undefined ? msg : `${what}: ${msg}`, { cause: err });
}
