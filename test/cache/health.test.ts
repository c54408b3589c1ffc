import { describe, expect, it } from 'vitest';
import type { EvictEvent } from '../../src/proxy-cache.js';
import { openThreeTiers, proxy } from './helpers.js';

describe('reportFailure (health-based invalidation)', () => {
  it('counts failures, marks the entry unhealthy, and evicts it everywhere at the threshold', async () => {
    const { cache, l1, l2, l3 } = await openThreeTiers({ healthFailureThreshold: 3 });
    const evictions: EvictEvent[] = [];
    cache.on('evict', (event) => evictions.push(event));
    const entry = await cache.put({ proxyUrl: proxy(1), healthStatus: 'healthy' });

    expect(await cache.reportFailure(entry.key)).toEqual({
      key: entry.key,
      failureCount: 1,
      evicted: false,
    });
    for (const tier of [l1, l2, l3]) {
      expect(await tier.get(entry.key)).toMatchObject({
        failureCount: 1,
        healthStatus: 'unhealthy',
      });
    }
    expect(await cache.reportFailure(entry.key)).toEqual({
      key: entry.key,
      failureCount: 2,
      evicted: false,
    });
    expect(evictions).toEqual([]);

    expect(await cache.reportFailure(entry.key)).toEqual({
      key: entry.key,
      failureCount: 3,
      evicted: true,
    });
    for (const tier of [l1, l2, l3]) expect(await tier.has(entry.key)).toBe(false);
    expect(await cache.get(entry.key)).toBeUndefined();
    expect(evictions.map((event) => [event.tier, event.reason]).sort()).toEqual([
      ['l2', 'health'],
      ['l3', 'health'],
      ['memory', 'health'],
    ]);
    const stats = await cache.stats();
    expect(stats.tiers.map((tier) => tier.evictions.health)).toEqual([1, 1, 1]);
    await cache.close();
  });

  it('continues from the failure count the entry already had', async () => {
    const { cache } = await openThreeTiers({ healthFailureThreshold: 5 });
    const entry = await cache.put({ proxyUrl: proxy(2), failureCount: 4 });
    expect(await cache.reportFailure(entry.key)).toMatchObject({ failureCount: 5, evicted: true });
    await cache.close();
  });

  it('resolves undefined for a key it does not hold', async () => {
    const { cache } = await openThreeTiers();
    expect(await cache.reportFailure('0000000000000000')).toBeUndefined();
    await cache.close();
  });

  it('rejects a threshold that is not a positive integer', async () => {
    await expect(openThreeTiers({ healthFailureThreshold: 0 })).rejects.toThrow(
      '"healthFailureThreshold" must be a positive integer, got 0',
    );
  });
});
