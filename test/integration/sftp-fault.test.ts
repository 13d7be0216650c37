/**
 * SFTP under faults: abort in the middle of transfers (no remote handle left open: checked in
 * /proc of the server's processes), the link dying mid-operation (blackhole via a TCP proxy, or
 * the transport destroyed), resume after a failed transfer, and close().
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SftpClient } from '../../src/sftp/index.js';
import type { Link } from '../../src/connection/link.js';
import { RawLinkProvider } from '../helpers/raw-link.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sharedSshd } from '../helpers/shared.js';

const info = sharedSshd();
let local: string;
let base: string;
let src: string; // local 64 MiB random file
let srcHash: string;
const SIZE = 64 * 1024 * 1024;

function provider(target: { host: string; port: number }): RawLinkProvider {
  const p = new RawLinkProvider({ ...info, host: target.host, port: target.port });
  p.onLink((link: Link) => link.client.setNoDelay(true));
  return p;
}

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(fs.createReadStream(p), h);
  return h.digest('hex');
}

/** Paths under `prefix` held open by any process but this one (the sftp server's handles). */
function openFdsUnder(prefix: string): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith(prefix)) out.push(`${pid}:${target}`);
      } catch {
        // gone
      }
    }
  }
  return out;
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string }> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as { code?: string },
  );
}

