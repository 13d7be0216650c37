/**
 * Durable remote jobs (`ssh.jobs`): commands that run detached on the server, in their own
 * session, with their output in files, so that they outlive the link and the client. The state
 * lives on the server (a directory per job), so a new process with a new client finds and
 * reattaches to jobs started earlier. What `nohup cmd > out 2>&1 &`, `tmux new -d -s name` and
 * `tail -f out` give a shell user, as one API.
 *
 * Layout of a job directory (`<jobsDir>/<id>/`, mode 0700):
 * - `command` the command line, `cwd`, `name` (if any), `started` (epoch seconds);
 * - `stdin` (what was given), `stdout`, `stderr` (the command's output);
 * - `pid` the command's process id (it leads its own session and process group where `setsid`
 *   exists), `mpid` the monitor's pid;
 * - `exit`, written atomically (temp file + rename) when the command ends: `exit CODE EPOCH` or
 *   `signal NAME EPOCH`.
 *
 * A running name is held by `<jobsDir>/.name-<name>/` (made with `mkdir`, atomic), freed by the
 * monitor when the job ends, taken over when its job is no longer running.
 *
 * @module jobs/jobs
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { SshConfigError, SshError, SshInvalidArgError } from '../errors.js';
import { parseOrThrow, signalSchema, timeoutMsSchema } from '../internal/validate.js';
import { buildCommandLine } from '../exec/quote.js';
import { operationScope, sleep } from '../internal/cancel.js';
import { runScript, STEP_TIMEOUT_MS, untilDone, type JobsHost } from './remote.js';
import { tailChunks } from './tail.js';

/** Options of {@link JobManager.start}. */
export interface JobStartOptions {
  /** A name unique among running jobs (`tmux new -s`): letters, digits, `.`, `_`, `-`, at most 64. */
  name?: string;
  /** Working directory of the command (it must exist). Default: the login directory. */
  cwd?: string;
  /** Environment variables, exported before the command (names `[A-Za-z_][A-Za-z0-9_]*`). */
  env?: Record<string, string>;
  /** Standard input of the command, stored in the job directory first. Default: empty. */
  stdin?: string | Buffer;
  /** Bounds the start (not the job) in ms; aborts with `ERR_SSH_TIMEOUT`. */
  timeoutMs?: number;
  /** Aborts the start (not the job). */
  signal?: AbortSignal;
}

/** A job's state. `lost`: no exit was recorded and its monitor is gone (the host rebooted, or it was killed with it). */
export type JobState = 'running' | 'exited' | 'killed' | 'lost';

/** What {@link RemoteJob.status} reports. */
export interface JobStatus {
  state: JobState;
  /** The exit status when `exited`, else `null`. */
  exitCode: number | null;
  /** The signal name (`'TERM'`, `'KILL'`, without `SIG`) when `killed`, else `null`. */
  signal: string | null;
  /** When it started, by the server's clock (whole seconds). */
  startedAt: Date | undefined;
  /** When it ended, by the server's clock (whole seconds), when it ended. */
  endedAt: Date | undefined;
}

/** Options of {@link RemoteJob.wait}. */
export interface JobWaitOptions {
  /** Stop waiting with `ERR_SSH_ABORTED` (the job keeps running). */
  signal?: AbortSignal;
  /** Stop waiting after this many ms with `ERR_SSH_TIMEOUT` (the job keeps running). Default: no bound. */
  timeoutMs?: number;
  /** How often the end is checked, in ms. @default 500 */
  pollIntervalMs?: number;
}

/** Options of {@link RemoteJob.output}. */
export interface JobOutputOptions {
  /** Which file. @default 'stdout' */
  stream?: 'stdout' | 'stderr';
  /** Byte offset to start at (e.g. the last `offset + data.length` a previous reader saw). @default 0 */
  from?: number;
  /** Keep reading until the job has ended and all it wrote was read (true), or stop at the current end (false). @default false */
  follow?: boolean;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** Poll interval once at the end, in ms. @default 250 */
  pollIntervalMs?: number;
}

/** A piece of a job's output: `offset` is where `data` starts in the output file. */
export interface JobOutputChunk {
  data: Buffer;
  offset: number;
}

