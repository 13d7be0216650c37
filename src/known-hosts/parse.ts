/**
 * Parser for OpenSSH known_hosts files (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"; OpenSSH
 * `hostfile.c`).
 *
 * Written in-house: no maintained npm package implements OpenSSH known_hosts matching (patterns
 * with negation, `[host]:port`, hashed `|1|` names, `@revoked`/`@cert-authority` markers).
 *
 * @module known-hosts/parse
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SshConfigError } from '../errors.js';
import { validateKeyBlob } from './key-blob.js';
import { matchPatternList } from './pattern.js';

/** File name used for entries parsed from a string when no file name is given. */
export const INLINE_SOURCE = '<inline>';

/** The host field of a known_hosts line. */
export type KnownHostsHosts =
  /** A comma-separated pattern list, e.g. `host,10.0.0.1,*.lan,!bad.lan,[h]:2222`. */
  | { readonly kind: 'patterns'; readonly patterns: string }
  /** A hashed host name `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`; salt and hash are 20 bytes. */
  | { readonly kind: 'hashed'; readonly salt: Buffer; readonly hash: Buffer };

/** One valid line of a known_hosts file. */
export interface KnownHostsEntry {
  /** The file it came from (or {@link INLINE_SOURCE}). */
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  /**
   * `revoked`: the key must never be accepted for matching hosts. `cert-authority`: the key is a
   * CA for host certificates; ssh2 has no certificate support, so such lines never grant trust.
   */
  readonly marker: 'revoked' | 'cert-authority' | undefined;
  /** The host field as written. */
  readonly hostField: string;
  /** The parsed host field. */
  readonly hosts: KnownHostsHosts;
  /** Key type named on the line (equal to the type embedded in {@link key}). */
  readonly keyType: string;
  /** The decoded public key blob (SSH wire format). */
  readonly key: Buffer;
  /** Anything after the key field, trimmed (may be empty). */
  readonly comment: string;
}

/** A line that was skipped because it is malformed. It never grants trust. */
export interface KnownHostsWarning {
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  /** Why the line was skipped (never includes key material). */
  readonly message: string;
}

/** Result of {@link parseKnownHosts} and `loadKnownHosts`. */
export interface KnownHostsSet {
  /** Valid lines, in file order (and in the given file order for several files). */
  readonly entries: readonly KnownHostsEntry[];
  /** Skipped lines. */
  readonly warnings: readonly KnownHostsWarning[];
}

const HASH_MAGIC = '|1|';
const SHA1_LEN = 20;

/** Strict, canonical standard base64 (with padding), as OpenSSH's `b64_pton` expects. */
function decodeBase64Strict(s: string): Buffer | undefined {
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return undefined;
  const buf = Buffer.from(s, 'base64');
  return buf.toString('base64') === s ? buf : undefined;
}

/**
 * Parses a `|1|salt|hash` host field (OpenSSH `hostfile.c` `extract_salt()`): both parts must be
 * base64 of exactly 20 bytes.
 */
function parseHashed(field: string): { salt: Buffer; hash: Buffer } | string {
  if (!field.startsWith(HASH_MAGIC)) return 'hashed host field does not start with "|1|"';
  const rest = field.slice(HASH_MAGIC.length);
  const bar = rest.indexOf('|');
  if (bar < 0) return 'hashed host field has no "|" between salt and hash';
  const salt = decodeBase64Strict(rest.slice(0, bar));
  if (salt?.length !== SHA1_LEN) return 'hashed host field has a bad salt (must be base64 of 20 bytes)';
  const hash = decodeBase64Strict(rest.slice(bar + 1));
  if (hash?.length !== SHA1_LEN) return 'hashed host field has a bad hash (must be base64 of 20 bytes)';
  return { salt, hash };
}

/**
 * Hashes a host string for a known_hosts `|1|` entry (OpenSSH `host_hash()`, as
 * `HashKnownHosts yes` / `ssh-keygen -H` write it): `|1|` + base64(salt) + `|` +
 * base64(HMAC-SHA1(key = salt, data = host)).
 *
 * @param host - the host string as {@link hostPattern} builds it (`host` or `[host]:port`).
 * @param salt - 20 bytes; random when omitted.
 * @returns the hashed host field.
 */
export function hashHostName(host: string, salt: Buffer = randomBytes(SHA1_LEN)): string {
  const hash = createHmac('sha1', salt).update(host).digest();
  return `${HASH_MAGIC}${salt.toString('base64')}|${hash.toString('base64')}`;
}

