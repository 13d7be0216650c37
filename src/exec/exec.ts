import type { Readable } from 'node:stream';
import type ssh2 from 'ssh2';
import { z } from 'zod';
import { SshError, SshExecError, SshInvalidArgError } from '../errors.js';
import { operationScope } from '../internal/cancel.js';
import { parseOrThrow, signalSchema, timeoutMsSchema } from '../internal/validate.js';
import type { LinkProvider } from '../connection/link.js';
import type { SessionLimiter } from '../channel/limiter.js';
import { openSession } from '../channel/open.js';
import { buildCommandLine } from './quote.js';
import { EXIT_DRAIN_IDLE_MS, MAX_PTY_CELLS, PID_WAIT_MS, PidLineStripper, RemoteProcess, captureExit, feedStdin, type ExecResult, type ProcessKiller } from './process.js';

/**
 * Terminal modes sent in the `pty-req` (RFC 4254 section 8 opcode names, e.g. `{ ECHO: 0 }` turns
 * echo off, `{ VINTR: 3 }` sets Ctrl-C as the interrupt character). Flags take 0 or 1, characters
 * their code, `TTY_OP_ISPEED`/`TTY_OP_OSPEED` the baud rate.
 */
export type TerminalModes = Partial<Record<TerminalModeName, number>>;

/** The RFC 4254 section 8 terminal mode names (those ssh2 encodes). */
export const TERMINAL_MODE_NAMES = [
  'VINTR', 'VQUIT', 'VERASE', 'VKILL', 'VEOF', 'VEOL', 'VEOL2', 'VSTART', 'VSTOP', 'VSUSP', 'VDSUSP', 'VREPRINT',
  'VWERASE', 'VLNEXT', 'VFLUSH', 'VSWTCH', 'VSTATUS', 'VDISCARD', 'IGNPAR', 'PARMRK', 'INPCK', 'ISTRIP', 'INLCR',
  'IGNCR', 'ICRNL', 'IUCLC', 'IXON', 'IXANY', 'IXOFF', 'IMAXBEL', 'ISIG', 'ICANON', 'XCASE', 'ECHO', 'ECHOE', 'ECHOK',
  'ECHONL', 'NOFLSH', 'TOSTOP', 'IEXTEN', 'ECHOCTL', 'ECHOKE', 'PENDIN', 'OPOST', 'OLCUC', 'ONLCR', 'OCRNL', 'ONOCR',
  'ONLRET', 'CS7', 'CS8', 'PARENB', 'PARODD', 'TTY_OP_ISPEED', 'TTY_OP_OSPEED',
] as const;

/** One {@link TERMINAL_MODE_NAMES} entry. */
export type TerminalModeName = (typeof TERMINAL_MODE_NAMES)[number];

/** The pseudo-terminal asked for with the `pty` option (RFC 4254 6.2 `pty-req`). */
export interface PtyOptions {
  /** `TERM` on the server. @default 'xterm-256color' */
  term?: string;
  /** Width in character cells, 1..65535. @default 80 */
  cols?: number;
  /** Height in character cells (lines), 1..65535. @default 24 */
  rows?: number;
  /** Terminal modes (RFC 4254 section 8). @default {} (the server's defaults) */
  modes?: TerminalModes;
}

/** Default `pty.term`. */
export const DEFAULT_PTY_TERM = 'xterm-256color';
/** Default `pty.cols`. */
export const DEFAULT_PTY_COLS = 80;
/** Default `pty.rows`. */
export const DEFAULT_PTY_ROWS = 24;

