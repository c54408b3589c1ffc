// SQLite tier (L3 role, proxywhirl's cache_entries) figures on 100,000 proxy records, each
// measured beside a raw better-sqlite3 reference in the same run:
//   (a) puts without credentials through SqliteTier.set (1,000 issued together, so group
//       commit makes one transaction of them) against INSERT OR REPLACE of the same rows in
//       1,000-row transactions, into an identical schema (same table, same indexes);
//   (b) puts with two credentials through a ProxyCache whose only tier is the SQLite tier
//       (validation, key derivation, two Fernet encryptions, group commit) against the same raw
//       batched insert plus two Fernet encryptions per row;
//   (c) cold gets (no L1) through SqliteTier.getSync against a raw prepared SELECT by primary key
//       (credentials are decrypted lazily, so neither side decrypts), and again with the
//       access-time writes those reads cause flushed inside the measured time;
//   (d) the 100 healthiest proxies of one source (healthy, best success rate first) through
//       SqliteTier.query against the same SQL run raw.
// Stores live in a temporary directory that is deleted at the end.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  createEntry,
  deriveKey,
  generateFernetKey,
  Keyring,
  ProxyCache,
  silentLogger,
  systemClock,
  type ProxyEntry,
} from '../src/index.js';
import { SqliteTier } from '../src/tiers/sqlite/index.js';
import { L3_COLUMNS } from '../src/tiers/sqlite/schema.js';
import type { TierContext } from '../src/tiers/tier.js';
import {
  compareThroughput,
  progress,
  type AsyncBody,
  type Result,
  type SyncBody,
} from './harness.js';

const ENTRIES = 100_000;
const BATCH = 1_000;
const SOURCES = 10;
const ROUNDS = { rounds: 5, roundMs: 300, warmupMs: 300 } as const;

/** Budgets, as the lowest acceptable ratio of ops/s against the raw reference. */
const BUDGET = {
  put: 0.5,
  // Time per put <= 1.5 x (raw batched insert + 2 Fernet encryptions).
  putWithCredentials: 1 / 1.5,
  // Time per cold get <= 2 x raw prepared SELECT by primary key.
  coldGet: 0.5,
} as const;

// proxywhirl's cache_entries columns, in its order (the tier's own list).
const COLUMNS = L3_COLUMNS;

// ------------------------------------------------------------------ data

const NOW = Date.now();

function proxyUrl(i: number): string {
  return `http://10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}:${8000 + (i % 2000)}`;
}

function source(i: number): string {
  return `source-${i % SOURCES}`;
}

function credentials(i: number): { username: string; password: string } {
  return {
    username: `cust-${i.toString(36)}-zone-eu`,
    password: `pw-${(i * 2_654_435_761) >>> 0}`,
  };
}

/** A validated entry without credentials, as the stack hands it to a tier. */
function plainEntry(i: number): ProxyEntry {
  const url = proxyUrl(i);
  return createEntry(
    { proxyUrl: url, key: deriveKey(url), source: source(i) },
    { now: NOW, ttlSecondsFor: () => 86_400 },
  );
}

/** The row the raw reference inserts for an entry: every column, as the tier writes it. */
function rowOf(entry: ProxyEntry, username: Buffer | null, password: Buffer | null): unknown[] {
  const now = Date.now() / 1000;
  return [
    entry.key,
    entry.proxyUrl,
    username,
    password,
    entry.source,
    entry.fetchTime / 1000,
    entry.lastAccessed / 1000,
    entry.accessCount,
    entry.ttlSeconds,
    entry.expiresAt / 1000,
    entry.healthStatus,
    entry.failureCount,
    now,
    now,
    null,
    0,
    0,
    0,
    null,
    null,
    0,
    0,
    0,
  ];
}

function context(keyring: Keyring): TierContext {
  return { cipher: keyring, clock: systemClock, logger: silentLogger, onEvict: () => {} };
}

async function openTier(path: string, keyring: Keyring): Promise<SqliteTier> {
  const tier = new SqliteTier({ path, role: 'l3' });
  await tier.open(context(keyring));
  return tier;
}

