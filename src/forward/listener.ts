/**
 * The local listener shared by local and dynamic forwards: binding it, and the handle base class
 * both forwards extend ({@link ListenerForward}, after asyncssh's `SSHListener`).
 *
 * @module forward/listener
 * @internal
 */
import net from 'node:net';
import type ssh2 from 'ssh2';
import type { Link } from '../connection/link.js';
import { SshError } from '../errors.js';
import { openDirect, Traffic, type DirectTarget, type Tracked } from './carry.js';
import type { ForwardContext, ForwardStats } from './types.js';

/**
 * Binds a TCP listener on `host:port` (allowHalfOpen, TCP_NODELAY on accepted sockets).
 * Connections accepted before `attach(handler)` is called are queued and handed to it then.
 *
 * @returns the listening server, the port it got (the assigned one when `port` is 0), and `attach`.
 * @throws {SshError} `ERR_SSH_FORWARD` with the socket error (EADDRINUSE, EACCES,
 *   EADDRNOTAVAIL...) as `cause`.
 */
export function listen(
  host: string,
  port: number,
  pauseOnConnect: boolean,
): Promise<{ server: net.Server; port: number; attach: (handler: (sock: net.Socket) => void) => void }> {
  let handler: ((sock: net.Socket) => void) | undefined;
  const early: net.Socket[] = [];
  const attach = (h: (sock: net.Socket) => void): void => {
    handler = h;
    for (const s of early.splice(0)) h(s);
  };
  const onConnection = (sock: net.Socket): void => {
    if (handler) handler(sock);
    else early.push(sock);
  };
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect, noDelay: true });
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.close();
      reject(new SshError('ERR_SSH_FORWARD', `cannot listen on ${fmtHostPort(host, port)}: ${err.code ?? err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      // Accept errors (EMFILE...) must not crash the process; the listener keeps running.
      server.on('error', () => undefined);
      server.on('connection', onConnection);
      const addr = server.address();
      resolve({ server, port: typeof addr === 'object' && addr !== null ? addr.port : port, attach });
    });
  });
}

/** Stops listening and resolves once the port is free (connections must be destroyed first). */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** `host:port`, with brackets around an IPv6 address. */
export function fmtHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * What local and dynamic forwards share: a local listener that stays bound across reconnects,
 * the link state (`up` / `waiting` / `closed`), the counters, `close()`, and per accepted
 * connection: admission, waiting for the link (bounded by the client's
 * `forwardConnectionWaitMs`) and opening its `direct-*` channel. A subclass says what to do with
 * each accepted connection ({@link ListenerForward.handle}). `H` is the subclass itself (what
 * the manager's context takes back in `emit` and `release`).
 */
export abstract class ListenerForward<H> implements AsyncDisposable {
  /** The address the listener is bound to. */
  readonly localHost: string;
  /** The port the listener is bound to (the assigned one when 0 was asked). */
  readonly localPort: number;

  readonly #ctx: ForwardContext<H>;
  readonly #server: net.Server;
  readonly #traffic = new Traffic();
  #closing: Promise<void> | undefined;
  #linkUp = false;

  /**
   * @param server - the bound listener (`listen()`); `undefined` for a handle whose bind failed,
   *   which starts closed.
   * @internal
   */
  protected constructor(ctx: ForwardContext<H>, localHost: string, localPort: number, server: net.Server | undefined) {
    this.#ctx = ctx;
    this.#server = server ?? net.createServer();
    this.localHost = localHost;
    this.localPort = localPort;
    if (server === undefined) this.#closing = Promise.resolve();
  }

  /**
   * `up`: the client has a live link, connections are carried at once. `waiting`: listening, but
   * the client is connecting or reconnecting; a new connection waits for the link (at most the
   * client's `forwardConnectionWaitMs`). `closed`: after `close()`.
   */
  get state(): 'up' | 'waiting' | 'closed' {
    if (this.closed) return 'closed';
    return this.#linkUp ? 'up' : 'waiting';
  }

  /**
   * The manager tells the handle whether the client has a live link; returns `true` when that
   * changed its state (the manager then emits a `forward` event).
   *
   * @internal
   */
  setLinkUp(up: boolean): boolean {
    if (this.closed || this.#linkUp === up) return false;
    this.#linkUp = up;
    return true;
  }

  /** `true` once `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Connection and byte counters (see {@link ForwardStats}). */
  stats(): ForwardStats {
    return this.#traffic.stats();
  }

  /**
   * Stops listening, closes every connection (carried or waiting) and resolves once the port
   * is free, so a new listener can bind it at once. Idempotent; never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const done = closeServer(this.#server);
      this.#traffic.killAll();
      await done;
      this.#ctx.release(this.#handle());
    })();
    return this.#closing;
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The forward's context (manager callbacks and settings). @internal */
  protected get ctx(): ForwardContext<H> {
    return this.#ctx;
  }

  /** Connections open now. @internal */
  protected get activeConnections(): number {
    return this.#traffic.active;
  }

  /**
   * Whether to take a newly accepted connection (the forward is open); `false` closes it at once.
   * Default: every connection.
   * @internal
   */
  protected admit(_sock: net.Socket): boolean {
    return true;
  }

  /** Carries one admitted connection; a rejection destroys the socket. @internal */
  protected abstract handle(sock: net.Socket, tracked: Tracked): Promise<void>;

  /** Hands a connection from the listener to the subclass (see {@link ListenerForward.admit}). @internal */
  protected accept(sock: net.Socket): void {
    sock.on('error', () => undefined);
    if (this.closed || !this.admit(sock)) {
      sock.destroy();
      return;
    }
    const tracked = this.#traffic.add(sock);
    this.handle(sock, tracked).catch(() => sock.destroy());
  }

  /**
   * Waits for a live link (bounded by the client's `forwardConnectionWaitMs`, given up when `sock`
   * closes) and opens a `direct-*` channel to `target`. A refusal by the server is reported as a
   * `forward` event `refused` (with `targetText`) and rethrown.
   *
   * @returns the link and channel, or `undefined` when the socket or the forward went away
   *   meanwhile (the socket is then destroyed and the channel closed).
   * @throws {SshError} `ERR_SSH_CHANNEL_OPEN` (refused), `ERR_SSH_CONNECTION_LOST`,
   *   `ERR_SSH_TIMEOUT` / `ERR_SSH_ABORTED` (no link in time).
   * @internal
   */
  protected async openChannel(sock: net.Socket, target: DirectTarget, targetText: string): Promise<{ link: Link; chan: ssh2.ClientChannel } | undefined> {
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    sock.once('close', onClose);
    let link: Link;
    let chan: ssh2.ClientChannel;
    try {
      // Waits while the client reconnects (bounded); a local socket stays paused meanwhile.
      link = await this.#ctx.provider.link({ timeoutMs: this.#ctx.connectionWaitMs, signal: gone.signal });
      if (sock.destroyed || this.closed) return undefined;
      this.#ctx.attach(link);
      chan = await openDirect(this.#ctx, link, target, sock);
    } catch (err) {
      // The server refused this connection's channel (AllowTcpForwarding, PermitOpen, target
      // down...): say so with its reason; the forward stays up.
      if (err instanceof SshError && err.code === 'ERR_SSH_CHANNEL_OPEN') this.#ctx.emit({ forward: this.#handle(), state: 'refused', cause: err, target: targetText });
      throw err;
    } finally {
      sock.off('close', onClose);
    }
    if (sock.destroyed || this.closed || link.signal.aborted) {
      if (!link.signal.aborted) chan.close();
      sock.destroy();
      return undefined;
    }
    return { link, chan };
  }

  /** This handle as the manager knows it (only LocalForward and DynamicForward extend this class, each as `ListenerForward<itself>`). */
  #handle(): H {
    return this as unknown as H;
  }
}
