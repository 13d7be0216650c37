// Shared helpers of the forward integration tests (not a test file itself).
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RawLinkProvider, type RawLinkTarget } from '../helpers/raw-link.js';
import { ForwardManager, type ForwardEvent } from '../../src/forward/index.js';
import { waitFor as waitForTrue } from '../helpers/wait.js';

export const MiB = 1024 * 1024;

/** A RawLinkProvider with TCP_NODELAY on every link, and a manager over it collecting events. */
export function setup(
  target: RawLinkTarget,
  options: Partial<ConstructorParameters<typeof ForwardManager>[1]> = {},
): { provider: RawLinkProvider; manager: ForwardManager; events: ForwardEvent[] } {
  const provider = new RawLinkProvider(target);
  provider.onLink((l) => l.client.setNoDelay(true));
  const events: ForwardEvent[] = [];
  const manager = new ForwardManager(provider, { ...options, emit: (ev) => events.push(ev) });
  return { provider, manager, events };
}

/** `bytes` of random data in 1 MiB chunks, hashing what it produced into `hash`. */
export function randomSource(bytes: number, hash: ReturnType<typeof createHash>): Readable {
  let left = bytes;
  return new Readable({
    highWaterMark: MiB,
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(MiB, left);
      left -= n;
      const chunk = randomBytes(n);
      hash.update(chunk);
      this.push(chunk);
    },
  });
}

/** Sends `sendBytes` random bytes on `sock` (then FIN) while reading everything it receives. */
export async function exchange(sock: net.Socket, sendBytes: number): Promise<{ sent: string; received: string; receivedBytes: number }> {
  const sentHash = createHash('sha256');
  const recvHash = createHash('sha256');
  let receivedBytes = 0;
  const reading = new Promise<void>((resolve, reject) => {
    sock.on('data', (c: Buffer) => {
      recvHash.update(c);
      receivedBytes += c.length;
    });
    sock.on('end', resolve);
    sock.on('error', reject);
    sock.on('close', () => resolve());
  });
  const writing = pipeline(randomSource(sendBytes, sentHash), sock, { end: true });
  await Promise.all([writing.catch(() => undefined), reading]);
  return { sent: sentHash.digest('hex'), received: recvHash.digest('hex'), receivedBytes };
}

/** One connection's outcome on a {@link DataServer}. */
export interface ServerSide {
  sent: string;
  received: string;
  receivedBytes: number;
}

/** A TCP server that, per connection, sends `sendBytes` random bytes and hashes what it reads. */
export interface DataServer {
  port: number;
  host: string;
  connections: Promise<ServerSide>[];
  close(): Promise<void>;
}

export async function dataServer(sendBytes: number, host = '127.0.0.1'): Promise<DataServer> {
  const sockets = new Set<net.Socket>();
  const connections: Promise<ServerSide>[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    connections.push(exchange(sock, sendBytes));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    host,
    connections,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An echo server. */
export async function echoServer(host = '127.0.0.1'): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
    sock.pipe(sock);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An HTTP server answering `hello from <host>`. */
export async function httpServer(host: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.setHeader('connection', 'close');
    res.end(`hello from ${host} ${req.url ?? ''}`);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Connects to `host:port` (resolves once connected). */
export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, allowHalfOpen: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Sends `msg` and resolves with everything received until the peer closes (or `timeoutMs`). */
export function roundTrip(port: number, msg: string, host = '127.0.0.1', timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    let out = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`roundTrip timed out, got '${out}'`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.length >= msg.length) s.end();
    });
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    s.write(msg);
  });
}

/** The one polling wait (test/helpers/wait.ts), every 20 ms, throwing after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  await waitForTrue(cond, timeoutMs, what, 20);
}

/** Whether something can listen on `port` of `host` right now (closes it again). */
export function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}
