// Unit tests for issue 15 items 3-4 and issue 11 item 8 (options, typo hints, connect error
// messages, in-memory known_hosts lines and the hostVerifier callback).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, resolveOptions } from '../../src/options.js';
import { editDistance, suggestName } from '../../src/internal/validate.js';
import { explainConnectError, isUnresolvedName } from '../../src/connection/transport.js';
import { SshError, SshHostKeyError } from '../../src/errors.js';
import { createCallbackHostVerifier, createHostVerifier, fingerprintSha256 } from '../../src/known-hosts/index.js';

const sshString = (b: Buffer | string): Buffer => {
  const d = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(d.length);
  return Buffer.concat([len, d]);
};
const ed25519 = (): Buffer => Buffer.concat([sshString('ssh-ed25519'), sshString(randomBytes(32))]);
const line = (host: string, key: Buffer): string => `${host} ssh-ed25519 ${key.toString('base64')}`;

describe('option names: did you mean', () => {
  it('editDistance is the Levenshtein distance (case-insensitive)', () => {
    expect(editDistance('identityFile', 'identityFiles')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('PORT', 'port')).toBe(0);
  });

  it('suggestName picks the closest accepted name, or none when nothing is close', () => {
    const names = ['host', 'port', 'identityFiles', 'knownHostsFiles', 'keepaliveIntervalMs'];
    expect(suggestName('identityFile', names)).toBe('identityFiles');
    expect(suggestName('knownHostFiles', names)).toBe('knownHostsFiles');
    expect(suggestName('keepAliveInterval', names)).toBe('keepaliveIntervalMs');
    expect(suggestName('completelyDifferent', names)).toBeUndefined();
    expect(suggestName('user', ['username', 'port'])).toBe('username');
    expect(suggestName('abc', ['abcdef'])).toBeUndefined();
  });

  it('resolveOptions names the suggestion in its ERR_SSH_CONFIG', () => {
    let err: unknown;
    try {
      resolveOptions({ host: 'h', user: 'me' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_CONFIG');
    expect((err as Error).message).toContain("unknown option 'user' (did you mean `username`?)");
  });
});

describe('reconnect and the new durations', () => {
  it('reconnect: { retries: Infinity } and DEFAULTS.reconnect are accepted; fractions and negatives are not', () => {
    expect(resolveOptions({ host: 'h', reconnect: { retries: Infinity } }).reconnect).toMatchObject({ retries: Infinity });
    expect(resolveOptions({ host: 'h', reconnect: DEFAULTS.reconnect }).reconnect).toEqual({ ...DEFAULTS.reconnect });
    expect(resolveOptions({ host: 'h', reconnect: { retries: 3 } }).reconnect).toMatchObject({ retries: 3 });
    expect(() => resolveOptions({ host: 'h', reconnect: { retries: -1 } })).toThrow(/'reconnect/);
    expect(() => resolveOptions({ host: 'h', reconnect: { retries: 0.5 } })).toThrow(/'reconnect/);
  });

  it('operationTimeoutMs defaults to 120000 (0 = forever); forwardConnectionWaitMs to 15000', () => {
    const o = resolveOptions({ host: 'h' });
    expect(o.operationTimeoutMs).toBe(120_000);
    expect(o.forwardConnectionWaitMs).toBe(15_000);
    expect(resolveOptions({ host: 'h', operationTimeoutMs: 0 }).operationTimeoutMs).toBe(0);
    expect(() => resolveOptions({ host: 'h', operationTimeoutMs: -1 })).toThrow(/operationTimeoutMs/);
    expect(() => resolveOptions({ host: 'h', forwardConnectionWaitMs: 1.5 })).toThrow(/forwardConnectionWaitMs/);
  });

  it('sftpChannelsPersistMs defaults to 30000 (0 = close at once); a bad value names the field', () => {
    expect(resolveOptions({ host: 'h' }).sftpChannelsPersistMs).toBe(30_000);
    expect(resolveOptions({ host: 'h', sftpChannelsPersistMs: 0 }).sftpChannelsPersistMs).toBe(0);
    expect(() => resolveOptions({ host: 'h', sftpChannelsPersistMs: -1 })).toThrow(/sftpChannelsPersistMs/);
    expect(() => resolveOptions({ host: 'h', sftpChannelsPersistMs: 2.5 })).toThrow(/sftpChannelsPersistMs/);
    expect(() => resolveOptions({ host: 'h', sftpChannelsPersistMs: 2 ** 31 })).toThrow(/sftpChannelsPersistMs/);
  });
});

describe('host key sources', () => {
  it('knownHosts replaces the default user file; explicit files stay', () => {
    expect(resolveOptions({ host: 'h', knownHosts: [] }).knownHostsFiles).toEqual([]);
    expect(resolveOptions({ host: 'h', knownHosts: [], knownHostsFiles: ['/k'] }).knownHostsFiles).toEqual(['/k']);
    expect(resolveOptions({ host: 'h' }).knownHostsFiles).toHaveLength(1);
  });

  it('refuses weakening or contradicting combinations with ERR_SSH_CONFIG naming the field', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ knownHosts: [], strictHostKeyChecking: 'no' }, 'strictHostKeyChecking', /never be consulted/],
      [{ hostVerifier: () => true, strictHostKeyChecking: 'no' }, 'strictHostKeyChecking', /never be consulted/],
      [{ hostVerifier: () => true, strictHostKeyChecking: 'accept-new' }, 'strictHostKeyChecking', /hostVerifier decides/],
      [{ knownHosts: [], strictHostKeyChecking: 'accept-new' }, 'strictHostKeyChecking', /needs knownHostsFiles/],
      [{ knownHosts: [], hostVerifier: () => true }, 'hostVerifier', /not both/],
    ];
    for (const [extra, field, why] of cases) {
      let err: unknown;
      try {
        resolveOptions({ host: 'h', ...extra });
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(Object.keys(extra))).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_CONFIG');
      expect((err as SshError & { field?: string }).field).toBe(field);
      expect((err as Error).message).toMatch(why);
    }
    expect(() => resolveOptions({ host: 'h', knownHosts: [], strictHostKeyChecking: 'accept-new', knownHostsFiles: ['/k'] })).not.toThrow();
    expect(() => resolveOptions({ host: 'h', hostVerifier: 'yes' })).toThrow(/hostVerifier/);
  });

  it('knownHosts lines: known, changed (MISMATCH), unknown, revoked', async () => {
    const key = ed25519();
    const other = ed25519();
    const check = (lines: string[]) => createHostVerifier({ host: 'h.example', port: 2222, knownHostsFiles: [], strictHostKeyChecking: 'yes', knownHosts: lines });
    await expect(check(['# comment', '', line('[h.example]:2222', key)])(key)).resolves.toBeUndefined();
    await expect(check([line('[h.example]:2222', other)])(key)).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_MISMATCH' });
    await expect(check([line('h.example', key)])(key)).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_UNKNOWN' }); // port 22 only
    await expect(check([line('[h.example]:2222', key), `@revoked ${line('*', key)}`])(key)).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_REVOKED' });
  });

  it('hostVerifier callback: info passed, MISMATCH only when another key was trusted before, bad blobs never reach it', async () => {
    const key = ed25519();
    const other = ed25519();
    const trusted = new Map<string, Buffer>();
    const seen: Array<{ type: string; fingerprint: string; host: string }> = [];
    const blobs: Buffer[] = [];
    let answer = true;
    const v = createCallbackHostVerifier({
      host: '10.0.0.1',
      port: 22,
      trusted,
      verify: (k, host) => {
        seen.push({ type: k.type, fingerprint: k.fingerprint, host });
        blobs.push(k.blob);
        return answer;
      },
    });
    await v(key);
    expect(seen[0]).toEqual({ type: 'ssh-ed25519', fingerprint: fingerprintSha256(key), host: '10.0.0.1' });
    expect(blobs[0]?.equals(key)).toBe(true);
    expect(trusted.get('10.0.0.1')?.equals(key)).toBe(true);
    answer = false;
    const mismatch = await v(other).catch((e: unknown) => e);
    expect(mismatch).toBeInstanceOf(SshHostKeyError);
    expect((mismatch as SshError).code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
    const fresh = createCallbackHostVerifier({ host: '10.0.0.1', port: 22, verify: () => false });
    await expect(fresh(key)).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_UNKNOWN', retryable: false });
    const calls = seen.length;
    await expect(v(Buffer.from('junk'))).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_UNKNOWN' });
    expect(seen.length).toBe(calls);
  });
});

describe('connect error messages', () => {
  const sysErr = (code: string): Error => Object.assign(new Error(`getaddrinfo ${code} x`), { code });

  it('ENOTFOUND: not retryable; names the alias and what to check', () => {
    const base = new SshError('ERR_SSH_CONNECT', 'connection failed', { cause: sysErr('ENOTFOUND') });
    const direct = explainConnectError(base, { host: 'typo.invalid', port: 22, alias: 'typo.invalid' });
    expect(direct.retryable).toBe(false);
    expect(direct.message).toMatch(/check the name, or add a 'Host typo\.invalid' block/);
    expect(isUnresolvedName(direct)).toBe(true);
    const viaConfig = explainConnectError(base, { host: 'gone.invalid', port: 22, alias: 'box' });
    expect(viaConfig.message).toMatch(/HostName ssh_config gives for 'box'/);
  });

  it('ECONNREFUSED: retryable; says to check sshd and the port; other errors unchanged', () => {
    const refused = explainConnectError(new SshError('ERR_SSH_CONNECT', 'x', { cause: sysErr('ECONNREFUSED') }), { host: '127.0.0.1', port: 2222, alias: 'a' });
    expect(refused.retryable).toBe(true);
    expect(refused.message).toMatch(/check that sshd runs on 127\.0\.0\.1 and listens on port 2222/);
    const other = new SshError('ERR_SSH_CONNECT', 'x', { cause: sysErr('EHOSTUNREACH') });
    expect(explainConnectError(other, { host: 'h', port: 22, alias: 'h' })).toBe(other);
  });
});
