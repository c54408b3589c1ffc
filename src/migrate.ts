// Migration of a proxywhirl cache directory into a proxytier cache: its JSONL shards, its L2
// database (`l2_cache`) and its L3 database (`cache_entries` + `health_history`).
import { assertOptionsObject, rejectUnknownOptions, type OptionNames } from './option-check.js';
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Keyring } from './crypto/keyring.js';
import { InvalidOptionError } from './errors.js';
import {
  importRecords,
  parseProxyRecords,
  type ImportItem,
  type ImportSummary,
} from './io/import.js';
import { silentLogger } from './logger.js';
import type { ProxyCache } from './proxy-cache.js';
import { HEALTH_FIELDS, type ProxyEntry, type ProxyEntryInput } from './record/entry.js';
import { isSqliteAvailable, loadDriver } from './tiers/sqlite/driver.js';
import { SqliteTier } from './tiers/sqlite/index.js';

/** What one source file (or shard directory) of a proxywhirl cache contributed. */
export interface MigrationSource {
  /** The shard directory or database file. */
  path: string;
  kind: 'jsonl' | 'l2-sqlite' | 'l3-sqlite';
  entries: { loaded: number; updated: number; refreshed: number; skipped: number; failed: number };
  /** Health-history rows (L3 databases only). */
  history: { imported: number; skipped: number } | undefined;
  /** Reasons of the records that failed, with their line (JSONL) or row number. */
  failures: { line: number; reason: string }[];
}

/** What `migrateProxywhirl` did, per source. */
export interface MigrationReport {
  sources: MigrationSource[];
  /** Files that look like sources but could not be read, and why (no SQLite engine, say). */
  unread: { path: string; reason: string }[];
}

/** Options of `migrateProxywhirl`. */
export interface MigrateOptions {
  /** The proxywhirl key (with its previous keys) that decrypts the stored credentials. */
  keyring: Keyring;
  /** Called as records are processed, with the running count. */
  onProgress?: (done: number) => void;
}

const MIGRATE_OPTION_NAMES: OptionNames<MigrateOptions> = Object.freeze({
  keyring: true,
  onProgress: true,
});

/**
 * Imports a proxywhirl cache directory into `cache`: every entry of its JSONL shards
 * (`shard_NN.jsonl`), of its L2 database (table `l2_cache`) and of its L3 database (table
 * `cache_entries`, with its `health_history` rows when the cache keeps history). Credentials are
 * decrypted with `options.keyring` and re-encrypted under the cache's own key. The directory
 * and its immediate subdirectories are searched. Running it twice changes nothing the second
 * time: identical entries are skipped and history rows already present are not added again.
 * The source files are never written (databases are read from a temporary copy).
 */