/** Options of {@link SshClient.spawn}. */
export interface SpawnOptions {
  /**
   * Run the command on a pseudo-terminal (RFC 4254 6.2 `pty-req`, as `ssh -t`): `true` for the
   * defaults (`xterm-256color`, 80x24) or {@link PtyOptions}. With a PTY the terminal merges the
   * command's stderr into stdout (`stderr` stays empty), ends lines with `\r\n`, echoes what is
   * written to stdin (unless `modes: { ECHO: 0 }`), turns `\x03` written to stdin into `SIGINT` for
   * the command, and `RemoteProcess.resize()` changes its size. A timeout, an abort or `kill()`
   * writes `\x03` first and, 250 ms later (`PTY_INTERRUPT_GRACE_MS`) unless the command has
   * exited, stops it as described under `signal`.
   * @default false
   */
  pty?: boolean | PtyOptions;
  /** Environment variables, sent inline as quoted `export`s (sshd drops `env` requests without `AcceptEnv`). */
  env?: Record<string, string>;
  /** Working directory on the server (`cd -- dir` before the command; exit 1 if it fails). */
  cwd?: string;
  /**
   * Bound in ms on the whole operation, including waiting for the connection and a channel, and
   * (exec) the wait for the channel to close after the exit status. When it fires the call rejects
   * with `ERR_SSH_TIMEOUT` and the command is stopped as by `signal`.
   */
  timeoutMs?: number;
  /**
   * Aborts the operation: the call rejects with `ERR_SSH_ABORTED` and the remote command is
   * stopped, in every phase (queued for a channel, channel opening, running, after the exit status).
   *
   * How the command is stopped: with `timeoutMs` or `signal`, the command line is wrapped so that
   * the command leads its own process group and reports its pid first; on a stop a second exec
   * sends `TERM` to that group and to the pid's descendants (by parent pid), then `KILL` to what is
   * left after ~1 s. Per server kind:
   * - OpenSSH sshd: each session already leads its own group; the command runs in the login shell
   *   as written.
   * - Dropbear (one group per connection), asyncssh (the server's group) and tinysshd (one group
   *   per server): the line runs under `setsid /bin/sh -c` so it leads a new group and no other
   *   session's or the server's processes are ever signalled; without `setsid` on the server, only
   *   the command's process tree (by parent pid) is killed.
   * - tinysshd (one session per connection): the kill exec runs over a second, short-lived
   *   connection.
   * A stop that arrives before the pid line waits (up to 3 s) for it, also for an exec whose
   * channel arrived after the caller gave up. Processes that left the group and the tree (a
   * double-forked daemon) are not followed. A kill exec that fails is a client `warning` event
   * (`keyword: 'exec kill'`). After the exit status only the channel is closed (see
   * `EXIT_DRAIN_IDLE_MS`).
   */
  signal?: AbortSignal;
}

/** Options of {@link SshClient.exec}. */
export interface ExecOptions extends SpawnOptions {
  /**
   * Standard input: a string, a Buffer or a Readable stream; EOF is sent after it (or at once when
   * absent). With `pty`, no EOF is sent (it would not reach the command: the terminal stays open,
   * as with `ssh -t`), so a command that reads to end-of-file needs `\x04` (the terminal's VEOF)
   * at the start of a line in `stdin`, else it runs until `timeoutMs`.
   */
  stdin?: string | Buffer | Readable;
  /** Reject with `ERR_SSH_EXIT` (carrying the result) when the command exits non-zero or by a signal. @default false */
  check?: boolean;
  /** `'utf8'` decodes stdout/stderr to strings; `'buffer'` keeps the bytes. @default 'utf8' */
  encoding?: 'utf8' | 'buffer';
  /** Largest stdout or stderr kept, in bytes; past it the command is stopped with `ERR_SSH_MAX_BUFFER`. @default 67108864 (64 MiB) */
  maxBufferBytes?: number;
}

/** Default `maxBufferBytes`: 64 MiB per stream. */
export const DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024;

const cells = (what: string): z.ZodNumber =>
  z
    .number({ error: `expected the ${what} as a number of character cells` })
    .int({ error: `expected a whole number of ${what}` })
    .min(1, { error: `expected ${what} >= 1` })
    .max(MAX_PTY_CELLS, { error: `expected ${what} <= ${MAX_PTY_CELLS}` });
const ptySchema = z.union(
  [
    z.boolean(),
    z.strictObject({
      term: z
        .string({ error: 'expected a terminal type string' })
        .min(1)
        .max(256)
        .regex(/^[\x21-\x7e]+$/, { error: 'expected printable ASCII without spaces' })
        .optional(),
      cols: cells('columns').optional(),
      rows: cells('rows').optional(),
      modes: z
        .partialRecord(z.enum(TERMINAL_MODE_NAMES, { error: `expected RFC 4254 terminal mode names (${TERMINAL_MODE_NAMES.join(', ')})` }), z.number().int().min(0).max(0xffffffff))
        .optional(),
    }),
  ],
  { error: 'expected true, false or { term?, cols?, rows?, modes? }' },
);

