// The health policy (pure), health checks recorded by the L3 tier, history retention, and
// queries served by indexes.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import {
  applyHealthCheck,
  DEFAULT_HEALTH_POLICY,
  resolveHealthPolicy,
  type HealthState,
} from '../../src/health.js';
import { createEntry, type HealthStatus, type ProxyEntry } from '../../src/record/entry.js';
import type { ProxyQuery } from '../../src/tiers/tier.js';
import { SqliteTier, type SqliteTierOptions } from '../../src/tiers/sqlite/index.js';
import {
  START,
  copyFixture,
  fixtureKeyring,
  loadExpected,
  openSqlite,
  rawDatabase,
  removeDir,
  sqliteContext,
  tempDir,
} from '../support/sqlite-fixtures.js';

const MINUTE = 60_000;
const fresh: HealthState = {
  healthStatus: 'unknown',
  consecutiveHealthFailures: 0,
  consecutiveHealthSuccesses: 0,
  recoveryAttempt: 0,
  totalHealthChecks: 0,
  totalHealthCheckFailures: 0,
  lastHealthError: undefined,
};
const pass = (at: number, responseTimeMs = 120) => ({
  status: 'healthy' as const,
  at,
  responseTimeMs,
  checkUrl: 'http://check.example/ip',
});
const fail = (at: number, error = 'timeout') => ({
  status: 'unhealthy' as const,
  at,
  error,
  checkUrl: 'http://check.example/ip',
});

describe('applyHealthCheck (the health policy)', () => {
  it('a passed check makes a proxy healthy and schedules the next check 5 minutes later', () => {
    expect(applyHealthCheck(fresh, pass(START))).toEqual({
      healthStatus: 'healthy',
      lastHealthCheck: START,
      consecutiveHealthFailures: 0,
      consecutiveHealthSuccesses: 1,
      recoveryAttempt: 0,
      nextCheckTime: START + 5 * MINUTE,
      lastHealthError: undefined,
      totalHealthChecks: 1,
      totalHealthCheckFailures: 0,
    });
  });

  it('failures degrade, then make unhealthy (3), then dead (10), backing off 1, 2, 4... 60 min', () => {
    let state: HealthState = { ...fresh, healthStatus: 'healthy', consecutiveHealthSuccesses: 4 };
    const seen: [HealthStatus, number, number][] = [];
    for (let n = 1; n <= 11; n += 1) {
      const at = START + n * 1000;
      const patch = applyHealthCheck(state, fail(at));
      seen.push([
        patch.healthStatus,
        ((patch.nextCheckTime as number) - at) / MINUTE,
        patch.recoveryAttempt,
      ]);
      expect(patch.consecutiveHealthSuccesses).toBe(0);
      expect(patch.consecutiveHealthFailures).toBe(n);
      state = { ...state, ...patch };
    }
    expect(seen).toEqual([
      ['degraded', 1, 0],
      ['degraded', 2, 0],
      ['unhealthy', 4, 0],
      ['unhealthy', 8, 1],
      ['unhealthy', 16, 2],
      ['unhealthy', 32, 3],
      ['unhealthy', 60, 4],
      ['unhealthy', 60, 5],
      ['unhealthy', 60, 6],
      ['dead', 60, 7],
      ['dead', 60, 8],
    ]);
    expect(state.totalHealthChecks).toBe(11);
    expect(state.totalHealthCheckFailures).toBe(11);
    expect(state.lastHealthError).toBe('timeout');
    // One pass brings it back; the recovery counter and the failure streak reset.
    const back = applyHealthCheck(state, pass(START + MINUTE));
    expect(back).toMatchObject({
      healthStatus: 'healthy',
      consecutiveHealthFailures: 0,
      consecutiveHealthSuccesses: 1,
      recoveryAttempt: 0,
      lastHealthError: 'timeout',
      totalHealthChecks: 12,
    });
  });

  it('names a failure without an error, and a stricter policy recovers through degraded', () => {
    const silent = { status: 'unhealthy' as const, at: START, checkUrl: 'http://check/' };
    expect(applyHealthCheck(fresh, silent).lastHealthError).toBe('health check failed');
    const policy = resolveHealthPolicy({ healthyAfterSuccesses: 2 });
    const unhealthy: HealthState = {
      ...fresh,
      healthStatus: 'unhealthy',
      consecutiveHealthFailures: 5,
    };
    const first = applyHealthCheck(unhealthy, pass(START), policy);
    expect(first).toMatchObject({ healthStatus: 'degraded', recoveryAttempt: 1 });
    const second = applyHealthCheck({ ...unhealthy, ...first }, pass(START + 1), policy);
    expect(second).toMatchObject({ healthStatus: 'healthy', recoveryAttempt: 0 });
    expect(applyHealthCheck(fresh, pass(START), policy).healthStatus).toBe('unknown');
  });

  it('is pure: the entry is not changed', () => {
    const state = { ...fresh };
    applyHealthCheck(state, fail(START));
    expect(state).toEqual(fresh);
    expect(Object.isFrozen(DEFAULT_HEALTH_POLICY)).toBe(true);
  });

  it('validates a policy, naming the setting', () => {
    expect(() => resolveHealthPolicy({ deadAfterFailures: 0 })).toThrow(
      '"healthPolicy.deadAfterFailures" must be a positive integer, got 0',
    );
    expect(() => resolveHealthPolicy({ unhealthyAfterFailures: 20 })).toThrow(
      'degradedAfterFailures <= unhealthyAfterFailures <= deadAfterFailures',
    );
    expect(() => resolveHealthPolicy({ bogus: 1 } as never)).toThrow(
      '"healthPolicy.bogus" is not a healthPolicy option',
    );
  });
});

