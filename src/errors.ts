/**
 * Every error ssh-tether raises is an {@link SshError} with a stable, literal `code`.
 * Users match on `code` (or `instanceof` a subclass); messages may change between versions.
 * Messages often quote the server (a DISCONNECT description, an SFTP STATUS message, auth
 * method names): every message is passed through `sanitizeText` (src/internal/sanitize.ts) when
 * the error is made, so no error message carries escape sequences or other control characters.
 *
 * @module errors
 */
import { sanitizeText } from './internal/sanitize.js';

/**
 * The stable error codes. Never retried: `ERR_SSH_CONFIG`, `ERR_SSH_AUTH`, `ERR_SSH_KEY`
 * and the three `ERR_SSH_HOST_KEY_*` codes.
 */
export type SshErrorCode =
  | 'ERR_SSH_CONFIG'
  /** A bad argument to a call (an option object of `exec`, `get`, `forwardLocal`...): never retried. */
  | 'ERR_SSH_INVALID_ARG'
  | 'ERR_SSH_CONNECT'
  | 'ERR_SSH_CONNECT_TIMEOUT'
  | 'ERR_SSH_HANDSHAKE'
  | 'ERR_SSH_HOST_KEY_UNKNOWN'
  | 'ERR_SSH_HOST_KEY_MISMATCH'
  | 'ERR_SSH_HOST_KEY_REVOKED'
  | 'ERR_SSH_AUTH'
  | 'ERR_SSH_KEY'
  | 'ERR_SSH_CONNECTION_LOST'
  | 'ERR_SSH_KEEPALIVE_TIMEOUT'
  | 'ERR_SSH_CLOSED'
  | 'ERR_SSH_CHANNEL_OPEN'
  | 'ERR_SSH_TIMEOUT'
  | 'ERR_SSH_ABORTED'
  | 'ERR_SSH_EXIT'
  | 'ERR_SSH_MAX_BUFFER'
  | 'ERR_SSH_FORWARD'
  | 'ERR_SSH_SFTP'
  /** A per-host task of `SshGroup.run` threw something that is not an SshError (the `cause`). */
  | 'ERR_SSH_TASK'
  /** A durable job could not be started, found, or removed (`ssh.jobs`), or `follow` got a bad answer. */
  | 'ERR_SSH_JOB';

/** One row of {@link ERROR_CODES}. */
export interface SshErrorCodeInfo {
  /** The default of {@link SshError.retryable} for this code (a constructor may override it). */
  readonly retryable: boolean;
}

/**
 * The error code table: every {@link SshErrorCode} and whether a retry (a reconnect, a new
 * attempt) could help, the default of {@link SshError.retryable}. Never retried: bad options or
 * arguments, authentication, key files and host keys (a retry cannot fix them, and retrying a
 * refused host key or password only adds noise or locks the account). The table is the one
 * place this is decided (model: undici `lib/core/errors.js`); a new code without a row does not
 * compile (`satisfies Record<SshErrorCode, ...>`).
 */
export const ERROR_CODES = {
  ERR_SSH_CONFIG: { retryable: false },
  ERR_SSH_INVALID_ARG: { retryable: false },
  ERR_SSH_CONNECT: { retryable: true },
  ERR_SSH_CONNECT_TIMEOUT: { retryable: true },
  ERR_SSH_HANDSHAKE: { retryable: true },
  ERR_SSH_HOST_KEY_UNKNOWN: { retryable: false },
  ERR_SSH_HOST_KEY_MISMATCH: { retryable: false },
  ERR_SSH_HOST_KEY_REVOKED: { retryable: false },
  ERR_SSH_AUTH: { retryable: false },
  ERR_SSH_KEY: { retryable: false },
  ERR_SSH_CONNECTION_LOST: { retryable: true },
  ERR_SSH_KEEPALIVE_TIMEOUT: { retryable: true },
  ERR_SSH_CLOSED: { retryable: true },
  ERR_SSH_CHANNEL_OPEN: { retryable: true },
  ERR_SSH_TIMEOUT: { retryable: true },
  ERR_SSH_ABORTED: { retryable: true },
  ERR_SSH_EXIT: { retryable: true },
  ERR_SSH_MAX_BUFFER: { retryable: true },
  ERR_SSH_FORWARD: { retryable: true },
  ERR_SSH_SFTP: { retryable: true },
  ERR_SSH_TASK: { retryable: true },
  ERR_SSH_JOB: { retryable: true },
} as const satisfies Readonly<Record<SshErrorCode, SshErrorCodeInfo>>;

