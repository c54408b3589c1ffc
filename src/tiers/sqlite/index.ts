// The SQLite tier: proxywhirl's l2_cache and cache_entries + health_history layouts on
// better-sqlite3 (an optional dependency, loaded when a tier opens).
export { SqliteTier, type SqliteCompactReport } from './tier.js';
export type { WriteStats } from './group-commit.js';
export { SQLITE_DEFAULTS, type HistoryRetention, type SqliteTierOptions } from './options.js';
export { isSqliteAvailable } from './driver.js';
export type { Durability } from './connection.js';
export type { SqliteRole } from './schema.js';
export { HEALTH_STATS_WINDOW } from './schema.js';
export type { JsonlImportProblem, JsonlImportResult } from './jsonl-import.js';
