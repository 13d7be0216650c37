/**
 * Contract test of ssh2's private fields and behaviours that src/ssh2/ relies on (ssh2 ~1.17.0).
 * Upgrading ssh2 means running this file: a failure names the field or behaviour that changed.
 *
 * Each adjustment is checked both ways: plain ssh2 still shows the bug (when ssh2 fixes it, the
 * "plain ssh2" test fails and the adjustment can go), and the adapted client does not.
 * Servers: ssh2's in-process `Server` (made hostile through its own transport where needed), a
 * raw-TCP group-exchange server (ssh2's Server has none), and a TCP proxy that injects one packet.
 */
import { execFileSync } from 'node:child_process';
import { createHash, getDiffieHellman } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SshError } from '../../src/errors.js';
import { SshClient } from '../../src/index.js';
import { adaptSsh2Client, sendKeepaliveProbe, ssh2Adapter } from '../../src/ssh2/index.js';
import { checkSsh2Internals } from '../../src/ssh2/index.js';
import { resetSsh2InternalsCheck } from '../../src/ssh2/shapes.js';
import { checkChannelWindow, checkSftpWindow, eagerSftpWindow, eagerWindow } from '../../src/ssh2/window.js';
import { PassThrough, Writable } from 'node:stream';
import { checkSftpInternals, sftpChannel } from '../../src/ssh2/sftp.js';
import { parseHandshakeDebug, type HandshakeDebug } from '../../src/ssh2/debug.js';
import { DataReplySplitter } from '../../src/sftp/inbound.js';
import { PacketBuilder, REQ, encodeWriteHead, parseNames, writeHeadLength } from '../../src/sftp/wire.js';
import { gexServer, plainPacket, sshString } from '../helpers/raw-kex.js';

// --- a data source on the server side (eager window tests) ----------------------------------------

interface Source {
  /** The server's end of the channel: its `outgoing.window` is the window the client granted. */
  readonly channel: ssh2.ServerChannel;
  /** sha256 of everything the server wrote (set once all is written). */
  readonly hash: Promise<string>;
}
/** ssh2's channel fields on the server's end (the same Channel class; test code only). */
const serverSide = (s: Source): { outgoing: { id: number; window: number } } => s.channel as unknown as { outgoing: { id: number; window: number } };
const PATTERN = Buffer.from(Array.from({ length: 1024 * 1024 }, (_, i) => (i * 2654435761) >>> 24));

/**
 * Once the client sent a byte: writes `bytes` of a pattern (each MiB rotated differently) into
 * `ch` with backpressure, then ends it.
 */
function sendSource(ch: ssh2.ServerChannel, bytes: number): Source {
  const hash = new Promise<string>((resolve) => {
    const h = createHash('sha256');
    let sent = 0;
    let n = 0;
    const pump = (): void => {
      while (sent < bytes) {
        const rot = n++ % PATTERN.length;
        const chunk = Buffer.concat([PATTERN.subarray(rot), PATTERN.subarray(0, rot)]).subarray(0, Math.min(PATTERN.length, bytes - sent));
        h.update(chunk);
        sent += chunk.length;
        if (!ch.write(chunk)) {
          ch.once('drain', pump);
          return;
        }
      }
      ch.end();
      resolve(h.digest('hex'));
    };
    ch.once('data', pump);
  });
  return { channel: ch, hash };
}

// --- the hostile ssh2 Server -------------------------------------------------------------------

/** The server side's transport, as the hostile behaviours below drive it (test code only). */
interface ServerProto {
  _packetRW: { write: { allocStart: number; allocStartKEX: number; alloc(n: number, force?: boolean): Buffer; finalize(b: Buffer, force?: boolean): Buffer } };
  _cipher: { encrypt(b: Buffer): void };
  _decipher: { inSeqno: number };
  _handlers: Record<string, unknown>;
}
const serverProto = (conn: ssh2.Connection): ServerProto => (conn as unknown as { _protocol: ServerProto })._protocol;

/** Sends one packet with the current keys, bypassing ssh2's queue (also during a key exchange). */
function sendRaw(p: ServerProto, payload: Buffer): void {
  const w = p._packetRW.write;
  const at = w.allocStartKEX;
  const pkt = w.alloc(payload.length, true);
  payload.copy(pkt, at);
  p._cipher.encrypt(w.finalize(pkt, true));
}

type Mode = 'normal' | 'unimplemented' | 'reply-mid-rekey';
const dir = mkdtempSync(join(tmpdir(), 'tether-contract-'));
let hostKey: Buffer;
let server: ssh2.Server;
let port = 0;
let mode: Mode = 'normal';
let lastConn: ssh2.Connection | undefined;
let lastSource: Source | undefined;
const compressions = ['none', 'zlib@openssh.com'] as const;

