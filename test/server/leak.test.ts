// 1,000 connect/exec/close cycles against the in-process server leave no handles behind.
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { SshClient } from '../../src/index.js';
import { startServer } from '../../src/server/index.js';
import { waitFor } from '../helpers/wait.js';

const CYCLES = 1_000;

function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

async function settle(check: () => boolean, timeoutMs: number): Promise<void> {
  await waitFor(check, timeoutMs, undefined, 20);
}

describe('in-process server: no leaks', () => {
  it(`${CYCLES} connect/exec/close cycles leave no handles, connections, channels or fds`, { timeout: 300_000 }, async () => {
    await using server = await startServer();
    const options = { ...server.clientOptions(), keepaliveIntervalMs: 0, reconnect: false as const };
    // warm up (lazy module state, crypto) before taking the baseline
    {
      const ssh = new SshClient(options);
      await ssh.connect();
      await ssh.exec('true');
      await ssh.close();
    }
    await settle(() => server.connections.length === 0, 5_000);
    const before = resources();
    const fdsBefore = readdirSync('/proc/self/fd').length;
    let ok = 0;
    for (let i = 0; i < CYCLES; i++) {
      const ssh = new SshClient(options);
      await ssh.connect();
      const r = await ssh.exec(`echo ${i}`);
      if (r.stdout === `${i}\n` && r.exitCode === 0) ok++;
      await ssh.close();
    }
    expect(ok).toBe(CYCLES);
    await settle(() => server.connections.length === 0 && server.channels.length === 0, 10_000);
    expect(server.connections).toEqual([]);
    expect(server.channels).toEqual([]);
    const same = (): boolean => {
      const now = resources();
      return ['TCPSocketWrap', 'TCPServerWrap', 'PipeWrap', 'ProcessWrap', 'Timeout'].every((k) => (now[k] ?? 0) <= (before[k] ?? 0));
    };
    await settle(same, 10_000);
    const after = resources();
    for (const k of ['TCPSocketWrap', 'TCPServerWrap', 'PipeWrap', 'ProcessWrap', 'Timeout']) expect(after[k] ?? 0, k).toBeLessThanOrEqual(before[k] ?? 0);
    expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fdsBefore + 2);
  });
});
