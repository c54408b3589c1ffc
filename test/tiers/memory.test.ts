import { describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { InvalidOptionError } from '../../src/errors.js';
import type { ProxyEntry } from '../../src/record/entry.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import type { EvictionReason } from '../../src/tiers/tier.js';
import { makeContext, runTierContract, sampleEntry } from './contract.js';

runTierContract({ name: 'memory', create: () => new MemoryTier({ maxEntries: 1_000 }) });

describe('MemoryTier', () => {
  const keyring = new Keyring(generateFernetKey());

  async function openTier(
    maxEntries: number,
    onEvict?: (entry: ProxyEntry, reason: EvictionReason) => void,
  ) {
    const tier = new MemoryTier({ maxEntries, ...(onEvict ? { onEvict } : {}) });
    const { context, evictions } = makeContext(keyring);
    await tier.open(context);
    return { tier, evictions };
  }

  it('evicts the least recently used entry beyond maxEntries and reports it', async () => {
    const seen: string[] = [];
    const { tier, evictions } = await openTier(3, (entry, reason) =>
      seen.push(`${entry.key}:${reason}`),
    );
    const [a, b, c, d] = [0, 1, 2, 3].map((index) => sampleEntry(keyring, index)) as ProxyEntry[];
    await tier.set(a as ProxyEntry);
    await tier.set(b as ProxyEntry);
    await tier.set(c as ProxyEntry);
    await tier.get((a as ProxyEntry).key); // a is now the most recently used; b is the oldest
    await tier.set(d as ProxyEntry);
    expect(await tier.has((b as ProxyEntry).key)).toBe(false);
    expect(await tier.has((a as ProxyEntry).key)).toBe(true);
    expect(evictions).toEqual([{ key: (b as ProxyEntry).key, reason: 'lru' }]);
    expect(seen).toEqual([`${(b as ProxyEntry).key}:lru`]);
  });

  it('does not count a replacement or a delete as an eviction', async () => {
    const { tier, evictions } = await openTier(2);
    const entry = sampleEntry(keyring, 1);
    await tier.set(entry);
    await tier.set({ ...entry, failureCount: 1 });
    await tier.delete(entry.key);
    await tier.clear();
    expect(evictions).toEqual([]);
  });

  it('peeks without changing recency', async () => {
    const { tier } = await openTier(2);
    const [a, b, c] = [0, 1, 2].map((index) => sampleEntry(keyring, index)) as ProxyEntry[];
    await tier.set(a as ProxyEntry);
    await tier.set(b as ProxyEntry);
    expect(tier.peekSync((a as ProxyEntry).key)).toBe(a);
    await tier.set(c as ProxyEntry);
    expect(tier.hasSync((a as ProxyEntry).key)).toBe(false);
  });

  it('updates by copy, so an object the caller holds does not change', async () => {
    const { tier } = await openTier(2);
    const entry = sampleEntry(keyring, 1);
    await tier.set(entry);
    await tier.update(entry.key, { failureCount: 9 });
    expect(entry.failureCount).toBe(0);
    expect((await tier.get(entry.key))?.failureCount).toBe(9);
  });

  it.each([0, -1, 1.5, Number.NaN, undefined, '10'])('rejects maxEntries %s', (maxEntries) => {
    expect(() => new MemoryTier({ maxEntries: maxEntries as number })).toThrow(
      /"maxEntries" must be a positive integer/,
    );
  });

  it.each(['lfu', 'fifo', 'random'])('rejects the unimplemented eviction policy %s', (policy) => {
    let error: unknown;
    try {
      new MemoryTier({ maxEntries: 10, evictionPolicy: policy as 'lru' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).code).toBe('E_INVALID_OPTION');
    expect((error as Error).message).toContain(`"${policy}" is not implemented`);
  });
});
