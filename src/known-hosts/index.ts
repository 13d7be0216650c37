/**
 * known_hosts host key checking: parsing (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"), lookup,
 * appending, and the `StrictHostKeyChecking` policy (ssh_config(5)) as a verifier for ssh2.
 *
 * Written in-house: no maintained npm package implements OpenSSH known_hosts matching.
 * This module never imports connection or client code.
 *
 * @module known-hosts
 */
export { fingerprintSha256, keyBlobType, validateKeyBlob, SUPPORTED_KEY_TYPES } from './key-blob.js';
export { hostPattern, matchPattern, matchPatternList } from './pattern.js';
export {
  entryMatchesHost,
  hashHostName,
  parseKnownHosts,
  INLINE_SOURCE,
  type KnownHostsEntry,
  type KnownHostsHosts,
  type KnownHostsSet,
  type KnownHostsWarning,
} from './parse.js';
export { checkHostKey, type HostKeyStatus } from './check.js';
export { appendKnownHost, loadKnownHosts, MAX_KNOWN_HOSTS_BYTES, type AppendKnownHostOptions } from './file.js';
export {
  createHostVerifier,
  createCallbackHostVerifier,
  MEMORY_SOURCE,
  toSsh2HostVerifier,
  type CallbackHostVerifierOptions,
  type HostKeyCallback,
  type HostKeyCallbackInfo,
  type HostVerifier,
  type HostVerifierOptions,
  type NewHostKeyInfo,
  type Ssh2HostVerifyCallback,
  type StrictHostKeyChecking,
} from './verifier.js';
