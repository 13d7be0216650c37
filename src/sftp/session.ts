/**
 * One SFTP session (an ssh2 `SFTPWrapper` on one link) and the SFTP v3 requests ssh-tether sends
 * on it.
 *
 * Paths travel as bytes: SFTP v3 file names are byte strings (draft-ietf-secsh-filexfer-02
 * section 6), and ssh2's path-taking methods only accept JS strings (always UTF-8 encoded) and
 * decode every name the server returns as UTF-8, so a name that is not valid UTF-8 could not be
 * listed and then opened. So the path-taking requests are encoded here, sent through the
 * wrapper's own send path (same request ids, same window handling, same reply dispatch), and the
 * raw bytes of `SSH_FXP_NAME` replies are captured as they arrive (see {@link NameCapture}).
 * This relies on ssh2 1.x internals (`_requests`, `_writeReqid`, `_buffer`, `outgoing`), which
 * are checked when the session opens. Reads use ssh2's public `read`, with `DATA` replies copied
 * straight into the reader's buffer (see sftp/inbound.ts); writes go through
 * {@link SftpSession.write}, which sends the data without copying it into a request buffer.
 *
 * @internal
 * @module sftp/session
 */
import { setMaxListeners } from 'node:events';
import type ssh2 from 'ssh2';
import { SshError } from '../errors.js';
import type { Link } from '../connection/link.js';
import { abortReason } from '../internal/cancel.js';
import { mapSftpError, SftpStatus, SshSftpError } from './errors.js';
import { DataReplySplitter } from './inbound.js';

/** A remote path: a string (sent as UTF-8) or the exact bytes. */
export type RemotePath = string | Buffer;

/** File attributes as the server sent them (SFTP v3 ATTRS); absent fields are `undefined`. */
export interface RawAttrs {
  size: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  mode: number | undefined;
  /** Seconds since the epoch. */
  atime: number | undefined;
  /** Seconds since the epoch. */
  mtime: number | undefined;
}

/** Attributes to set (SETSTAT / FSETSTAT / OPEN / MKDIR); times in seconds since the epoch. */
export interface SetAttrs {
  size?: number | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  mode?: number | undefined;
  atime?: number | undefined;
  mtime?: number | undefined;
}

/** One `SSH_FXP_NAME` entry, with the exact bytes of the name. */
export interface RawName {
  filename: Buffer;
  longname: Buffer;
  attrs: RawAttrs;
}

type ReqCallback = (err?: unknown, value?: unknown) => void;

/** The parts of ssh2 1.x's SFTP object this module relies on. */
interface SftpInternals {
  _writeReqid: number;
  _requests: Record<number, { cb?: ReqCallback } | undefined>;
  _buffer: Buffer[];
  _waitWindow: boolean;
  _chunkcb: (() => void) | undefined;
  _maxReadLen: number;
  _maxWriteLen: number;
  _extensions: Record<string, string | undefined>;
  _isOpenSSH: boolean;
  _pktLenBytes: number;
  _pktPos: number;
  _version?: unknown;
  _maxInPktLen?: unknown;
  _debug?: unknown;
  outgoing: { state: string; window: number; packetSize: number; id: number };
  incoming: { window: number };
  _protocol: { channelData(id: number, data: Buffer): void; channelWindowAdjust?: (id: number, amount: number) => void };
  push(data: Buffer | null): unknown;
}

/** SFTP v3 request types (draft-ietf-secsh-filexfer-02 section 3). */
const REQ = {
  OPEN: 3,
  CLOSE: 4,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  EXTENDED: 200,
} as const;

const FXP_NAME = 104;
/** Receive window kept open on the SFTP channel, bytes (ssh2's default is 2 MiB). */
const RECV_WINDOW = 16 * 1024 * 1024;
const RECV_WINDOW_LOW = 8 * 1024 * 1024;
const MAX_REQID = 2 ** 32 - 1;

