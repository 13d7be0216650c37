import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshClient, resolveConfig, type SshConfigWarning } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';

const info = sharedSshd();
const clients: SshClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

function configFile(body: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'tether-cfg-')), 'config');
  writeFileSync(f, body, { mode: 0o600 });
  return f;
}

const aliasConfig = () =>
  configFile(`Host build-box
  HostName ${info.host}
  Port ${info.port}
  User ${info.username}
  IdentityFile ${info.privateKeyPath}
  IdentitiesOnly yes
  UserKnownHostsFile ${info.knownHostsPath}
  GlobalKnownHostsFile /dev/null
  ServerAliveInterval 7
  ServerAliveCountMax 5
  ProxyCommand nc %h %p
`);

describe('ssh_config through SshClient', () => {
  it('connects to an alias with HostName, Port, User, IdentityFile and UserKnownHostsFile from the config', async () => {
    const ssh = new SshClient({ host: 'build-box', sshConfig: aliasConfig(), agent: false });
    clients.push(ssh);
    const warnings: SshConfigWarning[] = [];
    ssh.on('warning', (w) => warnings.push(w));
    expect((await ssh.exec('whoami')).stdout.trim()).toBe(info.username);
    expect(warnings.map((w) => w.keyword)).toEqual(['ProxyCommand']);
  });

  it('explicit options win over ssh_config, which wins over defaults (resolveConfig)', async () => {
    const file = aliasConfig();
    const cfg = await resolveConfig('build-box', { sshConfig: file, agent: false });
    expect(cfg).toMatchObject({ host: info.host, port: info.port, username: info.username, keepaliveIntervalMs: 7_000, keepaliveCountMax: 5, identitiesOnly: true });
    expect(cfg.identityFiles).toEqual([info.privateKeyPath]);
    expect(cfg.connectTimeoutMs).toBe(20_000); // not set in the config: built-in default
    const explicit = await resolveConfig('build-box', { sshConfig: file, agent: false, port: 2222, keepaliveIntervalMs: 1_000, username: 'someone' });
    expect(explicit).toMatchObject({ port: 2222, keepaliveIntervalMs: 1_000, username: 'someone', host: info.host });
    expect(Object.isFrozen(explicit)).toBe(true);
    expect(cfg.sources).toEqual([file]);
  });

  it('sshConfig: false reads nothing', async () => {
    const cfg = await resolveConfig('build-box', { sshConfig: false });
    expect(cfg.host).toBe('build-box');
    expect(cfg.sources).toEqual([]);
  });

  it('a host name with shell metacharacters is ERR_SSH_CONFIG', async () => {
    await expect(resolveConfig('-oProxyCommand=x', { sshConfig: configFile('') })).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG' });
    await expect(resolveConfig('a;b', { sshConfig: configFile('') })).rejects.toMatchObject({ code: 'ERR_SSH_CONFIG' });
  });
});
