/**
 * One SFTP session (an ssh2 `SFTPWrapper` on one link) and the SFTP v3 requests ssh-tether sends
 * on it.
 *
 * Paths travel as bytes: SFTP v3 file names are byte strings (draft-ietf-secsh-filexfer-02
 * section 6), and ssh2's path-taking methods only accept JS strings (always UTF-8 encoded) and
 * decode every name the server returns as UTF-8, so a name that is not valid UTF-8 could not be
 * listed and then opened. So the path-taking requests are encoded here, sent through the
 * wrapper's own send path (same request ids, same window handling, same reply dispatch), and the
 * raw bytes of `SSH_FXP_NAME` replies are captured as they arrive (see `NameCapture`). The
 * packets are encoded by sftp/wire.ts; sending, reply registration and the inbound hook are
 * src/ssh2/sftp.ts's (the only code that touches ssh2's SFTP internals, checked when the session
 * opens). Reads use ssh2's public `read`, with `DATA` replies copied
 * straight into the reader's buffer (see sftp/inbound.ts); writes go through
 * {@link SftpSession.write}, which sends the data without copying it into a request buffer.
 *
 * @internal
 * @module sftp/session
 */
import { setMaxListeners } from 'node:events';
import type ssh2 from 'ssh2';
import { SshError } from '../errors.js';
import type { Link } from '../connection/link.js';
import { abortReason } from '../internal/cancel.js';
import { sftpChannel, type SftpChannel } from '../ssh2/sftp.js';
import { mapSftpError, SftpStatus, SshSftpError } from './errors.js';
import { DataReplySplitter } from './inbound.js';
import { SFTP_WINDOW } from './pacing.js';
import type { EagerWindow } from '../ssh2/window.js';
import {
  NameCapture,
  PacketBuilder,
  REQ,
  encodeWriteHead,
  parseNames,
  pathBytes,
  toRawAttrs,
  writeHeadLength,
  type RawAttrs,
  type RawName,
  type RemotePath,
  type SetAttrs,
} from './wire.js';

export { OpenFlags, pathBytes, type RawAttrs, type RawName, type RemotePath, type SetAttrs } from './wire.js';

type ReqCallback = (err?: unknown, value?: unknown) => void;

/**
 * One open SFTP session on one link. `dead` aborts (reason: an SshError) when the link dies,
 * the channel closes or the session is closed; every request then rejects with that reason.
 *
 * @internal
 */
/** File content bytes read from and written to the server over SFTP. */
export interface SftpCounters {
  bytesRead: number;
  bytesWritten: number;
}

export class SftpSession {
  /** The ssh2 wrapper (public API used for read/write/close/fstat/fsetstat). */
  readonly sftp: ssh2.SFTPWrapper;
  /** The link this session runs on. */
  readonly link: Link;
  /** Aborted with an SshError when the session can no longer be used. */
  readonly dead: AbortSignal;
  /**
   * The fastest round trip (ms) of any request of {@link SftpSession.request} so far (open,
   * stat, realpath...; not the transfer engine's reads and writes): the link's round trip plus
   * the least server work. `Infinity` before the first reply. Decides default striping.
   */
  minRttMs = Infinity;
  /**
   * Bytes in flight the last adaptive `get`/`put` on this session ended with (its final limit x
   * its request size), the start of the next one in the same direction (src/sftp/pacing.ts
   * `start`), as Linux's `tcp_metrics` starts a known destination's window: a transfer after the
   * first does not slow-start again on a link already measured. Lives as long as the session (a
   * new link is a new session, measured again).
   */
  readonly pacingMemo: { get?: number; put?: number } = {};
  /** Largest read the server accepts per request (`limits@openssh.com` max-read-length), bytes. */
  readonly maxReadLen: number;
  /** Largest write the server accepts per request (`limits@openssh.com` max-write-length), bytes. */
  readonly maxWriteLen: number;
  /** Server extensions from the VERSION packet (name -> data). */
  readonly extensions: Readonly<Record<string, string | undefined>>;

