// Pure logic of authentication and ProxyJump: hop spec parsing, hop settings inheritance,
// method ordering (PreferredAuthentications...), SHA-1 refusal, error text without secrets.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { resolveOptions, type ResolvedOptions, type SshClientOptions } from '../../src/options.js';
import { buildAuthSteps, describeAuthFailure, newAuthTrace, parsePrivateKey, withoutSha1, SHA1_REFUSED } from '../../src/connection/auth.js';
import { resolveHop } from '../../src/connection/jump.js';
import { parseHopSpec } from '../../src/config/ssh-config/jump-spec.js';
import { SshConfigError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'tether-authu-'));
function key(name: string, args: string[] = ['-t', 'ed25519']): string {
  const p = join(dir, name);
  execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-f', p]);
  return p;
}
const base: SshClientOptions = { host: 'h', username: 'u', agent: false, sshConfig: false, identityFiles: [] };
function opts(o: Partial<SshClientOptions>, extra: Partial<ResolvedOptions> = {}): ResolvedOptions {
  return { ...resolveOptions({ ...base, ...o }), ...extra };
}

describe('parseHopSpec (ssh -J forms)', () => {
  it.each([
    ['bastion', { user: undefined, host: 'bastion', port: undefined }],
    ['me@bastion', { user: 'me', host: 'bastion', port: undefined }],
    ['me@bastion:2222', { user: 'me', host: 'bastion', port: 2222 }],
    ['ssh://me@bastion:2222', { user: 'me', host: 'bastion', port: 2222 }],
    ['ssh://bastion/', { user: undefined, host: 'bastion', port: undefined }],
    ['[::1]:2200', { user: undefined, host: '::1', port: 2200 }],
    ['u@[fe80::1]', { user: 'u', host: 'fe80::1', port: undefined }],
    ['a@b@host:22', { user: 'a@b', host: 'host', port: 22 }],
  ])('%s', (spec, want) => {
    expect(parseHopSpec(spec)).toEqual(want);
  });
  it.each(['', '@host', 'host:0', 'host:65536', 'host:abc', '[::1', 'bad host', '::1', 'user@h:22:33', 'ssh://h/x'])('%j is ERR_SSH_CONFIG naming the field', (spec) => {
    const err = (() => {
      try {
        parseHopSpec(spec);
      } catch (e) {
        return e;
      }
      return undefined;
    })() as SshConfigError;
    expect(err).toBeInstanceOf(SshConfigError);
    expect(err.code).toBe('ERR_SSH_CONFIG');
    expect(err.field).toBe('jump');
  });
});

describe('resolveHop: what a hop inherits', () => {
  it('takes user/port from the spec, the trust policy and secrets from the client, never the password or the user', async () => {
    const target = opts({
      host: 'target',
      username: 'deploy',
      port: 2022,
      password: 'target-password',
      knownHostsFiles: ['/k/known_hosts'],
      strictHostKeyChecking: 'accept-new',
      identityFiles: ['/k/id'],
      passphrase: 'pp',
      connectTimeoutMs: 1234,
    });
    const hop = await resolveHop(target, 'jumper@bastion:2200');
    expect(hop.host).toBe('bastion');
    expect(hop.port).toBe(2200);
    expect(hop.username).toBe('jumper');
    expect(hop.password).toBeUndefined();
    expect(hop.knownHostsFiles).toEqual(['/k/known_hosts']);
    expect(hop.strictHostKeyChecking).toBe('accept-new');
    expect(hop.identityFiles).toEqual(['/k/id']);
    expect(typeof hop.passphrase === 'object' && hop.passphrase.reveal()).toBe('pp');
    expect(hop.connectTimeoutMs).toBe(1234);
    expect(hop.jump).toEqual([]);
    expect(hop.forwardAgent).toBe(false);
    expect(inspect(hop)).not.toContain('pp\'');
  });

  it("the hop's own ssh_config IdentityFile wins over the client's identityFiles; its ProxyJump is ignored", async () => {
    const cfg = join(dir, 'hop_config');
    writeFileSync(cfg, 'Host bastion\n  HostName 127.0.0.9\n  Port 2201\n  User cfguser\n  IdentityFile /cfg/id_bastion\n  ProxyJump elsewhere\n');
    const target = opts({ host: 'target', identityFiles: ['/k/id'], sshConfig: cfg });
    const hop = await resolveHop(target, 'bastion');
    expect(hop.host).toBe('127.0.0.9');
    expect(hop.port).toBe(2201);
    expect(hop.username).toBe('cfguser');
    expect(hop.identityFiles).toEqual(['/cfg/id_bastion']);
    expect(hop.jump).toEqual([]);
  });
});

