import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SshConfigError } from '../../src/errors.js';
import { applyAlgorithmSpec, convtime, parseJumpHop, resolveSshConfig, type SshConfigResolveOptions } from '../../src/config/ssh-config.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'ssh-tether-sshcfg-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

/** A fresh fake home with the given files under it (paths relative to home). */
function home(files: Record<string, string>): string {
  const h = path.join(root, `h${seq++}`);
  mkdirSync(path.join(h, '.ssh'), { recursive: true });
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(h, p)), { recursive: true });
    writeFileSync(path.join(h, p), text, { mode: 0o644 });
  }
  return h;
}

function opts(h: string, extra: SshConfigResolveOptions = {}): SshConfigResolveOptions {
  return { sshConfig: path.join(h, '.ssh/config'), homeDir: h, localUser: 'me', env: { SSH_AUTH_SOCK: '/run/agent' }, ...extra };
}

async function configError(p: Promise<unknown>): Promise<SshConfigError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SshConfigError);
  expect((err as SshConfigError).code).toBe('ERR_SSH_CONFIG');
  return err as SshConfigError;
}

describe('defaults and precedence', () => {
  it('uses OpenSSH defaults when nothing is configured', async () => {
    const h = home({ '.ssh/config': '' });
    const r = await resolveSshConfig('Box', opts(h));
    expect(r.hostName).toBe('box');
    expect(r.port).toBe(22);
    expect(r.user).toBe('me');
    expect(r.identityFiles).toEqual(
      ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk', 'id_xmss', 'id_dsa'].map((f) => `${h}/.ssh/${f}`),
    );
    expect(r.userKnownHostsFiles).toEqual([`${h}/.ssh/known_hosts`, `${h}/.ssh/known_hosts2`]);
    expect(r.globalKnownHostsFiles).toEqual(['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']);
    expect(r.identityAgent).toBe('/run/agent');
    expect(r.serverAliveIntervalMs).toBe(0);
    expect(r.serverAliveCountMax).toBe(3);
    expect(r.connectTimeoutMs).toBeUndefined();
    expect(r.strictHostKeyChecking).toBe('yes');
    expect(r.explicit.size).toBe(0);
    expect(r.warnings).toEqual([]);
    expect(r.sources).toEqual([path.join(h, '.ssh/config')]);
  });

  it('explicit user and port win over the config and are reported in explicit', async () => {
    const h = home({ '.ssh/config': 'Host *\n  User cfg\n  Port 2000\n  ServerAliveInterval 1m\nMatch user api\n  Compression yes\n' });
    const r = await resolveSshConfig('box', opts(h, { user: 'api', port: 2222 }));
    expect(r.user).toBe('api');
    expect(r.port).toBe(2222);
    expect(r.compression).toBe(true); // Match user sees the explicit user
    expect(r.serverAliveIntervalMs).toBe(60_000);
    expect([...r.explicit].sort()).toEqual(['compression', 'port', 'serverAliveIntervalMs', 'user']);
  });

  it('skips missing default files but rejects a missing explicit file', async () => {
    const h = home({});
    const r = await resolveSshConfig('x', { homeDir: h, localUser: 'me', env: {} });
    expect(r.sources.every((s) => s === '/etc/ssh/ssh_config')).toBe(true);
    const e = await configError(resolveSshConfig('x', opts(h)));
    expect(e.field).toBe('sshConfig');
    const none = await resolveSshConfig('x', { sshConfig: false, homeDir: h, localUser: 'me', env: {} });
    expect(none.sources).toEqual([]);
  });

  it('returns a deep-frozen result', async () => {
    const h = home({ '.ssh/config': 'Host x\n  LocalForward 1 a:2\n' });
    const r = await resolveSshConfig('x', opts(h));
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.identityFiles)).toBe(true);
    expect(Object.isFrozen(r.localForwards[0]!.listen)).toBe(true);
    expect(() => (r.explicit as Set<string>).add('port')).toThrow(TypeError);
  });
});

