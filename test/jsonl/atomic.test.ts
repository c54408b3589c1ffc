// JsonlTier's read-modify-write, change feed, touch and LRU bound, within one process: one
// instance, and two instances on one directory (each has its own lock files and key directory,
// so they behave like two processes; test/jsonl/processes.test.ts has the real ones).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import type { ProxyEntry } from '../../src/record/entry.js';
import { JsonlTier, type JsonlTierOptions } from '../../src/tiers/jsonl/index.js';
import type { TierChanges } from '../../src/tiers/tier.js';
import { makeContext, sampleEntry, START } from '../tiers/contract.js';

describe('JsonlTier: modify, change feed, touch', () => {
  let dir: string;
  const keyring = new Keyring(generateFernetKey());
  const opened: JsonlTier[] = [];

  async function open(options: Partial<JsonlTierOptions> = {}, clock = new ManualClock(START)) {
    const tier = new JsonlTier({ dir, ...options });
    const ctx = makeContext(keyring, clock);
    await tier.open(ctx.context);
    opened.push(tier);
    return { tier, evictions: ctx.evictions, clock };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxytier-jsonl-atomic-'));
  });

  afterEach(async () => {
    for (const tier of opened.splice(0)) await tier.close();
    await rm(dir, { recursive: true, force: true });
  });

  const increment = (current: ProxyEntry) => ({ failureCount: current.failureCount + 1 });
  const sorted = (changes: TierChanges) => (changes === 'flush' ? changes : [...changes].sort());
  /** Lets the event loop turn, so a write lease taken in this turn is given up. */
  const turn = () => new Promise((resolve) => setImmediate(resolve));

  describe('modify', () => {
    it('keeps every increment of concurrent calls, across ticks and shards', async () => {
      const { tier } = await open();
      const entries = Array.from({ length: 4 }, (_, i) => sampleEntry(keyring, i));
      for (const entry of entries) await tier.set(entry);
      const calls: Promise<ProxyEntry | undefined>[] = [];
      for (let round = 0; round < 10; round += 1) {
        for (const entry of entries) {
          for (let i = 0; i < 5; i += 1) calls.push(tier.modify(entry.key, increment));
        }
        await turn();
      }
      await Promise.all(calls);
      for (const entry of entries) expect(tier.getSync(entry.key)?.failureCount).toBe(50);
    });

    it('keeps every increment of two instances on one directory', async () => {
      const { tier: a } = await open();
      const { tier: b } = await open();
      const entry = sampleEntry(keyring, 1);
      await a.set(entry);
      const calls: Promise<unknown>[] = [];
      for (let round = 0; round < 50; round += 1) {
        calls.push(a.modify(entry.key, increment), b.modify(entry.key, increment));
        if (round % 5 === 0) await turn();
      }
      const results = await Promise.all(calls);
      expect(results.every((found) => found !== undefined)).toBe(true);
      expect((await a.get(entry.key))?.failureCount).toBe(100);
      expect((await b.get(entry.key))?.failureCount).toBe(100);
      expect((await b.get(entry.key))?.password?.reveal()).toBe(entry.password?.reveal());
    });

    it('sees a delete by another instance, and never recreates the key', async () => {
      const { tier: a } = await open();
      const { tier: b } = await open();
      const entry = sampleEntry(keyring, 2);
      await a.set(entry);
      expect(b.getSync(entry.key)).toBeDefined();
      await a.delete(entry.key);
      expect(await b.modify(entry.key, increment)).toBeUndefined();
      expect(await b.update(entry.key, { failureCount: 9 })).toBe(false);
      expect(await a.has(entry.key)).toBe(false);
      expect(await b.size()).toBe(0);
    });

    it('resolves the entry after the change and applies it to a write still pending', async () => {
      const { tier } = await open();
      const entry = sampleEntry(keyring, 3, { failureCount: 2 });
      void tier.set(entry); // not awaited: the modify must build on it
      const changed = await tier.modify(entry.key, (current) => ({
        failureCount: current.failureCount * 10,
        healthStatus: 'unhealthy',
      }));
      expect(changed).toMatchObject({ failureCount: 20, healthStatus: 'unhealthy' });
      expect(changed?.password?.reveal()).toBe(entry.password?.reveal());
      expect(tier.getSync(entry.key)).toMatchObject({ failureCount: 20 });
    });
  });

  it('update of an absent key resolves false and creates nothing', async () => {
    const { tier } = await open();
    expect(await tier.update('absent-key', { failureCount: 1 })).toBe(false);
    expect(await tier.has('absent-key')).toBe(false);
    expect(await tier.size()).toBe(0);
  });

  describe('change feed', () => {
    it("reports another instance's sets, deletes and modifies, not its own writes", async () => {
      const { tier: a } = await open();
      const { tier: b } = await open();
      const [x, y, z, own] = Array.from({ length: 4 }, (_, i) => sampleEntry(keyring, 10 + i)) as [
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
      ];
      await a.set(y);
      await a.set(z);
      expect(b.readChanges()).toEqual([]); // the starting point
      expect(b.readChanges()).toEqual([]);
      await a.set(x);
      await a.delete(y.key);
      await a.modify(z.key, increment);
      await b.set(own);
      await b.modify(z.key, increment); // b's own write: its catch-up still saw a's
      await turn();
      expect(sorted(b.readChanges())).toEqual([x.key, y.key, z.key].sort());
      expect(b.readChanges()).toEqual([]);
      expect(a.readChanges()).toEqual([]);
      expect(a.readChanges()).toEqual([]); // b's writes came before a's starting point
      await b.modify(z.key, increment);
      await turn();
      expect(a.readChanges()).toEqual([z.key]);
      expect(a.getSync(z.key)?.failureCount).toBe(3);
    });

    it("says 'flush' after another instance compacts or clears, not after its own", async () => {
      const { tier: a } = await open();
      const { tier: b } = await open();
      for (let i = 0; i < 20; i += 1) await a.set(sampleEntry(keyring, 30 + i));
      expect(b.readChanges()).toEqual([]);
      expect((await a.compact()).shards).toBeGreaterThan(0);
      expect(b.readChanges()).toBe('flush');
      expect(b.readChanges()).toEqual([]);
      expect(await b.size()).toBe(20);

      expect(a.readChanges()).toEqual([]);
      await b.set(sampleEntry(keyring, 60));
      await b.compact();
      await turn();
      expect(b.readChanges()).toEqual([]); // its own compaction
      expect(a.readChanges()).toBe('flush');

      await b.clear();
      expect(a.readChanges()).toBe('flush');
      expect(b.readChanges()).toEqual([]);
      expect(await a.size()).toBe(0);
    });
  });

  describe('maxEntries', () => {
    it('keeps an entry that L1 uses (touch) through eviction', async () => {
      const { tier, evictions } = await open({ maxEntries: 3 });
      const [a, b, c, d] = Array.from({ length: 4 }, (_, i) => sampleEntry(keyring, 70 + i)) as [
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
      ];
      for (const entry of [a, b, c]) await tier.set(entry);
      // a is the least recently used here; L1 served it since.
      await tier.touch([{ key: a.key, lastAccessed: START + 60_000, accessCount: 7 }]);
      await tier.set(d);
      expect(evictions).toEqual([{ key: b.key, reason: 'lru' }]);
      expect(tier.peekSync(a.key)).toMatchObject({ lastAccessed: START + 60_000, accessCount: 7 });
    });

    it('keeps the touched access times and order across a restart', async () => {
      let { tier } = await open({ maxEntries: 3 });
      const [a, b, c, d] = Array.from({ length: 4 }, (_, i) => sampleEntry(keyring, 80 + i)) as [
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
      ];
      for (const entry of [a, b, c]) await tier.set(entry);
      await tier.touch([{ key: a.key, lastAccessed: START + 60_000, accessCount: 4 }]);
      await tier.close();
      const reopened = await open({ maxEntries: 3 });
      tier = reopened.tier;
      expect(tier.peekSync(a.key)).toMatchObject({ lastAccessed: START + 60_000, accessCount: 4 });
      await tier.set(d);
      expect(reopened.evictions).toEqual([{ key: b.key, reason: 'lru' }]);
    });

    it('never evicts the entry being written (update and modify are uses)', async () => {
      const { tier: bounded, evictions } = await open({ maxEntries: 3 });
      const { tier: other } = await open();
      const [a, b, c, d, e] = Array.from({ length: 5 }, (_, i) => sampleEntry(keyring, 90 + i)) as [
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
      ];
      for (const entry of [a, b, c]) await bounded.set(entry);
      // Another process adds d: the bounded tier is over its bound when it next writes, and a,
      // the entry it writes, is its least recently used.
      await other.set(d);
      expect(bounded.hasSync(d.key)).toBe(true);
      expect(await bounded.update(a.key, { failureCount: 1 })).toBe(true);
      expect(bounded.hasSync(a.key)).toBe(true);
      expect(evictions).toEqual([{ key: b.key, reason: 'lru' }]);

      await other.set(e);
      expect(bounded.hasSync(e.key)).toBe(true);
      await turn();
      // c is now the least recently used: modify it.
      expect(await bounded.modify(c.key, increment)).toMatchObject({ failureCount: 1 });
      expect(bounded.hasSync(c.key)).toBe(true);
      expect(evictions.map((evicted) => evicted.key)).toEqual([b.key, d.key]);
    });
  });
});
