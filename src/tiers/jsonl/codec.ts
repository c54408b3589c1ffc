// The JSONL record format: proxywhirl's `JsonlCacheTier` lines, byte for byte as Python's
// `json.dumps` writes them (", " and ": " separators, non-ASCII escaped as \uXXXX, fields in
// proxywhirl's order), plus one trailing checksum member `"_c"`. Tombstones are
// `{"key": <key>, "_deleted": true, "_c": ...}`. See docs/jsonl.md.
import { createHash, hash as cryptoHash } from 'node:crypto';
import { InvalidEntryError } from '../../errors.js';
import {
  DEFAULT_SOURCE,
  HEALTH_STATUSES,
  type HealthStatus,
  type ProxyEntry,
} from '../../record/entry.js';
import { Secret, type TokenCipher } from '../../record/secret.js';
import { MAX_TIME, MIN_TIME, parseIsoTime } from '../../record/time.js';
import { crc32, crc32Byte } from './crc32.js';

/** Number of shard files, as proxywhirl names them: `shard_00.jsonl` ... `shard_15.jsonl`. */
export const SHARD_COUNT = 16;

/** `shard_NN.jsonl` for shard `index`. */
export function shardFileName(index: number): string {
  return `shard_${index < 10 ? '0' : ''}${index}.jsonl`;
}

const md5Hex: (text: string) => string =
  typeof cryptoHash === 'function'
    ? (text) => cryptoHash('md5', text, 'hex')
    : (text) => createHash('md5').update(text, 'utf8').digest('hex');

/**
 * proxywhirl's shard of `key`: `int(md5(key.encode()).hexdigest(), 16) % 16`, which is the value
 * of the digest's last hexadecimal digit.
 */
export function shardOf(key: string): number {
  const hex = md5Hex(key);
  const code = hex.charCodeAt(hex.length - 1);
  return code <= 57 ? code - 48 : code - 87;
}

// ------------------------------------------------------------------ encoding

const NON_ASCII = /[\u007f-\uffff]/;
const NON_ASCII_ALL = /[\u007f-\uffff]/g;

function escapeCodeUnit(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** A JSON string literal exactly as Python's `json.dumps` (ensure_ascii) writes it. */
export function pyString(value: string): string {
  let plain = true;
  for (let i = 0; i < value.length; i += 1) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) return `"${value}"`;
  const json = JSON.stringify(value);
  return NON_ASCII.test(json) ? json.replace(NON_ASCII_ALL, escapeCodeUnit) : json;
}

/** `", "_c": "xxxxxxxx"}"`: the length of the checksum member plus the closing brace. */
export const CHECKSUM_SUFFIX_LENGTH = 19;
const CHECKSUM_PREFIX = ', "_c": "';
const CLOSE_BRACE = Buffer.from('}', 'latin1');

function hex8(value: number): string {
  return (value >>> 0).toString(16).padStart(8, '0');
}

/**
 * Closes `body` (a JSON object's text without its closing brace) with the checksum member: the
 * CRC-32 of the line as it reads without that member, i.e. of `body + "}"`.
 */
export function withChecksum(body: string): string {
  const crc = crc32(CLOSE_BRACE, crc32(body));
  return `${body}${CHECKSUM_PREFIX}${hex8(crc)}"}`;
}

// The record writer: bytes straight into a buffer, with no intermediate strings (a put's cost is
// mostly this). `encodeRecord` uses the same writer, so there is one definition of the format.

