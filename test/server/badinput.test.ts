// Bad input never crashes the host process: the in-process server answers as sshd would (or drops
// the connection / SFTP session) and reports an `error` event; a normal client works afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import fc from 'fast-check';
import type ssh2 from 'ssh2';
import { SshClient, type SshError } from '../../src/index.js';
import { startServer, type SshServer } from '../../src/server/index.js';
import { rawClient, rawExec } from './util.js';

function pkt(type: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1);
  head[4] = type;
  return Buffer.concat([head, body]);
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u32(b.length), b]);
}
const INIT = pkt(1, u32(3));

/** Opens a raw `sftp` subsystem channel (ssh2 does not parse it: we speak the protocol by hand). */
function subsystem(c: ssh2.Client): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => c.subsys('sftp', (err, ch) => (err ? reject(err) : resolve(ch))));
}

/** Sends `bytes` on a fresh subsystem channel; resolves with everything received until close or `waitMs`. */
async function sftpExchange(c: ssh2.Client, bytes: Buffer[], waitMs = 400, eof = false): Promise<{ data: Buffer; closed: boolean }> {
  const ch = await subsystem(c);
  const chunks: Buffer[] = [];
  let closed = false;
  ch.on('data', (d: Buffer) => chunks.push(d));
  const done = new Promise<void>((resolve) => {
    ch.on('close', () => {
      closed = true;
      resolve();
    });
    setTimeout(resolve, waitMs);
  });
  for (const b of bytes) ch.write(b);
  if (eof) ch.end();
  await done;
  if (!closed) ch.close();
  return { data: Buffer.concat(chunks), closed };
}

/** The SSH_FXP_STATUS codes in a reply stream. */
function statuses(data: Buffer): number[] {
  const out: number[] = [];
  let off = 0;
  while (off + 5 <= data.length) {
    const len = data.readUInt32BE(off);
    if (data[off + 4] === 101 && off + 13 <= data.length) out.push(data.readUInt32BE(off + 9));
    off += 4 + len;
  }
  return out;
}

describe('in-process server: bad input', () => {
  let server: SshServer;
  const errors: SshError[] = [];
  beforeAll(async () => {
    server = await startServer();
    server.on('error', (e) => errors.push(e));
  });
  afterAll(async () => {
    await server.stop();
  });

  async function stillServes(): Promise<void> {
    await using ssh = new SshClient({ ...server.clientOptions(), reconnect: false });
    await ssh.connect();
    expect((await ssh.exec('echo alive')).stdout).toBe('alive\n');
  }

  it('survives garbage on the TCP port (random bytes, a bad banner, a huge packet length)', async () => {
    const blobs: Buffer[] = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from('SSH-2.0-evil\r\n'),
      Buffer.concat([Buffer.from('SSH-2.0-evil\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3])]),
      Buffer.concat([Buffer.from('SSH-1.5-old\r\n'), Buffer.alloc(64, 0x41)]),
      ...fc.sample(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { numRuns: 20, seed: 14 }).map((a) => Buffer.from(a)),
    ];
    for (const blob of blobs) {
      await new Promise<void>((resolve) => {
        const s = net.connect(server.port, server.host);
        const timer = setTimeout(() => {
          s.destroy();
          resolve();
        }, 300);
        s.on('error', () => undefined);
        s.on('connect', () => s.write(blob));
        s.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await stillServes();
  });

  it('answers malformed SFTP requests with a status, and drops the session on a broken frame', async () => {
    const c = await rawClient(server);
    try {
      const before = errors.length;
      // an oversized length: the session is dropped, an error event is emitted
      const big = await sftpExchange(c, [INIT, Buffer.from([0xff, 0xff, 0xff, 0xff, 3])]);
      expect(big.closed).toBe(true);
      expect(errors.length).toBeGreaterThan(before);
      // a request before INIT
      expect((await sftpExchange(c, [pkt(17, Buffer.concat([u32(1), str('.')]))])).closed).toBe(true);
      // truncated bodies, unknown types, bad handles, NUL in a path, a string longer than the packet
      const r = await sftpExchange(c, [
        INIT,
        pkt(3, Buffer.concat([u32(1), u32(10)])),
        pkt(99, u32(2)),
        pkt(5, Buffer.concat([u32(3), str('nope'), Buffer.alloc(12)])),
        pkt(17, Buffer.concat([u32(4), str('a\0b')])),
        pkt(17, Buffer.concat([u32(5), u32(0x7fffffff)])),
        pkt(4, Buffer.concat([u32(6), str(Buffer.alloc(4))])),
        pkt(200, Buffer.concat([u32(7), str('no-such-extension@x')])),
      ]);
      expect(r.closed).toBe(false);
      expect(statuses(r.data)).toEqual([5, 8, 4, 5, 5, 4, 8]);
    } finally {
      c.end();
    }
    await stillServes();
  });

  it('answers every request sent before the client EOF, then closes the session', async () => {
    const c = await rawClient(server);
    try {
      const reqs = Array.from({ length: 20 }, (_, i) => pkt(17, Buffer.concat([u32(i + 1), str('.')])));
      const r = await sftpExchange(c, [INIT, ...reqs, pkt(99, u32(99))], 5_000, true);
      expect(r.closed).toBe(true);
      let off = 0;
      const types: number[] = [];
      while (off + 5 <= r.data.length) {
        types.push(r.data[off + 4]!);
        off += 4 + r.data.readUInt32BE(off);
      }
      expect(types).toEqual([2, ...Array.from({ length: 20 }, () => 105), 101]);
    } finally {
      c.end();
    }
  });

  it('survives random SFTP packets after INIT (fast-check)', async () => {
    const c = await rawClient(server);
    try {
      const packets = fc.sample(
        fc.tuple(fc.integer({ min: 1, max: 210 }), fc.uint8Array({ maxLength: 64 })).map(([t, body]) => pkt(t, Buffer.from(body))),
        { numRuns: 300, seed: 7 },
      );
      for (let i = 0; i < packets.length; i += 50) await sftpExchange(c, [INIT, ...packets.slice(i, i + 50)], 200);
    } finally {
      c.end();
    }
    await stillServes();
  });

  it('refuses bad env names and NUL in a command', async () => {
    const c = await rawClient(server);
    try {
      // ssh2 sends each env pair as its own request; a refused one does not stop the command.
      const r = await rawExec(c, 'echo "[$OK_NAME]"', { env: { 'BAD NAME': 'x', OK_NAME: 'fine', 'A=B': 'y' } });
      expect(r.out).toBe('[fine]\n');
      await expect(rawExec(c, 'echo a\0b')).rejects.toThrow();
    } finally {
      c.end();
    }
    await stillServes();
  });

  it('survives clients that vanish mid-handshake and mid-command', async () => {
    for (let i = 0; i < 5; i++) {
      const s = net.connect(server.port, server.host);
      s.on('error', () => undefined);
      await new Promise<void>((resolve) => s.once('data', () => resolve()));
      s.write('SSH-2.0-gone\r\n');
      s.resetAndDestroy();
    }
    const c = await rawClient(server);
    await new Promise<void>((resolve) => c.exec('sleep 30', () => resolve()));
    c.destroy();
    await new Promise((r) => setTimeout(r, 200));
    await stillServes();
  });
});
