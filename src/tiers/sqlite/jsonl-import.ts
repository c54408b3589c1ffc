// Import of proxywhirl's JSONL shards (its `migrate_from_jsonl`): `shard_*.jsonl`, one JSON
// object per line, later lines winning; datetimes in Python `isoformat()`; credentials as
// lower-case hex of the ASCII Fernet token in `username_encrypted`/`password_encrypted`, or (in
// hand-written files) plaintext `username`/`password`.
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { InvalidEntryError, InvalidOptionError } from '../../errors.js';
import {
  ENTRY_FIELDS,
  HEALTH_STATUSES,
  createEntry,
  type HealthStatus,
  type ProxyEntry,
  type ProxyEntryInput,
} from '../../record/entry.js';
import { Secret, type TokenCipher } from '../../record/secret.js';
import { parseTimeText } from '../../record/time.js';

/** One line that was not imported, and why. */
export interface JsonlImportProblem {
  /** Shard file name (`shard_03.jsonl`). */
  file: string;
  /** 1-based line number. */
  line: number;
  reason: string;
}

/** What `importJsonlShards` did. */
export interface JsonlImportResult {
  /** Shard files read. */
  files: number;
  /** Entries written (new, or different from what was stored). */
  imported: number;
  /** Entries already stored with the same fields and credentials (not written again). */
  unchanged: number;
  /** Valid lines overridden by a later line for the same key in the same shard. */
  superseded: number;
  /** Lines skipped as damaged: not JSON, not an entry, a bad field, or credentials no key decrypts. */
  corrupt: number;
  /** The first 100 skipped lines, each with its file, line number and reason. */
  problems: JsonlImportProblem[];
}

/** What the import needs from the tier. */
export interface ImportTarget {
  cipher: TokenCipher | undefined;
  now(): number;
  peek(key: string): ProxyEntry | undefined;
  set(entry: ProxyEntry): Promise<void>;
}

const MAX_PROBLEMS = 100;
const SHARD_FILE = /^shard_.*\.jsonl$/;

class LineError extends Error {}

