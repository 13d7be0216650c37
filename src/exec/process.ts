import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import type ssh2 from 'ssh2';
import { SshError, SshExecError, SshInvalidArgError, type ExecResultLike } from '../errors.js';
import { abortReason } from '../internal/cancel.js';
import { signalName } from '../internal/sanitize.js';
import { PID_MARKER, type KillMode, type KillTarget } from './quote.js';

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
 * After the exit status (RFC 4254 6.10), how long exec waits for more output before it closes the
 * channel itself: the timer restarts on every chunk received and stops when the server closes the
 * channel. OpenSSH's client waits for EOF/close without a bound, so a command that leaves a
 * background process holding its stdout (`sleep 15 & echo started`) or a server that sends the
 * exit status and keeps the channel open would hang it; exec resolves with the status and the
 * output received so far instead. A caller's `timeoutMs`/`signal` still wins during this wait.
 */
export const EXIT_DRAIN_IDLE_MS = 1_000;

/** Largest terminal width or height accepted, in cells (the kernel's `struct winsize` holds 16 bits). */
export const MAX_PTY_CELLS = 65_535;

/**
 * Under a PTY, how long a stop (timeout, abort, `kill()`) waits after writing `\x03` before it
 * sends `TERM`, kills the process group and closes the channel (whose hang-up could otherwise
 * discard the `^C` before the terminal turned it into `SIGINT`). The caller is not kept waiting:
 * `exited` settles at once.
 */
export const PTY_INTERRUPT_GRACE_MS = 250;

/** How long a command stopped before its pid line arrived keeps its channel open for that line. */
export const PID_WAIT_MS = 3_000;

/**
 * Removes the pid line our command wrapper prints first on stderr
 * (`ssh-tether:pid=<pid>:<group|tree>`), and reports the pid and {@link KillMode} (a line without
 * a mode reports `'tree'`, the mode that signals nothing outside the command's own processes).
 * Everything else passes through untouched, byte for byte.
 */
export class PidLineStripper extends Transform {
  #head: Buffer | undefined = Buffer.alloc(0);
  /** PTY mode: bytes passed through before the marker was found (bounded by {@link PTY_MARKER_SEARCH_BYTES}). */
  #seen = 0;
  /**
   * @param pty The line comes through a pseudo-terminal (merged into stdout): it ends in `\r\n`
   *   (the terminal's `onlcr`) and may follow the terminal's echo of input written before the
   *   wrapper ran, so it is searched for in the first {@link PTY_MARKER_SEARCH_BYTES} bytes
   *   rather than only at the start.
   */
  constructor(
    private readonly onPid: (pid: number, mode: KillMode) => void,
    private readonly pty = false,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#head === undefined) return cb(null, chunk);
    if (this.pty) return this.#ptyTransform(chunk, cb);
    const buf = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
    const nl = buf.indexOf(0x0a);
    if (nl < 0 && buf.length < 64 && PID_MARKER.startsWith(buf.toString('latin1', 0, Math.min(buf.length, PID_MARKER.length)))) {
      this.#head = buf;
      return cb();
    }
    this.#head = undefined;
    const line = nl >= 0 ? buf.toString('latin1', 0, nl) : '';
    if (line.startsWith(PID_MARKER)) {
      const m = /^(\d{1,10})(?::(group|tree))?$/.exec(line.slice(PID_MARKER.length));
      const pid = m ? Number(m[1]) : NaN;
      if (m && Number.isInteger(pid) && pid > 1) this.onPid(pid, m[2] === 'group' ? 'group' : 'tree');
      const rest = buf.subarray(nl + 1);
      return cb(null, rest.length > 0 ? rest : undefined);
    }
    cb(null, buf);
  }
  /** PTY mode: find the marker line anywhere in the first bytes; pass everything else through. */
  #ptyTransform(chunk: Buffer, cb: TransformCallback): void {
    const head = this.#head ?? Buffer.alloc(0);
    const buf = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const found = buf.indexOf(PID_MARKER, 0, 'latin1');
    if (found >= 0 && this.#seen + found > PTY_MARKER_SEARCH_BYTES) {
      // Too far in: it is the command's own output.
      this.#head = undefined;
      return cb(null, buf);
    }
    const at = found;
    if (at < 0) {
      // Hold only a tail that could be the start of the marker.
      let keep = Math.min(buf.length, PID_MARKER.length - 1);
      while (keep > 0 && !PID_MARKER.startsWith(buf.toString('latin1', buf.length - keep))) keep -= 1;
      const pass = buf.subarray(0, buf.length - keep);
      this.#seen += pass.length;
      if (this.#seen > PTY_MARKER_SEARCH_BYTES) {
        this.#head = undefined;
        return cb(null, buf);
      }
      this.#head = buf.subarray(buf.length - keep);
      return cb(null, pass.length > 0 ? pass : undefined);
    }
    const nl = buf.indexOf(0x0a, at);
    if (nl < 0 && buf.length - at < 64) {
      this.#head = buf.subarray(at);
      this.#seen += at;
      return cb(null, at > 0 ? buf.subarray(0, at) : undefined);
    }
    this.#head = undefined;
    const line = buf.toString('latin1', at + PID_MARKER.length, nl < 0 ? buf.length : nl).replace(/\r$/, '');
    const m = /^(\d{1,10})(?::(group|tree))?$/.exec(line);
    const pid = m ? Number(m[1]) : NaN;
    if (!m || nl < 0) return cb(null, buf);
    if (Number.isInteger(pid) && pid > 1) this.onPid(pid, m[2] === 'group' ? 'group' : 'tree');
    const out = Buffer.concat([buf.subarray(0, at), buf.subarray(nl + 1)]);
    cb(null, out.length > 0 ? out : undefined);
  }
  override _flush(cb: TransformCallback): void {
    const head = this.#head;
    this.#head = undefined;
    cb(null, head && head.length > 0 ? head : undefined);
  }
}

