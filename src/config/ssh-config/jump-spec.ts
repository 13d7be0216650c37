/**
 * The one ProxyJump / `ssh -J` hop parser: a port of OpenSSH 9.2 `parse_jump` (readconf.c) with
 * `parse_ssh_uri`/`parse_uri`, `parse_user_host_port`, `hpdelim2`, `cleanhostname`,
 * `valid_domain`, `urldecode` and `a2port` (misc.c). Used for ssh_config `ProxyJump`, the `jump`
 * option and the hop connections (connection/jump.ts). `test/unit/jump-spec.oracle.test.ts`
 * checks it against what `ssh -G -J <spec>` prints.
 *
 * Forms (ssh(1) `-J`, ssh_config(5) `ProxyJump`):
 * - `[user@]host[:port]`: the user is everything before the LAST `@`; the host ends at the first
 *   `:` (so `::1` has an empty host and is refused: write `[::1]`); `host/...` is refused;
 *   `[v6addr]` or `[v6addr]:port` in brackets.
 * - `ssh://[user[;params]@]host[:port][/]`: the scheme is lower case; the user is everything
 *   before the FIRST `@`, `%XX`-decoded (`+` is a space), `;params` dropped; the host must be a
 *   domain name or address of letters, digits, `.`, `-`, `_` (no brackets, so no IPv6 in a URI);
 *   a path other than `/` is refused.
 * - ports: a decimal number 1-65535 (`strtonum`: leading `+` and zeros allowed); an empty port
 *   (`host:`) means none.
 *
 * Deliberate differences from ssh(1): whitespace and control characters are refused (ssh -J
 * cuts the spec at the first blank; ssh_config's tokenizer splits there), a service name as port (`host:ssh`, resolved by
 * getservbyname in OpenSSH) is refused, as is an empty bracketed host (`[]`), which ssh accepts
 * here and then fails to connect to; hosts of 1025 characters or more (NI_MAXHOST) are refused.
 * Host names from the `jump` option are checked again when the hop is resolved through
 * ssh_config (no leading `-`, no shell metacharacters: OpenSSH's `valid_hostname` for `-J`).
 *
 * @module config/ssh-config/jump-spec
 */
import { SshConfigError } from '../../errors.js';

/** One jump hop: user and port when written, else undefined. */
export interface JumpHop {
  readonly user: string | undefined;
  readonly host: string;
  readonly port: number | undefined;
}

/** A hop, or why the spec is not one. */
export type JumpSpecResult = { readonly ok: true; readonly hop: JumpHop } | { readonly ok: false; readonly reason: string };

const NI_MAXHOST = 1025;

const fail = (reason: string): JumpSpecResult => ({ ok: false, reason });

/** OpenSSH `a2port` without the service-name lookup: `strtonum(s, 0, 65535)`, else -1. */
function a2port(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?)([0-9]+)$/.exec(s);
  if (m === null) return -1;
  const n = Number(m[2]);
  const v = m[1] === '-' ? -n : n;
  return v >= 0 && v <= 65535 ? v : -1;
}

/**
 * OpenSSH `hpdelim2`: splits `s` at the first `:` or `/` outside `[...]`. `rest` is undefined
 * when nothing follows the host; undefined as a whole when the brackets are unbalanced or
 * something other than `:`/`/` follows `]`.
 */
function hpdelim2(s: string): { field: string; delim: ':' | '/' | undefined; rest: string | undefined } | undefined {
  let pos: number;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) return undefined;
    pos = close + 1;
  } else {
    const m = /[:/]/.exec(s);
    pos = m === null ? s.length : m.index;
  }
  if (pos === s.length) return { field: s, delim: undefined, rest: undefined };
  const c = s[pos];
  if (c !== ':' && c !== '/') return undefined;
  return { field: s.slice(0, pos), delim: c, rest: s.slice(pos + 1) };
}

/** OpenSSH `cleanhostname`: `[host]` -> `host`. */
function cleanhostname(h: string): string {
  return h.length >= 2 && h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** OpenSSH `valid_domain` (makelower 0): returns the name without a trailing `.`, or undefined. */
function validDomain(name: string): string | undefined {
  if (name === '' || !/^[A-Za-z0-9]/.test(name)) return undefined;
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name.includes('..')) return undefined;
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** OpenSSH `urldecode`: `+` is a space, `%XX` a byte; a bad escape or a NUL byte fails. */
function urldecode(s: string): string | undefined {
  const src = Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0x2b) out.push(0x20);
    else if (b === 0x25) {
      const hex = src.subarray(i + 1, i + 3).toString('latin1');
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      out.push(parseInt(hex, 16));
      i += 2;
    } else out.push(b);
  }
  if (out.includes(0)) return undefined;
  return Buffer.from(out).toString('utf8');
}

