/**
 * Forwards under faults and load, issue 6 items 1 and 12, through `SshClient.forwardLocal()` /
 * `forwardDynamic()` against the shared sshd (reached through the test TCP proxy for item 1).
 * No `error` listener is attached to any client (item 25, see guard.ts).
 */
import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SocksClient } from 'socks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type SshClientOptions } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { echoServer, roundTrip } from '../integration/forward-util.js';
import { reliabilitySuite } from './guard.js';
import { settle, sleep } from './util.js';

const suite = reliabilitySuite('Forward faults and load (items 1, 12)');
const info = sharedSshd();
const MiB = 1024 * 1024;
const clients: SshClient[] = [];
function track(o: SshClientOptions): SshClient {
  const c = new SshClient(o);
  clients.push(c);
  return c;
}
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

let echo: Awaited<ReturnType<typeof echoServer>>;
beforeAll(async () => {
  echo = await echoServer();
});
afterAll(async () => {
  await echo.close();
});

/** A SOCKS5 CONNECT to the echo server through the dynamic forward on `port`. */
async function socksToEcho(port: number, timeoutMs = 10_000): Promise<net.Socket> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port, type: 5 },
    command: 'connect',
    destination: { host: '127.0.0.1', port: echo.port },
    timeout: timeoutMs,
  });
  return socket;
}

/** Sends `msg` on `sock` and resolves with the echo (rejects after 10 s or on a close first). */
function echoOnce(sock: net.Socket, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (c: Buffer): void => {
      out += c.toString();
      if (out.length >= msg.length) finish(undefined);
    };
    const onClose = (): void => finish(new Error(`closed before the echo, got '${out}'`));
    const t = setTimeout(() => finish(new Error(`echo timed out, got '${out}'`)), 10_000);
    function finish(err: Error | undefined): void {
      clearTimeout(t);
      sock.off('data', onData);
      sock.off('close', onClose);
      if (err) reject(err);
      else resolve(out);
    }
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.write(msg);
  });
}

/** A connection kept busy: writes 16 KiB every 10 ms (while the socket takes it), counts the echo. */
interface Flow {
  kind: 'local' | 'socks';
  sock: net.Socket;
  received: number;
  /** The peer ended its side cleanly (FIN): what a reader would take for a complete stream. */
  ended: boolean;
  error: string | undefined;
  closedAt: number | undefined;
  stop: () => void;
}

function busy(kind: Flow['kind'], sock: net.Socket): Flow {
  const chunk = Buffer.alloc(16 * 1024, 0x5a);
  const f: Flow = { kind, sock, received: 0, ended: false, error: undefined, closedAt: undefined, stop: () => undefined };
  sock.on('data', (c: Buffer) => (f.received += c.length));
  sock.on('end', () => (f.ended = true));
  sock.on('error', (e: NodeJS.ErrnoException) => (f.error = e.code ?? e.message));
  sock.on('close', () => {
    f.closedAt = Date.now();
    clearInterval(timer);
  });
  const timer = setInterval(() => {
    if (!sock.destroyed && sock.writableLength < 256 * 1024) sock.write(chunk);
  }, 10);
  f.stop = () => clearInterval(timer);
  return f;
}

/**
 * A raw SOCKS5 CONNECT (no auth) to the echo server; resolves with every byte the server sent
 * once it closed (`closedAt`), or `closedAt: -1` after 10 s.
 */
function rawConnect(port: number): Promise<{ received: Buffer; closedAt: number }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const parts: Buffer[] = [];
    const t = setTimeout(() => {
      s.removeAllListeners('close');
      s.destroy();
      resolve({ received: Buffer.concat(parts), closedAt: -1 });
    }, 10_000);
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('close', () => {
      clearTimeout(t);
      resolve({ received: Buffer.concat(parts), closedAt: Date.now() });
    });
    s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 255]));
  });
}

