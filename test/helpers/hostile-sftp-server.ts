/**
 * A hostile SFTP server for the reliability tests (issue 11): an ssh2 `Server` that accepts any
 * login and answers the `sftp` subsystem with a small SFTP v3 server written here over the raw
 * channel (draft-ietf-secsh-filexfer-02), so a test can send exactly the bytes a misbehaving
 * server would: READDIR names holding `/` or `..`, directories that never end, sizes of 2^64-1
 * or none at all, DATA replies longer than the request, a CLOSE that is never answered.
 *
 * ssh2's own server-side SFTP object is not used on purpose: it encodes attributes and names
 * itself (a size above 2^53 cannot be sent, names are strings), and a hostile server must be
 * free to break the protocol.
 *
 * The tree is described by a {@link HostileFs}: `node(path)` says what is at a path (the path
 * exactly as the client sent it, decoded as latin1 so every byte survives). Everything not
 * described answers NO_SUCH_FILE. Writes, mkdirs and setstats are recorded.
 */
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import type { SshClientOptions } from '../../src/index.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** SFTP v3 ATTRS as sent on the wire; a field left out is not sent (its flag is clear). */
export interface WireAttrs {
  size?: bigint | number;
  uid?: number;
  gid?: number;
  mode?: number;
  atime?: number;
  mtime?: number;
}

/** One name of a READDIR reply. */
export interface WireName {
  name: Buffer | string;
  attrs: WireAttrs;
}

/** What a READ callback answers: bytes (any length, even more than asked), EOF, a FAILURE status, or nothing ever. */
export type ReadAnswer = Buffer | 'eof' | 'fail' | 'never';

/** A file node. Without `attrs`, `{ size: content.length, mode: 0o100644 }`. */
export interface HFile {
  type: 'file';
  content?: Buffer;
  attrs?: WireAttrs;
  /**
   * Answers a READ; default: a slice of `content` (EOF past its end). `channel`: which SFTP
   * channel of its connection the request came on (0 for the first).
   */
  read?: (offset: number, len: number, channel: number) => ReadAnswer | Promise<ReadAnswer>;
  /** Answers a WRITE to this path (default `'ok'`: recorded); `'fail'` answers FAILURE; a promise answers when it settles. */
  write?: (offset: number, len: number, channel: number) => 'ok' | 'fail' | Promise<'ok' | 'fail'>;
}

/** A directory node. `list(round)` answers each READDIR (null: EOF; [] an empty NAME reply); default: `names` once, then EOF. */
export interface HDir {
  type: 'dir';
  attrs?: WireAttrs;
  names?: WireName[];
  list?: (round: number) => WireName[] | null;
}

export type HNode = HFile | HDir;

/** The tree a hostile server serves and what it does on CLOSE. */
export interface HostileFs {
  /** The node at `path` (latin1-decoded bytes as the client sent them), or undefined: NO_SUCH_FILE. */
  node(path: string): HNode | undefined;
  /** Never answer CLOSE requests (of files opened for reading). Default false. */
  closeNever?: boolean;
  /** Never answer STAT / LSTAT requests. Default false. */
  statNever?: boolean;
  /** REALPATH answer (latin1); default: the path as sent. */
  realpath?: (path: string) => string;
  /**
   * Runs before an OPEN is answered (`channel`: as for `read`); the answer waits for a promise,
   * and `'fail'` answers FAILURE.
   */
  beforeOpen?: (path: string, channel: number) => void | 'fail' | Promise<void | 'fail'>;
  /** Runs before an FSTAT is answered; the answer waits for a promise. */
  beforeFstat?: (path: string) => void | Promise<void>;
  /** STAT / LSTAT answer for `path` instead of its node's attributes (undefined: the node's). */
  statAttrs?: (path: string) => WireAttrs | undefined;
}

/** What the server saw, for assertions. */
export interface HostileLog {
  /** Request type names in order (`OPEN /x`, `READDIR`, `CLOSE`...). */
  requests: string[];
  /** Bytes written per path (WRITE requests). */
  writes: Map<string, Buffer>;
  /** MKDIR paths. */
  mkdirs: string[];
  /** REMOVE and RMDIR paths (latin1), answered OK. */
  removes: string[];
  /** SETSTAT/FSETSTAT attrs per path. */
  setstats: { path: string; mode: number | undefined }[];
  /** READDIR requests answered. */
  readdirs: number;
  /** SFTP channels open now, over every connection (a client that closes what it opened brings it back to its own count). */
  sftpChannelsOpen: number;
  /** SFTP channels opened so far, over every connection. */
  sftpChannelsOpened: number;
}

