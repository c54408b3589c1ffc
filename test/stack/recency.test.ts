// A bounded persistent tier under a memory tier: L1 hits never reach it one by one, so without
// the stack passing them down, the proxies in constant use looked like the least recently used
// rows and were the first to go. These tests restart the store and check the hot ones stayed.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { silentLogger } from '../../src/logger.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import { JsonlTier } from '../../src/tiers/jsonl/index.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { SqliteTier } from '../../src/tiers/sqlite/index.js';
import type { Tier } from '../../src/tiers/tier.js';
import { proxy, START } from '../cache/helpers.js';
import { removeDir, tempDir } from '../support/sqlite-fixtures.js';

const engines: { name: string; make: (dir: string, maxEntries: number) => Tier }[] = [
  {
    name: 'sqlite',
    make: (dir, maxEntries) =>
      new SqliteTier({ path: join(dir, 'store.db'), role: 'l3', maxEntries }),
  },
  {
    name: 'jsonl',
    make: (dir, maxEntries) => new JsonlTier({ dir: join(dir, 'jsonl'), maxEntries }),
  },
];

describe.each(engines)('recency reaches a bounded $name tier', ({ make }) => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('proxytier-recency-');
  });
  afterEach(async () => {
    await removeDir(dir);
  });

  it('the proxies in constant use survive the writes that push the tier past its bound', async () => {
    const clock = new ManualClock(START);
    const keyring = new Keyring(generateFernetKey());
    const open = () =>
      ProxyCache.open({
        tiers: [new MemoryTier({ maxEntries: 1_000 }), make(dir, 20)],
        clock,
        keyring,
        logger: silentLogger,
        sweepIntervalMs: 0,
        recencyFlushMs: 1_000,
      });
    const cache = await open();
    const hot = [];
    for (let index = 0; index < 5; index += 1) {
      hot.push(await cache.put({ proxyUrl: proxy(index), ttlSeconds: 86_400 }));
    }
    // Each newer proxy is written once and never read again; the hot five are used all along.
    for (let index = 5; index < 40; index += 1) {
      await clock.advance(1_000);
      for (const entry of hot) expect(await cache.get(entry.key)).toBeDefined();
      await cache.put({ proxyUrl: proxy(index), ttlSeconds: 86_400 });
    }
    await cache.close();

    const reopened = await open();
    for (const entry of hot) {
      expect((await reopened.peek(entry.key))?.key, `hot proxy ${entry.proxyUrl}`).toBe(entry.key);
    }
    await reopened.close();
  });
});
