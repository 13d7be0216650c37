/**
 * Test harness: a real OpenSSH server (`/usr/sbin/sshd -D -e`) on a loopback port, with its own
 * temp dir holding the config, a host key, a user key pair, `authorized_keys` and `known_hosts`.
 *
 * Used by the vitest globalSetup (one shared server) and by tests that need a server of their
 * own (custom `sshd_config` lines, stop/start, killing session processes).
 *
 * Written here rather than taken from npm: no maintained package starts a real OpenSSH server
 * for tests (the ones that exist run ssh2's `Server` instead, which is a mock for our purposes).
 *
 * Follows sshd(8) and sshd_config(5) (OpenSSH 9.2): note that for most keywords the FIRST value
 * obtained wins, so an `extraConfig` line that names a keyword we set by default replaces our
 * default (the default line is dropped), instead of being silently ignored.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Options of {@link startSshd}. */
export interface SshdOptions {
  /**
   * Extra sshd_config lines (e.g. `['MaxSessions 2', 'AllowTcpForwarding no']`). A line whose
   * keyword we also set by default replaces the default; `Match` blocks go last, as written.
   * Do not set `Port`, `ListenAddress` or `HostKey` here: use the options below, so the
   * handle's `port`, `host` and `known_hosts` stay true.
   */
  extraConfig?: string[];
  /** Port to listen on. Default: a free port on the listen address. */
  port?: number;
  /** Address to listen on. Default `'127.0.0.1'`. Loopback addresses only. */
  listenAddress?: string;
  /**
   * Path to a private host key to reuse (copied into the server's dir), so a second server
   * has the same identity. Default: a fresh ed25519 key.
   */
  hostKeyPath?: string;
}

/** A running (or stopped) sshd started by {@link startSshd}. */
export interface SshdHandle {
  /** The listen address. */
  host: string;
  /** The listen port (kept across {@link SshdHandle.stop}/{@link SshdHandle.start}). */
  port: number;
  /** Login user: `tether` when the tests run as root, else the current user. */
  username: string;
  /** Temp dir holding config, keys and known_hosts. */
  dir: string;
  /** The user's ed25519 private key (mode 0600, no passphrase). */
  privateKeyPath: string;
  /** Contents of {@link SshdHandle.privateKeyPath}. */
  privateKey: Buffer;
  /** The user's public key line (`ssh-ed25519 AAAA... comment`). */
  publicKey: string;
  /** A known_hosts file (plain, not hashed) with the host key for `[host]:port`. */
  knownHostsPath: string;
  /** The server's private host key. */
  hostKeyPath: string;
  /** The server's host public key line (`type base64`). */
  hostPublicKey: string;
  /** `SHA256:...` fingerprint of the host key, as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string;
  /** The login user's home directory (writable by the user). */
  homeDir: string;
  /** Path of the generated sshd_config. */
  configPath: string;
  /** Pid of the `sshd -D` listener process, `undefined` when stopped. */
  pid: number | undefined;
  /** Whether the listener is running. */
  running: boolean;
  /**
   * Kills (SIGKILL) the listener and every process below it (per-connection sshd processes
   * and the user's commands), so existing connections really drop. Resolves once the listener
   * has exited and its descendants are gone (bounded: 5 s). Idempotent.
   */
  stop(): Promise<void>;
  /**
   * (Re)starts the listener on the same port with the same keys and config; resolves when it
   * listens (bounded: 10 s, retrying while the port is still in use). No-op when running.
   */
  start(): Promise<void>;
  /** sshd's stderr (`-e`, LogLevel VERBOSE) so far, across restarts (the last 2 MiB). */
  logs(): string;
  /**
   * Pids of the per-connection sshd processes, one per client connection (including ones
   * still authenticating): the process that serves the connection, so that SIGKILLing it
   * drops that connection. Post-auth that is the privilege-separated child of the listener's
   * child (`sshd: user@notty`), since killing only the `[priv]` monitor (the listener's direct
   * child) leaves the session running; pre-auth it is the listener's direct child.
   */
  sessionPids(): Promise<number[]>;
  /** Added: `stop()`, then deletes {@link SshdHandle.dir}. The handle cannot start again. */
  remove(): Promise<void>;
  /**
   * Added: SIGKILLs every per-connection process tree (monitor, privilege-separated child and
   * the user's commands) but keeps the listener running: every connection drops at once and
   * new ones are accepted. Resolves with the number of connections killed.
   */
  killSessions(): Promise<number>;
}

