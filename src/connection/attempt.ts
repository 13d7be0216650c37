import { connect as netConnect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Duplex } from 'node:stream';
import { SshAuthError, SshError, mapConnectError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { SHA1_REFUSED, buildAuthSteps, describeAuthFailure, makeAuthHandler, newAuthTrace } from './auth.js';
import { secureDefaultAlgorithms } from '../options.js';
import { adaptSsh2Client } from '../ssh2/index.js';

/** Verifies a server host key blob; resolves when trusted, rejects with an SshHostKeyError otherwise. */
export type HostKeyCheck = (key: Buffer) => Promise<void>;

/** A connect attempt that reached `ready`. */
export interface ConnectedTransport {
  client: ssh2.Client;
  /** The byte stream under the SSH transport (a TCP socket, or a channel of a jump host). */
  sock: Duplex;
}

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

/** Options of one attempt besides the resolved client options. */
export interface AttemptOptions {
  hostKeyCheck: HostKeyCheck;
  /** Aborting it destroys the attempt and rejects with the signal's reason. */
  signal: AbortSignal;
  /** A stream to run SSH over instead of a new TCP socket (ProxyJump); `noDelay` is the caller's business then. */
  sock?: Duplex;
  /** Called with every inbound chunk (keep-alive accounting). */
  onData?: (chunk: Buffer) => void;
  /** Receives ssh2's protocol debug lines (only when set). */
  debug?: ((line: string) => void) | undefined;
}

/**
 * Makes one connect attempt: a TCP socket with `noDelay`, an ssh2 `Client` with our host-key
 * check (before any authentication packet) and auth handler, bounded by `connectTimeoutMs`.
 *
 * Settles exactly once. Rejects with an {@link SshError}: `ERR_SSH_CONNECT` (socket),
 * `ERR_SSH_CONNECT_TIMEOUT`, `ERR_SSH_HANDSHAKE`, `ERR_SSH_HOST_KEY_*`, `ERR_SSH_AUTH`, `ERR_SSH_KEY`.
 * On failure the socket and client are destroyed and no listener that could fire later remains harmful.
 */
export async function connectAttempt(o: ResolvedOptions, a: AttemptOptions): Promise<ConnectedTransport> {
  const trace = newAuthTrace();
  const steps = await buildAuthSteps(o, trace);
  a.signal.throwIfAborted();
  const client = new ssh2.Client();
  return new Promise<ConnectedTransport>((resolve, reject) => {
    let settled = false;
    let hostKeyError: SshError | undefined;
    /** The host key verified in this connection's first key exchange. */
    let verifiedKey: Buffer | undefined;
    let sock: Duplex;
    let tcp: Socket | undefined;
    const fail = (err: SshError): void => {
      if (settled) return;
      settled = true;
      cleanup();
      client.destroy();
      sock.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new SshError('ERR_SSH_CONNECT_TIMEOUT', `could not connect to ${o.host}:${o.port} within ${o.connectTimeoutMs} ms (TCP, key exchange and authentication)`));
    }, o.connectTimeoutMs);
    const onAbort = (): void => {
      const r: unknown = a.signal.reason;
      fail(r instanceof SshError ? r : new SshError('ERR_SSH_ABORTED', 'connect aborted', { cause: r }));
    };
    a.signal.addEventListener('abort', onAbort, { once: true });
    const cleanup = (): void => {
      clearTimeout(timer);
      a.signal.removeEventListener('abort', onAbort);
    };

    if (a.sock) {
      sock = a.sock;
    } else {
      tcp = netConnect({ host: o.host, port: o.port, noDelay: true });
      sock = tcp;
    }
    // Errors are reported through ssh2's 'error' (it listens on the socket too); this guard only
    // keeps a late socket error from becoming an unhandled 'error' event.
    sock.on('error', () => undefined);
    if (a.onData) sock.on('data', a.onData);

    client.on('error', (err: Error & { level?: string }) => {
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
    client.on('close', () => {
      if (hostKeyError) return fail(hostKeyError);
      fail(new SshError('ERR_SSH_CONNECT', `connection to ${o.host}:${o.port} closed before authentication completed`));
    });
    client.on('ready', () => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve({ client, sock });
    });

    const config: ssh2.ConnectConfig = {
      sock,
      host: o.host,
      port: o.port,
      username: o.username,
      readyTimeout: 0,
      keepaliveInterval: 0,
      ...(a.debug ? { debug: a.debug } : {}),
      algorithms: toAlgorithms(o),
      authHandler: makeAuthHandler(steps, o, trace),
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
        a.hostKeyCheck(copy).then(
          () => {
            verifiedKey = copy;
            verify(true);
          },
          (err: unknown) => {
            hostKeyError = err instanceof SshError ? err : new SshError('ERR_SSH_HANDSHAKE', `host key check failed: ${String(err)}`, { cause: err });
            verify(false);
            fail(hostKeyError);
          },
        );
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
export { secureDefaultAlgorithms } from '../options.js';
