import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KeyCheck } from '../../crypto/key-check.js';
import { ClosedError, InvalidOptionError, TierBusyError, TierError } from '../../errors.js';
import {
  applyHealthCheck,
  validateHealthCheck,
  type HealthPolicy,
  type TimedHealthCheck,
} from '../../health.js';
import { describe, type ProxyEntry } from '../../record/entry.js';
import type {
  EntryAccess,
  EntryChange,
  EntryPatch,
  HealthCheckInput,
  HealthCheckRecord,
  HealthTier,
  ProxyQuery,
  TierChanges,
  TierContext,
} from '../tier.js';
import { ChangeLog } from './change-log.js';
import {
  BadRowError,
  decodeRow,
  hasDefaultHealth,
  nullable,
  optionalSeconds,
  tokenBlob,
  toSeconds,
  type EntryRow,
} from './codec.js';
import { acquireConnection, releaseConnection, type SharedConnection } from './connection.js';
import { toTierError, type Statement } from './driver.js';
import { GroupCommit, type BatchRunner, type WriteStats } from './group-commit.js';
import { historyRecord, validateHistoryRow, type HistoryRow } from './history.js';
import { importJsonlShards, type JsonlImportResult } from './jsonl-import.js';
import { insertKeyCheck, readKeyChecks } from './key-checks.js';
import {
  resolveSqliteOptions,
  type ResolvedSqliteOptions,
  type SqliteTierOptions,
} from './options.js';
import { buildQuery } from './query.js';
import { normalizeQuery } from '../../query.js';
import {
  ENTRY_FIELDS,
  L2_COLUMNS,
  L2_SIDE_COLUMNS,
  L3_COLUMNS,
  STATS_UPSERT,
  ensureSchema,
  entriesTable,
  type SqliteRole,
} from './schema.js';

/** Keys read per page by `keys()` and `entries()`; no statement stays open between pages. */
const PAGE_SIZE = 500;
/** Pending access-time updates that make the tier write them without waiting for the timer. */
const MAX_PENDING_TOUCHES = 10_000;
/** Health-history inserts between two automatic retention passes. */
const PRUNE_EVERY = 256;
/** Prepared `query` statements kept (one per query shape). */
const MAX_CACHED_QUERIES = 64;

/** A read not yet written: the latest access time and how many reads. */
interface Touch {
  at: number;
  count: number;
}

/** What one write transaction changed, applied to in-memory state only once it commits. */
interface Tx {
  sizeDelta: number;
  touches: Map<string, Touch> | undefined;
  evicted: string[] | undefined;
  history: number;
  historyKeys: string[] | undefined;
  pruned: boolean;
  /** Rows this transaction added to the change log, and whether it pruned the log. */
  logged: number;
  changesPruned: boolean;
  /** Keys written by this transaction (only with `maxEntries`): eviction never picks them. */
  written: string[] | undefined;
}

/** Statements prepared once at open. */
interface Statements {
  begin: Statement;
  commit: Statement;
  rollback: Statement;
  savepoint: Statement;
  release: Statement;
  rollbackTo: Statement;
  get: Statement<[string], EntryRow>;
  exists: Statement<[string], number>;
  upsert: Statement<unknown[]>;
  sideUpsert: Statement<unknown[]> | undefined;
  sideDelete: Statement<[string]> | undefined;
  delete: Statement<[string]>;
  touch: Statement<[number, number, string]>;
  touchForward: Statement<[{ at: number; count: number; key: string }]>;
  deleteExpired: Statement<[number], string>;
  evict: Statement<[string, number], string>;
  count: Statement<[], number>;
  keysPage: Statement<[string, number], string>;
  entriesPage: Statement<[string, number], EntryRow>;
  clear: Statement<[]>;
  // L3 only.
  healthUpdate: Statement<unknown[]> | undefined;
  historyInsert: Statement<unknown[]> | undefined;
  statsUpsert: Statement<[string, string]> | undefined;
  history: Statement<[string, number, number], HistoryRow> | undefined;
  historyPage: Statement<[number, number, number], HistoryRow & { id: number }> | undefined;
  historyExists: Statement<unknown[], number> | undefined;
  pruneAge: Statement<[number]> | undefined;
  pruneRowsOf: Statement<[string, number]> | undefined;
  pruneRowsAll: Statement<[number]> | undefined;
}

const EMPTY_STATS: WriteStats = { transactions: 0, writes: 0, rejected: 0, failedTransactions: 0 };

/** What `SqliteTier.compact` did. */
export interface SqliteCompactReport {
  /** WAL frames copied into the database file. */
  checkpointedFrames: number;
  /** False when another connection's reader kept part of the WAL from being checkpointed. */
  checkpointComplete: boolean;
  /** Pages of the file before compaction, and how many of them were free. */
  pagesBefore: number;
  freePages: number;
  /** True when the file was rewritten (`VACUUM`) to give free pages back. */
  vacuumed: boolean;
  pagesAfter: number;
}

/** Methods that exist only in the L3 role: in the L2 role the instance hides them. */
const HEALTH_METHODS = [
  'recordHealthCheck',
  'healthHistory',
  'query',
  'explainQuery',
  'pruneHealthHistory',
  'allHealthHistory',
  'importHealthHistory',
] as const;

/**
 * A tier in a SQLite file, in one of proxywhirl's two layouts: `role: 'l2'` is its
 * `DiskCacheTier` (table `l2_cache`), `role: 'l3'` its `SQLiteCacheTier` (`cache_entries` and
 * `health_history`, with health checks and queries). It opens proxywhirl's files and what it
 * writes stays readable by proxywhirl (see docs/sqlite.md).
 *
 * - Reads are synchronous (`getSync`, `peekSync`, `hasSync`): better-sqlite3 is a synchronous
 *   engine and an indexed read costs microseconds.
 * - Writes are grouped: the writes issued in one turn of the event loop (or within
 *   `commitDelayMs`, up to `maxBatch`) share one transaction, and each write's promise resolves
 *   only once that transaction has committed. A write that violates a constraint is rejected
 *   alone; a transaction that fails as a whole rejects exactly the writes it held.
 * - One connection per file and process, WAL mode, `synchronous` NORMAL (or FULL with
 *   `durability: 'full'`), `busy_timeout`, prepared statements, columns read by name.
 * - `maxEntries` evicts the least recently used entries (by `last_accessed`); reads record
 *   access times in memory and write them with the next transaction (or `accessFlushMs` later).
 * - In the L3 role it is a `HealthTier`: `recordHealthCheck` applies `applyHealthCheck` (see
 *   src/health.ts) and appends the history row in one transaction; `query` filters and orders by
 *   indexes. In the L2 role those methods are absent (`isHealthTier(tier)` is false).
 *
 * better-sqlite3 is an optional dependency, loaded by `open`; without it `open` rejects with
 * `E_SQLITE_UNAVAILABLE`. A damaged file gives `E_CORRUPT` errors, never a crash.
 *
 * @example
 * const l3 = new SqliteTier({ path: '/var/cache/proxies/proxywhirl.db', role: 'l3' });
 * const cache = await ProxyCache.open({ tiers: [new MemoryTier({ maxEntries: 10_000 }), l3] });
 */