const ascii = (text: string): Uint8Array => Buffer.from(text, 'latin1');
const K_KEY = ascii('{"key": ');
const K_PROXY_URL = ascii(', "proxy_url": ');
const K_SOURCE = ascii(', "source": ');
const K_FETCH_TIME = ascii(', "fetch_time": ');
const K_LAST_ACCESSED = ascii(', "last_accessed": ');
const K_ACCESS_COUNT = ascii(', "access_count": ');
const K_TTL_SECONDS = ascii(', "ttl_seconds": ');
const K_EXPIRES_AT = ascii(', "expires_at": ');
const K_HEALTH_STATUS = ascii(', "health_status": ');
const K_FAILURE_COUNT = ascii(', "failure_count": ');
const K_EVICTED = ascii(', "evicted_from_l1": ');
const K_LAST_HEALTH_CHECK = ascii(', "last_health_check": ');
const K_CONSECUTIVE_FAILURES = ascii(', "consecutive_health_failures": ');
const K_CONSECUTIVE_SUCCESSES = ascii(', "consecutive_health_successes": ');
const K_RECOVERY_ATTEMPT = ascii(', "recovery_attempt": ');
const K_NEXT_CHECK_TIME = ascii(', "next_check_time": ');
const K_LAST_HEALTH_ERROR = ascii(', "last_health_error": ');
const K_TOTAL_CHECKS = ascii(', "total_health_checks": ');
const K_TOTAL_FAILURES = ascii(', "total_health_check_failures": ');
const K_USERNAME = ascii(', "username_encrypted": "');
const K_PASSWORD = ascii(', "password_encrypted": "');
const K_DELETED = ascii(', "_deleted": true');
const V_TRUE = ascii('true');
const V_FALSE = ascii('false');
const V_NULL = ascii('null');
const V_TIME_END = ascii('+00:00"');
const HEALTH_BYTES = new Map(HEALTH_STATUSES.map((status) => [status, ascii(`"${status}"`)]));
const HEX_CODES = ascii('0123456789abcdef');

/** Bytes of a record besides its strings, tokens and numbers, with room to spare. */
const RECORD_FIXED_BOUND = 1024;

function putBytes(buf: Buffer, at: number, bytes: Uint8Array): number {
  // TypedArray#set (a native copy) beats a JS loop for anything longer than a few bytes.
  buf.set(bytes, at);
  return at + bytes.length;
}

/** A JSON string as `pyString` would write it. */
function putString(buf: Buffer, at: number, value: string): number {
  buf[at] = 0x22;
  let q = at + 1;
  for (let i = 0; i < value.length; i += 1) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x7f) {
      const text = pyString(value);
      return at + buf.write(text, at, 'latin1');
    }
    buf[q] = c;
    q += 1;
  }
  buf[q] = 0x22;
  return q + 1;
}

function putDigits(buf: Buffer, at: number, value: number, width: number): number {
  let n = value;
  if (n < 0x7fffffff) {
    // Small integers: int32 arithmetic.
    for (let i = width - 1; i >= 0; i -= 1) {
      const next = (n / 10) | 0;
      buf[at + i] = 48 + n - next * 10;
      n = next;
    }
    return at + width;
  }
  for (let i = width - 1; i >= 0; i -= 1) {
    const digit = n % 10;
    buf[at + i] = 48 + digit;
    n = (n - digit) / 10;
  }
  return at + width;
}

function putInteger(buf: Buffer, at: number, value: number, field: string): number {
  if (!Number.isSafeInteger(value)) {
    throw new InvalidEntryError(field, `"${field}" must be an integer, got ${String(value)}`);
  }
  let p = at;
  let n = value;
  if (n < 0) {
    buf[p] = 0x2d;
    p += 1;
    n = -n;
  }
  if (n < 10) {
    buf[p] = 48 + n;
    return p + 1;
  }
  let width = 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) width += 1;
  return putDigits(buf, p, n, width);
}

// The last few seconds formatted (`YYYY-MM-DDTHH:MM:SS`, 19 bytes), direct-mapped by second:
// a burst of puts keeps writing the same fetch and expiry seconds.
const SECOND_SLOTS = 8;
const secondKeys = new Float64Array(SECOND_SLOTS).fill(Number.NaN);
const secondBytes = new Uint8Array(SECOND_SLOTS * 19);

