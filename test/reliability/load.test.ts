/**
 * Load, rekey and backpressure, issue 6 items 8 and 10-13, against real sshds.
 * No `error` listener is attached to any client (item 25, see guard.ts).
 *
 * Item 13: the reader stops for 5 s by default, 30 s with `RELIABILITY_LONG=1`.
 */
import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type SshClientOptions } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startSshd, describeSshd } from '../helpers/sshd.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { reliabilitySuite } from './guard.js';
import { settle, sleep } from './util.js';

const suite = reliabilitySuite('Load, rekey and backpressure (items 8, 10-13)');
const info = sharedSshd();
const LONG = process.env.RELIABILITY_LONG === '1';
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const clients: SshClient[] = [];
function track(o: SshClientOptions): SshClient {
  const c = new SshClient(o);
  clients.push(c);
  return c;
}
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

let local: string;
let src: string; // local 64 MiB random file
let srcHash: string;
const tag = `rel-${process.pid}`;

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(fs.createReadStream(p), h);
  return h.digest('hex');
}
async function sha256Stream(s: Readable): Promise<{ hash: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of s) {
    const b = c as Buffer;
    bytes += b.length;
    h.update(b);
  }
  return { hash: h.digest('hex'), bytes };
}

beforeAll(async () => {
  local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-rel-load-'));
  src = path.join(local, 'src.bin');
  const block = Buffer.allocUnsafe(8 * MiB);
  const fd = fs.openSync(src, 'w');
  for (let off = 0; off < SIZE; off += block.length) fs.writeSync(fd, randomFillSync(block), 0, block.length, off);
  fs.closeSync(fd);
  srcHash = await sha256File(src);
});
afterAll(async () => {
  await fsp.rm(local, { recursive: true, force: true });
  const ssh = new SshClient(clientOptions(info));
  await ssh.exec(`rm -rf ${tag}*`).catch(() => undefined);
  await ssh.close();
});

describe('item 8: rekey under load', () => {
  it('RekeyLimit 1M: 64 MiB each way over exec and over SFTP arrive intact', async () => {
    const server = await startSshd({ extraConfig: ['RekeyLimit 1M'] });
    try {
      let kexinits = 0;
      const logger = {
        debug: (_o: unknown, msg?: string) => {
          if (typeof msg === 'string' && /KEXINIT/.test(msg)) kexinits++;
        },
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      };
      const ssh = track(clientOptions(describeSshd(server), { logger, debugProtocol: true, reconnect: false }));
      const disconnects: string[] = [];
      ssh.on('disconnect', ({ cause }) => disconnects.push(cause.code));
      // exec up: 64 MiB on stdin, hashed by the server
      const up = await ssh.exec('sha256sum', { stdin: fs.createReadStream(src) });
      expect(up.stdout.split(' ')[0]).toBe(srcHash);
      // SFTP up, then exec down: the file the server wrote, streamed back through `cat`
      const sftp = await ssh.sftp();
      await sftp.put(src, `${tag}-rekey.bin`);
      const cat = await ssh.spawn(['cat', `${tag}-rekey.bin`]);
      const [down, exit] = await Promise.all([sha256Stream(cat.stdout), cat.exited]);
      expect(exit.exitCode).toBe(0);
      expect(down).toEqual({ hash: srcHash, bytes: SIZE });
      // SFTP down
      const back = path.join(local, 'rekey-back.bin');
      await sftp.get(`${tag}-rekey.bin`, back);
      expect(await sha256File(back)).toBe(srcHash);
      await sftp.unlink(`${tag}-rekey.bin`);
      expect(disconnects).toEqual([]);
      // 256 MiB moved with a 1 MiB limit: dozens of key re-exchanges (the first KEXINIT pair is the handshake)
      expect(kexinits).toBeGreaterThan(20);
      suite.figure('item 8: KEXINIT debug lines over 4 x 64 MiB with RekeyLimit 1M', kexinits);
    } finally {
      await server.remove();
    }
  }, 120_000);
});

describe('item 10: MaxSessions', () => {
  it('200 concurrent execs against sshd MaxSessions 10 (client maxSessions 16): all finish, exit codes and output intact', async () => {
    const ssh = track(clientOptions(info, { maxSessions: 16 }));
    let maxOpen = 0;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const p = ssh.exec(`echo ${i}; exit ${i % 256}`);
        maxOpen = Math.max(maxOpen, ssh.health().openChannels);
        return p;
      }),
    );
    results.forEach((r, i) => {
      expect(r.exitCode).toBe(i % 256);
      expect(r.stdout).toBe(`${i}\n`);
    });
    expect(ssh.health().openChannels).toBe(0);
    expect(ssh.health().queuedChannels).toBe(0);
  }, 60_000);
});

