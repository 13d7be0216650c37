import { describe, expect, it } from 'vitest';
import diagnosticsChannel from 'node:diagnostics_channel';
import { SshClient, DIAGNOSTICS_CHANNELS, type Logger } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';

const info = sharedSshd();

function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (obj: object, msg?: string) => lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  return { logger: { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') }, lines };
}

describe('health, logging and diagnostics_channel', () => {
  it('health() reports uptime, keep-alive RTT summary, channels and bytes', async () => {
    const ssh = new SshClient(clientOptions(info, { keepaliveIntervalMs: 100 }));
    const rtts: number[] = [];
    ssh.on('keepalive', ({ rttMs }) => rtts.push(rttMs));
    await ssh.connect();
    expect(await waitFor(() => rtts.length >= 3, 5_000)).toBe(true);
    await ssh.exec('head -c 100000 /dev/zero');
    const h = ssh.health();
    expect(h.state).toBe('ready');
    expect(h.uptimeMs).toBeGreaterThan(0);
    expect(h.keepaliveRtt.count).toBe(Math.min(rtts.length, 64));
    expect(h.keepaliveRtt.minMs).toBeLessThanOrEqual(h.keepaliveRtt.maxMs!);
    expect(h.lastKeepaliveRttMs).toBe(rtts.at(-1));
    expect(h.bytesIn).toBeGreaterThan(100_000);
    expect(h.bytesOut).toBeGreaterThan(0);
    expect(h.disconnects).toBe(0);
    expect(h.lastDisconnectCause).toBeUndefined();
    await ssh.close();
  });

  it('logs lifecycle events through a pino-compatible logger with secrets redacted; ssh2 debug only when asked', async () => {
    const { logger, lines } = captureLogger();
    const secret = 'pa55-word-never-logged';
    const ssh = new SshClient(clientOptions(info, { logger, password: secret, debugProtocol: true }));
    await ssh.exec('true');
    await ssh.close();
    const all = lines.join('\n');
    expect(all).toContain('ssh-tether: connecting -> ready');
    expect(lines.some((l) => l.startsWith('debug '))).toBe(true);
    expect(all).not.toContain(secret);

    const quiet = captureLogger();
    const ssh2 = new SshClient(clientOptions(info, { logger: quiet.logger }));
    await ssh2.exec('true');
    await ssh2.close();
    expect(quiet.lines.some((l) => l.startsWith('debug '))).toBe(false);
    expect(quiet.lines.length).toBeGreaterThan(0);
  });

  it('publishes state, connect and channel events on node:diagnostics_channel', async () => {
    const seen: string[] = [];
    const ssh = new SshClient(clientOptions(info));
    const subs = Object.values(DIAGNOSTICS_CHANNELS).map((name) => {
      const fn = (msg: unknown): void => {
        if ((msg as { client?: unknown }).client === ssh) seen.push(name);
      };
      diagnosticsChannel.subscribe(name, fn);
      return () => diagnosticsChannel.unsubscribe(name, fn);
    });
    try {
      await ssh.exec('true');
      await ssh.close();
    } finally {
      for (const u of subs) u();
    }
    expect(seen).toContain('ssh-tether:state');
    expect(seen).toContain('ssh-tether:connect');
    expect(seen).toContain('ssh-tether:channel:open');
    expect(seen).toContain('ssh-tether:channel:close');
  });
});