export interface HostileSftpServer {
  port: number;
  log: HostileLog;
  /** Client options reaching this server (password login, host key pinned, no reconnect). */
  clientOptions(overrides?: Partial<SshClientOptions>): SshClientOptions;
  close(): Promise<void>;
}

const FXP = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
} as const;
const NAMES = Object.fromEntries(Object.entries(FXP).map(([k, v]) => [v, k]));

const OK = 0;
const EOF = 1;
const NO_SUCH_FILE = 2;
const FAILURE = 4;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function str(s: Buffer | string): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u32(b.length), b]);
}
function attrs(a: WireAttrs): Buffer {
  let flags = 0;
  const parts: Buffer[] = [];
  if (a.size !== undefined) {
    flags |= 1;
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(a.size));
    parts.push(b);
  }
  if (a.uid !== undefined || a.gid !== undefined) {
    flags |= 2;
    parts.push(u32(a.uid ?? 0), u32(a.gid ?? 0));
  }
  if (a.mode !== undefined) {
    flags |= 4;
    parts.push(u32(a.mode));
  }
  if (a.atime !== undefined || a.mtime !== undefined) {
    flags |= 8;
    parts.push(u32(a.atime ?? 0), u32(a.mtime ?? 0));
  }
  return Buffer.concat([u32(flags), ...parts]);
}
function packet(type: number, id: number | undefined, ...fields: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), ...(id === undefined ? [] : [u32(id)]), ...fields]);
  return Buffer.concat([u32(body.length), body]);
}

/** Reads fields of one request payload. */
class Reader {
  p = 0;
  constructor(readonly b: Buffer) {}
  u32(): number {
    const v = this.b.readUInt32BE(this.p);
    this.p += 4;
    return v;
  }
  u64(): number {
    const v = Number(this.b.readBigUInt64BE(this.p));
    this.p += 8;
    return v;
  }
  str(): Buffer {
    const n = this.u32();
    const s = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return s;
  }
  attrs(): { mode: number | undefined } {
    const flags = this.u32();
    let mode: number | undefined;
    if (flags & 1) this.p += 8;
    if (flags & 2) this.p += 8;
    if (flags & 4) mode = this.u32();
    if (flags & 8) this.p += 8;
    return { mode };
  }
}

interface OpenHandle {
  path: string;
  kind: 'file' | 'dir';
  round: number;
}

