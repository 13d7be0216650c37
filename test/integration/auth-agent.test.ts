// ssh-agent authentication, IdentitiesOnly and agent forwarding against a real sshd, with a
// real OpenSSH `ssh-agent` (spawned here, killed after) holding keys added by `ssh-add`.
// Oracles: `ssh-keygen -l` fingerprints, sshd's VERBOSE log, and `ssh-add -l` run on the server
// through the forwarded agent.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshClient, type SshClientOptions, type SshError } from '../../src/index.js';
import { startSshd, describeSshd, type SshdHandle } from '../helpers/sshd.js';
import { clientOptions, waitFor } from '../helpers/client.js';

const dir = mkdtempSync(join(tmpdir(), 'tether-agent-'));
const clients: SshClient[] = [];
const agents: ChildProcess[] = [];
let server: SshdHandle;
let strict: SshdHandle;

interface Key {
  path: string;
  fingerprint: string;
}
const made: Key[] = [];

function makeKey(name: string): Key {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path]);
  const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`], { encoding: 'utf8' }).split(/\s+/)[1] ?? '';
  const k = { path, fingerprint: fp };
  made.push(k);
  return k;
}

/** Starts `ssh-agent -D -a <sock>` and adds `keys` with `ssh-add`, in order. */
async function startAgent(keys: Key[]): Promise<string> {
  const sock = join(mkdtempSync(join(tmpdir(), 'tether-ag-')), 'agent.sock');
  const child = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  child.on('error', () => undefined);
  agents.push(child);
  if (!(await waitFor(() => existsSync(sock), 5_000))) throw new Error('ssh-agent did not start');
  for (const k of keys) execFileSync('ssh-add', ['-q', k.path], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
  return sock;
}

function client(s: SshdHandle, o: Partial<SshClientOptions>): SshClient {
  const c = new SshClient({ ...clientOptions(describeSshd(s), { reconnect: false }), identityFiles: [], ...o });
  clients.push(c);
  return c;
}

function authorize(s: SshdHandle, k: Key): void {
  appendFileSync(join(s.dir, 'authorized_keys'), readFileSync(`${k.path}.pub`, 'utf8'));
}

beforeAll(async () => {
  server = await startSshd();
  strict = await startSshd({ extraConfig: ['MaxAuthTries 3'] });
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});
afterAll(async () => {
  for (const a of agents) a.kill('SIGKILL');
  await server.remove();
  await strict.remove();
});

describe('ssh-agent', () => {
  it('authenticates with a key held only by the agent; sshd accepted that key', async () => {
    const k = makeKey('only-in-agent');
    authorize(server, k);
    const sock = await startAgent([k]);
    const ssh = client(server, { agent: sock });
    expect((await ssh.exec('echo via-agent')).stdout).toBe('via-agent\n');
    expect(await waitFor(() => server.logs().includes(k.fingerprint) && server.logs().includes('Accepted publickey'), 2_000)).toBe(true);
  });

  it('IdentitiesOnly: of two agent keys only the one matching the IdentityFile is offered (ERR_SSH_AUTH lists it)', async () => {
    const a = makeKey('io-a');
    const b = makeKey('io-b');
    const sock = await startAgent([a, b]);
    // Only the public half is on disk next to the IdentityFile path: the agent holds the key.
    const only = join(dir, 'io-b-pubonly');
    writeFileSync(`${only}.pub`, readFileSync(`${b.path}.pub`));
    const err = (await client(server, { agent: sock, identityFiles: [only], identitiesOnly: true })
      .connect()
      .catch((e: unknown) => e)) as SshError & { methodsTried: string[] };
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(err.methodsTried.join('\n')).toContain(b.fingerprint);
    expect(err.methodsTried.join('\n')).not.toContain(a.fingerprint);
    expect(err.message).toContain('IdentitiesOnly');

    // Without IdentitiesOnly both are offered, the matching one first (OpenSSH's order).
    const err2 = (await client(server, { agent: sock, identityFiles: [only] })
      .connect()
      .catch((e: unknown) => e)) as SshError & { methodsTried: string[] };
    expect(err2.code).toBe('ERR_SSH_AUTH');
    const fps = err2.methodsTried.map((m) => /SHA256:\S+/.exec(m)?.[0]);
    expect(fps).toEqual([b.fingerprint, a.fingerprint]);
    // sshd saw both keys offered (its log arrives through a pipe: give it a moment)
    expect(await waitFor(() => server.logs().includes(a.fingerprint) && server.logs().includes(b.fingerprint), 3_000)).toBe(true);
  });

  it('six agent keys against MaxAuthTries 3: ERR_SSH_AUTH, not retried; with IdentitiesOnly the right key gets in', async () => {
    const keys = Array.from({ length: 6 }, (_, i) => makeKey(`many-${i}`));
    const good = keys[5]!;
    authorize(strict, good);
    const sock = await startAgent(keys);
    const ssh = client(strict, { agent: sock, reconnect: {} });
    let retries = 0;
    ssh.on('reconnecting', () => retries++);
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError & { methodsTried: string[] };
    expect(err.code).toBe('ERR_SSH_AUTH');
    expect(err.retryable).toBe(false);
    expect(err.methodsTried.length).toBeLessThanOrEqual(3);
    expect(err.message).toMatch(/too many authentication failures/i);
    expect(retries).toBe(0);
    expect(ssh.state).toBe('closed');

    const ok = client(strict, { agent: sock, identityFiles: [good.path], identitiesOnly: true });
    expect((await ok.exec('echo in')).stdout).toBe('in\n');
  });

  it('an agent socket that does not exist is skipped: the IdentityFile still logs in', async () => {
    const ssh = client(server, { agent: join(dir, 'no-such-agent.sock'), identityFiles: [server.privateKeyPath] });
    await ssh.connect();
    expect(ssh.state).toBe('ready');
  });

  it('forwardAgent: the server sees the agent (ssh-add -l there lists its keys); off by default', async () => {
    const k = makeKey('fwd');
    authorize(server, k);
    const sock = await startAgent([k]);
    const fwd = client(server, { agent: sock, forwardAgent: true });
    const r = await fwd.exec('ssh-add -l -E sha256');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(k.fingerprint);

    const plain = client(server, { agent: sock });
    const r2 = await plain.exec('echo "[$SSH_AUTH_SOCK]"; ssh-add -l');
    expect(r2.stdout).toContain('[]');
    expect(r2.exitCode).not.toBe(0);
  });
});