/** SFTP v3 open flags (draft-ietf-secsh-filexfer-02 section 6.3). */
export const OpenFlags = {
  READ: 0x01,
  WRITE: 0x02,
  APPEND: 0x04,
  CREAT: 0x08,
  TRUNC: 0x10,
  EXCL: 0x20,
} as const;

const ATTR = { SIZE: 0x1, UIDGID: 0x2, PERMISSIONS: 0x4, ACMODTIME: 0x8, EXTENDED: 0x80000000 } as const;

/** Encodes a remote path as bytes (strings as UTF-8). */
export function pathBytes(p: RemotePath): Buffer {
  return Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8');
}

/** Builds one SFTP request packet: uint32 length, byte type, uint32 id, then the fields. */
class PacketBuilder {
  private readonly parts: Buffer[] = [];
  private size = 9;

  u32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(n >>> 0, 0);
    return this.push(b);
  }

  u64(n: number): this {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64BE(BigInt(Math.max(0, Math.trunc(n))), 0);
    return this.push(b);
  }

  string(s: Buffer | string): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    this.u32(b.length);
    return this.push(b);
  }

  attrs(a: SetAttrs | undefined): this {
    let flags = 0;
    const b = new PacketBuilder();
    if (a?.size !== undefined) {
      flags |= ATTR.SIZE;
      b.u64(a.size);
    }
    if (a?.uid !== undefined || a?.gid !== undefined) {
      if (a.uid === undefined || a.gid === undefined) {
        throw new SshSftpError('uid and gid must be set together (SFTP v3 sets both in one field)', {
          statusCode: SftpStatus.BAD_MESSAGE,
        });
      }
      flags |= ATTR.UIDGID;
      b.u32(a.uid).u32(a.gid);
    }
    if (a?.mode !== undefined) {
      flags |= ATTR.PERMISSIONS;
      b.u32(a.mode);
    }
    if (a?.atime !== undefined || a?.mtime !== undefined) {
      flags |= ATTR.ACMODTIME;
      b.u32(Math.floor(a.atime ?? a.mtime ?? 0)).u32(Math.floor(a.mtime ?? a.atime ?? 0));
    }
    this.u32(flags);
    for (const p of b.parts) this.push(p);
    return this;
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  build(type: number, reqid: number): Buffer {
    const out = Buffer.allocUnsafe(this.size);
    out.writeUInt32BE(this.size - 4, 0);
    out[4] = type;
    out.writeUInt32BE(reqid, 5);
    let p = 9;
    for (const part of this.parts) {
      part.copy(out, p);
      p += part.length;
    }
    return out;
  }
}

/**
 * Watches the bytes of the SFTP channel (before ssh2 parses them) and keeps the complete
 * payload of the `SSH_FXP_NAME` replies to the request ids it was asked to watch, so that names
 * can be decoded as bytes. It only reads packet headers of everything else (no copies).
 */
class NameCapture {
  private readonly hdr = Buffer.alloc(9);
  private hdrLen = 0;
  private remaining = 0;
  private capture: Buffer | undefined;
  private capPos = 0;
  private capId = 0;
  private broken = false;
  readonly wanted = new Set<number>();
  readonly captured = new Map<number, Buffer>();

  get ok(): boolean {
    return !this.broken;
  }

  disable(): void {
    this.broken = true;
  }

