/**
 * `diagnose()`: walks the layers of an SSH connection in order (config, DNS, TCP, banner, key
 * exchange, host key, authentication, session, and optionally a forward and SFTP), stops at the
 * first failure and says what failed and how to fix it.
 *
 * @module doctor
 */
import type { Socket } from 'node:net';
import type ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { SshError } from '../errors.js';
import { DEFAULTS, type ResolvedOptions } from '../options.js';
import type { SshConfigWarning } from '../config/ssh-config.js';
import { resolveConfig, type EffectiveConfig } from '../settings.js';
import { buildAuthSteps, loadIdentityFile, newAuthTrace, parseWithPassphrase, type AuthStep, type AuthTrace, type PassphraseSource } from '../connection/auth.js';
import { checkHostKey, fingerprintSha256, hostPattern, keyBlobType, loadKnownHosts } from '../known-hosts/index.js';
import { targetClientOptions, type TargetOptions } from './effective.js';
import {
  forwardOnce,
  listAgentKeys,
  preview,
  readBanner,
  resolveAddresses,
  runHandshake,
  runTrue,
  sftpOnce,
  tcpConnect,
  type AuthTry,
  type HandshakeRecord,
  type TcpTry,
} from './probe.js';

/** The layers, in the order they are checked. */
export type DiagnoseStepName = 'config' | 'dns' | 'tcp' | 'banner' | 'kex' | 'hostkey' | 'auth' | 'session' | 'forward' | 'sftp';

/** The steps in order. */
export const DIAGNOSE_STEPS: readonly DiagnoseStepName[] = Object.freeze(['config', 'dns', 'tcp', 'banner', 'kex', 'hostkey', 'auth', 'session', 'forward', 'sftp']);

/**
 * Process exit code of `ssh-tether doctor` for a failure at each step: 0 when every step passed,
 * 10 + the step's index otherwise (config 10, dns 11, tcp 12, banner 13, kex 14, hostkey 15,
 * auth 16, session 17, forward 18, sftp 19). The CLI uses 1 for an internal error and 2 for bad usage.
 */
export const DIAGNOSE_EXIT_CODES: Readonly<Record<DiagnoseStepName, number>> = Object.freeze({
  config: 10,
  dns: 11,
  tcp: 12,
  banner: 13,
  kex: 14,
  hostkey: 15,
  auth: 16,
  session: 17,
  forward: 18,
  sftp: 19,
});

/** One checked layer. */
export interface DiagnoseStep {
  /** Which layer. */
  step: DiagnoseStepName;
  /** Whether it passed. */
  ok: boolean;
  /** How long the check took, in milliseconds. */
  durationMs: number;
  /** What was found (one line). */
  detail: string;
  /** What to do about it (set on failures, and on passes with a warning). */
  hint?: string;
  /** Structured findings of the step (addresses, algorithms, fingerprint, methods tried...). */
  data?: Record<string, unknown>;
}

/** Result of {@link diagnose}. */
export interface DiagnoseReport {
  /** The target as given. */
  target: string;
  /** `true` when every step run passed. */
  ok: boolean;
  /** The steps run, in order; the last one failed when `ok` is false. */
  steps: DiagnoseStep[];
  /** The step that failed, if any. */
  failedStep?: DiagnoseStepName;
  /** 0, or the {@link DIAGNOSE_EXIT_CODES} entry of the failed step. */
  exitCode: number;
}

/** Options of {@link diagnose}: how to reach the target (explicit options win over ssh_config), and what to check. */
export interface DiagnoseOptions extends TargetOptions {
  /** Bound on each network step (DNS, each TCP attempt, banner, each SSH phase, session...), in ms. @default 10000 */
  stepTimeoutMs?: number;
  /** Also open a `direct-tcpip` channel to `host:port` as seen from the server (`host` default `localhost`). */
  forward?: { host?: string; port: number };
  /** Also start the `sftp` subsystem. @default false */
  sftp?: boolean;
}

interface Outcome {
  ok: boolean;
  detail: string;
  hint?: string | undefined;
  data?: Record<string, unknown>;
}

const DEFAULT_STEP_TIMEOUT_MS = 10_000;

function msg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function warningsText(w: readonly SshConfigWarning[]): string {
  return w.map((x) => `${x.keyword}: ${x.message}`).join('; ');
}

const TCP_HINT: Record<TcpTry['outcome'], string> = {
  connected: '',
  refused: 'nothing listens there (connection refused): is sshd running, and is the Port right?',
  timeout: 'no answer (timed out): a firewall drops the packets, or the host is down',
  unreachable: 'no route to the address: check the network, VPN or the address itself',
  error: 'the connection failed',
};