export async function migrateProxywhirl(
  cache: ProxyCache,
  sourceDir: string,
  options: MigrateOptions,
): Promise<MigrationReport> {
  assertOptionsObject('migrateProxywhirl', options, 'with "keyring"');
  rejectUnknownOptions('migrateProxywhirl', options, MIGRATE_OPTION_NAMES);
  // Even a read-only open of a database in WAL mode writes beside it (its -shm file), so every
  // database is read from a private copy: the source directory is never written.
  const scratch = await mkdtemp(join(tmpdir(), 'proxytier-migrate-'));
  try {
    const unread: MigrationReport['unread'] = [];
    const found = await findSources(sourceDir, scratch, unread);
    if (found.length === 0 && unread.length === 0) {
      throw new InvalidOptionError(
        `no proxywhirl cache files in ${sourceDir}: expected shard_NN.jsonl files or SQLite databases with an l2_cache or cache_entries table`,
      );
    }
    let done = 0;
    const onProgress = options.onProgress;
    const progress = onProgress === undefined ? undefined : () => onProgress((done += 1));
    const sources: MigrationSource[] = [];
    for (const source of found) {
      if (source.kind === 'jsonl') {
        sources.push(await migrateShards(cache, source.path, options.keyring, progress));
      } else {
        sources.push(await migrateDatabase(cache, source, options.keyring, progress));
      }
    }
    return { sources, unread };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

type Found =
  { path: string; kind: 'jsonl' } | { path: string; kind: 'l2-sqlite' | 'l3-sqlite'; copy: string };

async function findSources(
  dir: string,
  scratch: string,
  unread: MigrationReport['unread'],
): Promise<Found[]> {
  const sqlite = await isSqliteAvailable();
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) {
    throw new InvalidOptionError(`${dir} is not a directory`);
  }
  const found: Found[] = [];
  const visit = async (folder: string, depth: number): Promise<void> => {
    const names = (await readdir(folder, { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    if (names.some((entry) => entry.isFile() && /^shard_\d+\.jsonl$/.test(entry.name))) {
      found.push({ path: folder, kind: 'jsonl' });
    }
    for (const entry of names) {
      const path = join(folder, entry.name);
      if (entry.isFile() && /\.(db|sqlite3?)$/.test(entry.name) && !sqlite) {
        // The JSONL shards can still be migrated without the SQLite engine.
        unread.push({ path, reason: 'better-sqlite3 is not available to read this database' });
      } else if (entry.isFile() && /\.(db|sqlite3?)$/.test(entry.name)) {
        const copy = join(scratch, `${found.length}-${entry.name}`);
        await copyFile(path, copy);
        for (const suffix of ['-wal', '-shm']) {
          await copyFile(`${path}${suffix}`, `${copy}${suffix}`).catch(() => undefined);
        }
        const kind = await databaseKind(copy);
        if (kind !== undefined) found.push({ path, kind, copy });
      } else if (entry.isDirectory() && depth > 0) {
        await visit(path, depth - 1);
      }
    }
  };
  await visit(dir, 1);
  // The richest source first: L3 has every field, L2 lacks the health columns. A poorer copy of
  // an entry already imported then compares equal on the fields it has and is skipped, instead
  // of resetting the health fields it does not carry.
  const rank = { 'l3-sqlite': 0, 'l2-sqlite': 1, jsonl: 2 } as const;
  return found.sort((a, b) => rank[a.kind] - rank[b.kind]);
}

async function databaseKind(path: string): Promise<'l2-sqlite' | 'l3-sqlite' | undefined> {
  const Database = await loadDriver('migrate');
  let db: InstanceType<typeof Database> | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const tables = new Set(
      (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
          name: string;
        }[]
      ).map((row) => row.name),
    );
    if (tables.has('cache_entries')) return 'l3-sqlite';
    if (tables.has('l2_cache')) return 'l2-sqlite';
    return undefined;
  } catch {
    // Not a SQLite database, or not one of proxywhirl's: not a source.
    return undefined;
  } finally {
    db?.close();
  }
}

async function migrateShards(
  cache: ProxyCache,
  dir: string,
  keyring: Keyring,
  onProgress: (() => void) | undefined,
): Promise<MigrationSource> {
  const shards = (await readdir(dir)).filter((name) => /^shard_\d+\.jsonl$/.test(name)).sort();
  const total = { loaded: 0, updated: 0, refreshed: 0, skipped: 0, failed: 0 };
  const failures: { line: number; reason: string }[] = [];
  for (const shard of shards) {
    const items = parseProxyRecords(createReadStream(join(dir, shard)), {
      format: 'jsonl',
      keyring,
    });
    const summary = await importRecords(cache, items, importOptions(onProgress));
    addSummary(total, summary);
    for (const failure of summary.failures) {
      failures.push({ line: failure.line, reason: `${shard} ${failure.reason}` });
    }
  }
  return { path: dir, kind: 'jsonl', entries: total, history: undefined, failures };
}

async function migrateDatabase(
  cache: ProxyCache,
  { path, kind, copy }: Extract<Found, { copy: string }>,
  keyring: Keyring,
  onProgress: (() => void) | undefined,
): Promise<MigrationSource> {
  {
    const source = new SqliteTier({ path: copy, role: kind === 'l2-sqlite' ? 'l2' : 'l3' });
    await source.open({
      cipher: keyring,
      clock: { now: Date.now, every: () => ({ cancel() {} }), after: () => ({ cancel() {} }) },
      logger: silentLogger,
      onEvict: () => undefined,
    });
    try {
      const summary = await importRecords(
        cache,
        rowsOf(source.entries(), kind === 'l2-sqlite'),
        importOptions(onProgress),
      );
      // A cache without a history tier (the JSONL fallback) takes the entries only.
      const history =
        kind === 'l3-sqlite' && cache.keepsHealthHistory
          ? await cache.importHealthHistory(source.allHealthHistory())
          : undefined;
      return {
        path,
        kind,
        entries: pickCounts(summary),
        history,
        failures: summary.failures.map((failure) => ({
          line: failure.line,
          reason: failure.reason,
        })),
      };
    } finally {
      await source.close();
    }
  }
}

async function* rowsOf(
  entries: AsyncIterable<ProxyEntry>,
  withoutHealth: boolean,
): AsyncIterable<ImportItem> {
  let row = 0;
  for await (const entry of entries) {
    row += 1;
    const input: Partial<ProxyEntry> = { ...entry };
    // Defaults the tier filled in are not data: leave them out so they are not compared.
    if (withoutHealth) for (const field of HEALTH_FIELDS) delete input[field];
    yield { line: row, input: input as ProxyEntryInput };
  }
}

/** A migration keeps the entries' own times: they are the proxies' history, not a new list. */
function importOptions(onProgress: (() => void) | undefined) {
  return onProgress === undefined
    ? { keepTimes: true }
    : { keepTimes: true, onProgress: () => onProgress() };
}

function pickCounts(summary: ImportSummary): MigrationSource['entries'] {
  return {
    loaded: summary.loaded,
    updated: summary.updated,
    refreshed: summary.refreshed,
    skipped: summary.skipped,
    failed: summary.failed,
  };
}

function addSummary(total: MigrationSource['entries'], summary: ImportSummary): void {
  total.loaded += summary.loaded;
  total.updated += summary.updated;
  total.refreshed += summary.refreshed;
  total.skipped += summary.skipped;
  total.failed += summary.failed;
}