/** Serializable description of a server, handed from globalSetup to tests (vitest `provide`). */
export interface SshdInfo {
  host: string;
  port: number;
  username: string;
  dir: string;
  privateKeyPath: string;
  knownHostsPath: string;
  hostKeyPath: string;
  hostPublicKey: string;
  hostKeyFingerprint: string;
  homeDir: string;
  configPath: string;
  pid: number | undefined;
  /** Added: the user's public key line. */
  publicKey: string;
}

const SSHD = '/usr/sbin/sshd';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_LIMIT = 2 * 1024 * 1024;
const TEST_USER = 'tether';

/** Handles whose listener may be alive, killed synchronously on process exit. */
const live = new Set<{ pid: () => number | undefined }>();
/** Temp dirs made by this process and not removed yet, removed on process exit. */
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const h of live) {
      const pid = h.pid();
      if (pid !== undefined) killTreeSync(pid, true);
    }
    for (const dir of tempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

/** `setpriv` (util-linux) gives sshd a parent-death signal; without it, sshd is spawned as is. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

// ---------------------------------------------------------------------------------------------
// process helpers (Linux /proc)

interface ProcInfo {
  comm: string;
  ppid: number;
  state: string;
}

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ..." - comm may contain spaces and parens: split after the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const rest = stat.slice(close + 2).split(' ');
    const state = rest[0];
    const ppid = Number(rest[1]);
    if (state === undefined || !Number.isInteger(ppid)) return undefined;
    return { comm, ppid, state };
  } catch {
    return undefined;
  }
}

/** Live (not zombie) process? */
function alive(pid: number): boolean {
  const p = readProc(pid);
  return p !== undefined && p.state !== 'Z' && p.state !== 'X';
}

/** Map ppid -> child pids, from /proc (a snapshot; zombies excluded). */
function childMap(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return map;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    const p = readProc(pid);
    if (!p || p.state === 'Z' || p.state === 'X') continue;
    const list = map.get(p.ppid);
    if (list) list.push(pid);
    else map.set(p.ppid, [pid]);
  }
  return map;
}

export function descendants(root: number, map = childMap()): number[] {
  const out: number[] = [];
  const stack = [...(map.get(root) ?? [])];
  while (stack.length > 0 && out.length < 100_000) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(map.get(pid) ?? []));
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * SIGKILLs `root`'s whole tree. Freezes it first (SIGSTOP, repeated until no new process
 * appears) so nobody forks or gets re-parented to init while we collect it, then kills.
 * Returns every pid signalled (root first when included).
 */
export function killTreeSync(root: number, includeRoot: boolean): number[] {
  const seen = new Set<number>();
  if (includeRoot) {
    signal(root, 'SIGSTOP');
    seen.add(root);
  }
  for (let round = 0; round < 20; round++) {
    let added = 0;
    for (const pid of descendants(root)) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      signal(pid, 'SIGSTOP');
      added++;
    }
    if (added === 0) break;
  }
  for (const pid of seen) signal(pid, 'SIGKILL');
  return [...seen];
}

export async function waitGone(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > deadline) throw new Error(`processes still alive after ${timeoutMs} ms: ${pids.filter(alive).join(', ')}`);
    await sleep(10);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function run(file: string, args: string[], timeoutMs = 10_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stderr}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// login user

interface LoginUser {
  username: string;
  uid: number;
  gid: number;
  homeDir: string;
}

let userPromise: Promise<LoginUser> | undefined;

export function loginUser(): Promise<LoginUser> {
  userPromise ??= resolveLoginUser();
  return userPromise;
}

async function getent(db: string, key: string): Promise<string[] | undefined> {
  try {
    const { stdout } = await run('getent', [db, key]);
    return stdout.trim().split(':');
  } catch {
    return undefined;
  }
}

async function resolveLoginUser(): Promise<LoginUser> {
  if (process.getuid?.() !== 0) {
    const u = os.userInfo();
    return { username: u.username, uid: u.uid, gid: u.gid, homeDir: u.homedir };
  }
  // Root: sshd refuses `signal` requests for root sessions, so log in as a plain user with
  // /bin/sh (no rc files on non-interactive exec). Idempotent and tolerant of a concurrent
  // worker creating the same user (useradd may fail on "already exists" or a busy lock file).
  for (let attempt = 0; attempt < 20 && !(await getent('passwd', TEST_USER)); attempt++) {
    try {
      await run('useradd', ['-m', '-s', '/bin/sh', TEST_USER]);
    } catch {
      await sleep(100);
    }
  }
  const pw = await getent('passwd', TEST_USER);
  if (!pw) throw new Error(`could not create login user ${TEST_USER}`);
  const [, , uidS, gidS, , home, shell] = pw;
  const uid = Number(uidS);
  const gid = Number(gidS);
  const homeDir = home ?? `/home/${TEST_USER}`;
  if (shell !== '/bin/sh') await run('usermod', ['-s', '/bin/sh', TEST_USER]);
  // With UsePAM no, a locked password ('!...') blocks every login, pubkey included.
  const shadow = await getent('shadow', TEST_USER);
  if (shadow?.[1] !== '*') await run('usermod', ['-p', '*', TEST_USER]);
  await fsp.mkdir(homeDir, { recursive: true, mode: 0o755 });
  await fsp.chown(homeDir, uid, gid);
  return { username: TEST_USER, uid, gid, homeDir };
}

