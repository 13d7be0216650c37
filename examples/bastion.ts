/**
 * ssh-tether through a jump host (ssh_config `ProxyJump`, `ssh -J`), using ssh_config aliases.
 *
 *   npm run example -- examples/bastion.ts
 *
 * Starts two throwaway OpenSSH servers (the test harness's): a bastion on 127.0.0.1 and an
 * internal box on 127.0.0.2, writes an ssh_config like the one you would keep in ~/.ssh/config:
 *
 *   Host bastion
 *     HostName 127.0.0.1
 *     Port <bastion port>
 *     User <user>
 *   Host internal
 *     HostName 127.0.0.2
 *     Port <internal port>
 *     User <user>
 *     ProxyJump bastion
 *
 * and connects to `internal` by its alias. The bastion may forward only to the internal box
 * (`PermitOpen`), each host key is checked under its own name, and the bastion connection is
 * kept alive and reused when the inner connection is rebuilt. Exits by itself.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshClient } from '../src/index.js';

async function main(): Promise<void> {
  const { startSshd, freePort } = await import('../test/helpers/sshd.js');
  const internalPort = await freePort('127.0.0.2');
  const internal = await startSshd({ listenAddress: '127.0.0.2', port: internalPort });
  const bastion = await startSshd({ extraConfig: [`PermitOpen 127.0.0.2:${internalPort}`] });
  // One key pair logs in on both (the bastion's harness key).
  appendFileSync(join(internal.dir, 'authorized_keys'), `${bastion.publicKey}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'tether-bastion-'));
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, readFileSync(bastion.knownHostsPath, 'utf8') + readFileSync(internal.knownHostsPath, 'utf8'));
  const config = join(dir, 'ssh_config');
  writeFileSync(
    config,
    [
      'Host bastion',
      `  HostName ${bastion.host}`,
      `  Port ${bastion.port}`,
      `  User ${bastion.username}`,
      'Host internal',
      `  HostName ${internal.host}`,
      `  Port ${internal.port}`,
      `  User ${internal.username}`,
      '  ProxyJump bastion',
      '',
    ].join('\n'),
  );
  console.log(`bastion ${bastion.host}:${bastion.port}, internal ${internal.host}:${internal.port}\nssh_config:\n${readFileSync(config, 'utf8')}`);

  const ssh = new SshClient({
    host: 'internal',
    sshConfig: config,
    identityFiles: [bastion.privateKeyPath],
    knownHostsFiles: [knownHosts],
    globalKnownHostsFiles: [],
    agent: false,
    reconnect: { minDelayMs: 100, maxDelayMs: 1_000 },
  });
  ssh.on('state', ({ state, previous }) => console.log(`  [state] ${previous} -> ${state}`));
  ssh.on('disconnect', ({ cause }) => console.log(`  [disconnect] ${cause.code}: ${cause.message}`));
  try {
    const r = await ssh.exec('echo "on $(hostname), reached from ${SSH_CONNECTION%% *}"');
    console.log(`exec: ${r.stdout.trim()}`);

    console.log('dropping the inner connection (killing its sshd session processes)...');
    const healed = new Promise<void>((resolve) => ssh.once('ready', () => resolve()));
    await internal.killSessions();
    await healed;
    const again = await ssh.exec(['echo', 'back again through the same bastion connection']);
    console.log(`exec: ${again.stdout.trim()}`);
    console.log(`health: ${JSON.stringify({ state: ssh.health().state, reconnects: ssh.health().reconnects })}`);
  } finally {
    await ssh.close();
    await bastion.remove();
    await internal.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
