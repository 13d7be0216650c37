/**
 * Opening a `direct-tcpip` or `direct-streamlocal@openssh.com` channel (RFC 4254 section 7.2,
 * OpenSSH PROTOCOL section 2.4): the one place that does. Jump hops (connection/jump.ts) and
 * forwards (through channel/open.ts) use it.
 *
 * @module connection/direct
 */
import type ssh2 from 'ssh2';
import { SshError, mapChannelError } from '../errors.js';
import { abortReason } from '../internal/cancel.js';
import type { Link } from './link.js';

/**
 * Where a `direct-*` channel goes: a TCP host and port (`direct-tcpip`, RFC 4254 section 7.2) or
 * a Unix-domain socket path (`direct-streamlocal@openssh.com`, OpenSSH PROTOCOL section 2.4).
 */
export type DirectTarget = { host: string; port: number } | { path: string };

/** Options of {@link openDirect}. */
export interface DirectOpenOptions {
  /**
   * The originator address and port told to the server (RFC 4254 section 7.2); default
   * `127.0.0.1` port 0, as OpenSSH's `-W` (stdio forward) reports it.
   */
  originator?: { address?: string | undefined; port?: number | undefined } | undefined;
  /**
   * Subscribes to the death of the link and returns the unsubscribe function; default an abort
   * listener on `link.signal` (forwards share one listener per link instead).
   */
  onLinkDeath?: ((fn: (cause: SshError) => void) => () => void) | undefined;
  /** Gives up with the signal's reason (an SshError as is, else `ERR_SSH_ABORTED`). */
  signal?: AbortSignal | undefined;
  /** Gives up after this many milliseconds with `ERR_SSH_TIMEOUT`. */
  timeoutMs?: number | undefined;
}

/**
 * Opens a `direct-tcpip` or `direct-streamlocal@openssh.com` channel on `link` (the one place that
 * does: forwards and jump hops use it). Settles once; a channel that arrives after the caller gave
 * up (link dead, signal, timeout) is closed.
 *
 * @param link - the transport: its ssh2 `client`, and `signal`, aborted with an SshError when it dies.
 * @param target - see {@link DirectTarget}.
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN` (with the RFC 4254 `reason`) when the server refused;
 *   `ERR_SSH_CONNECTION_LOST` (the link's abort reason) when the link died first or ssh2 was no
 *   longer connected; `ERR_SSH_TIMEOUT` after `timeoutMs`; the reason of `signal`.
 */
export function openDirect(link: Pick<Link, 'client' | 'signal'>, target: DirectTarget, options: DirectOpenOptions = {}): Promise<ssh2.ClientChannel> {
  return new Promise<ssh2.ClientChannel>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: SshError): void => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(err);
    };
    const onDeath = (cause: SshError): void => finish(cause);
    const onAbort = (): void => finish(abortReason(options.signal ?? link.signal, 'channel open'));
    let offDeath = (): void => undefined;
    const cleanup = (): void => {
      offDeath();
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    if (options.onLinkDeath) {
      offDeath = options.onLinkDeath(onDeath);
    } else if (link.signal.aborted) {
      onDeath(abortReason(link.signal));
    } else {
      const l = (): void => onDeath(abortReason(link.signal));
      link.signal.addEventListener('abort', l, { once: true });
      offDeath = () => link.signal.removeEventListener('abort', l);
    }
    // The link was dead already (the subscription may call back at once).
    if (settled) {
      offDeath();
      return;
    }
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.timeoutMs !== undefined) {
      const ms = options.timeoutMs;
      const where = 'path' in target ? target.path : `${target.host}:${target.port}`;
      timer = setTimeout(() => finish(new SshError('ERR_SSH_TIMEOUT', `the channel to ${where} did not open within ${ms} ms`)), ms);
    }
    const cb = (err: Error | undefined, chan: ssh2.ClientChannel): void => {
      if (settled) {
        if (!err && !link.signal.aborted) chan.close();
        return;
      }
      settled = true;
      cleanup();
      if (err) reject(mapChannelError(err));
      else resolve(chan);
    };
    try {
      if ('path' in target) link.client.openssh_forwardOutStreamLocal(target.path, cb);
      else link.client.forwardOut(options.originator?.address ?? '127.0.0.1', options.originator?.port ?? 0, target.host, target.port, cb);
    } catch (err) {
      // ssh2 throws 'Not connected' synchronously when its socket is gone.
      finish(new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
    }
  });
}
