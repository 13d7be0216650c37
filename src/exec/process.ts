import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import type ssh2 from 'ssh2';
import { SshError, SshExecError, type ExecResultLike } from '../errors.js';
import { abortReason } from '../internal/cancel.js';
import { signalName } from '../internal/sanitize.js';
import { PID_MARKER } from './quote.js';

/** The result of a finished remote command. `T` is `string` (utf8) or `Buffer`. */
export interface ExecResult<T extends string | Buffer = string> {
  /** Everything the command wrote to stdout (empty for `spawn`, whose streams the caller reads). */
  stdout: T;
  /** Everything the command wrote to stderr (empty for `spawn`). */
  stderr: T;
  /** The exit status (RFC 4254 6.10 `exit-status`), or `null` when the command was killed by a signal. */
  exitCode: number | null;
  /** The signal that ended the command, Node style (`'SIGKILL'`; RFC 4254 6.10 `exit-signal` carries the name without `SIG`), or `null`. */
  signal: string | null;
}

/**
 * Removes the pid line our command wrapper prints first on stderr, and reports the pid.
 * Everything else passes through untouched, byte for byte.
 */
export class PidLineStripper extends Transform {
  #head: Buffer | undefined = Buffer.alloc(0);
  constructor(private readonly onPid: (pid: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#head === undefined) return cb(null, chunk);
    const buf = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
    const nl = buf.indexOf(0x0a);
    if (nl < 0 && buf.length < 64 && PID_MARKER.startsWith(buf.toString('latin1', 0, Math.min(buf.length, PID_MARKER.length)))) {
      this.#head = buf;
      return cb();
    }
    this.#head = undefined;
    const line = nl >= 0 ? buf.toString('latin1', 0, nl) : '';
    if (line.startsWith(PID_MARKER)) {
      const pid = Number(line.slice(PID_MARKER.length));
      if (Number.isInteger(pid) && pid > 1) this.onPid(pid);
      const rest = buf.subarray(nl + 1);
      return cb(null, rest.length > 0 ? rest : undefined);
    }
    cb(null, buf);
  }
  override _flush(cb: TransformCallback): void {
    const head = this.#head;
    this.#head = undefined;
    cb(null, head && head.length > 0 ? head : undefined);
  }
}

/**
 * Exit information captured synchronously in ssh2's exec callback: the exit request can arrive in
 * the same TCP chunk as the exec reply, before any later listener is attached.
 */
const earlyExit = new WeakMap<object, { code: number | null; signal: string | null }>();

/** Call inside ssh2's exec callback, before anything asynchronous, to never miss the exit. */
export function captureExit(channel: ssh2.ClientChannel): void {
  channel.on('exit', (code: number | null, signal?: string) => {
    if (!earlyExit.has(channel)) earlyExit.set(channel, { code: typeof code === 'number' ? code : null, signal: signalName(signal) });
  });
}

/** How a {@link RemoteProcess} asks for its process group to be killed by a second exec. */
export type ProcessKiller = (pid: number) => Promise<void>;

/**
 * A command running on the server over one session channel (RFC 4254 6.5), like a child process.
 * `stdin`, `stdout` and `stderr` are streams with backpressure; `exited` settles once.
 */
export class RemoteProcess {
  /** Writable standard input of the remote command. `end()` it to send EOF. */
  readonly stdin: Writable;
  /** Standard output. */
  readonly stdout: Readable;
  /** Standard error. */
  readonly stderr: Readable;
  /**
   * Resolves with `{ exitCode, signal }` (stdout/stderr empty) when the command ends; rejects with
   * an {@link SshExecError}: `ERR_SSH_CONNECTION_LOST` when the channel closed without an exit
   * status or the link died, `ERR_SSH_TIMEOUT` / `ERR_SSH_ABORTED` when stopped.
   */
  readonly exited: Promise<ExecResult<string>>;
  #pid: number | undefined;
  #exit: { code: number | null; signal: string | null } | undefined;
  #stopped: SshError | undefined;
  #finish: ((err: SshError | undefined) => void) | undefined;
  readonly #channel: ssh2.ClientChannel;
  readonly #killer: ProcessKiller | undefined;

