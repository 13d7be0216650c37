/**
 * Oracle test: for every fixture config and every alias listed in its `# aliases:` header,
 * `ssh -G -F <file> <alias>` (OpenSSH's own resolution; it only prints, no network) must agree
 * with resolveSshConfig() on every keyword we support.
 *
 * HOME points at a fake home whose `.ssh` holds test/fixtures/ssh-config/home-ssh, so relative
 * and `~` Includes are deterministic. ssh expands `~`/`%d` with the passwd home directory
 * (not $HOME): those prefixes are mapped to the fake home before comparing.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { applyAlgorithmSpec, parseJumpHop, resolveSshConfig, type ResolvedSshConfig } from '../../src/config/ssh-config.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '../fixtures/ssh-config');
const configDir = path.join(fixtures, 'configs');

const fakeHome = mkdtempSync(path.join(os.tmpdir(), 'ssh-tether-oracle-'));
cpSync(path.join(fixtures, 'home-ssh'), path.join(fakeHome, '.ssh'), { recursive: true });
afterAll(() => rmSync(fakeHome, { recursive: true, force: true }));

const pw = os.userInfo();
const env: Record<string, string> = {
  PATH: process.env['PATH'] ?? '/usr/bin:/bin',
  HOME: fakeHome,
  SSH_AUTH_SOCK: '/tmp/ssh-tether-test-auth.sock',
  OTHER_SOCK: '/tmp/ssh-tether-other.sock',
};

function sshG(file: string, alias: string): Map<string, string[]> {
  const r = spawnSync('ssh', ['-G', '-F', file, '--', alias], { env, encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ssh -G ${file} ${alias} failed: ${r.stderr}`);
  const out = new Map<string, string[]>();
  for (const line of r.stdout.split('\n')) {
    if (line === '') continue;
    const sp = line.indexOf(' ');
    const k = line.slice(0, sp);
    const v = line.slice(sp + 1);
    out.set(k, [...(out.get(k) ?? []), v]);
  }
  return out;
}

const defaults = sshG('/dev/null', 'x');
const defaultList = (k: string): string[] => defaults.get(k)![0]!.split(',');

function fixHome(s: string): string {
  if (s === pw.homedir) return fakeHome;
  if (s.startsWith(`${pw.homedir}/`)) return fakeHome + s.slice(pw.homedir.length);
  return s;
}
const tilde = (s: string): string => (s.startsWith('~/') ? `${fakeHome}/${s.slice(2)}` : s);

/** Expands tokens of an IdentityFile as ssh would, from ssh -G's own output. */
function expandTheirs(raw: string, g: Map<string, string[]>, alias: string): string {
  const one = (k: string): string => g.get(k)![0]!;
  const thisHost = os.hostname();
  const tokens: Record<string, string> = {
    h: one('hostname'),
    p: one('port'),
    r: one('user'),
    n: alias,
    k: alias,
    u: pw.username,
    d: fakeHome,
    l: thisHost,
    L: thisHost.split('.')[0]!,
    i: String(process.getuid!()),
    C: createHash('sha1').update(`${thisHost}${one('hostname')}${one('port')}${one('user')}`).digest('hex'),
  };
  const s = tilde(raw).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, n: string) => env[n] ?? '');
  return s.replace(/%(.)/g, (_m, k: string) => (k === '%' ? '%' : tokens[k]!));
}

const yn = (v: string | undefined): boolean => v === 'yes' || v === 'true';

function agentPath(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v === 'none') return undefined;
  if (v === 'SSH_AUTH_SOCK') return env['SSH_AUTH_SOCK'];
  if (v.startsWith('$') && !v.startsWith('${')) return env[v.slice(1)];
  return fixHome(tilde(v));
}

function normaliseTheirs(g: Map<string, string[]>, alias: string): Record<string, unknown> {
  const one = (k: string): string | undefined => g.get(k)?.[0];
  const fa = one('forwardagent');
  const ct = one('connecttimeout');
  const strict = one('stricthostkeychecking');
  const ukh = one('userknownhostsfile')!.split(' ');
  const gkh = one('globalknownhostsfile')!.split(' ');
  return {
    hostname: one('hostname'),
    port: Number(one('port')),
    user: one('user'),
    identityfile: (g.get('identityfile') ?? []).filter((f) => f !== 'none').map((f) => expandTheirs(f, g, alias)),
    identitiesonly: yn(one('identitiesonly')),
    identityagent: one('identityagent') === undefined ? env['SSH_AUTH_SOCK'] : agentPath(one('identityagent')),
    proxyjump: one('proxyjump') ?? '',
    serveraliveinterval: Number(one('serveraliveinterval')),
    serveralivecountmax: Number(one('serveralivecountmax')),
    connecttimeout: ct === 'none' ? undefined : Number(ct),
    stricthostkeychecking: strict === 'true' || strict === 'ask' ? 'yes' : strict === 'false' ? 'no' : strict,
    userknownhostsfile: ukh.length === 1 && ukh[0] === 'none' ? [] : ukh.map(fixHome),
    globalknownhostsfile: gkh.length === 1 && gkh[0] === 'none' ? [] : gkh.map(tilde),
    hashknownhosts: yn(one('hashknownhosts')),
    localforward: (g.get('localforward') ?? []).map(fixHome),
    remoteforward: (g.get('remoteforward') ?? []).map(fixHome),
    dynamicforward: (g.get('dynamicforward') ?? []).map(fixHome).sort(),
    exitonforwardfailure: yn(one('exitonforwardfailure')),
    forwardagent: fa !== undefined && fa !== 'no',
    forwardagentsocket: fa === undefined || fa === 'no' || fa === 'yes' ? undefined : agentPath(fa),
    compression: yn(one('compression')),
    ciphers: one('ciphers'),
    kexalgorithms: one('kexalgorithms'),
    macs: one('macs'),
    hostkeyalgorithms: one('hostkeyalgorithms'),
    preferredauthentications: one('preferredauthentications'),
    passwordauthentication: yn(one('passwordauthentication')),
    pubkeyauthentication: one('pubkeyauthentication') !== 'false' && one('pubkeyauthentication') !== 'no',
    batchmode: yn(one('batchmode')),
  };
}

