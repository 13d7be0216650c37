import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { z } from 'zod';
import { SshConfigError } from './errors.js';
import { zodToConfigError } from './internal/validate.js';
import { DEFAULTS, type Ssh2AlgorithmLists } from './defaults.js';
import { parseHopSpec } from './config/ssh-config/jump-spec.js';
import { Secret } from './internal/secret.js';
import type ssh2 from 'ssh2';
import type { Logger } from './internal/logger.js';
import type { ForwardSpecInput } from './forward/options.js';

export { DEFAULTS, type DefaultAlgorithms, type ForwardDefaults } from './defaults.js';

const port = z
  .number({ error: 'expected an integer port from 1 to 65535' })
  .int({ error: 'expected an integer port from 1 to 65535' })
  .min(1, { error: 'expected an integer port from 1 to 65535' })
  .max(65535, { error: 'expected an integer port from 1 to 65535' });
const durationMs = (what: string) =>
  z
    .number({ error: `expected ${what} as a number of milliseconds` })
    .int({ error: `expected ${what} as a whole number of milliseconds` })
    .min(0, { error: `expected ${what} >= 0 milliseconds` });
const nonEmpty = (what: string) => z.string({ error: `expected ${what} as a non-empty string` }).min(1, { error: `expected ${what} as a non-empty string` });
const keyMaterial = z.union([z.string(), z.instanceof(Buffer)], { error: 'expected a string or Buffer holding a private key' });
const algoList = z.array(z.string()).min(1);

const RETRIES_ERROR = 'expected a whole number of retries >= 0, or Infinity';
const reconnectSchema = z.strictObject({
  // zod 4's z.number() refuses Infinity, so it is accepted as its own literal (README documents it).
  retries: z
    .union([z.literal(Infinity), z.number({ error: RETRIES_ERROR }).int({ error: RETRIES_ERROR }).min(0, { error: RETRIES_ERROR })], { error: RETRIES_ERROR })
    .optional(),
  minDelayMs: durationMs('reconnect.minDelayMs').optional(),
  maxDelayMs: durationMs('reconnect.maxDelayMs').optional(),
  factor: z.number({ error: 'expected a backoff factor >= 1' }).min(1, { error: 'expected a backoff factor >= 1' }).optional(),
});

