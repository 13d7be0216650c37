/**
 * Test harness: a real SSH server of any kind on a loopback port, for the server matrix and the
 * conformance suite (test/conformance/): `startTestServer(kind)` returns a `TestServer` (below).
 *
 * - `openssh`: an adapter over test/helpers/sshd.ts (`/usr/sbin/sshd -D -e`).
 * - `dropbear`: `dropbear -F -E -p 127.0.0.1:PORT -r hostkey` (Debian `dropbear-bin`); its SFTP
 *   subsystem runs `/usr/lib/sftp-server` (Debian `openssh-sftp-server`).
 * - `asyncssh`: test/helpers/asyncssh_server.py under Debian's `/usr/bin/python3`
 *   (`python3-asyncssh`), run as the login user through `setpriv`, so commands run as that user.
 * - `tinysshd`: `tcpserver 127.0.0.1 PORT tinysshd -v keydir` (Debian `tinysshd` + `ucspi-tcp`),
 *   SFTP through `-x sftp=/usr/lib/sftp-server`.
 *
 * Every kind logs in the same user as sshd.ts (`tether` when the tests run as root) with an
 * ed25519 key. Dropbear and tinysshd only read `~/.ssh/authorized_keys`, so our key line is
 * appended there (under a lock, removed again by `remove()`).
 *
 * Written here rather than taken from npm: no maintained package starts these real servers for
 * tests (see sshd.ts).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { descendants, freePort, killTreeSync, knownHostsName, loginUser, startSshd, waitGone, type SshdHandle } from './sshd.js';

export type ServerKind = 'openssh' | 'dropbear' | 'asyncssh' | 'tinysshd' | 'inproc';

/** What a server kind supports / how it behaves; tests branch on these, never on `kind`. */
export interface ServerTraits {
  /** The `sftp` subsystem is available. */
  sftp: boolean;
  /** direct-tcpip channels (local and dynamic forwards). */
  localForward: boolean;
  /** tcpip-forward global requests (remote forwards). */
  remoteForward: boolean;
  /** Session channels one connection may hold open at once: 1 for tinysshd. */
  sessionsPerConnection: number;
  /** Each session's command leads its own process group (only sshd). */
  ownProcessGroupPerSession: boolean;
  /** Honours RFC 4254 6.9 `signal` requests for this user. */
  signals: boolean;
  /** Grants `pty-req`. */
  pty: boolean;
  /** Known limitations, one line each (for the README compatibility table). */
  notes: string[];
}

export interface TestServer {
  readonly kind: ServerKind;
  readonly host: string;
  readonly port: number;
  /** `tether` when the tests run as root, else the current user. */
  readonly username: string;
  /** The user's ed25519 key, no passphrase. */
  readonly privateKeyPath: string;
  /** known_hosts with the host key for `[host]:port`. */
  readonly knownHostsPath: string;
  /** `ssh-ed25519 AAAA...` */
  readonly hostPublicKey: string;
  /** Absolute dir writable by the user, the same path for exec and SFTP. */
  readonly homeDir: string;
  readonly traits: ServerTraits;
  /** Listener and every session process gone (bounded: 5 s). Idempotent. */
  stop(): Promise<void>;
  /** Same port, same host key (bounded: 20 s). No-op when running. */
  start(): Promise<void>;
  /** stop + delete temp files (and our authorized_keys line). */
  remove(): Promise<void>;
}

/**
 * Per-kind extras (`options.extra`):
 * - openssh: `{ extraConfig: string[] }` sshd_config lines (see `SshdOptions.extraConfig`);
 * - dropbear, tinysshd: `{ args: string[] }` extra command-line options of the server;
 * - asyncssh: `{ listen: Record<string, unknown> }` extra keyword arguments of
 *   `asyncssh.listen()`, e.g. `{ rekey_seconds: 3 }`.
 */
export interface TestServerOptions {
  extra?: Record<string, unknown>;
}

