/**
 * Durable jobs (issue 16 §1) and follow (§2) against the shared OpenSSH sshd, link faults from the
 * fault proxy. Processes are checked on the server itself (same machine: `pgrep`), by a marker
 * unique to each test, so the check sees the command's own process, not a wrapper.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { SshClient, type SshClientOptions } from '../../src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { clientOptions } from '../helpers/client.js';
import { useClients, waitFor } from '../helpers/common.js';
import { sharedSshd } from '../helpers/shared.js';

const info = sharedSshd();
const jobsDir = `~/.ssh-tether/jobs-test-${process.pid}-${randomBytes(3).toString('hex')}`;
const track = useClients();
const proxies: FaultProxy[] = [];
const markers: string[] = [];

function marker(): string {
  const m = `${Math.floor(Math.random() * 1e6)}`;
  markers.push(m);
  return m;
}

/** Processes of the login user whose command line matches the regular expression `needle`. */
function pgrep(needle: string): number[] {
  try {
    return execFileSync('pgrep', ['-u', info.username, '-f', needle], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function client(overrides: Partial<SshClientOptions> = {}, via?: FaultProxy): SshClient {
  const c = new SshClient(
    clientOptions(
      info,
      { jobsDir, keepaliveIntervalMs: 300, keepaliveCountMax: 2, reconnect: { minDelayMs: 100, maxDelayMs: 400 }, ...overrides },
      via ? { host: via.host, port: via.port } : undefined,
    ),
  );
  track(c);
  return c;
}

async function proxy(): Promise<FaultProxy> {
  const p = await FaultProxy.start({ host: info.host, port: info.port });
  proxies.push(p);
  return p;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  // Nothing leaks: no job monitor of this file and no command it started is left on the server
  // (every test waits for or kills its jobs; a leftover is killed here, then reported).
  const leftovers = [...pgrep(jobsDir.slice(2)), ...markers.flatMap((m) => pgrep(`^sleep 3${m}$`))];
  for (const pid of leftovers) process.kill(pid, 'SIGKILL');
  const home = info.homeDir;
  execFileSync('rm', ['-rf', `${home}/${jobsDir.slice(2)}`]);
});

describe('jobs', () => {
  it('a job keeps running through a blackhole and 3 resets; wait() resolves exit 0; output() followed across the faults yields 1..200 once each, in order', async () => {
    const p = await proxy();
    const ssh = client({}, p);
    const job = await ssh.jobs.start('for i in $(seq 1 200); do echo $i; sleep 0.05; done', { name: `count-${marker()}` });
    expect(job.pid).toBeGreaterThan(1);
    const seen: Buffer[] = [];
    let next = 0;
    const reader = (async () => {
      for await (const { data, offset } of job.output({ follow: true, pollIntervalMs: 100 })) {
        expect(offset).toBe(next); // every byte once, in order
        next += data.length;
        seen.push(data);
      }
    })();
    const faults = (async () => {
      await sleep(1_000);
      p.blackhole();
      await sleep(1_500);
      p.resume();
      for (let i = 0; i < 3; i++) {
        await sleep(1_200);
        p.reset();
      }
    })();
    const [status] = await Promise.all([job.wait({ timeoutMs: 60_000, pollIntervalMs: 200 }), faults]);
    await reader;
    expect(status).toMatchObject({ state: 'exited', exitCode: 0, signal: null });
    expect(status.endedAt!.getTime()).toBeGreaterThanOrEqual(status.startedAt!.getTime());
    const lines = Buffer.concat(seen).toString('utf8').trimEnd().split('\n');
    expect(lines).toEqual(Array.from({ length: 200 }, (_, i) => String(i + 1)));
    expect(ssh.health().reconnects).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('a second client (fresh object) lists and reattaches to a job of a destroyed client; kill() stops the whole process group; the name is unique while it runs', async () => {
    const m = marker();
    const first = client();
    const job = await first.jobs.start(`sleep 3${m} | cat; echo never`, { name: `sleeper-${m}` });
    first.destroy();
    await sleep(300);
    expect(pgrep(`^sleep 3${m}$`)).toHaveLength(1); // survived its client

    const second = client();
    const listed = await second.jobs.list();
    expect(listed.map((j) => j.id)).toContain(job.id);
    const again = await second.jobs.get(`sleeper-${m}`);
    expect(again?.id).toBe(job.id);
    expect(again?.pid).toBe(job.pid);
    expect(await again!.status()).toMatchObject({ state: 'running' });
    await expect(second.jobs.start('true', { name: `sleeper-${m}` })).rejects.toMatchObject({ code: 'ERR_SSH_JOB', message: expect.stringContaining(job.id) });

    expect(await again!.kill()).toBe(true);
    const final = await again!.wait({ timeoutMs: 10_000, pollIntervalMs: 100 });
    expect(final.state).toBe('killed');
    expect(final.signal).toBe('TERM');
    // the child in the pipeline is gone too, not only the job's shell
    await waitFor(() => pgrep(`^sleep 3${m}$`).length === 0, 2_000);
    expect(pgrep(`^sleep 3${m}$`)).toEqual([]);
    expect(await again!.kill()).toBe(false);
    // the name is free again once the job ended
    const reuse = await second.jobs.start('true', { name: `sleeper-${m}` });
    expect((await reuse.wait({ timeoutMs: 10_000 })).exitCode).toBe(0);
    await again!.remove();
    expect(await second.jobs.get(job.id)).toBeUndefined();
  }, 60_000);

  it('a job killed from outside with kill -9 reports killed / KILL; stdin, env, cwd and exit codes; stderr apart', async () => {
    const m = marker();
    const ssh = client();
    const job = await ssh.jobs.start(`exec sleep 3${m}`);
    expect(pgrep(`^sleep 3${m}$`)).toEqual([job.pid]);
    process.kill(job.pid!, 'SIGKILL');
    expect(await job.wait({ timeoutMs: 10_000, pollIntervalMs: 100 })).toMatchObject({ state: 'killed', signal: 'KILL', exitCode: null });

    const io = await ssh.jobs.start('read a; echo "$a-$FOO-$(pwd)"; echo oops >&2; exit 7', { stdin: 'hello\n', env: { FOO: 'bar' }, cwd: '/tmp' });
    expect(await io.wait({ timeoutMs: 10_000, pollIntervalMs: 100 })).toMatchObject({ state: 'exited', exitCode: 7 });
    const out: Buffer[] = [];
    for await (const c of io.output()) out.push(c.data);
    expect(Buffer.concat(out).toString()).toBe('hello-bar-/tmp\n');
    const err: Buffer[] = [];
    for await (const c of io.output({ stream: 'stderr' })) err.push(c.data);
    expect(Buffer.concat(err).toString()).toBe('oops\n');
    const pruned = await ssh.jobs.prune();
    expect(pruned).toEqual(expect.arrayContaining([job.id, io.id]));
    expect(await ssh.jobs.get(io.id)).toBeUndefined();
  }, 60_000);

  it('a job whose monitor and command are gone without an exit record is lost', async () => {
    const m = marker();
    const ssh = client();
    const job = await ssh.jobs.start(`exec sleep 3${m}`);
    const mpid = Number(execFileSync('cat', [`${info.homeDir}/${jobsDir.slice(2)}/${job.id}/mpid`], { encoding: 'utf8' }));
    process.kill(mpid, 'SIGKILL'); // as a reboot would: monitor and command both gone
    process.kill(job.pid!, 'SIGKILL');
    await sleep(200);
    expect(await job.status()).toMatchObject({ state: 'lost', exitCode: null, signal: null });
  });

  it('bad input: empty command, NUL, a name with "/", unknown option, a missing cwd, an uncreatable job directory', async () => {
    const ssh = client();
    await expect(ssh.jobs.start('')).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'command' });
    await expect(ssh.jobs.start('echo \0')).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'command' });
    await expect(ssh.jobs.start('true', { name: 'a/b' })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'name' });
    await expect(ssh.jobs.start('true', { nmae: 'x' } as never)).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', message: expect.stringContaining("'nmae'") });
    await expect(ssh.jobs.start('true', { timeoutMs: 0 })).rejects.toMatchObject({ code: 'ERR_SSH_INVALID_ARG', field: 'timeoutMs' });
    await expect(ssh.jobs.start('true', { cwd: '/nonexistent/dir' })).rejects.toMatchObject({ code: 'ERR_SSH_JOB', message: expect.stringContaining('/nonexistent/dir') });
    const bad = client({ jobsDir: '/proc/ssh-tether-jobs' });
    await expect(bad.jobs.start('true')).rejects.toMatchObject({ code: 'ERR_SSH_JOB', message: expect.stringMatching(/cannot create the job directory.*(No such file|Permission|denied|not permitted)/i) });
  });
});

