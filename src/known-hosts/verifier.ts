/**
 * Host key verification policy (ssh_config(5) `StrictHostKeyChecking`, `UserKnownHostsFile`,
 * `GlobalKnownHostsFile`, `HashKnownHosts`) and the adapter to ssh2's `hostVerifier` option.
 *
 * @module known-hosts/verifier
 */
import { inspect } from 'node:util';
import { z } from 'zod';
import { SshConfigError, SshError, SshHostKeyError } from '../errors.js';
import { checkHostKey } from './check.js';
import { appendKnownHost, loadKnownHosts } from './file.js';
import { fingerprintSha256, validateKeyBlob } from './key-blob.js';
import { hostPattern } from './pattern.js';
import { parseOrThrow, portSchema } from '../internal/validate.js';
import { parseKnownHosts, type KnownHostsEntry } from './parse.js';

/** Where in-memory known_hosts lines are said to come from in messages. */
export const MEMORY_SOURCE = 'knownHosts option';

/** ssh_config(5) `StrictHostKeyChecking` values we support. */
export type StrictHostKeyChecking = 'yes' | 'accept-new' | 'no';

/** What the `hostkey` event (`onNewKey` of the host verifier) is told when a key is accepted without being known. */
export interface NewHostKeyInfo {
  /**
   * `added`: unknown key appended to the user file under `accept-new`.
   * `accepted-unknown`: unknown key accepted under `no` (nothing written).
   * `accepted-changed`: key differing from the known one(s) accepted under `no` (nothing written).
   */
  readonly action: 'added' | 'accepted-unknown' | 'accepted-changed';
  /** The known_hosts lookup string (`host` or `[host]:port`). */
  readonly host: string;
  /** Key type of the presented key, e.g. `ssh-ed25519`. */
  readonly keyType: string;
  /** `SHA256:...` fingerprint of the presented key. */
  readonly fingerprint: string;
  /** For `added`: the file written. For `accepted-changed`: the file of the known key. */
  readonly file?: string;
  /** For `accepted-changed`: the line of the known key. */
  readonly line?: number;
  /** For `accepted-changed`: the type of the known key. */
  readonly knownKeyType?: string;
  /** For `added`: false when `ifAbsent` found the key already written by a concurrent connect. */
  readonly written?: boolean;
}

/** Options of {@link createHostVerifier}. */
export interface HostVerifierOptions {
  /** Host name or IP address as connected to (not an ssh_config alias). */
  host: string;
  /** TCP port, 1-65535. */
  port: number;
  /**
   * User known_hosts files (ssh_config `UserKnownHostsFile`), read on every verification; the
   * first one is where `accept-new` writes. May be empty unless `accept-new`.
   */
  knownHostsFiles: readonly string[];
  /**
   * Global known_hosts files (ssh_config `GlobalKnownHostsFile`), read-only.
   * @default []
   */
  globalKnownHostsFiles?: readonly string[];
  /**
   * - `yes`: only known keys are accepted.
   * - `accept-new`: unknown hosts' keys are appended to `knownHostsFiles[0]` and accepted;
   *   changed keys are refused.
   * - `no`: unknown and changed keys are accepted and reported through `onNewKey`; nothing is
   *   written. (OpenSSH's `no` also appends new keys to the user file and disables password
   *   authentication for a changed host; we do neither.)
   *
   * Revoked keys are refused under every setting.
   */
  strictHostKeyChecking: StrictHostKeyChecking;
  /**
   * known_hosts lines held in memory (the `knownHosts` client option), checked before the files
   * with the same rules. Lines that do not parse are skipped, as in a file.
   * @default []
   */
  knownHosts?: readonly string[];
  /**
   * Hash the host name of lines written by `accept-new` (ssh_config `HashKnownHosts`).
   * @default false
   */
  hashKnownHosts?: boolean;
  /**
   * Called when a key is accepted without being known (see {@link NewHostKeyInfo}). An exception
   * it throws is ignored.
   */
  onNewKey?: (info: NewHostKeyInfo) => void;
}

/**
 * Verifies a server host key: resolves when it is trusted, rejects otherwise.
 * @param key - the SSH wire-format public key blob the server presented.
 */
export type HostVerifier = (key: Buffer) => Promise<void>;

