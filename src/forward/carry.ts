/**
 * Carrying one TCP connection over one SSH channel: opening `direct-tcpip` /
 * `direct-streamlocal@openssh.com` channels, piping both ways with backpressure, half-close,
 * teardown when either end or the link dies, and the per-forward counters.
 *
 * @module forward/carry
 * @internal
 */
import type { Socket } from 'node:net';
import type ssh2 from 'ssh2';
import type { Link } from '../connection/link.js';
import { mapChannelError, SshError } from '../errors.js';
import { eagerWindow } from '../ssh2/window.js';
import type { ForwardContext, ForwardStats } from './types.js';

/**
 * The receive window of every forward channel (local, remote and dynamic): 8 MiB, topped up
 * each time 1/8 of it (1 MiB) was delivered to the local socket (src/ssh2/window.ts; OpenSSH's
 * `channel_check_window` model). ssh2's own rule (2 MiB, refilled below half) caps one channel
 * at ~1 MiB per round trip (~20 MB/s at RTT 51 ms); 8 MiB allows ~8 MiB per round trip.
 * Why 8 MiB and 1/8: see test/bench/forward-window.ts and the sweep in its results; a local
 * reader that stops reading holds at most this much unread data per connection.
 */
export const FORWARD_WINDOW = Object.freeze({ sizeBytes: 8 * 1024 * 1024, topUpFraction: 1 / 8 });

let windowWarned = false;

/** How long a cleanly finished connection waits for the server to close its channel. */
const CHANNEL_CLOSE_GRACE_MS = 30_000;

/** One connection tracked by a {@link Traffic}. */
export interface Tracked {
  readonly sock: Socket;
  /** Counter values when carrying started (the SOCKS handshake is not counted). */
  baseRead: number;
  baseWritten: number;
  carrying: boolean;
  /** Tears the connection down at once (forward closed). */
  kill: () => void;
}

/** The counters and live connections of one forward. */
export class Traffic {
  private total = 0;
  private inClosed = 0;
  private outClosed = 0;
  private readonly live = new Set<Tracked>();

  /** Number of connections open now. */
  get active(): number {
    return this.live.size;
  }

  /** Starts tracking `sock` (counted as a connection); untracked when it closes. */
  add(sock: Socket): Tracked {
    const t: Tracked = {
      sock,
      baseRead: 0,
      baseWritten: 0,
      carrying: false,
      kill: () => sock.destroy(),
    };
    this.total++;
    this.live.add(t);
    sock.once('close', () => {
      if (!this.live.delete(t)) return;
      if (t.carrying) {
        this.outClosed += sock.bytesRead - t.baseRead;
        this.inClosed += sock.bytesWritten - t.baseWritten;
      }
    });
    return t;
  }

  /** The figures of {@link ForwardStats}. */
  stats(): ForwardStats {
    let bytesIn = this.inClosed;
    let bytesOut = this.outClosed;
    for (const t of this.live) {
      if (!t.carrying) continue;
      bytesOut += t.sock.bytesRead - t.baseRead;
      bytesIn += t.sock.bytesWritten - t.baseWritten;
    }
    return { connectionsTotal: this.total, connectionsActive: this.live.size, bytesIn, bytesOut };
  }

  /** Tears down every live connection. */
  killAll(): void {
    for (const t of [...this.live]) t.kill();
  }
}

/** Where a `direct-*` channel goes. */
export type DirectTarget = { host: string; port: number } | { path: string };

/**
 * Opens a `direct-tcpip` (RFC 4254 section 7.2) or `direct-streamlocal@openssh.com` channel.
 * Settles once: a channel that arrives after the link died is closed.
 *
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN` (with the RFC 4254 `reason`) when the server
 *   refused, `ERR_SSH_CONNECTION_LOST` when the link died first.
 */
