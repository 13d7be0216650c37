/**
 * ssh2's SFTP internals, in one place: the typed shape of the private fields of ssh2's SFTP
 * object (`SFTPWrapper`, lib/protocol/SFTP.js) that ssh-tether uses, the check that they are
 * still there, and the few operations built on them:
 *
 * - raw send with ssh2's own window handling (mirrors ssh2's `sendOrBuffer`: writes what the
 *   channel window allows, buffers the rest in `_buffer`, resumes on `_chunkcb`), so requests
 *   encoded by src/sftp/wire.ts (paths as exact bytes, writes without copying the data) travel
 *   with ssh2's request ids and reply dispatch;
 * - request registration in ssh2's reply table (`_requests`);
 * - the inbound hook in front of ssh2's SFTP parser (`push`), used to capture `SSH_FXP_NAME`
 *   replies as bytes and to copy `SSH_FXP_DATA` replies straight into read buffers;
 * - the channel's eager receive window (src/ssh2/window.ts {@link eagerSftpWindow}; ssh2 keeps a
 *   fixed 2 MiB window per channel, refilled only below 1 MiB), checked after each inbound chunk;
 * - the read-request table the DATA fast path completes (`_requests`, `_version`,
 *   `_maxInPktLen`, `_debug`);
 * - the per-turn budget of inbound SFTP work (`TurnBudget`): pauses the connection's byte stream
 *   (`_client._sock`) to the next event-loop turn once a turn handled 256 KiB.
 *
 * src/sftp/ calls only these functions. Written against ssh2 1.17.0 (pinned `~1.17.0`);
 * test/contract/ssh2.test.ts checks every shape here against ssh2's in-process `Server`.
 *
 * @internal
 * @module
 */
import type ssh2 from 'ssh2';
import { internalsChanged } from './shapes.js';
import { eagerSftpWindow, type EagerWindow, type EagerWindowOptions } from './window.js';

/** A request in ssh2's reply table: `cb` is called with the reply (`buffer` for a READ). */
export interface Ssh2SftpRequest {
  cb?: unknown;
  buffer?: unknown;
}

/** The private fields of ssh2 1.17's SFTP object used here (lib/protocol/SFTP.js). */
export interface Ssh2SftpInternals {
  /** Last request id sent (ids wrap at 2^32). */
  _writeReqid: number;
  /** Reply table: request id -> request. */
  _requests: Record<number, Ssh2SftpRequest | undefined>;
  /** Outbound bytes the channel window could not take yet. */
  _buffer: Buffer[];
  /** Set when waiting for the window to open (ssh2's client then calls `_chunkcb`). */
  _waitWindow: boolean;
  /** Called by ssh2's client on WINDOW_ADJUST while `_waitWindow`. */
  _chunkcb: (() => void) | undefined;
  /** Largest read/write per request (`limits@openssh.com`). */
  _maxReadLen: number;
  _maxWriteLen: number;
  /** Extensions of the server's VERSION packet. */
  _extensions: Record<string, string | undefined>;
  /** The server's identification string names OpenSSH (SYMLINK argument order). */
  _isOpenSSH: unknown;
  /** ssh2's parser state: both 0 at a packet boundary. */
  _pktLenBytes: number;
  _pktPos: number;
  /** -1 until the server's VERSION packet arrived. */
  _version: unknown;
  /** Largest inbound packet ssh2 accepts. */
  _maxInPktLen: unknown;
  _debug: unknown;
  outgoing: { state: string; window: number; packetSize: number; id: number };
  incoming: { window: number };
  _protocol: { channelData(id: number, data: Buffer): void; channelWindowAdjust(id: number, amount: number): void };
  /** The connection's ssh2 client; its `_sock` is the byte stream under the transport (TCP socket or a jump channel). */
  _client: { _sock: PausableStream };
  /** ssh2's entry point for the channel's inbound bytes. */
  push(data: Buffer | null): unknown;
}

