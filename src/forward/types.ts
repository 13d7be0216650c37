/**
 * Types shared by the forward modules.
 *
 * @module forward/types
 */
import type { Link, LinkProvider } from '../connection/link.js';
import type { SshError } from '../errors.js';

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

/**
 * A state change of the handle `H` as a handle reports it to its manager (the manager re-emits it
 * as the public `ForwardEvent` of `forward/handles.ts`, which has the same shape with
 * `H` = `ForwardHandle`). Generic so that this module names no handle class: the classes import
 * it, and an import back would be a cycle.
 *
 * @internal
 */
export interface HandleEvent<H> {
  forward: H;
  state: 'up' | 'down' | 'error' | 'refused';
  cause?: SshError;
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
 * What the forward handles need from their manager. `H` is the handle class the context is
 * given to (what `emit` and `release` accept); the default `never` is a context that only
 * settings and link helpers are read from (carry.ts). A remote forward's context also routes
 * incoming connections (`RemoteContext` in remote.ts).
 *
 * @internal
 */
export interface ForwardContext<H = never> {
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
  emit(event: HandleEvent<H>): void;
  /** Runs `fn` once when `link` dies; returns a function that unregisters it. */
  onLinkDeath(link: Link, fn: (cause: SshError) => void): () => void;
  /** Installs the per-client dispatchers of incoming forwarded connections (idempotent). */
  attach(link: Link): void;
  /** Forgets a closed handle. */
  release(handle: H): void;
}
