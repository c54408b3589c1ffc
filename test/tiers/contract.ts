// The contract every tier passes: one suite, run by each tier's own test file with
// `runTierContract({ name, create })`. It checks behaviour through the public Tier methods only.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { silentLogger } from '../../src/logger.js';
import { createEntry, type ProxyEntry, type ProxyEntryInput } from '../../src/record/entry.js';
import type { EvictionReason, Tier, TierContext } from '../../src/tiers/tier.js';

/** How a tier's test file plugs its tier into the contract suite. */
export interface TierContractOptions {
  name: string;
  /** A fresh, unopened tier storing its data under `dir` (a new empty temporary directory). */
  create: (dir: string) => Tier | Promise<Tier>;
  /** True when a second instance over the same `dir` must see what the first one stored. */
  durable?: boolean;
}

export const START = Date.parse('2026-11-01T12:00:00Z');

export function makeContext(keyring: Keyring, clock = new ManualClock(START)) {
  const evictions: { key: string; reason: EvictionReason }[] = [];
  const context: TierContext = {
    cipher: keyring,
    clock,
    logger: silentLogger,
    onEvict: (key, reason) => evictions.push({ key, reason }),
  };
  return { context, evictions };
}

/** A complete entry as the stack would hand it to a tier: validated, secrets sealed. */
export function sampleEntry(
  keyring: Keyring,
  index: number,
  overrides: Partial<ProxyEntryInput> = {},
): ProxyEntry {
  const entry = createEntry(
    {
      proxyUrl: `http://10.0.${Math.floor(index / 250)}.${index % 250}:${8000 + (index % 1000)}`,
      username: `user${index}`,
      password: `p@ss:w/rd?&=${index}`,
      source: index % 2 === 0 ? 'provider-a' : 'free-list',
      ...overrides,
    },
    { now: START, ttlSecondsFor: () => 3600 },
  );
  entry.username?.seal(keyring);
  entry.password?.seal(keyring);
  return entry;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Compares two entries field by field, secrets by their revealed values. */
export function expectSameEntry(actual: ProxyEntry | undefined, expected: ProxyEntry): void {
  expect(actual).toBeDefined();
  const { username, password, ...rest } = actual as ProxyEntry;
  const { username: expectedUser, password: expectedPass, ...expectedRest } = expected;
  expect(rest).toEqual(expectedRest);
  expect(username?.reveal()).toBe(expectedUser?.reveal());
  expect(password?.reveal()).toBe(expectedPass?.reveal());
}

export function runTierContract(options: TierContractOptions): void {
  describe(`tier contract: ${options.name}`, () => {
    let dir: string;
    let keyring: Keyring;
    let tier: Tier;
    let evictions: { key: string; reason: EvictionReason }[];
    const opened: Tier[] = [];

    async function openTier(): Promise<Tier> {
      const made = await options.create(dir);
      const ctx = makeContext(keyring);
      evictions = ctx.evictions;
      await made.open(ctx.context);
      opened.push(made);
      return made;
    }

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'proxytier-contract-'));
      keyring = new Keyring(generateFernetKey());
      tier = await openTier();
    });

    afterEach(async () => {
      for (const each of opened.splice(0)) await each.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('has a name and says whether it is persistent', () => {
      expect(typeof tier.name).toBe('string');
      expect(tier.name.length).toBeGreaterThan(0);
      expect(typeof tier.persistent).toBe('boolean');
    });

    it('returns undefined for a key it never stored', async () => {
      expect(await tier.get('absent')).toBeUndefined();
      expect(await tier.has('absent')).toBe(false);
      expect(await tier.delete('absent')).toBe(false);
      expect(await tier.update('absent', { failureCount: 1 })).toBe(false);
    });

    it('stores an entry and returns every field, credentials included', async () => {
      const entry = sampleEntry(keyring, 1, {
        healthStatus: 'degraded',
        failureCount: 2,
        evictedFromL1: true,
        lastHealthCheck: START - 5_000,
        consecutiveHealthFailures: 1,
        consecutiveHealthSuccesses: 3,
        recoveryAttempt: 2,
        nextCheckTime: START + 60_000,
        lastHealthError: 'timeout after 5000 ms',
        totalHealthChecks: 40,
        totalHealthCheckFailures: 4,
        accessCount: 7,
      });
      await tier.set(entry);
      expectSameEntry(await tier.get(entry.key), entry);
      expect(await tier.has(entry.key)).toBe(true);
      if (tier.getSync) expectSameEntry(tier.getSync(entry.key), entry);
    });

    it('keeps unusual credentials exactly (unicode, quotes, tabs, newlines, 200 characters)', async () => {
      const entry = sampleEntry(keyring, 2, {
        username: 'üser "quoted"\tnew\nline ✓',
        password: 'x'.repeat(200),
      });
      await tier.set(entry);
      expectSameEntry(await tier.get(entry.key), entry);
    });

    it('stores an entry without credentials', async () => {
      const entry = sampleEntry(keyring, 3, { username: null, password: null });
      await tier.set(entry);
      const found = await tier.get(entry.key);
      expectSameEntry(found, entry);
      expect(found?.username).toBeUndefined();
      expect(found?.password).toBeUndefined();
    });

    it('replaces an entry stored under the same key', async () => {
      const first = sampleEntry(keyring, 4);
      await tier.set(first);
      const second = sampleEntry(keyring, 4, { source: 'provider-b', password: 'changed' });
      await tier.set(second);
      expectSameEntry(await tier.get(first.key), second);
      expect(await tier.size()).toBe(1);
    });

    it('updates some fields and leaves the others', async () => {
      const entry = sampleEntry(keyring, 5);
      await tier.set(entry);
      expect(
        await tier.update(entry.key, {
          failureCount: 3,
          healthStatus: 'unhealthy',
          evictedFromL1: true,
          lastHealthError: 'refused',
        }),
      ).toBe(true);
      const expected = { ...entry, failureCount: 3, healthStatus: 'unhealthy' as const };
      expected.evictedFromL1 = true;
      expected.lastHealthError = 'refused';
      expectSameEntry(await tier.get(entry.key), expected);
    });

    it('modifies atomically: concurrent increments are all kept', async () => {
      const entry = sampleEntry(keyring, 7);
      await tier.set(entry);
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          tier.modify(entry.key, (current) => ({ failureCount: current.failureCount + 1 })),
        ),
      );
      const counts = results
        .map((found) => found?.failureCount)
        .sort((a, b) => (a ?? 0) - (b ?? 0));
      expect(counts).toEqual(Array.from({ length: 20 }, (_, index) => index + 1));
      expect((await tier.get(entry.key))?.failureCount).toBe(20);
      expect((await tier.get(entry.key))?.password?.reveal()).toBe(entry.password?.reveal());
    });

    it('modify of an absent key changes nothing; a change that returns nothing writes nothing', async () => {
      expect(await tier.modify('absent', () => ({ failureCount: 1 }))).toBeUndefined();
      expect(await tier.has('absent')).toBe(false);
      const entry = sampleEntry(keyring, 8);
      await tier.set(entry);
      const same = await tier.modify(entry.key, () => undefined);
      expect(same?.failureCount).toBe(entry.failureCount);
    });

    it('touch moves access times forward only, and never creates an entry', async () => {
      if (tier.touch === undefined) return;
      const entry = sampleEntry(keyring, 9);
      await tier.set(entry);
      const later = entry.lastAccessed + 5_000;
      await tier.touch([
        { key: entry.key, lastAccessed: later, accessCount: entry.accessCount + 3 },
        { key: 'absent', lastAccessed: later, accessCount: 1 },
      ]);
      await tier.touch([{ key: entry.key, lastAccessed: later - 10_000, accessCount: 1 }]);
      const found = await tier.get(entry.key);
      expect(found?.lastAccessed).toBe(later);
      expect(found?.accessCount).toBe(entry.accessCount + 3);
      expect(await tier.has('absent')).toBe(false);
    });

    it('deletes, reporting whether the key existed', async () => {
      const entry = sampleEntry(keyring, 6);
      await tier.set(entry);
      expect(await tier.delete(entry.key)).toBe(true);
      expect(await tier.get(entry.key)).toBeUndefined();
      expect(await tier.delete(entry.key)).toBe(false);
    });

    it('counts, lists and streams what it holds', async () => {
      const entries = Array.from({ length: 25 }, (_, index) => sampleEntry(keyring, 100 + index));
      for (const entry of entries) await tier.set(entry);
      expect(await tier.size()).toBe(25);
      const keys = await collect(tier.keys());
      expect(keys.sort()).toEqual(entries.map((entry) => entry.key).sort());
      const streamed = await collect(tier.entries());
      expect(streamed.map((entry) => entry.key).sort()).toEqual(keys);
      for (const found of streamed) {
        expectSameEntry(found, entries.find((entry) => entry.key === found.key) as ProxyEntry);
      }
    });

    it('clears everything and reports how many entries it removed', async () => {
      for (let index = 0; index < 5; index += 1) await tier.set(sampleEntry(keyring, 200 + index));
      expect(await tier.clear()).toBe(5);
      expect(await tier.size()).toBe(0);
      expect(await collect(tier.keys())).toEqual([]);
    });

    it('removes expired entries in bulk and names them', async () => {
      const expired = [
        sampleEntry(keyring, 300, { expiresAt: START - 1 }),
        sampleEntry(keyring, 301, { expiresAt: START }),
      ];
      const live = sampleEntry(keyring, 302, { expiresAt: START + 1 });
      for (const entry of [...expired, live]) await tier.set(entry);
      const removed = await tier.deleteExpired(START);
      expect(removed.sort()).toEqual(expired.map((entry) => entry.key).sort());
      expect(await tier.size()).toBe(1);
      expect(await tier.has(live.key)).toBe(true);
    });

    it('reports no eviction during ordinary use', async () => {
      for (let index = 0; index < 10; index += 1) await tier.set(sampleEntry(keyring, 400 + index));
      expect(evictions).toEqual([]);
    });

    it('closes idempotently', async () => {
      await tier.close();
      await tier.close();
    });

    if (options.durable === true) {
      it('keeps what it stored across close and reopen', async () => {
        const entries = Array.from({ length: 10 }, (_, index) => sampleEntry(keyring, 500 + index));
        for (const entry of entries) await tier.set(entry);
        await tier.delete(entries[0]?.key as string);
        await tier.close();
        const reopened = await openTier();
        expect(await reopened.size()).toBe(9);
        expect(await reopened.get(entries[0]?.key as string)).toBeUndefined();
        for (const entry of entries.slice(1)) expectSameEntry(await reopened.get(entry.key), entry);
      });
    }
  });
}
