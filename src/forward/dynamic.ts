/**
 * Dynamic forwards (ssh(1) `-D`): a SOCKS5 server (RFC 1928, RFC 1929) whose CONNECTs are
 * carried through `direct-tcpip` channels (RFC 4254 section 7.2).
 *
 * @module forward/dynamic
 */
import type net from 'node:net';
import { SshError } from '../errors.js';
import { carry, type Tracked } from './carry.js';
import { fmtHostPort, listen, ListenerForward } from './listener.js';
import type { ResolvedDynamicForward } from './options.js';
import { acceptSocks5, encodeReply, replyForChannelError, SocksReply } from './socks5.js';
import type { ForwardContext } from './types.js';

/**
 * A dynamic forward: a SOCKS5 server on {@link DynamicForward.localHost}:{@link DynamicForward.localPort}.
 * CONNECT to an IPv4, IPv6 or domain-name address opens a `direct-tcpip` channel (the server
 * resolves names); a refused channel is answered with the mapped reply code (refused 0x05,
 * unreachable 0x04, prohibited 0x02). BIND and UDP ASSOCIATE get 0x07. Handshakes are bounded
 * in time (`socksHandshakeTimeoutMs`) and size; at most `maxSocksConnections` connections are
 * open at once (more are closed on accept). The listener stays bound across reconnects.
 * The credentials (`auth`) are kept private: they never appear in `util.inspect` output.
 */
export class DynamicForward extends ListenerForward<DynamicForward> {
  /** Always `'dynamic'`. */
  readonly type = 'dynamic' as const;

  readonly #auth: { readonly username: string; readonly password: string } | undefined;
  #rejected = 0;

  private constructor(ctx: ForwardContext<DynamicForward>, opts: ResolvedDynamicForward, server: net.Server | undefined, port: number) {
    super(ctx, opts.localHost, port, server);
    this.#auth = opts.auth === undefined ? undefined : { ...opts.auth };
  }

  /**
   * Binds the SOCKS listener.
   *
   * @throws {SshError} `ERR_SSH_FORWARD` when the bind fails (cause: EADDRINUSE, EACCES...).
   * @internal
   */
  static async open(ctx: ForwardContext<DynamicForward>, opts: ResolvedDynamicForward): Promise<DynamicForward> {
    const { server, port, attach } = await listen(opts.localHost, opts.localPort, false);
    const self = new DynamicForward(ctx, opts, server, port);
    attach((sock) => self.accept(sock));
    return self;
  }

  /**
   * A closed handle for a forward whose listener could not be bound (reported in an `error` event).
   *
   * @internal
   */
  static unbound(ctx: ForwardContext<DynamicForward>, opts: ResolvedDynamicForward): DynamicForward {
    return new DynamicForward(ctx, opts, undefined, opts.localPort);
  }

  /** Connections closed on accept because `maxSocksConnections` were open. */
  get rejectedConnections(): number {
    return this.#rejected;
  }

  /** A short description, e.g. `dynamic 127.0.0.1:1080`. */
  override toString(): string {
    return `dynamic ${fmtHostPort(this.localHost, this.localPort)}`;
  }

  /** At most `maxSocksConnections` open at once; more are closed on accept and counted. @internal */
  protected override admit(): boolean {
    if (this.activeConnections < this.ctx.maxSocksConnections) return true;
    this.#rejected++;
    return false;
  }

  /** SOCKS handshake, then the channel to the requested address, then carrying (SOCKS stats exclude the handshake). @internal */
  protected async handle(sock: net.Socket, tracked: Tracked): Promise<void> {
    const pending = await acceptSocks5(sock, { auth: this.#auth, handshakeTimeoutMs: this.ctx.socksHandshakeTimeoutMs });
    const reply = (code: (typeof SocksReply)[keyof typeof SocksReply]): void => {
      if (sock.destroyed) return;
      sock.end(encodeReply(code));
      setTimeout(() => sock.destroy(), 1_000).unref();
    };
    const { host, port } = pending.request;
    let opened;
    try {
      opened = await this.openChannel(sock, { host, port }, fmtHostPort(host, port));
    } catch (err) {
      reply(err instanceof SshError && err.code === 'ERR_SSH_CHANNEL_OPEN' ? replyForChannelError(err) : SocksReply.GENERAL_FAILURE);
      return;
    }
    if (!opened) return;
    sock.write(encodeReply(SocksReply.SUCCEEDED));
    carry(this.ctx, opened.link, sock, opened.chan, tracked, pending.rest);
  }
}
