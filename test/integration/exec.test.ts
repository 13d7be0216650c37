import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { SshClient, SshExecError, SshError } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { waitFor } from '../helpers/wait.js';

const info = sharedSshd();

function newClient(extra: Record<string, unknown> = {}): SshClient {
  return new SshClient({
    host: info.host,
    port: info.port,
    username: info.username,
    identityFiles: [info.privateKeyPath],
    knownHostsFiles: [info.knownHostsPath],
    globalKnownHostsFiles: [],
    agent: false,
    ...extra,
  });
}

/** Remote processes of the test user whose command line contains `marker`. */
function remotePids(marker: string): number[] {
  try {
    const out = execFileSync('pgrep', ['-u', info.username, '-f', marker], { encoding: 'utf8' });
    return out.split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('exec against a real sshd', () => {
  let ssh: SshClient;
  beforeAll(async () => {
    ssh = newClient();
    await ssh.connect();
  });
  afterAll(async () => {
    await ssh.close();
  });

  it('runs a command line and reports stdout, stderr and exit code', async () => {
    const r = await ssh.exec('echo out; echo err >&2; exit 3');
    expect(r).toEqual({ stdout: 'out\n', stderr: 'err\n', exitCode: 3, signal: null });
  });

  it.each([0, 1, 4, 44])('reports exit code %i', async (code) => {
    const r = await ssh.exec(['sh', '-c', `exit ${code}`]);
    expect(r.exitCode).toBe(code);
    expect(r.signal).toBeNull();
  });

  it('reports a signal death', async () => {
    const r = await ssh.exec('kill -KILL $$');
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe('SIGKILL');
  });

  it('passes awkward argv literally', async () => {
    const args = ["it's", 'a;b', '$(id)', '`id`', 'new\nline', '*', '~', 'FOO=bar', '', ' spaced ', '-n', '"dq"', '\\', '!'];
    const r = await ssh.exec(['printf', '%s\\0', ...args], { encoding: 'buffer' });
    expect(r.stdout.toString('utf8').split('\0').slice(0, -1)).toEqual(args);
  });

  it('rejects NUL bytes and empty argv with TypeError', async () => {
    await expect(ssh.exec(['echo', 'a\0b'])).rejects.toBeInstanceOf(TypeError);
    await expect(ssh.exec([])).rejects.toBeInstanceOf(TypeError);
  });

  it('feeds stdin as string, Buffer and stream', async () => {
    expect((await ssh.exec('cat', { stdin: 'hello' })).stdout).toBe('hello');
    expect((await ssh.exec('wc -c', { stdin: Buffer.alloc(100_000, 1) })).stdout.trim()).toBe('100000');
    const { Readable } = await import('node:stream');
    expect((await ssh.exec('cat', { stdin: Readable.from(['a', 'b', 'c']) })).stdout).toBe('abc');
  });

  it('sets env and cwd', async () => {
    const r = await ssh.exec('printf "%s|%s" "$GREETING" "$(pwd)"', { env: { GREETING: "it's $HOME" }, cwd: '/tmp' });
    expect(r.stdout).toBe("it's $HOME|/tmp");
    const bad = await ssh.exec('echo never', { cwd: '/nonexistent/dir' });
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toBe('');
  });

  it('check: true rejects non-zero exits with ERR_SSH_EXIT carrying the result', async () => {
    const err = await ssh.exec('echo partial; exit 7', { check: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshExecError);
    expect((err as SshExecError).code).toBe('ERR_SSH_EXIT');
    expect((err as SshExecError).result).toMatchObject({ stdout: 'partial\n', exitCode: 7 });
  });

  it('timeout kills the remote process and carries the output so far', async () => {
    const marker = `tether-timeout-${process.pid}-${Date.now()}`;
    const err = await ssh.exec(`echo started; sleep 30; echo ${marker}`, { timeoutMs: 1_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshExecError);
    expect((err as SshExecError).code).toBe('ERR_SSH_TIMEOUT');
    expect((err as SshExecError).result.stdout).toBe('started\n');
    // the shell whose command line holds the marker is gone (killed as a process group)
    expect(await waitFor(() => remotePids(marker).length === 0, 5_000)).toBe(true);
  });

  it('abort kills the remote process with ERR_SSH_ABORTED', async () => {
    const marker = `tether-abort-${process.pid}-${Date.now()}`;
    const ac = new AbortController();
    const p = ssh.exec(`sleep 30; echo ${marker}`, { signal: ac.signal });
    expect(await waitFor(() => remotePids(marker).length > 0, 5_000)).toBe(true);
    ac.abort();
    const err = await p.catch((e: unknown) => e);
    expect((err as SshError).code).toBe('ERR_SSH_ABORTED');
    expect(await waitFor(() => remotePids(marker).length === 0, 5_000)).toBe(true);
  });

  it('enforces maxBufferBytes', async () => {
    const err = await ssh.exec('head -c 100000 /dev/zero', { maxBufferBytes: 1000 }).catch((e: unknown) => e);
    expect((err as SshError).code).toBe('ERR_SSH_MAX_BUFFER');
  });

  it('spawn streams with backpressure and reports the exit', async () => {
    const proc = await ssh.spawn('cat; echo done >&2; exit 5');
    const chunks: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => chunks.push(c));
    const errChunks: Buffer[] = [];
    proc.stderr.on('data', (c: Buffer) => errChunks.push(c));
    proc.stdin.end('via spawn');
    const r = await proc.exited;
    expect(Buffer.concat(chunks).toString()).toBe('via spawn');
    expect(Buffer.concat(errChunks).toString()).toBe('done\n');
    expect(r.exitCode).toBe(5);
  });

  it('rejects bad exec options with ERR_SSH_INVALID_ARG naming the field; one timeoutMs rule (whole ms, 1..2^31-1)', async () => {
    const err = await ssh.exec('true', { timeoutMs: 'soon' } as never).catch((e: unknown) => e);
    expect((err as SshError).code).toBe('ERR_SSH_INVALID_ARG');
    expect((err as Error).message).toContain('timeoutMs');
    for (const bad of [0, -1, 1.5, 2 ** 31, Infinity, Number.NaN]) {
      await expect(ssh.exec('true', { timeoutMs: bad })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'timeoutMs' });
      await expect(ssh.spawn('true', { timeoutMs: bad })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'timeoutMs' });
      await expect(ssh.shell({ timeoutMs: bad })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'timeoutMs' });
      await expect(ssh.connect({ timeoutMs: bad })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'timeoutMs' });
    }
    await expect(ssh.connect({ retyr: true } as never)).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'retyr', message: expect.stringContaining('retry') });
    await expect(ssh.connect({ signal: 'x' } as never)).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'signal' });
    // the boundaries are accepted
    expect((await ssh.exec('echo ok', { timeoutMs: 2 ** 31 - 1 })).stdout).toBe('ok\n');
    await ssh.connect({ timeoutMs: 1 });
  });

  it('runs 1,000 sequential execs without growth in listeners or active handles', async () => {
    const handles = (): number => process.getActiveResourcesInfo().length;
    const listeners = (): number => ssh.eventNames().reduce((n, e) => n + ssh.listenerCount(e), 0);
    await ssh.exec('true');
    const h0 = handles();
    const l0 = listeners();
    for (let i = 0; i < 1000; i++) {
      const r = await ssh.exec('true');
      expect(r.exitCode).toBe(0);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(listeners()).toBe(l0);
    expect(handles()).toBeLessThanOrEqual(h0 + 2);
    expect(ssh.health().openChannels).toBe(0);
  }, 120_000);
});

