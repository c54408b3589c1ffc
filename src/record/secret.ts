import { inspect } from 'node:util';
import { DecryptionError } from '../errors.js';

/** What every printed form of a secret shows instead of its value. */
export const REDACTED = '[redacted]';

/** Anything that can turn a secret into a Fernet token and back (a `Keyring`). */
export interface TokenCipher {
  encrypt(plaintext: string): string;
  decrypt(token: string): string;
  /**
   * Moves on when the cipher's current key changes (a `Keyring` that follows its key file): a
   * token sealed at an older generation is checked with `isCurrent` before it is reused.
   */
  readonly generation?: number;
  /** True when `token` is under the current key. */
  isCurrent?(token: string): boolean;
}

/**
 * A credential (proxy username or password). Every way a value is usually printed shows
 * `[redacted]`: `String()`, template literals, `JSON.stringify`, `util.inspect` and
 * `console.log`. Only `reveal()` returns the value.
 *
 * A secret read from a persistent tier holds only its Fernet token and is decrypted on the first
 * `reveal()`, so a read that never uses the credential never pays for decryption, and a token that
 * no key can decrypt fails only that call (with `E_DECRYPT`), never the whole entry.
 *
 * @example
 * const password = new Secret('hunter2');
 * `${password}`;        // '[redacted]'
 * password.reveal();    // 'hunter2'
 */
export class Secret {
  #plaintext: string | undefined;
  #token: string | undefined;
  /** The cipher that made (or can read) `#token`. */
  #cipher: TokenCipher | undefined;
  /** The cipher's `generation` when `#token` was known to be under its current key. */
  #generation: number | undefined;
  #label: string;

  /** Wraps a plaintext credential. */
  constructor(plaintext: string) {
    this.#plaintext = plaintext;
    this.#label = 'credential';
  }

  /**
   * A secret known only by its Fernet token; `cipher` decrypts it on first `reveal()`.
   * `label` names it in errors (for example `password of entry 5767fc14bc03465a`).
   */
  static fromToken(token: string, cipher: TokenCipher, label = 'credential'): Secret {
    const secret = new Secret('');
    secret.#plaintext = undefined;
    secret.#token = token;
    secret.#cipher = cipher;
    secret.#label = label;
    return secret;
  }

  /** Returns the plaintext. Throws `DecryptionError` (`E_DECRYPT`) when the token cannot be decrypted. */
  reveal(): string {
    if (this.#plaintext !== undefined) return this.#plaintext;
    // fromToken always sets both; this narrows the types.
    const token = this.#token as string;
    const cipher = this.#cipher as TokenCipher;
    try {
      this.#plaintext = cipher.decrypt(token);
    } catch (error) {
      const reason = error instanceof Error ? error.message : 'unknown error';
      throw new DecryptionError(`cannot decrypt the ${this.#label}: ${reason}`, { cause: error });
    }
    return this.#plaintext;
  }

  /**
   * The Fernet token for this secret under `cipher`, encrypting only the first time: the stack
   * seals a secret once and writes the same token to every persistent tier. A secret sealed by
   * another cipher (an entry moved between caches with different keys), or under a key its
   * cipher no longer has as current (a rotation happened meanwhile), is re-encrypted.
   */
  seal(cipher: TokenCipher): string {
    if (this.#token !== undefined && this.#cipher === cipher) {
      if (this.#generation === cipher.generation) return this.#token;
      // The cipher's key changed since: keep the token only if it is under the new current key.
      if (cipher.isCurrent?.(this.#token) !== false) {
        this.#generation = cipher.generation;
        return this.#token;
      }
    }
    const plaintext = this.reveal();
    this.#token = cipher.encrypt(plaintext);
    this.#cipher = cipher;
    this.#generation = cipher.generation;
    return this.#token;
  }

  /** The token if this secret has been sealed or was read sealed; `undefined` otherwise. */
  get token(): string | undefined {
    return this.#token;
  }

  /** True when the plaintext is at hand without decrypting. */
  get isRevealed(): boolean {
    return this.#plaintext !== undefined;
  }

  /**
   * Replaces the token (for example after key rotation re-encrypted it under the same keyring).
   * The plaintext, if known, is kept: the new token holds the same value.
   */
  replaceToken(token: string): void {
    this.#token = token;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.toPrimitive](): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}

/** Accepts a plaintext string or an existing `Secret`; `undefined`/`null`/`''` mean no credential. */
export function toSecret(value: string | Secret | null | undefined): Secret | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  return value instanceof Secret ? value : new Secret(value);
}
