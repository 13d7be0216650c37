// Idle persist (issue 17 item 4, OpenSSH ControlPersist): an unused link is ended after
// idleTimeoutMs and the next operation connects again. The link's end is checked on the server
// side of the client: the fault proxy between client and sshd sees the TCP connection close.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { SshClient, SshError, type ConnectionState } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions } from '../helpers/client.js';
import { useClients, waitFor } from '../helpers/common.js';

const info = sharedSshd();
const IDLE_MS = 400;
/** Every client a test makes is closed after it. */
const track = useClients();

describe('idle persist (idleTimeoutMs)', () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
  });
  afterAll(async () => {
    await proxy.close();
  });

  it('ends the unused link after idleTimeoutMs (state idle, TCP closed), and the next exec reconnects and succeeds', async () => {
    const accepted0 = proxy.acceptedCount;
    const ssh = track(new SshClient(clientOptions(info, { idleTimeoutMs: IDLE_MS }, proxy)));
    const transitions: string[] = [];
    ssh.on('state', ({ previous, state }) => transitions.push(`${previous}->${state}`));
    let disconnects = 0;
    ssh.on('disconnect', () => (disconnects += 1));
    await ssh.connect();
    expect((await ssh.exec('echo one')).stdout).toBe('one\n');
    expect(proxy.connectionCount).toBe(1);
    // Bounded wait: idleTimeoutMs + the check period + slack.
    expect(await waitFor(() => ssh.state === 'idle', IDLE_MS + 5_000)).toBe(true);
    // The server side saw the connection end.
    expect(await waitFor(() => proxy.connectionCount === 0, 3_000)).toBe(true);
    const h = ssh.health();
    expect(h.state).toBe('idle');
    expect(h.idleSince).toBeInstanceOf(Date);
    expect(h.connectedSince).toBeUndefined();
    expect(h.disconnects).toBe(0); // a planned end, not a loss
    expect(disconnects).toBe(0);
    expect(transitions).toEqual(['idle->connecting', 'connecting->ready', 'ready->idle']);

    // The next call reconnects transparently.
    const r = await ssh.exec('echo two');
    expect(r.stdout).toBe('two\n');
    expect(r.exitCode).toBe(0);
    expect(ssh.state).toBe('ready');
    expect(ssh.health().idleSince).toBeUndefined();
    expect(proxy.acceptedCount - accepted0).toBe(2);
    expect(proxy.connectionCount).toBe(1);
    expect(transitions.slice(3)).toEqual(['idle->connecting', 'connecting->ready']);
    // ...and ends again once unused.
    expect(await waitFor(() => ssh.state === 'idle', IDLE_MS + 5_000)).toBe(true);
    expect(await waitFor(() => proxy.connectionCount === 0, 3_000)).toBe(true);
    await ssh.close();
    expect(ssh.state).toBe('closed');
    await expect(ssh.exec('true')).rejects.toMatchObject({ code: 'ERR_SSH_CLOSED' });
  });

  it('keeps the link while a spawned command runs, ends it once the command is gone', async () => {
    const ssh = track(new SshClient(clientOptions(info, { idleTimeoutMs: IDLE_MS }, proxy)));
    const states: ConnectionState[] = [];
    ssh.on('state', ({ state }) => states.push(state));
    await ssh.connect();
    const p = await ssh.spawn('sleep 30');
    // Several idle periods pass: the open session channel keeps the link.
    await new Promise((r) => setTimeout(r, IDLE_MS * 4));
    expect(ssh.state).toBe('ready');
    expect(states).not.toContain('idle');
    expect(proxy.connectionCount).toBe(1);
    p.kill();
    await p.exited.catch(() => undefined);
    expect(await waitFor(() => ssh.state === 'idle', IDLE_MS + 5_000)).toBe(true);
    expect(await waitFor(() => proxy.connectionCount === 0, 3_000)).toBe(true);
  });

  it('keeps the link while a forward listens (and carries traffic after the idle period), ends it after the forward is closed', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()));
    const echoPort = (echo.address() as net.AddressInfo).port;
    try {
      const ssh = track(new SshClient(clientOptions(info, { idleTimeoutMs: IDLE_MS }, proxy)));
      await ssh.connect();
      const fwd = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: echoPort });
      await new Promise((r) => setTimeout(r, IDLE_MS * 4));
      expect(ssh.state).toBe('ready');
      expect(proxy.connectionCount).toBe(1);
      const reply = await new Promise<string>((resolve, reject) => {
        const c = net.connect(fwd.localPort, fwd.localHost, () => c.end('ping'));
        let got = '';
        c.on('data', (d: Buffer) => (got += d.toString()));
        c.on('end', () => resolve(got));
        c.on('error', reject);
        setTimeout(() => reject(new Error('no echo within 5 s')), 5_000).unref();
      });
      expect(reply).toBe('ping');
      await fwd.close();
      expect(await waitFor(() => ssh.state === 'idle', IDLE_MS + 5_000)).toBe(true);
      expect(await waitFor(() => proxy.connectionCount === 0, 3_000)).toBe(true);
    } finally {
      echo.close();
    }
  });

  it('an SFTP session with nothing in flight does not keep the link: it ends after idleTimeoutMs and the next sftp().stat() reconnects', async () => {
    const accepted0 = proxy.acceptedCount;
    const ssh = track(new SshClient(clientOptions(info, { idleTimeoutMs: IDLE_MS }, proxy)));
    const sftp = await ssh.sftp();
    expect((await sftp.stat('/')).type).toBe('directory');
    expect(ssh.health().openChannels).toBe(1); // the cached SFTP session channel stays open
    expect(await waitFor(() => ssh.state === 'idle', IDLE_MS + 5_000)).toBe(true);
    expect(await waitFor(() => proxy.connectionCount === 0, 3_000)).toBe(true);
    expect(await waitFor(() => ssh.health().openChannels === 0, 3_000)).toBe(true);
    // The same SftpClient opens a new session on a new link, transparently.
    expect((await sftp.stat('/')).type).toBe('directory');
    expect((await (await ssh.sftp()).stat('/tmp')).type).toBe('directory');
    expect(ssh.state).toBe('ready');
    expect(proxy.acceptedCount - accepted0).toBe(2);
    expect(await waitFor(() => ssh.state === 'idle', IDLE_MS + 5_000)).toBe(true);
  });

  it('an SFTP stream left open keeps the link; once it is closed the link ends', async () => {
    const ssh = track(new SshClient(clientOptions(info, { idleTimeoutMs: IDLE_MS }, proxy)));
    const sftp = await ssh.sftp();
    // Paused after its first chunk: a handle open on the server, no request necessarily pending.
    const stream = sftp.createReadStream('/etc/services', { highWaterMark: 1024 });
    await new Promise<void>((resolve, reject) => {
      stream.once('readable', () => resolve());
      stream.once('error', reject);
    });
    await new Promise((r) => setTimeout(r, IDLE_MS * 4));
    expect(ssh.state).toBe('ready');
    expect(proxy.connectionCount).toBe(1);
    stream.destroy();
    expect(await waitFor(() => ssh.state === 'idle', IDLE_MS + 5_000)).toBe(true);
    expect(await waitFor(() => proxy.connectionCount === 0, 3_000)).toBe(true);
  });

  it('without idleTimeoutMs the link stays', async () => {
    const ssh = track(new SshClient(clientOptions(info, {}, proxy)));
    await ssh.exec('true');
    await new Promise((r) => setTimeout(r, IDLE_MS * 3));
    expect(ssh.state).toBe('ready');
    expect(ssh.health().idleSince).toBeUndefined();
  });

  it('rejects a bad idleTimeoutMs with ERR_SSH_CONFIG naming it', () => {
    let err: unknown;
    try {
      new SshClient(clientOptions(info, { idleTimeoutMs: -1 }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_CONFIG');
    expect((err as SshError).message).toContain('idleTimeoutMs');
  });
});
