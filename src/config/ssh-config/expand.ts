/**
 * `~`, `${VAR}` and `%` token expansion for ssh_config values, following OpenSSH's
 * `tilde_expand_filename`, `dollar_expand` and `percent_expand` (misc.c) and the TOKENS and
 * ENVIRONMENT VARIABLES sections of ssh_config(5).
 *
 * @module config/ssh-config/expand
 */
import { SshConfigError } from '../../errors.js';

/** The value of each `%` token (one character key -> value). */
export type TokenMap = ReadonlyMap<string, string>;

/**
 * Replaces `%x` tokens using `tokens`; `%%` is a literal `%`.
 *
 * @throws SshConfigError `ERR_SSH_CONFIG` naming `field` for an unknown token or a trailing `%`.
 */
export function percentExpand(value: string, tokens: TokenMap, field: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const k = value[++i];
    if (k === '%') {
      out += '%';
      continue;
    }
    if (k === undefined) {
      throw new SshConfigError(`${field}: invalid format: trailing "%" in "${value}" (use "%%" for a literal %)`, { field });
    }
    const v = tokens.get(k);
    if (v === undefined) {
      const accepted = [...tokens.keys()].map((t) => `%${t}`).join(' ');
      throw new SshConfigError(`${field}: unknown token "%${k}" in "${value}"; accepted: %% ${accepted}`, { field });
    }
    out += v;
  }
  return out;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `true` for a valid environment variable name (OpenSSH `valid_env_name`). */
export function isValidEnvName(name: string): boolean {
  return ENV_NAME.test(name);
}

/**
 * Replaces `${NAME}` with the environment variable's value (OpenSSH `dollar_expand`).
 *
 * @throws SshConfigError `ERR_SSH_CONFIG` naming `field` for an unterminated `${`, an invalid
 * name or an unset variable.
 */
export function dollarExpand(value: string, env: Readonly<Record<string, string | undefined>>, field: string): string {
  let out = '';
  let i = 0;
  while (i < value.length) {
    const start = value.indexOf('${', i);
    if (start < 0) {
      out += value.slice(i);
      break;
    }
    out += value.slice(i, start);
    const end = value.indexOf('}', start + 2);
    if (end < 0) throw new SshConfigError(`${field}: unterminated "\${" in "${value}"`, { field });
    const name = value.slice(start + 2, end);
    if (!isValidEnvName(name)) throw new SshConfigError(`${field}: invalid environment variable name "${name}"`, { field });
    const v = Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;
    if (v === undefined) throw new SshConfigError(`${field}: environment variable "${name}" is not set`, { field });
    out += v;
    i = end + 1;
  }
  return out;
}

/**
 * Expands a leading `~` like OpenSSH 9.2 `tilde_expand_filename`: `~/x` and `~x` (no slash)
 * become `<homeDir>/x`, `~` becomes `<homeDir>/`; `~user/x` is accepted only when `user` is
 * `localUser`.
 *
 * @throws SshConfigError `ERR_SSH_CONFIG` naming `field` for `~otheruser/...`.
 */
export function tildeExpand(value: string, homeDir: string, localUser: string, field: string): string {
  if (!value.startsWith('~')) return value;
  let rest = value.slice(1);
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const who = rest.slice(0, slash);
    if (who !== localUser) {
      throw new SshConfigError(`${field}: "~${who}/" paths are not supported (only ~/ and ~${localUser}/): "${value}"`, { field });
    }
    rest = rest.slice(slash + 1);
  } else if (slash === 0) {
    rest = rest.slice(1);
  }
  return `${homeDir}${homeDir.endsWith('/') ? '' : '/'}${rest}`;
}
