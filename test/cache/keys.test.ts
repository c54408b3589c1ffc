// Credentials written under one key, read by a cache holding another, a previous, or no key.
import { describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { DecryptionError } from '../../src/errors.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { SerializedTier } from '../support/serialized-tier.js';
import { proxy, recordingLogger } from './helpers.js';

async function openOn(store: Map<string, string>, keyring: Keyring) {
  return ProxyCache.open({
    tiers: [new MemoryTier({ maxEntries: 100 }), new SerializedTier(store)],
    keyring,
    sweepIntervalMs: 0,
    logger: recordingLogger(),
  });
}

describe('keys and stored credentials', () => {
  it('encrypts each credential once and writes the same token to every persistent tier', async () => {
    let encryptions = 0;
    class CountingKeyring extends Keyring {
      override encrypt(plain: string | Uint8Array): string {
        encryptions += 1;
        return super.encrypt(plain);
      }
    }
    const counting = new CountingKeyring(generateFernetKey());
    const l2 = new Map<string, string>();
    const l3 = new Map<string, string>();
    const cache = await ProxyCache.open({
      tiers: [
        new MemoryTier({ maxEntries: 10 }),
        new SerializedTier(l2, 'l2'),
        new SerializedTier(l3, 'l3'),
      ],
      keyring: counting,
      sweepIntervalMs: 0,
    });
    const entry = await cache.put({ proxyUrl: proxy(1), username: 'u', password: 'p' });
    expect(encryptions).toBe(2);
    expect(l2.get(entry.key)).toBe(l3.get(entry.key));
    expect(l2.get(entry.key)).toContain(entry.password?.token as string);
    expect(l2.get(entry.key)).not.toMatch(/"p"/);
    await cache.close();
  });

  it('with the wrong key: a coded error for that credential, every other field and entry still served', async () => {
    const store = new Map<string, string>();
    const writer = await openOn(store, new Keyring(generateFernetKey()));
    const secret = await writer.put({
      proxyUrl: proxy(1),
      username: 'u1',
      password: 'p1',
      source: 'paid',
    });
    const open = await writer.put({ proxyUrl: proxy(2), source: 'free' });
    await writer.close();

    const reader = await openOn(store, new Keyring(generateFernetKey()));
    const found = await reader.get(secret.key);
    expect(found).toMatchObject({ key: secret.key, proxyUrl: proxy(1), source: 'paid' });
    expect(() => found?.password?.reveal()).toThrow(DecryptionError);
    expect(() => found?.username?.reveal()).toThrow(/cannot decrypt/);
    expect(await reader.get(open.key)).toMatchObject({ source: 'free' });
    const stats = await reader.stats();
    expect(stats.tiers.map((tier) => tier.degraded)).toEqual([false, false]); // no tier is disabled
    expect(stats.hits).toBe(2);
    await reader.close();
  });

  it('after rotation: previous keys still decrypt, and re-encrypting moves tokens to the new key', async () => {
    const oldKey = generateFernetKey();
    const store = new Map<string, string>();
    const before = await openOn(store, new Keyring(oldKey));
    const entry = await before.put({ proxyUrl: proxy(3), username: 'user', password: 'pass' });
    await before.close();

    const rotated = new Keyring(oldKey).withCurrent(generateFernetKey());
    const after = await openOn(store, rotated);
    const found = await after.get(entry.key);
    expect(found?.password?.reveal()).toBe('pass');
    const oldToken = found?.password?.token as string;
    expect(rotated.isCurrent(oldToken)).toBe(false);
    const newToken = rotated.rotate(oldToken);
    expect(rotated.isCurrent(newToken)).toBe(true);
    expect(rotated.decrypt(newToken)).toBe('pass');
    expect(() => new Keyring(generateFernetKey()).decrypt(newToken)).toThrow(DecryptionError);
    await after.close();
  });
});

describe('re-encryption after rotation', () => {
  it('moves every stored token to the current key, and a second run finds nothing to do', async () => {
    const oldKey = generateFernetKey();
    const store = new Map<string, string>();
    const before = await openOn(store, new Keyring(oldKey));
    const keys: string[] = [];
    for (let index = 0; index < 20; index += 1) {
      const entry = await before.put({
        proxyUrl: proxy(index),
        username: `u${index}`,
        password: `p${index}`,
      });
      keys.push(entry.key);
    }
    await before.put({ proxyUrl: proxy(99) }); // no credentials: nothing to re-encrypt
    await before.close();

    const newKey = generateFernetKey();
    const rotated = new Keyring(oldKey).withCurrent(newKey);
    const cache = await openOn(store, rotated);
    await cache.get(keys[0] as string); // one entry also sits in L1
    // 20 entries with two tokens each; the copy in L1 is not counted.
    expect(await cache.tokenReport()).toEqual({ current: 0, previous: 40, unreadable: 0 });
    const result = await cache.reencrypt();
    expect(result).toMatchObject({ reencrypted: 40, unreadable: 0 });
    const inL1 = (cache.tiers[0] as MemoryTier).peekSync(keys[0] as string);
    expect(rotated.isCurrent(inL1?.password?.token as string)).toBe(true);
    expect(await cache.tokenReport()).toMatchObject({ previous: 0, unreadable: 0 });
    expect(await cache.reencrypt()).toMatchObject({ reencrypted: 0 });
    await cache.close();

    // Only the new key is needed from now on.
    const after = await openOn(store, new Keyring(newKey));
    for (const [index, key] of keys.entries()) {
      const entry = await after.get(key);
      expect(entry?.username?.reveal()).toBe(`u${index}`);
      expect(entry?.password?.reveal()).toBe(`p${index}`);
    }
    await after.close();
  });

  it('counts tokens no key can read and keeps them', async () => {
    const store = new Map<string, string>();
    const writer = await openOn(store, new Keyring(generateFernetKey()));
    await writer.put({ proxyUrl: proxy(1), password: 'p' });
    await writer.close();
    const stranger = await openOn(store, new Keyring(generateFernetKey()));
    expect(await stranger.tokenReport()).toEqual({ current: 0, previous: 0, unreadable: 1 });
    expect(await stranger.reencrypt()).toMatchObject({ reencrypted: 0, unreadable: 1 });
    expect(store.size).toBe(1);
    await stranger.close();
  });
});
