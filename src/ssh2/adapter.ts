/**
 * Guarded runtime adjustments of one ssh2 `Client` (ssh2 ~1.17.0). Never patches ssh2's files or
 * prototypes: each adjustment redefines a property of this one client's transport object, after
 * {@link checkSsh2Internals} confirmed its shape.
 *
 * 1. **DH group-exchange bounds** (RFC 4419 section 3, RFC 8270): ssh2 asks for a group of
 *    2048-8192 bits but uses whatever the server sends ("TODO: validate prime", lib/protocol/kex.js).
 *    A group outside the requested range aborts the key exchange with `ERR_SSH_HANDSHAKE`, as
 *    OpenSSH's client does ("DH_GEX group out of range", kexgexc.c).
 * 2. **Strict kex on re-keys**: ssh2 applies strict kex's "no IGNORE/DEBUG/UNIMPLEMENTED during the
 *    key exchange" rule (kex-strict-*-v00@openssh.com, the Terrapin counter-measure) to every key
 *    exchange; OpenSSH's PROTOCOL file and its implementation apply it to the initial exchange only
 *    (packet.c: `KEX_INITIAL`), and asyncssh sends IGNORE during its re-keys, so ssh2 dropped the
 *    link ("Received unexpected packet type 2"). During a re-key those three messages are now
 *    handled as outside a key exchange; the initial exchange keeps the rule, and strict kex's
 *    sequence-number resets stay on for every exchange. Likewise connection-protocol messages
 *    (80-127) that arrive during a re-key (asyncssh answers a keep-alive after its KEXINIT: ssh2
 *    said "Received unexpected packet type 81") are handled as usual, as OpenSSH's client does
 *    (its re-key dispatch table covers messages 1-49 only).
 * 3. **UNIMPLEMENTED as the answer to a keep-alive probe** (RFC 4253 section 11.4): a server that
 *    does not know global requests (tinysshd) answers UNIMPLEMENTED, which ssh2 only logs, so the
 *    probe's callback stayed in ssh2's queue forever (and a later REQUEST_SUCCESS for another
 *    request would have been handed to it). An UNIMPLEMENTED naming a probe's sequence number
 *    (or the next one: tinysshd reports the rejected packet's number plus one) answers that probe
 *    and removes its callback. See {@link sendKeepaliveProbe}.
 *
 * @module
 */
import type ssh2 from 'ssh2';
import { SshError } from '../errors.js';
import {
  DISCONNECT_KEY_EXCHANGE_FAILED,
  MSG,
  checkGroupExchange,
  checkSsh2Internals,
  internalsChanged,
  isGroupExchange,
  type Ssh2ClientInternals,
  type Ssh2GlobalCallback,
  type Ssh2KeyExchange,
  type Ssh2PacketReader,
  type Ssh2Protocol,
} from './shapes.js';

/** A keep-alive probe waiting for its answer. */
interface PendingProbe {
  /** Sequence number the GLOBAL_REQUEST was sent with; `undefined` when ssh2 queued it during a key exchange. */
  seqno: number | undefined;
  /** The callback in ssh2's `_callbacks` queue. */
  callback: Ssh2GlobalCallback;
  /** Answers the probe (REQUEST_SUCCESS, REQUEST_FAILURE or UNIMPLEMENTED). */
  answer: () => void;
}

/** What the adapter keeps per client. */
export interface Ssh2Adapter {
  readonly client: Ssh2ClientInternals;
  readonly protocol: Ssh2Protocol;
  /** Probes sent and not yet answered, oldest first. */
  readonly pending: PendingProbe[];
  /** Re-keys seen (key exchanges after the first). */
  rekeys: number;
  /** IGNORE/DEBUG/UNIMPLEMENTED messages let through during re-keys under strict kex. */
  relaxedDuringRekey: number;
  /** UNIMPLEMENTED replies counted as probe answers. */
  unimplementedAnswers: number;
}

const adapters = new WeakMap<ssh2.Client, Ssh2Adapter>();

