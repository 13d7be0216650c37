import { EventEmitter } from 'eventemitter3';
import { setMaxListeners } from 'node:events';
import pRetry from 'p-retry';
import type { Duplex } from 'node:stream';
import type ssh2 from 'ssh2';
import { SshError, isRetryable } from '../errors.js';
import { backoffDelay } from '../internal/backoff.js';
import type { ResolvedOptions } from '../options.js';
import { abortReason, operationScope, sleep } from '../internal/cancel.js';
import { canTransition, type ConnectionState } from './state.js';
import { Keepalive, systemClock, type Clock } from './keepalive.js';
import { connectAttempt, isUnresolvedName, type ConnectedTransport, type HostKeyCheck } from './attempt.js';
import type { ConnectOptions, Link, LinkProvider, LinkWaitOptions } from './link.js';
import { sendKeepaliveProbe } from '../ssh2/index.js';
import { publish, DIAGNOSTICS_CHANNELS as DC } from '../internal/diagnostics.js';
import { silentLogger, type Logger } from '../internal/logger.js';

/** Events of the logical connection (re-emitted by {@link SshClient}). */
export interface ConnectionEvents {
  /** Every state change, written in one place. */
  state: [change: { state: ConnectionState; previous: ConnectionState }];
  /** Authenticated and usable (after the first connect and after every reconnect). */
  ready: [];
  /** The live link was lost; `cause` says why (e.g. `ERR_SSH_KEEPALIVE_TIMEOUT`, `ERR_SSH_CONNECTION_LOST`). */
  disconnect: [info: { cause: SshError }];
  /**
   * A reconnect attempt is scheduled `delayMs` from now; `cause` is the last failure. Also emitted
   * (state `connecting`) before each retry of a first connect with `retryFirstConnect` /
   * `connect({ retry: true })`.
   */
  reconnecting: [info: { attempt: number; delayMs: number; cause: SshError }];
  /** A keep-alive probe was answered after `rttMs` milliseconds. */
  keepalive: [info: { rttMs: number }];
  /** A fatal error: the client gave up and is now `closed`. Safe without a listener. */
  error: [error: SshError];
  /** The client reached `closed`; `cause` is set when it closed because of an error. */
  close: [info: { cause?: SshError }];
  /**
   * A failover list (`host: [...]`) moved to another entry: the link is now ready on `to` (the
   * entry as given, e.g. an ssh_config alias) instead of `from` (the entry in use before, or the
   * first entry for the first connect); `cause` is the failure that made it move (for a planned
   * failback, an `ERR_SSH_CONNECTION_LOST` saying so). `failback` is `true` when the move is back
   * to the first entry: planned (`failbackIntervalMs`), a connect from `idle` (the list is tried in
   * order again), or the reconnect walk wrapping round.
   */
  failover: [info: { from: string; to: string; cause: SshError; failback: boolean }];
}

/** Hooks the facade gives the connection layer. */
export interface ConnectionHooks {
  /** Host-key check for an attempt, made from that attempt's settings. */
  hostKeyCheckFor: (o: ResolvedOptions) => HostKeyCheck;
  /**
   * Resolves the settings of one attempt for entry `hostIndex` of the failover list (ssh_config
   * is read again each time).
   */
  resolveAttempt?: (hostIndex: number) => Promise<ResolvedOptions>;
  /** Entries of the failover list this connection moves through (default 1: only entry 0). */
  hostCount?: number;
  /**
   * Runs on each fresh link before it is announced `ready` (e.g. declared forwards with
   * ExitOnForwardFailure). A rejection fails the attempt (the link is torn down).
   */
  beforeReady?: ((link: Link, o: ResolvedOptions) => Promise<void>) | undefined;
  /**
   * Runs during graceful `close()` before the transport is ended (drain channels, close
   * features); `link` is the live link, still usable for clean-up work (e.g. killing commands).
   */
  beforeEnd?: (deadlineMs: number, link: Link) => Promise<void>;
  /** Provides a transport stream (ProxyJump) instead of a direct TCP connection; `undefined` for direct. */
  transport?: (o: ResolvedOptions, signal: AbortSignal) => Promise<Duplex | undefined>;
  clock?: Clock;
  /** The object diagnostics_channel messages are about (the SshClient). */
  owner?: object;
  /** Where lifecycle events are logged (already redacting). */
  logger?: Logger;
  /**
   * Idle persist (`idleTimeoutMs`): `true` while the link is in use (a session channel open or
   * waited for, a forward listening). Without it the link never ends for idleness.
   */
  isBusy?: () => boolean;
  /** Failback (`failbackIntervalMs`): `true` while an operation runs on the link (a move would break it). */
  isRunning?: () => boolean;
}