/** Options of {@link JobManager}. @internal */
export interface JobManagerOptions {
  /** Where job directories live on the server; `~/` is the login directory. @default '~/.ssh-tether/jobs' */
  jobsDir?: string;
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ID = /^[a-z0-9]{6,40}$/;

const waitSchema = z.strictObject({
  signal: signalSchema.optional(),
  timeoutMs: timeoutMsSchema().optional(),
  pollIntervalMs: timeoutMsSchema('pollIntervalMs').optional(),
});
const pruneSchema = z.strictObject({
  // Milliseconds of age; not a timer, so any whole number >= 0 (days or years are fine).
  olderThanMs: z.number({ error: 'expected olderThanMs as a number of milliseconds' }).int({ error: 'expected olderThanMs as a whole number of milliseconds' }).min(0, { error: 'expected olderThanMs >= 0 milliseconds' }).optional(),
  signal: signalSchema.optional(),
});
const startSchema = z.strictObject({
  name: z.string().regex(NAME, { error: 'expected 1-64 letters, digits, ".", "_" or "-" (no "/")' }).refine((n) => n !== '.' && n !== '..', { error: "expected a name other than '.' and '..'" }).optional(),
  cwd: z.string().min(1, { error: 'expected a directory path' }).refine((s) => !s.includes('\0'), { error: 'expected no NUL bytes' }).optional(),
  env: z.record(z.string(), z.string({ error: 'expected string values' })).optional(),
  stdin: z.union([z.string(), z.instanceof(Buffer)], { error: 'expected a string or a Buffer' }).optional(),
  timeoutMs: timeoutMsSchema().optional(),
  signal: signalSchema.optional(),
});

/** Turns `~/x` into `"$HOME"/x` for the scripts (they expand a leading `~/` themselves). */
const HOME_PREFIX =
  'J=$1; case $J in "~") J=$HOME;; "~/"*) J="$HOME/${J#"~/"}";; esac\n' +
  // A zombie answers kill -0: where /proc exists, a process in state Z counts as gone (an init
  // that does not reap, as in some containers, leaves them).
  'alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1; [ -r "/proc/$1/stat" ] || return 0; [ "$(sed \'s/^.*) //;s/ .*//\' "/proc/$1/stat" 2>/dev/null)" != Z ]; }';

/**
 * The launcher: makes the job directory, takes the name, stores stdin, starts the monitor in a
 * session of its own (setsid; `nohup` where there is none), and prints the command's pid once
 * the monitor wrote it. Exit codes: 101 job dir, 102 id taken, 103 name taken (stdout: the
 * running job's id), 104 cwd missing, 105 the monitor did not report a pid.
 */
const START_SCRIPT = String.raw`${HOME_PREFIX}
id=$2; name=$3; cwd=$4; cmd=$5
umask 077
mkdir -p -- "$J" 2>&1 || exit 101
chmod 700 -- "$J" 2>/dev/null
D="$J/$id"
mkdir -- "$D" 2>/dev/null || exit 102
if [ -n "$cwd" ] && [ ! -d "$cwd" ]; then rm -rf -- "$D"; exit 104; fi
if [ -n "$name" ]; then
  L="$J/.name-$name"
  if ! mkdir -- "$L" 2>/dev/null; then
    other=$(cat -- "$L/id" 2>/dev/null)
    if [ -n "$other" ] && [ -d "$J/$other" ] && [ ! -e "$J/$other/exit" ] && alive "$(cat -- "$J/$other/mpid" 2>/dev/null)"; then
      rm -rf -- "$D"; printf '%s' "$other"; exit 103
    fi
    rm -rf -- "$L"
    mkdir -- "$L" 2>/dev/null || { rm -rf -- "$D"; exit 103; }
  fi
  printf '%s' "$id" > "$L/id"
  printf '%s' "$name" > "$D/name"
fi
printf '%s' "$cmd" > "$D/command"
printf '%s' "$cwd" > "$D/cwd"
cat > "$D/stdin"
date +%s > "$D/started"
: > "$D/stdout"; : > "$D/stderr"
M='D=$1; J=$2; name=$3; cwd=$4
echo $$ > "$D/mpid"
[ -n "$cwd" ] && cd -- "$cwd"
if command -v setsid >/dev/null 2>&1; then
  setsid sh -c "$(cat "$D/command")" < "$D/stdin" > "$D/stdout" 2> "$D/stderr" &
else
  sh -c "$(cat "$D/command")" < "$D/stdin" > "$D/stdout" 2> "$D/stderr" &
fi
c=$!
echo $c > "$D/pid.tmp" && mv "$D/pid.tmp" "$D/pid"
wait $c; s=$?
now=$(date +%s)
if [ $s -gt 128 ] && sig=$(kill -l $s 2>/dev/null) && [ -n "$sig" ]; then r="signal $sig $now"; else r="exit $s $now"; fi
echo "$r" > "$D/exit.tmp" && mv "$D/exit.tmp" "$D/exit"
if [ -n "$name" ] && [ "$(cat "$J/.name-$name/id" 2>/dev/null)" = "$(basename "$D")" ]; then rm -rf -- "$J/.name-$name"; fi'
if command -v setsid >/dev/null 2>&1; then
  setsid sh -c "$M" ssh-tether-job "$D" "$J" "$name" "$cwd" < /dev/null > /dev/null 2>&1 &
else
  nohup sh -c "$M" ssh-tether-job "$D" "$J" "$name" "$cwd" < /dev/null > /dev/null 2>&1 &
fi
i=0
while [ ! -s "$D/pid" ] && [ $i -lt 100 ]; do sleep 0.05 2>/dev/null || sleep 1; i=$((i + 1)); done
[ -s "$D/pid" ] || exit 105
cat "$D/pid"`;

/** Prints one tab-separated line per job: id, name, pid, mpid, started, exit line, pid alive, monitor alive. */
const LIST_SCRIPT = String.raw`${HOME_PREFIX}
only=$2
[ -d "$J" ] || exit 0
for d in "$J"/*; do
  [ -d "$d" ] || continue
  id=$(basename -- "$d")
  [ -n "$only" ] && [ "$id" != "$only" ] && continue
  pid=$(cat -- "$d/pid" 2>/dev/null); mpid=$(cat -- "$d/mpid" 2>/dev/null)
  a=0; alive "$pid" && a=1
  m=0; alive "$mpid" && m=1
  ex=$(cat -- "$d/exit" 2>/dev/null)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$(cat -- "$d/name" 2>/dev/null)" "$pid" "$mpid" "$(cat -- "$d/started" 2>/dev/null)" "$ex" "$a" "$m"
done`;

/** Signals the job's process group (its own session), else the process; exit 1 when nothing was running. */
const KILL_SCRIPT = String.raw`${HOME_PREFIX}
D="$J/$2"; sig=$3
[ -e "$D/exit" ] && exit 1
pid=$(cat -- "$D/pid" 2>/dev/null) || exit 1
kill -$sig -$pid 2>/dev/null && exit 0
kill -$sig $pid 2>/dev/null`;

const REMOVE_SCRIPT = String.raw`${HOME_PREFIX}
D="$J/$2"
[ -d "$D" ] || exit 0
[ -e "$D/exit" ] || { alive "$(cat -- "$D/mpid" 2>/dev/null)" && exit 3; }
rm -rf -- "$D"`;

/** One job as the server describes it. */
interface JobRecord {
  id: string;
  name: string | undefined;
  pid: number | undefined;
  status: JobStatus;
}

function parseExit(line: string): { state: 'exited' | 'killed'; exitCode: number | null; signal: string | null; endedAt: Date | undefined } | undefined {
  const m = /^(exit|signal) (\S+) (\d+)$/.exec(line.trim());
  if (!m) return undefined;
  const endedAt = new Date(Number(m[3]) * 1000);
  if (m[1] === 'exit') {
    const code = Number(m[2]);
    return Number.isInteger(code) && code >= 0 && code <= 255 ? { state: 'exited', exitCode: code, signal: null, endedAt } : undefined;
  }
  const sig = m[2] ?? '';
  return /^[A-Z][A-Z0-9+-]{0,15}$/.test(sig) ? { state: 'killed', exitCode: null, signal: sig, endedAt } : undefined;
}

function parseRecord(line: string): JobRecord | undefined {
  const f = line.split('\t');
  if (f.length !== 8) return undefined;
  const [id, name, pid, , started, ex, alive, monitorAlive] = f as [string, string, string, string, string, string, string, string];
  if (!ID.test(id)) return undefined;
  const startedAt = /^\d+$/.test(started) ? new Date(Number(started) * 1000) : undefined;
  const p = /^\d+$/.test(pid) ? Number(pid) : undefined;
  const ended = ex ? parseExit(ex) : undefined;
  let status: JobStatus;
  if (ended) status = { state: ended.state, exitCode: ended.exitCode, signal: ended.signal, startedAt, endedAt: ended.endedAt };
  else if (alive === '1' || monitorAlive === '1') status = { state: 'running', exitCode: null, signal: null, startedAt, endedAt: undefined };
  else status = { state: 'lost', exitCode: null, signal: null, startedAt, endedAt: undefined };
  return { id, name: name === '' ? undefined : name, pid: p, status };
}

function newId(): string {
  return `${Date.now().toString(36)}${randomBytes(5).toString('hex')}`;
}

/**
 * A durable job on the server (see {@link JobManager.start}). The object holds only the job's id:
 * every method asks the server, so it works from any client, in any process, after reconnects.
 */
export class RemoteJob {
  /** The job's id (also its directory name). */
  readonly id: string;
  /** Its name, if it was given one. */
  readonly name: string | undefined;
  /** The command's process id on the server (it leads its own process group where the server has `setsid`). */
  readonly pid: number | undefined;
  readonly #m: JobManager;

