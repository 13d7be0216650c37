import { EventEmitter } from 'eventemitter3';
import { inspect } from 'node:util';
import { z } from 'zod';
import { SshError } from './errors.js';
import { parseOrThrow, signalSchema, timeoutMsSchema } from './internal/validate.js';
import { resolveOptions, type ResolvedOptions, type SshClientOptions } from './options.js';
import { resolveEffective } from './settings.js';
import type { SshConfigWarning } from './config/ssh-config.js';
import { Connection, type ConnectionEvents, type ConnectionHooks, type RttSummary } from './connection/connection.js';
import { JumpHosts } from './connection/jump.js';
import type { ConnectionState } from './connection/state.js';
import type { ConnectOptions, Link, LinkWaitOptions } from './connection/link.js';
import { SessionLimiter } from './channel/limiter.js';
import { execCommand, spawnCommand, startShell, type ExecContext, type ExecOptions, type ShellOptions, type SpawnOptions } from './exec/exec.js';
import type { ExecResult, RemoteProcess } from './exec/process.js';
import { createCallbackHostVerifier, createHostVerifier, type NewHostKeyInfo } from './known-hosts/index.js';
import type { HostKeyCheck } from './connection/transport.js';
import { buildKillCommand, type KillTarget } from './exec/quote.js';
import { openSession } from './channel/open.js';
import { SftpClient, type SftpWarning } from './sftp/index.js';
import {
  ForwardManager,
  parseForwardSpecs,
  type DynamicForward,
  type DynamicForwardOptions,
  type ForwardEvent,
  type ForwardHandle,
  type LocalForward,
  type LocalForwardOptions,
  type RemoteForward,
  type RemoteForwardOptions,
} from './forward/index.js';
import { redactingLogger, silentLogger, type Logger } from './internal/logger.js';
import { JobManager } from './jobs/jobs.js';
import { checkFollowOptions, followLines, type FollowLine, type FollowOptions } from './jobs/follow.js';
import type ssh2 from 'ssh2';

/** Bound on one kill exec (connect, channel, TERM, KILL after ~1 s). */
const KILL_TIMEOUT_MS = 10_000;
const noKill = (): Promise<void> => Promise.resolve();

/**
 * Runs the kill script for `target` (`buildKillCommand`) as its own exec, which is not itself
 * killed on timeout. Rejects when it cannot run or reports a survivor (exit status 3).
 */
async function runKill(ctx: ExecContext, target: KillTarget): Promise<void> {
  const r = await execCommand({ ...ctx, killer: noKill, stoppable: false }, buildKillCommand(target), { timeoutMs: KILL_TIMEOUT_MS });
  if (r.exitCode !== 0) {
    throw new SshError('ERR_SSH_EXIT', `kill exited with ${r.exitCode === null ? `signal ${String(r.signal)}` : `code ${r.exitCode}`}: ${printable(r.stderr.trim().slice(0, 200))}`);
  }
}

/** Waits for every promise to settle, at most `ms` milliseconds. */
async function settleWithin(promises: readonly Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(promises), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Server text made safe for a message: control characters other than tab/newline shown as `\xNN`. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function openSftpChannel(client: ssh2.Client): Promise<ssh2.SFTPWrapper> {
  return new Promise((resolve, reject) => {
    client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)));
  });
}

/**
 * A `warning` event of {@link SshClient}: `keyword` names what could not be done (an ssh_config
 * keyword, a protocol element, `'exec kill'`, or `'sftp unsafe-name'`), `message` says why.
 */
export interface ClientWarning extends SshConfigWarning {
  /** For `keyword: 'sftp unsafe-name'`: the SFTP client's own warning (path, exact bytes, operation). */
  readonly sftp?: SftpWarning;
}

/**
 * Every event of {@link SshClient}, typed (eventemitter3). An `error` event with no listener does
 * not crash the process.
 */
export interface ClientEvents extends ConnectionEvents {
  /** A host key was accepted without being known (`accept-new` recorded it, or `'no'` accepted it). */
  hostkey: [info: NewHostKeyInfo];
  /**
   * Something the client could not do as asked, once per occurrence: an ssh_config keyword that
   * is not applied (ProxyCommand, LocalCommand, Match exec...; once per keyword); a server
   * misbehaviour that was refused, `keyword` naming the protocol element (e.g. `forwarded-tcpip`
   * for opens reported on port 0 that cannot be matched to a forward); or, with
   * `keyword: 'exec kill'`, a timed-out, aborted or killed command whose processes could not be
   * killed (the kill exec failed or reported a survivor; `message` says why); or, with
   * `keyword: 'sftp unsafe-name'`, a name sent by the server that a directory transfer refused
   * and skipped (the {@link SftpClient}'s `warning`, re-emitted here with it as `sftp`).
   */
  warning: [info: ClientWarning];
  /**
   * A forward changed state: `up` (the server accepted it / the link is back), `down` (link lost;
   * local/dynamic forwards keep listening in state `waiting`), `error` (could not be set up), or
   * `refused` (the server refused one connection's channel: `cause` has its reason, `target` the
   * destination).
   */
  forward: [event: ForwardEvent];
}

