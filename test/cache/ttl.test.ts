import { describe, expect, it } from 'vitest';
import type { ExpireEvent, EvictEvent } from '../../src/proxy-cache.js';
import { openCache, openThreeTiers, proxy, START } from './helpers.js';

describe('TTL expiry', () => {
  it('expires lazily on read, from every tier, and counts it once per tier', async () => {
    const { cache, clock, l2, l3 } = await openThreeTiers();
    const expired: ExpireEvent[] = [];
    cache.on('expire', (event) => expired.push(event));
    const entry = await cache.put({ proxyUrl: proxy(1), ttlSeconds: 60 });
    expect(entry.expiresAt).toBe(START + 60_000);
    await clock.advance(59_999);
    expect(await cache.get(entry.key)).toBeDefined();
    await clock.advance(1);
    expect(await cache.get(entry.key)).toBeUndefined();
    expect(expired).toEqual([{ key: entry.key }]);
    expect(await l2.has(entry.key)).toBe(false);
    expect(await l3.has(entry.key)).toBe(false);
    const stats = await cache.stats();
    expect(stats.tiers.map((tier) => tier.evictions.ttl)).toEqual([1, 1, 1]);
    expect(stats).toMatchObject({ requests: 2, hits: 1, misses: 1 });
    await cache.close();
  });

  it('expires on the synchronous path too', async () => {
    const { cache, clock } = await openCache();
    const entry = await cache.put({ proxyUrl: proxy(2), ttlSeconds: 1 });
    expect(cache.getSync(entry.key)).toBe(entry);
    await clock.advance(1_000);
    expect(cache.getSync(entry.key)).toBeUndefined();
    expect(await cache.has(entry.key)).toBe(false);
    await cache.close();
  });

  it('sweeps expired entries in the background on the injected clock', async () => {
    const { cache, clock, l1, l2, l3 } = await openThreeTiers({ sweepIntervalMs: 10_000 });
    const evictions: EvictEvent[] = [];
    cache.on('evict', (event) => evictions.push(event));
    const short = await Promise.all(
      [1, 2, 3].map((index) => cache.put({ proxyUrl: proxy(index), ttlSeconds: 15 })),
    );
    const long = await cache.put({ proxyUrl: proxy(4), ttlSeconds: 3_600 });
    await clock.advance(10_000); // first sweep: nothing is due yet
    expect(await l3.size()).toBe(4);
    await clock.advance(10_000); // second sweep at +20 s removes the three short-lived entries
    expect(await l1.size()).toBe(1);
    expect(await l2.size()).toBe(1);
    expect(await l3.size()).toBe(1);
    expect(await cache.peek(long.key)).toBeDefined();
    expect(evictions.filter((event) => event.reason === 'ttl')).toHaveLength(9);
    for (const entry of short) expect(await cache.has(entry.key)).toBe(false);
    const stats = await cache.stats();
    expect(stats.tiers.map((tier) => tier.evictions.ttl)).toEqual([3, 3, 3]);
    await cache.close();
  });

  it('applies per-source TTLs to entries that give none, and an explicit TTL wins', async () => {
    const { cache, clock } = await openCache({
      defaultTtlSeconds: 3_600,
      ttlBySource: { 'free-list': 60, 'provider-a': 86_400 },
    });
    const free = await cache.put({ proxyUrl: proxy(1), source: 'free-list' });
    const paid = await cache.put({ proxyUrl: proxy(2), source: 'provider-a' });
    const other = await cache.put({ proxyUrl: proxy(3), source: 'elsewhere' });
    const explicit = await cache.put({ proxyUrl: proxy(4), source: 'free-list', ttlSeconds: 600 });
    expect([free, paid, other, explicit].map((entry) => entry.ttlSeconds)).toEqual([
      60, 86_400, 3_600, 600,
    ]);
    await clock.advance(60_000);
    expect(await cache.get(free.key)).toBeUndefined();
    expect(await cache.get(explicit.key)).toBeDefined();
    await clock.advance(3_600_000);
    expect(await cache.get(other.key)).toBeUndefined();
    expect(await cache.get(explicit.key)).toBeUndefined();
    expect(await cache.get(paid.key)).toBeDefined();
    await cache.close();
  });

  it('stops its sweep timer on close', async () => {
    const { cache, clock } = await openCache({ sweepIntervalMs: 1_000 });
    expect(clock.pendingTimers).toBe(1);
    await cache.close();
    expect(clock.pendingTimers).toBe(0);
    await expect(cache.get('x')).rejects.toMatchObject({ code: 'E_CLOSED' });
  });

  it('does not serve an expired entry from a slower tier either', async () => {
    const { cache, clock, l1 } = await openThreeTiers();
    const entry = await cache.put({ proxyUrl: proxy(5), ttlSeconds: 5 });
    await l1.delete(entry.key);
    await clock.advance(5_000);
    expect(await cache.get(entry.key)).toBeUndefined();
    const stats = await cache.stats();
    expect(stats.tiers.map((tier) => [tier.hits, tier.misses, tier.evictions.ttl])).toEqual([
      [0, 1, 0],
      [0, 0, 1],
      [0, 0, 1],
    ]);
    await cache.close();
  });
});