describe('SqliteTier health checks (L3)', () => {
  let dir: string;
  const keyring = new Keyring(generateFernetKey());
  const opened: SqliteTier[] = [];

  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    for (const tier of opened.splice(0)) await tier.close();
    await removeDir(dir);
  });

  async function open(options: Partial<SqliteTierOptions> = {}) {
    const made = await openSqlite({ path: join(dir, 'l3.db'), role: 'l3', ...options }, keyring);
    opened.push(made.tier);
    return made;
  }

  function entry(index: number, overrides: Parameters<typeof createEntry>[0] | object = {}) {
    const made = createEntry(
      {
        proxyUrl: `http://10.3.${Math.floor(index / 200)}.${index % 200}:8080`,
        password: `pw${index}`,
        source: 'provider-a',
        ...overrides,
      } as Parameters<typeof createEntry>[0],
      { now: START, ttlSecondsFor: () => 3600 },
    );
    made.password?.seal(keyring);
    return made;
  }

  it('applies the cache policy from its context unless given its own', async () => {
    const strict = resolveHealthPolicy({ unhealthyAfterFailures: 1, deadAfterFailures: 2 });
    const fromContext = new SqliteTier({ path: join(dir, 'a.db'), role: 'l3' });
    const { context } = sqliteContext(keyring);
    await fromContext.open({ ...context, healthPolicy: strict });
    opened.push(fromContext);
    expect(fromContext.healthPolicy).toBe(strict);
    const proxy = entry(7);
    await fromContext.set(proxy);
    expect((await fromContext.recordHealthCheck(proxy.key, fail(START)))?.healthStatus).toBe(
      'unhealthy',
    );
    const own = new SqliteTier({
      path: join(dir, 'b.db'),
      role: 'l3',
      healthPolicy: { deadAfterFailures: 20 },
    });
    await own.open({ ...context, healthPolicy: strict });
    opened.push(own);
    expect(own.healthPolicy.deadAfterFailures).toBe(20);
    expect(own.healthPolicy.unhealthyAfterFailures).toBe(3);
  });

  it('updates the entry and appends the history row in one transaction', async () => {
    const { tier, clock } = await open();
    const proxy = entry(1);
    await tier.set(proxy);
    const before = tier.writeStats.transactions;
    await clock.advance(1000);
    const updated = await tier.recordHealthCheck(proxy.key, {
      status: 'unhealthy',
      error: 'connection refused',
      responseTimeMs: 15.5,
      checkUrl: 'http://check.example/ip',
    });
    expect(tier.writeStats.transactions - before).toBe(1);
    expect(updated).toMatchObject({
      key: proxy.key,
      healthStatus: 'degraded',
      lastHealthCheck: START + 1000,
      consecutiveHealthFailures: 1,
      nextCheckTime: START + 1000 + MINUTE,
      lastHealthError: 'connection refused',
      totalHealthChecks: 1,
      totalHealthCheckFailures: 1,
    });
    expect(updated?.password?.reveal()).toBe('pw1');
    const stored = tier.peekSync(proxy.key) as ProxyEntry;
    expect(stored).toMatchObject({ healthStatus: 'degraded', totalHealthChecks: 1 });
    expect(await tier.healthHistory(proxy.key)).toEqual([
      {
        key: proxy.key,
        checkTime: START + 1000,
        status: 'unhealthy',
        responseTimeMs: 15.5,
        error: 'connection refused',
        checkUrl: 'http://check.example/ip',
      },
    ]);
    expect(await tier.recordHealthCheck('absent', pass(START))).toBeUndefined();
    expect(await tier.healthHistory('absent')).toEqual([]);
  });

  it('is atomic: when the history insert fails, the entry keeps its old health fields', async () => {
    const { tier } = await open();
    const proxy = entry(2);
    await tier.set(proxy);
    const raw = rawDatabase(join(dir, 'l3.db'));
    raw.exec(`CREATE TRIGGER refuse_history BEFORE INSERT ON health_history
      WHEN NEW.check_url = 'http://refused/' BEGIN SELECT RAISE(ABORT, 'history refused'); END`);
    raw.close();
    const failing = tier.recordHealthCheck(proxy.key, {
      status: 'unhealthy',
      checkUrl: 'http://refused/',
    });
    const passing = tier.recordHealthCheck(proxy.key, pass(START + 5));
    await expect(failing).rejects.toMatchObject({ code: 'E_TIER' });
    await expect(failing).rejects.toThrow('history refused');
    // The other check of the same batch committed; the refused one left no trace.
    expect(await passing).toMatchObject({ healthStatus: 'healthy', totalHealthChecks: 1 });
    expect(tier.peekSync(proxy.key)).toMatchObject({
      healthStatus: 'healthy',
      totalHealthChecks: 1,
      totalHealthCheckFailures: 0,
    });
    expect((await tier.healthHistory(proxy.key)).map((row) => row.checkUrl)).toEqual([
      'http://check.example/ip',
    ]);
  });

  it('lists history newest first, narrowed by since and limit; checks default to the clock', async () => {
    const { tier, clock } = await open();
    const proxy = entry(3);
    await tier.set(proxy);
    for (let n = 0; n < 6; n += 1) {
      await clock.advance(MINUTE);
      await tier.recordHealthCheck(proxy.key, {
        status: n % 2 === 0 ? 'healthy' : 'unhealthy',
        responseTimeMs: n % 2 === 0 ? 100 + n : undefined,
        checkUrl: 'http://check.example/ip',
      });
    }
    const all = await tier.healthHistory(proxy.key);
    expect(all.map((row) => (row.checkTime - START) / MINUTE)).toEqual([6, 5, 4, 3, 2, 1]);
    expect(
      (await tier.healthHistory(proxy.key, { since: START + 4 * MINUTE })).map(
        (row) => (row.checkTime - START) / MINUTE,
      ),
    ).toEqual([6, 5, 4]);
    expect((await tier.healthHistory(proxy.key, { limit: 2 })).map((row) => row.status)).toEqual([
      'unhealthy',
      'healthy',
    ]);
    await expect(tier.healthHistory(proxy.key, { limit: 0 })).rejects.toThrow(
      '"limit" must be a positive integer, got 0',
    );
    await expect(
      tier.recordHealthCheck(proxy.key, { status: 'ok' as never, checkUrl: 'x' }),
    ).rejects.toThrow('"status" of a health check must be "healthy" or "unhealthy", got "ok"');
    await expect(
      tier.recordHealthCheck(proxy.key, { status: 'healthy', checkUrl: '' }),
    ).rejects.toMatchObject({ code: 'E_INVALID_OPTION' });
  });

  it('deletes the history with its entry', async () => {
    const { tier } = await open();
    const proxy = entry(4);
    await tier.set(proxy);
    await tier.recordHealthCheck(proxy.key, pass(START));
    await tier.delete(proxy.key);
    expect(await tier.healthHistory(proxy.key)).toEqual([]);
  });

  it('keeps at most maxRowsPerProxy rows, pruning in bulk every 256 checks or on demand', async () => {
    const { tier } = await open({ historyRetention: { maxRowsPerProxy: 5 } });
    const proxies = [entry(10), entry(11)];
    for (const proxy of proxies) await tier.set(proxy);
    const record = async (count: number, offset: number) => {
      const pending: Promise<unknown>[] = [];
      for (let n = 0; n < count; n += 1) {
        const proxy = proxies[n % 2] as ProxyEntry;
        pending.push(tier.recordHealthCheck(proxy.key, pass(START + offset + n)));
      }
      await Promise.all(pending);
    };
    const rows = async () =>
      (await tier.healthHistory((proxies[0] as ProxyEntry).key)).length +
      (await tier.healthHistory((proxies[1] as ProxyEntry).key)).length;
    await record(255, 0);
    expect(await rows()).toBe(255); // not yet: no DELETE per insert
    await record(1, 1000);
    expect(await rows()).toBe(10); // the 256th check pruned both proxies in one statement
    await record(20, 2000);
    expect(await rows()).toBe(30);
    expect(await tier.pruneHealthHistory()).toBe(20);
    expect(await rows()).toBe(10);
    const newest = await tier.healthHistory((proxies[0] as ProxyEntry).key);
    expect(newest[0]?.checkTime).toBe(START + 2000 + 18);
  });

  it('drops rows older than maxAgeMs, on demand and with the automatic pass, never at open', async () => {
    const retention = { maxAgeMs: 60 * MINUTE, maxRowsPerProxy: Number.POSITIVE_INFINITY };
    const { tier, clock } = await open({ historyRetention: retention });
    const proxy = entry(20);
    await tier.set(proxy);
    for (const minutes of [0, 30, 90]) {
      await tier.recordHealthCheck(proxy.key, pass(START + minutes * MINUTE));
    }
    await clock.advance(100 * MINUTE);
    // Older than now - 60 min = START + 40 min: the checks at START and START + 30 min.
    expect(await tier.pruneHealthHistory()).toBe(2);
    expect((await tier.healthHistory(proxy.key)).map((row) => row.checkTime)).toEqual([
      START + 90 * MINUTE,
    ]);
    // Opening a file deletes nothing (a proxywhirl file keeps its history until a pass runs).
    await tier.close();
    clock.set(START + 200 * MINUTE);
    const reopened = await openSqlite(
      { path: join(dir, 'l3.db'), role: 'l3', historyRetention: retention },
      keyring,
      clock,
    );
    opened.push(reopened.tier);
    expect(await reopened.tier.healthHistory(proxy.key)).toHaveLength(1);
    // The automatic pass (every 256 checks) applies the age limit too.
    const checks = Array.from({ length: 256 }, (_, n) =>
      reopened.tier.recordHealthCheck(proxy.key, pass(START + 200 * MINUTE + n)),
    );
    await Promise.all(checks);
    const left = await reopened.tier.healthHistory(proxy.key);
    expect(left).toHaveLength(256);
    expect(left.every((row) => row.checkTime >= START + 200 * MINUTE)).toBe(true);
  });
});