/**
 * Under a PTY, how far into stdout the pid line is looked for (the terminal may echo input
 * written before the wrapper printed it, and the login shell's startup files may print first).
 */
export const PTY_MARKER_SEARCH_BYTES = 8192;

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

/**
 * How a {@link RemoteProcess} asks for the remote command to be killed by a second exec (see
 * `buildKillCommand`). It reports its own failures (the client emits a `warning` event).
 */
export type ProcessKiller = (target: KillTarget) => Promise<void>;

/**
 * A command running on the server over one session channel (RFC 4254 6.5), like a child process.
 * `stdin`, `stdout` and `stderr` are streams with backpressure; `exited` settles once.
 */
export class RemoteProcess {
  /** Writable standard input of the remote command (with a PTY: the terminal's input). `end()` it to send EOF. */
  readonly stdin: Writable;
  /** Standard output (with a PTY: the terminal's output, stderr included, lines ending in `\r\n`). */
  readonly stdout: Readable;
  /** Standard error (with a PTY: empty, the terminal merges stderr into stdout). */
  readonly stderr: Readable;
  /** Whether the command runs on a pseudo-terminal (RFC 4254 6.2 `pty-req`). */
  readonly pty: boolean;
  /**
   * Resolves with `{ exitCode, signal }` (stdout/stderr empty) when the command ends; rejects with
   * an {@link SshExecError}: `ERR_SSH_CONNECTION_LOST` when the channel closed without an exit
   * status or the link died, `ERR_SSH_TIMEOUT` / `ERR_SSH_ABORTED` when stopped.
   */
  readonly exited: Promise<ExecResult<string>>;
  #target: KillTarget | undefined;
  /** The pid line is being looked for (the command line reports its pid). */
  readonly #stripping: boolean;
  #done = false;
  #killPending = false;
  #drainIdleMs: number | undefined;
  #drainTimer: NodeJS.Timeout | undefined;
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
    /** The channel has a PTY: the pid line arrives on stdout (merged), see {@link PidLineStripper}. */
    pty = false,
  ) {
    this.#channel = channel;
    this.#killer = killer;
    this.#stripping = stripPid;
    this.pty = pty;
    this.stdin = channel;
    this.stdout = channel;
    this.stderr = channel.stderr;
    channel.on('error', () => undefined);
    if (stripPid) {
      const stripper = new PidLineStripper((pid, mode) => {
        this.#target = { pid, mode };
        // Stopped before the pid line arrived: kill now (the command started meanwhile).
        if (this.#killPending) {
          this.#killPending = false;
          this.#runKiller();
          this.#closeChannel();
        }
      }, pty);
      const source: Readable = pty ? channel : channel.stderr;
      source.pipe(stripper);
      source.on('error', (e: Error) => stripper.destroy(e));
      stripper.on('error', () => undefined);
      if (pty) this.stdout = stripper;
      else this.stderr = stripper;
    }
    // else: the command line did not report a pid (no timeout or signal to honour): no filter needed.
    this.#exit = earlyExit.get(channel);
    channel.on('exit', (code: number | null, signal?: string) => {
      this.#exit ??= { code: typeof code === 'number' ? code : null, signal: signalName(signal) };
      // A command stopped by kill()/timeout/abort settles with that reason, even if it exited first.
      if (settleOnExit) this.#finish?.(this.#stopped);
      else this.#armDrain();
    });
    this.exited = new Promise<ExecResult<string>>((resolve, reject) => {
      let done = false;
      const finish = (err: SshError | undefined): void => {
        this.#finish = undefined;
        if (done) return;
        done = true;
        this.#done = true;
        if (this.#drainTimer) clearTimeout(this.#drainTimer);
        this.#drainTimer = undefined;
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
        // ssh2 emits 'close' only after the channel's stdout 'end', so stdout is fully delivered;
        // settle once the filtered stream (stderr, or stdout under a PTY) is too. One being read
        // ends within this tick's nextTicks; one nobody reads never ends, so then wait one
        // event-loop turn (what every case did before: ~50 us per exec).
        const err = pty && stripPid ? this.stdout : this.stderr;
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

  /**
   * The remote command's process id, once the wrapper reported it (spawn always; exec only with
   * `timeoutMs` or `signal`). With OpenSSH's sshd, and where the wrapper ran it under `setsid`, it
   * also leads the command's process group.
   */
  get pid(): number | undefined {
    return this.#target?.pid;
  }

  /**
   * Tells the server the terminal's new size (RFC 4254 6.7 `window-change`): the remote terminal
   * gets the new size (`stty size`, `$COLUMNS`/`$LINES` in shells) and its foreground process
   * group gets `SIGWINCH`. Only for a process started with a PTY (`pty` option of `spawn`/`exec`,
   * or `shell()`), and only while `stdin` has not been ended (ssh2 sends nothing after EOF).
   *
   * @param cols Width in character cells, 1..65535.
   * @param rows Height in character cells (lines), 1..65535.
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` (field `cols` or `rows`) for a size that is not a
   *   whole number in 1..65535, or (field `pty`) when the process has no PTY.
   */
  resize(cols: number, rows: number): void {
    if (!this.pty) throw new SshInvalidArgError('resize: the process has no pseudo-terminal (start it with the pty option or shell())', { field: 'pty' });
    for (const [name, v] of [['cols', cols], ['rows', rows]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > MAX_PTY_CELLS) throw new SshInvalidArgError(`invalid resize ${name}: expected a whole number from 1 to ${MAX_PTY_CELLS}, got ${String(v)}`, { field: name });
    }
    // Pixel sizes 0: "ignored" (RFC 4254 6.2), as OpenSSH's client sends when it does not know them.
    this.#channel.setWindow(rows, cols, 0, 0);
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
   * Stops the command: sends `TERM` (RFC 4254 6.9), has the client kill the command's processes
   * with a second exec (its process group where the command leads one, else its process tree by
   * parent pid; see {@link KillMode}), and closes the channel. `exited` then rejects with
   * `ERR_SSH_ABORTED` unless it had already settled. After the exit status has arrived, `kill()`
   * only closes the channel (processes the command left in the background are not signalled:
   * their group leader is gone, so its number may name someone else's group).
   *
   * Per server: OpenSSH sshd and, through `setsid`, Dropbear and asyncssh: the whole process
   * group is gone within ~1 s (`TERM`, then `KILL` after 1 s). tinysshd allows one session per
   * connection, so the kill exec runs over a second, short-lived connection. A kill exec that
   * fails is reported as a client `warning` event.
   */
  kill(): void {
    this.#stop(new SshError('ERR_SSH_ABORTED', 'the remote command was killed'));
  }

  /** @internal Records the stop reason and stops the remote command. */
  stopWith(reason: SshError): void {
    this.#stop(reason);
  }

  /**
   * @internal After the exit status, close the channel and settle `exited` once no output has
   * arrived for `idleMs` (see {@link EXIT_DRAIN_IDLE_MS}). Returns the function to call on every
   * output chunk.
   */
  drainAfterExit(idleMs: number): () => void {
    this.#drainIdleMs = idleMs;
    if (this.#exit) this.#armDrain();
    return () => {
      if (this.#drainTimer) this.#armDrain();
    };
  }

  #armDrain(): void {
    const ms = this.#drainIdleMs;
    if (ms === undefined || this.#done || this.#stopped) return;
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    this.#drainTimer = setTimeout(() => {
      this.#drainTimer = undefined;
      this.#closeChannel();
      this.#finish?.(undefined);
    }, ms);
  }

  #closeChannel(): void {
    try {
      this.#channel.close();
    } catch {
      // already closed, or the link is gone
    }
  }

  #runKiller(): void {
    const target = this.#target;
    if (target !== undefined && this.#killer) this.#killer(target).catch(() => undefined);
  }

  #stop(reason: SshError): void {
    if (this.#stopped) return;
    const exited = this.#exit !== undefined;
    // Settled by a channel close or a lost link: nothing left to stop.
    if (this.#done && !exited) return;
    this.#stopped = reason;
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
    if (!exited && this.pty && this.#channel.writable) {
      // Under a PTY, Ctrl-C first: the terminal sends SIGINT to the foreground process group, as
      // a user at the keyboard would. The rest (TERM, the process-group kill, the channel close,
      // whose hang-up could discard the ^C before the terminal processed it) follows after a
      // short grace, unless the command exits first (then only the channel is closed).
      try {
        this.#channel.write('\x03');
      } catch {
        // the channel may already be gone
      }
      setTimeout(() => this.#hardStop(), PTY_INTERRUPT_GRACE_MS);
    } else this.#hardStop();
    // Settle now with the output so far: sshd answers the close only once the command is gone,
    // and ssh2 reports it only once the caller has read the streams to their end.
    setImmediate(() => this.#finish?.(reason));
  }

  /** TERM, the process-group kill (once the pid is known) and the channel close of {@link #stop}. */
  #hardStop(): void {
    if (this.#exit === undefined) {
      try {
        this.#channel.signal('TERM');
      } catch {
        // the channel may already be gone
      }
      if (this.#target !== undefined) this.#runKiller();
      else if (this.#stripping && this.#killer) {
        // The pid line is still on its way: keep the channel open until it arrives (a server may
        // end the streams on our close, e.g. tinysshd sends EOF at once), bounded.
        this.#killPending = true;
        setTimeout(() => {
          this.#killPending = false;
          this.#closeChannel();
        }, PID_WAIT_MS).unref();
      }
    }
    if (!this.#killPending) this.#closeChannel();
  }

  /** @internal Partial output for errors; overridden by exec, which collects output. */
  partialOutput: () => ExecResultLike = () => ({ stdout: '', stderr: '', exitCode: null, signal: null });

  #partial(): ExecResultLike {
    const p = this.partialOutput();
    return { ...p, exitCode: this.#exit?.code ?? null, signal: this.#exit?.signal ?? null };
  }
}

/**
 * Feeds `stdin` (string, Buffer or Readable) to a channel and ends it; no input sends EOF at once.
 * With `end: false` (a PTY, where EOF reaches no one: the terminal stays open) the channel is left
 * writable, so that a timeout or abort can still write `\x03` to the terminal.
 */
export function feedStdin(channel: Writable, stdin: string | Buffer | Readable | undefined, onError: (err: Error) => void, end = true): void {
  if (stdin === undefined) {
    if (end) channel.end();
  } else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) {
    if (end) channel.end(stdin);
    else channel.write(stdin);
  } else if (stdin instanceof Readable) {
    stdin.once('error', onError);
    stdin.pipe(channel, { end });
  } else {
    throw new TypeError('exec option stdin must be a string, a Buffer or a Readable stream');
  }
}
