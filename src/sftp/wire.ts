/**
 * The SFTP v3 wire format (draft-ietf-secsh-filexfer-02) as ssh-tether encodes and decodes it:
 * request types and open flags, the request packet builder, ATTRS and `SSH_FXP_NAME` parsers
 * (names kept as exact bytes) and the framing watcher that captures NAME replies. Pure: no I/O
 * and no ssh2 internals; unit-tested in test/unit/sftp-wire.test.ts.
 *
 * @internal
 * @module sftp/wire
 */
import { SftpStatus, SshSftpError } from './errors.js';

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

/** SFTP v3 request types (draft-ietf-secsh-filexfer-02 section 3). */
export const REQ = {
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

/** `SSH_FXP_NAME` reply type (draft-ietf-secsh-filexfer-02 section 3). */
export const FXP_NAME = 104;

/** SFTP v3 open flags (draft-ietf-secsh-filexfer-02 section 6.3). */
export const OpenFlags = {
  READ: 0x01,
  WRITE: 0x02,
  APPEND: 0x04,
  CREAT: 0x08,
  TRUNC: 0x10,
  EXCL: 0x20,
} as const;

/** ATTRS flags (draft-ietf-secsh-filexfer-02 section 5). */
export const ATTR = { SIZE: 0x1, UIDGID: 0x2, PERMISSIONS: 0x4, ACMODTIME: 0x8, EXTENDED: 0x80000000 } as const;

/** Encodes a remote path as bytes (strings as UTF-8). */
export function pathBytes(p: RemotePath): Buffer {
  return Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8');
}

/** Builds one SFTP request packet: uint32 length, byte type, uint32 id, then the fields. */
export class PacketBuilder {
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
export class NameCapture {
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
export function parseAttrs(b: Buffer, p: number): [RawAttrs, number] {
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
export function parseNames(payload: Buffer): RawName[] {
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

/** Attributes from ssh2's parsed object (fields that are not numbers are absent). */
export function toRawAttrs(v: unknown): RawAttrs {
  const s = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const num = (k: string): number | undefined => (typeof s[k] === 'number' ? s[k] : undefined);
  return { size: num('size'), uid: num('uid'), gid: num('gid'), mode: num('mode'), atime: num('atime'), mtime: num('mtime') };
}

/**
 * The head of an `SSH_FXP_WRITE` request (draft-ietf-secsh-filexfer-02 section 6.4) for `n`
 * data bytes at `position` of `handle`, with room for the first `first` data bytes after it:
 * uint32 length, byte type, uint32 id, string handle, uint64 offset, uint32 data length.
 * The caller copies the first data bytes at {@link writeHeadLength}`(handle)`.
 */
export function encodeWriteHead(id: number, handle: Buffer, position: number, n: number, first: number): Buffer {
  const headLen = writeHeadLength(handle);
  const head = Buffer.allocUnsafe(headLen + first);
  head.writeUInt32BE(headLen - 4 + n, 0);
  head[4] = REQ.WRITE;
  head.writeUInt32BE(id, 5);
  head.writeUInt32BE(handle.length, 9);
  handle.copy(head, 13);
  const p = 13 + handle.length;
  head.writeUInt32BE(Math.floor(position / 2 ** 32), p);
  head.writeUInt32BE(position >>> 0, p + 4);
  head.writeUInt32BE(n, p + 8);
  return head;
}

/** Bytes of an `SSH_FXP_WRITE` head before the data (see {@link encodeWriteHead}). */
export function writeHeadLength(handle: Buffer): number {
  return 4 + 1 + 4 + 4 + handle.length + 8 + 4;
}
