/**
 * The connection state machine: one status union, one transition table.
 * `idle -> connecting -> ready -> reconnecting -> ready ... -> closing -> closed`.
 */

/** The states of an {@link SshClient}'s logical connection. */
export type ConnectionState = 'idle' | 'connecting' | 'ready' | 'reconnecting' | 'closing' | 'closed';

/** Every allowed transition: `TRANSITIONS[from]` lists the states `from` may move to. */
export const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = Object.freeze({
  // connect() or the first operation starts connecting; close()/destroy() before that ends it.
  idle: ['connecting', 'closing', 'closed'],
  // success -> ready; a retryable failure of the first connect goes back to idle (the next operation
  // tries again); a fatal one (auth, host key, key, config) ends in closed.
  connecting: ['ready', 'idle', 'closing', 'closed'],
  // the link died -> reconnecting; close() -> closing; destroy() -> closed.
  ready: ['reconnecting', 'closing', 'closed'],
  // reconnected -> ready; gave up or fatal error -> closed; close() -> closing.
  reconnecting: ['ready', 'closing', 'closed'],
  closing: ['closed'],
  closed: [],
});

/** `true` when `from -> to` is in {@link TRANSITIONS}. */
export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return TRANSITIONS[from].includes(to);
}
