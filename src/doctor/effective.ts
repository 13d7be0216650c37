/**
 * Target parsing shared by `diagnose()` and the CLI.
 *
 * @module doctor/effective
 */
import { SshConfigError } from '../errors.js';
import type { SshClientOptions } from '../options.js';

/**
 * How to reach a target besides its name: any {@link SshClientOptions} but `host` (explicit
 * options win over ssh_config; `sshConfig` names the files to read, or `false` for none).
 */
export type TargetOptions = Omit<SshClientOptions, 'host'>;

/**
 * Splits `[user@]host` (the last `@` separates the user, as ssh(1) does).
 *
 * @param target - `host`, `alias` or `user@host`.
 * @returns the user (undefined when absent) and the host or alias.
 * @throws {SshConfigError} `ERR_SSH_CONFIG` (field `target`) for an empty host or user.
 */
export function parseTarget(target: string): { user: string | undefined; alias: string } {
  if (typeof target !== 'string' || target.trim() === '') {
    throw new SshConfigError('target: expected a host name or ssh_config alias, optionally as user@host', { field: 'target' });
  }
  const at = target.lastIndexOf('@');
  if (at < 0) return { user: undefined, alias: target };
  const user = target.slice(0, at);
  const alias = target.slice(at + 1);
  if (user === '' || alias === '') {
    throw new SshConfigError(`target: "${target}" is not of the form [user@]host`, { field: 'target' });
  }
  return { user, alias };
}

/**
 * Client options for `[user@]alias`: `host` is the alias (ssh_config is applied by the client),
 * the user from the target unless `options.username` is given.
 *
 * @throws {SshConfigError} see {@link parseTarget}.
 */
export function targetClientOptions(target: string, options: TargetOptions = {}): SshClientOptions {
  const { user, alias } = parseTarget(target);
  const o: SshClientOptions = { ...options, host: alias };
  if (options.username === undefined && user !== undefined) o.username = user;
  return o;
}
