/**
 * Fernet (spec version 0x80) on `node:crypto` alone.
 *
 * Written by hand rather than taken from npm because the format is small and exactly specified
 * (https://github.com/fernet/spec/blob/master/Spec.md), every existing package either pulls in a
 * JS crypto library or is unmaintained, and we need byte-for-byte agreement with Python's
 * `cryptography.fernet` (proxywhirl's tokens) plus a few microseconds per operation. The official
 * test vectors (generate, verify, invalid) are checked in `test/crypto/fernet.test.ts`.
 *
 * Token layout (all integers big-endian):
 *
 *     0x80 | timestamp (u64 seconds) | IV (16) | AES-128-CBC ciphertext, PKCS7 (16n) | HMAC (32)
 *
 * and the token text is that byte string in url-safe base64 *with* `=` padding.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSecretKey,
  randomBytes,
  randomFillSync,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { inspect } from 'node:util';
import { DecryptionError, InvalidKeyError, InvalidOptionError } from '../errors.js';

const VERSION = 0x80;
const KEY_BYTES = 32;
const HALF_KEY = 16;
const BLOCK = 16;
const IV_OFFSET = 9; // version (1) + timestamp (8)
const CIPHERTEXT_OFFSET = IV_OFFSET + BLOCK;
const MAC_BYTES = 32;
/**
 * Shortest token whose fields can be located: header, IV and HMAC. A valid one also has at least
 * one ciphertext block, but that is checked after the MAC, as a ciphertext-length error.
 */
const MIN_TOKEN_BYTES = CIPHERTEXT_OFFSET + MAC_BYTES;
/** Tokens stamped further than this into the future are refused when a TTL is checked. */
const MAX_CLOCK_SKEW_SECONDS = 60;
const TWO_POW_32 = 2 ** 32;

// Url-safe alphabet, with the standard one tolerated as Python's decoder does; padding optional.
const BASE64_TEXT = /^[A-Za-z0-9_\-+/]+={0,2}$/;

/** Options for {@link FernetKey.encrypt}. */
export interface FernetEncryptOptions {
  /** Creation time written into the token, in epoch milliseconds. Default: `Date.now()`. */
  now?: number;
  /** The 16-byte IV. Default: fresh random bytes. Only tests (the spec's vectors) should set it. */
  iv?: Uint8Array;
}

/** Options for {@link FernetKey.decrypt}. */
export interface FernetDecryptOptions {
  /**
   * Maximum token age in seconds. When given, a token older than this, or stamped more than 60 s
   * in the future, is refused. Default: no age check (as in Python's `Fernet.decrypt`).
   */
  ttlSeconds?: number;
  /** The current time in epoch milliseconds, for the TTL check. Default: `Date.now()`. */
  now?: number;
}

/**
 * A new random Fernet key: 32 bytes from the CSPRNG in url-safe base64 with `=` padding, the
 * same text as Python's `Fernet.generate_key()`.
 */
export function generateFernetKey(): string {
  return toBase64UrlPadded(randomBytes(KEY_BYTES));
}

/**
 * Decodes a token's text (or a buffer holding its ASCII bytes, as proxywhirl's SQLite BLOBs do)
 * and checks its framing: base64, version byte, minimum length. Throws `DecryptionError` naming
 * the problem. Exposed so a keyring can decode once and try several keys on the same bytes.
 */
export function decodeFernetToken(token: string | Uint8Array): Buffer {
  let text: string;
  if (typeof token === 'string') {
    text = token;
  } else if (token instanceof Uint8Array) {
    text = asBuffer(token).toString('latin1');
  } else {
    throw new DecryptionError('Fernet token must be a string or a byte array');
  }
  if (!isBase64Text(text)) {
    throw new DecryptionError('Fernet token is not valid url-safe base64');
  }
  const data = Buffer.from(text, 'base64');
  if (data.length === 0 || data[0] !== VERSION) {
    throw new DecryptionError('Fernet token has an unknown version (expected 0x80)');
  }
  if (data.length < MIN_TOKEN_BYTES) {
    throw new DecryptionError(
      `Fernet token is too short (${data.length} bytes, at least ${MIN_TOKEN_BYTES} needed)`,
    );
  }
  return data;
}