describe('buildAuthSteps: method order and switches', () => {
  const k1 = key('k1');
  const k2 = key('k2');
  it("OpenSSH's default order: publickey (identity files in order), keyboard-interactive, password", async () => {
    const steps = await buildAuthSteps(opts({ identityFiles: [k1, k2], password: 'pw' }));
    expect(steps.map((s) => s.kind)).toEqual(['publickey', 'publickey', 'keyboard-interactive', 'password']);
    expect(steps[0]?.label).toContain(k1);
    expect(steps[1]?.label).toContain(k2);
  });
  it('PreferredAuthentications reorders and filters', async () => {
    const steps = await buildAuthSteps(opts({ identityFiles: [k1], password: 'pw' }, { preferredAuthentications: ['password', 'publickey'] }));
    expect(steps.map((s) => s.kind)).toEqual(['password', 'publickey']);
  });
  it('PasswordAuthentication no drops password (and kbd answered by it); a kbd callback stays', async () => {
    const noPw = await buildAuthSteps(opts({ password: 'pw' }, { passwordAuthentication: false }));
    expect(noPw).toEqual([]);
    const cb = await buildAuthSteps(opts({ password: 'pw', keyboardInteractive: () => [] }, { passwordAuthentication: false }));
    expect(cb.map((s) => s.kind)).toEqual(['keyboard-interactive']);
  });
  it('PubkeyAuthentication no reads no key at all', async () => {
    const steps = await buildAuthSteps(opts({ identityFiles: ['/does/not/exist'] }, { pubkeyAuthentication: false }));
    expect(steps).toEqual([]);
  });
  it('BatchMode skips encrypted keys instead of asking, and drops the kbd callback', async () => {
    const enc = join(dir, 'enc');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'pp', '-f', enc]);
    let asked = 0;
    const trace = newAuthTrace();
    const steps = await buildAuthSteps(
      opts({ identityFiles: [enc, k1], passphrase: () => String(++asked), keyboardInteractive: () => [] }, { batchMode: true }),
      trace,
    );
    expect(asked).toBe(0);
    expect(steps.map((s) => s.kind)).toEqual(['publickey']);
    expect(trace.notes.join()).toContain('BatchMode');
  });
  it('an unreachable agent is noted, not fatal', async () => {
    const trace = newAuthTrace();
    const steps = await buildAuthSteps(opts({ identityFiles: [k1], agent: join(dir, 'nope.sock') }), trace);
    expect(steps.map((s) => s.kind)).toEqual(['publickey']);
    expect(trace.notes.join()).toContain('nope.sock');
  });
});

describe('RSA keys never sign with SHA-1', () => {
  it('withoutSha1 refuses sha1 and signs with sha256/sha512; other key types are unchanged', () => {
    const rsa = parsePrivateKey(readFileSync(key('rsa', ['-t', 'rsa', '-b', '2048'])), undefined, 'rsa');
    const safe = withoutSha1(rsa);
    const refused = safe.sign(Buffer.from('data'), 'sha1') as unknown;
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).toBe(SHA1_REFUSED);
    expect(Buffer.isBuffer(safe.sign(Buffer.from('data'), 'sha512'))).toBe(true);
    expect(rsa.verify(Buffer.from('data'), safe.sign(Buffer.from('data'), 'sha256'), 'sha256')).toBe(true);
    expect(safe.getPublicSSH().equals(rsa.getPublicSSH())).toBe(true);
    const ed = parsePrivateKey(readFileSync(key('ed')), undefined, 'ed');
    expect(withoutSha1(ed)).toBe(ed);
  });
});

describe('ERR_SSH_AUTH text', () => {
  it('lists tried methods and keys, what the server allows, notes; no secret', () => {
    const trace = newAuthTrace();
    trace.tried.push('publickey ssh-ed25519 SHA256:abc (agent: me@box)', 'password');
    trace.serverAllows = ['publickey', 'password'];
    trace.notes.push('IdentitiesOnly: 1 agent key(s) not offered (SHA256:def)');
    const msg = describeAuthFailure({ username: 'u', host: 'h', port: 22 }, trace);
    expect(msg).toBe(
      "authentication as 'u' to h:22 failed; tried publickey ssh-ed25519 SHA256:abc (agent: me@box); password; the server allows: publickey, password; notes: IdentitiesOnly: 1 agent key(s) not offered (SHA256:def)",
    );
  });
});
