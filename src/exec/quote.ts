import { SshConfigError } from '../errors.js';

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

/** The marker the wrapper prints first on stderr so that a timeout can kill the remote process group. */
export const PID_MARKER = 'ssh-tether:pid=';

/** Parts of a remote command line. */
export interface CommandLineParts {
  command: string | readonly string[];
  env?: Readonly<Record<string, string>> | undefined;
  cwd?: string | undefined;
  /** Print the shell's pid (== its process group, sshd runs each session under setsid) on stderr first. */
  reportPid?: boolean;
}

/**
 * Builds the command line sent in the RFC 4254 6.5 `exec` request:
 * `[printf pid >&2;] [export K='v' ...;] [cd -- 'dir' || exit 1;] command`.
 *
 * `env` is sent inline as quoted exports because sshd drops `env` requests unless `AcceptEnv`
 * allows them (sshd_config(5)).
 *
 * @throws {TypeError} for a bad argv (see {@link quoteArgv}) or a NUL byte in `command`, `cwd` or an env value.
 * @throws {SshConfigError} `ERR_SSH_CONFIG` for an env name that is not `[A-Za-z_][A-Za-z0-9_]*`.
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
  if (parts.reportPid) pre.push(`printf '${PID_MARKER}%s\\n' "$$" >&2;`);
  if (env) {
    const names = Object.keys(env);
    if (names.length > 0) {
      const assigns = names.map((k) => {
        if (!ENV_NAME.test(k)) {
          throw new SshConfigError(`invalid exec option 'env.${k}': expected a variable name matching [A-Za-z_][A-Za-z0-9_]*`, { field: `env.${k}` });
        }
        const v = env[k];
        if (typeof v !== 'string') throw new SshConfigError(`invalid exec option 'env.${k}': expected a string value`, { field: `env.${k}` });
        return `${k}=${quoteArg(v)}`;
      });
      pre.push(`export ${assigns.join(' ')};`);
    }
  }
  if (cwd !== undefined) pre.push(`cd -- ${quoteArg(cwd)} || exit 1;`);
  return pre.length > 0 ? `${pre.join(' ')} ${cmd}` : cmd;
}