/** What {@link SshClient.health} reports. */
export interface ClientHealth {
  /** The connection state. */
  state: ConnectionState;
  /** The host connected to, after ssh_config (`HostName`); the `host` option before the first attempt. */
  host: string;
  /** The port connected to, after ssh_config (`Port`). */
  port: number;
  /** The login user, after ssh_config (`User`). */
  username: string;
  /** The name the client was created with (an ssh_config alias or a host name); with a failover list, the entry in use. */
  alias: string;
  /** Position of the host in use (or being tried) in the failover list (`host: [...]`); 0 with one host. */
  hostIndex: number;
  /**
   * Why the client is `closed`: the fatal error (e.g. `ERR_SSH_HOST_KEY_MISMATCH` on a reconnect,
   * `ERR_SSH_AUTH`), or `ERR_SSH_CLOSED` after `close()`/`destroy()`; `undefined` while not closed.
   */
  closedBy: { code: string; message: string } | undefined;
  /** When the current link became ready, or `undefined` when not ready. */
  connectedSince: Date | undefined;
  /**
   * When idle persist (`idleTimeoutMs`) ended the unused link, while the client is still `idle`
   * because of it (the next operation connects again); `undefined` otherwise.
   */
  idleSince: Date | undefined;
  /** Milliseconds since the current link became ready (0 when not ready). */
  uptimeMs: number;
  /** Successful reconnects since the client was created. */
  reconnects: number;
  /** Links lost since the client was created. */
  disconnects: number;
  /** Why the last link was lost. */
  lastDisconnectCause: { code: string; message: string } | undefined;
  /** Round trip of the last answered keep-alive probe, in ms. */
  lastKeepaliveRttMs: number | undefined;
  /** Keep-alive round trips over the last 64 answered probes, in ms. */
  keepaliveRtt: RttSummary;
  /** Session channels open now. */
  openChannels: number;
  /** Operations waiting for a session channel (MaxSessions). */
  queuedChannels: number;
  /**
   * Session channels this client opens at once now: `maxSessions`, lowered when the server
   * refuses a session for lack of resources while others are open ("open failed", sshd
   * `MaxSessions`), climbing back after successful opens and reset on reconnect. A refusal that
   * directly follows one of our own channel closes (the server had not freed that slot yet) is
   * retried and does not lower it.
   */
  sessionLimit: number;
  /** Bytes received and sent on the transport (all links, SSH framing included). */
  bytesIn: number;
  bytesOut: number;
  /** Every open forward with its state and counters (`bytesIn`: server to local). */
  forwards: ForwardHealth[];
  /** File content bytes moved over SFTP. */
  sftp: { bytesRead: number; bytesWritten: number };
}

/** One forward in {@link ClientHealth.forwards}. */
export interface ForwardHealth {
  /** A stable name: `L:127.0.0.1:8080->db:5432`, `R:localhost:9000->127.0.0.1:3000`, `D:127.0.0.1:1080`. */
  id: string;
  type: 'local' | 'remote' | 'dynamic';
  /**
   * `up`: usable now. `waiting` (local, dynamic): listening, but the client is (re)connecting, so
   * new connections wait for the link (`forwardConnectionWaitMs`). `pending`/`down`/`error`
   * (remote): not yet accepted / link lost / could not be set up again.
   */
  state: 'up' | 'waiting' | 'down' | 'error' | 'pending';
  /** Where it listens. */
  bind: string;
  /** Where it connects to (`socks` for dynamic forwards). */
  target: string;
  connectionsTotal: number;
  connectionsActive: number;
  bytesIn: number;
  bytesOut: number;
}

function endpoint(host: string | undefined, port: number | undefined, path: string | undefined): string {
  return path ?? `${host ?? ''}:${String(port ?? '')}`;
}

function describeForward(f: ForwardHandle): { id: string; type: ForwardHealth['type']; bind: string; target: string; state: ForwardHealth['state'] } {
  switch (f.type) {
    case 'local': {
      const bind = endpoint(f.localHost, f.localPort, undefined);
      const target = endpoint(f.remoteHost, f.remotePort, f.remotePath);
      return { id: `L:${bind}->${target}`, type: 'local', bind, target, state: f.state === 'closed' ? 'down' : f.state };
    }
    case 'remote': {
      const bind = endpoint(f.remoteHost, f.remotePort, f.remotePath);
      const target = endpoint(f.localHost, f.localPort, undefined);
      const st = f.state;
      return { id: `R:${bind}->${target}`, type: 'remote', bind, target, state: st === 'closed' ? 'down' : st };
    }
    case 'dynamic': {
      const bind = endpoint(f.localHost, f.localPort, undefined);
      return { id: `D:${bind}`, type: 'dynamic', bind, target: 'socks', state: f.state === 'closed' ? 'down' : f.state };
    }
  }
}

/** The options of {@link SshClient.connect} ({@link ConnectOptions}). */
const connectOptionsSchema = z.strictObject({
  signal: signalSchema.optional(),
  timeoutMs: timeoutMsSchema().optional(),
  retry: z.boolean({ error: 'expected a boolean' }).optional(),
});