  scan(data: Buffer): void {
    if (this.broken) return;
    let p = 0;
    const len = data.length;
    while (p < len) {
      if (this.hdrLen < 9) {
        const take = Math.min(9 - this.hdrLen, len - p);
        data.copy(this.hdr, this.hdrLen, p, p + take);
        this.hdrLen += take;
        p += take;
        if (this.hdrLen < 9) return;
        const pktLen = this.hdr.readUInt32BE(0);
        if (pktLen < 5) {
          this.broken = true;
          return;
        }
        const type = this.hdr[4];
        const id = this.hdr.readUInt32BE(5);
        this.remaining = pktLen - 5;
        if (type === FXP_NAME && this.wanted.has(id)) {
          this.capture = Buffer.allocUnsafe(pktLen);
          this.hdr.copy(this.capture, 0, 4, 9);
          this.capPos = 5;
          this.capId = id;
        }
      } else {
        const take = Math.min(this.remaining, len - p);
        if (this.capture) data.copy(this.capture, this.capPos, p, p + take);
        this.capPos += take;
        this.remaining -= take;
        p += take;
      }
      if (this.hdrLen === 9 && this.remaining === 0) {
        if (this.capture) {
          this.captured.set(this.capId, this.capture);
          this.capture = undefined;
        }
        this.hdrLen = 0;
      }
    }
  }
}

/** Reads SFTP v3 ATTRS at `p`; returns the attributes and the offset after them. */
function parseAttrs(b: Buffer, p: number): [RawAttrs, number] {
  const flags = b.readUInt32BE(p);
  p += 4;
  const a: RawAttrs = { size: undefined, uid: undefined, gid: undefined, mode: undefined, atime: undefined, mtime: undefined };
  if (flags & ATTR.SIZE) {
    a.size = Number(b.readBigUInt64BE(p));
    p += 8;
  }
  if (flags & ATTR.UIDGID) {
    a.uid = b.readUInt32BE(p);
    a.gid = b.readUInt32BE(p + 4);
    p += 8;
  }
  if (flags & ATTR.PERMISSIONS) {
    a.mode = b.readUInt32BE(p);
    p += 4;
  }
  if (flags & ATTR.ACMODTIME) {
    a.atime = b.readUInt32BE(p);
    a.mtime = b.readUInt32BE(p + 4);
    p += 8;
  }
  if (flags & ATTR.EXTENDED) {
    const count = b.readUInt32BE(p);
    p += 4;
    for (let i = 0; i < count; i++) {
      p += 4 + b.readUInt32BE(p);
      p += 4 + b.readUInt32BE(p);
    }
  }
  return [a, p];
}

/** Decodes a captured `SSH_FXP_NAME` payload (type byte first). Throws RangeError when malformed. */
function parseNames(payload: Buffer): RawName[] {
  let p = 5;
  const count = payload.readUInt32BE(p);
  p += 4;
  const out: RawName[] = [];
  for (let i = 0; i < count; i++) {
    const fl = payload.readUInt32BE(p);
    const filename = Buffer.from(payload.subarray(p + 4, p + 4 + fl));
    p += 4 + fl;
    const ll = payload.readUInt32BE(p);
    const longname = Buffer.from(payload.subarray(p + 4, p + 4 + ll));
    p += 4 + ll;
    if (p > payload.length) throw new RangeError('truncated NAME packet');
    const [attrs, next] = parseAttrs(payload, p);
    p = next;
    out.push({ filename, longname, attrs });
  }
  return out;
}

function toRawAttrs(v: unknown): RawAttrs {
  const s = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const num = (k: string): number | undefined => (typeof s[k] === 'number' ? s[k] : undefined);
  return { size: num('size'), uid: num('uid'), gid: num('gid'), mode: num('mode'), atime: num('atime'), mtime: num('mtime') };
}

function isInternals(v: unknown): v is SftpInternals {
  const s = v as Partial<SftpInternals> | null;
  return (
    typeof s === 'object' &&
    s !== null &&
    typeof s._writeReqid === 'number' &&
    typeof s._requests === 'object' &&
    Array.isArray(s._buffer) &&
    typeof s.outgoing === 'object' &&
    typeof s._protocol?.channelData === 'function' &&
    typeof s.push === 'function' &&
    typeof s._maxReadLen === 'number' &&
    typeof s._maxWriteLen === 'number'
  );
}