type Listen = ResolvedSshConfig['localForwards'][number]['listen'];
type Connect = ResolvedSshConfig['localForwards'][number]['connect'];
const fmtListen = (l: Listen): string =>
  l.kind === 'unix' ? l.path : l.bindAddress === undefined ? String(l.port) : `[${l.bindAddress}]:${l.port}`;
const fmtConnect = (c: Connect | undefined): string =>
  c === undefined ? '[socks]:0' : c.kind === 'unix' ? c.path : `[${c.host}]:${c.port}`;

/** ssh -G prints the hops before the last as written, and the last one re-assembled. */
function jumpAsPrinted(hops: readonly string[]): string {
  if (hops.length === 0) return '';
  const last = parseJumpHop(hops[hops.length - 1]!)!;
  const host = last.host.includes(':') ? `[${last.host}]` : last.host;
  const rebuilt = `${last.user === undefined ? '' : `${last.user}@`}${host}${last.port === undefined ? '' : `:${last.port}`}`;
  return [...hops.slice(0, -1), rebuilt].join(',');
}

/** Formats our result the way ssh -G's dump_client_config prints it (quirks included). */
function normaliseOurs(r: ResolvedSshConfig): Record<string, unknown> {
  const local: string[] = [];
  const dynamic: string[] = r.dynamicForwards.map((d) => fmtListen(d.listen));
  for (const f of r.localForwards) {
    // ssh -G prints a forward whose connect host is "socks" as dynamic, and lists
    // path-target forwards under both keywords.
    if (f.connect.kind === 'tcp' && f.connect.host === 'socks') dynamic.push(fmtListen(f.listen));
    else local.push(`${fmtListen(f.listen)} ${fmtConnect(f.connect)}`);
    if (f.connect.kind === 'unix') dynamic.push(fmtListen(f.listen));
  }
  const algo = (spec: string | undefined, k: string): string =>
    applyAlgorithmSpec(spec ?? defaultList(k).join(','), defaultList(k)).join(',');
  return {
    hostname: r.hostName,
    port: r.port,
    user: r.user,
    identityfile: [...r.identityFiles],
    identitiesonly: r.identitiesOnly,
    identityagent: r.identityAgent,
    proxyjump: jumpAsPrinted(r.proxyJump),
    serveraliveinterval: r.serverAliveIntervalMs / 1000,
    serveralivecountmax: r.serverAliveCountMax,
    connecttimeout: r.connectTimeoutMs === undefined ? undefined : r.connectTimeoutMs / 1000,
    stricthostkeychecking: r.strictHostKeyChecking,
    userknownhostsfile: [...r.userKnownHostsFiles],
    globalknownhostsfile: [...r.globalKnownHostsFiles],
    hashknownhosts: r.hashKnownHosts,
    localforward: local,
    remoteforward: r.remoteForwards.map((f) => `${fmtListen(f.listen)} ${fmtConnect(f.connect)}`),
    dynamicforward: dynamic.sort(),
    exitonforwardfailure: r.exitOnForwardFailure,
    forwardagent: r.forwardAgent,
    forwardagentsocket: r.forwardAgentSocket,
    compression: r.compression,
    ciphers: algo(r.ciphers, 'ciphers'),
    kexalgorithms: algo(r.kexAlgorithms, 'kexalgorithms'),
    macs: algo(r.macs, 'macs'),
    hostkeyalgorithms: algo(r.hostKeyAlgorithms, 'hostkeyalgorithms'),
    preferredauthentications: r.preferredAuthentications?.join(','),
    passwordauthentication: r.passwordAuthentication,
    pubkeyauthentication: r.pubkeyAuthentication,
    batchmode: r.batchMode,
  };
}

const cases: { file: string; alias: string }[] = [];
const files = readdirSync(configDir).filter((f) => f.endsWith('.conf')).sort();
for (const f of files) {
  const header = /^# aliases: (.*)$/m.exec(readFileSync(path.join(configDir, f), 'utf8'));
  if (header === null) throw new Error(`${f}: missing "# aliases:" header`);
  for (const alias of header[1]!.trim().split(/\s+/)) cases.push({ file: f, alias });
}

describe('resolveSshConfig agrees with ssh -G', () => {
  it('has a corpus of at least 30 config files and 90 (file, alias) cases', () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
    expect(cases.length).toBeGreaterThanOrEqual(90);
  });

  it.each(cases)('$file $alias', async ({ file, alias }) => {
    const abs = path.join(configDir, file);
    const theirs = normaliseTheirs(sshG(abs, alias), alias);
    const ours = await resolveSshConfig(alias, { sshConfig: abs, homeDir: fakeHome, localUser: pw.username, env });
    expect(normaliseOurs(ours)).toEqual(theirs);
  });
});
