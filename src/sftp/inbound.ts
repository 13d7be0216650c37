/**
 * A zero-copy path for `SSH_FXP_DATA` replies (draft-ietf-secsh-filexfer-02 section 7).
 *
 * ssh2's SFTP parser gathers every inbound packet in a buffer of its own before it hands the
 * payload to the reply handler, which then copies the data into the buffer the caller gave to
 * `read()`: for a 255 KiB read that is one 255 KiB allocation and two copies per reply. This
 * splitter sits in front of that parser, follows the packet framing of the channel's bytes, and
 * copies the data of a `DATA` reply straight into the waiting read request's buffer (ssh2's
 * read request, reached through src/ssh2/sftp.ts), then completes the request exactly as ssh2's
 * own handler does (removed from ssh2's table, then `req.cb(undefined, req.buffer, nb)`). Every other packet (and a `DATA`
 * reply no request buffer waits for, or one that is malformed) goes to ssh2's parser unchanged,
 * whole packets at a time and in order, so its state never sees a diverted packet.
 *
 * Written here because no package fits: it is a few lines of framing over ssh2's read-request
 * table, whose internals src/ssh2/sftp.ts checks when the session opens.
 *
 * @internal
 * @module sftp/inbound
 */

import type { ReadRequestTable, WaitingRead } from '../ssh2/sftp.js';
import { SftpStatus, SshSftpError } from './errors.js';

const FXP_DATA = 103;
/** uint32 length + byte type + uint32 request id. */
const HEADER = 9;

/** The read requests the splitter completes (src/ssh2/sftp.ts: ssh2's `_requests`). */
export type DataReplyTarget = ReadRequestTable;

const enum Mode {
  Header,
  Pass,
  Divert,
}

/**
 * Splits the SFTP channel's inbound bytes: `DATA` replies are written into their read request's
 * buffer here, everything else is passed on (as whole packets, in order) to `pass`.
 *
 * @internal
 */
export class DataReplySplitter {
  private readonly hdr = Buffer.alloc(HEADER + 4);
  private mode = Mode.Header;
  private hdrLen = 0;
  /** Bytes of the current packet after its first 9 (Pass) or still to read (Divert). */
  private remaining = 0;
  private pktLen = 0;
  private id = 0;
  private req: WaitingRead | undefined;
  private strLenGot = 0;
  private strLen = 0;
  private strRead = 0;
  private copied = 0;
  private broken = false;

  constructor(
    private readonly s: DataReplyTarget,
    private readonly pass: (chunk: Buffer) => void,
  ) {}

  /** Feeds the next inbound chunk of the channel (never `null`: end goes to ssh2 directly). */
  push(data: Buffer): void {
    if (this.broken) return this.pass(data);
    const len = data.length;
    let p = 0;
    /** Start of bytes of the current Pass packet in `data` not yet passed on. */
    let from = -1;
    while (p < len) {
      if (this.mode === Mode.Header) {
        const start = p;
        const take = Math.min(HEADER - this.hdrLen, len - p);
        const whole = this.hdrLen === 0 && take === HEADER;
        if (!whole) data.copy(this.hdr, this.hdrLen, p, p + take);
        this.hdrLen += take;
        p += take;
        if (this.hdrLen < HEADER) return;
        const h = whole ? data : this.hdr;
        const o = whole ? start : 0;
        const pktLen = h.readUInt32BE(o);
        const type = h[o + 4];
        const id = h.readUInt32BE(o + 5);
        if (pktLen < 5) {
          // Not a packet this framing can follow: hand everything to ssh2 from here on.
          this.broken = true;
          this.pass(whole ? data.subarray(start) : Buffer.concat([this.hdr.subarray(0, HEADER), data.subarray(p)]));
          return;
        }
        this.pktLen = pktLen;
        this.remaining = pktLen - 5;
        const req = type === FXP_DATA && pktLen >= HEADER ? this.s.waitingRead(id, pktLen) : undefined;
        if (req !== undefined) {
          this.mode = Mode.Divert;
          this.id = id;
          this.req = req;
          this.strLenGot = 0;
          this.strLen = 0;
          this.strRead = 0;
          this.copied = 0;
          continue;
        }
        this.mode = Mode.Pass;
        if (whole) from = start;
        else {
          this.pass(Buffer.from(this.hdr.subarray(0, HEADER)));
          from = p;
        }
        if (this.remaining === 0) {
          if (from < p) this.pass(data.subarray(from, p));
          from = -1;
          this.endPacket();
        }
      } else if (this.mode === Mode.Pass) {
        if (from < 0) from = p;
        const take = Math.min(this.remaining, len - p);
        p += take;
        this.remaining -= take;
        if (this.remaining === 0) {
          this.pass(from === 0 && p === len ? data : data.subarray(from, p));
          from = -1;
          this.endPacket();
        }
      } else {
        p = this.divert(data, p);
      }
    }
    // The chunk ended inside a passed packet (possibly right after its header): hand on its part.
    if (from >= 0 && from < p) this.pass(from === 0 && p === len ? data : data.subarray(from, p));
  }

