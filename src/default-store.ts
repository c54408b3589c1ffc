import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { createStderrLogger, type Logger } from './logger.js';
import { DEFAULTS, PROXY_CACHE_OPTION_NAMES, type ProxyCacheOptions } from './options.js';
import { assertOptionsObject, rejectUnknownOptions, type OptionNames } from './option-check.js';
import { ProxyCache } from './proxy-cache.js';
import { InvalidOptionError } from './errors.js';
import { JsonlTier } from './tiers/jsonl/index.js';
import { MemoryTier } from './tiers/memory.js';
import { isSqliteAvailable, SqliteTier } from './tiers/sqlite/index.js';
import type { Tier } from './tiers/tier.js';

/** File name of the default store's database inside its directory. */
export const DEFAULT_DATABASE_FILE = 'proxytier.db';
/** Directory of the JSONL shards when the default store falls back to them. */
export const DEFAULT_JSONL_DIR = 'jsonl';

const DEFAULT_MAX_ENTRIES = DEFAULTS.maxEntries;

/** True when `dir` holds a default store: its database, or the JSONL log that stands in for it. */
export function hasDefaultStore(dir: string): boolean {
  return existsSync(join(dir, DEFAULT_DATABASE_FILE)) || existsSync(join(dir, DEFAULT_JSONL_DIR));
}

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

/** Options of `openDefaultStore`: the cache's options, less `tiers`, plus where and how to store. */
export interface DefaultStoreOptions extends Omit<ProxyCacheOptions, 'tiers'> {
  /** Directory of the store (created 0700 when missing). */
  dir: string;
  /**
   * Whether the store has its memory tier (L1) of `maxEntries` entries. Default true. A process
   * that runs once and exits (a command-line tool, a batch job) may leave it out: it would only
   * add work, and mark what it pushes out as `evictedFromL1` in the store.
   */
  memoryTier?: boolean;
}

/** Every option of `openDefaultStore`: the cache's, less `tiers`, plus its own. */
const DEFAULT_STORE_OPTION_NAMES: OptionNames<DefaultStoreOptions> = (() => {
  const { tiers: _builtHere, ...cacheOptions } = PROXY_CACHE_OPTION_NAMES;
  return Object.freeze({ ...cacheOptions, dir: true, memoryTier: true });
})();

/**
 * Opens the embedded persistent store under `dir`: a memory tier (L1) over SQLite with health
 * history (`<dir>/proxytier.db`), or over the JSONL log (`<dir>/jsonl/`) where better-sqlite3
 * cannot be loaded; the key is found as `ProxyCache.open` finds it.
 *
 * @example
 * const cache = await openDefaultStore({ dir: './proxy-store', maxEntries: 50_000 });
 */
export async function openDefaultStore(options: DefaultStoreOptions): Promise<ProxyCache> {
  assertOptionsObject('openDefaultStore', options, 'with "dir"');
  if ('tiers' in options) {
    throw new InvalidOptionError(
      'openDefaultStore builds its own tiers; pass "tiers" to ProxyCache.open instead',
    );
  }
  rejectUnknownOptions('openDefaultStore', options, DEFAULT_STORE_OPTION_NAMES);
  const { dir, memoryTier, ...cacheOptions } = options;
  if (typeof dir !== 'string' || dir === '') {
    throw new InvalidOptionError(`"dir" must be a non-empty path, got ${String(dir)}`);
  }
  if (memoryTier !== undefined && typeof memoryTier !== 'boolean') {
    throw new InvalidOptionError(`"memoryTier" must be a boolean, got ${typeof memoryTier}`);
  }
  const maxEntries = cacheOptions.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const logger = cacheOptions.logger ?? createStderrLogger();
  const tiers = await defaultTiers(dir, logger, memoryTier === false ? undefined : { maxEntries });
  return ProxyCache.open({ ...cacheOptions, logger, tiers });
}
