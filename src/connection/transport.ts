/**
 * One SSH connection, opened one way (the model: ioredis connectors). {@link SshTransport.open}
 * makes one attempt (a TCP socket with `noDelay`, or a given stream for ProxyJump; key exchange
 * with our host-key check before any authentication packet; authentication), and the result owns
 * that ssh2 `Client` for its whole life: its listeners, its keep-alive (OpenSSH
 * `ServerAliveInterval` / `ServerAliveCountMax`), its byte counters, and one `signal` that is
 * aborted, with the cause, the moment the connection is known to be dead.
 *
 * The client's connection ({@link Connection}), every jump hop ({@link JumpHosts}), the failback
 * probe and the doctor all open their connections through here.
 *
 * @module connection/transport
 * @internal
 */
import { setMaxListeners } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import { SshAuthError, SshError, mapConnectError } from '../errors.js';
import { secureDefaultAlgorithms, type ResolvedOptions } from '../options.js';
import { toSsh2HostVerifier } from '../known-hosts/index.js';
import { adaptSsh2Client, sendKeepaliveProbe } from '../ssh2/index.js';
import { SHA1_REFUSED, buildAuthSteps, describeAuthFailure, makeAuthHandler, newAuthTrace } from './auth.js';
import { Keepalive, systemClock, type Clock } from './keepalive.js';

/** Verifies a server host key blob; resolves when trusted, rejects with an SshHostKeyError otherwise. */
export type HostKeyCheck = (key: Buffer) => Promise<void>;

/** ssh2's algorithm lists for `o`: each list the caller set, else the secure default. @internal */
export function toAlgorithms(o: ResolvedOptions): ssh2.Algorithms {
  const base = secureDefaultAlgorithms();
  const a = o.algorithms;
  if (!a) return base;
  return {
    kex: (a.kex ?? base.kex) as ssh2.KexAlgorithm[],
    serverHostKey: (a.serverHostKey ?? base.serverHostKey) as ssh2.ServerHostKeyAlgorithm[],
    cipher: (a.cipher ?? base.cipher) as ssh2.CipherAlgorithm[],
    hmac: (a.hmac ?? base.hmac) as ssh2.MacAlgorithm[],
    compress: (a.compress ?? base.compress) as ssh2.CompressionAlgorithm[],
  };
}

/** A corked batch of small packets goes out once it holds this many bytes. @internal */
export const CORK_MAX_BYTES = 64 * 1024;

/**
 * Packets of this many bytes or more (data) are never held: corking them too cost uploads 3-8%
 * through a 52 ms link (a window's worth of data waited for the last packet's encryption).
 * @internal
 */
export const CORK_BULK_BYTES = 2048;

/**
 * Gathers the packets ssh2 writes in one turn of the event loop into one write: the first write
 * of a turn corks the stream, a `process.nextTick` uncorks it (Node then hands them to the
 * kernel in one `writev`). ssh2 writes every SSH packet on its own (a READ request of 30-odd
 * bytes, a WINDOW_ADJUST, each 32 KiB of data): with TCP_NODELAY each was a syscall and a TCP
 * segment of its own. Only small packets are held ({@link CORK_BULK_BYTES}), never longer than the
 * current turn or than {@link CORK_MAX_BYTES} of them; a data packet flushes them and goes out
 * at once; nothing written before a `destroy()` is dropped.
 */
function corkPerTick(sock: Duplex): void {
  let corked = false;
  let scheduled = false;
  let corkedBytes = 0;
  const flush = (): void => {
    if (!corked) return;
    corked = false;
    corkedBytes = 0;
    sock.uncork();
  };
  const onTick = (): void => {
    scheduled = false;
    flush();
  };
  const write = sock.write.bind(sock) as (...args: unknown[]) => boolean;
  sock.write = ((...args: unknown[]): boolean => {
    const chunk = args[0];
    const size = typeof chunk === 'string' ? chunk.length : ((chunk as { byteLength?: number } | null)?.byteLength ?? 0);
    if (size >= CORK_BULK_BYTES) {
      // a data packet goes out at once (after what was corked), as without the cork
      flush();
      return write(...args);
    }
    if (!corked && !sock.destroyed) {
      corked = true;
      sock.cork();
      if (!scheduled) {
        scheduled = true;
        process.nextTick(onTick);
      }
    }
    const ok = write(...args);
    corkedBytes += size;
    if (corkedBytes >= CORK_MAX_BYTES) flush();
    return ok;
  }) as typeof sock.write;
  // destroy() drops what is still corked: what was written before it (a DISCONNECT sent just
  // before ssh2 destroys the socket) goes out first, as it did uncorked. end() flushes by itself.
  const destroy = sock.destroy.bind(sock);
  sock.destroy = ((error?: Error): Duplex => {
    flush();
    return destroy(error);
  });
}

