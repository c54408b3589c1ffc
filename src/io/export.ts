// Streaming export of proxy records as JSONL, CSV or a JSON array, with proxywhirl's snake_case
// field names and `isoformat()` times. Credentials are left out by default; they can be written as
// Fernet tokens (which an import with the same key restores) or, when asked for, in clear.
// See docs/formats.md.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import type { Keyring } from '../crypto/keyring.js';
import { InvalidOptionError } from '../errors.js';
import { assertOptionsObject, rejectUnknownOptions, type OptionNames } from '../option-check.js';
import { PROXYWHIRL_FIELDS, type ProxyEntry } from '../record/entry.js';
import type { Secret } from '../record/secret.js';
import { formatIsoTime } from './time.js';

export type ExportFormat = 'jsonl' | 'csv' | 'json';
export const EXPORT_FORMATS: readonly ExportFormat[] = Object.freeze(['jsonl', 'csv', 'json']);

/**
 * How credentials are written: `redacted` leaves them out and writes `has_credentials`;
 * `encrypted` writes `username_encrypted`/`password_encrypted` Fernet tokens; `plain` writes
 * `username`/`password` in clear.
 */
export type SecretsMode = 'redacted' | 'encrypted' | 'plain';
export const SECRETS_MODES: readonly SecretsMode[] = Object.freeze([
  'redacted',
  'encrypted',
  'plain',
]);

export interface ExportOptions {
  format: ExportFormat;
  /** Default `redacted`. */
  secrets?: SecretsMode;
  /**
   * The key tokens are written under when `secrets` is `encrypted` (required then): a stored
   * token already made by its current key is written as it is, anything else is encrypted with it.
   */
  keyring?: Keyring;
  /** Called with the number of records written so far after each one. */
  onProgress?(exported: number): void;
}

const EXPORT_OPTION_NAMES: OptionNames<ExportOptions> = Object.freeze({
  format: true,
  secrets: true,
  keyring: true,
  onProgress: true,
});

/** Credential columns per mode, after `key` and `proxy_url`. */
const CREDENTIAL_COLUMNS: Readonly<Record<SecretsMode, readonly string[]>> = {
  redacted: ['has_credentials'],
  encrypted: ['username_encrypted', 'password_encrypted'],
  plain: ['username', 'password'],
};

// Every field after the key and the URL, which lead each record.
const RECORD_COLUMNS = PROXYWHIRL_FIELDS.slice(2);

/** The fields (and CSV columns, in this order) an export writes for `secrets`. */
export function exportColumns(secrets: SecretsMode = 'redacted'): string[] {
  return ['key', 'proxy_url', ...CREDENTIAL_COLUMNS[secrets], ...RECORD_COLUMNS];
}

type Value = string | number | boolean | null;

/**
 * Writes `entries` to `output` in `format`, one record at a time, waiting for `drain` when the
 * output is full. Pass `cache.entries()`: reading it counts no statistics and changes no access
 * time. `output` is not ended (it may be standard output); end it when the promise resolves.
 *
 * @throws InvalidOptionError (`E_INVALID_OPTION`) for bad options (at once, before writing),
 *   DecryptionError (`E_DECRYPT`) when a credential to write in clear or re-encrypt cannot be
 *   decrypted, and the output's own error when writing fails.
 */
export async function exportRecords(
  entries: AsyncIterable<ProxyEntry>,
  output: Writable,
  options: ExportOptions,
): Promise<{ exported: number }> {
  assertOptionsObject('exportRecords', options, 'with "format"');
  rejectUnknownOptions('exportRecords', options, EXPORT_OPTION_NAMES);
  const { format, keyring, onProgress } = options;
  const secrets = options.secrets ?? 'redacted';
  if (!EXPORT_FORMATS.includes(format)) {
    throw new InvalidOptionError(
      `"format" must be one of ${EXPORT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`,
    );
  }
  if (!SECRETS_MODES.includes(secrets)) {
    throw new InvalidOptionError(
      `"secrets" must be one of ${SECRETS_MODES.join(', ')}, got ${JSON.stringify(secrets)}`,
    );
  }
  if (secrets === 'encrypted' && keyring === undefined) {
    throw new InvalidOptionError(
      'secrets "encrypted" needs a keyring: the key an import will need to read the credentials',
    );
  }
  const columns = exportColumns(secrets);
  const writer = new BufferedWriter(output);
  let exported = 0;
  try {
    if (format === 'csv') writer.push(stringify([columns]));
    else if (format === 'json') writer.push('[');
    for await (const entry of entries) {
      const record = toRecord(entry, secrets, keyring);
      if (format === 'csv') {
        writer.push(stringify([columns.map((column) => csvCell(record[column] ?? null))]));
      } else if (format === 'json') {
        writer.push(`${exported === 0 ? '\n' : ',\n'}${JSON.stringify(record)}`);
      } else {
        writer.push(`${JSON.stringify(record)}\n`);
      }
      exported += 1;
      if (writer.full) await writer.flush();
      onProgress?.(exported);
    }
    if (format === 'json') writer.push(exported === 0 ? ']\n' : '\n]\n');
    await writer.flush();
  } finally {
    writer.release();
  }
  return { exported };
}

