/**
 * Issue 17 item 3 (a bug found while syncing): with `resume: true` (verify `'size'`), a
 * destination of the same size as the source but other content was reported as copied while the
 * old content stayed. Now a same-size destination is copied again; `'sha256'` still accepts an
 * equal-size destination only when the content hashes the same. Real sshd; the remote files
 * live in the login user's home on this machine, so the effect is checked on disk.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type SftpClient } from '../../src/index.js';
import { clientOptions } from '../helpers/client.js';
import { sharedSshd } from '../helpers/shared.js';

const info = sharedSshd();
let ssh: SshClient;
let sftp: SftpClient;
let remote: string;
let local: string;
const SIZE = 300_000;

beforeAll(async () => {
  ssh = new SshClient(clientOptions(info, { reconnect: false }));
  sftp = await ssh.sftp();
  remote = `${info.homeDir}/resume-${randomBytes(4).toString('hex')}`;
  await sftp.mkdir(remote);
  local = mkdtempSync(join(tmpdir(), 'tether-resume-'));
});
afterAll(async () => {
  await sftp.rm(remote, { recursive: true, force: true });
  await ssh.close();
});

describe('resume never reports a complete-but-different file as copied (issue 17 item 3)', () => {
  it('put: same size, other content -> copied again in full', async () => {
    const src = join(local, 'p.bin');
    writeFileSync(src, randomBytes(SIZE));
    await sftp.put(src, `${remote}/p.bin`);
    const changed = randomBytes(SIZE);
    writeFileSync(src, changed);
    const r = await sftp.put(src, `${remote}/p.bin`, { resume: true });
    expect(r).toEqual({ transferredBytes: SIZE, totalBytes: SIZE, resumedFrom: 0 });
    expect(readFileSync(`${remote}/p.bin`)).toEqual(changed);
  });

  it('get: same size, other content -> copied again in full; a shorter prefix still resumes', async () => {
    const content = randomBytes(SIZE);
    await sftp.writeFile(`${remote}/g.bin`, content);
    const dst = join(local, 'g.bin');
    writeFileSync(dst, randomBytes(SIZE));
    const r = await sftp.get(`${remote}/g.bin`, dst, { resume: true });
    expect(r).toEqual({ transferredBytes: SIZE, totalBytes: SIZE, resumedFrom: 0 });
    expect(readFileSync(dst)).toEqual(content);
    writeFileSync(dst, content.subarray(0, 1000));
    const r2 = await sftp.get(`${remote}/g.bin`, dst, { resume: true });
    expect(r2.resumedFrom).toBe(1000);
    expect(readFileSync(dst)).toEqual(content);
  });

  it("sha256: an equal-size destination with the same content is complete (nothing copied); other content is copied again", async () => {
    const content = randomBytes(SIZE);
    await sftp.writeFile(`${remote}/h.bin`, content);
    const dst = join(local, 'h.bin');
    writeFileSync(dst, content);
    const same = await sftp.get(`${remote}/h.bin`, dst, { resume: { verify: 'sha256' } });
    expect(same).toEqual({ transferredBytes: 0, totalBytes: SIZE, resumedFrom: SIZE });
    writeFileSync(dst, randomBytes(SIZE));
    const other = await sftp.get(`${remote}/h.bin`, dst, { resume: { verify: 'sha256' } });
    expect(other.resumedFrom).toBe(0);
    expect(readFileSync(dst)).toEqual(content);
  });

  it('putDir with resume: a file whose content changed at the same size is uploaded again', async () => {
    const dir = join(local, 'tree');
    mkdirSync(dir);
    writeFileSync(join(dir, 'same.txt'), 'unchanged content');
    writeFileSync(join(dir, 'changed.txt'), 'version 1 content');
    await sftp.putDir(dir, `${remote}/tree`);
    writeFileSync(join(dir, 'changed.txt'), 'version 2 content');
    const summary = await sftp.putDir(dir, `${remote}/tree`, { resume: true });
    expect(summary.failed).toEqual([]);
    expect(readFileSync(`${remote}/tree/changed.txt`, 'utf8')).toBe('version 2 content');
    expect(readFileSync(`${remote}/tree/same.txt`, 'utf8')).toBe('unchanged content');
  });
});
