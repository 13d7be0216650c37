/**
 * ssh_config resolution: what `ssh -G <alias>` prints, for the keywords ssh-tether uses.
 *
 * Follows ssh_config(5) and OpenSSH 9.2's readconf.c / ssh.c: files are read in order (the
 * user's `~/.ssh/config`, then `/etc/ssh/ssh_config`), the first obtained value of a keyword
 * wins (IdentityFile, LocalForward, RemoteForward and DynamicForward accumulate), `Host`
 * and `Match` blocks switch lines on and off, `Include` reads more files in place, and
 * `Match final` triggers a second pass over every file once the host name is known.
 * Parsing uses the `ssh-config` npm package; resolution is ours. Nothing is ever executed:
 * `Match exec` is false, and ProxyCommand, LocalCommand, KnownHostsCommand,
 * `PermitLocalCommand yes` and ControlMaster are reported as warnings.
 *
 * @module config/ssh-config
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SshConfigError } from '../errors.js';
import { applyAlgorithmSpec } from './ssh-config/algorithms.js';
import { splitJumpList } from './ssh-config/jump-spec.js';
import { dollarExpand, isValidEnvName, percentExpand, tildeExpand, type TokenMap } from './ssh-config/expand.js';
import { globFiles, readConfigFile } from './ssh-config/files.js';
import {
  a2port,
  forwardEquals,
  parseForwardSpec,
  toConnect,
  toListen,
  type DynamicForwardSpec,
  type LocalForwardSpec,
  type RawForward,
  type RemoteForwardSpec,
} from './ssh-config/forward.js';
import { parseConfigText, type ConfigLine } from './ssh-config/parse.js';
import { matchPattern, matchPatternList } from './ssh-config/patterns.js';

export { applyAlgorithmSpec };
export type {
  DynamicForwardSpec,
  ForwardConnect,
  ForwardListen,
  LocalForwardSpec,
  RemoteForwardSpec,
} from './ssh-config/forward.js';

/** Options of {@link resolveSshConfig}. */
export interface SshConfigResolveOptions {
  /**
   * Config file path(s) to read, in order (`~` is expanded). A path given here is read as a
   * user config, like `ssh -F` (relative `Include`s resolve against `~/.ssh`) and must exist;
   * `/etc/ssh/ssh_config` is read as the system config. `false` reads no file.
   * @default ['~/.ssh/config', '/etc/ssh/ssh_config'] (missing files skipped)
   */
  sshConfig?: string | false | string[];
  /** Explicit remote user name; wins over `User` in the config (like `ssh -l`). */
  user?: string;
  /** Explicit port, 1..65535; wins over `Port` in the config (like `ssh -p`). */
  port?: number;
  /** Local user name (`Match localuser`, `%u`). @default os.userInfo().username */
  localUser?: string;
  /** Home directory (`~`, `%d`, relative Includes). @default os.homedir() */
  homeDir?: string;
  /** Environment for `${VAR}`, `IdentityAgent SSH_AUTH_SOCK`/`$VAR`. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/** StrictHostKeyChecking as a library applies it (`ask` cannot prompt, so it acts as `yes`). */
export type StrictHostKeyCheckingMode = 'yes' | 'no' | 'accept-new';

/** A keyword found in the config that ssh-tether does not apply. */
export interface SshConfigWarning {
  /** The keyword as ssh_config(5) spells it, e.g. `ProxyCommand`, or `Match exec`. */
  readonly keyword: string;
  /** What was ignored and why. */
  readonly message: string;
}

/** Names of the {@link ResolvedSshConfig} fields that can come from the config. */
export type SshConfigField =
  | 'hostName'
  | 'port'
  | 'user'
  | 'identityFiles'
  | 'identitiesOnly'
  | 'identityAgent'
  | 'proxyJump'
  | 'serverAliveIntervalMs'
  | 'serverAliveCountMax'
  | 'connectTimeoutMs'
  | 'strictHostKeyChecking'
  | 'userKnownHostsFiles'
  | 'globalKnownHostsFiles'
  | 'hashKnownHosts'
  | 'localForwards'
  | 'remoteForwards'
  | 'dynamicForwards'
  | 'exitOnForwardFailure'
  | 'forwardAgent'
  | 'compression'
  | 'ciphers'
  | 'kexAlgorithms'
  | 'macs'
  | 'hostKeyAlgorithms'
  | 'preferredAuthentications'
  | 'passwordAuthentication'
  | 'pubkeyAuthentication'
  | 'batchMode';

/** The settings for one host alias, as `ssh -G` resolves them. Deep-frozen. */
export interface ResolvedSshConfig {
  /** The alias asked for. */
  readonly alias: string;
  /** `HostName` with `%h` expanded, lowercased unless an IP address; default the alias, lowercased. */
  readonly hostName: string;
  /** `Port`. @default 22 */
  readonly port: number;
  /** `User`. @default the local user */
  readonly user: string;
  /** `IdentityFile`s in order, `~`/`${VAR}`/`%` expanded (`none` dropped). Default: OpenSSH's seven `~/.ssh/id_*`. */
  readonly identityFiles: readonly string[];
  /** `IdentitiesOnly`. @default false */
  readonly identitiesOnly: boolean;
  /** Agent socket path (`IdentityAgent`, else `$SSH_AUTH_SOCK`), or undefined for `none`/unset. */
  readonly identityAgent: string | undefined;
  /** `ProxyJump` hops in connection order (`[user@]host[:port]` or `ssh://` URIs); `[]` for none. */
  readonly proxyJump: readonly string[];
  /** `ServerAliveInterval` in milliseconds; 0 = off. @default 0 */
  readonly serverAliveIntervalMs: number;
  /** `ServerAliveCountMax`. @default 3 */
  readonly serverAliveCountMax: number;
  /** `ConnectTimeout` in milliseconds; undefined = none (system TCP timeout). */
  readonly connectTimeoutMs: number | undefined;
  /** `StrictHostKeyChecking` (`ask` and the default become `yes`; `off`/`false` become `no`). */
  readonly strictHostKeyChecking: StrictHostKeyCheckingMode;
  /** `UserKnownHostsFile`s, expanded; `[]` for `none`. Default `~/.ssh/known_hosts ~/.ssh/known_hosts2`. */
  readonly userKnownHostsFiles: readonly string[];
  /** `GlobalKnownHostsFile`s (`~` expanded); `[]` for `none`. Default `/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2`. */
  readonly globalKnownHostsFiles: readonly string[];
  /** `HashKnownHosts`. @default false */
  readonly hashKnownHosts: boolean;
  /** `LocalForward`s in order (socket paths `%`-expanded). */
  readonly localForwards: readonly LocalForwardSpec[];
  /** `RemoteForward`s in order (`connect` undefined for a remote SOCKS forward). */
  readonly remoteForwards: readonly RemoteForwardSpec[];
  /** `DynamicForward`s in order. */
  readonly dynamicForwards: readonly DynamicForwardSpec[];
  /** `ExitOnForwardFailure`. @default false */
  readonly exitOnForwardFailure: boolean;
  /** `ForwardAgent` (true also when a socket path is given). @default false */
  readonly forwardAgent: boolean;
  /** The agent socket `ForwardAgent` names (a path or `$VAR`, resolved), if any. */
  readonly forwardAgentSocket: string | undefined;
  /** `Compression`. @default false */
  readonly compression: boolean;
  /** `Ciphers` spec as written (apply with {@link applyAlgorithmSpec}); undefined = default. */
  readonly ciphers: string | undefined;
  /** `KexAlgorithms` spec as written; undefined = default. */
  readonly kexAlgorithms: string | undefined;
  /** `MACs` spec as written; undefined = default. */
  readonly macs: string | undefined;
  /** `HostKeyAlgorithms` spec as written; undefined = default. */
  readonly hostKeyAlgorithms: string | undefined;
  /** `PreferredAuthentications` in order; undefined = default. */
  readonly preferredAuthentications: readonly string[] | undefined;
  /** `PasswordAuthentication`. @default true */
  readonly passwordAuthentication: boolean;
  /** `PubkeyAuthentication` (`unbound`/`host-bound` count as true). @default true */
  readonly pubkeyAuthentication: boolean;
  /** `BatchMode`. @default false */
  readonly batchMode: boolean;
  /** Keywords seen and not applied (each keyword once). */
  readonly warnings: readonly SshConfigWarning[];
  /** Config files read, in order of first read. */
  readonly sources: readonly string[];
  /** Fields set by the config (or by the explicit `user`/`port` options) rather than defaulted. */
  readonly explicit: ReadonlySet<SshConfigField>;
}

/** OpenSSH's default identity files, in the order `ssh -G` lists them. */
export const DEFAULT_IDENTITY_FILES: readonly string[] = Object.freeze([
  '~/.ssh/id_rsa',
  '~/.ssh/id_ecdsa',
  '~/.ssh/id_ecdsa_sk',
  '~/.ssh/id_ed25519',
  '~/.ssh/id_ed25519_sk',
  '~/.ssh/id_xmss',
  '~/.ssh/id_dsa',
]);

const READCONF_MAX_DEPTH = 16;
/** Most file inclusions processed in one resolution (both passes together). */
const MAX_FILE_READS = 2048;
const MAX_IDENTITY_FILES = 100;
const MAX_HOSTS_FILES = 16;
const NI_MAXHOST = 1025;
const SYSTEM_CONFIG = '/etc/ssh/ssh_config';
const SYSTEM_DIR = '/etc/ssh';

type Strict = 'yes' | 'no' | 'ask' | 'accept-new';

interface RawState {
  hostname: string | undefined;
  user: string | undefined;
  port: number | undefined;
  identityFiles: string[];
  identitiesOnly: boolean | undefined;
  identityAgent: string | undefined;
  proxyJump: string | undefined;
  proxyCommand: string | undefined;
  serverAliveInterval: number | undefined;
  serverAliveCountMax: number | undefined;
  connectTimeout: number | undefined;
  strict: Strict | undefined;
  userKnownHostsFiles: string[] | undefined;
  globalKnownHostsFiles: string[] | undefined;
  hashKnownHosts: boolean | undefined;
  localForwards: RawForward[];
  remoteForwards: RawForward[];
  exitOnForwardFailure: boolean | undefined;
  forwardAgent: boolean | undefined;
  forwardAgentPath: string | undefined;
  compression: boolean | undefined;
  ciphers: string | undefined;
  kexAlgorithms: string | undefined;
  macs: string | undefined;
  hostKeyAlgorithms: string | undefined;
  preferredAuthentications: string | undefined;
  passwordAuthentication: boolean | undefined;
  pubkeyAuthentication: boolean | undefined;
  batchMode: boolean | undefined;
  localCommand: string | undefined;
  knownHostsCommand: string | undefined;
  permitLocalCommand: boolean | undefined;
  controlMaster: string | undefined;
}

function emptyState(): RawState {
  return {
    hostname: undefined,
    user: undefined,
    port: undefined,
    identityFiles: [],
    identitiesOnly: undefined,
    identityAgent: undefined,
    proxyJump: undefined,
    proxyCommand: undefined,
    serverAliveInterval: undefined,
    serverAliveCountMax: undefined,
    connectTimeout: undefined,
    strict: undefined,
    userKnownHostsFiles: undefined,
    globalKnownHostsFiles: undefined,
    hashKnownHosts: undefined,
    localForwards: [],
    remoteForwards: [],
    exitOnForwardFailure: undefined,
    forwardAgent: undefined,
    forwardAgentPath: undefined,
    compression: undefined,
    ciphers: undefined,
    kexAlgorithms: undefined,
    macs: undefined,
    hostKeyAlgorithms: undefined,
    preferredAuthentications: undefined,
    passwordAuthentication: undefined,
    pubkeyAuthentication: undefined,
    batchMode: undefined,
    localCommand: undefined,
    knownHostsCommand: undefined,
    permitLocalCommand: undefined,
    controlMaster: undefined,
  };
}

/** Canonical spelling of the keywords we read, for messages (a Map: no prototype keys). */
const KEYWORDS: ReadonlyMap<string, string> = new Map(
  [
    'Host', 'Match', 'Include', 'HostName', 'Port', 'User', 'IdentityFile', 'IdentitiesOnly', 'IdentityAgent',
    'ProxyJump', 'ProxyCommand', 'ServerAliveInterval', 'ServerAliveCountMax', 'ConnectTimeout',
    'StrictHostKeyChecking', 'UserKnownHostsFile', 'GlobalKnownHostsFile', 'HashKnownHosts', 'LocalForward',
    'RemoteForward', 'DynamicForward', 'ExitOnForwardFailure', 'ForwardAgent', 'Compression', 'Ciphers',
    'KexAlgorithms', 'MACs', 'HostKeyAlgorithms', 'PreferredAuthentications', 'PasswordAuthentication',
    'PubkeyAuthentication', 'BatchMode', 'LocalCommand', 'KnownHostsCommand', 'PermitLocalCommand', 'ControlMaster',
  ].map((k) => [k.toLowerCase(), k] as const),
);

/** Match attributes of newer OpenSSH releases: treated as not matching, with a warning. */
const NEWER_MATCH_ATTRIBUTES = new Set(['localnetwork', 'tagged', 'version', 'sessiontype', 'command', 'localport', 'rdomain']);

interface Flags {
  /** SSHCONF_USERCONF: relative Includes resolve against ~/.ssh, `~` allowed. */
  readonly user: boolean;
  /** SSHCONF_NEVERMATCH: included from an inactive block. */
  readonly neverMatch: boolean;
}

interface Ctx {
  readonly alias: string;
  /** the host Host lines match: the alias in the first pass, the final host name in the final pass */
  hostArg: string;
  finalPass: boolean;
  wantFinal: boolean;
  readonly st: RawState;
  readonly localUser: string;
  readonly homeDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly warnings: Map<string, string>;
  readonly sources: string[];
  readonly cache: Map<string, ConfigLine[] | undefined>;
  reads: number;
}

interface Where {
  readonly file: string;
  readonly line: number;
  readonly keyword: string;
}

function fail(w: Where, message: string, cause?: unknown): never {
  const field = KEYWORDS.get(w.keyword) ?? w.keyword;
  throw new SshConfigError(`${w.file} line ${w.line}: ${field}: ${message}`, cause === undefined ? { field } : { field, cause });
}

function warn(ctx: Ctx, keyword: string, message: string): void {
  if (!ctx.warnings.has(keyword)) ctx.warnings.set(keyword, message);
}

/** OpenSSH `valid_hostname` (ssh.c): no leading `-`, no shell metacharacters, spaces or control characters. */
function isValidHostname(s: string): boolean {
  if (s === '' || s.startsWith('-')) return false;
  return !/['`"$\\;&<>|(){}\s]/.test(s) && !hasControlChar(s);
}

/** OpenSSH `valid_ruser` (ssh.c). */
function isValidRuser(s: string): boolean {
  if (s === '') return false;
  if (/['`";&<>|(){}]/.test(s)) return false;
  if (/\s-/.test(s)) return false;
  if (s.endsWith('\\')) return false;
  return true;
}

const FLAG_VALUES: ReadonlyMap<string, boolean> = new Map([
  ['yes', true],
  ['true', true],
  ['no', false],
  ['false', false],
]);

function oneArg(w: Where, args: readonly string[]): string {
  if (args.length === 0 || args[0] === '') fail(w, 'missing argument');
  if (args.length > 1) fail(w, `extra arguments at end of line: "${args.slice(1).join(' ')}"`);
  return args[0]!;
}

function parseFlag(w: Where, args: readonly string[]): boolean {
  const v = oneArg(w, args);
  const f = FLAG_VALUES.get(v.toLowerCase());
  if (f === undefined) fail(w, `invalid value "${v}"; accepted: yes, no`);
  return f;
}

/** OpenSSH `convtime` (misc.c): `<n>[s|m|h|d|w]...`, in seconds. */
export function convtime(s: string): number | undefined {
  if (s === '') return undefined;
  const mult: ReadonlyMap<string, number> = new Map([
    ['', 1], ['s', 1], ['m', 60], ['h', 3600], ['d', 86400], ['w', 604800],
  ]);
  const re = /([0-9]+)([smhdwSMHDW]?)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (m === null) return undefined;
    const n = Number(m[1]);
    const k = mult.get((m[2] ?? '').toLowerCase());
    if (k === undefined || !Number.isSafeInteger(n) || n > 0x7fffffff / k) return undefined;
    total += n * k;
    if (total > 0x7fffffff) return undefined;
    pos = re.lastIndex;
  }
  return total;
}

function parseTime(w: Where, args: readonly string[]): number {
  const v = oneArg(w, args);
  const t = convtime(v);
  if (t === undefined) fail(w, `invalid time value "${v}"; accepted: seconds, or a sequence like 1m30s (units s m h d w)`);
  return t;
}

function parseInt32(w: Where, args: readonly string[]): number {
  const v = oneArg(w, args);
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) > 0x7fffffff) fail(w, `invalid integer "${v}"; accepted: 0..2147483647`);
  return Number(v);
}

function checkAgentPath(ctx: Ctx, w: Where, v: string): void {
  try {
    dollarExpand(v, ctx.env, KEYWORDS.get(w.keyword) ?? w.keyword);
  } catch (err) {
    fail(w, `invalid environment expansion in "${v}"`, err);
  }
  if (v.startsWith('$') && !v.startsWith('${') && !isValidEnvName(v.slice(1))) {
    fail(w, `invalid environment variable name "${v}"`);
  }
}

export { parseJumpHop, type JumpHop } from './ssh-config/jump-spec.js';

function handleForward(ctx: Ctx, w: Where, args: readonly string[], active: boolean): void {
  const remote = w.keyword === 'remoteforward';
  let dynamic = w.keyword === 'dynamicforward';
  const a = args[0];
  if (a === undefined || a === '') fail(w, 'missing port argument');
  let spec = a;
  if (!dynamic) {
    const b = args[1];
    if (b === undefined || b === '') {
      if (remote) dynamic = true;
      else fail(w, 'missing target argument; accepted: [bind_address:]port host:hostport, or socket paths');
    } else {
      spec = `${a}:${b}`;
    }
  }
  const used = dynamic ? 1 : 2;
  if (args.length > used) fail(w, `extra arguments at end of line: "${args.slice(used).join(' ')}"`);
  let expanded: string;
  try {
    expanded = dollarExpand(spec, ctx.env, KEYWORDS.get(w.keyword) ?? w.keyword);
  } catch (err) {
    fail(w, 'bad forwarding specification', err);
  }
  const fwd = parseForwardSpec(expanded, dynamic, remote);
  if (fwd === undefined) {
    fail(
      w,
      `bad forwarding specification "${args.join(' ')}"; accepted: ${
        w.keyword === 'dynamicforward' ? '[bind_address:]port' : '[bind_address:]port host:hostport (IPv6 in [brackets]), or socket paths'
      }`,
    );
  }
  if (!active) return;
  const list = remote ? ctx.st.remoteForwards : ctx.st.localForwards;
  if (!list.some((f) => forwardEquals(f, fwd))) list.push(fwd);
}

/** Evaluates a Match line (OpenSSH `match_cfg_line`). */
function evalMatch(ctx: Ctx, w: Where, args: readonly string[]): boolean {
  const st = ctx.st;
  let host: string;
  if (ctx.finalPass) host = st.hostname ?? ctx.hostArg;
  else if (st.hostname !== undefined) host = percentExpand(st.hostname, new Map([['h', ctx.hostArg]]), 'HostName');
  else host = ctx.hostArg;
  const ruser = st.user ?? ctx.localUser;
  let result = true;
  let attributes = 0;
  let i = 0;
  while (i < args.length) {
    const oattr = args[i++]!;
    if (oattr.startsWith('#')) break;
    const negate = oattr.startsWith('!');
    const attr = (negate ? oattr.slice(1) : oattr).toLowerCase();
    if (attr === 'all') {
      const next = args[i];
      if (attributes > 1 || (next !== undefined && next !== '' && !next.startsWith('#'))) {
        fail(w, `'${oattr}' cannot be combined with other Match attributes`);
      }
      if (result) result = !negate;
      return result;
    }
    attributes++;
    if (attr === 'canonical' || attr === 'final') {
      if (attr === 'final') ctx.wantFinal = true;
      if (ctx.finalPass === negate) result = false;
      continue;
    }
    const arg = args[i++];
    if (arg === undefined || arg === '' || arg.startsWith('#')) fail(w, `missing Match criteria for ${attr}`);
    let r: boolean;
    switch (attr) {
      case 'host':
        r = matchPatternList(host.toLowerCase(), arg, true) === 1;
        break;
      case 'originalhost':
        r = matchPatternList(ctx.alias.toLowerCase(), arg, true) === 1;
        break;
      case 'user':
        r = matchPatternList(ruser, arg, false) === 1;
        break;
      case 'localuser':
        r = matchPatternList(ctx.localUser, arg, false) === 1;
        break;
      case 'exec':
        warn(ctx, 'Match exec', `"Match exec" is never executed by ssh-tether; the block is treated as not matching (${w.file} line ${w.line})`);
        result = false;
        continue;
      default:
        if (NEWER_MATCH_ATTRIBUTES.has(attr)) {
          warn(ctx, `Match ${attr}`, `"Match ${attr}" is not supported; the block is treated as not matching (${w.file} line ${w.line})`);
          result = false;
          continue;
        }
        fail(w, `unsupported Match attribute "${oattr}"; accepted: all, canonical, final, exec, host, originalhost, user, localuser`);
    }
    if (r === negate) result = false;
  }
  if (attributes === 0) fail(w, 'one or more attributes required for Match');
  return result;
}

async function processLines(
  ctx: Ctx,
  file: string,
  lines: readonly ConfigLine[],
  flags: Flags,
  active: { v: boolean },
  depth: number,
  stack: readonly string[],
): Promise<void> {
  const st = ctx.st;
  for (const l of lines) {
    const w: Where = { file, line: l.line, keyword: l.keyword };
    const args = l.args;
    if (args.length === 0 || (args.length === 1 && args[0] === '' && l.keyword !== 'host')) {
      fail(w, 'no argument after keyword');
    }
    const on = active.v;
    switch (l.keyword) {
      case 'host': {
        active.v = false;
        for (const arg of args) {
          if (arg === '') fail(w, 'empty argument');
          if (flags.neverMatch) break;
          const negated = arg.startsWith('!');
          if (matchPattern(ctx.hostArg, negated ? arg.slice(1) : arg)) {
            if (negated) {
              active.v = false;
              break;
            }
            active.v = true;
          }
        }
        break;
      }
      case 'match': {
        const r = evalMatch(ctx, w, args);
        active.v = flags.neverMatch ? false : r;
        break;
      }
      case 'include':
        await includeFiles(ctx, w, args, flags, active, depth, stack);
        break;
      case 'hostname': {
        const v = oneArg(w, args);
        if (on && st.hostname === undefined) st.hostname = v;
        break;
      }
      case 'user': {
        const v = oneArg(w, args);
        if (on && st.user === undefined) st.user = v;
        break;
      }
      case 'port': {
        const v = oneArg(w, args);
        const p = a2port(v);
        if (p <= 0) fail(w, `bad port "${v}"; accepted: 1..65535`);
        if (on && st.port === undefined) st.port = p;
        break;
      }
      case 'identityfile': {
        const v = oneArg(w, args);
        if (on) {
          if (!st.identityFiles.includes(v)) {
            if (st.identityFiles.length >= MAX_IDENTITY_FILES) fail(w, `too many identity files (max ${MAX_IDENTITY_FILES})`);
            st.identityFiles.push(v);
          }
        }
        break;
      }
      case 'identitiesonly': {
        const v = parseFlag(w, args);
        if (on && st.identitiesOnly === undefined) st.identitiesOnly = v;
        break;
      }
      case 'identityagent': {
        const v = oneArg(w, args);
        checkAgentPath(ctx, w, v);
        if (on && st.identityAgent === undefined) st.identityAgent = v;
        break;
      }
      case 'proxyjump': {
        const v = oneArg(w, args);
        const hops = splitJumpList(v);
        if (hops === undefined) fail(w, `invalid ProxyJump "${v}"; accepted: none, or [user@]host[:port][,...] or ssh:// URIs`);
        if (on && st.proxyJump === undefined && st.proxyCommand === undefined) {
          st.proxyJump = v;
          if (hops.length > 0) st.proxyCommand = 'none';
        }
        break;
      }
      case 'proxycommand': {
        const v = args.join(' ');
        if (on && st.proxyCommand === undefined) st.proxyCommand = v;
        break;
      }
      case 'serveraliveinterval': {
        const v = parseTime(w, args);
        if (on && st.serverAliveInterval === undefined) st.serverAliveInterval = v;
        break;
      }
      case 'connecttimeout': {
        const v = parseTime(w, args);
        if (on && st.connectTimeout === undefined) st.connectTimeout = v;
        break;
      }
      case 'serveralivecountmax': {
        const v = parseInt32(w, args);
        if (on && st.serverAliveCountMax === undefined) st.serverAliveCountMax = v;
        break;
      }
      case 'stricthostkeychecking': {
        const v = oneArg(w, args).toLowerCase();
        const m: ReadonlyMap<string, Strict> = new Map([
          ['yes', 'yes'], ['true', 'yes'], ['no', 'no'], ['false', 'no'], ['off', 'no'], ['ask', 'ask'], ['accept-new', 'accept-new'],
        ]);
        const s = m.get(v);
        if (s === undefined) fail(w, `invalid value "${args[0]}"; accepted: yes, no, ask, accept-new, off`);
        if (on && st.strict === undefined) st.strict = s;
        break;
      }
      case 'userknownhostsfile':
      case 'globalknownhostsfile': {
        if (args.some((a) => a === '')) fail(w, 'empty argument');
        if (args.length > MAX_HOSTS_FILES) fail(w, `too many known hosts files (max ${MAX_HOSTS_FILES})`);
        if (on) {
          if (l.keyword === 'userknownhostsfile' && st.userKnownHostsFiles === undefined) st.userKnownHostsFiles = [...args];
          if (l.keyword === 'globalknownhostsfile' && st.globalKnownHostsFiles === undefined) st.globalKnownHostsFiles = [...args];
        }
        break;
      }
      case 'hashknownhosts': {
        const v = parseFlag(w, args);
        if (on && st.hashKnownHosts === undefined) st.hashKnownHosts = v;
        break;
      }
      case 'localforward':
      case 'remoteforward':
      case 'dynamicforward':
        handleForward(ctx, w, args, on);
        break;
      case 'exitonforwardfailure': {
        const v = parseFlag(w, args);
        if (on && st.exitOnForwardFailure === undefined) st.exitOnForwardFailure = v;
        break;
      }
      case 'forwardagent': {
        const v = oneArg(w, args);
        const f = FLAG_VALUES.get(v.toLowerCase());
        if (f !== undefined) {
          if (on && st.forwardAgent === undefined) st.forwardAgent = f;
          break;
        }
        if (on && st.forwardAgent === undefined) st.forwardAgent = true;
        checkAgentPath(ctx, w, v);
        if (on && st.forwardAgentPath === undefined) st.forwardAgentPath = v;
        break;
      }
      case 'compression': {
        const v = oneArg(w, args).toLowerCase();
        if (v !== 'yes' && v !== 'no') fail(w, `invalid value "${args[0]}"; accepted: yes, no`);
        if (on && st.compression === undefined) st.compression = v === 'yes';
        break;
      }
      case 'ciphers':
      case 'kexalgorithms':
      case 'macs':
      case 'hostkeyalgorithms': {
        const v = oneArg(w, args);
        const body = /^[+^-]/.test(v) ? v.slice(1) : v;
        if (body === '' || body.split(',').some((n) => n === '' || !/^[A-Za-z0-9@._*?+-]+$/.test(n))) {
          fail(w, `bad algorithm specification "${v}"; accepted: [+-^]name[,name...]`);
        }
        if (on) {
          const k = l.keyword === 'ciphers' ? 'ciphers' : l.keyword === 'macs' ? 'macs' : l.keyword === 'kexalgorithms' ? 'kexAlgorithms' : 'hostKeyAlgorithms';
          if (st[k] === undefined) st[k] = v;
        }
        break;
      }
      case 'preferredauthentications': {
        const v = oneArg(w, args);
        if (v.split(',').some((m) => m === '')) fail(w, `bad method list "${v}"; accepted: method[,method...]`);
        if (on && st.preferredAuthentications === undefined) st.preferredAuthentications = v;
        break;
      }
      case 'passwordauthentication': {
        const v = parseFlag(w, args);
        if (on && st.passwordAuthentication === undefined) st.passwordAuthentication = v;
        break;
      }
      case 'pubkeyauthentication': {
        const v = oneArg(w, args).toLowerCase();
        const m: ReadonlyMap<string, boolean> = new Map([
          ['yes', true], ['true', true], ['unbound', true], ['host-bound', true], ['no', false], ['false', false],
        ]);
        const b = m.get(v);
        if (b === undefined) fail(w, `invalid value "${args[0]}"; accepted: yes, no, unbound, host-bound`);
        if (on && st.pubkeyAuthentication === undefined) st.pubkeyAuthentication = b;
        break;
      }
      case 'batchmode': {
        const v = parseFlag(w, args);
        if (on && st.batchMode === undefined) st.batchMode = v;
        break;
      }
      case 'localcommand': {
        const v = args.join(' ');
        if (on && st.localCommand === undefined) st.localCommand = v;
        break;
      }
      case 'knownhostscommand': {
        const v = args.join(' ');
        if (on && st.knownHostsCommand === undefined) st.knownHostsCommand = v;
        break;
      }
      case 'permitlocalcommand': {
        const v = parseFlag(w, args);
        if (on && st.permitLocalCommand === undefined) st.permitLocalCommand = v;
        break;
      }
      case 'controlmaster': {
        const v = oneArg(w, args).toLowerCase();
        if (!['yes', 'no', 'true', 'false', 'ask', 'auto', 'autoask'].includes(v)) {
          fail(w, `invalid value "${args[0]}"; accepted: yes, no, ask, auto, autoask`);
        }
        if (on && st.controlMaster === undefined) st.controlMaster = v;
        break;
      }
      default:
        // Keywords ssh-tether does not use are ignored.
        break;
    }
  }
}

async function includeFiles(
  ctx: Ctx,
  w: Where,
  args: readonly string[],
  flags: Flags,
  active: { v: boolean },
  depth: number,
  stack: readonly string[],
): Promise<void> {
  for (const arg of args) {
    if (arg === '') fail(w, 'empty argument');
    if (arg.startsWith('~') && !flags.user) fail(w, `bad include path "${arg}": "~" is not allowed in system configs`);
    let p = arg;
    if (!path.isAbsolute(p) && !p.startsWith('~')) p = flags.user ? `~/.ssh/${p}` : `${SYSTEM_DIR}/${p}`;
    p = tildeExpand(p, ctx.homeDir, ctx.localUser, 'Include');
    const files = await globFiles(path.resolve(p));
    const oactive = active.v;
    for (const f of files) {
      if (depth + 1 > READCONF_MAX_DEPTH) {
        fail(w, `too many recursive configuration includes (max depth ${READCONF_MAX_DEPTH}) at ${f}`);
      }
      if (stack.includes(f)) fail(w, `include loop: ${[...stack, f].join(' -> ')}`);
      await processFile(ctx, f, { user: flags.user, neverMatch: flags.neverMatch || !oactive }, true, active, depth + 1, stack);
      // don't let Match in includes clobber the containing file's Match state
      active.v = oactive;
    }
  }
}

async function processFile(
  ctx: Ctx,
  file: string,
  flags: Flags,
  checkPerm: boolean,
  active: { v: boolean },
  depth: number,
  stack: readonly string[],
): Promise<boolean> {
  let lines: ConfigLine[] | undefined;
  // Bounds the work of Include fan-out (the same files included many times over).
  if (++ctx.reads > MAX_FILE_READS) {
    throw new SshConfigError(`ssh_config: more than ${MAX_FILE_READS} file inclusions (Include fan-out too large)`, {
      field: 'sshConfig',
    });
  }
  if (ctx.cache.has(file)) {
    lines = ctx.cache.get(file);
  } else {
    const text = await readConfigFile(file, checkPerm);
    lines = text === undefined ? undefined : parseConfigText(text, file);
    ctx.cache.set(file, lines);
    if (lines !== undefined && !ctx.sources.includes(file)) ctx.sources.push(file);
  }
  if (lines === undefined) return false;
  await processLines(ctx, file, lines, flags, active, depth, [...stack, file]);
  return true;
}

interface TopFile {
  readonly file: string;
  readonly user: boolean;
  readonly required: boolean;
  readonly checkPerm: boolean;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

const sealedSets = new WeakSet<object>();

/** A Set whose mutators throw after construction (Object.freeze does not protect a Set). */
class FrozenSet<T> extends Set<T> {
  constructor(items: Iterable<T>) {
    super(items);
    sealedSets.add(this);
  }
  override add(v: T): this {
    if (sealedSets.has(this)) throw new TypeError('ResolvedSshConfig.explicit is read-only');
    return super.add(v);
  }
  override delete(_v: T): boolean {
    throw new TypeError('ResolvedSshConfig.explicit is read-only');
  }
  override clear(): void {
    throw new TypeError('ResolvedSshConfig.explicit is read-only');
  }
}

function validateOptions(alias: unknown, options: SshConfigResolveOptions): void {
  if (typeof alias !== 'string' || !isValidHostname(alias) || alias.length >= NI_MAXHOST) {
    throw new SshConfigError(
      `host: invalid host alias ${JSON.stringify(String(alias)).slice(0, 80)}; accepted: a non-empty name without a leading "-", whitespace, control characters or any of '\`"$\\;&<>|(){}`,
      { field: 'host' },
    );
  }
  if (alias.includes('@')) {
    throw new SshConfigError(`host: "${alias}" contains "@"; pass the user name in the user option`, { field: 'host' });
  }
  if (options.user !== undefined && (typeof options.user !== 'string' || !isValidRuser(options.user))) {
    throw new SshConfigError(
      'user: invalid user name; accepted: a non-empty name without any of \'`";&<>|(){}, a "-" after whitespace, or a trailing "\\"',
      { field: 'user' },
    );
  }
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535)) {
    throw new SshConfigError(`port: invalid port ${String(options.port)}; accepted: an integer 1..65535`, { field: 'port' });
  }
  for (const k of ['localUser', 'homeDir'] as const) {
    const v = options[k];
    if (v !== undefined && (typeof v !== 'string' || v === '' || v.includes('\0'))) {
      throw new SshConfigError(`${k}: must be a non-empty string`, { field: k });
    }
  }
  const sc = options.sshConfig;
  if (
    sc !== undefined &&
    sc !== false &&
    typeof sc !== 'string' &&
    !(Array.isArray(sc) && sc.every((s) => typeof s === 'string'))
  ) {
    throw new SshConfigError('sshConfig: accepted: a path, an array of paths, or false', { field: 'sshConfig' });
  }
  if (typeof sc === 'string' && sc === '') throw new SshConfigError('sshConfig: empty path', { field: 'sshConfig' });
  if (Array.isArray(sc) && sc.some((s) => s === '' || s.includes('\0'))) {
    throw new SshConfigError('sshConfig: empty path or NUL in path', { field: 'sshConfig' });
  }
}

