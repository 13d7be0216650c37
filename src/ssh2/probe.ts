import type ssh2 from 'ssh2';
import { SshError } from '../errors.js';
import { ssh2Adapter } from './adapter.js';
import type { Ssh2GlobalCallback } from './shapes.js';

/**
 * Sends one `keepalive@openssh.com` global request with want-reply (OpenSSH `ServerAliveInterval`,
 * RFC 4254 section 4) on ssh2's transport. ssh2 has no public API for it: this uses the internals
 * its own keep-alive uses (`Protocol.ping()` and the global-request callback queue, answered in
 * order), checked by {@link adaptSsh2Client}.
 *
 * Any answer proves the peer alive and calls `onReply` once: REQUEST_SUCCESS, REQUEST_FAILURE
 * (OpenSSH, Dropbear, asyncssh) or UNIMPLEMENTED (RFC 4253 section 11.4; tinysshd), whose callback
 * is then removed from ssh2's queue so nothing stays queued. `onReply` is not called when the
 * transport dies first.
 *
 * @param client - a connected ssh2 client.
 * @param onReply - called once, asynchronously, with the answer.
 * @throws SshError `ERR_SSH_CONNECTION_LOST` when the probe cannot be sent (the socket is no longer
 *   writable, or ssh2 threw); `ERR_SSH_HANDSHAKE` (not retryable) "ssh2 internals changed" when the
 *   private fields differ. Never returns without having sent (or queued, during a key exchange) it.
 */
export function sendKeepaliveProbe(client: ssh2.Client, onReply: () => void): void {
  const adapter = ssh2Adapter(client);
  const { client: c, protocol } = adapter;
  const queue = c._callbacks;
  if (!Array.isArray(queue)) throw new SshError('ERR_SSH_CONNECTION_LOST', 'keep-alive probe not sent: ssh2 has no global-request queue (the client is not connected)');
  if (c._sock === undefined || c._sock.writable !== true || c._sock.destroyed === true) {
    throw new SshError('ERR_SSH_CONNECTION_LOST', 'keep-alive probe not sent: the connection is no longer writable');
  }
  let answered = false;
  const probe = {
    seqno: undefined as number | undefined,
    callback: undefined as unknown as Ssh2GlobalCallback,
    answer: (): void => {
      if (answered) return;
      answered = true;
      onReply();
    },
  };
  probe.callback = (hadErr) => {
    const i = adapter.pending.indexOf(probe);
    if (i !== -1) adapter.pending.splice(i, 1);
    // `true` is a failure reply (still an answer); an Error means the transport went away.
    if (!(hadErr instanceof Error)) probe.answer();
  };
  // Outside a key exchange the request goes out now, with the cipher's next sequence number
  // (RFC 4253 section 6.4), which an UNIMPLEMENTED reply names; during one, ssh2 queues it.
  const seqno = protocol._kexinit === undefined ? protocol._cipher.outSeqno : undefined;
  queue.push(probe.callback);
  try {
    protocol.ping();
  } catch (err) {
    const i = queue.indexOf(probe.callback);
    if (i !== -1) queue.splice(i, 1);
    throw new SshError('ERR_SSH_CONNECTION_LOST', `keep-alive probe not sent: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  probe.seqno = seqno;
  adapter.pending.push(probe);
}
