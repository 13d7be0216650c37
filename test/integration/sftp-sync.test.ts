/**
 * Issue 17 §3/§5: directory sync with `putDir`/`getDir` (`compare`, `delete`, `dryRun`), `walk`
 * and `list` filters, against the shared real sshd (and a hostile server for `delete`). The
 * server runs on this machine, so remote files are also read here (tests run as root) to check
 * what the server really holds: contents, mtimes, and that nothing outside the target changed.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type SftpClient } from '../../src/index.js';
import { SftpClient as BareSftpClient } from '../../src/sftp/index.js';
import type { Link } from '../../src/connection/link.js';
import { clientOptions } from '../helpers/client.js';
import { RawLinkProvider } from '../helpers/raw-link.js';
import { sharedSshd } from '../helpers/shared.js';
import { startHostileSftp, type HNode, type HostileSftpServer, type WireName } from '../helpers/hostile-sftp-server.js';

const info = sharedSshd();
let ssh: SshClient;
let sftp: SftpClient; // through the facade: exec available (sha256sum)
let links: RawLinkProvider;
let bare: BareSftpClient; // no exec: checksum reads over SFTP
let base: string; // remote dir (also readable here), owned by the login user
let local: string; // local scratch dir
const hostiles: HostileSftpServer[] = [];

const N = 300;
/** Fixed mtime base of the generated tree (2021-01-01), so that "now" differs from every file. */
const T0 = 1_609_459_200;

beforeAll(async () => {
  ssh = new SshClient(clientOptions(info));
  await ssh.connect();
  sftp = await ssh.sftp();
  links = new RawLinkProvider(info);
  links.onLink((link: Link) => link.client.setNoDelay(true));
  bare = new BareSftpClient(links);
  base = path.join(info.homeDir, `sync-${randomBytes(4).toString('hex')}`);
  await sftp.mkdir(base);
  local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-sync-'));
});

afterAll(async () => {
  await bare?.close();
  await links?.close();
  await ssh?.close();
  await Promise.all(hostiles.map((h) => h.close()));
  await fsp.rm(local, { recursive: true, force: true });
  await fsp.rm(base, { recursive: true, force: true });
});

/** Writes a tree of `n` files in 10 directories (some nested), mtimes T0 + i; returns the relative paths. */
function makeTree(dir: string, n = N): string[] {
  const rels: string[] = [];
  for (let i = 0; i < n; i++) {
    const sub = i % 3 === 0 ? `d${i % 10}/e` : `d${i % 10}`;
    const rel = `${sub}/f${String(i).padStart(3, '0')}.txt`;
    fs.mkdirSync(path.join(dir, sub), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), `file ${i}\n`.repeat((i % 7) + 1));
    fs.utimesSync(path.join(dir, rel), T0 + i, T0 + i);
    rels.push(rel);
  }
  return rels.sort();
}

/** Remote fixtures written here as root belong to the login user afterwards. */
function chownToUser(p: string): void {
  execFileSync('chown', ['-R', '-h', info.username, p], { stdio: 'ignore' });
}

/**
 * Every entry below `root` (not following symlinks): type, size, mtime in ms, content hash or
 * link target. What "changes nothing" is checked against.
 */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await fsp.readdir(path.join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = await fsp.lstat(p);
      if (st.isDirectory()) {
        out[r] = `dir ${st.mtimeMs}`;
        await walk(r);
      } else if (st.isSymbolicLink()) out[r] = `link -> ${await fsp.readlink(p)}`;
      else out[r] = `file ${st.size} ${st.mtimeMs} ${createHash('sha256').update(await fsp.readFile(p)).digest('hex')}`;
    }
  };
  await walk('');
  return out;
}

/** Same size, other content (the first byte changed); the mtime becomes now unless `keepMtime`. */
function changeSameSize(p: string, keepMtime = false): void {
  const st = fs.statSync(p);
  const b = fs.readFileSync(p);
  b[0] = b[0] === 0x58 ? 0x59 : 0x58;
  fs.writeFileSync(p, b);
  if (keepMtime) fs.utimesSync(p, st.atime, st.mtime);
}

const sorted = (a: readonly string[]): string[] => [...a].sort();

