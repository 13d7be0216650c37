/**
 * The forward manager: opens and tracks every forward of one client, keeps them across
 * reconnects, and sets up the declared forwards of the client options.
 *
 * @module forward/manager
 */
import { DEFAULTS } from '../defaults.js';
import type ssh2 from 'ssh2';
import type { Link, LinkProvider } from '../connection/link.js';
import { z } from 'zod';
import { SshError } from '../errors.js';
import { durationMsSchema, parseOrThrow, timeoutMsSchema } from '../internal/validate.js';
import { linkLost } from './carry.js';
import { DynamicForward } from './dynamic.js';
import { LocalForward } from './local.js';
import {
  parseForwardOptions,
  type DynamicForwardOptions,
  type ForwardSpec,
  type LocalForwardOptions,
  type RemoteForwardOptions,
} from './options.js';
import type { ForwardEvent, ForwardHandle } from './handles.js';
import { asForwardError, RemoteForward, tcpRouteKey, unixRouteKey, type RemoteContext } from './remote.js';
import { setPortZeroAlias } from '../ssh2/forwarding.js';
import type { ForwardContext, RemoteRetryPolicy } from './types.js';

/** Options of {@link ForwardManager}. Durations in milliseconds. */
export interface ForwardManagerOptions {
  /** Receives every {@link ForwardEvent} (the client re-emits them as `forward`). Errors thrown by it are ignored. */
  emit: (event: ForwardEvent) => void;
  /** How long a connection accepted while the client reconnects waits for the link before it is closed. @default 15000 */
  connectionWaitMs?: number;
  /** Concurrent connections per dynamic (SOCKS) forward; more are closed on accept. @default 1024 */
  maxSocksConnections?: number;
  /** Bound on a SOCKS client's greeting + authentication + request. @default 10000 */
  socksHandshakeTimeoutMs?: number;
  /** Bound on connecting to the local target of a remote forward. @default 10000 */
  localConnectTimeoutMs?: number;
  /**
   * Backoff when re-requesting remote forwards after a reconnect.
   * @default { retries: 12, minDelayMs: 200, maxDelayMs: 5000, factor: 2 }
   */
  remoteRetry?: Partial<RemoteRetryPolicy>;
  /**
   * Default bound on the server's answer to a remote forward request, in ms (a forward's own
   * `timeoutMs` wins). The client passes its `connectTimeoutMs`. @default 20000
   */
  remoteRequestTimeoutMs?: number;
  /**
   * Receives warnings that are not forward state changes, e.g. a server bug that could not be
   * worked around (the client re-emits them as `warning`). Errors thrown by it are ignored.
   */
  warn?: (warning: { keyword: string; message: string }) => void;
}

/** Options of {@link ForwardManager.applyDeclared}. */
export interface ApplyDeclaredOptions {
  /** OpenSSH `ExitOnForwardFailure`: any failure rejects (and nothing opened by the call stays open). */
  exitOnForwardFailure: boolean;
}

/** A count (`maxSocksConnections`, `remoteRetry.retries`): a whole number >= `min`. */
const countSchema = (what: string, min: number): z.ZodNumber =>
  z.number({ error: `expected ${what} as a number` }).int({ error: `expected ${what} as a whole number` }).min(min, { error: `expected ${what} >= ${min}` });

/** One option of the manager (from the client options: `ERR_SSH_CONFIG` naming it). */
function checkOption(name: string, v: number | undefined, dflt: number, schema: z.ZodNumber): number {
  if (v === undefined) return dflt;
  return parseOrThrow(z.object({ [name]: schema }), { [name]: v }, 'forward manager options', 'config')[name] as number;
}

/**
 * Opens and tracks the forwards of one client.
 *
 * Local and dynamic listeners are bound once and stay bound while the client reconnects;
 * remote forwards are requested again on every new link (the provider's `onLink`) on the port
 * they had, with backoff while the dead session may still hold it.
 *
 * @internal The client facade composes it; users call `SshClient.forwardLocal()` etc.
 */
