// Shared helpers for tests that drive SshClient against a harness sshd.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SshClientOptions } from '../../src/index.js';
import type { SshdInfo } from './sshd.js';

/** A known_hosts file trusting `info`'s host key for `[host]:port` (e.g. a proxy in front of it). */
export function knownHostsFor(info: Pick<SshdInfo, 'hostPublicKey'>, host: string, port: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'tether-kh-'));
  const file = join(dir, 'known_hosts');
  const name = port === 22 ? host : `[${host}]:${port}`;
  writeFileSync(file, `${name} ${info.hostPublicKey.trim()}\n`, { mode: 0o600 });
  return file;
}

/** Client options for the harness server `info`, reached at `host:port` (default: the server itself). */
export function clientOptions(
  info: Pick<SshdInfo, 'host' | 'port' | 'username' | 'privateKeyPath' | 'knownHostsPath' | 'hostPublicKey'>,
  overrides: Partial<SshClientOptions> = {},
  via?: { host: string; port: number },
): SshClientOptions {
  const host = via?.host ?? info.host;
  const port = via?.port ?? info.port;
  return {
    host,
    port,
    username: info.username,
    identityFiles: [info.privateKeyPath],
    knownHostsFiles: [via ? knownHostsFor(info, host, port) : info.knownHostsPath],
    globalKnownHostsFiles: [],
    agent: false,
    // hermetic: the machine's ~/.ssh/config and /etc/ssh/ssh_config are not read
    sshConfig: false,
    ...overrides,
  };
}

// The one waitFor lives in ./wait.ts (re-exported with useClients and writeSshConfig by ./common.ts); re-exported here for
// the files that import it from this module.
export { waitFor } from './wait.js';