export class SqliteTier implements HealthTier {
  readonly name: string;
  readonly persistent = true;
  /** How long the stack retries a call that failed `E_TIER_BUSY` (the `timeoutMs` option). */
  readonly timeoutMs: number;
  /** Which proxywhirl layout the file has. */
  readonly role: SqliteRole;
  /** The database file, as given. */
  readonly path: string;
  /** Most entries kept, or `undefined` for no limit. */
  readonly maxEntries: number | undefined;
  readonly #options: ResolvedSqliteOptions;
  readonly #table: 'l2_cache' | 'cache_entries';
  #context: TierContext | undefined;
  #conn: SharedConnection | undefined;
  #s: Statements | undefined;
  #writer: GroupCommit<Tx> | undefined;
  #touches = new Map<string, Touch>();
  #touchTimer: NodeJS.Timeout | undefined;
  #state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  #policy: Readonly<HealthPolicy>;
  #historySincePrune = 0;
  #historyKeys = new Set<string>();
  #queries = new Map<string, Statement<unknown[], EntryRow>>();
  #evictionReports: string[] = [];
  #dropping = new Set<string>();
  #changes: ChangeLog | undefined;
  /** Identifies this instance's rows in the change log, so it skips its own changes. */
  readonly #origin = randomBytes(8).toString('hex');
  /**
   * Writes queued and not yet settled, by key: the entry a `set`/`update` will store, or `null`
   * for a `delete`. Reads look here first, so they see this tier's own pending writes.
   */
  #pending = new Map<string, ProxyEntry | null>();
  /** Queued `clear()` calls not yet settled: meanwhile keys not in `#pending` read as absent. */
  #pendingClears = 0;

  constructor(options: SqliteTierOptions) {
    const resolved = resolveSqliteOptions(options);
    this.#options = resolved;
    this.name = resolved.name;
    this.role = resolved.role;
    this.path = resolved.path;
    this.maxEntries = resolved.maxEntries;
    this.timeoutMs = resolved.timeoutMs;
    this.#table = entriesTable(resolved.role);
    this.#policy = resolved.healthPolicy;
    if (resolved.role === 'l2') {
      // Not a HealthTier in this role, so the stack never routes health calls here.
      for (const method of HEALTH_METHODS) {
        Object.defineProperty(this, method, { value: undefined, enumerable: false });
      }
    }
  }

