import { readFile, stat } from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { SshError } from '../errors.js';
import type { PassphraseCallback, ResolvedOptions } from '../options.js';
import { SelectedAgent, blobFingerprint, listAgentKeys, type AgentKey } from './agent.js';

/**
 * Client authentication (RFC 4252), in OpenSSH's order and with OpenSSH's switches
 * (ssh_config(5) `IdentityFile`, `IdentitiesOnly`, `IdentityAgent`, `PreferredAuthentications`,
 * `PasswordAuthentication`, `PubkeyAuthentication`, `BatchMode`).
 */

/** One authentication method to try, in order. */
export type AuthStep =
  | { kind: 'agent'; agent: SelectedAgent; label: string }
  | { kind: 'publickey'; key: ParsedKey; label: string }
  | { kind: 'password'; label: string }
  | { kind: 'keyboard-interactive'; label: string };

/** `SHA256:<base64 without padding>` of an SSH public key blob, as `ssh-keygen -l` prints it. */
export function keyFingerprint(blob: Buffer): string {
  return blobFingerprint(blob);
}

function describeKey(key: ParsedKey, source: string): string {
  return `${key.type} ${keyFingerprint(key.getPublicSSH())} (${source})`;
}

/** Tracks the methods tried and what the server still allows, for `ERR_SSH_AUTH` messages. */
export interface AuthTrace {
  /** Every method and key offered to the server, in order (keys as `publickey <type> SHA256:... (<source>)`). */
  tried: string[];
  /** The methods the server said can continue, from its last `SSH_MSG_USERAUTH_FAILURE`. */
  serverAllows: string[] | undefined;
  /** Keys left out or refused, an unreachable agent, a failed callback... */
  notes: string[];
}

/** An empty {@link AuthTrace}. */
export function newAuthTrace(): AuthTrace {
  return { tried: [], serverAllows: undefined, notes: [] };
}

function record(list: string[], entry: string): void {
  if (!list.includes(entry)) list.push(entry);
}

/**
 * Parses a private key with ssh2's parser.
 *
 * @throws {SshError} `ERR_SSH_KEY` when the key cannot be parsed, is not a private key, or the
 *   passphrase is missing or wrong. The message names `source` but never the key or passphrase.
 */
export function parsePrivateKey(data: string | Buffer, passphrase: string | undefined, source: string): ParsedKey {
  const parsed = ssh2.utils.parseKey(data, passphrase);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase|decrypt|bad decrypt/i.test(parsed.message);
    const why = encrypted
      ? passphrase === undefined
        ? 'the key is encrypted and no passphrase was given'
        : 'wrong passphrase'
      : `unsupported or malformed key (${parsed.message.replace(/[^\x20-\x7e]/g, '')})`;
    throw new SshError('ERR_SSH_KEY', `cannot use private key ${source}: ${why}`, { retryable: false });
  }
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
  if (!key || !key.isPrivateKey()) {
    throw new SshError('ERR_SSH_KEY', `cannot use private key ${source}: it holds no private key`, { retryable: false });
  }
  return key;
}

/**
 * Reads and parses an identity file, refusing it, as OpenSSH does ("UNPROTECTED PRIVATE KEY
 * FILE"), when it is owned by the current user and readable or writable by group or others.
 *
 * @returns the parsed key, or `undefined` when `optional` is set (a default identity file, as
 *   OpenSSH's list in `DEFAULTS.identityFiles`) and the file does not exist or holds a key
 *   type ssh2 cannot use (security-key `sk-*` and XMSS keys: OpenSSH would use them, ssh2 cannot).
 * @throws {SshError} `ERR_SSH_KEY` for bad permissions, unreadable or unparsable files, wrong passphrase.
 */
export async function loadIdentityFile(path: string, passphrase: PassphraseSource, optional: boolean): Promise<ParsedKey | undefined> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SshError('ERR_SSH_KEY', `cannot read private key file ${path}: ${(err as Error).message}`, { cause: err, retryable: false });
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (st.uid === uid && (st.mode & 0o077) !== 0) {
    throw new SshError(
      'ERR_SSH_KEY',
      `private key file ${path} has permissions 0${(st.mode & 0o777).toString(8)}: it must not be accessible by group or others (chmod 600 ${path}), as OpenSSH requires`,
      { retryable: false },
    );
  }
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new SshError('ERR_SSH_KEY', `cannot read private key file ${path}: ${(err as Error).message}`, { cause: err, retryable: false });
  }
  if (optional && isUnsupportedKeyType(data)) return undefined;
  return parseWithPassphrase(data, passphrase, path);
}

