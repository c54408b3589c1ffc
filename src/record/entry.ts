import { InvalidEntryError } from '../errors.js';
import { Secret, toSecret } from './secret.js';
import { parseTimeText } from './time.js';
import {
  canonicalizeProxyUrl,
  deriveKey,
  describeWithoutCredentials,
  isCanonicalProxyUrl,
  isParserStableProxyUrl,
} from './url.js';

/** Health states, as proxywhirl names them. */
export const HEALTH_STATUSES = ['unknown', 'healthy', 'degraded', 'unhealthy', 'dead'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

/**
 * One cached proxy. Field names follow proxywhirl's `CacheEntry` in camelCase; every time is in
 * epoch milliseconds. Entries returned by the cache are the memory tier's own objects: change
 * one only to `put` it straight back (it is then re-validated in place); otherwise treat it as
 * read-only.
 */
export interface ProxyEntry {
  /** Cache key; by default the first 16 hex chars of SHA-256 over `proxyUrl`. */
  key: string;
  /** Canonical proxy URL, `scheme://host:port`, never with credentials. */
  proxyUrl: string;
  username: Secret | undefined;
  password: Secret | undefined;
  /** Where the proxy came from (a list name, a provider); used for per-source TTLs and queries. */
  source: string;
  fetchTime: number;
  lastAccessed: number;
  accessCount: number;
  ttlSeconds: number;
  /** `fetchTime + ttlSeconds` unless given explicitly. */
  expiresAt: number;
  healthStatus: HealthStatus;
  failureCount: number;
  /** Set while the entry is held by a slower tier after the memory tier evicted it. */
  evictedFromL1: boolean;
  lastHealthCheck: number | undefined;
  consecutiveHealthFailures: number;
  consecutiveHealthSuccesses: number;
  recoveryAttempt: number;
  nextCheckTime: number | undefined;
  lastHealthError: string | undefined;
  totalHealthChecks: number;
  totalHealthCheckFailures: number;
}

/** The health-monitoring fields (proxywhirl's "Feature 006" columns, absent from its L2 table). */
export const HEALTH_FIELDS = [
  'lastHealthCheck',
  'consecutiveHealthFailures',
  'consecutiveHealthSuccesses',
  'recoveryAttempt',
  'nextCheckTime',
  'lastHealthError',
  'totalHealthChecks',
  'totalHealthCheckFailures',
] as const satisfies readonly (keyof ProxyEntry)[];

/** Every field but the credentials, in the order proxywhirl writes them. */
export const ENTRY_FIELDS = [
  'key',
  'proxyUrl',
  'source',
  'fetchTime',
  'lastAccessed',
  'accessCount',
  'ttlSeconds',
  'expiresAt',
  'healthStatus',
  'failureCount',
  'evictedFromL1',
  ...HEALTH_FIELDS,
] as const satisfies readonly (keyof ProxyEntry)[];

/** `fetchTime` -> `fetch_time`: proxywhirl's name of a field. */
export function snakeCaseField(field: string): string {
  return field.replace(/[A-Z0-9]+/g, (part) => `_${part.toLowerCase()}`);
}

/** Every field but the credentials under proxywhirl's names, in the order its JSONL tier writes them. */
export const PROXYWHIRL_FIELDS: readonly string[] = ENTRY_FIELDS.map(snakeCaseField);

/** A time given by a caller: epoch milliseconds, a `Date`, or an ISO 8601 string. */
export type TimeInput = number | Date | string;

/**
 * What a caller passes to `put`: only `proxyUrl` is required. Credentials may be inline in the URL
 * (`http://user:pass@host:port`) or given as fields; fields win when both are present.
 */
export interface ProxyEntryInput {
  proxyUrl: string;
  key?: string;
  username?: string | Secret | null;
  password?: string | Secret | null;
  source?: string;
  fetchTime?: TimeInput;
  lastAccessed?: TimeInput;
  accessCount?: number;
  ttlSeconds?: number;
  expiresAt?: TimeInput;
  healthStatus?: HealthStatus;
  failureCount?: number;
  evictedFromL1?: boolean;
  lastHealthCheck?: TimeInput | null;
  consecutiveHealthFailures?: number;
  consecutiveHealthSuccesses?: number;
  recoveryAttempt?: number;
  nextCheckTime?: TimeInput | null;
  lastHealthError?: string | null;
  totalHealthChecks?: number;
  totalHealthCheckFailures?: number;
}

/** Defaults `createEntry` applies where the input is silent. */
export interface EntryDefaults {
  /** Current time in epoch ms, used for `fetchTime` and `lastAccessed`. */
  now: number;
  /** TTL for an entry that gives none; may depend on the entry's source. */
  ttlSecondsFor(source: string): number;
}

/** Source name used when an input names none. */
export const DEFAULT_SOURCE = 'manual';

// Entries built by `createEntry`. Such an entry (for example one returned by `get`, changed and
// passed back to `put`) is re-checked in place instead of being rebuilt field by field.
const builtEntries = new WeakSet<object>();

/**
 * Builds a complete, validated `ProxyEntry` from caller input: canonicalises the URL (moving
 * inline credentials into the secret fields), derives the key, fills defaults and checks every
 * field. Throws `InvalidEntryError` naming the field, the expectation and the value given (never
 * a credential's value).
 */
export function createEntry(input: ProxyEntryInput, defaults: EntryDefaults): ProxyEntry {
  if (input === null || typeof input !== 'object') {
    throw new InvalidEntryError('entry', `an entry must be an object, got ${describe(input)}`);
  }
  let proxyUrl = input.proxyUrl;
  let username = toSecretField('username', input.username);
  let password = toSecretField('password', input.password);
  if (typeof proxyUrl !== 'string' || !isParserStableProxyUrl(proxyUrl)) {
    const canonical = canonicalizeProxyUrl(proxyUrl);
    proxyUrl = canonical.url;
    username ??= toSecret(canonical.username);
    password ??= toSecret(canonical.password);
  }
  const key = input.key ?? deriveKey(proxyUrl);
  if (typeof key !== 'string' || key === '' || key.length > 512) {
    throw new InvalidEntryError(
      'key',
      `"key" must be a non-empty string of at most 512 characters, got ${describe(key)}`,
    );
  }
  const source = input.source ?? DEFAULT_SOURCE;
  if (typeof source !== 'string' || source === '') {
    throw new InvalidEntryError(
      'source',
      `"source" must be a non-empty string, got ${describe(source)}`,
    );
  }
  const now = defaults.now;
  const fetchTime = toTime('fetchTime', input.fetchTime, now);
  const ttlSeconds = nonNegativeInteger(
    'ttlSeconds',
    input.ttlSeconds ?? defaults.ttlSecondsFor(source),
  );
  const healthStatus = input.healthStatus ?? 'unknown';
  if (!HEALTH_STATUSES.includes(healthStatus)) {
    throw new InvalidEntryError(
      'healthStatus',
      `"healthStatus" must be one of ${HEALTH_STATUSES.join(', ')}, got ${describe(healthStatus)}`,
    );
  }
  const evictedFromL1 = input.evictedFromL1 ?? false;
  if (typeof evictedFromL1 !== 'boolean') {
    throw new InvalidEntryError(
      'evictedFromL1',
      `"evictedFromL1" must be a boolean, got ${describe(evictedFromL1)}`,
    );
  }
  const lastHealthError = input.lastHealthError ?? undefined;
  if (lastHealthError !== undefined && typeof lastHealthError !== 'string') {
    throw new InvalidEntryError(
      'lastHealthError',
      `"lastHealthError" must be a string, got ${describe(lastHealthError)}`,
    );
  }
  const entry: ProxyEntry = {
    key,
    proxyUrl,
    username,
    password,
    source,
    fetchTime,
    lastAccessed: toTime('lastAccessed', input.lastAccessed, now),
    accessCount: nonNegativeInteger('accessCount', input.accessCount ?? 0),
    ttlSeconds,
    expiresAt:
      input.expiresAt === undefined
        ? fetchTime + ttlSeconds * 1000
        : toTime('expiresAt', input.expiresAt, now),
    healthStatus,
    failureCount: nonNegativeInteger('failureCount', input.failureCount ?? 0),
    evictedFromL1,
    lastHealthCheck: toOptionalTime('lastHealthCheck', input.lastHealthCheck),
    consecutiveHealthFailures: nonNegativeInteger(
      'consecutiveHealthFailures',
      input.consecutiveHealthFailures ?? 0,
    ),
    consecutiveHealthSuccesses: nonNegativeInteger(
      'consecutiveHealthSuccesses',
      input.consecutiveHealthSuccesses ?? 0,
    ),
    recoveryAttempt: nonNegativeInteger('recoveryAttempt', input.recoveryAttempt ?? 0),
    nextCheckTime: toOptionalTime('nextCheckTime', input.nextCheckTime),
    lastHealthError,
    totalHealthChecks: nonNegativeInteger('totalHealthChecks', input.totalHealthChecks ?? 0),
    totalHealthCheckFailures: nonNegativeInteger(
      'totalHealthCheckFailures',
      input.totalHealthCheckFailures ?? 0,
    ),
  };
  builtEntries.add(entry);
  return entry;
}

/**
 * `createEntry` for caller input, or — when `input` is an entry `createEntry` built earlier —
 * the same object after checking every field again in place (no copy, no URL parsing).
 */
export function toValidEntry(
  input: ProxyEntryInput | ProxyEntry,
  defaults: EntryDefaults,
): ProxyEntry {
  if (!builtEntries.has(input)) return createEntry(input, defaults);
  const entry = input as ProxyEntry;
  if (!isCanonicalProxyUrl(entry.proxyUrl)) {
    throw new InvalidEntryError(
      'proxyUrl',
      `"proxyUrl" of a stored entry must stay canonical (scheme://host:port), got ${typeof entry.proxyUrl === 'string' ? describeWithoutCredentials(entry.proxyUrl) : describe(entry.proxyUrl)}`,
    );
  }
  if (typeof entry.key !== 'string' || entry.key === '' || entry.key.length > 512) {
    throw new InvalidEntryError(
      'key',
      `"key" must be a non-empty string of at most 512 characters, got ${describe(entry.key)}`,
    );
  }
  if (typeof entry.source !== 'string' || entry.source === '') {
    throw new InvalidEntryError(
      'source',
      `"source" must be a non-empty string, got ${describe(entry.source)}`,
    );
  }
  if (!(entry.username === undefined || entry.username instanceof Secret))
    toSecretField('username', entry.username);
  if (!(entry.password === undefined || entry.password instanceof Secret))
    toSecretField('password', entry.password);
  nonNegativeInteger('accessCount', entry.accessCount);
  nonNegativeInteger('ttlSeconds', entry.ttlSeconds);
  nonNegativeInteger('failureCount', entry.failureCount);
  nonNegativeInteger('consecutiveHealthFailures', entry.consecutiveHealthFailures);
  nonNegativeInteger('consecutiveHealthSuccesses', entry.consecutiveHealthSuccesses);
  nonNegativeInteger('recoveryAttempt', entry.recoveryAttempt);
  nonNegativeInteger('totalHealthChecks', entry.totalHealthChecks);
  nonNegativeInteger('totalHealthCheckFailures', entry.totalHealthCheckFailures);
  finiteTime('fetchTime', entry.fetchTime);
  finiteTime('lastAccessed', entry.lastAccessed);
  finiteTime('expiresAt', entry.expiresAt);
  if (entry.lastHealthCheck !== undefined) finiteTime('lastHealthCheck', entry.lastHealthCheck);
  if (entry.nextCheckTime !== undefined) finiteTime('nextCheckTime', entry.nextCheckTime);
  if (!HEALTH_STATUSES.includes(entry.healthStatus)) {
    throw new InvalidEntryError(
      'healthStatus',
      `"healthStatus" must be one of ${HEALTH_STATUSES.join(', ')}, got ${describe(entry.healthStatus)}`,
    );
  }
  if (typeof entry.evictedFromL1 !== 'boolean') {
    throw new InvalidEntryError(
      'evictedFromL1',
      `"evictedFromL1" must be a boolean, got ${describe(entry.evictedFromL1)}`,
    );
  }
  if (entry.lastHealthError !== undefined && typeof entry.lastHealthError !== 'string') {
    throw new InvalidEntryError(
      'lastHealthError',
      `"lastHealthError" must be a string, got ${describe(entry.lastHealthError)}`,
    );
  }
  return entry;
}

function finiteTime(field: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidEntryError(
      field,
      `"${field}" must be a time in epoch milliseconds, got ${describe(value)}`,
    );
  }
}