  /** @internal */
  constructor(
    channel: ssh2.ClientChannel,
    linkSignal: AbortSignal,
    opSignal: AbortSignal | undefined,
    killer: ProcessKiller | undefined,
    onSettled: () => void,
    stripPid = true,
    /** Settle `exited` on the exit status instead of waiting for the channel to close (spawn: the caller may never read the streams). */
    settleOnExit = false,
  ) {
    this.#channel = channel;
    this.#killer = killer;
    this.stdin = channel;
    this.stdout = channel;
    channel.on('error', () => undefined);
    if (stripPid) {
      const stripper = new PidLineStripper((pid) => {
        this.#pid = pid;
      });
      channel.stderr.pipe(stripper);
      channel.stderr.on('error', (e: Error) => stripper.destroy(e));
      stripper.on('error', () => undefined);
      this.stderr = stripper;
    } else {
      // The command line did not report a pid (no timeout or signal to honour): no filter needed.
      this.stderr = channel.stderr;
    }
    this.#exit = earlyExit.get(channel);
    channel.on('exit', (code: number | null, signal?: string) => {
      this.#exit ??= { code: typeof code === 'number' ? code : null, signal: signalName(signal) };
      // A command stopped by kill()/timeout/abort settles with that reason, even if it exited first.
      if (settleOnExit) this.#finish?.(this.#stopped);
    });
    this.exited = new Promise<ExecResult<string>>((resolve, reject) => {
      let done = false;
      const finish = (err: SshError | undefined): void => {
        this.#finish = undefined;
        if (done) return;
        done = true;
        linkSignal.removeEventListener('abort', onLinkAbort);
        opSignal?.removeEventListener('abort', onOpAbort);
        onSettled();
        if (err) {
          reject(new SshExecError(err.code, err.message, this.#partial(), { cause: err.cause ?? err }));
          return;
        }
        resolve({ stdout: '', stderr: '', exitCode: this.#exit?.code ?? null, signal: this.#exit?.signal ?? null });
      };
      let channelClosed = false;
      const onLinkAbort = (): void => {
        // Once the channel closed normally, its result stands (it settles on the next turn).
        if (channelClosed) return;
        finish(abortReason(linkSignal));
        channel.destroy();
      };
      const onOpAbort = (): void => {
        if (opSignal) this.#stop(abortReason(opSignal));
      };
      this.#finish = finish;
      linkSignal.addEventListener('abort', onLinkAbort, { once: true });
      if (linkSignal.aborted) onLinkAbort();
      if (settleOnExit && this.#exit) finish(undefined);
      if (opSignal) {
        opSignal.addEventListener('abort', onOpAbort, { once: true });
        if (opSignal.aborted) onOpAbort();
      }
      // ssh2 passes the exit status (or null + signal) to 'close'; the 'exit' event itself may have
      // fired before this listener was attached (the exec reply and exit can arrive in one chunk).
      channel.once('close', (code?: unknown, signal?: unknown) => {
        channelClosed = true;
        if (!this.#exit && (typeof code === 'number' || typeof signal === 'string')) {
          this.#exit = { code: typeof code === 'number' ? code : null, signal: signalName(signal) };
        }
        const settle = (): void => {
          if (this.#stopped) return finish(this.#stopped);
          if (!this.#exit) {
            return finish(
              linkSignal.aborted
                ? abortReason(linkSignal)
                : new SshError('ERR_SSH_CONNECTION_LOST', 'the channel closed without an exit status (connection lost or the server ended the session)'),
            );
          }
          finish(undefined);
        };
        // ssh2 emits 'close' only after stdout's 'end', so stdout is fully delivered; settle once
        // stderr is too. A stderr being read ends within this tick's nextTicks; one nobody reads
        // never ends, so then wait one event-loop turn (what every case did before: ~50 us per exec).
        const err = this.stderr;
        if (err.readableEnded || err.destroyed) settle();
        else if (err.readableFlowing === true) {
          err.once('end', settle);
          err.once('close', settle);
        } else setImmediate(settle);
      });
    });
    // `exited` is also awaited by users; this guard only keeps a rejection nobody awaited from
    // becoming an unhandled rejection.
    this.exited.catch(() => undefined);
  }

  /** The remote shell's process id (its process group), once the command reported it. */
  get pid(): number | undefined {
    return this.#pid;
  }

  /**
   * Sends a signal (RFC 4254 6.9 `signal`, name without `SIG`, e.g. `'TERM'`, `'INT'`). ssh2 drops
   * signal requests once stdin has ended, and sshd refuses them for root sessions; use
   * {@link RemoteProcess.kill} to be sure the command stops.
   */
  signal(name: string): void {
    this.#channel.signal(name.replace(/^SIG/, ''));
  }

  /**
   * Stops the command: sends `TERM`, closes the channel, and kills the remote process group
   * (by the pid the wrapper reported) with a second exec. `exited` then rejects with
   * `ERR_SSH_ABORTED`.
   */
  kill(): void {
    this.#stop(new SshError('ERR_SSH_ABORTED', 'the remote command was killed'));
  }

  /** @internal Records the stop reason and stops the remote command. */
  stopWith(reason: SshError): void {
    this.#stop(reason);
  }

  #stop(reason: SshError): void {
    if (this.#stopped || this.#exit) return;
    this.#stopped = reason;
    try {
      this.#channel.signal('TERM');
    } catch {
      // the channel may already be gone
    }
    const pid = this.#pid;
    if (pid !== undefined && this.#killer) {
      this.#killer(pid).catch(() => undefined);
    }
    this.#channel.close();
    // Settle now with the output so far: sshd answers the close only once the command is gone,
    // and ssh2 reports it only once the caller has read the streams to their end.
    setImmediate(() => this.#finish?.(reason));
  }

  /** @internal Partial output for errors; overridden by exec, which collects output. */
  partialOutput: () => ExecResultLike = () => ({ stdout: '', stderr: '', exitCode: null, signal: null });

  #partial(): ExecResultLike {
    const p = this.partialOutput();
    return { ...p, exitCode: this.#exit?.code ?? null, signal: this.#exit?.signal ?? null };
  }
}

/** Feeds `stdin` (string, Buffer or Readable) to a channel and ends it; no input sends EOF at once. */
export function feedStdin(channel: Writable, stdin: string | Buffer | Readable | undefined, onError: (err: Error) => void): void {
  if (stdin === undefined) {
    channel.end();
  } else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) {
    channel.end(stdin);
  } else if (stdin instanceof Readable) {
    stdin.once('error', onError);
    stdin.pipe(channel);
  } else {
    throw new TypeError('exec option stdin must be a string, a Buffer or a Readable stream');
  }
}