/** A loaded 2-core box can take seconds to start Python and import asyncssh. */
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_LIMIT = 256 * 1024;
const SYSTEM_PYTHON = '/usr/bin/python3';
const SFTP_SERVER = '/usr/lib/sftp-server';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ASYNCSSH_SCRIPT = path.join(HERE, 'asyncssh_server.py');

/**
 * Traits and limitations as verified against the Debian 12 packages (OpenSSH 9.2p1, Dropbear
 * 2022.83, asyncssh 2.10.1, tinysshd 20230101) by test/conformance/ and by hand.
 */
const TRAITS: Record<Exclude<ServerKind, 'inproc'>, ServerTraits> = {
  openssh: {
    sftp: true,
    localForward: true,
    remoteForward: true,
    sessionsPerConnection: 10,
    ownProcessGroupPerSession: true,
    signals: true,
    pty: true,
    notes: [
      'MaxSessions (default 10) refuses further session channels with reason 2: ssh-tether queues them (maxSessions).',
      'Refuses `signal` requests for root sessions ("session signalling requires privilege separation").',
    ],
  },
  dropbear: {
    sftp: true,
    localForward: true,
    remoteForward: true,
    sessionsPerConnection: 10,
    ownProcessGroupPerSession: false,
    signals: true,
    pty: true,
    notes: [
      'Concurrent session opens on one connection intermittently fail their exec request ("Unable to exec"; ~20-70% of 100 at 10 in flight, 2% at 2, none at 1, raw ssh2 too): use maxSessions: 1.',
      'SFTP only with an external sftp-server (Debian: openssh-sftp-server, /usr/lib/sftp-server).',
      'All sessions of one connection share one process group: a command does not lead its own group.',
      'Reads only ~/.ssh/authorized_keys (no AuthorizedKeysFile option).',
    ],
  },
  asyncssh: {
    sftp: true,
    localForward: true,
    remoteForward: true,
    sessionsPerConnection: 10,
    ownProcessGroupPerSession: false,
    signals: true,
    pty: false,
    notes: [
      'Remote forward on port 0: forwarded-tcpip opens report port 0 instead of the bound port (ssh2 would refuse them; ssh-tether routes them to the one port-0 forward, else refuses with a warning).',
      "Commands run in the server process's process group (the application spawns them).",
      'Signals, env, the shell and PTYs are up to the application (this harness forwards signals, applies env, allocates no PTY).',
      'Re-keys hourly by default and sends IGNORE during re-key, which ssh2 1.17 rejects (see the ssh2 fix).',
    ],
  },
  tinysshd: {
    sftp: true,
    localForward: false,
    remoteForward: false,
    sessionsPerConnection: 1,
    ownProcessGroupPerSession: false,
    signals: false,
    pty: true,
    notes: [
      'One session channel per connection, and the connection ends with it: a second one is refused (reason 1, "only one \'session\' channel allowed"); use one connection (client) per operation.',
      'No port forwarding: direct-tcpip is refused (reason 1, same text); tcpip-forward is answered with UNIMPLEMENTED, which ssh2 never matches (forwardRemote fails after timeoutMs).',
      'Ignores `signal` requests; no compression (zlib offered, none negotiated); ssh-ed25519 keys only; reads only ~/.ssh/authorized_keys.',
      'SFTP only when started with `-x sftp=/path/to/sftp-server`.',
    ],
  },
};

/** Deep copy of the traits of `kind` (tests may not mutate the shared table). */
function traitsOf(kind: Exclude<ServerKind, 'inproc'>): ServerTraits {
  const t = TRAITS[kind];
  return { ...t, notes: [...t.notes] };
}

// ---------------------------------------------------------------------------------------------
// small helpers

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function run(file: string, args: string[], timeoutMs = 20_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stderr}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
  });
}

let aptUpdated = false;

/**
 * Makes sure `binary` exists: installs the Debian `pkg` when this process is root and has
 * apt-get, else throws one line naming the package (no silent skip).
 */
