import { describe, expect, it } from 'vitest';
import type { DegradeEvent, RecoverEvent } from '../../src/proxy-cache.js';
import { FaultTier } from '../../src/tiers/fault.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { deriveKey } from '../../src/record/url.js';
import { openCache, openThreeTiers, proxy, recordingLogger } from './helpers.js';

describe('graceful degradation', () => {
  it('switches a failing tier off after N consecutive failures and keeps serving', async () => {
    const logger = recordingLogger();
    const { cache, l1, l2 } = await openThreeTiers({ tierFailureThreshold: 3, logger });
    const degraded: DegradeEvent[] = [];
    cache.on('degrade', (event) => degraded.push(event));
    const entries = await Promise.all(
      [1, 2, 3, 4].map((index) => cache.put({ proxyUrl: proxy(index) })),
    );
    for (const entry of entries) await l1.delete(entry.key);

    l2.failAll();
    for (const entry of entries.slice(0, 3)) {
      expect((await cache.get(entry.key))?.key).toBe(entry.key); // served by L3
    }
    expect(degraded.map((event) => event.tier)).toEqual(['l2']);
    expect(degraded[0]?.error).toMatchObject({ code: 'E_TIER' });
    const callsWhenDegraded = l2.calls.get;
    await l1.delete(entries[3]!.key);
    expect(await cache.get(entries[3]!.key)).toBeDefined();
    expect(l2.calls.get).toBe(callsWhenDegraded); // a degraded tier is not called at all
    await cache.put({ proxyUrl: proxy(9) }); // writes still land in L1 and L3
    const stats = await cache.stats();
    expect(stats.tiers[1]).toMatchObject({
      degraded: true,
      degradations: 1,
      errors: 3,
      entries: undefined,
    });
    expect(logger.lines.filter((line) => line.level === 'warn')).toHaveLength(1);
    expect(logger.lines.find((line) => line.level === 'warn')?.message).toContain(
      'tier "l2" failed 3 times in a row and is switched off',
    );
    await cache.close();
  });

  it('probes a degraded tier after the probe interval, recovers it, and replays what it missed', async () => {
    const { cache, clock, l2 } = await openThreeTiers({
      tierFailureThreshold: 2,
      tierProbeIntervalMs: 30_000,
    });
    const recovered: RecoverEvent[] = [];
    cache.on('recover', (event) => recovered.push(event));
    const kept = await cache.put({ proxyUrl: proxy(1) });
    const removed = await cache.put({ proxyUrl: proxy(2) });
    l2.failAll();
    // The first failure leaves l2 in service, so the write did not happen there: it rejects.
    await expect(cache.put({ proxyUrl: proxy(3) })).rejects.toMatchObject({
      code: 'E_TIER_WRITE',
      tier: 'l2',
    });
    await cache.put({ proxyUrl: proxy(4) }); // second failure: l2 is now off, the write held
    const missed = await cache.put({ proxyUrl: proxy(5), source: 'while-degraded' });
    await cache.delete(removed.key);
    l2.heal();

    await clock.advance(29_999);
    await cache.get('probe-not-yet');
    expect(recovered).toEqual([]);
    await clock.advance(1);
    await cache.get('probe-now'); // this call probes l2, which answers
    expect(recovered).toEqual([{ tier: 'l2' }]);
    await cache.flush();

    expect(await l2.has(kept.key)).toBe(true);
    expect(await l2.has(removed.key)).toBe(false); // the delete it missed was replayed
    expect((await l2.get(missed.key))?.source).toBe('while-degraded'); // and the writes
    expect(await l2.has((await cache.peek(missed.key))!.key)).toBe(true);
    const stats = await cache.stats();
    expect(stats.tiers[1]).toMatchObject({ degraded: false, degradations: 1 });
    await cache.close();
  });

  it('clears a tier on recovery when clear() ran while it was off', async () => {
    const { cache, clock, l2 } = await openThreeTiers({
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 1_000,
    });
    await cache.put({ proxyUrl: proxy(1) });
    l2.failAll();
    await cache.put({ proxyUrl: proxy(2) }); // l2 is now off
    await cache.clear();
    l2.heal();
    await clock.advance(1_000);
    await cache.get('probe');
    await cache.flush();
    expect(await l2.size()).toBe(0);
    await cache.close();
  });

  it('stays off when the probe fails, and probes again an interval later', async () => {
    const { cache, clock, l2 } = await openThreeTiers({
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 1_000,
    });
    l2.failAll();
    await cache.get('a');
    const afterDegrade = l2.calls.get;
    await clock.advance(1_000);
    await cache.get('b'); // probe: fails
    await cache.get('c'); // not probed again yet
    expect(l2.calls.get).toBe(afterDegrade + 1);
    l2.heal();
    await clock.advance(1_000);
    await cache.get('d');
    expect((await cache.stats()).tiers[1]?.degraded).toBe(false);
    await cache.close();
  });

  it('does not hang on a tier that never answers: its calls time out on the clock', async () => {
    const slow = new FaultTier({ name: 'slow', timeoutMs: 50 });
    const l3 = new FaultTier({ name: 'l3' });
    const { cache, clock } = await openCache({
      tiers: [new MemoryTier({ maxEntries: 10 }), slow, l3],
    });
    const entry = await cache.put({ proxyUrl: proxy(1) });
    slow.setLatency(60_000);
    const deleting = cache.delete(entry.key);
    const outcome = expect(deleting).rejects.toMatchObject({ code: 'E_TIER_WRITE', tier: 'slow' });
    await clock.advance(50);
    await outcome;
    // No transaction spans tiers: l3 committed its part though the delete as a whole rejected.
    expect(await l3.has(entry.key)).toBe(false);
    await l3.set(entry);
    const reading = cache.get(entry.key);
    await clock.advance(50);
    expect((await reading)?.key).toBe(entry.key); // from l3, after the read of slow timed out
    await clock.advance(50); // the promotion into the slow tier times out too: third failure
    await cache.flush();
    expect((await cache.stats()).tiers[1]).toMatchObject({ errors: 3, degraded: true });
    await cache.close();
  });

  it('rejects a write that a persistent tier in service could not commit, naming the tier', async () => {
    const l1 = new FaultTier({ name: 'a', persistent: false });
    const l2 = new FaultTier({ name: 'b' });
    const { cache } = await openCache({ tiers: [l1, l2], tierFailureThreshold: 3 });
    l1.failAll();
    await expect(cache.put({ proxyUrl: proxy(1) })).resolves.toBeDefined(); // L1 is a cache
    l2.failAll(1);
    const error = await cache.put({ proxyUrl: proxy(2) }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_TIER_WRITE', tier: 'b' });
    expect(String(error)).toContain('"b" tier could not commit the put');
    expect(await l2.has(deriveKey(proxy(2)))).toBe(false);
    await cache.close();
  });

  it('rejects with E_TIER_UNAVAILABLE when no tier at all took a write', async () => {
    const only = new FaultTier({ name: 'only', persistent: false });
    const { cache } = await openCache({ tiers: [only], tierFailureThreshold: 1 });
    only.failAll();
    await expect(cache.put({ proxyUrl: proxy(1) })).rejects.toMatchObject({
      code: 'E_TIER_UNAVAILABLE',
    });
    await cache.close();
  });

  it('skips a corrupt record, counts it, and serves the entry from a slower tier', async () => {
    const { cache, l1, l2 } = await openThreeTiers();
    const entry = await cache.put({ proxyUrl: proxy(1), password: 'kept' });
    await l1.delete(entry.key);
    l2.corrupt(entry.key);
    const found = await cache.get(entry.key);
    expect(found?.password?.reveal()).toBe('kept');
    const stats = await cache.stats();
    expect(stats.tiers[1]?.evictions.corruption).toBe(1);
    expect(stats.tiers[2]?.hits).toBe(1);
    await cache.flush();
    expect(await l2.has(entry.key)).toBe(true); // promoted back over the corrupt record
    await cache.close();
  });
});

describe('a tier that cannot open', () => {
  it('starts switched off, the others serve, and a later probe opens it', async () => {
    const logger = recordingLogger();
    const l2 = new FaultTier({ name: 'l2' });
    l2.failAll(1); // the open fails
    const l3 = new FaultTier({ name: 'l3' });
    const { cache, clock } = await openCache({
      tiers: [new MemoryTier({ maxEntries: 10 }), l2, l3],
      logger,
      tierProbeIntervalMs: 5_000,
    });
    expect(logger.lines.find((line) => line.level === 'warn')?.message).toContain(
      'tier "l2" could not be opened and is switched off',
    );
    const entry = await cache.put({ proxyUrl: proxy(1) });
    expect(await l3.has(entry.key)).toBe(true);
    expect((await cache.stats()).tiers[1]).toMatchObject({ degraded: true, entries: undefined });
    await clock.advance(5_000);
    await cache.get('probe'); // starts the re-open in the background
    await cache.flush();
    expect((await cache.stats()).tiers[1]?.degraded).toBe(false);
    expect(await l2.has(entry.key)).toBe(true); // the write it missed was replayed
    await cache.close();
  });

  it('fails the open when no tier opens', async () => {
    const only = new FaultTier({ name: 'only' });
    only.failAll(1);
    await expect(openCache({ tiers: [only] })).rejects.toMatchObject({ code: 'E_TIER' });
  });
});

describe('event listeners', () => {
  it('a throwing listener is logged and does not break the operation that emitted', async () => {
    const logger = recordingLogger();
    const { cache } = await openCache({ maxEntries: 1, logger });
    cache.on('evict', () => {
      throw new Error('listener bug');
    });
    await cache.put({ proxyUrl: proxy(1) });
    await expect(cache.put({ proxyUrl: proxy(2) })).resolves.toBeDefined(); // evicts the first
    expect(logger.lines).toContainEqual({
      level: 'error',
      message: 'a "evict" listener threw: listener bug',
    });
    expect((await cache.stats()).tiers[0]).toMatchObject({ errors: 0, degraded: false });
    await cache.close();
  });
});