/**
 * Gives socket errors a message that says what to check: a name that does not resolve
 * (`getaddrinfo ENOTFOUND`, never retryable: the name is wrong or missing from ssh_config) and a
 * refused connection (`ECONNREFUSED`, retryable: sshd may be restarting). Other errors unchanged.
 *
 * @internal
 */
export function explainConnectError(err: SshError, o: Pick<ResolvedOptions, 'host' | 'port' | 'alias'>): SshError {
  const cause: unknown = err.cause;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  if (err.code !== 'ERR_SSH_CONNECT') return err;
  if (code === 'ENOTFOUND') {
    const what =
      o.alias === o.host
        ? `host name '${o.host}' does not resolve (getaddrinfo ENOTFOUND), and it is not an alias in ssh_config: check the name, or add a 'Host ${o.alias}' block with a HostName to ssh_config`
        : `host name '${o.host}' (the HostName ssh_config gives for '${o.alias}') does not resolve (getaddrinfo ENOTFOUND): check the HostName in its 'Host' block`;
    return new SshError('ERR_SSH_CONNECT', `cannot connect to ${o.alias}: ${what}`, { cause, retryable: false });
  }
  if (code === 'ECONNREFUSED') {
    return new SshError('ERR_SSH_CONNECT', `connection to ${o.host}:${o.port} refused (ECONNREFUSED): check that sshd runs on ${o.host} and listens on port ${o.port}`, { cause });
  }
  return err;
}

/** `true` for a name that did not resolve (ENOTFOUND): see {@link explainConnectError}. @internal */
export function isUnresolvedName(err: unknown): boolean {
  if (!(err instanceof SshError)) return false;
  const cause: unknown = err.cause;
  return typeof cause === 'object' && cause !== null && (cause as { code?: unknown }).code === 'ENOTFOUND';
}

/**
 * Hooks of one open for callers that watch the handshake (the doctor). Each is optional and only
 * observes: none changes what the connection does.
 */
export interface TransportObserver {
  /** Receives ssh2's protocol debug lines (only when set: ssh2 formats them only then). */
  debug?: ((line: string) => void) | undefined;
  /** The key exchange is done: the server's host key arrived (before it is checked). */
  onHostKey?: (() => void) | undefined;
  /** The host-key check answered (`ok` false: refused, or the check failed). */
  onHostKeyChecked?: ((ok: boolean) => void) | undefined;
}

/** Options of {@link SshTransport.open}. */
export interface TransportOptions {
  /** Decides the server's host key before any authentication packet is sent. */
  hostKeyCheck: HostKeyCheck;
  /** Aborting it while the open runs destroys the attempt and rejects with the signal's reason. It does not end an open transport. */
  signal: AbortSignal;
  /** A stream to run SSH over instead of a new TCP socket (ProxyJump); `noDelay` is the caller's business then. */
  sock?: Duplex | undefined;
  /** Timers of the keep-alive; default the system clock. */
  clock?: Clock | undefined;
  /**
   * Names the connection in the messages of its death, e.g. `jump host "bastion"`; default: the
   * messages of the client's own connection (`connection to HOST:PORT closed`...).
   */
  label?: string | undefined;
  /** Called with the round trip of every answered keep-alive probe, in ms. */
  onRtt?: ((rttMs: number) => void) | undefined;
  /**
   * Replaces the authentication built from the settings (`buildAuthSteps`) by this ssh2 auth
   * handler (the doctor, which records every method tried). Failures then end the open as
   * `ERR_SSH_AUTH` without the method summary.
   */
  authHandler?: ssh2.AuthHandlerMiddleware | undefined;
  /** Bound of the whole open in ms; default the settings' `connectTimeoutMs`; 0: none (the caller bounds it through `signal`). */
  timeoutMs?: number | undefined;
  /** Watches the handshake (see {@link TransportObserver}). */
  observer?: TransportObserver | undefined;
}

/**
 * What the connection layer needs of one live transport: the shape {@link SshTransport} has, and
 * a fake one in unit tests (`ConnectionHooks.openTransport`).
 */
