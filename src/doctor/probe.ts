/**
 * The network half of the doctor: DNS, TCP, the identification string, and one ssh2 connection
 * driven through key exchange, host-key check and authentication with every event recorded.
 *
 * @module doctor/probe
 */
import { lookup } from 'node:dns/promises';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { ResolvedOptions } from '../options.js';
import { makeAuthHandler, type AuthStep, type AuthTrace } from '../connection/auth.js';
import { SshTransport } from '../connection/transport.js';
import { SshError } from '../errors.js';
import { parseHandshakeDebug } from '../ssh2/debug.js';

/** Outcome of one TCP attempt. */
export interface TcpTry {
  address: string;
  /** `connected`, `refused` (RST), `timeout` (no answer), `unreachable` (no route), or `error`. */
  outcome: 'connected' | 'refused' | 'timeout' | 'unreachable' | 'error';
  /** The system error code, when there was one. */
  code?: string;
}

/** Races `p` against a timer; the timer never keeps the process alive. */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(onTimeout()), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Resolves a host name to its addresses (IPv4 and IPv6, system resolver order). */
export async function resolveAddresses(host: string, timeoutMs: number): Promise<string[]> {
  if (isIP(host) !== 0) return [host];
  const found = await withTimeout(lookup(host, { all: true, verbatim: true }), timeoutMs, () =>
    Object.assign(new Error(`DNS lookup of ${host} did not answer within ${timeoutMs} ms`), { code: 'ETIMEOUT' }),
  );
  return [...new Set(found.map((a) => a.address))];
}

/** Connects to one address; resolves with the socket or the classified failure. Settles once. */
export function tcpConnect(address: string, port: number, timeoutMs: number): Promise<{ sock: Socket } | { fail: TcpTry }> {
  return new Promise((resolve) => {
    const sock = netConnect({ host: address, port, noDelay: true });
    let done = false;
    const finish = (r: { sock: Socket } | { fail: TcpTry }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.removeListener('connect', onConnect);
      if ('fail' in r) sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ fail: { address, outcome: 'timeout' } }), timeoutMs);
    const onConnect = (): void => finish({ sock });
    sock.once('connect', onConnect);
    // Stays attached for the socket's life: a late error must never be unhandled.
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'UNKNOWN';
      const outcome: TcpTry['outcome'] =
        code === 'ECONNREFUSED'
          ? 'refused'
          : code === 'ETIMEDOUT'
            ? 'timeout'
            : code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL' || code === 'EHOSTDOWN'
              ? 'unreachable'
              : 'error';
      finish({ fail: { address, outcome, code } });
    });
  });
}

/** What {@link readBanner} saw. */
export type BannerResult =
  | { kind: 'ok'; ident: string; preamble: string[] }
  | { kind: 'stall'; received: Buffer }
  | { kind: 'closed'; received: Buffer }
  | { kind: 'not-ssh'; received: Buffer };

/** Longest identification string (RFC 4253 section 4.2: 255 characters including CR LF). */
const MAX_IDENT = 255;
/** Bytes of pre-banner lines accepted before giving up (OpenSSH accepts up to 1024 lines). */
const MAX_PREAMBLE_BYTES = 64 * 1024;

/**
 * Reads the server's identification string (RFC 4253 section 4.2) without sending ours, then
 * puts every byte read back into the socket (paused), so ssh2 can take it over. Lines before
 * the `SSH-` line are allowed and returned as `preamble`.
 */
export function readBanner(sock: Socket, timeoutMs: number): Promise<BannerResult> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (r: BannerResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.removeListener('data', onData);
      sock.removeListener('close', onClose);
      sock.removeListener('end', onClose);
      sock.pause();
      if (r.kind === 'ok' && buf.length > 0) sock.unshift(buf);
      resolve(r);
    };
    const timer = setTimeout(() => finish({ kind: 'stall', received: buf }), timeoutMs);
    const onClose = (): void => finish({ kind: 'closed', received: buf });
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const preamble: string[] = [];
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0) {
          const partial = buf.subarray(start);
          if (partial.subarray(0, 4).toString('latin1') === 'SSH-' && partial.length > MAX_IDENT) {
            return finish({ kind: 'not-ssh', received: buf });
          }
          if (buf.length > MAX_PREAMBLE_BYTES) return finish({ kind: 'not-ssh', received: buf });
          return;
        }
        const line = buf.subarray(start, nl).toString('latin1').replace(/\r$/, '');
        start = nl + 1;
        if (line.startsWith('SSH-')) return finish({ kind: 'ok', ident: line, preamble });
        // OpenSSH (kex.c, kex_exchange_identification) refuses a pre-banner line only for a NUL
        // or a CR not followed by LF; any other text, escapes included, is a greeting line and
        // is shown sanitized. A binary service still ends here (NUL) or at MAX_PREAMBLE_BYTES.
        if (/[\0\r]/.test(line)) return finish({ kind: 'not-ssh', received: buf });
        preamble.push(line);
      }
    };
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.once('end', onClose);
  });
}

