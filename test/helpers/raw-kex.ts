/**
 * A minimal raw-TCP SSH key-exchange server for hostile-kex tests: it speaks the unencrypted start
 * of RFC 4253 (identification string, binary packets of section 6, KEXINIT of section 7.1) and the
 * group exchange of RFC 4419, enough to send a chosen `SSH_MSG_KEX_DH_GEX_GROUP`. ssh2's `Server`
 * cannot be used here: it does not implement group exchange ("Group exchange not implemented for
 * server"). Written for the tests; no npm package speaks raw SSH key exchange as a server.
 */
import { rawServer } from '../reliability/util.js';

/** RFC 4253 section 12 / RFC 4419 section 5 message numbers. */
export const MSG = {
  DISCONNECT: 1,
  IGNORE: 2,
  KEXINIT: 20,
  NEWKEYS: 21,
  KEX_DH_GEX_GROUP: 31,
  KEX_DH_GEX_INIT: 32,
  KEX_DH_GEX_REPLY: 33,
  KEX_DH_GEX_REQUEST: 34,
} as const;

/** An SSH `string` (uint32 length + bytes). */
export function sshString(b: Buffer | string): Buffer {
  const body = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** An SSH `mpint` of a non-negative magnitude (RFC 4251 section 5): a leading 0x00 when the top bit is set. */
export function sshMpint(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length && magnitude[i] === 0) i++;
  let b = magnitude.subarray(i);
  if (b.length > 0 && ((b[0] as number) & 0x80) !== 0) b = Buffer.concat([Buffer.from([0]), b]);
  return sshString(b);
}

/** An unencrypted binary packet (RFC 4253 section 6): length, padding length, payload, >= 4 bytes of padding to a multiple of 8. */
export function plainPacket(payload: Buffer): Buffer {
  let pad = 8 - ((4 + 1 + payload.length) % 8);
  if (pad < 4) pad += 8;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + payload.length + pad);
  head[4] = pad;
  return Buffer.concat([head, payload, Buffer.alloc(pad)]);
}

/** A KEXINIT payload (RFC 4253 section 7.1) offering exactly `kex`, ssh-ed25519, aes128-ctr, hmac-sha2-256, no compression. */
export function kexinitPayload(kex: string): Buffer {
  return Buffer.concat([
    Buffer.from([MSG.KEXINIT]),
    Buffer.alloc(16, 9),
    sshString(kex),
    sshString('ssh-ed25519'),
    sshString('aes128-ctr'),
    sshString('aes128-ctr'),
    sshString('hmac-sha2-256'),
    sshString('hmac-sha2-256'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    sshString(''),
    Buffer.from([0, 0, 0, 0, 0]),
  ]);
}

/**
 * Splits an unencrypted SSH byte stream: the peer's identification line first, then packet payloads.
 * Bounded: a line over 255 bytes or a packet over 35,000 bytes (RFC 4253 sections 4.2, 6.1) throws.
 */
export class PlainStream {
  ident: string | undefined;
  #buf = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    if (this.ident === undefined) {
      const nl = this.#buf.indexOf('\n');
      if (nl === -1) {
        if (this.#buf.length > 255) throw new Error('identification line too long');
        return out;
      }
      this.ident = this.#buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
      this.#buf = this.#buf.subarray(nl + 1);
    }
    while (this.#buf.length >= 5) {
      const len = this.#buf.readUInt32BE(0);
      if (len > 35_000) throw new Error(`packet length ${len} too large`);
      if (this.#buf.length < 4 + len) break;
      const padLen = this.#buf[4] as number;
      out.push(Buffer.from(this.#buf.subarray(5, 4 + len - padLen)));
      this.#buf = this.#buf.subarray(4 + len);
    }
    return out;
  }
}

/** What one connection to {@link gexServer} did. */
export interface GexSession {
  clientIdent?: string;
  /** min, n (preferred), max of the client's KEX_DH_GEX_REQUEST (RFC 4419 section 3), in bits. */
  request?: { min: number; pref: number; max: number };
  /** The client went on with KEX_DH_GEX_INIT: it accepted the group. */
  sentInit: boolean;
  /** Reason code of a DISCONNECT the client sent (RFC 4253 section 11.1). */
  disconnectReason?: number;
}

/**
 * A server that offers only `diffie-hellman-group-exchange-sha256` and answers every
 * KEX_DH_GEX_REQUEST with the group (`prime`, `generator`) whatever the client asked for.
 * It stops at the client's KEX_DH_GEX_INIT (recorded) and closes.
 */
export async function gexServer(prime: Buffer, generator = Buffer.from([2])): Promise<{ port: number; sessions: GexSession[]; close: () => Promise<void> }> {
  const sessions: GexSession[] = [];
  const srv = await rawServer((s) => {
    const session: GexSession = { sentInit: false };
    sessions.push(session);
    const stream = new PlainStream();
    s.write('SSH-2.0-HostileGex_1.0\r\n');
    s.write(plainPacket(kexinitPayload('diffie-hellman-group-exchange-sha256')));
    s.on('data', (chunk: Buffer) => {
      let payloads: Buffer[];
      try {
        payloads = stream.push(chunk);
      } catch {
        s.destroy();
        return;
      }
      if (stream.ident !== undefined) session.clientIdent = stream.ident;
      for (const p of payloads) {
        switch (p[0]) {
          case MSG.KEX_DH_GEX_REQUEST:
            session.request = { min: p.readUInt32BE(1), pref: p.readUInt32BE(5), max: p.readUInt32BE(9) };
            s.write(plainPacket(Buffer.concat([Buffer.from([MSG.KEX_DH_GEX_GROUP]), sshMpint(prime), sshMpint(generator)])));
            break;
          case MSG.KEX_DH_GEX_INIT:
            session.sentInit = true;
            s.end();
            break;
          case MSG.DISCONNECT:
            session.disconnectReason = p.readUInt32BE(1);
            break;
          default:
            break;
        }
      }
    });
  });
  return { port: srv.port, sessions, close: srv.close };
}