export class ForwardManager {
  readonly #provider: LinkProvider;
  readonly #emit: (event: ForwardEvent) => void;
  readonly #ctx: ForwardContext<ForwardHandle> & RemoteContext;
  readonly #handles = new Set<ForwardHandle>();
  readonly #routes = new Map<string, RemoteForward>();
  readonly #attached = new WeakSet<ssh2.Client>();
  readonly #portZeroWarned = new WeakSet<Link>();
  /** Port-0 aliases set in ssh2's forward table, per client: bind address -> port (0: ambiguous). */
  #aliases = new Map<ssh2.Client, Map<string, number>>();
  readonly #deathHooks = new WeakMap<Link, Set<(cause: SshError) => void>>();
  readonly #unsubscribe: () => void;
  #declared: ForwardHandle[] | undefined;
  #declaredRemote: RemoteForward[] = [];
  #closed = false;
  /** The live link, as last announced by the provider; `undefined` once it died. */
  #live: Link | undefined;

  /**
   * @param provider - the client's link provider.
   * @param options - the event sink and bounds (see {@link ForwardManagerOptions}).
   * @throws {SshError} `ERR_SSH_CONFIG` for a negative or non-integer bound.
   */
  constructor(provider: LinkProvider, options: ForwardManagerOptions) {
    this.#provider = provider;
    this.#emit = options.emit;
    const r = options.remoteRetry ?? {};
    const d = DEFAULTS.forward.remoteRetry;
    this.#ctx = {
      provider,
      connectionWaitMs: checkOption('connectionWaitMs', options.connectionWaitMs, DEFAULTS.forwardConnectionWaitMs, durationMsSchema('connectionWaitMs')),
      maxSocksConnections: checkOption('maxSocksConnections', options.maxSocksConnections, DEFAULTS.forward.maxSocksConnections, countSchema('maxSocksConnections', 1)),
      socksHandshakeTimeoutMs: checkOption('socksHandshakeTimeoutMs', options.socksHandshakeTimeoutMs, DEFAULTS.forward.socksHandshakeTimeoutMs, timeoutMsSchema('socksHandshakeTimeoutMs')),
      localConnectTimeoutMs: checkOption('localConnectTimeoutMs', options.localConnectTimeoutMs, DEFAULTS.forward.localConnectTimeoutMs, timeoutMsSchema('localConnectTimeoutMs')),
      remoteRetry: Object.freeze({
        retries: checkOption('remoteRetry.retries', r.retries, d.retries, countSchema('remoteRetry.retries', 0)),
        minDelayMs: checkOption('remoteRetry.minDelayMs', r.minDelayMs, d.minDelayMs, durationMsSchema('remoteRetry.minDelayMs')),
        maxDelayMs: checkOption('remoteRetry.maxDelayMs', r.maxDelayMs, d.maxDelayMs, durationMsSchema('remoteRetry.maxDelayMs')),
        factor: r.factor !== undefined && r.factor >= 1 ? r.factor : d.factor,
      }),
      remoteRequestTimeoutMs: checkOption('remoteRequestTimeoutMs', options.remoteRequestTimeoutMs, DEFAULTS.forward.remoteRequestTimeoutMs, timeoutMsSchema('remoteRequestTimeoutMs')),
      warn: (w) => {
        try {
          options.warn?.(w);
        } catch {
          // A throwing listener must not break forwarding.
        }
      },
      emit: (ev) => this.#safeEmit(ev),
      onLinkDeath: (link, fn) => this.#onLinkDeath(link, fn),
      attach: (link) => this.#attach(link),
      route: (key, fwd) => {
        if (fwd) this.#routes.set(key, fwd);
        else this.#routes.delete(key);
        this.#syncPortZeroAliases();
      },
      release: (h) => {
        this.#handles.delete(h);
      },
    };
    this.#unsubscribe = provider.onLink((link) => this.#onNewLink(link));
  }

  /**
   * Opens a local forward (ssh(1) `-L`; RFC 4254 section 7.2 `direct-tcpip`, or
   * `direct-streamlocal@openssh.com` for `remotePath`). Binds at once; the link is only needed
   * when a connection arrives.
   *
   * @param opts - `{ localHost = '127.0.0.1', localPort = 0, remoteHost = 'localhost', remotePort }`
   *   or `{ localHost, localPort, remotePath }`.
   * @returns the handle; `localPort` is the bound port.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for invalid options (e.g. a port < 0, > 65535 or not an integer).
   * @throws {SshError} `ERR_SSH_FORWARD` when the local bind fails (cause: EADDRINUSE, EACCES...);
   *   `ERR_SSH_CLOSED` after {@link ForwardManager.closeAll}.
   */
  async forwardLocal(opts: LocalForwardOptions): Promise<LocalForward> {
    const o = parseForwardOptions('local', opts);
    this.#checkOpen();
    return this.#adopt(await LocalForward.open(this.#ctx, o));
  }

  /**
   * Opens a remote forward (ssh(1) `-R`; RFC 4254 section 7.1 `tcpip-forward`, or
   * `streamlocal-forward@openssh.com` for `remotePath`). Resolves once the server accepted it.
   *
   * @param opts - `{ remoteHost = 'localhost', remotePort = 0, localHost = '127.0.0.1', localPort, timeoutMs? }`
   *   or `{ remotePath, localHost, localPort, timeoutMs? }`.
   * @returns the handle; `remotePort` is the port the server bound.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for invalid options.
   * @throws {SshError} `ERR_SSH_FORWARD` when the server refuses (e.g. `AllowTcpForwarding no`,
   *   `PermitListen`, port in use) or does not answer within `timeoutMs` (default: the client's
   *   `connectTimeoutMs`); the link errors of `provider.link()` (`ERR_SSH_TIMEOUT`
   *   after `connectionWaitMs`, `ERR_SSH_CLOSED`...); `ERR_SSH_CONNECTION_LOST`.
   */
  async forwardRemote(opts: RemoteForwardOptions): Promise<RemoteForward> {
    const o = parseForwardOptions('remote', opts);
    this.#checkOpen();
    const link = await this.#provider.link({ timeoutMs: this.#ctx.connectionWaitMs });
    this.#checkOpen();
    const fwd = new RemoteForward(this.#ctx, o);
    this.#handles.add(fwd);
    try {
      await fwd.ensureOn(link, false);
    } catch (err) {
      await fwd.close();
      throw err;
    }
    return fwd;
  }

  /**
   * Opens a dynamic forward (ssh(1) `-D`): a SOCKS5 server (RFC 1928; RFC 1929 when `auth` is given).
   *
   * @param opts - `{ localHost = '127.0.0.1', localPort = 0, auth?: { username, password } }`.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for invalid options.
   * @throws {SshError} `ERR_SSH_FORWARD` when the bind fails; `ERR_SSH_CLOSED` after closeAll.
   */
  async forwardDynamic(opts: DynamicForwardOptions = {}): Promise<DynamicForward> {
    const o = parseForwardOptions('dynamic', opts);
    this.#checkOpen();
    return this.#adopt(await DynamicForward.open(this.#ctx, o));
  }

  /**
   * Sets up the declared forwards (client option `forwards`, ssh_config `LocalForward`,
   * `RemoteForward`, `DynamicForward`) on a fresh `link`, before `connect()` resolves.
   *
   * First successful call: binds the local and dynamic listeners (kept across reconnects) and
   * requests the remote forwards on `link`. Later calls (after a reconnect): requests the
   * remote forwards again on `link` (with backoff while the dead session holds the port;
   * shared with the request the manager starts itself for every new link).
   *
   * With `exitOnForwardFailure` (OpenSSH `ExitOnForwardFailure`), any failure rejects and what
   * this call opened is closed again: on the first call every forward it created, later the
   * remote forwards it re-established on `link` (cancelled on the server; they are requested
   * again on the next link). Without it, a failing forward is reported as an `error` event
   * (a local/dynamic one is dropped; a remote one is kept and retried on the next link).
   *
   * @param specs - validated specs (see `parseForwardSpecs`).
   * @param link - the fresh link.
   * @throws {SshError} `ERR_SSH_FORWARD` naming the failed forward, with its error as `cause`.
   */
  async applyDeclared(specs: readonly ForwardSpec[], link: Link, options: ApplyDeclaredOptions): Promise<void> {
    this.#checkOpen();
    if (this.#declared === undefined) {
      await this.#applyFirst(specs, link, options);
      return;
    }
    const remotes = this.#declaredRemote.filter((f) => !f.closed);
    const results = await Promise.allSettled(remotes.map((f) => f.ensureOn(link, true)));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed < 0 || !options.exitOnForwardFailure) return;
    const first = results[failed] as PromiseRejectedResult;
    const err = asForwardError(first.reason, `declared forward ${remotes[failed]?.toString() ?? ''} could not be set up again`);
    // Nothing half-open: cancel what came up on this link (it will be requested on the next one).
    await Promise.all(remotes.map((f) => f.withdraw(link, err)));
    throw err;
  }

  async #applyFirst(specs: readonly ForwardSpec[], link: Link, options: ApplyDeclaredOptions): Promise<void> {
    const opened: ForwardHandle[] = [];
    const remotes: RemoteForward[] = [];
    for (const spec of specs) {
      try {
        const { type, ...rest } = spec;
        let h: ForwardHandle;
        if (type === 'local') h = await LocalForward.open(this.#ctx, parseForwardOptions('local', rest));
        else if (type === 'dynamic') h = await DynamicForward.open(this.#ctx, parseForwardOptions('dynamic', rest));
        else {
          const r = new RemoteForward(this.#ctx, parseForwardOptions('remote', rest));
          h = r;
          opened.push(r);
          remotes.push(r);
          this.#handles.add(r);
          try {
            await r.ensureOn(link, false);
          } catch (err) {
            if (options.exitOnForwardFailure) throw err;
            continue; // kept, in state 'error' (already emitted); retried on the next link.
          }
          continue;
        }
        opened.push(h);
        h.setLinkUp(this.#live !== undefined && !this.#live.signal.aborted);
        this.#handles.add(h);
      } catch (err) {
        const e = asForwardError(err, `declared ${spec.type} forward could not be set up`);
        if (options.exitOnForwardFailure) {
          await Promise.all(opened.map((h) => h.close()));
          throw e;
        }
        const { type, ...rest } = spec;
        if (type === 'remote') continue;
        const failedHandle =
          type === 'local'
            ? LocalForward.unbound(this.#ctx, parseForwardOptions('local', rest))
            : DynamicForward.unbound(this.#ctx, parseForwardOptions('dynamic', rest));
        this.#safeEmit({ forward: failedHandle, state: 'error', cause: e });
      }
    }
    this.#declared = opened;
    this.#declaredRemote = remotes;
  }

  /** The open forwards, in the order they were opened. */
  list(): ForwardHandle[] {
    return [...this.#handles].filter((h) => !h.closed);
  }

  /** Closes every forward (listeners unbound, remote forwards cancelled) and stops following new links. Idempotent. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    await Promise.all([...this.#handles].map((h) => h.close()));
  }

  #checkOpen(): void {
    if (this.#closed) throw new SshError('ERR_SSH_CLOSED', 'forward manager closed');
  }

  async #adopt<H extends LocalForward | DynamicForward>(h: H): Promise<H> {
    if (this.#closed) {
      await h.close();
      throw new SshError('ERR_SSH_CLOSED', 'forward manager closed');
    }
    h.setLinkUp(this.#live !== undefined && !this.#live.signal.aborted);
    this.#handles.add(h);
    return h;
  }

  /** Local and dynamic forwards follow the link: `up` with it, `waiting` (event `down`) without. */
  #followLink(link: Link): void {
    this.#live = link;
    for (const h of this.#handles) {
      if ((h instanceof LocalForward || h instanceof DynamicForward) && h.setLinkUp(true)) this.#safeEmit({ forward: h, state: 'up' });
    }
    this.#onLinkDeath(link, (cause) => {
      if (this.#live !== link) return;
      this.#live = undefined;
      if (this.#closed) return;
      for (const h of this.#handles) {
        if ((h instanceof LocalForward || h instanceof DynamicForward) && h.setLinkUp(false)) this.#safeEmit({ forward: h, state: 'down', cause });
      }
    });
  }

  #safeEmit(ev: ForwardEvent): void {
    try {
      this.#emit(ev);
    } catch {
      // A throwing listener must not break forwarding.
    }
  }

  #onNewLink(link: Link): void {
    if (this.#closed) return;
    this.#attach(link);
    this.#followLink(link);
    for (const h of this.#handles) {
      if (h instanceof RemoteForward && !h.closed) h.ensureOn(link, true).catch(() => undefined);
    }
  }

  #onLinkDeath(link: Link, fn: (cause: SshError) => void): () => void {
    let hooks = this.#deathHooks.get(link);
    if (!hooks) {
      const set = new Set<(cause: SshError) => void>();
      hooks = set;
      this.#deathHooks.set(link, set);
      // One listener per link (not per connection): hundreds of connections share it.
      link.signal.addEventListener(
        'abort',
        () => {
          const cause = linkLost(link);
          for (const f of [...set]) {
            try {
              f(cause);
            } catch {
              // keep going
            }
          }
          set.clear();
        },
        { once: true },
      );
    }
    if (link.signal.aborted) {
      fn(linkLost(link));
      return () => undefined;
    }
    const set = hooks;
    set.add(fn);
    return () => {
      set.delete(fn);
    };
  }

  /**
   * Keeps ssh2's port-0 aliases (see `ssh2/forwarding.ts`) in line with the forwards that are up
   * after a request for port 0: per link and bind address, one such forward gets its bound port
   * (opens reported for port 0 reach it), several get 0 (opens reach
   * {@link ForwardManager.#portZeroRoute}, which refuses them with a warning).
   */
  #syncPortZeroAliases(): void {
    const want = new Map<ssh2.Client, Map<string, number>>();
    for (const f of this.#routes.values()) {
      const link = f.portZeroLink;
      if (!link || link.signal.aborted) continue;
      let hosts = want.get(link.client);
      if (!hosts) {
        hosts = new Map();
        want.set(link.client, hosts);
      }
      const host = f.remoteHost ?? DEFAULTS.forward.remoteHost;
      hosts.set(host, hosts.has(host) ? 0 : f.remotePort);
    }
    for (const [client, hosts] of this.#aliases) {
      for (const host of hosts.keys()) if (!want.get(client)?.has(host)) setPortZeroAlias(client, host, undefined);
    }
    for (const [client, hosts] of want) {
      for (const [host, port] of hosts) if (this.#aliases.get(client)?.get(host) !== port) setPortZeroAlias(client, host, port);
    }
    this.#aliases = want;
  }

  /**
   * A `forwarded-tcpip` open for port 0 (RFC 4254 section 7.2 says the server reports the port
   * that was connected; asyncssh 2.10 reports the port 0 that was requested): routed to the one
   * forward requested with port 0 and up on `link` (narrowed by bind address when there are
   * several). When that is ambiguous the connection is refused and a `warning` names the bug,
   * once per link.
   */
  #portZeroRoute(link: Link, destIP: string, destPort: number): RemoteForward | undefined {
    if (destPort !== 0) return undefined;
    let candidates = [...this.#routes.values()].filter((f) => f.askedForAnyPortOn(link));
    if (candidates.length > 1) candidates = candidates.filter((f) => f.remoteHost === destIP);
    if (candidates.length === 1) return candidates[0];
    if (!this.#portZeroWarned.has(link)) {
      this.#portZeroWarned.add(link);
      this.#ctx.warn({
        keyword: 'forwarded-tcpip',
        message:
          `the server opened a forwarded-tcpip channel for ${destIP}:0 instead of the port it bound (a server bug, e.g. asyncssh 2.10), ` +
          `and ${candidates.length === 0 ? 'no remote forward' : `${candidates.length} remote forwards`} requested with port 0 could take it: the connection was refused. ` +
          'Request remote forwards on a fixed port on this server, or only one with port 0.',
      });
    }
    return undefined;
  }

  #attach(link: Link): void {
    const client = link.client;
    if (this.#attached.has(client)) return;
    this.#attached.add(client);
    client.on('tcp connection', (info, accept, reject) => {
      const fwd = this.#routes.get(tcpRouteKey(info.destIP, info.destPort)) ?? this.#portZeroRoute(link, info.destIP, info.destPort);
      if (fwd) fwd.incoming(link, accept, reject);
      else if (!link.signal.aborted) reject();
    });
    client.on('unix connection', (info, accept, reject) => {
      const fwd = this.#routes.get(unixRouteKey(info.socketPath));
      if (fwd) fwd.incoming(link, accept, reject);
      else if (!link.signal.aborted) reject();
    });
  }
}
