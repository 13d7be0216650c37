// ProxyJump against chains of real sshds.
//
// Three servers on three loopback addresses: A (127.0.0.1), B (127.0.0.2), C (127.0.0.3). Every
// loopback address is reachable from this process, so "reached through the hop" is shown two ways:
// - each hop may forward only to the next one (sshd_config `PermitOpen`): A only to B, B only
//   to C; asking A to reach C directly fails, so a working A->B->C chain must have used B;
// - the TCP connection a server accepted is traced to its owner: the client side of C's
//   connection (from C's log "Connection from ... port N") is a socket held by B's session
//   process, found through /proc/net/tcp and /proc/<pid>/fd, not by this test process.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, readlinkSync, writeFileSync, appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshClient, type SshClientOptions, type SshError } from '../../src/index.js';
import { freePort, startSshd, type SshdHandle } from '../helpers/sshd.js';
import { waitFor } from '../helpers/client.js';

let A: SshdHandle;
let B: SshdHandle;
let C: SshdHandle;
let knownHosts: string;
const dir = mkdtempSync(join(tmpdir(), 'tether-jump-'));
const clients: SshClient[] = [];

beforeAll(async () => {
  const portC = await freePort('127.0.0.3');
  const portB = await freePort('127.0.0.2');
  C = await startSshd({ listenAddress: '127.0.0.3', port: portC });
  B = await startSshd({ listenAddress: '127.0.0.2', port: portB, extraConfig: [`PermitOpen 127.0.0.3:${portC}`] });
  A = await startSshd({ extraConfig: [`PermitOpen 127.0.0.2:${portB}`] });
  // One user key (A's) logs in everywhere.
  for (const s of [B, C]) appendFileSync(join(s.dir, 'authorized_keys'), `${A.publicKey}\n`);
  knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, [A, B, C].map((s) => readFileSync(s.knownHostsPath, 'utf8')).join(''));
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});
afterAll(async () => {
  await Promise.all([A, B, C].map((s) => s?.remove()));
});

const spec = (s: SshdHandle): string => `${s.username}@${s.host}:${s.port}`;

function client(target: SshdHandle, jump: string | string[], o: Partial<SshClientOptions> = {}): SshClient {
  const c = new SshClient({
    host: target.host,
    port: target.port,
    username: target.username,
    identityFiles: [A.privateKeyPath],
    knownHostsFiles: [knownHosts],
    globalKnownHostsFiles: [],
    agent: false,
    sshConfig: false,
    jump,
    reconnect: { minDelayMs: 50, maxDelayMs: 300 },
    ...o,
  });
  clients.push(c);
  return c;
}

/** The client-side ports of the connections `server` accepted, from its log. */
function peerPorts(server: SshdHandle): number[] {
  const re = new RegExp(`Connection from 127\\.0\\.0\\.1 port (\\d+) on ${server.host.replace(/\./g, '\\.')} port ${server.port}`, 'g');
  return [...server.logs().matchAll(re)].map((m) => Number(m[1]));
}

