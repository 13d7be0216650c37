// Issue 11 item 4: a server that sends exit-status and then keeps the channel open (silent,
// trickling or flooding) must not hang exec past its drain bound, its timeoutMs, its signal or its
// maxBufferBytes, and the MaxSessions slot must come back. Issue 13 item 1: a kill exec that fails
// is a `warning` event, and the kill signals only the group the command reported.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, SshExecError } from '../../src/index.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { every, startHostileExecServer, type HostileExecServer } from '../helpers/hostile-exec-server.js';
import { rejection, settle } from './util.js';

const HOSTILE_PID = 4242;
const LATE_PID = 4343;

let server: HostileExecServer;
let ssh: SshClient;
const warnings: { keyword: string; message: string }[] = [];

beforeAll(async () => {
  server = await startHostileExecServer((command, ch, s) => {
    if (command.includes('snap()')) {
      // the client's kill exec: fail it
      ch.stderr.write('kill: Operation not permitted\x1b[2J\n');
      ch.exit(3);
      ch.end();
      ch.close();
      return;
    }
    if (command.endsWith('echo ok')) {
      ch.write('ok\n');
      ch.exit(0);
      ch.end();
      ch.close();
      return;
    }
    if (command.includes('mode=hold')) {
      ch.write('out\n');
      ch.exit(0);
      return; // never EOF, never CLOSE
    }
    if (command.includes('mode=trickle')) {
      ch.write('out\n');
      ch.exit(0);
      every(s, 100, () => ch.write('.'));
      return;
    }
    if (command.includes('mode=flood')) {
      ch.write('out\n');
      ch.exit(0);
      const chunk = Buffer.alloc(32 * 1024, 0x61);
      every(s, 5, () => ch.write(chunk));
      return;
    }
    if (command.includes('mode=late')) {
      // the exec reply comes late (the command already runs): print the pid, run on
      ch.stderr.write(`ssh-tether:pid=${LATE_PID}:group\n`);
      return;
    }
    if (command.includes('mode=pid-hang')) {
      ch.stderr.write(`ssh-tether:pid=${HOSTILE_PID}:group\n`);
      return; // never exits
    }
    ch.exit(127);
    ch.end();
    ch.close();
  }, { acceptDelayMs: (command) => (command.includes('mode=late') ? 1_500 : 0) });
  ssh = new SshClient(clientOptions(server, { maxSessions: 1, reconnect: false }));
  ssh.on('warning', (w) => warnings.push({ keyword: w.keyword, message: w.message }));
  await ssh.connect();
});

afterAll(async () => {
  await ssh?.close();
  await server?.close();
});

/** The slot came back: with maxSessions 1, a normal exec still runs, and the server saw our close. */
async function nextExecRuns(): Promise<void> {
  const r = await ssh.exec('echo ok', { timeoutMs: 10_000 });
  expect(r.stdout).toBe('ok\n');
  expect(ssh.health().openChannels).toBe(0);
}

describe('exit-status, then the channel is kept open', () => {
  it('silent: exec resolves with the status and the output so far, and closes the channel itself', async () => {
    const r = await settle(ssh.exec(': mode=hold', { timeoutMs: 20_000 }));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value).toMatchObject({ stdout: 'out\n', exitCode: 0, signal: null });
    const s = server.sessions.at(-1);
    expect(await waitFor(() => s?.closed === true, 5_000)).toBe(true);
    await nextExecRuns();
  });

  it('silent, no timeoutMs or signal: still bounded', async () => {
    const r = await ssh.exec('echo mode=hold');
    expect(r).toMatchObject({ stdout: 'out\n', exitCode: 0 });
    await nextExecRuns();
  });

  it('trickling output: timeoutMs wins, rejects ERR_SSH_TIMEOUT carrying the exit status and output', async () => {
    const err = await rejection(ssh.exec(': mode=trickle', { timeoutMs: 1_500 }));
    expect(err).toBeInstanceOf(SshExecError);
    expect(err.code).toBe('ERR_SSH_TIMEOUT');
    const result = (err as SshExecError).result;
    expect(result.exitCode).toBe(0);
    expect(String(result.stdout)).toMatch(/^out\n\.+$/);
    const s = server.sessions.at(-1);
    expect(await waitFor(() => s?.closed === true, 5_000)).toBe(true);
    await nextExecRuns();
  });

  it('trickling output: an abort signal wins with ERR_SSH_ABORTED', async () => {
    const ac = new AbortController();
    const p = ssh.exec(': mode=trickle', { signal: ac.signal });
    await waitFor(() => server.sessions.at(-1)?.command.includes('mode=trickle') === true, 5_000);
    setTimeout(() => ac.abort(), 1_200);
    const err = await rejection(p);
    expect(err.code).toBe('ERR_SSH_ABORTED');
    expect((err as SshExecError).result.exitCode).toBe(0);
    await nextExecRuns();
  });

  it('flooding output: maxBufferBytes wins with ERR_SSH_MAX_BUFFER', async () => {
    const err = await rejection(ssh.exec(': mode=flood', { maxBufferBytes: 200_000 }));
    expect(err.code).toBe('ERR_SSH_MAX_BUFFER');
    expect((err as SshExecError).result.exitCode).toBe(0);
    await nextExecRuns();
  });

  it('spawn: exited resolves on the status; kill() afterwards closes the channel', async () => {
    const proc = await ssh.spawn(': mode=hold');
    expect((await proc.exited).exitCode).toBe(0);
    const s = server.sessions.at(-1);
    proc.kill();
    expect(await waitFor(() => s?.closed === true, 5_000)).toBe(true);
    await nextExecRuns();
  });
});

describe('the kill exec', () => {
  it('an exec aborted while its request was in flight is still killed once its channel arrives', async () => {
    const ac = new AbortController();
    const p = ssh.exec(': mode=late', { signal: ac.signal });
    setTimeout(() => ac.abort(), 500);
    expect((await rejection(p)).code).toBe('ERR_SSH_ABORTED');
    expect(await waitFor(() => server.sessions.some((s) => s.command.includes('snap()') && s.command.includes(`kill -TERM -${LATE_PID} `)), 10_000)).toBe(true);
    const late = server.sessions.find((s) => s.command.includes('mode=late'));
    expect(await waitFor(() => late?.closed === true, 5_000)).toBe(true);
    warnings.length = 0;
    await nextExecRuns();
  });

  it('signals only the reported group (kill -TERM -PGID, no `--`); its failure is a warning event, with server text escaped', async () => {
    warnings.length = 0;
    const err = await rejection(ssh.exec(': mode=pid-hang', { timeoutMs: 1_000 }));
    expect(err.code).toBe('ERR_SSH_TIMEOUT');
    expect(await waitFor(() => warnings.length > 0, 10_000)).toBe(true);
    const kill = server.sessions.find((s) => s.command.includes('snap()') && s.command.includes(`awk -v r=${HOSTILE_PID} `));
    expect(kill?.command).toContain(`kill -TERM -${HOSTILE_PID} `);
    expect(kill?.command).not.toMatch(/kill -[A-Z]+ --/);
    expect(warnings[0]?.keyword).toBe('exec kill');
    expect(warnings[0]?.message).toContain(String(HOSTILE_PID));
    expect(warnings[0]?.message).toContain('Operation not permitted');
    expect(warnings[0]?.message).not.toContain('\x1b');
    await nextExecRuns();
  });
});
