// The on-disk schema: proxywhirl's tables exactly as its `tiers.py` creates them (so a file made
// here is the file proxywhirl would have made, and proxywhirl's `SELECT *` read by position
// still works), plus proxytier's own side tables and indexes, which proxywhirl never reads.
import { CorruptionError } from '../../errors.js';
import { CHANGES_DDL } from './change-log.js';
import { KEY_CHECKS_DDL } from './key-checks.js';
import type { Database } from './driver.js';

/** Which proxywhirl store the tier is: `l2` = `DiskCacheTier`, `l3` = `SQLiteCacheTier`. */
export type SqliteRole = 'l2' | 'l3';

/** The columns of proxywhirl's `l2_cache` (13), in its order. */
export const L2_COLUMNS = [
  'key',
  'proxy_url',
  'username_encrypted',
  'password_encrypted',
  'source',
  'fetch_time',
  'last_accessed',
  'access_count',
  'ttl_seconds',
  'expires_at',
  'health_status',
  'failure_count',
  'evicted_from_l1',
] as const;

/**
 * The health columns proxywhirl added to `cache_entries` (its "Feature 006"), in the order its
 * migration adds them. In the l2 role proxytier keeps the first eight in a side table.
 */
export const HEALTH_COLUMNS = [
  ['last_health_check', 'REAL'],
  ['consecutive_health_failures', 'INTEGER DEFAULT 0'],
  ['consecutive_health_successes', 'INTEGER DEFAULT 0'],
  ['recovery_attempt', 'INTEGER DEFAULT 0'],
  ['next_check_time', 'REAL'],
  ['last_health_error', 'TEXT'],
  ['total_health_checks', 'INTEGER DEFAULT 0'],
  ['total_health_check_failures', 'INTEGER DEFAULT 0'],
  ['evicted_from_l1', 'INTEGER DEFAULT 0'],
] as const;

/** The columns of proxywhirl's `cache_entries` (23), in its order. */
export const L3_COLUMNS = [
  'key',
  'proxy_url',
  'username_encrypted',
  'password_encrypted',
  'source',
  'fetch_time',
  'last_accessed',
  'access_count',
  'ttl_seconds',
  'expires_at',
  'health_status',
  'failure_count',
  'created_at',
  'updated_at',
  ...HEALTH_COLUMNS.map(([name]) => name),
] as const;

/** The columns of proxywhirl's `health_history`. */
export const HISTORY_COLUMNS = [
  'id',
  'proxy_key',
  'check_time',
  'status',
  'response_time_ms',
  'error_message',
  'check_url',
] as const;

/** The entry fields every read selects, under these names, in both roles. */
export const ENTRY_FIELDS = [
  'key',
  'proxy_url',
  'username_encrypted',
  'password_encrypted',
  'source',
  'fetch_time',
  'last_accessed',
  'access_count',
  'ttl_seconds',
  'expires_at',
  'health_status',
  'failure_count',
  'evicted_from_l1',
  'last_health_check',
  'consecutive_health_failures',
  'consecutive_health_successes',
  'recovery_attempt',
  'next_check_time',
  'last_health_error',
  'total_health_checks',
  'total_health_check_failures',
] as const;

/** The health fields the l2 role keeps in its side table `proxytier_l2_health`. */
export const L2_SIDE_COLUMNS = ENTRY_FIELDS.slice(13);

/** Name of the entries table of each role. */
export function entriesTable(role: SqliteRole): 'l2_cache' | 'cache_entries' {
  return role === 'l2' ? 'l2_cache' : 'cache_entries';
}

// proxywhirl's DDL, verbatim apart from whitespace.
const L2_TABLE = `CREATE TABLE IF NOT EXISTS l2_cache (
  key TEXT PRIMARY KEY,
  proxy_url TEXT NOT NULL,
  username_encrypted BLOB,
  password_encrypted BLOB,
  source TEXT NOT NULL,
  fetch_time REAL NOT NULL,
  last_accessed REAL NOT NULL,
  access_count INTEGER DEFAULT 0,
  ttl_seconds INTEGER NOT NULL,
  expires_at REAL NOT NULL,
  health_status TEXT DEFAULT 'unknown',
  failure_count INTEGER DEFAULT 0,
  evicted_from_l1 INTEGER DEFAULT 0
)`;

