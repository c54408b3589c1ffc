// proxywhirl compatibility: the tier opens the files proxywhirl wrote (fixtures), migrates an
// older schema in place, imports its JSONL shards, and what it writes reads back through
// proxywhirl's own positional `SELECT *` with proxywhirl's column list and types.
import { appendFile, cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createEntry, type ProxyEntry } from '../../src/record/entry.js';
import { isHealthTier } from '../../src/tiers/tier.js';
import { SqliteTier } from '../../src/tiers/sqlite/index.js';
import { L2_COLUMNS, L3_COLUMNS } from '../../src/tiers/sqlite/schema.js';
import {
  FIXTURES,
  START,
  copyFixture,
  fixtureKeyring,
  loadExpected,
  openSqlite,
  rawDatabase,
  removeDir,
  tempDir,
  type ExpectedEntry,
  type ExpectedFile,
} from '../support/sqlite-fixtures.js';

let expected: ExpectedFile;
let keyring: Keyring;
let dir: string;
const opened: SqliteTier[] = [];

beforeAll(async () => {
  expected = await loadExpected();
  keyring = await fixtureKeyring();
});

beforeEach(async () => {
  dir = await tempDir();
});

afterEach(async () => {
  for (const tier of opened.splice(0)) await tier.close();
  await removeDir(dir);
});

async function open(path: string, role: 'l2' | 'l3', clock?: Parameters<typeof openSqlite>[2]) {
  const made = await openSqlite({ path, role }, keyring, clock);
  opened.push(made.tier);
  return made;
}

const time = (iso: string | null) => (iso === null ? undefined : Date.parse(iso));

/** Checks an entry read by the tier against expected.json, field by field. */
function expectEntry(actual: ProxyEntry | undefined, want: ExpectedEntry, withHealth: boolean) {
  expect(actual, want.key).toBeDefined();
  const entry = actual as ProxyEntry;
  expect({
    key: entry.key,
    proxyUrl: entry.proxyUrl,
    source: entry.source,
    fetchTime: entry.fetchTime,
    lastAccessed: entry.lastAccessed,
    accessCount: entry.accessCount,
    ttlSeconds: entry.ttlSeconds,
    expiresAt: entry.expiresAt,
    healthStatus: entry.healthStatus,
    failureCount: entry.failureCount,
    evictedFromL1: entry.evictedFromL1,
  }).toEqual({
    key: want.key,
    proxyUrl: want.proxy_url,
    source: want.source,
    fetchTime: time(want.fetch_time),
    lastAccessed: time(want.last_accessed),
    accessCount: want.access_count,
    ttlSeconds: want.ttl_seconds,
    expiresAt: time(want.expires_at),
    healthStatus: want.health_status,
    failureCount: want.failure_count,
    evictedFromL1: want.evicted_from_l1,
  });
  const health = {
    lastHealthCheck: entry.lastHealthCheck,
    consecutiveHealthFailures: entry.consecutiveHealthFailures,
    consecutiveHealthSuccesses: entry.consecutiveHealthSuccesses,
    recoveryAttempt: entry.recoveryAttempt,
    nextCheckTime: entry.nextCheckTime,
    lastHealthError: entry.lastHealthError,
    totalHealthChecks: entry.totalHealthChecks,
    totalHealthCheckFailures: entry.totalHealthCheckFailures,
  };
  if (withHealth) {
    expect(health).toEqual({
      lastHealthCheck: time(want.last_health_check),
      consecutiveHealthFailures: want.consecutive_health_failures,
      consecutiveHealthSuccesses: want.consecutive_health_successes,
      recoveryAttempt: want.recovery_attempt,
      nextCheckTime: time(want.next_check_time),
      lastHealthError: want.last_health_error ?? undefined,
      totalHealthChecks: want.total_health_checks,
      totalHealthCheckFailures: want.total_health_check_failures,
    });
  } else {
    // proxywhirl's l2_cache has no health columns: these take their defaults there.
    expect(health).toEqual({
      lastHealthCheck: undefined,
      consecutiveHealthFailures: 0,
      consecutiveHealthSuccesses: 0,
      recoveryAttempt: 0,
      nextCheckTime: undefined,
      lastHealthError: undefined,
      totalHealthChecks: 0,
      totalHealthCheckFailures: 0,
    });
  }
  expect(entry.username?.reveal() ?? null).toBe(want.username);
  expect(entry.password?.reveal() ?? null).toBe(want.password);
}