describe('SqliteTier.query (L3)', () => {
  let dir: string;
  let tier: SqliteTier;
  const keyring = new Keyring(generateFernetKey());
  const NOW = START + 10 * MINUTE;
  const sources = ['provider-a', 'provider-b', 'free-list'];
  const statuses: HealthStatus[] = ['healthy', 'degraded', 'unhealthy', 'dead', 'unknown'];
  const schemes = ['http', 'socks5', 'https'];
  let all: ProxyEntry[];

  beforeEach(async () => {
    dir = await tempDir();
    const made = await openSqlite({ path: join(dir, 'q.db'), role: 'l3' }, keyring);
    tier = made.tier;
    all = [];
    for (let i = 0; i < 90; i += 1) {
      const entry = createEntry(
        {
          proxyUrl: `${schemes[i % 3] as string}://10.4.0.${i}:${1000 + i}`,
          source: sources[Math.floor(i / 3) % 3] as string,
          healthStatus: statuses[i % 5] as HealthStatus,
          lastAccessed: START + i * 1000,
          lastHealthCheck: i % 4 === 0 ? undefined : START - i * 1000,
          nextCheckTime: i % 3 === 0 ? undefined : i % 3 === 1 ? NOW - 1 : NOW + MINUTE,
          expiresAt: i % 10 === 9 ? NOW - 1 : NOW + 60 * MINUTE,
        },
        { now: START, ttlSecondsFor: () => 3600 },
      );
      all.push(entry);
    }
    await Promise.all(all.map((entry) => tier.set(entry)));
    // Health checks: proxy i gets response times around 10*i ms and a success rate by i % 4.
    const checks: Promise<unknown>[] = [];
    for (let i = 0; i < 60; i += 1) {
      const key = (all[i] as ProxyEntry).key;
      for (let n = 0; n < 4; n += 1) {
        const passed = n < 4 - (i % 4);
        checks.push(
          tier.recordHealthCheck(key, {
            status: passed ? 'healthy' : 'unhealthy',
            responseTimeMs: passed ? 10 * i + n : undefined,
            checkUrl: 'http://check/',
            at: START - (4 - n) * 1000,
          }),
        );
      }
    }
    await Promise.all(checks);
    // recordHealthCheck changed health fields; re-read the reference data from the tier.
    all = all.map((entry) => tier.peekSync(entry.key) as ProxyEntry);
    made.clock.set(NOW);
  });

  afterEach(async () => {
    await tier.close();
    await removeDir(dir);
  });

  const keysOf = (entries: ProxyEntry[]) => entries.map((entry) => entry.key);
  const live = (entry: ProxyEntry) => entry.expiresAt > NOW;
  const byLastAccessed = (a: ProxyEntry, b: ProxyEntry) =>
    b.lastAccessed - a.lastAccessed || (a.key < b.key ? -1 : 1);

  it('filters by source, health, scheme, dueForCheck and expiry, most recently used first', async () => {
    const cases: [ProxyQuery, (entry: ProxyEntry) => boolean][] = [
      [{}, live],
      [{ includeExpired: true }, () => true],
      [{ source: 'provider-b' }, (e) => live(e) && e.source === 'provider-b'],
      [{ health: 'dead' }, (e) => live(e) && e.healthStatus === 'dead'],
      [
        { health: ['healthy', 'degraded'] },
        (e) => live(e) && (e.healthStatus === 'healthy' || e.healthStatus === 'degraded'),
      ],
      [
        { source: 'free-list', health: 'healthy' },
        (e) => live(e) && e.source === 'free-list' && e.healthStatus === 'healthy',
      ],
      [{ scheme: 'socks5' }, (e) => live(e) && e.proxyUrl.startsWith('socks5://')],
      [{ scheme: 'HTTP' }, (e) => live(e) && e.proxyUrl.startsWith('http://')],
      [
        { dueForCheck: true },
        (e) => live(e) && (e.nextCheckTime === undefined || e.nextCheckTime <= NOW),
      ],
      [
        { source: 'provider-a', dueForCheck: true, includeExpired: true },
        (e) =>
          e.source === 'provider-a' && (e.nextCheckTime === undefined || e.nextCheckTime <= NOW),
      ],
    ];
    for (const [query, keep] of cases) {
      const want = all.filter(keep).sort(byLastAccessed);
      expect(want.length, JSON.stringify(query)).toBeGreaterThan(0);
      expect(keysOf(await tier.query(query)), JSON.stringify(query)).toEqual(keysOf(want));
    }
    expect(keysOf(await tier.query({ limit: 3 }))).toEqual(
      keysOf(all.filter(live).sort(byLastAccessed).slice(0, 3)),
    );
    const found = await tier.query({ source: 'provider-a', limit: 1 });
    expect(found[0]?.password).toBeUndefined();
  });

  it('orders by last health check, mean response time and success rate', async () => {
    const checked = (await tier.query({ orderBy: 'lastHealthCheck' })).map(
      (e) => e.lastHealthCheck,
    );
    const known = checked.filter((time) => time !== undefined) as number[];
    expect(known).toEqual([...known].sort((a, b) => b - a));
    expect(checked.slice(known.length).every((time) => time === undefined)).toBe(true);

    // Mean response time over each proxy's recent checks, fastest first; unmeasured last.
    const fastest = await tier.query({ orderBy: 'responseTime', limit: 5 });
    expect(fastest.map((e) => all.indexOf(all.find((a) => a.key === e.key) as ProxyEntry))).toEqual(
      [0, 1, 2, 3, 4],
    );
    const everyone = await tier.query({ orderBy: 'responseTime', includeExpired: true });
    expect(everyone).toHaveLength(90);
    expect(new Set(keysOf(everyone.slice(60)))).toEqual(new Set(keysOf(all.slice(60))));

    // Success rate (i % 4 === 0 passed 4 of 4), then faster first among equals.
    const best = await tier.query({ source: 'provider-a', orderBy: 'successRate', limit: 4 });
    const indexes = best.map((e) => all.findIndex((a) => a.key === e.key));
    expect(indexes.every((i) => i % 4 === 0 && i < 60)).toBe(true);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    const healthiest = await tier.query({
      source: 'provider-a',
      health: 'healthy',
      orderBy: 'successRate',
    });
    expect(healthiest.every((e) => e.source === 'provider-a' && e.healthStatus === 'healthy')).toBe(
      true,
    );
  });

  it('serves the common filters by an index, never a full table scan', async () => {
    const filters: ProxyQuery[] = [
      { source: 'provider-a' },
      { health: 'healthy' },
      { health: ['healthy', 'degraded'] },
      { source: 'provider-a', health: 'healthy' },
      { dueForCheck: true },
      { source: 'provider-a', dueForCheck: true },
    ];
    const indexFor = (query: ProxyQuery) =>
      query.source !== undefined
        ? /USING INDEX (idx_source|proxytier_source_health)/
        : query.health !== undefined
          ? /USING INDEX idx_health_status/
          : /USING INDEX proxytier_next_check/;
    for (const query of filters) {
      for (const orderBy of [
        'lastAccessed',
        'lastHealthCheck',
        'responseTime',
        'successRate',
      ] as const) {
        const plan = tier.explainQuery({ ...query, orderBy, limit: 100 });
        const label = `${JSON.stringify(query)} by ${orderBy}: ${plan.join(' | ')}`;
        for (const line of plan) expect(line, label).not.toMatch(/SCAN cache_entries(?! USING)/);
        expect(plan.join('\n'), label).toMatch(indexFor(query));
        // The plan is the one the query runs: it answers.
        await tier.query({ ...query, orderBy, limit: 100 });
      }
    }
    // Without a filter, the order itself comes from an index (no sort of the whole table).
    expect(tier.explainQuery({ limit: 10 })[0]).toBe(
      'SCAN cache_entries USING INDEX idx_last_accessed',
    );
    expect(tier.explainQuery({ orderBy: 'successRate', limit: 10 })[0]).toBe(
      'SCAN proxytier_health_stats USING INDEX proxytier_stats_success',
    );
  });

  it('rejects a malformed query, naming the filter', async () => {
    await expect(tier.query({ health: 'zombie' as never })).rejects.toThrow(
      '"health" must be one of unknown, healthy, degraded, unhealthy, dead (or an array of them), got "zombie"',
    );
    await expect(tier.query({ orderBy: 'speed' as never })).rejects.toThrow(
      '"orderBy" must be one of',
    );
    await expect(tier.query({ limit: -1 })).rejects.toThrow(
      '"limit" must be a positive integer, got -1',
    );
    await expect(tier.query({ sauce: 'x' } as never)).rejects.toMatchObject({
      code: 'E_INVALID_OPTION',
    });
  });
});

