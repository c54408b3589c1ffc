// The SQLite tier's own behaviour beyond the shared contract: options, files and pragmas, group
// commit (batching, acknowledgement after COMMIT, failure isolation), LRU eviction and access
// times, counts kept in memory, an optional engine, and damaged files.
import { execFile } from 'node:child_process';
import { open as openFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { ProxyTierError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import { createEntry, type ProxyEntry, type ProxyEntryInput } from '../../src/record/entry.js';
import { Secret } from '../../src/record/secret.js';
import { isHealthTier } from '../../src/tiers/tier.js';
import { loadDriver } from '../../src/tiers/sqlite/driver.js';
import {
  isSqliteAvailable,
  SqliteTier,
  type SqliteTierOptions,
} from '../../src/tiers/sqlite/index.js';
import {
  START,
  openSqlite,
  rawDatabase,
  removeDir,
  sqliteContext,
  tempDir,
} from '../support/sqlite-fixtures.js';

const run = promisify(execFile);
const keyring = new Keyring(generateFernetKey());
let dir: string;
const opened: SqliteTier[] = [];

beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  for (const tier of opened.splice(0)) await tier.close();
  await removeDir(dir);
});

async function open(
  options: Partial<SqliteTierOptions> = {},
  clock?: Parameters<typeof openSqlite>[2],
) {
  const made = await openSqlite(
    { path: join(dir, 'cache.db'), role: 'l3', ...options } as SqliteTierOptions,
    keyring,
    clock,
  );
  opened.push(made.tier);
  return made;
}

function entry(index: number, overrides: Partial<ProxyEntryInput> = {}): ProxyEntry {
  const made = createEntry(
    {
      proxyUrl: `http://10.5.${Math.floor(index / 250)}.${index % 250}:8080`,
      username: `user${index}`,
      password: `secret-${index}`,
      source: 'provider-a',
      ...overrides,
    },
    { now: START, ttlSecondsFor: () => 3600 },
  );
  made.username?.seal(keyring);
  made.password?.seal(keyring);
  return made;
}

/** Resolves the error a call threw or rejected with. */
async function failure(call: () => unknown): Promise<ProxyTierError> {
  try {
    await call();
  } catch (error) {
    return error as ProxyTierError;
  }
  throw new Error('expected a failure');
}

describe('options', () => {
  const bad: [Record<string, unknown>, string][] = [
    [
      { role: 'l3' },
      '"path" must be the path of a database file (not ":memory:" or a file: URI), got undefined',
    ],
    [{ path: ':memory:', role: 'l3' }, '"path" must be the path of a database file'],
    [
      { path: 'x.db', role: 'l4' },
      '"role" must be "l2" (proxywhirl\'s l2_cache) or "l3" (cache_entries + health_history), got "l4"',
    ],
    [{ path: 'x.db', role: 'l2', maxEntries: 0 }, '"maxEntries" must be a positive integer, got 0'],
    [
      { path: 'x.db', role: 'l2', maxEntries: 1.5 },
      '"maxEntries" must be a positive integer, got 1.5',
    ],
    [
      { path: 'x.db', role: 'l2', durability: 'extra' },
      '"durability" must be "normal" or "full", got "extra"',
    ],
    [
      { path: 'x.db', role: 'l2', busyTimeoutMs: -1 },
      '"busyTimeoutMs" must be an integer from 0 to 2147483647, got -1',
    ],
    [{ path: 'x.db', role: 'l2', name: '' }, '"name" must be a non-empty string, got ""'],
    [
      { path: 'x.db', role: 'l3', historyRetention: { maxAgeMs: 0 } },
      '"historyRetention.maxAgeMs" must be a positive number or Infinity, got 0',
    ],
    [
      { path: 'x.db', role: 'l3', historyRetention: { maxRowsPerProxy: 2.5 } },
      '"historyRetention.maxRowsPerProxy" must be a positive integer or Infinity, got 2.5',
    ],
    [
      { path: 'x.db', role: 'l3', historyRetention: { rows: 1 } },
      '"historyRetention.rows" is not a historyRetention option',
    ],
    [
      { path: 'x.db', role: 'l3', commitDelayMs: -5 },
      '"commitDelayMs" must be an integer from 0 to 60000, got -5',
    ],
    [
      { path: 'x.db', role: 'l3', maxBatch: 0 },
      '"maxBatch" must be an integer from 1 to 1000000, got 0',
    ],
    [{ path: 'x.db', role: 'l3', maxEntires: 10 }, '"maxEntires" is not a SqliteTier option'],
    [
      { path: 'x.db', role: 'l3', healthPolicy: { deadAfterFailures: -1 } },
      '"healthPolicy.deadAfterFailures" must be a positive integer, got -1',
    ],
  ];
  it.each(bad)('rejects %j', (options, message) => {
    let error: unknown;
    try {
      new SqliteTier(options as unknown as SqliteTierOptions);
    } catch (caught) {
      error = caught;
    }
    expect((error as ProxyTierError).code).toBe('E_INVALID_OPTION');
    expect((error as Error).message).toContain(message);
  });

  it('names itself after its role and is persistent', () => {
    expect(new SqliteTier({ path: 'a.db', role: 'l2' }).name).toBe('sqlite-l2');
    const l3 = new SqliteTier({ path: 'a.db', role: 'l3', name: 'archive' });
    expect([l3.name, l3.persistent, l3.role]).toEqual(['archive', true, 'l3']);
  });
});