/** Which option/ssh_config keyword sets an algorithm category named in ssh2's debug output. */
const ALGO_CATEGORY: ReadonlyArray<{ match: RegExp; list: string; option: string; keyword: string }> = [
  { match: /key exchange/i, list: 'KEX method', option: 'algorithms.kex', keyword: 'KexAlgorithms' },
  { match: /host key/i, list: 'Host key format', option: 'algorithms.serverHostKey', keyword: 'HostKeyAlgorithms' },
  { match: /C->S cipher/i, list: 'C->S cipher', option: 'algorithms.cipher', keyword: 'Ciphers' },
  { match: /S->C cipher/i, list: 'S->C cipher', option: 'algorithms.cipher', keyword: 'Ciphers' },
  { match: /C->S MAC/i, list: 'C->S MAC', option: 'algorithms.hmac', keyword: 'MACs' },
  { match: /S->C MAC/i, list: 'S->C MAC', option: 'algorithms.hmac', keyword: 'MACs' },
  { match: /compression/i, list: 'C->S compression', option: 'algorithms.compress', keyword: 'Compression' },
];

interface AuthPlan {
  /** The client's own authentication steps for these settings (`buildAuthSteps`), in its order. */
  steps: AuthStep[];
  /** What the client's auth code records (methods tried, notes), shared with its handler. */
  trace: AuthTrace;
  /** Problems found while preparing (bad key permissions, unreadable keys, agent trouble). */
  problems: string[];
  /** Hints for those problems. */
  hints: string[];
  agentKeys: number | undefined;
}

function keyProblem(plan: AuthPlan, err: unknown, file: string | undefined): void {
  const m = msg(err);
  if (!plan.problems.includes(m)) plan.problems.push(m);
  if (file === undefined) return;
  if (/permissions/.test(m)) plan.hints.push(`chmod 600 ${file}`);
  else if (/passphrase/.test(m)) plan.hints.push(`give the passphrase of ${file}, or add the key to an agent`);
}

/**
 * Prepares authentication exactly as `connect()` does: the steps come from the client's own
 * `buildAuthSteps`, and the handshake walks them with the client's `makeAuthHandler`. Before that,
 * each key file and the agent are looked at on their own, so that the report names every problem
 * (the client stops at the first). The passphrase callback is asked once, by `buildAuthSteps`.
 * When `buildAuthSteps` itself fails (as `connect()` would, with `ERR_SSH_KEY`), the handshake
 * still runs with no method, to learn what the server allows.
 */
async function planAuth(o: ResolvedOptions, timeoutMs: number): Promise<AuthPlan> {
  const plan: AuthPlan = { steps: [], trace: newAuthTrace(), problems: [], hints: [], agentKeys: undefined };
  if (o.agent !== undefined) {
    try {
      const keys = (await listAgentKeys(o.agent, timeoutMs)).filter((k): k is ParsedKey => typeof k === 'object' && k !== null && typeof (k as Partial<ParsedKey>).getPublicSSH === 'function');
      plan.agentKeys = keys.length;
      if (keys.length === 0) {
        plan.problems.push(`the agent at ${o.agent} holds no keys`);
        plan.hints.push('add your key to the agent (ssh-add ~/.ssh/id_ed25519) or name it with IdentityFile / identityFiles');
      }
    } catch (err) {
      plan.problems.push(`cannot use the agent at ${o.agent}: ${msg(err)}`);
      plan.hints.push('check SSH_AUTH_SOCK / IdentityAgent (is ssh-agent running?)');
    }
  }
  // A callback is not asked here (buildAuthSteps asks it): an encrypted key is then not a problem.
  const asksLater = typeof o.passphrase === 'function';
  const passphrase: PassphraseSource = asksLater ? undefined : o.passphrase?.reveal();
  const encryptedOnly = (err: unknown): boolean => asksLater && /no passphrase was given/.test(msg(err));
  if (o.privateKey) {
    try {
      await parseWithPassphrase(o.privateKey.reveal(), passphrase, 'privateKey option');
    } catch (err) {
      if (!encryptedOnly(err)) keyProblem(plan, err, undefined);
    }
  }
  for (const file of o.identityFiles) {
    try {
      await loadIdentityFile(file, passphrase, o.identityFilesDefaulted);
    } catch (err) {
      if (!encryptedOnly(err)) keyProblem(plan, err, file);
    }
  }
  try {
    plan.steps = await buildAuthSteps(o, plan.trace);
  } catch (err) {
    keyProblem(plan, err, undefined);
    plan.problems.push('connect() would fail before offering any method; the handshake below offers none');
  }
  return plan;
}