const L3_TABLE = `CREATE TABLE IF NOT EXISTS cache_entries (
  key TEXT PRIMARY KEY,
  proxy_url TEXT NOT NULL,
  username_encrypted BLOB,
  password_encrypted BLOB,
  source TEXT NOT NULL,
  fetch_time REAL NOT NULL,
  last_accessed REAL NOT NULL,
  access_count INTEGER DEFAULT 0,
  ttl_seconds INTEGER NOT NULL,
  expires_at REAL NOT NULL,
  health_status TEXT DEFAULT 'unknown',
  failure_count INTEGER DEFAULT 0,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL,
  last_health_check REAL,
  consecutive_health_failures INTEGER DEFAULT 0,
  consecutive_health_successes INTEGER DEFAULT 0,
  recovery_attempt INTEGER DEFAULT 0,
  next_check_time REAL,
  last_health_error TEXT,
  total_health_checks INTEGER DEFAULT 0,
  total_health_check_failures INTEGER DEFAULT 0,
  evicted_from_l1 INTEGER DEFAULT 0
)`;

const HISTORY_TABLE = `CREATE TABLE IF NOT EXISTS health_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  proxy_key TEXT NOT NULL,
  check_time REAL NOT NULL,
  status TEXT NOT NULL,
  response_time_ms REAL,
  error_message TEXT,
  check_url TEXT NOT NULL,
  FOREIGN KEY (proxy_key) REFERENCES cache_entries(key) ON DELETE CASCADE
)`;

/**
 * proxytier's additions to the l2 store: the health fields `l2_cache` has no columns for (so the
 * l2 role keeps every field of an entry), and an index for LRU eviction by `last_accessed`.
 */
const L2_EXTRAS = [
  `CREATE TABLE IF NOT EXISTS proxytier_l2_health (
    key TEXT PRIMARY KEY REFERENCES l2_cache(key) ON DELETE CASCADE,
    last_health_check REAL,
    consecutive_health_failures INTEGER NOT NULL DEFAULT 0,
    consecutive_health_successes INTEGER NOT NULL DEFAULT 0,
    recovery_attempt INTEGER NOT NULL DEFAULT 0,
    next_check_time REAL,
    last_health_error TEXT,
    total_health_checks INTEGER NOT NULL DEFAULT 0,
    total_health_check_failures INTEGER NOT NULL DEFAULT 0
  )`,
  // proxywhirl writes with INSERT OR REPLACE and deletes on connections without foreign keys
  // (Python's sqlite3 leaves them off), so the cascade above does not run for its writes: a new
  // proxy under an old key would inherit the old one's health. Triggers run on every connection.
  // An insert is a new row (proxytier's own writes are UPSERTs, which fire update triggers).
  `CREATE TRIGGER IF NOT EXISTS proxytier_l2_health_reset AFTER INSERT ON l2_cache
    BEGIN DELETE FROM proxytier_l2_health WHERE key = NEW.key; END`,
  `CREATE TRIGGER IF NOT EXISTS proxytier_l2_health_gone AFTER DELETE ON l2_cache
    BEGIN DELETE FROM proxytier_l2_health WHERE key = OLD.key; END`,
  'CREATE INDEX IF NOT EXISTS idx_l2_expires_at ON l2_cache(expires_at)',
  'CREATE INDEX IF NOT EXISTS idx_l2_source ON l2_cache(source)',
  'CREATE INDEX IF NOT EXISTS proxytier_l2_last_accessed ON l2_cache(last_accessed)',
];

/** Name of the l3 side table of per-proxy health aggregates. */
export const STATS_TABLE = 'proxytier_health_stats';

/**
 * proxywhirl's indexes, then proxytier's: `(source, health_status)` for the common query,
 * `next_check_time` for `dueForCheck`, `last_health_check` for ordering, `(proxy_key,
 * check_time)` for per-proxy history and retention, and the aggregates side table with its own
 * indexes for `orderBy: 'responseTime' | 'successRate'`.
 */
const L3_EXTRAS = [
  'CREATE INDEX IF NOT EXISTS idx_expires_at ON cache_entries(expires_at)',
  'CREATE INDEX IF NOT EXISTS idx_source ON cache_entries(source)',
  'CREATE INDEX IF NOT EXISTS idx_health_status ON cache_entries(health_status)',
  'CREATE INDEX IF NOT EXISTS idx_last_accessed ON cache_entries(last_accessed)',
  'CREATE INDEX IF NOT EXISTS idx_health_history_proxy ON health_history(proxy_key)',
  'CREATE INDEX IF NOT EXISTS idx_health_history_time ON health_history(check_time)',
  'CREATE INDEX IF NOT EXISTS proxytier_source_health ON cache_entries(source, health_status)',
  'CREATE INDEX IF NOT EXISTS proxytier_next_check ON cache_entries(next_check_time)',
  'CREATE INDEX IF NOT EXISTS proxytier_last_health_check ON cache_entries(last_health_check)',
  'CREATE INDEX IF NOT EXISTS proxytier_history_key_time ON health_history(proxy_key, check_time)',
];

