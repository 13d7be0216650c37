/**
 * A TCP proxy for fault tests: sits between a client and a server (e.g. the test sshd) and can
 * silently stop forwarding (`blackhole`), reset every connection (`reset`), add latency
 * (`delay`) or refuse new connections (`refuse`).
 *
 * Written here rather than taken from npm: the maintained fault proxies (toxiproxy) are separate
 * servers with an HTTP API; this needs no daemon and blackholes without sending a FIN.
 */
import net from 'node:net';

/** Per-direction state of one proxied connection. */
interface Direction {
  readonly src: net.Socket;
  readonly dst: net.Socket;
  /** Chunks waiting for their delay; `null` marks the source's end (FIN), forwarded in order. */
  readonly queue: { chunk: Buffer | null; dueAt: number }[];
  queuedBytes: number;
  timer: NodeJS.Timeout | undefined;
  waitingDrain: boolean;
}

interface Pair {
  readonly client: net.Socket;
  upstream: net.Socket | undefined;
  /** Blackholed: nothing is read or forwarded any more, nothing is closed. Never undone. */
  stalled: boolean;
  clientClosed: boolean;
  toUpstream: Direction | undefined;
  toClient: Direction | undefined;
}

/** Pause reading from a source while this many bytes wait in its delay queue. */
const QUEUE_HIGH_WATER = 1024 * 1024;

/** Where the proxy listens. */
export interface FaultProxyOptions {
  /** Default `'127.0.0.1'`. Loopback addresses only. */
  listenHost?: string;
  /** Default 0 (a free port; read it from `proxy.port`). */
  port?: number;
  /**
   * Bytes a direction may hold in its delay queue before the proxy stops reading its source;
   * default 1 MiB. With `delay(ms)` this caps a direction at about `queueHighWaterBytes / ms`
   * (1 MiB per 25 ms = 42 MB/s): a bench on a long link raises it so the proxy does not limit.
   */
  queueHighWaterBytes?: number;
}

/**
 * A TCP proxy with switchable faults. Semantics of each mode:
 *
 * - `blackhole()`: every current connection stops forwarding in both directions and is held
 *   open (no FIN, no RST, nothing buffered: the sockets are paused and queued data dropped),
 *   like a dead NAT or a pulled cable. New connections are accepted but get nothing (and are
 *   not connected upstream). A blackholed connection stays dead forever (until the client
 *   closes it or `close()`/`reset()` is called), even after `resume()`.
 * - `resume()`: back to normal forwarding (and zero delay) for new connections; connections that
 *   were blackholed stay stalled.
 * - `reset()`: every current connection (both sides) is destroyed with a TCP RST. The mode is
 *   unchanged, so new connections are handled as before.
 * - `delay(ms)`: every chunk, in both directions, is forwarded `ms` later, order preserved
 *   (applies to current and new connections; `delay(0)` turns it off).
 * - `refuse(true)`: each new client connection is reset as soon as it is accepted (the server
 *   looks down without stopping it); `refuse(false)` turns it off.
 *
 * If the upstream connect fails, the client connection is reset. A clean end (FIN) on one side
 * is forwarded as a FIN; an error (e.g. RST) on one side resets the other.
 */
export class FaultProxy {
  /** Listen address. */
  readonly host: string;
  /** Listen port. */
  readonly port: number;
  /** Added: client connections accepted so far. */
  acceptedCount = 0;

  private readonly server: net.Server;
  private readonly target: { host: string; port: number };
  private readonly pairs = new Set<Pair>();
  private blackholed = false;
  private refusing = false;
  private delayMs = 0;
  private closed = false;
  private readonly queueHighWater: number;

  private constructor(server: net.Server, host: string, port: number, target: { host: string; port: number }, queueHighWater: number) {
    this.server = server;
    this.queueHighWater = queueHighWater;
    this.host = host;
    this.port = port;
    this.target = target;
    server.on('connection', (socket) => this.onConnection(socket));
  }

