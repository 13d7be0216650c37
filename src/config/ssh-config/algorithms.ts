/**
 * Algorithm list specifications (`Ciphers`, `KexAlgorithms`, `MACs`, `HostKeyAlgorithms`),
 * a port of OpenSSH 9.2 `kex_assemble_names` (kex.c) as documented in ssh_config(5).
 *
 * @module config/ssh-config/algorithms
 */
import { SshConfigError } from '../../errors.js';
import { matchPatternList } from './patterns.js';

function cat(a: readonly string[], b: readonly string[]): string[] {
  const out = [...a];
  for (const n of b) if (!out.includes(n)) out.push(n);
  return out;
}

/**
 * Applies an OpenSSH algorithm specification to a default list and returns the resulting list.
 *
 * - `+a,b`: append to the defaults (names already present are not repeated);
 * - `-a,b*`: remove the defaults matching any of the patterns (wildcards `*` and `?`);
 * - `^a,b`: place at the head of the defaults;
 * - `a,b`: replace the defaults.
 *
 * As in OpenSSH, the names of the `+`, `^` and plain forms may be wildcard patterns, expanded
 * against `supported` (in `supported` order); a name without wildcards is kept as written.
 * Duplicates are dropped, keeping the first.
 *
 * @param spec - the value as written in ssh_config (e.g. `+ssh-rsa`, `-*-cbc`, `^aes128-gcm@openssh.com`).
 * @param defaults - the default list the spec modifies.
 * @param supported - names wildcard patterns may expand to; defaults to `defaults`.
 * @returns a new array (never empty).
 * @throws SshConfigError `ERR_SSH_CONFIG` (field `algorithms`) for an empty spec or result, an
 * empty name, or a `!`-negated name.
 */
export function applyAlgorithmSpec(
  spec: string,
  defaults: readonly string[],
  supported: readonly string[] = defaults,
): string[] {
  const field = 'algorithms';
  if (spec === '') throw new SshConfigError('algorithms: empty specification; accepted: [+-^]name[,name...]', { field });
  const head = spec[0];
  const body = head === '+' || head === '-' || head === '^' ? spec.slice(1) : spec;
  const names = body.split(',');
  if (names.some((n) => n === '')) {
    throw new SshConfigError(`algorithms: empty name in "${spec}"; accepted: [+-^]name[,name...]`, { field });
  }
  let result: string[];
  if (head === '-') {
    result = defaults.filter((d) => matchPatternList(d, body, false) !== 1);
  } else {
    const list = head === '+' ? cat(defaults, names) : head === '^' ? cat(names, defaults) : names;
    result = [];
    for (const pat of list) {
      if (pat.startsWith('!')) {
        throw new SshConfigError(`algorithms: negated name "${pat}" is not allowed in "${spec}"`, { field });
      }
      const matching = /[*?]/.test(pat) ? supported.filter((s) => matchPatternList(s, pat, false) === 1) : [pat];
      result = cat(result, matching);
    }
  }
  if (result.length === 0) {
    throw new SshConfigError(`algorithms: "${spec}" leaves no algorithm`, { field });
  }
  return result;
}
