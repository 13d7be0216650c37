/**
 * SFTP version 3 server (draft-ietf-secsh-filexfer-02) with the OpenSSH extensions
 * `posix-rename@openssh.com`, `statvfs@openssh.com`, `fstatvfs@openssh.com`, `fsync@openssh.com`,
 * `limits@openssh.com` and `hardlink@openssh.com` (OpenSSH PROTOCOL, section 4), backed by the real
 * filesystem and confined to a root directory (see `confine.ts`).
 *
 * Own code rather than ssh2's server-side `SFTP`: that one always answers INIT with a VERSION
 * without extensions and has no way to send EXTENDED_REPLY, so `limits`/`statvfs` could not be
 * served. No maintained npm SFTP server exists that runs over an ssh2 channel.
 *
 * Requests are handled one at a time, in order (replies therefore also come in order); reading
 * from the channel pauses while more than {@link MAX_QUEUED} requests wait.
 */
import { constants as FS, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readlink, realpath, rename, rm, rmdir, stat, statfs, symlink, truncate, chmod, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { OutsideRootError, isInside, resolveInside } from './confine.js';

const T = {
  INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, LSTAT: 7, FSTAT: 8, SETSTAT: 9, FSETSTAT: 10,
  OPENDIR: 11, READDIR: 12, REMOVE: 13, MKDIR: 14, RMDIR: 15, REALPATH: 16, STAT: 17, RENAME: 18,
  READLINK: 19, SYMLINK: 20, STATUS: 101, HANDLE: 102, DATA: 103, NAME: 104, ATTRS: 105,
  EXTENDED: 200, EXTENDED_REPLY: 201,
} as const;

/** SSH_FX_* status codes (filexfer-02 section 7). */
export const SftpStatus = {
  OK: 0, EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, BAD_MESSAGE: 5, OP_UNSUPPORTED: 8,
} as const;

const ATTR = { SIZE: 1, UIDGID: 2, PERMISSIONS: 4, ACMODTIME: 8, EXTENDED: 0x80000000 } as const;
const PFLAG = { READ: 1, WRITE: 2, APPEND: 4, CREAT: 8, TRUNC: 0x10, EXCL: 0x20 } as const;

/** OpenSSH's SFTP_MAX_MSG_LENGTH: the largest packet accepted. */
export const MAX_PACKET = 256 * 1024;
/** Largest READ answered / WRITE accepted (OpenSSH: max packet - 1024), as sent in `limits@openssh.com`. */
export const MAX_IO = MAX_PACKET - 1024;
/** Open handles per SFTP session (sent in `limits@openssh.com`). */
export const MAX_HANDLES = 256;
/** Requests waiting before reading pauses. */
const MAX_QUEUED = 64;
/** Names per READDIR reply. */
const READDIR_BATCH = 100;

const EXTENSIONS: ReadonlyArray<[string, string]> = [
  ['posix-rename@openssh.com', '1'],
  ['statvfs@openssh.com', '2'],
  ['fstatvfs@openssh.com', '2'],
  ['hardlink@openssh.com', '1'],
  ['fsync@openssh.com', '1'],
  ['limits@openssh.com', '1'],
];

/** A request the server refuses with a status (not a bug: a client error or a filesystem error). */
class StatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

class Reader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}
  u8(): number {
    this.need(1);
    return this.buf[this.off++]!;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new StatusError(SftpStatus.BAD_MESSAGE, 'offset or size too large');
    return Number(v);
  }
  bytes(): Buffer {
    const n = this.u32();
    this.need(n);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
  str(): string {
    const b = this.bytes();
    if (b.includes(0)) throw new StatusError(SftpStatus.BAD_MESSAGE, 'NUL byte in a string');
    return b.toString('utf8');
  }
  attrs(): Attrs {
    const flags = this.u32();
    const a: Attrs = {};
    if (flags & ATTR.SIZE) a.size = this.u64();
    if (flags & ATTR.UIDGID) {
      a.uid = this.u32();
      a.gid = this.u32();
    }
    if (flags & ATTR.PERMISSIONS) a.mode = this.u32();
    if (flags & ATTR.ACMODTIME) {
      a.atime = this.u32();
      a.mtime = this.u32();
    }
    if (flags & ATTR.EXTENDED) {
      const n = this.u32();
      if (n > 1024) throw new StatusError(SftpStatus.BAD_MESSAGE, 'too many extended attributes');
      for (let i = 0; i < n; i++) {
        this.bytes();
        this.bytes();
      }
    }
    return a;
  }
  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new StatusError(SftpStatus.BAD_MESSAGE, 'truncated packet');
  }
}