  /** @internal */
  constructor(manager: JobManager, id: string, name: string | undefined, pid: number | undefined) {
    this.#m = manager;
    this.id = id;
    this.name = name;
    this.pid = pid;
  }

  /**
   * Asks the server for the job's state.
   *
   * @throws {SshError} `ERR_SSH_JOB` when the job directory no longer exists; connection errors as `exec`.
   */
  async status(options: { signal?: AbortSignal } = {}): Promise<JobStatus> {
    const r = await this.#m.record(this.id, options.signal);
    if (!r) throw new SshError('ERR_SSH_JOB', `job ${this.id}: no such job on the server (removed?)`);
    return r.status;
  }

  /**
   * Waits until the job has ended and resolves with its final status. A link that dies while
   * waiting is not an error: the wait goes on once the client has reconnected.
   *
   * @throws {SshError} `ERR_SSH_TIMEOUT` / `ERR_SSH_ABORTED` (the job keeps running), `ERR_SSH_JOB`
   *   when the job was removed, `ERR_SSH_CLOSED` when the client is closed.
   */
  async wait(options: JobWaitOptions = {}): Promise<JobStatus> {
    parseOrThrow(waitSchema, options, 'job wait options');
    const scope = operationScope({ signal: options.signal, timeoutMs: options.timeoutMs }, `job ${this.id}: wait`);
    try {
      for (;;) {
        const s = await untilDone(() => this.status({ signal: scope.signal }), scope.signal);
        if (s.state !== 'running') return s;
        await sleep(options.pollIntervalMs ?? 500, scope.signal);
      }
    } finally {
      scope.dispose();
    }
  }