export async function ensureBinary(binary: string, pkg: string, kind: string, options: { install?: boolean } = {}): Promise<void> {
  if (existsSync(binary)) return;
  const install = options.install ?? process.getuid?.() === 0;
  if (install && existsSync('/usr/bin/apt-get')) {
    if (!aptUpdated) {
      await run('/usr/bin/apt-get', ['update'], 300_000).catch(() => undefined);
      aptUpdated = true;
    }
    await run('/usr/bin/apt-get', ['install', '-y', '--no-install-recommends', pkg], 600_000).catch(() => undefined);
    if (existsSync(binary)) return;
  }
  throw new Error(`${kind} test server needs ${binary}: install the Debian package ${pkg} (apt-get install ${pkg})`);
}

/** Waits until `host:port` accepts a TCP connection and sends an SSH banner (bounded). */
async function waitBanner(host: string, port: number, deadline: number, exited: () => boolean): Promise<boolean> {
  while (Date.now() < deadline && !exited()) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host, port });
      let buf = '';
      const done = (v: boolean): void => {
        clearTimeout(timer);
        sock.destroy();
        resolve(v);
      };
      const timer = setTimeout(() => done(false), 2_000);
      sock.setEncoding('latin1');
      sock.on('data', (d: string) => {
        buf += d;
        if (buf.includes('SSH-')) done(true);
      });
      sock.on('error', () => done(false));
      sock.on('close', () => done(false));
    });
    if (ok) return true;
    await sleep(50);
  }
  return false;
}

/** Pids of live processes whose environment holds `marker` (`NAME=value`). */
function pidsWithEnv(marker: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  const needle = Buffer.from(`\0${marker}\0`);
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${e}/environ`)]);
      if (env.includes(needle)) out.push(Number(e));
    } catch {
      // gone or not readable
    }
  }
  return out;
}

/** SIGKILLs each pid's tree (a snapshot); returns the pids signalled. */
function killAll(pids: number[]): number[] {
  const out: number[] = [];
  for (const pid of pids) out.push(...killTreeSync(pid, true));
  return out;
}

// authorized_keys under ~/.ssh (Dropbear, tinysshd): shared by concurrent test workers, so every
// read-modify-write runs under a mkdir lock (bounded, a stale lock older than 30 s is broken).

async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await fsp.mkdir(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await fsp.stat(lockDir).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 30_000) await fsp.rmdir(lockDir).catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`lock ${lockDir} held for 20 s`, { cause: err });
      await sleep(20 + Math.random() * 30);
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rmdir(lockDir).catch(() => undefined);
  }
}

async function userAuthorizedKeys(line: string, add: boolean): Promise<void> {
  const user = await loginUser();
  const sshDir = path.join(user.homeDir, '.ssh');
  await fsp.mkdir(sshDir, { recursive: true, mode: 0o700 });
  await fsp.chown(sshDir, user.uid, user.gid).catch(() => undefined);
  await fsp.chmod(sshDir, 0o700);
  const file = path.join(sshDir, 'authorized_keys');
  await withLock(path.join(os.tmpdir(), `tether-authkeys-${user.uid}.lock`), async () => {
    const old = await fsp.readFile(file, 'utf8').catch(() => '');
    const lines = old.split('\n').filter((l) => l.trim() !== '' && l.trim() !== line.trim());
    if (add) lines.push(line.trim());
    const tmp = `${file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, lines.length > 0 ? `${lines.join('\n')}\n` : '', { mode: 0o600 });
    await fsp.chown(tmp, user.uid, user.gid).catch(() => undefined);
    await fsp.rename(tmp, file);
  });
}

/** `string` of RFC 4251 5: uint32 length + bytes. */
function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

// ---------------------------------------------------------------------------------------------
// a spawned server process (dropbear, asyncssh, tcpserver+tinysshd)

interface SpawnSpec {
  file: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** A marker `NAME=value` every session process inherits, to find escaped processes. */
  envMarker?: string;
}