/**
 * A `FernetKey` from key text found at `where` (an option, a variable, a key file line), with
 * `where` named in the `InvalidKeyError` (never the key).
 */
export function parseFernetKey(text: string, where: string): FernetKey {
  try {
    return new FernetKey(text);
  } catch (error) {
    if (error instanceof InvalidKeyError) {
      throw new InvalidKeyError(`${where} is not a valid Fernet key: ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * A Fernet key: the first 16 bytes sign (HMAC-SHA256), the last 16 encrypt (AES-128-CBC).
 * Build it once and reuse it: nothing is derived per call. It never prints its key material:
 * `String(key)`, `JSON.stringify(key)` and `util.inspect(key)` all give `FernetKey(<fingerprint>)`.
 */
export class FernetKey {
  // Private fields, not properties: nothing enumerable for a serializer or test diff to print.
  readonly #signing: KeyObject;
  readonly #encryption: KeyObject;
  readonly #raw: Buffer;
  readonly #fingerprint: string;

  /**
   * @param key The key text: url-safe base64 of 32 bytes (standard base64 and missing `=`
   *   padding are accepted). Throws `InvalidKeyError` saying what is wrong, never echoing it.
   */
  constructor(key: string) {
    if (typeof key !== 'string') {
      throw new InvalidKeyError(`Fernet key must be a string, got ${describeType(key)}`);
    }
    const text = key.trim();
    if (text.length === 0) {
      throw new InvalidKeyError('Fernet key is empty');
    }
    if (!isBase64Text(text)) {
      throw new InvalidKeyError('Fernet key is not valid base64 (bad characters or padding)');
    }
    const raw = Buffer.from(text, 'base64');
    if (raw.length !== KEY_BYTES) {
      throw new InvalidKeyError(
        `Fernet key must decode to ${KEY_BYTES} bytes, but it decodes to ${raw.length}`,
      );
    }
    this.#raw = raw;
    this.#signing = createSecretKey(raw.subarray(0, HALF_KEY));
    this.#encryption = createSecretKey(raw.subarray(HALF_KEY));
    this.#fingerprint = createHash('sha256').update(raw).digest('hex').slice(0, 8);
  }

  /** First 8 hex characters of SHA-256 over the raw key bytes: safe to log and show. */
  get fingerprint(): string {
    return this.#fingerprint;
  }

  /** A copy of the 16-byte HMAC-SHA256 signing key (first half). Secret: never log it. */
  get signingKey(): Buffer {
    return Buffer.from(this.#raw.subarray(0, HALF_KEY));
  }

  /** A copy of the 16-byte AES-128 encryption key (second half). Secret: never log it. */
  get encryptionKey(): Buffer {
    return Buffer.from(this.#raw.subarray(HALF_KEY));
  }

  /** True when `other` holds the same key bytes (compared in constant time). */
  equals(other: FernetKey): boolean {
    return timingSafeEqual(this.#raw, other.#raw);
  }

  /**
   * Encrypts `plaintext` (a string is encoded as UTF-8) into a token string identical to what
   * Python's `Fernet.encrypt` / `encrypt_at_time` produces for the same time and IV.
   */
  encrypt(plaintext: string | Uint8Array, options?: FernetEncryptOptions): string {
    const nowMs = options?.now ?? Date.now();
    if (!Number.isFinite(nowMs) || nowMs < 0) {
      throw new InvalidOptionError('encrypt option `now` must be a non-negative epoch ms number');
    }
    let iv: Uint8Array;
    if (options?.iv === undefined) {
      iv = nextIv();
    } else if (options.iv instanceof Uint8Array && options.iv.length === BLOCK) {
      iv = options.iv;
    } else {
      throw new InvalidOptionError(`encrypt option \`iv\` must be ${BLOCK} bytes`);
    }

    // Pad by hand (PKCS7) so the cipher produces one buffer in one call and no final().
    const length =
      typeof plaintext === 'string' ? Buffer.byteLength(plaintext, 'utf8') : plaintext.length;
    const padded = Buffer.allocUnsafe((Math.floor(length / BLOCK) + 1) * BLOCK);
    if (typeof plaintext === 'string') {
      padded.write(plaintext, 0, 'utf8');
    } else {
      padded.set(plaintext, 0);
    }
    padded.fill(padded.length - length, length);

    const cipher = createCipheriv('aes-128-cbc', this.#encryption, iv);
    cipher.setAutoPadding(false);
    const ciphertext = cipher.update(padded);

    const macOffset = CIPHERTEXT_OFFSET + ciphertext.length;
    const out = Buffer.allocUnsafe(macOffset + MAC_BYTES);
    out[0] = VERSION;
    // u64 seconds as two u32 halves: exact for any Date, and no BigInt allocation per call.
    const seconds = Math.floor(nowMs / 1000);
    out.writeUInt32BE(Math.floor(seconds / TWO_POW_32), 1);
    out.writeUInt32BE(seconds % TWO_POW_32, 5);
    out.set(iv, IV_OFFSET);
    ciphertext.copy(out, CIPHERTEXT_OFFSET);
    createHmac('sha256', this.#signing)
      .update(out.subarray(0, macOffset))
      .digest()
      .copy(out, macOffset);
    return toBase64UrlPadded(out);
  }

  /**
   * Decrypts a token (its text, or a buffer of its ASCII bytes) made with this key. Checks, in
   * order: base64, version, length, HMAC (constant time), then age when `ttlSeconds` is given,
   * then the ciphertext and its padding. Every failure is a `DecryptionError` naming the reason.
   */
  decrypt(token: string | Uint8Array, options?: FernetDecryptOptions): Buffer {
    const plain = this.tryDecrypt(decodeFernetToken(token), options);
    if (plain === undefined) {
      throw new DecryptionError('Fernet token has an incorrect MAC (wrong key or tampered token)');
    }
    return plain;
  }

  /** {@link decrypt}, returning the plaintext decoded as UTF-8. */
  decryptToString(token: string | Uint8Array, options?: FernetDecryptOptions): string {
    return this.decrypt(token, options).toString('utf8');
  }

  /**
   * True when `token` is well-formed and its HMAC verifies under this key (no TTL check and no
   * decryption). Never throws for a bad token.
   */
  verifies(token: string | Uint8Array): boolean {
    let data: Buffer;
    try {
      data = decodeFernetToken(token);
    } catch {
      return false;
    }
    return this.macMatches(data);
  }

  /** True when the HMAC of already-decoded token bytes (from `decodeFernetToken`) verifies. */
  macMatches(data: Buffer): boolean {
    if (data.length < MIN_TOKEN_BYTES) {
      return false; // Not from decodeFernetToken; too short to hold a MAC at all.
    }
    const macOffset = data.length - MAC_BYTES;
    const expected = createHmac('sha256', this.#signing)
      .update(data.subarray(0, macOffset))
      .digest();
    return timingSafeEqual(expected, data.subarray(macOffset));
  }

  /**
   * Decrypts already-decoded token bytes (from `decodeFernetToken`). Returns `undefined` when the
   * HMAC does not verify under this key, so a keyring can try the next key without the cost of
   * an exception; throws `DecryptionError` for anything wrong with a token that is authentic
   * (expired, from the future, bad ciphertext length or padding).
   */
  tryDecrypt(data: Buffer, options?: FernetDecryptOptions): Buffer | undefined {
    // MAC first: nothing else in an unauthenticated token is trusted, not even its timestamp.
    if (!this.macMatches(data)) {
      return undefined;
    }
    if (options?.ttlSeconds !== undefined) {
      checkAge(data, options.ttlSeconds, options.now ?? Date.now());
    }
    const ciphertext = data.subarray(CIPHERTEXT_OFFSET, data.length - MAC_BYTES);
    if (ciphertext.length === 0 || ciphertext.length % BLOCK !== 0) {
      throw new DecryptionError(
        `Fernet token's ciphertext is ${ciphertext.length} bytes, not a positive multiple of ${BLOCK}`,
      );
    }
    const decipher = createDecipheriv(
      'aes-128-cbc',
      this.#encryption,
      data.subarray(IV_OFFSET, CIPHERTEXT_OFFSET),
    );
    // Padding is checked by hand below, so no final() and no concat of two output buffers.
    decipher.setAutoPadding(false);
    const padded = decipher.update(ciphertext);
    const pad = padded[padded.length - 1] ?? 0;
    let bad = pad === 0 || pad > BLOCK ? 1 : 0;
    for (let i = padded.length - Math.min(pad, BLOCK); i < padded.length; i++) {
      bad |= (padded[i] ?? 0) ^ pad;
    }
    if (bad !== 0) {
      throw new DecryptionError(
        'Fernet token has invalid padding (wrong IV or corrupt ciphertext)',
      );
    }
    return padded.subarray(0, padded.length - pad);
  }

  /** Redacted: `FernetKey(<fingerprint>)`. */
  toString(): string {
    return `FernetKey(${this.#fingerprint})`;
  }

  /** Redacted: `FernetKey(<fingerprint>)`, so `JSON.stringify` never writes the key. */
  toJSON(): string {
    return this.toString();
  }

  /** Redacted for `util.inspect` and `console.log`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

function checkAge(data: Buffer, ttlSeconds: number, nowMs: number): void {
  if (!Number.isFinite(ttlSeconds) || ttlSeconds < 0) {
    throw new InvalidOptionError('decrypt option `ttlSeconds` must be a non-negative number');
  }
  if (!Number.isFinite(nowMs)) {
    throw new InvalidOptionError('decrypt option `now` must be an epoch ms number');
  }
  const stamped = data.readUInt32BE(1) * TWO_POW_32 + data.readUInt32BE(5);
  const current = Math.floor(nowMs / 1000);
  if (stamped + ttlSeconds < current) {
    throw new DecryptionError(`Fernet token has expired (older than its ${ttlSeconds} s TTL)`);
  }
  if (stamped > current + MAX_CLOCK_SKEW_SECONDS) {
    throw new DecryptionError(
      `Fernet token's timestamp is more than ${MAX_CLOCK_SKEW_SECONDS} s in the future`,
    );
  }
}

function isBase64Text(text: string): boolean {
  if (!BASE64_TEXT.test(text)) {
    return false;
  }
  const padded = text.endsWith('=');
  // With padding the length must be whole quads; without, a lone trailing character is invalid.
  return padded ? text.length % 4 === 0 : text.length % 4 !== 1;
}

function toBase64UrlPadded(bytes: Buffer): string {
  // Node's base64url drops the padding Python writes; add it back (cheaper than a replace).
  const text = bytes.toString('base64url');
  const rest = bytes.length % 3;
  return rest === 0 ? text : rest === 1 ? `${text}==` : `${text}=`;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

function describeType(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

// IVs come from a pool refilled from the CSPRNG 4 KiB at a time: randomBytes(16) per token costs
// about 1.5 µs, a third of an encryption. Each IV is handed out once; the pool is copied into
// the token before it is refilled, so no IV is ever reused.
const IV_POOL_BYTES = 4096;
const ivPool = Buffer.allocUnsafe(IV_POOL_BYTES);
let ivOffset = IV_POOL_BYTES;

function nextIv(): Buffer {
  if (ivOffset + BLOCK > IV_POOL_BYTES) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + BLOCK);
  ivOffset += BLOCK;
  return iv;
}
