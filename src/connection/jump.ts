import type { Duplex } from 'node:stream';
import { SshError } from '../errors.js';
import { resolveOptions, type ResolvedOptions, type SshClientOptions } from '../options.js';
import { resolveEffective } from '../settings.js';
import { parseHopSpec } from '../config/ssh-config/jump-spec.js';
import { abortReason } from '../internal/cancel.js';
import { createHostVerifier, type NewHostKeyInfo } from '../known-hosts/index.js';
import { openDirect } from './direct.js';
import { SshTransport, type HostKeyCheck } from './transport.js';
import type { Clock } from './keepalive.js';

/**
 * Jump hosts (ssh_config(5) `ProxyJump`, ssh(1) `-J`): each hop is a full SSH connection with its
 * own host key check and credentials; the next hop (and finally the target) runs over a
 * `direct-tcpip` channel of the previous one (RFC 4254 section 7.2).
 *
 * How a hop's settings are resolved (like `ssh -J`, which connects to each hop as if `ssh hop`
 * had been run with the same ssh_config):
 * - the hop spec gives host (or ssh_config alias), and user and port when written;
 * - the hop's own ssh_config resolution gives HostName, Port, User, IdentityFile, IdentitiesOnly,
 *   IdentityAgent, ServerAlive*, known_hosts files...; its own `ProxyJump` is ignored (the chain
 *   is the one given for the target);
 * - from the client's explicit options, the caller's trust policy and secrets apply to every hop
 *   and win over the hop's ssh_config: `sshConfig`, `knownHostsFiles`, `globalKnownHostsFiles`,
 *   `strictHostKeyChecking`, `hashKnownHosts`, `agent`, `connectTimeoutMs`,
 *   `keepaliveIntervalMs`, `keepaliveCountMax`, `algorithms`, `passphrase`, `keyboardInteractive`;
 * - the client's explicit `identityFiles`, `identitiesOnly` and `privateKey` are used for a hop
 *   only where the hop's ssh_config sets no `IdentityFile`/`IdentitiesOnly` of its own;
 * - `password` and `username` are never passed to hops (a target's password must not reach a
 *   bastion; the user comes from the spec, the hop's `User`, or the local user, as in OpenSSH).
 */

/** Options that only fill gaps a hop's ssh_config leaves (see the module notes). */
const FALLBACK_KEYS = ['identityFiles', 'identitiesOnly', 'privateKey'] as const;

/**
 * Resolves the settings of one hop for the target settings `target` (see the module notes for
 * what is inherited). Reads ssh_config for the hop (unless the client has `sshConfig: false`).
 *
 * @throws {SshConfigError} `ERR_SSH_CONFIG` for a bad spec or ssh_config.
 */
export async function resolveHop(target: ResolvedOptions, spec: string): Promise<ResolvedOptions> {
  const { user, host, port } = parseHopSpec(spec);
  const ex = (k: keyof SshClientOptions): boolean => target.explicitKeys.has(k);
  const input: SshClientOptions = {
    host,
    ...(port !== undefined ? { port } : {}),
    ...(user !== undefined ? { username: user } : {}),
    jump: false,
    reconnect: false,
    forwardAgent: false,
    ...(target.sshConfig !== undefined ? { sshConfig: typeof target.sshConfig === 'string' || target.sshConfig === false ? target.sshConfig : [...target.sshConfig] } : {}),
    ...(ex('knownHostsFiles') ? { knownHostsFiles: [...target.knownHostsFiles] } : {}),
    ...(ex('globalKnownHostsFiles') ? { globalKnownHostsFiles: [...target.globalKnownHostsFiles] } : {}),
    ...(ex('strictHostKeyChecking') ? { strictHostKeyChecking: target.strictHostKeyChecking } : {}),
    ...(ex('hashKnownHosts') ? { hashKnownHosts: target.hashKnownHosts } : {}),
    ...(ex('agent') ? { agent: target.agent ?? false } : {}),
    ...(ex('connectTimeoutMs') ? { connectTimeoutMs: target.connectTimeoutMs } : {}),
    ...(ex('keepaliveIntervalMs') ? { keepaliveIntervalMs: target.keepaliveIntervalMs } : {}),
    ...(ex('keepaliveCountMax') ? { keepaliveCountMax: target.keepaliveCountMax } : {}),
    ...(ex('algorithms') && target.algorithms ? { algorithms: structuredClone(target.algorithms) } : {}),
    ...(target.passphrase !== undefined ? { passphrase: typeof target.passphrase === 'function' ? target.passphrase : target.passphrase.reveal() } : {}),
    ...(target.keyboardInteractive ? { keyboardInteractive: target.keyboardInteractive } : {}),
    // fallbacks (not explicit for the hop: its own ssh_config wins)
    ...(ex('identityFiles') ? { identityFiles: [...target.identityFiles] } : {}),
    ...(ex('identitiesOnly') ? { identitiesOnly: target.identitiesOnly } : {}),
    ...(target.privateKey ? { privateKey: target.privateKey.reveal() } : {}),
  };
  const r = resolveOptions(input);
  const explicitKeys = new Set([...r.explicitKeys].filter((k) => !(FALLBACK_KEYS as readonly string[]).includes(k)));
  return resolveEffective({ ...r, explicitKeys });
}

