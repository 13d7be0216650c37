/**
 * Local forwards (ssh(1) `-L`): a local listener whose connections are carried to a target
 * reached from the server, through `direct-tcpip` (RFC 4254 section 7.2) or
 * `direct-streamlocal@openssh.com` (OpenSSH PROTOCOL 2.4) channels.
 *
 * @module forward/local
 */
import net from 'node:net';
import { SshError } from '../errors.js';
import { carry, openDirect, Traffic, type DirectTarget } from './carry.js';
import { closeServer, fmtHostPort, listen } from './listener.js';
import type { ResolvedLocalForward } from './options.js';
import type { ForwardContext, ForwardStats } from './types.js';

/**
 * A local forward: listens on {@link LocalForward.localHost}:{@link LocalForward.localPort} and
 * carries each connection to `remoteHost:remotePort` (or the Unix socket `remotePath`) as seen
 * from the server. The listener stays bound while the client reconnects: a connection accepted
 * meanwhile waits for the link (at most the client's `forwardConnectionWaitMs`, the manager's
 * `connectionWaitMs`) and is closed if the
 * wait runs out; connections carried on a link that dies are reset.
 * A refused channel open closes the accepted connection (as OpenSSH does) and is reported as a
 * `forward` event `refused` carrying the server's reason.
 */
export class LocalForward implements AsyncDisposable {
  /** Always `'local'`. */
  readonly type = 'local' as const;
  /** The address the listener is bound to. */
  readonly localHost: string;
  /** The port the listener is bound to (the assigned one when 0 was asked). */
  readonly localPort: number;
  /** Target host as the server resolves it (TCP target only). */
  readonly remoteHost: string | undefined;
  /** Target port (TCP target only). */
  readonly remotePort: number | undefined;
  /** Target Unix socket on the server (stream-local target only). */
  readonly remotePath: string | undefined;

  readonly #ctx: ForwardContext;
  readonly #server: net.Server;
  readonly #traffic = new Traffic();
  readonly #target: DirectTarget;
  #closing: Promise<void> | undefined;
  #linkUp = false;

  private constructor(ctx: ForwardContext, opts: ResolvedLocalForward, server: net.Server, port: number) {
    this.#ctx = ctx;
    this.#server = server;
    this.localHost = opts.localHost;
    this.localPort = port;
    this.remotePath = opts.remotePath;
    this.remoteHost = opts.remotePath === undefined ? (opts.remoteHost ?? 'localhost') : undefined;
    this.remotePort = opts.remotePath === undefined ? opts.remotePort : undefined;
    this.#target = opts.remotePath !== undefined ? { path: opts.remotePath } : { host: this.remoteHost ?? 'localhost', port: this.remotePort ?? 0 };
  }

  /**
   * Binds the listener.
   *
   * @throws {SshError} `ERR_SSH_FORWARD` when the bind fails (cause: EADDRINUSE, EACCES...).
   * @internal
   */
  static async open(ctx: ForwardContext, opts: ResolvedLocalForward): Promise<LocalForward> {
    const { server, port, attach } = await listen(opts.localHost, opts.localPort, true);
    const self = new LocalForward(ctx, opts, server, port);
    attach((sock) => self.#accept(sock));
    return self;
  }

  /**
   * A closed handle for a forward whose listener could not be bound (reported in an `error` event).
   *
   * @internal
   */
  static unbound(ctx: ForwardContext, opts: ResolvedLocalForward): LocalForward {
    const h = new LocalForward(ctx, opts, net.createServer(), opts.localPort);
    h.#closing = Promise.resolve();
    return h;
  }

  /**
   * `up`: the client has a live link, connections are carried at once. `waiting`: listening, but
   * the client is connecting or reconnecting; a new connection waits for the link (at most the
   * client's `forwardConnectionWaitMs`). `closed`: after {@link LocalForward.close}.
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

  /** `true` once {@link LocalForward.close} was called. */
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
      this.#ctx.release(this);
    })();
    return this.#closing;
  }

  /** Same as {@link LocalForward.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** A short description, e.g. `local 127.0.0.1:8080 -> db:5432`. */
  toString(): string {
    const to = this.remotePath ?? fmtHostPort(this.remoteHost ?? 'localhost', this.remotePort ?? 0);
    return `local ${fmtHostPort(this.localHost, this.localPort)} -> ${to}`;
  }

  #accept(sock: net.Socket): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    const tracked = this.#traffic.add(sock);
    sock.on('error', () => undefined);
    this.#handle(sock, tracked).catch(() => sock.destroy());
  }

  async #handle(sock: net.Socket, tracked: ReturnType<Traffic['add']>): Promise<void> {
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    sock.once('close', onClose);
    let link;
    try {
      // Waits while the client reconnects (bounded); the socket stays paused meanwhile.
      link = await this.#ctx.provider.link({ timeoutMs: this.#ctx.connectionWaitMs, signal: gone.signal });
    } finally {
      sock.off('close', onClose);
    }
    if (sock.destroyed || this.closed) return;
    this.#ctx.attach(link);
    let chan;
    try {
      chan = await openDirect(this.#ctx, link, this.#target, sock);
    } catch (err) {
      // The server refused this connection's channel (AllowTcpForwarding, PermitOpen, target
      // down...): say so with its reason; the forward stays up. The connection is closed (caller).
      if (err instanceof SshError && err.code === 'ERR_SSH_CHANNEL_OPEN') {
        const target = 'path' in this.#target ? this.#target.path : fmtHostPort(this.#target.host, this.#target.port);
        this.#ctx.emit({ forward: this, state: 'refused', cause: err, target });
      }
      throw err;
    }
    if (sock.destroyed || this.closed || link.signal.aborted) {
      if (!link.signal.aborted) chan.close();
      sock.destroy();
      return;
    }
    carry(this.#ctx, link, sock, chan, tracked);
  }
}