function formatSecond(second: number, slot: number): void {
  const day = Math.floor(second / 86_400);
  let rest = second - day * 86_400;
  const hour = (rest / 3600) | 0;
  rest -= hour * 3600;
  const minute = (rest / 60) | 0;
  const seconds = rest - minute * 60;
  // civil_from_days, as in civilDate (src/record/time.ts).
  const z = day + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const dayOfMonth = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const b = secondBytes;
  const o = slot * 19;
  b[o] = 48 + ((year / 1000) | 0);
  b[o + 1] = 48 + (((year / 100) | 0) % 10);
  b[o + 2] = 48 + (((year / 10) | 0) % 10);
  b[o + 3] = 48 + (year % 10);
  b[o + 4] = 0x2d;
  b[o + 5] = 48 + ((month / 10) | 0);
  b[o + 6] = 48 + (month % 10);
  b[o + 7] = 0x2d;
  b[o + 8] = 48 + ((dayOfMonth / 10) | 0);
  b[o + 9] = 48 + (dayOfMonth % 10);
  b[o + 10] = 0x54;
  b[o + 11] = 48 + ((hour / 10) | 0);
  b[o + 12] = 48 + (hour % 10);
  b[o + 13] = 0x3a;
  b[o + 14] = 48 + ((minute / 10) | 0);
  b[o + 15] = 48 + (minute % 10);
  b[o + 16] = 0x3a;
  b[o + 17] = 48 + ((seconds / 10) | 0);
  b[o + 18] = 48 + (seconds % 10);
  secondKeys[slot] = second;
}

/** `"YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00"`, as `formatIsoTime` (quoted). */
function putTime(buf: Buffer, at: number, ms: number, field: string): number {
  if (!(ms >= MIN_TIME && ms <= MAX_TIME)) {
    throw new InvalidEntryError(
      field,
      `"${field}" must be a time in the years 1-9999 (what Python's datetime holds), got ${String(ms)}`,
    );
  }
  let whole = Math.floor(ms);
  let subMicros = Math.round((ms - whole) * 1000);
  if (subMicros === 1000) {
    whole += 1;
    subMicros = 0;
  }
  const second = Math.floor(whole / 1000);
  const fraction = (whole - second * 1000) * 1000 + subMicros;
  // Multiplicative hashing: TTLs are often multiples of 8 s, so the low bits would collide.
  const slot = Math.imul(second | 0, 0x9e3779b1) >>> 29;
  if (secondKeys[slot] !== second) formatSecond(second, slot);
  buf[at] = 0x22;
  const o = slot * 19;
  for (let i = 0; i < 19; i += 1) buf[at + 1 + i] = secondBytes[o + i] as number;
  let p = at + 20;
  if (fraction !== 0) {
    buf[p] = 0x2e;
    p = putDigits(buf, p + 1, fraction, 6);
  }
  return putBytes(buf, p, V_TIME_END);
}

function putOptionalTime(buf: Buffer, at: number, ms: number | undefined, field: string): number {
  return ms === undefined ? putBytes(buf, at, V_NULL) : putTime(buf, at, ms, field);
}

/** Lower-case hex of the token's ASCII bytes, then the closing quote. */
function putTokenHex(buf: Buffer, at: number, token: string): number {
  let p = at;
  for (let i = 0; i < token.length; i += 1) {
    const c = token.charCodeAt(i);
    if (c > 0xff) throw new InvalidEntryError('token', 'a Fernet token must be ASCII');
    buf[p] = HEX_CODES[c >> 4] as number;
    buf[p + 1] = HEX_CODES[c & 15] as number;
    p += 2;
  }
  buf[p] = 0x22;
  return p + 1;
}