interface Hop {
  /** `user@host:port` as resolved: a changed value means a new connection. */
  readonly id: string;
  /** The spec as written, for messages. */
  readonly spec: string;
  /** The hop's own SSH connection (keep-alive, listeners): its signal aborts when it dies. */
  readonly transport: SshTransport;
  /** direct-tcpip channels opened on this hop (the next hop's or the target's transport). */
  readonly channels: Set<Duplex>;
}

/** Options of {@link JumpHosts}. */
export interface JumpHostsOptions {
  /** Host-key check for a hop, made from the hop's settings; default: known_hosts as configured for the hop. */
  hostKeyCheckFor?: (o: ResolvedOptions) => HostKeyCheck;
  /** Called when a hop's unknown host key was accepted (`accept-new` / `'no'`), like the client's `hostkey` event. */
  onNewKey?: (info: NewHostKeyInfo) => void;
  clock?: Clock;
}

function prefixed<E extends Error>(err: E, spec: string): E {
  if (!err.message.startsWith('jump host ')) err.message = `jump host ${JSON.stringify(spec)}: ${err.message}`;
  return err;
}

/**
 * The chain of jump hosts of one client, kept across reconnects: each call of
 * {@link JumpHosts.transport} reuses the live hops at the head of the chain and reconnects from
 * the first dead (or changed) hop on, then opens the target's transport channel on the last hop.
 * Every hop is an {@link SshTransport} watched by its own keep-alive (its
 * `keepaliveIntervalMs`/`keepaliveCountMax`); when a hop dies, it and every hop after it are torn
 * down, which closes the target's transport (so the client sees a lost link and reconnects
 * through {@link JumpHosts.transport}).
 *
 * Use it as the connection's `transport` hook and call {@link JumpHosts.destroy} when the client closes.
 */
export class JumpHosts {
  #hops: Hop[] = [];
  #closed = false;
  /** Target transports open now (at most one in practice). */
  readonly #targets = new Set<Duplex>();
  readonly #opts: JumpHostsOptions;

  constructor(options: JumpHostsOptions = {}) {
    this.#opts = options;
  }

  /**
   * Provides the byte stream to run the target's SSH connection over: `undefined` when
   * `o.jump` is empty (direct TCP), else a `direct-tcpip` channel to `o.host:o.port` opened on
   * the last hop, (re)connecting hops as needed.
   *
   * @param o - the target's settings for this attempt (`jump`, `host`, `port`...).
   * @param signal - aborts the hop connects and the channel open (the client's lifetime).
   * @throws {SshError} any connect error of a hop (see {@link SshTransport.open}), its message
   *   prefixed with the hop spec: `ERR_SSH_CONNECT`, `ERR_SSH_CONNECT_TIMEOUT`, `ERR_SSH_HANDSHAKE`,
   *   `ERR_SSH_HOST_KEY_*`, `ERR_SSH_AUTH`, `ERR_SSH_KEY`; `ERR_SSH_CONNECT` when a hop cannot open
   *   the channel to the next host (`AllowTcpForwarding`/`PermitOpen`, or the next host is down);
   *   `ERR_SSH_CONFIG` for a bad spec; `ERR_SSH_CLOSED` after {@link JumpHosts.destroy}.
   */
  async transport(o: ResolvedOptions, signal: AbortSignal): Promise<Duplex | undefined> {
    this.#checkOpen();
    if (o.jump.length === 0) {
      this.#dropFrom(0);
      return undefined;
    }
    const hops: ResolvedOptions[] = [];
    for (const spec of o.jump) hops.push(await resolveHop(o, spec));
    for (let i = 0; i < hops.length; i++) {
      const want = hops[i];
      const spec = o.jump[i];
      if (!want || spec === undefined) break;
      const id = `${want.username}@${want.host}:${want.port}`;
      const have = this.#hops[i];
      if (have && !have.transport.signal.aborted && have.id === id) continue;
      this.#dropFrom(i);
      const prev = this.#hops[i - 1];
      const sock = prev ? await this.#forward(prev, want.host, want.port, want.connectTimeoutMs, signal) : undefined;
      this.#checkOpen(sock);
      const hop = await this.#connectHop(want, spec, id, sock, signal);
      if (this.#closed) {
        this.#kill(hop);
        this.#checkOpen();
      }
      this.#hops.push(hop);
    }
    this.#dropFrom(hops.length);
    const last = this.#hops[hops.length - 1];
    if (!last) throw new SshError('ERR_SSH_CONNECT', 'internal: jump chain is empty');
    const ch = await this.#forward(last, o.host, o.port, o.connectTimeoutMs, signal);
    this.#holdProcess(ch);
    return ch;
  }

