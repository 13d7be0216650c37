import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { waitFor } from '../helpers/wait.js';

/** An echo server that also records what it received and how many connections it saw. */
interface Echo {
  server: net.Server;
  port: number;
  received: Buffer[];
  connections: net.Socket[];
  close(): Promise<void>;
}

async function startEcho(): Promise<Echo> {
  const received: Buffer[] = [];
  const connections: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    connections.push(s);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      received.push(d);
      s.write(d);
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as net.AddressInfo;
  return {
    server,
    port: addr.port,
    received,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A client socket plus everything it has seen. */
interface Client {
  socket: net.Socket;
  data(): Buffer;
  ended: boolean;
  closed: boolean;
  error: NodeJS.ErrnoException | undefined;
  /** Resolves once `n` bytes arrived (bounded by the test timeout). */
  waitBytes(n: number): Promise<Buffer>;
  waitClose(): Promise<void>;
  /** Resolves once the peer ended (FIN) or the socket closed. */
  waitGone(): Promise<void>;
}

function connect(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const waiters: (() => void)[] = [];
    const notify = (): void => {
      for (const w of waiters.splice(0)) w();
    };
    const c: Client = {
      socket,
      data: () => Buffer.concat(chunks),
      ended: false,
      closed: false,
      error: undefined,
      waitBytes: (n) =>
        new Promise((res, rej) => {
          const check = (): void => {
            const d = c.data();
            if (d.length >= n) res(d);
            else if (c.closed) rej(new Error(`closed after ${d.length} of ${n} bytes`));
            else waiters.push(check);
          };
          check();
        }),
      waitClose: () =>
        new Promise((res) => {
          const check = (): void => (c.closed ? res() : void waiters.push(check));
          check();
        }),
      waitGone: () =>
        new Promise((res) => {
          const check = (): void => (c.closed || c.ended ? res() : void waiters.push(check));
          check();
        }),
    };
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      notify();
    });
    socket.on('end', () => {
      c.ended = true;
      notify();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      c.error = e;
    });
    socket.on('close', () => {
      c.closed = true;
      notify();
    });
    socket.once('connect', () => resolve(c));
    socket.once('error', reject);
  });
}

/** Lets the event loop and the loopback stack run for a while (for "nothing happens" checks). */
/** Connects and resolves with the error that ends the connection (e.g. a reset while connecting). */
function connectUntilClosed(port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    let error: NodeJS.ErrnoException | undefined;
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e;
    });
    socket.on('close', () => resolve(error));
  });
}

const settle = (ms = 200): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `cond` within 5 s (polled every 10 ms), else a rejection naming `what`. */
const until = (cond: () => boolean, what: string): Promise<true> => waitFor(cond, 5_000, what, 10);