function checkHost(host: string): JumpSpecResult | undefined {
  if (host === '') return fail('empty host');
  if (host.length >= NI_MAXHOST) return fail(`host longer than ${NI_MAXHOST - 1} characters`);
  return undefined;
}

/** OpenSSH `parse_ssh_uri`; `undefined` when `s` is not an `ssh://` URI. */
function parseSshUri(s: string): JumpSpecResult | undefined {
  if (!s.startsWith('ssh://')) return undefined;
  let tmp = s.slice('ssh://'.length);
  let user: string | undefined;
  const at = tmp.indexOf('@');
  if (at >= 0) {
    let u = tmp.slice(0, at);
    const semi = u.indexOf(';');
    if (semi >= 0) u = u.slice(0, semi); // connection parameters: ignored, as OpenSSH does
    if (u === '') return fail('empty user');
    user = urldecode(u);
    if (user === undefined) return fail('bad %-escape in the user');
    tmp = tmp.slice(at + 1);
  }
  const split = hpdelim2(tmp);
  if (split === undefined || split.field === '') return fail('missing host');
  const host = validDomain(cleanhostname(split.field));
  if (host === undefined) return fail('the host of an ssh:// URI must be a name or address of letters, digits, ".", "-" and "_"');
  let port: number | undefined;
  let rest = split.rest;
  if (rest !== undefined && rest !== '' && split.delim === ':') {
    const slash = rest.indexOf('/');
    port = a2port(slash < 0 ? rest : rest.slice(0, slash));
    if (port <= 0) return fail('port is not an integer from 1 to 65535');
    rest = slash < 0 ? undefined : rest.slice(slash + 1);
  }
  if (rest !== undefined && rest !== '') return fail('a path is not allowed in an ssh:// URI');
  return checkHost(host) ?? { ok: true, hop: { user, host, port } };
}

/** OpenSSH `parse_user_host_port`. */
function parseUserHostPort(s: string): JumpSpecResult {
  let tmp = s;
  let user: string | undefined;
  const at = tmp.lastIndexOf('@');
  if (at >= 0) {
    user = tmp.slice(0, at);
    if (user === '') return fail('empty user');
    tmp = tmp.slice(at + 1);
  }
  const split = hpdelim2(tmp);
  if (split === undefined || split.field === '' || split.delim === '/') return fail(split?.delim === '/' ? 'unexpected "/" after the host' : 'missing host');
  const host = cleanhostname(split.field);
  let port: number | undefined;
  if (split.rest !== undefined && split.rest !== '') {
    port = a2port(split.rest);
    if (port <= 0) return fail('port is not an integer from 1 to 65535');
  }
  return checkHost(host) ?? { ok: true, hop: { user, host, port } };
}

/**
 * Parses one hop spec as OpenSSH's `parse_jump` does (see the module notes for the forms).
 *
 * @param spec - one hop, e.g. `me@bastion:2222`, `[::1]:22`, `ssh://me@bastion`.
 * @returns `{ ok: true, hop }`, or `{ ok: false, reason }`.
 */
export function parseJumpSpec(spec: string): JumpSpecResult {
  // ssh_config's tokenizer never yields one, and `ssh -J 'h x'` cuts at the blank: refused here.
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(spec)) return fail('whitespace or control characters');
  return parseSshUri(spec) ?? parseUserHostPort(spec);
}

/**
 * Parses one hop spec; `undefined` when it is not valid (see {@link parseJumpSpec}).
 */
export function parseJumpHop(spec: string): JumpHop | undefined {
  const r = parseJumpSpec(spec);
  return r.ok ? r.hop : undefined;
}

/**
 * Parses one hop spec of the `jump` option or a ProxyJump list.
 *
 * @throws {SshConfigError} `ERR_SSH_CONFIG` (field `jump`) naming the spec and why it is not one.
 */
export function parseHopSpec(spec: string): JumpHop {
  const r = parseJumpSpec(spec);
  if (r.ok) return r.hop;
  throw new SshConfigError(`invalid jump host ${JSON.stringify(spec)}: ${r.reason}; expected [user@]host[:port], [v6addr]:port or ssh://[user@]host[:port]`, { field: 'jump' });
}

/**
 * Splits a ProxyJump value (`none`, or hops separated by `,`) and checks every hop, as
 * `parse_jump` does: an empty hop (`a,,b`, `a,`) is an error.
 *
 * @returns the hop specs, first hop first (`[]` for `none`), or `undefined` when one is invalid.
 */
export function splitJumpList(value: string): readonly string[] | undefined {
  if (value.toLowerCase() === 'none') return Object.freeze([]);
  const hops = value.split(',');
  return hops.every((h) => parseJumpSpec(h).ok) ? Object.freeze(hops) : undefined;
}
