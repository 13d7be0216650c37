import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { SshError } from '../errors.js';
import type { PassphraseCallback, ResolvedOptions } from '../config/options.js';

/** One authentication method to try, in order. */
export type AuthStep =
  | { kind: 'agent'; socket: string; label: string }
  | { kind: 'publickey'; key: ParsedKey; label: string }
  | { kind: 'password'; label: string }
  | { kind: 'keyboard-interactive'; label: string };

/** `SHA256:<base64 without padding>` of an SSH public key blob, as `ssh-keygen -l` prints it. */
export function keyFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function describeKey(key: ParsedKey, source: string): string {
  return `${key.type} ${keyFingerprint(key.getPublicSSH())} (${source})`;
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
 * @returns the parsed key, or `undefined` when the file does not exist and `optional` is set.
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
  return parseWithPassphrase(data, passphrase, path);
}

/** A passphrase: none, a value, or a callback asked (once) when the key turns out to be encrypted. */
export type PassphraseSource = string | PassphraseCallback | undefined;

function isEncryptedKey(data: string | Buffer): boolean {
  const parsed = ssh2.utils.parseKey(data);
  return parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message);
}

/**
 * Parses a key, asking `passphrase` (when it is a callback) only if the key is encrypted.
 *
 * @throws {SshError} `ERR_SSH_KEY` (see {@link parsePrivateKey}); also when the callback throws.
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
 * Builds the ordered list of authentication methods, as OpenSSH orders them: agent keys, then the
 * explicit `privateKey`, then identity files, then password and keyboard-interactive.
 *
 * @throws {SshError} `ERR_SSH_KEY` (see {@link loadIdentityFile}).
 */
export async function buildAuthSteps(o: ResolvedOptions): Promise<AuthStep[]> {
  const steps: AuthStep[] = [];
  if (o.agent !== undefined) steps.push({ kind: 'agent', socket: o.agent, label: `agent (${o.agent})` });
  const passphrase: PassphraseSource = typeof o.passphrase === 'function' ? o.passphrase : o.passphrase?.reveal();
  if (o.privateKey) {
    const key = await parseWithPassphrase(o.privateKey.reveal(), passphrase, 'privateKey option');
    steps.push({ kind: 'publickey', key, label: `publickey ${describeKey(key, 'privateKey option')}` });
  }
  for (const file of o.identityFiles) {
    const key = await loadIdentityFile(file, passphrase, o.identityFilesDefaulted);
    if (key) steps.push({ kind: 'publickey', key, label: `publickey ${describeKey(key, file)}` });
  }
  if (o.password) {
    steps.push({ kind: 'password', label: 'password' });
    steps.push({ kind: 'keyboard-interactive', label: 'keyboard-interactive' });
  }
  return steps;
}

/** Tracks the methods tried and what the server still allows, for `ERR_SSH_AUTH` messages. */
export interface AuthTrace {
  tried: string[];
  serverAllows: string[] | undefined;
}

/**
 * Makes an ssh2 `authHandler` walking `steps` in order, skipping methods the server does not
 * allow, and recording every attempt in `trace`.
 */
export function makeAuthHandler(steps: readonly AuthStep[], o: ResolvedOptions, trace: AuthTrace): ssh2.AuthHandlerMiddleware {
  let i = 0;
  const username = o.username;
  return (methodsLeft, _partial, next) => {
    if (Array.isArray(methodsLeft)) trace.serverAllows = [...methodsLeft];
    while (i < steps.length) {
      const step = steps[i++];
      if (!step) break;
      const method = step.kind === 'agent' ? 'publickey' : step.kind;
      if (Array.isArray(methodsLeft) && !methodsLeft.includes(method)) continue;
      trace.tried.push(step.label);
      switch (step.kind) {
        case 'agent':
          next({ type: 'agent', username, agent: step.socket });
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
            prompt: (_name, _instructions, _lang, prompts, finish) => {
              finish(prompts.map(() => o.password?.reveal() ?? ''));
            },
          });
          return;
      }
    }
    next(false as unknown as ssh2.AuthenticationType);
  };
}