/** The readable side of the transport's byte stream, as {@link TurnBudget} pauses it. */
export interface PausableStream {
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
  readonly destroyed?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isFn = (v: unknown): boolean => typeof v === 'function';

/**
 * Checks the shape of an ssh2 SFTP object and returns it typed.
 *
 * @throws SshError `ERR_SSH_SFTP` (not retryable) "ssh2 internals changed: SFTP.<field> ..." naming the field.
 */
export function checkSftpInternals(sftp: ssh2.SFTPWrapper): Ssh2SftpInternals {
  const s = sftp as unknown as Record<string, unknown>;
  const fail = (what: string): never => {
    throw internalsChanged(`SFTP.${what}`, 'ERR_SSH_SFTP');
  };
  if (typeof s['_writeReqid'] !== 'number') fail('_writeReqid');
  if (!isObject(s['_requests'])) fail('_requests');
  if (!Array.isArray(s['_buffer'])) fail('_buffer');
  if (typeof s['_waitWindow'] !== 'boolean') fail('_waitWindow');
  if (!('_chunkcb' in s) || (s['_chunkcb'] !== undefined && !isFn(s['_chunkcb']))) fail('_chunkcb');
  if (typeof s['_maxReadLen'] !== 'number') fail('_maxReadLen');
  if (typeof s['_maxWriteLen'] !== 'number') fail('_maxWriteLen');
  if (!isObject(s['_extensions'])) fail('_extensions');
  if (!('_isOpenSSH' in s)) fail('_isOpenSSH');
  if (typeof s['_pktLenBytes'] !== 'number' || typeof s['_pktPos'] !== 'number') fail('_pktLenBytes/_pktPos');
  if (typeof s['_version'] !== 'number') fail('_version');
  if (typeof s['_maxInPktLen'] !== 'number') fail('_maxInPktLen');
  if (!('_debug' in s)) fail('_debug');
  const out = s['outgoing'];
  if (!isObject(out) || typeof out['state'] !== 'string' || typeof out['window'] !== 'number' || typeof out['packetSize'] !== 'number' || typeof out['id'] !== 'number') {
    fail('outgoing {state, window, packetSize, id}');
  }
  const inc = s['incoming'];
  if (!isObject(inc) || typeof inc['window'] !== 'number') fail('incoming.window');
  const proto = s['_protocol'];
  if (!isObject(proto) || !isFn(proto['channelData'])) fail('_protocol.channelData()');
  if (!isFn((proto as Record<string, unknown>)['channelWindowAdjust'])) fail('_protocol.channelWindowAdjust()');
  if (!isFn(s['push'])) fail('push()');
  const client = s['_client'];
  const sock = isObject(client) ? client['_sock'] : undefined;
  if (!isObject(sock) || !isFn(sock['pause']) || !isFn(sock['resume']) || !isFn(sock['isPaused'])) fail('_client._sock {pause(), resume(), isPaused()}');
  return sftp as unknown as Ssh2SftpInternals;
}

/** A read request the DATA fast path may fill: ssh2's READ callback and its destination buffer. */
export interface WaitingRead {
  cb: (err: Error | undefined, buf?: Buffer, nb?: number) => void;
  buffer: Buffer;
}

/** ssh2's read requests, as the DATA fast path (src/sftp/inbound.ts) sees them. */
export interface ReadRequestTable {
  /**
   * The READ waiting for reply `id` with a buffer to fill, when ssh2 would itself accept a DATA
   * packet of `pktLen` bytes now (VERSION received, not above its inbound packet limit); else
   * `undefined` (the packet then goes to ssh2's parser).
   */
  waitingRead(id: number, pktLen: number): WaitingRead | undefined;
  /** Removes request `id` from ssh2's table as its DATA handler does (and logs like it). Call before its `cb`. */
  settle(id: number, nb: number): void;
}

/** The read-request table over ssh2's fields (or a test double of them). */
export function readRequestTable(s: Pick<Ssh2SftpInternals, '_requests' | '_version' | '_maxInPktLen' | '_debug'>): ReadRequestTable {
  return {
    waitingRead(id, pktLen) {
      const ready = typeof s._version === 'number' && s._version !== -1 && typeof s._maxInPktLen === 'number';
      if (!ready || pktLen > (s._maxInPktLen as number)) return undefined;
      const req = s._requests[id];
      return req !== undefined && typeof req.cb === 'function' && Buffer.isBuffer(req.buffer) ? (req as WaitingRead) : undefined;
    },
    settle(id, nb) {
      delete s._requests[id];
      if (typeof s._debug === 'function') (s._debug as (m: string) => void)(`SFTP: Inbound: Received DATA (id:${id}, ${nb})`);
    },
  };
}

/**
 * Bounds the inbound SFTP work done in one turn of the event loop (issue 18 item 7). libuv reads
 * a readable socket up to 32 times (64 KiB each) before it goes back to the loop, and ssh2
 * deciphers and dispatches each chunk at once: on loopback one such poll carried up to 2 MiB of
 * DATA replies, 10-30 ms during which the host's timers and other I/O waited. Once `budget`
 * bytes of channel data went through in the current turn, the stream is paused (Node then stops
 * reading the socket) until `setImmediate`, the end of this poll phase; the next turn runs timers
 * and other callbacks first, then reads on. Nothing is dropped or reordered: bytes already read
 * wait in the stream's buffer. A stream paused by someone else is left as it is.
 *
 * One per transport stream (shared by every SFTP session of a connection): see {@link turnBudgetOf}.
 *
 * @internal
 */
export class TurnBudget {
  private used = 0;
  private scheduled = false;
  private pausedByUs = false;
  /** Turns in which the stream was paused (a counter for tests and diagnostics). */
  pauses = 0;

