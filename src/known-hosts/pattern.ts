/**
 * Host patterns of known_hosts lines, as OpenSSH's `match.c` (`match_pattern`,
 * `match_pattern_list`, `match_hostname`) and `misc.c` (`put_host_port`) implement them.
 *
 * @module known-hosts/pattern
 */
import { SshConfigError } from '../errors.js';

/** OpenSSH copies each sub-pattern into a 1024-byte buffer; longer ones make the whole list fail. */
const MAX_SUBPATTERN = 1023;

/**
 * Matches `text` against a glob where `*` is any run of characters (also none) and `?` is exactly
 * one character, as OpenSSH's `match_pattern()`. Case-sensitive; callers lowercase both sides.
 * Iterative with single-star backtracking: O(text * pattern) worst case, no recursion, no regex.
 *
 * @param text - the string to test (e.g. `[host]:2222`).
 * @param pattern - the glob.
 * @returns `true` when the whole of `text` matches.
 */
export function matchPattern(text: string, pattern: string): boolean {
  let t = 0;
  let p = 0;
  let starP = -1;
  let starT = 0;
  // Bounded: each iteration advances t, or p, or (on backtrack) starT, which is at most text.length.
  while (t < text.length) {
    const pc = pattern[p];
    if (pc === '*') {
      starP = p++;
      starT = t;
    } else if (pc !== undefined && (pc === '?' || pc === text[t])) {
      p++;
      t++;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/**
 * Matches `text` against a comma-separated pattern list, as OpenSSH's `match_pattern_list()` with
 * `dolower` set: the patterns are lowercased; a `!`-prefixed pattern that matches makes the whole
 * list a negative match, whatever the other patterns say.
 *
 * @param text - the (already lowercased) host string.
 * @param list - e.g. `*.example.com,!bad.example.com`.
 * @returns `1` positive match, `0` no match, `-1` negated match.
 */
export function matchPatternList(text: string, list: string): 1 | 0 | -1 {
  let positive = false;
  for (const raw of list.split(',')) {
    const negated = raw.startsWith('!');
    const sub = (negated ? raw.slice(1) : raw).toLowerCase();
    if (sub.length >= MAX_SUBPATTERN) return 0;
    if (matchPattern(text, sub)) {
      if (negated) return -1;
      positive = true;
    }
  }
  return positive ? 1 : 0;
}

/**
 * The host string OpenSSH looks up in known_hosts for a host and port (`put_host_port()` in
 * OpenSSH `misc.c`, applied to the lowercased host name as `ssh` does): `host` for port 22,
 * `[host]:port` otherwise. Hashed entries hash exactly this string.
 *
 * @param host - host name or IP address as connected to (IPv6 without brackets, e.g. `::1`).
 * @param port - TCP port, an integer 1-65535.
 * @returns e.g. `example.com` or `[127.0.0.1]:2222`.
 * @throws SshConfigError `ERR_SSH_CONFIG` (field `host` or `port`) when the host is empty or holds
 *   characters that cannot appear in a known_hosts host field (whitespace, `,`, `*`, `?`, `!`,
 *   `[`, `]`, `|`, `#`, `@` first, control characters), or the port is not an integer 1-65535.
 */
export function hostPattern(host: string, port: number): string {
  validateHost(host);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new SshConfigError(`port must be an integer from 1 to 65535, got ${String(port)}`, { field: 'port' });
  }
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function validateHost(host: unknown): asserts host is string {
  if (typeof host !== 'string' || host.length === 0 || host.length > 1024) {
    throw new SshConfigError('host must be a non-empty string of at most 1024 characters (a host name or IP address)', {
      field: 'host',
    });
  }
  // eslint-disable-next-line no-control-regex
  if (/[\s,*?![\]|\x00-\x1f\x7f]/.test(host) || host.startsWith('#') || host.startsWith('@')) {
    throw new SshConfigError(
      `host must be a plain host name or IP address (no whitespace, commas, wildcards, brackets, "|", or leading "#"/"@"), got ${JSON.stringify(host.slice(0, 80))}`,
      { field: 'host' },
    );
  }
}
