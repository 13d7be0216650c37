/**
 * Adaptive SFTP pipelining (issue 18 item 3; src/sftp/pacing.ts, src/sftp/engine.ts) against the
 * shared real sshd, through a delay line (test/bench/delay-line.ts, in this process: every chunk
 * delivered 25 ms later each way, RTT ~50 ms): get and put are byte-exact for sizes around the
 * request boundaries, and on the delayed link the requests in flight grow above the initial 16.
 * No timing is asserted: the in-flight count is read from the engine's controller
 * (`engineHooks.onPacing`), the bytes from the files.
 *
 * Requests of 32 KiB (`chunkSize`) keep the test quick and make growth certain: 16 x 32 KiB per
 * 50 ms round trip is 10 MB/s, far below what this machine moves, so the measured rate rises with
 * every doubling.
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type SftpClient } from '../../src/index.js';
import { engineHooks, MEMO_MIN_ROUNDS } from '../../src/sftp/engine.js';
import type { PacingStats } from '../../src/sftp/pacing.js';
import { startDelayLineHere } from '../bench/delay-line.js';
import { clientOptions } from '../helpers/client.js';
import { sharedSshd } from '../helpers/shared.js';

const info = sharedSshd();
const CHUNK = 32 * 1024;
const DELAY_MS = 25;

let server: net.Server;
let client: SshClient;
let delayPort: number;
let base: string;
let local: string;
const seen: { kind: 'get' | 'put'; stats: PacingStats }[] = [];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  const dl = await startDelayLineHere({ host: info.host, port: info.port }, DELAY_MS);
  server = dl.server;
  delayPort = dl.port;
  client = new SshClient(clientOptions(info, {}, { host: '127.0.0.1', port: dl.port }));
  client.on('error', () => undefined);
  await client.connect();
  base = path.join(info.homeDir, `sftp-pacing-${randomBytes(4).toString('hex')}`);
  await (await client.sftp()).mkdir(base);
  local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-pacing-'));
  engineHooks.onPacing = (kind, stats) => seen.push({ kind, stats });
}, 60_000);

afterEach(() => {
  seen.length = 0;
});

afterAll(async () => {
  engineHooks.onPacing = undefined;
  await fsp.rm(base, { recursive: true, force: true });
  await fsp.rm(local, { recursive: true, force: true });
  await client?.close();
  await new Promise<void>((resolve) => {
    server?.close(() => resolve());
    // the delay line's sockets go with the client's close; bound the wait anyway
    setTimeout(resolve, 2_000).unref();
  });
});

describe('adaptive in-flight requests on a ~50 ms link', () => {
  it('get: 8 MiB + 3 bytes byte-exact, requests in flight grew above the initial 16 (default maxConcurrency)', async () => {
    const sftp = await client.sftp();
    const data = randomFillSync(Buffer.alloc(8 * 1024 * 1024 + 3));
    const remote = path.join(base, 'big-get.bin');
    await fsp.writeFile(remote, data);
    const dst = path.join(local, 'big-get.bin');
    const res = await sftp.get(remote, dst, { chunkSize: CHUNK, timeoutMs: 60_000 });
    expect(res.transferredBytes).toBe(data.length);
    expect(sha(await fsp.readFile(dst))).toBe(sha(data));
    const runs = seen.filter((s) => s.kind === 'get');
    expect(runs).toHaveLength(1);
    const st = runs[0]!.stats;
    expect(st.initial).toBe(16);
    expect(st.peak).toBeGreaterThan(16);
    expect(st.peak).toBeLessThanOrEqual(st.max);
    expect(st.max).toBe(256);
    expect(st.completed).toBeGreaterThanOrEqual(Math.ceil(data.length / CHUNK));
    // the least round trip of one request includes the delay line's two 25 ms legs
    expect(st.minRttMs).toBeGreaterThanOrEqual(2 * DELAY_MS);
  }, 60_000);

  it('the next get on the session starts where the last one ended (its memo), not at 16 again; byte-exact', async () => {
    // a session of its own: no earlier transfer left a memo
    const fresh = new SshClient(clientOptions(info, {}, { host: '127.0.0.1', port: delayPort }));
    fresh.on('error', () => undefined);
    try {
      await memoChecks(await fresh.sftp());
    } finally {
      await fresh.close();
    }
  }, 60_000);

  async function memoChecks(sftp: SftpClient): Promise<void> {
    // 256 requests of 32 KiB: at least 4 rounds (a round at most doubles: 16 + 32 + 64 + 128 < 256)
    const data = randomFillSync(Buffer.alloc(8 * 1024 * 1024 + 7));
    const remote = path.join(base, 'memo-get.bin');
    await fsp.writeFile(remote, data);
    const dst = path.join(local, 'memo-get.bin');
    await sftp.get(remote, dst, { chunkSize: CHUNK, timeoutMs: 60_000 });
    const first = seen.filter((s) => s.kind === 'get')[0]!.stats;
    expect(first.start).toBe(16);
    expect(first.rounds).toBeGreaterThanOrEqual(MEMO_MIN_ROUNDS);
    expect(first.limit).toBeGreaterThan(16);
    await sftp.get(remote, dst, { chunkSize: CHUNK, timeoutMs: 60_000 });
    expect(sha(await fsp.readFile(dst))).toBe(sha(data));
    const second = seen.filter((s) => s.kind === 'get')[1]!.stats;
    // it began where the first ended (the memo of a run that measured the link)
    expect(second.start).toBe(first.limit);
    expect(second.initial).toBe(16);
    // a different request size starts at the same bytes in flight: the memo of the last run
    // that measured the link
    const memoLimit = second.rounds >= MEMO_MIN_ROUNDS ? second.limit : first.limit;
    const half = CHUNK / 2;
    await sftp.get(remote, dst, { chunkSize: half, timeoutMs: 60_000 });
    const third = seen.filter((s) => s.kind === 'get')[2]!.stats;
    expect(third.start).toBe(Math.min(third.max, Math.ceil((memoLimit * CHUNK) / half)));
    expect(sha(await fsp.readFile(dst))).toBe(sha(data));
  }

  it('put: 8 MiB + 3 bytes byte-exact (what the server holds), in flight grew above 16', async () => {
    const sftp = await client.sftp();
    const data = randomFillSync(Buffer.alloc(8 * 1024 * 1024 + 3));
    const src = path.join(local, 'big-put.bin');
    await fsp.writeFile(src, data);
    const remote = path.join(base, 'big-put.bin');
    const res = await sftp.put(src, remote, { chunkSize: CHUNK, timeoutMs: 60_000 });
    expect(res.transferredBytes).toBe(data.length);
    expect(sha(await fsp.readFile(remote))).toBe(sha(data));
    const st = seen.find((s) => s.kind === 'put')!.stats;
    expect(st.initial).toBe(16);
    expect(st.peak).toBeGreaterThan(16);
  }, 60_000);

  it('maxConcurrency equal to concurrency keeps a fixed count (as before the controller)', async () => {
    const sftp = await client.sftp();
    const data = randomFillSync(Buffer.alloc(2 * 1024 * 1024 + 1));
    const remote = path.join(base, 'fixed.bin');
    await fsp.writeFile(remote, data);
    const dst = path.join(local, 'fixed.bin');
    await sftp.get(remote, dst, { chunkSize: CHUNK, concurrency: 8, maxConcurrency: 8, timeoutMs: 60_000 });
    expect(sha(await fsp.readFile(dst))).toBe(sha(data));
    const st = seen.find((s) => s.kind === 'get')!.stats;
    expect(st).toMatchObject({ initial: 8, max: 8, peak: 8, limit: 8 });
  }, 60_000);

  it('sizes around the request boundaries, get and put, byte-exact (0, 1, chunk +- 1, 16 chunks +- 1, 17 chunks)', async () => {
    const sftp = await client.sftp();
    const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 16 * CHUNK - 1, 16 * CHUNK, 16 * CHUNK + 1, 17 * CHUNK];
    await Promise.all(
      sizes.map(async (n) => {
        const data = randomFillSync(Buffer.alloc(n));
        const remoteSrc = path.join(base, `src-${n}`);
        const remoteDst = path.join(base, `dst-${n}`);
        const localSrc = path.join(local, `src-${n}`);
        const localDst = path.join(local, `dst-${n}`);
        await fsp.writeFile(remoteSrc, data);
        await fsp.writeFile(localSrc, data);
        const g = await sftp.get(remoteSrc, localDst, { chunkSize: CHUNK, timeoutMs: 60_000 });
        const p = await sftp.put(localSrc, remoteDst, { chunkSize: CHUNK, timeoutMs: 60_000 });
        expect(g.totalBytes, `get ${n}`).toBe(n);
        expect(p.totalBytes, `put ${n}`).toBe(n);
        expect(sha(fs.readFileSync(localDst)), `get ${n}`).toBe(sha(data));
        expect(sha(fs.readFileSync(remoteDst)), `put ${n}`).toBe(sha(data));
      }),
    );
    // every run kept within its cap
    for (const s of seen) expect(s.stats.peak).toBeLessThanOrEqual(s.stats.max);
  }, 120_000);
});