/** Closes the line started at `start` with its checksum member, `}` and a newline. */
function putChecksum(buf: Buffer, start: number, at: number): number {
  const crc = crc32Byte(crc32(buf.subarray(start, at)), 0x7d);
  let p = putBytes(buf, at, CHECKSUM_PREFIX_BYTES);
  for (let shift = 28; shift >= 0; shift -= 4) {
    buf[p] = HEX_CODES[(crc >>> shift) & 15] as number;
    p += 1;
  }
  buf[p] = 0x22;
  buf[p + 1] = 0x7d;
  buf[p + 2] = 0x0a;
  return p + 3;
}

/** Room `writeRecord` may need for `entry` (strings may grow sixfold when escaped). */
export function recordBound(
  entry: ProxyEntry,
  usernameToken: string | undefined,
  passwordToken: string | undefined,
): number {
  return (
    RECORD_FIXED_BOUND +
    6 *
      (entry.key.length +
        entry.proxyUrl.length +
        entry.source.length +
        entry.healthStatus.length +
        (entry.lastHealthError?.length ?? 0)) +
    2 * ((usernameToken?.length ?? 0) + (passwordToken?.length ?? 0))
  );
}

/**
 * Writes the line for `entry` (with the credentials given as Fernet tokens), its checksum and a
 * newline into `buf` at `at`, which must have `recordBound` bytes free; returns the offset after
 * the newline. Field names and order are proxywhirl's; absent credentials are omitted as
 * proxywhirl does.
 */
export function writeRecord(
  buf: Buffer,
  at: number,
  entry: ProxyEntry,
  usernameToken: string | undefined,
  passwordToken: string | undefined,
): number {
  let p = putBytes(buf, at, K_KEY);
  p = putString(buf, p, entry.key);
  p = putBytes(buf, p, K_PROXY_URL);
  p = putString(buf, p, entry.proxyUrl);
  p = putBytes(buf, p, K_SOURCE);
  p = putString(buf, p, entry.source);
  p = putBytes(buf, p, K_FETCH_TIME);
  p = putTime(buf, p, entry.fetchTime, 'fetchTime');
  p = putBytes(buf, p, K_LAST_ACCESSED);
  p = putTime(buf, p, entry.lastAccessed, 'lastAccessed');
  p = putBytes(buf, p, K_ACCESS_COUNT);
  p = putInteger(buf, p, entry.accessCount, 'accessCount');
  p = putBytes(buf, p, K_TTL_SECONDS);
  p = putInteger(buf, p, entry.ttlSeconds, 'ttlSeconds');
  p = putBytes(buf, p, K_EXPIRES_AT);
  p = putTime(buf, p, entry.expiresAt, 'expiresAt');
  p = putBytes(buf, p, K_HEALTH_STATUS);
  const status = HEALTH_BYTES.get(entry.healthStatus);
  p = status === undefined ? putString(buf, p, entry.healthStatus) : putBytes(buf, p, status);
  p = putBytes(buf, p, K_FAILURE_COUNT);
  p = putInteger(buf, p, entry.failureCount, 'failureCount');
  p = putBytes(buf, p, K_EVICTED);
  p = putBytes(buf, p, entry.evictedFromL1 ? V_TRUE : V_FALSE);
  p = putBytes(buf, p, K_LAST_HEALTH_CHECK);
  p = putOptionalTime(buf, p, entry.lastHealthCheck, 'lastHealthCheck');
  p = putBytes(buf, p, K_CONSECUTIVE_FAILURES);
  p = putInteger(buf, p, entry.consecutiveHealthFailures, 'consecutiveHealthFailures');
  p = putBytes(buf, p, K_CONSECUTIVE_SUCCESSES);
  p = putInteger(buf, p, entry.consecutiveHealthSuccesses, 'consecutiveHealthSuccesses');
  p = putBytes(buf, p, K_RECOVERY_ATTEMPT);
  p = putInteger(buf, p, entry.recoveryAttempt, 'recoveryAttempt');
  p = putBytes(buf, p, K_NEXT_CHECK_TIME);
  p = putOptionalTime(buf, p, entry.nextCheckTime, 'nextCheckTime');
  p = putBytes(buf, p, K_LAST_HEALTH_ERROR);
  p =
    entry.lastHealthError === undefined
      ? putBytes(buf, p, V_NULL)
      : putString(buf, p, entry.lastHealthError);
  p = putBytes(buf, p, K_TOTAL_CHECKS);
  p = putInteger(buf, p, entry.totalHealthChecks, 'totalHealthChecks');
  p = putBytes(buf, p, K_TOTAL_FAILURES);
  p = putInteger(buf, p, entry.totalHealthCheckFailures, 'totalHealthCheckFailures');
  if (usernameToken !== undefined) {
    p = putBytes(buf, p, K_USERNAME);
    p = putTokenHex(buf, p, usernameToken);
  }
  if (passwordToken !== undefined) {
    p = putBytes(buf, p, K_PASSWORD);
    p = putTokenHex(buf, p, passwordToken);
  }
  return putChecksum(buf, at, p);
}

