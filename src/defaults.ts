/**
 * The built-in defaults, in one deeply frozen object ({@link DEFAULTS}). A leaf module: the
 * settings (src/options.ts) re-export it, and the layers below the facade (connection/, forward/)
 * read their defaults from it without importing the settings.
 *
 * @module defaults
 */
import type ssh2 from 'ssh2';
import { DEFAULT_IDENTITY_FILES } from './config/ssh-config.js';

/** {@link DEFAULTS}.forward: the defaults of forwards. Durations in ms. */
export interface ForwardDefaults {
  /** Address local and dynamic listeners bind to: loopback (a non-loopback address must be named explicitly). */
  readonly localHost: string;
  /** Listen port 0: the OS (or the server, for remote forwards) picks a free port. */
  readonly port: number;
  /** Address the server binds remote forwards to (ssh(1) `-R port:host:hostport` default). */
  readonly remoteHost: string;
  /** Target host of a local forward given only `remotePort`, resolved by the server. */
  readonly targetHost: string;
  /** Concurrent SOCKS connections per dynamic forward. */
  readonly maxSocksConnections: number;
  /** A SOCKS client must finish greeting, authentication and request within this time. */
  readonly socksHandshakeTimeoutMs: number;
  /** How long connecting to the local target of a remote forward may take. */
  readonly localConnectTimeoutMs: number;
  /**
   * Re-requesting a remote forward after a reconnect: retries with jittered exponential backoff
   * (x1 to x2, every delay within `minDelayMs`..`maxDelayMs`) while the dead session may still
   * hold the port on the server.
   */
  readonly remoteRetry: { readonly retries: number; readonly minDelayMs: number; readonly maxDelayMs: number; readonly factor: number };
  /** How long the server may take to answer a remote forward request (a client passes its `connectTimeoutMs`). */
  readonly remoteRequestTimeoutMs: number;
}

function forwardDefaults(d: ForwardDefaults): ForwardDefaults {
  return Object.freeze(d);
}

/**
 * {@link DEFAULTS}.algorithms: algorithm names as ssh2 and OpenSSH spell them, frozen lists.
 * Typed as plain strings so the published declarations do not need ssh2's types.
 */
export interface DefaultAlgorithms {
  readonly kex: readonly string[];
  readonly serverHostKey: readonly string[];
  readonly cipher: readonly string[];
  readonly hmac: readonly string[];
  readonly compress: readonly string[];
}

/**
 * The same lists typed with ssh2's algorithm names (checks the literals below).
 *
 * @internal
 */
export interface Ssh2AlgorithmLists {
  readonly kex: readonly ssh2.KexAlgorithm[];
  readonly serverHostKey: readonly ssh2.ServerHostKeyAlgorithm[];
  readonly cipher: readonly ssh2.CipherAlgorithm[];
  readonly hmac: readonly ssh2.MacAlgorithm[];
  readonly compress: readonly ssh2.CompressionAlgorithm[];
}

/** Freezes the ssh2-typed lists and gives them the public, string-typed shape. */
function publicAlgorithms(a: Ssh2AlgorithmLists): DefaultAlgorithms {
  return Object.freeze(a);
}

/**
 * The built-in default of every client option that has a fixed one, and of the forward options
 * (`forward`), in one deeply frozen object (nested objects and arrays are frozen too): the code
 * reads its defaults from here and nowhere else. Every duration is in milliseconds. Precedence per connect attempt: explicit option >
 * ssh_config > these defaults.
 *
 * Sources: ssh_config(5) and `ssh -G` of OpenSSH 9.2 (`Port` 22, `ServerAliveCountMax` 3, the
 * `IdentityFile` list, `GlobalKnownHostsFile`, `HashKnownHosts` no), sshd_config(5)
 * (`MaxSessions` 10). Where ssh-tether deliberately differs from OpenSSH the entry says so
 * (`StrictHostKeyChecking` yes instead of ask: a library cannot ask; `ExitOnForwardFailure` yes;
 * `ServerAliveInterval` 15 s instead of 0; one user known_hosts file instead of two).
 *
 * Defaults that depend on the environment are not here: `username` (the current OS user),
 * `agent` (`SSH_AUTH_SOCK`), `sshConfig` (`~/.ssh/config` then `/etc/ssh/ssh_config`, as ssh(1)).
 */