describe('reading proxywhirl files', () => {
  it('reads every entry of l2_cache.db (DiskCacheTier), health fields taking defaults', async () => {
    const path = await copyFixture('l2-sqlite/l2_cache.db', dir);
    const { tier } = await open(path, 'l2');
    expect(await tier.size()).toBe(40);
    expect(expected.entries).toHaveLength(40);
    for (const want of expected.entries) expectEntry(tier.peekSync(want.key), want, false);
    // Expired entries are returned: expiry is the stack's decision, not the tier's.
    const expired = expected.entries.filter((want) => want.expired);
    expect(expired.length).toBeGreaterThan(0);
    for (const want of expired) {
      const entry = tier.peekSync(want.key) as ProxyEntry;
      expect(entry.expiresAt).toBe(Date.parse(want.expires_at));
    }
    expect(isHealthTier(tier)).toBe(false);
  });

  it('reads every entry of proxywhirl.db (SQLiteCacheTier) with its health fields and history', async () => {
    const path = await copyFixture('l3/proxywhirl.db', dir);
    const { tier } = await open(path, 'l3');
    expect(await tier.size()).toBe(40);
    for (const want of expected.entries) expectEntry(tier.peekSync(want.key), want, true);
    expect(isHealthTier(tier)).toBe(true);
    const byKey = new Map<string, typeof expected.health_history>();
    for (const row of expected.health_history) {
      byKey.set(row.proxy_key, [...(byKey.get(row.proxy_key) ?? []), row]);
    }
    let rows = 0;
    for (const [key, wanted] of byKey) {
      const history = await tier.healthHistory(key);
      rows += history.length;
      // Newest first.
      const newestFirst = [...wanted].sort((a, b) => b.check_time - a.check_time);
      expect(history).toEqual(
        newestFirst.map((row) => ({
          key,
          checkTime: row.check_time * 1000,
          status: row.status,
          responseTimeMs: row.response_time_ms ?? undefined,
          error: row.error_message ?? undefined,
          checkUrl: row.check_url,
        })),
      );
    }
    expect(rows).toBe(24);
  });

  it('keeps the stored token bytes as they are (no rewrite on open or read)', async () => {
    const path = await copyFixture('l3/proxywhirl.db', dir);
    const before = rawDatabase(path);
    const tokens = before
      .prepare('SELECT key, username_encrypted, password_encrypted FROM cache_entries ORDER BY key')
      .all();
    before.close();
    const { tier } = await open(path, 'l3');
    for (const want of expected.entries) tier.getSync(want.key)?.password?.reveal();
    await tier.close();
    const after = rawDatabase(path);
    expect(
      after
        .prepare(
          'SELECT key, username_encrypted, password_encrypted FROM cache_entries ORDER BY key',
        )
        .all(),
    ).toEqual(tokens);
    after.close();
  });

  it('reads columns by name, whatever their order or extra columns', async () => {
    const path = join(dir, 'shuffled.db');
    const raw = rawDatabase(path);
    raw.exec(`CREATE TABLE l2_cache (
      evicted_from_l1 INTEGER DEFAULT 0, note TEXT, failure_count INTEGER DEFAULT 0,
      health_status TEXT DEFAULT 'unknown', expires_at REAL NOT NULL, ttl_seconds INTEGER NOT NULL,
      access_count INTEGER DEFAULT 0, last_accessed REAL NOT NULL, fetch_time REAL NOT NULL,
      source TEXT NOT NULL, password_encrypted BLOB, username_encrypted BLOB,
      proxy_url TEXT NOT NULL, key TEXT PRIMARY KEY)`);
    raw
      .prepare(
        `INSERT INTO l2_cache (key, proxy_url, username_encrypted, password_encrypted, source,
         fetch_time, last_accessed, access_count, ttl_seconds, expires_at, health_status,
         failure_count, evicted_from_l1, note) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        'k1',
        'http://10.0.0.1:8080',
        Buffer.from(keyring.encrypt('ünïcode'), 'latin1'),
        'list',
        1793538115.5,
        1793538571,
        3,
        60,
        1793538175.5,
        'degraded',
        2,
        1,
        'an extra column proxytier ignores',
      );
    raw.close();
    const { tier } = await open(path, 'l2');
    const entry = tier.peekSync('k1') as ProxyEntry;
    expect(entry).toMatchObject({
      key: 'k1',
      proxyUrl: 'http://10.0.0.1:8080',
      password: undefined,
      source: 'list',
      fetchTime: 1793538115500,
      lastAccessed: 1793538571000,
      accessCount: 3,
      ttlSeconds: 60,
      expiresAt: 1793538175500,
      healthStatus: 'degraded',
      failureCount: 2,
      evictedFromL1: true,
    });
    expect(entry.username?.reveal()).toBe('ünïcode');
  });
});

describe('migrating an older cache_entries in place', () => {
  it('adds the health columns in proxywhirl order and keeps every row', async () => {
    const path = join(dir, 'old.db');
    const raw = rawDatabase(path);
    // proxywhirl's cache_entries before its health monitoring feature (14 columns).
    raw.exec(`CREATE TABLE cache_entries (
      key TEXT PRIMARY KEY, proxy_url TEXT NOT NULL, username_encrypted BLOB,
      password_encrypted BLOB, source TEXT NOT NULL, fetch_time REAL NOT NULL,
      last_accessed REAL NOT NULL, access_count INTEGER DEFAULT 0, ttl_seconds INTEGER NOT NULL,
      expires_at REAL NOT NULL, health_status TEXT DEFAULT 'unknown',
      failure_count INTEGER DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL)`);
    const insert = raw.prepare(
      'INSERT INTO cache_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    for (let i = 0; i < 5; i += 1) {
      insert.run(
        `old${i}`,
        `socks5://10.9.0.${i}:1080`,
        Buffer.from(keyring.encrypt(`user${i}`), 'latin1'),
        i % 2 === 0 ? Buffer.from(keyring.encrypt(`tab\tnew\nline ${i}`), 'latin1') : null,
        'legacy',
        1790000000 + i,
        1790000100 + i,
        i,
        3600,
        1790003600 + i,
        'healthy',
        0,
        1790000000.25,
        1790000000.25,
      );
    }
    raw.close();

    const { tier } = await open(path, 'l3');
    for (let i = 0; i < 5; i += 1) {
      const entry = tier.peekSync(`old${i}`) as ProxyEntry;
      expect(entry).toMatchObject({
        proxyUrl: `socks5://10.9.0.${i}:1080`,
        source: 'legacy',
        fetchTime: (1790000000 + i) * 1000,
        healthStatus: 'healthy',
        lastHealthCheck: undefined,
        consecutiveHealthFailures: 0,
        totalHealthChecks: 0,
        evictedFromL1: false,
      });
      expect(entry.username?.reveal()).toBe(`user${i}`);
      expect(entry.password?.reveal()).toBe(i % 2 === 0 ? `tab\tnew\nline ${i}` : undefined);
    }
    // Health checks work on a migrated row.
    await tier.recordHealthCheck('old0', { status: 'unhealthy', checkUrl: 'http://check/' });
    expect(await tier.healthHistory('old0')).toHaveLength(1);
    await tier.close();

    const check = rawDatabase(path);
    const columns = check
      .prepare('SELECT name FROM pragma_table_info(?)')
      .pluck()
      .all('cache_entries');
    expect(columns).toEqual([...L3_COLUMNS]);
    const tables = check
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
      .pluck()
      .all();
    expect(tables).toContain('health_history');
    // The original creation times survive the migration.
    expect(
      check.prepare("SELECT created_at FROM cache_entries WHERE key = 'old3'").pluck().get(),
    ).toBe(1790000000.25);
    check.close();
  });
});