  /** Consumes bytes of a diverted DATA reply from `data` at `p`; returns the new position. */
  private divert(data: Buffer, p: number): number {
    const len = data.length;
    if (this.strLenGot < 4) {
      const take = Math.min(4 - this.strLenGot, len - p, this.remaining);
      data.copy(this.hdr, HEADER + this.strLenGot, p, p + take);
      this.strLenGot += take;
      this.remaining -= take;
      p += take;
      if (this.strLenGot < 4) {
        if (this.remaining === 0) this.malformed();
        return p;
      }
      this.strLen = this.hdr.readUInt32BE(HEADER);
      if (this.strLen > this.remaining) {
        // The data string runs past its packet: let ssh2 see it (it fails the session).
        this.malformed();
      }
      if (this.remaining === 0 && this.mode === Mode.Divert) this.complete();
      return p;
    }
    const take = Math.min(this.remaining, len - p);
    const dest = this.req!.buffer;
    const inString = Math.min(take, this.strLen - this.strRead);
    const n = Math.min(inString, dest.length - this.copied);
    if (n > 0) {
      data.copy(dest, this.copied, p, p + n);
      this.copied += n;
    }
    this.strRead += inString;
    this.remaining -= take;
    p += take;
    if (this.remaining === 0) this.complete();
    return p;
  }

  /**
   * The diverted reply is complete: settle its request as ssh2's DATA handler does, or, when the
   * server sent more data than the READ asked for, fail it with an `ERR_SSH_SFTP` protocol error
   * (as ssh2's own reader does: "Received more data than requested"), never cutting it silently.
   */
  private complete(): void {
    const req = this.req!;
    const id = this.id;
    const sent = this.strLen;
    this.endPacket();
    this.s.settle(id, this.copied);
    if (sent > req.buffer.length) {
      req.cb(
        new SshSftpError(`sftp read: the server sent ${sent} bytes for a read of ${req.buffer.length} (protocol error)`, {
          statusCode: SftpStatus.BAD_MESSAGE,
          reason: 'protocol',
        }),
      );
      return;
    }
    req.cb(undefined, req.buffer, this.copied);
  }

  /**
   * A DATA reply that does not parse: give ssh2 the bytes consumed so far (its parser reports
   * the error as it would have) and pass the rest of the packet through.
   */
  private malformed(): void {
    const consumed = HEADER + this.strLenGot;
    const head = Buffer.alloc(consumed);
    head.writeUInt32BE(this.pktLen, 0);
    head[4] = FXP_DATA;
    head.writeUInt32BE(this.id, 5);
    this.hdr.copy(head, HEADER, HEADER, consumed);
    this.req = undefined;
    this.mode = Mode.Pass;
    this.pass(head);
    if (this.remaining === 0) this.endPacket();
  }

  private endPacket(): void {
    this.mode = Mode.Header;
    this.hdrLen = 0;
    this.req = undefined;
  }
}
