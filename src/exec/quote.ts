import { SshInvalidArgError } from '../errors.js';

const SAFE = /^[A-Za-z0-9_/.:,@%+-]+$/;

/**
 * Quotes one argument for a POSIX shell (`sh`, `bash`, `dash`, `zsh` in sh mode), so that `'`,
 * `;`, `$()`, backticks, newlines, globs, `~` and `=` arrive literally.
 *
 * Follows POSIX.1-2017 XCU 2.2.2 "Single-Quotes": everything between single quotes is literal;
 * a single quote itself is written `'\''`.
 *
 * @throws {TypeError} when `arg` contains a NUL byte (it cannot be passed in a command line).
 */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) throw new TypeError('exec argument contains a NUL byte, which a remote command line cannot carry');
  if (arg === '') return "''";
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Joins an argv array into one POSIX shell command line, each element quoted by {@link quoteArg}.
 *
 * @throws {TypeError} for an empty array, a non-string element, or a NUL byte.
 */
export function quoteArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new TypeError('exec argv must not be empty');
  return argv
    .map((a, i) => {
      if (typeof a !== 'string') throw new TypeError(`exec argv[${i}] must be a string`);
      return quoteArg(a);
    })
    .join(' ');
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The marker the wrapper prints first on stderr: `ssh-tether:pid=<pid>:<mode>`, so that a timeout,
 * an abort or `kill()` can stop the remote command (see {@link buildKillCommand}).
 */
export const PID_MARKER = 'ssh-tether:pid=';

/**
 * How the remote command can be stopped, as reported by the wrapper:
 * - `'group'`: `pid` leads its own process group (OpenSSH's sshd runs each session under
 *   `setsid()`; on other servers the wrapper re-executes the command line under `setsid(1)`), so
 *   `kill -TERM -<pid>` reaches the whole command and nothing else.
 * - `'tree'`: the wrapper shares a process group with other sessions or with the server (Dropbear:
 *   one group per connection; tinysshd: one per server; asyncssh: the server's own) and no
 *   `setsid` was found: only `pid` and its descendants (by parent pid) may be signalled.
 */
export type KillMode = 'group' | 'tree';

/** A remote command to stop: the pid the wrapper reported and how it may be signalled. */
export interface KillTarget {
  pid: number;
  mode: KillMode;
}

/** Parts of a remote command line. */
export interface CommandLineParts {
  command: string | readonly string[];
  env?: Readonly<Record<string, string>> | undefined;
  cwd?: string | undefined;
  /**
   * Make the command stoppable: run it in a process group it leads and print
   * `ssh-tether:pid=<pid>:<group|tree>` on stderr first (see {@link KillMode}).
   */
  reportPid?: boolean;
}

/**
 * The wrapper's prologue (POSIX sh; dash, bash, busybox ash). It reads the shell's process group
 * from `/proc/$$/stat` (no fork) or `ps -o pgid= -p $$`. When the shell does not lead its group
 * and `setsid` exists, it `exec`s `setsid /bin/sh -c <inner>`: no fork (setsid(2) succeeds for a
 * non-leader, so util-linux and busybox `setsid` call it directly), so the pid, stdin/stdout/stderr
 * and the exit status stay those of the session's process. Otherwise the command line runs here,
 * reporting `group` when the shell leads its group (sshd) and `tree` when it does not.
 */
function stoppable(inner: string): string {
  const probe =
    '__tg=; { read -r __tg </proc/$$/stat; } 2>/dev/null; __tg=${__tg##*) }; __tg=${__tg#* }; __tg=${__tg#* }; __tg=${__tg%% *};' +
    ' case $__tg in ""|*[!0-9]*) __tg=$(ps -o pgid= -p $$ 2>/dev/null); __tg=${__tg##* };; esac;';
  const reinvoke =
    ` case $__tg in ""|*[!0-9]*|"$$") ;; *) if command -v setsid >/dev/null 2>&1; then exec setsid /bin/sh -c ${quoteArg(
      `printf '${PID_MARKER}%s:group\\n' "$$" >&2; ${inner}`,
    )}; fi;; esac;`;
  const report = ` if [ "$__tg" = "$$" ]; then __tg=group; else __tg=tree; fi; printf '${PID_MARKER}%s:%s\\n' "$$" "$__tg" >&2; unset __tg;`;
  return `${probe}${reinvoke}${report} ${inner}`;
}

/**
 * The shell command line that stops a remote command reported as `target` (run as a second exec
 * on the same server by the client). POSIX sh only; `kill -TERM -PGID` without `--` (dash's `kill`
 * rejects `--`: "Illegal number: -").
 *
 * It lists `pid`'s descendants by parent pid (from `ps -A -o pid= -o ppid= -o pgid= -o stat=`, else
 * from `/proc/<n>/stat`)
 * before signalling anything, sends `TERM` to the group (mode `'group'` only) and to the listed
 * processes, waits up to ~1 s for them to go, then sends `KILL` to what is left. It never signals
 * a process group that `pid` does not lead, nor a process outside `pid`'s tree.
 *
 * Exit status: 0 when the command is gone (or was already gone), 3 when a process is still there
 * after `KILL` or could not be signalled (the message on stderr says which).
 */
