/**
 * Every error proxytier throws is a `ProxyTierError` with a stable `code`. Callers match on
 * `code`, never on the message; the message is for people and names what was wrong and where.
 * No message ever contains a credential or a key.
 */
export class ProxyTierError extends Error {
  /** Stable machine-readable code, e.g. `E_INVALID_OPTION`. */
  readonly code: string = 'E_PROXYTIER';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An option passed to a constructor or function has the wrong type or value. */
export class InvalidOptionError extends ProxyTierError {
  override readonly code = 'E_INVALID_OPTION';
}

/** A proxy record (or one of its fields) failed validation. */
export class InvalidEntryError extends ProxyTierError {
  override readonly code: string = 'E_INVALID_ENTRY';
  /** The field that failed, in camelCase (`proxyUrl`, `ttlSeconds`, ...). */
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.field = field;
  }
}

/** A proxy URL could not be parsed or uses an unsupported scheme. */
export class InvalidProxyUrlError extends InvalidEntryError {
  override readonly code = 'E_INVALID_PROXY_URL';
}

/** A Fernet key is malformed (not 32 bytes of url-safe base64). */
export class InvalidKeyError extends ProxyTierError {
  override readonly code = 'E_INVALID_KEY';
}

/** A Fernet token is malformed, was not made by any key in the keyring, or is outside its TTL. */
export class DecryptionError extends ProxyTierError {
  override readonly code = 'E_DECRYPT';
}

/** No key could be found or created (for example the key file's directory is not writable). */
export class KeyUnavailableError extends ProxyTierError {
  override readonly code = 'E_KEY_UNAVAILABLE';
}

/**
 * A key rotation cannot start or finish: the keys come from a source proxytier cannot rewrite
 * (`E_KEY_SOURCE`), or stored tokens are still under a previous key when it ends because a
 * writer kept using the old key (`E_ROTATION_INCOMPLETE`: run it again).
 */
export class KeyRotationError extends ProxyTierError {
  override readonly code: 'E_KEY_SOURCE' | 'E_ROTATION_INCOMPLETE';
  constructor(
    code: 'E_KEY_SOURCE' | 'E_ROTATION_INCOMPLETE',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
  }
}

/**
 * The keyring decrypts none of the key checks a store recorded (or none of a sample of its
 * tokens, for a store without checks): the key is not the store's. Opening fails before anything
 * is written, so new credentials are never sealed with a second key. `have` and `expected` are
 * key fingerprints (never keys); `expected` is empty when the store recorded no check.
 */
export class WrongKeyError extends ProxyTierError {
  override readonly code = 'E_WRONG_KEY';
  readonly have: readonly string[];
  readonly expected: readonly string[];
  constructor(
    message: string,
    have: readonly string[],
    expected: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.have = have;
    this.expected = expected;
  }
}

/** A write was asked of a cache opened with `readOnly: true`. */
export class ReadOnlyError extends ProxyTierError {
  override readonly code = 'E_READ_ONLY';
}

/** A tier failed an operation; `tier` names it and `cause` holds the engine's error. */
export class TierError extends ProxyTierError {
  override readonly code: string = 'E_TIER';
  /** The name of the tier that failed. */
  readonly tier: string;

  constructor(tier: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.tier = tier;
  }
}

/** A tier did not answer within its time limit. */
export class TierTimeoutError extends TierError {
  override readonly code = 'E_TIER_TIMEOUT';
}

/**
 * A tier is busy with another process's work (SQLite's write lock held past its short busy
 * wait; the JSONL tier waits for its shard locks itself and answers E_TIER_LOCK). Transient: the stack retries the call with back-off, without
 * blocking the event loop, until the tier's time budget runs out.
 */
export class TierBusyError extends TierError {
  override readonly code = 'E_TIER_BUSY';
}

/**
 * A switched-on persistent tier could not commit a write (put, update, health record, delete)
 * after retries within its time budget, and the failure did not switch it off: the write did not
 * happen there, and the call rejects with this error. `tier` names the tier; `cause` is the last
 * failure.
 */
export class TierWriteError extends TierError {
  override readonly code = 'E_TIER_WRITE';
}

/** A tier's stored data is damaged (a torn or corrupt record, a database that is not one). */
export class CorruptionError extends TierError {
  override readonly code = 'E_CORRUPT';
}

/** No tier accepted a write: every tier failed it or is switched off (degraded). */
export class TierUnavailableError extends ProxyTierError {
  override readonly code = 'E_TIER_UNAVAILABLE';
}

/** The cache (or a tier) was used after `close()`. */
export class ClosedError extends ProxyTierError {
  override readonly code = 'E_CLOSED';
}

/**
 * The SQLite tier cannot run because its engine, the optional dependency `better-sqlite3`, is not
 * installed or its native addon does not load on this platform. The message says how to fix it.
 */
export class SqliteUnavailableError extends TierError {
  override readonly code = 'E_SQLITE_UNAVAILABLE';
}

/** A tier could not take a lock on its files within its time limit (another process holds it). */
export class LockTimeoutError extends TierError {
  override readonly code = 'E_TIER_LOCK';
}

/**
 * An import input cannot be read as the format asked for, as a whole (binary content, a JSON
 * document that is not an array, a CSV header without a proxy URL column). Problems of single
 * records are not thrown: they are reported per line.
 */
export class ImportFormatError extends ProxyTierError {
  override readonly code = 'E_IMPORT_FORMAT';
}

/**
 * An import stopped early because more records failed than its `maxErrors` allowed. `summary`
 * holds what was done up to then (every record before the stop was stored or counted).
 */
export class ImportAbortedError extends ProxyTierError {
  override readonly code = 'E_IMPORT_ABORTED';
  readonly summary: {
    loaded: number;
    updated: number;
    skipped: number;
    failed: number;
    failures: { line: number; reason: string }[];
  };

  constructor(
    message: string,
    summary: ImportAbortedError['summary'],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.summary = summary;
  }
}

/** The operation needs a capability none of the cache's tiers has (health history, say). */
export class UnsupportedOperationError extends ProxyTierError {
  override readonly code = 'E_UNSUPPORTED';
}