/** Room `writeTombstone` may need for `key`. */
export function tombstoneBound(key: string): number {
  return 64 + 6 * key.length;
}

/** Writes the tombstone line that deletes `key` (`{"key": ..., "_deleted": true, "_c": ...}`). */
export function writeTombstone(buf: Buffer, at: number, key: string): number {
  let p = putBytes(buf, at, K_KEY);
  p = putString(buf, p, key);
  p = putBytes(buf, p, K_DELETED);
  return putChecksum(buf, at, p);
}

/**
 * The line (without its newline) for `entry`, with the credentials given as Fernet tokens: what
 * `writeRecord` writes, as a string.
 */
export function encodeRecord(
  entry: ProxyEntry,
  usernameToken: string | undefined,
  passwordToken: string | undefined,
): string {
  const buf = Buffer.allocUnsafe(recordBound(entry, usernameToken, passwordToken));
  const end = writeRecord(buf, 0, entry, usernameToken, passwordToken);
  return buf.toString('latin1', 0, end - 1);
}

/** The tombstone line (without its newline) that deletes `key`. */
export function encodeTombstone(key: string): string {
  const buf = Buffer.allocUnsafe(tombstoneBound(key));
  return buf.toString('latin1', 0, writeTombstone(buf, 0, key) - 1);
}

/** The marker a compaction appends to the file it is about to replace (see docs/jsonl.md). */
export const MOVED_LINE = withChecksum('{"_moved": true');

// ------------------------------------------------------------------ checksums