/** `true` when ssh2 reads the file as a private key of a type it does not implement (`sk-*`, XMSS). */
function isUnsupportedKeyType(data: Buffer): boolean {
  const parsed = ssh2.utils.parseKey(data);
  return parsed instanceof Error && /^Unsupported OpenSSH (private|public) key type: /.test(parsed.message);
}

/** A passphrase: none, a value, or a callback asked (once) when the key turns out to be encrypted. */
export type PassphraseSource = string | PassphraseCallback | undefined;

function isEncryptedKey(data: string | Buffer): boolean {
  const parsed = ssh2.utils.parseKey(data);
  return parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message);
}

/**
 * Parses a key, asking `passphrase` (when it is a callback) only if the key is encrypted, and
 * at most once per call.
 *
 * @throws {SshError} `ERR_SSH_KEY` (see {@link parsePrivateKey}); also when the callback throws
 *   (its error is the `cause`) or returns something other than a string.
 */
export async function parseWithPassphrase(data: string | Buffer, passphrase: PassphraseSource, source: string): Promise<ParsedKey> {
  if (typeof passphrase !== 'function') return parsePrivateKey(data, passphrase, source);
  if (!isEncryptedKey(data)) return parsePrivateKey(data, undefined, source);
  let value: string;
  try {
    value = await passphrase({ keyPath: source });
  } catch (err) {
    throw new SshError('ERR_SSH_KEY', `cannot use private key ${source}: the passphrase callback failed`, { cause: err, retryable: false });
  }
  if (typeof value !== 'string') throw new SshError('ERR_SSH_KEY', `cannot use private key ${source}: the passphrase callback must return a string`, { retryable: false });
  return parsePrivateKey(data, value, source);
}

/**
 * Wraps an RSA private key so that it never makes a SHA-1 (`ssh-rsa`) signature: ssh2 falls
 * back to `ssh-rsa` when a server does not announce `server-sig-algs` (RFC 8308), and such a
 * signature is refused here; `rsa-sha2-256`/`rsa-sha2-512` (RFC 8332) are used otherwise.
 * Other key types are returned unchanged.
 */
export function withoutSha1(key: ParsedKey): ParsedKey {
  if (key.type !== 'ssh-rsa') return key;
  return Object.create(key, {
    sign: {
      value: (data: Buffer | string, algo?: string): Buffer | Error => {
        if (algo === undefined || algo === 'sha1') return new Error(SHA1_REFUSED);
        return key.sign(data, algo);
      },
    },
  }) as ParsedKey;
}

/** The message of the signature refusal ssh2 reports (level `client-authentication`) for a SHA-1 RSA signature. */
export const SHA1_REFUSED = 'ssh-tether refuses SHA-1 (ssh-rsa) signatures: the server must accept rsa-sha2-256 or rsa-sha2-512';

/** The public key blob of `<file>.pub`, when that file exists and parses. */
async function readPublicBlob(file: string): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = await readFile(`${file}.pub`, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = ssh2.utils.parseKey(text);
  if (parsed instanceof Error) return undefined;
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
  return key?.getPublicSSH();
}

/** The error a BatchMode passphrase stand-in throws (so the key is skipped, not fatal). */
const BATCH_MODE = new Error('BatchMode: the passphrase callback is not asked');

interface Identity {
  source: string;
  blob: Buffer | undefined;
  key: ParsedKey | undefined;
}

/** The authentication methods OpenSSH tries by default, in its order (ssh_config(5) `PreferredAuthentications`). */
const DEFAULT_ORDER = ['publickey', 'keyboard-interactive', 'password'] as const;
type Method = (typeof DEFAULT_ORDER)[number];

/**
 * Builds the ordered list of authentication methods, as OpenSSH orders public keys
 * (`sshconnect2.c` `pubkey_prepare`): agent keys that match a configured identity (the
 * `privateKey` option first, then `identityFiles`), then the agent's other keys (left out with
 * `identitiesOnly`), then the configured keys the agent does not hold; then keyboard-interactive
 * and password, or the order of `preferredAuthentications`. `pubkeyAuthentication` /
 * `passwordAuthentication` false leave those methods out; `batchMode` never asks the passphrase
 * or keyboard-interactive callbacks (encrypted keys are then skipped, with a note in `trace`).
 *
 * A key file whose `<file>.pub` matches an agent key is not read (no passphrase asked). An
 * unreachable agent counts as one without keys (noted in `trace`), as in OpenSSH.
 *
 * @param trace - receives notes now, and the keys the agent step offers later.
 * @throws {SshError} `ERR_SSH_KEY` (see {@link loadIdentityFile}).
 */