/** A raw connection on a file with the tier's schema (created by a tier, then closed). */
async function rawStore(path: string, keyring: Keyring) {
  const tier = await openTier(path, keyring);
  await tier.close();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const insert = db.prepare(
    `INSERT OR REPLACE INTO cache_entries (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`,
  );
  // The statement shape the tier itself uses (an UPSERT that keeps created_at), run raw.
  const upsert = db.prepare(
    `INSERT INTO cache_entries (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')}) ON CONFLICT(key) DO UPDATE SET ${COLUMNS.filter(
      (column) => column !== 'key' && column !== 'created_at',
    )
      .map((column) => `${column} = excluded.${column}`)
      .join(', ')}`,
  );
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');
  return { db, insert, upsert, begin, commit };
}

async function fill(tier: SqliteTier, entries: readonly ProxyEntry[]): Promise<void> {
  for (let start = 0; start < entries.length; start += BATCH) {
    await Promise.all(entries.slice(start, start + BATCH).map((entry) => tier.set(entry)));
  }
}

// ------------------------------------------------------------------ (a), (b) puts

async function puts(root: string, keyring: Keyring): Promise<Result[]> {
  progress('sqlite: building 100,000 entries and filling both stores');
  const entries = Array.from({ length: ENTRIES }, (_, i) => plainEntry(i));
  const tier = await openTier(join(root, 'tier.db'), keyring);
  await fill(tier, entries);
  const raw = await rawStore(join(root, 'raw.db'), keyring);
  const rows = entries.map((entry) => rowOf(entry, null, null));
  raw.begin.run();
  for (const row of rows) raw.insert.run(...row);
  raw.commit.run();

  let rawCursor = 0;
  const rawInsert: SyncBody = (ops) => {
    raw.begin.run();
    for (let n = 0; n < ops; n += 1) {
      raw.insert.run(...(rows[rawCursor] as unknown[]));
      rawCursor = rawCursor + 1 === ENTRIES ? 0 : rawCursor + 1;
    }
    raw.commit.run();
  };
  let setCursor = 0;
  const tierSet: AsyncBody = async (ops) => {
    const writes = new Array<Promise<void>>(ops);
    for (let n = 0; n < ops; n += 1) {
      writes[n] = tier.set(entries[setCursor] as ProxyEntry);
      setCursor = setCursor + 1 === ENTRIES ? 0 : setCursor + 1;
    }
    await Promise.all(writes);
  };
  let upsertCursor = 0;
  const rawUpsert: SyncBody = (ops) => {
    raw.begin.run();
    for (let n = 0; n < ops; n += 1) {
      raw.upsert.run(...(rows[upsertCursor] as unknown[]));
      upsertCursor = upsertCursor + 1 === ENTRIES ? 0 : upsertCursor + 1;
    }
    raw.commit.run();
  };
  const candidate = { name: 'SqliteTier.set x1000 (group commit)', async: tierSet };
  const results = [
    await compareThroughput(
      'sqlite put, no credentials, 100k entries',
      candidate,
      { name: 'INSERT OR REPLACE, 1000-row transactions', sync: rawInsert },
      { ...ROUNDS, budget: BUDGET.put },
    ),
    // INSERT OR REPLACE deletes and re-inserts (every index twice); the tier's UPSERT updates
    // in place. This second reference runs the tier's own statement raw: the ratio is the
    // price of the tier over the engine doing the same work.
    await compareThroughput(
      'sqlite put, no credentials, 100k entries',
      candidate,
      { name: "raw UPSERT (the tier's statement), 1000-row transactions", sync: rawUpsert },
      ROUNDS,
    ),
  ];
  await tier.close();

  // (b) Through the stack: a ProxyCache whose only tier is this SQLite file.
  const cache = await ProxyCache.open({
    tiers: [new SqliteTier({ path: join(root, 'tier.db'), role: 'l3' })],
    keyring,
    logger: silentLogger,
    sweepIntervalMs: 0,
  });
  const inputs = Array.from({ length: ENTRIES }, (_, i) => ({
    proxyUrl: proxyUrl(i),
    source: source(i),
    ...credentials(i),
  }));
  let putCursor = 0;
  const cachePut: AsyncBody = async (ops) => {
    const writes = new Array<Promise<ProxyEntry>>(ops);
    for (let n = 0; n < ops; n += 1) {
      writes[n] = cache.put(inputs[putCursor] as (typeof inputs)[number]);
      putCursor = putCursor + 1 === ENTRIES ? 0 : putCursor + 1;
    }
    await Promise.all(writes);
  };
  let sealedCursor = 0;
  const rawSealedInsert: SyncBody = (ops) => {
    raw.begin.run();
    for (let n = 0; n < ops; n += 1) {
      const input = inputs[sealedCursor] as (typeof inputs)[number];
      const row = rows[sealedCursor] as unknown[];
      row[2] = Buffer.from(keyring.encrypt(input.username), 'latin1');
      row[3] = Buffer.from(keyring.encrypt(input.password), 'latin1');
      raw.insert.run(...row);
      sealedCursor = sealedCursor + 1 === ENTRIES ? 0 : sealedCursor + 1;
    }
    raw.commit.run();
  };
  let sealedUpsertCursor = 0;
  const rawSealedUpsert: SyncBody = (ops) => {
    raw.begin.run();
    for (let n = 0; n < ops; n += 1) {
      const input = inputs[sealedUpsertCursor] as (typeof inputs)[number];
      const row = rows[sealedUpsertCursor] as unknown[];
      row[2] = Buffer.from(keyring.encrypt(input.username), 'latin1');
      row[3] = Buffer.from(keyring.encrypt(input.password), 'latin1');
      raw.upsert.run(...row);
      sealedUpsertCursor = sealedUpsertCursor + 1 === ENTRIES ? 0 : sealedUpsertCursor + 1;
    }
    raw.commit.run();
  };
  const cacheCandidate = { name: 'ProxyCache([sqlite]).put x1000', async: cachePut };
  results.push(
    await compareThroughput(
      'sqlite put, 2 credentials, 100k entries',
      cacheCandidate,
      { name: 'raw batched INSERT OR REPLACE + 2 Fernet encryptions', sync: rawSealedInsert },
      { ...ROUNDS, budget: BUDGET.putWithCredentials },
    ),
    await compareThroughput(
      'sqlite put, 2 credentials, 100k entries',
      cacheCandidate,
      { name: 'raw batched UPSERT + 2 Fernet encryptions', sync: rawSealedUpsert },
      ROUNDS,
    ),
  );
  await cache.close();
  raw.db.close();
  return results;
}

