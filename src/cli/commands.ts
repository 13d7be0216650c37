/**
 * The `ssh-tether` subcommands: doctor, exec, forward, get, put, shell.
 *
 * Exit codes: 0 success; 1 an error (connection, transfer...); 2 bad usage; `exec` passes the
 * remote exit status through (128 + signal number when killed by a signal, 255 when the command
 * could not run, as ssh(1)); `doctor` uses {@link DIAGNOSE_EXIT_CODES} (10 + failing step).
 *
 * @module cli/commands
 */
import { statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { basename, join } from 'node:path';
import { posix } from 'node:path';
import { finished } from 'node:stream/promises';
import { SshClient } from '../client.js';
import { SshError } from '../errors.js';
import { diagnose, DIAGNOSE_EXIT_CODES, DIAGNOSE_STEPS, type DiagnoseReport } from '../doctor/index.js';
import { targetClientOptions } from '../doctor/effective.js';
import { sanitizeLine, sanitizeText } from '../internal/sanitize.js';
import type { DirTransferSummary, SftpClient } from '../sftp/index.js';
import type { PtyOptions } from '../exec/exec.js';
import type { RemoteProcess } from '../exec/process.js';
import pkg from '../../package.json' with { type: 'json' };
import {
  CONNECT_HELP,
  CONNECT_OPTIONS,
  intArg,
  parseCliForward,
  parseCommandLine,
  targetOptionsFrom,
  UsageError,
  type CliForward,
  type CliTarget,
  type OptionSpecs,
  type OptionValues,
} from './args.js';
import { human, ProgressBar, progressLine } from './progress.js';

export { progressLine };

/** The package version, printed by `ssh-tether --version`. */
export const VERSION: string = pkg.version;

/** Where a command writes; injectable for tests of the formatting. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

function out(io: Io, s: string): void {
  io.stdout.write(`${s}\n`);
}
function err(io: Io, s: string): void {
  io.stderr.write(`${s}\n`);
}

/** An error's text for the terminal: the code, then the message, sanitized (it may quote the server). */
function describeError(e: unknown): string {
  if (e instanceof SshError) return `${e.code}: ${sanitizeText(e.message)}`;
  return sanitizeText(e instanceof Error ? e.message : String(e));
}

function needTarget(positionals: string[], usage: string): string {
  const t = positionals[0];
  if (t === undefined) throw new UsageError(`missing <host>\n\n${usage}`);
  return t;
}

/** Parses a command's arguments; an unknown option names the command's help. */
function parseFor(command: string, args: string[], options: OptionSpecs, stopAtHost = false): ReturnType<typeof parseCommandLine> {
  try {
    return parseCommandLine(args, options, stopAtHost);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`${e.message} (see ssh-tether ${command} --help)`);
    throw e;
  }
}

function str(v: OptionValues, name: string): string | undefined {
  const x = v[name];
  return typeof x === 'string' ? x : undefined;
}

/** A client for `target` with the connection flags; `close()` also removes the `-o` file. */
function makeClient(target: string, t: CliTarget, extra: { reconnect?: false } = {}): SshClient {
  const client = new SshClient({ ...targetClientOptions(target, t.options), ...extra });
  client.on('error', () => undefined);
  return client;
}

// ---------------------------------------------------------------- doctor

export const DOCTOR_HELP = `Usage: ssh-tether doctor [options] [user@]<host>

Checks the connection to <host> layer by layer and stops at the first failure:
${DIAGNOSE_STEPS.join(', ')}. Prints one line per step (mark, time, detail) and a hint for
what failed. Never writes known_hosts; runs only \`true\` on the server.

Options:
      --json                       print the report as JSON
      --forward [host:]port        also open a forward to host:port as seen from the server
                                   (host defaults to localhost)
      --sftp                       also start the sftp subsystem
      --step-timeout <ms>          bound on each network step (default 10000)
${CONNECT_HELP}

Exit status: 0 when every step passed, else 10 + the failing step:
${Object.entries(DIAGNOSE_EXIT_CODES)
  .map(([k, v]) => `  ${v} ${k}`)
  .join('\n')}
  1 internal error, 2 bad usage`;

/**
 * Formats a report as text lines: one per step, then hints. Details and hints quote the server
 * (its identification string, auth methods, messages): each is sanitized for the terminal.
 */
