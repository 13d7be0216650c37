/**
 * SSH public key blobs (RFC 4253 section 6.6 "Public Key Algorithms"): the wire format a server
 * sends in its KEX reply and the bytes that the base64 field of a known_hosts line decodes to.
 *
 * @module known-hosts/key-blob
 */
import { createHash } from 'node:crypto';

/**
 * Public key types a known_hosts line may carry, with the number of SSH `string` fields their
 * blob holds after the type name (RFC 4253 s6.6, RFC 5656 s3.1, RFC 8709 s4, OpenSSH PROTOCOL.u2f).
 */
const KEY_LAYOUTS: ReadonlyMap<string, { fields: number; curve?: string; pubLength?: number }> = new Map([
  ['ssh-ed25519', { fields: 1, pubLength: 32 }],
  ['ecdsa-sha2-nistp256', { fields: 2, curve: 'nistp256' }],
  ['ecdsa-sha2-nistp384', { fields: 2, curve: 'nistp384' }],
  ['ecdsa-sha2-nistp521', { fields: 2, curve: 'nistp521' }],
  ['ssh-rsa', { fields: 2 }],
  ['ssh-dss', { fields: 4 }],
  ['sk-ssh-ed25519@openssh.com', { fields: 2, pubLength: 32 }],
  ['sk-ecdsa-sha2-nistp256@openssh.com', { fields: 3, curve: 'nistp256' }],
]);

/** The key type names accepted in known_hosts lines and host key blobs. */
export const SUPPORTED_KEY_TYPES: readonly string[] = Object.freeze([...KEY_LAYOUTS.keys()]);

/** Largest blob we accept (an 16384-bit RSA key is ~2 KiB; this leaves a wide margin). */
const MAX_BLOB_BYTES = 16 * 1024;

/**
 * Reads the SSH `string` fields of a blob. Returns `undefined` when a length runs past the end.
 */
function readStrings(blob: Buffer): Buffer[] | undefined {
  const out: Buffer[] = [];
  let pos = 0;
  // Bounded: every iteration consumes at least 4 bytes.
  while (pos < blob.length) {
    if (blob.length - pos < 4) return undefined;
    const len = blob.readUInt32BE(pos);
    pos += 4;
    if (len > blob.length - pos) return undefined;
    out.push(blob.subarray(pos, pos + len));
    pos += len;
  }
  return out;
}

/**
 * Returns the key type name embedded at the start of a public key blob (its first SSH `string`),
 * or `undefined` if the blob does not start with a well-formed printable string.
 *
 * @param blob - an SSH wire-format public key blob.
 */
export function keyBlobType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || len > blob.length - 4) return undefined;
  const name = blob.subarray(4, 4 + len).toString('latin1');
  return /^[\x21-\x7e]+$/.test(name) ? name : undefined;
}

/**
 * Checks that `blob` is a well-formed public key blob of a {@link SUPPORTED_KEY_TYPES} type:
 * exactly the fields its type defines, the named curve matching the type, the right point size
 * for Ed25519. Returns the type name, or a short reason (never containing key bytes) when not.
 *
 * @param blob - an SSH wire-format public key blob.
 * @returns `{ ok: true, type }` or `{ ok: false, reason }`.
 */
export function validateKeyBlob(blob: Buffer): { ok: true; type: string } | { ok: false; reason: string } {
  if (blob.length > MAX_BLOB_BYTES) return { ok: false, reason: `key blob larger than ${MAX_BLOB_BYTES} bytes` };
  const fields = readStrings(blob);
  if (fields === undefined || fields.length === 0) return { ok: false, reason: 'key blob is not a sequence of SSH strings' };
  const type = keyBlobType(blob);
  if (type === undefined) return { ok: false, reason: 'key blob has no key type name' };
  const layout = KEY_LAYOUTS.get(type);
  if (layout === undefined) return { ok: false, reason: `unsupported key type "${type}"` };
  if (fields.length !== 1 + layout.fields) {
    return { ok: false, reason: `${type} key blob has ${fields.length - 1} fields, expected ${layout.fields}` };
  }
  const rest = fields.slice(1);
  if (rest.some((f, i) => f.length === 0 && !(type.startsWith('sk-') && i === rest.length - 1))) {
    return { ok: false, reason: `${type} key blob has an empty field` };
  }
  if (layout.curve !== undefined && rest[0]?.toString('latin1') !== layout.curve) {
    return { ok: false, reason: `${type} key blob names a different curve` };
  }
  if (layout.pubLength !== undefined && rest[0]?.length !== layout.pubLength) {
    return { ok: false, reason: `${type} public key is not ${layout.pubLength} bytes` };
  }
  return { ok: true, type };
}

/**
 * The SHA-256 fingerprint of a public key blob, formatted like `ssh-keygen -l` (OpenSSH's
 * default `FingerprintHash sha256`): `SHA256:` followed by unpadded standard base64 of the digest.
 *
 * @param key - the SSH wire-format public key blob (what ssh2 passes to `hostVerifier`).
 * @returns e.g. `SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s`.
 */
export function fingerprintSha256(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}