function connectLocal(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

describe('item 1: the link goes silent (no FIN) under forward traffic', () => {
  it('every connection carried by a local and a dynamic forward is reset within interval x (countMax + 1) + 1 s; nothing reports success; the same ports carry new connections after the reconnect', async () => {
    const proxy = await FaultProxy.start({ host: info.host, port: info.port });
    const flows: Flow[] = [];
    try {
      const intervalMs = 500;
      const countMax = 2;
      const boundMs = intervalMs * (countMax + 1) + 1_000;
      const ssh = track(
        clientOptions(info, { keepaliveIntervalMs: intervalMs, keepaliveCountMax: countMax, connectTimeoutMs: 1_500, reconnect: { minDelayMs: 100, maxDelayMs: 400 } }, proxy),
      );
      const disconnects: string[] = [];
      ssh.on('disconnect', ({ cause }) => disconnects.push(cause.code));
      await ssh.connect();
      const local = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: echo.port });
      const dyn = await ssh.forwardDynamic();
      const PER_KIND = 4;
      for (let i = 0; i < PER_KIND; i++) {
        flows.push(busy('local', await connectLocal(local.localPort)));
        flows.push(busy('socks', await socksToEcho(dyn.localPort)));
      }
      // traffic flows both ways on every connection
      expect(await waitFor(() => flows.every((f) => f.received >= 256 * 1024), 15_000)).toBe(true);
      expect(local.stats().connectionsActive).toBe(PER_KIND);
      expect(dyn.stats().connectionsActive).toBe(PER_KIND);

      proxy.blackhole();
      const blackholedAt = Date.now();
      // new connections while the link is silent (not yet declared dead): they must fail, not succeed
      await sleep(100);
      const lateLocal = await connectLocal(local.localPort);
      let lateLocalGot = 0;
      const lateLocalClosed = new Promise<number>((r) => lateLocal.once('close', () => r(Date.now())));
      lateLocal.on('error', () => undefined);
      lateLocal.on('data', (c: Buffer) => (lateLocalGot += c.length));
      lateLocal.write('late');
      const lateSocks = rawConnect(dyn.localPort);

      expect(await waitFor(() => flows.every((f) => f.closedAt !== undefined), 10_000), 'every carried connection closed').toBe(true);
      for (const f of flows) f.stop();
      const late = await lateSocks;
      const lateLocalAt = await Promise.race([lateLocalClosed, sleep(10_000).then(() => -1)]);

      expect(disconnects).toEqual(['ERR_SSH_KEEPALIVE_TIMEOUT']);
      for (const f of flows) {
        // reset, not a clean end a reader could take for a complete stream
        expect(f.ended, `${f.kind} connection ended cleanly`).toBe(false);
        expect(['ECONNRESET', 'EPIPE'], `${f.kind} connection error`).toContain(f.error);
        expect(f.closedAt! - blackholedAt).toBeLessThanOrEqual(boundMs);
      }
      // the late ones: no echo, no SOCKS success; closed / refused within the bound too
      expect(lateLocalAt).toBeGreaterThan(0);
      expect(lateLocalGot).toBe(0);
      expect(lateLocalAt - blackholedAt).toBeLessThanOrEqual(boundMs);
      // the method selection, then a failure reply (0x01, general failure) and a close: never 0x00
      expect(late.closedAt).toBeGreaterThan(0);
      expect(late.received.toString('hex')).toBe('0500' + '05010001000000000000');
      expect(late.closedAt - blackholedAt).toBeLessThanOrEqual(boundMs);
      const worst = Math.max(...flows.map((f) => f.closedAt! - blackholedAt), lateLocalAt - blackholedAt, late.closedAt - blackholedAt);
      suite.figure('item 1: carried connections under traffic at the blackhole', `${PER_KIND} local + ${PER_KIND} SOCKS, all reset: ${[...new Set(flows.map((f) => f.error))].join(', ')}`);
      suite.figure(`item 1: slowest forward connection closed after the blackhole (bound ${boundMs} ms)`, `${worst} ms`);
      suite.figure('item 1: a SOCKS CONNECT started during the blackhole got', `reply 0x${late.received.subarray(3, 4).toString('hex')}, then a close`);

      proxy.resume();
      expect(await waitFor(() => ssh.state === 'ready', 10_000)).toBe(true);
      // the same listeners carry new connections
      expect(await roundTrip(local.localPort, 'local after')).toBe('local after');
      const s = await socksToEcho(dyn.localPort);
      try {
        expect(await echoOnce(s, 'socks after')).toBe('socks after');
      } finally {
        s.destroy();
      }
      expect(await waitFor(() => local.stats().connectionsActive === 0 && dyn.stats().connectionsActive === 0, 5_000)).toBe(true);
      const h = ssh.health().forwards;
      expect(h.map((f) => [f.type, f.bind, f.state])).toEqual([
        ['local', `127.0.0.1:${local.localPort}`, 'up'],
        ['dynamic', `127.0.0.1:${dyn.localPort}`, 'up'],
      ]);
      expect(h.map((f) => [f.connectionsTotal, f.connectionsActive])).toEqual([
        [PER_KIND + 2, 0],
        [PER_KIND + 2, 0],
      ]);
      expect(ssh.health().reconnects).toBe(1);
    } finally {
      for (const f of flows) {
        f.stop();
        f.sock.destroy();
      }
      await proxy.close();
    }
  }, 60_000);
});