describe('tokens', () => {
  it('expands %% %h %p %r %u %n %d %l %L %i %C and ${VAR} in paths', async () => {
    const h = home({
      '.ssh/config': [
        'Host t',
        '  HostName %h.example',
        '  User bob',
        '  Port 2022',
        '  IdentityFile ~/k_%h_%p_%r_%u_%n_%%',
        '  IdentityFile %d/k_%l_%L_%i',
        '  IdentityFile ${KEYDIR}/k',
        '  UserKnownHostsFile ~/kh_%C',
        '  IdentityAgent ~/agent_%n',
        '  LocalForward /tmp/l_%h.sock r:1',
      ].join('\n'),
    });
    const r = await resolveSshConfig('t', opts(h, { env: { KEYDIR: '/keys' } }));
    const host = os.hostname();
    expect(r.hostName).toBe('t.example');
    expect(r.identityFiles).toEqual([
      `${h}/k_t.example_2022_bob_me_t_%`,
      `${h}/k_${host}_${host.split('.')[0]}_${process.getuid!()}`,
      '/keys/k',
    ]);
    expect(r.userKnownHostsFiles[0]).toMatch(new RegExp(`^${h}/kh_[0-9a-f]{40}$`));
    expect(r.identityAgent).toBe(`${h}/agent_t`);
    expect(r.localForwards[0]!.listen).toEqual({ kind: 'unix', path: '/tmp/l_t.example.sock' });
  });

  it('rejects unknown tokens, a trailing % and unset ${VAR}', async () => {
    for (const line of ['IdentityFile ~/k_%z', 'IdentityFile ~/k_%', 'IdentityFile ${NOPE}/k', 'HostName %p.x']) {
      const h = home({ '.ssh/config': `Host t\n  ${line}\n` });
      await configError(resolveSshConfig('t', opts(h)));
    }
  });
});

describe('Include', () => {
  it('reads relative includes from ~/.ssh, in sorted glob order, and nested', async () => {
    const h = home({
      '.ssh/config': 'Include conf.d/*.conf\nHost *\n  User last\n',
      '.ssh/conf.d/b.conf': 'Host x\n  Port 2002\n',
      '.ssh/conf.d/a.conf': 'Host x\n  Port 2001\n  Include sub/deeper\n',
      '.ssh/conf.d/.hidden.conf': 'Host x\n  Port 9999\n',
      '.ssh/sub/deeper': 'Host *\n  User deep\n',
    });
    const r = await resolveSshConfig('x', opts(h));
    expect(r.port).toBe(2001);
    expect(r.user).toBe('deep');
    expect(r.sources.map((s) => path.relative(h, s))).toEqual([
      '.ssh/config',
      '.ssh/conf.d/a.conf',
      '.ssh/sub/deeper',
      '.ssh/conf.d/b.conf',
    ]);
  });

  it('stops an include loop with ERR_SSH_CONFIG', async () => {
    const h = home({ '.ssh/config': 'Include a\n', '.ssh/a': 'Include b\n', '.ssh/b': 'Include a\n' });
    const e = await configError(resolveSshConfig('x', opts(h)));
    expect(e.message).toMatch(/include loop/);
  });

  it('allows 16 levels of nesting and rejects 17', async () => {
    const chain = (n: number): Record<string, string> => {
      const files: Record<string, string> = { '.ssh/config': 'Include f1\n' };
      for (let i = 1; i <= n; i++) files[`.ssh/f${i}`] = i < n ? `Include f${i + 1}\n` : 'Host *\n  Port 2345\n';
      return files;
    };
    expect((await resolveSshConfig('x', opts(home(chain(16))))).port).toBe(2345);
    const e = await configError(resolveSshConfig('x', opts(home(chain(17)))));
    expect(e.message).toMatch(/too many recursive/);
  });

  it('rejects a group-writable included file (OpenSSH SSHCONF_CHECKPERM)', async () => {
    const h = home({ '.ssh/config': 'Include inc\n', '.ssh/inc': 'Port 2\n' });
    chmodSync(path.join(h, '.ssh/inc'), 0o664);
    const e = await configError(resolveSshConfig('x', opts(h)));
    expect(e.message).toMatch(/Bad owner or permissions/);
  });
});