export function buildKillCommand(target: KillTarget): string {
  const { pid, mode } = target;
  if (!Number.isInteger(pid) || pid <= 1) throw new TypeError(`kill target pid must be an integer > 1, got ${String(pid)}`);
  const p = String(pid);
  const g = mode === 'group' ? 1 : 0;
  // One line per process: "pid ppid pgrp state", from ps (POSIX -o fields plus procps/busybox
  // `stat`), else from /proc/<pid>/stat without forking per process.
  const snap =
    `snap() { ps -A -o pid= -o ppid= -o pgid= -o stat= 2>/dev/null || for f in /proc/[0-9]*/stat; do read -r l <"$f" &&` +
    ` { s=\${l##*) }; a=\${s%% *}; s=\${s#* }; b=\${s%% *}; s=\${s#* }; echo "\${l%% *} $b \${s%% *} $a"; }; done 2>/dev/null; };`;
  // The command's processes: pid, its descendants by parent pid, and (group mode) its group; zombies
  // excluded. `$t` (the last list) is kept as seeds: a child orphaned by the TERM is still ours.
  const procs =
    `procs() { snap | awk -v r=${p} -v g=${g} -v keep="$t" '{ k[$2] = k[$2] " " $1; st[$1] = $4; pg[$1] = $3 } END { q = r " " keep; n = split(q, a, " "); for (i = 1; i <= n; i++) s[a[i]] = 1; while (q != "") { n = split(q, a, " "); q = "";` +
    ` for (i = 1; i <= n; i++) { m = split(k[a[i]], b, " "); for (j = 1; j <= m; j++) if (!(b[j] in s)) { s[b[j]] = 1; q = q " " b[j] } } }` +
    ` for (x in st) if ((x in s || (g && pg[x] == r)) && st[x] !~ /^Z/) o = o " " x; print o }'; };`;
  const sig = (name: string): string => (mode === 'group' ? `kill -${name} -${p} 2>/dev/null; kill -${name} $t 2>/dev/null;` : `kill -${name} $t 2>/dev/null;`);
  return (
    `${snap} ${procs} t=; t=$(procs); [ -n "$t" ] || exit 0; ${sig('TERM')}` +
    ` i=0; while [ $i -lt 10 ]; do sleep 0.1 2>/dev/null || sleep 1; t=$(procs); [ -n "$t" ] || exit 0; i=$((i+1)); done;` +
    ` ${sig('KILL')} sleep 0.2 2>/dev/null || sleep 1; t=$(procs);` +
    ` if [ -n "$t" ]; then echo "ssh-tether: process ${p} (${mode}): still running after SIGKILL:$t" >&2; exit 3; fi; exit 0`
  );
}

/**
 * Builds the command line sent in the RFC 4254 6.5 `exec` request:
 * `[stoppable prologue;] [export K='v' ...;] [cd -- 'dir' || exit 1;] command`.
 *
 * With `reportPid`, the prologue makes the command stoppable on every server kind: on OpenSSH's
 * sshd (the session already leads its own process group) the command runs in the login shell as
 * before; on Dropbear, tinysshd and asyncssh (the session shares a group) the same line runs under
 * `setsid /bin/sh -c` (so under `/bin/sh`, not the login shell), and where `setsid` is missing the
 * command is reported as `tree` and stopped by parent pid.
 *
 * `env` is sent inline as quoted exports because sshd drops `env` requests unless `AcceptEnv`
 * allows them (sshd_config(5)).
 *
 * @throws {TypeError} for a bad argv (see {@link quoteArgv}) or a NUL byte in `command`, `cwd` or an env value.
 * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG` for an env name that is not `[A-Za-z_][A-Za-z0-9_]*`.
 */
export function buildCommandLine(parts: CommandLineParts): string {
  const { command, env, cwd } = parts;
  let cmd: string;
  if (typeof command === 'string') {
    if (command.includes('\0')) throw new TypeError('exec command contains a NUL byte');
    if (command.trim() === '') throw new TypeError('exec command must not be empty');
    cmd = command;
  } else if (Array.isArray(command)) {
    cmd = quoteArgv(command);
  } else {
    throw new TypeError('exec command must be a string (a shell command line) or a string array (argv)');
  }
  const pre: string[] = [];
  if (env) {
    const names = Object.keys(env);
    if (names.length > 0) {
      const assigns = names.map((k) => {
        if (!ENV_NAME.test(k)) {
          throw new SshInvalidArgError(`invalid exec option 'env.${k}': expected a variable name matching [A-Za-z_][A-Za-z0-9_]*`, { field: `env.${k}` });
        }
        const v = env[k];
        if (typeof v !== 'string') throw new SshInvalidArgError(`invalid exec option 'env.${k}': expected a string value`, { field: `env.${k}` });
        return `${k}=${quoteArg(v)}`;
      });
      pre.push(`export ${assigns.join(' ')};`);
    }
  }
  if (cwd !== undefined) pre.push(`cd -- ${quoteArg(cwd)} || exit 1;`);
  const line = pre.length > 0 ? `${pre.join(' ')} ${cmd}` : cmd;
  return parts.reportPid ? stoppable(line) : line;
}