describe('putDir sync (local -> remote)', () => {
  it('size-mtime: the second run copies nothing; a touched and a same-size-changed file are exactly what is copied; checksum finds only the changed one', async () => {
    const src = path.join(local, 'put-src');
    const rels = makeTree(src);
    const dst = `${base}/put-dst`;

    const first = await sftp.putDir(src, dst, { compare: 'size-mtime' });
    expect(sorted(first.copied)).toEqual(rels);
    expect(first.unchanged).toEqual([]);
    // mtimes preserved on the server (whole seconds), so the next run can skip
    for (const i of [0, 1, 150, 299]) expect(Math.floor(fs.statSync(path.join(dst, rels[i]!)).mtimeMs / 1000)).toBe(Math.floor(fs.statSync(path.join(src, rels[i]!)).mtimeMs / 1000));

    const second = await sftp.putDir(src, dst, { compare: 'size-mtime' });
    expect(second.copied).toEqual([]);
    expect(sorted(second.unchanged)).toEqual(rels);
    expect(second.transferredBytes).toBe(0);

    const touched = rels[10]!;
    const changed = rels[20]!;
    fs.utimesSync(path.join(src, touched), T0 + 100_000, T0 + 100_000);
    changeSameSize(path.join(src, changed));
    const third = await sftp.putDir(src, dst, { compare: 'size-mtime' });
    expect(sorted(third.copied)).toEqual(sorted([touched, changed]));
    expect(third.unchanged).toHaveLength(N - 2);
    expect(fs.readFileSync(path.join(dst, changed))).toEqual(fs.readFileSync(path.join(src, changed)));
    expect(Math.floor(fs.statSync(path.join(dst, touched)).mtimeMs / 1000)).toBe(T0 + 100_000);

    // checksum: touch one more, change another at the same size AND the same mtime
    const touched2 = rels[30]!;
    const changed2 = rels[40]!;
    fs.utimesSync(path.join(src, touched2), T0 + 200_000, T0 + 200_000);
    changeSameSize(path.join(src, changed2), true);
    // the quick check cannot see changed2 (same size, same mtime: rsync's blind spot) ...
    const quick = await sftp.putDir(src, dst, { compare: 'size-mtime', dryRun: true });
    expect(quick.copied).toEqual([touched2]);
    // ... the checksum does, and the touched file with the same content is left alone;
    // hashed on the server with sha256sum over exec: no file content read over SFTP
    const readBefore = sftp.stats().bytesRead;
    const execBefore = sftp.remoteHasher.counts.exec;
    const sum = await sftp.putDir(src, dst, { compare: 'checksum' });
    expect(sum.copied).toEqual([changed2]);
    expect(sum.unchanged).toHaveLength(N - 1);
    expect(fs.readFileSync(path.join(dst, changed2))).toEqual(fs.readFileSync(path.join(src, changed2)));
    expect(sftp.stats().bytesRead - readBefore).toBe(0);
    expect(sftp.remoteHasher.counts.exec - execBefore).toBe(N);
    // nothing differs now
    expect((await sftp.putDir(src, dst, { compare: 'checksum' })).copied).toEqual([]);
  });

  it('checksum without exec (a bare SftpClient) hashes by reading over SFTP, with the same decisions', async () => {
    const src = path.join(local, 'bare-src');
    const rels = makeTree(src, 40);
    const dst = `${base}/bare-dst`;
    expect(sorted((await bare.putDir(src, dst, { compare: 'checksum' })).copied)).toEqual(rels);
    changeSameSize(path.join(src, rels[5]!), true);
    fs.utimesSync(path.join(src, rels[6]!), T0 + 5, T0 + 5);
    const before = bare.stats().bytesRead;
    const r = await bare.putDir(src, dst, { compare: 'checksum' });
    expect(r.copied).toEqual([rels[5]]);
    expect(r.unchanged).toHaveLength(39);
    // every remote file of the same size was read whole (plus nothing more than one byte each)
    const total = rels.reduce((a, rel) => a + fs.statSync(path.join(dst, rel)).size, 0);
    expect(bare.stats().bytesRead - before).toBe(total);
    expect(bare.remoteHasher.counts.exec).toBe(0);
  });
});