class SpawnedServer implements TestServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log = '';
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private removed = false;

  constructor(
    readonly kind: ServerKind,
    readonly host: string,
    readonly port: number,
    readonly username: string,
    readonly privateKeyPath: string,
    readonly knownHostsPath: string,
    readonly hostPublicKey: string,
    readonly homeDir: string,
    readonly traits: ServerTraits,
    readonly dir: string,
    private readonly spec: SpawnSpec,
    private readonly cleanup: () => Promise<void>,
  ) {}

  /** The server's stderr/stdout so far (bounded). */
  logs(): string {
    return this.log;
  }

  /** Pid of the listener process, `undefined` when stopped. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private appendLog(s: string): void {
    this.log += s;
    if (this.log.length > LOG_LIMIT) this.log = this.log.slice(this.log.length - LOG_LIMIT);
  }

  start(): Promise<void> {
    if (this.removed) return Promise.reject(new Error(`${this.kind} on port ${this.port} was removed`));
    if (this.child) return Promise.resolve();
    this.starting ??= (async () => {
      try {
        if (this.stopping) await this.stopping;
        const deadline = Date.now() + READY_TIMEOUT_MS;
        for (;;) {
          const r = await this.spawnOnce(deadline);
          if (r === 'ready') return;
          if (Date.now() > deadline) throw new Error(`${this.kind}: port ${this.host}:${this.port} stays in use\n${this.log.slice(-4000)}`);
          await sleep(100);
        }
      } finally {
        this.starting = undefined;
      }
    })();
    return this.starting;
  }

  private async spawnOnce(deadline: number): Promise<'ready' | 'in-use'> {
    let own = '';
    const { file, args } = this.spec;
    // setpriv --pdeathsig: the server dies with the worker that spawned it (see sshd.ts).
    // detached: the server leads its own session and process group, as a daemon does, so a
    // command that shares the server's group (asyncssh, tinysshd) never shares the test runner's.
    const child = SETPRIV
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: this.spec.env, detached: true })
      : spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: this.spec.env, detached: true });
    this.child = child;
    live.add(this);
    child.unref();
    let didExit = false;
    let exitInfo = '';
    let onExit!: () => void;
    this.exited = new Promise<void>((resolve) => {
      onExit = resolve;
    });
    const markExit = (): void => {
      if (didExit) return;
      didExit = true;
      if (this.child === child) {
        this.child = undefined;
        live.delete(this);
      }
      onExit();
    };
    for (const s of [child.stdout, child.stderr]) {
      if (!s) continue;
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        this.appendLog(d);
        if (own.length < 64 * 1024) own += d;
      });
      s.on('error', () => undefined);
      (s as unknown as net.Socket).unref?.();
    }
    child.on('error', (err) => {
      own += `spawn error: ${err.message}\n`;
      this.appendLog(`spawn error: ${err.message}\n`);
      markExit();
    });
    child.on('exit', (code, sig) => {
      exitInfo = `code ${String(code)}, signal ${String(sig)}`;
      markExit();
    });
    const ready = await waitBanner(this.host, this.port, deadline, () => didExit);
    if (ready && !didExit) return 'ready';
    if (didExit) {
      await sleep(20);
      if (/in use/i.test(own)) return 'in-use';
      throw new Error(`${this.kind} exited early (${exitInfo}):\n${own.slice(-4000)}`);
    }
    await this.stop();
    throw new Error(`${this.kind} not accepting SSH on ${this.host}:${this.port} after ${READY_TIMEOUT_MS} ms:\n${own.slice(-4000)}`);
  }

  stop(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) {
      return this.stopping ?? this.killEscaped();
    }
    this.stopping ??= (async () => {
      try {
        const pids = killTreeSync(child.pid!, true);
        await this.exited;
        pids.push(...killAll(this.escapedPids()));
        await waitGone(pids, STOP_TIMEOUT_MS);
      } finally {
        this.stopping = undefined;
      }
    })();
    return this.stopping;
  }

  /** Session processes that left the server's tree (re-parented) but carry our env marker. */
  private escapedPids(): number[] {
    return this.spec.envMarker === undefined ? [] : pidsWithEnv(this.spec.envMarker);
  }

  private async killEscaped(): Promise<void> {
    const pids = killAll(this.escapedPids());
    if (pids.length > 0) await waitGone(pids, STOP_TIMEOUT_MS);
  }

  async remove(): Promise<void> {
    this.removed = true;
    await this.stop();
    await this.cleanup().catch(() => undefined);
    await fsp.rm(this.dir, { recursive: true, force: true });
    tempDirs.delete(this.dir);
  }
}