describe('files and connection', () => {
  it('creates its directory 0700 and its files 0600, in WAL mode with explicit settings', async () => {
    const path = join(dir, 'nested', 'deeper', 'cache.db');
    const { tier } = await openSqlite({ path, role: 'l2', busyTimeoutMs: 1234 }, keyring);
    opened.push(tier);
    await tier.set(entry(1));
    expect((await stat(join(dir, 'nested'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'nested', 'deeper'))).mode & 0o777).toBe(0o700);
    for (const file of ['cache.db', 'cache.db-wal', 'cache.db-shm']) {
      expect((await stat(join(dir, 'nested', 'deeper', file))).mode & 0o777, file).toBe(0o600);
    }
    expect(tier.databaseSettings()).toMatchObject({
      journalMode: 'wal',
      synchronous: 'NORMAL',
      busyTimeoutMs: 1234,
      foreignKeys: true,
    });
  });

  it('sets synchronous=FULL for power-loss durability', async () => {
    const { tier } = await open({ durability: 'full' });
    expect(tier.databaseSettings().synchronous).toBe('FULL');
  });

  it('shares one connection between the tiers of a process that open one file', async () => {
    const path = join(dir, 'shared.db');
    const a = await openSqlite({ path, role: 'l3', name: 'a' }, keyring);
    const b = await openSqlite({ path, role: 'l3', name: 'b', durability: 'full' }, keyring);
    opened.push(a.tier, b.tier);
    // The stronger setting wins for both.
    expect(a.tier.databaseSettings().synchronous).toBe('FULL');
    await a.tier.set(entry(1));
    expect(b.tier.peekSync(entry(1).key)?.password?.reveal()).toBe('secret-1');
    expect(await b.tier.size()).toBe(1);
    await a.tier.close();
    await b.tier.set(entry(2));
    expect(await b.tier.size()).toBe(2);
  });

  it('keeps the count in memory and recounts only after another process wrote', async () => {
    const { tier } = await open();
    await Promise.all([1, 2, 3].map((index) => tier.set(entry(index))));
    expect(await tier.size()).toBe(3);
    await tier.delete(entry(2).key);
    expect(await tier.size()).toBe(2);
    const other = rawDatabase(join(dir, 'cache.db'));
    other
      .prepare(
        `INSERT INTO cache_entries (key, proxy_url, source, fetch_time, last_accessed, ttl_seconds,
         expires_at, created_at, updated_at) VALUES ('foreign', 'http://192.0.2.1:80', 'other', 1, 1, 1, 1, 1, 1)`,
      )
      .run();
    other.close();
    expect(await tier.size()).toBe(3);
    expect(tier.hasSync('foreign')).toBe(true);
  });

  it('is not a health tier in the l2 role', async () => {
    const { tier } = await open({ role: 'l2' });
    expect(isHealthTier(tier)).toBe(false);
    expect((tier as unknown as Record<string, unknown>)['recordHealthCheck']).toBeUndefined();
    const l3 = await open({ role: 'l3', path: join(dir, 'l3.db') });
    expect(isHealthTier(l3.tier)).toBe(true);
  });

  it('refuses an unsealed credential instead of writing it in clear', async () => {
    const { tier } = await open();
    const raw = { ...entry(1), password: new Secret('plain-text-pw') };
    const error = await failure(() => tier.set(raw));
    expect(error.code).toBe('E_TIER');
    expect(error.message).toContain('not sealed');
    expect(error.message).not.toContain('plain-text-pw');
    expect(await tier.size()).toBe(0);
  });

  it('fails with E_CLOSED after close, and E_TIER when opened twice', async () => {
    const { tier, context } = await open();
    expect((await failure(() => tier.open(context))).code).toBe('E_TIER');
    await tier.close();
    expect((await failure(() => tier.set(entry(1)))).code).toBe('E_CLOSED');
    expect((await failure(() => tier.getSync('x'))).code).toBe('E_CLOSED');
    expect((await failure(() => tier.size())).code).toBe('E_CLOSED');
    await tier.close();
  });
});

