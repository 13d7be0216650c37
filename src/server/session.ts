/**
 * Session channels of the in-process server: `exec` and `shell` run through `child_process` as
 * the server process's user (each in its own process group, as sshd gives each session), with
 * `env`, `signal` and `pty-req` requests (RFC 4254 sections 6.2-6.10).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as FS } from 'node:fs';
import { constants as OS } from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type ssh2 from 'ssh2';

/** Signal names of RFC 4254 section 6.10 (without the `SIG` prefix). */
export const RFC_SIGNALS: ReadonlySet<string> = new Set(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']);

/** Environment requests accepted per session, and the bound on one name/value. */
const MAX_ENV = 64;
const MAX_ENV_LEN = 4096;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

let scriptPath: string | null | undefined;

/** The util-linux `script` binary used for PTY sessions, or `null` when there is none. */
export function findScript(): string | null {
  if (scriptPath !== undefined) return scriptPath;
  scriptPath = null;
  for (const dir of ['/usr/bin', '/bin', ...(process.env.PATH ?? '').split(':')]) {
    if (!dir) continue;
    const p = path.join(dir, 'script');
    try {
      accessSync(p, FS.X_OK);
      scriptPath = p;
      break;
    } catch {
      // try the next directory
    }
  }
  return scriptPath;
}

/** What a session needs from the server. */
export interface SessionContext {
  readonly cwd: string;
  readonly shell: string;
  /** The environment every command starts with (before the client's `env` requests). */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** Called with every child process (so `stop()` can kill what is left). */
  track(child: ChildProcess): void;
  onExec(command: string): void;
  onShell(): void;
  onError(err: Error): void;
}

interface PtyInfo {
  term: string;
  rows: number;
  cols: number;
}

/** Sends pending channel data before exit-status (a zero-length write is a flush marker). */
function flush(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (w.destroyed || !w.writable) return resolve();
    const done = (): void => resolve();
    w.once('close', done);
    w.write(Buffer.alloc(0), () => {
      w.off('close', done);
      resolve();
    });
  });
}

/**
 * Serves the requests of one accepted session.
 *
 * `pty-req` is accepted only where util-linux `script` exists: the command (or shell) then runs
 * under `script -qfec`, which gives it a pseudo-terminal of the requested size and `TERM`.
 * Without `script` the request fails (the client sees a PTY failure, exec without a PTY works).
 * `window-change` requests are refused.
 */
export function serveSession(session: ssh2.Session, ctx: SessionContext): void {
  const env: Record<string, string> = {};
  let envCount = 0;
  let pty: PtyInfo | undefined;
  let child: ChildProcess | undefined;

  session.on('env', (accept, reject, info) => {
    const key = String(info.key);
    const val = String(info.val);
    if (envCount >= MAX_ENV || !ENV_NAME.test(key) || key.length > MAX_ENV_LEN || val.length > MAX_ENV_LEN || val.includes('\0')) {
      reject?.();
      return;
    }
    envCount++;
    env[key] = val;
    accept?.();
  });

  session.on('pty', (accept, reject, info) => {
    if (findScript() === null) {
      reject?.();
      return;
    }
    const term = typeof info.term === 'string' && /^[A-Za-z0-9._+-]{1,64}$/.test(info.term) ? info.term : 'vt100';
    const clamp = (n: unknown, d: number): number => (typeof n === 'number' && Number.isInteger(n) && n > 0 && n < 10_000 ? n : d);
    pty = { term, rows: clamp(info.rows, 24), cols: clamp(info.cols, 80) };
    accept?.();
  });

  session.on('window-change', (_accept, reject) => reject?.());

  session.on('signal', (accept, reject, info) => {
    const name = String(info.name).toUpperCase().replace(/^SIG/, '');
    if (!RFC_SIGNALS.has(name) || !child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
      reject?.();
      return;
    }
    try {
      // The whole session process group, as the command would see from a terminal.
      process.kill(-child.pid, `SIG${name}` as NodeJS.Signals);
      accept?.();
    } catch {
      reject?.();
    }
  });

  const start = (channel: ssh2.ServerChannel, command: string | undefined): void => {
    let file: string;
    let args: string[];
    const fullEnv: Record<string, string> = { ...ctx.baseEnv, ...env };
    if (pty) {
      const script = findScript();
      if (script === null) throw new Error('script disappeared');
      const inner = `stty rows ${pty.rows} cols ${pty.cols} 2>/dev/null; ${command === undefined ? `exec ${shellQuote(ctx.shell)} -i` : command}`;
      file = script;
      args = ['-qfec', inner, '/dev/null'];
      fullEnv.TERM = pty.term;
      fullEnv.SHELL = ctx.shell;
    } else {
      file = ctx.shell;
      args = command === undefined ? [] : ['-c', command];
    }
    const proc = spawn(file, args, { cwd: ctx.cwd, env: fullEnv, stdio: 'pipe', detached: true });
    child = proc;
    ctx.track(proc);
    let spawnError: Error | undefined;
    proc.on('error', (err) => {
      spawnError = err;
      ctx.onError(err);
    });
    proc.stdin.on('error', () => undefined);
    proc.stdout.on('error', () => undefined);
    proc.stderr.on('error', () => undefined);
    channel.on('error', () => undefined);
    channel.stderr.on('error', () => undefined);
    channel.pipe(proc.stdin);
    proc.stdout.pipe(channel, { end: false });
    proc.stderr.pipe(channel.stderr, { end: false });
    let channelClosed = false;
    channel.on('close', () => {
      channelClosed = true;
      // Like sshd without a PTY: the command's pipes close, the command itself is not killed
      // (it gets EOF / SIGPIPE). With a PTY, sshd hangs up the terminal: send SIGHUP.
      proc.stdin.destroy();
      proc.stdout.destroy();
      proc.stderr.destroy();
      if (pty && proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
        try {
          process.kill(-proc.pid, 'SIGHUP');
        } catch {
          // already gone
        }
      }
    });
    proc.on('close', (code, signal) => {
      if (channelClosed) return;
      void Promise.all([flush(channel), flush(channel.stderr)]).then(() => {
        if (channelClosed) return;
        try {
          if (signal !== null) {
            const name = signal.replace(/^SIG/, '');
            if (RFC_SIGNALS.has(name)) channel.exit(name, false, '');
            else channel.exit(128 + (OS.signals[signal] ?? 0));
          } else if (spawnError !== undefined || code === null || code < 0 || code > 255) {
            // could not start (as a shell's "command not found": 127)
            if (spawnError !== undefined && channel.stderr.writable) channel.stderr.write(`${spawnError.message}\n`);
            channel.exit(127);
          } else {
            channel.exit(code);
          }
        } catch (err) {
          ctx.onError(err as Error);
        }
        channel.end();
      });
    });
  };

  session.on('exec', (accept, reject, info) => {
    const command = String(info.command);
    if (command.includes('\0')) {
      reject?.();
      return;
    }
    const channel = accept();
    if (!channel) return;
    ctx.onExec(command);
    start(channel, command);
  });

  session.on('shell', (accept) => {
    const channel = accept();
    if (!channel) return;
    ctx.onShell();
    start(channel, undefined);
  });
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
