/**
 * The extra SFTP sessions of striped transfers (src/sftp/striped.ts), kept open for a while after
 * a transfer ends so that the next striped `get`/`put` on the same link takes them instead of
 * opening new ones (issue 18). Opening one costs 4 round trips before its first request: the
 * channel (RFC 4254 section 5.1), the `subsystem` request (section 6.5; OpenSSH opens the
 * session's window only when the subsystem starts, so the SFTP INIT cannot go out earlier), the
 * SFTP VERSION and OpenSSH's `limits@openssh.com`: about 210 ms on a 52 ms link, while the
 * client's own session already reads. Kept, every lane starts with it. This is OpenSSH's
 * `ControlPersist` (a master kept for the next `ssh`) applied to channels.
 *
 * Bounded: a session is kept at most `persistMs` (then closed), only while it and its link are
 * alive; `release()` closes every kept one at once (the SshClient facade calls it when another
 * channel waits for a `MaxSessions` slot, so kept channels never hold up an exec), `close()` too
 * and keeps nothing after. A kept session holds no handle (its file was closed first).
 *
 * @module sftp/extra-pool
 * @internal
 */
import { SshError } from '../errors.js';
import type { Link } from '../connection/link.js';
import type { SftpSession } from './session.js';

/** Default of `SftpOptions.channelsPersistMs`: 30 s. */
export const DEFAULT_CHANNELS_PERSIST_MS = 30_000;

interface Kept {
  session: SftpSession;
  timer: NodeJS.Timeout;
}

/** Idle extra SFTP sessions, per link, each for at most `persistMs`. */
export class ExtraSessionPool {
  readonly #kept: Kept[] = [];
  #closed = false;

  /** @param persistMs - how long a session is kept, ms; 0 keeps none. */
  constructor(private readonly persistMs: number) {}

  /** Alive sessions kept on `link`. */
  available(link: Link): number {
    let n = 0;
    for (const k of this.#kept) if (k.session.link === link && k.session.alive) n++;
    return n;
  }

  /** Takes a kept alive session on `link` (the most recently kept first), or undefined. */
  take(link: Link): SftpSession | undefined {
    for (let i = this.#kept.length - 1; i >= 0; i--) {
      const k = this.#kept[i]!;
      if (!k.session.alive) {
        this.#drop(i);
        continue;
      }
      if (k.session.link !== link) continue;
      this.#drop(i);
      return k.session;
    }
    return undefined;
  }

  /**
   * Keeps `session` (its handles closed) for `persistMs`, then closes it.
   *
   * @returns false when it is not kept (pool closed, `persistMs` 0, the session or its link
   *   gone): the caller closes it.
   */
  give(session: SftpSession): boolean {
    if (this.#closed || this.persistMs <= 0 || !session.alive || session.link.signal.aborted) return false;
    const k: Kept = {
      session,
      timer: setTimeout(() => {
        const i = this.#kept.indexOf(k);
        if (i >= 0) this.#drop(i);
        session.kill(new SshError('ERR_SSH_CLOSED', `idle extra SFTP channel closed after channelsPersistMs (${this.persistMs} ms)`));
      }, this.persistMs),
    };
    k.timer.unref();
    this.#kept.push(k);
    return true;
  }

  /** Closes every kept session now. @returns how many were kept. */
  release(): number {
    const all = this.#kept.splice(0);
    for (const k of all) {
      clearTimeout(k.timer);
      k.session.kill(new SshError('ERR_SSH_CLOSED', 'idle extra SFTP channel released'));
    }
    return all.length;
  }

  /** Closes every kept session and keeps none from now on. */
  close(): void {
    this.#closed = true;
    this.release();
  }

  #drop(i: number): void {
    const [k] = this.#kept.splice(i, 1);
    if (k) clearTimeout(k.timer);
  }
}
