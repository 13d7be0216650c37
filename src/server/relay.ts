/**
 * The in-process relay between an accepted TCP socket and ssh2's server connection: every byte
 * passes through here, so faults can be injected without a separate proxy (blackhole, delay,
 * reset, drop after N bytes).
 *
 * Own code: the maintained fault proxies on npm (toxiproxy clients) drive a separate daemon; this
 * needs none and sits inside the server.
 */
import { Duplex } from 'node:stream';
import type net from 'node:net';

/** The fault switches shared by every link of one server. */
export interface FaultState {
  blackholed: boolean;
  delayMs: number;
  /** Bytes each link may still carry before it is reset (`Infinity` = no limit). */
  dropAfterBytes: number;
}

interface Pending {
  chunk: Buffer | null;
  dueAt: number;
}

/** One direction's delay line. */
class DelayLine {
  private readonly queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly deliver: (chunk: Buffer | null) => void) {}

  push(chunk: Buffer | null, delayMs: number): void {
    if (delayMs <= 0 && this.queue.length === 0) {
      this.deliver(chunk);
      return;
    }
    this.queue.push({ chunk, dueAt: Date.now() + delayMs });
    this.arm();
  }

  private arm(): void {
    if (this.timer || this.queue.length === 0) return;
    const wait = Math.max(0, this.queue[0]!.dueAt - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      while (this.queue.length > 0 && this.queue[0]!.dueAt <= now) this.deliver(this.queue.shift()!.chunk);
      this.arm();
    }, wait);
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

/**
 * One relayed connection. `inner` is the stream given to ssh2's `Server.injectSocket()`.
 */
export class Link {
  readonly inner: Duplex;
  /** Stalled by a blackhole: nothing passes any more, nothing is closed. Never undone. */
  stalled = false;
  private closed = false;
  private carried = 0;
  private readonly toServer: DelayLine;
  private readonly toClient: DelayLine;
  private onClose: (() => void) | undefined;

  constructor(
    readonly outer: net.Socket,
    private readonly faults: FaultState,
  ) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const link = this;
    this.toServer = new DelayLine((chunk) => {
      if (this.stalled || this.closed) return;
      if (chunk === null) {
        this.inner.push(null);
        return;
      }
      if (!this.inner.push(chunk)) this.outer.pause();
    });
    this.toClient = new DelayLine((chunk) => {
      if (this.stalled || this.closed || this.outer.destroyed) return;
      if (chunk === null) this.outer.end();
      else this.outer.write(chunk);
    });
    this.inner = new Duplex({
      allowHalfOpen: true,
      read() {
        if (!link.stalled) link.outer.resume();
      },
      write(chunk: Buffer, _enc, cb) {
        link.fromServer(chunk);
        cb();
      },
      final(cb) {
        if (!link.stalled) link.toClient.push(null, link.faults.delayMs);
        cb();
      },
      destroy(err, cb) {
        // ssh2 ended the connection: pass it on, unless the link is blackholed (then the
        // client keeps seeing a silent, open socket).
        if (!link.stalled && !link.outer.destroyed) link.outer.destroy();
        cb(err);
      },
    });
    // Properties ssh2 reads from a socket.
    Object.assign(this.inner, {
      remoteAddress: outer.remoteAddress,
      remotePort: outer.remotePort,
      remoteFamily: outer.remoteFamily,
    });
    outer.setNoDelay(true);
    outer.on('data', (chunk: Buffer) => this.fromClient(chunk));
    outer.on('end', () => {
      if (!this.stalled) this.toServer.push(null, this.faults.delayMs);
    });
    outer.on('error', () => undefined);
    outer.on('close', () => this.close());
    if (faults.blackholed) this.stall();
  }

  /** Called once when the client socket is gone (ssh2's side is then torn down too). */
  set closeHandler(fn: () => void) {
    this.onClose = fn;
  }

  private count(n: number): boolean {
    this.carried += n;
    if (this.carried > this.faults.dropAfterBytes) {
      this.reset();
      return false;
    }
    return true;
  }

  private fromClient(chunk: Buffer): void {
    if (this.stalled || this.closed) return;
    if (!this.count(chunk.length)) return;
    this.toServer.push(chunk, this.faults.delayMs);
  }

  private fromServer(chunk: Buffer): void {
    if (this.stalled || this.closed) return;
    if (!this.count(chunk.length)) return;
    this.toClient.push(chunk, this.faults.delayMs);
  }

  /** Byte budget restarts from now (a new `dropAfterBytes(n)`). */
  resetBudget(): void {
    this.carried = 0;
  }

  /** Stops forwarding in both directions; sockets stay open, nothing is sent (no FIN, no RST). */
  stall(): void {
    this.stalled = true;
    this.toServer.clear();
    this.toClient.clear();
    this.outer.pause();
  }

  /** Tears the link down with a TCP RST to the client. */
  reset(): void {
    if (!this.outer.destroyed) this.outer.resetAndDestroy();
    this.close();
  }

  /** Tears the link down with a FIN (as a server process that exits). */
  end(): void {
    if (!this.outer.destroyed) this.outer.destroy();
    this.close();
  }

  /** The client socket is gone: tear down ssh2's side too and report once. */
  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.toServer.clear();
    this.toClient.clear();
    if (!this.outer.destroyed) this.outer.destroy();
    if (!this.inner.destroyed) this.inner.destroy();
    this.onClose?.();
  }
}