export interface Transport {
  /** The authenticated ssh2 client; never reused after the transport dies. */
  readonly client: ssh2.Client;
  /**
   * Aborted when the transport dies or is ended: with an `ERR_SSH_CONNECTION_LOST` SshError
   * (its `cause` the original one, e.g. `ERR_SSH_KEEPALIVE_TIMEOUT`) when it died by itself,
   * with the given reason after {@link Transport.destroy} / {@link Transport.end}.
   */
  readonly signal: AbortSignal;
  /** Why it died as first seen (e.g. `ERR_SSH_KEEPALIVE_TIMEOUT`), or the reason it was ended with; `undefined` while alive. */
  readonly cause: SshError | undefined;
  /** Wall-clock time (ms since the epoch) the transport became ready. */
  readonly since: number;
  /** Bytes received on the underlying stream so far. */
  readonly bytesIn: number;
  /** Bytes written to the underlying stream so far (0 when the stream does not count them: a jump channel). */
  readonly bytesOut: number;
  /** Tears the transport down at once: aborts `signal` with `reason`, destroys client and stream. Idempotent. */
  destroy(reason: SshError): void;
  /**
   * Ends the transport gracefully: aborts `signal` with `reason` (default `ERR_SSH_CLOSED`), sends
   * SSH_MSG_DISCONNECT and resolves once the connection closed, destroying it after `graceMs` at most.
   */
  end(graceMs?: number, reason?: SshError): Promise<void>;
}

/** Default bound of a graceful end, in ms. */
export const END_GRACE_MS = 1_000;

/**
 * One SSH connection (see the module notes). Make one with {@link SshTransport.open}.
 *
 * @internal
 */
export class SshTransport implements Transport {
  readonly client: ssh2.Client;
  /** The byte stream under the SSH transport (a TCP socket, or a channel of a jump host). */
  readonly sock: Duplex;
  /** The settings it was opened with. */
  readonly settings: ResolvedOptions;
  #since = 0;
  #bytesIn = 0;
  #cause: SshError | undefined;
  /** The first error ssh2 reported after ready: the cause of the close that follows. */
  #errorCause: SshError | undefined;
  #keepalive: Keepalive | undefined;
  readonly #ctl = new AbortController();
  readonly #label: string | undefined;