export function openDirect(ctx: ForwardContext, link: Link, target: DirectTarget, src: Socket | undefined): Promise<ssh2.ClientChannel> {
  return new Promise<ssh2.ClientChannel>((resolve, reject) => {
    let settled = false;
    // One shared abort listener per link (ctx.onLinkDeath), not one per connection.
    const offDeath = ctx.onLinkDeath(link, (cause) => {
      if (settled) return;
      settled = true;
      reject(cause);
    });
    if (settled) return;
    const cb = (err: Error | undefined, chan: ssh2.ClientChannel): void => {
      offDeath();
      if (settled) {
        if (!err && !link.signal.aborted) chan.close();
        return;
      }
      settled = true;
      if (err) reject(mapChannelError(err));
      else resolve(chan);
    };
    try {
      if ('path' in target) link.client.openssh_forwardOutStreamLocal(target.path, cb);
      else link.client.forwardOut(src?.remoteAddress ?? '127.0.0.1', src?.remotePort ?? 0, target.host, target.port, cb);
    } catch (err) {
      // ssh2 throws 'Not connected' synchronously when its socket is gone.
      offDeath();
      settled = true;
      reject(new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${(err as Error).message}`, { cause: err }));
    }
  });
}

/** The SshError of a dead link (its abort reason). */
export function linkLost(link: Link): SshError {
  const r: unknown = link.signal.reason;
  return r instanceof SshError ? r : new SshError('ERR_SSH_CONNECTION_LOST', 'connection lost', { cause: r });
}

/**
 * Pipes `sock` and `chan` into each other with backpressure (`Readable.pipe`: a slow reader on
 * either side stops the other; memory stays bounded by the SSH window, {@link FORWARD_WINDOW}
 * (eager: topped up only for bytes the local socket took), plus the stream buffers). Half-close is passed on both ways (FIN -> channel EOF, EOF -> FIN). Teardown:
 * - the socket fully closed: the channel gets EOF then CLOSE (at once after a socket error);
 * - the server closed the channel: the socket is destroyed once what was written to it is flushed;
 * - the link died: the socket is reset at once (the peer must not mistake it for a clean end);
 * - the forward closed (`tracked.kill`): both at once.
 *
 * `sock` must have been created with `allowHalfOpen: true`.
 */
export function carry(ctx: ForwardContext, link: Link, sock: Socket, chan: ssh2.Channel, tracked: Tracked, head?: Buffer): void {
  tracked.baseRead = sock.bytesRead - (head?.length ?? 0);
  tracked.baseWritten = sock.bytesWritten;
  tracked.carrying = true;
  let chanClosed = false;
  let graceTimer: NodeJS.Timeout | undefined;

  const closeChannel = (): void => {
    if (chanClosed || link.signal.aborted) return;
    chanClosed = true;
    chan.close();
  };
  const offDeath = ctx.onLinkDeath(link, () => {
    chanClosed = true; // ssh2 cleans up the channels of a dead transport itself.
    sock.resetAndDestroy();
  });
  tracked.kill = () => {
    closeChannel();
    sock.destroy();
  };

  chan.on('error', () => {
    closeChannel();
    sock.destroy();
  });
  chan.on('close', () => {
    chanClosed = true;
    // ssh2 emits 'close' for direct channels after 'end', so pipe() has called sock.end().
    if (sock.destroyed || sock.writableFinished) sock.destroy();
    else sock.once('finish', () => sock.destroy());
  });
  sock.on('error', () => undefined);
  sock.once('close', (hadError) => {
    offDeath();
    if (hadError || chan.writableFinished) closeChannel();
    else if (!chanClosed) {
      // Let the EOF after the last bytes go out; the server then closes the channel.
      chan.end();
      graceTimer = setTimeout(closeChannel, CHANNEL_CLOSE_GRACE_MS);
      graceTimer.unref();
      chan.once('close', () => clearTimeout(graceTimer));
    }
  });

  if (head && head.length > 0) chan.write(head);
  sock.pipe(chan);
  chan.pipe(sock);
  try {
    eagerWindow(chan, { ...FORWARD_WINDOW, sink: sock });
  } catch (err) {
    // ssh2 changed its channel fields: carry on with ssh2's own window rule, say so once.
    if (!windowWarned) {
      windowWarned = true;
      ctx.warn({ keyword: 'ssh2-window', message: err instanceof Error ? err.message : String(err) });
    }
  }
}