  /**
   * Group-commit counters since open: transactions committed, writes acknowledged and rejected,
   * failed transactions. Several writes per transaction is group commit at work.
   */
  get writeStats(): Readonly<WriteStats> {
    return { ...(this.#writer?.stats ?? EMPTY_STATS) };
  }

  /** Reads whose access time is recorded in memory and not yet written. */
  get pendingAccessUpdates(): number {
    return this.#touches.size;
  }

  /**
   * The settings of the open connection, read back from SQLite (for diagnostics): the real
   * path, `journal_mode`, `synchronous`, `busy_timeout` and `foreign_keys`.
   */
  databaseSettings(): {
    path: string;
    journalMode: string;
    synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';
    busyTimeoutMs: number;
    foreignKeys: boolean;
  } {
    const conn = this.#connection();
    const read = (pragma: string) => conn.db.pragma(pragma, { simple: true });
    try {
      const synchronous = Number(read('synchronous'));
      return {
        path: conn.path,
        journalMode: String(read('journal_mode')),
        synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[synchronous] ?? 'OFF',
        busyTimeoutMs: Number(read('busy_timeout')),
        foreignKeys: Number(read('foreign_keys')) === 1,
      };
    } catch (error) {
      throw this.#wrap(error, 'reading the connection settings');
    }
  }

  /**
   * The health policy `recordHealthCheck` applies: the tier's `healthPolicy` option when given,
   * else the policy of the cache that opened it (`context.healthPolicy`), else
   * `DEFAULT_HEALTH_POLICY`.
   */
  get healthPolicy(): Readonly<HealthPolicy> {
    return this.#policy;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Loads better-sqlite3, opens (or shares) the connection, creates or migrates the schema and
   * counts the entries once. Rejects with `E_SQLITE_UNAVAILABLE` when better-sqlite3 cannot be
   * loaded and `E_CORRUPT` when the file is not a usable database; a failed open holds nothing
   * open and may be tried again.
   */
  async open(context: TierContext): Promise<void> {
    if (this.#state !== 'new') {
      throw new TierError(this.name, `tier "${this.name}" was already opened; open it once`);
    }
    this.#state = 'opening';
    this.#context = context;
    const options = this.#options;
    if (!options.explicitHealthPolicy && context.healthPolicy !== undefined) {
      this.#policy = context.healthPolicy;
    }
    // Creating the schema takes the write lock, which another process may hold past the short
    // busy wait: retry (without blocking the event loop) within the tier's time budget.
    const deadline = Date.now() + options.timeoutMs;
    let conn: SharedConnection;
    for (let attempt = 0; ; attempt += 1) {
      try {
        conn = await this.#connect(context);
        break;
      } catch (error) {
        if (!(error instanceof TierBusyError) || Date.now() >= deadline) {
          // Nothing is held open: the caller may try to open again later (a stack's probe does).
          this.#state = 'new';
          throw error;
        }
        await sleep(Math.min(50, 2 ** attempt) * (0.5 + Math.random()));
      }
    }
    this.#conn = conn;
    this.#writer = new GroupCommit<Tx>(this.#runner(), {
      commitDelayMs: options.commitDelayMs,
      maxBatch: options.maxBatch,
    });
    this.#state = 'open';
  }

  /** Opens (or shares) the connection, ensures the schema, prepares statements, counts once. */
  async #connect(context: TierContext): Promise<SharedConnection> {
    const options = this.#options;
    const conn = await acquireConnection({
      path: options.path,
      durability: options.durability,
      busyTimeoutMs: options.busyTimeoutMs,
      tier: this.name,
      logger: context.logger,
    });
    try {
      ensureSchema(conn.db, this.role, this.name, conn.path);
      this.#s = this.#prepare(conn);
      this.#changes = new ChangeLog(conn.db, this.#origin, options.changeLogRows);
      conn.checkForeignWrites();
      if (conn.counts.get(this.#table) === undefined) {
        conn.counts.set(this.#table, this.#s.count.get() as number);
      }
    } catch (error) {
      releaseConnection(conn);
      this.#s = undefined;
      this.#changes = undefined;
      throw toTierError(this.name, conn.path, 'opening the database', error);
    }
    return conn;
  }

  /** Commits every queued write and pending access time now; resolves when they are durable. */
  async flush(): Promise<void> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return;
    if (this.#touches.size > 0) writer.requestIdleFlush();
    writer.flushNow();
    this.#reportEvictions();
  }

  /**
   * Reclaims space: commits what is queued, checkpoints the WAL into the database file and
   * truncates it, and rewrites the file (`VACUUM`) when a quarter or more of its pages are free.
   * `VACUUM` needs every other connection to be idle; it waits up to `busyTimeoutMs`. Resolves
   * what it did.
   */
  async compact(): Promise<SqliteCompactReport> {
    await this.flush();
    const conn = this.#connection();
    this.#statements();
    const db = conn.db;
    try {
      const checkpoint = () =>
        (db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; checkpointed: number }[])[0];
      const first = checkpoint();
      const pagesBefore = Number(db.pragma('page_count', { simple: true }));
      const freePages = Number(db.pragma('freelist_count', { simple: true }));
      let vacuumed = false;
      if (freePages > 0 && freePages * 4 >= pagesBefore) {
        db.exec('VACUUM');
        checkpoint();
        vacuumed = true;
      }
      return {
        checkpointedFrames: first?.checkpointed ?? 0,
        checkpointComplete: first?.busy === 0,
        pagesBefore,
        freePages,
        vacuumed,
        pagesAfter: Number(db.pragma('page_count', { simple: true })),
      };
    } catch (error) {
      throw this.#wrap(error, 'compacting the database');
    }
  }

  /** Commits what is queued, then releases the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'new') {
      this.#state = 'closed';
      return;
    }
    try {
      await this.flush();
    } catch (error) {
      this.#context?.logger.warn(
        `tier "${this.name}": writing pending access times at close failed: ${String(error)}`,
      );
    } finally {
      this.#state = 'closed';
      if (this.#touchTimer !== undefined) clearTimeout(this.#touchTimer);
      this.#touchTimer = undefined;
      this.#touches.clear();
      this.#pending.clear();
      this.#queries.clear();
      if (this.#conn !== undefined) releaseConnection(this.#conn);
      this.#conn = undefined;
      this.#s = undefined;
    }
  }

  // ---------------------------------------------------------------- reads

  /** The stored entry, counting as a use (its access time and count are recorded). */
  getSync(key: string): ProxyEntry | undefined {
    const entry = this.#read(key);
    if (entry !== undefined) this.#touch(key);
    return entry;
  }

  async get(key: string): Promise<ProxyEntry | undefined> {
    return this.getSync(key);
  }

  /** The stored entry without counting as a use. */
  peekSync(key: string): ProxyEntry | undefined {
    return this.#read(key);
  }

  hasSync(key: string): boolean {
    const s = this.#statements();
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending !== null;
    if (this.#pendingClears > 0) return false;
    try {
      return s.exists.get(key) !== undefined;
    } catch (error) {
      throw this.#wrap(error, `reading entry ${key}`);
    }
  }

  async has(key: string): Promise<boolean> {
    return this.hasSync(key);
  }

  /**
   * Number of entries, kept in memory from the tier's own changes; recounted only after another
   * process has written to the file. Writes still queued are not counted yet.
   */
  async size(): Promise<number> {
    this.#statements();
    try {
      return this.#count();
    } catch (error) {
      throw this.#wrap(error, 'counting entries');
    }
  }

  /** Streams the keys in key order, a page at a time. */
  async *keys(): AsyncIterable<string> {
    let after = '';
    for (;;) {
      const s = this.#statements();
      let page: string[];
      try {
        page = s.keysPage.all(after, PAGE_SIZE);
      } catch (error) {
        throw this.#wrap(error, 'listing keys');
      }
      yield* page;
      if (page.length < PAGE_SIZE) return;
      after = page[page.length - 1] as string;
    }
  }

  /** Streams the entries in key order, a page at a time (credentials stay encrypted until revealed). */
  async *entries(): AsyncIterable<ProxyEntry> {
    let after = '';
    for (;;) {
      const s = this.#statements();
      let page: EntryRow[];
      try {
        page = s.entriesPage.all(after, PAGE_SIZE);
      } catch (error) {
        throw this.#wrap(error, 'listing entries');
      }
      for (const row of page) {
        const entry = this.#decode(row);
        if (entry !== undefined) yield entry;
      }
      if (page.length < PAGE_SIZE) return;
      after = (page[page.length - 1] as EntryRow).key as string;
    }
  }

  // ---------------------------------------------------------------- writes

  /** Stores the entry (its secrets must be sealed). Resolves once the transaction has committed. */
  set(entry: ProxyEntry): Promise<void> {
    let writer: GroupCommit<Tx>;
    try {
      writer = this.#open();
      this.#checkSealed(entry);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#shadow(
      entry.key,
      entry,
      writer.enqueue((tx) => {
        this.#write(entry, tx, undefined);
      }),
    );
  }

  /** Changes some fields of a stored entry; resolves `false` when the key is absent. */
  update(key: string, patch: EntryPatch): Promise<boolean> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    if (patch === null || typeof patch !== 'object') {
      return Promise.reject(
        new InvalidOptionError(`an entry patch must be an object, got ${describe(patch)}`),
      );
    }
    const written = this.#modify(writer, key, () => patch).then((found) => found !== undefined);
    // A pending write of the key is shown with the patch applied until this one settles.
    const pending = this.#pending.get(key);
    return pending ? this.#shadow(key, { ...pending, ...patch }, written) : written;
  }

  /**
   * Atomic read-modify-write: queued with the other writes (so it applies after every write
   * issued before it), it reads the row inside the batch's `BEGIN IMMEDIATE` transaction, which
   * holds the database's write lock, so no write of this or another process comes between the
   * read and the write. `change` may run twice (a batch retried write by write) and must be pure.
   * Resolves the entry after the change, or `undefined` when the key is absent.
   */
  modify(key: string, change: EntryChange): Promise<ProxyEntry | undefined> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    if (typeof change !== 'function') {
      return Promise.reject(
        new InvalidOptionError(`modify() needs a change function, got ${describe(change)}`),
      );
    }
    return this.#modify(writer, key, change);
  }

