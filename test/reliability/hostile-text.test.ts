/**
 * Issue 11 item 6: server-controlled text never reaches the terminal or an error message raw.
 *
 * Hostile servers on ssh2's `Server` put escape sequences (OSC retitle, clear screen, 8-bit CSI,
 * BEL, lone CR) into: the identification string and the pre-banner greeting, the auth method
 * names of USERAUTH_FAILURE, a DISCONNECT description, SFTP STATUS messages, and an
 * `exit-signal` name and message. The checks: the spawned `ssh-tether` bin prints none of those
 * bytes (stdout and stderr) while still showing the text escaped, and the library's errors carry
 * none in their messages; `result.signal` is a signal-name token or null.
 *
 * ssh2's server validates signal names and sends DISCONNECT without a description, so those two
 * packets are written here through the server connection's packet writer (test-only use of
 * ssh2 internals, behind a shape check that fails loudly if ssh2 changes).
 */
import { generateEd25519 } from '../../src/internal/keygen.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, type SshClientOptions } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { reliabilitySuite } from './guard.js';
import { CLI, ensureCliBuilt } from '../helpers/cli.js';

const suite = reliabilitySuite('Hostile text (issue 11 item 6)');
const info = sharedSshd();
const dir = mkdtempSync(join(tmpdir(), 'tether-hostile-text-'));

/** What must never reach a terminal: C0 controls but tab/newline, DEL, C1 (8-bit CSI U+009B), bidi overrides. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const DANGEROUS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
const EVIL = '\x1b]0;pwned\x07\x1b[2J\x1b[H\u009b31mall checks passed\rX';
/** For the identification string and greeting: a lone CR there breaks ssh2's own line parser first. */
const EVIL_LINE = '\x1b]0;pwned\x07\x1b[2J\x1b[H\u009b31mall checks passed';
/** ASCII only for the identification string: it enters the exchange hash, which ssh2 computes from its UTF-8. */
const EVIL_IDENT = '\x1b]0;pwned\x07\x1b[2J\x1b[Hall checks passed';

// ---------------------------------------------------------------- the hostile server

type Mode = 'exit-signal' | 'exit-signal-valid' | 'disconnect' | 'sftp-status' | 'auth-methods' | 'ident';

interface RawProtocol {
  _packetRW: { write: { readonly allocStart: number; alloc(n: number): Buffer; finalize(p: Buffer): Buffer } };
  _cipher: { encrypt(b: Buffer): void };
}

/** Sends one raw SSH payload on a server-side connection (see the file comment). */
function sendRaw(conn: ssh2.Connection, payload: Buffer): void {
  const proto = (conn as unknown as { _protocol?: Partial<RawProtocol> })._protocol;
  if (typeof proto?._packetRW?.write?.alloc !== 'function' || typeof proto._cipher?.encrypt !== 'function') {
    throw new Error('ssh2 internals changed: cannot write a raw packet');
  }
  const w = proto._packetRW.write;
  const start = w.allocStart;
  const packet = w.alloc(payload.length);
  payload.copy(packet, start);
  proto._cipher.encrypt(w.finalize(packet));
}

function sshString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

interface Hostile {
  port: number;
  knownHosts: string;
  close(): Promise<void>;
}

