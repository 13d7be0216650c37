// Strict validation of every SftpClient option object (src/sftp/options.ts; issue 17 section 3,
// issue 12 section 3): an unknown option fails with ERR_SSH_INVALID_ARG naming it and the closest
// accepted name, and every timeoutMs follows the one rule (whole ms, 1..2^31-1). All of it happens
// before any I/O: the link provider below fails the test if anything asks it for a connection.
import { describe, expect, it } from 'vitest';
import { SshError, SshInvalidArgError } from '../../src/errors.js';
import type { LinkProvider } from '../../src/connection/link.js';
import { SftpClient } from '../../src/sftp/index.js';

let linkCalls = 0;
const noIo: LinkProvider = {
  link: () => {
    linkCalls++;
    return Promise.reject(new Error('validation must happen before any I/O'));
  },
  onLink: () => () => undefined,
};

const sftp = new SftpClient(noIo);
type Opts = Record<string, unknown>;
const as = <T>(o: Opts): T => o as T;

/** Every method with valid positional arguments; `call(options)` returns its promise (or throws, for the streams). */
const methods: { name: string; call: (o: Opts) => unknown; timeout: boolean; typo: [string, string | undefined] }[] = [
  { name: 'stat', call: (o) => sftp.stat('/x', as(o)), timeout: true, typo: ['timeout', 'timeoutMs'] },
  { name: 'lstat', call: (o) => sftp.lstat('/x', as(o)), timeout: true, typo: ['signl', 'signal'] },
  { name: 'exists', call: (o) => sftp.exists('/x', as(o)), timeout: true, typo: ['timeOutMS', 'timeoutMs'] },
  { name: 'list', call: (o) => sftp.list('/x', as(o)), timeout: true, typo: ['maxEntires', 'maxEntries'] },
  { name: 'mkdir', call: (o) => sftp.mkdir('/x', as(o)), timeout: true, typo: ['recusive', 'recursive'] },
  { name: 'rmdir', call: (o) => sftp.rmdir('/x', as(o)), timeout: true, typo: ['force', undefined] },
  { name: 'unlink', call: (o) => sftp.unlink('/x', as(o)), timeout: true, typo: ['force', undefined] },
  { name: 'rm', call: (o) => sftp.rm('/x', as(o)), timeout: true, typo: ['forse', 'force'] },
  { name: 'rename', call: (o) => sftp.rename('/x', '/y', as(o)), timeout: true, typo: ['overwite', 'overwrite'] },
  { name: 'chmod', call: (o) => sftp.chmod('/x', 0o644, as(o)), timeout: true, typo: ['recursive', undefined] },
  { name: 'chown', call: (o) => sftp.chown('/x', 1, 1, as(o)), timeout: true, typo: ['timeout', 'timeoutMs'] },
  { name: 'utimes', call: (o) => sftp.utimes('/x', 1, 1, as(o)), timeout: true, typo: ['timeout', 'timeoutMs'] },
  { name: 'symlink', call: (o) => sftp.symlink('/x', '/y', as(o)), timeout: true, typo: ['timeout', 'timeoutMs'] },
  { name: 'readlink', call: (o) => sftp.readlink('/x', as(o)), timeout: true, typo: ['timeout', 'timeoutMs'] },
  { name: 'realpath', call: (o) => sftp.realpath('/x', as(o)), timeout: true, typo: ['timeout', 'timeoutMs'] },
  { name: 'readFile', call: (o) => sftp.readFile('/x', as(o)), timeout: true, typo: ['encodng', 'encoding'] },
  { name: 'writeFile', call: (o) => sftp.writeFile('/x', 'data', as(o)), timeout: true, typo: ['atomc', 'atomic'] },
  { name: 'appendFile', call: (o) => sftp.appendFile('/x', 'data', as(o)), timeout: true, typo: ['atomic', undefined] },
  { name: 'createReadStream', call: (o) => sftp.createReadStream('/x', as(o)), timeout: false, typo: ['chunksize', 'chunkSize'] },
  { name: 'createWriteStream', call: (o) => sftp.createWriteStream('/x', as(o)), timeout: false, typo: ['flag', 'flags'] },
  { name: 'get', call: (o) => sftp.get('/x', '/tmp/x', as(o)), timeout: true, typo: ['concurency', 'concurrency'] },
  { name: 'put', call: (o) => sftp.put('/tmp/x', '/x', as(o)), timeout: true, typo: ['overwrite', undefined] },
  { name: 'getDir', call: (o) => sftp.getDir('/x', '/tmp/x', as(o)), timeout: true, typo: ['fileConcurency', 'fileConcurrency'] },
  { name: 'putDir', call: (o) => sftp.putDir('/tmp/x', '/x', as(o)), timeout: true, typo: ['concurency', 'concurrency'] },
];

