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

/** Codes that describe a problem a retry cannot fix. */
const NEVER_RETRY: ReadonlySet<SshErrorCode> = new Set<SshErrorCode>([
  'ERR_SSH_CONFIG',
  'ERR_SSH_INVALID_ARG',
  'ERR_SSH_AUTH',
  'ERR_SSH_KEY',
  'ERR_SSH_HOST_KEY_UNKNOWN',
  'ERR_SSH_HOST_KEY_MISMATCH',
  'ERR_SSH_HOST_KEY_REVOKED',
]);

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
    this.retryable = options.retryable ?? !NEVER_RETRY.has(code);
  }
}

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

/** Host-key verification failure: `ERR_SSH_HOST_KEY_UNKNOWN`, `_MISMATCH` or `_REVOKED`. */
export class SshHostKeyError extends SshError {
  /** The host as checked against known_hosts (`host` or `[host]:port`). */
  readonly host: string;
  /** SHA256 fingerprint of the key the server presented, OpenSSH style (`SHA256:...`). */
  readonly fingerprint: string;
  /**
   * @param code - which host-key failure.
   * @param message - includes the fingerprint and the fix.
   * @param details - host and fingerprint.
   */
  constructor(
    code: 'ERR_SSH_HOST_KEY_UNKNOWN' | 'ERR_SSH_HOST_KEY_MISMATCH' | 'ERR_SSH_HOST_KEY_REVOKED',
    message: string,
    details: { host: string; fingerprint: string },
  ) {
    super(code, message);
    this.name = 'SshHostKeyError';
    this.host = details.host;
    this.fingerprint = details.fingerprint;
  }
}

/** Authentication failed (`ERR_SSH_AUTH`); never retried. */
export class SshAuthError extends SshError {
  /** Methods tried, in order (e.g. `publickey`, `password`). */
  readonly methodsTried: readonly string[];
  /**
   * @param message - lists the methods tried.
   * @param details - the methods tried and the underlying cause.
   */
  constructor(message: string, details: { methodsTried: readonly string[]; cause?: unknown }) {
    super('ERR_SSH_AUTH', message, details.cause === undefined ? {} : { cause: details.cause });
    this.name = 'SshAuthError';
    this.methodsTried = details.methodsTried;
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
 * `true` when the error is an {@link SshError} whose `retryable` flag is set, or a plain
 * network error (ECONNREFUSED, ECONNRESET, ETIMEDOUT...). Config, auth, key and host-key
 * errors are never retryable.
 *
 * @param err - any thrown value.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof SshError) return err.retryable;
  return err instanceof Error;
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
 * {@link SshChannelOpenError}; a "No response from server" or "Not connected" becomes
 * `ERR_SSH_CONNECTION_LOST`.
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
  if (/No response from server|Not connected|Connection lost|closed/i.test(msg)) {
    return new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${msg}`, { cause: err });
  }
  return new SshChannelOpenError(`channel open failed: ${msg}`, { cause: err });
}