export function formatReport(r: DiagnoseReport): string {
  const lines = [`ssh-tether doctor ${sanitizeLine(r.target)}`];
  for (const s of r.steps) {
    lines.push(`  ${s.ok ? '✓' : '✗'} ${s.step.padEnd(8)} ${`${s.durationMs.toFixed(1)} ms`.padStart(10)}  ${sanitizeLine(s.detail, 2048)}`);
    if (s.hint !== undefined) lines.push(`      ${s.ok ? 'note' : 'hint'}: ${sanitizeLine(s.hint, 2048)}`);
  }
  lines.push(r.ok ? 'all checks passed' : `failed at ${r.failedStep ?? '?'} (exit code ${r.exitCode})`);
  return lines.join('\n');
}

/**
 * JSON for the terminal: `JSON.stringify` escapes C0 controls but leaves DEL, C1 controls
 * (U+009B is an 8-bit CSI) and bidi overrides raw; those are escaped as `\uXXXX` too.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

async function doctorCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFor('doctor', args, {
    ...CONNECT_OPTIONS,
    json: { type: 'boolean' },
    forward: { type: 'string' },
    sftp: { type: 'boolean' },
    'step-timeout': { type: 'string' },
  });
  if (values.help === true) {
    out(io, DOCTOR_HELP);
    return 0;
  }
  const target = needTarget(positionals, DOCTOR_HELP);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1] ?? ''}"\n\n${DOCTOR_HELP}`);
  let forward: { host?: string; port: number } | undefined;
  const fwd = str(values, 'forward');
  if (fwd !== undefined) {
    const m = /^(?:(.+):)?(\d+)$/.exec(fwd);
    if (!m?.[2]) throw new UsageError(`--forward: expected [host:]port, got "${fwd}"`);
    forward = { port: intArg(m[2], '--forward', 1, 65535), ...(m[1] !== undefined ? { host: m[1].replace(/^\[(.*)\]$/, '$1') } : {}) };
  }
  const stepTimeout = str(values, 'step-timeout');
  const t = targetOptionsFrom(values);
  try {
    const report = await diagnose(target, {
      ...t.options,
      ...(forward ? { forward } : {}),
      ...(values.sftp === true ? { sftp: true } : {}),
      ...(stepTimeout !== undefined ? { stepTimeoutMs: intArg(stepTimeout, '--step-timeout', 1, 600_000) } : {}),
    });
    out(io, values.json === true ? safeJson(report) : formatReport(report));
    return report.exitCode;
  } finally {
    t.cleanup();
  }
}

// ---------------------------------------------------------------- exec

export const EXEC_HELP = `Usage: ssh-tether exec [options] [user@]<host> [--] <command> [words...]

Runs a command on <host>, streams its stdout and stderr, feeds it this process's stdin (unless
-n), and exits with its exit status. Options go before <host>: everything after it is the
command, as with ssh (\`ssh-tether exec web1 uname -n\` runs \`uname -n\`).

The words after <host> are joined with spaces into one command line for the remote shell,
exactly as ssh(1) does: \`exec web1 ls -l '/a b'\` runs \`ls -l /a b\` (two arguments), and
\`exec web1 'ls / | wc -l'\` runs the pipeline. With --argv each word is instead passed as one
literal argument (quoted for a POSIX shell): \`exec --argv web1 ls -l '/a b'\` lists "/a b".

With -t the command runs on a pseudo-terminal (as ssh -tt): its stderr arrives merged into
stdout, and when stdin is a terminal it is put in raw mode (Ctrl-C, Ctrl-Z... go to the remote
command) and window size changes are passed on.

Options:
      --argv                       pass each word as one literal argument (no shell syntax)
  -n, --no-stdin                   do not read stdin (like ssh -n)
  -t, --tty                        allocate a pseudo-terminal (TERM and size from this terminal)
      --timeout <ms>               stop the command after this many ms
${CONNECT_HELP}

Exit status: the command's; 128 + signal number when it was killed by a signal;
255 when it could not run (connection, authentication...); 2 bad usage.`;

function signalExitCode(signal: string | null): number {
  if (signal === null) return 255;
  const n = (osConstants.signals as Record<string, number | undefined>)[signal.startsWith('SIG') ? signal : `SIG${signal}`];
  return n === undefined ? 255 : 128 + n;
}

/**
 * Parses the `exec` command line: options until the host, the words after it (a leading `--`
 * dropped) form the command: one line joined with spaces, or argv with `--argv`.
 */
