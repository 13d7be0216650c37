/**
 * What jobs and follow need from the client, and how they run their POSIX `sh` scripts on the
 * server: as `sh -c SCRIPT NAME ARG...` over an ordinary exec, so every argument is passed as a
 * positional parameter (quoted by the exec layer), never spliced into the script text.
 *
 * Nothing is installed on the server: the scripts use POSIX sh utilities only (`ls -di`, `wc -c`,
 * `tail -c`, `head -c`, `kill`, `mkdir`, `mv`), plus `setsid` and `find -inum` where present
 * (both have fallbacks).
 *
 * @module jobs/remote
 */
import type { ExecOptions } from '../exec/exec.js';
import type { ExecResult } from '../exec/process.js';
import { SshError, type SshErrorCode } from '../errors.js';
import { sleep } from '../internal/cancel.js';

/** The part of {@link SshClient} that jobs and follow use. @internal */
export interface JobsHost {
  exec(command: string | readonly string[], options: ExecOptions & { encoding: 'buffer' }): Promise<ExecResult<Buffer>>;
  exec(command: string | readonly string[], options?: ExecOptions): Promise<ExecResult<string>>;
}

/** Runs `script` with `sh -c` and positional `args`, collecting bytes. @internal */
export function runScript(host: JobsHost, script: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult<Buffer>> {
  return host.exec(['sh', '-c', script, 'ssh-tether', ...args], { ...options, encoding: 'buffer' });
}

/**
 * Failures after which the same remote step can simply be tried again once the client has a
 * link: the link died, a channel was refused, a probe exec was bounded. Everything else (closed
 * client, abort, bad input, auth) ends the operation.
 */
const TRANSIENT: ReadonlySet<SshErrorCode> = new Set<SshErrorCode>([
  'ERR_SSH_CONNECTION_LOST',
  'ERR_SSH_KEEPALIVE_TIMEOUT',
  'ERR_SSH_CHANNEL_OPEN',
  'ERR_SSH_CONNECT',
  'ERR_SSH_CONNECT_TIMEOUT',
  'ERR_SSH_HANDSHAKE',
  'ERR_SSH_TIMEOUT',
]);

/**
 * Calls `step` until it succeeds, retrying it after a transient failure (see above) with a
 * short pause, for as long as `signal` is not aborted. Each step is itself bounded by the exec
 * `timeoutMs` the caller gives it, so a dead link cannot hold one step forever. @internal
 */
export async function untilDone<T>(step: () => Promise<T>, signal: AbortSignal, pauseMs = 200): Promise<T> {
  for (;;) {
    if (signal.aborted) throw signal.reason instanceof SshError ? signal.reason : new SshError('ERR_SSH_ABORTED', 'aborted', { cause: signal.reason });
    try {
      return await step();
    } catch (err) {
      if (signal.aborted) throw signal.reason instanceof SshError ? signal.reason : new SshError('ERR_SSH_ABORTED', 'aborted', { cause: signal.reason });
      if (!(err instanceof SshError) || !TRANSIENT.has(err.code)) throw err;
      await sleep(pauseMs, signal);
    }
  }
}

/** A bound for one remote step (one short exec), so that a silent link fails the step instead of holding it. */
export const STEP_TIMEOUT_MS = 30_000;
