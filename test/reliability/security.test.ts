/**
 * Security, issue 6 items 21-24: host-key checking before authentication (sshd log), concurrent
 * accept-new writers, secrets kept out of every output, secure default algorithms with strict kex.
 * No `error` listener is attached to any client (item 25, see guard.ts).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type SshClientOptions } from '../../src/index.js';
import { resolveOptions } from '../../src/options.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startSshd, describeSshd, type SshdHandle } from '../helpers/sshd.js';
import { clientOptions } from '../helpers/client.js';
import { reliabilitySuite } from './guard.js';
import { parseKexinit, rawServer, rejection, settle } from './util.js';

const suite = reliabilitySuite('Security (items 21-24)');
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'tether-rel-sec-'));
let server: SshdHandle;

beforeAll(async () => {
  server = await startSshd({ extraConfig: ['LogLevel DEBUG1', 'PasswordAuthentication yes'] });
});
afterAll(async () => {
  await server.remove();
});

describe('item 21: unknown host under yes', () => {
  it('ERR_SSH_HOST_KEY_UNKNOWN and the sshd log shows no authentication request (a known host does show one)', async () => {
    const info = describeSshd(server);
    const control = new SshClient(clientOptions(info));
    await control.exec('true');
    await control.close();
    expect(server.logs()).toMatch(/userauth-request for user/);
    const mark = server.logs().length;
    const empty = join(dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    const ssh = new SshClient(clientOptions(info, { knownHostsFiles: [empty], strictHostKeyChecking: 'yes' }));
    const err = await rejection(ssh.connect());
    expect(err.code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
    expect(ssh.state).toBe('closed');
    await new Promise((r) => setTimeout(r, 300));
    const after = server.logs().slice(mark);
    expect(after).toMatch(/Connection from 127\.0\.0\.1/);
    expect(after).not.toMatch(/userauth|Postponed|Accepted|Failed|authenticating user/);
    expect(readFileSync(empty, 'utf8')).toBe('');
  });
});

describe('item 22: accept-new by several processes at once', () => {
  it('4 processes recording 4 new hosts into one known_hosts: one well-formed line each, found by ssh-keygen -F', async () => {
    const info = describeSshd(server);
    const kh = join(dir, 'shared_known_hosts');
    writeFileSync(kh, '');
    const proxies = await Promise.all(Array.from({ length: 4 }, () => FaultProxy.start({ host: info.host, port: info.port })));
    try {
      const runs = proxies.map((p) => {
        const o: SshClientOptions = { ...clientOptions(info, {}, p), knownHostsFiles: [kh], strictHostKeyChecking: 'accept-new', reconnect: false };
        return settle(run(process.execPath, ['--import', './scripts/ts-node-register.mjs', 'test/reliability/accept-new-child.ts', JSON.stringify(o)], { timeout: 60_000 }));
      });
      const results = await Promise.all(runs);
      for (const r of results) expect(r.ok ? 0 : String((r.error as Error).message)).toBe(0);
      const text = readFileSync(kh, 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.split('\n').filter(Boolean);
      expect(lines).toHaveLength(4);
      const key = info.hostPublicKey.trim().split(' ').slice(0, 2).join(' ');
      expect(lines.sort()).toEqual(proxies.map((p) => `[127.0.0.1]:${p.port} ${key}`).sort());
      for (const p of proxies) {
        const { stdout } = await run('ssh-keygen', ['-F', `[127.0.0.1]:${p.port}`, '-f', kh]);
        expect(stdout).toContain(key.split(' ')[1]);
      }
    } finally {
      await Promise.all(proxies.map((p) => p.close()));
    }
  }, 90_000);
});

describe('item 23: secrets never leak', () => {
  const USER = 'tethersec';
  const PASSWORD = `Pw-${Math.random().toString(36).slice(2)}-SECRETPW`;
  const WRONG = `Wrong-${Math.random().toString(36).slice(2)}-SECRETPW`;
  const PASSPHRASE = `Pp-${Math.random().toString(36).slice(2)}-SECRETPP`;
  beforeAll(() => {
    try {
      execFileSync('getent', ['passwd', USER], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['-m', '-s', '/bin/sh', USER], { stdio: 'ignore' });
    }
    execFileSync('chpasswd', { input: `${USER}:${PASSWORD}\n` });
  });
  afterAll(() => {
    execFileSync('usermod', ['-p', '!', USER]);
  });

  it('passwords, passphrases and key material appear in no error, event, inspect output or debug log', async () => {
    const info = describeSshd(server);
    const encKey = join(dir, 'enc_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-f', encKey]);
    const plainKeyText = readFileSync(info.privateKeyPath, 'utf8');
    const body = (t: string): string[] => {
      const b64 = t.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
      return [b64.slice(20, 60), b64.slice(-60, -20)];
    };
    const secrets = [PASSWORD, WRONG, PASSPHRASE, ...body(plainKeyText), ...body(readFileSync(encKey, 'utf8'))];
    const out: string[] = [];
    const sink = (level: string) => (obj: unknown, msg?: string) => out.push(`${level} ${inspect(obj, { depth: 8 })} ${JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))} ${msg ?? ''}`);
    const logger = { debug: sink('debug'), info: sink('info'), warn: sink('warn'), error: sink('error') };
    const record = (ssh: SshClient): SshClient => {
      for (const ev of ['state', 'ready', 'disconnect', 'reconnecting', 'keepalive', 'hostkey', 'warning', 'close'] as const) {
        ssh.on(ev, (...args: unknown[]) => out.push(`event ${ev} ${inspect(args, { depth: 8, showHidden: true })}`));
      }
      return ssh;
    };
    const errText = (e: unknown): string => `${inspect(e, { depth: 12, showHidden: true })} ${String((e as Error).stack)} ${JSON.stringify(e)}`;
    const variants: { name: string; o: Partial<SshClientOptions>; expect: string | undefined }[] = [
      { name: 'right password', o: { username: USER, identityFiles: [], password: PASSWORD }, expect: undefined },
      { name: 'wrong password', o: { username: USER, identityFiles: [], password: WRONG }, expect: 'ERR_SSH_AUTH' },
      { name: 'key material as a string', o: { identityFiles: [], privateKey: plainKeyText }, expect: undefined },
      { name: 'encrypted key, right passphrase', o: { identityFiles: [encKey], passphrase: PASSPHRASE }, expect: 'ERR_SSH_AUTH' },
      { name: 'encrypted key, wrong passphrase', o: { identityFiles: [encKey], passphrase: WRONG }, expect: 'ERR_SSH_KEY' },
      { name: 'encrypted key material, wrong passphrase', o: { identityFiles: [], privateKey: readFileSync(encKey), passphrase: WRONG }, expect: 'ERR_SSH_KEY' },
    ];
    for (const v of variants) {
      const o = clientOptions(info, { logger, debugProtocol: true, reconnect: false, ...v.o });
      out.push(inspect(resolveOptions(o), { depth: 8, showHidden: true }), JSON.stringify(resolveOptions(o)));
      const ssh = record(new SshClient(o));
      out.push(inspect(ssh, { depth: 8 }));
      const r = await settle(ssh.exec('echo ok'));
      if (r.ok) out.push(`result ${JSON.stringify(r.value)}`);
      else out.push(errText(r.error));
      expect(`${v.name}: ${r.ok ? 'ok' : r.code}`).toBe(`${v.name}: ${v.expect ?? 'ok'}`);
      out.push(inspect(ssh, { depth: 8 }), JSON.stringify(ssh.health()));
      await ssh.close();
    }
    const all = out.join('\n');
    expect(all).toMatch(/USERAUTH_REQUEST/); // the debug output was captured
    for (const s of secrets) expect(all.includes(s), `secret ${s.slice(0, 6)}... found in the captured output`).toBe(false);
    suite.figure('item 23: captured output searched for 7 secrets', `${all.length} characters, 0 hits`);
  });
});

describe('item 24: algorithms offered', () => {
  async function captureOffer(o: Partial<SshClientOptions>): Promise<Record<string, string[]>> {
    let data = Buffer.alloc(0);
    let resolveOffer: (r: Record<string, string[]>) => void = () => undefined;
    const offer = new Promise<Record<string, string[]>>((r) => (resolveOffer = r));
    const srv = await rawServer((s: net.Socket) => {
      s.write('SSH-2.0-OpenSSH_9.2\r\n');
      s.on('data', (d: Buffer) => {
        data = Buffer.concat([data, d]);
        const eol = data.indexOf('\r\n');
        if (eol < 0) return;
        const pkt = data.subarray(eol + 2);
        if (pkt.length < 5) return;
        const len = pkt.readUInt32BE(0);
        if (pkt.length < 4 + len) return;
        resolveOffer(parseKexinit(pkt.subarray(5, 4 + len - pkt[4]!)));
        s.destroy();
      });
    });
    try {
      const ssh = new SshClient(clientOptions(describeSshd(server), { port: srv.port, reconnect: false, connectTimeoutMs: 3_000, ...o }));
      const [r] = await Promise.all([offer, settle(ssh.connect())]);
      await ssh.close();
      return r;
    } finally {
      await srv.close();
    }
  }

  it('the default KEXINIT offers no ssh-rsa (SHA-1) signatures, no SHA-1 kex, no CBC; strict kex is on; opting in adds them, strict kex stays', async () => {
    const d = await captureOffer({});
    expect(d.kex).toContain('kex-strict-c-v00@openssh.com');
    expect(d.kex!.filter((k) => /sha1/.test(k))).toEqual([]);
    expect(d.serverHostKey!.filter((k) => k === 'ssh-rsa' || k === 'ssh-dss')).toEqual([]);
    for (const c of [...d.cipherCS!, ...d.cipherSC!]) expect(c).not.toMatch(/cbc/);
    for (const m of [...d.macCS!, ...d.macSC!]) expect(m).not.toMatch(/sha1|md5/);
    suite.figure('item 24: default kex offer', d.kex!.join(' '));
    const opt = await captureOffer({
      algorithms: { kex: ['curve25519-sha256', 'diffie-hellman-group14-sha1'], cipher: ['aes128-ctr', 'aes128-cbc'], serverHostKey: ['ssh-ed25519', 'ssh-rsa'] },
    });
    expect(opt.kex).toEqual(expect.arrayContaining(['diffie-hellman-group14-sha1', 'kex-strict-c-v00@openssh.com']));
    expect(opt.cipherCS).toContain('aes128-cbc');
    expect(opt.serverHostKey).toContain('ssh-rsa');
  });

  it('against the real sshd, strict kex is negotiated', async () => {
    const lines: string[] = [];
    const logger = { debug: (_o: unknown, m?: string) => lines.push(String(m)), info: () => undefined, warn: () => undefined, error: () => undefined };
    const ssh = new SshClient(clientOptions(describeSshd(server), { logger, debugProtocol: true }));
    await ssh.exec('true');
    await ssh.close();
    expect(lines.join('\n')).toMatch(/strict KEX mode enabled/);
  });
});