function defaultLocalUser(env: Readonly<Record<string, string | undefined>>): string {
  try {
    return os.userInfo().username;
  } catch {
    return env['USER'] ?? env['LOGNAME'] ?? 'unknown';
  }
}

/**
 * Resolves the settings of one host alias from ssh_config files, as `ssh -G <alias>` does
 * (OpenSSH 9.2 semantics, ssh_config(5)), for the keywords listed on {@link ResolvedSshConfig}.
 *
 * Precedence: the explicit `user`/`port` options, then the first value obtained from the
 * config, then OpenSSH's default. `explicit` lists what was not defaulted. Nothing is executed.
 *
 * @param alias - the host name or alias (as on the ssh command line, without `user@`).
 * @param options - config paths, explicit user/port, local user, home directory, environment.
 * @returns the resolved, deep-frozen settings.
 * @throws SshConfigError `ERR_SSH_CONFIG` with `field`:
 *  - `host` for an alias with shell metacharacters, whitespace, control characters, `@` or a
 *    leading `-` (OpenSSH `valid_hostname`); `user` for an invalid explicit user
 *    (`valid_ruser`); `port`, `localUser`, `homeDir`, `sshConfig` for bad options;
 *  - `sshConfig` when a file cannot be parsed or read, an explicitly named file is missing,
 *    an Include loops or nests deeper than 16, or a file has bad owner/permissions;
 *  - the keyword (e.g. `Port`, `LocalForward`) for an invalid value, with the accepted forms.
 */
