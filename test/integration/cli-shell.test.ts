// Issue 16 §3: `ssh-tether shell <host>` (raw-mode terminal, SIGWINCH -> window-change, exit code
// passed through), driven in a real terminal (tmux), and `ssh-tether exec -t`, against the shared
// real sshd.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedSshd } from '../helpers/shared.js';
import { waitFor, writeSshConfig } from '../helpers/common.js';
import { CLI, ensureCliBuilt } from '../helpers/cli.js';

const info = sharedSshd();

beforeAll(ensureCliBuilt, 120_000);

const dir = mkdtempSync(join(tmpdir(), 'tether-cli-shell-'));
const config = writeSshConfig(
  [
    {
      host: 'box',
      HostName: info.host,
      Port: info.port,
      User: info.username,
      IdentityFile: info.privateKeyPath,
      UserKnownHostsFile: info.knownHostsPath,
      GlobalKnownHostsFile: 'none',
      IdentityAgent: 'none',
    },
  ],
  dir,
);
const F = ['-F', config];
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sq = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;

/** Runs the built CLI with pipes; resolves when it exits (bounded, then SIGKILL). */
function cli(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (stdin !== undefined) child.stdin.end(stdin);
  });
}

describe('ssh-tether shell in a terminal (tmux)', () => {
  const sock = `tether-pty-${process.pid}`;
  const tmux = (...a: string[]): string => execFileSync('tmux', ['-L', sock, '-f', '/dev/null', ...a], { encoding: 'utf8', env: { ...process.env, SSH_AUTH_SOCK: '' } });
  const pane = (): string => {
    try {
      return tmux('capture-pane', '-p', '-J', '-t', 'sh', '-S', '-200');
    } catch (e) {
      let log = '';
      try {
        log = readFileSync(join(dir, 'shell.err'), 'utf8');
      } catch {
        // none
      }
      throw new Error(`tmux pane gone; CLI stderr: ${log}`, { cause: e });
    }
  };
  const until = (re: RegExp, ms = 15_000): Promise<boolean> => waitFor(() => re.test(pane()), ms);

  afterAll(() => {
    try {
      tmux('kill-server');
    } catch {
      // already gone
    }
  });

  it('runs the login shell on a PTY of the terminal size; resize, Ctrl-C and the exit code pass through', async () => {
    const line = `${[process.execPath, CLI, 'shell', ...F, 'box'].map(sq).join(' ')} 2>${sq(join(dir, 'shell.err'))}; echo "EXIT=$?"; echo "modes=$(stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' ')"; sleep 60`;
    tmux('new-session', '-d', '-s', 'sh', '-x', '100', '-y', '30', line);
    tmux('set-option', '-t', 'sh', 'remain-on-exit', 'on');
    const localTerm = tmux('show-options', '-gv', 'default-terminal').trim();
    // the remote prompt of the test user's /bin/sh
    expect(await until(/\$ $/m), pane()).toBe(true);

    tmux('send-keys', '-t', 'sh', 'echo "size=$(stty size) term=$TERM tty=$(tty)"', 'Enter');
    expect(await until(/^size=30 100 term=\S+ tty=\/dev\/pts\/\d+$/m), pane()).toBe(true);
    expect(pane()).toContain(`term=${localTerm} `);

    // SIGWINCH -> window-change
    tmux('resize-window', '-t', 'sh', '-x', '120', '-y', '40');
    await new Promise((r) => setTimeout(r, 300));
    tmux('send-keys', '-t', 'sh', 'echo "size2=$(stty size)"', 'Enter');
    expect(await until(/^size2=40 120$/m), pane()).toBe(true);

    // Raw mode: Ctrl-C reaches the remote foreground job, the CLI keeps running.
    tmux('send-keys', '-t', 'sh', 'sleep 30; echo "after=$?"', 'Enter');
    await new Promise((r) => setTimeout(r, 500));
    tmux('send-keys', '-t', 'sh', 'C-c');
    tmux('send-keys', '-t', 'sh', 'echo still-here', 'Enter');
    expect(await until(/^still-here$/m), pane()).toBe(true);
    expect(pane()).not.toContain('EXIT=');

    tmux('send-keys', '-t', 'sh', 'exit 3', 'Enter');
    expect(await until(/^EXIT=3$/m), pane()).toBe(true);
    // the local terminal is back in cooked mode (canonical input and echo on)
    expect(await until(/^modes=icanon echo $/m), pane()).toBe(true);
  }, 60_000);
});

describe('ssh-tether shell and exec -t with pipes', () => {
  it('shell without a terminal reads commands from stdin, no PTY, exit code passed through', async () => {
    const r = await cli(['shell', ...F, 'box'], 'echo "zero=$0"; tty; exit 3\n');
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('zero=-sh\nnot a tty\n');
  });

  it('shell -t forces a PTY', async () => {
    const r = await cli(['shell', '-t', ...F, 'box'], 'tty; exit 4\n');
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r\n/);
  });

  it('exec -t runs the command on a PTY (stderr merged into stdout) and passes the exit code', async () => {
    const r = await cli(['exec', '-t', '-n', ...F, 'box', '--', 'tty; echo to-err >&2; exit 5']);
    expect(r.code).toBe(5);
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\nto-err\r\n$/);
    expect(r.stderr).toBe('');
  });

  it('bad usage exits 2', async () => {
    expect((await cli(['shell', ...F])).code).toBe(2);
    expect((await cli(['shell', '-t', '-T', ...F, 'box'])).code).toBe(2);
    expect((await cli(['shell', ...F, 'box', 'uname'])).code).toBe(2);
    const help = await cli(['shell', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: ssh-tether shell');
  });
});