/** True when the entry's TTL has run out at `now` (epoch ms). */
export function isExpired(entry: ProxyEntry, now: number): boolean {
  return entry.expiresAt <= now;
}

/** A shallow copy: the secrets are shared (they are immutable apart from their cached token). */
export function copyEntry(entry: ProxyEntry): ProxyEntry {
  return { ...entry };
}

function toSecretField(field: 'username' | 'password', value: unknown): Secret | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'string' || value instanceof Secret) return toSecret(value);
  // The value may be a credential of the wrong type: say what type it was, never what it held.
  throw new InvalidEntryError(
    field,
    `"${field}" must be a string or a Secret, got ${typeof value}`,
  );
}

function nonNegativeInteger(field: string, value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw new InvalidEntryError(
    field,
    `"${field}" must be a non-negative integer, got ${describe(value)}`,
  );
}

function toTime(field: string, value: TimeInput | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  return parseTime(field, value);
}

function toOptionalTime(field: string, value: TimeInput | null | undefined): number | undefined {
  if (value === undefined || value === null) return undefined;
  return parseTime(field, value);
}

function parseTime(field: string, value: unknown): number {
  let ms: number;
  if (typeof value === 'number') ms = value;
  else if (value instanceof Date) ms = value.getTime();
  else if (typeof value === 'string') ms = parseTimeText(value);
  else ms = Number.NaN;
  if (Number.isFinite(ms)) return ms;
  throw new InvalidEntryError(
    field,
    `"${field}" must be a time (epoch milliseconds, Date or ISO 8601 string), got ${describe(value)}`,
  );
}

/** A short, safe description of a non-secret value for an error message. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value instanceof Date) return `Date(${String(value.getTime())})`;
  return typeof value;
}
