/**
 * OpenSSH pattern matching (match.c `match_pattern`, `match_pattern_list`), as documented in
 * ssh_config(5) PATTERNS. Written here because no npm glob library implements OpenSSH's exact
 * rules (`?` is exactly one character, comma lists with `!` negation that vetoes the list).
 *
 * @module config/ssh-config/patterns
 */

/**
 * `true` when `s` matches the single pattern `p`: `*` matches any run of characters (also
 * empty), `?` exactly one character; everything else literally and case-sensitively.
 * Runs in O(|s| * |p|) at worst (no exponential backtracking).
 */
export function matchPattern(s: string, p: string): boolean {
  let si = 0;
  let pi = 0;
  let starP = -1;
  let starS = 0;
  while (si < s.length) {
    const pc = p[pi];
    if (pc !== undefined && pc !== '*' && (pc === '?' || pc === s[si])) {
      si++;
      pi++;
    } else if (pc === '*') {
      starP = pi++;
      starS = si;
    } else if (starP >= 0) {
      pi = starP + 1;
      si = ++starS;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

/**
 * OpenSSH `match_pattern_list`: `list` is comma-separated; an entry starting with `!` is
 * negated. Returns `1` if some positive entry matches and no negated entry does, `-1` if a
 * negated entry matches, `0` otherwise. With `lowerPatterns` the patterns are lowercased
 * (as `match_hostname` does); the string is used as given.
 */
export function matchPatternList(s: string, list: string, lowerPatterns: boolean): -1 | 0 | 1 {
  let got: 0 | 1 = 0;
  for (const raw of list.split(',')) {
    const negated = raw.startsWith('!');
    let pat = negated ? raw.slice(1) : raw;
    if (lowerPatterns) pat = pat.toLowerCase();
    if (matchPattern(s, pat)) {
      if (negated) return -1;
      got = 1;
    }
  }
  return got;
}

/**
 * Shell-glob match of one path segment, as glob(3) without GLOB_PERIOD: like
 * {@link matchPattern}, but a leading `.` of the name must be matched literally.
 */
export function matchGlobSegment(name: string, pattern: string): boolean {
  if (name.startsWith('.') && !pattern.startsWith('.')) return false;
  return matchPattern(name, pattern);
}