describe('follow', () => {
  const file = (name: string): string => `${info.homeDir}/follow-${process.pid}-${name}`;

  it('a file written at ~200 lines/s for 10 s, the link reset 5 times and the file rotated by rename twice: every line once, in order', async () => {
    const p = await proxy();
    const ssh = client({}, p);
    const writer = client();
    const path = file('rotate.log');
    // The writer runs on the server as a job: it appends by name, so after a rename it writes the new file.
    const w = await writer.jobs.start(
      `i=1; while [ $i -le 2000 ]; do echo "line $i" >> ${path}; i=$((i+1)); sleep 0.005; ` +
        `if [ $i -eq 700 ] || [ $i -eq 1400 ]; then mv ${path} ${path}.$i; fi; done`,
    );
    const got: string[] = [];
    const ac = new AbortController();
    const reader = (async () => {
      try {
        for await (const { line } of ssh.follow(path, { from: 'start', signal: ac.signal, pollIntervalMs: 100 })) {
          got.push(line);
          if (got.length === 2000) break;
        }
      } catch (err) {
        if (!ac.signal.aborted) throw err;
      }
    })();
    for (let i = 0; i < 5; i++) {
      await sleep(1_500);
      p.reset();
    }
    await w.wait({ timeoutMs: 60_000 });
    const deadline = setTimeout(() => ac.abort(), 30_000);
    await reader;
    clearTimeout(deadline);
    expect(got.length).toBe(2000);
    expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => `line ${i + 1}`));
    expect(ssh.health().reconnects).toBeGreaterThanOrEqual(5);
  }, 90_000);

  it("from 'end', from an offset, a file that appears later, a RegExp filter, truncation in place", async () => {
    const ssh = client();
    const path = file('misc.log');
    execFileSync('sh', ['-c', `printf 'old 1\\nold 2\\n' > ${path}; chown ${info.username} ${path}`]);
    const take = async (it: AsyncIterable<{ line: string; offset: number }>, n: number, act?: () => void): Promise<{ line: string; offset: number }[]> => {
      const out: { line: string; offset: number }[] = [];
      let acted = false;
      for await (const l of it) {
        out.push(l);
        if (out.length === n) break;
        if (!acted && act) {
          acted = true;
          act();
        }
      }
      return out;
    };
    // from 'end': only what is appended after the start (a writer appends until two lines arrived)
    const ac = new AbortController();
    const fromEnd = take(ssh.follow(path, { from: 'end', signal: ac.signal, pollIntervalMs: 50 }), 2);
    let k = 0;
    let appended = true;
    fromEnd.then(
      () => (appended = false),
      () => (appended = false),
    );
    while (appended && k < 200) {
      execFileSync('sh', ['-c', `printf 'new ${++k}\\n' >> ${path}`]);
      await sleep(100);
    }
    const content = execFileSync('cat', [path], { encoding: 'utf8' });
    const got = await fromEnd;
    expect(got.map((l) => l.line)).toEqual([`new ${Number(got[0]!.line.slice(4))}`, `new ${Number(got[0]!.line.slice(4)) + 1}`]);
    for (const l of got) expect(content.slice(l.offset, l.offset + l.line.length + 1)).toBe(`${l.line}\n`);
    // from an offset
    expect(await take(ssh.follow(path, { from: 6, pollIntervalMs: 50 }), 2)).toEqual([
      { line: 'old 2', offset: 6 },
      { line: 'new 1', offset: 12 },
    ]);
    expect(await take(ssh.follow(path, { from: 'start', pollIntervalMs: 50 }), 1)).toEqual([{ line: 'old 1', offset: 0 }]);
    // a RegExp filter
    expect((await take(ssh.follow(path, { from: 'start', filter: /^new/, pollIntervalMs: 50 }), 2)).map((l) => l.line)).toEqual(['new 1', 'new 2']);
    // a file that appears later: waited for, read from its start
    const later = file('later.log');
    const appears = take(ssh.follow(later, { from: 'end', pollIntervalMs: 50 }), 2);
    await sleep(400);
    execFileSync('sh', ['-c', `printf 'first\\nsecond\\n' > ${later}`]);
    expect((await appears).map((l) => l.line)).toEqual(['first', 'second']);
    // truncation in place (copytruncate): starts again at 0
    const trunc = file('trunc.log');
    execFileSync('sh', ['-c', `printf 'a long first line\\n' > ${trunc}`]);
    // truncated and rewritten once the first line has arrived
    const lines = take(ssh.follow(trunc, { from: 'start', pollIntervalMs: 50 }), 2, () =>
      execFileSync('sh', ['-c', `: > ${trunc}; sleep 0.3; printf 'x\\n' >> ${trunc}`]),
    );
    expect(await lines).toEqual([
      { line: 'a long first line', offset: 0 },
      { line: 'x', offset: 0 },
    ]);
    // bad input at the call
    expect(() => ssh.follow('', {})).toThrow(expect.objectContaining({ code: 'ERR_SSH_INVALID_ARG' }));
    expect(() => ssh.follow(path, { from: -1 })).toThrow(expect.objectContaining({ code: 'ERR_SSH_INVALID_ARG', field: 'from' }));
    ac.abort();
  }, 60_000);
});
