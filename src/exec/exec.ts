import type { Readable } from 'node:stream';
import type ssh2 from 'ssh2';
import { z } from 'zod';
import { SshError, SshExecError } from '../errors.js';
import { operationScope } from '../internal/cancel.js';
import { zodToConfigError } from '../config/options.js';
import type { LinkProvider } from '../connection/link.js';
import type { SessionLimiter } from '../channel/limiter.js';
import { openSession } from '../channel/open.js';
import { buildCommandLine } from './quote.js';
import { EXIT_DRAIN_IDLE_MS, PID_WAIT_MS, PidLineStripper, RemoteProcess, captureExit, feedStdin, type ExecResult, type ProcessKiller } from './process.js';

/** Options of {@link SshClient.spawn}. */
export interface SpawnOptions {
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
  /** Standard input: a string, a Buffer or a Readable stream; EOF is sent after it (or at once when absent). */
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

const spawnShape = {
  env: z.record(z.string(), z.string({ error: 'expected string values' }), { error: 'expected an object of string values' }).optional(),
  cwd: z.string({ error: 'expected a directory path string' }).min(1).optional(),
  timeoutMs: z.number({ error: 'expected milliseconds as a number' }).min(0, { error: 'expected milliseconds >= 0' }).optional(),
  signal: z.instanceof(AbortSignal, { error: 'expected an AbortSignal' }).optional(),
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

function execChannel(client: ssh2.Client, cmdline: string): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => {
    client.exec(cmdline, (err, ch) => {
      if (err) return reject(err);
      captureExit(ch);
      resolve(ch);
    });
  });
}

/**
 * Disposes of an exec channel that arrived after its caller gave up (timeout or abort while the
 * exec request was in flight). The server may already run the command, so with `reportPid` wait
 * (bounded by {@link PID_WAIT_MS}) for the pid line and kill the command before closing.
 */
function lateChannelDisposer(ctx: ExecContext, reportPid: boolean): (ch: ssh2.ClientChannel) => void {
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
    });
    stripper.on('error', () => undefined);
    ch.stderr.pipe(stripper).resume();
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
  const { link, channel, release } = await openSession(ctx.provider, ctx.limiter, (l) => execChannel(l.client, cmdline), scope, lateChannelDisposer(ctx, reportPid));
  const proc = new RemoteProcess(channel, link.signal, scope, ctx.killer, release, reportPid, settleOnExit);
  return { proc, channel };
}

/**
 * Starts a command and returns a {@link RemoteProcess} once its channel is open.
 *
 * @throws {TypeError} bad command (empty, NUL byte).
 * @throws {SshConfigError} `ERR_SSH_CONFIG` for bad options.
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN`, `ERR_SSH_CONNECTION_LOST`, `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`, `ERR_SSH_CLOSED`.
 */
export async function spawnCommand(ctx: ExecContext, command: string | readonly string[], options: SpawnOptions = {}): Promise<RemoteProcess> {
  if (!isEmpty(options)) {
    const parsed = spawnSchema.safeParse(options);
    if (!parsed.success) throw zodToConfigError(parsed.error, 'spawn options');
  }
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
 * @throws {SshConfigError} `ERR_SSH_CONFIG` for bad options.
 * @throws {SshExecError} `ERR_SSH_EXIT` (with `check`), `ERR_SSH_TIMEOUT`, `ERR_SSH_ABORTED`,
 *   `ERR_SSH_MAX_BUFFER`, `ERR_SSH_CONNECTION_LOST`; each carries the output so far in `result`.
 * @throws {SshError} `ERR_SSH_CHANNEL_OPEN`, `ERR_SSH_CLOSED`, or a connect error.
 */
export async function execCommand(ctx: ExecContext, command: string | readonly string[], options: ExecOptions & { encoding: 'buffer' }): Promise<ExecResult<Buffer>>;
export async function execCommand(ctx: ExecContext, command: string | readonly string[], options?: ExecOptions): Promise<ExecResult<string>>;
export async function execCommand(ctx: ExecContext, command: string | readonly string[], options: ExecOptions = {}): Promise<ExecResult<string> | ExecResult<Buffer>> {
  if (!isEmpty(options)) {
    const parsed = execSchema.safeParse(options);
    if (!parsed.success) throw zodToConfigError(parsed.error, 'exec options');
  }
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
    feedStdin(channel, o.stdin, (e) => proc.stopWith(new SshError('ERR_SSH_ABORTED', `stdin stream failed: ${e.message}`, { cause: e })));
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