  /**
   * Sends `signal` (name without `SIG`, default `'TERM'`) to the job's whole process group (its
   * own session where the server has `setsid`, else the process alone). Resolves `true` when a
   * running job was signalled, `false` when it had already ended.
   *
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for a signal name that is not `[A-Z][A-Z0-9]*`.
   */
  async kill(signal = 'TERM'): Promise<boolean> {
    const sig = signal.replace(/^SIG/, '');
    if (!/^[A-Z][A-Z0-9]{0,15}$/.test(sig)) throw new SshInvalidArgError(`invalid job kill signal '${signal}': expected a signal name such as 'TERM', 'INT' or 'KILL'`, { field: 'signal' });
    const r = await this.#m.script(KILL_SCRIPT, [this.id, sig]);
    return r.exitCode === 0;
  }

  /**
   * The job's output as chunks of bytes with their offsets. With `follow: true` it goes on until
   * the job has ended and everything it wrote was delivered, across reconnects: every byte once,
   * in order (resume with `from` = the last `offset + data.length`).
   */
  output(options: JobOutputOptions = {}): AsyncIterable<JobOutputChunk> {
    const stream = options.stream ?? 'stdout';
    if (stream !== 'stdout' && stream !== 'stderr') throw new SshInvalidArgError(`invalid job output option 'stream': expected 'stdout' or 'stderr'`, { field: 'stream' });
    const from = options.from ?? 0;
    if (!Number.isSafeInteger(from) || from < 0) throw new SshInvalidArgError(`invalid job output option 'from': expected a byte offset >= 0`, { field: 'from' });
    const dir = this.#m.dirOf(this.id);
    const host = this.#m.host;
    return {
      [Symbol.asyncIterator]: () => {
        const scope = operationScope({ signal: options.signal }, `job ${this.id}: output`);
        const it = tailChunks(host, `${dir}/${stream}`, {
          from,
          follow: options.follow ?? false,
          doneFile: `${dir}/exit`,
          pollIntervalMs: options.pollIntervalMs ?? 250,
          chunkBytes: 1024 * 1024,
          signal: scope.signal,
        });
        return {
          next: async () => {
            const r = await it.next();
            if (r.done) {
              scope.dispose();
              return { done: true, value: undefined };
            }
            return { done: false, value: { data: r.value.data, offset: r.value.offset } };
          },
          return: async () => {
            scope.dispose();
            await it.return();
            return { done: true, value: undefined };
          },
        };
      },
    };
  }