beforeAll(async () => {
  local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-sftp-fault-'));
  src = path.join(local, 'src.bin');
  const block = Buffer.allocUnsafe(8 * 1024 * 1024);
  const fd = fs.openSync(src, 'w');
  for (let off = 0; off < SIZE; off += block.length) fs.writeSync(fd, randomFillSync(block), 0, block.length, off);
  fs.closeSync(fd);
  srcHash = await sha256File(src);
  base = path.join(info.homeDir, `sftp-fault-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(base);
  const { uid, gid } = fs.statSync(info.homeDir);
  fs.chownSync(base, uid, gid);
});

afterAll(async () => {
  await fsp.rm(local, { recursive: true, force: true });
  await fsp.rm(base, { recursive: true, force: true });
});

describe('abort', () => {
  it('abort in the middle of get and put rejects with ERR_SSH_ABORTED and leaves no remote handle open', async () => {
    const links = provider(info);
    const sftp = new SftpClient(links);
    try {
      const remote = `${base}/abort.bin`;
      // put, aborted at the first progress report
      const ac = new AbortController();
      let after = 0;
      const putErr = await rejection(
        sftp.put(src, remote, {
          signal: ac.signal,
          onProgress: () => {
            if (ac.signal.aborted) after++;
            ac.abort();
          },
        }),
      );
      expect(putErr.code).toBe('ERR_SSH_ABORTED');
      expect(openFdsUnder(base)).toEqual([]);
      expect(fs.statSync(remote).size).toBeLessThan(SIZE);
      expect(after).toBe(0);

      // a complete copy, then an aborted get
      await sftp.put(src, remote);
      const ac2 = new AbortController();
      const getErr = await rejection(sftp.get(remote, path.join(local, 'abort-get.bin'), { signal: ac2.signal, onProgress: () => ac2.abort() }));
      expect(getErr.code).toBe('ERR_SSH_ABORTED');
      expect(openFdsUnder(base)).toEqual([]);
      expect(fs.statSync(path.join(local, 'abort-get.bin')).size).toBeLessThan(SIZE);

      // abort before start and a stream destroyed early also close their handles
      const pre = new AbortController();
      pre.abort();
      expect((await rejection(sftp.readFile(remote, { signal: pre.signal }))).code).toBe('ERR_SSH_ABORTED');
      const rs = sftp.createReadStream(remote);
      await new Promise<void>((resolve) => rs.once('data', () => resolve()));
      expect(openFdsUnder(base).length).toBe(1); // the oracle sees an open handle
      rs.destroy();
      await new Promise<void>((resolve) => rs.once('close', () => resolve()));
      expect(openFdsUnder(base)).toEqual([]);

      // the session is still usable
      expect((await sftp.stat(remote)).size).toBe(SIZE);
    } finally {
      await sftp.close();
      await links.close();
    }
  });
});

describe('link loss', () => {
  it('an operation in flight when the link dies rejects with ERR_SSH_CONNECTION_LOST; the next call opens a new session', async () => {
    const links = provider(info);
    const sftp = new SftpClient(links);
    try {
      const remote = `${base}/lost.bin`;
      await sftp.put(src, remote);
      let dropped = false;
      const err = await rejection(
        sftp.get(remote, path.join(local, 'lost.bin'), {
          onProgress: () => {
            if (!dropped) void links.drop();
            dropped = true;
          },
        }),
      );
      expect(err.code).toBe('ERR_SSH_CONNECTION_LOST');
      // in-flight metadata requests fail the same way
      const pending = sftp.list(base);
      void links.drop();
      const e2 = await pending.then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
      if (e2 !== undefined) expect(e2.code).toBe('ERR_SSH_CONNECTION_LOST');
      // a new link, a new session
      const r = await sftp.get(remote, path.join(local, 'lost.bin'), { resume: true });
      expect(r.totalBytes).toBe(SIZE);
      expect(await sha256File(path.join(local, 'lost.bin'))).toBe(srcHash);
    } finally {
      await sftp.close();
      await links.close();
    }
  });

  it('blackhole mid-get, then get({ resume: true }) completes with the right hash; put resumes too', async () => {
    const proxy = await FaultProxy.start({ host: info.host, port: info.port });
    const links = provider(proxy);
    const sftp = new SftpClient(links);
    try {
      const remote = `${base}/bh.bin`;
      await sftp.put(src, remote);
      const dst = path.join(local, 'bh.bin');
      let holed = false;
      const err = await rejection(
        sftp.get(remote, dst, {
          // one channel: a striped get (test/integration/sftp-striped.test.ts) keeps only its
          // complete ranges, none yet at 8 MiB
          channels: 1,
          onProgress: (p) => {
            if (!holed && p.transferredBytes > 8 * 1024 * 1024) {
              holed = true;
              proxy.blackhole();
              // the real client's keep-alive declares such a link dead; here we do it ourselves
              setTimeout(() => void links.drop(), 300);
            }
          },
        }),
      );
      expect(err.code).toBe('ERR_SSH_CONNECTION_LOST');
      const partial = fs.statSync(dst).size;
      expect(partial).toBeGreaterThan(0);
      expect(partial).toBeLessThan(SIZE);
      proxy.resume();
      const r = await sftp.get(remote, dst, { resume: { verify: 'sha256' } });
      expect(r.resumedFrom).toBeGreaterThan(0);
      expect(r.resumedFrom + r.transferredBytes).toBe(SIZE);
      expect(await sha256File(dst)).toBe(srcHash);

      // put: a partial remote copy is continued
      const remote2 = `${base}/bh-put.bin`;
      fs.writeFileSync(remote2, fs.readFileSync(src).subarray(0, 5_000_000));
      const { uid, gid } = fs.statSync(base);
      fs.chownSync(remote2, uid, gid);
      const r2 = await sftp.put(src, remote2, { resume: true });
      expect(r2.resumedFrom).toBe(5_000_000);
      expect(await sha256File(remote2)).toBe(srcHash);
      // a destination that is not a prefix (hash differs) is copied again from the start
      const fd = fs.openSync(remote2, 'r+');
      fs.writeSync(fd, Buffer.from('corrupt'), 0, 7, 100);
      fs.ftruncateSync(fd, 10_000_000);
      fs.closeSync(fd);
      const r3 = await sftp.put(src, remote2, { resume: { verify: 'sha256' } });
      expect(r3.resumedFrom).toBe(0);
      expect(await sha256File(remote2)).toBe(srcHash);
    } finally {
      await sftp.close();
      await links.close();
      await proxy.close();
    }
  }, 60_000);
});

describe('close', () => {
  it('close() rejects operations in flight and later calls with ERR_SSH_CLOSED', async () => {
    const links = provider(info);
    const sftp = new SftpClient(links);
    try {
      const remote = `${base}/close.bin`;
      await sftp.put(src, remote);
      let closing: Promise<void> | undefined;
      const inflight = sftp.get(remote, path.join(local, 'close.bin'), { onProgress: () => void (closing ??= sftp.close()) });
      const err = await rejection(inflight);
      await closing;
      expect(err.code).toBe('ERR_SSH_CLOSED');
      expect((await rejection(sftp.stat(remote))).code).toBe('ERR_SSH_CLOSED');
      await sftp.close(); // idempotent
    } finally {
      await links.close();
    }
  });
});