/**
 * One open SFTP session on one link. `dead` aborts (reason: an SshError) when the link dies,
 * the channel closes or the session is closed; every request then rejects with that reason.
 *
 * @internal
 */
/** File content bytes read from and written to the server over SFTP. */
export interface SftpCounters {
  bytesRead: number;
  bytesWritten: number;
}

export class SftpSession {
  /** The ssh2 wrapper (public API used for read/write/close/fstat/fsetstat). */
  readonly sftp: ssh2.SFTPWrapper;
  /** The link this session runs on. */
  readonly link: Link;
  /** Aborted with an SshError when the session can no longer be used. */
  readonly dead: AbortSignal;
  /** Largest read the server accepts per request (`limits@openssh.com` max-read-length), bytes. */
  readonly maxReadLen: number;
  /** Largest write the server accepts per request (`limits@openssh.com` max-write-length), bytes. */
  readonly maxWriteLen: number;
  /** Server extensions from the VERSION packet (name -> data). */
  readonly extensions: Readonly<Record<string, string | undefined>>;

  private readonly internals: SftpInternals;
  private readonly ctl = new AbortController();
  private readonly names = new NameCapture();
  private readonly cleanup: () => void;

  /** File bytes moved over SFTP, shared by every session of one client (for health/metrics). */
  readonly counters: SftpCounters;

