/**
 * sftp/sync.ts pure parts: the parser of `sha256sum`/`shasum -a 256` output, checked against
 * the real tools run here on awkward names (newline, backslash, leading space, leading dash,
 * an unreadable file in the middle), and the plan's decisions.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseShaOutput, planSync, type SyncSettings } from '../../src/sftp/sync.js';
import type { WalkedTree } from '../../src/sftp/dir-walk.js';

const NAMES = ['plain.txt', 'a\nb', 'c\\d', ' lead', '-dash', 'ünï', 'missing', 'last'];

function fixture(): { dir: string; paths: string[]; expected: (string | undefined)[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-sha-'));
  const paths = NAMES.map((n) => path.join(dir, n));
  const expected = NAMES.map((n, i) => {
    if (n === 'missing') return undefined;
    const content = `content ${i}`;
    fs.writeFileSync(paths[i]!, content);
    return createHash('sha256').update(content).digest('hex');
  });
  return { dir, paths, expected };
}

describe('parseShaOutput', () => {
  for (const tool of [['sha256sum'], ['shasum', '-a', '256']]) {
    const has = spawnSync('sh', ['-c', `command -v ${tool[0]!}`]).status === 0;
    it(`matches each line of the real ${tool.join(' ')} to its file (a missing file leaves a gap, not a shift)`, () => {
      expect(has).toBe(true);
      const { dir, paths, expected } = fixture();
      const r = spawnSync(tool[0]!, [...tool.slice(1), '--', ...paths]);
      const got = parseShaOutput(
        r.stdout,
        paths.map((p) => Buffer.from(p)),
      ).map((h) => h?.toString('hex'));
      expect(got).toEqual(expected);
      fs.rmSync(dir, { recursive: true });
    });
  }

  it('ignores lines that are not of the exact form, and never pairs a hash with another name', () => {
    const h = 'ab'.repeat(32);
    const out = Buffer.from(`junk\n${h}  other\n${h.toUpperCase()}  a\n\\${h}  x\\qy\n${h}  b\n${h}  a\n`);
    expect(parseShaOutput(out, [Buffer.from('a'), Buffer.from('b')]).map((x) => x?.toString('hex'))).toEqual([undefined, h]);
  });
});

const tree = (files: [string, number, number?][], dirs: string[] = [], others: [string, 'symlink' | 'other'][] = []): WalkedTree => ({
  files: files.map(([rel, size, mtime]) => ({ rel, size, mtime })),
  dirs,
  skipped: [],
  others: others.map(([rel, type]) => ({ rel, type })),
});
const settings = (o: Partial<SyncSettings>): SyncSettings => ({ compare: 'always', delete: false, dryRun: false, ...o });
const never = (): Promise<Set<string>> => Promise.reject(new Error('no hashing expected'));

describe('planSync', () => {
  it('size-mtime: equal size and mtime skip; a missing mtime on either side copies', async () => {
    const src = tree([
      ['same', 1, 10],
      ['newer', 1, 11],
      ['bigger', 2, 10],
      ['nomtime', 1],
      ['new', 1, 10],
    ]);
    const dest = tree([
      ['same', 1, 10],
      ['newer', 1, 10],
      ['bigger', 1, 10],
      ['nomtime', 1, 10],
    ]);
    const plan = await planSync(src, dest, settings({ compare: 'size-mtime' }), never);
    expect(plan.unchanged).toEqual(['same']);
    expect(plan.copy.map((f) => f.rel).sort()).toEqual(['bigger', 'new', 'newer', 'nomtime']);
    expect(plan.remove).toEqual([]);
  });

  it('checksum: only equal-size files are hashed', async () => {
    const src = tree([
      ['a', 1],
      ['b', 1],
      ['c', 2],
    ]);
    const dest = tree([
      ['a', 1],
      ['b', 1],
      ['c', 3],
    ]);
    let asked: readonly string[] = [];
    const plan = await planSync(src, dest, settings({ compare: 'checksum' }), (rels) => {
      asked = rels;
      return Promise.resolve(new Set(['a']));
    });
    expect(asked).toEqual(['a', 'b']);
    expect(plan.unchanged).toEqual(['a']);
    expect(plan.copy.map((f) => f.rel).sort()).toEqual(['b', 'c']);
  });

  it('delete: extras and everything below an extra directory, type conflicts, files before directories, deepest directories first; source symlinks protect their path', async () => {
    const src = tree([['x', 1], ['d/f', 1], ['conflict', 1]], ['d', 'asdir'], [['lnk', 'symlink']]);
    const dest = tree(
      [['x', 1], ['gone/g1', 1], ['gone/sub/g2', 1], ['asdir', 1], ['d/extra', 1], ['lnk', 1]],
      ['d', 'gone', 'conflict', 'gone/sub'],
      [['d/l', 'symlink']],
    );
    const plan = await planSync(src, dest, settings({ delete: true }), never);
    const order = plan.remove.map((r) => `${r.type}:${r.rel}`);
    expect(order.slice(0, 5).sort()).toEqual(['file:asdir', 'file:d/extra', 'file:gone/g1', 'file:gone/sub/g2', 'symlink:d/l']);
    expect(order.slice(5)).toEqual(['directory:gone/sub', 'directory:conflict', 'directory:gone']);
    // without delete nothing is removed
    expect((await planSync(src, dest, settings({}), never)).remove).toEqual([]);
  });
});
