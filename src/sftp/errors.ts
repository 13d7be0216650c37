/**
 * SFTP status codes and the {@link SshSftpError} they map to.
 *
 * Follows draft-ietf-secsh-filexfer-02 (SFTP version 3, the version OpenSSH speaks), section 7
 * "Responses from the Server to the Client" (`SSH_FXP_STATUS` codes).
 *
 * @module sftp/errors
 */
import { SshError, isConnectionLost } from '../errors.js';

/** The SFTP v3 status codes (draft-ietf-secsh-filexfer-02 section 7), by name. */
export const SftpStatus = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

/** Name of an SFTP status code (`'NO_SUCH_FILE'`, `'PERMISSION_DENIED'`, `'FAILURE'`...), or `'UNKNOWN'`. */
export type SftpStatusName = keyof typeof SftpStatus | 'UNKNOWN';

const NAMES = new Map<number, SftpStatusName>(
  Object.entries(SftpStatus).map(([k, v]) => [v, k as SftpStatusName]),
);

/** Returns the name of a numeric SFTP status code (`'UNKNOWN'` when it is not a v3 code). */
export function sftpStatusName(code: number): SftpStatusName {
  return NAMES.get(code) ?? 'UNKNOWN';
}

/**
 * Why ssh-tether itself stopped an SFTP operation (no server status involved), on
 * {@link SshSftpError.reason}:
 *
 * - `'limit'`: a bound was reached: `maxEntries`, `maxDepth`, or a directory loop in a walk;
 * - `'unsafe-name'`: a path built from server (or local) names would leave the target directory;
 * - `'outside-target'`: a local directory of the target resolves (through a symlink) outside it;
 * - `'protocol'`: the server broke SFTP v3 (a DATA reply longer than the READ asked for, a file
 *   longer than its stated size).
 */
export type SftpErrorReason = 'limit' | 'unsafe-name' | 'outside-target' | 'protocol';

/**
 * The SFTP server answered a request with an error status (`ERR_SSH_SFTP`), or ssh-tether refused
 * an SFTP operation before sending it (then `status` is `'BAD_MESSAGE'`/`'FAILURE'` with a
 * message saying why).
 *
 * - `status`: the status name, e.g. `NO_SUCH_FILE`, `PERMISSION_DENIED`, `FAILURE`
 *   (OpenSSH's sftp-server reports most other errno values, EEXIST and ENOTEMPTY included,
 *   as `FAILURE`).
 * - `statusCode`: the numeric status (draft-ietf-secsh-filexfer-02 section 7).
 * - `path`: the remote path the request was about (decoded as UTF-8 for display; see
 *   `rawPath` for the exact bytes), when there is one.
 *
 * - `reason`: set when ssh-tether stopped the operation itself (see {@link SftpErrorReason}).
 *
 * An SFTP error is not `retryable`: the same request would meet the same answer.
 */
export class SshSftpError extends SshError {
  /** The status name, e.g. `NO_SUCH_FILE`. */
  readonly status: SftpStatusName;
  /** The numeric SFTP status code. */
  readonly statusCode: number;
  /** The remote path involved, when there is one. */
  readonly path: string | undefined;
  /** The exact bytes of {@link SshSftpError.path}, when there is one. */
  readonly rawPath: Buffer | undefined;
  /** Why ssh-tether stopped the operation itself, when it did (no server status involved). */
  readonly reason: SftpErrorReason | undefined;

  /**
   * @param message - the server's message, or ours, with the path.
   * @param details - status code, path, cause, and `reason` when ssh-tether stopped it itself.
   */
  constructor(
    message: string,
    details: { statusCode: number; path?: string | Buffer | undefined; cause?: unknown; reason?: SftpErrorReason | undefined },
  ) {
    super('ERR_SSH_SFTP', message, { retryable: false, ...(details.cause === undefined ? {} : { cause: details.cause }) });
    this.name = 'SshSftpError';
    this.statusCode = details.statusCode;
    this.status = sftpStatusName(details.statusCode);
    const p = details.path;
    this.rawPath = p === undefined ? undefined : Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8');
    this.path = p === undefined ? undefined : Buffer.isBuffer(p) ? p.toString('utf8') : p;
    this.reason = details.reason;
  }
}

/**
 * Maps an error passed to an ssh2 SFTP callback to an {@link SshError}.
 *
 * - an error with a numeric `code` (an `SSH_FXP_STATUS` reply) -> {@link SshSftpError};
 * - a lost connection ({@link isConnectionLost}: ssh2's "No response from server", "Not connected") ->
 *   `lost` when given (the session's death reason), else `ERR_SSH_CONNECTION_LOST`;
 * - an existing {@link SshError} is returned unchanged;
 * - anything else -> {@link SshSftpError} with status `FAILURE`.
 *
 * @param err - what ssh2 passed to the callback.
 * @param op - the operation name, for the message (`'stat'`, `'open'`...).
 * @param path - the remote path involved.
 * @param lost - the error to report when the session is gone.
 */
export function mapSftpError(err: unknown, op: string, path?: string | Buffer, lost?: SshError): SshError {
  if (err instanceof SshError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; message?: unknown };
  const msg = typeof e.message === 'string' ? e.message : String(err);
  const shown = path === undefined ? '' : ` ${JSON.stringify(Buffer.isBuffer(path) ? path.toString('utf8') : path)}`;
  if (typeof e.code === 'number') {
    return new SshSftpError(`sftp ${op}${shown} failed: ${sftpStatusName(e.code)} (${msg})`, {
      statusCode: e.code,
      path,
      cause: err,
    });
  }
  if (lost) return lost;
  if (isConnectionLost(err)) {
    return new SshError('ERR_SSH_CONNECTION_LOST', `sftp ${op}${shown}: connection lost (${msg})`, { cause: err });
  }
  return new SshSftpError(`sftp ${op}${shown} failed: ${msg}`, { statusCode: SftpStatus.FAILURE, path, cause: err });
}
