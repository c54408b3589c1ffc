// The stack over the real SQLite tier: the default store, migration from proxywhirl, health
// history through the stack, and a corrupt database that must not take the cache down.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { exportRecords } from '../../src/io/export.js';
import { silentLogger } from '../../src/logger.js';
import { migrateProxywhirl } from '../../src/migrate.js';
import { openDefaultStore } from '../../src/default-store.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import { JsonlTier } from '../../src/tiers/jsonl/index.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { SqliteTier } from '../../src/tiers/sqlite/index.js';
import { recordingLogger } from '../cache/helpers.js';
import {
  FIXTURES,
  fixtureKeyring,
  loadExpected,
  removeDir,
  tempDir,
} from '../support/sqlite-fixtures.js';
import { Writable } from 'node:stream';

const run = promisify(execFile);

describe('the stack over SQLite', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('proxytier-stack-');
  });
  afterEach(async () => {
    await removeDir(dir);
  });

  async function openDefault(clock = new ManualClock(Date.parse('2026-11-02T00:00:00Z'))) {
    return openDefaultStore({
      dir: join(dir, 'store'),
      keyring: new Keyring(generateFernetKey()),
      logger: silentLogger,
      sweepIntervalMs: 0,
      clock,
    });
  }

  it('opens the default store as memory over SQLite with history, and keeps data across opens', async () => {
    const keyring = new Keyring(generateFernetKey());
    const first = await openDefaultStore({
      dir: join(dir, 'store'),
      keyring,
      logger: silentLogger,
    });
    expect(first.tiers.map((tier) => tier.name)).toEqual(['memory', 'sqlite-l3']);
    expect(first.keepsHealthHistory).toBe(true);
    const entry = await first.put({ proxyUrl: 'http://u:p@192.0.2.1:8080', source: 'a' });
    await first.close();
    const second = await openDefaultStore({
      dir: join(dir, 'store'),
      keyring,
      logger: silentLogger,
    });
    const found = await second.get(entry.key);
    expect(found?.password?.reveal()).toBe('p');
    expect((await second.stats()).tiers.map((tier) => tier.hits)).toEqual([0, 1]);
    await second.close();
  });

  it('records health checks with history through the stack, and failures too', async () => {
    const cache = await openDefault();
    const entry = await cache.put({ proxyUrl: 'http://192.0.2.2:8080' });
    await cache.recordHealthCheck(entry.key, {
      status: 'healthy',
      responseTimeMs: 80,
      checkUrl: 'http://check.example/ip',
    });
    const report = await cache.reportFailure(entry.key, { error: 'HTTP 407' });
    expect(report).toMatchObject({ failureCount: 1, evicted: false });
    const history = await cache.healthHistory(entry.key);
    expect(history.map((row) => [row.status, row.error])).toEqual([
      ['unhealthy', 'HTTP 407'],
      ['healthy', undefined],
    ]);
    const l1 = cache.tiers[0] as MemoryTier;
    expect(l1.peekSync(entry.key)).toMatchObject({
      totalHealthChecks: 2,
      totalHealthCheckFailures: 1,
      failureCount: 1,
      healthStatus: 'unhealthy',
    });
    const best = await cache.query({ health: 'unhealthy', orderBy: 'responseTime' });
    expect(best.map((found) => found.key)).toEqual([entry.key]);
    await cache.close();
  });

  it('migrates a proxywhirl cache: every entry, credential and history row, and a second run changes nothing', async () => {
    const cache = await openDefault();
    const expected = await loadExpected();
    const keyring = await fixtureKeyring();
    const report = await migrateProxywhirl(cache, FIXTURES, { keyring });
    expect(
      report.sources.map((source) => [source.kind, source.entries.loaded, source.entries.failed]),
    ).toEqual([
      ['l3-sqlite', 40, 0],
      ['l2-sqlite', 0, 0],
      ['jsonl', 0, 0],
    ]);
    const l3 = report.sources.find((source) => source.kind === 'l3-sqlite');
    expect(l3?.history).toEqual({ imported: expected.health_history.length, skipped: 0 });

    const exported: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (line !== '') exported.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    });
    await exportRecords(cache.entries({ includeExpired: true }), sink, {
      format: 'jsonl',
      secrets: 'plain',
    });
    expect(exported).toHaveLength(expected.entries.length);
    for (const want of expected.entries) {
      const got = exported.find((row) => row['key'] === want.key);
      const { expired: _expired, ...fields } = want as unknown as Record<string, unknown>;
      expect(got, want.key).toMatchObject(fields);
    }
    for (const row of expected.health_history) {
      const history = await cache.healthHistory(row.proxy_key, { limit: 1000 });
      expect(history.some((found) => found.checkTime === row.check_time * 1000)).toBe(true);
    }

    const again = await migrateProxywhirl(cache, FIXTURES, { keyring });
    for (const source of again.sources) {
      expect(source.entries.loaded + source.entries.updated, source.path).toBe(0);
    }
    expect(again.sources.find((source) => source.kind === 'l3-sqlite')?.history?.imported).toBe(0);
    await cache.close();
  });

  it('gives a malformed query back to the caller without holding it against the tier', async () => {
    const cache = await openDefault();
    const entry = await cache.put({ proxyUrl: 'http://192.0.2.5:8080' });
    for (let attempt = 0; attempt < 5; attempt += 1) {
      await expect(cache.query({ limit: -1 })).rejects.toMatchObject({ code: 'E_INVALID_OPTION' });
      await expect(cache.healthHistory(entry.key, { limit: -1 })).rejects.toMatchObject({
        code: 'E_INVALID_OPTION',
      });
    }
    expect((await cache.stats()).tiers[1]).toMatchObject({ errors: 0, degraded: false });
    await cache.close();
  });

  it('keeps using a JSONL store it finds in the directory', async () => {
    const store = join(dir, 'store');
    const keyring = new Keyring(generateFernetKey());
    const first = await ProxyCache.open({
      tiers: [new JsonlTier({ dir: join(store, 'jsonl') })],
      keyring,
      logger: silentLogger,
    });
    const entry = await first.put({ proxyUrl: 'http://192.0.2.6:8080', password: 'p' });
    await first.close();
    const reopened = await openDefaultStore({ dir: store, keyring, logger: silentLogger });
    expect(reopened.tiers.map((tier) => tier.name)).toEqual(['memory', 'jsonl']);
    expect((await reopened.get(entry.key))?.password?.reveal()).toBe('p');
    await reopened.close();
  });

  it('keeps serving from memory when the database file is garbage, and says so', async () => {
    const path = join(dir, 'garbage.db');
    await writeFile(path, Buffer.alloc(64 * 1024, 0x5a));
    const logger = recordingLogger();
    const cache = await ProxyCache.open({
      tiers: [new MemoryTier({ maxEntries: 100 }), new SqliteTier({ path, role: 'l3' })],
      keyring: new Keyring(generateFernetKey()),
      logger,
      sweepIntervalMs: 0,
    });
    const warning = logger.lines.find((line) => line.level === 'warn')?.message ?? '';
    expect(warning).toContain('could not be opened');
    expect(warning).toContain('E_CORRUPT');
    const entry = await cache.put({ proxyUrl: 'http://192.0.2.3:8080', password: 'kept' });
    expect((await cache.get(entry.key))?.password?.reveal()).toBe('kept');
    expect((await cache.stats()).tiers[1]).toMatchObject({ degraded: true });
    await cache.close();
  });

  it('falls back to the JSONL log, with a one-line notice, where better-sqlite3 cannot load', async () => {
    const script = `
      import { openDefaultStore } from ${JSON.stringify(resolve('dist/index.js'))};
      const cache = await openDefaultStore({ dir: ${JSON.stringify(join(dir, 'store'))} });
      const entry = await cache.put({ proxyUrl: 'http://u:p@192.0.2.4:8080' });
      console.log(JSON.stringify(cache.tiers.map((tier) => tier.name)));
      await cache.close();
    `;
    const { stdout, stderr } = await run(
      process.execPath,
      [
        '--import',
        resolve('test/support/sqlite-hide-driver.mjs'),
        '--input-type=module',
        '-e',
        script,
      ],
      {
        env: {
          PATH: process.env['PATH'] ?? '',
          PROXYTIER_KEY_FILE: join(dir, 'key'),
          HOME: dir,
        },
      },
    );
    expect(JSON.parse(stdout)).toEqual(['memory', 'jsonl']);
    const notices = stderr.trim().split('\n');
    expect(notices.filter((line) => line.includes('better-sqlite3 is not available'))).toHaveLength(
      1,
    );
  });
});
