/**
 * ssh-tether through a jump host (ssh_config `ProxyJump`, `ssh -J`), using ssh_config aliases.
 *
 *   npm run example -- examples/bastion.ts
 *
 * Starts two in-process SSH servers (`ssh-tether/server`, nothing else needed): a bastion on
 * 127.0.0.1 and an internal box on 127.0.0.2, both accepting one generated key, and writes an
 * ssh_config like the one you would keep in ~/.ssh/config:
 *
 *   Host bastion
 *     HostName 127.0.0.1
 *     Port <bastion port>
 *     User demo
 *   Host internal
 *     HostName 127.0.0.2
 *     Port <internal port>
 *     User demo
 *     ProxyJump bastion
 *
 * and connects to `internal` by its alias. Each host key is checked under its own name, and the
 * bastion connection is kept alive and reused when the inner connection is rebuilt. Always uses
 * the in-process servers (SSH_HOST is not read). Exits by itself.
 */
import { generateEd25519 } from '../src/internal/keygen.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshClient } from '../src/index.js';
import { startServer } from '../src/server/index.js';

async function main(): Promise<void> {
  const key = generateEd25519();
  const users = [{ username: 'demo', authorizedKeys: [key.public] }];
  const bastion = await startServer({ users });
  const internal = await startServer({ host: '127.0.0.2', users });
  const dir = mkdtempSync(join(tmpdir(), 'tether-bastion-'));
  const identity = join(dir, 'id_ed25519');
  writeFileSync(identity, key.private, { mode: 0o600 });
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `${bastion.knownHostsLine}\n${internal.knownHostsLine}\n`);
  const config = join(dir, 'ssh_config');
  writeFileSync(
    config,
    [
      'Host bastion',
      `  HostName ${bastion.host}`,
      `  Port ${bastion.port}`,
      '  User demo',
      'Host internal',
      `  HostName ${internal.host}`,
      `  Port ${internal.port}`,
      '  User demo',
      '  ProxyJump bastion',
      '',
    ].join('\n'),
  );
  console.log(`bastion ${bastion.host}:${bastion.port}, internal ${internal.host}:${internal.port}\nssh_config:\n${readFileSync(config, 'utf8')}`);
  bastion.on('direct-tcpip', ({ host, port }) => console.log(`  [bastion] forwarding a connection to ${host}:${port}`));

  const ssh = new SshClient({
    host: 'internal',
    sshConfig: config,
    identityFiles: [identity],
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

    console.log('dropping the inner connection (internal.faults.reset())...');
    const healed = new Promise<void>((resolve) => ssh.once('ready', () => resolve()));
    internal.faults.reset();
    await healed;
    const again = await ssh.exec(['echo', 'back again through the same bastion connection']);
    console.log(`exec: ${again.stdout.trim()}`);
    console.log(`health: ${JSON.stringify({ state: ssh.health().state, reconnects: ssh.health().reconnects })}`);
  } finally {
    await ssh.close();
    await bastion.stop();
    await internal.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