const spawnShape = {
  pty: ptySchema.optional(),
  env: z.record(z.string(), z.string({ error: 'expected string values' }), { error: 'expected an object of string values' }).optional(),
  cwd: z.string({ error: 'expected a directory path string' }).min(1).optional(),
  timeoutMs: timeoutMsSchema().optional(),
  signal: signalSchema.optional(),
};
const spawnSchema = z.strictObject(spawnShape);
const execSchema = z.strictObject({
  ...spawnShape,
  stdin: z
    .custom<string | Buffer | Readable>((v) => typeof v === 'string' || Buffer.isBuffer(v) || (typeof v === 'object' && v !== null && typeof (v as Readable).pipe === 'function'), {
      error: 'expected a string, a Buffer or a Readable stream',
    })
    .optional(),
  check: z.boolean({ error: 'expected a boolean' }).optional(),
  encoding: z.enum(['utf8', 'buffer'], { error: "expected 'utf8' or 'buffer'" }).optional(),
  maxBufferBytes: z.number({ error: 'expected a number of bytes' }).int().positive({ error: 'expected a number of bytes > 0' }).optional(),
});

/** `true` for `undefined` or a plain `{}`: nothing to validate (keeps zod off the hot path). */
function isEmpty(o: unknown): boolean {
  if (o === undefined) return true;
  if (o === null || typeof o !== 'object') return false;
  for (const _ in o) return false;
  return true;
}

/** What exec needs from the client. */
export interface ExecContext {
  provider: LinkProvider;
  limiter: SessionLimiter;
  /** Kills a stopped command's processes with a second exec (see `buildKillCommand`); reports its own failures. */
  killer: ProcessKiller;
  /** `false`: never wrap the command to report its pid (the kill exec itself). @default true */
  stoppable?: boolean;
}

/** The `pty-req` values for ssh2 (`undefined`: no PTY). */
function ptyRequest(pty: boolean | PtyOptions | undefined): ssh2.PseudoTtyOptions | undefined {
  if (pty === undefined || pty === false) return undefined;
  const o = pty === true ? {} : pty;
  // Pixel sizes 0: "ignored" (RFC 4254 6.2); ssh2's default (640x480) would be a made-up size.
  return { term: o.term ?? DEFAULT_PTY_TERM, cols: o.cols ?? DEFAULT_PTY_COLS, rows: o.rows ?? DEFAULT_PTY_ROWS, width: 0, height: 0, ...(o.modes ? { modes: o.modes as ssh2.TerminalModes } : {}) };
}

function execChannel(client: ssh2.Client, cmdline: string, pty: ssh2.PseudoTtyOptions | undefined): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => {
    const cb = (err: Error | undefined, ch: ssh2.ClientChannel): void => {
      if (err) return reject(err);
      captureExit(ch);
      resolve(ch);
    };
    if (pty) client.exec(cmdline, { pty }, cb);
    else client.exec(cmdline, cb);
  });
}

/**
 * Disposes of an exec channel that arrived after its caller gave up (timeout or abort while the
 * exec request was in flight). The server may already run the command, so with `reportPid` wait
 * (bounded by {@link PID_WAIT_MS}) for the pid line and kill the command before closing.
 */
function lateChannelDisposer(ctx: ExecContext, reportPid: boolean, pty = false): (ch: ssh2.ClientChannel) => void {
  return (ch) => {
    ch.on('error', () => undefined);
    if (!reportPid) {
      ch.close();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      ch.close();
    };
    const stripper = new PidLineStripper((pid, mode) => {
      ctx.killer({ pid, mode }).catch(() => undefined);
      done();
    }, pty);
    stripper.on('error', () => undefined);
    (pty ? ch : ch.stderr).pipe(stripper).resume();
    ch.resume();
    ch.once('close', done);
    timer = setTimeout(done, PID_WAIT_MS);
  };
}

async function start(
  ctx: ExecContext,
  command: string | readonly string[],
  o: SpawnOptions,
  scope: AbortSignal,
  reportPid: boolean,
  settleOnExit: boolean,
): Promise<{ proc: RemoteProcess; channel: ssh2.ClientChannel }> {
  const cmdline = buildCommandLine({ command, env: o.env, cwd: o.cwd, reportPid });
  const pty = ptyRequest(o.pty);
  const { link, channel, release } = await openSession(ctx.provider, ctx.limiter, (l) => execChannel(l.client, cmdline, pty), scope, lateChannelDisposer(ctx, reportPid, pty !== undefined));
  const proc = new RemoteProcess(channel, link.signal, scope, ctx.killer, release, reportPid, settleOnExit, pty !== undefined);
  return { proc, channel };
}

