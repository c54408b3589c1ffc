import { describe, expect, it } from 'vitest';
import { deriveKey } from '../../src/record/url.js';
import { openThreeTiers, proxy } from './helpers.js';

describe('getOrLoad (single-flight)', () => {
  it('runs the loader once for 100 concurrent calls of one key', async () => {
    const { cache, l3 } = await openThreeTiers();
    const key = deriveKey(proxy(1));
    let calls = 0;
    const loader = async () => {
      calls += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { proxyUrl: proxy(1), username: 'u', password: 'p', source: 'loader' };
    };
    const results = await Promise.all(
      Array.from({ length: 100 }, () => cache.getOrLoad(key, loader)),
    );
    expect(calls).toBe(1);
    expect(new Set(results).size).toBe(1);
    expect(results[0]?.key).toBe(key);
    expect(results[0]?.password?.reveal()).toBe('p');
    expect(await l3.has(key)).toBe(true);
    const stats = await cache.stats();
    expect(stats).toMatchObject({ loads: 1, coalesced: 99, requests: 1, hits: 0, misses: 1 });

    // Once cached, the loader is not called again.
    await cache.getOrLoad(key, loader);
    expect(calls).toBe(1);
    await cache.close();
  });

  it('shares a loader failure with every waiter and tries again on the next call', async () => {
    const { cache } = await openThreeTiers();
    const key = deriveKey(proxy(2));
    let calls = 0;
    const failing = async () => {
      calls += 1;
      throw new Error('provider API down');
    };
    const settled = await Promise.allSettled(
      Array.from({ length: 10 }, () => cache.getOrLoad(key, failing)),
    );
    expect(settled.every((result) => result.status === 'rejected')).toBe(true);
    expect(calls).toBe(1);
    const entry = await cache.getOrLoad(key, () => ({ proxyUrl: proxy(2) }));
    expect(entry?.key).toBe(key);
    await cache.close();
  });

  it('caches nothing when the loader finds nothing', async () => {
    const { cache } = await openThreeTiers();
    expect(await cache.getOrLoad('missing', () => undefined)).toBeUndefined();
    expect(await cache.has('missing')).toBe(false);
    await cache.close();
  });
});