/**
 * Number of bits of an SSH mpint's magnitude (RFC 4251 section 5), like OpenSSH's `BN_num_bits`.
 *
 * @param mpint - the mpint's bytes without the length prefix (big-endian, maybe a leading 0x00).
 */
export function mpintBits(mpint: Buffer): number {
  let i = 0;
  while (i < mpint.length && mpint[i] === 0) i++;
  if (i === mpint.length) return 0;
  return (mpint.length - i - 1) * 8 + (32 - Math.clz32(mpint[i] as number));
}

/**
 * Installs the adjustments described in the module comment on `client`. Call it right after
 * `client.connect(config)` (before the first key exchange); calling it again is a no-op.
 *
 * @param client - an ssh2 `Client` whose `connect()` was just called.
 * @returns the adapter's state (counters for tests and diagnostics).
 * @throws SshError `ERR_SSH_HANDSHAKE` (not retryable) "ssh2 internals changed" when a shape differs.
 */
export function adaptSsh2Client(client: ssh2.Client): Ssh2Adapter {
  const existing = adapters.get(client);
  if (existing) return existing;
  const { client: c, protocol: proto } = checkSsh2Internals(client);
  const adapter: Ssh2Adapter = { client: c, protocol: proto, pending: [], rekeys: 0, relaxedDuringRekey: 0, unimplementedAnswers: 0 };

  // --- 3. UNIMPLEMENTED observer: every inbound payload passes through the packet reader, which
  // ssh2 replaces once (zlib@openssh.com after authentication); each reader assigned is wrapped.
  const rw = proto._packetRW;
  const wrapReader = (reader: Ssh2PacketReader): Ssh2PacketReader => {
    const read = reader.read.bind(reader);
    return Object.assign(Object.create(reader) as Ssh2PacketReader, {
      read(payload: Buffer): Buffer {
        const out = read(payload);
        if (adapter.pending.length > 0 && out.length >= 5 && out[0] === MSG.UNIMPLEMENTED) onUnimplemented(adapter, out.readUInt32BE(1));
        return out;
      },
    });
  };
  let reader = wrapReader(rw.read);
  Object.defineProperty(rw, 'read', {
    configurable: true,
    enumerable: true,
    get: () => reader,
    set: (r: Ssh2PacketReader) => {
      reader = wrapReader(r);
    },
  });

  // --- 1 and 2: every key exchange is assigned to `_kex` (lib/protocol/kex.js handleKexInit), after
  // ssh2 pointed the decipher at its key-exchange payload handler for a re-key.
  let kex: Ssh2KeyExchange | undefined = proto._kex;
  Object.defineProperty(proto, '_kex', {
    configurable: true,
    enumerable: true,
    get: () => kex,
    set: (next: Ssh2KeyExchange | undefined) => {
      const rekey = kex !== undefined;
      if (next !== null && typeof next === 'object') {
        if (isGroupExchange(next)) guardGroupExchange(proto, next);
        if (rekey) {
          adapter.rekeys += 1;
          relaxRekey(adapter, () => reader, (r) => (reader = r));
        }
      }
      kex = next;
    },
  });

  adapters.set(client, adapter);
  return adapter;
}

/** The adapter of `client`, installing it first when missing (a client adapted after `ready`). */
export function ssh2Adapter(client: ssh2.Client): Ssh2Adapter {
  return adapters.get(client) ?? adaptSsh2Client(client);
}

/** Wraps a group exchange's `setDHParams` with the RFC 4419 bounds check. */
function guardGroupExchange(proto: Ssh2Protocol, kex: Ssh2KeyExchange): void {
  const { setDHParams, minBits, maxBits } = checkGroupExchange(kex);
  kex.setDHParams = (prime: Buffer, generator: Buffer): void => {
    const bits = Buffer.isBuffer(prime) ? mpintBits(prime) : 0;
    if (bits < minBits || bits > maxBits) {
      try {
        proto.disconnect(DISCONNECT_KEY_EXCHANGE_FAILED);
      } catch {
        // the socket may be gone already; the error below ends the attempt either way
      }
      // Thrown inside ssh2's parser: ssh2's Client catches it, emits it as 'error' and ends the socket.
      throw new SshError(
        'ERR_SSH_HANDSHAKE',
        `SSH handshake failed: the server's diffie-hellman group-exchange group has ${bits} bits, outside the ${minBits}-${maxBits} bits requested (OpenSSH: "DH_GEX group out of range")`,
        { retryable: false },
      );
    }
    setDHParams.call(kex, prime, generator);
  };
}