/** The zod schema of {@link SshClientOptions} (strict: unknown keys are rejected). */
export const clientOptionsSchema = z.strictObject({
  host: z.union([nonEmpty('host'), z.array(nonEmpty('a host name or alias'), { error: 'expected a host name, an ssh_config alias, or a non-empty array of them (failover list)' }).min(1, { error: 'expected at least one host in the failover list' })], {
    error: 'expected a host name, an ssh_config alias, or a non-empty array of them (failover list)',
  }),
  port: port.optional(),
  username: nonEmpty('username').optional(),
  privateKey: keyMaterial.optional(),
  passphrase: z
    .union([z.string(), z.custom<PassphraseCallback>((v) => typeof v === 'function')], { error: 'expected a string or a function (key) => passphrase' })
    .optional(),
  identityFiles: z.array(nonEmpty('a file path'), { error: 'expected an array of file paths' }).optional(),
  password: z.string({ error: 'expected a string' }).optional(),
  agent: z.union([nonEmpty('an agent socket path'), z.literal(false)], { error: 'expected an agent socket path or false' }).optional(),
  knownHostsFiles: z.array(nonEmpty('a file path'), { error: 'expected an array of file paths' }).min(1, { error: 'expected at least one known_hosts file' }).optional(),
  globalKnownHostsFiles: z.array(nonEmpty('a file path'), { error: 'expected an array of file paths' }).optional(),
  knownHosts: z.array(z.string({ error: 'expected known_hosts lines as strings' }), { error: 'expected an array of known_hosts lines' }).optional(),
  hostVerifier: z.custom<HostKeyVerifier>((v) => typeof v === 'function', { error: 'expected a function (key, host) => boolean | Promise<boolean>' }).optional(),
  strictHostKeyChecking: z.enum(['yes', 'accept-new', 'no'], { error: "expected 'yes', 'accept-new' or 'no'" }).optional(),
  hashKnownHosts: z.boolean({ error: 'expected a boolean' }).optional(),
  connectTimeoutMs: durationMs('connectTimeoutMs').min(1, { error: 'expected connectTimeoutMs >= 1' }).optional(),
  keepaliveIntervalMs: durationMs('keepaliveIntervalMs').optional(),
  keepaliveCountMax: z.number().int().min(1, { error: 'expected an integer >= 1' }).optional(),
  reconnect: z.union([reconnectSchema, z.literal(false)], { error: 'expected false or { retries, minDelayMs, maxDelayMs, factor }' }).optional(),
  maxSessions: z.number().int().min(1, { error: 'expected an integer >= 1' }).max(10_000).optional(),
  closeTimeoutMs: durationMs('closeTimeoutMs').optional(),
  operationTimeoutMs: durationMs('operationTimeoutMs').optional(),
  idleTimeoutMs: durationMs('idleTimeoutMs').optional(),
  retryFirstConnect: z.boolean({ error: 'expected a boolean' }).optional(),
  failbackIntervalMs: durationMs('failbackIntervalMs').optional(),
  forwardConnectionWaitMs: durationMs('forwardConnectionWaitMs').optional(),
  sftpChannelsPersistMs: durationMs('sftpChannelsPersistMs').max(2 ** 31 - 1, { error: 'expected sftpChannelsPersistMs <= 2147483647 milliseconds' }).optional(),
  sshConfig: z
    .union([nonEmpty('an ssh_config path'), z.array(nonEmpty('an ssh_config path')), z.literal(false)], {
      error: 'expected an ssh_config path, an array of paths, or false',
    })
    .optional(),
  identitiesOnly: z.boolean({ error: 'expected a boolean' }).optional(),
  forwardAgent: z.boolean({ error: 'expected a boolean' }).optional(),
  keyboardInteractive: z.custom<KeyboardInteractiveCallback>((v) => typeof v === 'function', { error: 'expected a function (prompts) => answers' }).optional(),
  jump: z
    .union([z.string(), z.array(nonEmpty('a jump host spec')), z.literal(false)], { error: "expected 'user@host:port,...', an array of host specs, or false" })
    .optional(),
  compression: z.boolean({ error: 'expected a boolean' }).optional(),
  forwards: z.array(z.unknown(), { error: 'expected an array of forward specs ({ type: "local" | "remote" | "dynamic", ... })' }).optional(),
  exitOnForwardFailure: z.boolean({ error: 'expected a boolean' }).optional(),
  logger: z
    .custom<Logger>(
      (v) => typeof v === 'object' && v !== null && ['debug', 'info', 'warn', 'error'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
      { error: 'expected a pino-compatible logger with debug, info, warn and error methods' },
    )
    .optional(),
  debugProtocol: z.boolean({ error: 'expected a boolean' }).optional(),
  jobsDir: z
    .string({ error: "expected a remote directory path (a leading '~/' is the login directory)" })
    .min(1, { error: "expected a remote directory path (a leading '~/' is the login directory)" })
    .refine((s) => !s.includes('\0') && !s.includes('\n'), { error: 'expected no NUL or newline characters' })
    .optional(),
  algorithms: z
    .strictObject({
      kex: algoList.optional(),
      cipher: algoList.optional(),
      serverHostKey: algoList.optional(),
      hmac: algoList.optional(),
      compress: algoList.optional(),
    })
    .optional(),
});

/**
 * Options of {@link SshClient}. Every duration is in milliseconds.
 */
export interface SshClientOptions {
  /**
   * Host name, address or ssh_config alias to connect to. Required. A list is a failover list:
   * each entry resolved through ssh_config on its own and checked against known_hosts under its
   * own name; `connect()` tries them in order; after a lost link the client retries the host it
   * was on, then moves down the list (wrapping round), one host per attempt of the `reconnect`
   * backoff, and emits `failover`. Fatal errors (host key, auth, config) on any entry end the
   * client as with one host: they are never a reason to try the next one.
   */
  host: string | string[];
  /** TCP port. @default 22 */
  port?: number;
  /** Login user. @default the current OS user */
  username?: string;
  /** A private key (PEM or OpenSSH format), tried before `identityFiles`. Kept secret. */
  privateKey?: string | Buffer;
  /**
   * Passphrase for encrypted private keys, or a callback asked once per encrypted key
   * (`{ keyPath }`, `keyPath` is `'privateKey option'` for the inline key). Kept secret.
   */
  passphrase?: string | PassphraseCallback;
  /**
   * Private key files tried in order (ssh_config `IdentityFile`). Files readable or writable by
   * group or others are refused with `ERR_SSH_KEY`, as OpenSSH does.
   * @default {@link DEFAULTS}.identityFiles: those of OpenSSH's default list that exist
   *   (`~/.ssh/id_rsa`, `id_ecdsa`, `id_ecdsa_sk`, `id_ed25519`, `id_ed25519_sk`, `id_xmss`,
   *   `id_dsa`, in that order, as ssh(1)); keys ssh2 cannot use are skipped
   */
  identityFiles?: string[];
  /** Password for `password` authentication. Kept secret. */
  password?: string;
  /** ssh-agent socket path, or `false` for none. @default `process.env.SSH_AUTH_SOCK` */
  agent?: string | false;
  /** User known_hosts files; the first is where `'accept-new'` records new keys. @default `['~/.ssh/known_hosts']` */
  knownHostsFiles?: string[];
  /** Read-only global known_hosts files. @default `['/etc/ssh/ssh_known_hosts']` */
  globalKnownHostsFiles?: string[];
  /**
   * known_hosts lines held in memory (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT": `host,pattern keytype
   * base64`, `[host]:port`, hashed names, `@revoked`), e.g. from a container secret. Checked with
   * the same strict rules as the files (unknown -> `ERR_SSH_HOST_KEY_UNKNOWN`, other key ->
   * `ERR_SSH_HOST_KEY_MISMATCH`, revoked -> `ERR_SSH_HOST_KEY_REVOKED`). When given, the user
   * known_hosts files are not read unless `knownHostsFiles` is also given; global files still are.
   * Applies to jump hosts too. Refused (`ERR_SSH_CONFIG`) with `strictHostKeyChecking: 'no'` (it
   * would make the lines pointless), with `'accept-new'` unless `knownHostsFiles` names the file to
   * record new keys in, and together with `hostVerifier` (give one source of trust).
   */
  knownHosts?: string[];
  /**
   * Decides on the server's host key instead of known_hosts: called once per connection, at the
   * first key exchange, before any authentication packet, with `{ type, fingerprint, blob }`
   * (`type` e.g. `ssh-ed25519`, `fingerprint` `SHA256:...` as `ssh-keygen -l` prints it, `blob`
   * the SSH wire-format public key) and the host as known_hosts names it (`host` or `[host]:port`).
   * Return (or resolve) `true` to trust the key. A re-key on the same connection must present the
   * same key (checked without calling again). `false`, a throw or a rejection refuses the key:
   * `ERR_SSH_HOST_KEY_MISMATCH` when this client trusted another key for the host before, else
   * `ERR_SSH_HOST_KEY_UNKNOWN`. Applies to jump hosts too. Refused (`ERR_SSH_CONFIG`) with
   * `strictHostKeyChecking` `'no'` or `'accept-new'` and with `knownHosts`.
   */
  hostVerifier?: HostKeyVerifier;
  /**
   * ssh_config `StrictHostKeyChecking`: `'yes'` refuses unknown and changed keys; `'accept-new'`
   * records unknown keys and refuses changed ones; `'no'` accepts unknown and changed keys.
   * Revoked keys are always refused. @default 'yes'
   */
  strictHostKeyChecking?: 'yes' | 'accept-new' | 'no';
  /** Record new keys hashed (ssh_config `HashKnownHosts`). @default false */
  hashKnownHosts?: boolean;
  /** Bound on one connect attempt: TCP + handshake + authentication, in ms. @default 20000 */
  connectTimeoutMs?: number;
  /** Probe after this many ms without inbound data (`ServerAliveInterval`); 0 disables. @default 15000 */
  keepaliveIntervalMs?: number;
  /** Unanswered probes before the link is declared dead (`ServerAliveCountMax`). @default 3 */
  keepaliveCountMax?: number;
  /**
   * Reconnect policy after a lost link, or `false` to end in `closed` instead.
   * Delays grow from `minDelayMs` by `factor` up to `maxDelayMs`, with random jitter (x1 to x2, capped):
   * delay n is `minDelayMs * factor^(n-1)` times a random factor in [1, 2), at most `maxDelayMs`,
   * so every delay lies within [`minDelayMs`, `maxDelayMs`] (p-retry's `randomize` formula).
   * @default { retries: Infinity, minDelayMs: 1000, maxDelayMs: 30000, factor: 2 }
   */
  reconnect?: { retries?: number; minDelayMs?: number; maxDelayMs?: number; factor?: number } | false;
  /** Session channels open at once; more wait in FIFO order (sshd_config `MaxSessions`). @default 10 */
  maxSessions?: number;
  /** How long `close()` waits for open channels before ending the connection, in ms. @default 5000 */
  closeTimeoutMs?: number;
  /**
   * Longest an operation (exec, spawn, sftp, forwardRemote, connect while reconnecting...) waits
   * for the link while the client connects or reconnects, in ms; then it rejects with
   * `ERR_SSH_TIMEOUT`. An operation's own `timeoutMs` replaces it. `0` waits forever.
   * @default 120000
   */
  operationTimeoutMs?: number;
  /**
   * Idle persist, as OpenSSH's `ControlPersist`: after this many ms with no session channel open
   * (exec, spawn, SFTP session), no operation waiting for one and no forward listening, the
   * client ends its link and goes to state `'idle'` (see `health().idleSince`). It still accepts
   * every operation: the next one connects again transparently (as a first connect: one attempt,
   * or the reconnect policy with `retryFirstConnect`). Keep-alive probes do not count as use.
   * An open SFTP session (`sftp()` until its `close()`), a running `spawn` and every forward,
   * declared ones included, keep the link. The link ends at the earliest `idleTimeoutMs` after
   * the last use (checked at least once a second while in use). `0` never ends it.
   * @default 0
   */
  idleTimeoutMs?: number;
  /**
   * Apply the `reconnect` policy (backoff, `retries`) to the first connect too, as autossh does:
   * for tunnel keepers that may start before the server is up. Fatal errors (authentication,
   * host key, key file, configuration, a name that does not resolve) are never retried. Same as
   * `connect({ retry: true })` for every connect from `'idle'` (including the implicit connect
   * of the first operation). @default false
   */
  retryFirstConnect?: boolean;
  /**
   * Failback for a failover list (`host: [...]`): while the link is on a lower entry, probe the
   * first entry every this many ms (TCP, key exchange with its host-key check, authentication; no
   * channel), and once it answers, move back at the next moment no operation runs (no session
   * channel open or waited for, no spawned command, no connection carried by a forward): the link
   * on the lower host is ended, the client goes `reconnecting` and connects to the first entry
   * (`failover` event with `failback: true`); forwards are set up again there. Should that connect
   * fail, the usual reconnect walk of the list follows. `0` never moves back. @default 0
   */
  failbackIntervalMs?: number;
  /**
   * Longest a connection accepted by a local or dynamic forward waits for the link while the
   * client reconnects, in ms; then it is closed (a SOCKS client gets reply 0x01). @default 15000
   */
  forwardConnectionWaitMs?: number;
  /**
   * How long the extra SFTP channels of a striped `get`/`put` (`channels`) stay open after it
   * succeeded, in ms, for the next striped transfer on this link, which takes them instead of
   * opening new ones (each open is 4 round trips: ~210 ms on a 50 ms link). `0` closes them when
   * the transfer ends. They hold no file handle; they count against `maxSessions`, and are
   * closed at once when another channel waits for a slot, when the client closes or the link
   * ends. As OpenSSH's `ControlPersist`, for channels. @default 30000
   */
  sftpChannelsPersistMs?: number;
  /**
   * ssh_config file(s) read to resolve `host` as an alias (HostName, Port, User, IdentityFile,
   * ProxyJump, ServerAliveInterval...), like `ssh -F`; `false` reads none. Explicit options win
   * over ssh_config, which wins over the built-in defaults. Resolved on every connect attempt.
   * @default ['~/.ssh/config', '/etc/ssh/ssh_config'] (missing files skipped)
   */
  sshConfig?: string | string[] | false;
  /** Only use the configured identity files, and only agent keys that match one (ssh_config `IdentitiesOnly`). @default false */
  identitiesOnly?: boolean;
  /** Forward the ssh-agent to the server (ssh_config `ForwardAgent`). @default false */
  forwardAgent?: boolean;
  /**
   * Answers keyboard-interactive prompts (RFC 4256). Without it, a `password` answers them.
   */
  keyboardInteractive?: KeyboardInteractiveCallback;
  /**
   * Jump hosts (ssh_config `ProxyJump`, `ssh -J`): `'user@bastion:2222,second'` or an array of
   * specs or aliases, each resolved through ssh_config; `false` disables one set in ssh_config.
   */
  jump?: string | string[] | false;
  /** Request zlib compression (ssh_config `Compression`). @default false */
  compression?: boolean;
  /**
   * Forwards set up on every connect, like ssh_config `LocalForward`, `RemoteForward` and
   * `DynamicForward`: `{ type: 'local' | 'remote' | 'dynamic', ...the options of
   * forwardLocal/forwardRemote/forwardDynamic }`. Validated by the constructor.
   */
  forwards?: ForwardSpecInput[];
  /**
   * OpenSSH `ExitOnForwardFailure`: `connect()` rejects with `ERR_SSH_FORWARD` when a declared
   * forward cannot be set up, leaving nothing half-open. @default true
   */
  exitOnForwardFailure?: boolean;
  /**
   * A pino-compatible logger (`debug/info/warn/error(obj, msg)`). Secrets are redacted from
   * everything it receives. @default silent
   */
  logger?: Logger;
  /** Route ssh2's protocol debug output to `logger.debug` (verbose). @default false */
  debugProtocol?: boolean;
  /**
   * Where durable jobs (`ssh.jobs`) keep their directories on the server; a leading `~/` is the
   * login directory. @default '~/.ssh-tether/jobs'
   */
  jobsDir?: string;
  /** Algorithm lists passed to ssh2 (`kex`, `cipher`, `serverHostKey`, `hmac`, `compress`). @default ssh2's secure defaults */
  algorithms?: { kex?: string[]; cipher?: string[]; serverHostKey?: string[]; hmac?: string[]; compress?: string[] };
}

/** The server host key as {@link SshClientOptions.hostVerifier} receives it. */
export interface HostKeyInfo {
  /** Key type from the blob, e.g. `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`. */
  readonly type: string;
  /** `SHA256:` + unpadded base64 of the SHA-256 of the blob, as `ssh-keygen -l` prints it. */
  readonly fingerprint: string;
  /** The SSH wire-format public key blob (RFC 4253 section 6.6), a copy. */
  readonly blob: Buffer;
}

/** Decides whether to trust a server host key (see {@link SshClientOptions.hostVerifier}). */
export type HostKeyVerifier = (key: HostKeyInfo, host: string) => boolean | Promise<boolean>;

/** Asked for the passphrase of an encrypted private key; called at most once per key and attempt. */
export type PassphraseCallback = (info: { keyPath: string }) => string | Promise<string>;

/** Answers keyboard-interactive prompts (RFC 4256 section 3.2). Return one answer per prompt. */
export type KeyboardInteractiveCallback = (
  prompts: ReadonlyArray<{ prompt: string; echo: boolean }>,
  info: { name: string; instructions: string },
) => string[] | Promise<string[]>;

/** The frozen, fully-resolved options of a client. Secrets are wrapped in {@link Secret}. */
export interface ResolvedOptions {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly privateKey: Secret<string | Buffer> | undefined;
  readonly passphrase: Secret<string> | PassphraseCallback | undefined;
  readonly password: Secret<string> | undefined;
  readonly identityFiles: readonly string[];
  /** `true` when identityFiles came from the defaults (missing files are then skipped silently). */
  readonly identityFilesDefaulted: boolean;
  readonly agent: string | undefined;
  readonly knownHostsFiles: readonly string[];
  readonly globalKnownHostsFiles: readonly string[];
  /** In-memory known_hosts lines (empty when not given). */
  readonly knownHosts: readonly string[];
  readonly hostVerifier: HostKeyVerifier | undefined;
  readonly strictHostKeyChecking: 'yes' | 'accept-new' | 'no';
  readonly hashKnownHosts: boolean;
  readonly connectTimeoutMs: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveCountMax: number;
  readonly reconnect: Readonly<{ retries: number; minDelayMs: number; maxDelayMs: number; factor: number }> | false;
  readonly maxSessions: number;
  readonly closeTimeoutMs: number;
  /** 0 = forever. */
  readonly operationTimeoutMs: number;
  /** 0 = never. */
  readonly idleTimeoutMs: number;
  readonly retryFirstConnect: boolean;
  /** 0 = never. */
  readonly failbackIntervalMs: number;
  readonly forwardConnectionWaitMs: number;
  readonly sftpChannelsPersistMs: number;
  readonly algorithms: SshClientOptions['algorithms'];
  /** The name the caller asked for (an ssh_config alias or a host name): the failover entry of this attempt. */
  readonly alias: string;
  /** The failover list (one entry for a single host); `host`/`alias` start as its first entry. */
  readonly hosts: readonly string[];
  readonly sshConfig: string | readonly string[] | false | undefined;
  readonly identitiesOnly: boolean;
  readonly forwardAgent: boolean;
  readonly keyboardInteractive: KeyboardInteractiveCallback | undefined;
  /** Jump host specs, first hop first; empty for a direct connection. */
  readonly jump: readonly string[];
  readonly compression: boolean;
  /** ssh_config `PreferredAuthentications`, when set. */
  readonly preferredAuthentications: readonly string[] | undefined;
  readonly passwordAuthentication: boolean;
  readonly pubkeyAuthentication: boolean;
  /** ssh_config `BatchMode`: never ask callbacks for passwords or passphrases. */
  readonly batchMode: boolean;
  readonly logger: Logger | undefined;
  readonly debugProtocol: boolean;
  /** Where durable jobs live on the server. */
  readonly jobsDir: string;
  /** Declared forwards, not yet validated (the forward layer validates them). */
  readonly forwards: readonly unknown[];
  readonly exitOnForwardFailure: boolean;
  /** Options the caller set explicitly (they win over ssh_config). */
  readonly explicitKeys: ReadonlySet<string>;
}

const ACCEPTED = Object.keys(clientOptionsSchema.shape).join(', ');

function stripUndefined<T extends object>(obj: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: { [K in keyof T]?: Exclude<T[K], undefined> } = {};
  for (const k of Object.keys(obj) as (keyof T)[]) {
    const v = obj[k];
    if (v !== undefined) out[k] = v as Exclude<T[keyof T], undefined>;
  }
  return out;
}

/**
 * Splits the `jump` option into hop specs (`false` and `'none'` mean no jump) and checks each with
 * the one ProxyJump parser (config/ssh-config/jump-spec.ts, OpenSSH's `parse_jump`). Blanks
 * around a hop are dropped; an empty hop (`'a,,b'`, `'a,'`) is an error, as in ssh(1).
 *
 * @throws {SshConfigError} `ERR_SSH_CONFIG` (field `jump`) naming the bad hop and why.
 */
export function parseJumpOption(jump: string | readonly string[] | false | undefined): readonly string[] {
  if (jump === undefined || jump === false) return Object.freeze([]);
  const hops = (typeof jump === 'string' ? jump.split(',') : [...jump]).map((h) => h.trim());
  if (hops.length === 1 && hops[0]!.toLowerCase() === 'none') return Object.freeze([]);
  if (typeof jump === 'string' && jump.trim() === '') return Object.freeze([]);
  for (const h of hops) parseHopSpec(h);
  return Object.freeze(hops);
}

/** Expands a leading `~/` to the user's home directory. */
export function expandHome(path: string, home = homedir()): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return path;
}