beforeAll(async () => {
  const keyPath = join(dir, 'host');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
  hostKey = readFileSync(keyPath);
  server = new ssh2.Server({ hostKeys: [hostKey] }, (conn) => {
    lastConn = conn;
    conn.on('error', () => undefined);
    if (mode === 'unimplemented') {
      // tinysshd's answer to any global request: UNIMPLEMENTED naming its sequence number
      // (RFC 4253 section 11.4), instead of REQUEST_SUCCESS/FAILURE.
      const p = serverProto(conn);
      p._handlers['GLOBAL_REQUEST'] = (): void => {
        const seq = Buffer.alloc(5);
        seq[0] = 3;
        // ssh2 counts the packet before calling the handler
        seq.writeUInt32BE((p._decipher.inSeqno - 1) >>> 0, 1);
        sendRaw(p, seq);
      };
    }
    if (mode === 'reply-mid-rekey') {
      // asyncssh's order: a keep-alive arrives, the server starts a re-key (KEXINIT), then
      // answers the keep-alive (REQUEST_FAILURE, 82) before the new keys are in place.
      const p = serverProto(conn);
      p._handlers['GLOBAL_REQUEST'] = (): void => {
        conn.rekey();
        sendRaw(p, Buffer.from([82]));
      };
    }
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('ready', () => undefined);
    // direct-tcpip to port N: a source of N MiB (the eager-window tests below)
    conn.on('tcpip', (accept, _reject, info) => {
      const ch = accept();
      ch.on('error', () => undefined);
      lastSource = sendSource(ch, info.destPort * 1024 * 1024);
    });
    conn.on('session', (accept) => {
      const session = accept();
      session.on('sftp', (acceptSftp) => serveSftp(acceptSftp()));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const clients: ssh2.Client[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  mode = 'normal';
});

/** Connects a plain ssh2 Client (optionally adapted right after connect(), as attempt.ts does). */
function connect(opts: { adapt: boolean; port?: number; compress?: ssh2.CompressionAlgorithm[]; kex?: ssh2.KexAlgorithm[] }): {
  client: ssh2.Client;
  ready: Promise<void>;
  errors: Error[];
} {
  const client = new ssh2.Client();
  clients.push(client);
  const errors: Error[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    client.on('ready', () => resolve());
    client.on('error', (e) => {
      errors.push(e);
      reject(e);
    });
    client.on('close', () => reject(new Error('closed')));
  });
  ready.catch(() => undefined);
  client.connect({
    host: '127.0.0.1',
    port: opts.port ?? port,
    username: 'u',
    hostVerifier: () => true,
    readyTimeout: 5_000,
    algorithms: { compress: opts.compress ?? ['none'], ...(opts.kex ? { kex: opts.kex } : {}) },
  });
  if (opts.adapt) adaptSsh2Client(client);
  return { client, ready, errors };
}

/** Waits until `cond` or `ms` pass. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

/** Server-initiated re-key with an IGNORE right after the server's KEXINIT, as asyncssh sends. */
async function hostileRekey(conn: ssh2.Connection): Promise<void> {
  const done = new Promise<void>((resolve) => conn.rekey(() => resolve()));
  sendRaw(serverProto(conn), Buffer.concat([Buffer.from([2]), sshString('asyncssh-style ignore')]));
  await done;
}

/** One keep-alive probe through src/ssh2; resolves true when answered within 2 s. */
function probe(client: ssh2.Client): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 2_000);
    sendKeepaliveProbe(client, () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

const callbacksOf = (c: ssh2.Client): unknown[] => (c as unknown as { _callbacks: unknown[] })._callbacks;

// --- a minimal SFTP server on ssh2's Server (for the SFTP shapes) ---------------------------------

/** Content of the one file the SFTP server serves (any handle reads it). */
const FILE = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 7 + (i >> 11)) & 0xff));
/** WRITE requests the SFTP server received, in order. */
const sftpWrites: { offset: number; data: Buffer }[] = [];

/** The server's end of the last SFTP session (its `outgoing.window` is the window the client granted). */
let lastServerSftp: ssh2.SFTPWrapper | undefined;

function serveSftp(sftp: ssh2.SFTPWrapper): void {
  lastServerSftp = sftp;
  const OK = ssh2.utils.sftp.STATUS_CODE.OK;
  const EOF = ssh2.utils.sftp.STATUS_CODE.EOF;
  sftp.on('REALPATH', (reqid: number, path: string) => sftp.name(reqid, [{ filename: `/real${path}`, longname: `/real${path}`, attrs: {} as ssh2.Attributes }]));
  sftp.on('OPEN', (reqid: number) => sftp.handle(reqid, Buffer.from('h1')));
  sftp.on('FSTAT', (reqid: number) => sftp.attrs(reqid, { size: FILE.length } as ssh2.Attributes));
  sftp.on('READ', (reqid: number, _h: Buffer, offset: number, length: number) => {
    if (offset >= FILE.length) sftp.status(reqid, EOF);
    else sftp.data(reqid, FILE.subarray(offset, offset + length));
  });
  sftp.on('WRITE', (reqid: number, _h: Buffer, offset: number, data: Buffer) => {
    sftpWrites.push({ offset, data: Buffer.from(data) });
    sftp.status(reqid, OK);
  });
  sftp.on('CLOSE', (reqid: number) => sftp.status(reqid, OK));
}

/** A plain ssh2 client with its SFTP object (VERSION exchanged). */
async function openSftp(): Promise<{ client: ssh2.Client; sftp: ssh2.SFTPWrapper }> {
  const c = connect({ adapt: false });
  await c.ready;
  const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => c.client.sftp((err, s) => (err ? reject(err) : resolve(s))));
  return { client: c.client, sftp };
}

