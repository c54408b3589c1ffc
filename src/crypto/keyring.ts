/**
 * A keyring: encrypt with the current key, decrypt with any key it holds. This is how keys are
 * rotated without losing stored credentials: the new key becomes current, the old ones stay as
 * "previous" until every token has been re-encrypted (`rotate`), then they can be dropped.
 */
import { inspect } from 'node:util';
import { DecryptionError } from '../errors.js';
import {
  FernetKey,
  decodeFernetToken,
  parseFernetKey,
  type FernetDecryptOptions,
  type FernetEncryptOptions,
} from './fernet.js';

/**
 * Where a keyring's keys can be read again (its key file): `reload(false)` returns the keys when
 * the source changed since the last reading (a cheap check, rate-limited by the source);
 * `reload(true)` is asked when a token matched no loaded key and may read at once. `undefined`
 * means nothing new.
 */
export interface KeyringSource {
  reload(force: boolean): FernetKey[] | undefined;
}

/** Called after a keyring took new keys from its source. */
export type KeyringChangeListener = (fingerprints: readonly string[]) => void;

/**
 * The current key plus the previous keys still accepted for decryption. Never prints key material.
 *
 * A keyring built from keys alone never changes. A keyring read from a key file follows it, so
 * that a process keeps working while `proxytier key rotate` runs elsewhere: before encrypting it
 * looks (one `stat` a second at most) for a new current key, and a token that none of its keys
 * decrypts makes it re-read the file once and try again. The `Secret`s it sealed before such a
 * change are sealed again under the new key at their next write (see `generation`).
 */
export class Keyring {
  #current: FernetKey;
  #previous: readonly FernetKey[];
  #all: readonly FernetKey[];
  #generation = 0;
  readonly #source: KeyringSource | undefined;
  readonly #listeners = new Set<KeyringChangeListener>();

  /**
   * @param current The current key, as key text or a `FernetKey`.
   * @param previous Older keys still accepted for decryption (default none). Duplicates, and
   *   copies of the current key, are dropped.
   * @param source Where to read the keys again when they change (a key file); none by default.
   */
  constructor(
    current: string | FernetKey,
    previous: ReadonlyArray<string | FernetKey> = [],
    source?: KeyringSource,
  ) {
    this.#current = toKey(current, 'current key');
    this.#previous = distinctPrevious(this.#current, previous);
    this.#all = Object.freeze([this.#current, ...this.#previous]);
    this.#source = source;
  }

  /** The key every new token is encrypted with. */
  get current(): FernetKey {
    return this.#current;
  }

  /** Older keys, tried in order after the current one when decrypting. */
  get previous(): readonly FernetKey[] {
    return this.#previous;
  }

  /**
   * Counts the changes of the keys taken from the source (0 for a keyring that never changed): a
   * token sealed at an earlier generation may be under a key that is no longer current.
   */
  get generation(): number {
    return this.#generation;
  }

  /** True when the keys are re-read from a source (a key file) when it changes. */
  get follows(): boolean {
    return this.#source !== undefined;
  }

  /** Calls `listener` with the new fingerprints each time new keys are taken; returns the unsubscribe. */
  onChange(listener: KeyringChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Looks at the source for new keys now (`force`) or when its check interval has passed; true
   * when new keys were taken. Encryption and decryption call it themselves.
   */
  refresh(force = false): boolean {
    const keys = this.#source?.reload(force);
    if (keys === undefined) return false;
    const [current, ...previous] = keys;
    if (current === undefined) return false;
    const before = this.fingerprints.join(',');
    this.#current = current;
    this.#previous = distinctPrevious(current, previous);
    this.#all = Object.freeze([current, ...this.#previous]);
    if (this.fingerprints.join(',') === before) return false;
    this.#generation += 1;
    const fingerprints = this.fingerprints;
    for (const listener of this.#listeners) listener(fingerprints);
    return true;
  }

  /** Fingerprints of every key, current first: safe to log and show. */
  get fingerprints(): string[] {
    return this.#all.map((k) => k.fingerprint);
  }

  /** Encrypts with the current key; returns the token text. */
  encrypt(plain: string | Uint8Array, options?: FernetEncryptOptions): string {
    if (this.#source !== undefined) this.refresh();
    return this.#current.encrypt(plain, options);
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
    const plain = this.#tryAll(data, options);
    if (plain !== undefined) return plain;
    // Perhaps a rotation elsewhere re-encrypted it under a key written since this file was read.
    if (this.refresh(true)) {
      const again = this.#tryAll(data, options);
      if (again !== undefined) return again;
    }
    const n = this.#all.length;
    throw new DecryptionError(
      `no key in the keyring (${n} ${n === 1 ? 'key' : 'keys'} tried) can decrypt this Fernet ` +
        'token: its MAC is incorrect under every key',
    );
  }

  #tryAll(data: Buffer, options: FernetDecryptOptions | undefined): Buffer | undefined {
    for (const key of this.#all) {
      const plain = key.tryDecrypt(data, options);
      if (plain !== undefined) return plain;
    }
    return undefined;
  }

  /** True when the token is well-formed and its MAC verifies under the current key. */
  isCurrent(token: string | Uint8Array): boolean {
    if (this.#source !== undefined) this.refresh();
    return this.#current.verifies(token);
  }

  /**
   * Returns the token re-encrypted under the current key. A token that already verifies under
   * the current key is returned unchanged, so re-running an interrupted rotation is a no-op for
   * the tokens it already did. Throws `DecryptionError` when no key can decrypt it.
   */
  rotate(token: string | Uint8Array, options?: FernetEncryptOptions): string {
    const data = decodeFernetToken(token);
    if (this.#current.macMatches(data)) {
      return typeof token === 'string' ? token : Buffer.from(token).toString('latin1');
    }
    for (const key of this.#previous) {
      const plain = key.tryDecrypt(data);
      if (plain !== undefined) return this.#current.encrypt(plain, options);
    }
    const n = this.#all.length;
    throw new DecryptionError(
      `cannot rotate this Fernet token: no key in the keyring (${n} ${n === 1 ? 'key' : 'keys'} ` +
        'tried) can decrypt it',
    );
  }

  /**
   * A new keyring whose current key is `newKey` and whose previous keys are this keyring's
   * current and previous keys (without duplicates). This keyring is unchanged; the new one
   * follows no source.
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
  return key instanceof FernetKey ? key : parseFernetKey(key, what);
}

function distinctPrevious(
  current: FernetKey,
  previous: ReadonlyArray<string | FernetKey>,
): readonly FernetKey[] {
  const kept: FernetKey[] = [];
  previous.forEach((item, index) => {
    const key = toKey(item, `previous key ${index + 1}`);
    if (!key.equals(current) && !kept.some((k) => k.equals(key))) kept.push(key);
  });
  return Object.freeze(kept);
}
