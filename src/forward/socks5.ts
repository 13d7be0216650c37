/**
 * The server side of SOCKS5 (RFC 1928) with username/password authentication (RFC 1929),
 * CONNECT only, as used by dynamic forwards (ssh(1) `-D`).
 *
 * Our own implementation: the npm SOCKS server packages are unmaintained or pull in a whole
 * proxy framework, and none exposes the hooks we need (connect through an SSH channel, map
 * channel-open failures to reply codes, bound the handshake in time and size). The `socks`
 * package (a maintained client) is used by the tests as the independent peer.
 *
 * The byte protocol lives in pure functions ({@link parseGreeting}, {@link parseUserPass},
 * {@link parseRequest}, {@link encodeReply}) so it can be unit-tested without a socket;
 * {@link acceptSocks5} drives them on a socket.
 *
 * @module forward/socks5
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { Socket } from 'node:net';
import { ChannelOpenFailure, SshChannelOpenError, SshError } from '../errors.js';

/** SOCKS protocol version byte (RFC 1928 section 3). */
export const SOCKS_VERSION = 0x05;
/** Username/password sub-negotiation version byte (RFC 1929 section 2). */
export const USERPASS_VERSION = 0x01;

/** Authentication methods (RFC 1928 section 3). */
export const SocksMethod = {
  NO_AUTH: 0x00,
  USERNAME_PASSWORD: 0x02,
  NO_ACCEPTABLE: 0xff,
} as const;

/** Request commands (RFC 1928 section 4). */
export const SocksCommand = {
  CONNECT: 0x01,
  BIND: 0x02,
  UDP_ASSOCIATE: 0x03,
} as const;

/** Address types (RFC 1928 section 5). */
export const SocksAddressType = {
  IPV4: 0x01,
  DOMAIN: 0x03,
  IPV6: 0x04,
} as const;

/** Reply codes (RFC 1928 section 6). */
export const SocksReply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** A SOCKS5 reply code (RFC 1928 section 6). */
export type SocksReplyCode = (typeof SocksReply)[keyof typeof SocksReply];

/** Result of a parser: more bytes needed, a protocol error, or a value and the bytes it used. */
export type ParseResult<T> =
  | { readonly status: 'incomplete' }
  | { readonly status: 'error'; readonly message: string; readonly reply?: SocksReplyCode }
  | { readonly status: 'ok'; readonly value: T; readonly consumed: number };

const INCOMPLETE = Object.freeze({ status: 'incomplete' as const });

function fail<T>(message: string, reply?: SocksReplyCode): ParseResult<T> {
  return reply === undefined ? { status: 'error', message } : { status: 'error', message, reply };
}

/**
 * Parses the client greeting `VER NMETHODS METHODS...` (RFC 1928 section 3).
 *
 * @param buf - bytes received so far.
 * @returns the offered method codes, `incomplete`, or `error` when VER is not 5 or no method is offered.
 */
export function parseGreeting(buf: Buffer): ParseResult<number[]> {
  if (buf.length < 1) return INCOMPLETE;
  if (buf[0] !== SOCKS_VERSION) return fail(`unsupported SOCKS version ${buf[0]}`);
  if (buf.length < 2) return INCOMPLETE;
  const n = buf[1]!;
  if (n === 0) return fail('no authentication method offered');
  if (buf.length < 2 + n) return INCOMPLETE;
  return { status: 'ok', value: [...buf.subarray(2, 2 + n)], consumed: 2 + n };
}

/** Credentials of an RFC 1929 request. */
export interface UserPass {
  /** The username bytes. */
  readonly username: Buffer;
  /** The password bytes (a secret: never log it). */
  readonly password: Buffer;
}

/**
 * Parses an RFC 1929 username/password request `VER ULEN UNAME PLEN PASSWD` (VER = 1).
 *
 * @param buf - bytes received after the method selection.
 * @returns the credentials, `incomplete`, or `error` for a wrong version or an empty username.
 */
