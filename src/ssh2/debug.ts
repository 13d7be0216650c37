/**
 * Parsing of ssh2's `debug` output lines about the key exchange (the doctor reads the algorithm
 * lists each side offered and the ones chosen). These lines are ssh2's own text, not an API:
 * the formats below are ssh2 1.17's `lib/protocol/kex.js` (`debug('Handshake: (local) KEX
 * method: ...')`, `debug('Handshake: KEX algorithm: ...')`...), checked against a live handshake
 * by test/contract/ssh2.test.ts so a change in ssh2 fails there.
 *
 * @module ssh2/debug
 */

const OFFER = /^Handshake: \((local|remote)\) (.+?): (.*)$/;
const CHOSEN = /^Handshake: (KEX algorithm|Host key format|C->S Cipher|S->C cipher|C->S MAC|S->C MAC|C->S compression|S->C compression): (.*)$/;

/** One parsed handshake debug line: an algorithm list a side offered, or an algorithm chosen. */
export type HandshakeDebug =
  | { kind: 'offer'; side: 'local' | 'remote'; category: string; value: string }
  | { kind: 'chosen'; category: string; value: string };

/**
 * Parses one line of ssh2's `debug` output; `undefined` for every line that is not about the
 * algorithms offered or chosen.
 *
 * @param line - one line as ssh2 passed it to the `debug` callback.
 */
export function parseHandshakeDebug(line: string): HandshakeDebug | undefined {
  const o = OFFER.exec(line);
  if (o?.[1] && o[2] !== undefined && o[3] !== undefined) return { kind: 'offer', side: o[1] === 'local' ? 'local' : 'remote', category: o[2], value: o[3] };
  const c = CHOSEN.exec(line);
  if (c?.[1] && c[2] !== undefined) return { kind: 'chosen', category: c[1], value: c[2] };
  return undefined;
}