async function hostileServer(mode: Mode): Promise<Hostile> {
  const key = generateEd25519();
  const conns = new Set<ssh2.Connection>();
  const evilIdent = mode === 'ident' ? { ident: `Evil_1.0 ${EVIL_IDENT}`, greeting: `Welcome ${EVIL_LINE}\r\n` } : {};
  const server = new ssh2.Server({ hostKeys: [key.private], ...evilIdent }, (conn) => {
    conns.add(conn);
    conn.on('close', () => conns.delete(conn));
    conn.on('error', () => undefined);
    conn.on('authentication', (ctx) => {
      if (mode === 'auth-methods') ctx.reject([`publickey${EVIL}`, 'password', `x\x1b[2J`] as ssh2.AuthenticationType[]);
      else ctx.accept();
    });
    conn.on('session', (acceptSession) => {
      const session = acceptSession();
      session.on('exec', (accept) => {
        const stream = accept();
        const id = (stream as unknown as { outgoing?: { id?: unknown } }).outgoing?.id;
        if (typeof id !== 'number') throw new Error('ssh2 internals changed: no outgoing channel id');
        if (mode === 'disconnect') {
          // SSH_MSG_DISCONNECT (1), reason 2 (protocol error), description, language tag
          sendRaw(conn, Buffer.concat([Buffer.from([1]), u32(2), sshString(`bye ${EVIL}`), sshString('')]));
          return;
        }
        if (mode === 'exit-signal-valid') {
          stream.exit('KILL');
        } else {
          // SSH_MSG_CHANNEL_REQUEST (98) "exit-signal": name, core dumped, error message, language
          sendRaw(conn, Buffer.concat([Buffer.from([98]), u32(id), sshString('exit-signal'), Buffer.from([0]), sshString(`KILL${EVIL}`), Buffer.from([0]), sshString(EVIL), sshString('')]));
        }
        stream.end();
      });
      session.on('sftp', (accept) => {
        const sftp = accept();
        const deny = (reqid: number): void => {
          sftp.status(reqid, ssh2.utils.sftp.STATUS_CODE.PERMISSION_DENIED, `denied ${EVIL}`);
        };
        for (const ev of ['OPEN', 'STAT', 'LSTAT', 'FSTAT', 'REALPATH', 'OPENDIR', 'MKDIR', 'REMOVE', 'RMDIR', 'RENAME', 'SETSTAT', 'READLINK', 'SYMLINK'] as const) {
          sftp.on(ev, deny);
        }
        sftp.on('EXTENDED', (reqid: number) => deny(reqid));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const knownHosts = join(dir, `known_hosts_${port}`);
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${key.public.split(' ').slice(0, 2).join(' ')}\n`);
  return {
    port,
    knownHosts,
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.end();
        server.close(() => r());
      }),
  };
}

// ---------------------------------------------------------------- the CLI

beforeAll(ensureCliBuilt, 120_000);

/** Runs the bin; both streams as text (bounded by a kill timer). */
function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: '' } });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => chunks.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

function connectArgs(h: Hostile): string[] {
  return ['-F', 'none', '--no-agent', '-i', info.privateKeyPath, '--known-hosts', h.knownHosts, '-p', String(h.port), '--connect-timeout', '10000'];
}

function clientOptions(h: Hostile): SshClientOptions {
  return { host: '127.0.0.1', port: h.port, username: 'u', sshConfig: false, agent: false, identityFiles: [info.privateKeyPath], knownHostsFiles: [h.knownHosts], reconnect: false };
}

function expectClean(text: string): void {
  expect(DANGEROUS.test(text), JSON.stringify(text)).toBe(false);
}

const servers: Hostile[] = [];
async function server(mode: Mode): Promise<Hostile> {
  const h = await hostileServer(mode);
  servers.push(h);
  return h;
}
afterAll(async () => {
  for (const s of servers) await s.close();
});

describe('hostile text from the server (issue 11 item 6)', () => {
  it('exit-signal: a name that is not a signal token gives signal null; a valid one SIGKILL; the CLI prints no escape', async () => {
    const h = await server('exit-signal');
    const c = new SshClient(clientOptions(h));
    try {
      const r = await c.exec('anything');
      expect(r.signal).toBeNull();
      expect(r.exitCode).toBeNull();
    } finally {
      await c.close();
    }
    const ok = await server('exit-signal-valid');
    const c2 = new SshClient(clientOptions(ok));
    try {
      expect((await c2.exec('anything')).signal).toBe('SIGKILL');
    } finally {
      await c2.close();
    }
    const run = await cli(['exec', ...connectArgs(h), '127.0.0.1', 'anything']);
    expect(run.code).toBe(255);
    expectClean(run.out);
    suite.figure('exit-signal with escapes in the name', 'signal null, CLI exit 255, nothing printed raw');
  });

  it('DISCONNECT description: the error message and the CLI show it escaped', async () => {
    const h = await server('disconnect');
    const c = new SshClient(clientOptions(h));
    let e: unknown;
    try {
      await c.exec('anything');
    } catch (err) {
      e = err;
    } finally {
      await c.close();
    }
    expect(e).toBeInstanceOf(SshError);
    const msg = (e as SshError).message;
    expectClean(msg);
    expect(msg).toContain('bye \\x1b]0;pwned\\x07');
    const run = await cli(['exec', ...connectArgs(h), '127.0.0.1', 'anything']);
    expect(run.code).toBe(255);
    expectClean(run.out);
    expect(run.out).toContain('bye \\x1b]0;pwned\\x07');
    suite.figure('DISCONNECT with escapes in the description', 'shown as \\x1b... in the error and the CLI');
  });

  it('SFTP STATUS message: errors and the CLI get/put output are sanitized', async () => {
    const h = await server('sftp-status');
    const c = new SshClient(clientOptions(h));
    let e: unknown;
    try {
      const sftp = await c.sftp();
      await sftp.stat('/x');
    } catch (err) {
      e = err;
    } finally {
      await c.close();
    }
    expect(e).toBeInstanceOf(SshError);
    expectClean((e as SshError).message);
    expect((e as SshError).message).toContain('denied \\x1b]0;pwned\\x07');
    const get = await cli(['get', ...connectArgs(h), '127.0.0.1:/etc/hostname', join(dir, 'out')]);
    expect(get.code).toBe(1);
    expectClean(get.out);
    expect(get.out).toContain('denied \\x1b]0;pwned\\x07');
    const local = join(dir, 'up.txt');
    writeFileSync(local, 'x');
    const put = await cli(['put', ...connectArgs(h), local, '127.0.0.1:/tmp/up.txt']);
    expect(put.code).toBe(1);
    expectClean(put.out);
    suite.figure('SFTP STATUS with escapes in the message', 'shown escaped in errors and get/put output');
  }, 90_000);

  it('auth method names: the auth error, doctor and exec show them escaped', async () => {
    const h = await server('auth-methods');
    const c = new SshClient(clientOptions(h));
    let e: unknown;
    try {
      await c.connect();
    } catch (err) {
      e = err;
    } finally {
      await c.close();
    }
    expect(e).toBeInstanceOf(SshError);
    expectClean((e as SshError).message);
    const doctor = await cli(['doctor', ...connectArgs(h), '127.0.0.1']);
    expect(doctor.code).toBe(16); // auth
    expectClean(doctor.out);
    expect(doctor.out).toContain('publickey\\x1b]0;pwned\\x07\\x1b[2J');
    const exec = await cli(['exec', ...connectArgs(h), '127.0.0.1', 'true']);
    expect(exec.code).toBe(255);
    expectClean(exec.out);
    suite.figure('auth method names with escapes', 'shown escaped by doctor; errors clean');
  }, 60_000);

  it('identification string and greeting: doctor text and JSON show them escaped', async () => {
    const h = await server('ident');
    const doctor = await cli(['doctor', ...connectArgs(h), '127.0.0.1']);
    expect(doctor.code).not.toBe(0);
    expectClean(doctor.out);
    expect(doctor.out).toContain('SSH-2.0-Evil_1.0');
    expect(doctor.out).not.toContain('all checks passed\n');
    const json = await cli(['doctor', '--json', ...connectArgs(h), '127.0.0.1']);
    expectClean(json.out);
    expect(json.out).toContain('Evil_1.0');
    suite.figure('identification string and greeting with escapes', 'doctor text and JSON clean');
  }, 60_000);
});
