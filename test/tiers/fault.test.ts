import { describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { FaultTier } from '../../src/tiers/fault.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { makeContext, runTierContract, sampleEntry } from './contract.js';

// In pass-through mode the fault tier must be an ordinary, correct tier, with or without the
// inner tier's synchronous methods.
runTierContract({ name: 'fault (pass-through)', create: () => new FaultTier() });
runTierContract({
  name: 'fault (pass-through, sync)',
  create: () => new FaultTier({ sync: true }),
});

describe('FaultTier', () => {
  const keyring = new Keyring(generateFernetKey());

  it('fails the requested number of calls with a coded TierError, then works', async () => {
    const tier = new FaultTier({ name: 'flaky' });
    await tier.open(makeContext(keyring).context);
    tier.failAll(2);
    const entry = sampleEntry(keyring, 1);
    await expect(tier.set(entry)).rejects.toMatchObject({ code: 'E_TIER', tier: 'flaky' });
    await expect(tier.get(entry.key)).rejects.toBeInstanceOf(TierError);
    await tier.set(entry);
    expect(await tier.has(entry.key)).toBe(true);
    expect(tier.calls.set).toBe(2);
    await tier.close();
  });

  it('drops a record it was told is corrupt and reports a corruption eviction', async () => {
    const tier = new FaultTier();
    const { context, evictions } = makeContext(keyring);
    await tier.open(context);
    const entry = sampleEntry(keyring, 2);
    await tier.set(entry);
    tier.corrupt(entry.key);
    expect(await tier.get(entry.key)).toBeUndefined();
    expect(evictions).toEqual([{ key: entry.key, reason: 'corruption' }]);
    expect(await tier.has(entry.key)).toBe(false);
    await tier.close();
  });

  it("offers the inner tier's synchronous reads and deletes only when asked, failing them too", async () => {
    expect(new FaultTier().getSync).toBeUndefined();
    const tier = new FaultTier({ sync: true });
    await tier.open(makeContext(keyring).context);
    const entry = sampleEntry(keyring, 3);
    await tier.set(entry);
    expect(tier.getSync?.(entry.key)?.key).toBe(entry.key);
    tier.failOn('get', 1);
    expect(() => tier.peekSync?.(entry.key)).toThrow(TierError);
    tier.failAll(1);
    expect(() => tier.deleteSync?.(entry.key)).toThrow(TierError);
    expect(tier.deleteSync?.(entry.key)).toBe(true);
    expect(tier.calls).toMatchObject({ get: 2, delete: 2 });
    await tier.close();
  });
});