/** Reads a row the way proxywhirl does: `SELECT *`, mapped by position onto its column list. */
function proxywhirlRead(path: string, table: 'l2_cache' | 'cache_entries', key: string) {
  const raw = rawDatabase(path, { readonly: true });
  const row = raw.prepare(`SELECT * FROM ${table} WHERE key = ?`).raw().get(key) as unknown[];
  const types = raw
    .prepare(
      `SELECT ${(table === 'l2_cache' ? L2_COLUMNS : L3_COLUMNS).map((c) => `typeof(${c})`).join(', ')} FROM ${table} WHERE key = ?`,
    )
    .raw()
    .get(key) as string[];
  raw.close();
  const columns = table === 'l2_cache' ? L2_COLUMNS : L3_COLUMNS;
  expect(row).toHaveLength(columns.length);
  const data: Record<string, unknown> = {};
  const type: Record<string, string> = {};
  columns.forEach((column, index) => {
    data[column] = row[index];
    type[column] = types[index] as string;
  });
  return { data, type };
}

describe('what proxytier writes, proxywhirl reads', () => {
  function sample(index: number): ProxyEntry {
    const entry = createEntry(
      {
        proxyUrl: `http://10.7.0.${index}:3128`,
        username: 'üser\t"x"',
        password: 'p'.repeat(200),
        source: 'provider-a',
        lastHealthCheck: START - 60_000,
        nextCheckTime: START + 240_000,
        lastHealthError: 'connection refused',
        consecutiveHealthFailures: 2,
        totalHealthChecks: 9,
        totalHealthCheckFailures: 3,
        evictedFromL1: true,
        healthStatus: 'degraded',
      },
      { now: START, ttlSecondsFor: () => 600 },
    );
    entry.username?.seal(keyring);
    entry.password?.seal(keyring);
    return entry;
  }

  for (const role of ['l2', 'l3'] as const) {
    it(`${role}: REAL epoch seconds, 0/1 booleans, token BLOBs, every column`, async () => {
      const table = role === 'l2' ? 'l2_cache' : 'cache_entries';
      const path = join(dir, `${role}.db`);
      const { tier, clock } = await open(path, role);
      const entry = sample(1);
      await tier.set(entry);
      const { data, type } = proxywhirlRead(path, table, entry.key);
      expect(data).toMatchObject({
        key: entry.key,
        proxy_url: 'http://10.7.0.1:3128',
        source: 'provider-a',
        fetch_time: START / 1000,
        last_accessed: START / 1000,
        access_count: 0,
        ttl_seconds: 600,
        expires_at: START / 1000 + 600,
        health_status: 'degraded',
        failure_count: 0,
        evicted_from_l1: 1,
      });
      expect(type).toMatchObject({
        proxy_url: 'text',
        username_encrypted: 'blob',
        password_encrypted: 'blob',
        fetch_time: 'real',
        last_accessed: 'real',
        expires_at: 'real',
        access_count: 'integer',
        ttl_seconds: 'integer',
        evicted_from_l1: 'integer',
      });
      // The BLOB is the token's ASCII bytes: proxywhirl's Fernet decrypts it as is.
      expect(keyring.decrypt(data['username_encrypted'] as Buffer)).toBe('üser\t"x"');
      expect(keyring.decrypt(data['password_encrypted'] as Buffer)).toBe('p'.repeat(200));
      expect((data['password_encrypted'] as Buffer).toString('latin1')).toBe(entry.password?.token);
      if (role === 'l3') {
        expect(data).toMatchObject({
          created_at: START / 1000,
          updated_at: START / 1000,
          last_health_check: (START - 60_000) / 1000,
          consecutive_health_failures: 2,
          consecutive_health_successes: 0,
          recovery_attempt: 0,
          next_check_time: (START + 240_000) / 1000,
          last_health_error: 'connection refused',
          total_health_checks: 9,
          total_health_check_failures: 3,
        });
        expect(type).toMatchObject({
          created_at: 'real',
          updated_at: 'real',
          last_health_check: 'real',
          next_check_time: 'real',
        });

        // An update keeps created_at (UPSERT, not INSERT OR REPLACE) and moves updated_at.
        await clock.advance(30_000);
        await tier.set({ ...entry, failureCount: 1 });
        const updated = proxywhirlRead(path, table, entry.key).data;
        expect(updated['created_at']).toBe(START / 1000);
        expect(updated['updated_at']).toBe((START + 30_000) / 1000);
        expect(updated['failure_count']).toBe(1);
      }
    });
  }

  it('writes into a proxywhirl file without disturbing its other rows', async () => {
    const path = await copyFixture('l3/proxywhirl.db', dir);
    const { tier } = await open(path, 'l3');
    const entry = sample(2);
    await tier.set(entry);
    await tier.update(expected.entries[0]?.key as string, { failureCount: 7 });
    await tier.close();
    const { data } = proxywhirlRead(path, 'cache_entries', entry.key);
    expect(keyring.decrypt(data['password_encrypted'] as Buffer)).toBe('p'.repeat(200));
    const first = proxywhirlRead(path, 'cache_entries', expected.entries[0]?.key as string).data;
    expect(first['failure_count']).toBe(7);
    expect(first['created_at']).toBe(1795481055.367654);
    expect(keyring.decrypt(first['password_encrypted'] as Buffer)).toBe(
      expected.entries[0]?.password,
    );
  });
});