/** The error of `call(options)`, whether it throws or rejects. */
async function errorOf(call: (o: Opts) => unknown, o: Opts): Promise<unknown> {
  try {
    await call(o);
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('every SFTP method rejects an unknown option, before any I/O', () => {
  it.each(methods)('$name: an unknown option is ERR_SSH_INVALID_ARG naming it, with the closest accepted name', async ({ name, call, typo: [key, hint] }) => {
    linkCalls = 0;
    const err = await errorOf(call, { [key]: 1 });
    expect(err).toBeInstanceOf(SshInvalidArgError);
    const e = err as SshInvalidArgError;
    expect(e.code).toBe('ERR_SSH_INVALID_ARG');
    expect(e.field).toBe(key);
    expect(e.message).toContain(`invalid ${name} options: unknown option '${key}'`);
    if (hint) expect(e.message).toContain(`(did you mean \`${hint}\`?)`);
    else expect(e.message).not.toContain('did you mean');
    expect(e.message).toMatch(/accepted options: /);
    expect(linkCalls).toBe(0);
  });

  it.each(methods)('$name: every bad timeoutMs is ERR_SSH_INVALID_ARG (one rule: whole ms, 1..2^31-1); good ones pass validation', async ({ call, timeout }) => {
    linkCalls = 0;
    for (const bad of [0, -1, 1.5, 2 ** 31, Infinity, Number.NaN, '5']) {
      const err = await errorOf(call, { timeoutMs: bad });
      expect(err, String(bad)).toBeInstanceOf(SshInvalidArgError);
      expect((err as SshInvalidArgError).field).toBe('timeoutMs');
      // the streams take no timeoutMs at all
      if (!timeout) expect((err as Error).message).toContain("unknown option 'timeoutMs'");
    }
    expect(linkCalls).toBe(0);
    if (!timeout) return;
    for (const good of [1, 2 ** 31 - 1]) {
      // valid options go on to ask for a link (the provider refuses it)
      const err = await errorOf(call, { timeoutMs: good });
      expect(err).not.toBeInstanceOf(SshInvalidArgError);
    }
    expect(linkCalls).toBeGreaterThan(0);
  });
});

describe('specific checks', () => {
  it("rmdir(dir, { recursive: true }) says to use rm(dir, { recursive: true })", async () => {
    const err = await errorOf((o) => sftp.rmdir('/x', as(o)), { recursive: true });
    expect(err).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'recursive' });
    expect((err as Error).message).toContain('use rm(dir, { recursive: true })');
  });

  it('values: types, ranges and nested objects name the field', async () => {
    const cases: [(o: Opts) => unknown, Opts, string][] = [
      [(o) => sftp.get('/x', '/tmp/x', as(o)), { concurrency: 0 }, 'concurrency'],
      [(o) => sftp.get('/x', '/tmp/x', as(o)), { concurrency: 1025 }, 'concurrency'],
      [(o) => sftp.getDir('/x', '/tmp/x', as(o)), { concurrency: 257 }, 'concurrency'],
      [(o) => sftp.put('/tmp/x', '/x', as(o)), { resume: 'yes' }, 'resume'],
      [(o) => sftp.put('/tmp/x', '/x', as(o)), { resume: { verify: 'md5' } }, 'resume'],
      [(o) => sftp.put('/tmp/x', '/x', as(o)), { resume: { verfy: 'size' } }, 'resume.verfy'],
      [(o) => sftp.get('/x', '/tmp/x', as(o)), { preserve: { mode: 'everything' } }, 'preserve'],
      [(o) => sftp.get('/x', '/tmp/x', as(o)), { onProgress: 'log' }, 'onProgress'],
      [(o) => sftp.putDir('/tmp/x', '/x', as(o)), { filter: true }, 'filter'],
      [(o) => sftp.putDir('/tmp/x', '/x', as(o)), { maxDepth: -1 }, 'maxDepth'],
      [(o) => sftp.list('/x', as(o)), { maxEntries: 0 }, 'maxEntries'],
      [(o) => sftp.mkdir('/x', as(o)), { mode: 0o10000 }, 'mode'],
      [(o) => sftp.mkdir('/x', as(o)), { recursive: 'yes' }, 'recursive'],
      [(o) => sftp.readFile('/x', as(o)), { encoding: 'klingon' }, 'encoding'],
      [(o) => sftp.readFile('/x', as(o)), { maxBytes: -1 }, 'maxBytes'],
      [(o) => sftp.stat('/x', as(o)), { signal: {} }, 'signal'],
      [(o) => sftp.createReadStream('/x', as(o)), { start: -1 }, 'start'],
      [(o) => sftp.createWriteStream('/x', as(o)), { flags: 'rw' }, 'flags'],
    ];
    for (const [call, o, field] of cases) {
      const err = await errorOf(call, o);
      expect(err, JSON.stringify(o)).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field });
    }
    // not an object at all
    expect(await errorOf((o) => sftp.stat('/x', as(o)), null as unknown as Opts)).toMatchObject({ code: 'ERR_SSH_INVALID_ARG' });
  });

  it('positional arguments are ERR_SSH_INVALID_ARG too', async () => {
    expect(await errorOf(() => sftp.stat(''), {})).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'path' });
    expect(await errorOf(() => sftp.chmod('/x', -1), {})).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'mode' });
    expect(await errorOf(() => sftp.chown('/x', 1, 2 ** 32), {})).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'gid' });
    expect(await errorOf(() => sftp.utimes('/x', new Date(Number.NaN), 1), {})).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'atime' });
    expect(await errorOf(() => sftp.writeFile('/x', 5 as unknown as string), {})).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'data' });
    expect(await errorOf(() => sftp.get('/x', ''), {})).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'localPath' });
  });

  it('SftpOptions: channelsPersistMs must be a whole number of ms from 0 to 2^31-1 (ERR_SSH_INVALID_ARG naming it)', () => {
    for (const bad of [-1, 1.5, 2 ** 31, '30000']) {
      let err: unknown;
      try {
        new SftpClient(noIo, { channelsPersistMs: bad as number });
      } catch (e) {
        err = e;
      }
      expect(err, String(bad)).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'channelsPersistMs' });
    }
    expect(() => new SftpClient(noIo, { channelsPersistMs: 0 })).not.toThrow();
  });

  it('SftpOptions: an unknown option fails the constructor with the closest name', () => {
    let err: unknown;
    try {
      new SftpClient(noIo, { openSFTP: () => Promise.reject(new Error('x')) } as unknown as ConstructorParameters<typeof SftpClient>[1]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SshError);
    expect(err).toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'openSFTP' });
    expect((err as Error).message).toContain('did you mean `openSftp`?');
  });
});