const CHECKSUM_PREFIX_BYTES = Buffer.from(CHECKSUM_PREFIX, 'latin1');
const CHECKSUM_NAME = Buffer.from('"_c"', 'latin1');

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * Whether the line `buf[start, end)` (no newline) carries a checksum and whether it matches:
 * `'ok'`, `'bad'`, or `'none'` for a line without the member (proxywhirl's own lines). A line
 * that mentions `"_c"` but does not end in a well-formed member is `'bad'`.
 */
export function checkLine(buf: Buffer, start: number, end: number): 'ok' | 'bad' | 'none' {
  const length = end - start;
  if (
    length >= CHECKSUM_SUFFIX_LENGTH + 2 &&
    buf[end - 1] === 0x7d &&
    buf[end - 2] === 0x22 &&
    buf.compare(CHECKSUM_PREFIX_BYTES, 0, 9, end - 19, end - 10) === 0
  ) {
    let stored = 0;
    for (let i = end - 10; i < end - 2; i += 1) {
      const v = hexValue(buf[i] as number);
      if (v < 0) return 'bad';
      stored = stored * 16 + v;
    }
    const crc = crc32(CLOSE_BRACE, crc32(buf.subarray(start, end - CHECKSUM_SUFFIX_LENGTH)));
    return crc === stored ? 'ok' : 'bad';
  }
  // A damaged checksum member (or bytes glued after it) must not pass as an unchecked line.
  return buf.subarray(start, end).indexOf(CHECKSUM_NAME) === -1 ? 'none' : 'bad';
}

// ------------------------------------------------------------------ scanning

/** What one line of a shard file holds, as far as the key directory needs to know. */
export type ScannedLine =
  | {
      kind: 'put';
      key: string;
      expiresAt: number;
      lastAccessed: number;
      /** No checksum, or plaintext credentials: compaction rewrites it. */
      legacy: boolean;
      plaintext: boolean;
    }
  | { kind: 'del'; key: string }
  | { kind: 'blank' }
  /** A compaction's marker: this file is about to be replaced. */
  | { kind: 'moved' }
  | { kind: 'corrupt'; key: string | undefined; reason: string };

const KEY_PREFIX = '{"key": "';
const MOVED_PREFIX = '{"_moved": true';
const TOMBSTONE_MARK = ', "_deleted": true';

/** The JSON string starting at `text[quote]` (a `"`), decoded; `undefined` if malformed. */
function readJsonString(text: string, quote: number): { value: string; end: number } | undefined {
  let i = quote + 1;
  let escaped = false;
  const n = text.length;
  while (i < n) {
    const code = text.charCodeAt(i);
    if (code === 92) {
      escaped = true;
      i += 2;
      continue;
    }
    if (code === 34) break;
    i += 1;
  }
  if (i >= n) return undefined;
  if (!escaped) return { value: text.slice(quote + 1, i), end: i + 1 };
  try {
    return { value: JSON.parse(text.slice(quote, i + 1)) as string, end: i + 1 };
  } catch {
    return undefined;
  }
}

function timeAfter(text: string, label: string, from: number): number {
  const at = text.indexOf(label, from);
  if (at === -1) return Number.NaN;
  const start = at + label.length;
  const close = text.indexOf('"', start);
  return close === -1 ? Number.NaN : parseIsoTime(text.slice(start, close));
}

/** Best effort: the key of a damaged line, if its start is still readable. */
export function recoverKey(text: string): string | undefined {
  const match = /^\{\s*"key"\s*:\s*"/.exec(text);
  if (match === null) return undefined;
  const parsed = readJsonString(text, match[0].length - 1);
  return parsed !== undefined && parsed.value.length > 0 && parsed.value.length <= 512
    ? parsed.value
    : undefined;
}

function isBlank(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i += 1) {
    const c = buf[i];
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}

function hasHighBytes(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i += 1) if ((buf[i] as number) >= 0x80) return true;
  return false;
}

/**
 * Classifies the line `buf[start, end)` (no newline). Lines this tier wrote take a fast path
 * (checksum, then the key and two times found by position); anything else is parsed in full
 * and validated as a proxywhirl record.
 */
export function scanLine(buf: Buffer, start: number, end: number): ScannedLine {
  if (isBlank(buf, start, end)) return { kind: 'blank' };
  const check = checkLine(buf, start, end);
  if (check === 'bad') {
    const text = buf.toString('latin1', start, Math.min(end, start + 2048));
    return { kind: 'corrupt', key: recoverKey(text), reason: 'checksum mismatch' };
  }
  if (check === 'ok') {
    const text = buf.toString('latin1', start, end);
    if (text.startsWith(MOVED_PREFIX)) return { kind: 'moved' };
    if (text.startsWith(KEY_PREFIX)) {
      const key = readJsonString(text, KEY_PREFIX.length - 1);
      if (key !== undefined && key.value.length > 0) {
        if (text.startsWith(TOMBSTONE_MARK, key.end)) return { kind: 'del', key: key.value };
        const expiresAt = timeAfter(text, '"expires_at": "', key.end);
        const lastAccessed = timeAfter(text, '"last_accessed": "', key.end);
        const plaintext = text.includes('"username": ') || text.includes('"password": ');
        if (Number.isFinite(expiresAt) && Number.isFinite(lastAccessed) && !plaintext) {
          return { kind: 'put', key: key.value, expiresAt, lastAccessed, legacy: false, plaintext };
        }
      }
    }
  }
  // Not in this tier's own layout: parse and validate in full.
  const text = hasHighBytes(buf, start, end)
    ? buf.toString('utf8', start, end)
    : buf.toString('latin1', start, end);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'corrupt', key: recoverKey(text), reason: 'not valid JSON' };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { kind: 'corrupt', key: undefined, reason: 'not a JSON object' };
  }
  const record = parsed as Record<string, unknown>;
  const key = record['key'];
  if (record['_moved'] === true && key === undefined && check === 'ok') return { kind: 'moved' };
  if (typeof key !== 'string' || key === '') {
    return { kind: 'corrupt', key: undefined, reason: 'no "key"' };
  }
  if (record['_deleted'] === true) return { kind: 'del', key };
  try {
    const fields = readRecordFields(record);
    return {
      kind: 'put',
      key,
      expiresAt: fields.expiresAt,
      lastAccessed: fields.lastAccessed,
      legacy: check === 'none' || fields.plaintext,
      plaintext: fields.plaintext,
    };
  } catch (error) {
    return { kind: 'corrupt', key, reason: (error as Error).message };
  }
}

