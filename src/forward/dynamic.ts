/**
 * Dynamic forwards (ssh(1) `-D`): a SOCKS5 server (RFC 1928, RFC 1929) whose CONNECTs are
 * carried through `direct-tcpip` channels (RFC 4254 section 7.2).
 *
 * @module forward/dynamic
 */
import net from 'node:net';
import { SshError } from '../errors.js';
import { carry, openDirect, Traffic, type Tracked } from './carry.js';
import { closeServer, fmtHostPort, listen } from './listener.js';
import type { ResolvedDynamicForward } from './options.js';
import { acceptSocks5, encodeReply, replyForChannelError, SocksReply } from './socks5.js';
import type { ForwardContext, ForwardStats } from './types.js';

/**
 * A dynamic forward: a SOCKS5 server on {@link DynamicForward.localHost}:{@link DynamicForward.localPort}.
 * CONNECT to an IPv4, IPv6 or domain-name address opens a `direct-tcpip` channel (the server
 * resolves names); a refused channel is answered with the mapped reply code (refused 0x05,
 * unreachable 0x04, prohibited 0x02). BIND and UDP ASSOCIATE get 0x07. Handshakes are bounded
 * in time (`socksHandshakeTimeoutMs`) and size; at most `maxSocksConnections` connections are
 * open at once (more are closed on accept). The listener stays bound across reconnects.
 * The credentials (`auth`) are kept private: they never appear in `util.inspect` output.
 */
export class DynamicForward implements AsyncDisposable {
  /** Always `'dynamic'`. */
  readonly type = 'dynamic' as const;
  /** The address the SOCKS server is bound to. */
  readonly localHost: string;
  /** The port it is bound to (the assigned one when 0 was asked). */
  readonly localPort: number;

  readonly #ctx: ForwardContext;
  readonly #server: net.Server;
  readonly #traffic = new Traffic();
  readonly #auth: { readonly username: string; readonly password: string } | undefined;
  #rejected = 0;
  #closing: Promise<void> | undefined;
  #linkUp = false;

  private constructor(ctx: ForwardContext, opts: ResolvedDynamicForward, server: net.Server, port: number) {
    this.#ctx = ctx;
    this.#server = server;
    this.localHost = opts.localHost;
    this.localPort = port;
    this.#auth = opts.auth === undefined ? undefined : { ...opts.auth };
  }

  /**
   * Binds the SOCKS listener.
   *
   * @throws {SshError} `ERR_SSH_FORWARD` when the bind fails (cause: EADDRINUSE, EACCES...).
   * @internal
   */
  static async open(ctx: ForwardContext, opts: ResolvedDynamicForward): Promise<DynamicForward> {
    const { server, port, attach } = await listen(opts.localHost, opts.localPort, false);
    const self = new DynamicForward(ctx, opts, server, port);
    attach((sock) => self.#accept(sock));
    return self;
  }

  /**
   * A closed handle for a forward whose listener could not be bound (reported in an `error` event).
   *
   * @internal
   */
  static unbound(ctx: ForwardContext, opts: ResolvedDynamicForward): DynamicForward {
    const h = new DynamicForward(ctx, opts, net.createServer(), opts.localPort);
    h.#closing = Promise.resolve();
    return h;
  }

  /**
   * `up`: the client has a live link, connections are carried at once. `waiting`: listening, but
   * the client is connecting or reconnecting; a new connection waits for the link (at most the
   * client's `forwardConnectionWaitMs`). `closed`: after {@link DynamicForward.close}.
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

  /** `true` once {@link DynamicForward.close} was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Connections closed on accept because `maxSocksConnections` were open. */
  get rejectedConnections(): number {
    return this.#rejected;
  }

  /** Connection and byte counters (SOCKS handshake bytes not counted; see {@link ForwardStats}). */
  stats(): ForwardStats {
    return this.#traffic.stats();
  }

  /** Stops listening, closes every connection and resolves once the port is free. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const done = closeServer(this.#server);
      this.#traffic.killAll();
      await done;
      this.#ctx.release(this);
    })();
    return this.#closing;
  }

  /** Same as {@link DynamicForward.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** A short description, e.g. `dynamic 127.0.0.1:1080`. */
  toString(): string {
    return `dynamic ${fmtHostPort(this.localHost, this.localPort)}`;
  }

  #accept(sock: net.Socket): void {
    if (this.closed || this.#traffic.active >= this.#ctx.maxSocksConnections) {
      if (!this.closed) this.#rejected++;
      sock.on('error', () => undefined);
      sock.destroy();
      return;
    }
    const tracked = this.#traffic.add(sock);
    sock.on('error', () => undefined);
    this.#handle(sock, tracked).catch(() => sock.destroy());
  }

  async #handle(sock: net.Socket, tracked: Tracked): Promise<void> {
    const pending = await acceptSocks5(sock, { auth: this.#auth, handshakeTimeoutMs: this.#ctx.socksHandshakeTimeoutMs });
    const reply = (code: (typeof SocksReply)[keyof typeof SocksReply]): void => {
      if (sock.destroyed) return;
      sock.end(encodeReply(code));
      setTimeout(() => sock.destroy(), 1_000).unref();
    };
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    sock.once('close', onClose);
    let chan;
    let link;
    try {
      link = await this.#ctx.provider.link({ timeoutMs: this.#ctx.connectionWaitMs, signal: gone.signal });
      if (sock.destroyed || this.closed) return;
      this.#ctx.attach(link);
      chan = await openDirect(this.#ctx, link, { host: pending.request.host, port: pending.request.port }, sock);
    } catch (err) {
      const refused = err instanceof SshError && err.code === 'ERR_SSH_CHANNEL_OPEN';
      if (refused) this.#ctx.emit({ forward: this, state: 'refused', cause: err, target: fmtHostPort(pending.request.host, pending.request.port) });
      reply(refused ? replyForChannelError(err) : SocksReply.GENERAL_FAILURE);
      return;
    } finally {
      sock.off('close', onClose);
    }
    if (sock.destroyed || this.closed || link.signal.aborted) {
      if (!link.signal.aborted) chan.close();
      sock.destroy();
      return;
    }
    sock.write(encodeReply(SocksReply.SUCCEEDED));
    carry(this.#ctx, link, sock, chan, tracked, pending.rest);
  }
}