/**
 * Starts a command and returns a {@link RemoteProcess} once its channel is open.
 *
 * @throws {TypeError} bad command (empty, NUL byte).
 * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options (e.g. a `timeoutMs` that is not a whole number 1..2^31-1).
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN`, `ERR_SSH_CONNECTION_LOST`, `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`, `ERR_SSH_CLOSED`.
 */
export async function spawnCommand(ctx: ExecContext, command: string | readonly string[], options: SpawnOptions = {}): Promise<RemoteProcess> {
  if (!isEmpty(options)) parseOrThrow(spawnSchema, options, 'spawn options');
  const o = options;
  const scope = operationScope({ signal: o.signal, timeoutMs: o.timeoutMs }, 'spawn');
  try {
    // spawn always reports the pid: kill() must be able to stop the command.
    const { proc } = await start(ctx, command, o, scope.signal, true, true);
    const dispose = (): void => scope.dispose();
    proc.exited.then(dispose, dispose);
    return proc;
  } catch (err) {
    scope.dispose();
    throw err;
  }
}

/**
 * Runs a command to completion and collects its output.
 *
 * @throws {TypeError} bad command (empty, NUL byte) or stdin.
 * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options (e.g. a `timeoutMs` that is not a whole number 1..2^31-1).
 * @throws {SshExecError} `ERR_SSH_EXIT` (with `check`), `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`,
 *   `ERR_SSH_MAX_BUFFER`, `ERR_SSH_CONNECTION_LOST`; each carries the output so far in `result`.
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN`, `ERR_SSH_CLOSED`, or a connect error.
 */
export async function execCommand(ctx: ExecContext, command: string | readonly string[], options: ExecOptions & { encoding: 'buffer' }): Promise<ExecResult<Buffer>>;
export async function execCommand(ctx: ExecContext, command: string | readonly string[], options?: ExecOptions): Promise<ExecResult<string>>;
export async function execCommand(ctx: ExecContext, command: string | readonly string[], options: ExecOptions = {}): Promise<ExecResult<string> | ExecResult<Buffer>> {
  if (!isEmpty(options)) parseOrThrow(execSchema, options, 'exec options');
  const o = options;
  const maxBuffer = o.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
  const asBuffer = o.encoding === 'buffer';
  const scope = operationScope({ signal: o.signal, timeoutMs: o.timeoutMs }, 'exec');
  try {
    // The pid is only needed to stop the command on timeout or abort.
    const stoppable = ctx.stoppable !== false && (o.timeoutMs !== undefined || o.signal !== undefined);
    const { proc, channel } = await start(ctx, command, o, scope.signal, stoppable, false);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    const decode = (parts: Buffer[]): string | Buffer => (asBuffer ? Buffer.concat(parts) : Buffer.concat(parts).toString('utf8'));
    proc.partialOutput = () => ({ stdout: decode(out), stderr: decode(err), exitCode: null, signal: null });
    // After the exit status: settle once output stops (a background child holding stdout, or a
    // server that never closes the channel, must not hang exec).
    const touch = proc.drainAfterExit(EXIT_DRAIN_IDLE_MS);
    const overflow = (): void => proc.stopWith(new SshError('ERR_SSH_MAX_BUFFER', `command output exceeded maxBufferBytes (${maxBuffer})`));
    proc.stdout.on('data', (c: Buffer) => {
      outLen += c.length;
      if (outLen > maxBuffer) return overflow();
      out.push(c);
      touch();
    });
    proc.stderr.on('data', (c: Buffer) => {
      errLen += c.length;
      if (errLen > maxBuffer) return overflow();
      err.push(c);
      touch();
    });
    feedStdin(channel, o.stdin, (e) => proc.stopWith(new SshError('ERR_SSH_ABORTED', `stdin stream failed: ${e.message}`, { cause: e })), !proc.pty);
    const r = await proc.exited;
    const result = { stdout: decode(out), stderr: decode(err), exitCode: r.exitCode, signal: r.signal };
    if (o.check && (result.exitCode !== 0 || result.signal !== null)) {
      throw new SshExecError(
        'ERR_SSH_EXIT',
        result.signal !== null ? `remote command killed by signal ${result.signal}` : `remote command exited with code ${String(result.exitCode)}`,
        result,
        { retryable: false },
      );
    }
    return result as ExecResult<string> | ExecResult<Buffer>;
  } finally {
    scope.dispose();
  }
}