export function parseExecArgs(args: string[]): { help: boolean; target: string | undefined; command: string | string[]; values: OptionValues } {
  const { values, positionals, rest } = parseFor(
    'exec',
    args,
    { ...CONNECT_OPTIONS, argv: { type: 'boolean' }, 'no-stdin': { type: 'boolean', short: 'n' }, tty: { type: 'boolean', short: 't' }, timeout: { type: 'string' } },
    true,
  );
  if (values.help === true) return { help: true, target: undefined, command: [], values };
  const target = needTarget(positionals, EXEC_HELP);
  if (rest.length === 0) throw new UsageError(`missing command after ${target}\n\n${EXEC_HELP}`);
  return { help: false, target, command: values.argv === true ? rest : rest.join(' '), values };
}

async function execCommand(args: string[], io: Io): Promise<number> {
  const { help, target, command, values } = parseExecArgs(args);
  if (help || target === undefined) {
    out(io, EXEC_HELP);
    return 0;
  }
  const timeout = str(values, 'timeout');
  const timeoutMs = timeout !== undefined ? intArg(timeout, '--timeout', 1, 2_147_483_647) : undefined;
  const t = targetOptionsFrom(values);
  const client = makeClient(target, t, { reconnect: false });
  if (values.tty === true) {
    try {
      const proc = await client.spawn(command, { pty: localPty(io), ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
      return await runOnTerminal(proc, io, values['no-stdin'] === true);
    } catch (e) {
      err(io, `ssh-tether: ${describeError(e)}`);
      return 255;
    } finally {
      await client.close();
      t.cleanup();
    }
  }
  try {
    const proc = await client.spawn(command, timeoutMs !== undefined ? { timeoutMs } : {});
    proc.stdout.pipe(io.stdout, { end: false });
    proc.stderr.pipe(io.stderr, { end: false });
    const stdin = io.stdin;
    if (values['no-stdin'] === true || stdin.isTTY === true) {
      proc.stdin.end();
    } else {
      stdin.pipe(proc.stdin);
    }
    try {
      const r = await proc.exited;
      await Promise.all([finished(proc.stdout).catch(() => undefined), finished(proc.stderr).catch(() => undefined)]);
      return r.exitCode ?? signalExitCode(r.signal);
    } finally {
      stdin.unpipe(proc.stdin);
      if (stdin !== process.stdin || stdin.isTTY !== true) (stdin as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
    }
  } catch (e) {
    err(io, `ssh-tether: ${describeError(e)}`);
    return 255;
  } finally {
    await client.close();
    t.cleanup();
  }
}

// ---------------------------------------------------------------- shell and exec -t

export const SHELL_HELP = `Usage: ssh-tether shell [options] [user@]<host>

Starts your login shell on <host>, as \`ssh <host>\` with no command does, and exits with its
exit status. When stdin is a terminal, the shell gets a pseudo-terminal of this terminal's size
(TERM from the environment, else xterm-256color), this terminal is put in raw mode (every key,
Ctrl-C included, goes to the remote shell) and restored on exit, and window size changes
(SIGWINCH) are passed on. When stdin is not a terminal, the shell reads commands from it without
a pseudo-terminal (as ssh does), unless -t.

Options:
  -t, --tty                        allocate a pseudo-terminal even when stdin is not a terminal
  -T, --no-tty                     never allocate a pseudo-terminal
${CONNECT_HELP}

Exit status: the shell's; 128 + signal number when it was killed by a signal;
255 when it could not run (connection, authentication...); 2 bad usage.`;

/** What the CLI reads from a terminal stream (Node's tty.ReadStream / tty.WriteStream). */
interface TerminalLike {
  isTTY?: boolean;
  columns?: number;
  rows?: number;
  setRawMode?: (raw: boolean) => unknown;
}

/** A usable `TERM` value from the environment (printable, no spaces), else undefined. */
function envTerm(): string | undefined {
  const term = process.env.TERM;
  return term !== undefined && /^[\x21-\x7e]{1,256}$/.test(term) ? term : undefined;
}

/** The size of this terminal (stdout, else stdin) in cells, when it is one. */
function terminalSize(io: Io): { cols: number; rows: number } | undefined {
  for (const s of [io.stdout as TerminalLike, io.stdin as TerminalLike]) {
    const { columns, rows } = s;
    if (s.isTTY === true && typeof columns === 'number' && typeof rows === 'number' && columns > 0 && rows > 0 && columns <= 65_535 && rows <= 65_535) {
      return { cols: columns, rows };
    }
  }
  return undefined;
}

/** The PTY to ask for: this terminal's TERM and size, else the library defaults. */
function localPty(io: Io): PtyOptions {
  const term = envTerm();
  return { ...(term !== undefined ? { term } : {}), ...(terminalSize(io) ?? {}) };
}

/**
 * Connects a process running on a PTY to this terminal: stdin (raw mode when it is a terminal)
 * to the process, its output to stdout, SIGWINCH to `resize()`. Resolves with the exit code to
 * return (the remote status; 128 + signal). Restores the terminal in every case.
 */
async function runOnTerminal(proc: RemoteProcess, io: Io, noStdin: boolean): Promise<number> {
  const stdin = io.stdin as NodeJS.ReadableStream & TerminalLike;
  proc.stdout.pipe(io.stdout, { end: false });
  proc.stderr.pipe(io.stderr, { end: false });
  const raw = !noStdin && stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  const onWinch = (): void => {
    const size = terminalSize(io);
    if (size !== undefined && proc.pty) {
      try {
        proc.resize(size.cols, size.rows);
      } catch {
        // the channel is closing
      }
    }
  };
  if (raw) stdin.setRawMode?.(true);
  process.on('SIGWINCH', onWinch);
  if (noStdin) proc.stdin.end();
  else {
    stdin.pipe(proc.stdin);
    stdin.resume();
  }
  try {
    const r = await proc.exited;
    await Promise.all([finished(proc.stdout).catch(() => undefined), finished(proc.stderr).catch(() => undefined)]);
    return r.exitCode ?? signalExitCode(r.signal);
  } finally {
    process.removeListener('SIGWINCH', onWinch);
    stdin.unpipe(proc.stdin);
    if (raw) stdin.setRawMode?.(false);
    stdin.pause();
  }
}

async function shellCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFor('shell', args, {
    ...CONNECT_OPTIONS,
    tty: { type: 'boolean', short: 't' },
    'no-tty': { type: 'boolean', short: 'T' },
  });
  if (values.help === true) {
    out(io, SHELL_HELP);
    return 0;
  }
  const target = needTarget(positionals, SHELL_HELP);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1] ?? ''}" (ssh-tether shell runs no command: use ssh-tether exec)\n\n${SHELL_HELP}`);
  if (values.tty === true && values['no-tty'] === true) throw new UsageError(`-t and -T exclude each other\n\n${SHELL_HELP}`);
  const wantPty = values['no-tty'] !== true && (values.tty === true || io.stdin.isTTY === true);
  const t = targetOptionsFrom(values);
  const client = makeClient(target, t, { reconnect: false });
  try {
    const proc = await client.shell({ pty: wantPty ? localPty(io) : false });
    return await runOnTerminal(proc, io, false);
  } catch (e) {
    err(io, `ssh-tether: ${describeError(e)}`);
    return 255;
  } finally {
    await client.close();
    t.cleanup();
  }
}

