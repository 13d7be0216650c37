/**
 * Argument parsing of the `ssh-tether` command line, as ssh(1) and scp(1) parse theirs.
 *
 * Own parser rather than `node:util` `parseArgs`: ssh stops option parsing at the host (so
 * `exec web1 uname -n` runs `uname -n`), takes short options bundled and with attached values
 * (`-p2222`, `-oUser=me`, `-nv`), and our messages must name our options, not parseArgs' text.
 *
 * @module cli/args
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseForwardSpec, toConnect, toListen } from '../config/ssh-config/forward.js';
import type { DynamicForwardOptions, LocalForwardOptions, RemoteForwardOptions } from '../forward/options.js';
import type { TargetOptions } from '../doctor/effective.js';

/** A command-line usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** One option of a command: `--name`, optionally `-x`; a flag or one that takes a value. */
export interface OptionSpec {
  readonly type: 'boolean' | 'string';
  readonly short?: string;
  readonly multiple?: boolean;
}

/** The options of a command, by long name. */
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Parsed option values: a flag is `true`, a value a string, a repeatable option an array. */
export type OptionValues = Record<string, string | string[] | boolean | undefined>;

/** What {@link parseCommandLine} returns. */
export interface ParsedCommandLine {
  values: OptionValues;
  /** Non-option words (with `stopAtHost`: only the host). */
  positionals: string[];
  /** With `stopAtHost`: every word after the host, untouched (a leading `--` dropped). */
  rest: string[];
}

/**
 * Parses `args` against `specs`. Long options take `--name value` or `--name=value`; short ones
 * bundle (`-nv`) and take attached values (`-p2222`). `--` ends the options. With `stopAtHost`
 * the first non-option word is the host and everything after it is left alone (as ssh); else
 * options and words may be mixed (as the other commands accept them).
 *
 * @throws {UsageError} for an unknown option, a missing value, a value given to a flag.
 */
export function parseCommandLine(args: readonly string[], specs: OptionSpecs, stopAtHost = false): ParsedCommandLine {
  const values: OptionValues = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) if (spec.short !== undefined) byShort.set(spec.short, name);
  const set = (name: string, value: string | true): void => {
    const spec = specs[name];
    if (spec?.multiple === true) {
      const prev = values[name];
      values[name] = [...(Array.isArray(prev) ? prev : []), String(value)];
    } else {
      values[name] = value;
    }
  };
  let i = 0;
  const take = (shown: string): string => {
    const v = args[++i];
    if (v === undefined) throw new UsageError(`option ${shown} needs a value`);
    return v;
  };
  for (; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
      if (spec === undefined) throw new UsageError(`unknown option --${name}`);
      if (spec.type === 'boolean') {
        if (eq >= 0) throw new UsageError(`option --${name} takes no value`);
        set(name, true);
      } else {
        set(name, eq >= 0 ? a.slice(eq + 1) : take(`--${name}`));
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j] ?? '';
        const name = byShort.get(ch);
        const spec = name === undefined ? undefined : specs[name];
        if (name === undefined || spec === undefined) throw new UsageError(`unknown option -${ch}`);
        if (spec.type === 'boolean') {
          set(name, true);
          continue;
        }
        set(name, j + 1 < a.length ? a.slice(j + 1) : take(`-${ch}`));
        break;
      }
      continue;
    }
    positionals.push(a);
    if (stopAtHost) {
      i++;
      break;
    }
  }
  const after = args.slice(i);
  if (stopAtHost) {
    if (positionals.length === 0 && after.length > 0) positionals.push(after.shift() ?? '');
    if (after[0] === '--') after.shift();
    return { values, positionals, rest: after };
  }
  positionals.push(...after);
  return { values, positionals, rest: [] };
}

