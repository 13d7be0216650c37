// Forwards against servers of their own: refusals (AllowTcpForwarding no, PermitListen),
// declared forwards with ExitOnForwardFailure, and a blackholed link under live forwards.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { freePort, startSshd, type SshdHandle } from '../helpers/sshd.js';
import { SshError } from '../../src/errors.js';
import { parseForwardSpecs } from '../../src/forward/index.js';
import { canBind, connect, echoServer, roundTrip, setup, waitFor } from './forward-util.js';

/** Fails with a message naming the step instead of hanging the test. */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

let noForwarding: SshdHandle;
let permitListen: SshdHandle;
let permittedPort: number;
let echo: Awaited<ReturnType<typeof echoServer>>;

beforeAll(async () => {
  permittedPort = await freePort();
  [noForwarding, permitListen, echo] = await Promise.all([
    startSshd({ extraConfig: ['AllowTcpForwarding no'] }),
    startSshd({ extraConfig: [`PermitListen 127.0.0.1:${permittedPort}`] }),
    echoServer(),
  ]);
});
afterAll(async () => {
  await Promise.all([noForwarding.stop(), permitListen.stop(), echo.close()]);
});

describe('server refusals', () => {
  it('AllowTcpForwarding no: remote forward -> ERR_SSH_FORWARD, SOCKS CONNECT -> 0x02, local connection closed', async () => {
    const { provider, manager } = setup(noForwarding);
    try {
      const err = await manager.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localPort: echo.port }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_FORWARD');
      expect((err as SshError).cause).toBeInstanceOf(Error);
      expect(manager.list()).toEqual([]);

      await using socks = await manager.forwardDynamic({});
      const rep = await new Promise<number>((resolve, reject) => {
        const s = net.connect(socks.localPort, '127.0.0.1');
        let buf = Buffer.alloc(0);
        s.on('error', reject);
        s.on('data', (c: Buffer) => {
          buf = Buffer.concat([buf, c]);
          if (buf.length >= 12) {
            s.destroy();
            resolve(buf[3]!);
          }
        });
        s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 255]));
      });
      expect(rep).toBe(0x02);

      await using local = await manager.forwardLocal({ remoteHost: '127.0.0.1', remotePort: echo.port });
      const got = await roundTrip(local.localPort, 'x').catch((e: NodeJS.ErrnoException) => e.code);
      expect(['', 'ECONNRESET']).toContain(got);
    } finally {
      await manager.closeAll();
      await provider.close();
    }
  });

  it('PermitListen: a port not listed -> ERR_SSH_FORWARD; the listed one works', async () => {
    const { provider, manager } = setup(permitListen);
    try {
      let other = permittedPort + 1;
      if (other > 65535) other = permittedPort - 1;
      await expect(manager.forwardRemote({ remoteHost: '127.0.0.1', remotePort: other, localPort: echo.port })).rejects.toMatchObject({
        code: 'ERR_SSH_FORWARD',
      });
      await using ok = await manager.forwardRemote({ remoteHost: '127.0.0.1', remotePort: permittedPort, localPort: echo.port });
      expect(ok.remotePort).toBe(permittedPort);
      expect(await roundTrip(permittedPort, 'permitted')).toBe('permitted');
    } finally {
      await manager.closeAll();
      await provider.close();
    }
  });
});

