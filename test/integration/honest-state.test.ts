// Issue 15 item 3 ("honest state"): what the client reports (host, port, user, why it closed,
// forward states) is what really happens; bounded waits during outages; clear connect errors.
import { inspect } from 'node:util';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, SshClient, SshError, type ForwardEvent } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { freePort, startSshd, describeSshd, type SshdHandle } from '../helpers/sshd.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';

const info = sharedSshd();
const clients: SshClient[] = [];
function track(c: SshClient): SshClient {
  clients.push(c);
  return c;
}
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

/** Fails naming the step instead of hanging the test. */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function configFile(body: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'tether-cfg-')), 'config');
  writeFileSync(f, body, { mode: 0o600 });
  return f;
}

describe('host, port and user after ssh_config', () => {
  it('health(), host/port/username, util.inspect and log lines show HostName, Port and User from ssh_config', async () => {
    const file = configFile(`Host honest-box
  HostName ${info.host}
  Port ${info.port}
  User ${info.username}
  IdentityFile ${info.privateKeyPath}
  IdentitiesOnly yes
  UserKnownHostsFile ${info.knownHostsPath}
  GlobalKnownHostsFile /dev/null
`);
    const lines: Array<Record<string, unknown>> = [];
    const rec = (obj: unknown): void => {
      if (typeof obj === 'object' && obj !== null) lines.push(obj as Record<string, unknown>);
    };
    const logger = { debug: rec, info: rec, warn: rec, error: rec };
    const ssh = track(new SshClient({ host: 'honest-box', sshConfig: file, agent: false, logger }));
    await ssh.connect();
    expect((await ssh.exec('whoami')).stdout.trim()).toBe(info.username);
    expect(ssh.host).toBe(info.host);
    expect(ssh.port).toBe(info.port);
    expect(ssh.username).toBe(info.username);
    expect(ssh.alias).toBe('honest-box');
    const h = ssh.health();
    expect(h).toMatchObject({ host: info.host, port: info.port, username: info.username, alias: 'honest-box', closedBy: undefined });
    const shown = inspect(ssh);
    expect(shown).toContain(`host: "${info.host}"`);
    expect(shown).toContain(`port: ${info.port}`);
    expect(shown).toContain(`username: "${info.username}"`);
    expect(shown).toContain('alias: "honest-box"');
    const withHost = lines.filter((l) => 'host' in l);
    expect(withHost.length).toBeGreaterThan(0);
    for (const l of withHost) {
      expect(l.host).toBe(info.host);
      expect(l.port).toBe(info.port);
    }
  });
});

