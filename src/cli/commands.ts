/**
 * The `ssh-tether` subcommands: doctor, exec, forward, get, put.
 *
 * Exit codes: 0 success; 1 an error (connection, transfer...); 2 bad usage; `exec` passes the
 * remote exit status through (128 + signal number when killed by a signal, 255 when the command
 * could not run, as ssh(1)); `doctor` uses {@link DIAGNOSE_EXIT_CODES} (10 + failing step).
 *
 * @module cli/commands
 */
import { constants as osConstants } from 'node:os';
import { finished } from 'node:stream/promises';
import { SshClient } from '../client.js';
import { SshError } from '../errors.js';
import { diagnose, DIAGNOSE_EXIT_CODES, DIAGNOSE_STEPS, type DiagnoseReport } from '../doctor/index.js';
import { targetClientOptions } from '../doctor/effective.js';
import type { TransferProgress } from '../sftp/index.js';
import { CONNECT_HELP, CONNECT_OPTIONS, intArg, parse, parseCliForward, targetOptionsFrom, UsageError, type CliForward } from './args.js';

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

function needTarget(positionals: string[], usage: string): string {
  const t = positionals[0];
  if (t === undefined) throw new UsageError(`missing <host>\n\n${usage}`);
  return t;
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

/** Formats a report as text lines: one per step, then hints. */
export function formatReport(r: DiagnoseReport): string {
  const lines = [`ssh-tether doctor ${r.target}`];
  for (const s of r.steps) {
    lines.push(`  ${s.ok ? '✓' : '✗'} ${s.step.padEnd(8)} ${`${s.durationMs.toFixed(1)} ms`.padStart(10)}  ${s.detail}`);
    if (s.hint !== undefined) lines.push(`      ${s.ok ? 'note' : 'hint'}: ${s.hint}`);
  }
  lines.push(r.ok ? 'all checks passed' : `failed at ${r.failedStep ?? '?'} (exit code ${r.exitCode})`);
  return lines.join('\n');
}

async function doctorCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
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
  const opts = targetOptionsFrom(values);
  let forward: { host?: string; port: number } | undefined;
  if (values.forward !== undefined) {
    const m = /^(?:(.+):)?(\d+)$/.exec(values.forward);
    if (!m?.[2]) throw new UsageError(`--forward: expected [host:]port, got "${values.forward}"`);
    forward = { port: intArg(m[2], '--forward', 1, 65535), ...(m[1] !== undefined ? { host: m[1].replace(/^\[(.*)\]$/, '$1') } : {}) };
  }
  const report = await diagnose(target, {
    ...opts,
    ...(forward ? { forward } : {}),
    ...(values.sftp === true ? { sftp: true } : {}),
    ...(values['step-timeout'] !== undefined ? { stepTimeoutMs: intArg(values['step-timeout'], '--step-timeout', 1, 600_000) } : {}),
  });
  out(io, values.json === true ? JSON.stringify(report, null, 2) : formatReport(report));
  return report.exitCode;
}

// ---------------------------------------------------------------- exec

export const EXEC_HELP = `Usage: ssh-tether exec [options] [user@]<host> -- <command> [args...]

Runs <command> with its arguments quoted for a POSIX shell (they arrive literally), streams
its stdout and stderr, feeds it this process's stdin (unless -n), and exits with its exit status.

Options:
  -n, --no-stdin                   do not read stdin (like ssh -n)
      --timeout <ms>               stop the command after this many ms
${CONNECT_HELP}

Exit status: the command's; 128 + signal number when it was killed by a signal;
255 when it could not run (connection, authentication...); 2 bad usage.`;

function signalExitCode(signal: string | null): number {
  if (signal === null) return 255;
  const n = (osConstants.signals as Record<string, number | undefined>)[signal.startsWith('SIG') ? signal : `SIG${signal}`];
  return n === undefined ? 255 : 128 + n;
}

async function execCommand(args: string[], io: Io): Promise<number> {
  const dash = args.indexOf('--');
  const before = dash < 0 ? args : args.slice(0, dash);
  const argv = dash < 0 ? [] : args.slice(dash + 1);
  const { values, positionals } = parse(before, { ...CONNECT_OPTIONS, 'no-stdin': { type: 'boolean', short: 'n' }, timeout: { type: 'string' } });
  if (values.help === true) {
    out(io, EXEC_HELP);
    return 0;
  }
  const target = needTarget(positionals, EXEC_HELP);
  const command = dash < 0 ? positionals.slice(1) : [...positionals.slice(1), ...argv];
  if (command.length === 0) throw new UsageError(`missing command after --\n\n${EXEC_HELP}`);
  const timeoutMs = values.timeout !== undefined ? intArg(values.timeout, '--timeout', 1, 2_147_483_647) : undefined;
  const client = new SshClient({ ...targetClientOptions(target, targetOptionsFrom(values)), reconnect: false });
  client.on('error', () => undefined);
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
    err(io, `ssh-tether: ${e instanceof Error ? e.message : String(e)}`);
    return 255;
  } finally {
    await client.close();
  }
}

// ---------------------------------------------------------------- get / put

export const GET_HELP = `Usage: ssh-tether get [options] [user@]<host> <remote-path> <local-path>

Downloads one file over SFTP, with a progress bar on stderr when it is a terminal.

Options:
      --resume                     continue a partial download
      --no-progress                no progress bar
${CONNECT_HELP}

Exit status: 0 done, 1 failed, 2 bad usage.`;

