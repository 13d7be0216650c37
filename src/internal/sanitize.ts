/**
 * Sanitizing text that came from the server before it reaches a terminal or an error message.
 *
 * A server controls DISCONNECT descriptions, auth method names, SFTP STATUS messages, its
 * identification string and `exit-signal` names; printed raw, escape sequences in them can
 * retitle or clear the terminal or fake output. OpenSSH passes such strings through
 * `strnvis(..., VIS_SAFE | VIS_OCTAL)` / `fmprintf` before printing; this is the same idea:
 * every control character other than tab and newline is shown escaped (`\x1b`), as are C1
 * controls (U+0080..U+009F, e.g. the 8-bit CSI U+009B), a carriage return not followed by a
 * newline, lone surrogates and the Unicode bidirectional overrides; the result is bounded.
 *
 * Own code (a few lines) rather than a dependency: `strip-ansi` removes only well-formed ANSI
 * sequences and leaves lone ESC, C1 and CR in place, which is exactly what must not pass.
 *
 * @module internal/sanitize
 */

/** Default bound on a sanitized string, in UTF-16 code units (before the truncation marker). */
export const SANITIZE_MAX_LENGTH = 1024;

/** Options of {@link sanitizeText}. */
export interface SanitizeOptions {
  /** Bound on the result (code units, before the `…` marker). @default {@link SANITIZE_MAX_LENGTH} */
  maxLength?: number;
  /** Keep tab and newline as they are (true) or escape them too (false: one line). @default true */
  multiline?: boolean;
}

function hex2(c: number): string {
  return c.toString(16).padStart(2, '0');
}

function escapeCodePoint(c: number): string {
  return c <= 0xff ? `\\x${hex2(c)}` : `\\u${c.toString(16).padStart(4, '0')}`;
}

function isBidiControl(c: number): boolean {
  return (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c === 0x200e || c === 0x200f || c === 0x061c;
}

/**
 * Makes a server-controlled string safe to print: every C0 control except tab and newline
 * (and, with `multiline: false`, those too), DEL, every C1 control, a CR not followed by LF,
 * lone surrogates and bidi overrides are replaced by a visible escape (`\x1b`, `\x9b`,
 * `\r`, `\u202e`); a CR LF pair becomes LF. The result is at most `maxLength` code units
 * plus a `…(N more)` marker. Non-strings are converted with `String()` first.
 *
 * @param text - the untrusted text.
 * @param options - see {@link SanitizeOptions}.
 * @returns the printable text.
 */
export function sanitizeText(text: unknown, options: SanitizeOptions = {}): string {
  const s = typeof text === 'string' ? text : String(text);
  const max = options.maxLength ?? SANITIZE_MAX_LENGTH;
  const multiline = options.multiline ?? true;
  let out = '';
  let i = 0;
  for (; i < s.length && out.length < max; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x0d) {
      if (s.charCodeAt(i + 1) === 0x0a && multiline) continue; // CR LF -> LF (the LF follows)
      out += '\\r';
    } else if (c === 0x0a || c === 0x09) {
      out += multiline ? s[i] : c === 0x0a ? '\\n' : '\\t';
    } else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f) || isBidiControl(c)) {
      out += escapeCodePoint(c);
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s.slice(i, i + 2);
        i++;
      } else {
        out += escapeCodePoint(c);
      }
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      out += escapeCodePoint(c);
    } else {
      out += s[i];
    }
  }
  if (i < s.length) out += `…(${s.length - i} more)`;
  return out;
}

/** {@link sanitizeText} for one-line fields (names, identification strings): tab and newline escaped too. */
export function sanitizeLine(text: unknown, maxLength = 256): string {
  return sanitizeText(text, { multiline: false, maxLength });
}

/**
 * Checks a signal name from the server (RFC 4254 6.10 `exit-signal`, which carries it without
 * `SIG`; ssh2 adds the prefix): the result is `SIG` + a token matching `/^[A-Z][A-Z0-9]*$/`
 * (at most 32 characters), or `null` for anything else (escape sequences, spaces, lower case).
 *
 * @param name - the name as received (with or without `SIG`), or anything else.
 * @returns the Node-style name (`'SIGKILL'`, `'SIGUSR1'`) or `null`.
 */
export function signalName(name: unknown): string | null {
  if (typeof name !== 'string') return null;
  const bare = name.startsWith('SIG') ? name.slice(3) : name;
  return bare.length <= 32 && /^[A-Z][A-Z0-9]*$/.test(bare) ? `SIG${bare}` : null;
}
