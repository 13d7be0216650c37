/**
 * `SshGroup`: one command (or any per-host work) on many hosts, with bounded concurrency and
 * one typed result per host, in the order the hosts were given. Modelled on Fabric's `Group`
 * (`GroupResult`: per-host successes and failures, never one exception for all) and
 * parallel-ssh's `ParallelSSHClient` (a pool of kept connections, `stop_on_errors=False`).
 *
 * Concurrency is bounded with `p-limit`; clients are the ordinary {@link SshClient}s, made on
 * first use and kept for the next call.
 *
 * @module group
 */
import { EventEmitter } from 'eventemitter3';
import pLimit from 'p-limit';
import { z } from 'zod';
import { SshClient, type ClientHealth, type ClientWarning } from './client.js';
import { resolveOptions, type SshClientOptions } from './options.js';
import { zodToConfigError } from './internal/validate.js';
import type { ConnectionState } from './connection/state.js';
import type { ExecOptions } from './exec/exec.js';
import type { ExecResult } from './exec/process.js';
import type { ForwardEvent } from './forward/index.js';
import type { NewHostKeyInfo } from './known-hosts/index.js';
import { SshConfigError, SshError, SshInvalidArgError } from './errors.js';
import { durationMsSchema, parseOrThrow, signalSchema, timeoutMsSchema } from './internal/validate.js';
import { operationScope, raceSignals } from './internal/cancel.js';

/** A host of a group: an ssh_config alias or host name, or complete {@link SshClientOptions}. */
export type GroupHost = string | SshClientOptions;

/** Options of {@link SshGroup}. */
export interface SshGroupOptions {
  /**
   * Options applied to every host under its own (a host given as options wins key by key; a
   * host given as a string becomes `{ ...defaults, host }`).
   * @default {}
   */
  defaults?: Partial<SshClientOptions>;
  /** At most this many hosts work at once, per call (an integer >= 1). @default 10 */
  concurrency?: number;
  /**
   * A host's client that has done no group work for this many milliseconds is closed (and made
   * again on the next call, like OpenSSH's `ControlPersist`). `0` keeps clients until
   * {@link SshGroup.close}. @default 0
   */
  idleTimeoutMs?: number;
}

/** Options of {@link SshGroup.run} and the per-host bounds of {@link SshGroup.exec}. */
export interface GroupRunOptions {
  /** Overrides the group's `concurrency` for this call (an integer >= 1). */
  concurrency?: number;
  /** Aborts every host's work still running or waiting: those hosts report `ERR_SSH_ABORTED`. */
  signal?: AbortSignal;
  /** Bound of each host's work (connect included), in milliseconds: a host over it reports `ERR_SSH_TIMEOUT`. */
  timeoutMs?: number;
}

/**
 * One host's outcome. `host` is the label of the host (the alias or host name as given, or
 * `user@host:port` for options), `index` its position in the group.
 */
export type GroupResult<T> =
  | { host: string; index: number; ok: true; value: T }
  | { host: string; index: number; ok: false; error: SshError };

/** What a per-host task of {@link SshGroup.run} receives besides the client. */
export interface GroupTaskContext {
  /** The host's label (see {@link GroupResult}). */
  host: string;
  /** The host's position in the group. */
  index: number;
  /** Aborted when the call's `signal` aborts or the host's `timeoutMs` passes: pass it on to operations. */
  signal: AbortSignal;
}

/**
 * Events of {@link SshGroup}: every event of each host's {@link SshClient},
 * with the host it came from (`host` label and `index`). An event whose payload is not an object
 * (`hostkey`, `warning`, `forward`, `error`) carries it in a named field.
 */