const fieldsOf = (sftp: ssh2.SFTPWrapper): Record<string, unknown> => sftp as unknown as Record<string, unknown>;

// --- shapes --------------------------------------------------------------------------------------

describe("ssh2's handshake debug lines (the doctor's algorithm report)", () => {
  it('a live handshake prints the offers of both sides and the chosen algorithms in the parsed format', async () => {
    const lines: string[] = [];
    const client = new ssh2.Client();
    clients.push(client);
    client.on('error', () => undefined);
    const ready = new Promise<void>((resolve) => client.on('ready', () => resolve()));
    client.connect({ host: '127.0.0.1', port, username: 'u', hostVerifier: () => true, debug: (l: string) => lines.push(l) });
    await ready;
    const parsed = lines.map(parseHandshakeDebug).filter((d): d is HandshakeDebug => d !== undefined);
    const offers = (side: 'local' | 'remote'): Set<string> => new Set(parsed.filter((d) => d.kind === 'offer' && d.side === side).map((d) => d.category));
    // the categories the doctor maps to options (doctor/diagnose.ts)
    for (const side of ['local', 'remote'] as const) {
      for (const c of ['KEX method', 'Host key format', 'C->S cipher', 'S->C cipher']) expect(offers(side), `${side} ${c}`).toContain(c);
    }
    const chosen = new Map(parsed.filter((d) => d.kind === 'chosen').map((d) => [d.category, d.value]));
    expect(chosen.get('KEX algorithm')).toMatch(/^[a-z0-9@.-]+$/);
    expect(chosen.get('Host key format')).toBe('ssh-ed25519');
    expect(chosen.get('C->S Cipher')).toMatch(/\S/);
    expect(parseHandshakeDebug('Outbound: Sending KEXINIT')).toBeUndefined();
  });
});

