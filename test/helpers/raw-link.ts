// Test-only LinkProvider over a plain ssh2 Client, for feature modules (SFTP, forwards) to be tested
// before/independently of SshClient. No reconnect: `drop()` kills the current link (its signal aborts
// with ERR_SSH_CONNECTION_LOST) and the next link() call connects again.
import ssh2 from 'ssh2';
import { readFileSync } from 'node:fs';
import { SshError } from '../../src/errors.js';
import type { Link, LinkProvider, LinkWaitOptions } from '../../src/connection/link.js';

export interface RawLinkTarget {
  host: string;
  port: number;
  username: string;
  privateKeyPath: string;
}

export class RawLinkProvider implements LinkProvider {
  private current: Promise<Link> | undefined;
  private epoch = 0;
  private readonly listeners = new Set<(link: Link) => void>();
  /** Abort controllers of the links handed out, so drop() can declare one dead at once. */
  private readonly controllers = new WeakMap<Link, AbortController>();
  private closed = false;

  constructor(private readonly target: RawLinkTarget) {}

  link(_options?: LinkWaitOptions): Promise<Link> {
    if (this.closed) return Promise.reject(new SshError('ERR_SSH_CLOSED', 'closed'));
    this.current ??= this.connect();
    return this.current;
  }

  onLink(listener: (link: Link) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Kills the current transport as a dead link would (socket destroyed). */
  async drop(): Promise<void> {
    const cur = this.current;
    this.current = undefined;
    if (!cur) return;
    const link = await cur.catch(() => undefined);
    if (!link) return;
    // Like the real connection layer when its keep-alive declares the link dead: abort the
    // link's signal first (features react to it), then tear the transport down.
    this.controllers.get(link)?.abort(new SshError('ERR_SSH_CONNECTION_LOST', 'connection lost (dropped)'));
    link.client.destroy();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.drop();
  }

  private connect(): Promise<Link> {
    const epoch = ++this.epoch;
    const client = new ssh2.Client();
    const ctl = new AbortController();
    return new Promise<Link>((resolve, reject) => {
      const lost = (cause?: unknown): void => {
        if (!ctl.signal.aborted) ctl.abort(new SshError('ERR_SSH_CONNECTION_LOST', 'connection lost', { cause }));
        if (this.current && epoch === this.epoch) this.current = undefined;
      };
      client.on('error', (err) => {
        lost(err);
        reject(new SshError('ERR_SSH_CONNECT', err.message, { cause: err }));
      });
      client.on('close', () => {
        lost();
        reject(new SshError('ERR_SSH_CONNECT', 'closed before ready'));
      });
      client.on('ready', () => {
        const link: Link = { client, epoch, signal: ctl.signal };
        this.controllers.set(link, ctl);
        resolve(link);
        for (const l of this.listeners) l(link);
      });
      client.connect({
        host: this.target.host,
        port: this.target.port,
        username: this.target.username,
        privateKey: readFileSync(this.target.privateKeyPath),
        readyTimeout: 10_000,
      });
      client.on('handshake', () => undefined);
    });
  }
}