/**
 * For one re-key: wraps the decipher's key-exchange payload handler so that
 * - IGNORE, DEBUG and UNIMPLEMENTED are handled as outside a key exchange (ssh2's own non-strict
 *   path of the same handler);
 * - connection-protocol messages (RFC 4254: 80-127) go to ssh2's normal payload handler, as
 *   OpenSSH's client does (its re-key dispatch table covers 1-49 only): a server may have sent
 *   them before our KEXINIT reached it (asyncssh answers a keep-alive mid re-key);
 * - every other packet goes to ssh2 unchanged, with strict mode on (sequence-number resets).
 */
function relaxRekey(adapter: Ssh2Adapter, getReader: () => Ssh2PacketReader, setReader: (r: Ssh2PacketReader) => void): void {
  const proto = adapter.protocol;
  const dec = proto._decipher;
  if (dec === null || typeof dec !== 'object' || typeof dec._onPayload !== 'function') throw internalsChanged('Protocol._decipher._onPayload()');
  if (typeof proto._onPayload !== 'function') throw internalsChanged('Protocol._onPayload()');
  const kexPayload = dec._onPayload;
  const normalPayload = proto._onPayload;
  dec._onPayload = (payload: Buffer): unknown => {
    if (payload.length === 0 || proto._skipNextInboundPacket) return kexPayload(payload);
    // Decode once (the zlib reader is stateful), then hand ssh2 the decoded payload through a
    // one-shot reader, so its handler does not inflate it a second time.
    const reader = getReader();
    const decoded = reader.read(payload);
    const type = decoded[0] as number;
    const oneShot: Ssh2PacketReader = {
      read: () => {
        setReader(reader);
        return decoded;
      },
      cleanup: () => reader.cleanup?.(),
    };
    const connection = type >= MSG.CONNECTION_MIN && type <= MSG.CONNECTION_MAX;
    // ssh2 handles these itself when strict kex is off; under strict kex only for the initial exchange.
    const relax = proto._strictMode === true && (type === MSG.IGNORE || type === MSG.DEBUG || type === MSG.UNIMPLEMENTED);
    if (connection || relax) adapter.relaxedDuringRekey += 1;
    setReader(oneShot);
    if (relax) proto._strictMode = false;
    try {
      return connection ? normalPayload(payload) : kexPayload(payload);
    } finally {
      if (relax) proto._strictMode = true;
      // ssh2 may have installed the next keys' reader meanwhile (NEWKEYS): keep that one.
      if (getReader() === oneShot) setReader(reader);
    }
  };
}

/** An UNIMPLEMENTED naming `seqno` arrived: answer the matching probe and drop its queued callback. */
function onUnimplemented(adapter: Ssh2Adapter, seqno: number): void {
  const pending = adapter.pending;
  let i = pending.findIndex((p) => p.seqno === seqno);
  // tinysshd names the sequence number after the rejected packet's (seen with tinysshd 20230101).
  if (i === -1) i = pending.findIndex((p) => p.seqno !== undefined && ((p.seqno + 1) >>> 0) === seqno);
  // A probe queued during a key exchange went out with a sequence number we could not know.
  if (i === -1) i = pending.findIndex((p) => p.seqno === undefined);
  if (i === -1) return;
  const [probe] = pending.splice(i, 1);
  if (!probe) return;
  const queue = adapter.client._callbacks;
  const at = Array.isArray(queue) ? queue.indexOf(probe.callback) : -1;
  if (at === -1) return; // answered or failed already
  queue?.splice(at, 1);
  adapter.unimplementedAnswers += 1;
  // Not from inside ssh2's parser: the answer reaches user code (keep-alive events).
  queueMicrotask(probe.answer);
}
