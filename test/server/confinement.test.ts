// SFTP of the in-process server is confined to its root: no path, `..`, symlink, rename, hardlink
// or symlink target leaves it. Each case checks the effect on the real filesystem.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type ssh2 from 'ssh2';
import { SshClient } from '../../src/index.js';
import { startServer, type SshServer } from '../../src/server/index.js';
import { rawClient } from './util.js';

const SECRET = 'outside secret\n';

describe('in-process server: SFTP confinement to root', () => {
  let base: string;
  let root: string;
  let outside: string;
  let server: SshServer;
  let ssh: SshClient;
  let raw: ssh2.Client;
  let sftp: ssh2.SFTPWrapper;

  /** Runs one raw SFTP call; resolves with the error (or undefined on success). */
  function call(fn: (cb: (err?: Error | null) => void) => void): Promise<(Error & { code?: number }) | undefined> {
    return new Promise((resolve) => fn((err) => resolve(err ?? undefined)));
  }

  function outsideUntouched(): void {
    expect(readdirSync(outside).sort()).toEqual(['secret.txt']);
    expect(readFileSync(path.join(outside, 'secret.txt'), 'utf8')).toBe(SECRET);
    expect(statSync(path.join(outside, 'secret.txt')).mode & 0o777).toBe(0o640);
    expect(existsSync(path.join(base, 'escaped'))).toBe(false);
  }

  beforeAll(async () => {
    base = mkdtempSync(path.join(tmpdir(), 'tether-confine-'));
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    mkdirSync(root);
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'secret.txt'), SECRET);
    chmodSync(path.join(outside, 'secret.txt'), 0o640);
    writeFileSync(path.join(root, 'inside.txt'), 'inside\n');
    mkdirSync(path.join(root, 'sub'));
    symlinkSync('../outside', path.join(root, 'out-dir'));
    symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'out-abs'));
    symlinkSync('../outside/new.txt', path.join(root, 'dangling'));
    symlinkSync('inside.txt', path.join(root, 'in-link'));
    server = await startServer({ root });
    ssh = new SshClient(server.clientOptions());
    await ssh.connect();
    raw = await rawClient(server);
    sftp = await new Promise((resolve, reject) => raw.sftp((err, s) => (err ? reject(err) : resolve(s))));
  });

  afterAll(async () => {
    raw?.end();
    await ssh?.close();
    await server?.stop();
    rmSync(base, { recursive: true, force: true });
  });

  it('serves paths inside root, absolute or relative, and symlinks that stay inside', async () => {
    const s = await ssh.sftp();
    expect(await s.realpath('.')).toBe(root);
    expect(await s.readFile('inside.txt', { encoding: 'utf8' })).toBe('inside\n');
    expect(await s.readFile(path.join(root, 'inside.txt'), { encoding: 'utf8' })).toBe('inside\n');
    expect(await s.readFile('sub/../in-link', { encoding: 'utf8' })).toBe('inside\n');
    await s.writeFile('sub/new.txt', 'new');
    expect(readFileSync(path.join(root, 'sub/new.txt'), 'utf8')).toBe('new');
  });

  const reads = ['../outside/secret.txt', 'sub/../../outside/secret.txt', '/etc/passwd', 'out-dir/secret.txt', 'out-abs', 'OUTSIDE_ABS'];
  it.each(reads)('refuses to read %s', async (p) => {
    const target = p === 'OUTSIDE_ABS' ? path.join(outside, 'secret.txt') : p;
    const s = await ssh.sftp();
    await expect(s.readFile(target)).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    const err = await call((cb) => sftp.stat(target, (e) => cb(e)));
    expect(err?.code).toBe(3); // SSH_FX_PERMISSION_DENIED
    outsideUntouched();
  });

  const writes = ['../escaped', '../outside/new.txt', 'out-dir/new.txt', 'dangling', 'OUTSIDE_ABS'];
  it.each(writes)('refuses to create %s', async (p) => {
    const target = p === 'OUTSIDE_ABS' ? path.join(outside, 'new.txt') : p;
    const s = await ssh.sftp();
    await expect(s.writeFile(target, 'pwned')).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    expect(await call((cb) => sftp.mkdir(target, (e) => cb(e)))).toBeDefined();
    outsideUntouched();
  });

  it('refuses to list, stat, chmod or remove through .. or symlinks out of root', async () => {
    const s = await ssh.sftp();
    await expect(s.list('..')).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    await expect(s.list('/')).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    await expect(s.list('out-dir')).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    await expect(s.realpath('..')).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    await expect(s.realpath('out-dir')).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    await expect(s.chmod('out-abs', 0o777)).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    await expect(s.unlink('out-dir/secret.txt')).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    await expect(s.unlink('../outside/secret.txt')).rejects.toMatchObject({ code: 'ERR_SSH_SFTP' });
    expect(await call((cb) => sftp.rmdir('.', (e) => cb(e)))).toBeDefined();
    expect(existsSync(root)).toBe(true);
    // lstat of the link itself is fine: the link lives inside root.
    expect((await s.lstat('out-abs')).type).toBe('symlink');
    outsideUntouched();
  });

  it('refuses rename and posix-rename across the root boundary, both ways', async () => {
    writeFileSync(path.join(root, 'movable.txt'), 'movable');
    expect(await call((cb) => sftp.rename('movable.txt', '../escaped', (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.rename('movable.txt', 'out-dir/moved.txt', (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.ext_openssh_rename('movable.txt', path.join(outside, 'moved.txt'), (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.ext_openssh_rename('../outside/secret.txt', 'stolen.txt', (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.rename('out-dir/secret.txt', 'stolen.txt', (e) => cb(e)))).toBeDefined();
    expect(existsSync(path.join(root, 'movable.txt'))).toBe(true);
    expect(existsSync(path.join(root, 'stolen.txt'))).toBe(false);
    // inside root both work
    expect(await call((cb) => sftp.rename('movable.txt', 'sub/moved.txt', (e) => cb(e)))).toBeUndefined();
    expect(await call((cb) => sftp.ext_openssh_rename('sub/moved.txt', 'moved-again.txt', (e) => cb(e)))).toBeUndefined();
    expect(readFileSync(path.join(root, 'moved-again.txt'), 'utf8')).toBe('movable');
    outsideUntouched();
  });

  it('refuses hardlinks to or from outside root', async () => {
    expect(await call((cb) => sftp.ext_openssh_hardlink('../outside/secret.txt', 'hard.txt', (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.ext_openssh_hardlink('out-dir/secret.txt', 'hard.txt', (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.ext_openssh_hardlink('inside.txt', '../escaped', (e) => cb(e)))).toBeDefined();
    expect(existsSync(path.join(root, 'hard.txt'))).toBe(false);
    expect(await call((cb) => sftp.ext_openssh_hardlink('inside.txt', 'hard-inside.txt', (e) => cb(e)))).toBeUndefined();
    expect(statSync(path.join(root, 'hard-inside.txt')).ino).toBe(statSync(path.join(root, 'inside.txt')).ino);
    outsideUntouched();
  });

  it('refuses symlinks whose target or location is outside root', async () => {
    expect(await call((cb) => sftp.symlink('../outside', 'link1', (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.symlink('/etc/passwd', 'link2', (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.symlink('out-dir/secret.txt', 'link3', (e) => cb(e)))).toBeDefined();
    expect(await call((cb) => sftp.symlink('inside.txt', '../escaped', (e) => cb(e)))).toBeDefined();
    for (const n of ['link1', 'link2', 'link3']) expect(existsSync(path.join(root, n)) || readdirSync(root).includes(n)).toBe(false);
    expect(await call((cb) => sftp.symlink('sub/../inside.txt', 'link-ok', (e) => cb(e)))).toBeUndefined();
    expect(readFileSync(path.join(root, 'link-ok'), 'utf8')).toBe('inside\n');
    outsideUntouched();
  });

  it('answers the OpenSSH extensions: limits, statvfs, fsync', async () => {
    const s = await ssh.sftp();
    const vfs = await new Promise<{ f_bsize: number; f_blocks: number }>((resolve, reject) =>
      sftp.ext_openssh_statvfs('.', (err, info: { f_bsize: number; f_blocks: number }) => (err ? reject(err) : resolve(info))),
    );
    expect(vfs.f_bsize).toBeGreaterThan(0);
    expect(vfs.f_blocks).toBeGreaterThan(0);
    const handle = await new Promise<Buffer>((resolve, reject) => sftp.open('fsync.txt', 'w', (err, h) => (err ? reject(err) : resolve(h))));
    expect(await call((cb) => sftp.ext_openssh_fsync(handle, (e) => cb(e)))).toBeUndefined();
    expect(await call((cb) => sftp.close(handle, (e) => cb(e)))).toBeUndefined();
    expect(await call((cb) => sftp.ext_openssh_statvfs('/', (e) => cb(e)))).toBeDefined();
    // a 1 MiB round trip through ssh-tether (which sizes its requests from limits@openssh.com)
    const big = Buffer.alloc(1024 * 1024 + 7, 0x61);
    await s.writeFile('big.bin', big);
    expect(readFileSync(path.join(root, 'big.bin')).equals(big)).toBe(true);
    expect((await s.readFile('big.bin')).equals(big)).toBe(true);
  });
});