/** Serves one SFTP channel with `fs`. */
function serveSftp(channel: ssh2.ServerChannel, fs: HostileFs, log: HostileLog, index = 0): void {
  log.sftpChannelsOpen++;
  log.sftpChannelsOpened++;
  channel.once('close', () => log.sftpChannelsOpen--);
  let pending: Buffer = Buffer.alloc(0);
  const handles = new Map<string, OpenHandle>();
  let nextHandle = 1;
  const send = (b: Buffer): void => {
    if (!channel.destroyed) channel.write(b);
  };
  const status = (id: number, code: number, msg = ''): void => send(packet(FXP.STATUS, id, u32(code), str(msg), str('')));
  const newHandle = (h: OpenHandle): Buffer => {
    const name = Buffer.from(`h${nextHandle++}`);
    handles.set(name.toString('latin1'), h);
    return name;
  };
  const fileAttrs = (n: HNode): WireAttrs =>
    n.attrs ?? (n.type === 'file' ? { size: n.content?.length ?? 0, mode: 0o100644 } : { mode: 0o040755 });

  const handle = (type: number, id: number, r: Reader): void => {
    log.requests.push(NAMES[type] ?? String(type));
    switch (type) {
      case FXP.OPEN: {
        const path = r.str().toString('latin1');
        const flags = r.u32();
        log.requests[log.requests.length - 1] += ` ${path}`;
        const answer = (verdict: void | 'fail'): void => {
          if (verdict === 'fail') return status(id, FAILURE, 'open refused');
          if (flags & 0x02) {
            // TRUNC (or a new file) starts empty; a plain WRITE open keeps what was written
            if (flags & 0x10 || !log.writes.has(path)) log.writes.set(path, Buffer.alloc(0));
            return void send(packet(FXP.HANDLE, id, str(newHandle({ path, kind: 'file', round: 0 }))));
          }
          const n = fs.node(path);
          if (!n || n.type !== 'file') return status(id, NO_SUCH_FILE, 'no such file');
          return void send(packet(FXP.HANDLE, id, str(newHandle({ path, kind: 'file', round: 0 }))));
        };
        const hook = fs.beforeOpen?.(path, index);
        if (hook instanceof Promise) return void hook.then(answer, () => answer('fail'));
        return answer(hook);
      }
      case FXP.OPENDIR: {
        const path = r.str().toString('latin1');
        log.requests[log.requests.length - 1] += ` ${path}`;
        const n = fs.node(path);
        if (!n || n.type !== 'dir') return status(id, NO_SUCH_FILE, 'no such directory');
        return void send(packet(FXP.HANDLE, id, str(newHandle({ path, kind: 'dir', round: 0 }))));
      }
      case FXP.READDIR: {
        const h = handles.get(r.str().toString('latin1'));
        const n = h && fs.node(h.path);
        if (!h || !n || n.type !== 'dir') return status(id, FAILURE, 'bad handle');
        log.readdirs++;
        const round = h.round++;
        const names = n.list ? n.list(round) : round === 0 && n.names && n.names.length > 0 ? n.names : null;
        if (names === null) return status(id, EOF, 'eof');
        const body = names.map((e) => Buffer.concat([str(e.name), str(e.name), attrs(e.attrs)]));
        return void send(packet(FXP.NAME, id, u32(names.length), ...body));
      }
      case FXP.READ: {
        const h = handles.get(r.str().toString('latin1'));
        const offset = r.u64();
        const len = r.u32();
        const n = h && fs.node(h.path);
        if (h && log.writes.has(h.path)) return status(id, EOF, 'eof');
        if (!h || !n || n.type !== 'file') return status(id, FAILURE, 'bad handle');
        const answer: ReadAnswer | Promise<ReadAnswer> = n.read
          ? n.read(offset, len, index)
          : offset >= (n.content?.length ?? 0)
            ? 'eof'
            : (n.content ?? Buffer.alloc(0)).subarray(offset, offset + len);
        const reply = (a: ReadAnswer): void => {
          if (a === 'never') return;
          if (a === 'eof') return status(id, EOF, 'eof');
          if (a === 'fail') return status(id, FAILURE, 'read failed');
          return void send(packet(FXP.DATA, id, str(a)));
        };
        if (answer instanceof Promise) return void answer.then(reply, () => status(id, FAILURE, 'read failed'));
        return reply(answer);
      }
      case FXP.WRITE: {
        const h = handles.get(r.str().toString('latin1'));
        const offset = r.u64();
        const data = r.str();
        if (!h) return status(id, FAILURE, 'bad handle');
        const wn = fs.node(h.path);
        const record = (verdict: 'ok' | 'fail', bytes = data): void => {
          if (verdict === 'fail') return status(id, FAILURE, 'write failed');
          const old = log.writes.get(h.path) ?? Buffer.alloc(0);
          const next = Buffer.alloc(Math.max(old.length, offset + bytes.length));
          old.copy(next);
          bytes.copy(next, offset);
          log.writes.set(h.path, next);
          return status(id, OK);
        };
        const verdict = wn?.type === 'file' && wn.write ? wn.write(offset, data.length, index) : 'ok';
        if (verdict instanceof Promise) {
          const copy = Buffer.from(data); // answered later: keep the bytes
          return void verdict.then((v) => record(v, copy), () => status(id, FAILURE, 'write failed'));
        }
        return record(verdict);
      }
      case FXP.FSTAT: {
        const h = handles.get(r.str().toString('latin1'));
        if (!h) return status(id, FAILURE, 'bad handle');
        const answer = (): void => {
          // a described node answers with its attributes even when opened for writing (a hostile size)
          const n = fs.node(h.path);
          if (n) return void send(packet(FXP.ATTRS, id, attrs(fileAttrs(n))));
          const w = log.writes.get(h.path);
          if (w) return void send(packet(FXP.ATTRS, id, attrs({ size: w.length, mode: 0o100644 })));
          return status(id, NO_SUCH_FILE);
        };
        const hook = fs.beforeFstat?.(h.path);
        if (hook instanceof Promise) return void hook.then(answer, answer);
        return answer();
      }
      case FXP.STAT:
      case FXP.LSTAT: {
        if (fs.statNever) return;
        const path = r.str().toString('latin1');
        const n = fs.node(path);
        if (!n) return status(id, NO_SUCH_FILE, 'no such file');
        return void send(packet(FXP.ATTRS, id, attrs(fs.statAttrs?.(path) ?? fileAttrs(n))));
      }
      case FXP.CLOSE: {
        const key = r.str().toString('latin1');
        const h = handles.get(key);
        handles.delete(key);
        if (fs.closeNever && h?.kind === 'file' && !log.writes.has(h.path)) return;
        return status(id, OK);
      }
      case FXP.SETSTAT:
      case FXP.FSETSTAT: {
        const target = r.str().toString('latin1');
        const path = type === FXP.FSETSTAT ? (handles.get(target)?.path ?? target) : target;
        log.setstats.push({ path, mode: r.attrs().mode });
        return status(id, OK);
      }
      case FXP.MKDIR: {
        log.mkdirs.push(r.str().toString('latin1'));
        return status(id, OK);
      }
      case FXP.REMOVE:
      case FXP.RMDIR: {
        log.removes.push(r.str().toString('latin1'));
        return status(id, OK);
      }
      case FXP.REALPATH: {
        const sent = r.str();
        const path = fs.realpath ? Buffer.from(fs.realpath(sent.toString('latin1')), 'latin1') : sent;
        return void send(packet(FXP.NAME, id, u32(1), str(path), str(path), attrs({})));
      }
      default:
        return status(id, 8, 'unsupported');
    }
  };

  channel.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const len = pending.readUInt32BE(0);
      if (pending.length < 4 + len) return;
      const pkt = pending.subarray(4, 4 + len);
      pending = pending.subarray(4 + len);
      const type = pkt[0]!;
      if (type === FXP.INIT) {
        send(packet(FXP.VERSION, undefined, u32(3)));
        continue;
      }
      const r = new Reader(pkt);
      r.p = 5;
      try {
        handle(type, pkt.readUInt32BE(1), r);
      } catch {
        // a malformed request: ignore it (the client's bug, not under test here)
      }
    }
  });
  channel.on('error', () => undefined);
}