describe('getDir sync (remote -> local)', () => {
  it('size-mtime and checksum, the mirror image of putDir', async () => {
    const remote = `${base}/get-src`;
    const rels = makeTree(remote);
    chownToUser(remote);
    const dst = path.join(local, 'get-dst');

    const first = await sftp.getDir(remote, dst, { compare: 'size-mtime' });
    expect(sorted(first.copied)).toEqual(rels);
    expect(fs.statSync(path.join(dst, rels[7]!)).mtimeMs).toBe(fs.statSync(path.join(remote, rels[7]!)).mtimeMs);
    const second = await sftp.getDir(remote, dst, { compare: 'size-mtime' });
    expect(second.copied).toEqual([]);
    expect(sorted(second.unchanged)).toEqual(rels);

    const touched = rels[11]!;
    const changed = rels[22]!;
    await sftp.utimes(`${remote}/${touched}`, T0 + 50_000, T0 + 50_000);
    const b = await sftp.readFile(`${remote}/${changed}`);
    b[0] = 0x58;
    await sftp.writeFile(`${remote}/${changed}`, b); // same size, mtime now
    const third = await sftp.getDir(remote, dst, { compare: 'size-mtime' });
    expect(sorted(third.copied)).toEqual(sorted([touched, changed]));
    expect(fs.readFileSync(path.join(dst, changed))).toEqual(b);

    const changed2 = rels[33]!;
    const st = await sftp.stat(`${remote}/${changed2}`);
    const b2 = await sftp.readFile(`${remote}/${changed2}`);
    b2[0] = 0x58;
    await sftp.writeFile(`${remote}/${changed2}`, b2);
    await sftp.utimes(`${remote}/${changed2}`, st.atime, st.mtime);
    await sftp.utimes(`${remote}/${rels[44]!}`, T0 + 60_000, T0 + 60_000);
    expect((await sftp.getDir(remote, dst, { compare: 'size-mtime', dryRun: true })).copied).toEqual([rels[44]]);
    const execBefore = sftp.remoteHasher.counts.exec;
    const sum = await sftp.getDir(remote, dst, { compare: 'checksum' });
    expect(sum.copied).toEqual([changed2]);
    expect(fs.readFileSync(path.join(dst, changed2))).toEqual(b2);
    expect(sftp.remoteHasher.counts.exec - execBefore).toBe(N);
  });
});

/** Builds the area around a target: a sibling dir, a file named like the target with a suffix, a directory outside. */
function makeArea(area: string, target: string): void {
  fs.mkdirSync(path.join(area, 'sibling'), { recursive: true });
  fs.writeFileSync(path.join(area, 'sibling', 'keep.txt'), 'sibling');
  fs.writeFileSync(`${path.join(area, target)}.bak`, 'named like the target');
  fs.mkdirSync(`${path.join(area, target)}-old`);
  fs.writeFileSync(path.join(`${path.join(area, target)}-old`, 'keep.txt'), 'old');
}

/** Puts extras into `dst`: a file, a nested dir, a symlink to a dir outside, type conflicts with `src`. */
function addExtras(dst: string): void {
  fs.writeFileSync(path.join(dst, 'extra.txt'), 'extra');
  fs.mkdirSync(path.join(dst, 'gone', 'deeper'), { recursive: true });
  fs.writeFileSync(path.join(dst, 'gone', 'a.txt'), 'a');
  fs.writeFileSync(path.join(dst, 'gone', 'deeper', 'b.txt'), 'b');
  fs.writeFileSync(path.join(dst, 'd1', 'extra-in-d1.txt'), 'x');
  fs.symlinkSync('../sibling', path.join(dst, 'link-out'));
  // the source has a file where the destination has a directory, and the other way round
  fs.rmSync(path.join(dst, 'd2', 'f002.txt'));
  fs.mkdirSync(path.join(dst, 'd2', 'f002.txt'));
  fs.writeFileSync(path.join(dst, 'd2', 'f002.txt', 'inner.txt'), 'inner');
  fs.rmSync(path.join(dst, 'd3', 'e'), { recursive: true });
  fs.writeFileSync(path.join(dst, 'd3', 'e'), 'a file where the source has a directory');
}

const EXPECTED_DELETED = [
  'extra.txt',
  'gone',
  'gone/a.txt',
  'gone/deeper',
  'gone/deeper/b.txt',
  'd1/extra-in-d1.txt',
  'link-out',
  'd2/f002.txt',
  'd2/f002.txt/inner.txt',
  'd3/e',
].sort();