export const DEFAULTS = Object.freeze({
  /** TCP port (ssh_config `Port`). */
  port: 22,
  /** Covers TCP connect, key exchange and authentication of one attempt. */
  connectTimeoutMs: 20_000,
  /** Send a keep-alive probe after this long without any inbound packet (ssh_config `ServerAliveInterval`). */
  keepaliveIntervalMs: 15_000,
  /** Unanswered probes before the link is declared dead (ssh_config `ServerAliveCountMax`). */
  keepaliveCountMax: 3,
  /** Session channels open at once (sshd_config `MaxSessions` default). */
  maxSessions: 10,
  /** How long `close()` lets open channels finish before ending the connection. */
  closeTimeoutMs: 5_000,
  /** `StrictHostKeyChecking`. */
  strictHostKeyChecking: 'yes' as const,
  /** Reconnect policy: unbounded retries, jittered exponential backoff (x1 to x2) from 1 s, every delay within 1-30 s. */
  reconnect: Object.freeze({ retries: Infinity, minDelayMs: 1_000, maxDelayMs: 30_000, factor: 2 }),
  /**
   * Private key files tried in order when neither the options nor ssh_config name any: OpenSSH's
   * default `IdentityFile` list in its order (ssh(1) FILES, ssh_config(5) `IdentityFile`, as
   * `ssh -G` prints it): id_rsa, id_ecdsa, id_ecdsa_sk, id_ed25519, id_ed25519_sk, id_xmss, id_dsa
   * under `~/.ssh/`. Missing files are skipped silently, and so are files holding a key type ssh2
   * cannot use (security-key `*_sk` and XMSS keys).
   */
  identityFiles: DEFAULT_IDENTITY_FILES,
  /** User known_hosts files; the first is where `'accept-new'` records new keys. OpenSSH also reads `~/.ssh/known_hosts2`. */
  knownHostsFiles: Object.freeze(['~/.ssh/known_hosts']),
  /** Global known_hosts files, read-only (OpenSSH also reads `/etc/ssh/ssh_known_hosts2`). */
  globalKnownHostsFiles: Object.freeze(['/etc/ssh/ssh_known_hosts']),
  /** Record new host keys hashed (ssh_config `HashKnownHosts`, OpenSSH default `no`). */
  hashKnownHosts: false,
  /** Only the configured identity files (ssh_config `IdentitiesOnly`, default `no`). */
  identitiesOnly: false,
  /** Forward the ssh-agent (ssh_config `ForwardAgent`, default `no`). */
  forwardAgent: false,
  /** zlib compression (ssh_config `Compression`, default `no`). */
  compression: false,
  /** `connect()` fails when a declared forward cannot be set up (ssh_config `ExitOnForwardFailure`; OpenSSH's default is `no`). */
  exitOnForwardFailure: true,
  /** Route ssh2's protocol debug output to the logger. */
  debugProtocol: false,
  /**
   * Algorithms offered when neither the options nor ssh_config name any: ssh2's defaults minus
   * SHA-1 key exchanges and signatures (`ssh-rsa`, `diffie-hellman-group14-sha1`...) and CBC
   * ciphers. Strict key exchange (`kex-strict-c-v00@openssh.com`, the Terrapin CVE-2023-48795
   * counter-measure) is kept: ssh2 adds it itself.
   */
  algorithms: publicAlgorithms({
    kex: Object.freeze([
      'curve25519-sha256',
      'curve25519-sha256@libssh.org',
      'ecdh-sha2-nistp256',
      'ecdh-sha2-nistp384',
      'ecdh-sha2-nistp521',
      'diffie-hellman-group-exchange-sha256',
      'diffie-hellman-group14-sha256',
      'diffie-hellman-group15-sha512',
      'diffie-hellman-group16-sha512',
      'diffie-hellman-group17-sha512',
      'diffie-hellman-group18-sha512',
    ]),
    serverHostKey: Object.freeze(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256']),
    cipher: Object.freeze([
      'aes128-gcm@openssh.com',
      'aes256-gcm@openssh.com',
      'chacha20-poly1305@openssh.com',
      'aes128-ctr',
      'aes192-ctr',
      'aes256-ctr',
    ]),
    hmac: Object.freeze(['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512']),
    compress: Object.freeze(['none']),
  }),
  /** Longest an operation (exec, spawn, sftp, forwardRemote...) waits for the link while the client (re)connects; 0 waits forever. */
  operationTimeoutMs: 120_000,
  /** Idle persist (OpenSSH `ControlPersist`): end an unused link after this long; 0 = never. */
  idleTimeoutMs: 0,
  /** Apply the reconnect policy to the first connect too (autossh). */
  retryFirstConnect: false,
  /** Failover list: probe the first host at this interval while on another; 0 = never move back. */
  failbackIntervalMs: 0,
  /** Longest a connection accepted by a local or dynamic forward waits for the link while the client reconnects. */
  forwardConnectionWaitMs: 15_000,
  /** Keep a striped SFTP transfer's extra channels this long for the next one (closed at once when a slot is wanted). */
  sftpChannelsPersistMs: 30_000,
  /** Where durable jobs live on the server (`~/` is the login directory). */
  jobsDir: '~/.ssh-tether/jobs',
  /** Offer public keys (ssh_config `PubkeyAuthentication`, default `yes`). */
  pubkeyAuthentication: true,
  /** Offer the password (ssh_config `PasswordAuthentication`, default `yes`). */
  passwordAuthentication: true,
  /** Never ask the passphrase or keyboard-interactive callbacks (ssh_config `BatchMode`, default `no`). */
  batchMode: false,
  /**
   * Defaults of the forward options (`forwardLocal`, `forwardRemote`, `forwardDynamic`, the
   * `forwards` option) and of the forward manager's bounds: not client options themselves.
   * See {@link ForwardDefaults}.
   */
  forward: forwardDefaults({
    localHost: '127.0.0.1',
    port: 0,
    remoteHost: 'localhost',
    targetHost: 'localhost',
    maxSocksConnections: 1024,
    socksHandshakeTimeoutMs: 10_000,
    localConnectTimeoutMs: 10_000,
    remoteRetry: Object.freeze({ retries: 12, minDelayMs: 200, maxDelayMs: 5_000, factor: 2 }),
    remoteRequestTimeoutMs: 20_000,
  }),
});