describe('spawn lifecycle', () => {
  it('kill() settles exited at once even when nobody reads the streams, and stops the command', async () => {
    const ssh = new SshClient({ host: info.host, port: info.port, username: info.username, identityFiles: [info.privateKeyPath], knownHostsFiles: [info.knownHostsPath], globalKnownHostsFiles: [], agent: false, sshConfig: false });
    const marker = `tether-spawnkill-${process.pid}-${Date.now()}`;
    const proc = await ssh.spawn(`sleep 30; echo ${marker}`);
    expect(await waitFor(() => remotePids(marker).length > 0, 5_000)).toBe(true);
    await waitFor(() => proc.pid !== undefined, 2_000);
    proc.kill();
    const err = (await proc.exited.catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_ABORTED');
    expect(await waitFor(() => remotePids(marker).length === 0, 5_000)).toBe(true);
    await ssh.close();
  });

  it('exited resolves on the exit status even when stdout is never read', async () => {
    const ssh = new SshClient({ host: info.host, port: info.port, username: info.username, identityFiles: [info.privateKeyPath], knownHostsFiles: [info.knownHostsPath], globalKnownHostsFiles: [], agent: false, sshConfig: false });
    const proc = await ssh.spawn('echo unread; exit 3');
    expect((await proc.exited).exitCode).toBe(3);
    await ssh.close();
  });
});