// ------------------------------------------------------------------ decoding

/** A stored line that is not a valid record (the message names the field, never a credential). */
export class RecordFormatError extends Error {}

const NOT_A_CIPHER: TokenCipher = {
  encrypt() {
    throw new RecordFormatError('no encryption key is configured');
  },
  decrypt() {
    throw new RecordFormatError('no encryption key is configured');
  },
};

function fail(field: string, expectation: string, value: unknown): never {
  const shown =
    typeof value === 'string'
      ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)
      : value === null
        ? 'null'
        : typeof value;
  throw new RecordFormatError(`"${field}" must be ${expectation}, got ${shown}`);
}

function requiredString(record: Record<string, unknown>, field: string): string {
  const value = record[field];
  if (typeof value !== 'string' || value === '') fail(field, 'a non-empty string', value);
  return value;
}

function timeField(record: Record<string, unknown>, field: string, fallback?: number): number {
  const value = record[field];
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string') fail(field, 'an ISO 8601 time', value);
  const ms = parseIsoTime(value);
  if (Number.isNaN(ms)) fail(field, 'an ISO 8601 time', value);
  return ms;
}

function optionalTimeField(record: Record<string, unknown>, field: string): number | undefined {
  const value = record[field];
  if (value === undefined || value === null) return undefined;
  return timeField(record, field);
}

function count(record: Record<string, unknown>, field: string): number {
  const value = record[field];
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(field, 'a non-negative integer', value);
  }
  return value;
}

function token(
  record: Record<string, unknown>,
  field: string,
  trusted = false,
): string | undefined {
  const value = record[field];
  if (value === undefined || value === null || value === '') return undefined;
  if (trusted && typeof value === 'string') return Buffer.from(value, 'hex').toString('latin1');
  if (typeof value !== 'string' || value.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(value)) {
    // Never shown: it is (an encoding of) a credential token.
    throw new RecordFormatError(`"${field}" must be the hex of a Fernet token`);
  }
  return Buffer.from(value, 'hex').toString('latin1');
}

function plaintext(record: Record<string, unknown>, field: string): string | undefined {
  const value = record[field];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') {
    throw new RecordFormatError(`"${field}" must be a string, got ${typeof value}`);
  }
  return value;
}

interface RecordFields {
  expiresAt: number;
  lastAccessed: number;
  plaintext: boolean;
}

