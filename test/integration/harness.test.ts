/**
 * Self-test of the test harness: the shared sshd from globalSetup, and private servers started
 * with startSshd(). The OpenSSH client is the oracle (keys, known_hosts, login shell).
 */
import { execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { opensshArgs, startSshd, type SshdHandle, type SshdInfo } from '../helpers/sshd.js';
import { sharedSshd } from '../helpers/shared.js';
import { FaultProxy } from '../helpers/fault-proxy.js';

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runFile(file: string, args: string[], timeoutMs = 20_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function ssh(info: Pick<SshdInfo, 'host' | 'port' | 'username' | 'privateKeyPath' | 'knownHostsPath'>, command: string): Promise<RunResult> {
  return runFile('ssh', [...opensshArgs(info), info.host, command]);
}

/** Runs a long ssh session; resolves once the remote printed `started`. */
function longSession(info: SshdInfo | SshdHandle): Promise<{ exited: Promise<number | null>; kill(): void }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...opensshArgs(info), info.host, 'echo started; exec sleep 15'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('started')) resolve({ exited, kill: () => child.kill('SIGKILL') });
    });
    void exited.then((code) => reject(new Error(`ssh exited early (${String(code)}): ${err}`)));
  });
}

describe('shared sshd (globalSetup)', () => {
  const info = sharedSshd();

  it('logs in with the key, strict known_hosts and /bin/sh', async () => {
    const r = await ssh(info, 'echo ok; getent passwd "$(id -un)" | cut -d: -f7; id -un; pwd');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual(['ok', '/bin/sh', info.username, info.homeDir, '']);
  });

  it('describes itself consistently with the OpenSSH tools', async () => {
    // known_hosts holds the host key under [host]:port, found by ssh-keygen -F
    const found = await runFile('ssh-keygen', ['-F', `[${info.host}]:${info.port}`, '-f', info.knownHostsPath]);
    expect(found.code).toBe(0);
    expect(found.stdout).toContain(info.hostPublicKey);
    // the fingerprint is the one ssh-keygen prints for the host key
    const fp = await runFile('ssh-keygen', ['-l', '-E', 'sha256', '-f', info.hostKeyPath]);
    expect(fp.stdout.split(' ')[1]).toBe(info.hostKeyFingerprint);
    // and the one the server presents: ssh-keyscan sees the same key
    const scan = await runFile('ssh-keyscan', ['-t', 'ed25519', '-p', String(info.port), info.host]);
    expect(scan.stdout).toContain(info.hostPublicKey);
    const key = await readFile(info.privateKeyPath, 'utf8');
    expect(key).toContain('OPENSSH PRIVATE KEY');
    expect(info.publicKey).toMatch(/^ssh-ed25519 /);
  });

  it('rejects a host key that is not in known_hosts (StrictHostKeyChecking works)', async () => {
    const other = await startSshd();
    try {
      // other's server, but the shared server's known_hosts: a different key for another port
      const r = await ssh({ ...other, knownHostsPath: info.knownHostsPath }, 'echo ok');
      expect(r.code).toBe(255);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/Host key verification failed/);
    } finally {
      await other.remove();
    }
  });

  it('serves SFTP in the home directory', async () => {
    const name = `harness-${process.pid}-${Date.now()}.txt`;
    const r = await runFile('sh', ['-c', `printf 'put /etc/hostname ${name}\\nls -1 ${name}\\nrm ${name}\\n' | sftp ${opensshArgs(info).map((a) => `'${a}'`).join(' ')} -b - ${info.host}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(name);
  });
});

describe('startSshd', () => {
  const servers: SshdHandle[] = [];
  const proxies: FaultProxy[] = [];
  afterEach(async () => {
    for (const p of proxies.splice(0)) await p.close();
    for (const s of servers.splice(0)) await s.remove();
  });
  async function server(...args: Parameters<typeof startSshd>): Promise<SshdHandle> {
    const s = await startSshd(...args);
    servers.push(s);
    return s;
  }

  it('stop() drops live connections and refuses new ones; start() comes back on the same port with the same key', async () => {
    const s = await server();
    const port = s.port;
    const firstPid = s.pid;
    expect(s.running).toBe(true);
    const session = await longSession(s);
    expect(await s.sessionPids()).toHaveLength(1);

    await s.stop();
    expect(s.running).toBe(false);
    expect(s.pid).toBeUndefined();
    expect(await session.exited).toBe(255); // the connection dropped
    const down = await ssh(s, 'echo ok');
    expect(down.code).toBe(255);
    expect(down.stderr).toMatch(/Connection refused/);
    await s.stop(); // idempotent

    await s.start();
    expect(s.running).toBe(true);
    expect(s.port).toBe(port);
    expect(s.pid).not.toBe(firstPid);
    const up = await ssh(s, 'echo ok'); // StrictHostKeyChecking=yes: same host key
    expect(up.stdout).toBe('ok\n');
    expect(s.logs()).toMatch(new RegExp(`Server listening on 127\\.0\\.0\\.1 port ${port}\\.[\\s\\S]*Server listening on 127\\.0\\.0\\.1 port ${port}\\.`));
  });

  it('sessionPids() names the process whose death drops that connection; killSessions() drops all', async () => {
    const s = await server();
    const a = await longSession(s);
    const b = await longSession(s);
    const pids = await s.sessionPids();
    expect(pids).toHaveLength(2);
    process.kill(pids[0]!, 'SIGKILL');
    // exactly one of the two sessions drops
    const first = await Promise.race([a.exited.then(() => 'a'), b.exited.then(() => 'b')]);
    const survivor = first === 'a' ? b : a;
    // the killed connection's monitor exits a moment after the client saw the drop
    for (let i = 0; i < 500 && (await s.sessionPids()).length !== 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await s.sessionPids()).toHaveLength(1);
    expect(await s.killSessions()).toBe(1);
    expect(await survivor.exited).toBe(255);
    expect(s.running).toBe(true);
    expect((await ssh(s, 'echo ok')).stdout).toBe('ok\n');
  });

  it('applies extraConfig, and an extra line overrides our default for that keyword', async () => {
    const s = await server({ extraConfig: ['MaxSessions 2', 'AllowTcpForwarding no'] });
    const t = await runFile('/usr/sbin/sshd', ['-T', '-f', s.configPath]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^maxsessions 2$/m);
    expect(t.stdout).toMatch(/^allowtcpforwarding no$/m);
    expect((await ssh(s, 'echo ok')).stdout).toBe('ok\n');
    // The forwarding refusal is real: ssh -W (a direct-tcpip channel) is denied.
    const w = await runFile('ssh', [...opensshArgs(s), '-W', `127.0.0.1:${s.port}`, s.host]);
    expect(w.code).toBe(255);
    expect(s.logs()).toMatch(/refused local port forward|administratively prohibited|not permitted/i);
  });

  it('remove() stops the server and deletes its dir', async () => {
    const s = await startSshd();
    await s.remove();
    expect(s.running).toBe(false);
    await expect(readFile(s.configPath)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(s.start()).rejects.toThrow(/removed/);
  });

  it('rejects a non-loopback listen address', async () => {
    await expect(startSshd({ listenAddress: '0.0.0.0' })).rejects.toThrow(/loopback/);
  });

  it('reports an sshd that cannot start with its stderr', async () => {
    await expect(startSshd({ extraConfig: ['NoSuchKeyword yes'] })).rejects.toThrow(/Bad configuration option|NoSuchKeyword/);
  });

  it('reuses a host key: a second server has the same identity', async () => {
    const a = await server();
    const b = await server({ hostKeyPath: a.hostKeyPath, listenAddress: '127.0.0.2' });
    expect(b.host).toBe('127.0.0.2');
    expect(await readFile(b.knownHostsPath, 'utf8')).toBe(`[127.0.0.2]:${b.port} ${a.hostPublicKey}\n`);
    expect(b.hostPublicKey).toBe(a.hostPublicKey);
    expect(b.hostKeyFingerprint).toBe(a.hostKeyFingerprint);
    expect((await ssh(b, 'echo ok')).stdout).toBe('ok\n');
  });

  it('works through the fault proxy, and a blackhole stalls the session without closing it', async () => {
    const s = await server();
    const proxy = await FaultProxy.start({ host: s.host, port: s.port });
    proxies.push(proxy);
    // same host key, reached via the proxy port: write a known_hosts entry for it
    const viaProxy = { ...s, port: proxy.port, knownHostsPath: `${s.dir}/known_hosts_proxy` };
    await writeFile(viaProxy.knownHostsPath, `[127.0.0.1]:${proxy.port} ${s.hostPublicKey}\n`);
    expect((await ssh(viaProxy, 'echo ok')).stdout).toBe('ok\n');

    const session = await longSession(viaProxy);
    expect(proxy.connectionCount).toBe(1);
    proxy.blackhole();
    const outcome = await Promise.race([session.exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('alive'), 300))]);
    expect(outcome).toBe('alive');
    proxy.reset();
    expect(await session.exited).toBe(255);
  });
});