// ---------------------------------------------------------------- get / put

const TRANSFER_OPTIONS = `Options:
  -r, --recursive                  copy a whole directory tree
      --resume                     continue a partial transfer
      --no-progress                no progress bar and no summary line
${CONNECT_HELP}`;

export const GET_HELP = `Usage: ssh-tether get [options] [user@]<host>:<remote-path> <local-path>
       ssh-tether get [options] [user@]<host> <remote-path> <local-path>

Downloads a file (a directory tree with -r) over SFTP, as scp does: when <local-path> is an
existing directory the file is saved into it under its own name. A progress bar is drawn on
stdout when it is a terminal; a summary line goes to stderr. <host>: alone means the remote
home directory.

${TRANSFER_OPTIONS}

Exit status: 0 done, 1 failed (with -r: any file failed), 2 bad usage, 130 interrupted.`;

export const PUT_HELP = `Usage: ssh-tether put [options] <local-path> [user@]<host>:<remote-path>
       ssh-tether put [options] [user@]<host> <local-path> <remote-path>

Uploads a file (a directory tree with -r) over SFTP, as scp does: when <remote-path> is an
existing directory the file is saved into it under its own name. A progress bar is drawn on
stdout when it is a terminal; a summary line goes to stderr.

${TRANSFER_OPTIONS}

Exit status: 0 done, 1 failed (with -r: any file failed), 2 bad usage, 130 interrupted.`;