/** Inode of the TCP socket with local port `local` connected to remote port `remote` (IPv4). */
function socketInode(local: number, remote: number): string | undefined {
  const hex = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex(local)}`) && f[2]?.endsWith(`:${hex(remote)}`)) return f[9];
  }
  return undefined;
}

function pidsHolding(inode: string, pids: number[]): number[] {
  return pids.filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

/** Whether the live connection into `server` was made by a session process of `hop`. */
async function connectedThrough(server: SshdHandle, hop: SshdHandle): Promise<boolean> {
  const hopPids = await hop.sessionPids();
  for (const port of peerPorts(server).reverse()) {
    const inode = socketInode(port, server.port);
    if (inode === undefined) continue;
    if (pidsHolding(inode, hopPids).length > 0 && pidsHolding(inode, [process.pid]).length === 0) return true;
  }
  return false;
}

describe('ProxyJump', () => {
  it('one hop (two sshds): exec on B through A; B was reached from A', async () => {
    const ssh = client(B, spec(A));
    expect((await ssh.exec('echo through-one')).stdout).toBe('through-one\n');
    expect(await connectedThrough(B, A)).toBe(true);
  });

  it('two hops (three sshds), as a comma list: exec on C through A then B', async () => {
    const ssh = client(C, `${spec(A)},${spec(B)}`);
    expect((await ssh.exec('echo through-two')).stdout).toBe('through-two\n');
    expect(await connectedThrough(C, B)).toBe(true);
    expect(await connectedThrough(B, A)).toBe(true);
  });

  it('a hop that may not forward to the target (PermitOpen) fails with ERR_SSH_CONNECT naming the hop', async () => {
    const ssh = client(C, [spec(A)], { reconnect: false });
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_CONNECT');
    expect(err.message).toContain(`jump host "${spec(A)}"`);
    expect(err.message).toContain(`127.0.0.3:${C.port}`);
  });

  it("each hop's host key is checked under its own name: an unknown hop B is ERR_SSH_HOST_KEY_UNKNOWN, not retried", async () => {
    const kh = join(dir, 'kh-without-b');
    writeFileSync(kh, [A, C].map((s) => readFileSync(s.knownHostsPath, 'utf8')).join(''));
    const ssh = client(C, [spec(A), spec(B)], { knownHostsFiles: [kh] });
    const err = (await ssh.connect().catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
    expect(err.message).toContain(`jump host "${spec(B)}"`);
    expect(err.message).toContain(B.hostKeyFingerprint);
    expect(ssh.state).toBe('closed');
  });

  it('killing the middle hop heals the chain: A is reused, B reconnected, exec works again', async () => {
    const ssh = client(C, [spec(A), spec(B)]);
    expect((await ssh.exec('echo before')).stdout).toBe('before\n');
    const aBefore = await A.sessionPids();
    const bBefore = await B.sessionPids();
    expect(aBefore).toHaveLength(1);
    expect(bBefore).toHaveLength(1);

    expect(await B.killSessions()).toBe(1);
    expect(await waitFor(() => ssh.health().reconnects >= 1 && ssh.state === 'ready', 15_000)).toBe(true);
    expect((await ssh.exec('echo after')).stdout).toBe('after\n');
    expect(await A.sessionPids()).toEqual(aBefore);
    const bAfter = await B.sessionPids();
    expect(bAfter).toHaveLength(1);
    expect(bAfter).not.toEqual(bBefore);
    expect(await connectedThrough(C, B)).toBe(true);
  });

  it("killing the target's session (the hop sends EOF on the channel) reconnects through the live hops", async () => {
    const ssh = client(C, [spec(A), spec(B)]);
    await ssh.connect();
    const aBefore = await A.sessionPids();
    const bBefore = await B.sessionPids();
    await C.killSessions();
    expect(await waitFor(() => ssh.health().reconnects >= 1 && ssh.state === 'ready', 15_000)).toBe(true);
    expect((await ssh.exec('echo target-again')).stdout).toBe('target-again\n');
    expect(await A.sessionPids()).toEqual(aBefore);
    expect(await B.sessionPids()).toEqual(bBefore);
  });

  it('killing the first hop rebuilds the whole chain', async () => {
    const ssh = client(C, [spec(A), spec(B)]);
    await ssh.connect();
    const aBefore = await A.sessionPids();
    await A.killSessions();
    expect(await waitFor(() => ssh.health().reconnects >= 1 && ssh.state === 'ready', 15_000)).toBe(true);
    expect((await ssh.exec('echo again')).stdout).toBe('again\n');
    expect(await A.sessionPids()).not.toEqual(aBefore);
  });

  it('hops are ssh_config aliases (ProxyJump in the target Host block), like ssh -J', async () => {
    const cfg = join(dir, 'ssh_config');
    writeFileSync(
      cfg,
      [
        'Host bastion',
        `  HostName ${A.host}`,
        `  Port ${A.port}`,
        `  User ${A.username}`,
        'Host inner',
        `  HostName ${B.host}`,
        `  Port ${B.port}`,
        `  User ${B.username}`,
        'Host target',
        `  HostName ${C.host}`,
        `  Port ${C.port}`,
        `  User ${C.username}`,
        '  ProxyJump bastion,inner',
        '',
      ].join('\n'),
    );
    const ssh = new SshClient({ host: 'target', sshConfig: cfg, identityFiles: [A.privateKeyPath], knownHostsFiles: [knownHosts], globalKnownHostsFiles: [], agent: false });
    clients.push(ssh);
    expect((await ssh.exec('echo alias')).stdout).toBe('alias\n');
    expect(await connectedThrough(C, B)).toBe(true);
  });

  it('close() closes the hop connections too', async () => {
    const ssh = client(C, [spec(A), spec(B)]);
    await ssh.connect();
    expect(await A.sessionPids()).toHaveLength(1);
    await ssh.close();
    expect(await waitFor(async () => (await A.sessionPids()).length === 0 && (await B.sessionPids()).length === 0, 5_000)).toBe(true);
  });
});