describe('item 11: work issued while disconnected', () => {
  it('50 operations issued while down run once each, in order, after the reconnect', async () => {
    const proxy = await FaultProxy.start({ host: info.host, port: info.port });
    try {
      const ssh = track(clientOptions(info, { maxSessions: 1, reconnect: { minDelayMs: 200, maxDelayMs: 400 } }, proxy));
      await ssh.connect();
      const log = `${tag}-order.log`;
      await ssh.exec(`: > ${log}`, { check: true });
      proxy.refuse(true);
      proxy.reset();
      expect(await waitFor(() => ssh.state === 'reconnecting', 5_000)).toBe(true);
      const ops = Array.from({ length: 50 }, (_, i) => ssh.exec(`echo ${i} >> ${log}`, { check: true }));
      await sleep(1_000);
      proxy.refuse(false);
      await Promise.all(ops);
      const lines = (await ssh.exec(['cat', log])).stdout.split('\n').filter(Boolean);
      expect(lines).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    } finally {
      await proxy.close();
    }
  });

  it('with a deadline, 50 operations issued while down fail with ERR_SSH_TIMEOUT (none hangs) and never run later', async () => {
    const proxy = await FaultProxy.start({ host: info.host, port: info.port });
    try {
      const ssh = track(clientOptions(info, { reconnect: { minDelayMs: 100, maxDelayMs: 200 }, connectTimeoutMs: 1_000 }, proxy));
      await ssh.connect();
      const log = `${tag}-late.log`;
      await ssh.exec(`: > ${log}`, { check: true });
      proxy.blackhole();
      proxy.reset();
      expect(await waitFor(() => ssh.state === 'reconnecting', 5_000)).toBe(true);
      const sftp = await ssh.sftp();
      const ops = [
        ...Array.from({ length: 45 }, (_, i) => settle(ssh.exec(`echo ${i} >> ${log}`, { timeoutMs: 1_500 }))),
        ...Array.from({ length: 5 }, () => settle(sftp.stat('.', { timeoutMs: 1_500 }))),
      ];
      const results = await Promise.all(ops);
      expect(results.map((r) => (r.ok ? 'resolved' : r.code))).toEqual(Array.from({ length: 50 }, () => 'ERR_SSH_TIMEOUT'));
      proxy.resume();
      expect(await waitFor(() => ssh.state === 'ready', 10_000)).toBe(true);
      await sleep(500);
      expect((await ssh.exec(['cat', log])).stdout).toBe('');
    } finally {
      await proxy.close();
    }
  });
});

describe('item 12: parallel transfers', () => {
  it('10 parallel 64 MiB SFTP transfers on one client (5 up, 5 down) arrive intact', async () => {
    const ssh = track(clientOptions(info));
    await ssh.exec(`head -c ${SIZE} /dev/urandom > ${tag}-down.bin`, { check: true });
    const remoteHash = (await ssh.exec(['sha256sum', `${tag}-down.bin`])).stdout.split(' ')[0];
    const sftp = await ssh.sftp();
    const t0 = Date.now();
    await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => sftp.put(src, `${tag}-up${i}.bin`)),
      ...Array.from({ length: 5 }, (_, i) => sftp.get(`${tag}-down.bin`, path.join(local, `down${i}.bin`))),
    ]);
    suite.figure('item 12: 10 x 64 MiB in parallel took', `${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const sums = (await ssh.exec(`sha256sum ${tag}-up*.bin`)).stdout.split('\n').filter(Boolean);
    expect(sums).toHaveLength(5);
    for (const l of sums) expect(l.split(' ')[0]).toBe(srcHash);
    for (let i = 0; i < 5; i++) {
      expect(await sha256File(path.join(local, `down${i}.bin`))).toBe(remoteHash);
      await fsp.rm(path.join(local, `down${i}.bin`));
    }
    await ssh.exec(`rm -f ${tag}-up*.bin ${tag}-down.bin`);
  }, 120_000);
});

describe('item 13: a reader that stops reading', () => {
  const pauseMs = LONG ? 30_000 : 5_000;
  it(`spawn stdout and an SFTP read stream paused for ${pauseMs / 1000} s: bytes received and memory stay bounded; both resume intact`, async () => {
    const ssh = track(clientOptions(info));
    await ssh.exec(`head -c ${SIZE} /dev/urandom > ${tag}-slow.bin`, { check: true });
    const remoteHash = (await ssh.exec(['sha256sum', `${tag}-slow.bin`])).stdout.split(' ')[0];
    const sftp = await ssh.sftp();
    const proc = await ssh.spawn(['cat', `${tag}-slow.bin`]);
    const rs = sftp.createReadStream(`${tag}-slow.bin`);
    // nobody reads: let the windows and buffers fill, then measure over the pause
    await sleep(1_000);
    const in0 = ssh.health().bytesIn;
    const mem0 = process.memoryUsage();
    await sleep(pauseMs);
    const inDelta = ssh.health().bytesIn - in0;
    const mem1 = process.memoryUsage();
    const growth = mem1.arrayBuffers + mem1.heapUsed - (mem0.arrayBuffers + mem0.heapUsed);
    suite.figure(`item 13: bytes received during the ${pauseMs / 1000} s pause`, inDelta);
    suite.figure(`item 13: heap + buffers growth during the pause`, `${(growth / MiB).toFixed(1)} MiB`);
    // 64 MiB is waiting on the server; while paused, less than a window or two more may arrive
    expect(inDelta).toBeLessThan(8 * MiB);
    expect(growth).toBeLessThan(32 * MiB);
    expect(ssh.health().bytesIn).toBeLessThan(SIZE);
    const [a, b, exit] = await Promise.all([sha256Stream(proc.stdout), sha256Stream(rs), proc.exited]);
    expect(exit.exitCode).toBe(0);
    expect(a).toEqual({ hash: remoteHash, bytes: SIZE });
    expect(b).toEqual({ hash: remoteHash, bytes: SIZE });
    await ssh.exec(['rm', '-f', `${tag}-slow.bin`]);
  }, 120_000);
});
