// Loading better-sqlite3, an optional dependency: it is imported only when a SQLite tier opens,
// so a program that never uses the tier runs without it, and one that does gets a coded error
// saying how to install it instead of a module-resolution stack trace.
import type BetterSqlite3 from 'better-sqlite3';
import {
  CorruptionError,
  ProxyTierError,
  SqliteUnavailableError,
  TierBusyError,
  TierError,
} from '../../errors.js';

export type Database = BetterSqlite3.Database;
export type DatabaseConstructor = typeof BetterSqlite3;
export type Statement<P extends unknown[] = unknown[], R = unknown> = BetterSqlite3.Statement<P, R>;

/** How the engine is imported; tests replace it to simulate a missing or broken install. */
export type DriverImporter = () => Promise<unknown>;

const defaultImporter: DriverImporter = () => import('better-sqlite3');

let cached: Promise<DatabaseConstructor> | undefined;

const HOW_TO_FIX =
  'the sqlite tier needs the optional dependency better-sqlite3: run `npm install better-sqlite3`. ' +
  'It builds a native addon; when no prebuilt binary matches this platform and Node.js ' +
  `${process.version}, the install compiles it and needs python3, make and a C++ compiler ` +
  '(build-essential on Debian/Ubuntu, Xcode command line tools on macOS). ' +
  'Without it, use the jsonl tier, which needs no native code.';

/**
 * Imports better-sqlite3 and checks that its native addon loads (by opening an in-memory
 * database). Resolves the `Database` constructor; rejects with `SqliteUnavailableError`
 * (`E_SQLITE_UNAVAILABLE`) whose message says how to fix the install. The outcome of the default
 * importer is cached for the life of the process.
 */
export function loadDriver(
  tierName = 'sqlite',
  importer: DriverImporter = defaultImporter,
): Promise<DatabaseConstructor> {
  if (importer !== defaultImporter) return tryLoad(tierName, importer);
  cached ??= tryLoad(tierName, importer);
  return cached;
}

async function tryLoad(tierName: string, importer: DriverImporter): Promise<DatabaseConstructor> {
  let constructor: DatabaseConstructor;
  try {
    const module = (await importer()) as { default?: unknown };
    const candidate = module.default ?? module;
    if (typeof candidate !== 'function') {
      throw new TypeError('the module does not export a Database constructor');
    }
    constructor = candidate as DatabaseConstructor;
    // The addon is loaded on the first construction: prove it works here, once.
    new constructor(':memory:').close();
  } catch (error) {
    throw new SqliteUnavailableError(
      tierName,
      `better-sqlite3 could not be loaded (${reason(error)}); ${HOW_TO_FIX}`,
      { cause: error },
    );
  }
  return constructor;
}

/**
 * True when better-sqlite3 is installed and its native addon loads in this process, so a
 * `SqliteTier` can open. Never rejects. Used by the stack to pick a default persistent store.
 */
export async function isSqliteAvailable(): Promise<boolean> {
  try {
    await loadDriver();
    return true;
  } catch {
    return false;
  }
}

function reason(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const first = error.message.split('\n')[0] ?? error.message;
    return typeof code === 'string' ? `${code}: ${first}` : first;
  }
  return String(error);
}

/** The SQLite result code of an engine error (`SQLITE_BUSY`, `SQLITE_CORRUPT`...), if any. */
export function sqliteCode(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** True for the engine's "this file is damaged or is not a database" codes. */
export function isCorruptionCode(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

/**
 * True for the engine's "another connection holds the lock" codes (`SQLITE_BUSY`,
 * `SQLITE_BUSY_SNAPSHOT`, `SQLITE_LOCKED`...): transient, the same call may succeed later.
 */
export function isBusyCode(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/**
 * Turns whatever the engine threw into a coded proxytier error: `CorruptionError` (`E_CORRUPT`)
 * for a damaged file, `TierBusyError` (`E_TIER_BUSY`, which the stack retries without blocking)
 * when another connection held the lock past the short busy wait, `TierError` (`E_TIER`) otherwise, with the engine's code in the message and
 * the engine's error as `cause`. proxytier's own errors pass through unchanged.
 */
export function toTierError(tier: string, path: string, doing: string, error: unknown): Error {
  if (error instanceof ProxyTierError) return error;
  const code = sqliteCode(error);
  const message = error instanceof Error ? error.message : String(error);
  if (isCorruptionCode(code)) {
    return new CorruptionError(
      tier,
      `tier "${tier}": the database ${path} is damaged or is not a SQLite database (${code}: ${message}) while ${doing}`,
      { cause: error },
    );
  }
  if (isBusyCode(code)) {
    return new TierBusyError(
      tier,
      `tier "${tier}": ${doing} on ${path} found the database locked by another connection (${code}: ${message}); retry later`,
      { cause: error },
    );
  }
  return new TierError(
    tier,
    `tier "${tier}": ${doing} failed on ${path} (${code ?? 'error'}: ${message})`,
    { cause: error },
  );
}
