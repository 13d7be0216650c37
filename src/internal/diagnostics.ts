import diagnosticsChannel from 'node:diagnostics_channel';

/**
 * The `node:diagnostics_channel` channels ssh-tether publishes on. Subscribe with
 * `diagnostics_channel.subscribe('ssh-tether:state', (msg) => ...)`. Every message carries the
 * `client` ({@link SshClient}) it is about; no message ever carries a secret.
 *
 * - `ssh-tether:state` `{ client, state, previous }` on every state change
 * - `ssh-tether:connect` `{ client, host, port, durationMs }` when a connect attempt reached ready
 * - `ssh-tether:connect:error` `{ client, host, port, error }` when an attempt failed
 * - `ssh-tether:disconnect` `{ client, cause }` when the live link was lost
 * - `ssh-tether:reconnecting` `{ client, attempt, delayMs, cause }`
 * - `ssh-tether:keepalive` `{ client, rttMs }`
 * - `ssh-tether:channel:open` `{ client, type: 'session', open, queued }`
 * - `ssh-tether:channel:close` `{ client, type: 'session', open, queued }`
 */
export const DIAGNOSTICS_CHANNELS = Object.freeze({
  state: 'ssh-tether:state',
  connect: 'ssh-tether:connect',
  connectError: 'ssh-tether:connect:error',
  disconnect: 'ssh-tether:disconnect',
  reconnecting: 'ssh-tether:reconnecting',
  keepalive: 'ssh-tether:keepalive',
  channelOpen: 'ssh-tether:channel:open',
  channelClose: 'ssh-tether:channel:close',
} as const);

type Name = (typeof DIAGNOSTICS_CHANNELS)[keyof typeof DIAGNOSTICS_CHANNELS];

const channels = new Map<Name, diagnosticsChannel.Channel>();

/** Publishes `message` on `name` when someone subscribed (cheap otherwise). */
export function publish(name: Name, message: () => object): void {
  let ch = channels.get(name);
  if (!ch) {
    ch = diagnosticsChannel.channel(name);
    channels.set(name, ch);
  }
  if (ch.hasSubscribers) ch.publish(message());
}
