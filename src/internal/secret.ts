import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * Holds a secret (password, passphrase, private key) so that it never shows up in
 * `util.inspect`, `JSON.stringify`, string conversion or enumerable property lists.
 * Only `reveal()` returns the value.
 */
export class Secret<T> {
  readonly #value: T;

  constructor(value: T) {
    this.#value = value;
  }

  /** Returns the secret value itself. Never log the result. */
  reveal(): T {
    return this.#value;
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}
