/**
 * An eager receive window for one ssh2 channel (RFC 4254 section 5.2), the way OpenSSH's
 * `channel_check_window()` (channels.c) keeps its own: the window is topped up as soon as a
 * fraction of it was *consumed* (handed on to the local reader), not only once it fell below
 * half as ssh2 does.
 *
 * ssh2 1.17 advertises a 2 MiB window per channel and sends one CHANNEL_WINDOW_ADJUST back to
 * 2 MiB only when it fell to 1 MiB or less (lib/client.js `CHANNEL_DATA`, lib/Channel.js
 * `windowAdjust`). On a long link that is one 1 MiB update per round trip: about 20 MB/s at RTT
 * 51 ms, whatever the bandwidth. Here the window is grown to `sizeBytes` at once and refilled
 * whenever `sizeBytes * topUpFraction` bytes became free, so the server may keep `sizeBytes`
 * in flight (throughput ceiling `sizeBytes / RTT`).
 *
 * Backpressure, as OpenSSH (`local_consumed` counts only bytes written to the local fd): bytes
 * received but not yet delivered count against the window: the channel's readable buffer plus
 * the unflushed bytes of the `sink` (the local socket the channel is piped into). A local reader
 * that stops reading therefore stops the top-ups, and the unread data held here stays bounded by
 * `sizeBytes` (or by ssh2's own rule, which keeps running underneath: at most its 2 MiB window
 * plus its 2 MiB stream buffer).
 *
 * ssh2 private fields (`Channel.incoming`, `Channel.outgoing`, `Channel._client._protocol
 * .channelWindowAdjust()`): touched only here, behind {@link checkChannelWindow}; the contract
 * test (test/contract/ssh2.test.ts, "eager channel window") fails when ssh2 changes them.
 *
 * The SFTP channel ({@link eagerSftpWindow}) uses the same rule on ssh2's SFTP object, which is
 * not a stream: its inbound bytes are parsed (and, in ssh-tether, copied into the read buffers of
 * the requests they answer: src/sftp/inbound.ts) synchronously as they arrive, so nothing is
 * held undelivered and the caller runs {@link EagerWindow.check} after each inbound chunk. The
 * memory bound there is the requests in flight (the server can only answer what was asked).
 *
 * @module ssh2/window
 * @internal
 */
import type { Writable } from 'node:stream';
import { internalsChanged } from './shapes.js';

/** RFC 4254 section 5.2: a window is an unsigned 32-bit count; kept well below it. */
const MAX_WINDOW_BYTES = 2 ** 30;

/** One direction of an ssh2 channel (lib/Channel.js: `incoming` is ours, `outgoing` the peer's). */
export interface Ssh2ChannelSide {
  /** Channel number on that side. */
  id: number;
  /** Bytes that side may still receive (incoming: what the server may still send us). */
  window: number;
  packetSize: number;
  /** `'open'`, `'eof'`, `'closing'` or `'closed'`. */
  state: string;
}

