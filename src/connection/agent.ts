import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import type { GetStreamCallback, IdentityCallback, ParsedKey, SignCallback, SigningRequestOptions } from 'ssh2';

/**
 * ssh-agent support (draft-miller-ssh-agent, the protocol OpenSSH's `ssh-agent` speaks):
 * listing the agent's keys once per attempt, choosing and ordering them as OpenSSH does
 * (ssh(1) `IdentitiesOnly`, `sshconnect2.c` `pubkey_prepare`), and signing through the real agent.
 *
 * Written on top of ssh2's own `OpenSSHAgent` (the agent protocol) and `BaseAgent` (the
 * interface ssh2's `agent` authentication uses); no maintained npm package does the filtering.
 */

/** One key held by the agent. */
export interface AgentKey {
  /** The agent's public key, as ssh2 parsed it. */
  readonly key: ParsedKey;
  /** The public key blob (RFC 4253 section 6.6 encoding). */
  readonly blob: Buffer;
  /** `SHA256:...`, as `ssh-keygen -l` and `ssh-add -l` print it. */
  readonly fingerprint: string;
  /** The key type, e.g. `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`. */
  readonly type: string;
  /** The agent's comment for the key (often the file it was added from). */
  readonly comment: string;
}

/** `SHA256:<base64 without padding>` of an SSH public key blob, as `ssh-keygen -l` prints it. */
export function blobFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Lists the keys of the agent listening on `socket` (`SSH_AGENTC_REQUEST_IDENTITIES`).
 *
 * @param socket - the agent's Unix socket path (`SSH_AUTH_SOCK`, ssh_config `IdentityAgent`).
 * @param timeoutMs - bound on the whole exchange, in ms.
 * @returns the keys in the agent's order (keys ssh2 cannot parse are left out).
 * @throws {Error} (plain) when the agent cannot be reached, answers badly or not within `timeoutMs`;
 *   callers treat an unusable agent as one without keys, as OpenSSH does.
 */
export function listAgentKeys(socket: string, timeoutMs: number): Promise<AgentKey[]> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      reject(new Error(`the agent did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    let agent: ssh2.OpenSSHAgent;
    try {
      agent = new ssh2.OpenSSHAgent(socket);
    } catch (err) {
      clearTimeout(timer);
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    agent.getIdentities((err, keys) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) return reject(err);
      const out: AgentKey[] = [];
      for (const k of keys ?? []) {
        // OpenSSHAgent hands parsed keys; anything else is parsed (or skipped) here.
        const parsed = typeof k === 'string' || Buffer.isBuffer(k) ? ssh2.utils.parseKey(k) : 'getPublicSSH' in k ? k : undefined;
        if (parsed === undefined || parsed instanceof Error) continue;
        const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
        if (!key) continue;
        const blob = key.getPublicSSH();
        out.push({ key, blob, fingerprint: blobFingerprint(blob), type: key.type, comment: key.comment });
      }
      resolve(out);
    });
  });
}

/**
 * An ssh2 agent offering a chosen, ordered subset of a real agent's keys (OpenSSH's order with
 * `IdentitiesOnly`: only agent keys matching a configured identity), reporting each key when
 * ssh2 offers it to the server, and refusing SHA-1 (`ssh-rsa`) signatures for RSA keys:
 * RSA keys sign with `rsa-sha2-512`/`rsa-sha2-256` (RFC 8332) only.
 *
 * Signing is delegated to the agent at `socket` (ssh2 `OpenSSHAgent`).
 */
export class SelectedAgent extends ssh2.BaseAgent<ParsedKey> {
  readonly #inner: ssh2.OpenSSHAgent;
  readonly #keys: ReadonlyArray<{ offered: ParsedKey; agentKey: AgentKey }>;

  /**
   * @param socket - the agent's socket path.
   * @param keys - the keys to offer, in order.
   * @param onOffer - called (possibly more than once per key) when ssh2 sends a key to the server.
   * @param onRefused - called when a signature was refused (SHA-1 RSA) and the key skipped.
   */
  constructor(
    socket: string,
    keys: readonly AgentKey[],
    onOffer: (key: AgentKey) => void,
    private readonly onRefused: (key: AgentKey, why: string) => void = () => undefined,
  ) {
    super();
    this.#inner = new ssh2.OpenSSHAgent(socket);
    // ssh2 reads `getPublicSSH()` each time it puts a key into a USERAUTH_REQUEST: a thin
    // prototype-linked view of the key reports that moment (ssh2 accepts it as a parsed key).
    this.#keys = keys.map((agentKey) => {
      const offered = Object.create(agentKey.key, {
        getPublicSSH: {
          value: (): Buffer => {
            onOffer(agentKey);
            return agentKey.key.getPublicSSH();
          },
        },
      }) as ParsedKey;
      return { offered, agentKey };
    });
  }

  /** Hands ssh2 the chosen keys (no agent round trip: they were listed before the attempt). */
  override getIdentities(cb: IdentityCallback<ParsedKey>): void {
    cb(undefined, this.#keys.map((k) => k.offered));
  }

  /** Signs through the real agent; refuses `ssh-rsa` (SHA-1) signatures. */
  override sign(pubKey: ParsedKey, data: Buffer, options: SigningRequestOptions | SignCallback, cb?: SignCallback): void {
    const callback = typeof options === 'function' ? options : cb;
    const opts: SigningRequestOptions = typeof options === 'function' ? {} : options;
    if (!callback) return;
    const entry = this.#keys.find((k) => k.offered === pubKey || k.agentKey.key === pubKey);
    const key = entry?.agentKey.key ?? pubKey;
    if (key.type === 'ssh-rsa' && opts.hash !== 'sha256' && opts.hash !== 'sha512') {
      const why = 'the server accepts RSA keys only with SHA-1 (ssh-rsa) signatures, which are refused';
      if (entry) this.onRefused(entry.agentKey, why);
      callback(new Error(why));
      return;
    }
    this.#inner.sign(key, data, opts, callback);
  }

  /** A stream to the real agent (used by ssh2 for agent forwarding). */
  override getStream(cb: GetStreamCallback): void {
    this.#inner.getStream(cb);
  }
}