describe('FaultProxy', () => {
  let echo: Echo;
  let proxy: FaultProxy;
  const clients: Client[] = [];

  beforeEach(async () => {
    echo = await startEcho();
    proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.socket.destroy();
    await proxy.close();
    await echo.close();
  });

  async function client(): Promise<Client> {
    const c = await connect(proxy.port);
    clients.push(c);
    return c;
  }

  it('passes data through in both directions, intact and in order', async () => {
    const c = await client();
    const payload = randomBytes(2 * 1024 * 1024);
    c.socket.write(payload);
    const got = await c.waitBytes(payload.length);
    expect(got.equals(payload)).toBe(true);
    expect(proxy.connectionCount).toBe(1);
    expect(proxy.acceptedCount).toBe(1);
  });

  it('forwards a half-close (FIN) and then closes cleanly', async () => {
    const c = await client();
    c.socket.end('bye');
    await c.waitClose();
    expect(c.data().toString()).toBe('bye');
    expect(c.ended).toBe(true);
    expect(c.error).toBeUndefined();
    await until(() => proxy.connectionCount === 0, 'connectionCount 0');
  });

  it('blackhole: delivers nothing either way and closes nothing, also for new connections', async () => {
    const c = await client();
    c.socket.write('before');
    await c.waitBytes(6);
    const receivedBefore = Buffer.concat(echo.received).length;

    proxy.blackhole();
    c.socket.write('lost');
    // server -> client is dead too: data the server sends now never reaches the client
    echo.connections[0]!.write('from-server');
    const late = await client();
    late.socket.write('lost too');
    await settle(300);

    expect(Buffer.concat(echo.received).length).toBe(receivedBefore);
    expect(c.data().toString()).toBe('before');
    expect(c.ended || c.closed || c.error !== undefined).toBe(false);
    expect(late.data().length).toBe(0);
    expect(late.ended || late.closed || late.error !== undefined).toBe(false);
    expect(echo.connections).toHaveLength(1); // the late connection never reached the server
    expect(echo.connections[0]!.destroyed).toBe(false); // no FIN/RST to the server either
    expect(proxy.connectionCount).toBe(2);
  });

  it('resume: new connections forward again, blackholed ones stay stalled', async () => {
    const old = await client();
    proxy.blackhole();
    proxy.resume();
    const fresh = await client();
    fresh.socket.write('hello');
    expect((await fresh.waitBytes(5)).toString()).toBe('hello');

    old.socket.write('still lost');
    await settle(200);
    expect(old.data().length).toBe(0);
    expect(old.closed).toBe(false);
  });

  it('reset: clients see ECONNRESET, the server side closes, new connections work', async () => {
    const a = await client();
    const b = await client();
    a.socket.write('x');
    await a.waitBytes(1);
    proxy.reset();
    await a.waitClose();
    await b.waitClose();
    expect(a.error?.code).toBe('ECONNRESET');
    expect(b.error?.code).toBe('ECONNRESET');
    await until(() => echo.connections.every((s) => s.destroyed), 'server sockets closed');
    expect(proxy.connectionCount).toBe(0);

    const c = await client();
    c.socket.write('again');
    expect((await c.waitBytes(5)).toString()).toBe('again');
  });

  it('reset also kills blackholed connections', async () => {
    const a = await client();
    proxy.blackhole();
    const b = await client();
    proxy.reset();
    await a.waitClose();
    await b.waitClose();
    expect(a.error?.code).toBe('ECONNRESET');
    expect(b.error?.code).toBe('ECONNRESET');
  });

  it('delay: every chunk still arrives, in order', async () => {
    proxy.delay(30);
    const c = await client();
    const parts: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const part = Buffer.from(`chunk-${i};`);
      parts.push(part);
      c.socket.write(part);
      if (i % 5 === 0) await settle(5);
    }
    const big = randomBytes(1024 * 1024);
    parts.push(big);
    c.socket.write(big);
    const expected = Buffer.concat(parts);
    const got = await c.waitBytes(expected.length);
    expect(got.equals(expected)).toBe(true);

    proxy.delay(0); // switching delay off mid-stream keeps order too
    c.socket.write('tail');
    expect((await c.waitBytes(expected.length + 4)).subarray(expected.length).toString()).toBe('tail');
  });

  it('delay holds data back (a lower bound only: a slow machine can only make it later)', async () => {
    proxy.delay(400);
    const c = await client();
    c.socket.write('late');
    await settle(50);
    expect(echo.received).toHaveLength(0);
    expect((await c.waitBytes(4)).toString()).toBe('late');
  });

  it('delay rejects a negative or non-finite value', () => {
    expect(() => proxy.delay(-1)).toThrow(RangeError);
    expect(() => proxy.delay(Number.NaN)).toThrow(RangeError);
  });

  it('refuse: new connections are reset at once; off again forwards', async () => {
    proxy.refuse(true);
    const err = await connectUntilClosed(proxy.port);
    expect(err?.code).toBe('ECONNRESET');
    expect(echo.connections).toHaveLength(0);
    expect(proxy.acceptedCount).toBe(1);

    proxy.refuse(false);
    const d = await client();
    d.socket.write('ok');
    expect((await d.waitBytes(2)).toString()).toBe('ok');
  });

  it('resets the client when the upstream refuses the connection', async () => {
    await echo.close();
    const err = await connectUntilClosed(proxy.port);
    expect(err?.code).toBe('ECONNRESET');
    await until(() => proxy.connectionCount === 0, 'connectionCount 0');
  });

  it('a client RST resets the server side', async () => {
    const c = await client();
    c.socket.write('x');
    await c.waitBytes(1);
    c.socket.resetAndDestroy();
    await until(() => echo.connections[0]!.destroyed, 'server socket closed');
    await until(() => proxy.connectionCount === 0, 'connectionCount 0');
  });

  it('close: closes every connection and frees the port', async () => {
    const c = await client();
    proxy.blackhole();
    const d = await client();
    await proxy.close();
    await c.waitGone();
    await d.waitGone();
    expect(proxy.connectionCount).toBe(0);
    await proxy.close(); // idempotent

    const again = net.createServer();
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(proxy.port, '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => again.close(() => resolve()));
  });
});