export function parseUserPass(buf: Buffer): ParseResult<UserPass> {
  if (buf.length < 1) return INCOMPLETE;
  if (buf[0] !== USERPASS_VERSION) return fail(`unsupported username/password version ${buf[0]}`);
  if (buf.length < 2) return INCOMPLETE;
  const ulen = buf[1]!;
  if (ulen === 0) return fail('empty username');
  if (buf.length < 3 + ulen) return INCOMPLETE;
  const plen = buf[2 + ulen]!;
  if (buf.length < 3 + ulen + plen) return INCOMPLETE;
  return {
    status: 'ok',
    value: { username: buf.subarray(2, 2 + ulen), password: buf.subarray(3 + ulen, 3 + ulen + plen) },
    consumed: 3 + ulen + plen,
  };
}

/** A parsed SOCKS5 request (RFC 1928 section 4). */
export interface SocksRequest {
  /** The command (`1` CONNECT, `2` BIND, `3` UDP ASSOCIATE). */
  readonly command: number;
  /** How the destination was given. */
  readonly addressType: 'ipv4' | 'ipv6' | 'domain';
  /** Destination: dotted IPv4, IPv6 text (compressed, no brackets), or the domain name. */
  readonly host: string;
  /** Destination port, 0-65535. */
  readonly port: number;
}