/** The snapshot without the target's own entries. */
function around(snap: Record<string, string>, target: string): Record<string, string> {
  return Object.fromEntries(Object.entries(snap).filter(([k]) => k !== target && !k.startsWith(`${target}/`)));
}

describe('delete and dryRun', () => {
  it('putDir delete: removes the extras (a symlink itself, not its target), replaces type conflicts, and nothing outside the target; dryRun first changes nothing', async () => {
    const src = path.join(local, 'del-src');
    makeTree(src, 60);
    const area = `${base}/del-area`;
    makeArea(area, 'target');
    chownToUser(area);
    const dst = `${area}/target`;
    await sftp.putDir(src, dst, { compare: 'size-mtime' });
    addExtras(dst);
    chownToUser(area);
    const before = await snapshot(area);

    const dry = await sftp.putDir(src, dst, { compare: 'size-mtime', delete: true, dryRun: true });
    expect(await snapshot(area)).toEqual(before);
    expect(sorted(dry.deleted)).toEqual(EXPECTED_DELETED);
    expect(sorted(dry.copied)).toEqual(['d2/f002.txt', 'd3/e/f003.txt', 'd3/e/f033.txt']);
    expect(dry.transferredBytes).toBe(0);

    const real = await sftp.putDir(src, dst, { compare: 'size-mtime', delete: true });
    expect(real.failed).toEqual([]);
    expect(sorted(real.deleted)).toEqual(EXPECTED_DELETED);
    expect(sorted(real.copied)).toEqual(sorted(dry.copied));
    // the effect: the target now mirrors the source, and the area around it is untouched
    const after = await snapshot(area);
    expect(around(after, 'target')).toEqual(around(before, 'target'));
    const srcSnap = await snapshot(src);
    const dstSnap = await snapshot(dst);
    expect(Object.keys(dstSnap).sort()).toEqual(Object.keys(srcSnap).sort());
    for (const [k, v] of Object.entries(srcSnap)) if (v.startsWith('file')) expect(dstSnap[k]).toBe(v);
    expect(fs.readFileSync(path.join(area, 'sibling', 'keep.txt'), 'utf8')).toBe('sibling');
    // a filtered-out entry is protected from deletion (as rsync's excludes)
    fs.writeFileSync(path.join(dst, 'local.conf'), 'kept');
    chownToUser(dst);
    const filtered = await sftp.putDir(src, dst, { compare: 'size-mtime', delete: true, filter: (e) => !e.path.endsWith('.conf') });
    expect(filtered.deleted).toEqual([]);
    expect(fs.readFileSync(path.join(dst, 'local.conf'), 'utf8')).toBe('kept');
  });

  it('getDir delete: the same locally; a symlink in the target pointing outside is removed, never followed', async () => {
    const remote = `${base}/gdel-src`;
    makeTree(remote, 60);
    chownToUser(remote);
    const area = path.join(local, 'gdel-area');
    makeArea(area, 'target');
    const dst = path.join(area, 'target');
    await sftp.getDir(remote, dst, { compare: 'size-mtime' });
    addExtras(dst);
    const before = await snapshot(area);
    const dry = await sftp.getDir(remote, dst, { compare: 'size-mtime', delete: true, dryRun: true });
    expect(await snapshot(area)).toEqual(before);
    expect(sorted(dry.deleted)).toEqual(EXPECTED_DELETED);

    const real = await sftp.getDir(remote, dst, { compare: 'size-mtime', delete: true });
    expect(real.failed).toEqual([]);
    expect(sorted(real.deleted)).toEqual(EXPECTED_DELETED);
    const after = await snapshot(area);
    expect(around(after, 'target')).toEqual(around(before, 'target'));
    expect(Object.keys(await snapshot(dst)).sort()).toEqual(Object.keys(await snapshot(remote)).sort());
  });

  it('dryRun with changes pending on both sides changes nothing (full listing with mtimes), and reports what the real run then does', async () => {
    const src = path.join(local, 'dry-src');
    const rels = makeTree(src, 50);
    const dst = `${base}/dry-dst`;
    await sftp.putDir(src, dst, { compare: 'size-mtime' });
    fs.writeFileSync(path.join(dst, 'extra.txt'), 'x');
    chownToUser(dst);
    fs.utimesSync(path.join(src, rels[3]!), T0 + 9_999, T0 + 9_999);
    fs.writeFileSync(path.join(src, 'new.txt'), 'new');
    const [s0, d0] = [await snapshot(src), await snapshot(dst)];
    for (const compare of ['always', 'size-mtime', 'checksum'] as const) {
      const dry = await sftp.putDir(src, dst, { compare, delete: true, dryRun: true });
      expect(dry.deleted).toEqual(['extra.txt']);
      // checksum: the touched file has the same content
      if (compare === 'size-mtime') expect(sorted(dry.copied)).toEqual(sorted([rels[3]!, 'new.txt']));
      else if (compare === 'checksum') expect(dry.copied).toEqual(['new.txt']);
      else expect(dry.copied).toHaveLength(51);
    }
    // the other direction too
    const back = path.join(local, 'dry-back');
    fs.mkdirSync(back);
    fs.writeFileSync(path.join(back, 'only-here.txt'), 'y');
    const b0 = await snapshot(back);
    const dryGet = await sftp.getDir(dst, back, { compare: 'checksum', delete: true, dryRun: true });
    expect(dryGet.deleted).toEqual(['only-here.txt']);
    expect(dryGet.copied).toHaveLength(51);
    expect(await snapshot(back)).toEqual(b0);
    expect(await snapshot(src)).toEqual(s0);
    expect(await snapshot(dst)).toEqual(d0);
    const real = await sftp.putDir(src, dst, { compare: 'size-mtime', delete: true });
    expect(sorted(real.copied)).toEqual(sorted([rels[3]!, 'new.txt']));
    expect(real.deleted).toEqual(['extra.txt']);
  });

  it('a hostile server: delete never addresses a name that leaves the target (putDir), and says so in a warning', async () => {
    const fileName = (name: string | Buffer): WireName => ({ name, attrs: { size: 5, mode: 0o100644, mtime: T0 } });
    const dirName = (name: string): WireName => ({ name, attrs: { mode: 0o040755 } });
    const server = await startHostileSftp({
      node(p) {
        if (p === '/t') return { type: 'dir', names: [fileName('keep.txt'), fileName('../victim.txt'), fileName('/etc/passwd'), fileName('extra.txt'), dirName('sub'), dirName('..')] };
        if (p === '/t/sub') return { type: 'dir', names: [fileName('../../x'), fileName('in-sub.txt')] };
        if (p.startsWith('/t/')) return { type: 'file', content: Buffer.from('hello') } satisfies HNode;
        return undefined;
      },
    });
    hostiles.push(server);
    const client = new SshClient(server.clientOptions());
    await client.connect();
    try {
      const hs = await client.sftp();
      const warnings: string[] = [];
      hs.on('warning', (w) => warnings.push(w.path));
      const src = path.join(local, 'hostile-src');
      fs.mkdirSync(src);
      fs.writeFileSync(path.join(src, 'keep.txt'), 'hello');
      const r = await hs.putDir(src, '/t', { delete: true, compare: 'size-mtime' });
      expect(server.log.removes.sort()).toEqual(['/t/extra.txt', '/t/sub', '/t/sub/in-sub.txt']);
      expect(sorted(r.deleted)).toEqual(['extra.txt', 'sub', 'sub/in-sub.txt']);
      expect(sorted(warnings)).toEqual(sorted(['../victim.txt', '/etc/passwd', 'sub/../../x']));
    } finally {
      await client.close();
    }
  });

  it('a hostile server: rm({ recursive }) never addresses a name that leaves the directory; it keeps the directory and fails', async () => {
    const fileName = (name: string | Buffer): WireName => ({ name, attrs: { size: 5, mode: 0o100644, mtime: T0 } });
    const dirName = (name: string): WireName => ({ name, attrs: { mode: 0o040755 } });
    const server = await startHostileSftp({
      node(p) {
        if (p === '/t') return { type: 'dir', names: [fileName('ok.txt'), fileName('../victim.txt'), fileName('/etc/passwd'), dirName('sub')] };
        if (p === '/t/sub') return { type: 'dir', names: [fileName('../../x'), fileName('a/../../../y'), fileName('in-sub.txt')] };
        if (p.startsWith('/t/')) return { type: 'file', content: Buffer.from('hello') } satisfies HNode;
        return undefined;
      },
    });
    hostiles.push(server);
    const client = new SshClient(server.clientOptions());
    await client.connect();
    try {
      const hs = await client.sftp();
      const warnings: string[] = [];
      hs.on('warning', (w) => {
        expect(w.operation).toBe('rm');
        warnings.push(w.path);
      });
      const err = await hs.rm('/t', { recursive: true }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_SSH_SFTP' });
      expect(String((err as Error).message)).toContain('unsafe name');
      // Only names inside the directory were ever sent: no path outside /t, and /t itself kept.
      expect(server.log.removes).toContain('/t/sub/in-sub.txt');
      for (const p of server.log.removes) expect(['/t/ok.txt', '/t/sub/in-sub.txt']).toContain(p);
      expect(warnings).toHaveLength(4);
      for (const bad of ['../victim.txt', '/etc/passwd', '../../x', 'a/../../../y']) expect(warnings.some((w) => w.endsWith(bad))).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('options are checked: a bad compare is ERR_SSH_INVALID_ARG naming the field', async () => {
    const err = await sftp.putDir(local, `${base}/x`, { compare: 'mtime' as 'size-mtime' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'compare' });
    const err2 = await sftp.getDir(`${base}/x`, local, { delete: 'yes' as unknown as boolean }).catch((e: unknown) => e);
    expect(err2).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'delete' });
  });
});

describe('walk and list filters', () => {
  it('walk yields every entry with paths relative to dir, never follows a symlink out, and filters', async () => {
    const dir = `${base}/walk`;
    const rels = makeTree(dir, 40);
    fs.mkdirSync(`${base}/walk-outside/deep`, { recursive: true });
    fs.writeFileSync(`${base}/walk-outside/deep/secret.txt`, 's');
    fs.symlinkSync('../walk-outside', path.join(dir, 'd0', 'out'));
    chownToUser(dir);
    const all = [];
    for await (const e of sftp.walk(dir)) all.push(e);
    const expected = Object.keys(await snapshot(dir)).sort();
    expect(all.map((e) => e.path).sort()).toEqual(expected);
    const link = all.find((e) => e.path === 'd0/out')!;
    expect(link.type).toBe('symlink');
    expect(all.some((e) => e.path.includes('secret'))).toBe(false);
    const f = all.find((e) => e.path === rels[0])!;
    expect(f).toMatchObject({ type: 'file', depth: 3, name: path.basename(rels[0]!), fullPath: `${dir}/${rels[0]}` });
    expect(f.size).toBe(fs.statSync(path.join(dir, rels[0]!)).size);

    // RegExp on the relative path: directories still entered
    const txt = [];
    for await (const e of sftp.walk(dir, { filter: /\/e\/f\d+\.txt$/ })) txt.push(e.path);
    expect(txt.sort()).toEqual(rels.filter((r) => r.includes('/e/')));
    // function: a directory refused is not entered
    const pruned = [];
    for await (const e of sftp.walk(dir, { filter: (e) => e.name !== 'e' })) pruned.push(e.path);
    expect(pruned.sort()).toEqual(expected.filter((r) => !/(^|\/)e(\/|$)/.test(r)));
    // breaking out early is fine; maxEntries and maxDepth bound the walk
    for await (const e of sftp.walk(dir)) if (e) break;
    const limit = async (o: { maxEntries?: number; maxDepth?: number }): Promise<unknown> => {
      try {
        for await (const e of sftp.walk(dir, o)) void e;
        return undefined;
      } catch (err) {
        return err;
      }
    };
    expect(await limit({ maxEntries: 5 })).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'limit' });
    expect(await limit({ maxDepth: 1 })).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'limit' });
    expect(await limit({ maxDepth: 2 })).toBeUndefined();
  });

  it('list filter: a RegExp on the name or a function', async () => {
    const dir = `${base}/walk/d1`;
    const names = fs.readdirSync(dir).sort();
    expect((await sftp.list(dir, { filter: /^f0[0-4]/ })).map((e) => e.name).sort()).toEqual(names.filter((n) => /^f0[0-4]/.test(n)));
    expect((await sftp.list(dir, { filter: (e) => e.type === 'file' && e.size > 40 })).map((e) => e.name).sort()).toEqual(
      names.filter((n) => fs.statSync(path.join(dir, n)).isFile() && fs.statSync(path.join(dir, n)).size > 40),
    );
  });
});
