/**
 * The connection state machine: one status union, one transition table.
 * `idle -> connecting -> ready -> reconnecting -> ready ... -> closing -> closed`, and
 * `ready -> idle` when `idleTimeoutMs` closes an unused link (idle persist, OpenSSH `ControlPersist`).
 *
 * `idle` means "no link, operations accepted, the next one connects": the state before the first
 * connect, after a failed first connect, and after an idle-persist close. One state rather than a
 * separate `'dormant'` one, because the contract is the same in all three (no link; `exec()`,
 * `connect()`... start `connecting`; `close()` is immediate), so supervisors and `SshGroup` need
 * no new case; `health().idleSince` tells an idle-persist close apart.
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
  // the link died -> reconnecting; unused for idleTimeoutMs -> idle (the link is ended; the next
  // operation connects again); close() -> closing; destroy() -> closed.
  ready: ['reconnecting', 'idle', 'closing', 'closed'],
  // reconnected -> ready; gave up or fatal error -> closed; close() -> closing.
  reconnecting: ['ready', 'closing', 'closed'],
  closing: ['closed'],
  closed: [],
});

/** `true` when `from -> to` is in {@link TRANSITIONS}. */
export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return TRANSITIONS[from].includes(to);
}
