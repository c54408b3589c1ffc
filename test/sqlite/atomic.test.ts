// The SQLite tier under concurrency: atomic read-modify-write (modify, recordHealthCheck) in one
// process and across real child processes, the short busy wait that fails E_TIER_BUSY instead of
// blocking, the change feed other processes read, reads that see this tier's pending writes,
// touch, and maxEntries never evicting what it just wrote. The children import the built package
// (`npm run build` first, as `npm test` does).
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import type { ProxyTierError, TierError } from '../../src/errors.js';
import { createEntry, type ProxyEntry, type ProxyEntryInput } from '../../src/record/entry.js';
import { SqliteTier, type SqliteTierOptions } from '../../src/tiers/sqlite/index.js';
import { START, openSqlite, rawDatabase, removeDir, tempDir } from '../support/sqlite-fixtures.js';

const run = promisify(execFile);
const DIST = resolve('dist');
const WORKER = resolve('test/support/sqlite-atomic-worker.mjs');
const key = generateFernetKey();
const keyring = new Keyring(key);
let dir: string;
let path: string;
const opened: SqliteTier[] = [];

beforeEach(async () => {
  dir = await tempDir('proxytier-sqlite-atomic-');
  path = join(dir, 'proxywhirl.db');
});
afterEach(async () => {
  for (const tier of opened.splice(0)) await tier.close();
  await removeDir(dir);
});

async function open(options: Partial<SqliteTierOptions> = {}) {
  const made = await openSqlite({ path, role: 'l3', ...options } as SqliteTierOptions, keyring);
  opened.push(made.tier);
  return made;
}

function entry(index: number, overrides: Partial<ProxyEntryInput> = {}): ProxyEntry {
  const made = createEntry(
    {
      proxyUrl: `http://10.7.${Math.floor(index / 250)}.${index % 250}:8080`,
      password: `secret-${index}`,
      source: 'provider-a',
      ...overrides,
    },
    { now: START, ttlSecondsFor: () => 3600 },
  );
  made.password?.seal(keyring);
  return made;
}

async function failure(call: () => unknown): Promise<ProxyTierError> {
  try {
    await call();
  } catch (error) {
    return error as ProxyTierError;
  }
  throw new Error('expected the call to fail');
}

/** Runs the worker in `count` child processes at once; resolves their reports. */
async function children(count: number, role: 'l2' | 'l3', ...args: string[]) {
  // Process start-up varies by tens of ms: a common start time makes the children overlap.
  const start = String(Date.now() + 1_000);
  const reports = await Promise.all(
    Array.from({ length: count }, () =>
      run(process.execPath, [WORKER, DIST, path, role, ...args], {
        env: {
          PATH: process.env['PATH'] ?? '',
          PROXYTIER_TEST_KEY: key,
          PROXYTIER_TEST_START: start,
        },
        timeout: 60_000,
      }),
    ),
  );
  return reports.map(
    ({ stdout }) =>
      JSON.parse(stdout.trim()) as { done: number; busyRetries: number; errors: string[] },
  );
}