/** Printable preview of bytes received (for reports): at most 80 characters. */
export function preview(b: Buffer): string {
  const s = b.subarray(0, 80).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return b.length > 80 ? `${s}...` : s;
}

/** One authentication attempt and the server's answer. */
export interface AuthTry {
  /** `none`, `publickey`, `agent`, `password` or `keyboard-interactive`. */
  method: string;
  /** Key type and fingerprint, and where it came from, for key methods. */
  key?: string;
  /** `accepted`, `rejected` (USERAUTH_FAILURE), `partial` (partial success), or `disconnected`. */
  answer: 'accepted' | 'rejected' | 'partial' | 'disconnected';
  /** The methods the server said can continue, after this attempt. */
  serverAllows?: string[];
}

/** The recorded run of one ssh2 connection. */
export interface HandshakeRecord {
  /** `ready` (authenticated), `error`, `close` (closed early), `timeout` (a phase stalled). */
  end: 'ready' | 'error' | 'close' | 'timeout' | 'hostkey-refused';
  /** The phase the connection was in when it ended. */
  phase: 'kex' | 'hostkey' | 'auth' | 'done';
  error?: Error & { level?: string; code?: unknown };
  /** `performance.now()` when each phase ended. */
  marks: { start: number; kex?: number; hostkey?: number; auth?: number };
  /** Algorithm lists seen in ssh2's debug output, by category (e.g. `KEX method`). */
  local: Record<string, string>;
  remote: Record<string, string>;
  /** Chosen algorithms by category (e.g. `KEX algorithm`, `C->S Cipher`). */
  chosen: Record<string, string>;
  authTries: AuthTry[];
}

/** Options of {@link runHandshake}. */
export interface HandshakeOptions {
  sock: Socket;
  /** The settings of the connection (host, port, user, algorithms...), as for a client. */
  settings: ResolvedOptions;
  /** Decides the host key; `true` continues to authentication. */
  verifyHostKey: (key: Buffer) => Promise<boolean>;
  /**
   * The client's own authentication plan for `settings` (`buildAuthSteps`), walked by the
   * client's own handler (`makeAuthHandler`); `trace` receives what that handler records.
   */
  auth: { steps: readonly AuthStep[]; trace: AuthTrace };
  /** Bound on each phase, in ms. */
  phaseTimeoutMs: number;
}


/** What {@link recordingAuthHandler} reports. */
export interface AuthRecorder {
  /** ssh2 asked for the next method (the previous one was answered): re-arms the phase timer. */
  onAnswer: () => void;
  /** The previous attempt was refused (`partial`: RFC 4252 section 5.1 partial success). */
  settle: (partial: boolean, methodsLeft: readonly string[] | undefined) => void;
  /** A method is being offered. */
  onTry: (t: AuthTry) => void;
}

/**
 * Wraps the client's auth handler so that every attempt and the server's answer is recorded,
 * without changing what is offered: first `none` (RFC 4252 section 5.2; it learns the methods the
 * server allows, and OpenSSH does not count it against MaxAuthTries), then exactly what `inner`
 * chooses, in its order.
 */
export function recordingAuthHandler(inner: ssh2.AuthHandlerMiddleware, steps: readonly AuthStep[], username: string, r: AuthRecorder): ssh2.AuthHandlerMiddleware {
  let first = true;
  return (methodsLeft, partial, next) => {
    r.onAnswer();
    const allows = Array.isArray(methodsLeft) ? methodsLeft : undefined;
    r.settle(partial === true, allows);
    if (first) {
      first = false;
      r.onTry({ method: 'none', answer: 'disconnected' });
      next({ type: 'none', username });
      return;
    }
    inner(methodsLeft, partial, (m) => {
      if (typeof m === 'object' && m !== null) {
        const label = (() => {
          switch (m.type) {
            case 'publickey': {
              const step = steps.find((s) => s.kind === 'publickey' && s.key === m.key);
              return step?.label.replace(/^publickey /, '');
            }
            case 'agent':
              return steps.find((s) => s.kind === 'agent')?.label;
            default:
              return undefined;
          }
        })();
        r.onTry({ method: m.type, answer: 'disconnected', ...(label === undefined ? {} : { key: label }) });
      }
      next(m);
    });
  };
}

/** Why the doctor ended an open itself (a refused host key, a stalled phase). */
class DoctorStop extends SshError {
  constructor(readonly end: 'timeout' | 'hostkey-refused') {
    super('ERR_SSH_ABORTED', `doctor: ${end}`);
  }
}

/**
 * Drives one connection over `sock` through the client's own connect code
 * ({@link SshTransport.open}: the same algorithms, host-key step, ssh2 adjustments) and records
 * every phase through its observer hooks; authentication is the client's own handler
 * (`makeAuthHandler` over `o.auth.steps`) wrapped by {@link recordingAuthHandler}, which records
 * every method offered and the server's answer. Resolves (never rejects) with the record and, on
 * `ready`, the connected client (the caller ends it). Settles once.
 */