/** One entry as proxywhirl's `model_dump(mode="json")` names it, credentials per `secrets`. */
function toRecord(
  entry: ProxyEntry,
  secrets: SecretsMode,
  keyring: Keyring | undefined,
): Record<string, Value> {
  const record: Record<string, Value> = { key: entry.key, proxy_url: entry.proxyUrl };
  if (secrets === 'redacted') {
    record.has_credentials = entry.username !== undefined || entry.password !== undefined;
  } else if (secrets === 'plain') {
    record.username = entry.username?.reveal() ?? null;
    record.password = entry.password?.reveal() ?? null;
  } else {
    const cipher = keyring as Keyring;
    record.username_encrypted = tokenFor(entry.username, cipher);
    record.password_encrypted = tokenFor(entry.password, cipher);
  }
  record.source = entry.source;
  record.fetch_time = formatIsoTime(entry.fetchTime);
  record.last_accessed = formatIsoTime(entry.lastAccessed);
  record.access_count = entry.accessCount;
  record.ttl_seconds = entry.ttlSeconds;
  record.expires_at = formatIsoTime(entry.expiresAt);
  record.health_status = entry.healthStatus;
  record.failure_count = entry.failureCount;
  record.evicted_from_l1 = entry.evictedFromL1;
  record.last_health_check = optionalTime(entry.lastHealthCheck);
  record.consecutive_health_failures = entry.consecutiveHealthFailures;
  record.consecutive_health_successes = entry.consecutiveHealthSuccesses;
  record.recovery_attempt = entry.recoveryAttempt;
  record.next_check_time = optionalTime(entry.nextCheckTime);
  record.last_health_error = entry.lastHealthError ?? null;
  record.total_health_checks = entry.totalHealthChecks;
  record.total_health_check_failures = entry.totalHealthCheckFailures;
  return record;
}

/**
 * The secret's token under `keyring`, without changing the secret (it belongs to the cache): its
 * own token when the keyring's current key made it, else a new encryption of its value.
 */
function tokenFor(secret: Secret | undefined, keyring: Keyring): string | null {
  if (secret === undefined) return null;
  const token = secret.token;
  if (token !== undefined && keyring.isCurrent(token)) return token;
  return keyring.encrypt(secret.reveal());
}

function optionalTime(ms: number | undefined): string | null {
  return ms === undefined ? null : formatIsoTime(ms);
}

/** CSV cells are text: `null` is an empty cell, booleans `true`/`false`. */
function csvCell(value: Value): string {
  return value === null ? '' : String(value);
}

const FLUSH_CHARS = 64 * 1024;

/**
 * Collects small writes into chunks of about 64 KiB and writes them with backpressure. An error
 * the output emits at any time fails the next write (and a wait for `drain`).
 */
class BufferedWriter {
  readonly #output: Writable;
  #parts: string[] = [];
  #size = 0;
  #error: Error | undefined;
  readonly #onError = (error: Error): void => {
    this.#error ??= error;
  };

  constructor(output: Writable) {
    this.#output = output;
    output.on('error', this.#onError);
  }

  get full(): boolean {
    return this.#size >= FLUSH_CHARS;
  }

  push(text: string): void {
    this.#parts.push(text);
    this.#size += text.length;
  }

  async flush(): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    if (this.#size === 0) return;
    const output = this.#output;
    if (output.destroyed || output.writableEnded) {
      throw new Error('the export output was closed before the export finished');
    }
    const data = this.#parts.length === 1 ? (this.#parts[0] as string) : this.#parts.join('');
    this.#parts = [];
    this.#size = 0;
    if (!output.write(data)) await this.#drain();
    if (this.#error !== undefined) throw this.#error;
  }

  async #drain(): Promise<void> {
    const output = this.#output;
    const stop = new AbortController();
    try {
      await Promise.race([
        once(output, 'drain', { signal: stop.signal }),
        once(output, 'close', { signal: stop.signal }).then(() => {
          throw this.#error ?? new Error('the export output was closed before the export finished');
        }),
      ]);
    } finally {
      stop.abort();
    }
  }

  release(): void {
    this.#output.off('error', this.#onError);
  }
}