  /**
   * Starts a proxy to `target`, listening on `options.listenHost:options.port`
   * (default `127.0.0.1`, a free port). Rejects if it cannot listen.
   */
  static start(target: { host: string; port: number }, options: FaultProxyOptions = {}): Promise<FaultProxy> {
    const listenHost = options.listenHost ?? '127.0.0.1';
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    return new Promise<FaultProxy>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: listenHost, port: options.port ?? 0 }, () => {
        server.off('error', reject);
        server.on('error', () => undefined);
        const addr = server.address();
        if (addr === null || typeof addr !== 'object') {
          server.close();
          reject(new Error('fault proxy: no listen address'));
          return;
        }
        resolve(new FaultProxy(server, listenHost, addr.port, { ...target }, options.queueHighWaterBytes ?? QUEUE_HIGH_WATER));
      });
    });
  }

  /** Currently open client-side connections. */
  get connectionCount(): number {
    let n = 0;
    for (const p of this.pairs) if (!p.clientClosed) n++;
    return n;
  }

  /** Stalls every current and new connection (see the class doc). */
  blackhole(): void {
    this.blackholed = true;
    for (const p of this.pairs) this.stall(p);
  }

  /** Resets (RST) every current connection, both sides. */
  reset(): void {
    for (const p of [...this.pairs]) {
      p.client.resetAndDestroy();
      p.upstream?.resetAndDestroy();
      this.drop(p);
    }
  }

  /** Adds `ms` milliseconds of latency to every chunk in both directions; 0 turns it off. */
  delay(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`delay(ms): ms must be a finite number >= 0, got ${ms}`);
    this.delayMs = ms;
  }

  /** Normal forwarding (no blackhole, no delay) for new connections; blackholed ones stay dead. */
  resume(): void {
    this.blackholed = false;
    this.delayMs = 0;
  }

  /** When on, every new client connection is reset as soon as it is accepted. */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  /** Closes the listener and destroys every connection. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const p of [...this.pairs]) {
        p.client.destroy();
        p.upstream?.destroy();
        this.drop(p);
      }
    }
    return new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  // ---------------------------------------------------------------------------------------------

  private onConnection(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.closed) {
      client.destroy();
      return;
    }
    this.acceptedCount++;
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined, stalled: false, clientClosed: false, toUpstream: undefined, toClient: undefined };
    this.pairs.add(pair);
    client.on('close', (hadError) => {
      pair.clientClosed = true;
      const up = pair.upstream;
      if (up && !up.destroyed && !pair.stalled) {
        // An RST from the client resets the server side; a client gone before the upstream
        // was wired (connect still pending) just drops the upstream attempt.
        if (hadError) up.resetAndDestroy();
        else if (!pair.toUpstream) up.destroy();
      }
      if (!up || up.destroyed) this.drop(pair);
    });
    if (this.blackholed) {
      // Accepted, but nothing reaches the server and nothing comes back.
      pair.stalled = true;
      return;
    }
    const upstream = net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true });
    pair.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.pause();
    upstream.once('connect', () => {
      if (pair.stalled || client.destroyed) return;
      pair.toUpstream = this.wire(pair, client, upstream);
      pair.toClient = this.wire(pair, upstream, client);
      client.resume();
      upstream.resume();
    });
    upstream.on('close', (hadError) => {
      // A failed upstream connect, or an RST from the server, resets the client.
      if (!pair.stalled && !client.destroyed && (hadError || !pair.toClient)) client.resetAndDestroy();
      if (pair.clientClosed) this.drop(pair);
    });
  }

  private wire(pair: Pair, src: net.Socket, dst: net.Socket): Direction {
    const dir: Direction = { src, dst, queue: [], queuedBytes: 0, timer: undefined, waitingDrain: false };
    src.on('data', (chunk: Buffer) => {
      if (pair.stalled) return;
      this.enqueue(pair, dir, chunk);
    });
    src.on('end', () => {
      if (pair.stalled) return;
      this.enqueue(pair, dir, null);
    });
    dst.on('drain', () => {
      dir.waitingDrain = false;
      this.updateFlow(pair, dir);
    });
    return dir;
  }

  private enqueue(pair: Pair, dir: Direction, chunk: Buffer | null): void {
    if (this.delayMs === 0 && dir.queue.length === 0) {
      this.deliver(pair, dir, chunk);
      return;
    }
    dir.queue.push({ chunk, dueAt: Date.now() + this.delayMs });
    dir.queuedBytes += chunk?.length ?? 0;
    this.updateFlow(pair, dir);
    this.schedule(pair, dir);
  }

  private schedule(pair: Pair, dir: Direction): void {
    if (dir.timer !== undefined) return;
    const head = dir.queue[0];
    if (!head) return;
    dir.timer = setTimeout(() => {
      dir.timer = undefined;
      if (pair.stalled) return;
      const now = Date.now();
      while (dir.queue.length > 0 && dir.queue[0]!.dueAt <= now) {
        const item = dir.queue.shift()!;
        dir.queuedBytes -= item.chunk?.length ?? 0;
        this.deliver(pair, dir, item.chunk);
      }
      this.updateFlow(pair, dir);
      this.schedule(pair, dir);
    }, Math.max(0, head.dueAt - Date.now()));
  }

  private deliver(pair: Pair, dir: Direction, chunk: Buffer | null): void {
    const { dst } = dir;
    if (dst.destroyed || dst.writableEnded) return;
    if (chunk === null) {
      dst.end();
      return;
    }
    if (!dst.write(chunk)) {
      dir.waitingDrain = true;
      this.updateFlow(pair, dir);
    }
  }

  /** Reads from the source only while the pair forwards and the destination keeps up. */
  private updateFlow(pair: Pair, dir: Direction): void {
    const shouldRead = !pair.stalled && !dir.waitingDrain && dir.queuedBytes < this.queueHighWater;
    if (dir.src.destroyed) return;
    if (shouldRead && dir.src.isPaused()) dir.src.resume();
    else if (!shouldRead && !dir.src.isPaused()) dir.src.pause();
  }

  private stall(pair: Pair): void {
    pair.stalled = true;
    pair.client.pause();
    pair.upstream?.pause();
    for (const dir of [pair.toUpstream, pair.toClient]) {
      if (!dir) continue;
      if (dir.timer !== undefined) clearTimeout(dir.timer);
      dir.timer = undefined;
      dir.queue.length = 0;
      dir.queuedBytes = 0;
    }
  }

  private drop(pair: Pair): void {
    for (const dir of [pair.toUpstream, pair.toClient]) {
      if (dir?.timer !== undefined) clearTimeout(dir.timer);
    }
    this.pairs.delete(pair);
  }
}
