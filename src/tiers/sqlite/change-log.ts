// The change feed that keeps other processes' caches coherent: every write, delete, modify and
// health check appends (key, origin) to `proxytier_changes` in the transaction that makes the
// change, so a reader sees a key in the log exactly when the change is visible. A process reads
// the rows after its cursor that other tier instances wrote. proxywhirl ignores the table.
import type { TierChanges } from '../tier.js';
import type { SharedConnection } from './connection.js';
import type { Database, Statement } from './driver.js';

/** Name of the change-log table. */
export const CHANGES_TABLE = 'proxytier_changes';

/**
 * `key` NULL marks a `clear()`. `seq` is the rowid: a new row gets the largest + 1, and pruning
 * only deletes the oldest rows (never the newest), so `seq` only grows and a cursor never sees a
 * number reused. (AUTOINCREMENT would guarantee that even if every row were deleted, at the cost
 * of a `sqlite_sequence` update per row, about 13% of a bare write.)
 */
export const CHANGES_DDL = `CREATE TABLE IF NOT EXISTS ${CHANGES_TABLE} (
  seq INTEGER PRIMARY KEY,
  key TEXT,
  origin TEXT NOT NULL
)`;

interface Bounds {
  low: number | null;
  high: number | null;
}

/** One tier instance's side of the change log: what it writes and how far it has read. */
export class ChangeLog {
  readonly #origin: string;
  readonly #keepRows: number;
  /** Logged rows between two prunes: pruning is one indexed DELETE every so many rows. */
  readonly #pruneEvery: number;
  #sincePrune = 0;
  readonly #db: Database;
  readonly #insert: Statement<[string | null, string]>;
  readonly #prune: Statement<[number]>;
  readonly #bounds: Statement<[], Bounds>;
  readonly #rows: Statement<[number, number, string], string | null>;
  #cursor: number | undefined;
  #dataVersion = -1;
  #localChanges = -1;

  constructor(db: Database, origin: string, keepRows: number) {
    this.#db = db;
    this.#origin = origin;
    this.#keepRows = keepRows;
    this.#pruneEvery = Math.max(1, Math.min(1_000, Math.ceil(keepRows / 10)));
    this.#insert = db.prepare(`INSERT INTO ${CHANGES_TABLE} (key, origin) VALUES (?, ?)`);
    this.#prune = db.prepare(
      `DELETE FROM ${CHANGES_TABLE} WHERE seq <= (SELECT max(seq) FROM ${CHANGES_TABLE}) - ?`,
    );
    // Two subqueries, so each is a single min()/max() that SQLite answers from the rowid b-tree.
    this.#bounds = db.prepare(
      `SELECT (SELECT min(seq) FROM ${CHANGES_TABLE}) AS low, (SELECT max(seq) FROM ${CHANGES_TABLE}) AS high`,
    );
    this.#rows = db
      .prepare<[number, number, string], string | null>(
        `SELECT key FROM ${CHANGES_TABLE} WHERE seq > ? AND seq <= ? AND origin != ?`,
      )
      .pluck();
  }

  /** Logs a change of `key` (`null`: every key, a `clear()`), inside the caller's transaction. */
  log(key: string | null): void {
    this.#insert.run(key, this.#origin);
  }

  /**
   * Drops the oldest rows beyond `keepRows`, when this instance has logged `count` rows since the
   * last prune. Runs inside a write transaction; `pruned` must be called once it committed.
   */
  pruneDue(count: number): boolean {
    if (this.#sincePrune + count < this.#pruneEvery) return false;
    this.#prune.run(this.#keepRows);
    return true;
  }

  /** Counts committed rows towards the next prune (0 after a prune). */
  committed(count: number, pruned: boolean): void {
    this.#sincePrune = pruned ? 0 : this.#sincePrune + count;
  }

  /** See `Tier.readChanges`. */
  read(conn: SharedConnection): TierChanges {
    // data_version moves only when another connection commits; localChanges when another tier
    // sharing this connection does. Both unchanged: nothing new, without touching the table.
    const dataVersion = conn.dataVersion();
    if (
      this.#cursor !== undefined &&
      dataVersion === this.#dataVersion &&
      conn.localChanges === this.#localChanges
    ) {
      return [];
    }
    this.#dataVersion = dataVersion;
    this.#localChanges = conn.localChanges;
    // One read transaction: the bounds and the rows come from the same snapshot.
    return this.#db.transaction((): TierChanges => {
      const { low, high } = this.#bounds.get() as Bounds;
      const cursor = this.#cursor;
      this.#cursor = high ?? 0;
      if (cursor === undefined) return [];
      // The log went back (emptied, or the file replaced): new rows may reuse seen numbers.
      if ((high ?? 0) < cursor) return 'flush';
      if (high === null || high === cursor) return [];
      // Rows after the cursor were pruned before this reader saw them: it cannot tell which.
      if (low !== null && low > cursor + 1) return 'flush';
      const keys = new Set<string>();
      for (const key of this.#rows.all(cursor, high, this.#origin)) {
        if (key === null) return 'flush';
        keys.add(key);
      }
      return [...keys];
    })();
  }
}
