/**
 * Parsing of LocalForward / RemoteForward / DynamicForward specifications, a port of OpenSSH
 * 9.2 `parse_forward` and `parse_fwd_field` (readconf.c); forms documented in ssh_config(5).
 *
 * @module config/ssh-config/forward
 */

/** Where a forward listens: a TCP port (with optional bind address) or a Unix socket path. */
export type ForwardListen =
  | { readonly kind: 'tcp'; /** bind address as written (`*`, `localhost`, `::1`...), undefined when not given */ readonly bindAddress: string | undefined; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

/** Where a forward connects to: a host and port, or a Unix socket path. */
export type ForwardConnect =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

/** A `LocalForward` (`ssh -L`). */
export interface LocalForwardSpec {
  readonly listen: ForwardListen;
  readonly connect: ForwardConnect;
}

/** A `RemoteForward` (`ssh -R`); `connect` is undefined for a remote dynamic (SOCKS) forward. */
export interface RemoteForwardSpec {
  readonly listen: ForwardListen;
  readonly connect: ForwardConnect | undefined;
}

/** A `DynamicForward` (`ssh -D`, a local SOCKS listener). */
export interface DynamicForwardSpec {
  readonly listen: ForwardListen;
}

/** OpenSSH's `struct Forward`, before paths get their `%` tokens expanded. */
export interface RawForward {
  listenHost: string | undefined;
  /** -2 (PORT_STREAMLOCAL) when listenPath is set. */
  listenPort: number;
  listenPath: string | undefined;
  connectHost: string | undefined;
  connectPort: number;
  connectPath: string | undefined;
}

const PORT_STREAMLOCAL = -2;
const NI_MAXHOST = 1025;
const PATH_MAX_SUN = 108;

/** OpenSSH `a2port`: 0..65535, or -1 when not a port number. */
export function a2port(s: string): number {
  if (!/^[0-9]{1,5}$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

interface FwdArg {
  arg: string;
  isPath: boolean;
}

/** Splits one field off `s` at `pos`; returns the field and the next position, or undefined. */
function parseField(s: string, pos: number): { field: FwdArg; next: number | undefined } | undefined {
  if (pos >= s.length) return undefined;
  if (s[pos] === '[') {
    const close = s.indexOf(']', pos + 1);
    if (close < 0) return undefined;
    const after = s[close + 1];
    if (after !== ':' && after !== undefined) return undefined;
    const arg = s.slice(pos + 1, close);
    return { field: { arg, isPath: arg.includes('/') }, next: after === undefined ? close + 1 : close + 2 };
  }
  let arg = '';
  let isPath = false;
  for (let i = pos; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      const n = s[i + 1];
      if (n === undefined) return undefined;
      arg += n; // escaped character taken literally (not examined for '/' or ':')
      i++;
      continue;
    }
    if (c === '/') isPath = true;
    if (c === ':') return { field: { arg, isPath }, next: i + 1 };
    arg += c;
  }
  return { field: { arg, isPath }, next: s.length };
}

/**
 * Port of OpenSSH `parse_forward`: `spec` is `[bind:]port:host:hostport` (Local/Remote, the
 * two config arguments joined by `:`), `[bind:]port` (Dynamic, or a one-argument RemoteForward),
 * with `[...]` brackets for IPv6 addresses and `/`-containing fields as Unix socket paths.
 * Returns undefined when the specification is invalid.
 */
export function parseForwardSpec(spec: string, dynamic: boolean, remote: boolean): RawForward | undefined {
  const s = spec.replace(/^\s+/, '');
  const fields: FwdArg[] = [];
  let pos: number | undefined = 0;
  for (let i = 0; i < 4 && pos !== undefined; i++) {
    const r = parseField(s, pos);
    if (r === undefined) break;
    fields.push(r.field);
    pos = r.next;
  }
  if (pos !== undefined && pos < s.length) return undefined; // trailing garbage
  const f: RawForward = {
    listenHost: undefined,
    listenPort: 0,
    listenPath: undefined,
    connectHost: undefined,
    connectPort: 0,
    connectPath: undefined,
  };
  const [a, b, c, d] = fields;
  switch (fields.length) {
    case 1:
      if (a!.isPath) {
        f.listenPath = a!.arg;
        f.listenPort = PORT_STREAMLOCAL;
      } else {
        f.listenPort = a2port(a!.arg);
      }
      f.connectHost = 'socks';
      break;
    case 2:
      if (a!.isPath && b!.isPath) {
        f.listenPath = a!.arg;
        f.listenPort = PORT_STREAMLOCAL;
        f.connectPath = b!.arg;
        f.connectPort = PORT_STREAMLOCAL;
      } else if (b!.isPath) {
        f.listenPort = a2port(a!.arg);
        f.connectPath = b!.arg;
        f.connectPort = PORT_STREAMLOCAL;
      } else {
        f.listenHost = a!.arg;
        f.listenPort = a2port(b!.arg);
        f.connectHost = 'socks';
      }
      break;
    case 3:
      if (a!.isPath) {
        f.listenPath = a!.arg;
        f.listenPort = PORT_STREAMLOCAL;
        f.connectHost = b!.arg;
        f.connectPort = a2port(c!.arg);
      } else if (c!.isPath) {
        f.listenHost = a!.arg;
        f.listenPort = a2port(b!.arg);
        f.connectPath = c!.arg;
        f.connectPort = PORT_STREAMLOCAL;
      } else {
        f.listenPort = a2port(a!.arg);
        f.connectHost = b!.arg;
        f.connectPort = a2port(c!.arg);
      }
      break;
    case 4:
      f.listenHost = a!.arg;
      f.listenPort = a2port(b!.arg);
      f.connectHost = c!.arg;
      f.connectPort = a2port(d!.arg);
      break;
    default:
      return undefined;
  }
  const n = fields.length;
  if (dynamic) {
    if (n !== 1 && n !== 2) return undefined;
  } else {
    if (n !== 3 && n !== 4 && f.connectPath === undefined && f.listenPath === undefined) return undefined;
    if (f.connectPort <= 0 && f.connectPath === undefined) return undefined;
  }
  if ((f.listenPort < 0 && f.listenPath === undefined) || (!remote && f.listenPort === 0)) return undefined;
  if (f.connectHost !== undefined && f.connectHost.length >= NI_MAXHOST) return undefined;
  if (f.listenHost !== undefined && f.listenHost.length >= NI_MAXHOST) return undefined;
  if (f.connectPath !== undefined && f.connectPath.length >= PATH_MAX_SUN) return undefined;
  if (f.listenPath !== undefined && f.listenPath.length >= PATH_MAX_SUN) return undefined;
  return f;
}

/** OpenSSH `forward_equals`: used to drop duplicate forwards. */
export function forwardEquals(x: RawForward, y: RawForward): boolean {
  return (
    x.listenHost === y.listenHost &&
    x.listenPort === y.listenPort &&
    x.listenPath === y.listenPath &&
    x.connectHost === y.connectHost &&
    x.connectPort === y.connectPort &&
    x.connectPath === y.connectPath
  );
}

/** The typed listen side of a raw forward. */
export function toListen(f: RawForward): ForwardListen {
  if (f.listenPath !== undefined) return { kind: 'unix', path: f.listenPath };
  return { kind: 'tcp', bindAddress: f.listenHost, port: f.listenPort };
}

/** The typed connect side of a raw forward (undefined for a dynamic forward). */
export function toConnect(f: RawForward): ForwardConnect | undefined {
  if (f.connectPath !== undefined) return { kind: 'unix', path: f.connectPath };
  if (f.connectHost === undefined || (f.connectHost === 'socks' && f.connectPort === 0)) return undefined;
  return { kind: 'tcp', host: f.connectHost, port: f.connectPort };
}
