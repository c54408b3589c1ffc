import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import type { Logger } from './logger.js';
import { JsonlTier } from './tiers/jsonl/index.js';
import { MemoryTier } from './tiers/memory.js';
import { isSqliteAvailable, SqliteTier } from './tiers/sqlite/index.js';
import type { Tier } from './tiers/tier.js';

/** File name of the default store's database inside its directory. */
export const DEFAULT_DATABASE_FILE = 'proxytier.db';
/** Directory of the JSONL shards when the default store falls back to them. */
export const DEFAULT_JSONL_DIR = 'jsonl';

/**
 * Where the command-line tool keeps its store when `--dir` is not given: `$PROXYTIER_DIR`, else
 * `$XDG_DATA_HOME/proxytier`, else `~/.local/share/proxytier`.
 */
export function defaultStoreDir(env: Record<string, string | undefined> = process.env): string {
  const explicit = env['PROXYTIER_DIR'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = env['XDG_DATA_HOME'];
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), '.local', 'share');
  return join(base, 'proxytier');
}

/**
 * The embedded default store under `dir`: a memory tier (L1, left out when `memory` is undefined) over a SQLite database with health
 * history (`<dir>/proxytier.db`, proxywhirl's L3 layout). Where better-sqlite3 cannot be loaded,
 * the pure-JavaScript JSONL log (`<dir>/jsonl/`) takes its place, with a one-line notice; a
 * directory that already holds a JSONL store and no database keeps using the JSONL store.
 */
export async function defaultTiers(
  dir: string,
  logger: Logger,
  memory: { maxEntries: number } | undefined,
): Promise<Tier[]> {
  const front = memory === undefined ? [] : [new MemoryTier({ maxEntries: memory.maxEntries })];
  const jsonlDir = join(dir, DEFAULT_JSONL_DIR);
  const databasePath = join(dir, DEFAULT_DATABASE_FILE);
  // A store keeps the engine it was created with: one made without SQLite stays a JSONL log even
  // where better-sqlite3 loads later, rather than being hidden behind a new, empty database.
  if (existsSync(jsonlDir) && !existsSync(databasePath)) {
    return [...front, new JsonlTier({ dir: jsonlDir })];
  }
  if (await isSqliteAvailable()) {
    return [...front, new SqliteTier({ path: databasePath, role: 'l3' })];
  }
  logger.info(
    `better-sqlite3 is not available, so the store uses the JSONL log in ${jsonlDir} (no health history or indexed queries; run "npm install better-sqlite3" to enable them)`,
  );
  return [...front, new JsonlTier({ dir: jsonlDir })];
}