  #modify(writer: GroupCommit<Tx>, key: string, change: EntryChange) {
    return writer.enqueue((tx) => {
      const current = this.#readInTx(key);
      if (current === undefined) return undefined;
      const patch = change(current);
      if (patch === undefined) return current;
      if (patch === null || typeof patch !== 'object') {
        throw new InvalidOptionError(
          `a modify() change must return an entry patch or undefined, got ${describe(patch)}`,
        );
      }
      const updated = { ...current, ...patch };
      this.#write(updated, tx, true);
      return updated;
    });
  }

  /**
   * Records uses served by a faster tier (L1 hits), so `maxEntries` evicts by true recency: one
   * queued write, one `UPDATE` per access, changing `last_accessed` and `access_count` only where
   * the access is newer than the stored one, and never creating a row. Not in the change log
   * (another process's copy does not go stale by being used).
   */
  touch(accesses: readonly EntryAccess[]): Promise<void> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    if (!Array.isArray(accesses)) {
      return Promise.reject(
        new InvalidOptionError(`touch() needs an array of accesses, got ${describe(accesses)}`),
      );
    }
    for (const [index, access] of accesses.entries()) {
      const { key, lastAccessed, accessCount } = (access ?? {}) as Partial<EntryAccess>;
      if (
        typeof key !== 'string' ||
        !Number.isFinite(lastAccessed) ||
        !Number.isFinite(accessCount)
      ) {
        return Promise.reject(
          new InvalidOptionError(
            `access ${index} must be { key: string, lastAccessed: number, accessCount: number }, got ${describe(access)}`,
          ),
        );
      }
    }
    if (accesses.length === 0) return Promise.resolve();
    return writer.enqueue(() => {
      const forward = this.#statements().touchForward;
      for (const { key, lastAccessed, accessCount } of accesses) {
        forward.run({ at: toSeconds(lastAccessed), count: accessCount, key });
      }
    });
  }

  /**
   * The keys other tier instances (other processes, or other tiers on this file) wrote, deleted,
   * modified or health-checked since the previous call; `'flush'` after another instance's
   * `clear()` or when the change log was pruned past this reader. The first call reports nothing.
   * Costs one `PRAGMA data_version` when nothing changed. See docs/sqlite.md.
   */
  readChanges(): TierChanges {
    this.#statements();
    try {
      return (this.#changes as ChangeLog).read(this.#connection());
    } catch (error) {
      throw this.#wrap(error, 'reading the change log');
    }
  }

  /** The key checks recorded in `proxytier_key_checks`, oldest first. */
  async keyChecks(): Promise<readonly KeyCheck[]> {
    this.#statements();
    try {
      return readKeyChecks(this.#connection().db);
    } catch (error) {
      throw this.#wrap(error, 'reading the key checks');
    }
  }

  /** Records a key check, queued with the writes (a busy database is waited for asynchronously). */
  recordKeyCheck(check: KeyCheck): Promise<void> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    return writer.enqueue(() => {
      insertKeyCheck(this.#connection().db, check, toSeconds(this.#now()));
    });
  }

  /** Removes the entry now (committing queued writes first, in order); `true` when it existed. */
  deleteSync(key: string): boolean {
    const writer = this.#open();
    const removed = writer.runSync((tx) => this.#deleteRow(key, tx));
    // Committed now: a queued write of the key (committed before it) no longer shadows it.
    this.#pending.delete(key);
    this.#reportEvictions();
    return removed;
  }

  /** Removes the entry with the next group commit; resolves `true` when it existed. */
  delete(key: string): Promise<boolean> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    return this.#shadow(
      key,
      null,
      writer.enqueue((tx) => this.#deleteRow(key, tx)),
    );
  }

  /** Removes every entry (and, in the L3 role, its history); resolves how many entries. */
  clear(): Promise<number> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    const cleared = writer.enqueue((tx) => {
      const s = this.#statements();
      const removed = s.clear.run().changes;
      tx.sizeDelta -= removed;
      this.#touches.clear();
      this.#log(null, tx);
      return removed;
    });
    // Until it settles, every key not written after it reads as absent.
    this.#pending.clear();
    this.#pendingClears += 1;
    const settled = () => {
      this.#pendingClears -= 1;
    };
    cleared.then(settled, settled);
    return cleared;
  }

  /** Removes every entry with `expiresAt <= now` in one indexed `DELETE ... RETURNING key`. */
  deleteExpired(now: number): Promise<string[]> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    if (typeof now !== 'number' || !Number.isFinite(now)) {
      return Promise.reject(
        new InvalidOptionError(`"now" must be a time in epoch ms, got ${describe(now)}`),
      );
    }
    return writer.enqueue((tx) => {
      const keys = this.#statements().deleteExpired.all(toSeconds(now));
      tx.sizeDelta -= keys.length;
      for (const key of keys) this.#touches.delete(key);
      return keys;
    });
  }

  /**
   * Imports proxywhirl's JSONL shards (`shard_*.jsonl` in `dir`), as its `migrate_from_jsonl`
   * does: every valid line, later lines winning within a shard; corrupt lines are counted and
   * named, never fatal. Idempotent: an entry already stored with the same fields and
   * credentials is left alone. Encrypted credentials are kept as they are (after checking that
   * the keyring decrypts them); plaintext `username`/`password` fields are encrypted on import.
   */
  async importJsonlShards(dir: string): Promise<JsonlImportResult> {
    this.#open();
    const context = this.#context as TierContext;
    return importJsonlShards(dir, {
      cipher: context.cipher,
      now: () => context.clock.now(),
      peek: (key) => this.peekSync(key),
      set: (entry) => this.set(entry),
    });
  }

  // ---------------------------------------------------------------- health (L3)

  /**
   * Applies one health check to the entry (`applyHealthCheck` with the tier's policy), appends
   * it to `health_history` and refreshes the proxy's aggregates, in one transaction. Resolves
   * the updated entry, or `undefined` when the key is absent. L3 role only.
   */
  recordHealthCheck(key: string, check: HealthCheckInput): Promise<ProxyEntry | undefined> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    let timed: TimedHealthCheck;
    try {
      timed = validateHealthCheck(check, this.#now());
    } catch (error) {
      return Promise.reject(error);
    }
    return writer.enqueue((tx) => {
      const s = this.#statements();
      const entry = this.#readInTx(key);
      if (entry === undefined) return undefined;
      const patch = applyHealthCheck(entry, timed, this.#policy);
      const nowSeconds = toSeconds(this.#now());
      (s.healthUpdate as Statement<unknown[]>).run(
        patch.healthStatus,
        optionalSeconds(patch.lastHealthCheck),
        patch.consecutiveHealthFailures,
        patch.consecutiveHealthSuccesses,
        patch.recoveryAttempt,
        optionalSeconds(patch.nextCheckTime),
        nullable(patch.lastHealthError),
        patch.totalHealthChecks,
        patch.totalHealthCheckFailures,
        nowSeconds,
        key,
      );
      (s.historyInsert as Statement<unknown[]>).run(
        key,
        toSeconds(timed.at),
        timed.status,
        nullable(timed.responseTimeMs),
        nullable(timed.error),
        timed.checkUrl,
      );
      (s.statsUpsert as Statement<[string, string]>).run(key, key);
      this.#log(key, tx);
      tx.history += 1;
      (tx.historyKeys ??= []).push(key);
      return Object.assign(entry, patch);
    });
  }

  /** One proxy's health checks, newest first; `since` (epoch ms) and `limit` narrow it. L3 role only. */
  async healthHistory(
    key: string,
    options: { since?: number; limit?: number } = {},
  ): Promise<HealthCheckRecord[]> {
    const s = this.#statements();
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError(`history options must be an object, got ${describe(options)}`);
    }
    const { since, limit } = options;
    if (since !== undefined && (typeof since !== 'number' || !Number.isFinite(since))) {
      throw new InvalidOptionError(`"since" must be a time in epoch ms, got ${describe(since)}`);
    }
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit <= 0)) {
      throw new InvalidOptionError(`"limit" must be a positive integer, got ${describe(limit)}`);
    }
    let rows: HistoryRow[];
    try {
      rows = (s.history as Statement<[string, number, number], HistoryRow>).all(
        key,
        since === undefined ? Number.NEGATIVE_INFINITY : toSeconds(since),
        limit ?? -1,
      );
    } catch (error) {
      throw this.#wrap(error, `reading the health history of ${key}`);
    }
    return rows.map(historyRecord);
  }

  /**
   * Entries matching the filters, in the requested order (see `ProxyQuery`). Every common
   * filter is served by an index; `explainQuery` shows the plan. Expired entries are left out
   * unless `includeExpired`. L3 role only.
   */
  async query(query: ProxyQuery = {}): Promise<ProxyEntry[]> {
    const normalized = normalizeQuery(query);
    const { phases } = buildQuery(normalized, toSeconds(this.#now()));
    const limit = normalized.limit;
    const entries: ProxyEntry[] = [];
    for (const phase of phases) {
      const wanted = limit === undefined ? undefined : limit - entries.length;
      if (wanted !== undefined && wanted <= 0) break;
      const statement = this.#queryStatement(phase.sql);
      let rows: EntryRow[];
      try {
        if (phase.limited) phase.params[phase.params.length - 1] = wanted;
        rows = statement.all(...phase.params);
      } catch (error) {
        throw this.#wrap(error, 'querying entries');
      }
      for (const row of rows) {
        const entry = this.#decode(row);
        if (entry !== undefined) entries.push(entry);
      }
    }
    return entries;
  }

  /**
   * SQLite's plan for `query(query)`, one line per step (`EXPLAIN QUERY PLAN`); for the
   * aggregate orders, the second statement's lines start with `then: `. L3 role only.
   */
  explainQuery(query: ProxyQuery = {}): string[] {
    const { phases } = buildQuery(normalizeQuery(query), toSeconds(this.#now()));
    const conn = this.#connection();
    const lines: string[] = [];
    try {
      phases.forEach((phase, index) => {
        const rows = conn.db.prepare(`EXPLAIN QUERY PLAN ${phase.sql}`).all(...phase.params) as {
          detail: string;
        }[];
        for (const row of rows) lines.push(index === 0 ? row.detail : `then: ${row.detail}`);
      });
    } catch (error) {
      throw this.#wrap(error, 'explaining a query');
    }
    return lines;
  }

  /**
   * Every history row of every proxy, oldest first (by check time), streamed a page at a time
   * with no statement held open between pages. L3 role only.
   */
  async *allHealthHistory(): AsyncIterable<HealthCheckRecord> {
    let afterTime = Number.NEGATIVE_INFINITY;
    let afterId = Number.NEGATIVE_INFINITY;
    for (;;) {
      const s = this.#statements();
      let page: (HistoryRow & { id: number })[];
      try {
        page = (
          s.historyPage as Statement<[number, number, number], HistoryRow & { id: number }>
        ).all(afterTime, afterId, PAGE_SIZE);
      } catch (error) {
        throw this.#wrap(error, 'reading the health history');
      }
      for (const row of page) yield historyRecord(row);
      if (page.length < PAGE_SIZE) return;
      const last = page[page.length - 1] as HistoryRow & { id: number };
      afterTime = last.check_time;
      afterId = last.id;
    }
  }

  /**
   * Adds history rows (a migration's). A row equal to one already stored (same proxy, time,
   * status, check URL, response time and error) is skipped, so importing twice adds nothing; a
   * row of a proxy the tier does not hold is skipped too (history belongs to a stored entry).
   * Rows are written in group-committed batches; each proxy's aggregates are refreshed in the
   * batch that adds its rows. Throws `E_INVALID_OPTION` naming the first malformed row (the
   * batches before it are kept). L3 role only.
   */
  async importHealthHistory(
    rows: AsyncIterable<HealthCheckRecord> | Iterable<HealthCheckRecord>,
  ): Promise<{ imported: number; skipped: number }> {
    const writer = this.#open();
    const total = { imported: 0, skipped: 0 };
    let chunk: HealthCheckRecord[] = [];
    let index = 0;
    const commit = async (batch: HealthCheckRecord[]) => {
      const counts = await writer.enqueue(() => this.#importHistoryBatch(batch));
      total.imported += counts.imported;
      total.skipped += counts.skipped;
    };
    for await (const row of rows) {
      index += 1;
      chunk.push(validateHistoryRow(row, index));
      if (chunk.length >= this.#options.maxBatch) {
        await commit(chunk);
        chunk = [];
      }
    }
    if (chunk.length > 0) await commit(chunk);
    return total;
  }

  /**
   * Applies the history retention now to every proxy: rows older than `maxAgeMs`, and beyond
   * the newest `maxRowsPerProxy` of each proxy, are deleted (two bulk statements). The tier also
   * does this on its own for the proxies it checked, every few hundred checks. Resolves the
   * number of rows removed. L3 role only.
   */
  pruneHealthHistory(): Promise<number> {
    const writer = this.#writer;
    if (writer === undefined || this.#state !== 'open') return Promise.reject(this.#notOpen());
    return writer.enqueue(() => {
      let removed = this.#pruneAge();
      const maxRows = this.#options.historyMaxRowsPerProxy;
      if (maxRows !== Number.POSITIVE_INFINITY) {
        removed += (this.#statements().pruneRowsAll as Statement<[number]>).run(maxRows).changes;
      }
      return removed;
    });
  }

  // ---------------------------------------------------------------- internals: reads

  #read(key: string): ProxyEntry | undefined {
    const s = this.#statements();
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending ?? undefined;
    if (this.#pendingClears > 0) return undefined;
    let row: EntryRow | undefined;
    try {
      row = s.get.get(key);
    } catch (error) {
      throw this.#wrap(error, `reading entry ${key}`);
    }
    return row === undefined ? undefined : this.#decode(row);
  }

  /** Reads inside a write transaction: errors propagate to the group commit, which wraps them. */
  #readInTx(key: string): ProxyEntry | undefined {
    const row = this.#statements().get.get(key);
    return row === undefined ? undefined : this.#decode(row);
  }

  #decode(row: EntryRow): ProxyEntry | undefined {
    try {
      return decodeRow(row, this.#context?.cipher);
    } catch (error) {
      if (!(error instanceof BadRowError)) throw error;
      this.#dropCorrupt(row.key, error.message);
      return undefined;
    }
  }

  /** A row that cannot be an entry is dropped (once) and reported as a corruption eviction. */
  #dropCorrupt(key: unknown, reason: string): void {
    const context = this.#context;
    const shown = typeof key === 'string' ? key : describe(key);
    context?.logger.warn(
      `tier "${this.name}": skipping the damaged row of entry ${shown} in ${this.path}: ${reason}`,
    );
    if (typeof key !== 'string' || this.#dropping.has(key) || this.#writer === undefined) return;
    this.#dropping.add(key);
    this.#writer
      .enqueue((tx) => this.#deleteRow(key, tx))
      .then(
        () => context?.onEvict(key, 'corruption', undefined),
        (error: unknown) => {
          context?.logger.warn(
            `tier "${this.name}": could not remove the damaged row of entry ${key}: ${String(error)}`,
          );
        },
      )
      .finally(() => this.#dropping.delete(key));
  }

  #touch(key: string): void {
    const at = this.#now();
    const pending = this.#touches.get(key);
    if (pending !== undefined) {
      if (at > pending.at) pending.at = at;
      pending.count += 1;
      return;
    }
    this.#touches.set(key, { at, count: 1 });
    if (this.#touches.size >= MAX_PENDING_TOUCHES) {
      this.#writer?.requestIdleFlush();
    } else if (this.#touchTimer === undefined) {
      // Unref'd: access times are worth a write soon, not worth keeping the process alive.
      this.#touchTimer = setTimeout(() => {
        this.#touchTimer = undefined;
        if (this.#state === 'open' && this.#touches.size > 0) this.#writer?.requestIdleFlush();
      }, this.#options.accessFlushMs);
      this.#touchTimer.unref();
    }
  }

  #count(): number {
    const conn = this.#connection();
    conn.checkForeignWrites();
    let count = conn.counts.get(this.#table);
    if (count === undefined) {
      count = this.#statements().count.get() as number;
      conn.counts.set(this.#table, count);
    }
    return count;
  }

  // ---------------------------------------------------------------- internals: writes

  /** Writes every column of the entry (an UPSERT: `created_at` survives an update). */
  #write(entry: ProxyEntry, tx: Tx, exists: boolean | undefined): void {
    const s = this.#statements();
    const key = entry.key;
    const existed = exists ?? s.exists.get(key) !== undefined;
    const username = tokenBlob(entry.username);
    const password = tokenBlob(entry.password);
    const evicted = entry.evictedFromL1 ? 1 : 0;
    if (this.role === 'l3') {
      const now = toSeconds(this.#now());
      s.upsert.run(
        key,
        entry.proxyUrl,
        username,
        password,
        entry.source,
        toSeconds(entry.fetchTime),
        toSeconds(entry.lastAccessed),
        entry.accessCount,
        entry.ttlSeconds,
        toSeconds(entry.expiresAt),
        entry.healthStatus,
        entry.failureCount,
        now,
        now,
        optionalSeconds(entry.lastHealthCheck),
        entry.consecutiveHealthFailures,
        entry.consecutiveHealthSuccesses,
        entry.recoveryAttempt,
        optionalSeconds(entry.nextCheckTime),
        nullable(entry.lastHealthError),
        entry.totalHealthChecks,
        entry.totalHealthCheckFailures,
        evicted,
      );
    } else {
      s.upsert.run(
        key,
        entry.proxyUrl,
        username,
        password,
        entry.source,
        toSeconds(entry.fetchTime),
        toSeconds(entry.lastAccessed),
        entry.accessCount,
        entry.ttlSeconds,
        toSeconds(entry.expiresAt),
        entry.healthStatus,
        entry.failureCount,
        evicted,
      );
      // l2_cache has no health columns: they live in the side table, only when not default.
      if (!hasDefaultHealth(entry)) {
        (s.sideUpsert as Statement<unknown[]>).run(
          key,
          optionalSeconds(entry.lastHealthCheck),
          entry.consecutiveHealthFailures,
          entry.consecutiveHealthSuccesses,
          entry.recoveryAttempt,
          optionalSeconds(entry.nextCheckTime),
          nullable(entry.lastHealthError),
          entry.totalHealthChecks,
          entry.totalHealthCheckFailures,
        );
      } else if (existed) {
        (s.sideDelete as Statement<[string]>).run(key);
      }
    }
    if (!existed) tx.sizeDelta += 1;
    this.#log(key, tx);
    if (this.maxEntries !== undefined) (tx.written ??= []).push(key);
  }

  /** Appends `key` (`null`: every key) to the change log, in the write's transaction. */
  #log(key: string | null, tx: Tx): void {
    (this.#changes as ChangeLog).log(key);
    tx.logged += 1;
  }

  /**
   * Shows `value` (an entry, or `null` for a delete) to reads of `key` until `write` settles;
   * by then the database holds it (or, if it failed, holds what was there before).
   */
  #shadow<T>(key: string, value: ProxyEntry | null, write: Promise<T>): Promise<T> {
    this.#pending.set(key, value);
    const forget = () => {
      if (this.#pending.get(key) === value) this.#pending.delete(key);
    };
    write.then(forget, forget);
    return write;
  }

  #deleteRow(key: string, tx: Tx): boolean {
    const removed = this.#statements().delete.run(key).changes > 0;
    if (removed) {
      tx.sizeDelta -= 1;
      this.#log(key, tx);
    }
    this.#touches.delete(key);
    return removed;
  }

  #importHistoryBatch(batch: HealthCheckRecord[]): { imported: number; skipped: number } {
    const s = this.#statements();
    const exists = s.historyExists as Statement<unknown[], number>;
    const insert = s.historyInsert as Statement<unknown[]>;
    const touched = new Set<string>();
    let imported = 0;
    for (const row of batch) {
      const seconds = toSeconds(row.checkTime);
      const responseTime = nullable(row.responseTimeMs);
      const error = nullable(row.error);
      if (
        s.exists.get(row.key) === undefined ||
        exists.get(row.key, seconds, row.status, row.checkUrl, responseTime, error) !== undefined
      ) {
        continue;
      }
      insert.run(row.key, seconds, row.status, responseTime, error, row.checkUrl);
      touched.add(row.key);
      imported += 1;
    }
    const stats = s.statsUpsert as Statement<[string, string]>;
    for (const key of touched) stats.run(key, key);
    return { imported, skipped: batch.length - imported };
  }

  #pruneAge(): number {
    const maxAge = this.#options.historyMaxAgeMs;
    if (maxAge === Number.POSITIVE_INFINITY) return 0;
    const cutoff = toSeconds(this.#now() - maxAge);
    return (this.#statements().pruneAge as Statement<[number]>).run(cutoff).changes;
  }

  #checkSealed(entry: ProxyEntry): void {
    if (entry === null || typeof entry !== 'object' || typeof entry.key !== 'string') {
      throw new InvalidOptionError(`set() needs a ProxyEntry, got ${describe(entry)}`);
    }
    for (const field of ['username', 'password'] as const) {
      const secret = entry[field];
      if (secret !== undefined && secret.token === undefined) {
        throw new TierError(
          this.name,
          `tier "${this.name}" stores only encrypted credentials, but the ${field} of entry ${entry.key} is not sealed; write through ProxyCache, or call secret.seal(keyring) first`,
        );
      }
    }
  }

  /** How the group commit runs a batch on this tier's connection. */
  #runner(): BatchRunner<Tx> {
    return {
      begin: () => {
        const s = this.#statements();
        s.begin.run();
        // Inside the write lock: the counts are exact from here to COMMIT.
        this.#connection().checkForeignWrites();
        const tx: Tx = {
          sizeDelta: 0,
          touches: undefined,
          evicted: undefined,
          history: 0,
          historyKeys: undefined,
          pruned: false,
          logged: 0,
          changesPruned: false,
          written: undefined,
        };
        if (this.#touches.size > 0) {
          tx.touches = this.#touches;
          this.#touches = new Map();
          for (const [key, touch] of tx.touches) {
            s.touch.run(toSeconds(touch.at), touch.count, key);
          }
        }
        return tx;
      },
      beforeCommit: (tx) => this.#beforeCommit(tx),
      commit: () => {
        this.#statements().commit.run();
      },
      rollback: () => {
        const conn = this.#conn;
        if (conn === undefined || !conn.db.inTransaction) return;
        try {
          this.#statements().rollback.run();
        } catch {
          // SQLite may have rolled back already (after an I/O error); nothing more to undo.
        }
      },
      savepoint: () => {
        this.#statements().savepoint.run();
      },
      release: () => {
        this.#statements().release.run();
      },
      rollbackToSavepoint: () => {
        const s = this.#statements();
        s.rollbackTo.run();
        s.release.run();
      },
      afterCommit: (tx) => this.#afterCommit(tx),
      afterRollback: (tx) => {
        if (tx.touches === undefined || this.#touches.size >= MAX_PENDING_TOUCHES) return;
        // Access times wait for the next transaction; newer ones recorded since are kept.
        for (const [key, touch] of tx.touches) {
          const newer = this.#touches.get(key);
          if (newer === undefined) this.#touches.set(key, touch);
          else newer.count += touch.count;
        }
      },
      wrap: (error, doing) => this.#wrap(error, doing),
      idle: () => this.#reportEvictions(),
    };
  }

  #beforeCommit(tx: Tx): void {
    const s = this.#statements();
    if (tx.logged > 0) tx.changesPruned = (this.#changes as ChangeLog).pruneDue(tx.logged);
    if (tx.history > 0 && this.#historySincePrune + tx.history >= PRUNE_EVERY) {
      const maxRows = this.#options.historyMaxRowsPerProxy;
      if (maxRows !== Number.POSITIVE_INFINITY) {
        const keys = new Set(this.#historyKeys);
        for (const key of tx.historyKeys ?? []) keys.add(key);
        (s.pruneRowsOf as Statement<[string, number]>).run(JSON.stringify([...keys]), maxRows);
      }
      this.#pruneAge();
      tx.pruned = true;
    }
    const max = this.maxEntries;
    if (max === undefined) return;
    const conn = this.#connection();
    let before = conn.counts.get(this.#table);
    if (before === undefined) {
      // Another process wrote since we last counted: count once, inside the write lock.
      before = (s.count.get() as number) - tx.sizeDelta;
      conn.counts.set(this.#table, before);
    }
    const excess = before + tx.sizeDelta - max;
    if (excess <= 0) return;
    // The keys this transaction wrote are in use: an old `lastAccessed` must not evict them.
    const evicted = s.evict.all(JSON.stringify(tx.written ?? []), excess);
    tx.sizeDelta -= evicted.length;
    tx.evicted = evicted;
  }

  #afterCommit(tx: Tx): void {
    const conn = this.#connection();
    if (tx.logged > 0) {
      conn.localChanges += 1;
      (this.#changes as ChangeLog).committed(tx.logged, tx.changesPruned);
    }
    const count = conn.counts.get(this.#table);
    if (count !== undefined && tx.sizeDelta !== 0)
      conn.counts.set(this.#table, count + tx.sizeDelta);
    if (tx.pruned) {
      this.#historySincePrune = 0;
      this.#historyKeys.clear();
    } else if (tx.history > 0) {
      this.#historySincePrune += tx.history;
      for (const key of tx.historyKeys ?? []) this.#historyKeys.add(key);
    }
    if (tx.evicted !== undefined) {
      for (const key of tx.evicted) {
        this.#touches.delete(key);
        this.#evictionReports.push(key);
      }
    }
  }

  /** Reports LRU evictions once the flush that made them is over (callbacks may write again). */
  #reportEvictions(): void {
    if (this.#evictionReports.length === 0) return;
    const keys = this.#evictionReports;
    this.#evictionReports = [];
    for (const key of keys) this.#context?.onEvict(key, 'lru', undefined);
  }

  // ---------------------------------------------------------------- internals: plumbing

  #queryStatement(sql: string): Statement<unknown[], EntryRow> {
    let statement = this.#queries.get(sql);
    if (statement === undefined) {
      const conn = this.#connection();
      try {
        statement = conn.db.prepare<unknown[], EntryRow>(sql);
      } catch (error) {
        throw this.#wrap(error, 'preparing a query');
      }
      if (this.#queries.size >= MAX_CACHED_QUERIES) {
        const oldest = this.#queries.keys().next().value as string;
        this.#queries.delete(oldest);
      }
      this.#queries.set(sql, statement);
    }
    return statement;
  }

  #prepare(conn: SharedConnection): Statements {
    const db = conn.db;
    const t = this.#table;
    const l3 = this.role === 'l3';
    const columns = l3 ? L3_COLUMNS : L2_COLUMNS;
    const upsertSql = `INSERT INTO ${t} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')}) ON CONFLICT(key) DO UPDATE SET ${columns
      .filter((column) => column !== 'key' && column !== 'created_at')
      .map((column) => `${column} = excluded.${column}`)
      .join(', ')}`;
    // Every read names its columns; the l2 role joins the health fields from its side table.
    const selectList = l3
      ? ENTRY_FIELDS.map((field) => `${t}.${field} AS ${field}`).join(', ')
      : ENTRY_FIELDS.map((field) =>
          (L2_SIDE_COLUMNS as readonly string[]).includes(field)
            ? `proxytier_l2_health.${field} AS ${field}`
            : `${t}.${field} AS ${field}`,
        ).join(', ');
    const from = l3
      ? t
      : `${t} LEFT JOIN proxytier_l2_health ON proxytier_l2_health.key = ${t}.key`;
    const sideColumns = ['key', ...L2_SIDE_COLUMNS];
    return {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT proxytier_write'),
      release: db.prepare('RELEASE proxytier_write'),
      rollbackTo: db.prepare('ROLLBACK TO proxytier_write'),
      get: db.prepare<[string], EntryRow>(`SELECT ${selectList} FROM ${from} WHERE ${t}.key = ?`),
      exists: db.prepare<[string], number>(`SELECT 1 FROM ${t} WHERE key = ?`).pluck(),
      upsert: db.prepare<unknown[]>(upsertSql),
      sideUpsert: l3
        ? undefined
        : db.prepare<unknown[]>(
            `INSERT INTO proxytier_l2_health (${sideColumns.join(', ')}) VALUES (${sideColumns.map(() => '?').join(', ')}) ON CONFLICT(key) DO UPDATE SET ${L2_SIDE_COLUMNS.map((column) => `${column} = excluded.${column}`).join(', ')}`,
          ),
      sideDelete: l3
        ? undefined
        : db.prepare<[string]>('DELETE FROM proxytier_l2_health WHERE key = ?'),
      delete: db.prepare<[string]>(`DELETE FROM ${t} WHERE key = ?`),
      touch: db.prepare<[number, number, string]>(
        `UPDATE ${t} SET last_accessed = max(last_accessed, ?), access_count = coalesce(access_count, 0) + ? WHERE key = ?`,
      ),
      touchForward: db.prepare<[{ at: number; count: number; key: string }]>(
        `UPDATE ${t} SET last_accessed = @at, access_count = max(coalesce(access_count, 0), @count) WHERE key = @key AND last_accessed < @at`,
      ),
      deleteExpired: db
        .prepare<[number], string>(`DELETE FROM ${t} WHERE expires_at <= ? RETURNING key`)
        .pluck(),
      evict: db
        .prepare<[string, number], string>(
          `DELETE FROM ${t} WHERE key IN (SELECT key FROM ${t} WHERE key NOT IN (SELECT value FROM json_each(?)) ORDER BY last_accessed LIMIT ?) RETURNING key`,
        )
        .pluck(),
      count: db.prepare<[], number>(`SELECT count(*) FROM ${t}`).pluck(),
      keysPage: db
        .prepare<[string, number], string>(
          `SELECT key FROM ${t} WHERE key > ? ORDER BY key LIMIT ?`,
        )
        .pluck(),
      entriesPage: db.prepare<[string, number], EntryRow>(
        `SELECT ${selectList} FROM ${from} WHERE ${t}.key > ? ORDER BY ${t}.key LIMIT ?`,
      ),
      clear: db.prepare<[]>(`DELETE FROM ${t}`),
      healthUpdate: l3
        ? db.prepare<unknown[]>(
            `UPDATE cache_entries SET health_status = ?, last_health_check = ?, consecutive_health_failures = ?, consecutive_health_successes = ?, recovery_attempt = ?, next_check_time = ?, last_health_error = ?, total_health_checks = ?, total_health_check_failures = ?, updated_at = ? WHERE key = ?`,
          )
        : undefined,
      historyInsert: l3
        ? db.prepare<unknown[]>(
            'INSERT INTO health_history (proxy_key, check_time, status, response_time_ms, error_message, check_url) VALUES (?, ?, ?, ?, ?, ?)',
          )
        : undefined,
      statsUpsert: l3 ? db.prepare<[string, string]>(STATS_UPSERT) : undefined,
      history: l3
        ? db.prepare<[string, number, number], HistoryRow>(
            'SELECT proxy_key, check_time, status, response_time_ms, error_message, check_url FROM health_history WHERE proxy_key = ? AND check_time >= ? ORDER BY check_time DESC, id DESC LIMIT ?',
          )
        : undefined,
      historyPage: l3
        ? db.prepare<[number, number, number], HistoryRow & { id: number }>(
            'SELECT id, proxy_key, check_time, status, response_time_ms, error_message, check_url FROM health_history WHERE (check_time, id) > (?, ?) ORDER BY check_time, id LIMIT ?',
          )
        : undefined,
      historyExists: l3
        ? db
            .prepare<unknown[], number>(
              'SELECT 1 FROM health_history WHERE proxy_key = ? AND check_time = ? AND status = ? AND check_url = ? AND response_time_ms IS ? AND error_message IS ? LIMIT 1',
            )
            .pluck()
        : undefined,
      pruneAge: l3
        ? db.prepare<[number]>('DELETE FROM health_history WHERE check_time < ?')
        : undefined,
      pruneRowsOf: l3
        ? db.prepare<[string, number]>(
            `DELETE FROM health_history WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY proxy_key ORDER BY check_time DESC, id DESC) AS rank FROM health_history WHERE proxy_key IN (SELECT value FROM json_each(?))) WHERE rank > ?)`,
          )
        : undefined,
      pruneRowsAll: l3
        ? db.prepare<[number]>(
            `DELETE FROM health_history WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY proxy_key ORDER BY check_time DESC, id DESC) AS rank FROM health_history) WHERE rank > ?)`,
          )
        : undefined,
    };
  }

  #now(): number {
    return (this.#context as TierContext).clock.now();
  }

  #wrap(error: unknown, doing: string): Error {
    return toTierError(this.name, this.#conn?.path ?? this.path, doing, error);
  }

  /** The statements, or a `ClosedError`/`TierError` when the tier is not open. */
  #statements(): Statements {
    const s = this.#s;
    if (s !== undefined && this.#state === 'open') return s;
    throw this.#notOpen();
  }

  #connection(): SharedConnection {
    const conn = this.#conn;
    if (conn !== undefined) return conn;
    throw this.#notOpen();
  }

  #open(): GroupCommit<Tx> {
    const writer = this.#writer;
    if (writer !== undefined && this.#state === 'open') return writer;
    throw this.#notOpen();
  }

  #notOpen(): Error {
    return this.#state === 'closed'
      ? new ClosedError(`the ${this.name} tier is closed`)
      : new TierError(this.name, `tier "${this.name}" is not open yet; call open() first`);
  }
}