export async function buildAuthSteps(o: ResolvedOptions, trace: AuthTrace = newAuthTrace()): Promise<AuthStep[]> {
  const order: readonly string[] = o.preferredAuthentications ?? DEFAULT_ORDER;
  const wanted = (m: Method): boolean => order.includes(m);
  const groups = new Map<Method, AuthStep[]>(DEFAULT_ORDER.map((m) => [m, []]));
  const interactive = !o.batchMode;

  if (o.pubkeyAuthentication && wanted('publickey')) {
    const steps = groups.get('publickey') ?? [];
    let agentKeys: AgentKey[] = [];
    if (o.agent !== undefined) {
      try {
        agentKeys = await listAgentKeys(o.agent, Math.min(5_000, o.connectTimeoutMs));
      } catch (err) {
        trace.notes.push(`agent ${o.agent} not usable: ${(err as Error).message}`);
      }
    }
    const inAgent = (blob: Buffer | undefined): boolean => blob !== undefined && agentKeys.some((k) => k.blob.equals(blob));
    const passphrase: PassphraseSource =
      typeof o.passphrase === 'function'
        ? interactive
          ? o.passphrase
          : () => {
              throw BATCH_MODE;
            }
        : o.passphrase?.reveal();
    const load = async (source: string, read: () => Promise<ParsedKey | undefined>): Promise<ParsedKey | undefined> => {
      try {
        return await read();
      } catch (err) {
        if (err instanceof SshError && err.cause === BATCH_MODE) {
          trace.notes.push(`key ${source} skipped: it is encrypted and BatchMode forbids asking for its passphrase`);
          return undefined;
        }
        throw err;
      }
    };
    const identities: Identity[] = [];
    if (o.privateKey) {
      const data = o.privateKey.reveal();
      const key = await load('privateKey option', () => parseWithPassphrase(data, passphrase, 'privateKey option'));
      if (key) identities.push({ source: 'privateKey option', blob: key.getPublicSSH(), key });
    }
    for (const file of o.identityFiles) {
      const pub = await readPublicBlob(file);
      if (inAgent(pub)) {
        identities.push({ source: file, blob: pub, key: undefined });
        continue;
      }
      const key = await load(file, () => loadIdentityFile(file, passphrase, o.identityFilesDefaulted));
      if (key) identities.push({ source: file, blob: key.getPublicSSH(), key });
    }
    if (agentKeys.length > 0 && o.agent !== undefined) {
      const matched: AgentKey[] = [];
      for (const id of identities) {
        const k = agentKeys.find((a) => id.blob !== undefined && a.blob.equals(id.blob));
        if (k && !matched.includes(k)) matched.push(k);
      }
      const others = agentKeys.filter((k) => !matched.includes(k));
      if (o.identitiesOnly && others.length > 0) {
        trace.notes.push(`IdentitiesOnly: ${others.length} agent key(s) not offered (${others.map((k) => k.fingerprint).join(', ')})`);
      }
      const chosen = o.identitiesOnly ? matched : [...matched, ...others];
      if (chosen.length > 0) {
        const agent = new SelectedAgent(
          o.agent,
          chosen,
          (k) => record(trace.tried, `publickey ${k.type} ${k.fingerprint} (agent${k.comment ? `: ${k.comment}` : ''})`),
          (k, why) => record(trace.notes, `agent key ${k.fingerprint} skipped: ${why}`),
        );
        steps.push({ kind: 'agent', agent, label: `agent (${o.agent})` });
      }
    }
    for (const id of identities) {
      if (!id.key || inAgent(id.blob)) continue;
      steps.push({ kind: 'publickey', key: withoutSha1(id.key), label: `publickey ${describeKey(id.key, id.source)}` });
    }
  }
  const kbdCallback = interactive ? o.keyboardInteractive : undefined;
  if (wanted('keyboard-interactive') && (kbdCallback || (o.password && o.passwordAuthentication))) {
    groups.get('keyboard-interactive')?.push({ kind: 'keyboard-interactive', label: 'keyboard-interactive' });
  }
  if (wanted('password') && o.password && o.passwordAuthentication) {
    groups.get('password')?.push({ kind: 'password', label: 'password' });
  }
  const steps: AuthStep[] = [];
  for (const m of order) steps.push(...(groups.get(m as Method) ?? []));
  return steps;
}

/** A prompt asking for the account password: not echoed, and worded like one (not a passcode, OTP or token). */
const PASSWORD_PROMPT = /pass(?:word|wd)|passwort|mot de passe|contrase(?:ñ|n)a|senha/i;
/** Wording of one-time codes, even when they say "password" (pam_oath: "One-time password (OATH)"). */
const ONE_TIME_PROMPT = /one[- ]?time|\botp\b|token|code/i;

/**
 * True when `p` is a prompt the configured password may answer: not echoed (RFC 4256 section 3.2
 * `echo` false) and worded as a password prompt ("Password:", "user@host's password:").
 */