/**
 * Whether an entry's host field matches a host string, as OpenSSH's `match_maybe_hashed()`:
 * hashed fields compare the HMAC; pattern lists must match positively with no negated pattern
 * matching (`match_hostname() == 1`).
 *
 * @param entry - a parsed line (only `hosts` is used).
 * @param hostString - the lowercased lookup string from {@link hostPattern}.
 */
export function entryMatchesHost(entry: Pick<KnownHostsEntry, 'hosts'>, hostString: string): boolean {
  const h = entry.hosts;
  if (h.kind === 'hashed') {
    const mac = createHmac('sha1', h.salt).update(hostString).digest();
    return timingSafeEqual(mac, h.hash);
  }
  return matchPatternList(hostString, h.patterns) === 1;
}

const FIELD_SEP = /[ \t]+/;

/**
 * Parses the text of a known_hosts file.
 *
 * Line format: `[@revoked|@cert-authority] hosts keytype base64-key [comment]`; fields are
 * separated by spaces or tabs. Blank lines and lines whose first non-blank character is `#` are
 * ignored; CRLF line ends and a missing final newline are accepted. A line is skipped, with a
 * warning naming file and line, when: the marker is unknown or repeated; a field is missing; the
 * host field is empty, contains an empty pattern or is a malformed `|1|` hash; the key type is not
 * one of the supported types; the base64 is not strict canonical base64; or the decoded blob is
 * malformed or embeds a type different from the line's type. Skipped lines never grant trust.
 *
 * @param text - the file contents.
 * @param file - the name recorded in entries and warnings; default {@link INLINE_SOURCE}.
 * @returns the entries in file order and the warnings.
 * @throws SshConfigError `ERR_SSH_CONFIG` (field `text`) when `text` is not a string.
 */
export function parseKnownHosts(text: string, file: string = INLINE_SOURCE): KnownHostsSet {
  if (typeof text !== 'string') throw new SshConfigError('known_hosts text must be a string', { field: 'text' });
  const entries: KnownHostsEntry[] = [];
  const warnings: KnownHostsWarning[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = (lines[i] ?? '').replace(/\r$/, '');
    const result = parseLine(raw);
    if (result === undefined) continue;
    if (typeof result === 'string') {
      warnings.push({ file, line: lineNo, message: result });
      continue;
    }
    entries.push({ file, line: lineNo, ...result });
  }
  return { entries, warnings };
}

type ParsedLine = Omit<KnownHostsEntry, 'file' | 'line'>;

/** Returns undefined for blank/comment lines, a string reason for malformed ones. */
function parseLine(raw: string): ParsedLine | string | undefined {
  const trimmed = raw.replace(/^[ \t]+/, '').replace(/[ \t\r]+$/, '');
  if (trimmed.length === 0 || trimmed.startsWith('#')) return undefined;
  const fields = trimmed.split(FIELD_SEP);
  let marker: KnownHostsEntry['marker'];
  let idx = 0;
  // OpenSSH check_markers(): only one marker, and only these two.
  while (fields[idx]?.startsWith('@') === true) {
    const m = fields[idx];
    if (marker !== undefined) return 'more than one marker on the line';
    if (m === '@revoked') marker = 'revoked';
    else if (m === '@cert-authority') marker = 'cert-authority';
    else return `unknown marker ${JSON.stringify((m ?? '').slice(0, 32))} (accepted: @revoked, @cert-authority)`;
    idx++;
  }
  const hostField = fields[idx];
  const keyType = fields[idx + 1];
  const keyB64 = fields[idx + 2];
  if (hostField === undefined || keyType === undefined || keyB64 === undefined) {
    return 'missing field (expected: [marker] hosts keytype base64-key [comment])';
  }
  let hosts: KnownHostsHosts;
  if (hostField.startsWith('|')) {
    const h = parseHashed(hostField);
    if (typeof h === 'string') return h;
    hosts = { kind: 'hashed', salt: h.salt, hash: h.hash };
  } else {
    const pats = hostField.split(',');
    if (pats.some((p) => p.length === 0 || p === '!')) return 'host field has an empty pattern';
    hosts = { kind: 'patterns', patterns: hostField };
  }
  const key = decodeBase64Strict(keyB64);
  if (key === undefined) return 'key field is not valid base64';
  const v = validateKeyBlob(key);
  if (!v.ok) return `malformed ${keyType} key: ${v.reason}`;
  if (v.type !== keyType) return `key type field "${keyType}" does not match the key's embedded type "${v.type}"`;
  const comment = fields.slice(idx + 3).join(' ');
  return { marker, hostField, hosts, keyType, key, comment };
}