export const PUT_HELP = `Usage: ssh-tether put [options] [user@]<host> <local-path> <remote-path>

Uploads one file over SFTP, with a progress bar on stderr when it is a terminal.

Options:
      --resume                     continue a partial upload
      --no-progress                no progress bar
${CONNECT_HELP}

Exit status: 0 done, 1 failed, 2 bad usage.`;

function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i] ?? 'B'}`;
}

/** One progress bar line: `[#####.....]  50% 1.0 MiB/2.0 MiB 3.0 MiB/s`. */
export function progressLine(p: TransferProgress, width = 30): string {
  const frac = p.totalBytes > 0 ? Math.min(1, p.transferredBytes / p.totalBytes) : 1;
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${`${Math.floor(frac * 100)}%`.padStart(4)} ${human(p.transferredBytes)}/${human(p.totalBytes)} ${human(p.bytesPerSecond)}/s`;
}

async function transferCommand(kind: 'get' | 'put', args: string[], io: Io): Promise<number> {
  const help = kind === 'get' ? GET_HELP : PUT_HELP;
  const { values, positionals } = parse(args, { ...CONNECT_OPTIONS, resume: { type: 'boolean' }, 'no-progress': { type: 'boolean' } });
  if (values.help === true) {
    out(io, help);
    return 0;
  }
  const target = needTarget(positionals, help);
  const [, src, dst, extra] = positionals;
  if (src === undefined || dst === undefined) throw new UsageError(`expected <host> <source> <destination>\n\n${help}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"\n\n${help}`);
  const tty = io.stderr.isTTY === true && values['no-progress'] !== true;
  let last: TransferProgress | undefined;
  const onProgress = (p: TransferProgress): void => {
    last = p;
    if (tty) io.stderr.write(`\r${progressLine(p)}`);
  };
  const client = new SshClient({ ...targetClientOptions(target, targetOptionsFrom(values)), reconnect: false });
  client.on('error', () => undefined);
  try {
    const sftp = await client.sftp();
    const opts = { onProgress, ...(values.resume === true ? { resume: true } : {}) };
    const r = kind === 'get' ? await sftp.get(src, dst, opts) : await sftp.put(src, dst, opts);
    if (tty) io.stderr.write('\n');
    if (values['no-progress'] !== true) {
      err(io, `${kind === 'get' ? `${target}:${src} -> ${dst}` : `${src} -> ${target}:${dst}`}: ${r.transferredBytes} bytes${r.resumedFrom > 0 ? ` (resumed from ${r.resumedFrom})` : ''}${last ? `, ${human(last.bytesPerSecond)}/s` : ''}`);
    }
    return 0;
  } catch (e) {
    if (tty) io.stderr.write('\n');
    err(io, `ssh-tether: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    await client.close();
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
export function parseForwardArgs(args: string[]): { help: boolean; target: string | undefined; forwards: CliForward[]; values: Parameters<typeof targetOptionsFrom>[0] } {
  const { values, positionals } = parse(args, {
    ...CONNECT_OPTIONS,
    local: { type: 'string', short: 'L', multiple: true },
    remote: { type: 'string', short: 'R', multiple: true },
    dynamic: { type: 'string', short: 'D', multiple: true },
  });
  if (values.help === true) return { help: true, target: undefined, forwards: [], values };
  const target = needTarget(positionals, FORWARD_HELP);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1] ?? ''}"\n\n${FORWARD_HELP}`);
  const forwards = [
    ...(values.local ?? []).map((s) => parseCliForward('-L', s)),
    ...(values.remote ?? []).map((s) => parseCliForward('-R', s)),
    ...(values.dynamic ?? []).map((s) => parseCliForward('-D', s)),
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
  const client = new SshClient(targetClientOptions(target, targetOptionsFrom(parsed.values)));
  client.on('forward', ({ forward, state, cause }) => err(io, `[${new Date().toISOString()}] forward ${forward.type} ${state}${cause ? `: ${cause.code}` : ''}`));
  client.on('state', ({ state, previous }) => err(io, `[${new Date().toISOString()}] ${previous} -> ${state}`));
  client.on('disconnect', ({ cause }) => err(io, `[${new Date().toISOString()}] disconnected: ${cause.code}: ${cause.message}`));
  client.on('reconnecting', ({ attempt, delayMs, cause }) => err(io, `[${new Date().toISOString()}] reconnecting (attempt ${attempt} in ${delayMs} ms; last: ${cause.code})`));
  client.on('error', (e) => err(io, `ssh-tether: ${e.message}`));
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const handles: ForwardHandleLike[] = [];
  try {
    await client.connect();
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
    err(io, `ssh-tether: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    for (const h of handles) await h.close().catch(() => undefined);
    await client.close();
  }
}

// ---------------------------------------------------------------- main

export const MAIN_HELP = `Usage: ssh-tether <command> [options]

Commands:
  doctor <host>                        diagnose the connection, layer by layer
  exec <host> -- <command> [args...]   run a command, pass its exit status through
  forward <host> -L|-R|-D spec...      keep port forwards up (reconnects) until SIGINT/SIGTERM
  get <host> <remote> <local>          download a file over SFTP
  put <host> <local> <remote>          upload a file over SFTP

<host> is [user@]host-or-alias; ~/.ssh/config and known_hosts apply as with ssh.
Run \`ssh-tether <command> --help\` for a command's options.`;

/**
 * Runs the CLI with `args` (without `node` and the script) and resolves with the exit code.
 * Never throws: usage errors print the usage (exit 2), other errors their message (exit 1).
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
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        out(io, MAIN_HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${cmd}"\n\n${MAIN_HELP}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(io, `ssh-tether: ${e.message}`);
      return 2;
    }
    err(io, `ssh-tether: ${e instanceof SshError ? `${e.code}: ` : ''}${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