describe('never executes anything', () => {
  it('treats Match exec as false, warns, and does not run the command', async () => {
    const marker = path.join(root, `marker-${seq}`);
    const h = home({
      '.ssh/config': `Match exec "touch ${marker}"\n  User pwned\nHost *\n  ProxyCommand touch ${marker}\n  LocalCommand touch ${marker}\n  PermitLocalCommand yes\n  KnownHostsCommand touch ${marker}\n  ControlMaster auto\n`,
    });
    const r = await resolveSshConfig('x', opts(h));
    expect(r.user).toBe('me');
    expect(existsSync(marker)).toBe(false);
    expect(r.warnings.map((w) => w.keyword).sort()).toEqual(
      ['ControlMaster', 'KnownHostsCommand', 'LocalCommand', 'Match exec', 'PermitLocalCommand', 'ProxyCommand'].sort(),
    );
    for (const w of r.warnings) expect(w.message.length).toBeGreaterThan(0);
  });

  it('reports StrictHostKeyChecking ask as yes with a warning, and ControlMaster no without one', async () => {
    const h = home({ '.ssh/config': 'StrictHostKeyChecking ask\nControlMaster no\n' });
    const r = await resolveSshConfig('x', opts(h));
    expect(r.strictHostKeyChecking).toBe('yes');
    expect(r.warnings.map((w) => w.keyword)).toEqual(['StrictHostKeyChecking']);
  });
});

describe('validation', () => {
  it.each(['-oProxyCommand=x', 'a;b', 'a b', 'a$(x)', 'a`x`', 'a|b', 'a\nb', '', 'a"b', "a'b", 'a\\b', 'u@host', 'a{b}'])(
    'rejects host alias %j',
    async (alias) => {
      const e = await configError(resolveSshConfig(alias, { sshConfig: false, homeDir: root, localUser: 'me', env: {} }));
      expect(e.field).toBe('host');
    },
  );

  it.each(['a;b', 'a -oX', 'x\\', '', 'a"b', 'a|b', 'a(b)'])('rejects explicit user %j', async (user) => {
    const e = await configError(resolveSshConfig('host', { sshConfig: false, homeDir: root, localUser: 'me', env: {}, user }));
    expect(e.field).toBe('user');
  });

  it('accepts ordinary names', async () => {
    const r = await resolveSshConfig('host-1.example_x', { sshConfig: false, homeDir: root, localUser: 'me', env: {}, user: 'first.last@corp' });
    expect(r.user).toBe('first.last@corp');
  });

  it.each([0, 65536, 1.5, Number.NaN])('rejects explicit port %s', async (port) => {
    const e = await configError(resolveSshConfig('host', { sshConfig: false, homeDir: root, env: {}, port }));
    expect(e.field).toBe('port');
  });

  it.each([
    ['Port 0', 'Port'],
    ['Port http', 'Port'],
    ['ServerAliveInterval 5x', 'ServerAliveInterval'],
    ['ServerAliveCountMax -1', 'ServerAliveCountMax'],
    ['StrictHostKeyChecking maybe', 'StrictHostKeyChecking'],
    ['Compression perhaps', 'Compression'],
    ['LocalForward 8080', 'LocalForward'],
    ['LocalForward 0 h:1', 'LocalForward'],
    ['DynamicForward a:b:c', 'DynamicForward'],
    ['ProxyJump a,,b', 'ProxyJump'],
    ['Match bogus x', 'Match'],
    ['Match all host x', 'Match'],
    ['HostName a b', 'HostName'],
    ['Ciphers +', 'Ciphers'],
  ])('rejects %j naming %s', async (line, field) => {
    const h = home({ '.ssh/config': `${line}\n` });
    const e = await configError(resolveSshConfig('x', opts(h)));
    expect(e.field).toBe(field);
    expect(e.message).toMatch(/line 1/);
  });

  it('validates lines of inactive blocks too (as OpenSSH does)', async () => {
    const h = home({ '.ssh/config': 'Host nomatch\n  Port x\n' });
    await configError(resolveSshConfig('x', opts(h)));
  });
});