const live = new Set<SpawnedServer>();
const tempDirs = new Set<string>();
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const s of live) {
      const pid = s.pid;
      if (pid !== undefined) killTreeSync(pid, true);
    }
    for (const d of tempDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// kinds

interface Common {
  host: string;
  port: number;
  dir: string;
  username: string;
  uid: number;
  gid: number;
  homeDir: string;
  privateKeyPath: string;
  publicKey: string;
  knownHostsPath: string;
}

async function common(kind: string): Promise<Common> {
  const user = await loginUser();
  const host = '127.0.0.1';
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `tether-${kind}-`));
  tempDirs.add(dir);
  installExitHook();
  await fsp.chmod(dir, 0o755);
  const privateKeyPath = path.join(dir, 'id_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `tether-test-user-${kind}`, '-f', privateKeyPath]);
  await fsp.chmod(privateKeyPath, 0o600);
  const publicKey = (await fsp.readFile(`${privateKeyPath}.pub`, 'utf8')).trim();
  const port = await freePort(host);
  return {
    host,
    port,
    dir,
    username: user.username,
    uid: user.uid,
    gid: user.gid,
    homeDir: user.homeDir,
    privateKeyPath,
    publicKey,
    knownHostsPath: path.join(dir, 'known_hosts'),
  };
}

async function writeKnownHosts(c: Common, hostPublicKey: string): Promise<void> {
  await fsp.writeFile(c.knownHostsPath, `${knownHostsName(c.host, c.port)} ${hostPublicKey}\n`, { mode: 0o644 });
}

function stringArray(v: unknown, what: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string')) throw new Error(`${what} must be an array of strings`);
  return v;
}

async function startOpenssh(options: TestServerOptions): Promise<TestServer> {
  const h: SshdHandle = await startSshd({ extraConfig: stringArray(options.extra?.['extraConfig'], 'extra.extraConfig') });
  const server: TestServer & { sshd: SshdHandle } = {
    kind: 'openssh',
    host: h.host,
    port: h.port,
    username: h.username,
    privateKeyPath: h.privateKeyPath,
    knownHostsPath: h.knownHostsPath,
    hostPublicKey: h.hostPublicKey,
    homeDir: h.homeDir,
    traits: traitsOf('openssh'),
    sshd: h,
    stop: () => h.stop(),
    start: () => h.start(),
    remove: () => h.remove(),
  };
  return server;
}

async function startDropbear(options: TestServerOptions): Promise<TestServer> {
  await ensureBinary('/usr/sbin/dropbear', 'dropbear-bin', 'dropbear');
  await ensureBinary('/usr/bin/dropbearkey', 'dropbear-bin', 'dropbear');
  await ensureBinary(SFTP_SERVER, 'openssh-sftp-server', 'dropbear (sftp)');
  const c = await common('dropbear');
  const hostKey = path.join(c.dir, 'dropbear_ed25519_host_key');
  const out = (await run('/usr/bin/dropbearkey', ['-t', 'ed25519', '-f', hostKey])).stdout;
  const pubLine = out.split('\n').find((l) => l.startsWith('ssh-ed25519 '));
  if (!pubLine) throw new Error(`dropbearkey printed no public key:\n${out}`);
  const hostPublicKey = pubLine.trim().split(/\s+/).slice(0, 2).join(' ');
  await writeKnownHosts(c, hostPublicKey);
  await userAuthorizedKeys(c.publicKey, true);
  const marker = `TETHER_TEST_SERVER=${path.basename(c.dir)}`;
  const args = [
    '-F', '-E', '-e', // foreground, log to stderr, pass our (clean) env to sessions: the marker
    '-p', `${c.host}:${c.port}`,
    '-r', hostKey,
    '-P', path.join(c.dir, 'dropbear.pid'),
    '-s', '-g', // no password logins
    ...stringArray(options.extra?.['args'], 'extra.args'),
  ];
  const env = { PATH: '/usr/local/bin:/usr/bin:/bin', TETHER_TEST_SERVER: path.basename(c.dir) };
  const server = new SpawnedServer('dropbear', c.host, c.port, c.username, c.privateKeyPath, c.knownHostsPath, hostPublicKey, c.homeDir, traitsOf('dropbear'), c.dir,
    { file: '/usr/sbin/dropbear', args, env, envMarker: marker },
    () => userAuthorizedKeys(c.publicKey, false));
  await startOrRemove(server);
  return server;
}