/** Formats 16 bytes as RFC 5952 text (lowercase, longest zero run compressed). */
export function formatIPv6(b: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * Parses a request `VER CMD RSV ATYP DST.ADDR DST.PORT` (RFC 1928 sections 4 and 5).
 *
 * @param buf - bytes received after the (sub-)negotiation.
 * @returns the request (any command; the caller answers BIND/UDP with 0x07), `incomplete`, or
 *   `error` (with `reply` 0x08 for an unknown address type, 0x01 for an empty domain name).
 */
export function parseRequest(buf: Buffer): ParseResult<SocksRequest> {
  if (buf.length < 1) return INCOMPLETE;
  if (buf[0] !== SOCKS_VERSION) return fail(`unsupported SOCKS version ${buf[0]} in request`);
  if (buf.length < 4) return INCOMPLETE;
  const command = buf[1]!;
  const atyp = buf[3]!;
  let host: string;
  let addressType: SocksRequest['addressType'];
  let off: number;
  switch (atyp) {
    case SocksAddressType.IPV4:
      if (buf.length < 4 + 4 + 2) return INCOMPLETE;
      host = `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`;
      addressType = 'ipv4';
      off = 8;
      break;
    case SocksAddressType.IPV6:
      if (buf.length < 4 + 16 + 2) return INCOMPLETE;
      host = formatIPv6(buf.subarray(4, 20));
      addressType = 'ipv6';
      off = 20;
      break;
    case SocksAddressType.DOMAIN: {
      if (buf.length < 5) return INCOMPLETE;
      const len = buf[4]!;
      if (len === 0) return fail('empty domain name', SocksReply.GENERAL_FAILURE);
      if (buf.length < 5 + len + 2) return INCOMPLETE;
      host = buf.toString('latin1', 5, 5 + len);
      addressType = 'domain';
      off = 5 + len;
      break;
    }
    default:
      return fail(`unsupported address type ${atyp}`, SocksReply.ADDRESS_TYPE_NOT_SUPPORTED);
  }
  const port = buf.readUInt16BE(off);
  return { status: 'ok', value: { command, addressType, host, port }, consumed: off + 2 };
}

/**
 * Encodes a reply `VER REP RSV ATYP BND.ADDR BND.PORT` (RFC 1928 section 6).
 *
 * @param code - the reply code.
 * @param bound - the bound address and port to report; default `0.0.0.0:0` (as OpenSSH does).
 *   An IPv4 or IPv6 literal is encoded as such, anything else as a domain name (max 255 bytes).
 */
export function encodeReply(code: SocksReplyCode, bound: { host: string; port: number } = { host: '0.0.0.0', port: 0 }): Buffer {
  const { host, port } = bound;
  let addr: Buffer;
  let atyp: number;
  if (isIPv4(host)) {
    atyp = SocksAddressType.IPV4;
    addr = Buffer.from(host.split('.').map(Number));
  } else if (isIPv6(host)) {
    atyp = SocksAddressType.IPV6;
    addr = ipv6Bytes(host);
  } else {
    atyp = SocksAddressType.DOMAIN;
    const name = Buffer.from(host, 'latin1').subarray(0, 255);
    addr = Buffer.concat([Buffer.from([name.length]), name]);
  }
  const out = Buffer.allocUnsafe(4 + addr.length + 2);
  out[0] = SOCKS_VERSION;
  out[1] = code;
  out[2] = 0;
  out[3] = atyp;
  addr.copy(out, 4);
  out.writeUInt16BE(port & 0xffff, 4 + addr.length);
  return out;
}

function ipv6Bytes(text: string): Buffer {
  const out = Buffer.alloc(16);
  let s = text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4?.[1]) {
    const p = v4[1].split('.').map(Number);
    s = `${s.slice(0, s.length - v4[1].length)}${(((p[0] ?? 0) << 8) | (p[1] ?? 0)).toString(16)}:${(((p[2] ?? 0) << 8) | (p[3] ?? 0)).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.slice(0, 8).forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  return out;
}

/**
 * Picks the SOCKS reply code for a failed `direct-tcpip` channel open (RFC 4254 section 5.1
 * reason codes; OpenSSH puts `strerror()` of the failed connect(2) in the description):
 * prohibited (1) -> 0x02; connect failed (2) -> 0x05 when refused, 0x03 when the network is
 * unreachable, else 0x04 (host unreachable, name resolution failure, timeout); unknown
 * channel type (3) -> 0x07; anything else (resource shortage, lost connection) -> 0x01.
 *
 * @param err - the error from the channel open (an {@link SshChannelOpenError} or any error).
 */
export function replyForChannelError(err: unknown): SocksReplyCode {
  const reason = err instanceof SshChannelOpenError ? err.reason : undefined;
  const text = err instanceof Error ? `${err.message} ${err.cause instanceof Error ? err.cause.message : ''}` : String(err);
  switch (reason) {
    case ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED:
      return SocksReply.NOT_ALLOWED;
    case ChannelOpenFailure.CONNECT_FAILED:
      if (/refused/i.test(text)) return SocksReply.CONNECTION_REFUSED;
      if (/network (is )?unreachable/i.test(text)) return SocksReply.NETWORK_UNREACHABLE;
      return SocksReply.HOST_UNREACHABLE;
    case ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE:
      return SocksReply.COMMAND_NOT_SUPPORTED;
    default:
      return SocksReply.GENERAL_FAILURE;
  }
}

/** Options of {@link acceptSocks5}. */
export interface Socks5AcceptOptions {
  /** Require these RFC 1929 credentials; without it only "no authentication" is offered. */
  readonly auth?: { readonly username: string; readonly password: string } | undefined;
  /** Greeting, authentication and request must complete within this many ms. */
  readonly handshakeTimeoutMs: number;
}

/** A SOCKS5 client that has sent a CONNECT request and waits for the reply. */
export interface Socks5Pending {
  /** The CONNECT request. */
  readonly request: SocksRequest;
  /**
   * Bytes the client sent after its request (optimistic data), to be forwarded first.
   * Empty in the usual case.
   */
  readonly rest: Buffer;
}

/** Longest handshake message we accept: greeting (257) / auth (513) / request (262). */
const MAX_HANDSHAKE_BYTES = 1024;

function sha256(b: Buffer | string): Buffer {
  return createHash('sha256').update(b).digest();
}

/**
 * Runs the server side of a SOCKS5 handshake on `socket` up to a CONNECT request (RFC 1928
 * sections 3-4, RFC 1929). Method selection: username/password (0x02) when `auth` is set,
 * else no authentication (0x00); a client offering neither gets `05 FF` and is closed. Wrong
 * credentials get `01 01` and are closed. BIND and UDP ASSOCIATE get reply 0x07, an unknown
 * address type 0x08, then the socket is closed. A malformed message, more than 1 KiB of
 * handshake, the client ending its side (FIN) before its request is complete, or a handshake
 * not done within `handshakeTimeoutMs` closes the socket.
 *
 * The caller then opens the connection and answers with {@link encodeReply} (0x00 on success).
 * The socket is left paused, without listeners added by this function.
 *
 * @param socket - a freshly accepted socket (flowing or paused).
 * @param options - credentials and the handshake bound.
 * @returns the CONNECT request.
 * @throws {SshError} `ERR_SSH_FORWARD` for every handshake failure (the socket is then
 *   destroyed), `ERR_SSH_TIMEOUT` when the bound ran out.
 */
export function acceptSocks5(socket: Socket, options: Socks5AcceptOptions): Promise<Socks5Pending> {
  return new Promise<Socks5Pending>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let phase: 'greeting' | 'auth' | 'request' = 'greeting';
    let settled = false;
    const expected = options.auth
      ? { user: sha256(options.auth.username), pass: sha256(options.auth.password) }
      : undefined;

    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    const abort = (err: SshError, last?: Buffer): void => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.on('error', () => undefined);
      if (last && !socket.destroyed) socket.end(last, () => socket.destroy());
      else socket.destroy();
      // Bound the lingering half-closed socket too.
      if (!socket.destroyed) setTimeout(() => socket.destroy(), 1_000).unref();
      reject(err);
    };
    const protocolError = (message: string, last?: Buffer): void => {
      abort(new SshError('ERR_SSH_FORWARD', `SOCKS5 handshake failed: ${message}`), last);
    };
    function onError(err: Error): void {
      abort(new SshError('ERR_SSH_FORWARD', `SOCKS5 client socket error: ${err.message}`, { cause: err }));
    }
    function onClose(): void {
      abort(new SshError('ERR_SSH_FORWARD', 'SOCKS5 client closed during the handshake'));
    }
    // The listener allows half-open sockets, so a client's FIN alone never fires 'close': a
    // client that stopped sending before its request was complete can never complete it.
    function onEnd(): void {
      abort(new SshError('ERR_SSH_FORWARD', 'SOCKS5 client ended its side during the handshake'));
    }
    const timer = setTimeout(() => {
      abort(new SshError('ERR_SSH_TIMEOUT', `SOCKS5 handshake not done within ${options.handshakeTimeoutMs} ms`));
    }, options.handshakeTimeoutMs);
    timer.unref();

    function step(): void {
      for (;;) {
        if (phase === 'greeting') {
          const r = parseGreeting(buf);
          if (r.status === 'incomplete') return;
          if (r.status === 'error') return protocolError(r.message);
          buf = buf.subarray(r.consumed);
          const want = expected ? SocksMethod.USERNAME_PASSWORD : SocksMethod.NO_AUTH;
          if (!r.value.includes(want)) {
            return protocolError('no acceptable authentication method offered', Buffer.from([SOCKS_VERSION, SocksMethod.NO_ACCEPTABLE]));
          }
          socket.write(Buffer.from([SOCKS_VERSION, want]));
          phase = expected ? 'auth' : 'request';
        } else if (phase === 'auth') {
          const r = parseUserPass(buf);
          if (r.status === 'incomplete') return;
          if (r.status === 'error') return protocolError(r.message, Buffer.from([USERPASS_VERSION, 0x01]));
          buf = buf.subarray(r.consumed);
          // Compare digests in constant time (equal lengths), both fields always compared.
          const okUser = timingSafeEqual(sha256(r.value.username), expected!.user);
          const okPass = timingSafeEqual(sha256(r.value.password), expected!.pass);
          if (!(okUser && okPass)) return protocolError('authentication failed', Buffer.from([USERPASS_VERSION, 0x01]));
          socket.write(Buffer.from([USERPASS_VERSION, 0x00]));
          phase = 'request';
        } else {
          const r = parseRequest(buf);
          if (r.status === 'incomplete') return;
          if (r.status === 'error') {
            return protocolError(r.message, r.reply === undefined ? undefined : encodeReply(r.reply));
          }
          if (r.value.command !== SocksCommand.CONNECT) {
            return protocolError(`command ${r.value.command} not supported`, encodeReply(SocksReply.COMMAND_NOT_SUPPORTED));
          }
          settled = true;
          cleanup();
          socket.pause();
          resolve({ request: r.value, rest: Buffer.from(buf.subarray(r.consumed)) });
          return;
        }
      }
    }

    function onData(chunk: Buffer): void {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      step();
      if (!settled && buf.length > MAX_HANDSHAKE_BYTES) protocolError('handshake too long');
    }

    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.resume();
  });
}