function describeTry(t: AuthTry): string {
  const what = t.key ? `${t.method} ${t.key}` : t.method;
  const allows = t.serverAllows ? ` (server allows: ${t.serverAllows.join(',')})` : '';
  return `${what}: ${t.answer}${t.answer === 'accepted' ? '' : allows}`;
}

/**
 * Diagnoses the connection to `target`, layer by layer, stopping at the first failure. Never
 * throws for a connection problem: every failure is a step with `ok: false`, a `detail` and a
 * `hint` (e.g. the `ssh-keygen -R` command for a changed host key). It never writes
 * known_hosts (an unknown key under `accept-new` is reported, not recorded) and runs nothing
 * on the server but `true`.
 *
 * Steps (see {@link DiagnoseStepName}): `config` (ssh_config applied, warnings for keywords not
 * applied), `dns`, `tcp` (each address until one answers: refused, timeout and unreachable
 * told apart), `banner` (RFC 4253 section 4.2 identification string; a stall is detected by
 * timeout), `kex` (negotiated algorithms, or both sides' lists when nothing matches), `hostkey`
 * (SHA256 fingerprint and known_hosts status with file and line, sshd(8) SSH_KNOWN_HOSTS FILE
 * FORMAT), `auth` (RFC 4252: each method and key tried, by fingerprint, with the server's answer;
 * key file permissions; an empty agent; `MaxAuthTries` exhausted), `session` (runs `true`,
 * RFC 4254 section 6.5), `forward` (a `direct-tcpip` channel, RFC 4254 section 7.2) and `sftp`
 * (the subsystem starts), the last two only when asked. `forward` and `sftp` run on the first
 * connection; when one fails there it is tried once more on a fresh connection (a pass there
 * is a pass, with a note), and when the server allows one session per connection (tinysshd:
 * it refuses a second session with reason 1, "only one 'session' channel allowed", or ends the
 * connection with its session) each later step runs on its own connection and its detail says
 * "the server allows one session per connection" (`data.sessionsPerConnection: 1`).
 *
 * @param target - `[user@]host-or-alias`, resolved through ssh_config like `ssh` does.
 * @param options - explicit client options (they win over ssh_config), `sshConfig`,
 *   `stepTimeoutMs` (default 10000), `forward`, `sftp`.
 * @returns the report; `exitCode` is 0 or the failing step's {@link DIAGNOSE_EXIT_CODES} code.
 *   A bad target, a bad option or an unreadable ssh_config is a failed `config` step
 *   (its `data.code` is `ERR_SSH_CONFIG`).
 *
 * @example
 * ```ts
 * const report = await diagnose('build-box', { sftp: true });
 * for (const s of report.steps) console.log(s.ok ? 'ok ' : 'FAIL', s.step, s.detail, s.hint ?? '');
 * ```
 */