export async function runHandshake(o: HandshakeOptions): Promise<{ record: HandshakeRecord; client: ssh2.Client | undefined }> {
  const rec: HandshakeRecord = { end: 'error', phase: 'kex', marks: { start: performance.now() }, local: {}, remote: {}, chosen: {}, authTries: [] };
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  /** The attempt awaiting the server's answer ('disconnected' until one arrives). */
  let pending: AuthTry | undefined;
  const arm = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => stop.abort(new DoctorStop('timeout')), o.phaseTimeoutMs);
  };
  const authHandler = recordingAuthHandler(makeAuthHandler(o.auth.steps, o.settings, o.auth.trace), o.auth.steps, o.settings.username, {
    onAnswer: arm,
    onTry: (t) => {
      pending = t;
      rec.authTries.push(t);
    },
    settle: (partial, methodsLeft) => {
      if (!pending) return;
      pending.answer = partial ? 'partial' : 'rejected';
      if (methodsLeft) pending.serverAllows = [...methodsLeft];
      pending = undefined;
    },
  });
  arm();
  try {
    const t = await SshTransport.open(
      // The doctor's connection sends no keep-alive probes and forwards no agent.
      { ...o.settings, keepaliveIntervalMs: 0, forwardAgent: false },
      {
        sock: o.sock,
        signal: stop.signal,
        // Bounded per phase by `arm()` above instead.
        timeoutMs: 0,
        authHandler,
        hostKeyCheck: async (key) => {
          if (!(await o.verifyHostKey(key))) throw new DoctorStop('hostkey-refused');
        },
        observer: {
          debug: (line: string) => {
            const d = parseHandshakeDebug(line);
            if (d?.kind === 'offer') (d.side === 'local' ? rec.local : rec.remote)[d.category] = d.value;
            else if (d?.kind === 'chosen') rec.chosen[d.category] = d.value;
          },
          onHostKey: () => {
            rec.marks.kex = performance.now();
            rec.phase = 'hostkey';
            arm();
          },
          onHostKeyChecked: (ok) => {
            rec.marks.hostkey = performance.now();
            if (!ok) return;
            rec.phase = 'auth';
            arm();
          },
        },
      },
    );
    rec.end = 'ready';
    if (pending) pending.answer = 'accepted';
    rec.marks.auth = performance.now();
    rec.phase = 'done';
    return { record: rec, client: t.client };
  } catch (err) {
    if (err instanceof DoctorStop) {
      rec.end = err.end;
    } else if (err instanceof SshError && err.code === 'ERR_SSH_CONNECT' && err.cause === undefined) {
      rec.end = 'close'; // closed before authentication completed
    } else {
      rec.end = 'error';
      // ssh2's own error (its message names what failed, e.g. "no matching key exchange algorithm").
      const cause: unknown = err instanceof SshError ? err.cause : undefined;
      rec.error = cause instanceof Error ? cause : err instanceof Error ? err : new Error(String(err));
    }
    return { record: rec, client: undefined };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Lists the public keys an ssh-agent holds; rejects when the agent cannot be reached. */
export function listAgentKeys(socket: string, timeoutMs: number): Promise<unknown[]> {
  const agent = new ssh2.OpenSSHAgent(socket);
  return withTimeout(
    new Promise<unknown[]>((resolve, reject) => {
      agent.getIdentities((err, keys) => (err ? reject(err) : resolve(keys ?? [])));
    }),
    timeoutMs,
    () => new Error(`the agent at ${socket} did not answer within ${timeoutMs} ms`),
  );
}

/** Runs `true` on a session channel; resolves with its exit code (or rejects). */
export function runTrue(client: ssh2.Client, timeoutMs: number): Promise<number | undefined> {
  return withTimeout(
    new Promise<number | undefined>((resolve, reject) => {
      client.exec('true', (err, ch) => {
        if (err) return reject(err);
        let code: number | undefined;
        ch.on('exit', (c: number | null) => {
          code = c ?? undefined;
        });
        ch.on('error', () => undefined);
        ch.stderr.resume();
        ch.resume();
        ch.on('close', () => resolve(code));
      });
    }),
    timeoutMs,
    () => new Error(`the session did not finish within ${timeoutMs} ms`),
  );
}

/** Opens a `direct-tcpip` channel (RFC 4254 section 7.2) to `host:port` and closes it again. */
export function forwardOnce(client: ssh2.Client, host: string, port: number, timeoutMs: number): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => {
        if (err) return reject(err);
        ch.on('error', () => undefined);
        ch.resume();
        ch.end();
        ch.close();
        resolve();
      });
    }),
    timeoutMs,
    () => new Error(`the forwarded channel to ${host}:${port} did not open within ${timeoutMs} ms`),
  );
}

/** Starts the `sftp` subsystem (RFC 4254 section 6.5) and ends it again. */
export function sftpOnce(client: ssh2.Client, timeoutMs: number): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      client.sftp((err, sftp) => {
        if (err) return reject(err);
        sftp.on('error', () => undefined);
        sftp.end();
        resolve();
      });
    }),
    timeoutMs,
    () => new Error(`the sftp subsystem did not start within ${timeoutMs} ms`),
  );
}