describe('item 12: SOCKS connections and SFTP transfers on one client', () => {
  const tag = `rel-fwd-${process.pid}`;
  let local: string;
  let src: string;
  let srcHash: string;
  const SIZE = 64 * MiB;
  beforeAll(async () => {
    local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-rel-fwd-'));
    src = path.join(local, 'src.bin');
    const block = Buffer.allocUnsafe(8 * MiB);
    const fd = fs.openSync(src, 'w');
    for (let off = 0; off < SIZE; off += block.length) fs.writeSync(fd, randomFillSync(block), 0, block.length, off);
    fs.closeSync(fd);
    srcHash = await sha256File(src);
  });
  afterAll(async () => {
    await fsp.rm(local, { recursive: true, force: true });
  });
  async function sha256File(p: string): Promise<string> {
    const h = createHash('sha256');
    await pipeline(fs.createReadStream(p), h);
    return h.digest('hex');
  }

  it('200 concurrent SOCKS connections through one forwardDynamic each echo a message while 10 parallel 64 MiB SFTP transfers (5 up, 5 down) run on the same client; all intact', async () => {
    const ssh = track(clientOptions(info));
    await ssh.exec(`head -c ${SIZE} /dev/urandom > ${tag}-down.bin`, { check: true });
    const remoteHash = (await ssh.exec(['sha256sum', `${tag}-down.bin`])).stdout.split(' ')[0];
    const dyn = await ssh.forwardDynamic();
    const sftp = await ssh.sftp();
    const started = new Set<number>();
    let inFlight = 10;
    const t0 = Date.now();
    const transfers = [
      ...Array.from({ length: 5 }, (_, i) => sftp.put(src, `${tag}-up${i}.bin`, { onProgress: () => started.add(i) })),
      ...Array.from({ length: 5 }, (_, i) => sftp.get(`${tag}-down.bin`, path.join(local, `down${i}.bin`), { onProgress: () => started.add(5 + i) })),
    ].map((p) => p.finally(() => inFlight--));
    const allTransfers = Promise.all(transfers.map((p) => settle(p)));
    // the SOCKS burst starts once every transfer moves bytes
    expect(await waitFor(() => started.size === 10, 30_000)).toBe(true);
    const N = 200;
    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const s = await socksToEcho(dyn.localPort, 30_000);
        try {
          return await echoOnce(s, `message ${i};`);
        } finally {
          s.destroy();
        }
      }).map((p) => settle(p)),
    );
    const inFlightAtSocksDone = inFlight;
    const socksMs = Date.now() - t0;
    const failures = results.filter((r) => !r.ok).map((r) => (r.ok ? '' : String(r.error)));
    expect(failures).toEqual([]);
    results.forEach((r, i) => expect(r.ok && r.value).toBe(`message ${i};`));
    // the burst really overlapped the transfers (else this test proved nothing)
    expect(inFlightAtSocksDone).toBeGreaterThan(0);
    const t = await allTransfers;
    expect(t.filter((r) => !r.ok).map((r) => (r.ok ? '' : String(r.error)))).toEqual([]);
    const totalS = (Date.now() - t0) / 1000;
    suite.figure('item 12: 200 SOCKS echo round trips done after (transfers started at 0)', `${(socksMs / 1000).toFixed(1)} s, ${inFlightAtSocksDone} of 10 transfers still running then`);
    suite.figure('item 12: 10 x 64 MiB SFTP alongside the SOCKS burst took', `${totalS.toFixed(1)} s`);
    const sums = (await ssh.exec(`sha256sum ${tag}-up*.bin`)).stdout.split('\n').filter(Boolean);
    expect(sums).toHaveLength(5);
    for (const l of sums) expect(l.split(' ')[0]).toBe(srcHash);
    for (let i = 0; i < 5; i++) expect(await sha256File(path.join(local, `down${i}.bin`))).toBe(remoteHash);
    expect(await waitFor(() => dyn.stats().connectionsActive === 0, 10_000)).toBe(true);
    const h = ssh.health();
    expect(h.forwards.map((f) => [f.type, f.connectionsTotal, f.connectionsActive])).toEqual([['dynamic', N, 0]]);
    expect(dyn.rejectedConnections).toBe(0);
    expect(h.disconnects).toBe(0);
    expect(h.openChannels).toBeLessThanOrEqual(1); // the SFTP session
    await ssh.exec(`rm -f ${tag}-up*.bin ${tag}-down.bin`);
  }, 120_000);
});
