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
import { SshError } from '../errors.js';
import { openDirect as openDirectChannel, type DirectTarget } from '../channel/open.js';
import { eagerWindow } from '../ssh2/window.js';
import type { ForwardContext, ForwardStats } from './types.js';

/**
 * The largest receive window a forward channel (local, remote and dynamic) gets: 5 MiB, topped
 * up each time 1/64 of it (80 KiB, under OpenSSH's "3 packets" of `channel_check_window`) was
 * delivered to the local socket (src/ssh2/window.ts). ssh2's own rule (2 MiB, refilled below
 * half) caps one channel at ~1 MiB per round trip (17 MB/s at RTT 54 ms, 0.5x `ssh -L`).
 *
 * What a larger window costs, and why it is bounded (found 2026-12-07 with `perf record -a`
 * during a 16 MiB-window soak): the slow runs seen with large windows are OpenSSH 9.2's sshd
 * copying its channel buffer. sshd reads the target 16 KiB at a time into the channel's input
 * buffer as long as that buffer is below our window; when it cannot send as fast (a busy moment
 * on the path or on our side), the buffer grows, and every 16 KiB of growth reallocates it with
 * a full copy (sshbuf's `recallocarray`: new block, copy, zero the old one; large blocks are
 * fresh mmaps, so page faults too). Growing to B bytes costs ~B^2 / 32 KiB bytes of copying:
 * 0.5 GB at 4 MiB, 0.8 GB at 5 MiB, 8 GB at 16 MiB. During a 16 MiB soak (4 slow runs of 20,
 * sshd up to 124 s/GiB) 45% of sshd's CPU was `memmove` and most of the rest page faults; while
 * it copies it does not send, so the buffer grows further. The worst case grows with the square
 * of the window; a window only needs the bandwidth x round trip the link can carry.
 *
 * The size (test/bench/forward-window.ts, RTT 52 ms through the delay line, 64 MiB downloads,
 * interleaved; slow outlier = time > 2x the median):
 * - top-up 1/8 (512 KiB) vs 1/64 at 4 MiB: 62.6 vs 67.8 MB/s; the earlier top-up keeps the
 *   server's usable window nearer the full size;
 * - 4 MiB 1/64: 68.1 MB/s; 5 MiB: 83.4; 6 MiB: 94.9 (one run with sshd at 7.5 s/GiB); 8 MiB
 *   and up (top-up 1/8): 1 of 20 to 5 of 20 slow runs, sshd up to 151 s/GiB;
 * - the soak of the chosen 5 MiB, 1/64: 0 slow runs of 50 downloads (p50 811 ms, max 899; sshd
 *   at most 1.9 s/GiB) and 0 of 50 uploads; against `ssh -L` 2.12-2.27x per round (79.2 vs
 *   36.6 MB/s). 6 MiB had 2 slow runs of 50 in an earlier soak.
 *
 * And why not always: on loopback (we are the slower end) a fixed 8 MiB window cost sshd 3.0
 * s/GiB against 1.8 with ssh2's rule and the download ran at 0.67x raw ssh2 (per-round median of
 * 7; rounds down to 0.21x) against 1.24x with ssh2's rule: the loopback regression seen in the
 * forward bench. So the window is sized to the link: see {@link forwardWindowFor}.
 */
export const FORWARD_WINDOW = Object.freeze({ sizeBytes: 5 * 1024 * 1024, topUpFraction: 1 / 64 });

/**
 * The per-channel rate the forward window is sized for, bytes per ms (200 MB/s: above what one
 * forward channel reaches on loopback here). Window needed = this x round trip.
 */
const WINDOW_RATE_BYTES_PER_MS = 200_000;

/**
 * The window for a forward channel on a link whose round trip is about `rttMs` (the fastest
 * channel open seen on that link): `null` (ssh2's own 2 MiB rule, which already passes 1 MiB per
 * round trip) when `rttMs x 200 MB/s` is at most 1 MiB (round trips up to ~5 ms: loopback, LAN);
 * otherwise an eager window of that size rounded up to a power of two, from 2 MiB to at most
 * {@link FORWARD_WINDOW} (5 MiB from RTT ~21 ms), top-up 1/64. Unknown round trip (a remote
 * forward on a link where no local channel was opened yet): {@link FORWARD_WINDOW}.
 * @internal
 */
