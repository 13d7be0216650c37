/**
 * The typed shapes of every ssh2 private field ssh-tether touches, and the check that they are
 * still there. This folder (src/ssh2/) is the only place in the library that reads or writes
 * ssh2's private fields for the keep-alive probe, the DH group-exchange check, the re-key
 * adjustment and the UNIMPLEMENTED answer; the SFTP object's fields are in src/ssh2/sftp.ts.
 *
 * Written against ssh2 1.17.0 (pinned `~1.17.0`); test/contract/ssh2.test.ts checks every shape and
 * every behaviour these adjustments rely on, so upgrading ssh2 means running that one test.
 *
 * @module
 */
import type ssh2 from 'ssh2';
import { SshError } from '../errors.js';

/** ssh2's packet reader (lib/protocol/zlib.js `PacketReader` / `ZlibPacketReader`): returns the (inflated) payload. */
export interface Ssh2PacketReader {
  read(payload: Buffer): Buffer;
  /** Frees the zlib state; called by ssh2 when the keys change. */
  cleanup?(): void;
}

/** The inbound decipher of the current keys (lib/protocol/crypto.js): `_onPayload` receives every decrypted payload. */
export interface Ssh2Decipher {
  _onPayload: (payload: Buffer) => unknown;
}

/** One key exchange (lib/protocol/kex.js `KeyExchange` and subclasses). */
export interface Ssh2KeyExchange {
  /** `'groupex'` for diffie-hellman-group-exchange-*. */
  type?: unknown;
  negotiated?: { kex?: unknown };
  /** Group exchange only: sets the server's group (prime and generator as SSH mpint bytes). */
  setDHParams?: (prime: Buffer, generator: Buffer) => void;
  /** Group exchange only: the group sizes the client asked for, in bits (RFC 4419 section 3). */
  _minBits?: unknown;
  _maxBits?: unknown;
}

/** ssh2's transport (lib/protocol/Protocol.js `Protocol`), the fields used here. */
export interface Ssh2Protocol {
  /** Sends a `keepalive@openssh.com` GLOBAL_REQUEST with want-reply (queued during a key exchange). */
  ping(): void;
  /** Sends DISCONNECT with an RFC 4253 section 11.1 reason code (even during a key exchange). */
  disconnect(reason: number): void;
  /** The current (or last) key exchange; `undefined` before the first one. Replaced on every KEXINIT. */
  _kex: Ssh2KeyExchange | undefined;
  /** Our KEXINIT while a key exchange runs, else `undefined` (outbound packets are then queued). */
  _kexinit: unknown;
  /** Strict kex (kex-strict-*-v00@openssh.com, the Terrapin counter-measure) negotiated in the first exchange. */
  _strictMode: boolean | undefined;
  _decipher: Ssh2Decipher | undefined;
  /** The payload handler outside key exchanges (lib/protocol/Protocol.js `onPayload`, bound). */
  _onPayload: (payload: Buffer) => unknown;
  _cipher: { outSeqno: number };
  _packetRW: { read: Ssh2PacketReader };
  _skipNextInboundPacket: boolean;
  _debug: ((line: string) => void) | undefined;
}

/** A global-request callback in ssh2's queue: `false` success, `true` failure reply, an Error when the transport closed. */
export type Ssh2GlobalCallback = (hadErr: boolean | Error, data?: Buffer) => void;

/** ssh2's `Client` (lib/client.js), the private fields used here. */
export interface Ssh2ClientInternals {
  _protocol: Ssh2Protocol | undefined;
  /** Callbacks of global requests awaiting REQUEST_SUCCESS / REQUEST_FAILURE, answered in order (RFC 4254 section 4). */
  _callbacks: Ssh2GlobalCallback[] | undefined;
  _sock: { writable?: unknown; destroyed?: unknown } | undefined;
}

/** RFC 4253 section 12 message numbers used here. */
export const MSG = { IGNORE: 2, UNIMPLEMENTED: 3, DEBUG: 4, CONNECTION_MIN: 80, CONNECTION_MAX: 127 } as const;
/** RFC 4253 section 11.1: SSH_DISCONNECT_KEY_EXCHANGE_FAILED. */
export const DISCONNECT_KEY_EXCHANGE_FAILED = 3;

/**
 * The error for a changed ssh2: not retryable (another attempt meets the same ssh2).
 *
 * @param what - which field or behaviour is missing, e.g. `'Client._protocol.ping()'`.
 * @param code - `ERR_SSH_HANDSHAKE` (default: found while connecting) or `ERR_SSH_SFTP` (found when an SFTP session opens).
 */