export async function resolveSshConfig(alias: string, options: SshConfigResolveOptions = {}): Promise<ResolvedSshConfig> {
  try {
    return await resolve(alias, options);
  } catch (err) {
    if (err instanceof SshConfigError) throw err;
    throw new SshConfigError(`ssh_config resolution failed: ${err instanceof Error ? err.message : String(err)}`, {
      field: 'sshConfig',
      cause: err,
    });
  }
}

async function resolve(alias: string, options: SshConfigResolveOptions): Promise<ResolvedSshConfig> {
  if (typeof options !== 'object' || options === null) {
    throw new SshConfigError('options: must be an object', { field: 'options' });
  }
  validateOptions(alias, options);
  const env = options.env ?? process.env;
  const localUser = options.localUser ?? defaultLocalUser(env);
  const homeDir = options.homeDir ?? os.homedir();

  const top: TopFile[] = [];
  const sc = options.sshConfig;
  if (sc === undefined) {
    top.push({ file: tildeExpand('~/.ssh/config', homeDir, localUser, 'sshConfig'), user: true, required: false, checkPerm: true });
    top.push({ file: SYSTEM_CONFIG, user: false, required: false, checkPerm: false });
  } else if (sc !== false) {
    for (const f of typeof sc === 'string' ? [sc] : sc) {
      const abs = path.resolve(tildeExpand(f, homeDir, localUser, 'sshConfig'));
      top.push({ file: abs, user: abs !== SYSTEM_CONFIG, required: true, checkPerm: false });
    }
  }

  const st = emptyState();
  if (options.user !== undefined) st.user = options.user;
  if (options.port !== undefined) st.port = options.port;
  const ctx: Ctx = {
    alias,
    hostArg: alias,
    finalPass: false,
    wantFinal: false,
    st,
    localUser,
    homeDir,
    env,
    warnings: new Map(),
    sources: [],
    cache: new Map(),
    reads: 0,
  };

  const pass = async (): Promise<void> => {
    for (const t of top) {
      const found = await processFile(ctx, t.file, { user: t.user, neverMatch: false }, t.checkPerm, { v: true }, 0, []);
      if (!found && t.required && !ctx.finalPass) {
        throw new SshConfigError(`sshConfig: cannot open config file ${t.file}: no such file`, { field: 'sshConfig' });
      }
    }
  };
  await pass();

  // ssh.c: expand %h in HostName, lowercase unless an address.
  let host = st.hostname !== undefined ? percentExpand(st.hostname, new Map([['h', alias]]), 'HostName') : alias;
  if (isIP(host) === 0) host = host.toLowerCase();
  if (ctx.wantFinal) {
    st.hostname = host;
    ctx.hostArg = host;
    ctx.finalPass = true;
    await pass();
  }
  if (!isValidConfigHostname(host)) {
    throw new SshConfigError(`HostName: "${host}" contains whitespace or control characters`, { field: 'HostName' });
  }

  const explicit = new Set<SshConfigField>();
  const mark = (f: SshConfigField, set: boolean): void => {
    if (set) explicit.add(f);
  };
  const port = st.port ?? 22;
  const user = st.user ?? localUser;
  mark('hostName', st.hostname !== undefined);
  mark('port', st.port !== undefined);
  mark('user', st.user !== undefined);

  // proxy settings
  const proxyJump = st.proxyJump !== undefined && st.proxyJump.toLowerCase() !== 'none' ? st.proxyJump.split(',') : [];
  mark('proxyJump', st.proxyJump !== undefined);
  if (st.proxyCommand !== undefined && st.proxyCommand.toLowerCase() !== 'none') {
    warn(ctx, 'ProxyCommand', 'ProxyCommand is not supported and was ignored (use ProxyJump)');
  }
  if (st.localCommand !== undefined) warn(ctx, 'LocalCommand', 'LocalCommand is never run by ssh-tether');
  if (st.knownHostsCommand !== undefined && st.knownHostsCommand.toLowerCase() !== 'none') {
    warn(ctx, 'KnownHostsCommand', 'KnownHostsCommand is never run by ssh-tether');
  }
  if (st.permitLocalCommand === true) warn(ctx, 'PermitLocalCommand', 'PermitLocalCommand yes is ignored: local commands are never run');
  if (st.controlMaster !== undefined && st.controlMaster !== 'no' && st.controlMaster !== 'false') {
    warn(ctx, 'ControlMaster', `ControlMaster ${st.controlMaster} is not supported (connection sharing is not implemented); ignored`);
  }

  // tokens (ssh.c cinfo, default_client_percent_expand)
  const thisHost = os.hostname();
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  const tokens: TokenMap = new Map([
    ['C', createHash('sha1').update(`${thisHost}${host}${port}${user}`).digest('hex')],
    ['L', thisHost.split('.')[0] ?? thisHost],
    ['i', String(uid)],
    ['k', alias],
    ['l', thisHost],
    ['n', alias],
    ['p', String(port)],
    ['d', homeDir],
    ['h', host],
    ['r', user],
    ['u', localUser],
  ]);
  const expandPath = (v: string, field: string): string =>
    percentExpand(dollarExpand(tildeExpand(v, homeDir, localUser, field), env, field), tokens, field);

  const identityFiles = (st.identityFiles.length > 0 ? st.identityFiles : DEFAULT_IDENTITY_FILES)
    .filter((f) => f.toLowerCase() !== 'none')
    .map((f) => expandPath(f, 'IdentityFile'));
  mark('identityFiles', st.identityFiles.length > 0);

  const agentFrom = (v: string, field: string): string | undefined => {
    if (v.toLowerCase() === 'none') return undefined;
    if (v === 'SSH_AUTH_SOCK') return env['SSH_AUTH_SOCK'] || undefined;
    if (v.startsWith('$') && !v.startsWith('${')) return env[v.slice(1)] || undefined;
    return expandPath(v, field);
  };
  const identityAgent = st.identityAgent !== undefined ? agentFrom(st.identityAgent, 'IdentityAgent') : env['SSH_AUTH_SOCK'] || undefined;
  mark('identityAgent', st.identityAgent !== undefined);
  const forwardAgentSocket = st.forwardAgentPath !== undefined ? agentFrom(st.forwardAgentPath, 'ForwardAgent') : undefined;

  const khList = (list: string[] | undefined, dflt: readonly string[]): readonly string[] => {
    const l = list ?? dflt;
    return l.length === 1 && l[0]!.toLowerCase() === 'none' ? [] : l;
  };
  const userKnownHostsFiles = khList(st.userKnownHostsFiles, ['~/.ssh/known_hosts', '~/.ssh/known_hosts2']).map((f) =>
    expandPath(f, 'UserKnownHostsFile'),
  );
  const globalKnownHostsFiles = khList(st.globalKnownHostsFiles, ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']).map((f) =>
    tildeExpand(f, homeDir, localUser, 'GlobalKnownHostsFile'),
  );
  mark('userKnownHostsFiles', st.userKnownHostsFiles !== undefined);
  mark('globalKnownHostsFiles', st.globalKnownHostsFiles !== undefined);

  const fwdPaths = (f: RawForward, field: string): RawForward => ({
    ...f,
    listenPath: f.listenPath === undefined ? undefined : percentExpand(f.listenPath, tokens, field),
    connectPath: f.connectPath === undefined ? undefined : percentExpand(f.connectPath, tokens, field),
  });
  const localForwards: LocalForwardSpec[] = [];
  const dynamicForwards: DynamicForwardSpec[] = [];
  for (const raw of st.localForwards) {
    const f = fwdPaths(raw, 'LocalForward');
    const connect = toConnect(f);
    if (f.connectHost === 'socks' && f.connectPort === 0) dynamicForwards.push({ listen: toListen(f) });
    else if (connect !== undefined) localForwards.push({ listen: toListen(f), connect });
  }
  const remoteForwards: RemoteForwardSpec[] = st.remoteForwards.map((raw) => {
    const f = fwdPaths(raw, 'RemoteForward');
    return { listen: toListen(f), connect: toConnect(f) };
  });
  mark('localForwards', localForwards.length > 0);
  mark('dynamicForwards', dynamicForwards.length > 0);
  mark('remoteForwards', remoteForwards.length > 0);

  let strictHostKeyChecking: StrictHostKeyCheckingMode = 'yes';
  if (st.strict === 'ask') {
    warn(ctx, 'StrictHostKeyChecking', 'StrictHostKeyChecking ask cannot prompt in a library; applied as yes');
  } else if (st.strict !== undefined) {
    strictHostKeyChecking = st.strict;
  }
  mark('strictHostKeyChecking', st.strict !== undefined);

  const bool = (f: SshConfigField, v: boolean | undefined, dflt: boolean): boolean => {
    mark(f, v !== undefined);
    return v ?? dflt;
  };
  const str = (f: SshConfigField, v: string | undefined): string | undefined => {
    mark(f, v !== undefined);
    return v;
  };
  // readconf.c fill_default_options: BatchMode without ServerAliveInterval probes every 300 s.
  if (st.batchMode === true && st.serverAliveInterval === undefined) st.serverAliveInterval = 300;
  mark('serverAliveIntervalMs', st.serverAliveInterval !== undefined);
  mark('serverAliveCountMax', st.serverAliveCountMax !== undefined);
  mark('connectTimeoutMs', st.connectTimeout !== undefined);
  mark('forwardAgent', st.forwardAgent !== undefined);

  const result: ResolvedSshConfig = {
    alias,
    hostName: host,
    port,
    user,
    identityFiles,
    identitiesOnly: bool('identitiesOnly', st.identitiesOnly, false),
    identityAgent,
    proxyJump,
    serverAliveIntervalMs: (st.serverAliveInterval ?? 0) * 1000,
    serverAliveCountMax: st.serverAliveCountMax ?? 3,
    connectTimeoutMs: st.connectTimeout === undefined ? undefined : st.connectTimeout * 1000,
    strictHostKeyChecking,
    userKnownHostsFiles,
    globalKnownHostsFiles,
    hashKnownHosts: bool('hashKnownHosts', st.hashKnownHosts, false),
    localForwards,
    remoteForwards,
    dynamicForwards,
    exitOnForwardFailure: bool('exitOnForwardFailure', st.exitOnForwardFailure, false),
    forwardAgent: st.forwardAgent ?? false,
    forwardAgentSocket,
    compression: bool('compression', st.compression, false),
    ciphers: str('ciphers', st.ciphers),
    kexAlgorithms: str('kexAlgorithms', st.kexAlgorithms),
    macs: str('macs', st.macs),
    hostKeyAlgorithms: str('hostKeyAlgorithms', st.hostKeyAlgorithms),
    preferredAuthentications: str('preferredAuthentications', st.preferredAuthentications)?.split(','),
    passwordAuthentication: bool('passwordAuthentication', st.passwordAuthentication, true),
    pubkeyAuthentication: bool('pubkeyAuthentication', st.pubkeyAuthentication, true),
    batchMode: bool('batchMode', st.batchMode, false),
    warnings: [...ctx.warnings].map(([keyword, message]) => ({ keyword, message })),
    sources: ctx.sources,
    explicit: new FrozenSet(explicit),
  };
  return deepFreeze(result);
}

function isValidConfigHostname(s: string): boolean {
  return s !== '' && !/\s/.test(s) && !hasControlChar(s);
}

/** `true` when `s` holds an ASCII control character (C `iscntrl`). */
function hasControlChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