/** Keep-alive round trips over the last 64 answered probes, in ms. */
export interface RttSummary {
  count: number;
  lastMs: number | undefined;
  minMs: number | undefined;
  maxMs: number | undefined;
  meanMs: number | undefined;
  p50Ms: number | undefined;
  p90Ms: number | undefined;
}

/** Probes kept for the RTT summary. */
export const RTT_WINDOW = 64;

function summarize(values: readonly number[]): RttSummary {
  if (values.length === 0) return { count: 0, lastMs: undefined, minMs: undefined, maxMs: undefined, meanMs: undefined, p50Ms: undefined, p90Ms: undefined };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    count: values.length,
    lastMs: values[values.length - 1],
    minMs: sorted[0],
    maxMs: sorted[sorted.length - 1],
    meanMs: values.reduce((a, b) => a + b, 0) / values.length,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
  };
}

interface LiveLink {
  link: Link;
  ctl: AbortController;
  keepalive: Keepalive | undefined;
  sock: Duplex;
  since: number;
  bytesIn: number;
}

/** Ends an ssh2 client with SSH_MSG_DISCONNECT; destroys it and its socket after 1 s at most. */
function endGracefully(client: ssh2.Client, sock: Duplex): void {
  const t = setTimeout(() => {
    client.destroy();
    sock.destroy();
  }, 1_000);
  t.unref();
  client.once('close', () => {
    clearTimeout(t);
    sock.destroy();
  });
  client.end();
}

interface Waiter {
  resolve: (link: Link) => void;
  reject: (err: SshError) => void;
}


/**
 * One logical connection: makes a fresh ssh2 `Client` per attempt, watches it with our own
 * keep-alive, reconnects with jittered exponential backoff (p-retry) and hands out {@link Link}s.
 *
 * @internal The public face is {@link SshClient}.
 */
export class Connection extends EventEmitter<ConnectionEvents> implements LinkProvider {
  #state: ConnectionState = 'idle';
  #epoch = 0;
  #live: LiveLink | undefined;
  #waiters = new Set<Waiter>();
  #fatal: SshError | undefined;
  /** Why the client reached `closed` (the fatal error, or ERR_SSH_CLOSED for close()/destroy()). */
  #closedBy: SshError | undefined;
  /** The settings of the latest attempt (after ssh_config): the host, port and user really used. */
  #current: ResolvedOptions;
  /** `true` once an attempt resolved its settings (ssh_config read). */
  #resolved = false;
  #lifetime = new AbortController();
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #linkListeners = new Set<(link: Link) => void>();
  #reconnects = 0;
  #lastRttMs: number | undefined;
  #lastDisconnect: SshError | undefined;
  /** The latest failed attempt or lost link (for timeout messages). */
  #lastFailure: SshError | undefined;
  #disconnects = 0;
  #rtts: number[] = [];
  #bytesIn = 0;
  #bytesOut = 0;
  /** A first connect in progress should follow the reconnect policy (retryFirstConnect / connect({ retry })). */
  #firstRetry = false;
  /** Idle persist: clock time of the last use seen, the pending check, whether the last check saw use. */
  #lastUse = 0;
  #idleTimer: unknown;
  #wasBusy = false;
  /** Wall-clock time the link was ended by idle persist (state `idle`), else undefined. */
  #idleSince: number | undefined;
  /** Failover: the entry tried last / in use, and the entry of the last ready link. */
  #hostIndex = 0;
  #readyIndex: number | undefined;
  readonly #hostCount: number;
  /** Failback: the pending probe/switch timer; `true` once the first entry answered a probe. */
  #failbackTimer: unknown;
  #failbackReady = false;
  #failingBack = false;
  readonly #owner: object;
  readonly #log: Logger;
  readonly #o: ResolvedOptions;
  readonly #hooks: ConnectionHooks;
  readonly #clock: Clock;