/** Reads every shard in `dir` and stores what is new or changed (see `SqliteTier.importJsonlShards`). */
export async function importJsonlShards(
  dir: string,
  target: ImportTarget,
): Promise<JsonlImportResult> {
  if (typeof dir !== 'string' || dir === '') {
    throw new InvalidOptionError(`"dir" must be a directory path, got ${typeof dir}`);
  }
  const cipher = target.cipher;
  if (cipher === undefined) {
    throw new InvalidOptionError(
      'importing JSONL shards needs a keyring (the tier was opened without a cipher)',
    );
  }
  const names = (await readdir(dir)).filter((name) => SHARD_FILE.test(name)).sort();
  const result: JsonlImportResult = {
    files: names.length,
    imported: 0,
    unchanged: 0,
    superseded: 0,
    corrupt: 0,
    problems: [],
  };
  const skip = (file: string, line: number, reason: string) => {
    result.corrupt += 1;
    if (result.problems.length < MAX_PROBLEMS) result.problems.push({ file, line, reason });
  };
  for (const file of names) {
    // Later lines win within a shard: keep the last valid entry of each key.
    const latest = new Map<string, ProxyEntry>();
    const lines = createInterface({
      input: createReadStream(join(dir, file), { encoding: 'utf8' }),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    let number = 0;
    for await (const text of lines) {
      number += 1;
      if (text.trim() === '') continue;
      let entry: ProxyEntry;
      try {
        entry = parseLine(text, cipher, target.now());
      } catch (error) {
        if (error instanceof LineError || error instanceof InvalidEntryError) {
          skip(file, number, error.message);
          continue;
        }
        throw error;
      }
      if (latest.has(entry.key)) result.superseded += 1;
      latest.set(entry.key, entry);
    }
    const writes: Promise<void>[] = [];
    for (const entry of latest.values()) {
      if (sameEntry(target.peek(entry.key), entry)) {
        result.unchanged += 1;
        continue;
      }
      writes.push(target.set(entry));
      result.imported += 1;
    }
    // One group commit per shard (or a few, for a shard larger than maxBatch).
    await Promise.all(writes);
  }
  return result;
}

function parseLine(text: string, cipher: TokenCipher, now: number): ProxyEntry {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new LineError('not valid JSON (a torn or damaged line)');
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new LineError('not a JSON object');
  }
  const record = data as Record<string, unknown>;
  const key = record['key'];
  const proxyUrl = record['proxy_url'];
  if (typeof key !== 'string' || key === '') throw new LineError('no "key" string');
  if (typeof proxyUrl !== 'string' || proxyUrl === '') {
    throw new LineError(`entry ${key}: no "proxy_url" string`);
  }
  const input: ProxyEntryInput = {
    key,
    proxyUrl,
    username: credential(record, 'username', key, cipher),
    password: credential(record, 'password', key, cipher),
    source: optional(record, 'source', 'string', key) as string | undefined,
    fetchTime: pythonTime(record, 'fetch_time', key),
    lastAccessed: pythonTime(record, 'last_accessed', key),
    accessCount: optional(record, 'access_count', 'number', key) as number | undefined,
    ttlSeconds: optional(record, 'ttl_seconds', 'number', key) as number | undefined,
    expiresAt: pythonTime(record, 'expires_at', key),
    healthStatus: status(record, key),
    failureCount: optional(record, 'failure_count', 'number', key) as number | undefined,
    evictedFromL1: optional(record, 'evicted_from_l1', 'boolean', key) as boolean | undefined,
    lastHealthCheck: pythonTime(record, 'last_health_check', key) ?? null,
    consecutiveHealthFailures: optional(record, 'consecutive_health_failures', 'number', key) as
      number | undefined,
    consecutiveHealthSuccesses: optional(record, 'consecutive_health_successes', 'number', key) as
      number | undefined,
    recoveryAttempt: optional(record, 'recovery_attempt', 'number', key) as number | undefined,
    nextCheckTime: pythonTime(record, 'next_check_time', key) ?? null,
    lastHealthError: optional(record, 'last_health_error', 'string', key) as string | undefined,
    totalHealthChecks: optional(record, 'total_health_checks', 'number', key) as number | undefined,
    totalHealthCheckFailures: optional(record, 'total_health_check_failures', 'number', key) as
      number | undefined,
  };
  try {
    // createEntry validates every field; the TTL default only applies when the line has none.
    return createEntry(input, { now, ttlSecondsFor: () => 3600 });
  } catch (error) {
    if (error instanceof InvalidEntryError) {
      throw new LineError(`entry ${key}: ${error.message}`);
    }
    throw error;
  }
}

function optional(
  record: Record<string, unknown>,
  field: string,
  type: 'string' | 'number' | 'boolean',
  key: string,
): unknown {
  const value = record[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== type) {
    throw new LineError(`entry ${key}: "${field}" is a ${typeof value}, expected a ${type}`);
  }
  return value;
}

function status(record: Record<string, unknown>, key: string): HealthStatus | undefined {
  const value = optional(record, 'health_status', 'string', key) as string | undefined;
  if (value === undefined) return undefined;
  if (!HEALTH_STATUSES.includes(value as HealthStatus)) {
    throw new LineError(`entry ${key}: "health_status" ${JSON.stringify(value)} is not known`);
  }
  return value as HealthStatus;
}

/**
 * A Python `isoformat()` time: `+00:00` offsets, microseconds when not zero. A time without an
 * offset (naive) is read as UTC, which is what proxywhirl means by it.
 */
function pythonTime(record: Record<string, unknown>, field: string, key: string) {
  const value = record[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    throw new LineError(`entry ${key}: "${field}" is a ${typeof value}, expected an ISO 8601 time`);
  }
  const ms = parseTimeText(value);
  if (!Number.isFinite(ms)) {
    throw new LineError(
      `entry ${key}: "${field}" ${JSON.stringify(value)} is not an ISO 8601 time`,
    );
  }
  return ms;
}

const HEX = /^(?:[0-9a-f]{2})+$/i;

/** A credential as a sealed secret: the stored token when valid, else the plaintext encrypted. */
function credential(
  record: Record<string, unknown>,
  field: 'username' | 'password',
  key: string,
  cipher: TokenCipher,
): Secret | undefined {
  const hex = record[`${field}_encrypted`];
  if (hex !== undefined && hex !== null && hex !== '') {
    if (typeof hex !== 'string' || !HEX.test(hex)) {
      throw new LineError(`entry ${key}: "${field}_encrypted" is not hexadecimal`);
    }
    const token = Buffer.from(hex, 'hex').toString('latin1');
    let plaintext: string;
    try {
      plaintext = cipher.decrypt(token);
    } catch (error) {
      const reason = error instanceof Error ? error.message : 'unknown error';
      throw new LineError(`entry ${key}: the ${field} token does not decrypt (${reason})`);
    }
    // Keep proxywhirl's token as it is: no re-encryption, and a re-import finds it unchanged.
    const secret = new Secret(plaintext);
    secret.replaceToken(token);
    return secret;
  }
  const plaintext = record[field];
  if (plaintext === undefined || plaintext === null || plaintext === '') return undefined;
  if (typeof plaintext !== 'string') {
    throw new LineError(`entry ${key}: "${field}" is a ${typeof plaintext}, expected a string`);
  }
  const secret = new Secret(plaintext);
  secret.seal(cipher);
  return secret;
}

const COMPARED: readonly (keyof ProxyEntry)[] = ENTRY_FIELDS.filter((field) => field !== 'key');

/** True when the stored entry already holds the imported one (credentials compared by value). */
function sameEntry(stored: ProxyEntry | undefined, incoming: ProxyEntry): boolean {
  if (stored === undefined) return false;
  for (const field of COMPARED) if (stored[field] !== incoming[field]) return false;
  return (
    sameSecret(stored.username, incoming.username) && sameSecret(stored.password, incoming.password)
  );
}

function sameSecret(stored: Secret | undefined, incoming: Secret | undefined): boolean {
  if (stored === undefined || incoming === undefined) return stored === incoming;
  if (stored.token !== undefined && stored.token === incoming.token) return true;
  try {
    return stored.reveal() === incoming.reveal();
  } catch {
    return false;
  }
}