/**
 * A self-healing SSH client: one logical, authenticated connection to one host, kept alive by
 * its own keep-alive probes (OpenSSH `ServerAliveInterval`/`ServerAliveCountMax`), reconnected with
 * jittered exponential backoff when it dies, carrying many channels (at most `maxSessions`
 * session channels at once, more wait in FIFO order).
 *
 * Host keys are always verified against known_hosts (OpenSSH `StrictHostKeyChecking`, default
 * `'yes'`) before any authentication packet is sent.
 *
 * @example
 * ```ts
 * import { SshClient } from 'ssh-tether';
 *
 * const ssh = new SshClient({ host: 'build-box.example', username: 'deploy' });
 * ssh.on('reconnecting', ({ attempt, delayMs, cause }) => console.warn(attempt, delayMs, cause.code));
 * await ssh.connect();
 * const { stdout, exitCode } = await ssh.exec(['ls', '-la', '/srv/my dir']);
 * await ssh.close();
 * ```
 */
export class SshClient extends EventEmitter<ClientEvents> implements AsyncDisposable {
  readonly #o: ResolvedOptions;
  readonly #conn: Connection;
  readonly #limiter: SessionLimiter;
  readonly #execCtx: ExecContext;
  readonly #forwards: ForwardManager;
  #sftp: SftpClient | undefined;
  /** Spawned commands still running: close() stops them instead of waiting closeTimeoutMs. */
  readonly #spawned = new Set<RemoteProcess>();
  /** The live link while close() runs, so the kill command of a spawn can still reach the server. */
  #closingLink: Link | undefined;
  /** Kill execs in flight: close() lets them finish (bounded) before it ends the link. */
  readonly #pendingKills = new Set<Promise<void>>();
  #jobs: JobManager | undefined;
  readonly #logger: Logger;
  /** SFTP session channels open now (each holds a `MaxSessions` slot). */
  readonly #sftpChannels = new Set<ssh2.SFTPWrapper>();

