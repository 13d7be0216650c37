/**
 * ssh2's table of remote forwards (`Client._forwarding`, keyed `"bindAddr:bindPort"`, value the
 * bound port), adjusted for servers that report port 0 in `forwarded-tcpip` opens.
 *
 * RFC 4254 section 7.2: a `forwarded-tcpip` open carries "address that was connected" and "port
 * that was connected". asyncssh 2.10 sends the port the client asked for (0) instead of the one
 * it bound; ssh2 looks the pair up in `_forwarding` and rejects unknown pairs before any event
 * reaches us (it only aliases port 0 for old OpenSSH versions, its `DYN_RPORT_BUG` flag). An
 * alias entry `"bindAddr:0" -> port` makes ssh2 accept such opens and report the real port
 * (ssh2 substitutes `destPort` with the entry's value when it is 0).
 *
 * ssh2 private field: touched only here, behind a shape check; the contract test
 * (test/unit/ssh2-forwarding.contract.test.ts) fails if ssh2 changes it.
 *
 * @module ssh2/forwarding
 * @internal
 */
import type ssh2 from 'ssh2';

interface ForwardingShape {
  _forwarding?: unknown;
}

/** Aliases this module made, per client (so ssh2's own `DYN_RPORT_BUG` entries are never touched). */
const ours = new WeakMap<ssh2.Client, Set<string>>();

function table(client: ssh2.Client): Record<string, number> | undefined {
  const t = (client as unknown as ForwardingShape)._forwarding;
  if (typeof t !== 'object' || t === null || Array.isArray(t)) return undefined;
  return t as Record<string, number>;
}

/**
 * Sets (`port` a number) or removes (`port` undefined) the alias `"bindAddr:0"` in ssh2's
 * remote forward table. `port` 0 makes ssh2 pass such opens on with `destPort` 0 (the caller
 * decides, e.g. refuses them when several forwards could own them).
 *
 * @returns `false` when ssh2 has no such table (nothing done), or when ssh2 made the entry itself.
 */
export function setPortZeroAlias(client: ssh2.Client, bindAddr: string, port: number | undefined): boolean {
  const t = table(client);
  if (!t) return false;
  const key = `${bindAddr}:0`;
  let mine = ours.get(client);
  if (port === undefined) {
    if (!mine?.has(key)) return false;
    mine.delete(key);
    delete t[key];
    return true;
  }
  if (Object.prototype.hasOwnProperty.call(t, key) && !mine?.has(key)) return false;
  if (!mine) {
    mine = new Set();
    ours.set(client, mine);
  }
  mine.add(key);
  t[key] = port;
  return true;
}