interface Attrs {
  size?: number;
  uid?: number;
  gid?: number;
  mode?: number;
  atime?: number;
  mtime?: number;
}

class Writer {
  private parts: Buffer[] = [];
  private len = 0;
  u8(v: number): this {
    return this.push(Buffer.from([v]));
  }
  u32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v >>> 0);
    return this.push(b);
  }
  u64(v: number | bigint): this {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64BE(BigInt(v) & 0xffffffffffffffffn);
    return this.push(b);
  }
  str(v: string | Buffer): this {
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    this.u32(b.length);
    return this.push(b);
  }
  attrs(s: Stats): this {
    this.u32(ATTR.SIZE | ATTR.UIDGID | ATTR.PERMISSIONS | ATTR.ACMODTIME);
    this.u64(s.size);
    this.u32(s.uid).u32(s.gid).u32(s.mode);
    this.u32(Math.floor(s.atimeMs / 1000)).u32(Math.floor(s.mtimeMs / 1000));
    return this;
  }
  packet(): Buffer {
    const body = Buffer.concat(this.parts, this.len);
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(body.length);
    return Buffer.concat([head, body]);
  }
  private push(b: Buffer): this {
    this.parts.push(b);
    this.len += b.length;
    return this;
  }
}

type Handle =
  | { kind: 'file'; fh: FileHandle; path: string }
  | { kind: 'dir'; path: string; names: string[] | undefined; pos: number };