describe('why the client closed', () => {
  let server: SshdHandle | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('a host key changed on reconnect: health().closedBy is ERR_SSH_HOST_KEY_MISMATCH, not the lost link', async () => {
    server = await startSshd();
    const first = describeSshd(server);
    const ssh = track(new SshClient(clientOptions(first, { reconnect: { minDelayMs: 50, maxDelayMs: 200 }, connectTimeoutMs: 3_000 })));
    const closed = new Promise<void>((resolve) => ssh.once('close', () => resolve()));
    await ssh.connect();
    expect(ssh.health().closedBy).toBeUndefined();
    const port = server.port;
    await server.stop();
    // Same port, new host key: the known_hosts of the first server no longer matches.
    server = await startSshd({ port });
    await bounded(closed, 15_000, 'client closing after the host key changed');
    const h = ssh.health();
    expect(h.state).toBe('closed');
    expect(h.closedBy?.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
    expect(h.closedBy?.message).toMatch(/has changed/);
    expect(h.lastDisconnectCause?.code).toBe('ERR_SSH_CONNECTION_LOST');
  });

  it('close() is reported as closedBy ERR_SSH_CLOSED', async () => {
    const ssh = new SshClient(clientOptions(info));
    await ssh.connect();
    await ssh.close();
    expect(ssh.health().closedBy?.code).toBe('ERR_SSH_CLOSED');
  });
});

describe('forwards while the client reconnects', () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
  });
  afterAll(async () => {
    await proxy.close();
  });

  it("local and dynamic forwards are 'waiting' with a 'down' event while reconnecting, 'up' again after; a waiting connection is closed after forwardConnectionWaitMs", async () => {
    proxy.resume();
    const ssh = track(
      new SshClient(
        clientOptions(
          info,
          { keepaliveIntervalMs: 300, keepaliveCountMax: 1, connectTimeoutMs: 1_000, reconnect: { minDelayMs: 100, maxDelayMs: 300 }, forwardConnectionWaitMs: 300 },
          proxy,
        ),
      ),
    );
    const events: ForwardEvent[] = [];
    ssh.on('forward', (e) => events.push(e));
    await ssh.connect();
    const local = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: info.port });
    const socks = await ssh.forwardDynamic();
    expect(local.state).toBe('up');
    expect(socks.state).toBe('up');
    expect(ssh.health().forwards.map((f) => f.state)).toEqual(['up', 'up']);

    proxy.blackhole();
    expect(await waitFor(() => ssh.state === 'reconnecting', 10_000)).toBe(true);
    expect(local.state).toBe('waiting');
    expect(socks.state).toBe('waiting');
    expect(ssh.health().forwards.map((f) => f.state)).toEqual(['waiting', 'waiting']);
    const downs = events.filter((e) => e.state === 'down');
    expect(downs.map((e) => e.forward)).toEqual([local, socks]);
    expect(downs.every((e) => e.cause instanceof SshError)).toBe(true);

    // A connection accepted now waits at most forwardConnectionWaitMs, then is closed (the link stays down).
    const sock = net.connect(local.localPort, '127.0.0.1');
    sock.on('error', () => undefined);
    await bounded(new Promise<void>((resolve) => sock.once('close', () => resolve())), 8_000, 'waiting local connection closed');
    expect(ssh.state).not.toBe('ready');

    proxy.resume();
    expect(await waitFor(() => ssh.state === 'ready', 15_000)).toBe(true);
    expect(await waitFor(() => local.state === 'up' && socks.state === 'up', 5_000)).toBe(true);
    const ups = events.filter((e) => e.state === 'up').map((e) => e.forward);
    expect(ups).toContain(local);
    expect(ups).toContain(socks);
    expect(ssh.health().forwards.map((f) => f.state)).toEqual(['up', 'up']);
  });

  it("a refused channel open of a local or dynamic forward emits a 'refused' forward event with the server's reason", async () => {
    proxy.resume();
    const ssh = track(new SshClient(clientOptions(info)));
    const events: ForwardEvent[] = [];
    ssh.on('forward', (e) => events.push(e));
    await ssh.connect();
    const closedPort = await freePort();
    const local = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: closedPort });
    const s = net.connect(local.localPort, '127.0.0.1');
    s.on('error', () => undefined);
    await bounded(new Promise<void>((resolve) => s.once('close', () => resolve())), 8_000, 'refused local connection closed');
    const socks = await ssh.forwardDynamic();
    const reply = await bounded(
      new Promise<number>((resolve, reject) => {
        const c = net.connect(socks.localPort, '127.0.0.1');
        let buf = Buffer.alloc(0);
        c.on('error', reject);
        c.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 12) {
            c.destroy();
            resolve(buf[3] ?? -1);
          }
        });
        c.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, closedPort >> 8, closedPort & 255]));
      }),
      8_000,
      'SOCKS reply',
    );
    expect(reply).toBe(5); // connection refused
    const refused = events.filter((e) => e.state === 'refused');
    expect(refused.map((e) => e.forward)).toEqual([local, socks]);
    for (const e of refused) {
      expect(e.cause?.code).toBe('ERR_SSH_CHANNEL_OPEN');
      expect((e.cause as SshError & { reason?: number }).reason).toBe(2); // RFC 4254: SSH_OPEN_CONNECT_FAILED
      expect(e.target).toBe(`127.0.0.1:${closedPort}`);
    }
    expect(local.state).toBe('up');
  });

  it('operationTimeoutMs: an exec issued during an outage rejects ERR_SSH_TIMEOUT instead of waiting forever', async () => {
    proxy.resume();
    const ssh = track(
      new SshClient(
        clientOptions(info, { keepaliveIntervalMs: 300, keepaliveCountMax: 1, connectTimeoutMs: 1_000, reconnect: { minDelayMs: 100, maxDelayMs: 300 }, operationTimeoutMs: 1_000 }, proxy),
      ),
    );
    await ssh.connect();
    proxy.blackhole();
    expect(await waitFor(() => ssh.state === 'reconnecting', 10_000)).toBe(true);
    const err = (await bounded(ssh.exec('echo hi').catch((e: unknown) => e), 10_000, 'exec during the outage')) as SshError;
    expect(err).toBeInstanceOf(SshError);
    expect(err.code).toBe('ERR_SSH_TIMEOUT');
    expect(err.message).toMatch(/operationTimeoutMs/);
    proxy.resume();
  });
});

