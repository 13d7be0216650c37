import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { diagnose, type DiagnoseOptions, type DiagnoseReport } from '../../src/doctor/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { startSshd, type SshdHandle } from '../helpers/sshd.js';

const info = sharedSshd();
const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function base(over: DiagnoseOptions = {}): DiagnoseOptions {
  return {
    port: info.port,
    username: info.username,
    identityFiles: [info.privateKeyPath],
    knownHostsFiles: [info.knownHostsPath],
    globalKnownHostsFiles: [],
    agent: false,
    sshConfig: false,
    stepTimeoutMs: 5_000,
    ...over,
  };
}
function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'tether-doc-'));
}
function newKey(dir: string, name: string): string {
  const f = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', f]);
  return f;
}
function step(r: DiagnoseReport, name: string) {
  const s = r.steps.find((x) => x.step === name);
  expect(s, `step ${name} in ${JSON.stringify(r.steps.map((x) => x.step))}`).toBeDefined();
  return s!;
}
/** A TCP server on 127.0.0.1 that runs `onConn` for every connection. */
async function tcpServer(onConn: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return (srv.address() as net.AddressInfo).port;
}

describe('diagnose() against a healthy server', () => {
  it('passes every step, in order, with the details of each layer', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const r = await diagnose(info.host, base({ forward: { host: '127.0.0.1', port: echo }, sftp: true }));
    expect(r.steps.map((s) => [s.step, s.ok])).toEqual([
      ['config', true],
      ['dns', true],
      ['tcp', true],
      ['banner', true],
      ['kex', true],
      ['hostkey', true],
      ['auth', true],
      ['session', true],
      ['forward', true],
      ['sftp', true],
    ]);
    expect(r.ok).toBe(true);
    expect(r.exitCode).toBe(0);
    expect(step(r, 'dns').data?.addresses).toEqual(['127.0.0.1']);
    expect(step(r, 'banner').detail).toMatch(/^SSH-2\.0-OpenSSH/);
    const kex = step(r, 'kex').data!;
    expect(typeof kex.kex).toBe('string');
    expect(kex.hostKey).toBe('ssh-ed25519');
    expect(typeof kex.cipher).toBe('string');
    const hk = step(r, 'hostkey');
    expect(hk.data?.fingerprint).toBe(info.hostKeyFingerprint);
    expect(hk.data?.status).toBe('known');
    expect(hk.data?.file).toBe(info.knownHostsPath);
    expect(hk.data?.line).toBe(1);
    const fp = execFileSync('ssh-keygen', ['-lf', info.privateKeyPath], { encoding: 'utf8' }).split(' ')[1]!;
    expect(step(r, 'auth').detail).toContain(`publickey ssh-ed25519 ${fp} (${info.privateKeyPath}): accepted`);
    expect(step(r, 'auth').data?.serverAllows).toContain('publickey');
    for (const s of r.steps) expect(s.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('reads ssh_config: the alias resolves to HostName/Port/User/IdentityFile/UserKnownHostsFile, unsupported keywords warned', async () => {
    const dir = tmp();
    const cfg = join(dir, 'config');
    writeFileSync(
      cfg,
      [
        'Host doctor-alias',
        `  HostName ${info.host}`,
        `  Port ${info.port}`,
        `  User ${info.username}`,
        `  IdentityFile ${info.privateKeyPath}`,
        `  UserKnownHostsFile ${info.knownHostsPath}`,
        '  GlobalKnownHostsFile none',
        '  IdentityAgent none',
        '  ProxyCommand nc %h %p',
        '',
      ].join('\n'),
    );
    const r = await diagnose('doctor-alias', { sshConfig: cfg, stepTimeoutMs: 5_000 });
    const c = step(r, 'config');
    expect(c.ok).toBe(true);
    expect(c.data).toMatchObject({ host: info.host, port: info.port, username: info.username, identityFiles: [info.privateKeyPath], sources: [cfg] });
    expect(c.hint).toMatch(/ProxyCommand/);
    expect(r.ok).toBe(true);
  });
});

describe('diagnose() failures, one per layer', () => {
  it('config: an invalid option fails the config step with ERR_SSH_CONFIG and exit code 10', async () => {
    const r = await diagnose(info.host, base({ port: 70000 }));
    expect(r.steps).toHaveLength(1);
    expect(r.failedStep).toBe('config');
    expect(r.exitCode).toBe(10);
    expect(step(r, 'config').data?.code).toBe('ERR_SSH_CONFIG');
  });

  it('dns: a name that does not resolve', async () => {
    const r = await diagnose('no-such-host.invalid', base());
    expect(r.failedStep).toBe('dns');
    expect(r.exitCode).toBe(11);
    expect(step(r, 'dns').detail).toMatch(/cannot resolve no-such-host\.invalid/);
  });

  it('tcp: connection refused is told apart, with a hint', async () => {
    const port = await tcpServer(() => undefined);
    // Close that server to get a port that refuses.
    await cleanups.pop()!();
    const r = await diagnose('127.0.0.1', base({ port }));
    expect(r.failedStep).toBe('tcp');
    expect(r.exitCode).toBe(12);
    const t = step(r, 'tcp');
    expect(t.detail).toMatch(/127\.0\.0\.1: refused \(ECONNREFUSED\)/);
    expect(t.hint).toMatch(/is sshd running/);
  });

  it('banner: a server that accepts TCP and says nothing is a stall', async () => {
    const port = await tcpServer(() => undefined);
    const r = await diagnose('127.0.0.1', base({ port, stepTimeoutMs: 600 }));
    expect(r.failedStep).toBe('banner');
    expect(r.exitCode).toBe(13);
    expect(step(r, 'banner').detail).toMatch(/no identification string within 600 ms \(nothing received\)/);
  });

  it('banner: a partial identification line then a stall is reported with what was received', async () => {
    const port = await tcpServer((s) => s.write('SSH-2.0-Half'));
    const r = await diagnose('127.0.0.1', base({ port, stepTimeoutMs: 600 }));
    expect(r.failedStep).toBe('banner');
    expect(step(r, 'banner').detail).toMatch(/received 12 bytes: "SSH-2\.0-Half"/);
  });

  it('banner: a non-SSH service is recognised', async () => {
    const port = await tcpServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n\x00\x01'));
    const r = await diagnose('127.0.0.1', base({ port }));
    expect(r.failedStep).toBe('banner');
    expect(step(r, 'banner').hint).toMatch(/something else than SSH|refused the connection early/);
  });

  it('banner: greeting lines with escapes, sent apart from the identification string, are a preamble (as OpenSSH takes them)', async () => {
    // The greeting and the identification string in two TCP segments: the doctor once read the
    // greeting alone, saw its ESC bytes and called the port "not SSH" (a CI failure).
    const port = await tcpServer((s) => {
      s.write('Welcome \x1b]0;pwned\x07\x1b[2J\r\n');
      setTimeout(() => {
        s.write('SSH-2.0-Greeter_1.0\r\n');
        s.resume();
      }, 150);
    });
    const r = await diagnose('127.0.0.1', base({ port, stepTimeoutMs: 800 }));
    const b = step(r, 'banner');
    expect(b.ok).toBe(true);
    expect(b.detail).toMatch(/^SSH-2\.0-Greeter_1\.0 \(after 1 pre-banner line/);
    expect(r.failedStep).toBe('kex');
  });

  it('banner: a NUL in a pre-banner line is not SSH (OpenSSH refuses it too)', async () => {
    const port = await tcpServer((s) => {
      s.write('Hello\x00there\r\nSSH-2.0-Late_1.0\r\n');
      s.resume();
    });
    const r = await diagnose('127.0.0.1', base({ port, stepTimeoutMs: 800 }));
    expect(r.failedStep).toBe('banner');
    expect(step(r, 'banner').hint).toMatch(/something else than SSH/);
  });

  it('kex: a banner then silence stalls the key exchange', async () => {
    const port = await tcpServer((s) => {
      s.write('SSH-2.0-Stall_1.0\r\n');
      s.resume();
    });
    const r = await diagnose('127.0.0.1', base({ port, stepTimeoutMs: 800 }));
    expect(step(r, 'banner').detail).toBe('SSH-2.0-Stall_1.0');
    expect(r.failedStep).toBe('kex');
    expect(r.exitCode).toBe(14);
    expect(step(r, 'kex').detail).toMatch(/did not complete in time/);
  });

  it('kex: no common algorithm lists both sides', async () => {
    const hostKey = readFileSync(info.hostKeyPath);
    const server = new ssh2.Server({ hostKeys: [hostKey], algorithms: { kex: ['diffie-hellman-group14-sha1'] } }, (conn) => {
      conn.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    const r = await diagnose('127.0.0.1', base({ port }));
    expect(r.failedStep).toBe('kex');
    const k = step(r, 'kex');
    expect(k.detail).toMatch(/no matching key exchange algorithm/);
    expect(k.detail).toMatch(/the server offers diffie-hellman-group14-sha1/);
    expect(k.data?.client).toContain('curve25519-sha256');
    expect(k.hint).toMatch(/algorithms\.kex/);
  });

  it('hostkey: unknown under StrictHostKeyChecking yes, with the fingerprint and the fix', async () => {
    const kh = join(tmp(), 'known_hosts');
    writeFileSync(kh, '');
    const r = await diagnose(info.host, base({ knownHostsFiles: [kh] }));
    expect(r.failedStep).toBe('hostkey');
    expect(r.exitCode).toBe(15);
    const h = step(r, 'hostkey');
    expect(h.data).toMatchObject({ status: 'unknown', fingerprint: info.hostKeyFingerprint });
    expect(h.hint).toMatch(/accept-new/);
    expect(h.hint).toContain(`ssh-keyscan -p ${info.port} ${info.host} >> ${kh}`);
  });

  it('hostkey: unknown under accept-new passes without writing known_hosts', async () => {
    const kh = join(tmp(), 'known_hosts');
    writeFileSync(kh, '');
    const r = await diagnose(info.host, base({ knownHostsFiles: [kh], strictHostKeyChecking: 'accept-new' }));
    expect(step(r, 'hostkey').ok).toBe(true);
    expect(step(r, 'hostkey').detail).toMatch(/would record it/);
    expect(readFileSync(kh, 'utf8')).toBe('');
    expect(r.ok).toBe(true);
  });

  it('hostkey: changed, with file, line and the ssh-keygen -R command', async () => {
    const dir = tmp();
    const other = readFileSync(`${newKey(dir, 'k')}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    const kh = join(dir, 'known_hosts');
    writeFileSync(kh, `# comment\n[${info.host}]:${info.port} ${other}\n`);
    const r = await diagnose(info.host, base({ knownHostsFiles: [kh] }));
    expect(r.failedStep).toBe('hostkey');
    const h = step(r, 'hostkey');
    expect(h.data).toMatchObject({ status: 'changed', file: kh, line: 2 });
    expect(h.detail).toMatch(/HOST KEY CHANGED/);
    expect(h.hint).toContain(`ssh-keygen -R '[${info.host}]:${info.port}' -f ${kh}`);
  });

  it('hostkey: revoked', async () => {
    const kh = join(tmp(), 'known_hosts');
    writeFileSync(kh, `@revoked [${info.host}]:${info.port} ${info.hostPublicKey.trim()}\n`);
    const r = await diagnose(info.host, base({ knownHostsFiles: [kh] }));
    expect(r.failedStep).toBe('hostkey');
    expect(step(r, 'hostkey').data).toMatchObject({ status: 'revoked', file: kh, line: 1 });
  });

  it('auth: a key the server does not know is listed by fingerprint with the server answer', async () => {
    const dir = tmp();
    const key = newKey(dir, 'stranger');
    const fp = execFileSync('ssh-keygen', ['-lf', key], { encoding: 'utf8' }).split(' ')[1]!;
    const r = await diagnose(info.host, base({ identityFiles: [key] }));
    expect(r.failedStep).toBe('auth');
    expect(r.exitCode).toBe(16);
    const a = step(r, 'auth');
    expect(a.detail).toContain(`publickey ssh-ed25519 ${fp} (${key}): rejected (server allows: publickey`);
    expect(a.hint).toMatch(/authorized_keys/);
  });

  it('auth: walks the client\'s own auth plan (PubkeyAuthentication no and PreferredAuthentications are obeyed, as connect() obeys them)', async () => {
    // The right key is given, but ssh_config forbids public keys: connect() would not offer it,
    // so neither may the doctor (its old handler offered every loaded key regardless).
    const dir = tmp();
    const cfg = (extra: string[]): string => {
      const f = join(dir, `config-${extra.length}`);
      writeFileSync(f, ['Host doctor-plan', `  HostName ${info.host}`, ...extra.map((l) => `  ${l}`), ''].join('\n'));
      return f;
    };
    const r = await diagnose('doctor-plan', base({ sshConfig: cfg(['PubkeyAuthentication no']) }));
    expect(r.failedStep).toBe('auth');
    const a = step(r, 'auth');
    const tries = (a.data?.tries as Array<{ method: string }>).map((t) => t.method);
    expect(tries).toEqual(['none']);
    expect(a.hint).toMatch(/no method is available/);
    const r2 = await diagnose('doctor-plan', base({ sshConfig: cfg(['PreferredAuthentications password,publickey', 'PasswordAuthentication yes']), password: 'not-the-password' }));
    expect(r2.ok).toBe(true);
    const tries2 = (step(r2, 'auth').data?.tries as Array<{ method: string; answer: string }>).map((t) => `${t.method}:${t.answer}`);
    // sshd here allows publickey only: the client skips password (not allowed) and offers the key.
    expect(tries2).toEqual(['none:rejected', 'publickey:accepted']);
  });

  it('auth: key file permission problems are named with the chmod fix', async () => {
    const dir = tmp();
    const loose = join(dir, 'id_loose');
    copyFileSync(info.privateKeyPath, loose);
    chmodSync(loose, 0o644);
    const r = await diagnose(info.host, base({ identityFiles: [loose] }));
    expect(r.failedStep).toBe('auth');
    const a = step(r, 'auth');
    expect(a.detail).toMatch(/permissions 0644/);
    expect(a.hint).toContain(`chmod 600 ${loose}`);
  });

  it('auth: an agent with no keys is reported', async () => {
    const dir = tmp();
    const sock = join(dir, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    cleanups.push(() => {
      agent.kill('SIGTERM');
    });
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    const r = await diagnose(info.host, base({ agent: sock, identityFiles: [] }));
    expect(r.failedStep).toBe('auth');
    const a = step(r, 'auth');
    expect(a.detail).toContain(`the agent at ${sock} holds no keys`);
    expect(a.hint).toMatch(/ssh-add/);
    expect(a.data?.agentKeys).toBe(0);
  });

  describe('with a private server', () => {
    let sshd: SshdHandle;
    it('auth: MaxAuthTries exhausted by too many keys', async () => {
      sshd = await startSshd({ extraConfig: ['MaxAuthTries 2'] });
      cleanups.push(() => sshd.remove());
      const dir = tmp();
      const keys = [newKey(dir, 'a'), newKey(dir, 'b'), newKey(dir, 'c'), newKey(dir, 'd')];
      const r = await diagnose(sshd.host, {
        port: sshd.port,
        username: sshd.username,
        identityFiles: [...keys, sshd.privateKeyPath],
        knownHostsFiles: [sshd.knownHostsPath],
        globalKnownHostsFiles: [],
        agent: false,
        sshConfig: false,
        stepTimeoutMs: 5_000,
      });
      expect(r.failedStep).toBe('auth');
      const a = step(r, 'auth');
      expect(a.detail).toMatch(/Too many authentication failures/);
      expect(a.data?.maxAuthTries).toBe(true);
      expect(a.hint).toMatch(/MaxAuthTries was exhausted/);
      expect(a.hint).toMatch(/IdentitiesOnly/);
    });

    it('forward: refused by AllowTcpForwarding no; sftp: subsystem missing', async () => {
      const s2 = await startSshd({ extraConfig: ['AllowTcpForwarding no', 'Subsystem sftp /nonexistent/sftp-server'] });
      cleanups.push(() => s2.remove());
      const opts: DiagnoseOptions = {
        port: s2.port,
        username: s2.username,
        identityFiles: [s2.privateKeyPath],
        knownHostsFiles: [s2.knownHostsPath],
        globalKnownHostsFiles: [],
        agent: false,
        sshConfig: false,
        stepTimeoutMs: 5_000,
      };
      const f = await diagnose(s2.host, { ...opts, forward: { host: '127.0.0.1', port: s2.port } });
      expect(f.failedStep).toBe('forward');
      expect(f.exitCode).toBe(18);
      expect(step(f, 'forward').data?.reason).toBe(1);
      expect(step(f, 'forward').hint).toMatch(/AllowTcpForwarding/);
      const s = await diagnose(s2.host, { ...opts, sftp: true });
      expect(s.failedStep).toBe('sftp');
      expect(s.exitCode).toBe(19);
      expect(step(s, 'sftp').hint).toMatch(/Subsystem sftp/);
    });
  });

  it('forward: nothing listening on the target port (seen from the server)', async () => {
    const port = await tcpServer(() => undefined);
    await cleanups.pop()!();
    const r = await diagnose(info.host, base({ forward: { host: '127.0.0.1', port } }));
    expect(r.failedStep).toBe('forward');
    expect(step(r, 'forward').data?.reason).toBe(2);
  });
});