export function forwardWindowFor(rttMs: number | undefined): Readonly<{ sizeBytes: number; topUpFraction: number }> | null {
  if (rttMs === undefined || !Number.isFinite(rttMs)) return FORWARD_WINDOW;
  const need = Math.max(0, rttMs) * WINDOW_RATE_BYTES_PER_MS;
  if (need <= 1024 * 1024) return null;
  let size = 2 * 1024 * 1024;
  while (size < need && size < FORWARD_WINDOW.sizeBytes) size *= 2;
  return { sizeBytes: Math.min(size, FORWARD_WINDOW.sizeBytes), topUpFraction: FORWARD_WINDOW.topUpFraction };
}

/** Per link: the fastest `direct-tcpip` open seen (ms), the round-trip estimate of {@link forwardWindowFor}. */
const openRttMs = new WeakMap<Link, number>();

/**
 * The window new forward channels get: `'auto'` ({@link forwardWindowFor} the link's round trip),
 * or a fixed window, or `null` for ssh2's own rule. Changed only by test/bench/forward-window.ts,
 * to compare windows within one process (interleaved rounds); open channels keep theirs.
 * @internal
 */
export const forwardWindowSetting: { current: Readonly<{ sizeBytes: number; topUpFraction: number }> | null | 'auto' } = { current: 'auto' };

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

export type { DirectTarget } from '../channel/open.js';

/**
 * Opens a `direct-tcpip` (RFC 4254 section 7.2) or `direct-streamlocal@openssh.com` channel for
 * the connection `src` (see {@link openDirectChannel}, the one channel-open). Settles once: a
 * channel that arrives after the link died is closed.
 *
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN` (with the RFC 4254 `reason`) when the server
 *   refused, `ERR_SSH_CONNECTION_LOST` when the link died first.
 */
export function openDirect(ctx: ForwardContext, link: Link, target: DirectTarget, src: Socket | undefined): Promise<ssh2.ClientChannel> {
  // One shared abort listener per link (ctx.onLinkDeath), not one per connection.
  const t0 = performance.now();
  const opened = openDirectChannel(link, target, { originator: { address: src?.remoteAddress, port: src?.remotePort }, onLinkDeath: (fn) => ctx.onLinkDeath(link, fn) });
  // The open's round trip (plus the server's connect to the target) sizes the forward window.
  opened.then(
    () => {
      const ms = performance.now() - t0;
      const best = openRttMs.get(link);
      if (best === undefined || ms < best) openRttMs.set(link, ms);
    },
    () => undefined,
  );
  return opened;
}

/** The SshError of a dead link (its abort reason). */
export function linkLost(link: Link): SshError {
  const r: unknown = link.signal.reason;
  return r instanceof SshError ? r : new SshError('ERR_SSH_CONNECTION_LOST', 'connection lost', { cause: r });
}

/**
 * Pipes `sock` and `chan` into each other with backpressure (`Readable.pipe`: a slow reader on
 * either side stops the other; memory stays bounded by the SSH window, at most {@link FORWARD_WINDOW}
 * (sized to the link's round trip by {@link forwardWindowFor}; eager: topped up only for bytes the local socket took), plus the stream buffers). Half-close is passed on both ways (FIN -> channel EOF, EOF -> FIN). Teardown:
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
  const setting = forwardWindowSetting.current;
  const win = setting === 'auto' ? forwardWindowFor(openRttMs.get(link)) : setting;
  if (win === null) return;
  try {
    eagerWindow(chan, { ...win, sink: sock });
  } catch (err) {
    // ssh2 changed its channel fields: carry on with ssh2's own window rule, say so once.
    if (!windowWarned) {
      windowWarned = true;
      ctx.warn({ keyword: 'ssh2-window', message: err instanceof Error ? err.message : String(err) });
    }
  }
}
