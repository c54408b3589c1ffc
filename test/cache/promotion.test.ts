import { describe, expect, it } from 'vitest';
import { openThreeTiers, proxy } from './helpers.js';

describe('promotion and demotion', () => {
  it('promotes an L3 hit into L2 and L1 and counts each promotion', async () => {
    const { cache, l1, l2, l3 } = await openThreeTiers();
    const entry = await cache.put({ proxyUrl: proxy(1), username: 'u', password: 'p' });
    await l1.delete(entry.key);
    await l2.delete(entry.key);
    const found = await cache.get(entry.key);
    expect(found?.password?.reveal()).toBe('p');
    expect(await l1.has(entry.key)).toBe(true);
    expect(await l2.has(entry.key)).toBe(true);
    expect(l3.calls.set).toBe(1); // the promotion wrote only to the faster tiers
    const stats = await cache.stats();
    expect(stats.tiers.map((tier) => [tier.hits, tier.misses, tier.promotions])).toEqual([
      [0, 1, 1],
      [0, 1, 1],
      [1, 0, 0],
    ]);
    // The next read is an L1 hit.
    await cache.get(entry.key);
    expect((await cache.stats()).tiers[0]?.hits).toBe(1);
    await cache.close();
  });

  it('marks an entry evicted from L1 in the slower tiers, with its access counts, and clears the mark when it returns', async () => {
    const { cache, l1, l2, l3 } = await openThreeTiers({}, 2);
    const a = await cache.put({ proxyUrl: proxy(1) });
    const b = await cache.put({ proxyUrl: proxy(2) });
    await cache.get(a.key);
    await cache.get(a.key);
    await cache.put({ proxyUrl: proxy(3) }); // L1 holds a and c; b is evicted
    await cache.put({ proxyUrl: proxy(4) }); // L1 holds c and d; a is evicted
    await cache.flush(); // demotion writes run in the background
    expect(await l1.has(a.key)).toBe(false);
    const inL2 = await l2.get(a.key);
    const inL3 = await l3.get(a.key);
    expect(inL2?.evictedFromL1).toBe(true);
    expect(inL3?.evictedFromL1).toBe(true);
    expect(inL2?.accessCount).toBe(2); // L1's hits reach the slower tiers at demotion
    expect((await l2.get(b.key))?.evictedFromL1).toBe(true);
    let stats = await cache.stats();
    expect(stats.tiers[0]?.demotions).toBe(2);
    expect(stats.tiers[0]?.evictions.lru).toBe(2);

    const back = await cache.get(a.key);
    expect(back?.evictedFromL1).toBe(false);
    await cache.flush();
    expect((await l2.get(a.key))?.evictedFromL1).toBe(false);
    expect((await l3.get(a.key))?.evictedFromL1).toBe(false);
    expect(l1.peekSync(a.key)?.evictedFromL1).toBe(false);
    stats = await cache.stats();
    expect(stats.tiers.map((tier) => tier.promotions)).toEqual([1, 0, 0]);
    await cache.close();
  });
});
