// Rows <-> entries. On disk, times are REAL epoch seconds, booleans 0/1 and credentials a BLOB of
// the Fernet token's ASCII bytes, as proxywhirl writes them; in memory, times are epoch ms and
// credentials are `Secret`s decrypted only when revealed.
import { DecryptionError, InvalidEntryError } from '../../errors.js';
import { HEALTH_STATUSES, type HealthStatus, type ProxyEntry } from '../../record/entry.js';
import { Secret, type TokenCipher } from '../../record/secret.js';

/** A row as every read selects it: the entry's fields under their snake_case names. */
export interface EntryRow {
  key: unknown;
  proxy_url: unknown;
  username_encrypted: unknown;
  password_encrypted: unknown;
  source: unknown;
  fetch_time: unknown;
  last_accessed: unknown;
  access_count: unknown;
  ttl_seconds: unknown;
  expires_at: unknown;
  health_status: unknown;
  failure_count: unknown;
  evicted_from_l1: unknown;
  last_health_check: unknown;
  consecutive_health_failures: unknown;
  consecutive_health_successes: unknown;
  recovery_attempt: unknown;
  next_check_time: unknown;
  last_health_error: unknown;
  total_health_checks: unknown;
  total_health_check_failures: unknown;
}

/** A row that cannot be an entry (a required field missing or of the wrong type). */
export class BadRowError extends Error {}

/** Epoch ms -> REAL epoch seconds. */
export function toSeconds(ms: number): number {
  return ms / 1000;
}

/**
 * REAL epoch seconds -> epoch ms, rounded to the microsecond so that a time written from whole
 * milliseconds reads back exactly, and proxywhirl's microsecond times keep their precision.
 */
export function toMs(seconds: number): number {
  return Math.round(seconds * 1e6) / 1e3;
}

function requiredTime(row: EntryRow, field: keyof EntryRow): number {
  const value = row[field];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new BadRowError(`column ${field} is ${describeValue(value)}, not a number`);
  }
  return toMs(value);
}

function optionalTime(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? toMs(value) : undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function text(row: EntryRow, field: keyof EntryRow): string {
  const value = row[field];
  if (typeof value !== 'string') {
    throw new BadRowError(`column ${field} is ${describeValue(value)}, not text`);
  }
  return value;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (Buffer.isBuffer(value)) return 'a BLOB';
  return typeof value;
}

const STATUSES: ReadonlySet<string> = new Set(HEALTH_STATUSES);

/** A stored token: proxywhirl writes a BLOB of its ASCII bytes; text is accepted too. */
function token(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (Buffer.isBuffer(value)) return value.length === 0 ? undefined : value.toString('latin1');
  if (typeof value === 'string') return value === '' ? undefined : value;
  return undefined;
}

/** Stands in when the tier was opened without a cipher: revealing fails with `E_DECRYPT`. */
const NO_CIPHER: TokenCipher = {
  encrypt() {
    throw new DecryptionError('no keyring was given to the tier, so it cannot encrypt');
  },
  decrypt() {
    throw new DecryptionError('no keyring was given to the tier, so it cannot decrypt');
  },
};

/**
 * Builds an entry from a row read by column name. Credentials become lazily decrypted secrets.
 * Throws `BadRowError` when a required column is missing or of the wrong type.
 */
export function decodeRow(row: EntryRow, cipher: TokenCipher | undefined): ProxyEntry {
  const key = text(row, 'key');
  const usernameToken = token(row.username_encrypted);
  const passwordToken = token(row.password_encrypted);
  const status = row.health_status;
  const errorText = row.last_health_error;
  // Same field order as createEntry, so every entry shares one hidden class.
  return {
    key,
    proxyUrl: text(row, 'proxy_url'),
    username:
      usernameToken === undefined
        ? undefined
        : Secret.fromToken(usernameToken, cipher ?? NO_CIPHER, `username of entry ${key}`),
    password:
      passwordToken === undefined
        ? undefined
        : Secret.fromToken(passwordToken, cipher ?? NO_CIPHER, `password of entry ${key}`),
    source: text(row, 'source'),
    fetchTime: requiredTime(row, 'fetch_time'),
    lastAccessed: requiredTime(row, 'last_accessed'),
    accessCount: count(row.access_count),
    ttlSeconds: count(row.ttl_seconds),
    expiresAt: requiredTime(row, 'expires_at'),
    healthStatus:
      typeof status === 'string' && STATUSES.has(status) ? (status as HealthStatus) : 'unknown',
    failureCount: count(row.failure_count),
    evictedFromL1: row.evicted_from_l1 === 1 || row.evicted_from_l1 === true,
    lastHealthCheck: optionalTime(row.last_health_check),
    consecutiveHealthFailures: count(row.consecutive_health_failures),
    consecutiveHealthSuccesses: count(row.consecutive_health_successes),
    recoveryAttempt: count(row.recovery_attempt),
    nextCheckTime: optionalTime(row.next_check_time),
    lastHealthError: typeof errorText === 'string' ? errorText : undefined,
    totalHealthChecks: count(row.total_health_checks),
    totalHealthCheckFailures: count(row.total_health_check_failures),
  };
}

/** The token BLOB of a sealed secret; `null` when there is no credential. */
export function tokenBlob(secret: Secret | undefined): Buffer | null {
  if (secret === undefined) return null;
  const sealed = secret.token;
  // set() checks this before queueing; the guard keeps a plaintext from ever reaching the disk.
  if (sealed === undefined) {
    throw new InvalidEntryError('credential', 'an unsealed credential cannot be stored');
  }
  return Buffer.from(sealed, 'latin1');
}

/** True when every health field the l2 side table keeps has its default value. */
export function hasDefaultHealth(entry: ProxyEntry): boolean {
  return (
    entry.lastHealthCheck === undefined &&
    entry.consecutiveHealthFailures === 0 &&
    entry.consecutiveHealthSuccesses === 0 &&
    entry.recoveryAttempt === 0 &&
    entry.nextCheckTime === undefined &&
    entry.lastHealthError === undefined &&
    entry.totalHealthChecks === 0 &&
    entry.totalHealthCheckFailures === 0
  );
}

/** `undefined` -> `null` for binding, since better-sqlite3 binds no `undefined`. */
export function nullable<T>(value: T | undefined): T | null {
  return value === undefined ? null : value;
}

/** An optional time in epoch ms as REAL epoch seconds or `null`. */
export function optionalSeconds(ms: number | undefined): number | null {
  return ms === undefined ? null : ms / 1000;
}
