// First connect with retry (issue 17 item 4, autossh's behaviour): `retryFirstConnect` /
// `connect({ retry: true })` apply the reconnect policy to the first connection, never to fatal
// errors (host key, auth), and stop once nobody waits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, type ConnectionState } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startSshd, type SshdHandle, describeSshd } from '../helpers/sshd.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, knownHostsFor } from '../helpers/client.js';
import { useClients, waitFor } from '../helpers/common.js';

const info = sharedSshd();
const FAST = { minDelayMs: 150, maxDelayMs: 400 };
/** Every client a test makes is closed after it. */
const track = useClients();

describe('first connect with retry', () => {
  let server: SshdHandle;
  let proxy: FaultProxy;
  beforeAll(async () => {
    server = await startSshd();
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
  });
  afterAll(async () => {
    await proxy.close();
    await server.remove();
  });

  it('retryFirstConnect: sshd that starts 2 s after the client is reached; the client stays connecting meanwhile', async () => {
    await server.stop();
    const ssh = track(new SshClient(clientOptions(describeSshd(server), { retryFirstConnect: true, reconnect: FAST, connectTimeoutMs: 3_000 })));
    const retries: string[] = [];
    ssh.on('reconnecting', ({ cause }) => retries.push(cause.code));
    const states: ConnectionState[] = [];
    ssh.on('state', ({ state }) => states.push(state));
    const connecting = ssh.connect();
    const starter = new Promise((r) => setTimeout(r, 2_000)).then(() => server.start());
    // Refused attempts are retried, not reported: the client keeps connecting.
    expect(await waitFor(() => retries.length >= 2, 2_000)).toBe(true);
    expect(ssh.state).toBe('connecting');
    await starter;
    await connecting;
    expect(ssh.state).toBe('ready');
    expect(new Set(retries)).toEqual(new Set(['ERR_SSH_CONNECT']));
    expect(states).toEqual(['connecting', 'ready']);
    const r = await ssh.exec('echo up');
    expect(r.stdout).toBe('up\n');
  });

  it('connect({ retry: true }) through a proxy that refuses for 2 s, then forwards', async () => {
    proxy.refuse(true);
    const ssh = track(new SshClient(clientOptions(info, { reconnect: FAST, connectTimeoutMs: 3_000 }, proxy)));
    let retries = 0;
    ssh.on('reconnecting', () => (retries += 1));
    const t = setTimeout(() => proxy.refuse(false), 2_000);
    try {
      await ssh.connect({ retry: true });
    } finally {
      clearTimeout(t);
      proxy.refuse(false);
    }
    expect(retries).toBeGreaterThanOrEqual(2);
    expect((await ssh.exec('echo via-proxy')).stdout).toBe('via-proxy\n');
  });

  it('without retry the first refused connect rejects at once and leaves the client idle', async () => {
    await server.stop();
    const ssh = track(new SshClient(clientOptions(describeSshd(server), { reconnect: FAST })));
    let retries = 0;
    ssh.on('reconnecting', () => (retries += 1));
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err).toBeInstanceOf(SshError);
    expect(err.code).toBe('ERR_SSH_CONNECT');
    expect(ssh.state).toBe('idle');
    expect(retries).toBe(0);
  });

  it('never retries a host-key mismatch or an auth failure (closed at once, no retry events)', async () => {
    // The shared server presented with another server's key as the known one: mismatch.
    const wrongKey = knownHostsFor(describeSshd(server), info.host, info.port);
    const a = track(new SshClient(clientOptions(info, { knownHostsFiles: [wrongKey], retryFirstConnect: true, reconnect: FAST })));
    let retries = 0;
    a.on('reconnecting', () => (retries += 1));
    const e1 = (await a.connect().catch((e: unknown) => e)) as SshError;
    expect(e1.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
    expect(a.state).toBe('closed');
    // The private server's user key is not authorized on the shared server: auth failure.
    const b = track(new SshClient(clientOptions(info, { identityFiles: [server.privateKeyPath] })));
    b.on('reconnecting', () => (retries += 1));
    const e2 = (await b.connect({ retry: true }).catch((e: unknown) => e)) as SshError;
    expect(e2.code).toBe('ERR_SSH_AUTH');
    expect(b.state).toBe('closed');
    expect(retries).toBe(0);
  });

  it('stops retrying once nobody waits (the caller timed out): back to idle, no more attempts', async () => {
    proxy.refuse(true);
    try {
      const ssh = track(new SshClient(clientOptions(info, { reconnect: FAST, connectTimeoutMs: 2_000 }, proxy)));
      const err = (await ssh.connect({ retry: true, timeoutMs: 800 }).catch((e: unknown) => e)) as SshError;
      expect(err.code).toBe('ERR_SSH_TIMEOUT');
      expect(await waitFor(() => ssh.state === 'idle', 3_000)).toBe(true);
      const seen = proxy.acceptedCount;
      await new Promise((r) => setTimeout(r, 1_000));
      expect(proxy.acceptedCount).toBe(seen);
    } finally {
      proxy.refuse(false);
    }
  });
});
