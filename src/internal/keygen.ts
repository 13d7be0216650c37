/**
 * ed25519 key pairs in OpenSSH format, through ssh2's public `utils.generateKeyPairSync`.
 *
 * ssh2 1.17 strips leading zero bytes from the public key when it writes the OpenSSH format
 * (lib/keygen.js, "Remove leading zero bytes"), so about 1 key in 256 (a public key starting with
 * 0x00) comes out 31 bytes long and its own parser rejects it ("Malformed OpenSSH private key").
 * Such a pair is drawn again; each draw is independent, so 8 draws all failing has a
 * probability of about 2^-64.
 *
 * @module internal/keygen
 */
import ssh2 from 'ssh2';

const MAX_DRAWS = 8;

/** A generated key pair: `private` in OpenSSH PEM format, `public` as an authorized_keys line. */
export interface KeyPair {
  private: string;
  public: string;
}

/**
 * Generates an ed25519 key pair that ssh2 can parse back.
 *
 * @param comment - the comment of the public key line.
 * @throws {Error} only if every draw failed (never seen; see the module notes).
 */
export function generateEd25519(comment?: string): KeyPair {
  for (let i = 0; i < MAX_DRAWS; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', comment === undefined ? {} : { comment });
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error)) return { private: pair.private, public: pair.public };
  }
  throw new Error(`could not generate a parseable ed25519 key in ${MAX_DRAWS} draws`);
}