  private constructor(o: ResolvedOptions, client: ssh2.Client, sock: Duplex, label: string | undefined) {
    this.settings = o;
    this.client = client;
    this.sock = sock;
    this.#label = label;
    // Every operation on a transport listens to its signal: many at once is normal, not a leak.
    setMaxListeners(0, this.#ctl.signal);
  }

  get signal(): AbortSignal {
    return this.#ctl.signal;
  }

  get cause(): SshError | undefined {
    return this.#cause;
  }

  get since(): number {
    return this.#since;
  }

  get bytesIn(): number {
    return this.#bytesIn;
  }

  get bytesOut(): number {
    return (this.sock as { bytesWritten?: number }).bytesWritten ?? 0;
  }

  /** Keep-alive probes sent since the last inbound packet (0 without keep-alive). */
  get missedProbes(): number {
    return this.#keepalive?.missedProbes ?? 0;
  }

  /**
   * Makes one connect attempt and resolves with the live transport once authenticated.
   *
   * Bounded by `connectTimeoutMs` (or `timeoutMs`) for TCP, key exchange and authentication. The
   * host key is checked before any authentication packet; a re-key (RFC 4253 section 9) is answered
   * synchronously with the key verified for this connection (see the note in the code).
   *
   * @param o - the settings of this attempt (after ssh_config).
   * @param a - see {@link TransportOptions}.
   * @throws {SshError} settles once: `ERR_SSH_CONNECT` (socket), `ERR_SSH_CONNECT_TIMEOUT`,
   *   `ERR_SSH_HANDSHAKE`, `ERR_SSH_HOST_KEY_*`, `ERR_SSH_AUTH`, `ERR_SSH_KEY`, or the reason of
   *   `a.signal`. On failure the socket and client are destroyed.
   */
  static async open(o: ResolvedOptions, a: TransportOptions): Promise<SshTransport> {
    const trace = newAuthTrace();
    const authHandler = a.authHandler ?? makeAuthHandler(await buildAuthSteps(o, trace), o, trace);
    a.signal.throwIfAborted();
    const client = new ssh2.Client();
    const sock = a.sock ?? netConnect({ host: o.host, port: o.port, noDelay: true });
    corkPerTick(sock);
    const t = new SshTransport(o, client, sock, a.label);
    const timeoutMs = a.timeoutMs ?? o.connectTimeoutMs;
    const observer = a.observer ?? {};
    return new Promise<SshTransport>((resolve, reject) => {
      let open = false;
      let settled = false;
      let hostKeyError: SshError | undefined;
      /** The host key verified in this connection's first key exchange. */
      let verifiedKey: Buffer | undefined;
      const fail = (err: SshError): void => {
        if (settled) return;
        settled = true;
        cleanup();
        t.destroy(err);
        reject(err);
      };
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              fail(new SshError('ERR_SSH_CONNECT_TIMEOUT', `could not connect to ${o.host}:${o.port} within ${timeoutMs} ms (TCP, key exchange and authentication)`));
            }, timeoutMs)
          : undefined;
      const onAbort = (): void => {
        const r: unknown = a.signal.reason;
        fail(r instanceof SshError ? r : new SshError('ERR_SSH_ABORTED', 'connect aborted', { cause: r }));
      };
      a.signal.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => {
        clearTimeout(timer);
        a.signal.removeEventListener('abort', onAbort);
      };

      // Errors are reported through ssh2's 'error' (it listens on the socket too); this guard only
      // keeps a late socket error from becoming an unhandled 'error' event.
      sock.on('error', () => undefined);
      sock.on('data', (chunk: Buffer) => {
        t.#bytesIn += chunk.length;
        t.#keepalive?.received();
      });

      client.on('error', (err: Error & { level?: string }) => {
        if (open) {
          t.#errorCause ??= new SshError('ERR_SSH_CONNECTION_LOST', `${t.#label ? `${t.#label} failed` : 'connection lost'}: ${err.message}`, { cause: err });
          return;
        }
        if (hostKeyError) return fail(hostKeyError);
        // Not fatal: ssh2 goes on with the next key or method after these (an unusable agent, an
        // agent that refused to sign, a refused SHA-1 signature).
        if (err.level === 'agent' || (err.level === 'client-authentication' && !/All configured authentication methods failed/.test(err.message))) {
          trace.notes.push(err.message.includes(SHA1_REFUSED) ? SHA1_REFUSED : `${err.level === 'agent' ? 'agent' : 'signing'}: ${err.message}`);
          return;
        }
        const tooMany = /Too many authentication failures/i.test(err.message);
        if (err.level === 'client-authentication' || tooMany) {
          return fail(
            new SshAuthError(describeAuthFailure(o, trace, tooMany ? 'the server disconnected: too many authentication failures (sshd MaxAuthTries)' : undefined), {
              methodsTried: [...trace.tried],
              cause: err,
            }),
          );
        }
        return fail(explainConnectError(mapConnectError(err, trace.tried), o));
      });
      const onGone = (how: 'closed' | 'ended'): void => {
        if (!open) {
          if (hostKeyError) return fail(hostKeyError);
          return fail(new SshError('ERR_SSH_CONNECT', `connection to ${o.host}:${o.port} closed before authentication completed`));
        }
        t.#die(
          t.#errorCause ??
            new SshError('ERR_SSH_CONNECTION_LOST', t.#label ? `${t.#label} (${o.host}:${o.port}) ${how} the connection` : `connection to ${o.host}:${o.port} closed`),
        );
      };
      // 'end': the transport stream ended (EOF, e.g. a jump channel); the connection is over.
      client.on('end', () => {
        if (open) onGone('ended');
      });
      client.on('close', () => onGone('closed'));
      client.on('ready', () => {
        if (settled) return;
        settled = true;
        open = true;
        cleanup();
        t.#since = Date.now();
        t.#startKeepalive(a);
        resolve(t);
      });

      // The tested adapter from known-hosts (copies the key, wraps a foreign rejection as
      // ERR_SSH_HANDSHAKE); re-keys are answered here, synchronously (below).
      const firstCheck = toSsh2HostVerifier(a.hostKeyCheck, (err) => {
        hostKeyError = err;
      });
      const config: ssh2.ConnectConfig = {
        sock,
        host: o.host,
        port: o.port,
        username: o.username,
        readyTimeout: 0,
        keepaliveInterval: 0,
        ...(observer.debug ? { debug: observer.debug } : {}),
        algorithms: toAlgorithms(o),
        authHandler,
        // ssh_config ForwardAgent: ssh2 then asks for auth-agent-req@openssh.com on the first
        // session channel and serves the server's auth-agent@openssh.com channels from this agent.
        ...(o.forwardAgent && o.agent !== undefined ? { agent: o.agent, agentForward: true } : {}),
        hostVerifier: ((key: Buffer, verify: (ok: boolean) => void): boolean | undefined => {
          // Re-key (RFC 4253 section 9): ssh2 asks again on every key exchange. Its asynchronous path
          // never sends our NEWKEYS when the server's NEWKEYS arrives before the answer (ssh2 1.17
          // lib/protocol/kex.js), which corrupts the stream (sshd: "Bad packet length") when the
          // server re-keys under load (RekeyLimit). So a re-key is answered synchronously: the key
          // verified for this connection is trusted again, any other key is refused.
          if (verifiedKey) return verifiedKey.equals(key);
          // ssh2 hands a slice of its packet buffer: copy it before going async.
          const copy = Buffer.from(key);
          observer.onHostKey?.();
          firstCheck(copy, (ok) => {
            observer.onHostKeyChecked?.(ok);
            if (ok) {
              verifiedKey = copy;
              verify(true);
              return;
            }
            verify(false);
            fail(hostKeyError ?? new SshError('ERR_SSH_HANDSHAKE', 'host key check failed', { retryable: false }));
          });
          return undefined; // asynchronous: ssh2 waits for verify()
        }),
      };
      try {
        client.connect(config);
        // Before any byte is parsed: checks ssh2's private fields and installs the guarded
        // adjustments (DH group-exchange bounds, strict kex on re-keys, UNIMPLEMENTED answers).
        adaptSsh2Client(client);
      } catch (err) {
        fail(mapConnectError(err));
      }
    });
  }

  /** Watches the live transport with our keep-alive (when `keepaliveIntervalMs` > 0). */
  #startKeepalive(a: TransportOptions): void {
    const o = this.settings;
    if (o.keepaliveIntervalMs <= 0) return;
    this.#keepalive = new Keepalive(
      o.keepaliveIntervalMs,
      o.keepaliveCountMax,
      {
        // Throws (ERR_SSH_CONNECTION_LOST) when the probe cannot be sent: the keep-alive then
        // calls onDead with that cause, so the transport dies visibly instead of skipping a probe.
        sendProbe: (onReply) => sendKeepaliveProbe(this.client, onReply),
        onRtt: (rttMs) => {
          if (!this.signal.aborted) a.onRtt?.(rttMs);
        },
        onDead: (missed, sendFailure) => {
          const quietMs = o.keepaliveIntervalMs * (missed + 1);
          this.#die(
            sendFailure ??
              new SshError(
                'ERR_SSH_KEEPALIVE_TIMEOUT',
                this.#label
                  ? `${this.#label} (${o.host}:${o.port}): no packet for ${quietMs} ms (${missed} keep-alive probes unanswered)`
                  : `no packet from ${o.host}:${o.port} for ${quietMs} ms (${missed} keep-alive probes unanswered)`,
              ),
          );
        },
      },
      a.clock ?? systemClock,
    );
  }

  /** The transport died by itself: `signal` is aborted with ERR_SSH_CONNECTION_LOST (`cause` keeps the original). */
  #die(cause: SshError): void {
    if (this.signal.aborted) return;
    const lost = cause.code === 'ERR_SSH_CONNECTION_LOST' ? cause : new SshError('ERR_SSH_CONNECTION_LOST', `connection lost: ${cause.message}`, { cause });
    this.#cause = cause;
    this.destroy(lost);
  }

  destroy(reason: SshError): void {
    this.#cause ??= reason;
    this.#keepalive?.stop();
    if (!this.signal.aborted) this.#ctl.abort(reason);
    this.client.destroy();
    this.sock.destroy();
  }

  end(graceMs = END_GRACE_MS, reason: SshError = new SshError('ERR_SSH_CLOSED', 'the connection was ended')): Promise<void> {
    this.#cause ??= reason;
    this.#keepalive?.stop();
    if (!this.signal.aborted) this.#ctl.abort(reason);
    const { client, sock } = this;
    return new Promise<void>((resolve) => {
      if (sock.destroyed) {
        client.destroy();
        resolve();
        return;
      }
      const t = setTimeout(() => {
        client.destroy();
        sock.destroy();
        resolve();
      }, graceMs);
      t.unref();
      client.once('close', () => {
        clearTimeout(t);
        sock.destroy();
        resolve();
      });
      client.end();
    });
  }
}
