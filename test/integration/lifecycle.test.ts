import { describe, expect, it } from 'vitest';
import { SshClient, SshError } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions } from '../helpers/client.js';

const info = sharedSshd();

describe('close, destroy and dispose', () => {
  it('any operation connects first', async () => {
    const ssh = new SshClient(clientOptions(info));
    expect(ssh.state).toBe('idle');
    expect((await ssh.exec('echo lazy')).stdout).toBe('lazy\n');
    expect(ssh.state).toBe('ready');
    await ssh.close();
  });

  it('close() is graceful: a running command finishes, then every call rejects ERR_SSH_CLOSED; idempotent', async () => {
    const ssh = new SshClient(clientOptions(info));
    await ssh.connect();
    const running = ssh.exec('sleep 0.3; echo finished');
    await new Promise((r) => setTimeout(r, 50));
    const states: string[] = [];
    ssh.on('state', ({ state }) => states.push(state));
    await Promise.all([ssh.close(), ssh.close()]);
    expect((await running).stdout).toBe('finished\n');
    expect(states).toEqual(['closing', 'closed']);
    await ssh.close();
    for (const op of [() => ssh.exec('true'), () => ssh.connect(), () => ssh.spawn('true'), () => ssh.sftp()]) {
      await expect(op()).rejects.toMatchObject({ code: 'ERR_SSH_CLOSED' });
    }
  });

  it('close() waits at most closeTimeoutMs for open channels', async () => {
    const ssh = new SshClient(clientOptions(info, { closeTimeoutMs: 200 }));
    await ssh.connect();
    const running = ssh.exec('sleep 30').catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await ssh.close();
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(((await running) as SshError).code).toMatch(/ERR_SSH_(CLOSED|CONNECTION_LOST)/);
  });

  it('destroy() rejects in-flight and waiting operations at once with ERR_SSH_CLOSED (or the given error)', async () => {
    const ssh = new SshClient(clientOptions(info, { maxSessions: 1 }));
    await ssh.connect();
    const inflight = ssh.exec('sleep 30').catch((e: unknown) => e);
    const queued = ssh.exec('echo queued').catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    ssh.destroy();
    ssh.destroy();
    expect(((await inflight) as SshError).code).toBe('ERR_SSH_CLOSED');
    expect(((await queued) as SshError).code).toBe('ERR_SSH_CLOSED');
    expect(ssh.state).toBe('closed');

    const other = new SshClient(clientOptions(info));
    await other.connect();
    const p = other.exec('sleep 30').catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    other.destroy(new SshError('ERR_SSH_ABORTED', 'shutting down'));
    expect(((await p) as SshError).code).toBe('ERR_SSH_ABORTED');
  });

  it('await using closes the client at scope exit', async () => {
    let outer: SshClient | undefined;
    {
      await using ssh = new SshClient(clientOptions(info));
      outer = ssh;
      await ssh.connect();
    }
    expect(outer.state).toBe('closed');
  });

  it('a fatal error with no error listener does not crash the process', async () => {
    const ssh = new SshClient(clientOptions(info, { identityFiles: [], password: 'wrong' }));
    expect(ssh.listenerCount('error')).toBe(0);
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(ssh.state).toBe('closed');
  });

  it('a refused connection is ERR_SSH_CONNECT and leaves the client idle for a later retry', async () => {
    const ssh = new SshClient(clientOptions(info, { port: 1 }));
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_CONNECT');
    expect(err.retryable).toBe(true);
    expect(ssh.state).toBe('idle');
    await ssh.close();
  });
});
