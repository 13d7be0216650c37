// The "Testing your code" example of the README, verbatim but for the import paths
// ('ssh-tether' -> src/index.ts, 'ssh-tether/server' -> src/server/index.ts).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SshClient } from '../../src/index.js';
import { startServer, type SshServer } from '../../src/server/index.js';

// Your code under test: anything that takes SshClient options.
async function deploy(options: ConstructorParameters<typeof SshClient>[0], version: string): Promise<string> {
  await using ssh = new SshClient(options);
  const sftp = await ssh.sftp();
  await sftp.writeFile('VERSION', version);
  return (await ssh.exec('cat VERSION', { check: true })).stdout;
}

let server: SshServer;
beforeAll(async () => {
  server = await startServer(); // 127.0.0.1, free port, fresh temp root, generated keys
});
afterAll(() => server.stop());

it('deploys', async () => {
  expect(await deploy(server.clientOptions(), 'v2')).toBe('v2');
});

it('fails with a typed error, not a hang, when the link goes dead', async () => {
  await using ssh = new SshClient({ ...server.clientOptions(), keepaliveIntervalMs: 200, keepaliveCountMax: 2, reconnect: false });
  await ssh.connect();
  server.faults.blackhole(); // no FIN, no RST: only the keep-alive can tell
  try {
    await expect(ssh.exec('sleep 10')).rejects.toMatchObject({ code: 'ERR_SSH_CONNECTION_LOST' });
  } finally {
    server.faults.resume();
  }
});

it('survives a server restart', async () => {
  await using ssh = new SshClient({ ...server.clientOptions(), reconnect: { minDelayMs: 50 } });
  await ssh.connect();
  const healed = new Promise<void>((resolve) => ssh.once('ready', () => resolve()));
  await server.faults.restart(); // every connection drops; same port and host key again
  await healed; // the client reconnected by itself
  expect((await ssh.exec('echo back')).stdout).toBe('back\n');
});