export function isPasswordPrompt(p: { prompt: string; echo?: boolean }): boolean {
  return p.echo !== true && PASSWORD_PROMPT.test(p.prompt) && !ONE_TIME_PROMPT.test(p.prompt);
}

/** A server prompt made safe for an error message: control characters escaped, at most 80 characters. */
function sanitizePrompt(s: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return clean.length > 80 ? `${clean.slice(0, 80)}...` : clean;
}

/**
 * Makes an ssh2 `authHandler` walking `steps` in order, skipping methods the server does not
 * allow, and recording every attempt in `trace`. Keyboard-interactive prompts (RFC 4256) go to
 * the `keyboardInteractive` callback (not in `batchMode`), which answers all of them; without one,
 * `password` answers a round only when all its prompts are non-echoed password prompts
 * ({@link isPasswordPrompt}); any other round gets empty answers and the note that ends in the
 * `ERR_SSH_AUTH` message.
 */
export function makeAuthHandler(steps: readonly AuthStep[], o: ResolvedOptions, trace: AuthTrace): ssh2.AuthHandlerMiddleware {
  let i = 0;
  const username = o.username;
  const kbdCallback = o.batchMode ? undefined : o.keyboardInteractive;
  return (methodsLeft, _partial, next) => {
    if (Array.isArray(methodsLeft)) trace.serverAllows = [...methodsLeft];
    while (i < steps.length) {
      const step = steps[i++];
      if (!step) break;
      const method = step.kind === 'agent' ? 'publickey' : step.kind;
      if (Array.isArray(methodsLeft) && !methodsLeft.includes(method)) continue;
      // Agent keys are recorded one by one, when ssh2 offers them.
      if (step.kind !== 'agent') record(trace.tried, step.label);
      switch (step.kind) {
        case 'agent':
          next({ type: 'agent', username, agent: step.agent });
          return;
        case 'publickey':
          next({ type: 'publickey', username, key: step.key });
          return;
        case 'password':
          next({ type: 'password', username, password: o.password?.reveal() ?? '' });
          return;
        case 'keyboard-interactive':
          next({
            type: 'keyboard-interactive',
            username,
            prompt: (name, instructions, _lang, prompts, finish) => {
              if (!kbdCallback) {
                // Without a callback the password answers a round only when every prompt of it is
                // a non-echoed password prompt (never "Username:", an OTP or a verification code).
                // Otherwise nothing secret is sent: empty answers, the server refuses, and the
                // attempt ends with ERR_SSH_AUTH naming the prompt (RFC 4256 section 3.2/3.4).
                const refused = prompts.find((p) => !isPasswordPrompt(p));
                if (refused === undefined && o.password !== undefined) {
                  finish(prompts.map(() => o.password?.reveal() ?? ''));
                  return;
                }
                if (refused !== undefined) {
                  record(
                    trace.notes,
                    `keyboard-interactive prompt ${JSON.stringify(sanitizePrompt(refused.prompt))} (${refused.echo === true ? 'echoed' : 'not echoed'}) ` +
                      'is not a password prompt and was not answered: pass a keyboardInteractive callback',
                  );
                }
                finish(prompts.map(() => ''));
                return;
              }
              const asked = prompts.map((p) => ({ prompt: p.prompt, echo: p.echo === true }));
              Promise.resolve()
                .then(() => kbdCallback(asked, { name, instructions }))
                .then(
                  (answers: unknown) => {
                    if (!Array.isArray(answers) || answers.length !== prompts.length || !answers.every((a) => typeof a === 'string')) {
                      record(trace.notes, `keyboard-interactive callback must return ${prompts.length} string answer(s)`);
                      finish(prompts.map(() => ''));
                      return;
                    }
                    finish(answers);
                  },
                  () => {
                    record(trace.notes, 'keyboard-interactive callback failed');
                    finish(prompts.map(() => ''));
                  },
                );
            },
          });
          return;
      }
    }
    next(false as unknown as ssh2.AuthenticationType);
  };
}

/**
 * Formats the `ERR_SSH_AUTH` message: every method and key (by fingerprint) tried, the methods
 * the server allows, and the notes (skipped keys, agent problems). Never includes secrets.
 */
export function describeAuthFailure(o: Pick<ResolvedOptions, 'username' | 'host' | 'port'>, trace: AuthTrace, reason?: string): string {
  const tried = trace.tried.length > 0 ? trace.tried.join('; ') : 'no method (no key, agent or password available)';
  const allowed = trace.serverAllows ? `; the server allows: ${trace.serverAllows.join(', ')}` : '';
  const notes = trace.notes.length > 0 ? `; notes: ${trace.notes.join('; ')}` : '';
  const why = reason ? ` (${reason})` : '';
  return `authentication as '${o.username}' to ${o.host}:${o.port} failed${why}; tried ${tried}${allowed}${notes}`;
}