  constructor(link: Link, sftp: ssh2.SFTPWrapper, counters: SftpCounters = { bytesRead: 0, bytesWritten: 0 }) {
    this.counters = counters;
    this.sftp = sftp;
    this.link = link;
    this.dead = this.ctl.signal;
    // Every request in flight listens to it: parallel transfers (16 requests each) are normal,
    // not a leak, and must not raise MaxListenersExceededWarning.
    setMaxListeners(0, this.dead);
    if (!isInternals(sftp)) {
      throw new SshError('ERR_SSH_SFTP', 'unsupported ssh2 SFTP object (ssh-tether needs ssh2 1.x internals)');
    }
    const s = sftp;
    this.internals = s;
    this.maxReadLen = Math.max(1024, s._maxReadLen);
    this.maxWriteLen = Math.max(1024, s._maxWriteLen);
    this.extensions = { ...s._extensions };

    // Watch raw channel bytes for NAME replies; only safe from a packet boundary.
    if (s._pktLenBytes === 0 && s._pktPos === 0) {
      const orig = s.push.bind(s);
      const names = this.names;
      const adjust = typeof s._protocol.channelWindowAdjust === 'function' && typeof s.incoming?.window === 'number';
      const splitter = new DataReplySplitter(s, orig);
      s.push = (data: Buffer | null): unknown => {
        if (data === null) return orig(data);
        names.scan(data);
        splitter.push(data);
        // ssh2 keeps a fixed 2 MiB receive window for every channel; many 255 KiB reads in
        // flight need more (OpenSSH's sftp client uses a larger one too), so top it up here
        // before ssh2's own check (which only acts below 1 MiB) would.
        if (adjust && s.incoming.window < RECV_WINDOW_LOW && s.outgoing.state === 'open') {
          const amount = RECV_WINDOW - s.incoming.window;
          s.incoming.window += amount;
          s._protocol.channelWindowAdjust!(s.outgoing.id, amount);
        }
        return undefined;
      };
    } else {
      this.names.disable();
    }

    const onLinkAbort = (): void => this.kill(abortReason(link.signal, 'sftp'));
    const onClose = (): void => this.kill(new SshError('ERR_SSH_CONNECTION_LOST', 'SFTP session closed by the server'));
    const onError = (err: unknown): void =>
      this.kill(new SshError('ERR_SSH_CONNECTION_LOST', `SFTP session failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
    sftp.on('close', onClose);
    sftp.on('end', onClose);
    sftp.on('error', onError);
    if (link.signal.aborted) onLinkAbort();
    else link.signal.addEventListener('abort', onLinkAbort, { once: true });
    this.cleanup = () => {
      link.signal.removeEventListener('abort', onLinkAbort);
      sftp.removeListener('close', onClose);
      sftp.removeListener('end', onClose);
      // keep a no-op 'error' listener: a late error must never crash the host
      sftp.removeListener('error', onError);
      sftp.on('error', () => undefined);
    };
  }

  /** Why the session is dead (an SshError), or undefined while alive. */
  get deadReason(): SshError | undefined {
    return this.dead.aborted ? abortReason(this.dead, 'sftp') : undefined;
  }

  /** Whether the server supports `posix-rename@openssh.com` (version "1"). */
  get hasPosixRename(): boolean {
    return this.extensions['posix-rename@openssh.com'] === '1';
  }

  /** Whether requests can still be sent. */
  get alive(): boolean {
    return !this.dead.aborted && this.internals.outgoing.state === 'open';
  }

  /** Marks the session dead with `reason` (idempotent) and closes the channel. */
  kill(reason: SshError): void {
    if (this.ctl.signal.aborted) return;
    this.ctl.abort(reason);
    this.cleanup();
    try {
      this.sftp.end();
    } catch {
      // the channel may already be gone
    }
  }

  /**
   * Writes `buf[off, off + len)` at byte `position` of the open `handle` (SSH_FXP_WRITE,
   * draft-ietf-secsh-filexfer-02 section 6.4), as ssh2's `write()` does (same request ids and
   * reply dispatch; a request longer than the server's write limit is sent as several; `cb` gets
   * an error with the SFTP status `code`, or `(undefined, off + len)`), but without first copying
   * the data into one request buffer: the request header travels with the first bytes of data in
   * one channel packet and the rest goes out as views of `buf`. With `stable` the caller
   * promises `buf` stays unchanged until `cb` runs, so bytes the channel window cannot take yet
   * wait as views of it; without, they are copied and `buf` is free once `write` returns.
   */
  write(handle: Buffer, buf: Buffer, off: number, len: number, position: number, stable: boolean, cb: (err?: Error | null, end?: number) => void): void {
    if (len === 0) {
      process.nextTick(cb, undefined, 0);
      return;
    }
    const s = this.internals;
    const n = Math.min(len, this.maxWriteLen);
    const headLen = 4 + 1 + 4 + 4 + handle.length + 8 + 4;
    const first = Math.min(n, Math.max(0, s.outgoing.packetSize - headLen));
    const head = Buffer.allocUnsafe(headLen + first);
    const id = this.nextId();
    head.writeUInt32BE(headLen - 4 + n, 0);
    head[4] = REQ.WRITE;
    head.writeUInt32BE(id, 5);
    head.writeUInt32BE(handle.length, 9);
    handle.copy(head, 13);
    let p = 13 + handle.length;
    head.writeUInt32BE(Math.floor(position / 2 ** 32), p);
    head.writeUInt32BE(position >>> 0, p + 4);
    head.writeUInt32BE(n, p + 8);
    p += 12;
    buf.copy(head, p, off, off + first);
    // Past the server's write limit the rest goes in a later request, sent on this one's reply:
    // without `stable` the caller may reuse `buf` by then, so keep a copy of that rest.
    const rest = n < len ? (stable ? buf.subarray(off + n, off + len) : Buffer.from(buf.subarray(off + n, off + len))) : undefined;
    const end = off + len;
    s._requests[id] = {
      cb: (err?: unknown) => {
        if (err) cb(err as Error);
        else if (rest) this.write(handle, rest, 0, rest.length, position + n, true, (e) => (e ? cb(e) : cb(undefined, end)));
        else cb(undefined, end);
      },
    };
    this.send(head);
    if (n > first) this.send(buf.subarray(off + first, off + n), !stable);
  }

  // ------------------------------------------------------------------------------------------
  // raw send (mirrors ssh2's sendOrBuffer: writes what the window allows, buffers the rest)

  private nextId(): number {
    const s = this.internals;
    s._writeReqid = (s._writeReqid + 1) & MAX_REQID;
    return s._writeReqid >>> 0;
  }

  /** Sends `payload` or queues what the window cannot take yet (a copy of it with `copyQueued`). */
  private send(payload: Buffer, copyQueued = false): void {
    const s = this.internals;
    if (s._buffer.length > 0) {
      s._buffer.push(copyQueued ? Buffer.from(payload) : payload);
      return;
    }
    const rest = this.tryWrite(payload);
    if (rest) s._buffer.push(copyQueued ? Buffer.from(rest) : rest);
  }

  private tryWrite(payload: Buffer): Buffer | undefined {
    const s = this.internals;
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
      s._chunkcb = this.drain;
      return p === 0 ? payload : payload.subarray(p);
    }
    return undefined;
  }

  /** Called by ssh2 (as `channel._chunkcb()`) when the window opens again. */
  private readonly drain = (): void => {
    const s = this.internals;
    s._chunkcb = undefined;
    const buf = s._buffer;
    let i = 0;
    while (i < buf.length) {
      const payload = buf[i]!;
      const rest = this.tryWrite(payload);
      if (rest !== undefined) {
        buf[i] = rest;
        if (i > 0) s._buffer = buf.slice(i);
        return;
      }
      i++;
    }
    s._buffer = [];
  };

  /**
   * Sends one request and settles with the reply (`undefined` for OK status, the handle,
   * attrs, or raw names). Rejects with an SshSftpError for an error status, and with the
   * session's death reason or the signal's reason if either aborts first.
   */
  request<T>(
    op: string,
    path: RemotePath | undefined,
    type: number,
    fields: (b: PacketBuilder) => void,
    signal: AbortSignal | undefined,
    kind: 'status' | 'handle' | 'attrs' | 'names',
  ): Promise<T> {
    const dead = this.deadReason;
    if (dead) return Promise.reject(dead);
    if (signal?.aborted) return Promise.reject(abortReason(signal, `sftp ${op}`));
    if (!this.alive) return Promise.reject(new SshError('ERR_SSH_CONNECTION_LOST', 'SFTP session is closed'));
    let payload: Buffer;
    const b = new PacketBuilder();
    try {
      fields(b);
    } catch (err) {
      return Promise.reject(mapSftpError(err, op, path));
    }
    const id = this.nextId();
    try {
      payload = b.build(type, id);
    } catch (err) {
      return Promise.reject(mapSftpError(err, op, path));
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const done = (): void => {
        settled = true;
        this.dead.removeEventListener('abort', onAbort);
        signal?.removeEventListener('abort', onAbort);
        if (kind === 'names') {
          this.names.wanted.delete(id);
          this.names.captured.delete(id);
        }
      };
      const onAbort = (): void => {
        if (settled) return;
        done();
        reject(this.dead.aborted ? abortReason(this.dead, 'sftp') : abortReason(signal!, `sftp ${op}`));
      };
      const cb: ReqCallback = (err, value) => {
        if (settled) {
          // abandoned (abort): a handle that still arrives is closed, never leaked
          if (kind === 'handle' && Buffer.isBuffer(value)) this.closeQuietly(value);
          return;
        }
        let raw: Buffer | undefined;
        if (kind === 'names') raw = this.names.captured.get(id);
        done();
        if (err !== undefined && err !== null) {
          reject(mapSftpError(err, op, path, this.deadReason));
          return;
        }
        switch (kind) {
          case 'status':
            resolve(undefined as T);
            return;
          case 'handle':
            if (!Buffer.isBuffer(value)) {
              reject(new SshSftpError(`sftp ${op}: expected a handle`, { statusCode: SftpStatus.BAD_MESSAGE, path }));
              return;
            }
            resolve(value as T);
            return;
          case 'attrs':
            resolve(toRawAttrs(value) as T);
            return;
          case 'names':
            try {
              if (raw !== undefined) {
                resolve(parseNames(raw) as T);
              } else {
                // no raw capture (should not happen): fall back on ssh2's UTF-8 decoded names
                const list = Array.isArray(value) ? (value as { filename: string; longname: string; attrs: unknown }[]) : [];
                resolve(
                  list.map((n) => ({
                    filename: Buffer.from(n.filename, 'utf8'),
                    longname: Buffer.from(n.longname, 'utf8'),
                    attrs: toRawAttrs(n.attrs),
                  })) as T,
                );
              }
            } catch (e) {
              reject(new SshSftpError(`sftp ${op}: malformed NAME reply`, { statusCode: SftpStatus.BAD_MESSAGE, path, cause: e }));
            }
            return;
        }
      };
      this.dead.addEventListener('abort', onAbort, { once: true });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (kind === 'names' && this.names.ok) this.names.wanted.add(id);
      this.internals._requests[id] = { cb };
      this.send(payload);
    });
  }

  // ------------------------------------------------------------------------------------------
  // requests

  /** SSH_FXP_OPEN. Resolves with the handle. */
  open(path: RemotePath, flags: number, attrs: SetAttrs | undefined, signal?: AbortSignal): Promise<Buffer> {
    const p = pathBytes(path);
    return this.request('open', path, REQ.OPEN, (b) => b.string(p).u32(flags).attrs(attrs), signal, 'handle');
  }

  /** SSH_FXP_OPENDIR. Resolves with the handle. */
  opendir(path: RemotePath, signal?: AbortSignal): Promise<Buffer> {
    const p = pathBytes(path);
    return this.request('opendir', path, REQ.OPENDIR, (b) => b.string(p), signal, 'handle');
  }

  /** SSH_FXP_READDIR. Resolves with the next names, or `undefined` at the end (EOF status). */
  async readdir(handle: Buffer, path: RemotePath, signal?: AbortSignal): Promise<RawName[] | undefined> {
    try {
      return await this.request<RawName[]>('readdir', path, REQ.READDIR, (b) => b.string(handle), signal, 'names');
    } catch (err) {
      if (err instanceof SshSftpError && err.statusCode === SftpStatus.EOF) return undefined;
      throw err;
    }
  }

  /** SSH_FXP_CLOSE. */
  close(handle: Buffer, path: RemotePath | undefined, signal?: AbortSignal): Promise<void> {
    return this.request('close', path, REQ.CLOSE, (b) => b.string(handle), signal, 'status');
  }

  /** SSH_FXP_STAT (follows symlinks). */
  stat(path: RemotePath, signal?: AbortSignal): Promise<RawAttrs> {
    const p = pathBytes(path);
    return this.request('stat', path, REQ.STAT, (b) => b.string(p), signal, 'attrs');
  }

  /** SSH_FXP_LSTAT (does not follow symlinks). */
  lstat(path: RemotePath, signal?: AbortSignal): Promise<RawAttrs> {
    const p = pathBytes(path);
    return this.request('lstat', path, REQ.LSTAT, (b) => b.string(p), signal, 'attrs');
  }

  /** SSH_FXP_FSTAT. */
  fstat(handle: Buffer, path: RemotePath | undefined, signal?: AbortSignal): Promise<RawAttrs> {
    return this.request('fstat', path, REQ.FSTAT, (b) => b.string(handle), signal, 'attrs');
  }

  /** SSH_FXP_SETSTAT. */
  setstat(path: RemotePath, attrs: SetAttrs, signal?: AbortSignal): Promise<void> {
    const p = pathBytes(path);
    return this.request('setstat', path, REQ.SETSTAT, (b) => b.string(p).attrs(attrs), signal, 'status');
  }

  /** SSH_FXP_FSETSTAT. */
  fsetstat(handle: Buffer, path: RemotePath | undefined, attrs: SetAttrs, signal?: AbortSignal): Promise<void> {
    return this.request('fsetstat', path, REQ.FSETSTAT, (b) => b.string(handle).attrs(attrs), signal, 'status');
  }

  /** SSH_FXP_REMOVE (files and symlinks). */
  remove(path: RemotePath, signal?: AbortSignal): Promise<void> {
    const p = pathBytes(path);
    return this.request('unlink', path, REQ.REMOVE, (b) => b.string(p), signal, 'status');
  }

  /** SSH_FXP_MKDIR. */
  mkdir(path: RemotePath, attrs: SetAttrs | undefined, signal?: AbortSignal): Promise<void> {
    const p = pathBytes(path);
    return this.request('mkdir', path, REQ.MKDIR, (b) => b.string(p).attrs(attrs), signal, 'status');
  }

  /** SSH_FXP_RMDIR. */
  rmdir(path: RemotePath, signal?: AbortSignal): Promise<void> {
    const p = pathBytes(path);
    return this.request('rmdir', path, REQ.RMDIR, (b) => b.string(p), signal, 'status');
  }

  /** SSH_FXP_REALPATH. Resolves with the canonical path bytes. */
  async realpath(path: RemotePath, signal?: AbortSignal): Promise<Buffer> {
    const p = pathBytes(path);
    const names = await this.request<RawName[]>('realpath', path, REQ.REALPATH, (b) => b.string(p), signal, 'names');
    const first = names[0];
    if (!first) throw new SshSftpError('sftp realpath: empty NAME reply', { statusCode: SftpStatus.BAD_MESSAGE, path });
    return first.filename;
  }

  /** SSH_FXP_READLINK. Resolves with the link target bytes. */
  async readlink(path: RemotePath, signal?: AbortSignal): Promise<Buffer> {
    const p = pathBytes(path);
    const names = await this.request<RawName[]>('readlink', path, REQ.READLINK, (b) => b.string(p), signal, 'names');
    const first = names[0];
    if (!first) throw new SshSftpError('sftp readlink: empty NAME reply', { statusCode: SftpStatus.BAD_MESSAGE, path });
    return first.filename;
  }

  /**
   * SSH_FXP_SYMLINK creating `linkPath` pointing at `target`. OpenSSH's server takes the two
   * paths in the opposite order to the draft (target first), as ssh2 also handles.
   */
  symlink(target: RemotePath, linkPath: RemotePath, signal?: AbortSignal): Promise<void> {
    const t = pathBytes(target);
    const l = pathBytes(linkPath);
    const openssh = this.internals._isOpenSSH;
    return this.request(
      'symlink',
      linkPath,
      REQ.SYMLINK,
      (b) => (openssh ? b.string(t).string(l) : b.string(l).string(t)),
      signal,
      'status',
    );
  }

  /** SSH_FXP_RENAME (fails when `to` exists on OpenSSH). */
  rename(from: RemotePath, to: RemotePath, signal?: AbortSignal): Promise<void> {
    const f = pathBytes(from);
    const t = pathBytes(to);
    return this.request('rename', from, REQ.RENAME, (b) => b.string(f).string(t), signal, 'status');
  }

  /** `posix-rename@openssh.com` (OpenSSH PROTOCOL section 4.3): rename(2), replacing `to`. */
  posixRename(from: RemotePath, to: RemotePath, signal?: AbortSignal): Promise<void> {
    const f = pathBytes(from);
    const t = pathBytes(to);
    return this.request(
      'rename',
      from,
      REQ.EXTENDED,
      (b) => b.string('posix-rename@openssh.com').string(f).string(t),
      signal,
      'status',
    );
  }

  /** Closes a handle without waiting or failing (best effort, e.g. after an abort). */
  closeQuietly(handle: Buffer): void {
    if (!this.alive) return;
    this.close(handle, undefined).catch(() => undefined);
  }
}

export type { PacketBuilder };
