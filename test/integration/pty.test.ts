// Issue 16 §3: commands on a pseudo-terminal (`pty` option of exec/spawn, as `ssh -t`),
// `RemoteProcess.resize()` (window-change) and `ssh.shell()`, against the shared real sshd. The
// server runs on this machine, so leftover processes are checked with the local `pgrep`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { SshClient, SshError, type RemoteProcess } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';

const info = sharedSshd();

/** Pids of the test user's processes whose command line contains `needle`. */
function pidsOf(needle: string): number[] {
  try {
    return execFileSync('pgrep', ['-u', info.username, '-f', needle], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A unique `sleep` argument, so the CHILD (not the wrapper shell) can be found with pgrep. */
function marker(): string {
  return `30.${randomInt(1e8, 1e9)}`;
}

/** Collects a stream's text; `waitFor(re)` resolves once it matches (bounded). */
function collect(proc: RemoteProcess): { text: () => string; until: (re: RegExp, ms?: number) => Promise<boolean> } {
  let text = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => (text += d));
  return { text: () => text, until: (re, ms = 10_000) => waitFor(() => re.test(text), ms) };
}

/** `p` settled within `ms`, else a failure naming `what` (the test must not hang). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
    }),
  ]);
}

describe('PTY and interactive shell (issue 16 §3, real sshd)', () => {
  let ssh: SshClient;
  const warnings: string[] = [];

  beforeAll(async () => {
    ssh = new SshClient(clientOptions(info));
    ssh.on('warning', (w) => warnings.push(`${w.keyword}: ${w.message}`));
    await ssh.connect();
  }, 30_000);

  afterAll(async () => {
    await ssh.close();
  });

  it('exec with pty: `tty` prints /dev/pts/N; without, `tty` says "not a tty"', async () => {
    const r = await ssh.exec('tty', { pty: true });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\n$/);
    expect(r.stderr).toBe('');
    const plain = await ssh.exec('tty');
    expect(plain.stdout).toBe('not a tty\n');
    expect(plain.exitCode).toBe(1);
  });

  it('the default terminal is xterm-256color, 80x24; stderr is merged into stdout', async () => {
    const r = await ssh.exec('echo "$TERM"; stty size; echo oops >&2', { pty: true });
    expect(r.stdout).toBe('xterm-256color\r\n24 80\r\noops\r\n');
    expect(r.stderr).toBe('');
  });

  it('`stty size` prints the requested rows and columns, and the new ones after resize()', async () => {
    const r = await ssh.exec('stty size', { pty: { rows: 33, cols: 101, term: 'vt100' } });
    expect(r.stdout).toBe('33 101\r\n');

    const p = await ssh.spawn('stty size; read -r x; stty size', { pty: { rows: 31, cols: 97 } });
    const out = collect(p);
    expect(await out.until(/31 97\r\n/)).toBe(true);
    p.resize(132, 43);
    p.stdin.write('go\n');
    const r2 = await within(p.exited, 10_000, 'stty after resize');
    expect(r2.exitCode).toBe(0);
    expect(out.text().match(/^\d+ \d+\r$/gm)).toEqual(['31 97\r', '43 132\r']);
    // The pid line of the stoppable wrapper came through the terminal and was removed.
    expect(out.text()).not.toContain('ssh-tether:pid=');
    expect(p.pid).toBeGreaterThan(1);
  });

  it('resize() and the pty option reject bad sizes naming the field', async () => {
    await expect(ssh.exec('true', { pty: { cols: 0 } })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', message: expect.stringMatching(/pty\.cols/) });
    await expect(ssh.exec('true', { pty: { modes: { NOPE: 1 } as never } })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG' });
    await expect(ssh.exec('true', { pty: { term: 'a b' } })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', message: expect.stringMatching(/pty\.term/) });
    const p = await ssh.spawn('read -r x', { pty: true });
    expect(() => p.resize(80.5, 24)).toThrow(expect.objectContaining({ code: 'ERR_SSH_INVALID_ARG', field: 'cols' }) as Error);
    expect(() => p.resize(80, 0)).toThrow(expect.objectContaining({ code: 'ERR_SSH_INVALID_ARG', field: 'rows' }) as Error);
    p.stdin.end('x\n');
    await within(p.exited, 10_000, 'read');
    const np = await ssh.spawn('true');
    expect(() => np.resize(80, 24)).toThrow(expect.objectContaining({ field: 'pty' }) as Error);
    await np.exited;
  });

  it('terminal modes are applied (ECHO off: input is not echoed)', async () => {
    const echoed = await ssh.exec('read -r x; echo "got $x"', { pty: true, stdin: 'abc\n' });
    expect(echoed.stdout).toContain('abc\r\n');
    expect(echoed.stdout).toContain('got abc\r\n');
    const quiet = await ssh.exec('read -r x; echo "got $x"', { pty: { modes: { ECHO: 0 } }, stdin: 'abc\n' });
    expect(quiet.stdout).toBe('got abc\r\n');
  });

  it('\\x03 written to the PTY interrupts `sleep 30` (SIGINT from the terminal)', async () => {
    const m = marker();
    const p = await ssh.spawn(`sleep ${m}`, { pty: true });
    expect(await waitFor(() => pidsOf(`sleep ${m}`).length > 0, 10_000)).toBe(true);
    p.stdin.write('\x03');
    const r = await within(p.exited, 10_000, 'sleep after ^C');
    // dash dies of the SIGINT too (sshd reports exit-signal INT); a shell that survives exits 130.
    expect(r.signal === 'SIGINT' || r.exitCode === 130).toBe(true);
    expect(pidsOf(`sleep ${m}`)).toEqual([]);
  });

  it('a timeout of a PTY command stops it: no `sleep` is left, even one ignoring INT, HUP and TERM', async () => {
    const m = marker();
    // The traps make the terminal's ^C and hang-up and the TERM useless: only the process-group
    // KILL of the wrapper (which needs the pid line, merged into stdout) can stop it.
    const run = ssh.exec(`trap '' INT HUP TERM; sleep ${m}; echo finished`, { pty: true, timeoutMs: 1_500 });
    const err: unknown = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_TIMEOUT');
    expect(await waitFor(() => pidsOf(`sleep ${m}`).length === 0, 15_000)).toBe(true);
    expect(warnings).toEqual([]);
  });

  it('a timeout of a PTY command first writes \\x03 to its terminal (the command sees SIGINT)', async () => {
    const m = marker();
    const flag = `/tmp/tether-pty-int-${m}`;
    // TERM ignored (by the shell and, inherited, by sleep): the INT trap can only run because of
    // the ^C on the terminal, whatever order the TERM and the kill exec arrive in.
    const err: unknown = await ssh.exec(`trap '' TERM; trap 'echo int > ${flag}; exit 7' INT; sleep ${m}`, { pty: true, timeoutMs: 1_500 }).catch((e: unknown) => e);
    expect((err as SshError).code).toBe('ERR_SSH_TIMEOUT');
    try {
      expect(await waitFor(() => existsSync(flag), 10_000)).toBe(true);
      expect(readFileSync(flag, 'utf8')).toBe('int\n');
      expect(await waitFor(() => pidsOf(`sleep ${m}`).length === 0, 15_000)).toBe(true);
    } finally {
      rmSync(flag, { force: true });
    }
  });

  it('exec with pty sends no EOF (the terminal stays open): \\x04 in stdin ends `cat`', async () => {
    const r = await ssh.exec('cat; echo "rc=$?"', { pty: { modes: { ECHO: 0 } }, stdin: 'abc\n\x04', timeoutMs: 10_000 });
    expect(r.stdout).toBe('abc\r\nrc=0\r\n');
  });

  it('an abort of a spawned PTY command stops it; its pid line is not in stdout', async () => {
    const m = marker();
    const ac = new AbortController();
    const p = await ssh.spawn(`echo started; trap '' INT HUP TERM; sleep ${m}`, { pty: true, signal: ac.signal });
    const out = collect(p);
    expect(await out.until(/started\r\n/)).toBe(true);
    expect(await waitFor(() => pidsOf(`sleep ${m}`).length > 0, 10_000)).toBe(true);
    ac.abort();
    await expect(within(p.exited, 10_000, 'aborted spawn')).rejects.toMatchObject({ code: 'ERR_SSH_ABORTED' });
    expect(await waitFor(() => pidsOf(`sleep ${m}`).length === 0, 15_000)).toBe(true);
    expect(out.text()).not.toContain('ssh-tether:pid');
  });

  it('shell() runs the login shell: `echo $0; exit 3` on stdin exits 3', async () => {
    const sh = await ssh.shell();
    expect(sh.pty).toBe(true);
    const out = collect(sh);
    sh.stdin.write('echo "zero=$0"; exit 3\n');
    const r = await within(sh.exited, 10_000, 'shell');
    expect(r.exitCode).toBe(3);
    // the login shell's argv[0] is "-sh" (the test user's shell is /bin/sh)
    expect(out.text()).toMatch(/zero=-sh\r\n/);
  });

  it('shell({ pty: false }) reads commands from stdin, with stderr separate', async () => {
    const sh = await ssh.shell({ pty: false });
    expect(sh.pty).toBe(false);
    const out = collect(sh);
    let errText = '';
    sh.stderr.setEncoding('utf8').on('data', (d: string) => (errText += d));
    sh.stdin.end('tty; echo to-err >&2; exit 4\n');
    const r = await within(sh.exited, 10_000, 'shell without pty');
    expect(r.exitCode).toBe(4);
    await waitFor(() => errText.length > 0, 2_000);
    expect(out.text()).toBe('not a tty\n');
    expect(errText).toBe('to-err\n');
  });

  it('shell() with a size and resize(): the shell sees both', async () => {
    const sh = await ssh.shell({ pty: { cols: 90, rows: 30 } });
    const out = collect(sh);
    sh.stdin.write('stty size\n');
    // (the prompt may come after the echoed input, so "30 90" need not start a line)
    expect(await out.until(/30 90\r\n/), out.text()).toBe(true);
    sh.resize(100, 50);
    sh.stdin.write('stty size; exit\n');
    const r = await within(sh.exited, 10_000, 'shell resize');
    expect(r.exitCode).toBe(0);
    expect(out.text()).toMatch(/50 100\r\n/);
  });

  it('shell() goes through the MaxSessions queue: 12 shells at once on a server allowing 10 all run', async () => {
    const shells = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const sh = await ssh.shell({ timeoutMs: 30_000 });
        const out = collect(sh);
        sh.stdin.write(`echo "n=$((${i} + 100))"; sleep 0.3; exit ${i}\n`);
        return { sh, out, i };
      }),
    );
    const results = await within(Promise.all(shells.map((s) => s.sh.exited)), 30_000, '12 shells');
    expect(results.map((r) => r.exitCode)).toEqual(shells.map((s) => s.i));
    for (const s of shells) expect(s.out.text()).toContain(`n=${s.i + 100}\r\n`);
  }, 40_000);

  it('an aborted shell is stopped and its channel closed', async () => {
    const ac = new AbortController();
    const sh = await ssh.shell({ signal: ac.signal });
    const out = collect(sh);
    const m = marker();
    sh.stdin.write(`sleep ${m}\n`);
    expect(await waitFor(() => pidsOf(`sleep ${m}`).length > 0, 10_000)).toBe(true);
    expect(await out.until(new RegExp(`sleep ${m}`))).toBe(true);
    ac.abort();
    await expect(within(sh.exited, 10_000, 'aborted shell')).rejects.toMatchObject({ code: 'ERR_SSH_ABORTED' });
    // ^C and the terminal hang-up end the foreground `sleep`.
    expect(await waitFor(() => pidsOf(`sleep ${m}`).length === 0, 15_000)).toBe(true);
  });

  it('close() stops an open shell and its foreground command (ERR_SSH_CLOSED)', async () => {
    const other = new SshClient(clientOptions(info));
    const sh = await other.shell();
    const out = collect(sh);
    const m = marker();
    sh.stdin.write(`sleep ${m}\n`);
    expect(await out.until(new RegExp(`sleep ${m}`))).toBe(true);
    expect(await waitFor(() => pidsOf(`sleep ${m}`).length > 0, 10_000)).toBe(true);
    await within(other.close(), 15_000, 'close with a shell open');
    await expect(sh.exited).rejects.toMatchObject({ code: 'ERR_SSH_CLOSED' });
    expect(await waitFor(() => pidsOf(`sleep ${m}`).length === 0, 15_000)).toBe(true);
  });

  it('bad shell options are typed errors naming the field', async () => {
    await expect(ssh.shell({ env: { 'A-B': 'x' } })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'env.A-B' });
    await expect(ssh.shell({ nope: 1 } as never)).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG' });
  });
});