  constructor(
    private readonly sock: PausableStream,
    readonly budget: number,
  ) {}

  private readonly endTurn = (): void => {
    this.used = 0;
    this.scheduled = false;
    if (!this.pausedByUs) return;
    this.pausedByUs = false;
    if (this.sock.destroyed !== true && this.sock.isPaused()) this.sock.resume();
  };

  /** `n` bytes of channel data were handled in this turn. */
  consume(n: number): void {
    this.used += n;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.endTurn);
    }
    if (this.used >= this.budget && !this.pausedByUs && !this.sock.isPaused()) {
      this.pausedByUs = true;
      this.pauses++;
      this.sock.pause();
    }
  }
}

/** Channel-data bytes handled per event-loop turn before the transport stream is paused to the next turn. */
export const TURN_BUDGET_BYTES = 256 * 1024;
const budgets = new WeakMap<PausableStream, TurnBudget>();

/** The {@link TurnBudget} of the transport stream `sock` (created on first use, {@link TURN_BUDGET_BYTES}). */
export function turnBudgetOf(sock: PausableStream): TurnBudget {
  let b = budgets.get(sock);
  if (b === undefined) {
    b = new TurnBudget(sock, TURN_BUDGET_BYTES);
    budgets.set(sock, b);
  }
  return b;
}

const MAX_REQID = 2 ** 32 - 1;

/** One ssh2 SFTP channel, as src/sftp/session.ts uses it. */
export interface SftpChannel {
  /** Largest read per request the server accepts, bytes (at least 1024). */
  readonly maxReadLen: number;
  /** Largest write per request the server accepts, bytes (at least 1024). */
  readonly maxWriteLen: number;
  /** Server extensions from the VERSION packet (a copy). */
  readonly extensions: Readonly<Record<string, string | undefined>>;
  /** The server is OpenSSH (its SYMLINK takes target first). */
  readonly isOpenSSH: boolean;
  /** Largest channel data packet the server accepts, bytes. */
  readonly packetSize: number;
  /** The channel is open for sending. */
  readonly open: boolean;
  /** The next request id (shared with ssh2's own requests). */
  nextId(): number;
  /** Registers `cb` for the reply to request `id` (ssh2 parses the reply and calls it). */
  onReply(id: number, cb: (err?: Error | null, value?: unknown) => void): void;
  /** Sends `payload` or queues what the window cannot take yet (a copy of it with `copyQueued`). */
  send(payload: Buffer, copyQueued?: boolean): void;
  /**
   * Puts a handler in front of ssh2's parser for the channel's inbound bytes. `make` gets the
   * read-request table and `pass` (hands whole packets on to ssh2's parser) and returns the
   * handler, which must pass on every byte it does not consume. After each chunk the window of
   * {@link SftpChannel.keepWindow} (if any) is checked, and the connection's stream is paused to
   * the next event-loop turn once a turn handled {@link TURN_BUDGET_BYTES} (see
   * {@link TurnBudget}). Returns `false` (nothing installed) when ssh2's parser is not at a
   * packet boundary.
   */
  hookInbound(make: (table: ReadRequestTable, pass: (chunk: Buffer) => void) => (data: Buffer) => void): boolean;
  /**
   * Keeps an eager receive window of `sizeBytes` on the channel (window.ts {@link eagerSftpWindow}),
   * topped up after each inbound chunk seen by {@link SftpChannel.hookInbound} once
   * `sizeBytes x topUpFraction` is free (without the hook: granted once, then ssh2's own rule).
   * Replaces a window kept before.
   *
   * @throws SshError `ERR_SSH_SFTP` "ssh2 internals changed" when the window fields differ (ssh2's rule stays).
   */
  keepWindow(options: EagerWindowOptions): EagerWindow;
}