  /**
   * Deletes the job's directory on the server.
   *
   * @throws {SshError} `ERR_SSH_JOB` while the job is running (kill it and wait first).
   */
  async remove(): Promise<void> {
    const r = await this.#m.script(REMOVE_SCRIPT, [this.id]);
    if (r.exitCode === 3) throw new SshError('ERR_SSH_JOB', `job ${this.id} is still running: kill() and wait() before remove()`);
    if (r.exitCode !== 0) throw new SshError('ERR_SSH_JOB', `job ${this.id}: remove failed: ${r.stderr.toString('utf8').trim().slice(0, 200)}`);
  }
}

/**
 * `ssh.jobs`: start, list and find durable jobs on the client's host. See the module notes for
 * the layout on the server. Every method is one or two short execs.
 */
export class JobManager {
  /** @internal */
  readonly host: JobsHost;
  readonly #dir: string;

  /** @internal */
  constructor(host: JobsHost, options: JobManagerOptions = {}) {
    this.host = host;
    const dir = options.jobsDir ?? '~/.ssh-tether/jobs';
    if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0') || dir.includes('\n')) {
      throw new SshConfigError(`invalid option 'jobsDir': expected a remote directory path (a leading '~/' is the login directory)`, { field: 'jobsDir' });
    }
    this.#dir = dir.replace(/\/+$/, '') || '/';
  }

  /** @internal The directory of job `id` as the scripts see it (a leading `~/` is expanded by them). */
  dirOf(id: string): string {
    return `${this.#dir}/${id}`;
  }

