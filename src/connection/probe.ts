import type ssh2 from 'ssh2';

interface Ssh2Internals {
  _protocol?: { ping(): void };
  _callbacks?: Array<(hadErr?: unknown) => void>;
}

/**
 * Sends one `keepalive@openssh.com` global request (want-reply) on ssh2's transport.
 * ssh2 has no public API for it; this uses the same internals its own keep-alive uses
 * (`_protocol.ping()` and the global-request callback queue, answered in order, RFC 4254 section 4).
 *
 * @param client - a connected ssh2 client.
 * @param onReply - called once when the server answers (a success or failure reply both prove it alive);
 *   not called when the transport dies first.
 * @returns `false` when the client has no transport (nothing sent).
 */
export function sendKeepaliveProbe(client: ssh2.Client, onReply: () => void): boolean {
  const c = client as unknown as Ssh2Internals;
  if (!c._protocol || !Array.isArray(c._callbacks)) return false;
  c._callbacks.push((hadErr) => {
    // `true` is a failure reply (still an answer); an Error means the transport went away.
    if (!(hadErr instanceof Error)) onReply();
  });
  c._protocol.ping();
  return true;
}