/** The flow-control fields of an ssh2 `Channel` (lib/Channel.js, ssh2 ~1.17.0). */
export interface Ssh2ChannelWindowShape {
  incoming: Ssh2ChannelSide;
  outgoing: Ssh2ChannelSide;
  _client: { _protocol: { channelWindowAdjust(recipient: number, amount: number): void } | undefined };
  /** Bytes pushed by ssh2 and not yet read from the channel (Node's `Readable`). */
  readonly readableLength: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function isSide(v: unknown): v is Ssh2ChannelSide {
  return isObject(v) && typeof v['id'] === 'number' && typeof v['window'] === 'number' && typeof v['packetSize'] === 'number' && typeof v['state'] === 'string';
}

/**
 * Checks that `channel` has the window fields {@link eagerWindow} uses.
 *
 * @returns the channel, typed.
 * @throws SshError `ERR_SSH_HANDSHAKE` (not retryable) "ssh2 internals changed: ..." naming the field.
 */
export function checkChannelWindow(channel: unknown): Ssh2ChannelWindowShape {
  if (!isObject(channel)) throw internalsChanged('Channel');
  if (!isSide(channel['incoming'])) throw internalsChanged('Channel.incoming {id, window, packetSize, state}');
  if (!isSide(channel['outgoing'])) throw internalsChanged('Channel.outgoing {id, window, packetSize, state}');
  const client = channel['_client'];
  if (!isObject(client) || !isObject(client['_protocol']) || typeof client['_protocol']['channelWindowAdjust'] !== 'function') {
    throw internalsChanged('Channel._client._protocol.channelWindowAdjust()');
  }
  if (typeof channel['readableLength'] !== 'number') throw internalsChanged('Channel.readableLength');
  return channel as unknown as Ssh2ChannelWindowShape;
}

/** The flow-control fields of ssh2's SFTP object (lib/protocol/SFTP.js, ssh2 ~1.17.0; an EventEmitter over the session channel). */
export interface Ssh2SftpWindowShape {
  incoming: Ssh2ChannelSide;
  outgoing: Ssh2ChannelSide;
  _protocol: { channelWindowAdjust(recipient: number, amount: number): void } | undefined;
}

/**
 * Checks that ssh2's SFTP object `sftp` has the window fields {@link eagerSftpWindow} uses.
 *
 * @returns the object, typed.
 * @throws SshError `ERR_SSH_SFTP` (not retryable) "ssh2 internals changed: SFTP...." naming the field.
 */
export function checkSftpWindow(sftp: unknown): Ssh2SftpWindowShape {
  if (!isObject(sftp)) throw internalsChanged('SFTP', 'ERR_SSH_SFTP');
  if (!isSide(sftp['incoming'])) throw internalsChanged('SFTP.incoming {id, window, packetSize, state}', 'ERR_SSH_SFTP');
  if (!isSide(sftp['outgoing'])) throw internalsChanged('SFTP.outgoing {id, window, packetSize, state}', 'ERR_SSH_SFTP');
  const proto = sftp['_protocol'];
  if (!isObject(proto) || typeof proto['channelWindowAdjust'] !== 'function') throw internalsChanged('SFTP._protocol.channelWindowAdjust()', 'ERR_SSH_SFTP');
  return sftp as unknown as Ssh2SftpWindowShape;
}

/** Validates {@link EagerWindowOptions} sizes (a programming error when wrong). */
function checkSizes(sizeBytes: number, topUpFraction: number): void {
  if (!Number.isInteger(sizeBytes) || sizeBytes < 32 * 1024 || sizeBytes > MAX_WINDOW_BYTES) {
    throw new RangeError(`eagerWindow: sizeBytes must be an integer from 32768 to ${MAX_WINDOW_BYTES}, got ${sizeBytes}`);
  }
  if (!(topUpFraction > 0 && topUpFraction <= 1)) throw new RangeError(`eagerWindow: topUpFraction must be in (0, 1], got ${topUpFraction}`);
}

/**
 * The top-up rule shared by {@link eagerWindow} and {@link eagerSftpWindow}: while the server may
 * still send (not after its EOF or anyone's CLOSE), grants `room` more bytes (RFC 4254 section
 * 5.2 SSH_MSG_CHANNEL_WINDOW_ADJUST) once at least `threshold` are free. Returns the bytes granted (0: none).
 */
function topUp(incoming: Ssh2ChannelSide, outgoing: Ssh2ChannelSide, proto: { channelWindowAdjust(id: number, n: number): unknown } | undefined, room: number, threshold: number): number {
  if (incoming.state !== 'open' || (outgoing.state !== 'open' && outgoing.state !== 'eof')) return 0;
  if (room < threshold || !proto) return 0;
  incoming.window += room;
  proto.channelWindowAdjust(outgoing.id, room);
  return room;
}

/**
 * Gives ssh2's SFTP object an eager receive window (the rule of {@link eagerWindow}, with nothing
 * buffered: see the module comment). Nothing runs by itself: call `check()` after each inbound
 * chunk was handled (src/ssh2/sftp.ts does, in its inbound hook); it is also run once now, so
 * the server sees `sizeBytes` at once. Stops by itself when the SFTP object emits `close`/`end`.
 *
 * @param sftp - ssh2's `SFTPWrapper`, open.
 * @param options - `sizeBytes` (32 KiB .. 1 GiB) and `topUpFraction` (0 < f <= 1); `sink` is ignored.
 * @returns the installed window (counters for tests and diagnostics; `bufferedBytes` is always 0).
 * @throws SshError `ERR_SSH_SFTP` "ssh2 internals changed" when the fields differ (nothing installed).
 * @throws RangeError when `sizeBytes` or `topUpFraction` is out of range (a programming error).
 */
export function eagerSftpWindow(sftp: unknown, options: EagerWindowOptions): EagerWindow {
  const { sizeBytes, topUpFraction } = options;
  checkSizes(sizeBytes, topUpFraction);
  const s = checkSftpWindow(sftp);
  const emitter = sftp as { once(ev: string, fn: () => void): unknown; off(ev: string, fn: () => void): unknown };
  const threshold = Math.max(1, Math.floor(sizeBytes * topUpFraction));
  let stopped = false;
  let adjustsSent = 0;
  let bytesGranted = 0;
  const check = (): void => {
    if (stopped) return;
    const { incoming, outgoing } = s;
    const n = topUp(incoming, outgoing, s._protocol, sizeBytes - incoming.window, threshold);
    if (n === 0) return;
    adjustsSent += 1;
    bytesGranted += n;
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    emitter.off('close', stop);
    emitter.off('end', stop);
  };
  emitter.once('close', stop);
  emitter.once('end', stop);
  check();
  return {
    sizeBytes,
    get adjustsSent() {
      return adjustsSent;
    },
    get bytesGranted() {
      return bytesGranted;
    },
    bufferedBytes: 0,
    check,
    stop,
  };
}

/** Options of {@link eagerWindow}. */
export interface EagerWindowOptions {
  /** The window kept open, in bytes: the most the server may have sent that was not delivered yet. 32 KiB .. 1 GiB. */
  sizeBytes: number;
  /** Top up once this fraction of `sizeBytes` is free again (OpenSSH: about 3 packets, or half). 0 < f <= 1. */
  topUpFraction: number;
  /** Where the channel's data goes (piped): its unflushed bytes (`writableLength`) count as not delivered. */
  sink?: Writable;
}

/** A channel's eager window, as installed by {@link eagerWindow}. */
export interface EagerWindow {
  readonly sizeBytes: number;
  /** CHANNEL_WINDOW_ADJUST messages sent by this module. */
  readonly adjustsSent: number;
  /** Bytes granted by those messages. */
  readonly bytesGranted: number;
  /** Bytes received but not delivered now: the channel's buffer plus the sink's unflushed bytes. */
  readonly bufferedBytes: number;
  /** Runs the top-up rule now (also run on every chunk delivered and on the sink's `drain`). */
  check(): void;
  /** Stops topping up (ssh2's own rule stays). Idempotent. */
  stop(): void;
}

/**
 * Gives `channel` an eager receive window (see the module comment). Call it right after the
 * channel is open and, when a `sink` is given, after `channel.pipe(sink)` (the top-up then sees
 * each chunk already handed to the sink). Stops by itself when the channel closes.
 *
 * @param channel - an open ssh2 `Channel` (a `direct-tcpip`, `forwarded-tcpip`... channel).
 * @param options - window size in bytes, top-up fraction, and the local sink (see {@link EagerWindowOptions}).
 * @returns the installed window (counters for tests and diagnostics).
 * @throws SshError `ERR_SSH_HANDSHAKE` "ssh2 internals changed" when the channel lacks the fields
 *   (nothing installed then: ssh2's own 2 MiB rule stays in force).
 * @throws RangeError when `sizeBytes` or `topUpFraction` is out of range (a programming error).
 */
export function eagerWindow(channel: unknown, options: EagerWindowOptions): EagerWindow {
  const { sizeBytes, topUpFraction, sink } = options;
  checkSizes(sizeBytes, topUpFraction);
  const chan = checkChannelWindow(channel);
  const stream = channel as { on(ev: string, fn: () => void): unknown; off(ev: string, fn: () => void): unknown };
  const threshold = Math.max(1, Math.floor(sizeBytes * topUpFraction));
  let stopped = false;
  let adjustsSent = 0;
  let bytesGranted = 0;

  const buffered = (): number => chan.readableLength + (sink?.writableLength ?? 0);
  const check = (): void => {
    if (stopped) return;
    const { incoming, outgoing } = chan;
    const n = topUp(incoming, outgoing, chan._client._protocol, sizeBytes - incoming.window - buffered(), threshold);
    if (n === 0) return;
    adjustsSent += 1;
    bytesGranted += n;
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    stream.off('data', check);
    stream.off('close', stop);
    sink?.off('drain', check);
  };
  stream.on('data', check);
  stream.on('close', stop);
  sink?.on('drain', check);
  check();
  return {
    sizeBytes,
    get adjustsSent() {
      return adjustsSent;
    },
    get bytesGranted() {
      return bytesGranted;
    },
    get bufferedBytes() {
      return buffered();
    },
    check,
    stop,
  };
}