/** What the SFTP session reports to the server (events). */
export interface SftpSessionHooks {
  /** A protocol error that ended the session (malformed or oversized packet). */
  onError(err: Error): void;
  /** One request was served (for counters / events). */
  onRequest?(type: string, path: string | undefined): void;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function longname(name: string, s: Stats): string {
  const t = s.isDirectory() ? 'd' : s.isSymbolicLink() ? 'l' : s.isFile() ? '-' : '?';
  const bits = 'rwxrwxrwx'.split('').map((c, i) => ((s.mode >> (8 - i)) & 1 ? c : '-')).join('');
  const d = s.mtime;
  const when = `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2)} ${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  return `${t}${bits} ${String(s.nlink).padStart(4)} ${String(s.uid).padEnd(8)} ${String(s.gid).padEnd(8)} ${String(s.size).padStart(8)} ${when} ${name}`;
}

function errnoStatus(err: unknown): [number, string] {
  if (err instanceof StatusError) return [err.status, err.message];
  if (err instanceof OutsideRootError) return [SftpStatus.PERMISSION_DENIED, 'Permission denied (outside the server root)'];
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return [SftpStatus.NO_SUCH_FILE, 'No such file'];
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return [SftpStatus.PERMISSION_DENIED, 'Permission denied'];
    default:
      return [SftpStatus.FAILURE, code ? `Failure (${code})` : 'Failure'];
  }
}

/**
 * Serves one SFTP session on `channel` (a raw `subsystem` channel), confined to `root`
 * (a real path). Ends by itself when the channel ends; closes every handle it opened.
 */
export class SftpSession {
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: Buffer[] = [];
  private running = false;
  private initialized = false;
  private closed = false;
  private ending = false;
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;

  constructor(
    private readonly channel: Duplex,
    private readonly root: string,
    private readonly hooks: SftpSessionHooks,
  ) {
    channel.on('data', (chunk: Buffer) => this.onData(chunk));
    channel.on('close', () => void this.shutdown());
    // EOF from the client: answer what is queued, then close.
    channel.on('end', () => {
      this.ending = true;
      this.finishIfDone();
    });
    channel.on('error', () => void this.shutdown());
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len < 5 || len > MAX_PACKET + 1024) {
        this.fatal(new Error(`SFTP: bad packet length ${len}`));
        return;
      }
      if (this.buf.length < 4 + len) break;
      this.queue.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    if (this.queue.length > MAX_QUEUED) this.channel.pause();
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      let pkt: Buffer | undefined;
      while (!this.closed && (pkt = this.queue.shift()) !== undefined) {
        await this.handle(pkt);
        if (this.queue.length <= MAX_QUEUED / 2 && this.channel.isPaused()) this.channel.resume();
      }
    } finally {
      this.running = false;
      this.finishIfDone();
    }
  }

  private finishIfDone(): void {
    if (!this.ending || this.running || this.queue.length > 0 || this.closed) return;
    void this.shutdown();
    this.channel.end();
  }

  private fatal(err: Error): void {
    this.hooks.onError(err);
    void this.shutdown();
    this.channel.destroy();
  }

  private async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    const files = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(files.flatMap((h) => (h.kind === 'file' ? [h.fh.close().catch(() => undefined)] : [])));
  }

  private send(w: Writer): void {
    if (this.closed || this.channel.destroyed || !this.channel.writable) return;
    this.channel.write(w.packet());
  }

  private status(id: number, code: number, message: string): void {
    this.send(new Writer().u8(T.STATUS).u32(id).u32(code).str(message).str(''));
  }

  private async handle(pkt: Buffer): Promise<void> {
    const r = new Reader(pkt);
    const type = r.u8();
    if (type === T.INIT) {
      if (this.initialized) return this.fatal(new Error('SFTP: duplicate INIT'));
      this.initialized = true;
      const w = new Writer().u8(T.VERSION).u32(3);
      for (const [name, data] of EXTENSIONS) w.str(name).str(data);
      this.send(w);
      return;
    }
    if (!this.initialized) return this.fatal(new Error('SFTP: request before INIT'));
    let id: number;
    try {
      id = r.u32();
    } catch {
      return this.fatal(new Error('SFTP: truncated request'));
    }
    try {
      await this.dispatch(type, id, r);
    } catch (err) {
      const [code, msg] = errnoStatus(err);
      this.status(id, code, msg);
    }
  }

  private resolve(p: string, follow: boolean): Promise<string> {
    return resolveInside(this.root, p, follow);
  }

  private handleOf(r: Reader): Handle {
    const h = r.bytes();
    const n = h.length === 4 ? h.readUInt32BE(0) : -1;
    const handle = this.handles.get(n);
    if (!handle) throw new StatusError(SftpStatus.FAILURE, 'Invalid handle');
    return handle;
  }

  private fileOf(r: Reader): Extract<Handle, { kind: 'file' }> {
    const h = this.handleOf(r);
    if (h.kind !== 'file') throw new StatusError(SftpStatus.FAILURE, 'Not a file handle');
    return h;
  }

  private addHandle(h: Handle): Buffer {
    if (this.handles.size >= MAX_HANDLES) throw new StatusError(SftpStatus.FAILURE, 'Too many open handles');
    const n = this.nextHandle++;
    this.handles.set(n, h);
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(n);
    return b;
  }

  private ok(id: number): void {
    this.status(id, SftpStatus.OK, 'Success');
  }

  private async dispatch(type: number, id: number, r: Reader): Promise<void> {
    switch (type) {
      case T.OPEN: {
        const p = r.str();
        const pflags = r.u32();
        const a = r.attrs();
        this.hooks.onRequest?.('open', p);
        const real = await this.resolve(p, true);
        let flags = FS.O_NOFOLLOW;
        const rd = (pflags & PFLAG.READ) !== 0;
        const wr = (pflags & PFLAG.WRITE) !== 0;
        flags |= rd && wr ? FS.O_RDWR : wr ? FS.O_WRONLY : FS.O_RDONLY;
        if (pflags & PFLAG.APPEND) flags |= FS.O_APPEND;
        if (pflags & PFLAG.CREAT) flags |= FS.O_CREAT;
        if (pflags & PFLAG.TRUNC) flags |= FS.O_TRUNC;
        if (pflags & PFLAG.EXCL) flags |= FS.O_EXCL;
        const fh = await open(real, flags, a.mode === undefined ? 0o666 : a.mode & 0o7777);
        try {
          const handle = this.addHandle({ kind: 'file', fh, path: real });
          this.send(new Writer().u8(T.HANDLE).u32(id).str(handle));
        } catch (err) {
          await fh.close().catch(() => undefined);
          throw err;
        }
        return;
      }
      case T.CLOSE: {
        const raw = r.bytes();
        const n = raw.length === 4 ? raw.readUInt32BE(0) : -1;
        const h = this.handles.get(n);
        if (!h) throw new StatusError(SftpStatus.FAILURE, 'Invalid handle');
        this.handles.delete(n);
        if (h.kind === 'file') await h.fh.close();
        return this.ok(id);
      }
      case T.READ: {
        const h = this.fileOf(r);
        const offset = r.u64();
        const len = Math.min(r.u32(), MAX_IO);
        const buf = Buffer.allocUnsafe(len);
        const { bytesRead } = await h.fh.read(buf, 0, len, offset);
        if (bytesRead === 0 && len > 0) return this.status(id, SftpStatus.EOF, 'End of file');
        this.send(new Writer().u8(T.DATA).u32(id).str(buf.subarray(0, bytesRead)));
        return;
      }
      case T.WRITE: {
        const h = this.fileOf(r);
        const offset = r.u64();
        const data = r.bytes();
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await h.fh.write(data, done, data.length - done, offset + done);
          if (bytesWritten === 0) throw new StatusError(SftpStatus.FAILURE, 'short write');
          done += bytesWritten;
        }
        return this.ok(id);
      }
      case T.LSTAT:
      case T.STAT: {
        const p = r.str();
        const real = await this.resolve(p, type === T.STAT);
        const s = type === T.STAT ? await stat(real) : await lstat(real);
        this.send(new Writer().u8(T.ATTRS).u32(id).attrs(s));
        return;
      }
      case T.FSTAT: {
        const h = this.fileOf(r);
        this.send(new Writer().u8(T.ATTRS).u32(id).attrs(await h.fh.stat()));
        return;
      }
      case T.SETSTAT: {
        const p = r.str();
        const a = r.attrs();
        const real = await this.resolve(p, true);
        await this.setAttrs(a, {
          truncate: (n) => truncate(real, n),
          chmod: (m) => chmod(real, m),
          utimes: (at, mt) => utimes(real, at, mt),
        });
        return this.ok(id);
      }
      case T.FSETSTAT: {
        const h = this.fileOf(r);
        const a = r.attrs();
        await this.setAttrs(a, {
          truncate: (n) => h.fh.truncate(n),
          chmod: (m) => h.fh.chmod(m),
          utimes: (at, mt) => h.fh.utimes(at, mt),
        });
        return this.ok(id);
      }
      case T.OPENDIR: {
        const p = r.str();
        this.hooks.onRequest?.('opendir', p);
        const real = await this.resolve(p, true);
        const s = await stat(real);
        if (!s.isDirectory()) throw new StatusError(SftpStatus.FAILURE, 'Not a directory');
        const handle = this.addHandle({ kind: 'dir', path: real, names: undefined, pos: 0 });
        this.send(new Writer().u8(T.HANDLE).u32(id).str(handle));
        return;
      }
      case T.READDIR: {
        const h = this.handleOf(r);
        if (h.kind !== 'dir') throw new StatusError(SftpStatus.FAILURE, 'Not a directory handle');
        h.names ??= await readdir(h.path);
        const batch = h.names.slice(h.pos, h.pos + READDIR_BATCH);
        h.pos += batch.length;
        if (batch.length === 0) return this.status(id, SftpStatus.EOF, 'End of directory');
        const w = new Writer().u8(T.NAME).u32(id);
        const entries: [string, Stats][] = [];
        for (const name of batch) {
          try {
            entries.push([name, await lstat(path.join(h.path, name))]);
          } catch {
            // vanished between readdir and lstat: skip it
          }
        }
        w.u32(entries.length);
        for (const [name, s] of entries) w.str(name).str(longname(name, s)).attrs(s);
        this.send(w);
        return;
      }
      case T.REMOVE: {
        const real = await this.resolve(r.str(), false);
        const s = await lstat(real);
        if (s.isDirectory()) throw new StatusError(SftpStatus.FAILURE, 'Is a directory');
        await rm(real);
        return this.ok(id);
      }
      case T.MKDIR: {
        const p = r.str();
        const a = r.attrs();
        await mkdir(await this.resolve(p, false), { mode: a.mode === undefined ? 0o777 : a.mode & 0o7777 });
        return this.ok(id);
      }
      case T.RMDIR: {
        const real = await this.resolve(r.str(), false);
        if (real === this.root) throw new StatusError(SftpStatus.PERMISSION_DENIED, 'Permission denied (the server root)');
        await rmdir(real);
        return this.ok(id);
      }
      case T.REALPATH: {
        const p = r.str();
        const lexical = path.resolve(this.root, p === '' ? '.' : p);
        let real: string;
        try {
          real = await realpath(await this.resolve(p === '' ? '.' : p, true));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !isInside(this.root, lexical)) throw err;
          real = lexical;
        }
        if (!isInside(this.root, real)) throw new OutsideRootError(p);
        this.send(new Writer().u8(T.NAME).u32(id).u32(1).str(real).str(real).u32(0));
        return;
      }
      case T.RENAME: {
        const from = await this.resolve(r.str(), false);
        const to = await this.resolve(r.str(), false);
        // SSH_FXP_RENAME does not overwrite (as OpenSSH's sftp-server); posix-rename does.
        const exists = await lstat(to).then(
          () => true,
          () => false,
        );
        if (exists) throw new StatusError(SftpStatus.FAILURE, 'Failure (target exists)');
        await rename(from, to);
        return this.ok(id);
      }
      case T.READLINK: {
        const real = await this.resolve(r.str(), false);
        const target = await readlink(real);
        this.send(new Writer().u8(T.NAME).u32(id).u32(1).str(target).str(target).u32(0));
        return;
      }
      case T.SYMLINK: {
        // filexfer-02 order: linkpath, then targetpath (ssh2's client uses this order for a
        // server whose ident is not OpenSSH's).
        const linkPath = await this.resolve(r.str(), false);
        const target = r.str();
        const where = path.resolve(path.dirname(linkPath), target);
        if (!isInside(this.root, where)) throw new OutsideRootError(target);
        await resolveInside(this.root, where, true);
        await symlink(target, linkPath);
        return this.ok(id);
      }
      case T.EXTENDED:
        return this.extended(id, r.str(), r);
      default:
        return this.status(id, SftpStatus.OP_UNSUPPORTED, 'Operation unsupported');
    }
  }

  private async setAttrs(
    a: Attrs,
    ops: { truncate(n: number): Promise<void>; chmod(m: number): Promise<void>; utimes(at: number, mt: number): Promise<void> },
  ): Promise<void> {
    if (a.size !== undefined) await ops.truncate(a.size);
    if (a.mode !== undefined) await ops.chmod(a.mode & 0o7777);
    if (a.atime !== undefined && a.mtime !== undefined) await ops.utimes(a.atime, a.mtime);
    // uid/gid changes are ignored (the server runs as one user), as OpenSSH's sftp-server would fail them.
  }

  private async extended(id: number, name: string, r: Reader): Promise<void> {
    switch (name) {
      case 'posix-rename@openssh.com': {
        const from = await this.resolve(r.str(), false);
        const to = await this.resolve(r.str(), false);
        await rename(from, to);
        return this.ok(id);
      }
      case 'hardlink@openssh.com': {
        const from = await this.resolve(r.str(), false);
        const to = await this.resolve(r.str(), false);
        await link(from, to);
        return this.ok(id);
      }
      case 'fsync@openssh.com': {
        await this.fileOf(r).fh.sync();
        return this.ok(id);
      }
      case 'statvfs@openssh.com':
      case 'fstatvfs@openssh.com': {
        const real = name === 'statvfs@openssh.com' ? await this.resolve(r.str(), true) : this.fileOf(r).path;
        const s = await statfs(real, { bigint: true });
        const w = new Writer().u8(T.EXTENDED_REPLY).u32(id);
        // f_bsize f_frsize f_blocks f_bfree f_bavail f_files f_ffree f_favail f_fsid f_flag f_namemax
        w.u64(s.bsize).u64(s.bsize).u64(s.blocks).u64(s.bfree).u64(s.bavail).u64(s.files).u64(s.ffree).u64(s.ffree);
        w.u64(0).u64(0).u64(255);
        this.send(w);
        return;
      }
      case 'limits@openssh.com': {
        this.send(new Writer().u8(T.EXTENDED_REPLY).u32(id).u64(MAX_PACKET).u64(MAX_IO).u64(MAX_IO).u64(MAX_HANDLES));
        return;
      }
      default:
        return this.status(id, SftpStatus.OP_UNSUPPORTED, 'Operation unsupported');
    }
  }
}

