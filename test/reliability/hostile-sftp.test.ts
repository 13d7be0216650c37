/**
 * Hostile SFTP servers, issue 11 items 1, 2, 3, 7 and 8 (second bullet): a server built on ssh2's
 * `Server` (test/helpers/hostile-sftp-server.ts) misbehaves exactly as described, and each test
 * checks the effect on this machine: no file outside the target directory, RSS bounded, the
 * bytes on disk, the mode bits on disk, the time the call took. A few cases also run against the
 * real sshd (`/proc/version`, `put` with a setuid file). No `error` listener is attached.
 */
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { join, relative, sep } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, type SftpClient } from '../../src/index.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { sharedSshd } from '../helpers/shared.js';
import { startHostileSftp, type HNode, type HostileFs, type HostileSftpServer, type WireName } from '../helpers/hostile-sftp-server.js';
import { reliabilitySuite } from './guard.js';
import { rejection } from './util.js';

const suite = reliabilitySuite('Hostile SFTP servers (issue 11)');
const clients: SshClient[] = [];
const servers: HostileSftpServer[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

/** Starts a hostile server for `fs` and an SFTP client connected to it. */
async function hostile(fs: HostileFs): Promise<{ server: HostileSftpServer; ssh: SshClient; sftp: SftpClient }> {
  const server = await startHostileSftp(fs);
  servers.push(server);
  const ssh = new SshClient(server.clientOptions());
  clients.push(ssh);
  await ssh.connect();
  return { server, ssh, sftp: await ssh.sftp() };
}

/**
 * Starts a hostile server scenario of test/helpers/hostile-sftp-child.ts in its own process (so
 * RSS measures the client alone) and an SFTP client connected to it.
 */
async function hostileChild(scenario: 'fan' | 'endless'): Promise<{ sftp: SftpClient; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--import', './scripts/ts-node-register.mjs', 'test/helpers/hostile-sftp-child.ts', scenario], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const rl = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise<string>((resolve) => rl.once('line', resolve)),
    new Promise<string>((_, reject) => setTimeout(() => reject(new Error('hostile child did not start')), 30_000).unref()),
  ]);
  const { port, knownHosts } = JSON.parse(first) as { port: number; knownHosts: string[] };
  const ssh = new SshClient({
    host: '127.0.0.1',
    port,
    username: 'hostile',
    password: 'x',
    knownHostsFiles: knownHosts,
    globalKnownHostsFiles: [],
    identityFiles: [],
    agent: false,
    sshConfig: false,
    reconnect: false,
  });
  await ssh.connect();
  const sftp = await ssh.sftp();
  return {
    sftp,
    stop: async () => {
      await ssh.close();
      child.stdin.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Every file and directory under `root`, relative to it (no symlinks followed). */
function treeOf(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      out.push(relative(root, p));
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

const file = (content: string): HNode => ({ type: 'file', content: Buffer.from(content) });
const fileName = (name: string | Buffer): WireName => ({ name, attrs: { size: 6, mode: 0o100644 } });
const dirName = (name: string | Buffer): WireName => ({ name, attrs: { mode: 0o040755 } });

describe('item 1: READDIR names cannot write outside localDir (CVE-2019-6111 class)', () => {
  const UNSAFE: (string | Buffer)[] = ['../escape.txt', 'a/../../b.txt', '../../../../tmp/x', '', '..', '.', Buffer.from('nul\0name'), '/abs.txt'];
  const fsOf = (): HostileFs => ({
    node(p) {
      if (p === '/evil') {
        return {
          type: 'dir',
          names: [fileName('ok.txt'), ...UNSAFE.map(fileName), dirName('../updir'), dirName('sub')],
        };
      }
      if (p === '/evil/../updir') return { type: 'dir', names: [fileName('x.txt')] };
      if (p === '/evil/sub') return { type: 'dir', names: [fileName('../../sub-escape.txt'), fileName('in-sub.txt')] };
      if (p.startsWith('/evil/')) return file('pwned!');
      return undefined;
    },
  });

  it('getDir skips every unsafe name with reason unsafe-name and a warning; nothing exists outside localDir', async () => {
    const { sftp } = await hostile(fsOf());
    const sandbox = mkdtempSync(join(tmpdir(), 'tether-hostile-g-'));
    const local = join(sandbox, 'a', 'b', 'c', 'target');
    const warnings: { reason: string; path: string }[] = [];
    sftp.on('warning', (w) => warnings.push(w));
    const summary = await sftp.getDir('/evil', local);
    // the effect: everything under the sandbox lies inside localDir
    const all = treeOf(sandbox);
    const outside = all.filter((p) => !(`${sandbox}${sep}${p}` + sep).startsWith(local + sep));
    expect(outside.filter((p) => !['a', join('a', 'b'), join('a', 'b', 'c')].includes(p))).toEqual([]);
    expect(treeOf(local)).toEqual(['ok.txt', 'sub', join('sub', 'in-sub.txt')]);
    expect(readFileSync(join(local, 'ok.txt'), 'utf8')).toBe('pwned!');
    expect(summary.copied.sort()).toEqual(['ok.txt', 'sub/in-sub.txt']);
    const unsafe = summary.skipped.filter((s) => s.reason === 'unsafe-name').map((s) => s.path);
    // '.' and '..' are dropped silently as every listing does; the others are reported
    expect(unsafe.sort()).toEqual(
      ['../escape.txt', 'a/../../b.txt', '../../../../tmp/x', '', 'nul\0name', '/abs.txt', '../updir', 'sub/../../sub-escape.txt'].sort(),
    );
    expect(warnings.filter((w) => w.reason === 'unsafe-name')).toHaveLength(unsafe.length);
    suite.figure('unsafe READDIR names skipped by getDir', unsafe.length);
  });

  it('second line of defence: a symlink planted in localDir is not followed (directory: outside-target; file: O_NOFOLLOW)', async () => {
    const { sftp } = await hostile({
      node(p) {
        if (p === '/t') return { type: 'dir', names: [fileName('ok.txt'), dirName('sub')] };
        if (p === '/t/sub') return { type: 'dir', names: [fileName('f.txt')] };
        if (p.startsWith('/t/')) return file('pwned!');
        return undefined;
      },
    });
    const sandbox = mkdtempSync(join(tmpdir(), 'tether-hostile-l-'));
    const outside = join(sandbox, 'outside');
    mkdirSync(outside);
    writeFileSync(join(sandbox, 'victim.txt'), 'precious');
    const local = join(sandbox, 'target');
    mkdirSync(local);
    symlinkSync(join('..', 'victim.txt'), join(local, 'ok.txt'));
    // 1) the file symlink alone: not followed, the file fails, the victim is unchanged
    const first = await sftp.getDir('/t', local, { filter: (e) => e.type === 'file' });
    expect(first.failed.map((f) => f.path)).toEqual(['ok.txt']);
    expect(readFileSync(join(sandbox, 'victim.txt'), 'utf8')).toBe('precious');
    // 2) a directory symlink pointing outside: the whole call refuses before copying into it
    symlinkSync(outside, join(local, 'sub'));
    const err = await rejection(sftp.getDir('/t', local));
    expect(err).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'outside-target' });
    expect(readdirSync(outside)).toEqual([]);
    expect(readFileSync(join(sandbox, 'victim.txt'), 'utf8')).toBe('precious');
  });

  it('list() reports the raw names but marks nothing; a direct get of a listed unsafe name stays the caller\'s choice', async () => {
    const { sftp } = await hostile(fsOf());
    const names = (await sftp.list('/evil')).map((e) => e.name);
    expect(names).toContain('../escape.txt');
  });
});

/** Runs `fn` while sampling RSS every 20 ms; returns its settlement and the peak RSS growth in MB. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ result: Promise<T>; growthMb: number; ms: number }> {
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const t0 = Date.now();
  const p = fn();
  await p.then(
    () => undefined,
    () => undefined,
  );
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  return { result: p, growthMb: (peak - base) / 2 ** 20, ms: Date.now() - t0 };
}

describe('item 2: walks and listings are bounded (maxEntries, maxDepth, loops)', () => {
  const RSS_BOUND_MB = 200;
  const names = (prefix: string, n: number, dir: boolean): WireName[] =>
    Array.from({ length: n }, (_, i) => (dir ? dirName : fileName)(`${prefix}${i}`));

  it('a directory that contains itself, canonical path told honestly: loop detected, reason limit', async () => {
    const { sftp, server } = await hostile({
      node: (p) => (p === '/loop' || p.startsWith('/loop/') ? { type: 'dir', names: [dirName('loop'), fileName('f')] } : undefined),
      realpath: (p) => (p.startsWith('/loop') ? '/loop' : p),
    });
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-loop-'));
    const err = await rejection(sftp.getDir('/loop', local));
    expect(err).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'limit' });
    expect(err.message).toMatch(/loop/);
    expect(server.log.requests.filter((r) => r.startsWith('OPENDIR')).length).toBeLessThanOrEqual(3);
    expect(readdirSync(local)).toEqual([]); // nothing copied
  });

  it('a directory that contains itself, server lying about its canonical path: maxDepth (default 256) stops it', async () => {
    const { sftp, server } = await hostile({
      node: (p) => (p === '/deep' || p.startsWith('/deep/') ? { type: 'dir', names: [dirName('deep'), fileName('f')] } : undefined),
    });
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-deep-'));
    const err = await rejection(sftp.getDir('/deep', local));
    expect(err).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'limit' });
    expect(err.message).toMatch(/maxDepth \(256\)/);
    const opendirs = server.log.requests.filter((r) => r.startsWith('OPENDIR')).length;
    expect(opendirs).toBe(257); // the root and 256 levels below it
    const small = await rejection(sftp.getDir('/deep', local, { maxDepth: 3 }));
    expect(small.message).toMatch(/maxDepth \(3\)/);
    expect(readdirSync(local)).toEqual([]);
  });

  it(`a self-containing directory with 1,000 subdirectories (lying realpath, server in its own process): the default maxEntries (1,000,000) stops the walk, client RSS growth < ${RSS_BOUND_MB} MB`, async () => {
    const { sftp, stop } = await hostileChild('fan');
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-fan-'));
    const { result, growthMb, ms } = await peakRss(() => sftp.getDir('/fan', local));
    await stop();
    const err = await rejection(result);
    expect(err).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'limit' });
    expect(err.message).toMatch(/maxEntries \(1000000\)/);
    expect(growthMb).toBeLessThan(RSS_BOUND_MB);
    expect(readdirSync(local)).toEqual([]);
    suite.figure('self-containing dir x1000, getDir to the default maxEntries: client peak RSS growth (MB)', Math.round(growthMb));
    suite.figure('self-containing dir x1000, getDir to the default maxEntries: time (ms)', ms);
  }, 180_000);

  it(`an endless READDIR (1,000 new names per reply, server in its own process): getDir stops at the default maxEntries, client RSS growth < ${RSS_BOUND_MB} MB`, async () => {
    const { sftp, stop } = await hostileChild('endless');
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-endless-'));
    const { result, growthMb, ms } = await peakRss(() => sftp.getDir('/endless', local));
    await stop();
    const err = await rejection(result);
    expect(err).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'limit' });
    expect(err.message).toMatch(/maxEntries \(1000000\)/);
    expect(growthMb).toBeLessThan(RSS_BOUND_MB);
    expect(readdirSync(local)).toEqual([]);
    suite.figure('endless READDIR, getDir to the default maxEntries: client peak RSS growth (MB)', Math.round(growthMb));
    suite.figure('endless READDIR, getDir to the default maxEntries: time (ms)', ms);
  }, 180_000);

  it(`an endless READDIR: list() is cut at its default maxEntries (100,000) as the replies arrive (reply 101 of 1,000 names), client RSS growth < ${RSS_BOUND_MB} MB`, async () => {
    const { sftp, server } = await hostile({
      node: (p) => (p === '/endless' ? { type: 'dir', list: (round) => names(`r${round}-`, 1000, false) } : undefined),
    });
    const { result, growthMb } = await peakRss(() => sftp.list('/endless'));
    const err = await rejection(result);
    expect(err).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'limit' });
    expect(server.log.readdirs).toBe(101);
    expect(growthMb).toBeLessThan(RSS_BOUND_MB);
    // an endless run of empty NAME replies counts too (one per reply)
    const empty = await hostile({ node: (p) => (p === '/e' ? { type: 'dir', list: () => [] as WireName[] } : undefined) });
    expect(await rejection(empty.sftp.list('/e', { maxEntries: 1000 }))).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'limit' });
    expect(empty.server.log.readdirs).toBe(1001);
  });
});

describe('item 3: sizes from the server are bounded and never trusted blindly', () => {
  const endless = (offset: number, len: number): Buffer => Buffer.alloc(len, 0x41 + (offset % 26));
  const reads = (server: HostileSftpServer): number => server.log.requests.filter((r) => r === 'READ').length;

  it('readFile reads at most the stated size plus one probe: a server sending data past it fails ERR_SSH_SFTP protocol, after a bounded number of READs', async () => {
    const { sftp, server } = await hostile({ node: (p) => (p === '/grow' ? { type: 'file', attrs: { size: 10, mode: 0o100644 }, read: endless } : undefined) });
    const err = await rejection(sftp.readFile('/grow'));
    expect(err).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'protocol' });
    expect(reads(server)).toBe(2); // the stated 10 bytes, then the probe
  });

  it('readFile with no size (or 0) reads to EOF but never past maxBytes: ERR_SSH_MAX_BUFFER; a stated size above maxBytes fails before any READ', async () => {
    const { sftp, server } = await hostile({
      node: (p) =>
        p === '/nosize'
          ? { type: 'file', attrs: { mode: 0o100644 }, read: endless }
          : p === '/zero'
            ? { type: 'file', attrs: { size: 0, mode: 0o100644 }, read: endless }
            : p === '/huge'
              ? { type: 'file', attrs: { size: 2n ** 31n, mode: 0o100644 }, read: endless }
              : p === '/proc-like'
                ? { type: 'file', attrs: { size: 0, mode: 0o100644 }, content: Buffer.from('Linux version 6.1.0 (hostile)\n') }
                : undefined,
    });
    for (const p of ['/nosize', '/zero']) {
      const before = reads(server);
      const err = await rejection(sftp.readFile(p, { maxBytes: 1024 * 1024 }));
      expect(err.code).toBe('ERR_SSH_MAX_BUFFER');
      // one read at a time of at most 64 KiB (here the server's 32 KiB default), stopped at the one crossing 1 MiB
      const n = reads(server) - before;
      expect(n).toBeGreaterThanOrEqual(17);
      expect(n).toBeLessThanOrEqual(Math.ceil((1024 * 1024) / 32_000) + 1);
    }
    const before = reads(server);
    expect((await rejection(sftp.readFile('/huge'))).code).toBe('ERR_SSH_MAX_BUFFER'); // default maxBytes 1 GiB
    expect(reads(server)).toBe(before);
    expect((await sftp.readFile('/proc-like', { encoding: 'utf8' }))).toBe('Linux version 6.1.0 (hostile)\n');
  });

  it('an absurd size (2^64-1) never surfaces as a plain RangeError: every API that sizes from the server answers or fails typed', async () => {
    const content = Buffer.from('hello');
    const { sftp } = await hostile({
      node: (p) => (p.startsWith('/absurd') ? { type: 'file', attrs: { size: 2n ** 64n - 1n, mode: 0o100644 }, content } : undefined),
    });
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-absurd-'));
    writeFileSync(join(local, 'up.txt'), 'upload');
    const streamText = (s: NodeJS.ReadableStream): Promise<string> =>
      new Promise((resolve, reject) => {
        const parts: Buffer[] = [];
        s.on('data', (c: Buffer) => parts.push(c));
        s.on('end', () => resolve(Buffer.concat(parts).toString()));
        s.on('error', reject);
      });
    const writeAppend = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const w = sftp.createWriteStream('/absurd-append', { flags: 'a' });
        w.on('error', reject);
        w.on('finish', () => resolve());
        w.end('x');
      });
    const calls: [string, () => Promise<unknown>][] = [
      ['readFile', () => sftp.readFile('/absurd')],
      ['get', () => sftp.get('/absurd', join(local, 'got.txt'))],
      ['get resume', () => sftp.get('/absurd', join(local, 'got2.txt'), { resume: true })],
      ['createReadStream', () => streamText(sftp.createReadStream('/absurd'))],
      ['createWriteStream a', writeAppend],
      ['appendFile', () => sftp.appendFile('/absurd-a2', 'x')],
      ['put resume', () => sftp.put(join(local, 'up.txt'), '/absurd-put', { resume: true })],
      ['stat', () => sftp.stat('/absurd')],
    ];
    const outcome: Record<string, string> = {};
    for (const [name, call] of calls) {
      try {
        await call();
        outcome[name] = 'ok';
      } catch (err) {
        expect(err, name).toBeInstanceOf(SshError);
        outcome[name] = (err as SshError).code;
      }
    }
    expect(outcome.readFile).toBe('ERR_SSH_MAX_BUFFER');
    // get treats a size past 2^53 as unknown and reads to EOF
    expect(outcome.get).toBe('ok');
    expect(readFileSync(join(local, 'got.txt'), 'utf8')).toBe('hello');
    expect(readFileSync(join(local, 'got2.txt'), 'utf8')).toBe('hello');
    expect(outcome.createReadStream).toBe('ok');
    // appending at an impossible offset is refused typed (reason protocol)
    expect(outcome['createWriteStream a']).toBe('ERR_SSH_SFTP');
    expect(outcome.appendFile).toBe('ERR_SSH_SFTP');
    expect(outcome['put resume']).toBe('ok');
    suite.figure('absurd size 2^64-1, outcome per API', JSON.stringify(outcome));
  });

  it('get reads to EOF when the size is absent or 0, and resume never truncates the local file on an unknown size', async () => {
    const content = Buffer.from(`${'proc-like line\n'.repeat(8)}end\n`);
    const { sftp } = await hostile({
      node: (p) =>
        p === '/nosize'
          ? { type: 'file', attrs: { mode: 0o100644 }, content }
          : p === '/zero'
            ? { type: 'file', attrs: { size: 0, mode: 0o100644 }, content }
            : undefined,
    });
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-eof-'));
    for (const p of ['/nosize', '/zero']) {
      const dest = join(local, `${p.slice(1)}.txt`);
      const res = await sftp.get(p, dest);
      expect(readFileSync(dest)).toEqual(content);
      expect(res).toEqual({ transferredBytes: content.length, totalBytes: content.length, resumedFrom: 0 });
      // resume from a partial prefix: continued, not truncated to 0
      writeFileSync(dest, content.subarray(0, 20));
      const again = await sftp.get(p, dest, { resume: true });
      expect(readFileSync(dest)).toEqual(content);
      expect(again.resumedFrom).toBe(20);
      // resume on a complete file: nothing lost
      await sftp.get(p, dest, { resume: true });
      expect(readFileSync(dest)).toEqual(content);
    }
  });

  it('real sshd: get of /proc/version (size 0 on the wire) gets every byte, also with resume', async () => {
    const info = sharedSshd();
    const ssh = new SshClient(clientOptions(info, { reconnect: false }));
    clients.push(ssh);
    const sftp = await ssh.sftp();
    expect((await sftp.stat('/proc/version')).size).toBe(0);
    const want = readFileSync('/proc/version');
    expect(want.length).toBeGreaterThan(0);
    const local = mkdtempSync(join(tmpdir(), 'tether-proc-'));
    const dest = join(local, 'version');
    const res = await sftp.get('/proc/version', dest);
    expect(readFileSync(dest)).toEqual(want);
    expect(res.totalBytes).toBe(want.length);
    writeFileSync(dest, want.subarray(0, 10));
    await sftp.get('/proc/version', dest, { resume: true });
    expect(readFileSync(dest)).toEqual(want);
    expect(await sftp.readFile('/proc/version')).toEqual(want);
  });

  it('a READ reply with more data than requested is an ERR_SSH_SFTP protocol error (get and readFile), not cut silently', async () => {
    const { sftp } = await hostile({
      node: (p) => (p === '/fat' ? { type: 'file', attrs: { size: 100, mode: 0o100644 }, read: (_o, len) => Buffer.alloc(len + 100, 0x42) } : undefined),
    });
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-fat-'));
    expect(await rejection(sftp.get('/fat', join(local, 'fat')))).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'protocol' });
    expect(await rejection(sftp.readFile('/fat'))).toMatchObject({ code: 'ERR_SSH_SFTP', reason: 'protocol' });
  });
});

describe('item 7: preserve keeps mode & 0o777 unless asked for all bits (OpenSSH: perm & 0777)', () => {
  it('get/getDir with preserve: a server-chosen 06777 / 04755 becomes 0777 / 0755 on disk; { mode: "all" } keeps them', async () => {
    const { sftp } = await hostile({
      node: (p) =>
        p === '/suid'
          ? { type: 'file', attrs: { size: 6, mode: 0o106777, atime: 1_600_000_000, mtime: 1_600_000_000 }, content: Buffer.from('binary') }
          : p === '/tree'
            ? { type: 'dir', names: [{ name: 'tool', attrs: { size: 6, mode: 0o104755 } }] }
            : p === '/tree/tool'
              ? { type: 'file', attrs: { size: 6, mode: 0o104755, atime: 1_600_000_000, mtime: 1_600_000_000 }, content: Buffer.from('binary') }
              : undefined,
    });
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-mode-'));
    await sftp.get('/suid', join(local, 'a'), { preserve: true });
    expect(statSync(join(local, 'a')).mode & 0o7777).toBe(0o777);
    expect(statSync(join(local, 'a')).mtimeMs).toBe(1_600_000_000_000);
    await sftp.get('/suid', join(local, 'b'), { preserve: { mode: 'all' } });
    expect(statSync(join(local, 'b')).mode & 0o7777).toBe(0o6777);
    const summary = await sftp.getDir('/tree', join(local, 'tree'), { preserve: true });
    expect(summary.copied).toEqual(['tool']);
    expect(statSync(join(local, 'tree', 'tool')).mode & 0o7777).toBe(0o755);
    expect(await rejection(sftp.get('/suid', join(local, 'c'), { preserve: { mode: 'everything' as 'all' } }))).toMatchObject({
      code: 'ERR_SSH_INVALID_ARG',
      field: 'preserve',
    });
  });

  it('real sshd: put/putDir with preserve drop setuid by default, { mode: "all" } keeps it', async () => {
    const info = sharedSshd();
    const ssh = new SshClient(clientOptions(info, { reconnect: false }));
    clients.push(ssh);
    const sftp = await ssh.sftp();
    const local = mkdtempSync(join(tmpdir(), 'tether-put-mode-'));
    const src = join(local, 'tool');
    writeFileSync(src, 'binary');
    chmodSync(src, 0o4755);
    const remote = `${info.homeDir}/tether-mode-${process.pid}-${Date.now()}`;
    await sftp.mkdir(remote);
    try {
      await sftp.put(src, `${remote}/a`, { preserve: true });
      expect((await sftp.stat(`${remote}/a`)).mode & 0o7777).toBe(0o755);
      await sftp.put(src, `${remote}/b`, { preserve: { mode: 'all' } });
      expect((await sftp.stat(`${remote}/b`)).mode & 0o7777).toBe(0o4755);
      const dir = join(local, 'd');
      mkdirSync(dir);
      writeFileSync(join(dir, 't'), 'x');
      chmodSync(join(dir, 't'), 0o4711);
      await sftp.putDir(dir, `${remote}/d`, { preserve: true });
      expect((await sftp.stat(`${remote}/d/t`)).mode & 0o7777).toBe(0o711);
    } finally {
      await sftp.rm(remote, { recursive: true, force: true });
    }
  });
});

describe('item 8 (second bullet): the caller\'s timeout wins over the 5 s CLOSE bound', () => {
  it('get with timeoutMs against a server that never answers READ nor CLOSE rejects ERR_SSH_TIMEOUT well before 5 s', async () => {
    const { sftp, server } = await hostile({
      closeNever: true,
      node: (p) => (p === '/stuck' ? { type: 'file', attrs: { size: 1000, mode: 0o100644 }, read: () => 'never' } : undefined),
    });
    const local = mkdtempSync(join(tmpdir(), 'tether-hostile-stuck-'));
    const t0 = Date.now();
    const err = await rejection(sftp.get('/stuck', join(local, 'x'), { timeoutMs: 1000 }));
    const took = Date.now() - t0;
    expect(err.code).toBe('ERR_SSH_TIMEOUT');
    // the CLOSE was still sent, without waiting for its answer
    expect(await waitFor(() => server.log.requests.includes('CLOSE'), 2000)).toBe(true);
    expect(took).toBeLessThan(4000); // before the fix: 1 s + the 5 s CLOSE wait
    suite.figure('get timeoutMs 1000, server never answers READ/CLOSE: took (ms)', took);
    const t1 = Date.now();
    const err2 = await rejection(sftp.readFile('/stuck', { timeoutMs: 1000 }));
    expect(err2.code).toBe('ERR_SSH_TIMEOUT');
    expect(Date.now() - t1).toBeLessThan(4000);
  });
});
