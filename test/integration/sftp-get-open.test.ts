/**
 * How a `get` starts (issue 18: a round trip less per file on a long link). A STAT goes out with
 * the OPEN; when it has answered by the time the OPEN has, the reads start at once, while the
 * FSTAT of the open handle is still on its way. The FSTAT stays the authority: its attributes are
 * the ones preserved, and a file it finds longer than the STAT said is copied to its end.
 *
 * Against a hostile SFTP server (test/helpers/hostile-sftp-server.ts) that holds its FSTAT answer
 * or answers STAT with other attributes than FSTAT: what is checked is the order in which the
 * server received the requests, and the bytes of the local file.
 */
import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient } from '../../src/index.js';
import { startHostileSftp } from '../helpers/hostile-sftp-server.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const data = randomFillSync(Buffer.alloc(700 * 1024 + 5));
let local: string;

beforeAll(async () => {
  local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-get-open-'));
});

afterAll(async () => {
  await fsp.rm(local, { recursive: true, force: true });
});

describe('get: reads start at the OPEN answer when the STAT sent with it gave the size', () => {
  it('READs reach the server while its FSTAT answer is still held; the file is byte-exact and gets the FSTAT mode', async () => {
    let fstatPending = false;
    let readWhileFstatPending = false;
    let release: (() => void) | undefined;
    const server = await startHostileSftp({
      node: (p) => {
        if (p !== '/f') return undefined;
        return {
          type: 'file',
          content: data,
          attrs: { size: data.length, mode: 0o100604, mtime: 1_000_000_000, atime: 1_000_000_000 },
          read: (off, len) => {
            if (fstatPending) {
              readWhileFstatPending = true;
              release?.();
            }
            return off >= data.length ? 'eof' : data.subarray(off, off + len);
          },
        };
      },
      // the FSTAT answer waits for a READ (at most 3 s: a client that waits for it still ends)
      beforeFstat: () => {
        fstatPending = true;
        return new Promise<void>((resolve) => {
          const timer = setTimeout(() => done(), 3_000);
          const done = (): void => {
            clearTimeout(timer);
            fstatPending = false;
            resolve();
          };
          release = done;
        });
      },
    });
    const ssh = new SshClient(server.clientOptions());
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'early.bin');
      const r = await sftp.get('/f', dst, { channels: 1, preserve: true, timeoutMs: 15_000 });
      expect(r.transferredBytes).toBe(data.length);
      expect(sha(fs.readFileSync(dst))).toBe(sha(data));
      expect(readWhileFstatPending).toBe(true);
      // the STAT went out before the OPEN, the FSTAT right after the OPEN's answer
      const order = server.log.requests.filter((x) => /^(STAT|OPEN|FSTAT|READ)/.test(x));
      expect(order.slice(0, 3)).toEqual(['STAT', 'OPEN /f', 'FSTAT']);
      // preserve applies the FSTAT's attributes
      const st = fs.statSync(dst);
      expect(st.mode & 0o777).toBe(0o604);
      expect(Math.round(st.mtimeMs / 1000)).toBe(1_000_000_000);
    } finally {
      await ssh.close();
      await server.close();
    }
  });

  it('a file the FSTAT finds longer than the STAT said (it grew between them) is copied to the FSTAT size, byte-exact', async () => {
    const server = await startHostileSftp({
      node: (p) => (p === '/grown' ? { type: 'file', content: data, attrs: { size: data.length, mode: 0o100644 } } : undefined),
      statAttrs: () => ({ size: 100 * 1024, mode: 0o100644 }),
    });
    const ssh = new SshClient(server.clientOptions());
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'grown.bin');
      const r = await sftp.get('/grown', dst, { channels: 1, timeoutMs: 15_000 });
      expect(r.totalBytes).toBe(data.length);
      expect(fs.statSync(dst).size).toBe(data.length);
      expect(sha(fs.readFileSync(dst))).toBe(sha(data));
    } finally {
      await ssh.close();
      await server.close();
    }
  });

  it('a file shorter than the STAT said ends at its EOF, byte-exact (nothing past the data is written)', async () => {
    const server = await startHostileSftp({
      node: (p) => (p === '/shrunk' ? { type: 'file', content: data, attrs: { size: data.length, mode: 0o100644 } } : undefined),
      statAttrs: () => ({ size: 3 * data.length, mode: 0o100644 }),
    });
    const ssh = new SshClient(server.clientOptions());
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'shrunk.bin');
      const r = await sftp.get('/shrunk', dst, { channels: 1, timeoutMs: 15_000 });
      expect(r.totalBytes).toBe(data.length);
      expect(sha(fs.readFileSync(dst))).toBe(sha(data));
    } finally {
      await ssh.close();
      await server.close();
    }
  });

  it('a server that never answers STAT: the get waits for the FSTAT as before, byte-exact', async () => {
    const server = await startHostileSftp({
      node: (p) => (p === '/mute' ? { type: 'file', content: data } : undefined),
      statNever: true,
    });
    const ssh = new SshClient(server.clientOptions());
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'mute.bin');
      await sftp.get('/mute', dst, { channels: 1, timeoutMs: 15_000 });
      expect(sha(fs.readFileSync(dst))).toBe(sha(data));
      const order = server.log.requests.filter((x) => /^(STAT|OPEN|FSTAT|READ)/.test(x));
      // no READ before the FSTAT (its answer was the first size known)
      expect(order.indexOf('FSTAT')).toBeLessThan(order.indexOf('READ'));
    } finally {
      await ssh.close();
      await server.close();
    }
  });
});