  /** @internal Runs one of the job scripts with the jobs directory as `$1`. */
  async script(script: string, args: readonly string[], options: { stdin?: string | Buffer; signal?: AbortSignal | undefined } = {}): Promise<{ exitCode: number | null; stdout: Buffer; stderr: Buffer }> {
    const o: { timeoutMs: number; stdin?: string | Buffer; signal?: AbortSignal } = { timeoutMs: STEP_TIMEOUT_MS };
    if (options.stdin !== undefined) o.stdin = options.stdin;
    if (options.signal !== undefined) o.signal = options.signal;
    return runScript(this.host, script, [this.#dir, ...args], o);
  }

  /** @internal The server's record of job `id`, or `undefined`. */
  async record(id: string, signal?: AbortSignal): Promise<JobRecord | undefined> {
    const r = await this.script(LIST_SCRIPT, [id], { signal });
    return r.stdout.toString('utf8').split('\n').map(parseRecord).find((x) => x?.id === id);
  }

  /**
   * Starts `command` detached on the server, in its own session and process group (`setsid`;
   * where the server has none, in the monitor's group: then `kill()` reaches the command's first
   * process only). `command` is a shell command line, or argv quoted for a POSIX shell, as for
   * `exec`. It keeps running when the link or the client dies; its stdout and stderr go to files.
   *
   * @returns the {@link RemoteJob}, once the command runs (its pid is known).
   * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for an empty command, a NUL byte, a bad name (e.g.
   *   with `/`) or env name, naming the field.
   * @throws {SshError} `ERR_SSH_JOB` when the job directory cannot be made (with the server's
   *   message), the `cwd` does not exist, the name belongs to a running job, or the server lacks
   *   a POSIX sh; connection errors as `exec`.
   *
   * @example
   * ```ts
   * const job = await ssh.jobs.start('make -j4 all', { name: 'build', cwd: '/srv/app' });
   * for await (const { data } of job.output({ follow: true })) process.stdout.write(data);
   * const { state, exitCode } = await job.wait();
   * ```
   */
  async start(command: string | readonly string[], options: JobStartOptions = {}): Promise<RemoteJob> {
    parseOrThrow(startSchema, options, 'job start options');
    let cmdline: string;
    try {
      cmdline = buildCommandLine({ command, env: options.env });
    } catch (err) {
      if (err instanceof TypeError) throw new SshInvalidArgError(`invalid job command: ${err.message}`, { field: 'command', cause: err });
      throw err;
    }
    const id = newId();
    const scope = operationScope({ signal: options.signal, timeoutMs: options.timeoutMs }, 'job start');
    try {
      const r = await this.script(START_SCRIPT, [id, options.name ?? '', options.cwd ?? '', cmdline], { stdin: options.stdin ?? '', signal: scope.signal });
      const out = r.stdout.toString('utf8').trim();
      const err = r.stderr.toString('utf8').trim().slice(0, 300);
      switch (r.exitCode) {
        case 0: {
          const pid = Number(out);
          return new RemoteJob(this, id, options.name, Number.isSafeInteger(pid) && pid > 1 ? pid : undefined);
        }
        case 101:
          throw new SshError('ERR_SSH_JOB', `cannot create the job directory ${this.#dir}: ${out || err}`);
        case 103:
          throw new SshError('ERR_SSH_JOB', `a job named '${options.name ?? ''}' is already running${/^[a-z0-9]+$/.test(out) ? ` (job ${out})` : ''}`);
        case 104:
          throw new SshError('ERR_SSH_JOB', `the job's cwd does not exist on the server: ${options.cwd ?? ''}`);
        case 127:
          throw new SshError('ERR_SSH_JOB', `the server has no POSIX sh to run jobs: ${err}`);
        default:
          throw new SshError('ERR_SSH_JOB', `the job could not be started (exit ${String(r.exitCode)}): ${err}`);
      }
    } finally {
      scope.dispose();
    }
  }

  /** Every job on the server (running and finished), oldest first. */
  async list(options: { signal?: AbortSignal } = {}): Promise<RemoteJob[]> {
    return (await this.#records(options.signal)).map((r) => new RemoteJob(this, r.id, r.name, r.pid));
  }

  async #records(signal?: AbortSignal): Promise<JobRecord[]> {
    const r = await this.script(LIST_SCRIPT, [''], { signal });
    return r.stdout
      .toString('utf8')
      .split('\n')
      .map(parseRecord)
      .filter((x): x is JobRecord => x !== undefined)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /**
   * The job with this id, or the job of this name (the running one, else the newest).
   * Resolves `undefined` when there is none.
   */
  async get(idOrName: string, options: { signal?: AbortSignal } = {}): Promise<RemoteJob | undefined> {
    const all = await this.#records(options.signal);
    const byId = all.find((r) => r.id === idOrName);
    const named = all.filter((r) => r.name === idOrName);
    const pick = byId ?? named.find((r) => r.status.state === 'running') ?? named[named.length - 1];
    return pick ? new RemoteJob(this, pick.id, pick.name, pick.pid) : undefined;
  }

  /**
   * Removes finished jobs (exited, killed or lost) that ended (or, when lost, started) more than
   * `olderThanMs` ago by the server's clock (default 0: every finished job).
   *
   * @returns the ids removed.
   */
  async prune(options: { olderThanMs?: number; signal?: AbortSignal } = {}): Promise<string[]> {
    parseOrThrow(pruneSchema, options, 'prune options');
    const olderThanMs = options.olderThanMs ?? 0;
    const now = Date.now();
    const removed: string[] = [];
    for (const r of await this.#records(options.signal)) {
      if (r.status.state === 'running') continue;
      const t = r.status.endedAt ?? r.status.startedAt;
      if (t && now - t.getTime() < olderThanMs) continue;
      await new RemoteJob(this, r.id, r.name, r.pid).remove();
      removed.push(r.id);
    }
    return removed;
  }
}
