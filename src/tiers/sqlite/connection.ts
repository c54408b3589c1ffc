// One connection per process and database file. Tiers that open the same file in one process
// share it (and its in-memory row counts), so they never wait on each other's locks; SQLite's
// own locking (WAL mode, busy_timeout) coordinates with other processes.
import { closeSync, mkdirSync, openSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from '../../logger.js';
import { loadDriver, toTierError, type Database, type Statement } from './driver.js';

/** `normal`: synchronous=NORMAL (survives a process crash); `full`: synchronous=FULL (power loss). */
export type Durability = 'normal' | 'full';

/** A database connection shared by the tiers of one process that opened the same file. */
export class SharedConnection {
  readonly db: Database;
  /** The file's real path (symbolic links resolved). */
  readonly path: string;
  refs = 0;
  durability: Durability;
  busyTimeoutMs: number;
  /** Row count per table, kept from changes; `undefined` until counted or after another process wrote. */
  readonly counts = new Map<string, number | undefined>();
  /**
   * Commits that logged changes, by any tier on this connection: `data_version` does not move
   * for the connection's own commits, so tiers sharing it see each other's changes through this.
   */
  localChanges = 0;
  #dataVersion: number;
  readonly #dataVersionStmt: Statement<[], number>;

  constructor(db: Database, path: string, durability: Durability, busyTimeoutMs: number) {
    this.db = db;
    this.path = path;
    this.durability = durability;
    this.busyTimeoutMs = busyTimeoutMs;
    this.#dataVersionStmt = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.#dataVersion = this.#dataVersionStmt.get() as number;
  }

  /** SQLite's `data_version`: changes when another connection has committed. */
  dataVersion(): number {
    return this.#dataVersionStmt.get() as number;
  }

  /**
   * Forgets the counts when another connection (another process) committed since the last call:
   * SQLite's `data_version` changes only for other connections' commits, so in a single process
   * the counts kept from our own changes stay exact without any `COUNT(*)`.
   */
  checkForeignWrites(): void {
    const version = this.dataVersion();
    if (version !== this.#dataVersion) {
      this.#dataVersion = version;
      for (const table of this.counts.keys()) this.counts.set(table, undefined);
    }
  }
}

const registry = new Map<string, SharedConnection>();

/** What `acquireConnection` needs to know. */
export interface AcquireOptions {
  path: string;
  durability: Durability;
  busyTimeoutMs: number;
  tier: string;
  logger: Logger;
}

/**
 * Opens (or shares) the connection to `path`: creates its directory (0700) and file (0600) when
 * missing, then sets `busy_timeout`, `journal_mode=WAL`, `synchronous` and `foreign_keys`
 * explicitly. When two tiers ask for different settings on one file, the stronger wins
 * (`full` over `normal`, the longer busy timeout).
 */
export async function acquireConnection(options: AcquireOptions): Promise<SharedConnection> {
  const Database = await loadDriver(options.tier);
  const { tier, durability, busyTimeoutMs, logger } = options;
  const requested = resolve(options.path);
  let real: string;
  try {
    mkdirSync(dirname(requested), { recursive: true, mode: 0o700 });
    // Created here rather than by SQLite, so the file (and the -wal and -shm files SQLite gives
    // the same mode) is 0600 whatever the umask.
    closeSync(openSync(requested, 'a', 0o600));
    real = realpathSync(requested);
  } catch (error) {
    throw toTierError(tier, requested, 'creating the database file', error);
  }
  let shared = registry.get(real);
  if (shared === undefined) {
    let db: Database | undefined;
    try {
      const opened = new Database(real, { timeout: busyTimeoutMs });
      db = opened;
      const mode = String(opened.pragma('journal_mode = WAL', { simple: true }));
      if (mode.toLowerCase() !== 'wal') {
        logger.warn(
          `tier "${tier}": ${real} could not be switched to WAL mode (it is in ${mode} mode); concurrent readers will wait for writers`,
        );
      }
      opened.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
      opened.pragma('foreign_keys = ON');
      shared = new SharedConnection(opened, real, durability, busyTimeoutMs);
    } catch (error) {
      try {
        db?.close();
      } catch {
        // The open already failed; that error is the one to report.
      }
      throw toTierError(tier, real, 'opening the database', error);
    }
    registry.set(real, shared);
  } else {
    try {
      if (durability === 'full' && shared.durability !== 'full') {
        shared.db.pragma('synchronous = FULL');
        shared.durability = 'full';
      }
      if (busyTimeoutMs > shared.busyTimeoutMs) {
        shared.db.pragma(`busy_timeout = ${busyTimeoutMs}`);
        shared.busyTimeoutMs = busyTimeoutMs;
      }
    } catch (error) {
      throw toTierError(tier, real, 'configuring the database', error);
    }
  }
  shared.refs += 1;
  return shared;
}

/** Drops one tier's hold on the connection; the last one closes it. */
export function releaseConnection(shared: SharedConnection): void {
  shared.refs -= 1;
  if (shared.refs > 0) return;
  registry.delete(shared.path);
  if (shared.db.open) shared.db.close();
}
