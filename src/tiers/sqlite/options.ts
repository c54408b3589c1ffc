import { InvalidOptionError } from '../../errors.js';
import { resolveHealthPolicy, type HealthPolicy } from '../../health.js';
import {
  assertIntegerOption,
  assertOptionsObject,
  rejectUnknownOptions,
  type OptionNames,
} from '../../option-check.js';
import { describe } from '../../record/entry.js';
import type { Durability } from './connection.js';
import type { SqliteRole } from './schema.js';

/** How long the health history is kept (L3 role). */
export interface HistoryRetention {
  /** Rows older than this are removed, in ms. Default 7 days. `Infinity` keeps them. */
  maxAgeMs?: number;
  /** At most this many rows are kept per proxy (the newest). Default 100. `Infinity` keeps all. */
  maxRowsPerProxy?: number;
}

/** Options of `SqliteTier`. */
export interface SqliteTierOptions {
  /** Database file. Its directory is created (0700) and the file too (0600) when missing. */
  path: string;
  /**
   * Which proxywhirl store the file is: `'l2'` = `DiskCacheTier` (table `l2_cache`), `'l3'` =
   * `SQLiteCacheTier` (tables `cache_entries` + `health_history`, health checks and queries).
   */
  role: SqliteRole;
  /** Most entries kept; beyond it the least recently used (by `last_accessed`) are evicted. Default: unbounded. */
  maxEntries?: number;
  /**
   * `'normal'` (default): `synchronous=NORMAL` in WAL mode; an acknowledged write survives a
   * crash of the process. `'full'`: `synchronous=FULL`; it also survives power loss, at the
   * cost of an fsync per transaction (group commit shares it between the writes of a batch).
   */
  durability?: Durability;
  /**
   * How long one statement waits for another connection's lock before failing with
   * `E_TIER_BUSY`, in ms. Default 5. better-sqlite3 waits synchronously (the event loop is
   * blocked meanwhile), so the wait is kept short and the stack retries asynchronously instead.
   */
  busyTimeoutMs?: number;
  /**
   * The tier's `timeoutMs`: how long the stack keeps retrying a call that failed `E_TIER_BUSY`
   * (and waits for one call) before it gives up, in ms. Default 5,000.
   */
  timeoutMs?: number;
  /**
   * Rows kept in the change log (`proxytier_changes`) that other processes read with
   * `readChanges()`; a reader that falls further behind gets `'flush'`. Default 10,000.
   */
  changeLogRows?: number;
  /** Tier name in statistics and events. Default `sqlite-l2` or `sqlite-l3`. */
  name?: string;
  /** Health history retention (L3 role). Default 7 days and 100 rows per proxy. */
  historyRetention?: HistoryRetention;
  /**
   * Thresholds and back-off of the health policy (L3 role). Default: the policy of the cache
   * that opens the tier (`TierContext.healthPolicy`), else `DEFAULT_HEALTH_POLICY`.
   */
  healthPolicy?: Partial<HealthPolicy>;
  /**
   * How long the first write of a batch waits for more before the batch commits, in ms. Default
   * 0: the batch commits on the next turn of the event loop, holding every write issued before.
   */
  commitDelayMs?: number;
  /** A batch reaching this many writes commits at once. Default 1,000. */
  maxBatch?: number;
  /**
   * Reads record access times and counts in memory; they are written with the next write
   * transaction or at the latest this many ms after the first unwritten one. Default 1,000.
   */
  accessFlushMs?: number;
}

/** `SqliteTierOptions` after defaults and validation. */
export interface ResolvedSqliteOptions {
  path: string;
  role: SqliteRole;
  maxEntries: number | undefined;
  durability: Durability;
  busyTimeoutMs: number;
  timeoutMs: number;
  changeLogRows: number;
  name: string;
  historyMaxAgeMs: number;
  historyMaxRowsPerProxy: number;
  healthPolicy: Readonly<HealthPolicy>;
  /** True when `healthPolicy` was given (it then wins over the cache's policy). */
  explicitHealthPolicy: boolean;
  commitDelayMs: number;
  maxBatch: number;
  accessFlushMs: number;
}

/** Defaults of `SqliteTierOptions`, exported so documentation and tests can name them. */
export const SQLITE_DEFAULTS = Object.freeze({
  durability: 'normal' as Durability,
  busyTimeoutMs: 5,
  timeoutMs: 5_000,
  changeLogRows: 10_000,
  historyMaxAgeMs: 7 * 24 * 3_600_000,
  historyMaxRowsPerProxy: 100,
  commitDelayMs: 0,
  maxBatch: 1_000,
  accessFlushMs: 1_000,
});

