import { describe, expect, it } from 'vitest';
import type { ProxyCache } from '../../src/proxy-cache.js';
import type { FaultTier } from '../../src/tiers/fault.js';
import type { MemoryTier } from '../../src/tiers/memory.js';
import { openThreeTiers, proxy } from './helpers.js';

interface Stack {
  cache: ProxyCache;
  l1: MemoryTier;
  l2: FaultTier;
  l3: FaultTier;
  keys: string[];
}

interface Scenario {
  name: string;
  run: (stack: Stack) => Promise<void>;
  /** requests, hits, misses */
  overall: [number, number, number];
  /** per tier: hits, misses, promotions */
  tiers: [number, number, number][];
}

const scenarios: Scenario[] = [
  {
    name: 'nothing read',
    run: async () => {},
    overall: [0, 0, 0],
    tiers: [
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ],
  },
  {
    name: 'three L1 hits',
    run: async ({ cache, keys }) => {
      for (const key of keys) await cache.get(key);
    },
    overall: [3, 3, 0],
    tiers: [
      [3, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ],
  },
  {
    name: 'a miss everywhere counts one request and one miss, and a miss in each tier',
    run: async ({ cache }) => {
      await cache.get('not-there');
    },
    overall: [1, 0, 1],
    tiers: [
      [0, 1, 0],
      [0, 1, 0],
      [0, 1, 0],
    ],
  },
  {
    name: 'an L2 hit promotes once, then L1 serves',
    run: async ({ cache, l1, keys }) => {
      await l1.delete(keys[0] as string);
      await cache.get(keys[0] as string);
      await cache.get(keys[0] as string);
    },
    overall: [2, 2, 0],
    tiers: [
      [1, 1, 1],
      [1, 0, 0],
      [0, 0, 0],
    ],
  },
  {
    name: 'getSync counts like get',
    run: async ({ cache, keys }) => {
      cache.getSync(keys[0] as string);
      cache.getSync('absent');
    },
    overall: [2, 1, 1],
    tiers: [
      [1, 1, 0],
      [0, 0, 0], // getSync consults only synchronous tiers
      [0, 0, 0],
    ],
  },
  {
    name: 'peek, has and iteration count nothing',
    run: async ({ cache, keys }) => {
      await cache.peek(keys[0] as string);
      await cache.has(keys[1] as string);
      for await (const entry of cache.entries()) void entry;
    },
    overall: [0, 0, 0],
    tiers: [
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ],
  },
  {
    name: 'a failing L2 is skipped: the read is an L3 hit, counted once',
    run: async ({ cache, l1, l2, keys }) => {
      await l1.delete(keys[0] as string);
      l2.failAll(1);
      await cache.get(keys[0] as string);
    },
    overall: [1, 1, 0],
    tiers: [
      [0, 1, 1],
      [0, 0, 1],
      [1, 0, 0],
    ],
  },
];

describe('statistics', () => {
  it.each(scenarios)('$name', async (scenario) => {
    const opened = await openThreeTiers();
    const keys: string[] = [];
    for (let index = 0; index < 3; index += 1) {
      keys.push((await opened.cache.put({ proxyUrl: proxy(index) })).key);
    }
    await scenario.run({ ...opened, keys });
    await opened.cache.flush();
    const stats = await opened.cache.stats();
    const [requests, hits, misses] = scenario.overall;
    expect({ requests: stats.requests, hits: stats.hits, misses: stats.misses }).toEqual({
      requests,
      hits,
      misses,
    });
    expect(stats.hitRate).toBe(requests === 0 ? 0 : hits / requests);
    expect(stats.tiers.map((tier) => [tier.hits, tier.misses, tier.promotions])).toEqual(
      scenario.tiers,
    );
    await opened.cache.close();
  });

  it('reports each tier by name and level with its size and counters', async () => {
    const { cache } = await openThreeTiers();
    await cache.put({ proxyUrl: proxy(1) });
    const stats = await cache.stats();
    expect(stats.tiers.map((tier) => [tier.name, tier.level, tier.entries])).toEqual([
      ['memory', 1, 1],
      ['l2', 2, 1],
      ['l3', 3, 1],
    ]);
    expect(stats.tiers[1]).toMatchObject({
      errors: 0,
      degraded: false,
      degradations: 0,
      evictions: { lru: 0, ttl: 0, health: 0, corruption: 0 },
    });
    await cache.close();
  });
});