// ---------------------------------------------------------------------------------------------
// ports

/** Returns a port that was free on `host` (default `'127.0.0.1'`) a moment ago. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** `[host]:port` as known_hosts and ssh-keygen -F write it (plain host for port 22). */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

// ---------------------------------------------------------------------------------------------
// config

const DEFAULT_CONFIG: readonly string[] = [
  'UsePAM no',
  'StrictModes no',
  'PasswordAuthentication no',
  'KbdInteractiveAuthentication no',
  'PubkeyAuthentication yes',
  'Subsystem sftp internal-sftp',
  'AllowTcpForwarding yes',
  'AllowStreamLocalForwarding yes',
  'GatewayPorts no',
  'PermitRootLogin yes',
  'LogLevel VERBOSE',
  'MaxStartups 100:30:200',
  'ClientAliveInterval 0',
  'PrintMotd no',
  'PrintLastLog no',
  'UseDNS no',
];

function keywordOf(line: string): string | undefined {
  const m = /^\s*([A-Za-z]+)/.exec(line);
  return m?.[1]?.toLowerCase();
}

function buildConfig(dir: string, host: string, port: number, hostKey: string, extra: readonly string[]): string {
  // Keywords set by extraConfig before any Match block replace our defaults.
  const overridden = new Set<string>();
  for (const line of extra) {
    const k = keywordOf(line);
    if (k === 'match') break;
    if (k) overridden.add(k);
  }
  const base = [
    `Port ${port}`,
    `ListenAddress ${host}`,
    `HostKey ${hostKey}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    ...DEFAULT_CONFIG,
  ].filter((l) => !overridden.has(keywordOf(l) ?? ''));
  return [...base, ...extra, ''].join('\n');
}

// ---------------------------------------------------------------------------------------------
// server

class Sshd implements SshdHandle {
  host: string;
  port: number;
  username: string;
  dir: string;
  privateKeyPath: string;
  privateKey: Buffer;
  publicKey: string;
  knownHostsPath: string;
  hostKeyPath: string;
  hostPublicKey: string;
  hostKeyFingerprint: string;
  homeDir: string;
  configPath: string;
  pid: number | undefined = undefined;

  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log = '';
  private starting: Promise<void> | undefined;
  private removed = false;
  private stopping: Promise<void> | undefined;
  private readonly liveEntry = { pid: (): number | undefined => this.pid };

  constructor(fields: Omit<SshdHandle, 'pid' | 'running' | 'stop' | 'start' | 'logs' | 'sessionPids' | 'killSessions' | 'remove'>) {
    this.host = fields.host;
    this.port = fields.port;
    this.username = fields.username;
    this.dir = fields.dir;
    this.privateKeyPath = fields.privateKeyPath;
    this.privateKey = fields.privateKey;
    this.publicKey = fields.publicKey;
    this.knownHostsPath = fields.knownHostsPath;
    this.hostKeyPath = fields.hostKeyPath;
    this.hostPublicKey = fields.hostPublicKey;
    this.hostKeyFingerprint = fields.hostKeyFingerprint;
    this.homeDir = fields.homeDir;
    this.configPath = fields.configPath;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  logs(): string {
    return this.log;
  }

  private appendLog(s: string): void {
    this.log += s;
    if (this.log.length > LOG_LIMIT) this.log = this.log.slice(this.log.length - LOG_LIMIT);
  }

  start(): Promise<void> {
    if (this.removed) return Promise.reject(new Error(`sshd on port ${this.port} was removed`));
    if (this.child) return Promise.resolve();
    this.starting ??= (async () => {
      try {
        if (this.stopping) await this.stopping;
        const deadline = Date.now() + READY_TIMEOUT_MS;
        for (;;) {
          const result = await this.spawnOnce(deadline);
          if (result === 'ready') return;
          // Port still in use (e.g. a just-killed listener's socket): retry until the deadline.
          if (Date.now() > deadline) throw new Error(`sshd: port ${this.host}:${this.port} stays in use\n${this.log.slice(-4000)}`);
          await sleep(100);
        }
      } finally {
        this.starting = undefined;
      }
    })();
    return this.starting;
  }

  /** Spawns sshd once; resolves 'ready' when it listens, 'in-use' when the bind failed. */
  private spawnOnce(deadline: number): Promise<'ready' | 'in-use'> {
    // This spawn's own stderr (bounded), to judge readiness and failures.
    let own = '';
    // setpriv --pdeathsig: the listener dies with the thread that spawned it, even on SIGKILL
    // of the test worker (the exit hook covers ordinary exits). Hence vitest pool 'forks'.
    const argv = [SSHD, '-D', '-e', '-f', this.configPath];
    const child = SETPRIV
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(SSHD, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.pid = child.pid;
    live.add(this.liveEntry);
    installExitHook();
    child.unref();
    const stderr = child.stderr;
    if (stderr) {
      stderr.setEncoding('utf8');
      stderr.on('data', (s: string) => {
        this.appendLog(s);
        if (own.length < 64 * 1024) own += s;
      });
      stderr.on('error', () => undefined);
      (stderr as unknown as net.Socket).unref?.();
    }
    let onExit!: () => void;
    this.exited = new Promise<void>((resolve) => {
      onExit = resolve;
    });
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    let didExit = false;
    child.on('error', (err) => {
      this.appendLog(`spawn error: ${err.message}\n`);
      own += `spawn error: ${err.message}\n`;
      markExit();
    });
    child.on('exit', (code, sig) => {
      exitCode = code;
      exitSignal = sig;
      markExit();
    });
    const markExit = (): void => {
      if (didExit) return;
      didExit = true;
      if (this.child === child) {
        this.child = undefined;
        this.pid = undefined;
        live.delete(this.liveEntry);
      }
      onExit();
    };
    const listening = `Server listening on ${this.host} port ${this.port}`;
    const poll = async (): Promise<'ready' | 'in-use'> => {
      for (;;) {
        if (didExit) {
          // Give the last stderr bytes a moment to be read before judging the failure.
          await sleep(20);
          if (/Address already in use/.test(own)) return 'in-use';
          throw new Error(`sshd exited early (code ${String(exitCode)}, signal ${String(exitSignal)}):\n${own.slice(-4000)}`);
        }
        if (own.includes(listening)) return 'ready';
        if (Date.now() > deadline) {
          await this.stop();
          throw new Error(`sshd not listening on ${this.host}:${this.port} after ${READY_TIMEOUT_MS} ms:\n${own.slice(-4000)}`);
        }
        await sleep(10);
      }
    };
    return poll();
  }

  stop(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return this.stopping ?? Promise.resolve();
    this.stopping ??= (async () => {
      try {
        const pids = killTreeSync(child.pid!, true);
        await this.exited;
        await waitGone(pids, STOP_TIMEOUT_MS);
      } finally {
        this.stopping = undefined;
      }
    })();
    return this.stopping;
  }

  async remove(): Promise<void> {
    this.removed = true;
    await this.stop();
    await fsp.rm(this.dir, { recursive: true, force: true });
    tempDirs.delete(this.dir);
  }

  sessionPids(): Promise<number[]> {
    const pid = this.pid;
    if (pid === undefined) return Promise.resolve([]);
    const map = childMap();
    const out: number[] = [];
    for (const monitor of map.get(pid) ?? []) {
      // After authentication the connection is served by the monitor's privilege-separated
      // child (`sshd: user@notty`); killing only the monitor leaves that child (and the
      // connection) alive, so report the child when there is one.
      const net = (map.get(monitor) ?? []).find((c) => readProc(c)?.comm === 'sshd');
      out.push(net ?? monitor);
    }
    return Promise.resolve(out.sort((a, b) => a - b));
  }

  async killSessions(): Promise<number> {
    const pid = this.pid;
    if (pid === undefined) return 0;
    const roots = childMap().get(pid) ?? [];
    const killed: number[] = [];
    for (const r of roots) killed.push(...killTreeSync(r, true));
    await waitGone(killed, STOP_TIMEOUT_MS);
    return roots.length;
  }
}

async function ensurePrivsepDir(): Promise<void> {
  // sshd(8) needs its privilege separation directory (compiled in as /run/sshd on Debian).
  if (process.getuid?.() !== 0) return;
  try {
    await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  } catch {
    // not root: sshd runs without privilege separation chroot
  }
}

async function keygen(args: string[]): Promise<string> {
  return (await run('ssh-keygen', args)).stdout;
}

/**
 * Starts a real OpenSSH server on a loopback port, in a fresh temp dir (see {@link SshdOptions}).
 * Resolves when it accepts connections (bounded: 10 s); rejects with sshd's stderr if it exits
 * early. The server is SIGKILLed when this process exits; call `stop()` when done.
 */
export async function startSshd(options: SshdOptions = {}): Promise<SshdHandle> {
  const host = options.listenAddress ?? '127.0.0.1';
  if (!(net.isIPv4(host) && host.startsWith('127.')) && host !== '::1') {
    throw new Error(`startSshd: listenAddress must be a loopback IP address (127.x.y.z or ::1), got ${JSON.stringify(host)}`);
  }
  const user = await loginUser();
  await ensurePrivsepDir();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-sshd-'));
  tempDirs.add(dir);
  installExitHook();
  await fsp.chmod(dir, 0o755);

  const hostKeyPath = path.join(dir, 'host_key');
  if (options.hostKeyPath !== undefined) {
    await fsp.copyFile(options.hostKeyPath, hostKeyPath);
    await fsp.chmod(hostKeyPath, 0o600);
    const pub = (await keygen(['-y', '-f', hostKeyPath])).trim();
    await fsp.writeFile(`${hostKeyPath}.pub`, `${pub}\n`);
  } else {
    await keygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'tether-test-host', '-f', hostKeyPath]);
  }
  const hostPublicKey = (await fsp.readFile(`${hostKeyPath}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  const fp = (await keygen(['-l', '-E', 'sha256', '-f', `${hostKeyPath}.pub`])).trim().split(/\s+/)[1];
  if (!fp?.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -l output for ${hostKeyPath}.pub`);

  const privateKeyPath = path.join(dir, 'id_ed25519');
  await keygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'tether-test-user', '-f', privateKeyPath]);
  await fsp.chmod(privateKeyPath, 0o600);
  const privateKey = await fsp.readFile(privateKeyPath);
  const publicKey = (await fsp.readFile(`${privateKeyPath}.pub`, 'utf8')).trim();
  await fsp.writeFile(path.join(dir, 'authorized_keys'), `${publicKey}\n`, { mode: 0o644 });

  const configPath = path.join(dir, 'sshd_config');
  const knownHostsPath = path.join(dir, 'known_hosts');
  const explicitPort = options.port;

  for (let attempt = 0; ; attempt++) {
    const port = explicitPort ?? (await freePort(host));
    await fsp.writeFile(configPath, buildConfig(dir, host, port, hostKeyPath, options.extraConfig ?? []), { mode: 0o644 });
    await fsp.writeFile(knownHostsPath, `${knownHostsName(host, port)} ${hostPublicKey}\n`, { mode: 0o644 });
    const handle = new Sshd({
      host,
      port,
      username: user.username,
      dir,
      privateKeyPath,
      privateKey,
      publicKey,
      knownHostsPath,
      hostKeyPath,
      hostPublicKey,
      hostKeyFingerprint: fp,
      homeDir: user.homeDir,
      configPath,
    });
    try {
      await handle.start();
      return handle;
    } catch (err) {
      // A free port picked by us may be taken by someone else before sshd binds: pick another.
      if (explicitPort !== undefined || attempt >= 3 || !/stays in use/.test(String(err))) {
        await handle.remove();
        throw err;
      }
    }
  }
}

/** The serializable part of a handle (for vitest `provide`/`inject`). */
export function describeSshd(h: SshdHandle): SshdInfo {
  return {
    host: h.host,
    port: h.port,
    username: h.username,
    dir: h.dir,
    privateKeyPath: h.privateKeyPath,
    knownHostsPath: h.knownHostsPath,
    hostKeyPath: h.hostKeyPath,
    hostPublicKey: h.hostPublicKey,
    hostKeyFingerprint: h.hostKeyFingerprint,
    homeDir: h.homeDir,
    configPath: h.configPath,
    pid: h.pid,
    publicKey: h.publicKey,
  };
}

/**
 * Added: OpenSSH client options (for `ssh`, `sftp` and `scp` alike) that log in to `info`
 * hermetically: no user config, only our key, strict host key checking against our
 * known_hosts, never prompting. Append the destination host (`info.host`) yourself.
 */
export function opensshArgs(info: Pick<SshdInfo, 'host' | 'port' | 'username' | 'privateKeyPath' | 'knownHostsPath'>): string[] {
  return [
    '-F', '/dev/null',
    '-i', info.privateKeyPath,
    '-o', `Port=${info.port}`,
    '-o', `User=${info.username}`,
    '-o', `UserKnownHostsFile=${info.knownHostsPath}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'ConnectTimeout=10',
  ];
}