let hostKey: { private: Buffer; public: string } | undefined;

/** One ed25519 host key per process, made by ssh-keygen (ssh2's generator sometimes makes keys its own parser refuses). */
function theHostKey(): { private: Buffer; public: string } {
  if (!hostKey) {
    const path = join(mkdtempSync(join(tmpdir(), 'tether-hostile-key-')), 'host');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
    hostKey = { private: readFileSync(path), public: readFileSync(`${path}.pub`, 'utf8') };
  }
  return hostKey;
}

/** Starts a hostile SFTP server on 127.0.0.1 serving `fs`. */
export async function startHostileSftp(fs: HostileFs): Promise<HostileSftpServer> {
  const keys = theHostKey();
  const log: HostileLog = { requests: [], writes: new Map(), mkdirs: [], removes: [], setstats: [], readdirs: 0, sftpChannelsOpen: 0, sftpChannelsOpened: 0 };
  const conns = new Set<ssh2.Connection>();
  const server = new ssh2.Server({ hostKeys: [keys.private] }, (conn) => {
    conns.add(conn);
    (conn as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
    conn.on('error', () => undefined);
    conn.on('close', () => conns.delete(conn));
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('ready', () => {
      let sftpIndex = 0;
      conn.on('session', (accept) => {
        const session = accept();
        session.on('subsystem', (acc, rej, info) => {
          if (info.name !== 'sftp') return rej();
          serveSftp(acc(), fs, log, sftpIndex++);
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'tether-hostile-kh-'));
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${keys.public.split(' ').slice(0, 2).join(' ')}\n`);
  return {
    port,
    log,
    clientOptions: (overrides = {}) => ({
      host: '127.0.0.1',
      port,
      username: 'hostile',
      password: 'x',
      knownHostsFiles: [knownHosts],
      globalKnownHostsFiles: [],
      identityFiles: [],
      agent: false,
      sshConfig: false,
      reconnect: false,
      ...overrides,
    }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.end();
        server.close(() => resolve());
      }),
  };
}
