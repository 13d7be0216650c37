/**
 * Local forwards (ssh(1) `-L`): a local listener whose connections are carried to a target
 * reached from the server, through `direct-tcpip` (RFC 4254 section 7.2) or
 * `direct-streamlocal@openssh.com` (OpenSSH PROTOCOL 2.4) channels.
 *
 * @module forward/local
 */
import { DEFAULTS } from '../defaults.js';
import type net from 'node:net';
import { carry, type DirectTarget, type Tracked } from './carry.js';
import { fmtHostPort, listen, ListenerForward } from './listener.js';
import type { ResolvedLocalForward } from './options.js';
import type { ForwardContext } from './types.js';

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
export class LocalForward extends ListenerForward<LocalForward> {
  /** Always `'local'`. */
  readonly type = 'local' as const;
  /** Target host as the server resolves it (TCP target only). */
  readonly remoteHost: string | undefined;
  /** Target port (TCP target only). */
  readonly remotePort: number | undefined;
  /** Target Unix socket on the server (stream-local target only). */
  readonly remotePath: string | undefined;

  readonly #target: DirectTarget;

  private constructor(ctx: ForwardContext<LocalForward>, opts: ResolvedLocalForward, server: net.Server | undefined, port: number) {
    super(ctx, opts.localHost, port, server);
    this.remotePath = opts.remotePath;
    this.remoteHost = opts.remotePath === undefined ? (opts.remoteHost ?? DEFAULTS.forward.targetHost) : undefined;
    this.remotePort = opts.remotePath === undefined ? opts.remotePort : undefined;
    this.#target = opts.remotePath !== undefined ? { path: opts.remotePath } : { host: this.remoteHost ?? DEFAULTS.forward.targetHost, port: this.remotePort ?? 0 };
  }

  /**
   * Binds the listener.
   *
   * @throws {SshError} `ERR_SSH_FORWARD` when the bind fails (cause: EADDRINUSE, EACCES...).
   * @internal
   */
  static async open(ctx: ForwardContext<LocalForward>, opts: ResolvedLocalForward): Promise<LocalForward> {
    const { server, port, attach } = await listen(opts.localHost, opts.localPort, true);
    const self = new LocalForward(ctx, opts, server, port);
    attach((sock) => self.accept(sock));
    return self;
  }

  /**
   * A closed handle for a forward whose listener could not be bound (reported in an `error` event).
   *
   * @internal
   */
  static unbound(ctx: ForwardContext<LocalForward>, opts: ResolvedLocalForward): LocalForward {
    return new LocalForward(ctx, opts, undefined, opts.localPort);
  }

  /** A short description, e.g. `local 127.0.0.1:8080 -> db:5432`. */
  override toString(): string {
    const to = this.remotePath ?? fmtHostPort(this.remoteHost ?? DEFAULTS.forward.targetHost, this.remotePort ?? 0);
    return `local ${fmtHostPort(this.localHost, this.localPort)} -> ${to}`;
  }

  /** Waits for the link, opens the channel and carries the connection (closed on failure, as OpenSSH does). @internal */
  protected async handle(sock: net.Socket, tracked: Tracked): Promise<void> {
    const target = 'path' in this.#target ? this.#target.path : fmtHostPort(this.#target.host, this.#target.port);
    const opened = await this.openChannel(sock, this.#target, target);
    if (opened) carry(this.ctx, opened.link, sock, opened.chan, tracked);
  }
}