/** Every option of `SqliteTier`; TypeScript keeps it equal to the interface's keys. */
const SQLITE_OPTION_NAMES: OptionNames<SqliteTierOptions> = Object.freeze({
  path: true,
  role: true,
  maxEntries: true,
  durability: true,
  busyTimeoutMs: true,
  timeoutMs: true,
  changeLogRows: true,
  name: true,
  historyRetention: true,
  healthPolicy: true,
  commitDelayMs: true,
  maxBatch: true,
  accessFlushMs: true,
});

const HISTORY_RETENTION_NAMES: OptionNames<HistoryRetention> = Object.freeze({
  maxAgeMs: true,
  maxRowsPerProxy: true,
});

function positiveOrInfinity(name: string, value: unknown, integerOnly: boolean): number {
  if (value === Number.POSITIVE_INFINITY) return value;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value <= 0 ||
    (integerOnly && !Number.isSafeInteger(value))
  ) {
    throw new InvalidOptionError(
      `"${name}" must be a positive ${integerOnly ? 'integer' : 'number'} or Infinity, got ${describe(value)}`,
    );
  }
  return value;
}

/** Applies defaults, validates every option (naming it and what was expected), interprets. */
export function resolveSqliteOptions(options: SqliteTierOptions): ResolvedSqliteOptions {
  assertOptionsObject('SqliteTier', options, 'with "path" and "role"');
  // Defaults.
  const {
    path,
    role,
    maxEntries,
    durability = SQLITE_DEFAULTS.durability,
    busyTimeoutMs = SQLITE_DEFAULTS.busyTimeoutMs,
    timeoutMs = SQLITE_DEFAULTS.timeoutMs,
    changeLogRows = SQLITE_DEFAULTS.changeLogRows,
    historyRetention = {},
    healthPolicy,
    commitDelayMs = SQLITE_DEFAULTS.commitDelayMs,
    maxBatch = SQLITE_DEFAULTS.maxBatch,
    accessFlushMs = SQLITE_DEFAULTS.accessFlushMs,
  } = options;
  const name = options.name ?? `sqlite-${String(role)}`;

  // Validation.
  rejectUnknownOptions('SqliteTier', options, SQLITE_OPTION_NAMES);
  if (typeof path !== 'string' || path === '' || path === ':memory:' || path.startsWith('file:')) {
    throw new InvalidOptionError(
      `"path" must be the path of a database file (not ":memory:" or a file: URI), got ${describe(path)}`,
    );
  }
  if (role !== 'l2' && role !== 'l3') {
    throw new InvalidOptionError(
      `"role" must be "l2" (proxywhirl's l2_cache) or "l3" (cache_entries + health_history), got ${describe(role)}`,
    );
  }
  if (maxEntries !== undefined) assertIntegerOption('maxEntries', maxEntries, 1);
  if (durability !== 'normal' && durability !== 'full') {
    throw new InvalidOptionError(
      `"durability" must be "normal" or "full", got ${describe(durability)}`,
    );
  }
  assertIntegerOption('busyTimeoutMs', busyTimeoutMs, 0, 0x7fffffff);
  assertIntegerOption('timeoutMs', timeoutMs, 1, 0x7fffffff);
  assertIntegerOption('changeLogRows', changeLogRows, 1, 100_000_000);
  if (typeof name !== 'string' || name === '') {
    throw new InvalidOptionError(`"name" must be a non-empty string, got ${describe(name)}`);
  }
  if (historyRetention === null || typeof historyRetention !== 'object') {
    throw new InvalidOptionError(
      `"historyRetention" must be an object { maxAgeMs?, maxRowsPerProxy? }, got ${describe(historyRetention)}`,
    );
  }
  rejectUnknownOptions(
    'historyRetention',
    historyRetention,
    HISTORY_RETENTION_NAMES,
    'historyRetention',
  );
  const historyMaxAgeMs = positiveOrInfinity(
    'historyRetention.maxAgeMs',
    historyRetention.maxAgeMs ?? SQLITE_DEFAULTS.historyMaxAgeMs,
    false,
  );
  const historyMaxRowsPerProxy = positiveOrInfinity(
    'historyRetention.maxRowsPerProxy',
    historyRetention.maxRowsPerProxy ?? SQLITE_DEFAULTS.historyMaxRowsPerProxy,
    true,
  );
  const policy = resolveHealthPolicy(healthPolicy, 'healthPolicy');
  assertIntegerOption('commitDelayMs', commitDelayMs, 0, 60_000);
  assertIntegerOption('maxBatch', maxBatch, 1, 1_000_000);
  assertIntegerOption('accessFlushMs', accessFlushMs, 1, 3_600_000);

  // Interpretation.
  return {
    path,
    role,
    maxEntries,
    durability,
    busyTimeoutMs,
    timeoutMs,
    changeLogRows,
    name,
    historyMaxAgeMs,
    historyMaxRowsPerProxy,
    healthPolicy: policy,
    explicitHealthPolicy: healthPolicy !== undefined,
    commitDelayMs,
    maxBatch,
    accessFlushMs,
  };
}
