/**
 * Argument parsing of the `ssh-tether` command line, with `node:util` `parseArgs`.
 *
 * @module cli/args
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
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

/** Options every command that connects accepts (as ssh(1) spells them where it has them). */
export const CONNECT_OPTIONS = {
  config: { type: 'string', short: 'F' },
  port: { type: 'string', short: 'p' },
  user: { type: 'string', short: 'l' },
  identity: { type: 'string', short: 'i', multiple: true },
  'known-hosts': { type: 'string', multiple: true },
  'strict-host-key-checking': { type: 'string' },
  'connect-timeout': { type: 'string' },
  'no-agent': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** Help text of {@link CONNECT_OPTIONS}. */
export const CONNECT_HELP = `Connection options (explicit options win over ssh_config, as with ssh):
  -F, --config <file>              ssh_config file to read instead of ~/.ssh/config and
                                   /etc/ssh/ssh_config ("none": read no file)
  -p, --port <port>                port (ssh_config Port)
  -l, --user <user>                login user (ssh_config User); also [user@]host
  -i, --identity <file>            private key file, repeatable (ssh_config IdentityFile)
      --known-hosts <file>         known_hosts file, repeatable (ssh_config UserKnownHostsFile)
      --strict-host-key-checking <yes|accept-new|no>
                                   ssh_config StrictHostKeyChecking (default yes)
      --connect-timeout <ms>       bound on one connect attempt, in ms
      --no-agent                   do not use ssh-agent
  -h, --help                       show this help`;

type ConnectValues = {
  config?: string | undefined;
  port?: string | undefined;
  user?: string | undefined;
  identity?: string[] | undefined;
  'known-hosts'?: string[] | undefined;
  'strict-host-key-checking'?: string | undefined;
  'connect-timeout'?: string | undefined;
  'no-agent'?: boolean | undefined;
};

/** Parses a whole number in `[min, max]`, or throws a {@link UsageError} naming the option. */
export function intArg(value: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${name}: expected a whole number from ${min} to ${max}, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${name}: expected a whole number from ${min} to ${max}, got ${value}`);
  return n;
}

/** Turns the connection flags into client options. */
export function targetOptionsFrom(v: ConnectValues): TargetOptions {
  const o: TargetOptions = {};
  if (v.config !== undefined) o.sshConfig = v.config === 'none' ? false : v.config;
  if (v.port !== undefined) o.port = intArg(v.port, '--port', 1, 65535);
  if (v.user !== undefined) o.username = v.user;
  if (v.identity !== undefined) o.identityFiles = v.identity;
  if (v['known-hosts'] !== undefined) o.knownHostsFiles = v['known-hosts'];
  const s = v['strict-host-key-checking'];
  if (s !== undefined) {
    if (s !== 'yes' && s !== 'accept-new' && s !== 'no') throw new UsageError(`--strict-host-key-checking: expected yes, accept-new or no, got "${s}"`);
    o.strictHostKeyChecking = s;
  }
  if (v['connect-timeout'] !== undefined) o.connectTimeoutMs = intArg(v['connect-timeout'], '--connect-timeout', 1, 3_600_000);
  if (v['no-agent'] === true) o.agent = false;
  return o;
}

/**
 * Runs `parseArgs` and turns its errors into {@link UsageError}s.
 */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
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