async function startAsyncssh(options: TestServerOptions): Promise<TestServer> {
  await ensureBinary(SYSTEM_PYTHON, 'python3', 'asyncssh');
  const probe = await run(SYSTEM_PYTHON, ['-W', 'ignore', '-c', 'import asyncssh']).then(() => true, () => false);
  if (!probe) {
    if (process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
      await run('/usr/bin/apt-get', ['install', '-y', '--no-install-recommends', 'python3-asyncssh'], 600_000).catch(() => undefined);
    }
    const again = await run(SYSTEM_PYTHON, ['-W', 'ignore', '-c', 'import asyncssh']).then(() => true, () => false);
    if (!again) throw new Error(`asyncssh test server needs asyncssh for ${SYSTEM_PYTHON}: install the Debian package python3-asyncssh`);
  }
  const c = await common('asyncssh');
  const hostKey = path.join(c.dir, 'host_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tether-test-host', '-f', hostKey]);
  const hostPublicKey = (await fsp.readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  const authKeys = path.join(c.dir, 'authorized_keys');
  await fsp.writeFile(authKeys, `${c.publicKey}\n`, { mode: 0o644 });
  // The server runs as the login user: it must read its host key.
  await fsp.chown(hostKey, c.uid, c.gid).catch(() => undefined);
  await writeKnownHosts(c, hostPublicKey);
  const listen = options.extra?.['listen'];
  if (listen !== undefined && (typeof listen !== 'object' || listen === null || Array.isArray(listen))) throw new Error('extra.listen must be an object');
  // The server runs as the login user, who may not be able to read the checkout (a CI clone in
  // a 0700 temp dir): run a copy from the server's own dir, which that user can read.
  const script = path.join(c.dir, 'asyncssh_server.py');
  await fsp.copyFile(ASYNCSSH_SCRIPT, script);
  await fsp.chmod(script, 0o644);
  const config = JSON.stringify({ host: c.host, port: c.port, host_key: hostKey, authorized_keys: authKeys, home: c.homeDir, listen: listen ?? {} });
  const marker = `TETHER_TEST_SERVER=${path.basename(c.dir)}`;
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: c.homeDir,
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONWARNINGS: 'ignore',
    TETHER_TEST_SERVER: path.basename(c.dir),
  };
  const isRoot = process.getuid?.() === 0;
  if (isRoot && !SETPRIV) throw new Error('asyncssh test server needs setpriv to run as the login user: install the Debian package util-linux');
  const file = isRoot ? SETPRIV! : SYSTEM_PYTHON;
  const args = isRoot
    ? [`--reuid=${c.uid}`, `--regid=${c.gid}`, '--init-groups', '--', SYSTEM_PYTHON, script, config]
    : [script, config];
  const server = new SpawnedServer('asyncssh', c.host, c.port, c.username, c.privateKeyPath, c.knownHostsPath, hostPublicKey, c.homeDir, traitsOf('asyncssh'), c.dir,
    { file, args, env, envMarker: marker },
    () => Promise.resolve());
  await startOrRemove(server);
  return server;
}