/**
 * Splits scp's `[user@]host:path` (a `[v6addr]` in brackets). `undefined` when `arg` is a local
 * path: no colon, or a `/` before the first colon (as scp's `colon()`).
 */
export function splitRemote(arg: string): { target: string; path: string } | undefined {
  let i = 0;
  const at = arg.indexOf('@');
  if (arg.startsWith('[') || (at >= 0 && arg[at + 1] === '[')) {
    const close = arg.indexOf(']');
    if (close < 0 || arg[close + 1] !== ':') return undefined;
    const target = arg.slice(0, close + 1).replace(/\[([^\]]*)\]$/, '$1');
    return { target, path: arg.slice(close + 2) };
  }
  for (; i < arg.length; i++) {
    const c = arg[i];
    if (c === '/') return undefined;
    if (c === ':') break;
  }
  if (i === 0 || i >= arg.length) return undefined;
  return { target: arg.slice(0, i), path: arg.slice(i + 1) };
}

/** The parsed `get`/`put` arguments. */
export interface TransferArgs {
  help: boolean;
  target: string;
  /** The source: remote for get, local for put. */
  src: string;
  /** The destination: local for get, remote for put. */
  dst: string;
  values: OptionValues;
}

/** Parses `get`/`put` arguments in the scp form (`host:path`) or the three-word form. */
export function parseTransferArgs(kind: 'get' | 'put', args: string[]): TransferArgs {
  const help = kind === 'get' ? GET_HELP : PUT_HELP;
  const { values, positionals } = parseFor(kind, args, {
    ...CONNECT_OPTIONS,
    recursive: { type: 'boolean', short: 'r' },
    resume: { type: 'boolean' },
    'no-progress': { type: 'boolean' },
  });
  if (values.help === true) return { help: true, target: '', src: '', dst: '', values };
  if (positionals.length === 3) {
    const [target = '', src = '', dst = ''] = positionals;
    return { help: false, target, src, dst, values };
  }
  if (positionals.length !== 2) {
    throw new UsageError(`expected ${kind === 'get' ? '<host>:<remote-path> <local-path>' : '<local-path> <host>:<remote-path>'}\n\n${help}`);
  }
  const [a = '', b = ''] = positionals;
  const remote = splitRemote(kind === 'get' ? a : b);
  if (remote === undefined) throw new UsageError(`${kind}: "${kind === 'get' ? a : b}" is not of the form [user@]host:path\n\n${help}`);
  const path = remote.path === '' ? '.' : remote.path;
  return kind === 'get' ? { help: false, target: remote.target, src: path, dst: b, values } : { help: false, target: remote.target, src: a, dst: path, values };
}

function localIsDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

async function remoteIsDir(sftp: SftpClient, p: string): Promise<boolean> {
  try {
    return (await sftp.stat(p)).type === 'directory';
  } catch {
    return false;
  }
}

/** Base name of a path for saving into a directory: trailing slashes ignored. */
function leaf(p: string, remote: boolean): string {
  const trimmed = p.replace(/\/+$/, '');
  return remote ? posix.basename(trimmed) : basename(trimmed);
}

function summaryOf(s: DirTransferSummary): string {
  return `${s.copied.length} file(s), ${s.transferredBytes} bytes${s.skipped.length > 0 ? `, ${s.skipped.length} skipped` : ''}${s.failed.length > 0 ? `, ${s.failed.length} failed` : ''}`;
}

