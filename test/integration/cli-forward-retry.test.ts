// `ssh-tether forward` starts before the server answers and waits for it (connect({ retry: true }),
// autossh's behaviour): the server is behind a fault proxy that refuses every connection for 2 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sharedSshd } from '../helpers/shared.js';
import { knownHostsFor } from '../helpers/client.js';
import { CLI, ensureCliBuilt } from '../helpers/cli.js';
import { waitFor, writeSshConfig } from '../helpers/common.js';

const info = sharedSshd();


let proxy: FaultProxy;
let dir: string;
beforeAll(async () => {
  await ensureCliBuilt();
  proxy = await FaultProxy.start({ host: info.host, port: info.port });
  dir = mkdtempSync(join(tmpdir(), 'tether-cli-retry-'));
}, 120_000);
afterAll(async () => {
  await proxy.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ssh-tether forward waits for a server that is not up yet', () => {
  it('-L: retries while refused, then forwards; Ctrl-C exits 0', async () => {
    const config = writeSshConfig(
      [
        {
          host: 'late',
          HostName: proxy.host,
          Port: proxy.port,
          User: info.username,
          IdentityFile: info.privateKeyPath,
          UserKnownHostsFile: knownHostsFor(info, proxy.host, proxy.port),
          GlobalKnownHostsFile: 'none',
          IdentityAgent: 'none',
        },
      ],
      dir,
    );
    const echo = net.createServer((s) => {
      s.on('error', () => undefined);
      s.on('data', (d) => s.write(`echo:${d.toString()}`));
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const localPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));

    proxy.refuse(true);
    const child = spawn(process.execPath, [CLI, 'forward', '-F', config, 'late', '-L', `${localPort}:127.0.0.1:${echoPort}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SSH_AUTH_SOCK: '' },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    try {
      // The server comes up only once the CLI has been refused and said it retries (a fixed
      // delay raced the CLI's start-up on a loaded machine: it then never saw a refusal).
      await waitFor(() => /reconnecting \(attempt 1 /.test(stderr), 20_000);
      proxy.refuse(false);
      await waitFor(() => stderr.includes('forwarding -L'), 15_000);
      expect(stderr).toContain(`listening on 127.0.0.1:${localPort}`);
      const reply = await new Promise<string>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: localPort });
        s.on('error', reject);
        s.on('data', (d) => {
          s.destroy();
          resolve(d.toString());
        });
        s.write('hi');
      });
      expect(reply).toBe('echo:hi');
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      clearTimeout(killer);
      proxy.refuse(false);
      child.kill('SIGKILL');
      await new Promise((r) => echo.close(r));
    }
  });
});