describe('close() and a spawn that never ends', () => {
  it('close() stops a spawned `tail -f` (the remote process is gone) instead of waiting closeTimeoutMs', async () => {
    const file = `/tmp/tether-tail-${randomBytes(6).toString('hex')}`;
    const ssh = new SshClient(clientOptions(info, { closeTimeoutMs: 60_000 }));
    await ssh.exec(['touch', file]);
    // `exec`: the shell becomes tail, so this checks close()'s stop path, not the process-group
    // kill of a command's children (issue 13 item 1, handled in src/exec/).
    const p = await ssh.spawn(`exec tail -f ${file}`);
    p.stdout.resume();
    p.stderr.resume();
    expect(await waitFor(() => p.pid !== undefined, 5_000)).toBe(true);
    const checker = track(new SshClient(clientOptions(info)));
    const running = async (): Promise<boolean> => (await checker.exec(['pgrep', '-f', `[t]ail -f ${file}`])).exitCode === 0;
    expect(await running()).toBe(true);
    const exited = p.exited.catch((e: unknown) => e);
    await bounded(ssh.close(), 20_000, 'close() with a running tail -f');
    expect(((await exited) as SshError).code).toBe('ERR_SSH_CLOSED');
    expect(ssh.state).toBe('closed');
    expect(await waitFor(async () => !(await running()), 3_000)).toBe(true);
    await checker.exec(['rm', '-f', file]);
  });
});

describe('clear connect errors', () => {
  it('a name that does not resolve and is not in ssh_config: not retryable, says to check the name or add a Host block', async () => {
    const ssh = new SshClient({ host: 'no-such-host.invalid', sshConfig: configFile('Host other\n  Port 2222\n'), agent: false, identityFiles: [] });
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_CONNECT');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/check the name/);
    expect(err.message).toMatch(/Host no-such-host\.invalid/);
    expect(ssh.state).toBe('closed');
    expect(ssh.health().closedBy?.code).toBe('ERR_SSH_CONNECT');
  });

  it('ECONNREFUSED says to check that sshd runs and the port, and stays retryable', async () => {
    const port = await freePort();
    const ssh = new SshClient(clientOptions(info, { port }));
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_CONNECT');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/check that sshd runs/);
    expect(err.message).toContain(`port ${port}`);
    await ssh.close();
  });
});

describe('options', () => {
  it('reconnect: { retries: Infinity } and reconnect: DEFAULTS.reconnect are accepted (as README documents)', async () => {
    const a = new SshClient(clientOptions(info, { reconnect: { retries: Infinity } }));
    const b = new SshClient(clientOptions(info, { reconnect: DEFAULTS.reconnect }));
    await a.connect();
    await b.connect();
    await Promise.all([a.close(), b.close()]);
    expect(() => new SshClient(clientOptions(info, { reconnect: { retries: 1.5 } }))).toThrow(/'reconnect'/);
  });

  it('a typo in an option name gets "did you mean"', () => {
    const bad = { host: 'x', identityFile: ['/k'] } as unknown as ConstructorParameters<typeof SshClient>[0];
    expect(() => new SshClient(bad)).toThrow(/unknown option 'identityFile' \(did you mean `identityFiles`\?\)/);
    const far = { host: 'x', zzzzzzzz: 1 } as unknown as ConstructorParameters<typeof SshClient>[0];
    expect(() => new SshClient(far)).not.toThrow(/did you mean/);
    expect(() => new SshClient(far)).toThrow(/unknown option 'zzzzzzzz'/);
  });
});