  constructor(options: ResolvedOptions, hooks: ConnectionHooks) {
    super();
    setMaxListeners(0, this.#lifetime.signal);
    this.#o = options;
    this.#current = options;
    this.#hooks = hooks;
    this.#hostCount = Math.max(1, hooks.hostCount ?? 1);
    this.#clock = hooks.clock ?? systemClock;
    this.#owner = hooks.owner ?? this;
    this.#log = hooks.logger ?? silentLogger;
  }

  /** The current state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * The settings of the latest connect attempt, after ssh_config resolution (HostName, Port,
   * User...): what the client really connects to. The client's own options before the first attempt.
   */
  get effective(): ResolvedOptions {
    return this.#current;
  }

  /** The failover-list entry in use (or being tried while connecting), 0 for the first. */
  get hostIndex(): number {
    return this.#hostIndex;
  }

  /** When idle persist (`idleTimeoutMs`) ended the link, while the state is still `idle`; else `undefined`. */
  get idleSince(): Date | undefined {
    return this.#state === 'idle' && this.#idleSince !== undefined ? new Date(this.#idleSince) : undefined;
  }

  /** Why the client reached `closed`: the fatal error, or `ERR_SSH_CLOSED` after close()/destroy(); `undefined` before. */
  get closedBy(): SshError | undefined {
    return this.#closedBy;
  }

  /** Figures for `health()`. */
  stats(): {
    connectedSince: Date | undefined;
    reconnects: number;
    disconnects: number;
    lastKeepaliveRttMs: number | undefined;
    keepaliveRtt: RttSummary;
    lastDisconnectCause: SshError | undefined;
    bytesIn: number;
    bytesOut: number;
  } {
    const live = this.#live;
    const sockOut = live ? ((live.sock as { bytesWritten?: number }).bytesWritten ?? 0) : 0;
    return {
      connectedSince: live && this.#state === 'ready' ? new Date(live.since) : undefined,
      reconnects: this.#reconnects,
      disconnects: this.#disconnects,
      lastKeepaliveRttMs: this.#lastRttMs,
      keepaliveRtt: summarize(this.#rtts),
      lastDisconnectCause: this.#lastDisconnect,
      bytesIn: this.#bytesIn + (live ? live.bytesIn : 0),
      bytesOut: this.#bytesOut + sockOut,
    };
  }

  /** The only writer of the state: checks the transition table and emits `state`. */
  #setState(next: ConnectionState): void {
    const previous = this.#state;
    if (previous === next) return;
    if (!canTransition(previous, next)) {
      throw new Error(`internal: illegal state transition ${previous} -> ${next}`);
    }
    this.#state = next;
    const c = this.#current;
    // Before the first attempt resolved ssh_config, only the alias is known: do not log a guess.
    const where = this.#resolved ? { host: c.host, port: c.port, username: c.username } : { alias: c.alias };
    this.#log.info({ state: next, previous, ...where }, `ssh-tether: ${previous} -> ${next}`);
    publish(DC.state, () => ({ client: this.#owner, state: next, previous }));
    this.emit('state', { state: next, previous });
  }

  /**
   * Connects if idle and resolves once authenticated. Resolves at once when ready; waits while
   * reconnecting.
   *
   * @throws {SshError} the attempt's error (see {@link connectAttempt}); `ERR_SSH_CLOSED` after close.
   */
  async connect(options: ConnectOptions = {}): Promise<void> {
    const retry = options.retry ?? this.#o.retryFirstConnect;
    // With retry, the wait is bounded by the reconnect policy (or the caller), as autossh waits.
    await this.#wait({ signal: options.signal, timeoutMs: options.timeoutMs }, retry, retry);
  }

  /** {@inheritDoc LinkProvider.link} */
  link(options: LinkWaitOptions = {}): Promise<Link> {
    return this.#wait(options, this.#o.retryFirstConnect, false);
  }

  #wait(options: LinkWaitOptions, retry: boolean, unbounded: boolean): Promise<Link> {
    const state = this.#state;
    if (state === 'ready' && this.#live) {
      this.#lastUse = this.#clock.now();
      return Promise.resolve(this.#live.link);
    }
    if (state === 'closed' || state === 'closing') {
      return Promise.reject(this.#fatal ?? new SshError('ERR_SSH_CLOSED', 'the client is closed'));
    }
    // The client-wide bound (operationTimeoutMs) applies when the caller gave no timeoutMs.
    const defaultMs = !unbounded && options.timeoutMs === undefined && this.#o.operationTimeoutMs > 0 ? this.#o.operationTimeoutMs : undefined;
    const scope = operationScope(defaultMs === undefined ? options : { signal: options.signal, timeoutMs: defaultMs }, 'waiting for the connection');
    if (scope.signal.aborted) {
      scope.dispose();
      return Promise.reject(abortReason(scope.signal));
    }
    const reason = (): SshError => {
      const e = abortReason(scope.signal, 'waiting for the connection');
      if (defaultMs === undefined || e.code !== 'ERR_SSH_TIMEOUT') return e;
      const c = this.#current;
      const last = this.#lastFailure;
      return new SshError(
        'ERR_SSH_TIMEOUT',
        `no connection to ${c.host}:${c.port} within operationTimeoutMs (${defaultMs} ms)${last ? `; last failure: ${last.message}` : ''}`,
        last ? { cause: last } : {},
      );
    };
    const p = new Promise<Link>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (l) => {
          cleanup();
          resolve(l);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
      const onAbort = (): void => waiter.reject(reason());
      const cleanup = (): void => {
        this.#waiters.delete(waiter);
        scope.signal.removeEventListener('abort', onAbort);
        scope.dispose();
      };
      scope.signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
    if (state === 'idle' || state === 'connecting') this.#startFirstConnect(retry);
    return p;
  }

  /** {@inheritDoc LinkProvider.onLink} */
  onLink(listener: (link: Link) => void): () => void {
    this.#linkListeners.add(listener);
    return () => {
      this.#linkListeners.delete(listener);
    };
  }

  /** Starts a connect from `idle` (or asks the running one to follow the reconnect policy). */
  #startFirstConnect(retry: boolean): void {
    if (retry) this.#firstRetry = true;
    if (this.#connecting || this.#state !== 'idle') return;
    this.#lastFailure = undefined; // a fresh connect: failures of an earlier link are not its cause
    this.#setState('connecting');
    this.#connecting = this.#firstConnect().finally(() => {
      this.#connecting = undefined;
      this.#firstRetry = false;
    });
  }

  /**
   * The connect from `idle`: one attempt, or (retryFirstConnect / connect({ retry })) attempts
   * under the reconnect policy while retryable failures last and someone still waits. A retryable
   * failure that is not retried goes back to `idle`; a fatal one (auth, host key, key, config)
   * ends in `closed`.
   */
  async #firstConnect(): Promise<void> {
    const lifetime = this.#lifetime.signal;
    let attempt = 0;
    for (;;) {
      // A failover list is tried in order; a fatal error on any entry stops (never a reason to move on).
      let e: SshError | undefined;
      for (let i = 0; i < this.#hostCount; i++) {
        try {
          await this.#attempt(i);
          return;
        } catch (err) {
          e = err instanceof SshError ? err : new SshError('ERR_SSH_CONNECT', String(err), { cause: err });
          if (this.#state !== 'connecting') return; // closed meanwhile
          this.#lastFailure = e;
          if (!isRetryable(e)) break;
        }
      }
      if (e === undefined) return;
      const cause = e;
      const policy = this.#o.reconnect;
      const retryable = isRetryable(e);
      if (retryable && this.#firstRetry && policy !== false && attempt < policy.retries && this.#waiters.size > 0) {
        attempt += 1;
        const delayMs = this.#delayFor(attempt);
        this.#log.info({ attempt, delayMs, code: e.code }, 'ssh-tether: first connect failed, retrying');
        publish(DC.reconnecting, () => ({ client: this.#owner, attempt, delayMs, cause }));
        this.emit('reconnecting', { attempt, delayMs, cause });
        try {
          await sleep(delayMs, lifetime);
        } catch {
          return; // closed or destroyed meanwhile (waiters already rejected)
        }
        if (this.#state !== 'connecting') return;
        if (this.#waiters.size > 0) continue;
        // Everyone who waited gave up (timeoutMs, signal): stop instead of retrying for nobody.
        this.#setState('idle');
        return;
      }
      if (retryable) {
        this.#setState('idle');
      } else {
        this.#fatal = e;
        this.#closedBy = e;
        this.#setState('closed');
        this.#lifetime.abort(e);
        this.emit('error', e);
        this.emit('close', { cause: e });
      }
      this.#rejectWaiters(e);
      return;
    }
  }

  #rejectWaiters(err: SshError): void {
    for (const w of [...this.#waiters]) w.reject(err);
  }

  /** One connect attempt to failover entry `hostIndex`; on success installs the link and moves to `ready`. */
  async #attempt(hostIndex = this.#hostIndex): Promise<void> {
    const epoch = ++this.#epoch;
    const lifetime = this.#lifetime.signal;
    let keepalive: Keepalive | undefined;
    const started = performance.now();
    this.#hostIndex = hostIndex;
    const o = this.#hooks.resolveAttempt ? await this.#hooks.resolveAttempt(hostIndex) : this.#o;
    this.#current = o;
    this.#resolved = true;
    lifetime.throwIfAborted();
    let bytesIn = 0;
    // Set once the link exists; the data callback below runs before that too.
    const current: { live?: LiveLink } = {};
    let transport;
    try {
      const sock = this.#hooks.transport ? await this.#hooks.transport(o, lifetime) : undefined;
      transport = await connectAttempt(o, {
        hostKeyCheck: this.#hooks.hostKeyCheckFor(o),
        signal: lifetime,
        ...(sock ? { sock } : {}),
        onData: (chunk) => {
          bytesIn += chunk.length;
          if (current.live) current.live.bytesIn = bytesIn;
          keepalive?.received();
        },
        debug: o.debugProtocol ? (line: string) => this.#log.debug({ host: o.host, port: o.port }, line) : undefined,
      });
    } catch (err) {
      if (err instanceof SshError) this.#lastFailure = err;
      this.#log.warn({ host: o.host, port: o.port, username: o.username, err }, 'ssh-tether: connect attempt failed');
      publish(DC.connectError, () => ({ client: this.#owner, host: o.host, port: o.port, error: err }));
      throw err;
    }
    const { client } = transport;
    if (epoch !== this.#epoch || lifetime.aborted) {
      client.destroy();
      throw abortReason(lifetime, 'connect');
    }
    const ctl = new AbortController();
    // Every operation on this link listens to its signal: many at once is normal, not a leak.
    setMaxListeners(0, ctl.signal);
    const link: Link = { client, epoch, signal: ctl.signal };
    const thisLive: LiveLink = { link, ctl, keepalive: undefined, sock: transport.sock, since: Date.now(), bytesIn };
    current.live = thisLive;
    let lostCause: SshError | undefined;
    client.on('error', (err: Error) => {
      lostCause ??= new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${err.message}`, { cause: err });
    });
    client.on('close', () => {
      this.#lost(thisLive, lostCause ?? new SshError('ERR_SSH_CONNECTION_LOST', `connection to ${o.host}:${o.port} closed`));
    });
    if (o.keepaliveIntervalMs > 0) {
      keepalive = new Keepalive(
        o.keepaliveIntervalMs,
        o.keepaliveCountMax,
        {
          sendProbe: (onReply) => {
            sendKeepaliveProbe(client, onReply);
          },
          onRtt: (rttMs) => {
            if (this.#live !== thisLive) return;
            this.#lastRttMs = rttMs;
            this.#rtts.push(rttMs);
            if (this.#rtts.length > RTT_WINDOW) this.#rtts.shift();
            publish(DC.keepalive, () => ({ client: this.#owner, rttMs }));
            this.emit('keepalive', { rttMs });
          },
          onDead: (missed, sendFailure) => {
            const cause =
              sendFailure ??
              new SshError(
                'ERR_SSH_KEEPALIVE_TIMEOUT',
                `no packet from ${o.host}:${o.port} for ${o.keepaliveIntervalMs * (missed + 1)} ms (${missed} keep-alive probes unanswered)`,
              );
            this.#lost(thisLive, cause);
          },
        },
        this.#clock,
      );
      thisLive.keepalive = keepalive;
    }
    this.#live = thisLive;
    if (this.#hooks.beforeReady) {
      try {
        await this.#hooks.beforeReady(link, o);
      } catch (err) {
        this.#live = undefined;
        keepalive?.stop();
        ctl.abort(err instanceof SshError ? err : new SshError('ERR_SSH_CONNECTION_LOST', 'setup failed', { cause: err }));
        client.destroy();
        throw err;
      }
      if (this.#live !== thisLive || lifetime.aborted) throw abortReason(lifetime, 'connect');
    }
    this.#idleSince = undefined;
    this.#setState('ready');
    this.#lastUse = this.#clock.now();
    this.#wasBusy = false;
    this.#armIdle(this.#o.idleTimeoutMs);
    const fromIndex = this.#readyIndex ?? 0;
    this.#readyIndex = hostIndex;
    const failback = this.#failingBack;
    this.#failingBack = false;
    this.#failbackReady = false;
    this.#armFailback(this.#o.failbackIntervalMs);
    if (fromIndex !== hostIndex) {
      const hosts = this.#o.hosts;
      const from = hosts[fromIndex] ?? '';
      const to = hosts[hostIndex] ?? '';
      const cause = this.#lastFailure ?? new SshError('ERR_SSH_CONNECT', `a new connect tried the failover list in order: ${to} answered first`);
      this.#log.warn({ from, to, code: cause.code, failback }, `ssh-tether: ${failback ? 'failback' : 'failover'} from ${from} to ${to}`);
      // Any move to the first entry is a move back: the planned one (failbackIntervalMs), a
      // connect from `idle` (it tries the list in order), or the reconnect walk wrapping round.
      this.emit('failover', { from, to, cause, failback: hostIndex === 0 });
    }
    const durationMs = performance.now() - started;
    this.#log.info({ host: o.host, port: o.port, username: o.username, alias: o.alias, durationMs }, 'ssh-tether: connected');
    publish(DC.connect, () => ({ client: this.#owner, host: o.host, port: o.port, durationMs }));
    this.emit('ready');
    for (const l of [...this.#linkListeners]) {
      try {
        l(link);
      } catch {
        // a listener's failure is its own business
      }
    }
    for (const w of [...this.#waiters]) {
      if (this.#live !== thisLive) break;
      w.resolve(link);
    }
  }

  /** The live link died. Ignores links that are no longer current (attempt epoch). */
  #lost(live: LiveLink, cause: SshError): void {
    if (this.#live !== live) return;
    this.#live = undefined;
    this.#clearIdle();
    this.#clearFailback();
    live.keepalive?.stop();
    const lost =
      cause.code === 'ERR_SSH_CONNECTION_LOST' ? cause : new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${cause.message}`, { cause });
    live.ctl.abort(lost);
    live.link.client.destroy();
    this.#bytesIn += live.bytesIn;
    this.#bytesOut += (live.sock as { bytesWritten?: number }).bytesWritten ?? 0;
    live.sock.destroy();
    this.#lastDisconnect = cause;
    this.#lastFailure = cause;
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#disconnects += 1;
    this.#log.warn({ host: this.#current.host, port: this.#current.port, code: cause.code, cause: cause.message }, 'ssh-tether: connection lost');
    publish(DC.disconnect, () => ({ client: this.#owner, cause }));
    this.emit('disconnect', { cause });
    if (this.#state !== 'ready') return;
    if (this.#o.reconnect === false) {
      this.#fatal = lost;
      this.#closedBy = lost;
      this.#setState('closed');
      this.#lifetime.abort(lost);
      this.#rejectWaiters(lost);
      this.emit('close', { cause: lost });
      return;
    }
    this.#setState('reconnecting');
    void this.#reconnectLoop(cause);
  }

  #clearIdle(): void {
    if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  /** Schedules the idle-persist check in `ms` (only with idleTimeoutMs and an isBusy hook). */
  #armIdle(ms: number): void {
    this.#clearIdle();
    if (this.#o.idleTimeoutMs <= 0 || !this.#hooks.isBusy) return;
    this.#idleTimer = this.#clock.setTimeout(() => {
      this.#idleTimer = undefined;
      this.#idleCheck();
    }, Math.max(0, ms));
  }

  /**
   * Idle persist: ends the link once it has been unused for idleTimeoutMs. While in use it looks
   * again every min(idleTimeoutMs, 1 s); the first check that finds it unused starts the count
   * (so the link ends idleTimeoutMs to idleTimeoutMs + 1 s after its last use, never earlier).
   */
  #idleCheck(): void {
    const live = this.#live;
    if (this.#state !== 'ready' || !live) return;
    const ms = this.#o.idleTimeoutMs;
    const now = this.#clock.now();
    if (this.#hooks.isBusy?.() === true) {
      this.#wasBusy = true;
      this.#lastUse = now;
      this.#armIdle(Math.min(ms, 1_000));
      return;
    }
    if (this.#wasBusy) {
      this.#wasBusy = false;
      this.#lastUse = now;
    }
    const left = this.#lastUse + ms - now;
    if (left > 0) {
      this.#armIdle(left);
      return;
    }
    this.#idleEnd(live, ms);
  }

  /** Ends an unused link gracefully (SSH_MSG_DISCONNECT) and goes to `idle`; the next operation connects again. */
  #idleEnd(live: LiveLink, ms: number): void {
    const o = this.#current;
    this.#detach(live, new SshError('ERR_SSH_CONNECTION_LOST', `the link to ${o.host}:${o.port} was ended after ${ms} ms unused (idleTimeoutMs)`));
    this.#idleSince = Date.now();
    this.#log.info({ host: o.host, port: o.port, idleTimeoutMs: ms }, 'ssh-tether: link unused for idleTimeoutMs, ending it (idle persist)');
    this.#setState('idle');
  }

  /** Takes `live` out of service on purpose (idle persist, failback) and ends it gracefully. */
  #detach(live: LiveLink, reason: SshError): void {
    this.#live = undefined;
    this.#clearIdle();
    this.#clearFailback();
    live.keepalive?.stop();
    live.ctl.abort(reason);
    this.#bytesIn += live.bytesIn;
    this.#bytesOut += (live.sock as { bytesWritten?: number }).bytesWritten ?? 0;
    endGracefully(live.link.client, live.sock);
  }

  #clearFailback(): void {
    if (this.#failbackTimer !== undefined) this.#clock.clearTimeout(this.#failbackTimer);
    this.#failbackTimer = undefined;
  }

  /** Schedules the next failback step in `ms` while ready on a lower entry of the failover list. */
  #armFailback(ms: number): void {
    this.#clearFailback();
    if (this.#o.failbackIntervalMs <= 0 || this.#hostCount < 2 || this.#hostIndex === 0 || this.#state !== 'ready') return;
    this.#failbackTimer = this.#clock.setTimeout(() => {
      this.#failbackTimer = undefined;
      void this.#failbackStep();
    }, Math.max(0, ms));
  }

  /** Probes the first entry; once it answered, moves back as soon as no operation runs. */
  async #failbackStep(): Promise<void> {
    const live = this.#live;
    if (this.#state !== 'ready' || !live || this.#hostIndex === 0) return;
    const interval = this.#o.failbackIntervalMs;
    if (!this.#failbackReady) {
      const ok = await this.#probe(0);
      if (this.#live !== live || this.#state !== 'ready') return;
      if (!ok) {
        this.#armFailback(interval);
        return;
      }
      this.#failbackReady = true;
    }
    if (this.#hooks.isRunning?.() === true) {
      this.#armFailback(Math.min(interval, 1_000));
      return;
    }
    const hosts = this.#o.hosts;
    const cause = new SshError('ERR_SSH_CONNECTION_LOST', `failback: ${hosts[0] ?? ''} answers again; leaving ${hosts[this.#hostIndex] ?? ''} (failbackIntervalMs)`);
    this.#lastFailure = cause;
    this.#failingBack = true;
    this.#detach(live, cause);
    this.#setState('reconnecting');
    try {
      await this.#attempt(0);
      this.#reconnects += 1;
    } catch (err) {
      this.#failingBack = false;
      if (this.#lifetime.signal.aborted || (this.#state as ConnectionState) !== 'reconnecting') return;
      const e = err instanceof SshError ? err : new SshError('ERR_SSH_CONNECT', String(err), { cause: err });
      this.#lastFailure = e;
      void this.#reconnectLoop(e);
    }
  }

  /** TCP, key exchange (host-key check) and authentication to entry `index`, then ends it: `true` when all passed. */
  async #probe(index: number): Promise<boolean> {
    let t: ConnectedTransport | undefined;
    try {
      const o = this.#hooks.resolveAttempt ? await this.#hooks.resolveAttempt(index) : this.#o;
      const signal = this.#lifetime.signal;
      const sock = this.#hooks.transport ? await this.#hooks.transport(o, signal) : undefined;
      t = await connectAttempt(o, { hostKeyCheck: this.#hooks.hostKeyCheckFor(o), signal, ...(sock ? { sock } : {}) });
      return true;
    } catch (err) {
      this.#log.debug({ code: err instanceof SshError ? err.code : undefined }, 'ssh-tether: failback probe failed');
      return false;
    } finally {
      if (t) endGracefully(t.client, t.sock);
    }
  }

  /** The reconnect policy's backoff (internal/backoff.ts): within [minDelayMs, maxDelayMs]. */
  #delayFor(attempt: number): number {
    const p = this.#o.reconnect;
    return p === false ? 0 : backoffDelay(attempt, p);
  }

  async #reconnectLoop(firstCause: SshError): Promise<void> {
    const policy = this.#o.reconnect;
    if (policy === false) return;
    const lifetime = this.#lifetime.signal;
    let attempt = 0;
    let lastCause = firstCause;
    // Failover: the host it was on first, then down the list (wrapping round), one per attempt.
    const start = this.#hostIndex;
    try {
      await pRetry(
        async () => {
          attempt += 1;
          const hostIndex = (start + attempt - 1) % this.#hostCount;
          const delayMs = this.#delayFor(attempt);
          this.#log.info({ attempt, delayMs, code: lastCause.code }, 'ssh-tether: reconnecting');
          const cause = lastCause;
          publish(DC.reconnecting, () => ({ client: this.#owner, attempt, delayMs, cause }));
          this.emit('reconnecting', { attempt, delayMs, cause });
          await sleep(delayMs, lifetime);
          await this.#attempt(hostIndex);
          this.#reconnects += 1;
        },
        {
          retries: policy.retries,
          minTimeout: 0,
          maxTimeout: 0,
          factor: 1,
          signal: lifetime,
          // A name that resolved before and fails now is a DNS outage, not a typo: keep trying.
          shouldRetry: ({ error }) => !lifetime.aborted && (isRetryable(error) || isUnresolvedName(error)),
          onFailedAttempt: ({ error }) => {
            lastCause = error instanceof SshError ? error : new SshError('ERR_SSH_CONNECT', error.message, { cause: error });
            this.#lastFailure = lastCause;
          },
        },
      );
    } catch (err) {
      if (lifetime.aborted || this.#state !== 'reconnecting') return;
      const e = err instanceof SshError ? err : new SshError('ERR_SSH_CONNECT', String(err), { cause: err });
      this.#fatal = e;
      this.#closedBy = e;
      this.#setState('closed');
      this.#lifetime.abort(e);
      this.#rejectWaiters(e);
      this.emit('error', e);
      this.emit('close', { cause: e });
    }
  }

  /**
   * Graceful close: stops accepting work, lets `beforeEnd` drain channels (bounded by
   * `closeTimeoutMs`), ends the transport, and reaches `closed`. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#state === 'closed') return Promise.resolve();
    this.#closing = this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    const closedErr = new SshError('ERR_SSH_CLOSED', 'the client is closed');
    this.#closedBy ??= new SshError('ERR_SSH_CLOSED', 'closed by close()');
    this.#clearIdle();
    this.#clearFailback();
    this.#setState('closing');
    this.#lifetime.abort(closedErr);
    this.#rejectWaiters(closedErr);
    const live = this.#live;
    if (live && this.#hooks.beforeEnd) {
      try {
        await this.#hooks.beforeEnd(this.#o.closeTimeoutMs, live.link);
      } catch {
        // best effort; the transport is ended below regardless
      }
    }
    if (live && this.#live === live) {
      this.#live = undefined;
      live.keepalive?.stop();
      live.ctl.abort(closedErr);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          live.link.client.destroy();
          live.sock.destroy();
          resolve();
        }, 1_000);
        live.link.client.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        live.link.client.end();
      });
      live.sock.destroy();
    }
    this.#setState('closed');
    this.emit('close', {});
  }

  /** Immediate teardown: every operation rejects with `err` (default `ERR_SSH_CLOSED`). Idempotent. */
  destroy(err?: SshError): void {
    if (this.#state === 'closed') return;
    const e = err ?? new SshError('ERR_SSH_CLOSED', 'the client was destroyed');
    this.#fatal = err;
    this.#closedBy ??= e;
    this.#clearIdle();
    this.#clearFailback();
    this.#lifetime.abort(e);
    const live = this.#live;
    this.#live = undefined;
    if (live) {
      live.keepalive?.stop();
      live.ctl.abort(e);
      live.link.client.destroy();
      live.sock.destroy();
    }
    this.#setState('closed');
    this.#rejectWaiters(e);
    this.emit('close', err ? { cause: err } : {});
  }
}