describe('modify', () => {
  it('two tier instances on one file lose no increment, and credentials stay readable', async () => {
    const { tier: a } = await open();
    const { tier: b } = await open();
    const proxy = entry(1);
    await a.set(proxy);
    const increment = (tier: SqliteTier) =>
      tier.modify(proxy.key, (current) => ({ failureCount: current.failureCount + 1 }));
    await Promise.all(Array.from({ length: 100 }, (_, n) => increment(n % 2 === 0 ? a : b)));
    const found = b.peekSync(proxy.key);
    expect(found?.failureCount).toBe(100);
    expect(found?.password?.reveal()).toBe('secret-1');
  });

  it('applies after the pending writes of this tier, in order', async () => {
    const { tier } = await open({ commitDelayMs: 60_000 });
    const proxy = entry(2);
    const written = tier.set(proxy);
    const modified = tier.modify(proxy.key, (current) => ({
      failureCount: current.failureCount + 5,
    }));
    await tier.flush();
    await written;
    expect((await modified)?.failureCount).toBe(5);
    expect(tier.peekSync(proxy.key)?.failureCount).toBe(5);
  });

  it('update of an absent key resolves false and creates nothing', async () => {
    const { tier } = await open();
    expect(await tier.update('0123456789abcdef', { failureCount: 3 })).toBe(false);
    expect(tier.hasSync('0123456789abcdef')).toBe(false);
  });

  it('three processes x 100 concurrent modifies lose no increment', async () => {
    const { tier } = await open();
    const proxy = entry(3);
    await tier.set(proxy);
    const reports = await children(3, 'l3', 'modify', proxy.key, '100');
    for (const report of reports) expect(report).toMatchObject({ done: 100, errors: [] });
    expect(tier.peekSync(proxy.key)?.failureCount).toBe(300);
  }, 60_000);

  it('three processes x 100 concurrent health checks lose no increment', async () => {
    const { tier } = await open({ historyRetention: { maxRowsPerProxy: Infinity } });
    const proxy = entry(4);
    await tier.set(proxy);
    const reports = await children(3, 'l3', 'health', proxy.key, '100');
    for (const report of reports) expect(report).toMatchObject({ done: 100, errors: [] });
    const found = tier.peekSync(proxy.key);
    expect(found?.totalHealthChecks).toBe(300);
    expect(found?.totalHealthCheckFailures).toBe(3 * 34);
    expect(await tier.healthHistory(proxy.key)).toHaveLength(300);
  }, 60_000);
});

describe('busy database', () => {
  it('a write while another connection holds the write lock fails E_TIER_BUSY at once, then succeeds', async () => {
    const { tier } = await open();
    expect(tier.timeoutMs).toBe(5_000);
    expect(tier.databaseSettings().busyTimeoutMs).toBe(5);
    const stored = entry(5);
    await tier.set(stored);
    const locker = rawDatabase(path);
    locker.prepare('BEGIN IMMEDIATE').run();
    try {
      const started = performance.now();
      const results = await Promise.allSettled([
        tier.set(entry(6)),
        tier.set(entry(7)),
        tier.modify(stored.key, () => ({ failureCount: 1 })),
        tier.recordHealthCheck(stored.key, { status: 'healthy', checkUrl: 'https://x.test/' }),
        tier.touch([{ key: stored.key, lastAccessed: START + 1_000, accessCount: 9 }]),
      ]);
      expect(performance.now() - started).toBeLessThan(100);
      for (const result of results) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason as TierError;
        expect(reason.code).toBe('E_TIER_BUSY');
        expect(reason.tier).toBe('sqlite-l3');
        expect((reason.cause as { code?: string }).code).toMatch(/^SQLITE_BUSY/);
      }
      // WAL: reads go on beside the other connection's write transaction.
      expect(tier.peekSync(stored.key)?.failureCount).toBe(0);
      expect(tier.hasSync(entry(6).key)).toBe(false);
    } finally {
      locker.prepare('ROLLBACK').run();
      locker.close();
    }
    await tier.set(entry(6));
    expect((await tier.modify(stored.key, () => ({ failureCount: 1 })))?.failureCount).toBe(1);
    expect(tier.hasSync(entry(6).key)).toBe(true);
    expect(tier.writeStats.rejected).toBe(5);
  });

  it('deleteSync fails E_TIER_BUSY too', async () => {
    const { tier } = await open();
    await tier.set(entry(8));
    const locker = rawDatabase(path);
    locker.prepare('BEGIN IMMEDIATE').run();
    try {
      expect((await failure(() => tier.deleteSync(entry(8).key))).code).toBe('E_TIER_BUSY');
    } finally {
      locker.prepare('ROLLBACK').run();
      locker.close();
    }
    expect(tier.deleteSync(entry(8).key)).toBe(true);
  });

  it('open waits (asynchronously) for a lock held while it creates the schema', async () => {
    const first = await open();
    await first.tier.close();
    opened.length = 0;
    const locker = rawDatabase(path);
    locker.prepare('BEGIN IMMEDIATE').run();
    const release = setTimeout(() => {
      locker.prepare('COMMIT').run();
      locker.close();
    }, 100);
    const started = performance.now();
    const { tier } = await open();
    clearTimeout(release);
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    expect(tier.hasSync(entry(1).key)).toBe(false);
  });

  it('timeoutMs and busyTimeoutMs are options', async () => {
    const { tier } = await open({ timeoutMs: 1_234, busyTimeoutMs: 20 });
    expect(tier.timeoutMs).toBe(1_234);
    expect(tier.databaseSettings().busyTimeoutMs).toBe(20);
    expect(() => new SqliteTier({ path, role: 'l3', timeoutMs: 0 })).toThrow(
      '"timeoutMs" must be an integer from 1 to 2147483647, got 0',
    );
  });
});