  /**
   * Validates the options; does not connect (call {@link SshClient.connect}, or any operation).
   *
   * @param options - see {@link SshClientOptions}.
   * @throws {SshConfigError} `ERR_SSH_CONFIG` for an unknown or ill-typed option, naming the field
   *   and the accepted form.
   */
  constructor(options: SshClientOptions) {
    super();
    this.#o = resolveOptions(options);
    const o = this.#o;
    this.#limiter = new SessionLimiter(o.maxSessions, this);
    const secrets = (): string[] => {
      const out: string[] = [];
      if (o.password) out.push(o.password.reveal());
      if (o.passphrase && typeof o.passphrase !== 'function') out.push(o.passphrase.reveal());
      return out;
    };
    const logger = o.logger ? redactingLogger(o.logger, secrets) : silentLogger;
    this.#logger = logger;
    const declared = parseForwardSpecs(o.forwards);
    const warned = new Set<string>();
    // In-memory known_hosts lines and the hostVerifier callback apply to every hop and the target.
    const trusted = new Map<string, Buffer>();
    const onNewKey = (info: NewHostKeyInfo): void => {
      logger.warn({ host: info.host, action: info.action, fingerprint: info.fingerprint }, 'ssh-tether: host key accepted without being known');
      this.emit('hostkey', info);
    };
    const hostKeyCheckFor = (a: ResolvedOptions): HostKeyCheck => {
      if (o.hostVerifier) return createCallbackHostVerifier({ host: a.host, port: a.port, verify: o.hostVerifier, trusted });
      return createHostVerifier({
        host: a.host,
        port: a.port,
        knownHostsFiles: a.knownHostsFiles,
        globalKnownHostsFiles: a.globalKnownHostsFiles,
        // With in-memory lines, ssh_config's StrictHostKeyChecking cannot weaken the check.
        strictHostKeyChecking: o.explicitKeys.has('knownHosts') && !o.explicitKeys.has('strictHostKeyChecking') ? 'yes' : a.strictHostKeyChecking,
        hashKnownHosts: a.hashKnownHosts,
        knownHosts: o.knownHosts,
        onNewKey,
      });
    };
    const custom = o.hostVerifier !== undefined || o.explicitKeys.has('knownHosts');
    const jump = new JumpHosts({ onNewKey: (info) => this.emit('hostkey', info), ...(custom ? { hostKeyCheckFor } : {}) });
    const attemptHooks: ConnectionHooks = {
      owner: this,
      logger,
      transport: (a, signal) => jump.transport(a, signal),
      // Failover list: entry `hostIndex` resolved through ssh_config on its own.
      resolveAttempt: async (hostIndex = 0) => {
        const entry = o.hosts[hostIndex];
        const e = await resolveEffective(hostIndex === 0 || entry === undefined ? o : Object.freeze({ ...o, host: entry, alias: entry }));
        for (const w of e.warnings) {
          if (warned.has(w.keyword)) continue;
          warned.add(w.keyword);
          logger.warn({ keyword: w.keyword }, `ssh-tether: ssh_config: ${w.message}`);
          this.emit('warning', w);
        }
        return e;
      },
      hostKeyCheckFor,
    };
    this.#conn = new Connection(o, {
      ...attemptHooks,
      hostCount: o.hosts.length,
      // Idle persist: a session channel open or waited for (exec, spawn, an SFTP session with an
      // operation or stream in flight), a spawned command, or any forward (listening, or a remote
      // one requested) keeps the link. An SFTP session with nothing in flight does not: it ends
      // with the link, and the next SFTP call opens one again.
      isBusy: () => this.#busyChannels() > 0 || this.#limiter.queued > 0 || this.#spawned.size > 0 || this.#forwards.list().length > 0,
      // Failback: a move would break a session channel, a spawned command or a carried connection
      // (forwards themselves are set up again on the new host; an idle SFTP session is opened
      // again on the next call).
      isRunning: () =>
        this.#busyChannels() > 0 || this.#limiter.queued > 0 || this.#spawned.size > 0 || this.#forwards.list().some((f) => f.stats().connectionsActive > 0),
      beforeReady: async (link, a) => {
        // Declared forwards: the `forwards` option, else ssh_config LocalForward/RemoteForward/DynamicForward.
        const specs = a.forwards === o.forwards ? declared : parseForwardSpecs(a.forwards);
        if (specs.length > 0) await this.#forwards.applyDeclared(specs, link, { exitOnForwardFailure: a.exitOnForwardFailure });
      },
      beforeEnd: async (deadlineMs, link) => {
        // A spawned `tail -f` never ends by itself: stop it (TERM, channel close, process-group
        // kill over `link`) rather than wait the whole closeTimeoutMs for it.
        this.#closingLink = link;
        const stopped = new SshError('ERR_SSH_CLOSED', 'the client is closing: the spawned command was stopped');
        for (const p of [...this.#spawned]) p.stopWith(stopped);
        // Kills in flight (of commands stopped before or just now) finish before the link ends.
        await settleWithin([...this.#pendingKills], deadlineMs);
        await this.#forwards.closeAll();
        await this.#sftp?.close();
        await this.#limiter.idle(deadlineMs);
      },
    });
    this.#forwards = new ForwardManager(this.#conn, {
      connectionWaitMs: o.forwardConnectionWaitMs,
      remoteRequestTimeoutMs: o.connectTimeoutMs,
      warn: (w) => {
        logger.warn({ keyword: w.keyword }, `ssh-tether: ${w.message}`);
        this.emit('warning', w);
      },
      emit: (ev) => {
        logger.info({ forward: describeForward(ev.forward).id, state: ev.state, code: ev.cause?.code }, `ssh-tether: forward ${ev.state}`);
        this.emit('forward', ev);
      },
    });
    this.#conn.onLink(() => this.#limiter.reset());
    // Re-emit the connection's events as the client's own.
    const c = this.#conn;
    c.on('state', (e) => this.emit('state', e));
    c.on('ready', () => this.emit('ready'));
    c.on('disconnect', (e) => this.emit('disconnect', e));
    c.on('reconnecting', (e) => this.emit('reconnecting', e));
    c.on('keepalive', (e) => this.emit('keepalive', e));
    c.on('error', (e) => this.emit('error', e));
    c.on('close', (e) => this.emit('close', e));
    c.on('failover', (e) => this.emit('failover', e));
    this.#conn.on('close', () => {
      jump.destroy();
      this.#forwards.closeAll().catch(() => undefined);
    });
    this.#conn.on('close', () => {
      this.#limiter.failAll(new SshError('ERR_SSH_CLOSED', 'the client is closed'));
    });
    // The kill command of a stopped command also runs while close() drains (state `closing`,
    // where the connection hands out no link): then it uses the link close() is ending.
    const killProvider = {
      link: (opts?: LinkWaitOptions): Promise<Link> => (this.#closingLink && !this.#closingLink.signal.aborted ? Promise.resolve(this.#closingLink) : this.#conn.link(opts)),
      onLink: (l: (link: Link) => void) => this.#conn.onLink(l),
    };
    this.#execCtx = {
      provider: this.#conn,
      limiter: this.#limiter,
      killer: (target) => {
        const kill = this.#kill(target, killProvider, attemptHooks, logger);
        this.#pendingKills.add(kill);
        const forget = (): void => {
          this.#pendingKills.delete(kill);
        };
        kill.then(forget, forget);
        return kill;
      },
    };
  }

  /** Session channels in use: every open one but an SFTP session with no operation in flight. */
  #busyChannels(): number {
    const idleSftp = this.#sftp !== undefined && !this.#sftp.busy ? this.#sftpChannels.size : 0;
    return Math.max(0, this.#limiter.open - idleSftp);
  }

  /**
   * Runs the kill script for a stopped command; reports a failure as a `warning` event. Where
   * this client cannot run it (the server refused a second session, or the client is closing),
   * it runs over a short-lived connection of its own, so a stopped command never outlives us.
   */
  async #kill(target: KillTarget, killProvider: ExecContext['provider'], attemptHooks: ConnectionHooks, logger: Logger): Promise<void> {
    const o = this.#o;
    const warn = (message: string): void => {
      logger.warn({ pid: target.pid, mode: target.mode }, `ssh-tether: ${message}`);
      this.emit('warning', { keyword: 'exec kill', message });
    };
    try {
      await runKill({ ...this.#execCtx, provider: killProvider }, target);
    } catch (err) {
      if (!(err instanceof SshError && (err.code === 'ERR_SSH_CHANNEL_OPEN' || err.code === 'ERR_SSH_CLOSED'))) {
        warn(`could not kill remote process ${target.pid} (${target.mode}): ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      // The server refused a second session on this connection (tinysshd allows one; sshd
      // with `MaxSessions 1`), or this client is closing: kill over a short-lived connection
      // of its own, on the host in use (a failover list is not walked: the process lives there).
      const conn = new Connection(o, { ...attemptHooks, resolveAttempt: () => attemptHooks.resolveAttempt?.(this.#conn.hostIndex) ?? Promise.resolve(o) });
      try {
        await conn.connect({ timeoutMs: KILL_TIMEOUT_MS });
        await runKill({ provider: conn, limiter: new SessionLimiter(1, this), killer: noKill }, target);
      } catch (err2) {
        warn(`could not kill remote process ${target.pid} (${target.mode}) over a second connection either: ${err2 instanceof Error ? err2.message : String(err2)}`);
      } finally {
        conn.destroy();
      }
    }
  }

  /** The connection state: `idle`, `connecting`, `ready`, `reconnecting`, `closing` or `closed`. */
  get state(): ConnectionState {
    return this.#conn.state;
  }

  /**
   * The host this client connects to: after ssh_config resolution (`HostName`) once an attempt
   * was made; the `host` option before.
   */
  get host(): string {
    return this.#conn.effective.host;
  }

  /** The port this client connects to, after ssh_config (`Port`) once an attempt was made. */
  get port(): number {
    return this.#conn.effective.port;
  }

  /** The login user, after ssh_config (`User`) once an attempt was made. */
  get username(): string {
    return this.#conn.effective.username;
  }

  /**
   * The name this client was created with (the `host` option: an ssh_config alias or a host
   * name); with a failover list, the entry in use (or being tried).
   */
  get alias(): string {
    return this.#conn.effective.alias;
  }

  /**
   * Connects (when idle) and resolves once authenticated; resolves at once when ready and waits
   * while reconnecting. A failed first connect leaves the client `idle` (retry by calling again)
   * unless the error is fatal (auth, key, host key, config), which ends in `closed`. With
   * `retry: true` (or the option `retryFirstConnect`) a retryable failure is retried under the
   * `reconnect` policy instead, as autossh does (`reconnecting` events announce each retry).
   *
   * @param options - `signal` and `timeoutMs` bound the wait (the attempt itself is bounded by
   *   `connectTimeoutMs`); `retry` applies the reconnect policy (see {@link ConnectOptions}).
   * @throws {SshError} `ERR_SSH_CONNECT`, `ERR_SSH_CONNECT_TIMEOUT`, `ERR_SSH_HANDSHAKE`,
   *   `ERR_SSH_HOST_KEY_UNKNOWN`/`_MISMATCH`/`_REVOKED`, `ERR_SSH_AUTH`, `ERR_SSH_KEY`,
   *   `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`, `ERR_SSH_CLOSED`.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options (an unknown key, a
   *   `timeoutMs` that is not a whole number 1..2^31-1, a `signal` that is not an AbortSignal).
   */
  async connect(options: ConnectOptions = {}): Promise<void> {
    parseOrThrow(connectOptionsSchema, options, 'connect options');
    await this.#conn.connect(options);
  }

  /**
   * Runs a command and collects its output. `command` is a shell command line run as written, or
   * an argv array quoted for a POSIX shell (so `'`, `;`, `$()`, newlines and globs arrive literally).
   * A non-zero exit resolves (see `exitCode`) unless `check: true`. Connects first when needed;
   * while the client (re)connects it waits for the link at most `operationTimeoutMs` (default
   * 120 s; the client option), then rejects with `ERR_SSH_TIMEOUT`.
   * Follows RFC 4254 section 6.5 (`exec`), 6.10 (`exit-status`/`exit-signal`). With `pty`
   * (RFC 4254 6.2, as `ssh -t`) the command runs on a pseudo-terminal: its stderr is merged into
   * `stdout` (`stderr` is empty) and lines end with `\r\n`.
   *
   * @returns `{ stdout, stderr, exitCode, signal }`; strings, or Buffers with `encoding: 'buffer'`.
   * @throws {TypeError} an empty command or a NUL byte.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options.
   * @throws {SshExecError} `ERR_SSH_EXIT` (with `check`), `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`,
   *   `ERR_SSH_MAX_BUFFER`, `ERR_SSH_CONNECTION_LOST` (the link died or the channel closed without
   *   an exit status); each carries the output so far as `result`.
   * @throws {SshError} `ERR_SSH_CHANNEL_OPEN`, `ERR_SSH_CLOSED`, or any connect error.
   *
   * @example
   * ```ts
   * const { stdout } = await ssh.exec(['grep', '-c', pattern, '/var/log/syslog'], { timeoutMs: 10_000 });
   * const r = await ssh.exec('make -j4', { cwd: '/srv/app', env: { CC: 'clang' }, check: true });
   * ```
   */
  exec(command: string | readonly string[], options: ExecOptions & { encoding: 'buffer' }): Promise<ExecResult<Buffer>>;
  exec(command: string | readonly string[], options?: ExecOptions): Promise<ExecResult<string>>;
  exec(command: string | readonly string[], options: ExecOptions = {}): Promise<ExecResult<string> | ExecResult<Buffer>> {
    return execCommand(this.#execCtx, command, options);
  }

  /**
   * Starts a command and resolves with a {@link RemoteProcess} (streams with backpressure,
   * `signal()`, `kill()`, `exited`) once its session channel is open. With `pty` the command
   * runs on a pseudo-terminal, as `ssh -t` (stderr merged into stdout; `resize()` available).
   *
   * @throws as {@link SshClient.exec}, for opening the channel.
   */
  async spawn(command: string | readonly string[], options: SpawnOptions = {}): Promise<RemoteProcess> {
    const p = await spawnCommand(this.#execCtx, command, options);
    this.#spawned.add(p);
    const forget = (): void => {
      this.#spawned.delete(p);
    };
    p.exited.then(forget, forget);
    return p;
  }

  /**
   * Starts the user's login shell on a pseudo-terminal, as `ssh host` with no command does
   * (RFC 4254 6.2 `pty-req`, 6.5 `shell`), through the same `MaxSessions` queue as `exec`, and
   * resolves with its {@link RemoteProcess} once the channel is open. Write keystrokes to
   * `stdin`, read the terminal from `stdout` (stderr merged into it), call `resize(cols, rows)`
   * when the local terminal changes size; `exited` resolves with the shell's exit status.
   * `pty: false` runs the shell without a terminal, reading commands from `stdin`.
   * Like a spawned command it is stopped by {@link SshClient.close} (`ERR_SSH_CLOSED`).
   *
   * @param options `pty` (default `true`: `xterm-256color`, 80x24), `env` (RFC 4254 6.4 `env`
   *   requests, applied by sshd only for names in its `AcceptEnv`), `timeoutMs`, `signal`.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options.
   * @throws {SshError} `ERR_SSH_CHANNEL_OPEN` (also a refused PTY or shell), `ERR_SSH_CONNECTION_LOST`,
   *   `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`, `ERR_SSH_CLOSED`, or a connect error.
   * @example
   * ```ts
   * const sh = await ssh.shell({ pty: { cols: 120, rows: 40 } });
   * sh.stdout.pipe(process.stdout);
   * sh.stdin.write('uptime; exit\n');
   * const { exitCode } = await sh.exited;
   * ```
   */
  async shell(options: ShellOptions = {}): Promise<RemoteProcess> {
    const p = await startShell(this.#execCtx, options);
    this.#spawned.add(p);
    const forget = (): void => {
      this.#spawned.delete(p);
    };
    p.exited.then(forget, forget);
    return p;
  }

  /**
   * The client's SFTP session (one per client, `sftp` subsystem of RFC 4254 6.5 / SFTP v3
   * draft-ietf-secsh-filexfer-02), opened on first use through the `MaxSessions` limiter and
   * opened again after a reconnect. Operations in flight when the link dies reject with
   * `ERR_SSH_CONNECTION_LOST`; nothing is replayed.
   *
   * @throws {SshError} `ERR_SSH_CLOSED` after close/destroy.
   *
   * @example
   * ```ts
   * const sftp = await ssh.sftp();
   * await sftp.put('./build.tgz', '/srv/build.tgz', { onProgress: (p) => console.log(p.transferredBytes) });
   * for (const e of await sftp.list('/srv')) console.log(e.type, e.name, e.size);
   * ```
   */
  sftp(): Promise<SftpClient> {
    const state = this.#conn.state;
    if (state === 'closing' || state === 'closed') return Promise.reject(new SshError('ERR_SSH_CLOSED', 'the client is closed'));
    if (this.#sftp === undefined) {
      const sftp = new SftpClient(this.#conn, {
        openSftp: (link, signal) => this.#openSftpOn(link, signal, true),
        // the extra channels of a striped get/put: only a slot free now, never a wait
        openExtraSftp: (link, signal) => this.#openSftpOn(link, signal, false),
        // kept for the next striped transfer, closed at once when a slot is wanted (below)
        channelsPersistMs: this.#o.sftpChannelsPersistMs,
        // compare: 'checksum' hashes remote files with sha256sum over exec (sftp/ never imports exec/)
        remoteCommand: async (argv, o) => {
          const r = await this.exec(argv, { signal: o.signal, encoding: 'buffer', maxBufferBytes: o.maxBufferBytes });
          return { stdout: r.stdout, exitCode: r.exitCode };
        },
      });
      // One warning stream for the user: the SFTP client's refused names as the client's own.
      sftp.on('warning', (w) => {
        this.#logger.warn({ keyword: `sftp ${w.reason}`, operation: w.operation }, `ssh-tether: ${w.message}`);
        this.emit('warning', { keyword: `sftp ${w.reason}`, message: w.message, sftp: w });
      });
      // another channel waits for a MaxSessions slot: kept extra channels make room
      this.#limiter.onQueue(() => sftp.releaseIdleChannels());
      this.#sftp = sftp;
    }
    return Promise.resolve(this.#sftp);
  }

  /**
   * Opens an SFTP channel on `link` through the `MaxSessions` limiter (waiting for a slot with
   * `wait`, else only taking a free one: see `openSession`), counted for idle persist until it
   * closes or its link ends.
   */
  async #openSftpOn(link: Link, signal: AbortSignal, wait: boolean): Promise<ssh2.SFTPWrapper> {
    const provider = { link: () => Promise.resolve(link), onLink: () => () => undefined };
    const { channel } = await openSession(provider, this.#limiter, (l) => openSftpChannel(l.client), signal, (s) => s.end(), wait);
    // Counted for idle persist until the channel closes or its link ends (the limiter is
    // reset on the next link).
    this.#sftpChannels.add(channel);
    const forget = (): void => {
      this.#sftpChannels.delete(channel);
      link.signal.removeEventListener('abort', forget);
    };
    channel.once('close', forget);
    if (link.signal.aborted) forget();
    else link.signal.addEventListener('abort', forget, { once: true });
    return channel;
  }

  /**
   * Durable remote jobs on this host (`nohup`/`tmux new -d` as an API): `start`, `list`, `get`,
   * `prune`; each `RemoteJob` has `status`, `wait`, `kill`, `output`, `remove`. The state
   * lives on the server (option `jobsDir`, default `~/.ssh-tether/jobs`), so a new client in a
   * new process finds jobs started earlier. Needs only a POSIX `sh` on the server.
   *
   * @example
   * ```ts
   * const job = await ssh.jobs.start(['./deploy.sh', '--all'], { name: 'deploy', cwd: '/srv/app' });
   * // later, maybe from another process:
   * const again = await ssh.jobs.get('deploy');
   * const { state, exitCode } = await again!.wait();
   * ```
   */
  get jobs(): JobManager {
    this.#jobs ??= new JobManager(this, { jobsDir: this.#o.jobsDir });
    return this.#jobs;
  }

  /**
   * Follows a remote file like `tail -F`, as an async iterable of lines that survives reconnects:
   * after a lost link it goes on at the byte after the last line it delivered, so every line
   * arrives once, in order. Rotation by rename (logrotate's `create`): the old file is read to its
   * end (found again by inode next to its old name), then the new file from its start.
   * Truncation in place (`copytruncate`): reading restarts at 0; lines written between the last
   * poll and the truncation are lost (inherent to copytruncate). A file that does not exist yet is
   * waited for. Works on any POSIX server (one short exec per poll: `ls -di`, `wc -c`, `tail -c`,
   * `head -c`; `find -inum` where present); lines are split on `\n` and a partial last line is held
   * until its newline arrives.
   *
   * @param path - the remote file (a leading `~/` is the login directory).
   * @param options - see {@link FollowOptions}: `from` (default `'end'`), `filter`, `signal`.
   * @returns an async iterable of `{ line, offset }`; iteration ends only through `signal` or `break`.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for a bad path or option (at the call).
   * @throws {SshError} while iterating: `ERR_SSH_ABORTED` (or the signal's reason), `ERR_SSH_CLOSED`,
   *   `ERR_SSH_JOB` when the server lacks the POSIX tools or answers nonsense.
   *
   * @example
   * ```ts
   * const ac = new AbortController();
   * for await (const { line } of ssh.follow('/var/log/app.log', { filter: /ERROR|CRITICAL|FAIL/, signal: ac.signal })) {
   *   alert(line);
   * }
   * ```
   */
  follow(path: string, options: FollowOptions = {}): AsyncIterable<FollowLine> {
    checkFollowOptions(path, options);
    return { [Symbol.asyncIterator]: () => followLines(this, path, options) };
  }

  /**
   * A local forward (`ssh -L`, RFC 4254 7.2 `direct-tcpip`; `remotePath`:
   * `direct-streamlocal@openssh.com`): listens on `localHost:localPort` (default
   * `127.0.0.1:0`, the assigned port is on the handle) and carries each connection to
   * `remoteHost:remotePort` as seen from the server. The listener stays bound across
   * reconnects (its `state` is then `'waiting'`, with `forward` events `down`/`up`); connections
   * accepted meanwhile wait for the link at most `forwardConnectionWaitMs`, then are closed. A
   * connection whose channel the server refuses is closed and reported as a `forward` event
   * `refused` with the server's reason.
   *
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options (e.g. a port outside 0-65535).
   * @throws {SshError} `ERR_SSH_FORWARD` when the bind fails (EADDRINUSE, EACCES); `ERR_SSH_CLOSED`.
   *
   * @example
   * ```ts
   * const db = await ssh.forwardLocal({ remoteHost: 'localhost', remotePort: 5432 });
   * const pg = new pg.Client({ host: db.localHost, port: db.localPort });
   * ```
   */
  forwardLocal(options: LocalForwardOptions): Promise<LocalForward> {
    return this.#whenOpen(() => this.#forwards.forwardLocal(options));
  }

  /**
   * A remote forward (`ssh -R`, RFC 4254 7.1 `tcpip-forward`; `remotePath`:
   * `streamlocal-forward@openssh.com`): the server listens on `remoteHost:remotePort` (default
   * `localhost:0`; the bound port is on the handle) and each connection is carried to
   * `localHost:localPort` here. Requested again after every reconnect on the same port; state
   * changes arrive as `forward` events.
   *
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options.
   * @throws {SshError} `ERR_SSH_FORWARD` when the server refuses (e.g. `AllowTcpForwarding no`, `PermitListen`)
   *   or does not answer within `timeoutMs` (default `connectTimeoutMs`); `ERR_SSH_CLOSED`.
   */
  forwardRemote(options: RemoteForwardOptions): Promise<RemoteForward> {
    return this.#whenOpen(() => this.#forwards.forwardRemote(options));
  }

  /**
   * A dynamic forward (`ssh -D`): a SOCKS5 server (RFC 1928, username/password per RFC 1929
   * when `auth` is given) on `localHost:localPort` (default `127.0.0.1:0`) whose CONNECTs go
   * through `direct-tcpip` channels. Stays bound across reconnects (`state` `'waiting'` meanwhile;
   * a CONNECT waits at most `forwardConnectionWaitMs` for the link). A CONNECT the server refuses
   * gets the mapped SOCKS reply and a `forward` event `refused` with the server's reason.
   *
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options.
   * @throws {SshError} `ERR_SSH_FORWARD` when the bind fails; `ERR_SSH_CLOSED`.
   */
  forwardDynamic(options: DynamicForwardOptions = {}): Promise<DynamicForward> {
    return this.#whenOpen(() => this.#forwards.forwardDynamic(options));
  }

  #whenOpen<T>(fn: () => Promise<T>): Promise<T> {
    const state = this.#conn.state;
    if (state === 'closing' || state === 'closed') return Promise.reject(new SshError('ERR_SSH_CLOSED', 'the client is closed'));
    return fn();
  }

  /** @internal {@inheritDoc LinkProvider.link} */
  link(options?: LinkWaitOptions): Promise<Link> {
    return this.#conn.link(options);
  }

  /** @internal {@inheritDoc LinkProvider.onLink} */
  onLink(listener: (link: Link) => void): () => void {
    return this.#conn.onLink(listener);
  }

  /** A snapshot of the figures a supervisor needs. */
  health(): ClientHealth {
    const s = this.#conn.stats();
    const cause = s.lastDisconnectCause;
    const e = this.#conn.effective;
    const closedBy = this.#conn.state === 'closed' ? this.#conn.closedBy : undefined;
    return {
      state: this.#conn.state,
      host: e.host,
      port: e.port,
      username: e.username,
      alias: e.alias,
      hostIndex: this.#conn.hostIndex,
      closedBy: closedBy ? { code: closedBy.code, message: closedBy.message } : undefined,
      connectedSince: s.connectedSince,
      idleSince: this.#conn.idleSince,
      uptimeMs: s.connectedSince ? Date.now() - s.connectedSince.getTime() : 0,
      reconnects: s.reconnects,
      disconnects: s.disconnects,
      lastDisconnectCause: cause ? { code: cause.code, message: cause.message } : undefined,
      lastKeepaliveRttMs: s.lastKeepaliveRttMs,
      keepaliveRtt: s.keepaliveRtt,
      openChannels: this.#limiter.open,
      queuedChannels: this.#limiter.queued,
      sessionLimit: this.#limiter.learnedLimit,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      forwards: this.#forwards.list().map((f) => {
        const d = describeForward(f);
        return { ...d, ...f.stats() };
      }),
      sftp: this.#sftp ? this.#sftp.stats() : { bytesRead: 0, bytesWritten: 0 },
    };
  }

  /**
   * Graceful close: stops accepting work, lets open channels finish (bounded by
   * `closeTimeoutMs`), ends the connection and clears every timer, socket and listener it made.
   * Idempotent; afterwards every call rejects with `ERR_SSH_CLOSED`. Returns at once during backoff.
   * Commands started with {@link SshClient.spawn} that are still running are stopped first (as
   * {@link RemoteProcess.kill}: `TERM`, channel close, process-group kill), since a `tail -f`
   * would otherwise hold close() for the whole `closeTimeoutMs`; their `exited` rejects with
   * `ERR_SSH_CLOSED`. Commands run by {@link SshClient.exec} get the `closeTimeoutMs` to finish.
   */
  async close(): Promise<void> {
    await this.#conn.close();
  }

  /**
   * Immediate teardown: every operation in flight and waiting rejects with `error` (default
   * `ERR_SSH_CLOSED`). Idempotent.
   */
  destroy(error?: SshError): void {
    this.#conn.destroy(error);
  }

  /** `await using ssh = new SshClient(...)` closes it gracefully at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Shows host, port, user (after ssh_config), the alias when it differs, and state only: never secrets. */
  [inspect.custom](): string {
    const e = this.#conn.effective;
    const alias = e.alias !== e.host ? `alias: ${JSON.stringify(e.alias)}, ` : '';
    return `SshClient { ${alias}host: ${JSON.stringify(e.host)}, port: ${e.port}, username: ${JSON.stringify(e.username)}, state: '${this.#conn.state}' }`;
  }
}
