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

  it('one resolved settings object per attempt: health(), the logs and resolveConfig show the same host, port and user', async () => {
    const file = aliasConfig();
    const logged: Array<Record<string, unknown>> = [];
    const rec = (obj: unknown, msg?: string): void => {
      if (typeof obj === 'object' && obj !== null) logged.push({ ...(obj as Record<string, unknown>), msg });
    };
    const logger = { debug: rec, info: rec, warn: rec, error: rec };
    const ssh = new SshClient({ host: 'build-box', sshConfig: file, agent: false, logger });
    clients.push(ssh);
    await ssh.connect();
    const cfg = await resolveConfig('build-box', { sshConfig: file, agent: false });
    const h = ssh.health();
    // The alias resolved through ssh_config (HostName/Port/User), not the alias and the defaults.
    expect({ host: h.host, port: h.port, username: h.username, alias: h.alias }).toEqual({ host: cfg.host, port: cfg.port, username: cfg.username, alias: 'build-box' });
    expect(h.port).toBe(info.port);
    const connected = logged.find((l) => l.msg === 'ssh-tether: connected');
    expect(connected).toMatchObject({ host: cfg.host, port: cfg.port, username: cfg.username, alias: 'build-box' });
    expect({ host: ssh.host, port: ssh.port, username: ssh.username }).toEqual({ host: cfg.host, port: cfg.port, username: cfg.username });
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

describe('forwards from ssh_config', () => {
  it('LocalForward and DynamicForward in the config are set up by connect(); unsupported forms warn', async () => {
    const net = await import('node:net');
    const echo = net.createServer((s) => s.on('data', (d) => s.end(`cfg:${d.toString()}`)));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const echoPort = (echo.address() as import('node:net').AddressInfo).port;
    const { freePort } = await import('../helpers/sshd.js');
    const lport = await freePort();
    const dport = await freePort();
    const file = configFile(`Host fwd-box
  HostName ${info.host}
  Port ${info.port}
  User ${info.username}
  IdentityFile ${info.privateKeyPath}
  UserKnownHostsFile ${info.knownHostsPath}
  LocalForward ${lport} 127.0.0.1:${echoPort}
  DynamicForward ${dport}
  LocalForward /tmp/tether-unsupported.sock 127.0.0.1:${echoPort}
`);
    const cfg = await resolveConfig('fwd-box', { sshConfig: file, agent: false });
    expect(cfg.forwards).toEqual([
      { type: 'local', localHost: '127.0.0.1', localPort: lport, remoteHost: '127.0.0.1', remotePort: echoPort },
      { type: 'dynamic', localHost: '127.0.0.1', localPort: dport },
    ]);
    expect(cfg.warnings.map((w) => w.keyword)).toContain('LocalForward');
    const ssh = new SshClient({ host: 'fwd-box', sshConfig: file, agent: false });
    clients.push(ssh);
    await ssh.connect();
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: lport });
      s.on('error', reject);
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.write('hello');
    });
    expect(reply).toBe('cfg:hello');
    expect(ssh.health().forwards.map((f) => f.type).sort()).toEqual(['dynamic', 'local']);
    await new Promise((r) => echo.close(r));
  });
});