const STATS_DDL = [
  `CREATE TABLE IF NOT EXISTS ${STATS_TABLE} (
    key TEXT PRIMARY KEY REFERENCES cache_entries(key) ON DELETE CASCADE,
    window_checks INTEGER NOT NULL,
    mean_response_ms REAL,
    success_rate REAL NOT NULL
  )`,
  // Unknown response times sort after known ones among equal success rates.
  `CREATE INDEX IF NOT EXISTS proxytier_stats_success ON ${STATS_TABLE}(success_rate DESC, ifnull(mean_response_ms, 1e308))`,
  `CREATE INDEX IF NOT EXISTS proxytier_stats_response ON ${STATS_TABLE}(mean_response_ms)`,
];

/**
 * How many of a proxy's most recent checks its aggregates (mean response time, success rate)
 * cover.
 */
export const HEALTH_STATS_WINDOW = 20;

/**
 * Recomputes one proxy's aggregates from its last {@link HEALTH_STATS_WINDOW} history rows (bind
 * the key twice). The `WHERE true` keeps SQLite's parser from reading `ON CONFLICT` as a join constraint.
 */
export const STATS_UPSERT = `INSERT INTO ${STATS_TABLE} (key, window_checks, mean_response_ms, success_rate)
  SELECT ?, count(*), avg(response_time_ms), avg(status = 'healthy')
  FROM (SELECT status, response_time_ms FROM health_history WHERE proxy_key = ?
        ORDER BY check_time DESC, id DESC LIMIT ${HEALTH_STATS_WINDOW})
  WHERE true
  ON CONFLICT(key) DO UPDATE SET window_checks = excluded.window_checks,
    mean_response_ms = excluded.mean_response_ms, success_rate = excluded.success_rate`;

/**
 * Creates what is missing and migrates what is old, in one write transaction (so processes that
 * open a new file at once do not race): proxywhirl's tables and indexes, the health columns an
 * older `cache_entries` lacks (added in proxywhirl's order, so its positional reads still line
 * up), and proxytier's side tables. Throws `CorruptionError` when a table exists without the
 * columns proxytier needs.
 */
export function ensureSchema(db: Database, role: SqliteRole, tier: string, path: string): void {
  db.prepare('BEGIN IMMEDIATE').run();
  try {
    if (role === 'l2') {
      db.prepare(L2_TABLE).run();
      requireColumns(db, 'l2_cache', L2_COLUMNS, tier, path);
      for (const sql of L2_EXTRAS) db.prepare(sql).run();
    } else {
      db.prepare(L3_TABLE).run();
      const existing = columnsOf(db, 'cache_entries');
      for (const [name, type] of HEALTH_COLUMNS) {
        if (!existing.has(name)) {
          db.prepare(`ALTER TABLE cache_entries ADD COLUMN ${name} ${type}`).run();
        }
      }
      requireColumns(db, 'cache_entries', L3_COLUMNS, tier, path);
      db.prepare(HISTORY_TABLE).run();
      requireColumns(db, 'health_history', HISTORY_COLUMNS, tier, path);
      for (const sql of L3_EXTRAS) db.prepare(sql).run();
      const hadStats = columnsOf(db, STATS_TABLE).size > 0;
      for (const sql of STATS_DDL) db.prepare(sql).run();
      if (!hadStats) backfillStats(db);
    }
    db.prepare(CHANGES_DDL).run();
    db.prepare(KEY_CHECKS_DDL).run();
    db.prepare('COMMIT').run();
  } catch (error) {
    if (db.inTransaction) db.prepare('ROLLBACK').run();
    throw error;
  }
}

/** Aggregates for proxies whose history was written before proxytier's side table existed. */
function backfillStats(db: Database): void {
  const keys = db
    .prepare(
      'SELECT DISTINCT proxy_key FROM health_history WHERE proxy_key IN (SELECT key FROM cache_entries)',
    )
    .pluck()
    .all() as string[];
  const upsert = db.prepare(STATS_UPSERT);
  for (const key of keys) upsert.run(key, key);
}

function columnsOf(db: Database, table: string): Set<string> {
  const rows = db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(table) as string[];
  return new Set(rows);
}

function requireColumns(
  db: Database,
  table: string,
  required: readonly string[],
  tier: string,
  path: string,
): void {
  const existing = columnsOf(db, table);
  const missing = required.filter((name) => !existing.has(name));
  if (missing.length > 0) {
    throw new CorruptionError(
      tier,
      `tier "${tier}": table ${table} in ${path} lacks the column(s) ${missing.join(', ')}; it is not a proxywhirl or proxytier cache table`,
    );
  }
}
