import { timingSafeEqual } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as FS, mkdtempSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'eventemitter3';
import ssh2 from 'ssh2';
import { z } from 'zod';
import { SshConfigError, SshError } from '../errors.js';
import { generateEd25519 } from '../internal/keygen.js';
import type { SshClientOptions } from '../options.js';
import { Link, type FaultState } from './relay.js';
import { serveSession } from './session.js';
import { SftpSession } from './sftp.js';

const { utils } = ssh2;

/** One login the server accepts. */
export interface ServerUser {
  /** The login name (any name: commands always run as the server process's own OS user). */
  username: string;
  /** OpenSSH public key lines (`ssh-ed25519 AAAA... comment`) accepted for `publickey` auth. */
  authorizedKeys?: string[];
  /** Password accepted for `password` and `keyboard-interactive` auth. */
  password?: string;
}

/** Options of {@link startServer}. Every duration is in milliseconds. */
export interface ServerOptions {
  /** Listen address (loopback recommended). @default '127.0.0.1' */
  host?: string;
  /** Listen port; 0 picks a free one (read it from {@link SshServer.port}). @default 0 */
  port?: number;
  /**
   * The directory SFTP is confined to, and the working directory (and `HOME`) of every command.
   * Kept on `stop()`. @default a fresh temp directory, removed on `stop()`
   */
  root?: string;
  /**
   * Accepted logins. @default one user named after the current OS user, with a generated ed25519
   * key (its private key is in {@link SshServer.clientOptions})
   */
  users?: ServerUser[];
  /** Host private keys (PEM or OpenSSH format, unencrypted). @default one generated ed25519 key */
  hostKeys?: Array<string | Buffer>;
  /** Session channels open at once per connection (sshd_config `MaxSessions`); more are refused with reason 2. @default 10 */
  maxSessions?: number;
  /** Text sent to clients before authentication (sshd_config `Banner`). */
  banner?: string;
  /** Shell that runs `exec` commands (`shell -c command`) and `shell` sessions. @default '/bin/sh' */
  shell?: string;
  /**
   * Environment of every command, merged over a minimal one (`PATH`, `HOME`=root, `USER`, `LOGNAME`,
   * `SHELL`, `SSH_CONNECTION`); the client's `env` requests are merged over it.
   */
  env?: Record<string, string>;
}

const optionsSchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: z.number().int().min(0).max(65535).optional(),
  root: z.string().min(1).optional(),
  users: z
    .array(
      z.strictObject({
        username: z.string().min(1),
        authorizedKeys: z.array(z.string()).optional(),
        password: z.string().optional(),
      }),
    )
    .min(1)
    .optional(),
  hostKeys: z.array(z.union([z.string(), z.instanceof(Buffer)])).min(1).optional(),
  maxSessions: z.number().int().min(1).max(10_000).optional(),
  banner: z.string().optional(),
  shell: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
});

/** One live connection, as seen by {@link SshServer.connections}. */
export interface ServerConnectionInfo {
  /** Server-wide connection number, from 1. */
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The authenticated user, once authentication succeeded. */
  readonly username: string | undefined;
  /** Held by a blackhole (no traffic passes). */
  readonly blackholed: boolean;
}

/** One open channel, as seen by {@link SshServer.channels}. */
export interface ServerChannelInfo {
  readonly connectionId: number;
  readonly type: 'session' | 'direct-tcpip' | 'forwarded-tcpip';
  /** For sessions: what runs in them, once requested. */
  readonly subtype: 'exec' | 'shell' | 'sftp' | undefined;
  /** The command of an `exec` session. */
  readonly command: string | undefined;
}

