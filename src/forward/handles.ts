/**
 * The public types that name the forward handle classes: {@link ForwardHandle} and
 * {@link ForwardEvent}. They live apart from `types.ts`, which the handle classes import, so that
 * no import cycle runs through the classes.
 *
 * @module forward/handles
 */
import type { SshError } from '../errors.js';
import type { DynamicForward } from './dynamic.js';
import type { LocalForward } from './local.js';
import type { RemoteForward } from './remote.js';

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