async function transferCommand(kind: 'get' | 'put', args: string[], io: Io): Promise<number> {
  const a = parseTransferArgs(kind, args);
  if (a.help) {
    out(io, kind === 'get' ? GET_HELP : PUT_HELP);
    return 0;
  }
  const quiet = a.values['no-progress'] === true;
  const recursive = a.values.recursive === true;
  const bar = new ProgressBar(io.stdout, io.stdout.isTTY === true && !quiet);
  const stop = new AbortController();
  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
    bar.end();
    stop.abort();
  };
  process.once('SIGINT', onSigint);
  const t = targetOptionsFrom(a.values);
  const client = makeClient(a.target, t, { reconnect: false });
  let lastRate: number | undefined;
  try {
    const sftp = await client.sftp();
    const opts = {
      signal: stop.signal,
      onProgress: (p: Parameters<ProgressBar['update']>[0]) => {
        lastRate = p.bytesPerSecond;
        bar.update(p);
      },
      ...(a.values.resume === true ? { resume: true } : {}),
    };
    let dst = a.dst;
    if (kind === 'get' ? localIsDir(dst) : await remoteIsDir(sftp, dst)) {
      const name = leaf(a.src, kind === 'get');
      if (name !== '' && name !== '.' && name !== '..' && name !== '/') dst = kind === 'get' ? join(dst, name) : posix.join(dst, name);
    }
    const shown = kind === 'get' ? `${a.target}:${a.src} -> ${dst}` : `${a.src} -> ${a.target}:${dst}`;
    if (recursive) {
      const s = kind === 'get' ? await sftp.getDir(a.src, dst, opts) : await sftp.putDir(a.src, dst, opts);
      bar.end();
      for (const f of s.failed) err(io, `ssh-tether: ${sanitizeLine(f.path)}: ${describeError(f.error)}`);
      if (!quiet) err(io, `${sanitizeLine(shown)}: ${summaryOf(s)}`);
      return s.failed.length > 0 ? 1 : 0;
    }
    const r = kind === 'get' ? await sftp.get(a.src, dst, opts) : await sftp.put(a.src, dst, opts);
    bar.end();
    if (!quiet) {
      err(io, `${sanitizeLine(shown)}: ${r.transferredBytes} bytes${r.resumedFrom > 0 ? ` (resumed from ${r.resumedFrom})` : ''}${lastRate !== undefined ? `, ${human(lastRate)}/s` : ''}`);
    }
    return 0;
  } catch (e) {
    bar.end();
    err(io, `ssh-tether: ${interrupted ? 'interrupted' : describeError(e)}`);
    return interrupted ? 130 : 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await client.close();
    t.cleanup();
  }
}

// ---------------------------------------------------------------- forward

export const FORWARD_HELP = `Usage: ssh-tether forward [options] [user@]<host> (-L spec | -R spec | -D spec)...

Keeps port forwards up until SIGINT or SIGTERM, reconnecting when the link drops, and prints
every state change.

Forwards (repeatable, as ssh(1)):
  -L [bind_address:]port:host:hostport   local port -> host:hostport as seen from the server
  -R [bind_address:]port:host:hostport   server port -> host:hostport as seen from here
  -D [bind_address:]port                 local SOCKS5 proxy through the server
${CONNECT_HELP}

Exit status: 0 stopped by a signal, 1 failed, 2 bad usage.`;

/** Parses the `forward` command's arguments. */
export function parseForwardArgs(args: string[]): { help: boolean; target: string | undefined; forwards: CliForward[]; values: OptionValues } {
  const { values, positionals } = parseFor('forward', args, {
    ...CONNECT_OPTIONS,
    local: { type: 'string', short: 'L', multiple: true },
    remote: { type: 'string', short: 'R', multiple: true },
    dynamic: { type: 'string', short: 'D', multiple: true },
  });
  if (values.help === true) return { help: true, target: undefined, forwards: [], values };
  const target = needTarget(positionals, FORWARD_HELP);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1] ?? ''}"\n\n${FORWARD_HELP}`);
  const specs = (name: string): string[] => {
    const v = values[name];
    return Array.isArray(v) ? v : [];
  };
  const forwards = [
    ...specs('local').map((s) => parseCliForward('-L', s)),
    ...specs('remote').map((s) => parseCliForward('-R', s)),
    ...specs('dynamic').map((s) => parseCliForward('-D', s)),
  ];
  if (forwards.length === 0) throw new UsageError(`give at least one -L, -R or -D\n\n${FORWARD_HELP}`);
  return { help: false, target, forwards, values };
}

/** What the CLI reads from a forward handle. */
interface ForwardHandleLike {
  close(): Promise<void>;
}