function readRecordFields(record: Record<string, unknown>): RecordFields {
  requiredString(record, 'proxy_url');
  const fetchTime = timeField(record, 'fetch_time');
  const expiresAt = timeField(record, 'expires_at');
  const lastAccessed = timeField(record, 'last_accessed', fetchTime);
  const hasPlain =
    (plaintext(record, 'username') !== undefined &&
      token(record, 'username_encrypted') === undefined) ||
    (plaintext(record, 'password') !== undefined &&
      token(record, 'password_encrypted') === undefined);
  return { expiresAt, lastAccessed, plaintext: hasPlain };
}

function secretField(
  record: Record<string, unknown>,
  name: 'username' | 'password',
  key: string,
  cipher: TokenCipher | undefined,
  trusted: boolean,
): Secret | undefined {
  const sealed = token(record, `${name}_encrypted`, trusted);
  if (sealed !== undefined) {
    return Secret.fromToken(sealed, cipher ?? NOT_A_CIPHER, `${name} of entry ${key}`);
  }
  // proxywhirl rows written without encryption carry the credential as it is.
  const plain = plaintext(record, name);
  return plain === undefined ? undefined : new Secret(plain);
}

/**
 * The `ProxyEntry` a parsed line describes. Credentials stay sealed: each secret decrypts on its
 * first `reveal()`. Throws `RecordFormatError` naming the first invalid field. `trusted` (the
 * line's checksum was verified, so this tier wrote it) skips re-validating the token hex.
 */
export function entryFromRecord(
  record: Record<string, unknown>,
  cipher: TokenCipher | undefined,
  trusted = false,
): ProxyEntry {
  const key = requiredString(record, 'key');
  const fetchTime = timeField(record, 'fetch_time');
  const expiresAt = timeField(record, 'expires_at');
  const source = record['source'] ?? DEFAULT_SOURCE;
  if (typeof source !== 'string' || source === '') fail('source', 'a non-empty string', source);
  const healthStatus = record['health_status'] ?? 'unknown';
  if (!HEALTH_STATUSES.includes(healthStatus as HealthStatus)) {
    fail('health_status', `one of ${HEALTH_STATUSES.join(', ')}`, healthStatus);
  }
  const evicted = record['evicted_from_l1'] ?? false;
  if (typeof evicted !== 'boolean') fail('evicted_from_l1', 'a boolean', evicted);
  const lastHealthError = record['last_health_error'] ?? undefined;
  if (lastHealthError !== undefined && typeof lastHealthError !== 'string') {
    fail('last_health_error', 'a string or null', lastHealthError);
  }
  const ttl = record['ttl_seconds'];
  return {
    key,
    proxyUrl: requiredString(record, 'proxy_url'),
    username: secretField(record, 'username', key, cipher, trusted),
    password: secretField(record, 'password', key, cipher, trusted),
    source,
    fetchTime,
    lastAccessed: timeField(record, 'last_accessed', fetchTime),
    accessCount: count(record, 'access_count'),
    ttlSeconds:
      ttl === undefined || ttl === null
        ? Math.max(0, Math.round((expiresAt - fetchTime) / 1000))
        : count(record, 'ttl_seconds'),
    expiresAt,
    healthStatus: healthStatus as HealthStatus,
    failureCount: count(record, 'failure_count'),
    evictedFromL1: evicted,
    lastHealthCheck: optionalTimeField(record, 'last_health_check'),
    consecutiveHealthFailures: count(record, 'consecutive_health_failures'),
    consecutiveHealthSuccesses: count(record, 'consecutive_health_successes'),
    recoveryAttempt: count(record, 'recovery_attempt'),
    nextCheckTime: optionalTimeField(record, 'next_check_time'),
    lastHealthError,
    totalHealthChecks: count(record, 'total_health_checks'),
    totalHealthCheckFailures: count(record, 'total_health_check_failures'),
  };
}

/** Parses a line's text into its JSON object; `RecordFormatError` if it is not one. */
export function parseLine(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RecordFormatError('not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new RecordFormatError('not a JSON object');
  }
  return parsed as Record<string, unknown>;
}