async function startTinysshd(options: TestServerOptions): Promise<TestServer> {
  await ensureBinary('/usr/sbin/tinysshd', 'tinysshd', 'tinysshd');
  await ensureBinary('/usr/sbin/tinysshd-makekey', 'tinysshd', 'tinysshd');
  await ensureBinary('/usr/bin/tcpserver', 'ucspi-tcp', 'tinysshd');
  await ensureBinary(SFTP_SERVER, 'openssh-sftp-server', 'tinysshd (sftp)');
  const c = await common('tinysshd');
  const keyDir = path.join(c.dir, 'sshkeydir');
  await run('/usr/sbin/tinysshd-makekey', [keyDir]);
  const pk = await fsp.readFile(path.join(keyDir, 'ed25519.pk'));
  if (pk.length !== 32) throw new Error(`tinysshd-makekey wrote an ed25519.pk of ${pk.length} bytes`);
  const blob = Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(pk)]);
  const hostPublicKey = `ssh-ed25519 ${blob.toString('base64')}`;
  await writeKnownHosts(c, hostPublicKey);
  await userAuthorizedKeys(c.publicKey, true);
  // tcpserver: -H -R no DNS/ident look-ups, -l0 local name, -D TCP_NODELAY, -c concurrency.
  const args = [
    '-HRD', '-l0', '-c', '100', c.host, String(c.port),
    '/usr/sbin/tinysshd', '-v', '-x', `sftp=${SFTP_SERVER}`,
    ...stringArray(options.extra?.['args'], 'extra.args'),
    keyDir,
  ];
  const env = { PATH: '/usr/local/bin:/usr/bin:/bin', TETHER_TEST_SERVER: path.basename(c.dir) };
  const server = new SpawnedServer('tinysshd', c.host, c.port, c.username, c.privateKeyPath, c.knownHostsPath, hostPublicKey, c.homeDir, traitsOf('tinysshd'), c.dir,
    { file: '/usr/bin/tcpserver', args, env },
    () => userAuthorizedKeys(c.publicKey, false));
  await startOrRemove(server);
  return server;
}

async function startOrRemove(server: SpawnedServer): Promise<void> {
  try {
    await server.start();
  } catch (err) {
    await server.remove().catch(() => undefined);
    throw err;
  }
}

/**
 * Starts a real SSH server of `kind` on a free loopback port with a fresh host key, logging in
 * the harness user with a fresh ed25519 key. Resolves when it sends its SSH banner (bounded:
 * 20 s). A missing server binary is installed when this process is root with apt-get, else this
 * rejects with one line naming the Debian package. `inproc` (the in-process server) is started by test/helpers/inproc-server.ts.
 */
export async function startTestServer(kind: ServerKind, options: TestServerOptions = {}): Promise<TestServer> {
  switch (kind) {
    case 'openssh':
      return startOpenssh(options);
    case 'dropbear':
      return startDropbear(options);
    case 'asyncssh':
      return startAsyncssh(options);
    case 'tinysshd':
      return startTinysshd(options);
    case 'inproc': {
      // The in-process server (ssh-tether/server): its adapter lives beside this file.
      const { startInprocServer } = await import('./inproc-server.js');
      return startInprocServer(options);
    }
    default: {
      const never: never = kind;
      throw new Error(`unknown server kind ${String(never)}`);
    }
  }
}

/** Pids of the processes below a running server's listener (for tests that look for leftovers). */
export function serverDescendants(server: TestServer): number[] {
  if (server instanceof SpawnedServer) return server.pid === undefined ? [] : descendants(server.pid);
  const sshd = (server as TestServer & { sshd?: SshdHandle }).sshd;
  return sshd?.pid === undefined ? [] : descendants(sshd.pid);
}

/** The server's log so far (sshd `-e` VERBOSE, dropbear `-E`, tinysshd `-v`, asyncssh stdout). */
export function serverLogs(server: TestServer): string {
  if (server instanceof SpawnedServer) return server.logs();
  return (server as TestServer & { sshd?: SshdHandle }).sshd?.logs() ?? '';
}