export function internalsChanged(what: string, code: 'ERR_SSH_HANDSHAKE' | 'ERR_SSH_SFTP' = 'ERR_SSH_HANDSHAKE'): SshError {
  return new SshError(
    code,
    `ssh2 internals changed: ${what} is not what ssh-tether expects (written for ssh2 ~1.17.0); run test/contract/ssh2.test.ts against this ssh2 version`,
    { retryable: false },
  );
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isFn = (v: unknown): boolean => typeof v === 'function';

/** True when `obj[key]` is an own, writable, configurable data property (we may redefine it as an accessor). */
function ownDataProperty(obj: object, key: string): boolean {
  const d = Object.getOwnPropertyDescriptor(obj, key);
  return d !== undefined && 'value' in d && d.writable === true && d.configurable === true;
}

let checked = false;

/**
 * Checks the shapes above on a client right after `client.connect()` (before any byte of the
 * handshake is parsed). The check runs in full once per process (ssh2's classes do not change
 * while it runs); later calls only confirm the per-instance pieces the adapter redefines.
 *
 * @param client - an ssh2 `Client` on which `connect()` was just called.
 * @returns the client's internals, typed.
 * @throws SshError `ERR_SSH_HANDSHAKE` (not retryable) "ssh2 internals changed: ..." naming the field.
 */
export function checkSsh2Internals(client: ssh2.Client): { client: Ssh2ClientInternals; protocol: Ssh2Protocol } {
  const c = client as unknown as Record<string, unknown>;
  const p = c['_protocol'];
  if (!isObject(p)) throw internalsChanged('Client._protocol');
  if (!ownDataProperty(p, '_kex')) throw internalsChanged('Protocol._kex (own data property)');
  const rw = p['_packetRW'];
  if (!isObject(rw) || !ownDataProperty(rw, 'read') || !isObject(rw['read']) || !isFn(rw['read']['read'])) {
    throw internalsChanged('Protocol._packetRW.read.read()');
  }
  if (!checked) {
    if (!isFn(p['ping'])) throw internalsChanged('Protocol.ping()');
    if (!isFn(p['disconnect'])) throw internalsChanged('Protocol.disconnect()');
    if (!('_kexinit' in p)) throw internalsChanged('Protocol._kexinit');
    if (!('_strictMode' in p)) throw internalsChanged('Protocol._strictMode');
    if (!('_decipher' in p)) throw internalsChanged('Protocol._decipher');
    if (!isFn(p['_onPayload'])) throw internalsChanged('Protocol._onPayload()');
    if (!isObject(p['_cipher']) || typeof p['_cipher']['outSeqno'] !== 'number') throw internalsChanged('Protocol._cipher.outSeqno');
    if (typeof p['_skipNextInboundPacket'] !== 'boolean') throw internalsChanged('Protocol._skipNextInboundPacket');
    if (!Array.isArray(c['_callbacks'])) throw internalsChanged('Client._callbacks');
    if (!isObject(c['_sock'])) throw internalsChanged('Client._sock');
    checked = true;
  }
  return { client: client as unknown as Ssh2ClientInternals, protocol: p as unknown as Ssh2Protocol };
}

/**
 * Checks a key exchange object of ssh2 for the group-exchange fields.
 *
 * @throws SshError `ERR_SSH_HANDSHAKE` "ssh2 internals changed" when a group-exchange object lacks them.
 */
export function checkGroupExchange(kex: Ssh2KeyExchange): { setDHParams: (prime: Buffer, generator: Buffer) => void; minBits: number; maxBits: number } {
  if (!isFn(kex.setDHParams)) throw internalsChanged('DHGroupExchange.setDHParams()');
  if (typeof kex._minBits !== 'number' || typeof kex._maxBits !== 'number') throw internalsChanged('DHGroupExchange._minBits/_maxBits');
  return { setDHParams: kex.setDHParams as (prime: Buffer, generator: Buffer) => void, minBits: kex._minBits, maxBits: kex._maxBits };
}

/** True when `kex` is a Diffie-Hellman group exchange (RFC 4419), by ssh2's type tag or the negotiated name. */
export function isGroupExchange(kex: Ssh2KeyExchange): boolean {
  const name = isObject(kex.negotiated) ? kex.negotiated.kex : undefined;
  return kex.type === 'groupex' || (typeof name === 'string' && name.startsWith('diffie-hellman-group-exchange-'));
}

/** Test seam: forget that the one-time check ran. @internal */
export function resetSsh2InternalsCheck(): void {
  checked = false;
}
