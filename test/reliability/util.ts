// Small helpers shared by the reliability tests.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { SshError } from '../../src/index.js';

/** The outcome of a promise, with the time it settled. */
export type Settled<T> = { ok: true; value: T; at: number } | { ok: false; error: unknown; code: string | undefined; at: number };

/** Never rejects: records how and when `p` settled. */
export function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value, at: Date.now() }),
    (error: unknown) => ({ ok: false as const, error, code: error instanceof SshError ? error.code : undefined, at: Date.now() }),
  );
}

/** The rejection of `p` (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<SshError> {
  const r = await settle(p);
  if (r.ok) throw new Error('expected a rejection, got a resolution');
  if (!(r.error instanceof SshError)) throw new Error(`expected an SshError, got ${String(r.error)}`);
  return r.error;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Open file descriptors of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Active resources by type (`process.getActiveResourcesInfo()`). */
export function activeResources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

/** A raw TCP server on 127.0.0.1 running `onConn` for each connection; `count` says how many came. */
export async function rawServer(onConn: (s: net.Socket) => void): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  const socks = new Set<net.Socket>();
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    socks.add(s);
    s.on('error', () => undefined);
    s.on('close', () => socks.delete(s));
    onConn(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr !== 'object') throw new Error('no address');
  return {
    port: addr.port,
    count: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of socks) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function nameList(s: string): Buffer {
  const b = Buffer.from(s, 'ascii');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** An unencrypted SSH_MSG_KEXINIT binary packet (RFC 4253 7.1, 6), as a server would send it. */
export function kexinitPacket(): Buffer {
  const payload = Buffer.concat([
    Buffer.from([20]),
    Buffer.alloc(16, 7),
    nameList('curve25519-sha256,kex-strict-s-v00@openssh.com'),
    nameList('ssh-ed25519'),
    nameList('aes128-ctr'),
    nameList('aes128-ctr'),
    nameList('hmac-sha2-256'),
    nameList('hmac-sha2-256'),
    nameList('none'),
    nameList('none'),
    nameList(''),
    nameList(''),
    Buffer.from([0, 0, 0, 0, 0]),
  ]);
  let pad = 8 - ((4 + 1 + payload.length) % 8);
  if (pad < 4) pad += 8;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + payload.length + pad);
  head[4] = pad;
  return Buffer.concat([head, payload, Buffer.alloc(pad)]);
}

/** Parses the name-lists of a KEXINIT payload (starting at the message byte). */
export function parseKexinit(payload: Buffer): Record<string, string[]> {
  const names = ['kex', 'serverHostKey', 'cipherCS', 'cipherSC', 'macCS', 'macSC', 'compCS', 'compSC', 'langCS', 'langSC'];
  const out: Record<string, string[]> = {};
  let off = 17;
  for (const n of names) {
    const len = payload.readUInt32BE(off);
    const s = payload.subarray(off + 4, off + 4 + len).toString('ascii');
    out[n] = s === '' ? [] : s.split(',');
    off += 4 + len;
  }
  return out;
}