describe('proxywhirl writing into a shared L2 database', () => {
  it("a new proxy under an old key does not inherit the old one's health (INSERT OR REPLACE, plain DELETE)", async () => {
    const path = join(dir, 'l2.db');
    const { tier } = await open(path, 'l2');
    const old = createEntry(
      {
        proxyUrl: 'http://10.7.1.1:3128',
        source: 'provider-a',
        consecutiveHealthFailures: 4,
        totalHealthChecks: 12,
        totalHealthCheckFailures: 5,
        lastHealthError: 'connection refused',
      },
      { now: START, ttlSecondsFor: () => 600 },
    );
    await tier.set(old);
    expect((await tier.get(old.key))?.totalHealthChecks).toBe(12);
    // proxywhirl's DiskCacheTier.put, on its own connection (foreign keys off, as Python's
    // sqlite3 leaves them), with the statement of its source.
    const proxywhirlConnection = () => {
      const db = rawDatabase(path);
      db.pragma('foreign_keys = OFF'); // better-sqlite3 turns them on; Python's sqlite3 does not
      return db;
    };
    const replace = (at: number) => {
      const db = proxywhirlConnection();
      db.prepare(
        `INSERT OR REPLACE INTO l2_cache (
          key, proxy_url, username_encrypted, password_encrypted,
          source, fetch_time, last_accessed, access_count,
          ttl_seconds, expires_at, health_status, failure_count,
          evicted_from_l1
        ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        old.key,
        old.proxyUrl,
        null,
        null,
        'provider-b',
        at,
        at,
        0,
        600,
        at + 600,
        'unknown',
        0,
        0,
      );
      db.close();
    };
    replace(START / 1000 + 10);
    const fresh = tier.peekSync(old.key);
    expect(fresh?.source).toBe('provider-b');
    expect(fresh).toMatchObject({
      consecutiveHealthFailures: 0,
      totalHealthChecks: 0,
      totalHealthCheckFailures: 0,
      lastHealthError: undefined,
    });

    // The same after proxywhirl's delete and a later put of the key.
    await tier.set({ ...old, source: 'provider-c' });
    const db = proxywhirlConnection();
    db.prepare('DELETE FROM l2_cache WHERE key = ?').run(old.key);
    expect(db.prepare('SELECT count(*) AS n FROM proxytier_l2_health').get()).toEqual({ n: 0 });
    db.close();
    replace(START / 1000 + 20);
    expect(tier.peekSync(old.key)?.totalHealthChecks).toBe(0);
    // proxytier's own updates keep the side row (an UPSERT is not an insert).
    await tier.set({ ...old, source: 'provider-d' });
    await tier.set({ ...old, source: 'provider-e' });
    expect(tier.peekSync(old.key)).toMatchObject({ source: 'provider-e', totalHealthChecks: 12 });
  });
});

describe('importJsonlShards (proxywhirl migrate_from_jsonl)', () => {
  async function shards(): Promise<string> {
    const target = join(dir, 'jsonl');
    await cp(join(FIXTURES, 'l2-jsonl'), target, { recursive: true });
    return target;
  }

  it('imports every line of the fixture shards with every field, then changes nothing', async () => {
    const { tier } = await open(join(dir, 'l2_cache.db'), 'l2');
    const source = await shards();
    const first = await tier.importJsonlShards(source);
    expect(first).toEqual({
      files: 16,
      imported: 40,
      unchanged: 0,
      superseded: 0,
      corrupt: 0,
      problems: [],
    });
    // JSONL has the health fields; the l2 role keeps them in its side table.
    for (const want of expected.entries) expectEntry(tier.peekSync(want.key), want, true);
    const transactions = tier.writeStats.transactions;
    const second = await tier.importJsonlShards(source);
    expect(second).toMatchObject({ imported: 0, unchanged: 40, corrupt: 0 });
    expect(tier.writeStats.transactions).toBe(transactions);
  });

  it('counts and names damaged lines, lets later lines win, encrypts plaintext credentials', async () => {
    const { tier } = await open(join(dir, 'l2_cache.db'), 'l3');
    const source = await shards();
    const base = {
      proxy_url: 'http://192.0.2.10:8080',
      source: 'hand-written',
      fetch_time: '2026-11-01T10:00:00.250000+00:00',
      last_accessed: '2026-11-01T10:00:00',
      access_count: 1,
      ttl_seconds: 600,
      expires_at: '2099-01-01T00:00:00+00:00',
      health_status: 'unknown',
      failure_count: 0,
      evicted_from_l1: false,
    };
    const foreignToken = Buffer.from(
      new Keyring(generateFernetKey()).encrypt('x'),
      'latin1',
    ).toString('hex');
    const lines = [
      JSON.stringify({ ...base, key: 'plain1', username: 'alice', password: 'wörd\n2' }),
      '{"key": "torn", "proxy_url": "http://192.0.2.11:80", "sou',
      'not json at all',
      JSON.stringify({ ...base, key: 'nourl', proxy_url: undefined }),
      JSON.stringify({ ...base, key: 'badhex', username_encrypted: 'zz11' }),
      JSON.stringify({ ...base, key: 'foreign', password_encrypted: foreignToken }),
      JSON.stringify({ ...base, key: 'badstatus', health_status: 'zombie' }),
      JSON.stringify({ ...base, key: 'dup', failure_count: 1 }),
      '',
      JSON.stringify({ ...base, key: 'dup', failure_count: 2 }),
      '[1, 2, 3]',
    ];
    await writeFile(join(source, 'shard_16.jsonl'), `${lines.join('\n')}\n`);
    await appendFile(join(source, 'ignored.txt'), 'not a shard\n');

    const result = await tier.importJsonlShards(source);
    expect(result).toMatchObject({
      files: 17,
      imported: 42,
      unchanged: 0,
      superseded: 1,
      corrupt: 7,
    });
    expect(result.problems.map((problem) => [problem.file, problem.line])).toEqual([
      ['shard_16.jsonl', 2],
      ['shard_16.jsonl', 3],
      ['shard_16.jsonl', 4],
      ['shard_16.jsonl', 5],
      ['shard_16.jsonl', 6],
      ['shard_16.jsonl', 7],
      ['shard_16.jsonl', 11],
    ]);
    expect(result.problems.map((problem) => problem.reason)).toEqual([
      expect.stringContaining('not valid JSON'),
      expect.stringContaining('not valid JSON'),
      expect.stringContaining('entry nourl: no "proxy_url"'),
      expect.stringContaining('entry badhex: "username_encrypted" is not hexadecimal'),
      expect.stringContaining('entry foreign: the password token does not decrypt'),
      expect.stringContaining('entry badstatus: "health_status" "zombie" is not known'),
      expect.stringContaining('not a JSON object'),
    ]);
    expect(JSON.stringify(result)).not.toContain('wörd');

    const plain = tier.peekSync('plain1') as ProxyEntry;
    expect(plain.username?.reveal()).toBe('alice');
    expect(plain.password?.reveal()).toBe('wörd\n2');
    expect(plain.fetchTime).toBe(Date.parse('2026-11-01T10:00:00.250Z'));
    // A naive isoformat time is UTC.
    expect(plain.lastAccessed).toBe(Date.parse('2026-11-01T10:00:00Z'));
    const raw = rawDatabase(join(dir, 'l2_cache.db'), { readonly: true });
    const stored = raw
      .prepare("SELECT username_encrypted FROM cache_entries WHERE key = 'plain1'")
      .pluck()
      .get() as Buffer;
    raw.close();
    expect(stored.toString('latin1')).not.toContain('alice');
    expect(keyring.decrypt(stored)).toBe('alice');
    expect(tier.peekSync('dup')?.failureCount).toBe(2);

    const again = await tier.importJsonlShards(source);
    expect(again).toMatchObject({ imported: 0, unchanged: 42, superseded: 1, corrupt: 7 });
  });
});