/** Events of {@link SshServer} (eventemitter3: an `error` with no listener is ignored). */
export interface ServerEvents {
  /** A TCP connection was accepted (before the SSH handshake). */
  connection: [info: ServerConnectionInfo];
  /** One authentication attempt was decided. */
  authentication: [info: { connectionId: number; username: string; method: string; accepted: boolean }];
  /** A connection is gone. */
  disconnect: [info: ServerConnectionInfo];
  /** An `exec` request started a command. */
  exec: [info: { connectionId: number; command: string }];
  /** A `shell` request started a shell. */
  shell: [info: { connectionId: number }];
  /** An SFTP session started. */
  sftp: [info: { connectionId: number }];
  /** A `direct-tcpip` channel (local forward / SOCKS) was opened to `host:port`. */
  'direct-tcpip': [info: { connectionId: number; host: string; port: number }];
  /** A `tcpip-forward` listener was opened (remote forward), or cancelled. */
  'tcpip-forward': [info: { connectionId: number; address: string; port: number; cancelled: boolean }];
  /** A channel open was refused: `'max-sessions'` (MaxSessions) or `'fault'` (`faults.refuseChannels`). */
  'channel-refused': [info: { connectionId: number; type: string; why: 'max-sessions' | 'fault' }];
  /** Anything that went wrong (bad client input, socket errors, spawn failures). Never thrown. */
  error: [err: SshError];
}

/**
 * Fault injection of an {@link SshServer}. Every fault acts inside the server's own relay, in front
 * of the SSH protocol, so the client sees exactly what a broken network or server would show.
 */
export interface ServerFaults {
  /**
   * Stops answering: every current and new connection stops carrying bytes both ways and is held
   * open (no FIN, no RST), like a pulled cable. A blackholed connection stays dead for good (until
   * the client gives up, `reset()` or `stop()`); `resume()` lets new connections work again.
   */
  blackhole(): void;
  /** Resets every current connection with a TCP RST. New connections work as before. */
  reset(): void;
  /** Ends the blackhole (for new connections), the delay and `dropAfterBytes`. */
  resume(): void;
  /** Delivers every chunk, in each direction, `ms` later (order kept); 0 turns it off. @throws ERR_SSH_CONFIG on a bad `ms` */
  delay(ms: number): void;
  /**
   * The next `n` channel opens of any type (session, direct-tcpip) fail with reason 2
   * (`SSH_OPEN_CONNECT_FAILED`, "open failed"), as sshd's MaxSessions does.
   * @throws ERR_SSH_CONFIG on a bad `n`
   */
  refuseChannels(n: number): void;
  /**
   * Every current and new connection is reset (RST) once it has carried `n` more bytes (both
   * directions together). `Infinity` or `resume()` turns it off. @throws ERR_SSH_CONFIG on a bad `n`
   */
  dropAfterBytes(n: number): void;
  /** `stop()` then `start()`: every connection drops, then the server listens again on the same port with the same host key. */
  restart(): Promise<void>;
  /** An outage: closes the listener (new connections are refused) and ends every connection (FIN). Child processes are killed. */
  stop(): Promise<void>;
  /** Ends an outage: listens again on the same port with the same host key. */
  start(): Promise<void>;
}

interface ConnRecord {
  info: { -readonly [K in keyof ServerConnectionInfo]: ServerConnectionInfo[K] };
  link: Link;
  conn: ssh2.Connection | undefined;
  sessions: number;
  forwards: Map<string, net.Server>;
  /** Called once when the connection closes (one ssh2 'close' listener per connection). */
  onClose: Set<() => void>;
}

interface UserRecord {
  username: string;
  keys: ssh2.ParsedKey[];
  password: string | undefined;
  /** The generated private key (default user only). */
  privateKey: string | undefined;
}

function publicLine(key: ssh2.ParsedKey): string {
  return `${key.type} ${key.getPublicSSH().toString('base64')}`;
}