function describeHandle(h: ForwardHandleLike, f: CliForward): string {
  const o = h as Partial<{ localHost: string; localPort: number; remoteHost: string; remotePort: number }>;
  if (f.type === 'remote') return `-R ${f.spec}${o.remotePort !== undefined ? ` (server port ${o.remotePort})` : ''}`;
  return `${f.type === 'local' ? '-L' : '-D'} ${f.spec}${o.localPort !== undefined ? ` (listening on ${o.localHost ?? '127.0.0.1'}:${o.localPort})` : ''}`;
}

async function forwardCommand(args: string[], io: Io): Promise<number> {
  const parsed = parseForwardArgs(args);
  if (parsed.help || parsed.target === undefined) {
    out(io, FORWARD_HELP);
    return 0;
  }
  const target = parsed.target;
  const t = targetOptionsFrom(parsed.values);
  const client = new SshClient(targetClientOptions(target, t.options));
  const now = (): string => new Date().toISOString();
  client.on('forward', ({ forward, state, cause }) => err(io, `[${now()}] forward ${forward.type} ${state}${cause ? `: ${cause.code}` : ''}`));
  client.on('state', ({ state, previous }) => err(io, `[${now()}] ${previous} -> ${state}`));
  client.on('disconnect', ({ cause }) => err(io, `[${now()}] disconnected: ${describeError(cause)}`));
  client.on('reconnecting', ({ attempt, delayMs, cause }) => err(io, `[${now()}] reconnecting (attempt ${attempt} in ${delayMs} ms; last: ${cause.code})`));
  client.on('error', (e) => err(io, `ssh-tether: ${describeError(e)}`));
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const handles: ForwardHandleLike[] = [];
  try {
    await client.connect({ retry: true, signal: stop.signal }); // autossh: wait for a server that is not up yet
    for (const f of parsed.forwards) {
      const h = f.type === 'local' ? await client.forwardLocal(f.options) : f.type === 'remote' ? await client.forwardRemote(f.options) : await client.forwardDynamic(f.options);
      handles.push(h);
      err(io, `forwarding ${describeHandle(h, f)}`);
    }
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const stopped = new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
    await Promise.race([closed, stopped]);
    if (!stop.signal.aborted) return 1;
    err(io, 'stopping');
    return 0;
  } catch (e) {
    err(io, `ssh-tether: ${describeError(e)}`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    for (const h of handles) await h.close().catch(() => undefined);
    await client.close();
    t.cleanup();
  }
}

// ---------------------------------------------------------------- main

export const MAIN_HELP = `Usage: ssh-tether <command> [options]

Commands:
  doctor <host>                        diagnose the connection, layer by layer
  exec <host> <command line...>        run a command (as ssh host command), pass its exit
                                       status through; --argv for literal arguments;
                                       -t on a pseudo-terminal (as ssh -t)
  forward <host> -L|-R|-D spec...      keep port forwards up (reconnects) until SIGINT/SIGTERM
  get <host>:<remote> <local>          download a file (-r: a directory) over SFTP
  put <local> <host>:<remote>          upload a file (-r: a directory) over SFTP
  shell <host>                         interactive login shell on a pseudo-terminal (as ssh host)

<host> is [user@]host-or-alias; ~/.ssh/config and known_hosts apply as with ssh.
Run \`ssh-tether <command> --help\` for a command's options; \`ssh-tether --version\` for the version.`;

/**
 * Runs the CLI with `args` (without `node` and the script) and resolves with the exit code.
 * Never throws: usage errors print the message (exit 2), other errors their message (exit 1).
 */
export async function runCli(args: string[], io: Io): Promise<number> {
  const [cmd, ...rest] = args;
  try {
    switch (cmd) {
      case 'doctor':
        return await doctorCommand(rest, io);
      case 'exec':
        return await execCommand(rest, io);
      case 'forward':
        return await forwardCommand(rest, io);
      case 'get':
      case 'put':
        return await transferCommand(cmd, rest, io);
      case 'shell':
        return await shellCommand(rest, io);
      case '-V':
      case '--version':
      case 'version':
        out(io, VERSION);
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        out(io, MAIN_HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(cmd.startsWith('-') ? `unknown option ${cmd} (see ssh-tether --help)` : `unknown command "${cmd}"\n\n${MAIN_HELP}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(io, `ssh-tether: ${sanitizeText(e.message, { maxLength: 65_536 })}`);
      return 2;
    }
    err(io, `ssh-tether: ${describeError(e)}`);
    return 1;
  }
}