const pathList = (what: string): z.ZodArray<z.ZodString> =>
  z.array(z.string({ error: `expected ${what} as an array of non-empty file paths` }).min(1, { error: `expected ${what} as an array of non-empty file paths` }), {
    error: `expected ${what} as an array of non-empty file paths`,
  });

const verifierOptionsSchema = z
  .strictObject({
    host: z.string({ error: 'expected a host name or address' }),
    port: portSchema(),
    knownHostsFiles: pathList('knownHostsFiles'),
    globalKnownHostsFiles: pathList('globalKnownHostsFiles').optional(),
    knownHosts: z.array(z.string({ error: 'expected known_hosts lines (strings)' }), { error: 'expected an array of known_hosts lines (strings)' }).optional(),
    strictHostKeyChecking: z.enum(['yes', 'accept-new', 'no'], { error: "expected 'yes', 'accept-new' or 'no'" }),
    hashKnownHosts: z.boolean({ error: 'expected a boolean' }).optional(),
    onNewKey: z.custom<(info: NewHostKeyInfo) => void>((v) => typeof v === 'function', { error: 'expected a function' }).optional(),
  })
  .superRefine((o, ctx) => {
    if (o.strictHostKeyChecking === 'accept-new' && o.knownHostsFiles.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['knownHostsFiles'], message: "strictHostKeyChecking 'accept-new' needs at least one knownHostsFiles entry to write to" });
    }
  });

