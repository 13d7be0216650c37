/**
 * Looking a host key up in parsed known_hosts entries (OpenSSH `sshconnect.c`
 * `check_host_key()` / `hostfile.c` `check_key_in_hostkeys()`).
 *
 * @module known-hosts/check
 */
import { SshConfigError } from '../errors.js';
import { keyBlobType } from './key-blob.js';
import { entryMatchesHost, type KnownHostsEntry } from './parse.js';
import { hostPattern } from './pattern.js';

/** Outcome of {@link checkHostKey}. */
export type HostKeyStatus =
  /** A plain (unmarked) line for this host holds exactly this key. */
  | { status: 'known'; file: string; line: number }
  /** No plain line matches this host. */
  | { status: 'unknown' }
  /**
   * The host has known key(s), none equal to this one. `file`/`line`/`knownKeyType` point at a
   * known key of the same type when there is one, else at the first known key of another type.
   */
  | { status: 'changed'; file: string; line: number; knownKeyType: string }
  /** An `@revoked` line for this host holds exactly this key (`keyType`: the type of that line's key). */
  | { status: 'revoked'; file: string; line: number; keyType: string };

/**
 * Checks a server's host key against known_hosts entries.
 *
 * Precedence: `revoked` (an `@revoked` line matching the host holds this key) over `known` (a
 * plain line matching the host holds this key) over `changed` (plain lines match the host but
 * none holds this key) over `unknown`. Keys are compared on their decoded blob bytes.
 * `@cert-authority` lines are ignored (ssh2 has no host certificates), so they never make a key
 * known nor a host changed.
 *
 * Deviation from OpenSSH, on purpose: OpenSSH reports "changed" only when a known key has the
 * *same type* as the presented one, and treats a host known only with other key types as new
 * (so `accept-new` would add the key). We report `changed` for known keys of any type, as Go's
 * `x/crypto/ssh/knownhosts` does: ssh2 does not order its host key algorithms by the known keys,
 * so a different key type is no evidence of a benign server.
 *
 * @param entries - parsed entries (user files first, then global ones; order only affects which
 *   line is reported).
 * @param host - host name or IP address as connected to.
 * @param port - TCP port (22 looks up `host`, others `[host]:port`).
 * @param key - the SSH wire-format public key blob the server presented.
 * @returns the {@link HostKeyStatus}.
 * @throws SshConfigError `ERR_SSH_CONFIG` (field `host`/`port`) on an invalid host or port, see
 *   {@link hostPattern}; field `key` when `key` is not a Buffer.
 */
export function checkHostKey(entries: readonly KnownHostsEntry[], host: string, port: number, key: Buffer): HostKeyStatus {
  const lookup = hostPattern(host, port);
  if (!Buffer.isBuffer(key)) throw new SshConfigError('key must be a Buffer holding an SSH public key blob', { field: 'key' });
  const keyType = keyBlobType(key);
  let known: HostKeyStatus | undefined;
  let sameType: KnownHostsEntry | undefined;
  let otherType: KnownHostsEntry | undefined;
  for (const e of entries) {
    if (e.marker === 'cert-authority') continue;
    if (!entryMatchesHost(e, lookup)) continue;
    const equal = e.key.equals(key);
    if (e.marker === 'revoked') {
      if (equal) return { status: 'revoked', file: e.file, line: e.line, keyType: e.keyType };
      continue;
    }
    if (equal) known ??= { status: 'known', file: e.file, line: e.line };
    else if (e.keyType === keyType) sameType ??= e;
    else otherType ??= e;
  }
  if (known) return known;
  const changed = sameType ?? otherType;
  if (changed) return { status: 'changed', file: changed.file, line: changed.line, knownKeyType: changed.keyType };
  return { status: 'unknown' };
}