describe('shapes of the private fields used (checked at first connect)', () => {
  it('right after connect(): Client._protocol, ._callbacks, ._sock; Protocol.ping/disconnect, _kex, _kexinit, _strictMode, _decipher, _cipher.outSeqno, _packetRW.read', async () => {
    resetSsh2InternalsCheck();
    const client = new ssh2.Client();
    clients.push(client);
    client.on('error', () => undefined);
    client.connect({ host: '127.0.0.1', port, username: 'u', hostVerifier: () => true });
    expect(() => checkSsh2Internals(client)).not.toThrow();
    // the adapter tells the initial exchange from re-keys by `_kex` being unset before it
    const before = (client as unknown as { _protocol: Record<string, unknown> })._protocol;
    expect(Object.getOwnPropertyDescriptor(before, '_kex')).toEqual({ value: undefined, writable: true, enumerable: true, configurable: true });
    expect(before['_strictMode']).toBeUndefined();
    const ready = new Promise<void>((resolve) => client.on('ready', () => resolve()));
    const adapter = adaptSsh2Client(client);
    await ready;
    expect(adapter.rekeys).toBe(0);
    // after the first exchange: what the adjustments read later
    const p = (client as unknown as { _protocol: Record<string, unknown> })._protocol;
    const kex = p['_kex'] as { negotiated: { kex: string }; type: string };
    expect(typeof kex.negotiated.kex).toBe('string');
    expect(typeof kex.type).toBe('string');
    expect(p['_strictMode']).toBe(true);
    expect(typeof (p['_decipher'] as { _onPayload: unknown })._onPayload).toBe('function');
    expect(typeof (p['_decipher'] as { inSeqno: unknown }).inSeqno).toBe('number');
    expect(Array.isArray(callbacksOf(client))).toBe(true);
  });

  it('a missing field is ERR_SSH_HANDSHAKE "ssh2 internals changed", not retryable, naming the field', () => {
    resetSsh2InternalsCheck();
    const fake = { _protocol: { _kex: undefined, _packetRW: { read: { read: (b: Buffer) => b } } }, _callbacks: [], _sock: {} } as unknown as ssh2.Client;
    let err: unknown;
    try {
      checkSsh2Internals(fake);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_HANDSHAKE');
    expect((err as SshError).retryable).toBe(false);
    expect((err as SshError).message).toMatch(/^ssh2 internals changed: Protocol\.ping\(\)/);
    expect(() => checkSsh2Internals({} as ssh2.Client)).toThrow(/ssh2 internals changed: Client\._protocol/);
  });
});

describe('SFTP object shapes and behaviours (src/ssh2/sftp.ts; checked when an SFTP session opens)', () => {
  it('right after client.sftp(): every field checkSftpInternals reads (with _client._sock, the flowing socket), the parser at a packet boundary, VERSION received', async () => {
    const { client, sftp } = await openSftp();
    expect(() => checkSftpInternals(sftp)).not.toThrow();
    const f = fieldsOf(sftp);
    // hookInbound is only installed from a packet boundary; the DATA fast path needs VERSION seen
    expect(f['_pktLenBytes']).toBe(0);
    expect(f['_pktPos']).toBe(0);
    expect(f['_version']).toBe(3);
    expect(typeof f['_maxInPktLen']).toBe('number');
    expect(f['_maxReadLen']).toBeGreaterThanOrEqual(1024);
    expect(f['_maxWriteLen']).toBeGreaterThanOrEqual(1024);
    expect(f['_chunkcb']).toBeUndefined();
    expect(f['_waitWindow']).toBe(false);
    expect(f['_buffer']).toEqual([]);
    // TurnBudget pauses the connection's stream (a TCP socket here) through the SFTP object's client
    expect(f['_client']).toBe(client);
    const sock = (f['_client'] as { _sock?: Record<string, unknown> } | undefined)?._sock;
    expect(sock).toBeInstanceOf(net.Socket);
    expect((sock as unknown as net.Socket).isPaused()).toBe(false);
    expect(typeof sock?.['pause']).toBe('function');
    expect(typeof sock?.['resume']).toBe('function');
    expect(typeof sock?.['isPaused']).toBe('function');
    // ssh2's server identifies as ssh2, not OpenSSH: SYMLINK keeps the draft's order
    expect(sftpChannel(sftp).isOpenSSH).toBe(false);
  });

  it('a missing or changed field is ERR_SSH_SFTP "ssh2 internals changed", not retryable, naming the field', async () => {
    const { sftp } = await openSftp();
    const f = fieldsOf(sftp);
    for (const field of ['_writeReqid', '_requests', '_buffer', '_waitWindow', '_maxReadLen', '_extensions', '_version', 'outgoing', 'incoming', 'push', '_client']) {
      const keep = f[field];
      f[field] = 'changed';
      let err: unknown;
      try {
        sftpChannel(sftp);
      } catch (e) {
        err = e;
      }
      f[field] = keep;
      expect(err, field).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_SFTP');
      expect((err as SshError).retryable).toBe(false);
      expect((err as SshError).message).toMatch(new RegExp(`^ssh2 internals changed: SFTP\\.${field}`));
    }
    expect(() => sftpChannel(sftp)).not.toThrow();
  });

  it('raw send and reply registration: a REALPATH built by sftp/wire.ts gets the reply ssh2 parsed, and ids stay in ssh2\'s sequence', async () => {
    const { sftp } = await openSftp();
    const ch = sftpChannel(sftp);
    // raw NAME bytes captured through the inbound hook, as the session does
    const raw: Buffer[] = [];
    expect(ch.hookInbound((_table, pass) => (data) => {
      raw.push(Buffer.from(data));
      pass(data);
    })).toBe(true);
    const id = ch.nextId();
    const reply = new Promise<unknown>((resolve, reject) => ch.onReply(id, (err, value) => (err ? reject(err) : resolve(value))));
    ch.send(new PacketBuilder().string(Buffer.from('/a\xffb', 'latin1')).build(REQ.REALPATH, id));
    const names = (await reply) as { filename: string }[];
    expect(names[0]?.filename).toMatch(/^\/real\/a/);
    const nameReply = Buffer.concat(raw).subarray(4);
    expect(nameReply[0]).toBe(104);
    expect(nameReply.readUInt32BE(1)).toBe(id);
    expect(parseNames(nameReply)[0]?.filename.toString('latin1')).toMatch(/^\/real\/a/);
    // ssh2's own next request uses the id after ours and is answered normally
    const viaSsh2 = await new Promise<string>((resolve, reject) => sftp.realpath('x', (err, p) => (err ? reject(err) : resolve(p))));
    expect(viaSsh2).toBe('/realx');
    expect(fieldsOf(sftp)['_writeReqid']).toBe(id + 1);
  });

  it('window handling: 8 MiB of WRITEs (4x the 2 MiB window) are queued in _buffer, drained on _chunkcb, and reach the server whole and in order', async () => {
    const { sftp } = await openSftp();
    const ch = sftpChannel(sftp);
    sftpWrites.length = 0;
    const chunk = 32 * 1024;
    const total = 8 * 1024 * 1024;
    const data = Buffer.from(Array.from({ length: total }, (_, i) => (i * 13) & 0xff));
    const handle = Buffer.from('h1');
    const acks: Promise<void>[] = [];
    let queued = false;
    for (let off = 0; off < total; off += chunk) {
      const id = ch.nextId();
      const head = encodeWriteHead(id, handle, off, chunk, 0);
      expect(head.length).toBe(writeHeadLength(handle));
      acks.push(new Promise<void>((resolve, reject) => ch.onReply(id, (err) => (err ? reject(err) : resolve()))));
      ch.send(head);
      ch.send(data.subarray(off, off + chunk), true);
      if ((fieldsOf(sftp)['_buffer'] as Buffer[]).length > 0) queued = true;
    }
    expect(queued).toBe(true);
    await Promise.all(acks);
    expect(fieldsOf(sftp)['_buffer']).toEqual([]);
    expect(sftpWrites.map((w) => w.offset)).toEqual(Array.from({ length: total / chunk }, (_, i) => i * chunk));
    expect(Buffer.concat(sftpWrites.map((w) => w.data)).equals(data)).toBe(true);
  });

  it('inbound hook: ssh2\'s READ request carries the caller\'s buffer, the DATA fast path fills it, and the eager window (keepWindow) is topped up after the chunks', async () => {
    const { sftp } = await openSftp();
    const ch = sftpChannel(sftp);
    const w = ch.keepWindow({ sizeBytes: 16 * 1024 * 1024, topUpFraction: 1 / 16 });
    expect(w.adjustsSent).toBe(1);
    let diverted = 0;
    expect(ch.hookInbound((table, pass) => {
      const counting = {
        waitingRead: (id: number, pktLen: number) => {
          const r = table.waitingRead(id, pktLen);
          if (r) diverted++;
          return r;
        },
        settle: (id: number, nb: number) => table.settle(id, nb),
      };
      const splitter = new DataReplySplitter(counting, pass);
      return (data) => splitter.push(data);
    })).toBe(true);
    const handle = await new Promise<Buffer>((resolve, reject) => sftp.open('/f', 'r', (err, h) => (err ? reject(err) : resolve(h))));
    const out = Buffer.alloc(FILE.length);
    // one READ request per read(): at most the server's max read length (ssh2 splits longer ones)
    const len = ch.maxReadLen;
    const reads: Promise<number>[] = [];
    for (let off = 0; off < FILE.length; off += len) {
      reads.push(new Promise<number>((resolve, reject) => sftp.read(handle, out, off, Math.min(len, FILE.length - off), off, (err, nb) => (err ? reject(err) : resolve(nb)))));
    }
    expect((await Promise.all(reads)).reduce((a, b) => a + b, 0)).toBe(FILE.length);
    expect(out.equals(FILE)).toBe(true);
    expect(diverted).toBe(reads.length);
    expect(fieldsOf(sftp)['_requests']).toEqual({});
    // ssh2 keeps 2 MiB; 3 MiB consumed made the hook top the 16 MiB window up again (every 1 MiB)
    expect(w.adjustsSent).toBeGreaterThanOrEqual(3);
    expect((fieldsOf(sftp)['incoming'] as { window: number }).window).toBeGreaterThan(15 * 1024 * 1024);
  });

  it('eager SFTP window (src/ssh2/window.ts eagerSftpWindow): SFTP.incoming/outgoing {id, window, packetSize, state}, _protocol.channelWindowAdjust(); the server sees sizeBytes at once', async () => {
    lastServerSftp = undefined;
    const { sftp } = await openSftp();
    const shape = checkSftpWindow(sftp);
    // ssh2's own window for the channel (less the VERSION reply already received)
    expect(shape.incoming.state).toBe('open');
    const before = shape.incoming.window;
    expect(before).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(before).toBeGreaterThan(2 * 1024 * 1024 - 1024);
    expect(await until(() => lastServerSftp !== undefined, 2_000)).toBe(true);
    const server = lastServerSftp as unknown as { outgoing: { window: number; id: number } };
    expect(server.outgoing.id).toBe(shape.incoming.id);
    const w = eagerSftpWindow(sftp, { sizeBytes: 40 * 1024 * 1024, topUpFraction: 1 / 16 });
    expect(w.bytesGranted).toBe(40 * 1024 * 1024 - before);
    expect(shape.incoming.window).toBe(40 * 1024 * 1024);
    expect(await until(() => server.outgoing.window === 40 * 1024 * 1024, 2_000)).toBe(true);
    // nothing consumed: no further top-up
    w.check();
    expect(w.adjustsSent).toBe(1);
    // stops with the channel
    sftp.end();
    expect(await until(() => shape.incoming.state !== 'open' || shape.outgoing.state !== 'open', 2_000)).toBe(true);
    w.check();
    expect(w.adjustsSent).toBe(1);
  });

  it('eager SFTP window: a changed field is ERR_SSH_SFTP "ssh2 internals changed" naming it, and nothing is granted', async () => {
    const { sftp } = await openSftp();
    const f = fieldsOf(sftp);
    for (const field of ['incoming', 'outgoing', '_protocol']) {
      const keep = f[field];
      f[field] = field === '_protocol' ? {} : { id: 1, window: 1 };
      let err: unknown;
      try {
        eagerSftpWindow(sftp, { sizeBytes: 8 * 1024 * 1024, topUpFraction: 0.5 });
      } catch (e) {
        err = e;
      }
      f[field] = keep;
      expect(err, field).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_SFTP');
      expect((err as SshError).message).toMatch(new RegExp(`^ssh2 internals changed: SFTP\\.${field}`));
    }
    expect((f['incoming'] as { window: number }).window).toBeLessThanOrEqual(2 * 1024 * 1024);
  });
});

// --- behaviours ----------------------------------------------------------------------------------

describe('strict kex during a server re-key (issue 13 item 2)', () => {
  for (const compress of compressions) {
    it(`[${compress}] plain ssh2 drops the link on an IGNORE during a re-key; the adapted client rides through and answers a probe`, async () => {
      const plain = connect({ adapt: false, compress: [compress] });
      await plain.ready;
      const plainConn = lastConn!;
      const closed = new Promise<void>((resolve) => plain.client.on('close', () => resolve()));
      void hostileRekey(plainConn);
      await closed;
      expect(plain.errors.map((e) => e.message).join('; ')).toMatch(/unexpected packet type 2/);

      const adapted = connect({ adapt: true, compress: [compress] });
      await adapted.ready;
      const negotiated = (adapted.client as unknown as { _protocol: { _kex: { negotiated: { sc: { compress: string } } } } })._protocol._kex.negotiated;
      expect(negotiated.sc.compress).toBe(compress);
      const conn = lastConn!;
      for (let i = 0; i < 3; i++) await hostileRekey(conn);
      expect(await probe(adapted.client)).toBe(true);
      expect(adapted.errors).toEqual([]);
      const a = ssh2Adapter(adapted.client);
      expect(a.rekeys).toBe(3);
      expect(a.relaxedDuringRekey).toBe(3);
    });
  }

  it('a connection-protocol message during a re-key (a keep-alive answered after the server KEXINIT): plain ssh2 drops the link, the adapted client handles it', async () => {
    mode = 'reply-mid-rekey';
    const plain = connect({ adapt: false });
    await plain.ready;
    const closed = new Promise<void>((resolve) => plain.client.on('close', () => resolve()));
    const proto = (plain.client as unknown as { _protocol: { ping(): void } })._protocol;
    callbacksOf(plain.client).push(() => undefined);
    proto.ping();
    await closed;
    expect(plain.errors.map((e) => e.message).join('; ')).toMatch(/unexpected packet type 82/);

    const adapted = connect({ adapt: true });
    await adapted.ready;
    for (let i = 0; i < 3; i++) expect(await probe(adapted.client)).toBe(true);
    // the link is still usable after the re-keys: one more probe answered, nothing queued
    expect(await probe(adapted.client)).toBe(true);
    expect(adapted.errors).toEqual([]);
    expect(ssh2Adapter(adapted.client).rekeys).toBeGreaterThanOrEqual(3);
    expect(callbacksOf(adapted.client).length).toBe(0);
  });

  it('the initial exchange keeps the rule: an IGNORE injected after the server KEXINIT is refused (plain and adapted)', async () => {
    // A proxy that forwards the server's identification line and first packet (KEXINIT), then
    // injects one unencrypted IGNORE, then passes everything through.
    const proxy = net.createServer((down) => {
      const up = net.connect(port, '127.0.0.1');
      down.on('error', () => undefined);
      up.on('error', () => undefined);
      down.pipe(up);
      let buf = Buffer.alloc(0);
      let injected = false;
      up.on('data', (chunk: Buffer) => {
        if (injected) return void down.write(chunk);
        buf = Buffer.concat([buf, chunk]);
        const nl = buf.indexOf('\n');
        if (nl === -1 || buf.length < nl + 1 + 4) return;
        const len = buf.readUInt32BE(nl + 1);
        const end = nl + 1 + 4 + len;
        if (buf.length < end) return;
        injected = true;
        down.write(buf.subarray(0, end));
        down.write(plainPacket(Buffer.concat([Buffer.from([2]), sshString('injected')])));
        down.write(buf.subarray(end));
      });
      up.on('close', () => down.destroy());
      down.on('close', () => up.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyPort = (proxy.address() as AddressInfo).port;
    try {
      for (const adapt of [false, true]) {
        const c = connect({ adapt, port: proxyPort });
        await expect(c.ready).rejects.toThrow(/unexpected packet type 2/);
      }
    } finally {
      proxy.close();
    }
  });
});

describe('UNIMPLEMENTED answers to global requests (issue 13 item 3)', () => {
  it('plain ssh2 keeps one callback per ping queued forever', async () => {
    mode = 'unimplemented';
    const plain = connect({ adapt: false });
    await plain.ready;
    const proto = (plain.client as unknown as { _protocol: { ping(): void } })._protocol;
    for (let i = 0; i < 5; i++) {
      callbacksOf(plain.client).push(() => undefined);
      proto.ping();
    }
    // give the server time to answer all five
    await new Promise((r) => setTimeout(r, 300));
    expect(callbacksOf(plain.client).length).toBe(5);
  });

  it('through src/ssh2 every UNIMPLEMENTED answers its probe and nothing stays queued', async () => {
    mode = 'unimplemented';
    const adapted = connect({ adapt: true });
    await adapted.ready;
    for (let i = 0; i < 20; i++) expect(await probe(adapted.client)).toBe(true);
    expect(callbacksOf(adapted.client).length).toBe(0);
    expect(ssh2Adapter(adapted.client).pending.length).toBe(0);
    expect(ssh2Adapter(adapted.client).unimplementedAnswers).toBe(20);
  });

  it('SshClient against it: keep-alive events with an RTT for every probe, ssh2 queue bounded, link stays up', async () => {
    mode = 'unimplemented';
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${execFileSync('ssh-keygen', ['-y', '-f', join(dir, 'host')], { encoding: 'utf8' }).trim()}\n`);
    const ssh = new SshClient({
      host: '127.0.0.1',
      port,
      username: 'u',
      password: 'any',
      identityFiles: [],
      agent: false,
      sshConfig: false,
      knownHostsFiles: [knownHosts],
      globalKnownHostsFiles: [],
      reconnect: false,
      keepaliveIntervalMs: 50,
      keepaliveCountMax: 2,
    });
    const rtts: number[] = [];
    ssh.on('keepalive', ({ rttMs }) => rtts.push(rttMs));
    try {
      await ssh.connect();
      const link = await ssh.link();
      let maxQueued = 0;
      const end = Date.now() + 10_000;
      while (rtts.length < 40 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 20));
        maxQueued = Math.max(maxQueued, callbacksOf(link.client).length);
      }
      expect(rtts.length).toBeGreaterThanOrEqual(40);
      // only probes in flight (at most countMax), never one per probe sent (40+)
      expect(maxQueued).toBeLessThanOrEqual(2);
      expect(ssh.state).toBe('ready');
      expect((await ssh.link()).client).toBe(link.client);
    } finally {
      await ssh.close();
    }
  });

  it('a normal server: REQUEST_FAILURE answers the probe as before, nothing queued', async () => {
    const adapted = connect({ adapt: true });
    await adapted.ready;
    for (let i = 0; i < 5; i++) expect(await probe(adapted.client)).toBe(true);
    expect(callbacksOf(adapted.client).length).toBe(0);
    expect(ssh2Adapter(adapted.client).unimplementedAnswers).toBe(0);
  });

  it('a probe on a closed client is a visible ERR_SSH_CONNECTION_LOST, not a silent false', async () => {
    const c = connect({ adapt: true });
    await c.ready;
    const closed = new Promise<void>((resolve) => c.client.on('close', () => resolve()));
    c.client.end();
    await closed;
    expect(() => sendKeepaliveProbe(c.client, () => undefined)).toThrow(expect.objectContaining({ code: 'ERR_SSH_CONNECTION_LOST' }) as Error);
  });
});

describe('DH group exchange bounds (issue 11 item 5)', () => {
  it('plain ssh2 accepts a 1024-bit group (sends KEX_DH_GEX_INIT); the adapted client refuses it', async () => {
    const srv = await gexServer(getDiffieHellman('modp2').getPrime());
    try {
      const plain = connect({ adapt: false, port: srv.port, kex: ['diffie-hellman-group-exchange-sha256'] });
      await expect(plain.ready).rejects.toBeDefined();
      expect(await until(() => srv.sessions[0]?.sentInit === true, 2_000)).toBe(true);
      expect(srv.sessions[0]?.request).toEqual({ min: 2048, pref: expect.any(Number) as number, max: 8192 });

      const adapted = connect({ adapt: true, port: srv.port, kex: ['diffie-hellman-group-exchange-sha256'] });
      await expect(adapted.ready).rejects.toThrow(/group has 1024 bits, outside the 2048-8192 bits requested/);
      expect(srv.sessions[1]?.sentInit).toBe(false);
    } finally {
      await srv.close();
    }
  });
});

describe('eager channel window (issue 18 item 2; src/ssh2/window.ts)', () => {
  const MiB = 1024 * 1024;
  /** Opens a direct-tcpip channel to the in-process server's N-MiB source. */
  async function openSource(client: ssh2.Client, mib: number): Promise<{ chan: ssh2.ClientChannel; source: Source }> {
    lastSource = undefined;
    const chan = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.forwardOut('127.0.0.1', 0, '127.0.0.1', mib, (err, ch) => (err ? reject(err) : resolve(ch))));
    expect(await until(() => lastSource !== undefined, 2_000)).toBe(true);
    return { chan, source: lastSource! };
  }

  it("the fields it uses: Channel.incoming/outgoing {id, window, packetSize, state}, _client._protocol.channelWindowAdjust(); ssh2's own window is 2 MiB", async () => {
    const { client, ready } = connect({ adapt: true });
    await ready;
    const { chan, source } = await openSource(client, 0);
    const shape = checkChannelWindow(chan);
    expect(shape.incoming).toMatchObject({ window: 2 * MiB, packetSize: 32 * 1024, state: 'open' });
    expect(shape.outgoing.state).toBe('open');
    // the server sees the window ssh2 advertised, under the channel number the adjust names
    expect(serverSide(source).outgoing.window).toBe(2 * MiB);
    expect(serverSide(source).outgoing.id).toBe(shape.incoming.id);
    chan.resume();
    chan.close();
  });

  it('a changed shape is ERR_SSH_HANDSHAKE "ssh2 internals changed" naming the field, and installs nothing', () => {
    const err = ((): unknown => {
      try {
        eagerWindow({ incoming: { id: 0, window: 0, packetSize: 0, state: 'open' }, outgoing: { id: 0, window: 0, state: 'open' } }, { sizeBytes: MiB, topUpFraction: 0.5 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_HANDSHAKE');
    expect((err as SshError).message).toMatch(/^ssh2 internals changed: Channel\.outgoing/);
    expect(() => checkChannelWindow({ incoming: { id: 1, window: 1, packetSize: 1, state: 'open' }, outgoing: { id: 1, window: 1, packetSize: 1, state: 'open' }, _client: {}, readableLength: 0 })).toThrow(
      /Channel\._client\._protocol\.channelWindowAdjust\(\)/,
    );
  });

  it('grows the window the server sees to sizeBytes at once; data byte-exact; top-ups follow what the sink took', async () => {
    const { client, ready } = connect({ adapt: true });
    await ready;
    const { chan, source } = await openSource(client, 40);
    const sink = new PassThrough();
    const h = createHash('sha256');
    let got = 0;
    sink.on('data', (b: Buffer) => {
      got += b.length;
      h.update(b);
    });
    chan.pipe(sink);
    const w = eagerWindow(chan, { sizeBytes: 8 * MiB, topUpFraction: 1 / 8, sink });
    // plain ssh2 never lets the server have more than 2 MiB in flight
    expect(await until(() => serverSide(source).outgoing.window === 8 * MiB, 2_000)).toBe(true);
    chan.write('go');
    await new Promise<void>((resolve) => sink.on('end', () => resolve()));
    expect(got).toBe(40 * MiB);
    expect(h.digest('hex')).toBe(await source.hash);
    expect(w.adjustsSent).toBeGreaterThan(1);
    // each adjust but the first grants at least 1/8 of the window
    expect(w.bytesGranted).toBeGreaterThanOrEqual(6 * MiB + (w.adjustsSent - 1) * MiB);
  });

  it('a paused local reader stops the top-ups: the server is held at sizeBytes unread, then all arrives byte-exact once it reads', async () => {
    const { client, ready } = connect({ adapt: true });
    await ready;
    const { chan, source } = await openSource(client, 64);
    // a sink that takes nothing until released (a local socket whose reader stopped reading)
    const held: { chunk: Buffer; cb: () => void }[] = [];
    let release = false;
    const h = createHash('sha256');
    let got = 0;
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb) {
        got += chunk.length;
        h.update(chunk);
        if (release) cb();
        else held.push({ chunk, cb });
      },
    });
    let received = 0;
    chan.on('data', (b: Buffer) => (received += b.length));
    chan.pipe(sink);
    const w = eagerWindow(chan, { sizeBytes: 8 * MiB, topUpFraction: 1 / 8, sink });
    chan.write('go');
    // the server runs out of window and stays there
    expect(await until(() => serverSide(source).outgoing.window === 0 && w.bufferedBytes >= 8 * MiB - 64 * 1024, 5_000)).toBe(true);
    const at = { adjusts: w.adjustsSent, buffered: w.bufferedBytes, granted: w.bytesGranted };
    await new Promise((r) => setTimeout(r, 300));
    expect(serverSide(source).outgoing.window).toBe(0);
    expect(w.adjustsSent).toBe(at.adjusts);
    expect(w.bytesGranted).toBe(at.granted);
    // unread data held here: bounded by the window (ssh2's own rule may add at most its 2 MiB)
    expect(w.bufferedBytes).toBe(at.buffered);
    expect(w.bufferedBytes).toBeLessThanOrEqual(8 * MiB + 2 * MiB);
    expect(received).toBeLessThan(64 * MiB);
    // the reader reads again: everything arrives, in order
    release = true;
    for (const x of held.splice(0)) x.cb();
    await new Promise<void>((resolve) => sink.on('finish', () => resolve()));
    expect(got).toBe(64 * MiB);
    expect(h.digest('hex')).toBe(await source.hash);
  });
});
