/**
 * A keyring: encrypt with the current key, decrypt with any key it holds. This is how keys are
 * rotated without losing stored credentials: the new key becomes current, the old ones stay as
 * "previous" until every token has been re-encrypted (`rotate`), then they can be dropped.
 */
import { inspect } from 'node:util';
import { DecryptionError, InvalidKeyError } from '../errors.js';
import {
  FernetKey,
  decodeFernetToken,
  type FernetDecryptOptions,
  type FernetEncryptOptions,
} from './fernet.js';

/**
 * The current key plus the previous keys still accepted for decryption.
 * Immutable: {@link withCurrent} returns a new keyring. Never prints key material.
 */
export class Keyring {
  /** The key every new token is encrypted with. */
  readonly current: FernetKey;
  /** Older keys, tried in order after the current one when decrypting. */
  readonly previous: readonly FernetKey[];
  readonly #all: readonly FernetKey[];

  /**
   * @param current The current key, as key text or a `FernetKey`.
   * @param previous Older keys still accepted for decryption (default none). Duplicates, and
   *   copies of the current key, are dropped.
   */
  constructor(current: string | FernetKey, previous: ReadonlyArray<string | FernetKey> = []) {
    this.current = toKey(current, 'current key');
    const kept: FernetKey[] = [];
    previous.forEach((item, index) => {
      const key = toKey(item, `previous key ${index + 1}`);
      if (!key.equals(this.current) && !kept.some((k) => k.equals(key))) {
        kept.push(key);
      }
    });
    this.previous = Object.freeze(kept);
    this.#all = Object.freeze([this.current, ...kept]);
  }

  /** Fingerprints of every key, current first: safe to log and show. */
  get fingerprints(): string[] {
    return this.#all.map((k) => k.fingerprint);
  }

  /** Encrypts with the current key; returns the token text. */
  encrypt(plain: string | Uint8Array, options?: FernetEncryptOptions): string {
    return this.current.encrypt(plain, options);
  }

  /** Decrypts with whichever key made the token, returning the UTF-8 plaintext. */
  decrypt(token: string | Uint8Array, options?: FernetDecryptOptions): string {
    return this.decryptToBuffer(token, options).toString('utf8');
  }

  /**
   * Decrypts with whichever key made the token (current first, then each previous key).
   * A malformed token throws its format error at once; a token no key authenticates throws one
   * `DecryptionError` saying how many keys were tried.
   */
  decryptToBuffer(token: string | Uint8Array, options?: FernetDecryptOptions): Buffer {
    // Decode once, then only the HMAC is repeated per key.
    const data = decodeFernetToken(token);
    for (const key of this.#all) {
      const plain = key.tryDecrypt(data, options);
      if (plain !== undefined) {
        return plain;
      }
    }
    const n = this.#all.length;
    throw new DecryptionError(
      `no key in the keyring (${n} ${n === 1 ? 'key' : 'keys'} tried) can decrypt this Fernet ` +
        'token: its MAC is incorrect under every key',
    );
  }

  /** True when the token is well-formed and its MAC verifies under the current key. */
  isCurrent(token: string | Uint8Array): boolean {
    return this.current.verifies(token);
  }

  /**
   * Returns the token re-encrypted under the current key. A token that already verifies under
   * the current key is returned unchanged, so re-running an interrupted rotation is a no-op for
   * the tokens it already did. Throws `DecryptionError` when no key can decrypt it.
   */
  rotate(token: string | Uint8Array, options?: FernetEncryptOptions): string {
    const data = decodeFernetToken(token);
    if (this.current.macMatches(data)) {
      return typeof token === 'string' ? token : Buffer.from(token).toString('latin1');
    }
    for (const key of this.previous) {
      const plain = key.tryDecrypt(data);
      if (plain !== undefined) {
        return this.current.encrypt(plain, options);
      }
    }
    const n = this.#all.length;
    throw new DecryptionError(
      `cannot rotate this Fernet token: no key in the keyring (${n} ${n === 1 ? 'key' : 'keys'} ` +
        'tried) can decrypt it',
    );
  }

  /**
   * A new keyring whose current key is `newKey` and whose previous keys are this keyring's
   * current and previous keys (without duplicates). This keyring is unchanged.
   */
  withCurrent(newKey: string | FernetKey): Keyring {
    return new Keyring(newKey, this.#all);
  }

  /** Redacted: fingerprints only. */
  toString(): string {
    return `Keyring(current=${this.current.fingerprint}, previous=[${this.previous
      .map((k) => k.fingerprint)
      .join(', ')}])`;
  }

  /** Redacted: fingerprints only. */
  toJSON(): { current: string; previous: string[] } {
    return { current: this.current.fingerprint, previous: this.previous.map((k) => k.fingerprint) };
  }

  /** Redacted for `util.inspect` and `console.log`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

function toKey(key: string | FernetKey, what: string): FernetKey {
  if (key instanceof FernetKey) {
    return key;
  }
  try {
    return new FernetKey(key);
  } catch (error) {
    if (error instanceof InvalidKeyError) {
      throw new InvalidKeyError(`${what} is not a valid Fernet key: ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
}