describe('change feed', () => {
  it("reports another instance's sets, deletes and modifies, never its own", async () => {
    const { tier: a } = await open();
    const { tier: b } = await open();
    const [x, y, z] = [entry(10), entry(11), entry(12)];
    await a.set(z);
    expect(a.readChanges()).toEqual([]);
    expect(b.readChanges()).toEqual([]);
    expect(b.readChanges()).toEqual([]);
    await Promise.all([a.set(x), a.set(y)]);
    await a.delete(y.key);
    await a.modify(z.key, () => ({ failureCount: 2 }));
    await a.touch([{ key: x.key, lastAccessed: START + 5_000, accessCount: 3 }]);
    expect([...(b.readChanges() as string[])].sort()).toEqual([x.key, y.key, z.key].sort());
    expect(b.readChanges()).toEqual([]);
    expect(a.readChanges()).toEqual([]);
    await b.recordHealthCheck(x.key, { status: 'healthy', checkUrl: 'https://x.test/' });
    expect(a.readChanges()).toEqual([x.key]);
    expect(b.readChanges()).toEqual([]);
  });

  it("reports another process's changes", async () => {
    const { tier } = await open();
    const [gone, changed] = [entry(20), entry(21)];
    await Promise.all([tier.set(gone), tier.set(changed)]);
    expect(tier.readChanges()).toEqual([]);
    const [report] = await children(1, 'l3', 'feed', gone.key, changed.key, 'http://10.9.9.9:80');
    expect(report).toMatchObject({ done: 3, errors: [] });
    const added = createEntry(
      { proxyUrl: 'http://10.9.9.9:80' },
      { now: START, ttlSecondsFor: () => 1 },
    );
    expect([...(tier.readChanges() as string[])].sort()).toEqual(
      [gone.key, changed.key, added.key].sort(),
    );
    expect(tier.readChanges()).toEqual([]);
    expect(tier.peekSync(changed.key)?.failureCount).toBe(1);
  }, 60_000);

  it("a reader the pruned log left behind gets 'flush', then catches up", async () => {
    const { tier: writer } = await open({ changeLogRows: 10 });
    const { tier: reader } = await open();
    expect(reader.readChanges()).toEqual([]);
    for (let n = 0; n < 30; n += 1) await writer.set(entry(100 + n));
    expect(reader.readChanges()).toBe('flush');
    expect(reader.readChanges()).toEqual([]);
    await writer.set(entry(200));
    expect(reader.readChanges()).toEqual([entry(200).key]);
    const raw = rawDatabase(path, { readonly: true });
    const rows = raw.prepare('SELECT count(*) FROM proxytier_changes').pluck().get() as number;
    raw.close();
    expect(rows).toBeLessThanOrEqual(11);
  });

  it("a change log that went back (emptied by hand) is a 'flush'", async () => {
    const { tier } = await open();
    await Promise.all([tier.set(entry(31)), tier.set(entry(32))]);
    expect(tier.readChanges()).toEqual([]);
    const raw = rawDatabase(path);
    raw.exec('DELETE FROM proxytier_changes');
    raw.prepare("INSERT INTO proxytier_changes (key, origin) VALUES ('k', 'other')").run();
    raw.close();
    expect(tier.readChanges()).toBe('flush');
    expect(tier.readChanges()).toEqual([]);
  });

  it("another instance's clear() is a 'flush'", async () => {
    const { tier: a } = await open();
    const { tier: b } = await open();
    await a.set(entry(30));
    expect(b.readChanges()).toEqual([]);
    await a.clear();
    expect(b.readChanges()).toBe('flush');
    expect(a.readChanges()).toEqual([]);
  });
});

