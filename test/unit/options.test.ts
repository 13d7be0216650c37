// Issue 12 §2: one settings object per attempt. The options live at the facade level
// (src/options.ts), config/ is ssh_config resolution only, DEFAULTS is the one complete, deeply
// frozen source of every built-in default, and zodToConfigError is zodToError + configError.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DEFAULTS, expandHome, resolveOptions, secureDefaultAlgorithms } from '../../src/options.js';
import { withoutSshConfig } from '../../src/settings.js';
import { toAlgorithms } from '../../src/connection/transport.js';
import { loadIdentityFile } from '../../src/connection/auth.js';
import { configError, zodToConfigError, zodToError } from '../../src/internal/validate.js';
import { SshConfigError, SshError } from '../../src/errors.js';
import { FORWARD_DEFAULTS, parseForwardOptions } from '../../src/forward/options.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.resolve(here, '../../src');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ssh-tether-options-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}
const rel = (p: string): string => path.relative(src, p);
/** Source text with comments removed (TSDoc may name the defaults in prose). */
const code = (p: string): string =>
  readFileSync(p, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');

/** Every object and array reachable from `v`, with its path. */
function walk(v: unknown, at: string, out: Array<[string, object]>): Array<[string, object]> {
  if (typeof v === 'object' && v !== null) {
    out.push([at, v]);
    for (const [k, x] of Object.entries(v)) walk(x, `${at}.${k}`, out);
  }
  return out;
}

describe('DEFAULTS', () => {
  it('is deeply frozen: every nested object and array, and writes throw', () => {
    const nodes = walk(DEFAULTS, 'DEFAULTS', []);
    expect(nodes.length).toBeGreaterThan(10); // reconnect, the file lists, algorithms and its lists
    for (const [at, o] of nodes) expect(Object.isFrozen(o), at).toBe(true);
    expect(() => {
      (DEFAULTS.identityFiles as string[]).push('~/.ssh/mine');
    }).toThrow(TypeError);
    expect(() => {
      (DEFAULTS.algorithms.kex as string[])[0] = 'diffie-hellman-group1-sha1';
    }).toThrow(TypeError);
    expect(() => {
      (DEFAULTS as { port: number }).port = 2222;
    }).toThrow(TypeError);
  });

  it('identityFiles is OpenSSH\'s default IdentityFile list, in its order (ssh -G when ssh is installed)', () => {
    // Recorded from `ssh -F /dev/null -G x` of OpenSSH 9.2p1 (ssh_config(5) IdentityFile).
    const recorded = ['~/.ssh/id_rsa', '~/.ssh/id_ecdsa', '~/.ssh/id_ecdsa_sk', '~/.ssh/id_ed25519', '~/.ssh/id_ed25519_sk', '~/.ssh/id_xmss', '~/.ssh/id_dsa'];
    expect([...DEFAULTS.identityFiles]).toEqual(recorded);
    const r = spawnSync('ssh', ['-F', '/dev/null', '-G', 'x'], { encoding: 'utf8', timeout: 10_000 });
    if (r.error === undefined && r.status === 0) {
      const live = r.stdout.split('\n').filter((l) => l.startsWith('identityfile ')).map((l) => l.slice('identityfile '.length));
      expect(live).toEqual(recorded);
      // The other ssh_config defaults DEFAULTS shares with OpenSSH.
      const one = (k: string): string | undefined => r.stdout.split('\n').find((l) => l.startsWith(`${k} `))?.slice(k.length + 1);
      expect(one('port')).toBe(String(DEFAULTS.port));
      expect(one('serveralivecountmax')).toBe(String(DEFAULTS.keepaliveCountMax));
      expect(one('hashknownhosts')).toBe(DEFAULTS.hashKnownHosts ? 'yes' : 'no');
      expect(one('identitiesonly')).toBe(DEFAULTS.identitiesOnly ? 'yes' : 'no');
      expect(one('forwardagent')).toBe(DEFAULTS.forwardAgent ? 'yes' : 'no');
      expect(one('compression')).toBe(DEFAULTS.compression ? 'yes' : 'no');
      expect(one('batchmode')).toBe(DEFAULTS.batchMode ? 'yes' : 'no');
      expect(one('passwordauthentication')).toBe(DEFAULTS.passwordAuthentication ? 'yes' : 'no');
      // OpenSSH 9.2 prints `true` for PubkeyAuthentication's default (`yes` = `unbound`/`host-bound`).
      expect(['yes', 'true']).toContain(DEFAULTS.pubkeyAuthentication ? one('pubkeyauthentication') : 'no');
      expect(one('globalknownhostsfile')?.split(' ')[0]).toBe(DEFAULTS.globalKnownHostsFiles[0]);
    }
  });

  it('is what resolveOptions gives for every option left out', () => {
    const r = resolveOptions({ host: 'h' }, {});
    const home = os.homedir();
    const checked: string[] = [];
    for (const [k, v] of Object.entries(DEFAULTS)) {
      if (k === 'algorithms') continue; // applied when the transport is built: below
      if (k === 'forward') continue; // the forward options' defaults: below
      expect(Object.hasOwn(r, k), `ResolvedOptions.${k}`).toBe(true);
      const got = (r as unknown as Record<string, unknown>)[k];
      const want = k === 'identityFiles' || k === 'knownHostsFiles' ? (v as readonly string[]).map((p) => expandHome(p, home)) : v;
      expect(got, k).toEqual(want);
      checked.push(k);
    }
    expect(checked.length).toBe(Object.keys(DEFAULTS).length - 2);
    expect(r.identityFilesDefaulted).toBe(true);
    // No ssh_config: the algorithms handed to ssh2 are DEFAULTS.algorithms (a mutable copy).
    const algos = toAlgorithms(withoutSshConfig(r));
    expect(algos).toEqual(secureDefaultAlgorithms());
    expect(secureDefaultAlgorithms().kex).toEqual([...DEFAULTS.algorithms.kex]);
    expect(Object.isFrozen(secureDefaultAlgorithms().kex)).toBe(false);
  });

  it('forward: the forward options and the forward manager take their defaults from DEFAULTS.forward', () => {
    const local = parseForwardOptions('local', { remotePort: 5432 });
    expect(local.localHost).toBe(DEFAULTS.forward.localHost);
    expect(local.localPort).toBe(DEFAULTS.forward.port);
    const remote = parseForwardOptions('remote', { localPort: 3000 });
    expect(remote.localHost).toBe(DEFAULTS.forward.localHost);
    const dyn = parseForwardOptions('dynamic', {});
    expect(dyn.localHost).toBe(DEFAULTS.forward.localHost);
    expect(dyn.localPort).toBe(DEFAULTS.forward.port);
    // Loopback only by default: the brief's "forwards bind to loopback".
    expect(DEFAULTS.forward.localHost).toBe('127.0.0.1');
    // The deprecated FORWARD_DEFAULTS is a view of the same values, not a second copy.
    expect(FORWARD_DEFAULTS).toEqual({ ...DEFAULTS.forward, connectionWaitMs: DEFAULTS.forwardConnectionWaitMs });
    // No forward/ file writes a default literal of its own any more.
    const fwd = tsFiles(path.join(src, 'forward')).map((f) => [rel(f), code(f)] as const);
    for (const [f, c] of fwd) {
      expect(c, f).not.toMatch(/\?\?\s*'localhost'|\.default\('127\.0\.0\.1'\)|:\s*1024\b|:\s*20_000\b|retries: 12\b/);
    }
  });

  it('every default the code uses comes from it (no inline copies of the old literals)', () => {
    const files = tsFiles(src);
    // The default identity list exists once: config/ssh-config.ts (ssh -G parity) and DEFAULTS re-uses it.
    const idLiteral = /['"`]~\/\.ssh\/id_(rsa|ecdsa|ecdsa_sk|ed25519|ed25519_sk|xmss|dsa)['"`]/;
    expect(files.filter((f) => idLiteral.test(code(f))).map(rel)).toEqual(['config/ssh-config.ts']);
    // resolveOptions falls back to DEFAULTS.x only, never to an inline literal.
    const opts = code(path.join(src, 'options.ts'));
    const body = opts.slice(opts.indexOf('export function resolveOptions'), opts.indexOf('export function secureDefaultAlgorithms'));
    expect(body.length).toBeGreaterThan(1000);
    // (`?? []` / `?? ''` are empty collections for options not given, not defaults.)
    const inline = [...body.matchAll(/\?\?\s*(true|false|\d[\d_]*|'[^']+'|\[[^\]]+\])/g)].map((m) => m[0]);
    expect(inline).toEqual([]);
    for (const k of ['identityFiles', 'knownHostsFiles', 'hashKnownHosts', 'exitOnForwardFailure', 'compression', 'identitiesOnly', 'forwardAgent']) {
      expect(body, k).toContain(`DEFAULTS.${k}`);
    }
    // The secure algorithm lists are written once (DEFAULTS.algorithms).
    expect(files.filter((f) => code(f).includes("'diffie-hellman-group18-sha512'")).map(rel)).toEqual(['defaults.ts']);
    // The user known_hosts default is DEFAULTS.knownHostsFiles (config/ keeps ssh -G's own list;
    // the verifier only names a file in an error message when none is configured).
    const kh = files.filter((f) => /['"]~\/\.ssh\/known_hosts['"]/.test(code(f))).map(rel).sort();
    expect(kh).toEqual(['config/ssh-config.ts', 'defaults.ts', 'known-hosts/verifier.ts']);
  });
});

describe('layers: config/ is ssh_config resolution only', () => {
  it('no file in config/ imports anything but config/, errors.ts and internal/ (no cycle with forward/)', () => {
    const bad: string[] = [];
    for (const f of tsFiles(path.join(src, 'config'))) {
      for (const m of code(f).matchAll(/\bfrom\s+'(\.[^']+)'/g)) {
        const target = path.resolve(path.dirname(f), m[1]!);
        const r = rel(target);
        if (!(r.startsWith('config/') || r === 'errors.js' || r.startsWith('internal/'))) bad.push(`${rel(f)} -> ${r}`);
      }
    }
    expect(bad).toEqual([]);
    // forward/options.ts no longer imports the options (the other half of the old cycle).
    expect(code(path.join(src, 'forward/options.ts'))).not.toMatch(/from '\.\.\/(options|settings|config\/options)\.js'/);
    expect(() => statSync(path.join(src, 'config/options.ts'))).toThrow();
  });
});

describe('zodToConfigError', () => {
  const schema = z.strictObject({ port: z.number({ error: 'expected a number' }), user: z.string().optional() });
  it('is zodToError with configError: same message and field, SshConfigError, ZodError as cause', () => {
    for (const input of [{ port: 'x' }, { port: 1, usr: 'a' }, {}]) {
      const parsed = schema.safeParse(input);
      expect(parsed.success).toBe(false);
      if (parsed.success) continue;
      const a = zodToConfigError(parsed.error, 'test options', 'port, user', input);
      const b = zodToError(parsed.error, 'test options', configError(parsed.error), ['port', 'user'], input);
      expect(a).toBeInstanceOf(SshConfigError);
      expect(a.code).toBe('ERR_SSH_CONFIG');
      expect(a.message).toBe(b.message);
      expect(a.field).toBe((b as SshConfigError).field);
      expect(a.cause).toBe(parsed.error);
    }
    const p = schema.safeParse({ port: 1, usr: 'a' });
    if (!p.success) expect(zodToConfigError(p.error, 'test options', 'port, user').message).toMatch(/unknown option 'usr' \(did you mean `user`\?\); accepted options: port, user/);
  });
});

describe('default identity files ssh2 cannot use', () => {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const str = (x: Buffer | string): Buffer => {
    const b = typeof x === 'string' ? Buffer.from(x) : x;
    return Buffer.concat([u32(b.length), b]);
  };
  /** An unencrypted OpenSSH-format private key of `type` (PROTOCOL.key), as ssh-keygen writes an `_sk` key. */
  const openSshKey = (type: string): string => {
    const pub = Buffer.concat([str(type), str(Buffer.alloc(32, 1)), str('ssh:')]);
    let priv = Buffer.concat([u32(0x01020304), u32(0x01020304), str(type), str(Buffer.alloc(32, 1)), str('ssh:'), Buffer.from([1]), str(Buffer.alloc(16, 2)), str(''), str('c')]);
    for (let i = 1; priv.length % 8 !== 0; i++) priv = Buffer.concat([priv, Buffer.from([i])]);
    const body = Buffer.concat([Buffer.from('openssh-key-v1\0', 'latin1'), str('none'), str('none'), str(''), u32(1), str(pub), str(priv)]);
    return `-----BEGIN OPENSSH PRIVATE KEY-----\n${body.toString('base64').replace(/.{70}/g, '$&\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
  };

  it('a defaulted id_ed25519_sk / id_xmss file is skipped; the same file named explicitly is ERR_SSH_KEY', async () => {
    for (const [name, type] of [['id_ed25519_sk', 'sk-ssh-ed25519@openssh.com'], ['id_ecdsa_sk', 'sk-ecdsa-sha2-nistp256@openssh.com'], ['id_xmss', 'ssh-xmss@openssh.com']] as const) {
      const file = path.join(tmp, name);
      writeFileSync(file, openSshKey(type), { mode: 0o600 });
      chmodSync(file, 0o600);
      await expect(loadIdentityFile(file, undefined, true)).resolves.toBeUndefined();
      const err = await loadIdentityFile(file, undefined, false).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_KEY');
      expect((err as SshError).message).toContain(type);
    }
    // A defaulted file that is merely malformed is still an error (a broken key should be seen).
    const broken = path.join(tmp, 'id_rsa');
    writeFileSync(broken, '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n', { mode: 0o600 });
    await expect(loadIdentityFile(broken, undefined, true)).rejects.toMatchObject({ code: 'ERR_SSH_KEY' });
  });
});