function validateOptions(o: unknown): HostVerifierOptions {
  const parsed = parseOrThrow(verifierOptionsSchema, o, 'host verifier options', 'config');
  hostPattern(parsed.host, parsed.port); // the host's own rules (no spaces, commas, patterns...)
  return o as HostVerifierOptions;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Builds a {@link HostVerifier} for one host and port, implementing ssh_config(5)
 * `StrictHostKeyChecking` over known_hosts files (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").
 *
 * Every call re-reads the files (user files first, then global ones), so edits and keys added by
 * other processes are seen on the next (re)connect. Outcomes, by {@link checkHostKey} status:
 *
 * | status  | `yes`              | `accept-new`                 | `no`                          |
 * |---------|--------------------|------------------------------|-------------------------------|
 * | known   | resolve            | resolve                      | resolve                       |
 * | unknown | reject `_UNKNOWN`  | append, `onNewKey`, resolve  | `onNewKey`, resolve           |
 * | changed | reject `_MISMATCH` | reject `_MISMATCH`           | `onNewKey`, resolve           |
 * | revoked | reject `_REVOKED`  | reject `_REVOKED`            | reject `_REVOKED`             |
 *
 * Rejections ({@link SshHostKeyError}, never retryable) carry the host string and the SHA256
 * fingerprint and say how to fix it; `_MISMATCH` and `_REVOKED` also carry `known`, the line
 * behind the refusal (`{ file, line, keyType }`; `file` is `'knownHosts option'` for a line of
 * the `knownHosts` option, counted from 1 over its lines):
 * - `ERR_SSH_HOST_KEY_UNKNOWN`: the key is not in any file (or is malformed/unsupported).
 * - `ERR_SSH_HOST_KEY_MISMATCH`: the host is known with other key(s): possible man-in-the-middle.
 * - `ERR_SSH_HOST_KEY_REVOKED`: an `@revoked` line matching the host holds this key.
 * - `ERR_SSH_CONFIG` ({@link SshConfigError}): a known_hosts file exists but cannot be read (fails
 *   closed under every setting, since a revocation could be hidden in it), or `accept-new` could
 *   not write the new key (refused rather than trusting a key that would not be remembered).
 * - `ERR_SSH_TIMEOUT` ({@link SshError}, retryable): `accept-new` waited 5 s for `<file>.lock`
 *   held by another writer; the key is neither written nor trusted for this attempt, and the
 *   client is not closed (a reconnect, or the next `connect()`, tries again).
 *
 * @param options - see {@link HostVerifierOptions}.
 * @returns the verifier.
 * @throws SshConfigError `ERR_SSH_CONFIG` naming the field when an option is invalid or unknown.
 */
export function createHostVerifier(options: HostVerifierOptions): HostVerifier {
  const o = validateOptions(options);
  const lookup = hostPattern(o.host, o.port);
  const userFiles = [...o.knownHostsFiles];
  const allFiles = [...userFiles, ...(o.globalKnownHostsFiles ?? [])];
  const strict = o.strictHostKeyChecking;
  // Parsed once: the lines cannot change. A newline inside one string is a line break, as in a file.
  const memory: readonly KnownHostsEntry[] = o.knownHosts && o.knownHosts.length > 0 ? parseKnownHosts(o.knownHosts.join('\n'), MEMORY_SOURCE).entries : [];
  const notify = (info: NewHostKeyInfo): void => {
    try {
      o.onNewKey?.(info);
    } catch {
      // A faulty callback must not change the outcome.
    }
  };
  const portArg = o.port === 22 ? '' : `-p ${o.port} `;

  return async (key: Buffer): Promise<void> => {
    if (!Buffer.isBuffer(key)) {
      throw new SshHostKeyError('ERR_SSH_HOST_KEY_UNKNOWN', `host key for ${lookup} is not a Buffer`, { host: lookup, fingerprint: '' });
    }
    const fingerprint = fingerprintSha256(key);
    const v = validateKeyBlob(key);
    if (!v.ok) {
      throw new SshHostKeyError(
        'ERR_SSH_HOST_KEY_UNKNOWN',
        `host key ${fingerprint} presented by ${lookup} cannot be verified: ${v.reason}`,
        { host: lookup, fingerprint },
      );
    }
    const { entries: fromFiles } = await loadKnownHosts(allFiles);
    const entries = memory.length === 0 ? fromFiles : [...memory, ...fromFiles];
    const result = checkHostKey(entries, o.host, o.port, key);
    switch (result.status) {
      case 'known':
        return;
      case 'revoked':
        throw new SshHostKeyError(
          'ERR_SSH_HOST_KEY_REVOKED',
          `host key ${v.type} ${fingerprint} presented by ${lookup} is marked @revoked in ${result.file}:${result.line}; refusing to connect`,
          { host: lookup, fingerprint, known: { file: result.file, line: result.line, keyType: result.keyType } },
        );
      case 'changed':
        if (strict === 'no') {
          notify({
            action: 'accepted-changed',
            host: lookup,
            keyType: v.type,
            fingerprint,
            file: result.file,
            line: result.line,
            knownKeyType: result.knownKeyType,
          });
          return;
        }
        throw new SshHostKeyError(
          'ERR_SSH_HOST_KEY_MISMATCH',
          `host key for ${lookup} has changed: the server presented ${v.type} ${fingerprint}, but ${result.file}:${result.line} ` +
            `holds a different ${result.knownKeyType} key. Someone could be eavesdropping (man-in-the-middle), or the host key was ` +
            `replaced. If the change is expected, remove the old key with: ssh-keygen -R ${shellQuote(lookup)} -f ${shellQuote(result.file)}`,
          { host: lookup, fingerprint, known: { file: result.file, line: result.line, keyType: result.knownKeyType } },
        );
      case 'unknown': {
        if (strict === 'no') {
          notify({ action: 'accepted-unknown', host: lookup, keyType: v.type, fingerprint });
          return;
        }
        const target = userFiles[0];
        if (strict === 'accept-new' && target !== undefined) {
          let written: boolean;
          try {
            written = await appendKnownHost(target, o.host, o.port, key, { hash: o.hashKnownHosts === true, ifAbsent: true });
          } catch (err) {
            if (err instanceof SshError && err.code === 'ERR_SSH_TIMEOUT') {
              // Another process holds the known_hosts lock: this attempt fails, retryably (a
              // reconnect or a new connect() tries again); the client is not closed.
              throw new SshError(
                'ERR_SSH_TIMEOUT',
                `could not add the new host key ${v.type} ${fingerprint} for ${lookup} to ${target} in time; refusing to trust a key that would not be remembered: ${err.message}`,
                { cause: err, retryable: true },
              );
            }
            throw new SshConfigError(
              `could not add the new host key ${v.type} ${fingerprint} for ${lookup} to ${target}; refusing to trust a key that would not be remembered: ${err instanceof Error ? err.message : String(err)}`,
              { field: 'knownHostsFiles', cause: err },
            );
          }
          notify({ action: 'added', host: lookup, keyType: v.type, fingerprint, file: target, written });
          return;
        }
        const where = userFiles[0] ?? '~/.ssh/known_hosts';
        if (memory.length > 0 && userFiles.length === 0) {
          throw new SshHostKeyError(
            'ERR_SSH_HOST_KEY_UNKNOWN',
            `host key for ${lookup} is not known: the server presented ${v.type} ${fingerprint}, and no line of the knownHosts option ` +
              `names this host with this key. Check this fingerprint with the host's administrator, then add the line ` +
              `(ssh-keyscan ${portArg}${shellQuote(o.host)} prints it) to the knownHosts option`,
            { host: lookup, fingerprint },
          );
        }
        throw new SshHostKeyError(
          'ERR_SSH_HOST_KEY_UNKNOWN',
          `host key for ${lookup} is not known: the server presented ${v.type} ${fingerprint}. Check this fingerprint with the ` +
            `host's administrator, then add it with: ssh-keyscan ${portArg}${shellQuote(o.host)} >> ${shellQuote(where)} ` +
            `(and compare with ssh-keygen -lf ${shellQuote(where)}), or connect with strictHostKeyChecking 'accept-new' to trust it on first use`,
          { host: lookup, fingerprint },
        );
      }
    }
  };
}

/** The key as a {@link HostKeyCallback} receives it. */
export interface HostKeyCallbackInfo {
  /** Key type from the blob, e.g. `ssh-ed25519`. */
  readonly type: string;
  /** `SHA256:...` fingerprint, as `ssh-keygen -l` prints it. */
  readonly fingerprint: string;
  /** The SSH wire-format public key blob (a copy). */
  readonly blob: Buffer;
}

/** A caller's decision on a host key: `true` trusts it. */
export type HostKeyCallback = (key: HostKeyCallbackInfo, host: string) => boolean | Promise<boolean>;

/** Options of {@link createCallbackHostVerifier}. */
export interface CallbackHostVerifierOptions {
  /** Host name or IP address as connected to. */
  host: string;
  /** TCP port, 1-65535. */
  port: number;
  /** The caller's decision. */
  verify: HostKeyCallback;
  /**
   * Keys trusted earlier by the same client, by known_hosts lookup string (`host` or
   * `[host]:port`); updated on every trusted key. A refused key is reported as
   * `ERR_SSH_HOST_KEY_MISMATCH` when another key was trusted for the host before.
   */
  trusted?: Map<string, Buffer>;
}

/**
 * Builds a {@link HostVerifier} that asks a caller's function (the `hostVerifier` client option)
 * instead of known_hosts, for hosts whose keys live elsewhere (a container secret, a vault).
 *
 * The function gets `{ type, fingerprint, blob }` and the known_hosts lookup string (`host` or
 * `[host]:port`, see {@link hostPattern}). A malformed or unsupported key blob is refused before
 * the function is called. `true` (or a promise of `true`) trusts the key; anything else, a throw
 * or a rejection refuses it with an {@link SshHostKeyError} (never retryable):
 * `ERR_SSH_HOST_KEY_MISMATCH` when `trusted` holds another key for the host, else
 * `ERR_SSH_HOST_KEY_UNKNOWN`; the thrown value is the `cause`. Its `known` is `undefined`:
 * no known_hosts line is involved.
 *
 * @throws SshConfigError `ERR_SSH_CONFIG` for an invalid host or port, or `verify` not a function.
 */
export function createCallbackHostVerifier(options: CallbackHostVerifierOptions): HostVerifier {
  const lookup = hostPattern(options.host, options.port);
  if (typeof options.verify !== 'function') throw new SshConfigError('hostVerifier must be a function (key, host) => boolean | Promise<boolean>', { field: 'hostVerifier' });
  const verify = options.verify;
  const trusted = options.trusted;
  return async (key: Buffer): Promise<void> => {
    const fingerprint = Buffer.isBuffer(key) ? fingerprintSha256(key) : '';
    const v = Buffer.isBuffer(key) ? validateKeyBlob(key) : ({ ok: false, reason: 'not a Buffer' } as const);
    if (!v.ok) {
      throw new SshHostKeyError('ERR_SSH_HOST_KEY_UNKNOWN', `host key ${fingerprint} presented by ${lookup} cannot be verified: ${v.reason}`, {
        host: lookup,
        fingerprint,
      });
    }
    let ok = false;
    let thrown: unknown;
    try {
      ok = (await verify(Object.freeze({ type: v.type, fingerprint, blob: Buffer.from(key) }), lookup)) === true;
    } catch (err) {
      thrown = err;
    }
    if (ok) {
      trusted?.set(lookup, Buffer.from(key));
      return;
    }
    const before = trusted?.get(lookup);
    const why = thrown === undefined ? 'the hostVerifier option refused it' : `the hostVerifier option failed: ${thrown instanceof Error ? thrown.message : inspect(thrown)}`;
    const err =
      before !== undefined && !before.equals(key)
        ? new SshHostKeyError(
            'ERR_SSH_HOST_KEY_MISMATCH',
            `host key for ${lookup} has changed: the server presented ${v.type} ${fingerprint}, which differs from the key this client trusted before, and ${why}. Someone could be eavesdropping (man-in-the-middle), or the host key was replaced`,
            { host: lookup, fingerprint },
          )
        : new SshHostKeyError('ERR_SSH_HOST_KEY_UNKNOWN', `host key ${v.type} ${fingerprint} presented by ${lookup} is not trusted: ${why}`, {
            host: lookup,
            fingerprint,
          });
    if (thrown !== undefined) Object.defineProperty(err, 'cause', { value: thrown, enumerable: false, configurable: true, writable: true });
    throw err;
  };
}

/** The callback shape ssh2 passes to `hostVerifier`. */
export type Ssh2HostVerifyCallback = (ok: boolean) => void;

/**
 * Adapts a {@link HostVerifier} to ssh2's `hostVerifier` connect option.
 *
 * ssh2 1.17 (`lib/client.js` `connect()`, `lib/protocol/kex.js` KEXDH_REPLY handling) calls
 * `hostVerifier(hostPubKey, verify)` where `hostPubKey` is the raw SSH wire-format public key
 * blob Buffer (a slice of the packet, so it is copied here) — as long as the `hostHash` option is
 * NOT set (it would replace the blob by a hex digest string). If the function returns `undefined`
 * ssh2 waits for `verify(ok)`; it also calls `hostVerifier` again on every re-key.
 *
 * The returned function always returns `undefined` and calls `verify` exactly once. On failure
 * it first calls `onResult(err)` (so the caller holds the typed error before ssh2 emits its
 * generic "Host denied (verification failed)" handshake error), then `verify(false)`. On success
 * it calls `onResult(undefined)` then `verify(true)`. A rejection that is not an {@link SshError}
 * is wrapped as a non-retryable `ERR_SSH_HANDSHAKE`. Exceptions thrown by `onResult` or `verify`
 * are swallowed: nothing escapes as an unhandled rejection.
 *
 * @param verifier - e.g. from {@link createHostVerifier}.
 * @param onResult - receives the verification error (`SshHostKeyError`, or `SshConfigError` when
 *   a known_hosts file could not be read/written), or `undefined` on success.
 * @returns the function to pass as ssh2's `hostVerifier`.
 */
export function toSsh2HostVerifier(
  verifier: HostVerifier,
  onResult: (err: SshError | undefined) => void,
): (key: Buffer, verify: Ssh2HostVerifyCallback) => void {
  return (key: Buffer, verify: Ssh2HostVerifyCallback): void => {
    let settled = false;
    const finish = (err: SshError | undefined): void => {
      if (settled) return;
      settled = true;
      try {
        onResult(err);
      } catch {
        // ignore: the result still reaches ssh2
      }
      try {
        verify(err === undefined);
      } catch {
        // ssh2 internals failing here must not become an unhandled rejection
      }
    };
    if (!Buffer.isBuffer(key)) {
      finish(
        new SshError('ERR_SSH_HANDSHAKE', 'ssh2 passed a host key that is not a Buffer (is the ssh2 hostHash option set?)', {
          retryable: false,
        }),
      );
      return;
    }
    const copy = Buffer.from(key);
    let p: Promise<void>;
    try {
      p = verifier(copy);
    } catch (err) {
      p = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    Promise.resolve(p).then(
      () => finish(undefined),
      (err: unknown) =>
        finish(
          err instanceof SshError
            ? err
            : new SshError('ERR_SSH_HANDSHAKE', `host key verification failed: ${err instanceof Error ? err.message : String(err)}`, {
                cause: err,
                retryable: false,
              }),
        ),
    );
  };
}