/**
 * Refuses combinations of the host-key sources that would silently weaken or contradict each
 * other: `knownHosts` or `hostVerifier` with `strictHostKeyChecking: 'no'` (every key would be
 * accepted anyway), `hostVerifier` with `'accept-new'` (the verifier decides; nothing is
 * recorded), `knownHosts` with `'accept-new'` and no `knownHostsFiles` (nowhere to record new
 * keys), and `knownHosts` with `hostVerifier` (two sources of trust).
 *
 * @throws {SshConfigError} `ERR_SSH_CONFIG` naming the field and saying why.
 */
function checkHostKeySources(o: { knownHosts?: string[] | undefined; hostVerifier?: HostKeyVerifier | undefined; strictHostKeyChecking?: string | undefined; knownHostsFiles?: string[] | undefined }): void {
  const source = o.hostVerifier !== undefined ? 'hostVerifier' : o.knownHosts !== undefined ? 'knownHosts' : undefined;
  if (source === undefined) return;
  if (o.hostVerifier !== undefined && o.knownHosts !== undefined) {
    throw new SshConfigError(
      "invalid SshClient options: 'hostVerifier': give either hostVerifier or knownHosts, not both (one source of trust for host keys; put the known lines inside your verifier)",
      { field: 'hostVerifier' },
    );
  }
  if (o.strictHostKeyChecking === 'no') {
    throw new SshConfigError(
      `invalid SshClient options: 'strictHostKeyChecking': 'no' accepts every host key, so ${source} would never be consulted; drop strictHostKeyChecking (the default 'yes' checks keys against ${source})`,
      { field: 'strictHostKeyChecking' },
    );
  }
  if (o.strictHostKeyChecking === 'accept-new' && (source === 'hostVerifier' || o.knownHostsFiles === undefined)) {
    throw new SshConfigError(
      source === 'hostVerifier'
        ? "invalid SshClient options: 'strictHostKeyChecking': 'accept-new' records unknown keys in known_hosts, but hostVerifier decides on every key; drop strictHostKeyChecking"
        : "invalid SshClient options: 'strictHostKeyChecking': 'accept-new' with knownHosts needs knownHostsFiles naming the file to record new keys in",
      { field: 'strictHostKeyChecking' },
    );
  }
}