describe('reads see pending writes', () => {
  it('getSync, peekSync and hasSync see an un-awaited set, delete and clear', async () => {
    const { tier } = await open({ commitDelayMs: 60_000 });
    const [kept, removed] = [entry(40), entry(41)];
    await Promise.all([tier.set(kept), tier.set(removed), tier.flush()]);
    const fresh = entry(42);
    const writes = [tier.set(fresh), tier.delete(removed.key)];
    expect(tier.getSync(fresh.key)?.proxyUrl).toBe(fresh.proxyUrl);
    expect(tier.hasSync(fresh.key)).toBe(true);
    expect(tier.peekSync(removed.key)).toBeUndefined();
    expect(tier.hasSync(removed.key)).toBe(false);
    const patched = tier.update(fresh.key, { failureCount: 4 });
    expect(tier.peekSync(fresh.key)?.failureCount).toBe(4);
    const cleared = tier.clear();
    expect(tier.hasSync(kept.key)).toBe(false);
    const after = entry(43);
    writes.push(tier.set(after));
    expect(tier.peekSync(after.key)?.key).toBe(after.key);
    await tier.flush();
    await Promise.all([...writes, patched]);
    expect(await cleared).toBe(2);
    expect(tier.hasSync(kept.key)).toBe(false);
    expect(tier.hasSync(fresh.key)).toBe(false);
    expect(tier.peekSync(after.key)?.password?.reveal()).toBe('secret-43');
  });

  it('a failed write no longer shadows the stored entry', async () => {
    const { tier } = await open();
    const stored = entry(50);
    await tier.set(stored);
    const locker = rawDatabase(path);
    locker.prepare('BEGIN IMMEDIATE').run();
    const deleting = tier.delete(stored.key);
    expect(tier.hasSync(stored.key)).toBe(false);
    expect((await failure(() => deleting)).code).toBe('E_TIER_BUSY');
    locker.prepare('ROLLBACK').run();
    locker.close();
    expect(tier.hasSync(stored.key)).toBe(true);
  });
});

describe('recency', () => {
  it('maxEntries never evicts the entry just written, however old its lastAccessed', async () => {
    const { tier, evictions } = await open({ maxEntries: 3 });
    for (let n = 0; n < 3; n += 1) await tier.set(entry(60 + n, { lastAccessed: START + n }));
    const old = entry(63, { lastAccessed: START - 3_600_000 });
    await tier.set(old);
    expect(tier.hasSync(old.key)).toBe(true);
    expect(evictions).toEqual([{ key: entry(60).key, reason: 'lru' }]);
    // A batch of old entries: each survives its own transaction.
    await Promise.all([64, 65].map((n) => tier.set(entry(n, { lastAccessed: START - 7_200_000 }))));
    expect(tier.hasSync(entry(64).key) && tier.hasSync(entry(65).key)).toBe(true);
    expect(await tier.size()).toBe(3);
  });

  it('touch moves recency forward so the touched entry survives eviction', async () => {
    const { tier, evictions } = await open({ maxEntries: 3 });
    const [a, b, c] = [0, 1, 2].map((n) => entry(70 + n, { lastAccessed: START + n * 1_000 }));
    for (const proxy of [a, b, c]) await tier.set(proxy as ProxyEntry);
    await tier.touch([
      { key: (a as ProxyEntry).key, lastAccessed: START + 10_000, accessCount: 7 },
    ]);
    expect(tier.peekSync((a as ProxyEntry).key)).toMatchObject({
      lastAccessed: START + 10_000,
      accessCount: 7,
    });
    await tier.set(entry(73, { lastAccessed: START + 20_000 }));
    expect(evictions).toEqual([{ key: (b as ProxyEntry).key, reason: 'lru' }]);
    expect(tier.hasSync((a as ProxyEntry).key)).toBe(true);
  });
});