describe('queries over the proxywhirl fixture', () => {
  it('finds the fixture entries by source and health', async () => {
    const dir = await tempDir();
    try {
      const expected = await loadExpected();
      const path = await copyFixture('l3/proxywhirl.db', dir);
      const { tier } = await openSqlite({ path, role: 'l3' }, await fixtureKeyring());
      const want = expected.entries
        .filter((e) => e.source === 'free-list' && e.health_status === 'healthy')
        .map((e) => e.key)
        .sort();
      const found = await tier.query({
        source: 'free-list',
        health: 'healthy',
        includeExpired: true,
      });
      expect(found.map((e) => e.key).sort()).toEqual(want);
      // Proxies whose history proxywhirl wrote get aggregates when the side table is created.
      const measured = await tier.query({ orderBy: 'successRate', includeExpired: true, limit: 8 });
      const withHistory = new Set(expected.health_history.map((row) => row.proxy_key));
      expect(measured.every((e) => withHistory.has(e.key))).toBe(true);
      await tier.close();
    } finally {
      await removeDir(dir);
    }
  });
});

describe('history export and import (migration)', () => {
  it('streams every row oldest first, and imports them once into another tier', async () => {
    const dir = await tempDir();
    try {
      const expected = await loadExpected();
      const keyring = await fixtureKeyring();
      const path = await copyFixture('l3/proxywhirl.db', dir);
      const source = (await openSqlite({ path, role: 'l3' }, keyring)).tier;
      const all = [];
      for await (const row of source.allHealthHistory()) all.push(row);
      const oldestFirst = [...expected.health_history].sort((a, b) => a.check_time - b.check_time);
      expect(all.map((row) => [row.key, row.checkTime, row.status, row.error ?? null])).toEqual(
        oldestFirst.map((row) => [
          row.proxy_key,
          row.check_time * 1000,
          row.status,
          row.error_message,
        ]),
      );

      const target = (
        await openSqlite({ path: join(dir, 'target.db'), role: 'l3', maxBatch: 10 }, keyring)
      ).tier;
      for await (const entry of source.entries()) await target.set(entry);
      const extra = {
        key: 'not-stored',
        checkTime: START,
        status: 'healthy' as const,
        checkUrl: 'x',
        responseTimeMs: undefined,
        error: undefined,
      };
      expect(await target.importHealthHistory([...all, extra])).toEqual({
        imported: 24,
        skipped: 1,
      });
      expect(await target.importHealthHistory(source.allHealthHistory())).toEqual({
        imported: 0,
        skipped: 24,
      });
      for (const key of new Set(all.map((row) => row.key))) {
        expect(await target.healthHistory(key)).toEqual(await source.healthHistory(key));
      }
      // The imported rows feed the aggregates the queries order by.
      const measured = await target.query({
        orderBy: 'successRate',
        includeExpired: true,
        limit: 8,
      });
      expect(new Set(measured.map((e) => e.key))).toEqual(new Set(all.map((row) => row.key)));
      await expect(
        target.importHealthHistory([
          { ...extra, key: 'x' },
          { ...extra, status: 'fine' as never },
        ]),
      ).rejects.toThrow(
        'health history row 2: "status" must be "healthy" or "unhealthy", got "fine"',
      );
      await source.close();
      await target.close();
    } finally {
      await removeDir(dir);
    }
  });
});
