import { describe, expect, it } from 'vitest';
import { DEFAULT_HEALTH_POLICY } from '../../src/health.js';
import { openThreeTiers, proxy, START } from './helpers.js';

// Stacks without a history-keeping tier: the stack applies the policy itself and scans for queries.
describe('health checks and queries without a history tier', () => {
  it('applies a check to every tier by the health policy', async () => {
    const { cache, l1, l2, l3 } = await openThreeTiers();
    const entry = await cache.put({ proxyUrl: proxy(1) });
    const failed = await cache.recordHealthCheck(entry.key, {
      status: 'unhealthy',
      error: 'connect timeout',
      checkUrl: 'http://check.example/ip',
    });
    expect(failed).toMatchObject({
      healthStatus: 'degraded',
      lastHealthCheck: START,
      consecutiveHealthFailures: 1,
      consecutiveHealthSuccesses: 0,
      totalHealthChecks: 1,
      totalHealthCheckFailures: 1,
      lastHealthError: 'connect timeout',
      nextCheckTime: START + DEFAULT_HEALTH_POLICY.retryBaseMs,
    });
    for (const tier of [l1, l2, l3]) {
      expect(await tier.get(entry.key)).toMatchObject({
        healthStatus: 'degraded',
        totalHealthChecks: 1,
      });
    }
    const passed = await cache.recordHealthCheck(entry.key, {
      status: 'healthy',
      responseTimeMs: 120,
      checkUrl: 'http://check.example/ip',
      at: START + 1_000,
    });
    expect(passed).toMatchObject({
      healthStatus: 'healthy',
      consecutiveHealthFailures: 0,
      consecutiveHealthSuccesses: 1,
      totalHealthChecks: 2,
      nextCheckTime: START + 1_000 + DEFAULT_HEALTH_POLICY.checkIntervalMs,
    });
    expect(
      await cache.recordHealthCheck('absent', { status: 'healthy', checkUrl: 'x' }),
    ).toBeUndefined();
    await cache.close();
  });

  it('rejects a malformed check, naming the field', async () => {
    const { cache } = await openThreeTiers();
    await expect(
      cache.recordHealthCheck('k', { status: 'ok' as 'healthy', checkUrl: 'x' }),
    ).rejects.toThrow('"status" of a health check must be "healthy" or "unhealthy", got "ok"');
    await expect(
      cache.recordHealthCheck('k', { status: 'healthy', checkUrl: 'x', responseTimeMs: -1 }),
    ).rejects.toMatchObject({ code: 'E_INVALID_OPTION' });
    await cache.close();
  });

  it('has no history to give, and says so', async () => {
    const { cache } = await openThreeTiers();
    await expect(cache.healthHistory('k')).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
    await cache.close();
  });

  it('answers queries by scanning', async () => {
    const { cache } = await openThreeTiers();
    const a = await cache.put({
      proxyUrl: proxy(1),
      source: 'paid',
      healthStatus: 'healthy',
      totalHealthChecks: 10,
      totalHealthCheckFailures: 1,
    });
    const b = await cache.put({
      proxyUrl: `socks5://10.9.0.2:1080`,
      source: 'paid',
      healthStatus: 'healthy',
      totalHealthChecks: 10,
    });
    await cache.put({ proxyUrl: proxy(3), source: 'free', healthStatus: 'healthy' });
    await cache.put({ proxyUrl: proxy(4), source: 'paid', healthStatus: 'dead' });
    const best = await cache.query({ source: 'paid', health: 'healthy', orderBy: 'successRate' });
    expect(best.map((entry) => entry.key)).toEqual([b.key, a.key]);
    expect((await cache.query({ scheme: 'socks5' })).map((entry) => entry.key)).toEqual([b.key]);
    expect(await cache.query({ source: 'paid', limit: 1, orderBy: 'successRate' })).toHaveLength(1);
    await expect(cache.query({ orderBy: 'responseTime' })).rejects.toMatchObject({
      code: 'E_UNSUPPORTED',
    });
    await expect(cache.query({ health: 'fine' as 'healthy' })).rejects.toMatchObject({
      code: 'E_INVALID_OPTION',
    });
    expect((await cache.stats()).requests).toBe(0);
    await cache.close();
  });
});

describe('one health-check validator', () => {
  it('the cache and a SQLite tier called directly refuse the same checks with the same message', async () => {
    const { SqliteTier } = await import('../../src/tiers/sqlite/index.js');
    const { ProxyCache } = await import('../../src/proxy-cache.js');
    const { Keyring } = await import('../../src/crypto/keyring.js');
    const { generateFernetKey } = await import('../../src/crypto/fernet.js');
    const { silentLogger } = await import('../../src/logger.js');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'proxytier-validator-'));
    const memory = await ProxyCache.open({ sweepIntervalMs: 0, logger: silentLogger });
    const tier = new SqliteTier({ path: join(dir, 'store.db'), role: 'l3' });
    const sqlite = await ProxyCache.open({
      tiers: [tier],
      keyring: new Keyring(generateFernetKey()),
      sweepIntervalMs: 0,
      logger: silentLogger,
    });
    const bad: unknown[] = [
      null,
      { status: 'fine', checkUrl: 'http://x' },
      { status: 'healthy', checkUrl: '' },
      { status: 'healthy', checkUrl: 'http://x', responseTimeMs: -1 },
      { status: 'healthy', checkUrl: 'http://x', responseTimeMs: '5' },
      { status: 'healthy', checkUrl: 'http://x', error: 42 },
      { status: 'healthy', checkUrl: 'http://x', at: 'now' },
    ];
    for (const cache of [memory, sqlite]) await cache.put({ proxyUrl: proxy(1) });
    const { deriveKey } = await import('../../src/record/url.js');
    const key = deriveKey(proxy(1));
    const messages = async (target: Pick<typeof memory, 'recordHealthCheck'>) =>
      Promise.all(
        bad.map((check) =>
          target.recordHealthCheck(key, check as never).then(
            () => 'accepted',
            (error: Error & { code: string }) => `${error.code}: ${error.message}`,
          ),
        ),
      );
    const fromMemory = await messages(memory);
    expect(fromMemory.every((message) => message.startsWith('E_INVALID_OPTION: '))).toBe(true);
    expect(await messages(sqlite)).toEqual(fromMemory);
    expect(await messages(tier)).toEqual(fromMemory);
    await memory.close();
    await sqlite.close();
    await rm(dir, { recursive: true, force: true });
  });
});
