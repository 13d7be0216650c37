import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { SshClient, SftpClient } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { FaultProxy } from '../helpers/fault-proxy.js';

const info = sharedSshd();

describe('SshClient.sftp()', () => {
  let proxy: FaultProxy;
  let ssh: SshClient;
  beforeAll(async () => {
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
    ssh = new SshClient(clientOptions(info, { maxSessions: 2, keepaliveIntervalMs: 300, keepaliveCountMax: 2, reconnect: { minDelayMs: 50, maxDelayMs: 200 } }, proxy));
  });
  afterAll(async () => {
    await ssh.close();
    await proxy.close();
  });

  it('is one SFTP session per client, counted as a session channel', async () => {
    const sftp = await ssh.sftp();
    expect(sftp).toBeInstanceOf(SftpClient);
    expect(await ssh.sftp()).toBe(sftp);
    const path = `${info.homeDir}/client-sftp-${process.pid}.bin`;
    const data = randomBytes(300_000);
    await sftp.writeFile(path, data);
    expect(createHash('sha256').update(await sftp.readFile(path)).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(ssh.health().openChannels).toBe(1);
    expect(ssh.health().sftp.bytesWritten).toBeGreaterThanOrEqual(300_000);
    expect(ssh.health().sftp.bytesRead).toBeGreaterThanOrEqual(300_000);
    // with maxSessions 2 and SFTP holding one, execs still all complete (queued on one slot)
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => ssh.exec(`echo ${i}`)));
    expect(rs.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
    await sftp.unlink(path);
  });

  it('is opened again after a reconnect', async () => {
    const sftp = await ssh.sftp();
    await sftp.realpath('.');
    proxy.blackhole();
    expect(await waitFor(() => ssh.state === 'reconnecting', 5_000)).toBe(true);
    proxy.resume();
    expect(await waitFor(() => ssh.state === 'ready', 10_000)).toBe(true);
    expect(await sftp.realpath('.')).toBe(info.homeDir);
  });

  it('after close(), sftp() rejects with ERR_SSH_CLOSED', async () => {
    const c = new SshClient(clientOptions(info));
    await (await c.sftp()).realpath('.');
    await c.close();
    await expect(c.sftp()).rejects.toMatchObject({ code: 'ERR_SSH_CLOSED' });
  });
});