/**
 * Validates user options and resolves defaults into a frozen {@link ResolvedOptions}.
 *
 * @throws {SshConfigError} `ERR_SSH_CONFIG` naming the bad field and the accepted form
 *   (the ZodError is the `cause`).
 */
export function resolveOptions(input: unknown, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  const parsed = clientOptionsSchema.safeParse(input);
  if (!parsed.success) throw zodToConfigError(parsed.error, 'SshClient options', ACCEPTED, input);
  const o = parsed.data;
  const home = homedir();
  const identityFilesDefaulted = o.identityFiles === undefined;
  const identityFiles = (o.identityFiles ?? DEFAULTS.identityFiles).map((p) => expandHome(p, home));
  const reconnect =
    o.reconnect === false
      ? false
      : Object.freeze({
          retries: o.reconnect?.retries ?? DEFAULTS.reconnect.retries,
          minDelayMs: o.reconnect?.minDelayMs ?? DEFAULTS.reconnect.minDelayMs,
          maxDelayMs: o.reconnect?.maxDelayMs ?? DEFAULTS.reconnect.maxDelayMs,
          factor: o.reconnect?.factor ?? DEFAULTS.reconnect.factor,
        });
  if (reconnect && reconnect.maxDelayMs < reconnect.minDelayMs) {
    throw new SshConfigError(
      `invalid SshClient options: 'reconnect.maxDelayMs': expected a value >= reconnect.minDelayMs (${reconnect.minDelayMs})`,
      { field: 'reconnect.maxDelayMs' },
    );
  }
  checkHostKeySources(o);
  let username = o.username;
  if (username === undefined) {
    try {
      username = userInfo().username;
    } catch (err) {
      throw new SshConfigError("invalid SshClient options: 'username': not given and the current OS user is unknown", { cause: err, field: 'username' });
    }
  }
  const agentEnv = env.SSH_AUTH_SOCK;
  const hosts = Object.freeze(typeof o.host === 'string' ? [o.host] : [...o.host]);
  const first = hosts[0] ?? '';
  const resolved: ResolvedOptions = {
    host: first,
    port: o.port ?? DEFAULTS.port,
    username,
    privateKey: o.privateKey === undefined ? undefined : new Secret(o.privateKey),
    passphrase: o.passphrase === undefined ? undefined : typeof o.passphrase === 'string' ? new Secret(o.passphrase) : o.passphrase,
    password: o.password === undefined ? undefined : new Secret(o.password),
    identityFiles: Object.freeze(identityFiles),
    identityFilesDefaulted,
    agent: o.agent === false ? undefined : (o.agent ?? (agentEnv !== undefined && agentEnv !== '' ? agentEnv : undefined)),
    // In-memory lines replace the default user file (a container has none); explicit files still count.
    knownHostsFiles: Object.freeze((o.knownHostsFiles ?? (o.knownHosts !== undefined ? [] : DEFAULTS.knownHostsFiles)).map((p) => expandHome(p, home))),
    globalKnownHostsFiles: Object.freeze([...(o.globalKnownHostsFiles ?? DEFAULTS.globalKnownHostsFiles)]),
    knownHosts: Object.freeze([...(o.knownHosts ?? [])]),
    hostVerifier: o.hostVerifier,
    strictHostKeyChecking: o.strictHostKeyChecking ?? DEFAULTS.strictHostKeyChecking,
    hashKnownHosts: o.hashKnownHosts ?? DEFAULTS.hashKnownHosts,
    connectTimeoutMs: o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    keepaliveIntervalMs: o.keepaliveIntervalMs ?? DEFAULTS.keepaliveIntervalMs,
    keepaliveCountMax: o.keepaliveCountMax ?? DEFAULTS.keepaliveCountMax,
    reconnect,
    maxSessions: o.maxSessions ?? DEFAULTS.maxSessions,
    closeTimeoutMs: o.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs,
    operationTimeoutMs: o.operationTimeoutMs ?? DEFAULTS.operationTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    retryFirstConnect: o.retryFirstConnect ?? DEFAULTS.retryFirstConnect,
    failbackIntervalMs: o.failbackIntervalMs ?? DEFAULTS.failbackIntervalMs,
    forwardConnectionWaitMs: o.forwardConnectionWaitMs ?? DEFAULTS.forwardConnectionWaitMs,
    sftpChannelsPersistMs: o.sftpChannelsPersistMs ?? DEFAULTS.sftpChannelsPersistMs,
    algorithms: o.algorithms === undefined ? undefined : Object.freeze(stripUndefined(o.algorithms)),
    alias: first,
    hosts,
    sshConfig: o.sshConfig,
    identitiesOnly: o.identitiesOnly ?? DEFAULTS.identitiesOnly,
    forwardAgent: o.forwardAgent ?? DEFAULTS.forwardAgent,
    keyboardInteractive: o.keyboardInteractive,
    jump: parseJumpOption(o.jump),
    compression: o.compression ?? DEFAULTS.compression,
    logger: o.logger,
    debugProtocol: o.debugProtocol ?? DEFAULTS.debugProtocol,
    jobsDir: o.jobsDir ?? DEFAULTS.jobsDir,
    forwards: Object.freeze([...(o.forwards ?? [])]),
    exitOnForwardFailure: o.exitOnForwardFailure ?? DEFAULTS.exitOnForwardFailure,
    preferredAuthentications: undefined,
    passwordAuthentication: DEFAULTS.passwordAuthentication,
    pubkeyAuthentication: DEFAULTS.pubkeyAuthentication,
    batchMode: DEFAULTS.batchMode,
    explicitKeys: Object.freeze(new Set(Object.keys(o).filter((k) => (o as Record<string, unknown>)[k] !== undefined))),
  };
  Object.defineProperty(resolved, inspect.custom, {
    enumerable: false,
    value: () => ({ ...resolved }),
  });
  return Object.freeze(resolved);
}

/**
 * A fresh, mutable copy of {@link DEFAULTS}.algorithms in ssh2's `Algorithms` shape (ssh2 may
 * keep and change the arrays it is given).
 */
export function secureDefaultAlgorithms(): ssh2.Algorithms {
  const a = DEFAULTS.algorithms as Ssh2AlgorithmLists;
  return { kex: [...a.kex], serverHostKey: [...a.serverHostKey], cipher: [...a.cipher], hmac: [...a.hmac], compress: [...a.compress] };
}