  /**
   * Like a direct TCP connection, the chain keeps the Node.js process alive only while a target
   * transport runs over it: the first hop's socket is ref'd while `ch` is open and unref'd after,
   * so a client left idle after a failed connect does not hold the process open through its hops.
   */
  #holdProcess(ch: Duplex): void {
    const first = this.#hops[0];
    const sock = first?.transport.sock as (Duplex & { ref?: () => void; unref?: () => void }) | undefined;
    if (!first || typeof sock?.ref !== 'function' || typeof sock.unref !== 'function') return;
    this.#targets.add(ch);
    sock.ref();
    ch.once('close', () => {
      this.#targets.delete(ch);
      if (this.#targets.size === 0 && this.#hops[0] === first) sock.unref?.();
    });
  }

  /** Tears down every hop at once. Idempotent; afterwards {@link JumpHosts.transport} rejects with `ERR_SSH_CLOSED`. */
  destroy(): void {
    this.#closed = true;
    this.#dropFrom(0);
  }

  #checkOpen(sock?: Duplex): void {
    if (!this.#closed) return;
    sock?.destroy();
    throw new SshError('ERR_SSH_CLOSED', 'the client is closed');
  }

  #dropFrom(i: number): void {
    for (const hop of this.#hops.splice(i)) this.#kill(hop);
  }

  /** Tears `hop` down: its channels, then its transport (a dead one again: idempotent). */
  #kill(hop: Hop, reason: SshError = new SshError('ERR_SSH_CLOSED', `jump host ${JSON.stringify(hop.spec)} was closed`)): void {
    for (const ch of hop.channels) ch.destroy();
    hop.channels.clear();
    hop.transport.destroy(reason);
  }

  /** A hop died: it and every later hop are torn down (their transports ran through it). */
  #lost(hop: Hop): void {
    const idx = this.#hops.indexOf(hop);
    const doomed = idx >= 0 ? this.#hops.slice(idx) : [hop];
    const cause = abortReason(hop.transport.signal);
    for (const h of doomed) this.#kill(h, cause);
  }

  async #connectHop(o: ResolvedOptions, spec: string, id: string, sock: Duplex | undefined, signal: AbortSignal): Promise<Hop> {
    const check =
      this.#opts.hostKeyCheckFor?.(o) ??
      createHostVerifier({
        host: o.host,
        port: o.port,
        knownHostsFiles: o.knownHostsFiles,
        globalKnownHostsFiles: o.globalKnownHostsFiles,
        strictHostKeyChecking: o.strictHostKeyChecking,
        hashKnownHosts: o.hashKnownHosts,
        ...(this.#opts.onNewKey ? { onNewKey: this.#opts.onNewKey } : {}),
      });
    let transport: SshTransport;
    try {
      transport = await SshTransport.open(o, { hostKeyCheck: check, signal, sock, clock: this.#opts.clock, label: `jump host ${JSON.stringify(spec)}` });
    } catch (err) {
      sock?.destroy();
      throw err instanceof Error ? prefixed(err, spec) : err;
    }
    const hop: Hop = { id, spec, transport, channels: new Set() };
    // The first hop's TCP socket holds the process open only while a target runs over it (see #holdProcess).
    if (!sock) (transport.sock as Duplex & { unref?: () => void }).unref?.();
    transport.signal.addEventListener('abort', () => this.#lost(hop), { once: true });
    return hop;
  }

  /** Opens a direct-tcpip channel to `host:port` on `hop`, bounded by `timeoutMs` and `signal`. */
  async #forward(hop: Hop, host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<Duplex> {
    const name = `jump host ${JSON.stringify(hop.spec)}`;
    let ch: Duplex;
    try {
      ch = await openDirect(hop.transport, { host, port }, { signal, timeoutMs });
    } catch (err) {
      if (signal.aborted) throw abortReason(signal, 'connect');
      if (hop.transport.signal.aborted) throw new SshError('ERR_SSH_CONNECT', `${name} closed while opening a channel to ${host}:${port}`, { cause: err });
      const e = err instanceof SshError ? err : new SshError('ERR_SSH_CONNECT', String(err), { cause: err });
      if (e.code === 'ERR_SSH_TIMEOUT') throw new SshError('ERR_SSH_CONNECT_TIMEOUT', `${name} did not open a channel to ${host}:${port} within ${timeoutMs} ms`);
      throw new SshError('ERR_SSH_CONNECT', `${name} could not connect to ${host}:${port}: ${e.message.replace(/^channel open failed: /, '')}`, { cause: e.cause ?? e });
    }
    ch.on('error', () => undefined);
    if (hop.transport.signal.aborted) {
      ch.destroy();
      throw new SshError('ERR_SSH_CONNECT', `${name} closed while opening a channel to ${host}:${port}`);
    }
    hop.channels.add(ch);
    ch.once('close', () => hop.channels.delete(ch));
    // An SSH transport has no half-close: the far end's EOF (the next host went away) ends
    // ours too, so the hop sends CHANNEL_CLOSE and the stream emits 'close' (ssh2 channels
    // are half-open by default, and sshd waits for our EOF before closing the channel).
    ch.once('end', () => ch.end());
    return ch;
  }
}
