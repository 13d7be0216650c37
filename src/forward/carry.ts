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
 * The largest receive window a forward channel (local, remote and dynamic) gets: 4 MiB, topped
 * up each time 1/8 of it (512 KiB) was delivered to the local socket (src/ssh2/window.ts;
 * OpenSSH's `channel_check_window` model). ssh2's own rule (2 MiB, refilled below half) caps one
 * channel at ~1 MiB per round trip (17 MB/s at RTT 54 ms, 0.5x `ssh -L`); 4 MiB: 55 MB/s there
 * (1.55x `ssh -L`, whose own window is 2 MiB).
 *
 * Why 4 MiB (test/bench/forward-window.ts; RTT ~53 ms through the delay line, 64 MiB downloads,
 * 2026-12-07, load average 4-12 on 2 cores): sshd reads the target into its channel buffer as far
 * as our window allows, and when it cannot send as fast as it reads, its CPU per byte grows with
 * the window; now and then (a stall on our side or the path) a transfer turns into a run in which
 * sshd burns 10-80x its usual CPU and the download takes 2-10x its median (the issue's "slow run
 * ~1 in 10 at 16 MiB, sshd 5x CPU"; the cause inside sshd is not pinned down). Slow outliers
 * (time > 2x the median) per window, interleaved rounds:
 * - 16 MiB: 1 of 12, 5 of 20 (sshd up to 151 s/GiB against ~1.9); 113 MB/s median;
 * - 8 MiB: 1 of 12, 1 of 20, 1 of 25 (sshd up to 25 s/GiB); 93-95 MB/s;
 * - 6 MiB: 0 of 25, then 2 of 50 in the soak (sshd 21 s/GiB); 75-81 MB/s;
 * - 4 MiB: 0 of 12, 0 of 20, and the 50-download soak: 0 of 50 (p50 1222 ms, p90 1461, max
 *   1661; sshd at most 3.0 s/GiB); 55 MB/s.
 * 4 MiB is the largest size with no slow outliers; it misses the issue's 2x `ssh -L` target
 * (1.55x), which 6-8 MiB reach at the cost of those runs (and of the server's CPU).
 *
 * And why not always: on loopback (we are the slower end) a fixed 8 MiB window cost sshd 3.0
 * s/GiB against 1.8 with ssh2's rule and the download ran at 0.67x raw ssh2 (per-round median of
 * 7; rounds down to 0.21x) against 1.24x with ssh2's rule: the loopback regression seen in the
 * forward bench. So the window is sized to the link: see {@link forwardWindowFor}.
 */
export const FORWARD_WINDOW = Object.freeze({ sizeBytes: 4 * 1024 * 1024, topUpFraction: 1 / 8 });

/**
 * The per-channel rate the forward window is sized for, bytes per ms (200 MB/s: above what one
 * forward channel reaches on loopback here). Window needed = this x round trip.
 */
const WINDOW_RATE_BYTES_PER_MS = 200_000;

/**
 * The window for a forward channel on a link whose round trip is about `rttMs` (the fastest
 * channel open seen on that link): `null` (ssh2's own 2 MiB rule, which already passes 1 MiB per
 * round trip) when `rttMs x 200 MB/s` is at most 1 MiB (round trips up to ~5 ms: loopback, LAN);
 * otherwise an eager window of that size rounded up to a power of two, from 2 MiB to
 * {@link FORWARD_WINDOW} (4 MiB from RTT ~11 ms), top-up 1/8. Unknown round trip (a remote
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