/**
 * The {@link SftpChannel} over an ssh2 SFTP object, after {@link checkSftpInternals}.
 *
 * @throws SshError `ERR_SSH_SFTP` "ssh2 internals changed" when the shape differs.
 */
export function sftpChannel(sftp: ssh2.SFTPWrapper): SftpChannel {
  const s = checkSftpInternals(sftp);
  let window: EagerWindow | undefined;

  const tryWrite = (payload: Buffer): Buffer | undefined => {
    const out = s.outgoing;
    if (out.state !== 'open') return undefined;
    let p = 0;
    const len = payload.length;
    while (len - p > 0 && out.window > 0) {
      const n = Math.min(len - p, out.window, out.packetSize);
      out.window -= n;
      s._protocol.channelData(out.id, p === 0 && n === len ? payload : payload.subarray(p, p + n));
      p += n;
    }
    if (len - p > 0) {
      s._waitWindow = true;
      s._chunkcb = drain;
      return p === 0 ? payload : payload.subarray(p);
    }
    return undefined;
  };

  /** Called by ssh2 (as `channel._chunkcb()`) when the window opens again. */
  const drain = (): void => {
    s._chunkcb = undefined;
    const buf = s._buffer;
    let i = 0;
    while (i < buf.length) {
      const rest = tryWrite(buf[i]!);
      if (rest !== undefined) {
        buf[i] = rest;
        if (i > 0) s._buffer = buf.slice(i);
        return;
      }
      i++;
    }
    s._buffer = [];
  };

  return {
    maxReadLen: Math.max(1024, s._maxReadLen),
    maxWriteLen: Math.max(1024, s._maxWriteLen),
    extensions: { ...s._extensions },
    isOpenSSH: Boolean(s._isOpenSSH),
    get packetSize(): number {
      return s.outgoing.packetSize;
    },
    get open(): boolean {
      return s.outgoing.state === 'open';
    },
    nextId(): number {
      s._writeReqid = (s._writeReqid + 1) & MAX_REQID;
      return s._writeReqid >>> 0;
    },
    onReply(id, cb): void {
      s._requests[id] = { cb };
    },
    send(payload, copyQueued = false): void {
      if (s._buffer.length > 0) {
        s._buffer.push(copyQueued ? Buffer.from(payload) : payload);
        return;
      }
      const rest = tryWrite(payload);
      if (rest) s._buffer.push(copyQueued ? Buffer.from(rest) : rest);
    },
    hookInbound(make): boolean {
      // only safe from a packet boundary
      if (s._pktLenBytes !== 0 || s._pktPos !== 0) return false;
      const orig = s.push.bind(s);
      const turn = turnBudgetOf(s._client._sock);
      const handler = make(readRequestTable(s), (chunk) => {
        orig(chunk);
      });
      s.push = (data: Buffer | null): unknown => {
        if (data === null) return orig(data);
        handler(data);
        turn.consume(data.length);
        // before ssh2's own check (which only acts below 1 MiB) would
        window?.check();
        return undefined;
      };
      return true;
    },
    keepWindow(options): EagerWindow {
      const w = eagerSftpWindow(sftp, options);
      window?.stop();
      window = w;
      return w;
    },
  };
}