describe('compact', () => {
  it('checkpoints the WAL and gives free pages back, keeping every entry', async () => {
    const { tier } = await open();
    const path = join(dir, 'cache.db');
    for (let start = 0; start < 3_000; start += 1_000) {
      await Promise.all(Array.from({ length: 1_000 }, (_, n) => tier.set(entry(start + n))));
    }
    await Promise.all(Array.from({ length: 2_900 }, (_, n) => tier.delete(entry(n).key)));
    const report = await tier.compact();
    expect(report).toMatchObject({ checkpointComplete: true, vacuumed: true });
    expect(report.pagesAfter).toBeLessThan(report.pagesBefore);
    expect((await stat(`${path}-wal`)).size).toBe(0);
    expect(await tier.size()).toBe(100);
    expect(tier.peekSync(entry(2_950).key)?.password?.reveal()).toBe('secret-2950');
    await tier.set(entry(5_000));
    expect(await tier.size()).toBe(101);
  });
});

describe('group commit', () => {
  it('puts the writes issued together in one transaction', async () => {
    const { tier } = await open();
    const before = tier.writeStats;
    await Promise.all(Array.from({ length: 200 }, (_, index) => tier.set(entry(index))));
    const after = tier.writeStats;
    expect(after.transactions - before.transactions).toBe(1);
    expect(after.writes - before.writes).toBe(200);
    expect(await tier.size()).toBe(200);
  });

  it('splits a batch at maxBatch', async () => {
    const { tier } = await open({ maxBatch: 50 });
    const before = tier.writeStats.transactions;
    await Promise.all(Array.from({ length: 200 }, (_, index) => tier.set(entry(index))));
    expect(tier.writeStats.transactions - before).toBe(4);
  });

  it('acknowledges a write only once its transaction has committed', async () => {
    const { tier } = await open({ commitDelayMs: 60_000 });
    const reader = rawDatabase(join(dir, 'cache.db'), { readonly: true });
    const visible = (key: string) =>
      reader.prepare('SELECT count(*) FROM cache_entries WHERE key = ?').pluck().get(key) === 1;
    const proxy = entry(1);
    let acknowledged = false;
    let seenAtAck: boolean | undefined;
    const write = tier.set(proxy).then(() => {
      acknowledged = true;
      seenAtAck = visible(proxy.key);
    });
    await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    expect(acknowledged).toBe(false);
    expect(visible(proxy.key)).toBe(false);
    await tier.flush();
    await write;
    expect(seenAtAck).toBe(true);
    reader.close();
  });

  it('rejects alone a write that violates a constraint; its batch commits without it', async () => {
    const { tier } = await open();
    const raw = rawDatabase(join(dir, 'cache.db'));
    raw.exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON cache_entries
      WHEN NEW.source = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END`);
    raw.close();
    const good = [1, 2, 4].map((index) => entry(index));
    const poisoned = entry(3, { source: 'poison' });
    const results = await Promise.allSettled([
      tier.set(good[0] as ProxyEntry),
      tier.set(good[1] as ProxyEntry),
      tier.set(poisoned),
      tier.set(good[2] as ProxyEntry),
    ]);
    expect(results.map((result) => result.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    const reason = (results[2] as PromiseRejectedResult).reason as ProxyTierError;
    expect(reason.code).toBe('E_TIER');
    expect(reason.message).toContain('poisoned entry');
    for (const proxy of good) expect(tier.hasSync(proxy.key)).toBe(true);
    expect(tier.hasSync(poisoned.key)).toBe(false);
    expect(await tier.size()).toBe(3);
  });

  it('rejects exactly the writes of a transaction that fails at COMMIT; the next batch commits', async () => {
    const { tier } = await open();
    // A deferred foreign key is checked at COMMIT: a 'poison' row fails its whole transaction.
    const raw = rawDatabase(join(dir, 'cache.db'));
    raw.exec(`CREATE TABLE fault_parent (id TEXT PRIMARY KEY);
      CREATE TABLE fault_child (parent TEXT REFERENCES fault_parent(id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER fault_at_commit AFTER INSERT ON cache_entries WHEN NEW.source = 'poison'
      BEGIN INSERT INTO fault_child VALUES ('missing'); END`);
    raw.close();
    const failedBatch = [entry(1), entry(2), entry(3, { source: 'poison' })];
    const first = Promise.allSettled(failedBatch.map((proxy) => tier.set(proxy)));
    await tier.flush(); // commit that batch now, so the next writes form another one
    const okBatch = [entry(4), entry(5)];
    const second = Promise.allSettled(okBatch.map((proxy) => tier.set(proxy)));
    const [failed, succeeded] = [await first, await second];
    expect(failed.map((result) => result.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const result of failed) {
      const reason = (result as PromiseRejectedResult).reason as ProxyTierError;
      expect(reason.code).toBe('E_TIER');
      expect(reason.message).toContain('FOREIGN KEY');
    }
    expect(succeeded.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled']);
    for (const proxy of failedBatch) expect(tier.hasSync(proxy.key)).toBe(false);
    for (const proxy of okBatch) expect(tier.hasSync(proxy.key)).toBe(true);
    expect(await tier.size()).toBe(2);
    expect(tier.writeStats).toMatchObject({ rejected: 3 });
  });

  it('runs a synchronous delete after the writes queued before it', async () => {
    const { tier } = await open({ commitDelayMs: 60_000 });
    const proxy = entry(1);
    const write = tier.set(proxy);
    expect(tier.deleteSync(proxy.key)).toBe(true);
    await write;
    expect(tier.hasSync(proxy.key)).toBe(false);
    expect(await tier.size()).toBe(0);
  });
});

describe('maxEntries, access times, expiry', () => {
  for (const role of ['l2', 'l3'] as const) {
    it(`${role}: evicts the least recently used entries beyond maxEntries and reports them`, async () => {
      const { tier, clock, evictions } = await open({ role, maxEntries: 3 });
      const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((index) =>
        entry(index, { lastAccessed: START + index }),
      ) as ProxyEntry[];
      for (const proxy of [a, b, c] as ProxyEntry[]) await tier.set(proxy);
      await clock.advance(60_000);
      expect(tier.getSync((a as ProxyEntry).key)).toBeDefined(); // a is now the most recent
      await tier.set(d as ProxyEntry);
      expect(evictions).toEqual([{ key: (b as ProxyEntry).key, reason: 'lru' }]);
      expect(tier.hasSync((a as ProxyEntry).key)).toBe(true);
      await Promise.all([
        tier.set(e as ProxyEntry),
        tier.set({ ...(d as ProxyEntry), failureCount: 1 }),
      ]);
      expect(evictions.map((eviction) => eviction.key)).toEqual([
        (b as ProxyEntry).key,
        (c as ProxyEntry).key,
      ]);
      expect(await tier.size()).toBe(3);
    });
  }

  it('records reads in memory and writes them with the next transaction, not one per read', async () => {
    const { tier, clock } = await open();
    const proxy = entry(1, { accessCount: 5 });
    await tier.set(proxy);
    const before = tier.writeStats.transactions;
    await clock.advance(1_000);
    for (let n = 0; n < 100; n += 1) tier.getSync(proxy.key);
    tier.peekSync(proxy.key); // a peek is not a use
    expect(tier.pendingAccessUpdates).toBe(1);
    expect(tier.writeStats.transactions).toBe(before);
    // A read returns what is stored; the stack counts the use on the entry it gets.
    expect(tier.peekSync(proxy.key)?.accessCount).toBe(5);
    await tier.set(entry(2)); // the next write transaction carries the access times
    expect(tier.writeStats.transactions).toBe(before + 1);
    expect(tier.pendingAccessUpdates).toBe(0);
    expect(tier.peekSync(proxy.key)).toMatchObject({
      accessCount: 105,
      lastAccessed: START + 1_000,
    });
    tier.getSync(proxy.key);
    await tier.close(); // and close writes the rest
    const reader = rawDatabase(join(dir, 'cache.db'), { readonly: true });
    expect(
      reader.prepare('SELECT access_count FROM cache_entries WHERE key = ?').pluck().get(proxy.key),
    ).toBe(106);
    reader.close();
  });

  it('removes expired entries in bulk and names them', async () => {
    const { tier } = await open({ role: 'l2' });
    const entries = [1, 2, 3, 4].map((index) => entry(index, { expiresAt: START + (index - 2) }));
    await Promise.all(entries.map((proxy) => tier.set(proxy)));
    const removed = await tier.deleteExpired(START);
    expect(removed.sort()).toEqual([entries[0]?.key, entries[1]?.key].sort());
    expect(await tier.size()).toBe(2);
  });

  it('drops a row that cannot be an entry, once, reporting it as corruption', async () => {
    const { tier, evictions } = await open();
    await tier.set(entry(1));
    const raw = rawDatabase(join(dir, 'cache.db'));
    raw.prepare("UPDATE cache_entries SET fetch_time = 'garbage' WHERE key = ?").run(entry(1).key);
    raw.close();
    expect(tier.getSync(entry(1).key)).toBeUndefined();
    expect(tier.getSync(entry(1).key)).toBeUndefined();
    await tier.flush();
    expect(evictions).toEqual([{ key: entry(1).key, reason: 'corruption' }]);
    expect(tier.hasSync(entry(1).key)).toBe(false);
  });
});

describe('better-sqlite3 is optional', () => {
  it('reports E_SQLITE_UNAVAILABLE, saying how to fix it, when the engine cannot load', async () => {
    const missing = Object.assign(new Error("Cannot find package 'better-sqlite3'"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    const error = await failure(() => loadDriver('sqlite-l3', () => Promise.reject(missing)));
    expect(error.code).toBe('E_SQLITE_UNAVAILABLE');
    expect(error.message).toContain('npm install better-sqlite3');
    expect(error.message).toContain('C++ compiler');
    expect(error.message).toContain('ERR_MODULE_NOT_FOUND');
    const broken = await failure(() =>
      loadDriver('sqlite-l3', async () => ({
        default: function Database() {
          throw new Error('The module was compiled against a different Node.js version');
        },
      })),
    );
    expect(broken.code).toBe('E_SQLITE_UNAVAILABLE');
    expect(await isSqliteAvailable()).toBe(true);
  });

  it('opens without better-sqlite3 installed? no: a clear coded error in a real process', async () => {
    // A child process whose module resolution cannot find better-sqlite3 (as if not installed).
    const hook = resolve('test/support/sqlite-hide-driver.mjs');
    const module = resolve('dist/tiers/sqlite/index.js');
    const { stdout } = await run(
      process.execPath,
      [
        '--import',
        hook,
        '--input-type=module',
        '-e',
        `
        const { SqliteTier, isSqliteAvailable } = await import(${JSON.stringify(module)});
        const available = await isSqliteAvailable();
        const tier = new SqliteTier({ path: ${JSON.stringify(join(dir, 'x.db'))}, role: 'l3' });
        const clock = { now: () => 0, every: () => ({ cancel() {} }) };
        const logger = { debug() {}, info() {}, warn() {}, error() {} };
        try {
          await tier.open({ cipher: undefined, clock, logger, onEvict() {} });
          console.log(JSON.stringify({ available, opened: true }));
        } catch (error) {
          console.log(JSON.stringify({ available, code: error.code, message: error.message }));
        }
        `,
      ],
      { timeout: 20_000 },
    );
    const result = JSON.parse(stdout) as { available: boolean; code: string; message: string };
    expect(result.available).toBe(false);
    expect(result.code).toBe('E_SQLITE_UNAVAILABLE');
    expect(result.message).toContain('npm install better-sqlite3');
  });
});

describe('damaged files', () => {
  for (const role of ['l2', 'l3'] as const) {
    it(`${role}: a file of garbage makes open reject with E_CORRUPT, and leaves it untouched`, async () => {
      const path = join(dir, 'garbage.db');
      const garbage = Buffer.alloc(64 * 1024);
      for (let i = 0; i < garbage.length; i += 1) garbage[i] = (i * 7919 + 13) & 255;
      await writeFile(path, garbage);
      const tier = new SqliteTier({ path, role });
      const error = await failure(() => tier.open(sqliteContext(keyring).context));
      expect(error.code).toBe('E_CORRUPT');
      expect(error.message).toContain(path);
      expect(error.message).toContain('SQLITE_NOTADB');
      await tier.close();
      expect((await stat(path)).size).toBe(garbage.length);
    });
  }

  it('can be opened again once the file is repaired (a stack probes a tier that failed to open)', async () => {
    const path = join(dir, 'garbage.db');
    await writeFile(path, Buffer.alloc(8192, 0x5a));
    const tier = new SqliteTier({ path, role: 'l3' });
    const { context } = sqliteContext(keyring);
    expect((await failure(() => tier.open(context))).code).toBe('E_CORRUPT');
    await writeFile(path, Buffer.alloc(0));
    await tier.open(context);
    opened.push(tier);
    await tier.set(entry(1));
    expect(await tier.size()).toBe(1);
  });

  it('a stack whose only tier is a damaged sqlite file fails to open with E_CORRUPT', async () => {
    const path = join(dir, 'garbage.db');
    await writeFile(path, Buffer.alloc(8192, 0x5a));
    const error = await failure(() =>
      ProxyCache.open({
        tiers: [new SqliteTier({ path, role: 'l3' })],
        keyring,
        logger: silentLogger,
        sweepIntervalMs: 0,
      }),
    );
    expect(error.code).toBe('E_CORRUPT');
  });

  it('a file damaged while open gives coded errors from its operations, not a crash', async () => {
    const path = join(dir, 'cache.db');
    const { tier } = await open({ path });
    // More data than SQLite's page cache holds, so reads must go back to the file.
    for (let start = 0; start < 12_000; start += 1_000) {
      await Promise.all(
        Array.from({ length: 1_000 }, (_, n) =>
          tier.set(entry(start + n, { source: `s${n % 7}` })),
        ),
      );
    }
    // Another connection checkpoints the WAL into the file (as any process may), then every
    // page after the header is overwritten while the tier holds the file open.
    const other = rawDatabase(path);
    other.pragma('wal_checkpoint(TRUNCATE)');
    other.close();
    const handle = await openFile(path, 'r+');
    const { size } = await handle.stat();
    const junk = Buffer.alloc(4096, 0xa5);
    for (let offset = 4096; offset < size; offset += 4096)
      await handle.write(junk, 0, 4096, offset);
    await handle.close();

    const outcomes: string[] = [];
    const attempt = async (call: () => unknown) => {
      try {
        await call();
        outcomes.push('ok');
      } catch (error) {
        expect(error).toBeInstanceOf(ProxyTierError);
        outcomes.push((error as ProxyTierError).code);
      }
    };
    await attempt(async () => {
      for await (const found of tier.entries()) found.password?.reveal();
    });
    await attempt(async () => {
      for await (const key of tier.keys()) tier.getSync(key);
    });
    for (let index = 0; index < 12_000; index += 997)
      await attempt(() => tier.getSync(entry(index).key));
    await attempt(() => tier.set(entry(20_000)));
    await attempt(() => tier.deleteExpired(START + 10 * 3_600_000));
    await attempt(() => tier.query({ source: 's3' }));
    await attempt(() => tier.recordHealthCheck(entry(5).key, { status: 'healthy', checkUrl: 'x' }));
    expect(outcomes.filter((code) => code === 'E_CORRUPT').length).toBeGreaterThan(10);
    expect(outcomes.every((code) => ['ok', 'E_CORRUPT', 'E_TIER'].includes(code))).toBe(true);
  });
});