describe('prototype pollution', () => {
  it('Host __proto__ / constructor keywords pollute nothing', async () => {
    const h = home({
      '.ssh/config':
        'Host __proto__ constructor prototype\n  __proto__ polluted\n  constructor x\n  HostName __proto__\n  toString y\n  hasOwnProperty z\nMatch user __proto__\n  User constructor\n',
    });
    for (const alias of ['__proto__', 'constructor', 'prototype']) {
      const r = await resolveSshConfig(alias, opts(h));
      expect(r.hostName).toBe('__proto__');
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(typeof ({} as { toString: unknown }).toString).toBe('function');
  });
});

describe('garbage input', () => {
  const keywords = ['Host', 'Match', 'Include', 'HostName', 'Port', 'User', 'IdentityFile', 'LocalForward', 'RemoteForward',
    'DynamicForward', 'ProxyJump', 'Ciphers', 'ServerAliveInterval', 'IdentityAgent', 'ForwardAgent', '__proto__', 'exec'];
  const token = fc.oneof(
    fc.constantFrom(...keywords, '*', '!x', '%h', '%', '${A}', '"', '=', '#', '\\', '[::1]:22', 'a:b:c:d', '~', 'all', 'final', 'x'),
    fc.string({ maxLength: 8 }),
  );
  const line = fc
    .tuple(fc.array(token, { maxLength: 5 }), fc.constantFrom(' ', '\t', '=', ' = '))
    .map(([t, sep]) => t.join(sep));
  const text = fc
    .tuple(fc.array(line, { maxLength: 12 }), fc.constantFrom('\n', '\r\n'))
    .map(([ls, eol]) => ls.join(eol));

  it('never throws anything but SshConfigError', async () => {
    const h = home({});
    const file = path.join(h, '.ssh/config');
    await fc.assert(
      fc.asyncProperty(text, fc.string({ maxLength: 12 }), async (t, alias) => {
        writeFileSync(file, t);
        try {
          const r = await resolveSshConfig(alias, opts(h));
          expect(typeof r.hostName).toBe('string');
        } catch (err) {
          if (!(err instanceof SshConfigError) || err.code !== 'ERR_SSH_CONFIG') throw err;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('applyAlgorithmSpec', () => {
  const d = ['a-ctr', 'b-ctr', 'c-gcm', 'd-cbc'];
  it('implements replace, +, -, ^ with wildcards and de-duplication', () => {
    expect(applyAlgorithmSpec('x,c-gcm,x', d)).toEqual(['x', 'c-gcm']);
    expect(applyAlgorithmSpec('+x,a-ctr', d)).toEqual([...d, 'x']);
    expect(applyAlgorithmSpec('-*-ctr', d)).toEqual(['c-gcm', 'd-cbc']);
    expect(applyAlgorithmSpec('-a-ctr,d-?bc', d)).toEqual(['b-ctr', 'c-gcm']);
    expect(applyAlgorithmSpec('^d-cbc,z', d)).toEqual(['d-cbc', 'z', 'a-ctr', 'b-ctr', 'c-gcm']);
    expect(applyAlgorithmSpec('*-gcm,a-ctr', d)).toEqual(['c-gcm', 'a-ctr']);
    expect(applyAlgorithmSpec('+*-cbc', ['a'], ['a', 'x-cbc', 'y-cbc'])).toEqual(['a', 'x-cbc', 'y-cbc']);
    expect(d).toEqual(['a-ctr', 'b-ctr', 'c-gcm', 'd-cbc']);
  });
  it('rejects empty specs, empty results and negation', () => {
    for (const s of ['', '+', 'a,,b', '-*', '!a-ctr', 'zz*']) expect(() => applyAlgorithmSpec(s, d)).toThrow(SshConfigError);
  });
});

describe('helpers', () => {
  it('convtime follows OpenSSH', () => {
    expect(convtime('90')).toBe(90);
    expect(convtime('1m30s')).toBe(90);
    expect(convtime('1h')).toBe(3600);
    expect(convtime('1W')).toBe(604800);
    for (const bad of ['', '-1', '1x', 'm', '99999999999']) expect(convtime(bad)).toBeUndefined();
  });
  it('parseJumpHop reads user, host, port, IPv6 and ssh:// URIs', () => {
    expect(parseJumpHop('u@h:22')).toEqual({ user: 'u', host: 'h', port: 22 });
    expect(parseJumpHop('[::1]:2200')).toEqual({ user: undefined, host: '::1', port: 2200 });
    expect(parseJumpHop('ssh://a%40b@h')).toEqual({ user: 'a@b', host: 'h', port: undefined });
    expect(parseJumpHop('h:0')).toBeUndefined();
    expect(parseJumpHop('')).toBeUndefined();
  });
});

describe('Include fan-out', () => {
  it('bounds repeated inclusion without a loop', async () => {
    const files: Record<string, string> = { '.ssh/config': 'Include l1 l1 l1 l1 l1 l1 l1 l1\n' };
    for (let i = 1; i < 8; i++) files[`.ssh/l${i}`] = `Include ${Array(8).fill(`l${i + 1}`).join(' ')}\n`;
    files['.ssh/l8'] = 'Port 2\n';
    const e = await configError(resolveSshConfig('x', opts(home(files))));
    expect(e.message).toMatch(/fan-out/);
  });
});