export interface GroupEvents {
  /** A host's connection changed state. */
  state: [change: { host: string; index: number; state: ConnectionState; previous: ConnectionState }];
  /** A host is authenticated and usable. */
  ready: [info: { host: string; index: number }];
  /** A host's live link was lost. */
  disconnect: [info: { host: string; index: number; cause: SshError }];
  /** A host reconnects `delayMs` from now. */
  reconnecting: [info: { host: string; index: number; attempt: number; delayMs: number; cause: SshError }];
  /** A host's client gave up (fatal error). Safe without a listener. */
  error: [info: { host: string; index: number; error: SshError }];
  /** A host's client reached `closed`. */
  close: [info: { host: string; index: number; cause?: SshError | undefined }];
  /** A host with a failover list (`host: [...]`) moved to another entry (see `SshClient`'s `failover` event). */
  failover: [info: { host: string; index: number; from: string; to: string; cause: SshError; failback: boolean }];
  /** A host's keep-alive probe was answered after `rttMs` milliseconds. */
  keepalive: [info: { host: string; index: number; rttMs: number }];
  /** A host's key was accepted without being known (`accept-new` / `'no'`; see {@link NewHostKeyInfo}). */
  hostkey: [info: { host: string; index: number; key: NewHostKeyInfo }];
  /** A host's client could not do something as asked (see {@link ClientWarning}). */
  warning: [info: { host: string; index: number; warning: ClientWarning }];
  /** A forward of a host's client changed state (see {@link ForwardEvent}). */
  forward: [info: { host: string; index: number; event: ForwardEvent }];
}

/** One host in {@link SshGroup.health}: its label and its client's health, or `undefined` when no client is open. */
export interface GroupHostHealth {
  host: string;
  index: number;
  health: ClientHealth | undefined;
}

const groupOptionsSchema = z.strictObject({
  defaults: z.record(z.string(), z.unknown(), { error: 'expected an object of SshClientOptions' }).optional(),
  concurrency: z.number({ error: 'expected an integer >= 1' }).int({ error: 'expected an integer >= 1' }).min(1, { error: 'expected an integer >= 1' }).optional(),
  idleTimeoutMs: durationMsSchema('idleTimeoutMs').optional(),
});
const runOptionsSchema = z.strictObject({
  concurrency: z.number({ error: 'expected an integer >= 1' }).int({ error: 'expected an integer >= 1' }).min(1, { error: 'expected an integer >= 1' }).optional(),
  signal: signalSchema.optional(),
  timeoutMs: timeoutMsSchema().optional(),
});

interface Member {
  readonly index: number;
  readonly label: string;
  readonly options: SshClientOptions;
  client: SshClient | undefined;
  busy: number;
  idleTimer: NodeJS.Timeout | undefined;
}

function labelOf(o: SshClientOptions): string {
  const user = o.username ? `${o.username}@` : '';
  // A failover list is labelled by its entries, comma-separated (ssh_config's ProxyJump style).
  const host = typeof o.host === 'string' ? o.host : o.host.join(',');
  return `${user}${host}${o.port !== undefined ? `:${o.port}` : ''}`;
}

/**
 * Many hosts driven as one: `exec` or any per-host work on every host with at most
 * `concurrency` hosts at once, one {@link GroupResult} per host in the order of `hosts`. A host
 * that fails (down, refusing authentication, a non-zero exit with `check`) is reported, never
 * thrown: the returned promise rejects only for bad arguments or a closed group.
 *
 * @example
 * ```ts
 * import { SshGroup } from 'ssh-tether';
 *
 * await using web = new SshGroup(['web1', 'web2', 'web3'], { concurrency: 2, defaults: { username: 'deploy' } });
 * for (const r of await web.exec('systemctl is-active nginx', { timeoutMs: 10_000 })) {
 *   if (r.ok) console.log(r.host, r.value.stdout.trim());
 *   else console.error(r.host, r.error.code, r.error.message);
 * }
 * ```
 */
export class SshGroup extends EventEmitter<GroupEvents> implements AsyncDisposable {
  readonly #members: Member[];
  readonly #concurrency: number;
  readonly #idleTimeoutMs: number;
  #closed = false;