/** Options of {@link SshClient.shell}. */
export interface ShellOptions {
  /**
   * The pseudo-terminal (RFC 4254 6.2 `pty-req`): `true` (default: `xterm-256color`, 80x24) or
   * {@link PtyOptions}; `false` runs the shell without one (it reads commands from `stdin` as
   * `ssh host < script` does: no prompt, no echo, stderr separate).
   * @default true
   */
  pty?: boolean | PtyOptions;
  /**
   * Environment variables, sent as RFC 4254 6.4 `env` requests before the shell starts. OpenSSH's
   * sshd applies only names its `AcceptEnv` lists (often just `LANG LC_*`) and drops the others
   * silently; a login shell cannot be given inline exports the way `exec` does.
   */
  env?: Record<string, string>;
  /**
   * Bound in ms on the whole shell session, from the call; when it fires the shell is stopped (as
   * by `signal`) and `exited` rejects with `ERR_SSH_TIMEOUT`.
   */
  timeoutMs?: number;
  /**
   * Stops the shell: `\x03` is written to its terminal, `TERM` is signalled (RFC 4254 6.9) and
   * the channel is closed, which hangs up the terminal (`SIGHUP` to the shell and its jobs).
   * There is no process-group kill exec as for `spawn`: a `shell` request reports no pid.
   * `exited` rejects with `ERR_SSH_ABORTED`.
   */
  signal?: AbortSignal;
}

const shellSchema = z.strictObject({
  pty: ptySchema.optional(),
  env: spawnShape.env,
  timeoutMs: spawnShape.timeoutMs,
  signal: spawnShape.signal,
});

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function shellChannel(client: ssh2.Client, pty: ssh2.PseudoTtyOptions | undefined, env: Record<string, string> | undefined): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => {
    client.shell(pty ?? false, env ? { env } : {}, (err, ch) => {
      if (err) return reject(err);
      captureExit(ch);
      resolve(ch);
    });
  });
}

/**
 * Starts the user's login shell (RFC 4254 6.5 `shell` request) through the `MaxSessions` limiter
 * and returns its {@link RemoteProcess} once the channel is open.
 *
 * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for bad options (e.g. a `timeoutMs` that is not a whole number 1..2^31-1) (field named), e.g. an env name that is
 *   not `[A-Za-z_][A-Za-z0-9_]*` or a value with a NUL byte.
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN` (also when the server refuses the PTY or the shell),
 *   `ERR_SSH_CONNECTION_LOST`, `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`, `ERR_SSH_CLOSED`.
 */
export async function startShell(ctx: ExecContext, options: ShellOptions = {}): Promise<RemoteProcess> {
  if (!isEmpty(options)) parseOrThrow(shellSchema, options, 'shell options');
  const o = options;
  if (o.env) {
    for (const [k, v] of Object.entries(o.env)) {
      if (!ENV_NAME.test(k)) throw new SshInvalidArgError(`invalid shell option 'env.${k}': expected a variable name matching [A-Za-z_][A-Za-z0-9_]*`, { field: `env.${k}` });
      if (v.includes('\0')) throw new SshInvalidArgError(`invalid shell option 'env.${k}': the value contains a NUL byte`, { field: `env.${k}` });
    }
  }
  const pty = ptyRequest(o.pty ?? true);
  const env = o.env && Object.keys(o.env).length > 0 ? o.env : undefined;
  const scope = operationScope({ signal: o.signal, timeoutMs: o.timeoutMs }, 'shell');
  try {
    const { link, channel, release } = await openSession(ctx.provider, ctx.limiter, (l) => shellChannel(l.client, pty, env), scope.signal);
    const proc = new RemoteProcess(channel, link.signal, scope.signal, ctx.killer, release, false, true, pty !== undefined);
    const dispose = (): void => scope.dispose();
    proc.exited.then(dispose, dispose);
    return proc;
  } catch (err) {
    scope.dispose();
    throw err;
  }
}