  private readonly channel: SftpChannel;
  private readonly ctl = new AbortController();
  private readonly names = new NameCapture();
  private readonly cleanup: () => void;
  /** The channel's eager receive window (undefined: ssh2's own rule). */
  readonly window: EagerWindow | undefined;

  /** File bytes moved over SFTP, shared by every session of one client (for health/metrics). */
  readonly counters: SftpCounters;

  constructor(link: Link, sftp: ssh2.SFTPWrapper, counters: SftpCounters = { bytesRead: 0, bytesWritten: 0 }) {
    this.counters = counters;
    this.sftp = sftp;
    this.link = link;
    this.dead = this.ctl.signal;
    // Every request in flight listens to it: parallel transfers (16 requests each) are normal,
    // not a leak, and must not raise MaxListenersExceededWarning.
    setMaxListeners(0, this.dead);
    this.channel = sftpChannel(sftp);
    this.maxReadLen = this.channel.maxReadLen;
    this.maxWriteLen = this.channel.maxWriteLen;
    this.extensions = this.channel.extensions;

    // Watch raw channel bytes for NAME replies, and copy DATA replies straight into the read
    // buffers; only safe from a packet boundary (else names come from ssh2's UTF-8 decoding).
    const names = this.names;
    const hooked = this.channel.hookInbound((table, pass) => {
      const splitter = new DataReplySplitter(table, pass);
      return (data) => {
        names.scan(data);
        splitter.push(data);
      };
    });
    if (!hooked) names.disable();
    // An eager receive window big enough for the adaptive engine's requests in flight
    // (sftp/pacing.ts SFTP_WINDOW). If ssh2's fields changed, ssh2's own 2 MiB rule stays:
    // slower on long links, still correct.
    try {
      this.window = this.channel.keepWindow(SFTP_WINDOW);
    } catch {
      this.window = undefined;
    }

    const onLinkAbort = (): void => this.kill(abortReason(link.signal, 'sftp'));
    const onClose = (): void => this.kill(new SshError('ERR_SSH_CONNECTION_LOST', 'SFTP session closed by the server'));
    const onError = (err: unknown): void =>
      this.kill(new SshError('ERR_SSH_CONNECTION_LOST', `SFTP session failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
    sftp.on('close', onClose);
    sftp.on('end', onClose);
    sftp.on('error', onError);
    if (link.signal.aborted) onLinkAbort();
    else link.signal.addEventListener('abort', onLinkAbort, { once: true });
    this.cleanup = () => {
      link.signal.removeEventListener('abort', onLinkAbort);
      sftp.removeListener('close', onClose);
      sftp.removeListener('end', onClose);
      // keep a no-op 'error' listener: a late error must never crash the host
      sftp.removeListener('error', onError);
      sftp.on('error', () => undefined);
    };
  }

  /** Why the session is dead (an SshError), or undefined while alive. */
  get deadReason(): SshError | undefined {
    return this.dead.aborted ? abortReason(this.dead, 'sftp') : undefined;
  }

  /** Whether the server supports `posix-rename@openssh.com` (version "1"). */
  get hasPosixRename(): boolean {
    return this.extensions['posix-rename@openssh.com'] === '1';
  }

  /** Whether requests can still be sent. */
  get alive(): boolean {
    return !this.dead.aborted && this.channel.open;
  }

  /** Marks the session dead with `reason` (idempotent) and closes the channel. */
  kill(reason: SshError): void {
    if (this.ctl.signal.aborted) return;
    this.ctl.abort(reason);
    this.cleanup();
    try {
      this.sftp.end();
    } catch {
      // the channel may already be gone
    }
  }

  /**
   * Writes `buf[off, off + len)` at byte `position` of the open `handle` (SSH_FXP_WRITE,
   * draft-ietf-secsh-filexfer-02 section 6.4), as ssh2's `write()` does (same request ids and
   * reply dispatch; a request longer than the server's write limit is sent as several; `cb` gets
   * an error with the SFTP status `code`, or `(undefined, off + len)`), but without first copying
   * the data into one request buffer: the request header travels with the first bytes of data in
   * one channel packet and the rest goes out as views of `buf`. With `stable` the caller
   * promises `buf` stays unchanged until `cb` runs, so bytes the channel window cannot take yet
   * wait as views of it; without, they are copied and `buf` is free once `write` returns.
   */
  write(handle: Buffer, buf: Buffer, off: number, len: number, position: number, stable: boolean, cb: (err?: Error | null, end?: number) => void): void {
    if (len === 0) {
      process.nextTick(cb, undefined, 0);
      return;
    }
    const ch = this.channel;
    const n = Math.min(len, this.maxWriteLen);
    const headLen = writeHeadLength(handle);
    const first = Math.min(n, Math.max(0, ch.packetSize - headLen));
    const id = ch.nextId();
    const head = encodeWriteHead(id, handle, position, n, first);
    buf.copy(head, headLen, off, off + first);
    // Past the server's write limit the rest goes in a later request, sent on this one's reply:
    // without `stable` the caller may reuse `buf` by then, so keep a copy of that rest.
    const rest = n < len ? (stable ? buf.subarray(off + n, off + len) : Buffer.from(buf.subarray(off + n, off + len))) : undefined;
    const end = off + len;
    ch.onReply(id, (err?: unknown) => {
      if (err) cb(err as Error);
      else if (rest) this.write(handle, rest, 0, rest.length, position + n, true, (e) => (e ? cb(e) : cb(undefined, end)));
      else cb(undefined, end);
    });
    ch.send(head);
    if (n > first) ch.send(buf.subarray(off + first, off + n), !stable);
  }

  /**
   * Sends one request and settles with the reply (`undefined` for OK status, the handle,
   * attrs, or raw names). Rejects with an SshSftpError for an error status, and with the
   * session's death reason or the signal's reason if either aborts first.
   */
  request<T>(
    op: string,
    path: RemotePath | undefined,
    type: number,
    fields: (b: PacketBuilder) => void,
    signal: AbortSignal | undefined,
    kind: 'status' | 'handle' | 'attrs' | 'names',
  ): Promise<T> {
    const dead = this.deadReason;
    if (dead) return Promise.reject(dead);
    if (signal?.aborted) return Promise.reject(abortReason(signal, `sftp ${op}`));
    if (!this.alive) return Promise.reject(new SshError('ERR_SSH_CONNECTION_LOST', 'SFTP session is closed'));
    let payload: Buffer;
    const b = new PacketBuilder();
    try {
      fields(b);
    } catch (err) {
      return Promise.reject(mapSftpError(err, op, path));
    }
    const id = this.channel.nextId();
    try {
      payload = b.build(type, id);
    } catch (err) {
      return Promise.reject(mapSftpError(err, op, path));
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const done = (): void => {
        settled = true;
        this.dead.removeEventListener('abort', onAbort);
        signal?.removeEventListener('abort', onAbort);
        if (kind === 'names') {
          this.names.wanted.delete(id);
          this.names.captured.delete(id);
        }
      };
      const onAbort = (): void => {
        if (settled) return;
        done();
        reject(this.dead.aborted ? abortReason(this.dead, 'sftp') : abortReason(signal!, `sftp ${op}`));
      };
      const sentAt = performance.now();
      const cb: ReqCallback = (err, value) => {
        const rtt = performance.now() - sentAt;
        if (rtt < this.minRttMs) this.minRttMs = rtt;
        if (settled) {
          // abandoned (abort): a handle that still arrives is closed, never leaked
          if (kind === 'handle' && Buffer.isBuffer(value)) this.closeQuietly(value);
          return;
        }
        let raw: Buffer | undefined;
        if (kind === 'names') raw = this.names.captured.get(id);
        done();
        if (err !== undefined && err !== null) {
          reject(mapSftpError(err, op, path, this.deadReason));
          return;
        }
        switch (kind) {
          case 'status':
            resolve(undefined as T);
            return;
          case 'handle':
            if (!Buffer.isBuffer(value)) {
              reject(new SshSftpError(`sftp ${op}: expected a handle`, { statusCode: SftpStatus.BAD_MESSAGE, path }));
              return;
            }
            resolve(value as T);
            return;
          case 'attrs':
            resolve(toRawAttrs(value) as T);
            return;
          case 'names':
            try {
              if (raw !== undefined) {
                resolve(parseNames(raw) as T);
              } else {
                // no raw capture (should not happen): fall back on ssh2's UTF-8 decoded names
                const list = Array.isArray(value) ? (value as { filename: string; longname: string; attrs: unknown }[]) : [];
                resolve(
                  list.map((n) => ({
                    filename: Buffer.from(n.filename, 'utf8'),
                    longname: Buffer.from(n.longname, 'utf8'),
                    attrs: toRawAttrs(n.attrs),
                  })) as T,
                );
              }
            } catch (e) {
              reject(new SshSftpError(`sftp ${op}: malformed NAME reply`, { statusCode: SftpStatus.BAD_MESSAGE, path, cause: e }));
            }
            return;
        }
      };
      this.dead.addEventListener('abort', onAbort, { once: true });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (kind === 'names' && this.names.ok) this.names.wanted.add(id);
      this.channel.onReply(id, cb);
      this.channel.send(payload);
    });
  }

  // ------------------------------------------------------------------------------------------
  // requests

  /** SSH_FXP_OPEN. Resolves with the handle. */
  open(path: RemotePath, flags: number, attrs: SetAttrs | undefined, signal?: AbortSignal): Promise<Buffer> {
    const p = pathBytes(path);
    return this.request('open', path, REQ.OPEN, (b) => b.string(p).u32(flags).attrs(attrs), signal, 'handle');
  }

  /** SSH_FXP_OPENDIR. Resolves with the handle. */
  opendir(path: RemotePath, signal?: AbortSignal): Promise<Buffer> {
    const p = pathBytes(path);
    return this.request('opendir', path, REQ.OPENDIR, (b) => b.string(p), signal, 'handle');
  }

  /** SSH_FXP_READDIR. Resolves with the next names, or `undefined` at the end (EOF status). */
  async readdir(handle: Buffer, path: RemotePath, signal?: AbortSignal): Promise<RawName[] | undefined> {
    try {
      return await this.request<RawName[]>('readdir', path, REQ.READDIR, (b) => b.string(handle), signal, 'names');
    } catch (err) {
      if (err instanceof SshSftpError && err.statusCode === SftpStatus.EOF) return undefined;
      throw err;
    }
  }

  /** SSH_FXP_CLOSE. */
  close(handle: Buffer, path: RemotePath | undefined, signal?: AbortSignal): Promise<void> {
    return this.request('close', path, REQ.CLOSE, (b) => b.string(handle), signal, 'status');
  }

  /** SSH_FXP_STAT (follows symlinks). */
  stat(path: RemotePath, signal?: AbortSignal): Promise<RawAttrs> {
    const p = pathBytes(path);
    return this.request('stat', path, REQ.STAT, (b) => b.string(p), signal, 'attrs');
  }

  /** SSH_FXP_LSTAT (does not follow symlinks). */
  lstat(path: RemotePath, signal?: AbortSignal): Promise<RawAttrs> {
    const p = pathBytes(path);
    return this.request('lstat', path, REQ.LSTAT, (b) => b.string(p), signal, 'attrs');
  }

  /** SSH_FXP_FSTAT. */
  fstat(handle: Buffer, path: RemotePath | undefined, signal?: AbortSignal): Promise<RawAttrs> {
    return this.request('fstat', path, REQ.FSTAT, (b) => b.string(handle), signal, 'attrs');
  }

  /** SSH_FXP_SETSTAT. */
  setstat(path: RemotePath, attrs: SetAttrs, signal?: AbortSignal): Promise<void> {
    const p = pathBytes(path);
    return this.request('setstat', path, REQ.SETSTAT, (b) => b.string(p).attrs(attrs), signal, 'status');
  }

  /** SSH_FXP_FSETSTAT. */
  fsetstat(handle: Buffer, path: RemotePath | undefined, attrs: SetAttrs, signal?: AbortSignal): Promise<void> {
    return this.request('fsetstat', path, REQ.FSETSTAT, (b) => b.string(handle).attrs(attrs), signal, 'status');
  }

  /** SSH_FXP_REMOVE (files and symlinks). */
  remove(path: RemotePath, signal?: AbortSignal): Promise<void> {
    const p = pathBytes(path);
    return this.request('unlink', path, REQ.REMOVE, (b) => b.string(p), signal, 'status');
  }

  /** SSH_FXP_MKDIR. */
  mkdir(path: RemotePath, attrs: SetAttrs | undefined, signal?: AbortSignal): Promise<void> {
    const p = pathBytes(path);
    return this.request('mkdir', path, REQ.MKDIR, (b) => b.string(p).attrs(attrs), signal, 'status');
  }

  /** SSH_FXP_RMDIR. */
  rmdir(path: RemotePath, signal?: AbortSignal): Promise<void> {
    const p = pathBytes(path);
    return this.request('rmdir', path, REQ.RMDIR, (b) => b.string(p), signal, 'status');
  }

  /** SSH_FXP_REALPATH. Resolves with the canonical path bytes. */
  async realpath(path: RemotePath, signal?: AbortSignal): Promise<Buffer> {
    const p = pathBytes(path);
    const names = await this.request<RawName[]>('realpath', path, REQ.REALPATH, (b) => b.string(p), signal, 'names');
    const first = names[0];
    if (!first) throw new SshSftpError('sftp realpath: empty NAME reply', { statusCode: SftpStatus.BAD_MESSAGE, path });
    return first.filename;
  }

  /** SSH_FXP_READLINK. Resolves with the link target bytes. */
  async readlink(path: RemotePath, signal?: AbortSignal): Promise<Buffer> {
    const p = pathBytes(path);
    const names = await this.request<RawName[]>('readlink', path, REQ.READLINK, (b) => b.string(p), signal, 'names');
    const first = names[0];
    if (!first) throw new SshSftpError('sftp readlink: empty NAME reply', { statusCode: SftpStatus.BAD_MESSAGE, path });
    return first.filename;
  }

  /**
   * SSH_FXP_SYMLINK creating `linkPath` pointing at `target`. OpenSSH's server takes the two
   * paths in the opposite order to the draft (target first), as ssh2 also handles.
   */
  symlink(target: RemotePath, linkPath: RemotePath, signal?: AbortSignal): Promise<void> {
    const t = pathBytes(target);
    const l = pathBytes(linkPath);
    const openssh = this.channel.isOpenSSH;
    return this.request(
      'symlink',
      linkPath,
      REQ.SYMLINK,
      (b) => (openssh ? b.string(t).string(l) : b.string(l).string(t)),
      signal,
      'status',
    );
  }

  /** SSH_FXP_RENAME (fails when `to` exists on OpenSSH). */
  rename(from: RemotePath, to: RemotePath, signal?: AbortSignal): Promise<void> {
    const f = pathBytes(from);
    const t = pathBytes(to);
    return this.request('rename', from, REQ.RENAME, (b) => b.string(f).string(t), signal, 'status');
  }

  /** `posix-rename@openssh.com` (OpenSSH PROTOCOL section 4.3): rename(2), replacing `to`. */
  posixRename(from: RemotePath, to: RemotePath, signal?: AbortSignal): Promise<void> {
    const f = pathBytes(from);
    const t = pathBytes(to);
    return this.request(
      'rename',
      from,
      REQ.EXTENDED,
      (b) => b.string('posix-rename@openssh.com').string(f).string(t),
      signal,
      'status',
    );
  }

  /** Closes a handle without waiting or failing (best effort, e.g. after an abort). */
  closeQuietly(handle: Buffer): void {
    if (!this.alive) return;
    this.close(handle, undefined).catch(() => undefined);
  }
}

