// Forward channels' eager receive window (issue 18 item 2, src/ssh2/window.ts) against the real
// sshd, through a delay-line proxy (every chunk 10 ms later each way): data stays byte-exact in
// both directions for local and remote forwards, and a local reader that stops reading stops the
// window top-ups, so the target's data stays in the server instead of piling up here.
// No timing is asserted.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient } from '../../src/index.js';
import { FORWARD_WINDOW } from '../../src/forward/carry.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { sharedSshd } from '../helpers/shared.js';
import { connect, dataServer, exchange, MiB } from './forward-util.js';

const info = sharedSshd();
let proxy: FaultProxy;
let ssh: SshClient;

beforeAll(async () => {
  proxy = await FaultProxy.start({ host: info.host, port: info.port });
  proxy.delay(10);
  ssh = new SshClient(clientOptions(info, {}, proxy));
  ssh.on('error', () => undefined);
  await ssh.connect();
});
afterAll(async () => {
  await ssh.close();
  await proxy.close();
});

describe('eager forward window at RTT ~20 ms', () => {
  it('local forward: 48 MiB down and 8 MiB up at once, byte-exact', async () => {
    const target = await dataServer(48 * MiB);
    try {
      await using fwd = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: target.port });
      const mine = await exchange(await connect(fwd.localPort), 8 * MiB);
      const theirs = await target.connections[0]!;
      expect(mine.receivedBytes).toBe(48 * MiB);
      expect(mine.received).toBe(theirs.sent);
      expect(theirs.receivedBytes).toBe(8 * MiB);
      expect(theirs.received).toBe(mine.sent);
    } finally {
      await target.close();
    }
  });

  it('remote forward: 48 MiB from the server side to the local target and 8 MiB back, byte-exact', async () => {
    const local = await dataServer(8 * MiB);
    try {
      await using fwd = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort: 0, localHost: '127.0.0.1', localPort: local.port });
      expect(fwd.remotePort).toBeGreaterThan(0);
      // a client on the server's host (loopback here) connects to the port the server bound
      const mine = await exchange(await connect(fwd.remotePort), 48 * MiB);
      const theirs = await local.connections[0]!;
      expect(theirs.receivedBytes).toBe(48 * MiB);
      expect(theirs.received).toBe(mine.sent);
      expect(mine.receivedBytes).toBe(8 * MiB);
      expect(mine.received).toBe(theirs.sent);
    } finally {
      await local.close();
    }
  });

  it('a local reader that stops reading stops the top-ups: the target is held back (bounded), then all of it arrives byte-exact', async () => {
    const total = 160 * MiB;
    const chunk = Buffer.alloc(MiB);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
    const sentHash = createHash('sha256');
    let targetSock: net.Socket | undefined;
    const server = net.createServer((sock) => {
      targetSock = sock;
      sock.on('error', () => undefined);
      let n = 0;
      const pump = (): void => {
        while (n * MiB < total) {
          const c = Buffer.concat([chunk.subarray(n % 997), chunk.subarray(0, n % 997)]);
          n++;
          sentHash.update(c);
          if (!sock.write(c)) return void sock.once('drain', pump);
        }
        sock.end();
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      await using fwd = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: (server.address() as net.AddressInfo).port });
      const sock = await connect(fwd.localPort);
      sock.pause();
      // the target writes until everything between it and our paused reader is full, then stops
      expect(await waitFor(() => (targetSock?.bytesWritten ?? 0) > 0, 10_000)).toBe(true);
      // unchanged for 1 s (20 polls in a row)
      let last = -1;
      let same = 0;
      expect(
        await waitFor(() => {
          const now = targetSock?.bytesWritten ?? 0;
          same = now === last ? same + 1 : 0;
          last = now;
          return same >= 20;
        }, 30_000),
      ).toBe(true);
      // held: the forward window (at most FORWARD_WINDOW, 5 MiB) plus the socket buffers of every hop (kernel, sshd, proxy),
      // far from all of it (a forward that topped up regardless would let all 160 MiB through)
      const held = targetSock?.bytesWritten ?? 0;
      expect(held).toBeLessThan(96 * MiB);
      // and still nothing after 2 s more (the target is blocked, not slow)
      await new Promise((r) => setTimeout(r, 2_000));
      expect(targetSock?.bytesWritten).toBe(held);
      expect(targetSock?.writableLength).toBeGreaterThan(0);
      expect(FORWARD_WINDOW.sizeBytes).toBe(5 * MiB);
      // the reader reads again: all of it, in order
      const got = createHash('sha256');
      let gotBytes = 0;
      sock.on('data', (c: Buffer) => {
        got.update(c);
        gotBytes += c.length;
      });
      sock.resume();
      await new Promise<void>((resolve) => sock.once('end', () => resolve()));
      expect(gotBytes).toBe(total);
      expect(got.digest('hex')).toBe(sentHash.digest('hex'));
      sock.destroy();
    } finally {
      targetSock?.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