// ------------------------------------------------------------------ (c) cold gets, (d) query

async function reads(root: string, keyring: Keyring): Promise<Result[]> {
  const path = join(root, 'tier.db');
  const tier = await openTier(path, keyring);
  const keys = Array.from({ length: ENTRIES }, (_, i) => deriveKey(proxyUrl(i)));
  // Shuffled, so neither side reads the B-tree in key order.
  let state = 7;
  for (let i = keys.length - 1; i > 0; i -= 1) {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    const j = Math.floor((state / 4_294_967_296) * (i + 1));
    [keys[i], keys[j]] = [keys[j] as string, keys[i] as string];
  }
  const db = new Database(path, { readonly: true });
  const select = db.prepare(`SELECT ${COLUMNS.join(', ')} FROM cache_entries WHERE key = ?`);

  let rawCursor = 0;
  const rawGet: SyncBody = (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      if (select.get(keys[rawCursor]) === undefined) misses += 1;
      rawCursor = rawCursor + 1 === ENTRIES ? 0 : rawCursor + 1;
    }
    if (misses !== 0) throw new Error(`raw get: ${misses} misses`);
  };
  let getCursor = 0;
  const tierGet: SyncBody = (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      if (tier.getSync(keys[getCursor] as string) === undefined) misses += 1;
      getCursor = getCursor + 1 === ENTRIES ? 0 : getCursor + 1;
    }
    if (misses !== 0) throw new Error(`getSync: ${misses} misses`);
  };
  let flushedCursor = 0;
  const tierGetFlushed: AsyncBody = async (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      if (tier.getSync(keys[flushedCursor] as string) === undefined) misses += 1;
      flushedCursor = flushedCursor + 1 === ENTRIES ? 0 : flushedCursor + 1;
    }
    if (misses !== 0) throw new Error(`getSync: ${misses} misses`);
    // The access times these reads recorded are written now, inside the measured time.
    await tier.flush();
  };
  let peekCursor = 0;
  const tierPeek: SyncBody = (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      if (tier.peekSync(keys[peekCursor] as string) === undefined) misses += 1;
      peekCursor = peekCursor + 1 === ENTRIES ? 0 : peekCursor + 1;
    }
    if (misses !== 0) throw new Error(`peekSync: ${misses} misses`);
  };
  const reference = { name: 'raw prepared SELECT by key', sync: rawGet };
  const results = [
    await compareThroughput(
      'sqlite cold get, 100k entries',
      { name: 'SqliteTier.getSync (access time kept in memory)', sync: tierGet },
      reference,
      { ...ROUNDS, budget: BUDGET.coldGet },
    ),
    // Every read here is of a different key, the worst case for access-time writes: each read
    // costs one row update, 1,000 per transaction (hot keys would share one update per flush).
    await compareThroughput(
      'sqlite cold get + access-time writes, 100k entries',
      { name: 'SqliteTier.getSync, flush every 1000', async: tierGetFlushed },
      reference,
      ROUNDS,
    ),
    await compareThroughput(
      'sqlite cold peek, 100k entries',
      { name: 'SqliteTier.peekSync (no access time)', sync: tierPeek },
      reference,
      ROUNDS,
    ),
  ];

  progress('sqlite: recording one health check per entry for the query figure');
  for (let start = 0; start < ENTRIES; start += BATCH) {
    const checks: Promise<unknown>[] = [];
    for (let i = start; i < start + BATCH; i += 1) {
      const passed = i % 3 !== 0;
      checks.push(
        tier.recordHealthCheck(keys[i] as string, {
          status: passed ? 'healthy' : 'unhealthy',
          responseTimeMs: passed ? 50 + (i % 400) : undefined,
          checkUrl: 'http://check.example/ip',
        }),
      );
    }
    await Promise.all(checks);
  }
  const healthiest = {
    source: 'source-3',
    health: 'healthy',
    orderBy: 'successRate',
    limit: 100,
  } as const;
  const query = db.prepare(
    `SELECT ${COLUMNS.map((column) => `cache_entries.${column}`).join(', ')}
     FROM cache_entries JOIN proxytier_health_stats s ON s.key = cache_entries.key
     WHERE cache_entries.source = ? AND cache_entries.health_status = 'healthy'
       AND cache_entries.expires_at > ?
     ORDER BY s.success_rate DESC, ifnull(s.mean_response_ms, 1e308), cache_entries.key
     LIMIT 100`,
  );
  const rawQuery: SyncBody = (ops) => {
    for (let n = 0; n < ops; n += 1) {
      const found = query.all('source-3', Date.now() / 1000);
      if (found.length !== 100) throw new Error(`raw query: ${found.length} rows`);
    }
  };
  const tierQuery: AsyncBody = async (ops) => {
    for (let n = 0; n < ops; n += 1) {
      const found = await tier.query(healthiest);
      if (found.length !== 100) throw new Error(`query: ${found.length} entries`);
    }
  };
  results.push(
    await compareThroughput(
      'sqlite query, 100 healthiest of one source, 100k entries',
      { name: 'SqliteTier.query', async: tierQuery },
      { name: 'the same SQL, raw', sync: rawQuery },
      { ...ROUNDS, batch: 10 },
    ),
  );
  db.close();
  await tier.close();
  return results;
}

/** The SQLite suite: puts without and with credentials, cold gets, and a health query. */
export async function sqliteSuite(): Promise<Result[]> {
  const root = await mkdtemp(join(tmpdir(), 'proxytier-bench-sqlite-'));
  const keyring = new Keyring(generateFernetKey());
  try {
    return [...(await puts(root, keyring)), ...(await reads(root, keyring))];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