function parseKeyOrThrow(data: string | Buffer, field: string): ssh2.ParsedKey {
  const k = utils.parseKey(data);
  if (k instanceof Error) throw new SshConfigError(`${field}: cannot parse the key (${k.message})`, { field, cause: k });
  return Array.isArray(k) ? (k[0] as ssh2.ParsedKey) : k;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function toSshError(err: unknown, where: string): SshError {
  if (err instanceof SshError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new SshError('ERR_SSH_CONNECTION_LOST', `server (${where}): ${msg}`, { cause: err });
}

/**
 * An SSH server running inside this Node.js process (see {@link startServer}).
 * `await using server = await startServer()` stops it at the end of the scope.
 */
export class SshServer extends EventEmitter<ServerEvents> implements AsyncDisposable {
  /** The listen address. */
  readonly host: string;
  /** The listen port (stays the same across `faults.restart()`). */
  readonly port: number;
  /** The first host key's public line: `ssh-ed25519 AAAA...`. */
  readonly hostKey: string;
  /** A known_hosts line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA...` (`host` alone on port 22). */
  readonly knownHostsLine: string;
  /** The SFTP root and the working directory of commands (a real path). */
  readonly root: string;
  /** Fault injection (see {@link ServerFaults}). */
  readonly faults: ServerFaults;
  /** A known_hosts file holding {@link SshServer.knownHostsLine} (removed on `stop()`). */
  readonly knownHostsPath: string;
  /** The default user's private key file (mode 0600; removed on `stop()`), or `undefined` when `users` was given. */
  readonly privateKeyPath: string | undefined;

  readonly #ssh: ssh2.Server;
  readonly #users: Map<string, UserRecord>;
  readonly #firstUser: string;
  readonly #stateDir: string;
  readonly #ownRoot: boolean;
  readonly #maxSessions: number;
  readonly #shell: string;
  readonly #env: Readonly<Record<string, string>>;
  readonly #faultState: FaultState = { blackholed: false, delayMs: 0, dropAfterBytes: Infinity };
  #refuse = 0;
  #listener: net.Server | undefined;
  #nextConnId = 1;
  readonly #conns = new Map<number, ConnRecord>();
  readonly #channels = new Set<{ -readonly [K in keyof ServerChannelInfo]: ServerChannelInfo[K] }>();
  readonly #children = new Set<ChildProcess>();
  #stopped = false;

  /** @internal use {@link startServer} */
  constructor(init: {
    host: string;
    port: number;
    ssh: ssh2.Server;
    hostKey: ssh2.ParsedKey;
    users: Map<string, UserRecord>;
    firstUser: string;
    stateDir: string;
    root: string;
    ownRoot: boolean;
    maxSessions: number;
    shell: string;
    env: Record<string, string>;
    listener: net.Server;
  }) {
    super();
    this.host = init.host;
    this.port = init.port;
    this.hostKey = publicLine(init.hostKey);
    const name = init.port === 22 ? init.host : `[${init.host}]:${init.port}`;
    this.knownHostsLine = `${name} ${this.hostKey}`;
    this.root = init.root;
    this.#ssh = init.ssh;
    this.#users = init.users;
    this.#firstUser = init.firstUser;
    this.#stateDir = init.stateDir;
    this.#ownRoot = init.ownRoot;
    this.#maxSessions = init.maxSessions;
    this.#shell = init.shell;
    this.#env = init.env;
    this.knownHostsPath = path.join(init.stateDir, 'known_hosts');
    writeFileSync(this.knownHostsPath, `${this.knownHostsLine}\n`, { mode: 0o600 });
    const first = init.users.get(init.firstUser);
    if (first?.privateKey !== undefined) {
      this.privateKeyPath = path.join(init.stateDir, 'id_ed25519');
      writeFileSync(this.privateKeyPath, first.privateKey, { mode: 0o600 });
    } else {
      this.privateKeyPath = undefined;
    }
    this.#ssh.on('connection', (conn, info) => this.#onSsh(conn, info));
    this.#ssh.on('error', (err: unknown) => this.#error(err, 'ssh2'));
    this.#attach(init.listener);
    this.faults = this.#makeFaults();
  }

  /** Live connections (a snapshot). */
  get connections(): readonly ServerConnectionInfo[] {
    return [...this.#conns.values()].map((c) => ({ ...c.info, blackholed: c.link.stalled }));
  }

  /** Open channels (a snapshot). */
  get channels(): readonly ServerChannelInfo[] {
    return [...this.#channels].map((c) => ({ ...c }));
  }

  /** The accepted user names, first the default one. */
  get usernames(): readonly string[] {
    return [...this.#users.keys()];
  }

  /**
   * Ready-made client options for `user` (default: the first user): host, port, username, the
   * generated private key (for the default user) or the password, a known_hosts file trusting
   * this server, `sshConfig: false`, `agent: false`, `globalKnownHostsFiles: []`.
   * @throws ERR_SSH_CONFIG when `user` is not one of the server's users
   */
  clientOptions(user?: string): SshClientOptions & { host: string; port: number; username: string } {
    const name = user ?? this.#firstUser;
    const u = this.#users.get(name);
    if (!u) throw new SshConfigError(`clientOptions(user): no user named ${JSON.stringify(name)} on this server`, { field: 'user' });
    return {
      host: this.host,
      port: this.port,
      username: u.username,
      ...(u.privateKey !== undefined ? { privateKey: u.privateKey } : {}),
      ...(u.privateKey === undefined && u.password !== undefined ? { password: u.password } : {}),
      knownHostsFiles: [this.knownHostsPath],
      globalKnownHostsFiles: [],
      agent: false,
      sshConfig: false,
    };
  }

  /**
   * Stops the server for good: closes the listener and every connection, kills the commands still
   * running (SIGKILL to their process groups), removes the temp files (and `root` when it was
   * the default temp dir). Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#outage();
    rmSync(this.#stateDir, { recursive: true, force: true });
    if (this.#ownRoot) rmSync(this.root, { recursive: true, force: true });
  }

  /** Same as {@link SshServer.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // ------------------------------------------------------------------------------------------

  #error(err: unknown, where: string): void {
    try {
      this.emit('error', toSshError(err, where));
    } catch {
      // a throwing 'error' listener must not break the server
    }
  }

  #safeEmit<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: ServerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.#error(err, `${String(event)} listener`);
    }
  }

  #attach(listener: net.Server): void {
    this.#listener = listener;
    listener.on('connection', (socket) => this.#onSocket(socket));
    listener.on('error', (err) => this.#error(err, 'listener'));
  }

  #onSocket(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    const id = this.#nextConnId++;
    const link = new Link(socket, this.#faultState);
    const rec: ConnRecord = {
      info: { id, remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, username: undefined, blackholed: false },
      link,
      conn: undefined,
      sessions: 0,
      forwards: new Map(),
      onClose: new Set(),
    };
    this.#conns.set(id, rec);
    link.closeHandler = () => this.#dropConn(rec);
    this.#safeEmit('connection', { ...rec.info });
    if (!link.stalled) this.#ssh.injectSocket(link.inner as unknown as net.Socket);
  }

  #dropConn(rec: ConnRecord): void {
    if (!this.#conns.delete(rec.info.id)) return;
    for (const srv of rec.forwards.values()) srv.close();
    rec.forwards.clear();
    for (const c of [...this.#channels]) if (c.connectionId === rec.info.id) this.#channels.delete(c);
    this.#safeEmit('disconnect', { ...rec.info, blackholed: rec.link.stalled });
  }

  /** The relay gives ssh2 the client's address and port, unique among live connections. */
  #recordOf(info: ssh2.ClientInfo): ConnRecord | undefined {
    for (const rec of this.#conns.values()) {
      if (rec.info.remoteAddress === info.ip && rec.info.remotePort === info.port && rec.conn === undefined) return rec;
    }
    return undefined;
  }

  #onSsh(conn: ssh2.Connection, info: ssh2.ClientInfo): void {
    const rec = this.#recordOf(info);
    conn.on('error', (err: unknown) => this.#error(err, `connection ${rec?.info.id ?? '?'}`));
    if (!rec) {
      conn.end();
      return;
    }
    rec.conn = conn;
    const id = rec.info.id;
    conn.once('close', () => {
      for (const f of [...rec.onClose]) f();
      rec.onClose.clear();
    });
    conn.on('authentication', (ctx) => this.#authenticate(rec, ctx));
    conn.on('ready', () => {
      conn.on('session', (accept, reject) => {
        if (this.#refuse > 0) {
          this.#refuse--;
          this.#safeEmit('channel-refused', { connectionId: id, type: 'session', why: 'fault' });
          reject();
          return;
        }
        if (rec.sessions >= this.#maxSessions) {
          this.#safeEmit('channel-refused', { connectionId: id, type: 'session', why: 'max-sessions' });
          reject();
          return;
        }
        const session = accept();
        rec.sessions++;
        const chan = { connectionId: id, type: 'session' as const, subtype: undefined as ServerChannelInfo['subtype'], command: undefined as string | undefined };
        this.#channels.add(chan);
        let released = false;
        const release = (): void => {
          if (released) return;
          released = true;
          rec.sessions--;
          this.#channels.delete(chan);
          rec.onClose.delete(release);
        };
        session.on('close', release);
        rec.onClose.add(release);
        serveSession(session, {
          cwd: this.root,
          shell: this.#shell,
          baseEnv: {
            ...this.#env,
            SSH_CONNECTION: `${rec.info.remoteAddress} ${rec.info.remotePort} ${this.host} ${this.port}`,
            SSH_CLIENT: `${rec.info.remoteAddress} ${rec.info.remotePort} ${this.port}`,
            USER: rec.info.username ?? '',
            LOGNAME: rec.info.username ?? '',
          },
          track: (child) => {
            this.#children.add(child);
            child.once('exit', () => this.#children.delete(child));
            child.once('error', () => this.#children.delete(child));
          },
          onExec: (command) => {
            chan.subtype = 'exec';
            chan.command = command;
            this.#safeEmit('exec', { connectionId: id, command });
          },
          onShell: () => {
            chan.subtype = 'shell';
            this.#safeEmit('shell', { connectionId: id });
          },
          onError: (err) => this.#error(err, `session on connection ${id}`),
        });
        session.on('subsystem', (acc, rej, info) => {
          if (info.name !== 'sftp') {
            rej?.();
            return;
          }
          const channel = acc();
          if (!channel) return;
          chan.subtype = 'sftp';
          this.#safeEmit('sftp', { connectionId: id });
          new SftpSession(channel, this.root, { onError: (err) => this.#error(err, `sftp on connection ${id}`) });
        });
      });
      conn.on('tcpip', (accept, reject, info) => this.#directTcpip(rec, accept, reject, info));
      conn.on('request', (accept, reject, name, info) => {
        if (name === 'tcpip-forward' || name === 'cancel-tcpip-forward') this.#tcpipForward(rec, accept, reject, name, info);
        else reject?.();
      });
    });
  }

  #authenticate(rec: ConnRecord, ctx: ssh2.AuthContext): void {
    const user = this.#users.get(ctx.username);
    const decide = (ok: boolean): void => {
      this.#safeEmit('authentication', { connectionId: rec.info.id, username: String(ctx.username), method: ctx.method, accepted: ok });
      if (ok) {
        rec.info.username = ctx.username;
        ctx.accept();
      } else {
        ctx.reject(['publickey', 'password', 'keyboard-interactive']);
      }
    };
    try {
      switch (ctx.method) {
        case 'publickey': {
          const key = user?.keys.find((k) => k.type === ctx.key.algo && k.getPublicSSH().equals(ctx.key.data));
          if (!key) return decide(false);
          if (ctx.signature === undefined || ctx.blob === undefined) {
            // the client only asks whether the key would do (RFC 4252 section 7): say yes
            ctx.accept();
            return;
          }
          return decide(key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true);
        }
        case 'password':
          return decide(user?.password !== undefined && safeEqual(ctx.password, user.password));
        case 'keyboard-interactive': {
          if (user?.password === undefined) return decide(false);
          const pw = user.password;
          ctx.prompt([{ prompt: 'Password: ', echo: false }], (answers) => decide(answers.length === 1 && safeEqual(String(answers[0]), pw)));
          return;
        }
        default:
          return decide(false);
      }
    } catch (err) {
      this.#error(err, 'authentication');
      try {
        ctx.reject();
      } catch {
        // connection already gone
      }
    }
  }

  #directTcpip(rec: ConnRecord, accept: ssh2.AcceptConnection<ssh2.ServerChannel>, reject: ssh2.RejectConnection, info: ssh2.TcpipRequestInfo): void {
    const id = rec.info.id;
    if (this.#refuse > 0) {
      this.#refuse--;
      this.#safeEmit('channel-refused', { connectionId: id, type: 'direct-tcpip', why: 'fault' });
      reject();
      return;
    }
    const port = Number(info.destPort);
    if (typeof info.destIP !== 'string' || info.destIP.length === 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
      reject();
      return;
    }
    const sock = net.connect({ host: info.destIP, port, noDelay: true });
    let opened = false;
    sock.on('error', () => {
      if (!opened) reject();
    });
    sock.once('connect', () => {
      if (!this.#conns.has(id)) {
        sock.destroy();
        return;
      }
      opened = true;
      const channel = accept();
      if (!channel) {
        sock.destroy();
        return;
      }
      const chan = { connectionId: id, type: 'direct-tcpip' as const, subtype: undefined, command: undefined };
      this.#channels.add(chan);
      this.#safeEmit('direct-tcpip', { connectionId: id, host: info.destIP, port });
      this.#splice(channel, sock, () => this.#channels.delete(chan));
    });
  }

  #splice(channel: ssh2.ServerChannel, sock: net.Socket, done: () => void): void {
    channel.on('error', () => undefined);
    sock.pipe(channel);
    channel.pipe(sock);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      done();
      sock.destroy();
      channel.destroy();
    };
    channel.on('close', finish);
    sock.on('close', finish);
  }

  #tcpipForward(
    rec: ConnRecord,
    accept: ((port?: number) => void) | undefined,
    reject: (() => void) | undefined,
    name: 'tcpip-forward' | 'cancel-tcpip-forward',
    info: ssh2.TcpipBindInfo,
  ): void {
    const requested = String(info.bindAddr);
    const port = Number(info.bindPort);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      reject?.();
      return;
    }
    // sshd's GatewayPorts=no: wildcard and "localhost" binds go to the loopback address.
    const bindHost = ['', '*', '0.0.0.0', 'localhost', '::'].includes(requested) ? '127.0.0.1' : requested;
    if (name === 'cancel-tcpip-forward') {
      const key = `${requested}:${port}`;
      const srv = rec.forwards.get(key);
      if (!srv) {
        reject?.();
        return;
      }
      rec.forwards.delete(key);
      srv.close();
      this.#safeEmit('tcpip-forward', { connectionId: rec.info.id, address: requested, port, cancelled: true });
      accept?.();
      return;
    }
    const srv = net.createServer({ noDelay: true });
    srv.on('error', () => reject?.());
    srv.listen({ host: bindHost, port }, () => {
      srv.removeAllListeners('error');
      srv.on('error', (err) => this.#error(err, 'remote forward listener'));
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
      if (!this.#conns.has(rec.info.id) || !rec.conn) {
        srv.close();
        reject?.();
        return;
      }
      rec.forwards.set(`${requested}:${bound}`, srv);
      if (port === 0) rec.forwards.set(`${requested}:0`, srv);
      this.#safeEmit('tcpip-forward', { connectionId: rec.info.id, address: requested, port: bound, cancelled: false });
      accept?.(bound);
      const conn = rec.conn;
      srv.on('connection', (sock) => {
        sock.on('error', () => undefined);
        sock.pause();
        conn.forwardOut(requested, bound, sock.remoteAddress ?? '127.0.0.1', sock.remotePort ?? 0, (err, channel) => {
          if (err) {
            sock.destroy();
            return;
          }
          const chan = { connectionId: rec.info.id, type: 'forwarded-tcpip' as const, subtype: undefined, command: undefined };
          this.#channels.add(chan);
          this.#splice(channel, sock, () => this.#channels.delete(chan));
          sock.resume();
        });
      });
    });
  }

  /** Listener closed, every connection ended, every child killed. */
  async #outage(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    for (const rec of [...this.#conns.values()]) rec.link.end();
    for (const child of this.#children) {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    this.#children.clear();
    if (listener) await new Promise<void>((resolve) => listener.close(() => resolve()));
  }

  #makeFaults(): ServerFaults {
    const st = this.#faultState;
    const count = (n: number, what: string): void => {
      if (typeof n !== 'number' || Number.isNaN(n) || n < 0 || (!Number.isInteger(n) && n !== Infinity)) {
        throw new SshConfigError(`${what}: expected a whole number >= 0, got ${String(n)}`, { field: what });
      }
    };
    return {
      blackhole: () => {
        st.blackholed = true;
        for (const rec of this.#conns.values()) rec.link.stall();
      },
      reset: () => {
        for (const rec of [...this.#conns.values()]) rec.link.reset();
      },
      resume: () => {
        st.blackholed = false;
        st.delayMs = 0;
        st.dropAfterBytes = Infinity;
      },
      delay: (ms: number) => {
        if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new SshConfigError(`delay(ms): expected a number of milliseconds >= 0, got ${String(ms)}`, { field: 'ms' });
        st.delayMs = ms;
      },
      refuseChannels: (n: number) => {
        count(n, 'refuseChannels(n)');
        this.#refuse = n;
      },
      dropAfterBytes: (n: number) => {
        count(n, 'dropAfterBytes(n)');
        st.dropAfterBytes = n;
        for (const rec of this.#conns.values()) rec.link.resetBudget();
      },
      stop: () => this.#outage(),
      start: () => this.#listen(),
      restart: async () => {
        await this.#outage();
        await this.#listen();
      },
    };
  }

  async #listen(): Promise<void> {
    if (this.#stopped) throw new SshError('ERR_SSH_CLOSED', 'the server was stopped for good (stop()); start a new one');
    if (this.#listener) return;
    const listener = await listenOn(this.host, this.port);
    this.#attach(listener);
  }
}

function listenOn(host: string, port: number): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true, noDelay: true });
  return new Promise<net.Server>((resolve, reject) => {
    srv.once('error', (err: NodeJS.ErrnoException) => {
      reject(new SshError('ERR_SSH_CONNECT', `cannot listen on ${host}:${port}: ${err.code ?? err.message}`, { cause: err }));
    });
    srv.listen({ host, port }, () => {
      srv.removeAllListeners('error');
      resolve(srv);
    });
  });
}

/**
 * Starts an SSH server inside this process (on ssh2's `Server`), listening on `127.0.0.1` and a
 * free port by default. It serves publickey/password/keyboard-interactive authentication, `exec`
 * and `shell` sessions (run by `shell` as this process's OS user, in `root`, each in its own process
 * group; exit status and signals as RFC 4254 section 6.10), `env`, `signal` and `pty-req` requests
 * (PTY through util-linux `script -qfec` where `script` is installed; otherwise the PTY request is
 * refused and commands run without one), SFTP v3 with the OpenSSH extensions `posix-rename`,
 * `statvfs`, `fstatvfs`, `fsync`, `limits` and `hardlink` confined to `root` (no path, `..` or
 * symlink leaves it), `direct-tcpip` (local forwards, SOCKS), `tcpip-forward` (remote forwards;
 * wildcard binds go to 127.0.0.1 as sshd's `GatewayPorts no`), `keepalive@openssh.com` replies
 * (REQUEST_FAILURE, as OpenSSH) and `MaxSessions` (the extra session is refused with reason 2).
 *
 * Bad input from clients never throws: it is answered as sshd would and reported as an `error` event.
 * Not a security boundary: it runs commands as the current user; use it for demos and tests.
 *
 * @param options - see {@link ServerOptions}.
 * @returns the running server.
 * @throws `SshConfigError` (from `ssh-tether`, `ERR_SSH_CONFIG`) for bad options (the message names the field),
 *   `ERR_SSH_CONNECT` when the address cannot be bound.
 */
export async function startServer(options: ServerOptions = {}): Promise<SshServer> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') ?? '';
    throw new SshConfigError(`startServer options: ${field || '(root)'}: ${issue?.message ?? 'invalid'}`, { field, cause: parsed.error });
  }
  const o = parsed.data;
  const host = o.host ?? '127.0.0.1';
  const hostKeys = (o.hostKeys ?? [generateEd25519().private]).map((k, i) => {
    const key = parseKeyOrThrow(k, `hostKeys.${i}`);
    if (!key.isPrivateKey()) throw new SshConfigError(`hostKeys.${i}: expected a private key`, { field: `hostKeys.${i}` });
    return { raw: k, key };
  });
  const users = new Map<string, UserRecord>();
  if (o.users) {
    o.users.forEach((u, i) => {
      if (users.has(u.username)) throw new SshConfigError(`users.${i}.username: duplicate user ${JSON.stringify(u.username)}`, { field: `users.${i}.username` });
      const keys = (u.authorizedKeys ?? []).map((line, j) => parseKeyOrThrow(line, `users.${i}.authorizedKeys.${j}`));
      users.set(u.username, { username: u.username, keys, password: u.password, privateKey: undefined });
    });
  } else {
    const pair = generateEd25519();
    const name = userInfo().username;
    users.set(name, { username: name, keys: [parseKeyOrThrow(pair.public, 'users')], password: undefined, privateKey: pair.private });
  }
  let root: string;
  let ownRoot = false;
  if (o.root !== undefined) {
    try {
      if (!statSync(o.root).isDirectory()) throw new Error('not a directory');
      root = realpathSync(o.root);
    } catch (err) {
      throw new SshConfigError(`root: ${o.root} is not an existing directory`, { field: 'root', cause: err });
    }
  } else {
    root = realpathSync(mkdtempSync(path.join(tmpdir(), 'tether-server-root-')));
    ownRoot = true;
  }
  const shell = o.shell ?? '/bin/sh';
  try {
    accessSync(shell, FS.X_OK);
  } catch (err) {
    if (ownRoot) rmSync(root, { recursive: true, force: true });
    throw new SshConfigError(`shell: ${shell} is not an executable file`, { field: 'shell', cause: err });
  }
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tether-server-'));
  const firstUser = [...users.keys()][0] as string;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: root,
    SHELL: shell,
    ...(process.env.LANG ? { LANG: process.env.LANG } : {}),
    ...o.env,
  };
  let listener: net.Server;
  try {
    listener = await listenOn(host, o.port ?? 0);
  } catch (err) {
    rmSync(stateDir, { recursive: true, force: true });
    if (ownRoot) rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const addr = listener.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : (o.port ?? 0);
  const ssh = new ssh2.Server({
    hostKeys: hostKeys.map((h) => h.raw),
    ...(o.banner !== undefined ? { banner: o.banner } : {}),
    // ssh2's own client keep-alive (15 s x 3) would end quiet connections; sshd's ClientAliveInterval is 0.
    keepaliveInterval: 2 ** 31 - 1,
  });
  return new SshServer({
    host,
    port,
    ssh,
    hostKey: hostKeys[0]!.key,
    users,
    firstUser,
    stateDir,
    root,
    ownRoot,
    maxSessions: o.maxSessions ?? 10,
    shell,
    env,
    listener,
  });
}