/**
 * The brand every {@link SshError} carries (on `SshError.prototype`), registered with
 * `Symbol.for` so that two copies of ssh-tether in one process (the ESM `dist/index.js` and the
 * CommonJS `dist/index.cjs`, or `ssh-tether` and `ssh-tether/prometheus`, which bundles its own
 * copy) recognise each other's errors: see `SshError[Symbol.hasInstance]`.
 */
export const SSH_ERROR_BRAND: unique symbol = Symbol.for('ssh-tether.SshError') as never;

/** Options accepted by every {@link SshError} constructor. */
export interface SshErrorOptions {
  /** The underlying error (an ssh2 error, a socket error, a ZodError...). */
  cause?: unknown;
  /** Override the default retry classification of the code. */
  retryable?: boolean;
}

/**
 * Base class of every error ssh-tether raises.
 *
 * - `code`: a stable {@link SshErrorCode}.
 * - `retryable`: whether reconnecting could help (false for config, auth, key and host-key codes).
 * - `cause`: the underlying error, when there is one (standard `Error.cause`).
 */
export class SshError extends Error {
  /** The stable error code. */
  readonly code: SshErrorCode;
  /** Whether a reconnect attempt could fix this error. */
  readonly retryable: boolean;

  /**
   * @param code - the stable error code.
   * @param message - a human-readable message (never contains secrets); control characters
   *   other than tab and newline are shown escaped (`\x1b`), the length is bounded.
   * @param options - `cause` and an optional `retryable` override.
   */
  constructor(code: SshErrorCode, message: string, options: SshErrorOptions = {}) {
    super(sanitizeText(message, { maxLength: 8192 }), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SshError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
  }

  /**
   * `instanceof` that also holds across copies of ssh-tether loaded in one process (ESM and
   * CommonJS, or the `ssh-tether/prometheus` bundle): a value is an instance when it is one of
   * this very class, or when it carries the `Symbol.for('ssh-tether.SshError')` brand and (for a
   * subclass) a class of the same name is on its prototype chain. A plain `Error` never is.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (!(SSH_ERROR_BRAND in value)) return false;
    if (this === SshError) return true;
    // A subclass of the other copy: match by class name along the prototype chain (both copies
    // come from the same source, so the names agree).
    for (let p: unknown = Object.getPrototypeOf(value); typeof p === 'object' && p !== null; p = Object.getPrototypeOf(p)) {
      if (!Object.prototype.hasOwnProperty.call(p, 'constructor')) continue;
      const ctor: unknown = (p as { constructor: unknown }).constructor;
      if (typeof ctor === 'function' && ctor.name === this.name && SSH_ERROR_BRAND in p) return true;
    }
    return false;
  }
}
Object.defineProperty(SshError.prototype, SSH_ERROR_BRAND, { value: true, enumerable: false, writable: false, configurable: false });

/** Invalid options or ssh_config (`ERR_SSH_CONFIG`). The `cause` is the ZodError when validation failed. */
export class SshConfigError extends SshError {
  /** The option path that was rejected, e.g. `reconnect.maxDelayMs`, when known. */
  readonly field: string | undefined;
  /**
   * @param message - what is wrong and the accepted form.
   * @param options - `cause`, and `field` naming the rejected option.
   */
  constructor(message: string, options: SshErrorOptions & { field?: string } = {}) {
    super('ERR_SSH_CONFIG', message, options);
    this.name = 'SshConfigError';
    this.field = options.field;
  }
}

/**
 * A bad argument to a call (`ERR_SSH_INVALID_ARG`): an option object of `exec`, an SFTP method,
 * a forward, with an unknown key or a value of the wrong form. Client options and ssh_config
 * stay `ERR_SSH_CONFIG` ({@link SshConfigError}). Never retried. The `cause` is the ZodError
 * when validation failed.
 */
export class SshInvalidArgError extends SshError {
  /** The argument path that was rejected, e.g. `options.timeoutMs`, when known. */
  readonly field: string | undefined;
  /**
   * @param message - what is wrong and the accepted form.
   * @param options - `cause`, and `field` naming the rejected argument.
   */
  constructor(message: string, options: SshErrorOptions & { field?: string } = {}) {
    super('ERR_SSH_INVALID_ARG', message, options);
    this.name = 'SshInvalidArgError';
    this.field = options.field;
  }
}

/**
 * Where the key on file for a host came from, as carried by {@link SshHostKeyError.known}.
 * `file` is the known_hosts file path, or `'knownHosts option'` for a line of the `knownHosts`
 * client option (then `line` counts the option's lines from 1).
 */
export interface KnownHostKeyLocation {
  /** The known_hosts file (as given in `knownHostsFiles`/`globalKnownHostsFiles`), or `'knownHosts option'`. */
  readonly file: string;
  /** 1-based line number in `file`. */
  readonly line: number;
  /** Key type of the line, e.g. `ssh-ed25519` (for `_REVOKED` the type of the revoked key, the one presented). */
  readonly keyType: string;
}

/** Host-key verification failure: `ERR_SSH_HOST_KEY_UNKNOWN`, `_MISMATCH` or `_REVOKED`. */
export class SshHostKeyError extends SshError {
  /** The host as checked against known_hosts (`host` or `[host]:port`). */
  readonly host: string;
  /** SHA256 fingerprint of the key the server presented, OpenSSH style (`SHA256:...`). */
  readonly fingerprint: string;
  /**
   * The known_hosts line behind the refusal: for `ERR_SSH_HOST_KEY_MISMATCH` the line holding
   * the other key (one of the same type when there is one), for `ERR_SSH_HOST_KEY_REVOKED` the
   * `@revoked` line. `undefined` for `ERR_SSH_HOST_KEY_UNKNOWN`, and when the decision came
   * from the `hostVerifier` option (no line exists).
   */
  readonly known: KnownHostKeyLocation | undefined;
  /**
   * @param code - which host-key failure.
   * @param message - includes the fingerprint and the fix.
   * @param details - host and fingerprint, and `known` (see {@link SshHostKeyError.known}).
   */
  constructor(
    code: 'ERR_SSH_HOST_KEY_UNKNOWN' | 'ERR_SSH_HOST_KEY_MISMATCH' | 'ERR_SSH_HOST_KEY_REVOKED',
    message: string,
    details: { host: string; fingerprint: string; known?: KnownHostKeyLocation | undefined },
  ) {
    super(code, message);
    this.name = 'SshHostKeyError';
    this.host = details.host;
    this.fingerprint = details.fingerprint;
    this.known = details.known === undefined ? undefined : Object.freeze({ file: details.known.file, line: details.known.line, keyType: details.known.keyType });
  }
}

/**
 * Why authentication failed, {@link SshAuthError.reason}:
 * - `no-credentials`: nothing was offered: no key, agent key or password was available, or the
 *   server allows none of the methods we had (`PreferredAuthentications`, `BatchMode`...).
 * - `all-methods-failed`: every key and method offered was refused (ssh2's "All configured
 *   authentication methods failed").
 * - `too-many-attempts`: the server disconnected after too many attempts (sshd `MaxAuthTries`,
 *   "Too many authentication failures"); fewer keys (`identitiesOnly`) usually fix it.
 */
export type SshAuthFailureReason = 'no-credentials' | 'all-methods-failed' | 'too-many-attempts';

/**
 * The text of OpenSSH's disconnect after `MaxAuthTries` (sshd `auth2.c`
 * `auth_maxtries_exceeded()`: "Too many authentication failures"), as ssh2 reports it.
 */
const TOO_MANY_AUTH_FAILURES = /Too many authentication failures/i;

/**
 * The {@link SshAuthFailureReason} of an authentication failure: `too-many-attempts` when
 * `cause` is the server's MaxAuthTries disconnect, `no-credentials` when nothing was tried,
 * else `all-methods-failed`.
 *
 * @param methodsTried - the methods and keys offered.
 * @param cause - the ssh2 error that ended authentication.
 */
export function authFailureReason(methodsTried: readonly string[], cause?: unknown): SshAuthFailureReason {
  const m = shape(cause).message;
  if (typeof m === 'string' && TOO_MANY_AUTH_FAILURES.test(m)) return 'too-many-attempts';
  return methodsTried.length === 0 ? 'no-credentials' : 'all-methods-failed';
}

/** Authentication failed (`ERR_SSH_AUTH`); never retried. */
export class SshAuthError extends SshError {
  /** Methods tried, in order (e.g. `publickey`, `password`). */
  readonly methodsTried: readonly string[];
  /** Why it failed, for programs and metrics (the message has the details). */
  readonly reason: SshAuthFailureReason;
  /**
   * @param message - lists the methods tried.
   * @param details - the methods tried, the underlying cause, and `reason` (default:
   *   `authFailureReason` of `methodsTried` and `cause`).
   */
  constructor(message: string, details: { methodsTried: readonly string[]; cause?: unknown; reason?: SshAuthFailureReason }) {
    super('ERR_SSH_AUTH', message, details.cause === undefined ? {} : { cause: details.cause });
    this.name = 'SshAuthError';
    this.methodsTried = details.methodsTried;
    this.reason = details.reason ?? authFailureReason(details.methodsTried, details.cause);
  }
}

/** The result of a finished remote command, as carried by {@link SshExecError}. */
export interface ExecResultLike {
  stdout: string | Buffer;
  stderr: string | Buffer;
  exitCode: number | null;
  signal: string | null;
}

/**
 * A remote command ended unsuccessfully, or was stopped: carries the result (or the output so far).
 * Raised as `ERR_SSH_EXIT` (with `check: true`), `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`
 * or `ERR_SSH_CONNECTION_LOST` by exec.
 */
export class SshExecError extends SshError {
  /** What the command produced before it ended or was stopped. */
  readonly result: ExecResultLike;
  /**
   * @param code - why the command failed.
   * @param message - a summary (the command line is not included: it may hold secrets).
   * @param result - the output so far, exit code and signal.
   * @param options - `cause`.
   */
  constructor(code: SshErrorCode, message: string, result: ExecResultLike, options: SshErrorOptions = {}) {
    super(code, message, options);
    this.name = 'SshExecError';
    this.result = result;
  }
}

/** Channel open refused by the server (`ERR_SSH_CHANNEL_OPEN`), RFC 4254 section 5.1. */
export class SshChannelOpenError extends SshError {
  /** The RFC 4254 reason code (1 prohibited, 2 connect failed, 3 unknown type, 4 resource shortage), if known. */
  readonly reason: number | undefined;
  /**
   * @param message - the server's description.
   * @param details - reason code and cause.
   */
  constructor(message: string, details: { reason?: number | undefined; cause?: unknown } = {}) {
    super('ERR_SSH_CHANNEL_OPEN', message, details.cause === undefined ? {} : { cause: details.cause });
    this.name = 'SshChannelOpenError';
    this.reason = details.reason;
  }
}

/**
 * Socket and DNS error codes (Node's `err.code`, from libuv/getaddrinfo) that describe a
 * transient network condition: the peer refused or reset, a route or the network is down,
 * a timeout, a broken pipe, or a temporary DNS failure. `ENOTFOUND` (the name does not exist)
 * is not in the list.
 */
export const TRANSIENT_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENETRESET',
  'EPIPE',
  'EAI_AGAIN',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/**
 * `true` for an {@link SshError} whose `retryable` flag is set (by default from
 * {@link ERROR_CODES}), or for a plain error whose `code` is a transient network error
 * ({@link TRANSIENT_NETWORK_CODES}: ECONNREFUSED, ECONNRESET, ECONNABORTED, ETIMEDOUT,
 * EHOSTUNREACH, EHOSTDOWN, ENETUNREACH, ENETDOWN, ENETRESET, EPIPE, EAI_AGAIN,
 * ERR_SOCKET_CONNECTION_TIMEOUT). Anything else is `false`: config, argument, auth, key and
 * host-key errors, a programming error (`TypeError`), a value that is not an error.
 *
 * @param err - any thrown value.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof SshError) return err.retryable;
  if (!(err instanceof Error)) return false;
  const code = shape(err).code;
  return typeof code === 'string' && TRANSIENT_NETWORK_CODES.has(code);
}

/**
 * The texts ssh2 1.17 uses when the connection is gone, in one place:
 * - `No response from server`: `lib/client.js` (socket `close`: every pending global request
 *   and channel open is failed with it), `lib/protocol/SFTP.js` `cleanupRequests()` (the SFTP
 *   channel closed with requests pending);
 * - `Not connected`: `lib/client.js`, thrown synchronously by `exec`, `shell`, `forwardIn`,
 *   `forwardOut`, `sftp`, `openssh_*`... when the socket is no longer writable;
 * - `Connection lost before handshake`: `lib/client.js` (socket ended during the handshake);
 * - `Connection lost`: the SFTP `SSH_FX_CONNECTION_LOST` status text (`lib/protocol/SFTP.js`).
 */
const SSH2_CONNECTION_LOST = /^(?:No response from server|Not connected|Connection lost(?: before handshake)?)$/;

/**
 * `true` when `err` says the SSH connection is gone: an {@link SshError} with code
 * `ERR_SSH_CONNECTION_LOST` or `ERR_SSH_KEEPALIVE_TIMEOUT`, or one of ssh2's own "connection
 * gone" errors (matched on ssh2 1.17's exact texts, see the list in the source: the one place
 * the library reads ssh2's message text for this).
 *
 * @param err - any thrown value or callback error.
 */
export function isConnectionLost(err: unknown): boolean {
  if (err instanceof SshError) return err.code === 'ERR_SSH_CONNECTION_LOST' || err.code === 'ERR_SSH_KEEPALIVE_TIMEOUT';
  const m = shape(err).message;
  return typeof m === 'string' && SSH2_CONNECTION_LOST.test(m);
}

/** The RFC 4254 channel-open failure reason codes (section 5.1). */
export const ChannelOpenFailure = {
  ADMINISTRATIVELY_PROHIBITED: 1,
  CONNECT_FAILED: 2,
  UNKNOWN_CHANNEL_TYPE: 3,
  RESOURCE_SHORTAGE: 4,
} as const;

interface Ssh2ErrorShape {
  message?: unknown;
  level?: unknown;
  reason?: unknown;
  code?: unknown;
}

function shape(err: unknown): Ssh2ErrorShape {
  return typeof err === 'object' && err !== null ? err : {};
}

/**
 * Maps an error raised by ssh2 or the socket during a connect attempt to an {@link SshError}.
 *
 * - `level: 'client-authentication'` -> `ERR_SSH_AUTH`
 * - `level: 'client-timeout'` (readyTimeout) -> `ERR_SSH_CONNECT_TIMEOUT`
 * - `level: 'handshake'` / `'protocol'` -> `ERR_SSH_HANDSHAKE`
 * - `level: 'client-socket'` or a system error code -> `ERR_SSH_CONNECT`
 * - an existing {@link SshError} is returned unchanged.
 *
 * @param err - the error ssh2 emitted.
 * @param methodsTried - authentication methods attempted so far (for `ERR_SSH_AUTH`).
 */
export function mapConnectError(err: unknown, methodsTried: readonly string[] = []): SshError {
  if (err instanceof SshError) return err;
  const e = shape(err);
  const msg = typeof e.message === 'string' ? e.message : String(err);
  switch (e.level) {
    case 'client-authentication':
      return new SshAuthError(
        `authentication failed (methods tried: ${methodsTried.length > 0 ? methodsTried.join(', ') : 'none'}): ${msg}`,
        { methodsTried, cause: err },
      );
    case 'client-timeout':
      return new SshError('ERR_SSH_CONNECT_TIMEOUT', `timed out while connecting: ${msg}`, { cause: err });
    case 'handshake':
    case 'protocol':
      return new SshError('ERR_SSH_HANDSHAKE', `SSH handshake failed: ${msg}`, { cause: err });
    default:
      return new SshError('ERR_SSH_CONNECT', `connection failed: ${msg}`, { cause: err });
  }
}

/**
 * Maps a channel-open failure from ssh2 (an Error with a numeric `reason`) to
 * {@link SshChannelOpenError}; a lost connection ({@link isConnectionLost}: ssh2's "No response
 * from server", "Not connected") becomes `ERR_SSH_CONNECTION_LOST`.
 *
 * @param err - the error passed to ssh2's channel callback.
 */
export function mapChannelError(err: unknown): SshError {
  if (err instanceof SshError) return err;
  const e = shape(err);
  const msg = typeof e.message === 'string' ? e.message : String(err);
  if (typeof e.reason === 'number') {
    return new SshChannelOpenError(`channel open failed: ${msg}`, { reason: e.reason, cause: err });
  }
  // ssh2 `lib/utils.js` onChannelOpenFailure: the server sent CHANNEL_CLOSE for a channel still
  // opening, instead of an OPEN_FAILURE (reason ''): kept as a lost connection, as before.
  if (isConnectionLost(err) || msg === '(SSH) Channel open failure: server closed channel unexpectedly') {
    return new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${msg}`, { cause: err });
  }
  return new SshChannelOpenError(`channel open failed: ${msg}`, { cause: err });
}