/** Options every command that connects accepts (as ssh(1) spells them where it has them). */
export const CONNECT_OPTIONS = {
  config: { type: 'string', short: 'F' },
  port: { type: 'string', short: 'p' },
  'port-scp': { type: 'string', short: 'P' },
  user: { type: 'string', short: 'l' },
  identity: { type: 'string', short: 'i', multiple: true },
  jump: { type: 'string', short: 'J' },
  option: { type: 'string', short: 'o', multiple: true },
  'known-hosts': { type: 'string', multiple: true },
  'strict-host-key-checking': { type: 'string' },
  'connect-timeout': { type: 'string' },
  'no-agent': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpecs;

/** Help text of {@link CONNECT_OPTIONS}. */
export const CONNECT_HELP = `Connection options (explicit options win over ssh_config, as with ssh):
  -F, --config <file>              ssh_config file to read instead of ~/.ssh/config and
                                   /etc/ssh/ssh_config ("none": read no file)
  -p, -P, --port <port>            port (ssh_config Port)
  -l, --user <user>                login user (ssh_config User); also [user@]host
  -i, --identity <file>            private key file, repeatable (ssh_config IdentityFile)
  -J, --jump <[user@]host[:port],...>
                                   jump hosts (ssh_config ProxyJump; "none": no jump)
  -o, --option <Keyword=Value>     any ssh_config keyword ssh-tether applies, repeatable,
                                   before the config files (as ssh -o)
      --known-hosts <file>         known_hosts file, repeatable (ssh_config UserKnownHostsFile)
      --strict-host-key-checking <yes|accept-new|no>
                                   ssh_config StrictHostKeyChecking (default yes)
      --connect-timeout <ms>       bound on one connect attempt, in ms
      --no-agent                   do not use ssh-agent
  -h, --help                       show this help`;

/**
 * The ssh_config keywords `-o` accepts: those ssh-tether applies (src/config/ssh-config.ts
 * reads these; Host, Match and Include make no sense on a command line).
 */
export const CLI_CONFIG_KEYWORDS: readonly string[] = Object.freeze([
  'HostName', 'Port', 'User', 'IdentityFile', 'IdentitiesOnly', 'IdentityAgent', 'ProxyJump', 'ProxyCommand',
  'ServerAliveInterval', 'ServerAliveCountMax', 'ConnectTimeout', 'StrictHostKeyChecking', 'UserKnownHostsFile',
  'GlobalKnownHostsFile', 'HashKnownHosts', 'LocalForward', 'RemoteForward', 'DynamicForward', 'ExitOnForwardFailure',
  'ForwardAgent', 'Compression', 'Ciphers', 'KexAlgorithms', 'MACs', 'HostKeyAlgorithms', 'PreferredAuthentications',
  'PasswordAuthentication', 'PubkeyAuthentication', 'BatchMode',
]);

/** Parses a whole number in `[min, max]`, or throws a {@link UsageError} naming the option. */
export function intArg(value: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${name}: expected a whole number from ${min} to ${max}, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${name}: expected a whole number from ${min} to ${max}, got ${value}`);
  return n;
}

/**
 * Checks `-o` values and turns them into ssh_config lines (`Keyword Value`).
 *
 * @throws {UsageError} for a value not of the form `Keyword=Value` / `Keyword Value`, or a
 *   keyword ssh-tether does not apply (the accepted ones are listed).
 */
export function configLinesFromOptions(options: readonly string[]): string[] {
  return options.map((o) => {
    const m = /^\s*([A-Za-z]+)\s*(?:=|\s)\s*(\S.*)$/.exec(o);
    if (!m?.[1] || m[2] === undefined) throw new UsageError(`-o ${o}: expected Keyword=Value`);
    const keyword = CLI_CONFIG_KEYWORDS.find((k) => k.toLowerCase() === m[1]?.toLowerCase());
    if (keyword === undefined) throw new UsageError(`-o ${o}: unknown or unsupported ssh_config keyword "${m[1]}"; accepted: ${CLI_CONFIG_KEYWORDS.join(', ')}`);
    if (/[\r\n]/.test(m[2])) throw new UsageError(`-o ${o}: the value must be on one line`);
    return `${keyword} ${m[2].trimEnd()}`;
  });
}

/** Values of {@link CONNECT_OPTIONS}. */
export type ConnectValues = OptionValues;

function str(v: OptionValues, name: string): string | undefined {
  const x = v[name];
  return typeof x === 'string' ? x : undefined;
}
function list(v: OptionValues, name: string): string[] | undefined {
  const x = v[name];
  return Array.isArray(x) ? x : undefined;
}

/** Connection options for the client, and a cleanup for the `-o` file (call it when done). */
export interface CliTarget {
  options: TargetOptions;
  cleanup: () => void;
}

/**
 * Turns the connection flags into client options. `-o` lines go through the ssh_config
 * machinery: they are written to a private temp file (mode 0600) read before the other config
 * files, so they win as `ssh -o` does (first value wins); `-F none` reads only them.
 *
 * @throws {UsageError} for a bad port, timeout, StrictHostKeyChecking value or `-o` line.
 */
export function targetOptionsFrom(v: ConnectValues, env: { homeDir?: string } = {}): CliTarget {
  const o: TargetOptions = {};
  const config = str(v, 'config');
  const configFiles: string[] | false | undefined = config === undefined ? undefined : config === 'none' ? false : [config];
  const port = str(v, 'port') ?? str(v, 'port-scp');
  if (port !== undefined) o.port = intArg(port, '--port', 1, 65535);
  const user = str(v, 'user');
  if (user !== undefined) o.username = user;
  const identity = list(v, 'identity');
  if (identity !== undefined) o.identityFiles = identity;
  const jump = str(v, 'jump');
  if (jump !== undefined) o.jump = jump === 'none' ? false : jump;
  const kh = list(v, 'known-hosts');
  if (kh !== undefined) o.knownHostsFiles = kh;
  const s = str(v, 'strict-host-key-checking');
  if (s !== undefined) {
    if (s !== 'yes' && s !== 'accept-new' && s !== 'no') throw new UsageError(`--strict-host-key-checking: expected yes, accept-new or no, got "${s}"`);
    o.strictHostKeyChecking = s;
  }
  const ct = str(v, 'connect-timeout');
  if (ct !== undefined) o.connectTimeoutMs = intArg(ct, '--connect-timeout', 1, 3_600_000);
  if (v['no-agent'] === true) o.agent = false;
  let cleanup = (): void => undefined;
  const lines = configLinesFromOptions(list(v, 'option') ?? []);
  if (lines.length > 0) {
    const dir = mkdtempSync(join(tmpdir(), 'ssh-tether-o-'));
    const file = join(dir, 'options.conf');
    writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    cleanup = () => rmSync(dir, { recursive: true, force: true });
    if (configFiles === false) {
      o.sshConfig = [file];
    } else if (configFiles !== undefined) {
      o.sshConfig = [file, ...configFiles];
    } else {
      // The default files, each only when present (a file named in the list must exist).
      const user = join(env.homeDir ?? homedir(), '.ssh', 'config');
      o.sshConfig = [file, ...[user, '/etc/ssh/ssh_config'].filter((f) => existsSync(f))];
    }
  } else if (configFiles !== undefined) {
    o.sshConfig = configFiles === false ? false : (configFiles[0] ?? false);
  }
  return { options: o, cleanup };
}

/** A forward asked for on the command line. */
export type CliForward =
  | { type: 'local'; spec: string; options: LocalForwardOptions }
  | { type: 'remote'; spec: string; options: RemoteForwardOptions }
  | { type: 'dynamic'; spec: string; options: DynamicForwardOptions };

/**
 * Parses `-L [bind_address:]port:host:hostport`, `-R [bind_address:]port:host:hostport` and
 * `-D [bind_address:]port` as ssh(1) does (IPv6 addresses in brackets; OpenSSH `parse_forward`).
 * Unix socket paths are not supported on the command line.
 *
 * @throws {UsageError} naming the flag, the value and the accepted form.
 */
export function parseCliForward(flag: '-L' | '-R' | '-D', spec: string): CliForward {
  const forms = { '-L': '[bind_address:]port:host:hostport', '-R': '[bind_address:]port:host:hostport', '-D': '[bind_address:]port' };
  const raw = parseForwardSpec(spec, flag === '-D', flag === '-R');
  const bad = (why: string): UsageError => new UsageError(`${flag} ${spec}: ${why}; expected ${flag} ${forms[flag]}`);
  if (!raw) throw bad('not a valid forward');
  const listen = toListen(raw);
  if (listen.kind !== 'tcp') throw bad('Unix socket paths are not supported here');
  const bind = listen.bindAddress === undefined || listen.bindAddress === '' ? undefined : listen.bindAddress === '*' ? '0.0.0.0' : listen.bindAddress;
  if (flag === '-D') {
    return { type: 'dynamic', spec, options: { localPort: listen.port, ...(bind !== undefined ? { localHost: bind } : {}) } };
  }
  const connect = toConnect(raw);
  if (!connect || connect.kind !== 'tcp') throw bad('a host:hostport target is required');
  if (flag === '-L') {
    return { type: 'local', spec, options: { localPort: listen.port, ...(bind !== undefined ? { localHost: bind } : {}), remoteHost: connect.host, remotePort: connect.port } };
  }
  return { type: 'remote', spec, options: { remotePort: listen.port, ...(bind !== undefined ? { remoteHost: bind } : {}), localHost: connect.host, localPort: connect.port } };
}
