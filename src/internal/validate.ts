/**
 * Shared validation pieces: zod schemas for the values every part of the library accepts
 * (ports, durations in milliseconds, abort signals) and {@link parseOrThrow}, which turns the
 * first zod issue into a typed error naming the bad field and the accepted form.
 *
 * One rule for durations everywhere: a whole number of milliseconds from 0 to 2^31-1 (Node's
 * timers fire at once for larger values); a `timeoutMs` is at least 1.
 *
 * @module internal/validate
 */
import { z } from 'zod';
import { SshConfigError, SshError, SshInvalidArgError } from '../errors.js';

/** Largest delay Node's timers honour (2^31-1 ms, ~24.8 days); larger values fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** A duration in whole milliseconds, 0..2^31-1. `what` names the field in the message. */
export const durationMsSchema = (what: string): z.ZodNumber =>
  z
    .number({ error: `expected ${what} as a number of milliseconds` })
    .int({ error: `expected ${what} as a whole number of milliseconds` })
    .min(0, { error: `expected ${what} >= 0 milliseconds` })
    .max(MAX_TIMER_MS, { error: `expected ${what} <= ${MAX_TIMER_MS} milliseconds (2^31-1, the longest Node timer)` });

/** A timeout in whole milliseconds, 1..2^31-1 (one rule for every `timeoutMs`). */
export const timeoutMsSchema = (what = 'timeoutMs'): z.ZodNumber =>
  durationMsSchema(what).min(1, { error: `expected ${what} >= 1 millisecond` });

/** A TCP port to connect to, 1..65535. */
export const portSchema = (what = 'port'): z.ZodNumber =>
  z
    .number({ error: `expected ${what} as a number` })
    .int({ error: `expected ${what} as an integer 1-65535` })
    .min(1, { error: `expected ${what} as an integer 1-65535` })
    .max(65535, { error: `expected ${what} as an integer 1-65535` });

/** A TCP port to listen on, 0..65535 (0: the system picks a free port). */
export const listenPortSchema = (what = 'port'): z.ZodNumber =>
  z
    .number({ error: `expected ${what} as a number` })
    .int({ error: `expected ${what} as an integer 0-65535 (0 picks a free port)` })
    .min(0, { error: `expected ${what} as an integer 0-65535 (0 picks a free port)` })
    .max(65535, { error: `expected ${what} as an integer 0-65535 (0 picks a free port)` });

/** An `AbortSignal`. */
export const signalSchema = z.custom<AbortSignal>((v) => v instanceof AbortSignal, { error: 'expected an AbortSignal' });

/** How {@link zodToError} builds the error: the message and the field it names. */
export type MakeError = (message: string, field: string) => SshError;

/**
 * Turns a ZodError into a typed error naming the first bad field and the accepted form.
 * An unknown key lists the accepted names (when given) and suggests the closest one.
 *
 * @param error - the ZodError.
 * @param what - the name of the object checked, e.g. `get options`.
 * @param make - builds the error (default: {@link SshInvalidArgError}).
 * @param accepted - the accepted key names, listed when an unknown key was given.
 * @param input - the checked value (to tell "missing" from "wrong type").
 */
export function zodToError(error: z.ZodError, what: string, make: MakeError = invalidArg(error), accepted?: readonly string[], input?: unknown): SshError {
  const issue = error.issues[0];
  if (!issue) return make(`invalid ${what}`, '(options)');
  const base = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys;
    const field = base ? `${base}.${keys[0] ?? ''}` : (keys[0] ?? '');
    const names = accepted && !base ? accepted : [];
    const hint = keys[0] !== undefined && names.length > 0 ? suggestName(keys[0], names) : undefined;
    return make(
      `invalid ${what}: unknown option ${keys.map((k) => `'${base ? `${base}.` : ''}${k}'`).join(', ')}${hint ? ` (did you mean \`${hint}\`?)` : ''}${names.length > 0 ? `; accepted options: ${names.join(', ')}` : ''}`,
      field,
    );
  }
  const field = base || '(options)';
  // zod 4 does not keep the input on issues: look the value up to tell "missing" from "wrong type".
  let value: unknown = input;
  for (const key of issue.path) value = typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  const message = issue.code === 'invalid_type' && input !== undefined && value === undefined ? `required: ${issue.message}` : issue.message;
  return make(`invalid ${what}: '${field}': ${message}`, field);
}

function invalidArg(cause: z.ZodError): MakeError {
  return (message, field) => new SshInvalidArgError(message, { cause, field });
}

/** Builds {@link SshConfigError}s for {@link zodToError} (client options, ssh_config). */
export function configError(cause: z.ZodError): MakeError {
  return (message, field) => new SshConfigError(message, { cause, field });
}

/**
 * Parses `input` with `schema`, or throws the typed error naming the first bad field.
 * For an object schema (`z.object`, `z.strictObject`) the accepted key names are listed when
 * an unknown key was given.
 *
 * @param schema - the zod schema (use `z.strictObject` for option objects: unknown keys fail).
 * @param input - the value to check.
 * @param what - the name of the object, e.g. `get options`.
 * @param kind - `'arg'` (default): {@link SshInvalidArgError} `ERR_SSH_INVALID_ARG`;
 *   `'config'`: {@link SshConfigError} `ERR_SSH_CONFIG`.
 * @returns the parsed value.
 * @throws {SshInvalidArgError} `ERR_SSH_INVALID_ARG`, or {@link SshConfigError} `ERR_SSH_CONFIG` with `kind: 'config'`.
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string, kind: 'arg' | 'config' = 'arg'): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const accepted = schema instanceof z.ZodObject ? Object.keys((schema as z.ZodObject).shape) : undefined;
  throw zodToError(parsed.error, what, kind === 'config' ? configError(parsed.error) : invalidArg(parsed.error), accepted, input);
}

/**
 * Levenshtein edit distance (insert, delete, substitute; each cost 1), case-insensitive.
 * Own code rather than a package: a dozen lines, used only to suggest an option name.
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (s[i - 1] === t[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[t.length] ?? 0;
}

/**
 * The accepted name closest to `name` (Levenshtein), when close enough to be a typo: at most
 * 2 edits, or a third of the name's length for long names; else the first accepted name that
 * starts with `name` (4 characters or more); `undefined` otherwise.
 */
export function suggestName(name: string, accepted: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of accepted) {
    const d = editDistance(name, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  if (best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3))) return best;
  // A shortened name (`user` for `username`, `keepalive` for `keepaliveIntervalMs`).
  const lower = name.toLowerCase();
  return lower.length >= 4 ? accepted.find((c) => c.toLowerCase().startsWith(lower)) : undefined;
}

/**
 * Turns a ZodError into an {@link SshConfigError} (`ERR_SSH_CONFIG`) naming the first bad field
 * and the accepted form: {@link zodToError} with {@link configError}. Kept for the option objects
 * whose bad values are configuration (client options, ssh_config, declared forwards).
 *
 * @param error - the ZodError (also the `cause` of the result).
 * @param what - the name of the options object, e.g. `SshClient options`.
 * @param accepted - the accepted option names, comma-separated, listed when an unknown key was given.
 * @param input - the checked value (to tell "missing" from "wrong type").
 */
export function zodToConfigError(error: z.ZodError, what: string, accepted?: string, input?: unknown): SshConfigError {
  const names = accepted === undefined ? undefined : accepted.split(',').map((n) => n.trim()).filter((n) => n !== '');
  // configError() builds SshConfigErrors only.
  return zodToError(error, what, configError(error), names, input) as SshConfigError;
}
