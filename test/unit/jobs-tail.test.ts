import { describe, expect, it } from 'vitest';
import { tailChunks, type TailChunk } from '../../src/jobs/tail.js';
import type { JobsHost } from '../../src/jobs/remote.js';

/**
 * A server whose followed file is renamed away while a poll runs: one poll pairs the old file's
 * inode with the new (small) file's size. The engine must not take that for a truncation and read
 * the renamed file again from 0 (its lines would be delivered twice).
 */
function scriptedHost(views: ((inode: string, offset: number) => string | Buffer)[]): { host: JobsHost; calls: { inode: string; offset: number }[] } {
  const calls: { inode: string; offset: number }[] = [];
  const host = {
    exec: (command: string | readonly string[]) => {
      const argv = command as readonly string[];
      const inode = argv[5] ?? '';
      const offset = Number(argv[6]);
      calls.push({ inode, offset });
      const view = views.shift();
      if (!view) throw new Error(`unexpected poll ${calls.length}`);
      const out = view(inode, offset);
      return Promise.resolve({ stdout: Buffer.isBuffer(out) ? out : Buffer.from(out), stderr: Buffer.alloc(0), exitCode: 0, signal: null });
    },
  } as unknown as JobsHost;
  return { host, calls };
}

const OLD = Buffer.from('line 1\nline 2\nline 3\nline 4\nline 5\n'); // inode 100, renamed away
const NEW = Buffer.from('line 6\n'); // inode 200, the file now at the path
const answer = (head: string, data: Buffer = Buffer.alloc(0)): Buffer => Buffer.concat([Buffer.from(`${head}\n`), data]);

describe('tailChunks: rotation racing a poll', () => {
  it('a poll that sees the old inode with a smaller size is not a truncation; every byte once', async () => {
    const first = 14; // 'line 1\nline 2\n'
    const { host, calls } = scriptedHost([
      () => answer(`cur 100 ${first} 0`, OLD.subarray(0, first)),
      // the race: inode of the old file, size of the new one (7 < 14)
      () => answer(`cur 100 ${NEW.length} 0`),
      // the path is renamed: the old file is found by inode and finished from the offset asked
      (_i, off) => answer(`old 100 ${OLD.length} 0`, OLD.subarray(off)),
      () => answer(`old 100 ${OLD.length} 0`),
      () => answer(`old 100 ${OLD.length} 0`),
      (_i, off) => answer(`cur 200 ${NEW.length} 1`, NEW.subarray(off)),
    ]);
    const chunks: TailChunk[] = [];
    for await (const c of tailChunks(host, '/log', { from: 'start', follow: true, doneFile: '/done', pollIntervalMs: 1, chunkBytes: 1 << 20, signal: new AbortController().signal })) chunks.push(c);
    const byGeneration = new Map<number, Buffer>();
    for (const c of chunks) byGeneration.set(c.generation, Buffer.concat([byGeneration.get(c.generation) ?? Buffer.alloc(0), c.data]));
    expect([...byGeneration.values()].map((b) => b.toString())).toEqual([OLD.toString(), NEW.toString()]);
    // the renamed file was never asked for from offset 0 again
    expect(calls.filter((c) => c.inode === '100' && c.offset === 0)).toHaveLength(0);
  });

  it('a real truncation in place (two polls agree) starts again at 0', async () => {
    const { host } = scriptedHost([
      () => answer(`cur 100 ${OLD.length} 0`, OLD),
      () => answer('cur 100 7 0'),
      () => answer('cur 100 7 0'),
      (_i, off) => answer('cur 100 7 1', Buffer.from('again\n\n').subarray(off)),
    ]);
    const chunks: TailChunk[] = [];
    for await (const c of tailChunks(host, '/log', { from: 'start', follow: true, doneFile: '/done', pollIntervalMs: 1, chunkBytes: 1 << 20, signal: new AbortController().signal })) chunks.push(c);
    expect(chunks.map((c) => [c.generation, c.offset, c.data.toString()])).toEqual([
      [0, 0, OLD.toString()],
      [1, 0, 'again\n\n'],
    ]);
  });

  it("a 'retry' answer (the path was renamed during the poll) just polls again", async () => {
    const { host, calls } = scriptedHost([
      () => answer('retry'),
      (_i, off) => answer(`cur 100 ${OLD.length} 1`, OLD.subarray(off)),
    ]);
    const chunks: TailChunk[] = [];
    for await (const c of tailChunks(host, '/log', { from: 'start', follow: true, doneFile: '/done', pollIntervalMs: 1, chunkBytes: 1 << 20, signal: new AbortController().signal })) chunks.push(c);
    expect(Buffer.concat(chunks.map((c) => c.data)).toString()).toBe(OLD.toString());
    expect(calls).toHaveLength(2);
  });
});