  /**
   * Validates the hosts and options; connects nothing (clients are made on first use).
   *
   * @param hosts - aliases/host names or {@link SshClientOptions}, at least one.
   * @param options - see {@link SshGroupOptions}.
   * @throws {SshConfigError} `ERR_SSH_CONFIG` for an empty host list, an ill-typed host or
   *   option, naming the field; each host's options are validated as {@link SshClient}'s are.
   */
  constructor(hosts: readonly GroupHost[], options: SshGroupOptions = {}) {
    super();
    const parsed = groupOptionsSchema.safeParse(options);
    if (!parsed.success) throw zodToConfigError(parsed.error, 'SshGroup options', 'defaults, concurrency, idleTimeoutMs', options);
    const list: unknown = hosts;
    if (!Array.isArray(list) || hosts.length === 0) {
      throw new SshConfigError("invalid SshGroup hosts: expected a non-empty array of host names or SshClientOptions", { field: 'hosts' });
    }
    this.#concurrency = options.concurrency ?? 10;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 0;
    const defaults = options.defaults ?? {};
    this.#members = hosts.map((h, index): Member => {
      let merged: SshClientOptions;
      let label: string;
      if (typeof h === 'string') {
        if (h.length === 0) throw new SshConfigError(`invalid SshGroup hosts: 'hosts.${index}': expected a non-empty host name`, { field: `hosts.${index}` });
        merged = { ...defaults, host: h };
        label = h;
      } else if (typeof h === 'object' && h !== null) {
        merged = { ...defaults, ...h };
        label = labelOf(merged);
      } else {
        throw new SshConfigError(`invalid SshGroup hosts: 'hosts.${index}': expected a host name or SshClientOptions`, { field: `hosts.${index}` });
      }
      // Validate now (the same strict schema as SshClient's), so a typo fails at construction.
      try {
        resolveOptions(merged);
      } catch (err) {
        if (err instanceof SshConfigError) {
          throw new SshConfigError(`invalid SshGroup hosts: 'hosts.${index}' (${label}): ${err.message}`, { field: `hosts.${index}${err.field ? `.${err.field}` : ''}`, cause: err });
        }
        throw err;
      }
      return { index, label, options: merged, client: undefined, busy: 0, idleTimer: undefined };
    });
  }

  /** The host labels, in order (see {@link GroupResult}). */
  get hosts(): readonly string[] {
    return this.#members.map((m) => m.label);
  }

  /**
   * Runs `command` on every host (see {@link SshClient.exec}: a string is a shell command line,
   * an array is argv quoted for a POSIX shell). `timeoutMs` and `signal` bound each host's work
   * (connect included) and stop its remote command when they fire; `concurrency` in `options`
   * overrides the group's for this call.
   *
   * @returns one {@link GroupResult} per host, in the order of the hosts; `value` is the
   *   {@link ExecResult}. A non-zero exit is a success unless `check: true` (then `ERR_SSH_EXIT`).
   * @throws {SshConfigError} `ERR_SSH_CONFIG` for bad options (checked once, before any host works).
   * @throws {SshError} `ERR_SSH_CLOSED` after {@link SshGroup.close}.
   */
  async exec(command: string | readonly string[], options: ExecOptions & { concurrency?: number } = {}): Promise<GroupResult<ExecResult<string>>[]> {
    const { concurrency, timeoutMs, signal, ...execOptions } = options;
    const bounds: GroupRunOptions = {};
    if (concurrency !== undefined) bounds.concurrency = concurrency;
    if (timeoutMs !== undefined) bounds.timeoutMs = timeoutMs;
    if (signal !== undefined) bounds.signal = signal;
    // The host's scope (timeout, abort) reaches exec as its signal: exec then stops the remote
    // command, and the host reports ERR_SSH_TIMEOUT / ERR_SSH_ABORTED.
    const bounded = timeoutMs !== undefined || signal !== undefined;
    return this.run((client, context) => client.exec(command, bounded ? { ...execOptions, signal: context.signal } : execOptions), bounds);
  }

  /**
   * Runs `task(client, context)` for every host, at most `concurrency` at once, and reports each
   * host's outcome. The client is connected before `task` runs (a connect failure is that host's
   * error). A task that throws something other than an {@link SshError} is reported as
   * `ERR_SSH_TASK` with the thrown value as `cause`.
   *
   * @param task - the per-host work; pass `context.signal` on to operations so a timeout or abort stops them.
   * @param options - `concurrency`, `signal`, `timeoutMs` (per host, connect included).
   * @returns one {@link GroupResult} per host, in the order of the hosts.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options or a `task` that is not a function.
   * @throws {SshError} `ERR_SSH_CLOSED` after {@link SshGroup.close}.
   *
   * @example
   * ```ts
   * const results = await group.run(async (ssh, { signal }) => {
   *   const sftp = await ssh.sftp();
   *   return sftp.putDir('./dist', '/srv/app', { signal });
   * }, { concurrency: 4, timeoutMs: 120_000 });
   * ```
   */
  async run<T>(task: (client: SshClient, context: GroupTaskContext) => Promise<T> | T, options: GroupRunOptions = {}): Promise<GroupResult<T>[]> {
    if (this.#closed) throw new SshError('ERR_SSH_CLOSED', 'the group is closed');
    if (typeof task !== 'function') throw new SshInvalidArgError('invalid SshGroup.run task: expected a function (client, context) => result', { field: 'task' });
    parseOrThrow(runOptionsSchema, options, 'SshGroup.run options');
    const limit = pLimit(options.concurrency ?? this.#concurrency);
    return Promise.all(this.#members.map((m) => limit(() => this.#runOne(m, task, options))));
  }

  async #runOne<T>(m: Member, task: (client: SshClient, context: GroupTaskContext) => Promise<T> | T, options: GroupRunOptions): Promise<GroupResult<T>> {
    const scope = operationScope({ signal: options.signal, timeoutMs: options.timeoutMs }, `${m.label}: group task`);
    m.busy++;
    if (m.idleTimer) {
      clearTimeout(m.idleTimer);
      m.idleTimer = undefined;
    }
    try {
      if (this.#closed) throw new SshError('ERR_SSH_CLOSED', 'the group is closed');
      if (scope.signal.aborted) throw scope.signal.reason instanceof SshError ? scope.signal.reason : new SshError('ERR_SSH_ABORTED', 'aborted');
      const client = this.#clientOf(m);
      const work = (async (): Promise<T> => {
        await client.connect({ signal: scope.signal });
        return task(client, { host: m.label, index: m.index, signal: scope.signal });
      })();
      const value = await raceSignals(work, [scope.signal], `${m.label}: group task`);
      return { host: m.label, index: m.index, ok: true, value };
    } catch (err) {
      return { host: m.label, index: m.index, ok: false, error: asSshError(err) };
    } finally {
      scope.dispose();
      m.busy--;
      this.#armIdle(m);
    }
  }

  #clientOf(m: Member): SshClient {
    const live = m.client;
    if (live && live.state !== 'closed' && live.state !== 'closing') return live;
    const client = new SshClient(m.options);
    m.client = client;
    const tag = { host: m.label, index: m.index };
    client.on('state', (e) => this.emit('state', { ...tag, state: e.state, previous: e.previous }));
    client.on('ready', () => this.emit('ready', tag));
    client.on('disconnect', (e) => this.emit('disconnect', { ...tag, cause: e.cause }));
    client.on('reconnecting', (e) => this.emit('reconnecting', { ...tag, ...e }));
    client.on('error', (error) => {
      // eventemitter3 does not throw for an unheard 'error': the result carries it anyway.
      this.emit('error', { ...tag, error });
    });
    client.on('failover', (e) => this.emit('failover', { ...tag, ...e }));
    client.on('keepalive', (e) => this.emit('keepalive', { ...tag, rttMs: e.rttMs }));
    client.on('hostkey', (key) => this.emit('hostkey', { ...tag, key }));
    client.on('warning', (warning) => this.emit('warning', { ...tag, warning }));
    client.on('forward', (event) => this.emit('forward', { ...tag, event }));
    client.on('close', (e) => {
      if (m.client === client) m.client = undefined;
      this.emit('close', { ...tag, cause: e.cause });
    });
    return client;
  }

  #armIdle(m: Member): void {
    if (this.#idleTimeoutMs === 0 || m.busy > 0 || !m.client || this.#closed) return;
    const client = m.client;
    m.idleTimer = setTimeout(() => {
      m.idleTimer = undefined;
      if (m.busy > 0 || m.client !== client) return;
      m.client = undefined;
      client.close().catch(() => undefined);
    }, this.#idleTimeoutMs);
    m.idleTimer.unref();
  }

  /** Each host's label and its client's {@link ClientHealth} (`undefined` for a host with no open client). */
  health(): GroupHostHealth[] {
    return this.#members.map((m) => ({ host: m.label, index: m.index, health: m.client?.health() }));
  }

  /**
   * Closes every host's client gracefully (each bounded by its `closeTimeoutMs`), in parallel.
   * Idempotent; afterwards `exec`/`run` reject with `ERR_SSH_CLOSED`.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.#members.map(async (m) => {
        if (m.idleTimer) clearTimeout(m.idleTimer);
        m.idleTimer = undefined;
        const c = m.client;
        m.client = undefined;
        if (c) await c.close().catch(() => undefined);
      }),
    );
  }

  /** `await using group = new SshGroup(...)` closes it at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function asSshError(err: unknown): SshError {
  if (err instanceof SshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SshError('ERR_SSH_TASK', `the group task failed: ${message}`, { cause: err, retryable: false });
}