export async function diagnose(target: string, options: DiagnoseOptions = {}): Promise<DiagnoseReport> {
  const { stepTimeoutMs = DEFAULT_STEP_TIMEOUT_MS, forward, sftp, ...targetOptions } = options;
  const steps: DiagnoseStep[] = [];
  const timeoutMs = Number.isFinite(stepTimeoutMs) && stepTimeoutMs > 0 ? stepTimeoutMs : DEFAULT_STEP_TIMEOUT_MS;
  const report = (): DiagnoseReport => {
    const failed = steps.find((s) => !s.ok);
    return failed
      ? { target, ok: false, steps, failedStep: failed.step, exitCode: DIAGNOSE_EXIT_CODES[failed.step] }
      : { target, ok: true, steps, exitCode: 0 };
  };
  const run = async (step: DiagnoseStepName, fn: () => Promise<Outcome>): Promise<boolean> => {
    const t0 = performance.now();
    let out: Outcome;
    try {
      out = await fn();
    } catch (err) {
      out = { ok: false, detail: msg(err), data: err instanceof SshError ? { code: err.code } : {} };
    }
    push(step, out, performance.now() - t0);
    return out.ok;
  };
  const push = (step: DiagnoseStepName, out: Outcome, durationMs: number): void => {
    const s: DiagnoseStep = { step, ok: out.ok, durationMs: Math.max(0, Math.round(durationMs * 10) / 10), detail: out.detail };
    if (out.hint !== undefined && out.hint !== '') s.hint = out.hint;
    if (out.data !== undefined) s.data = out.data;
    steps.push(s);
  };

  // 1. config
  let o: EffectiveConfig | undefined;
  const configOk = await run('config', async () => {
    try {
      const co = targetClientOptions(target, targetOptions);
      const { host, ...rest } = co;
      o = await resolveConfig(typeof host === 'string' ? host : (host[0] ?? ''), rest); // a failover list: its first host
    } catch (err) {
      return {
        ok: false,
        detail: msg(err),
        hint: 'fix the option or the ssh_config line named above (ssh -G <host> shows what OpenSSH makes of the config)',
        data: err instanceof SshError ? { code: err.code } : {},
      };
    }
    const r = o;
    const jumpNote = r.jump.length > 0 ? `ProxyJump ${r.jump.join(',')} is not followed by the doctor: the steps below test the direct path` : '';
    const warn = [warningsText(r.warnings), jumpNote].filter((x) => x !== '').join('; ');
    return {
      ok: true,
      detail:
        `${r.username}@${r.host}:${r.port}; identity files: ${r.identityFiles.join(', ') || 'none'}; agent: ${r.agent ?? 'none'}; ` +
        `known_hosts: ${r.knownHostsFiles.join(', ')}; StrictHostKeyChecking ${r.strictHostKeyChecking}; ` +
        `connect timeout ${r.connectTimeoutMs} ms; config files: ${r.sources.join(', ') || 'none'}` +
        (warn ? `; warnings: ${warn}` : ''),
      hint: warn || undefined,
      data: {
        host: r.host,
        port: r.port,
        username: r.username,
        identityFiles: [...r.identityFiles],
        agent: r.agent ?? null,
        knownHostsFiles: [...r.knownHostsFiles],
        globalKnownHostsFiles: [...r.globalKnownHostsFiles],
        strictHostKeyChecking: r.strictHostKeyChecking,
        connectTimeoutMs: r.connectTimeoutMs,
        keepaliveIntervalMs: r.keepaliveIntervalMs,
        keepaliveCountMax: r.keepaliveCountMax,
        jump: [...r.jump],
        warnings: r.warnings.map((w) => ({ keyword: w.keyword, message: w.message })),
        sources: [...r.sources],
      },
    };
  });
  if (!configOk || !o) return report();
  const opts: ResolvedOptions = o;

  // 2. DNS
  let addresses: string[] = [];
  if (
    !(await run('dns', async () => {
      try {
        addresses = await resolveAddresses(opts.host, timeoutMs);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
        const hint =
          code === 'ENOTFOUND'
            ? `the name does not exist: check the spelling, or the HostName line for this alias`
            : code === 'EAI_AGAIN' || code === 'ETIMEOUT'
              ? 'the DNS server did not answer: check the resolver (/etc/resolv.conf) and the network'
              : 'check the name and the resolver';
        return { ok: false, detail: `cannot resolve ${opts.host}: ${code}`, hint, data: { code } };
      }
      if (addresses.length === 0) return { ok: false, detail: `${opts.host} resolves to no address`, hint: 'check the DNS records of the name' };
      return { ok: true, detail: `${opts.host} -> ${addresses.join(', ')}`, data: { addresses } };
    }))
  ) {
    return report();
  }

  // 3. TCP
  let sock: Socket | undefined;
  let client: ssh2.Client | undefined;
  let connectedAddress = '';
  /** Extra connections opened for steps run on their own connection (ended at the end). */
  const extra: Array<{ client: ssh2.Client; sock: Socket }> = [];
  try {
    const tcpOk = await run('tcp', async () => {
      const tries: TcpTry[] = [];
      const perTryMs = Math.min(timeoutMs, opts.connectTimeoutMs);
      for (const a of addresses.slice(0, 16)) {
        const r = await tcpConnect(a, opts.port, perTryMs);
        if ('sock' in r) {
          sock = r.sock;
          connectedAddress = a;
          tries.push({ address: a, outcome: 'connected' });
          return { ok: true, detail: `connected to ${a} port ${opts.port}${tries.length > 1 ? ` (after ${tries.length - 1} failed)` : ''}`, data: { address: a, tries } };
        }
        tries.push(r.fail);
      }
      const detail = tries.map((t) => `${t.address}: ${t.outcome}${t.code ? ` (${t.code})` : ''}`).join('; ');
      const kinds = [...new Set(tries.map((t) => t.outcome))];
      return { ok: false, detail: `cannot connect to port ${opts.port}: ${detail}`, hint: kinds.map((k) => TCP_HINT[k]).join('; '), data: { tries } };
    });
    if (!tcpOk || !sock) return report();
    const tcpSock: Socket = sock;

    // 4. banner
    let ident = '';
    const bannerOk = await run('banner', async () => {
      const b = await readBanner(tcpSock, timeoutMs);
      switch (b.kind) {
        case 'ok': {
          ident = b.ident;
          if (!/^SSH-(2\.0|1\.99)-/.test(b.ident)) {
            return { ok: false, detail: `the server speaks an unsupported protocol version: ${b.ident}`, hint: 'only SSH protocol 2.0 is supported' };
          }
          const pre = b.preamble.length > 0 ? ` (after ${b.preamble.length} pre-banner line(s): ${b.preamble.slice(0, 3).join(' | ')})` : '';
          return { ok: true, detail: `${b.ident}${pre}`, data: { ident: b.ident, preamble: b.preamble } };
        }
        case 'stall':
          return {
            ok: false,
            detail: `no identification string within ${timeoutMs} ms${b.received.length > 0 ? ` (received ${b.received.length} bytes: "${preview(b.received)}")` : ' (nothing received)'}`,
            hint: 'the port accepts TCP but does not speak SSH: a stalled or overloaded sshd (MaxStartups, slow reverse DNS with UseDNS), a proxy or firewall holding the connection, or another service on this port',
            data: { received: b.received.length },
          };
        case 'closed':
          return {
            ok: false,
            detail: `the server closed the connection before its identification string${b.received.length > 0 ? ` (received "${preview(b.received)}")` : ''}`,
            hint: 'sshd refused the connection early (MaxStartups, tcp wrappers / hosts.deny, fail2ban, or a crash): see the server log',
          };
        case 'not-ssh':
          return {
            ok: false,
            detail: `the server did not send an SSH identification string: "${preview(b.received)}"`,
            hint: `port ${opts.port} runs something else than SSH: check the Port`,
          };
      }
    });
    if (!bannerOk) return report();

    // 5-7. key exchange, host key, authentication: one ssh2 connection over the same socket.
    const plan = await planAuth(opts, timeoutMs);
    const known = await loadKnownHosts([...opts.knownHostsFiles, ...opts.globalKnownHostsFiles]).then(
      (k) => ({ ok: true as const, k }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    let hostKey: Outcome | undefined;
    const lookupName = hostPattern(opts.host, opts.port);
    const { record, client: c } = await runHandshake({
      sock: tcpSock,
      settings: opts,
      auth: plan,
      phaseTimeoutMs: timeoutMs,
      verifyHostKey: (key) => {
        hostKey = judgeHostKey(key, known, opts, lookupName);
        return Promise.resolve(hostKey.ok);
      },
    });
    client = c;
    const m = record.marks;
    push('kex', kexOutcome(record, ident), (m.kex ?? performance.now()) - m.start);
    if (record.phase === 'kex') return report();
    push('hostkey', hostKey ?? { ok: false, detail: `host key check did not finish: ${record.error ? msg(record.error) : record.end}` }, (m.hostkey ?? performance.now()) - (m.kex ?? m.start));
    if (record.phase === 'hostkey') return report();
    push('auth', authOutcome(record, plan, opts), (m.auth ?? performance.now()) - (m.hostkey ?? m.start));
    if (record.end !== 'ready' || !c) return report();
    const live: ssh2.Client = c;
    let liveClosed = false;
    live.on('close', () => {
      liveClosed = true;
    });

    /**
     * A second connection like the first (same address, algorithms, host-key check and
     * authentication), for a step that failed on the first one or when the server allows one
     * session per connection. Rejects with why it could not be made.
     */
    const freshConnection = async (): Promise<ssh2.Client> => {
      const r = await tcpConnect(connectedAddress, opts.port, Math.min(timeoutMs, opts.connectTimeoutMs));
      if (!('sock' in r)) throw new Error(`a second connection failed: ${r.fail.outcome}${r.fail.code ? ` (${r.fail.code})` : ''}`);
      const b = await readBanner(r.sock, timeoutMs);
      if (b.kind !== 'ok') {
        r.sock.destroy();
        throw new Error(`a second connection got no identification string (${b.kind})`);
      }
      const { record: rec2, client: c2 } = await runHandshake({
        sock: r.sock,
        settings: opts,
        auth: plan,
        phaseTimeoutMs: timeoutMs,
        verifyHostKey: (key) => Promise.resolve(judgeHostKey(key, known, opts, lookupName).ok),
      });
      if (c2) extra.push({ client: c2, sock: r.sock });
      if (rec2.end !== 'ready' || !c2) throw new Error(`a second connection did not log in: ${rec2.error ? msg(rec2.error) : rec2.end}`);
      return c2;
    };
    /** Set once the server showed it allows one session per connection: later steps get their own connection. */
    let oneSessionPerConnection = false;
    const ONE_SESSION_NOTE = 'the server allows one session per connection';
    /**
     * Runs `op` on the first connection (or on its own when the server allows one session per
     * connection); when that fails, once more on a fresh connection. A pass there is a pass,
     * noting why it needed its own connection; a failure there is the step's failure.
     */
    const onSomeConnection = async (op: (cl: ssh2.Client) => Promise<void>): Promise<{ ok: true; note?: string } | { ok: false; err: unknown; note?: string }> => {
      let firstErr: unknown;
      if (!oneSessionPerConnection) {
        try {
          await op(live);
          return { ok: true };
        } catch (err) {
          firstErr = err;
        }
        if (isOneSessionRefusal(firstErr) || liveClosed) oneSessionPerConnection = true;
      }
      let fresh: ssh2.Client;
      try {
        fresh = await freshConnection();
      } catch {
        return { ok: false, err: firstErr ?? new Error('no connection for this step') };
      }
      try {
        await op(fresh);
        if (oneSessionPerConnection) return { ok: true, note: `run on its own connection: ${ONE_SESSION_NOTE}` };
        return { ok: true, note: `passed on a second connection after failing on the first (${msg(firstErr)})` };
      } catch (err) {
        return { ok: false, err, ...(oneSessionPerConnection ? { note: ONE_SESSION_NOTE } : {}) };
      } finally {
        fresh.end();
      }
    };

    // 8. session
    if (
      !(await run('session', async () => {
        const t0 = performance.now();
        try {
          const code = await runTrue(live, timeoutMs);
          const rtt = Math.round((performance.now() - t0) * 10) / 10;
          if (code !== 0) {
            return { ok: false, detail: `\`true\` exited with ${code ?? 'no status'}`, hint: "the user's login shell is broken or refuses commands (check the shell in /etc/passwd, ForceCommand)" };
          }
          return { ok: true, detail: `ran \`true\` in ${rtt} ms (channel open + exec + exit)`, data: { roundTripMs: rtt } };
        } catch (err) {
          const reason = (err as { reason?: unknown }).reason;
          return {
            ok: false,
            detail: `cannot run a command: ${msg(err)}`,
            hint: reason === 1 ? 'the server refuses session channels (MaxSessions 0, or a restricted account)' : 'check MaxSessions and the server log',
            data: reason === undefined ? {} : { reason },
          };
        }
      }))
    ) {
      return report();
    }

    // 9. forward
    if (forward) {
      const fhost = forward.host ?? 'localhost';
      if (
        !(await run('forward', async () => {
          const r = await onSomeConnection((cl) => forwardOnce(cl, fhost, forward.port, timeoutMs));
          const own = oneSessionPerConnection ? { ownConnection: true, sessionsPerConnection: 1 } : {};
          if (r.ok) {
            return { ok: true, detail: `the server connected to ${fhost}:${forward.port} through a direct-tcpip channel${r.note ? ` (${r.note})` : ''}`, data: own };
          }
          const reason = (r.err as { reason?: unknown }).reason;
          const hint =
            reason === 1
              ? `the server forbids TCP forwarding (AllowTcpForwarding / PermitOpen / DisableForwarding in sshd_config)${oneSessionPerConnection ? ', or does not implement it (tinysshd has no port forwarding)' : ''}`
              : reason === 2
                ? `nothing answers at ${fhost}:${forward.port} as seen from the server`
                : 'check the server log';
          return {
            ok: false,
            detail: `cannot open a forward to ${fhost}:${forward.port}: ${msg(r.err)}${r.note ? ` (${r.note})` : ''}`,
            hint,
            data: { ...(reason === undefined ? {} : { reason }), ...own },
          };
        }))
      ) {
        return report();
      }
    }

    // 10. sftp
    if (sftp) {
      await run('sftp', async () => {
        const r = await onSomeConnection((cl) => sftpOnce(cl, timeoutMs));
        const own = oneSessionPerConnection ? { ownConnection: true, sessionsPerConnection: 1 } : {};
        if (r.ok) return { ok: true, detail: `the sftp subsystem started${r.note ? ` (${r.note})` : ''}`, data: own };
        if (oneSessionPerConnection && isOneSessionRefusal(r.err)) {
          return { ok: false, detail: `cannot start the sftp subsystem: ${msg(r.err)}`, hint: `${ONE_SESSION_NOTE}, and refused it even on a connection of its own: see the server log`, data: own };
        }
        return {
          ok: false,
          detail: `cannot start the sftp subsystem: ${msg(r.err)}${r.note ? ` (${r.note})` : ''}`,
          hint: 'enable it on the server: `Subsystem sftp internal-sftp` (or the sftp-server path) in sshd_config',
          data: own,
        };
      });
    }
    return report();
  } finally {
    for (const x of extra) {
      x.client.end();
      x.client.destroy();
      x.sock.destroy();
    }
    client?.end();
    client?.destroy();
    sock?.destroy();
  }
}

/** A session refused because the connection has (or just had) its one session (tinysshd: reason 1, "only one 'session' channel allowed"). */
function isOneSessionRefusal(err: unknown): boolean {
  return (err as { reason?: unknown } | undefined)?.reason === 1 && /only one 'session' channel/i.test(msg(err));
}

type KnownLoad = { ok: true; k: Awaited<ReturnType<typeof loadKnownHosts>> } | { ok: false; err: unknown };

function judgeHostKey(key: Buffer, known: KnownLoad, o: ResolvedOptions, lookupName: string): Outcome {
  const fp = fingerprintSha256(key);
  const type = keyBlobType(key) ?? 'unknown-type';
  const data: Record<string, unknown> = { keyType: type, fingerprint: fp, host: lookupName };
  if (!known.ok) {
    return { ok: false, detail: `${type} ${fp}: cannot read known_hosts: ${msg(known.err)}`, hint: 'fix the file permissions, or name other files with UserKnownHostsFile / knownHostsFiles', data };
  }
  const st = checkHostKey(known.k.entries, o.host, o.port, key);
  const userFile = o.knownHostsFiles[0] ?? DEFAULTS.knownHostsFiles[0];
  const portArg = o.port === 22 ? '' : `-p ${o.port} `;
  switch (st.status) {
    case 'known':
      return { ok: true, detail: `${type} ${fp} known (${st.file}:${st.line})`, data: { ...data, status: 'known', file: st.file, line: st.line } };
    case 'unknown': {
      data.status = 'unknown';
      const add = `check the fingerprint with the server's administrator, then add it: ssh-keyscan ${portArg}${o.host} >> ${userFile}, or connect once with StrictHostKeyChecking=accept-new (strictHostKeyChecking: 'accept-new')`;
      if (o.strictHostKeyChecking === 'yes') {
        return { ok: false, detail: `${type} ${fp} is not in known_hosts (${o.knownHostsFiles.join(', ')}) for ${lookupName}`, hint: add, data };
      }
      return {
        ok: true,
        detail: `${type} ${fp} unknown; StrictHostKeyChecking ${o.strictHostKeyChecking} ${o.strictHostKeyChecking === 'accept-new' ? `would record it in ${userFile} (the doctor does not write)` : 'accepts it unchecked'}`,
        hint: o.strictHostKeyChecking === 'no' ? `host keys are not checked: ${add}` : add,
        data,
      };
    }
    case 'changed': {
      const fix = `if the server was reinstalled or re-keyed, remove the old key: ssh-keygen -R '${lookupName}' -f ${st.file} (line ${st.line}), then add the new one; otherwise someone may be intercepting the connection`;
      const d = { ...data, status: 'changed', file: st.file, line: st.line, knownKeyType: st.knownKeyType };
      if (o.strictHostKeyChecking === 'no') return { ok: true, detail: `${type} ${fp} differs from the known ${st.knownKeyType} key (${st.file}:${st.line}); accepted because StrictHostKeyChecking is no`, hint: fix, data: d };
      return { ok: false, detail: `HOST KEY CHANGED: the server presented ${type} ${fp}, but ${st.file}:${st.line} holds a different ${st.knownKeyType} key for ${lookupName}`, hint: fix, data: d };
    }
    case 'revoked':
      return {
        ok: false,
        detail: `${type} ${fp} is revoked (@revoked at ${st.file}:${st.line})`,
        hint: 'the key is marked revoked: the server must get a new host key; do not remove the @revoked line unless you know it is wrong',
        data: { ...data, status: 'revoked', file: st.file, line: st.line },
      };
  }
}

function kexOutcome(r: HandshakeRecord, ident: string): Outcome {
  const chosen = r.chosen;
  const negotiated = {
    kex: chosen['KEX algorithm'],
    hostKey: chosen['Host key format'],
    cipher: chosen['C->S Cipher'],
    mac: chosen['C->S MAC'],
  };
  if (r.phase !== 'kex') {
    return {
      ok: true,
      detail: `kex ${negotiated.kex ?? '?'}, host key ${negotiated.hostKey ?? '?'}, cipher ${negotiated.cipher ?? '?'}, MAC ${negotiated.mac ?? '?'}`,
      data: { ...negotiated, serverIdent: ident },
    };
  }
  const em = r.error ? msg(r.error) : '';
  const cat = /no matching/i.test(em) ? ALGO_CATEGORY.find((c) => c.match.test(em)) : undefined;
  if (cat) {
    const ours = r.local[cat.list] ?? '?';
    const theirs = r.remote[cat.list] ?? '?';
    return {
      ok: false,
      detail: `${em}: we offer ${ours}; the server offers ${theirs}`,
      hint: `no ${cat.list} in common: if you accept the server's algorithm, enable it with ${cat.option} (ssh_config ${cat.keyword} +name); better, update the server's configuration`,
      data: { category: cat.list, client: ours.split(','), server: theirs.split(',') },
    };
  }
  if (r.end === 'timeout') {
    return { ok: false, detail: 'the key exchange did not complete in time', hint: 'the server or a middlebox stalls after the banner (MTU problems drop the larger KEX packets; an overloaded server)' };
  }
  return { ok: false, detail: `key exchange failed: ${em || `connection ${r.end}`}`, hint: 'see the server log for the reason it closed the connection' };
}

function authOutcome(r: HandshakeRecord, plan: AuthPlan, o: ResolvedOptions): Outcome {
  const tries = r.authTries.filter((t) => t.method !== 'none' || t.answer === 'accepted');
  const noneTry = r.authTries.find((t) => t.method === 'none');
  const serverAllows = noneTry?.serverAllows;
  const data: Record<string, unknown> = {
    username: o.username,
    tries: r.authTries.map((t) => ({ ...t })),
    serverAllows: serverAllows ?? null,
    problems: [...plan.problems],
    agentKeys: plan.agentKeys ?? null,
  };
  const triedText = tries.length > 0 ? tries.map(describeTry).join('; ') : 'nothing';
  const problems = plan.problems.length > 0 ? `; problems: ${plan.problems.join('; ')}` : '';
  if (r.end === 'ready') {
    return { ok: true, detail: `authenticated as ${o.username}: ${triedText}${problems}`, hint: plan.hints.join('; ') || undefined, data };
  }
  const em = r.error ? msg(r.error) : r.end;
  const hints = [...plan.hints];
  if (/too many authentication failures/i.test(em)) {
    const attempts = r.authTries.filter((t) => t.method !== 'none').length;
    hints.unshift(
      `the server's MaxAuthTries was exhausted after ${attempts} attempt(s)${plan.agentKeys ? ` (the agent offered ${plan.agentKeys} key(s))` : ''}: offer only the right key (IdentitiesOnly yes with IdentityFile, or agent: false with identityFiles), or remove keys from the agent`,
    );
    return { ok: false, detail: `the server disconnected: ${em}; tried ${triedText}${problems}`, hint: hints.join('; '), data: { ...data, maxAuthTries: true } };
  }
  if (r.end === 'timeout') {
    return { ok: false, detail: `authentication did not complete in time; tried ${triedText}${problems}`, hint: ['the server did not answer an authentication request (PAM or LDAP delays on the server?)', ...hints].join('; '), data };
  }
  if (plan.steps.length === 0) hints.push('no method is available: give a key (identityFiles / IdentityFile), an agent with keys, or a password');
  else if (serverAllows && !serverAllows.includes('publickey') && !plan.steps.some((x) => x.kind === 'password' || x.kind === 'keyboard-interactive')) {
    hints.push(`the server does not accept public keys for ${o.username} (it allows: ${serverAllows.join(', ')})`);
  } else {
    hints.push(`the server rejected every key and password offered: check the user name (${o.username}) and that your public key is in ~${o.username}/.ssh/authorized_keys on the server (ssh-copy-id), with safe permissions`);
  }
  return { ok: false, detail: `authentication as ${o.username} failed: tried ${triedText}${problems}`, hint: hints.join('; '), data };
}