describe('declared forwards', () => {
  it('exitOnForwardFailure: one refused forward rejects ERR_SSH_FORWARD and leaves nothing open', async () => {
    const { provider, manager } = setup(noForwarding);
    try {
      const localPort = await freePort();
      const socksPort = await freePort();
      const specs = parseForwardSpecs([
        { type: 'local', localPort, remotePort: echo.port },
        { type: 'dynamic', localPort: socksPort },
        { type: 'remote', remoteHost: '127.0.0.1', localPort: echo.port },
      ]);
      const link = await provider.link();
      const err = await manager.applyDeclared(specs, link, { exitOnForwardFailure: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_FORWARD');
      expect(manager.list()).toEqual([]);
      expect(await canBind(localPort)).toBe(true);
      expect(await canBind(socksPort)).toBe(true);
    } finally {
      await manager.closeAll();
      await provider.close();
    }
  });

  it('without exitOnForwardFailure: the failure is an error event, the rest stays up', async () => {
    const { provider, manager, events } = setup(noForwarding);
    try {
      const blocker = net.createServer();
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
      const taken = (blocker.address() as net.AddressInfo).port;
      const specs = parseForwardSpecs([
        { type: 'dynamic', localPort: 0 },
        { type: 'local', localPort: taken, remotePort: echo.port },
        { type: 'remote', remoteHost: '127.0.0.1', localPort: echo.port },
      ]);
      const link = await provider.link();
      await manager.applyDeclared(specs, link, { exitOnForwardFailure: false });
      const kinds = events.filter((e) => e.state === 'error').map((e) => e.forward.type);
      expect(kinds.sort()).toEqual(['local', 'remote']);
      expect(events.every((e) => e.cause?.code === 'ERR_SSH_FORWARD')).toBe(true);
      const open = manager.list();
      expect(open.map((h) => h.type).sort()).toEqual(['dynamic', 'remote']);
      const remote = open.find((h) => h.type === 'remote');
      expect(remote?.type === 'remote' && remote.state).toBe('error');
      await new Promise<void>((r) => blocker.close(() => r()));
    } finally {
      await manager.closeAll();
      await provider.close();
    }
  });
});

describe('across a dead link', () => {
  let sshd: SshdHandle;
  let proxy: FaultProxy;
  beforeAll(async () => {
    // sshd notices the dead session after ~2-3 s and frees its remote-forward port; until then
    // our re-request is refused and retried with backoff.
    sshd = await startSshd({ extraConfig: ['ClientAliveInterval 1', 'ClientAliveCountMax 2'] });
    proxy = await FaultProxy.start({ host: sshd.host, port: sshd.port });
  });
  afterAll(async () => {
    await proxy.close();
    await sshd.stop();
  });

  it('blackhole under traffic: carried connections close, the local port carries new ones, the remote forward is back on its port', async () => {
    const { provider, manager, events } = setup(
      { host: proxy.host, port: proxy.port, username: sshd.username, privateKeyPath: sshd.privateKeyPath },
      { connectionWaitMs: 20_000 },
    );
    try {
      const local = await manager.forwardLocal({ remoteHost: '127.0.0.1', remotePort: echo.port });
      const remote = await manager.forwardRemote({ remoteHost: '127.0.0.1', localPort: echo.port });
      const remotePort = remote.remotePort;
      // The local forward follows the link too (up/down events, state 'up'/'waiting').
      const remoteStates = (): string[] => events.filter((e) => e.forward === remote).map((e) => e.state);
      expect(remoteStates()).toEqual(['up']);
      expect(local.state).toBe('up');

      // Live traffic through both forwards.
      const viaLocal = await connect(local.localPort);
      const viaRemote = await connect(remotePort);
      // Ended by the forward: reset (the usual case) or, seen under heavy CPU load, a FIN (the
      // socket is half-open, so a FIN shows as 'end', not 'close'). Either way it is not left open.
      const localClosed = new Promise<void>((r) => {
        viaLocal.once('close', () => r());
        viaLocal.once('end', () => r());
      });
      viaLocal.on('error', () => undefined);
      viaRemote.on('error', () => undefined);
      for (const s of [viaLocal, viaRemote]) {
        s.on('data', () => undefined);
        s.write(Buffer.alloc(256 * 1024, 1));
      }
      await waitFor(() => local.stats().bytesIn > 0 && remote.stats().bytesIn > 0, 10_000, 'traffic');

      proxy.blackhole();
      viaLocal.write(Buffer.alloc(64 * 1024, 2)); // goes nowhere
      await bounded(provider.drop(), 10_000, 'drop'); // what the keep-alive does when it declares the link dead

      await bounded(localClosed, 10_000, 'carried connection closed'); // the connection carried on the dead link is closed
      await waitFor(() => local.stats().connectionsActive === 0, 10_000, 'local connections closed');
      await waitFor(() => events.some((e) => e.state === 'down' && e.forward === remote), 10_000, 'down event');
      expect(local.state).toBe('waiting');
      expect(events.some((e) => e.state === 'down' && e.forward === local)).toBe(true);
      const down = events.find((e) => e.state === 'down' && e.forward === remote);
      expect(down?.forward).toBe(remote);
      expect(down?.cause?.code).toBe('ERR_SSH_CONNECTION_LOST');
      expect(remote.state).toBe('down');
      viaRemote.destroy();

      proxy.resume();
      // Same local port; this connection waits for the new link, then is carried.
      expect(await bounded(roundTrip(local.localPort, 'after the drop'), 25_000, 'round trip after the drop')).toBe('after the drop');
      await waitFor(() => remote.state === 'up', 20_000, 'remote forward up again');
      expect(remote.remotePort).toBe(remotePort);
      expect(remoteStates()).toEqual(['up', 'down', 'up']);
      expect(local.state).toBe('up');
      expect(await bounded(roundTrip(remotePort, 'remote again'), 10_000, 'remote round trip')).toBe('remote again');
      expect(local.stats().connectionsTotal).toBe(2);
    } finally {
      await bounded(manager.closeAll(), 10_000, 'closeAll');
      await bounded(provider.close(), 10_000, 'provider close');
    }
  }, 90_000);
});
