/**
 * Access to the shared OpenSSH server started by `test/global-setup.ts`.
 */
import { inject } from 'vitest';
import type { SshdInfo } from './sshd.js';

/**
 * The shared server's description (host, port, username, key and known_hosts paths...).
 * Read the private key from `privateKeyPath`. Never stop this server from a test.
 */
export function sharedSshd(): SshdInfo {
  const info = inject('sshd');
  if (info === undefined) throw new Error('shared sshd not provided: is test/global-setup.ts in vitest globalSetup?');
  return info;
}
