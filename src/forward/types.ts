/**
 * Types shared by the forward modules.
 *
 * @module forward/types
 */
import type { Link, LinkProvider } from '../connection/link.js';
import type { SshError } from '../errors.js';
import type { DynamicForward } from './dynamic.js';
import type { LocalForward } from './local.js';
import type { RemoteForward } from './remote.js';

/** Counters of one forward, since it was opened. */
export interface ForwardStats {
  /** Connections accepted (local/dynamic) or received from the server (remote), in total. */
  connectionsTotal: number;
  /** Connections open now (including ones waiting for the link or in the SOCKS handshake). */
  connectionsActive: number;
  /** Bytes received through SSH and written to the local side (server -> local), in bytes. */
  bytesIn: number;
  /** Bytes read from the local side and sent through SSH (local -> server), in bytes. */
  bytesOut: number;
}

/** Any forward handle. */
export type ForwardHandle = LocalForward | RemoteForward | DynamicForward;

/**
 * A change of a forward's state, emitted by the forward manager (the client re-emits it as
 * its `forward` event): `up` once the server accepted a remote forward (first time and after
 * every reconnect) and when a local/dynamic forward has a link again, `down` when the link under
 * it died (`cause`: the `ERR_SSH_CONNECTION_LOST` error; local/dynamic forwards keep listening,
 * their state is `waiting`), `error` when it could not be set up again (`cause`: an
 * `ERR_SSH_FORWARD` error) or a declared forward failed while `exitOnForwardFailure` is off.
 * `refused`: the server refused the channel of one connection of a local/dynamic forward
 * (`cause`: `ERR_SSH_CHANNEL_OPEN` with the server's reason and description; `target`: where it
 * was to go); the forward itself stays up.
 */
export interface ForwardEvent {
  /** The forward concerned. */
  forward: ForwardHandle;
  /** Its new state (`refused` concerns one connection, see above). */
  state: 'up' | 'down' | 'error' | 'refused';
  /** Why it went down, failed or was refused. */
  cause?: SshError;
  /** For `refused`: the target of the refused channel (`host:port` or a socket path). */
  target?: string;
}

/** Retry policy for re-requesting remote forwards after a reconnect. Durations in ms. */
export interface RemoteRetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  /** First delay, in ms (randomized up to 2x). */
  minDelayMs: number;
  /** Delay cap, in ms. */
  maxDelayMs: number;
  /** Growth factor of the delay. */
  factor: number;
}

/**
 * What the forward handles need from their manager.
 *
 * @internal
 */
export interface ForwardContext {
  readonly provider: LinkProvider;
  readonly connectionWaitMs: number;
  readonly maxSocksConnections: number;
  readonly socksHandshakeTimeoutMs: number;
  readonly localConnectTimeoutMs: number;
  readonly remoteRetry: Readonly<RemoteRetryPolicy>;
  /** Default bound on the server's answer to a remote forward request, in ms. */
  readonly remoteRequestTimeoutMs: number;
  /** Reports a problem that is not a forward state change (e.g. a server bug worked around). Errors thrown by it are ignored. */
  warn(warning: { keyword: string; message: string }): void;
  /** Emits a forward event (listener errors are swallowed). */
  emit(event: ForwardEvent): void;
  /** Runs `fn` once when `link` dies; returns a function that unregisters it. */
  onLinkDeath(link: Link, fn: (cause: SshError) => void): () => void;
  /** Installs the per-client dispatchers of incoming forwarded connections (idempotent). */
  attach(link: Link): void;
  /** Routes incoming connections for `key` to `forward`; `undefined` removes the route. */
  route(key: string, forward: RemoteForward | undefined): void;
  /** Forgets a closed handle. */
  release(handle: ForwardHandle): void;
}
