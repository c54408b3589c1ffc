// JsonlTier's own behaviour beyond the shared contract: LRU bound and its order across restarts,
// bulk expiry, compaction (on demand, automatic, concurrent with use), hint files, two instances
// on one directory, option validation.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { InvalidOptionError, TierError } from '../../src/errors.js';
import { createEntry, type ProxyEntry } from '../../src/record/entry.js';
import { shardFileName, shardOf } from '../../src/tiers/jsonl/codec.js';
import { JsonlTier, type JsonlTierOptions } from '../../src/tiers/jsonl/index.js';
import { expectSameEntry, makeContext, sampleEntry, START } from '../tiers/contract.js';

describe('JsonlTier', () => {
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
    dir = await mkdtemp(join(tmpdir(), 'proxytier-jsonl-'));
  });

  afterEach(async () => {
    for (const tier of opened.splice(0)) await tier.close();
    await rm(dir, { recursive: true, force: true });
  });

  const entries = (from: number, count: number) =>
    Array.from({ length: count }, (_, i) => sampleEntry(keyring, from + i));

  describe('maxEntries', () => {
    it('evicts the least recently used entry and reports it', async () => {
      const { tier, evictions } = await open({ maxEntries: 3 });
      const [a, b, c, d] = entries(0, 4) as [ProxyEntry, ProxyEntry, ProxyEntry, ProxyEntry];
      await tier.set(a);
      await tier.set(b);
      await tier.set(c);
      await tier.get(a.key); // b is now the least recently used
      await tier.set(d);
      expect(evictions).toEqual([{ key: b.key, reason: 'lru' }]);
      expect(await tier.has(b.key)).toBe(false);
      expect(await tier.size()).toBe(3);
      expect(tier.peekSync(c.key)).toBeDefined();
    });

    it('keeps the access order across a restart without writing on each read', async () => {
      let { tier } = await open({ maxEntries: 3 });
      const [a, b, c, d] = entries(10, 4) as [ProxyEntry, ProxyEntry, ProxyEntry, ProxyEntry];
      for (const entry of [a, b, c]) await tier.set(entry);
      const before = (await tier.size(), tier.stats().fileBytes);
      for (let i = 0; i < 50; i += 1) await tier.get(a.key);
      expect(tier.stats().fileBytes).toBe(before); // reads append nothing to the shard files
      await tier.close();
      const reopened = await open({ maxEntries: 3 });
      tier = reopened.tier;
      const { evictions } = reopened;
      await tier.set(d);
      expect(evictions).toEqual([{ key: b.key, reason: 'lru' }]);
      expect(await tier.has(a.key)).toBe(true);
    });

    it('keeps the access order across a restart after compaction wrote it into hint files', async () => {
      let { tier } = await open({ maxEntries: 4 });
      const [a, b, c, d, e] = entries(20, 5) as ProxyEntry[] as [
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
        ProxyEntry,
      ];
      for (const entry of [a, b, c, d]) await tier.set(entry);
      await tier.get(a.key);
      await tier.get(b.key);
      await tier.compact();
      await tier.close();
      await rm(join(dir, 'access.jsonl'), { force: true });
      const reopened = await open({ maxEntries: 4 });
      tier = reopened.tier;
      const { evictions } = reopened;
      expect(tier.stats().hintLoads).toBeGreaterThan(0);
      await tier.set(e);
      expect(evictions).toEqual([{ key: c.key, reason: 'lru' }]);
    });

    it('trims a store that is over its bound when it opens', async () => {
      let { tier } = await open();
      for (const entry of entries(30, 6)) await tier.set(entry);
      await tier.close();
      const reopened = await open({ maxEntries: 4 });
      tier = reopened.tier;
      const { evictions } = reopened;
      expect(evictions.map((e) => e.reason)).toEqual(['lru', 'lru']);
      expect(await tier.size()).toBe(4);
    });
  });

  it('deletes expired entries in bulk, durably', async () => {
    let { tier } = await open();
    const expired = entries(40, 20).map((entry, i) => ({ ...entry, expiresAt: START - i }));
    const live = entries(60, 5);
    await Promise.all([...expired, ...live].map((entry) => tier.set(entry)));
    const removed = await tier.deleteExpired(START);
    expect(removed.sort()).toEqual(expired.map((entry) => entry.key).sort());
    await tier.close();
    ({ tier } = await open());
    expect(await tier.size()).toBe(5);
    for (const entry of live) expectSameEntry(await tier.get(entry.key), entry);
  });

  it('updates without touching credentials and without counting as a use', async () => {
    const { tier } = await open();
    const entry = sampleEntry(keyring, 70);
    await tier.set(entry);
    expect(await tier.update(entry.key, { healthStatus: 'dead', lastHealthError: 'refused' })).toBe(
      true,
    );
    const got = (await tier.get(entry.key)) as ProxyEntry;
    expect(got.healthStatus).toBe('dead');
    expect(got.password?.token).toBe(entry.password?.token);
    expect(got.password?.reveal()).toBe(entry.password?.reveal());
  });

  it('reads its own writes before they reach the file', async () => {
    const { tier } = await open();
    const entry = sampleEntry(keyring, 71);
    const writing = tier.set(entry);
    expect(tier.hasSync(entry.key)).toBe(true);
    expectSameEntry(tier.getSync(entry.key), entry);
    const deleting = tier.delete(entry.key);
    expect(tier.getSync(entry.key)).toBeUndefined();
    await writing;
    expect(await deleting).toBe(true);
    expect(await tier.has(entry.key)).toBe(false);
  });

  it('refuses a secret the stack did not seal', async () => {
    const { tier } = await open();
    const entry = createEntry(
      { proxyUrl: 'http://u:p@192.0.2.1:80' },
      { now: START, ttlSecondsFor: () => 60 },
    );
    await expect(tier.set(entry)).rejects.toBeInstanceOf(TierError);
    await expect(tier.set(entry)).rejects.toThrow(/not sealed/);
  });

  describe('compaction', () => {
    it('reclaims dead bytes, keeps every live entry and writes hint files', async () => {
      let { tier } = await open();
      const live = entries(100, 200);
      for (let round = 0; round < 3; round += 1) {
        await Promise.all(live.map((entry) => tier.set({ ...entry, failureCount: round })));
      }
      await Promise.all(live.slice(0, 50).map((entry) => tier.delete(entry.key)));
      const before = tier.stats();
      expect(before.deadBytes).toBeGreaterThan(before.fileBytes / 2);
      const report = await tier.compact();
      expect(report.shards).toBe(16);
      expect(report.records).toBe(150);
      expect(report.bytesAfter).toBeLessThan(report.bytesBefore / 3);
      expect(tier.stats().deadBytes).toBe(0);
      for (const entry of live.slice(50)) {
        expectSameEntry(await tier.get(entry.key), { ...entry, failureCount: 2 });
      }
      const names = await readdir(dir);
      expect(names.filter((name) => name.endsWith('.hint'))).toHaveLength(16);
      expect(names.filter((name) => name.endsWith('.compacting'))).toEqual([]);
      await tier.close();
      ({ tier } = await open());
      expect(tier.stats().hintLoads).toBe(16);
      expect(await tier.size()).toBe(150);
      for (const entry of live.slice(50)) {
        expectSameEntry(await tier.get(entry.key), { ...entry, failureCount: 2 });
      }
      expect(await tier.get((live[0] as ProxyEntry).key)).toBeUndefined();
    });

    it('falls back to scanning when a hint file is stale or damaged', async () => {
      let { tier } = await open();
      const first = entries(300, 200);
      await Promise.all(first.map((entry) => tier.set(entry)));
      await tier.compact();
      const later = entries(600, 40);
      await Promise.all(later.map((entry) => tier.set(entry))); // appended after the hints
      await tier.close();
      // Damage one hint file and replace another shard file (new inode) under its hint.
      const damaged = join(dir, 'shard_03.hint');
      const bytes = await readFile(damaged);
      bytes[bytes.length - 9] = (bytes[bytes.length - 9] as number) ^ 0xff;
      await writeFile(damaged, bytes);
      const shard5 = join(dir, shardFileName(5));
      const content = await readFile(shard5);
      await rm(shard5);
      // A leading blank line moves every record, so the old hint no longer describes the file
      // even if the new file happens to get the old inode number.
      await writeFile(shard5, Buffer.concat([Buffer.from('\n'), content]), { mode: 0o600 });
      ({ tier } = await open());
      expect(tier.stats().hintLoads).toBe(14);
      expect(await tier.size()).toBe(240);
      for (const entry of [...first, ...later]) expectSameEntry(await tier.get(entry.key), entry);
    });

    it('keeps serving reads and writes while it runs', async () => {
      let { tier } = await open();
      const base = entries(500, 400);
      for (let round = 0; round < 2; round += 1) {
        await Promise.all(base.map((entry) => tier.set({ ...entry, accessCount: round })));
      }
      const compaction = tier.compact();
      const writes: Promise<unknown>[] = [];
      const fresh = entries(1000, 100);
      for (const [i, entry] of fresh.entries()) {
        writes.push(tier.set(entry));
        writes.push(tier.delete((base[i] as ProxyEntry).key));
        writes.push(tier.set({ ...(base[i + 200] as ProxyEntry), accessCount: 7 }));
        expect(tier.getSync((base[399] as ProxyEntry).key)?.accessCount).toBe(1);
        await Promise.resolve();
      }
      await Promise.all([compaction, ...writes]);
      const check = async () => {
        expect(await tier.size()).toBe(400);
        for (const entry of fresh) expectSameEntry(await tier.get(entry.key), entry);
        for (const [i, entry] of base.entries()) {
          const got = await tier.get(entry.key);
          if (i < 100) expect(got).toBeUndefined();
          else expectSameEntry(got, { ...entry, accessCount: i >= 200 && i < 300 ? 7 : 1 });
        }
      };
      await check();
      await tier.close();
      ({ tier } = await open());
      await check();
      expect(tier.stats().corruptRecords).toBe(0);
    });

    it('keeps the newest record of keys overwritten during the copy, even with equal-length records', async () => {
      // Same shard, same record length: offsets in the old and new files line up, which once let
      // a record appended during the copy be mistaken for the copied old one.
      const sameShard = entries(5000, 400)
        .filter((entry) => shardOf(entry.key) === 0)
        .slice(0, 10);
      let { tier } = await open();
      let version = 1000;
      const writeAll = () => {
        version += 1;
        return Promise.all(sameShard.map((entry) => tier.set({ ...entry, accessCount: version })));
      };
      for (let round = 0; round < 8; round += 1) {
        await writeAll();
        let done = false;
        const compaction = tier.compact().finally(() => {
          done = true;
        });
        while (!done) {
          await writeAll();
          await new Promise((resolve) => setImmediate(resolve));
        }
        await compaction;
        for (const entry of sameShard) expect(tier.getSync(entry.key)?.accessCount).toBe(version);
      }
      await tier.close();
      ({ tier } = await open());
      expect(tier.stats().hintLoads).toBeGreaterThan(0);
      for (const entry of sameShard) expect(tier.getSync(entry.key)?.accessCount).toBe(version);
    });

    it('lets close() stop a compaction between shards and wait for the one in progress', async () => {
      let { tier } = await open();
      const some = entries(6000, 300);
      for (let round = 0; round < 2; round += 1) {
        await Promise.all(some.map((entry) => tier.set({ ...entry, failureCount: round })));
      }
      // close() stops the compaction between shards and waits for the shard in progress.
      const compaction = tier.compact();
      await new Promise((resolve) => setImmediate(resolve));
      await tier.close();
      const report = await compaction;
      expect(report.corrupt).toBe(0);
      expect((await readdir(dir)).filter((name) => name.endsWith('.compacting'))).toEqual([]);
      ({ tier } = await open());
      expect(await tier.size()).toBe(300);
      for (const entry of some)
        expectSameEntry(await tier.get(entry.key), { ...entry, failureCount: 1 });
    });

    it('runs on its own once dead bytes pass the threshold', async () => {
      const { tier } = await open({ compactionMinBytes: 0, compactionThreshold: 0.5 });
      const entry = sampleEntry(keyring, 2000);
      for (let i = 0; i < 20; i += 1) await tier.set({ ...entry, accessCount: i });
      await tier.size();
      await tier.close(); // waits for background compactions
      const { tier: reopened } = await open();
      expect(reopened.stats().hintLoads).toBeGreaterThan(0);
      expect((await reopened.get(entry.key))?.accessCount).toBe(19);
      const text = await readFile(join(dir, shardFileName(shardOf(entry.key))), 'utf8');
      expect(text.split('\n').filter(Boolean).length).toBeLessThan(20);
    });
  });

  describe('two instances on one directory', () => {
    it('each sees what the other writes, deletes, compacts and clears', async () => {
      const { tier: a } = await open();
      const { tier: b } = await open();
      const some = entries(3000, 30);
      await Promise.all(some.map((entry) => a.set(entry)));
      for (const entry of some) expectSameEntry(b.getSync(entry.key), entry);
      expect(await b.size()).toBe(30);
      await b.delete((some[0] as ProxyEntry).key);
      expect(await a.has((some[0] as ProxyEntry).key)).toBe(false);
      await b.set({ ...(some[1] as ProxyEntry), failureCount: 5 });
      expect((await a.get((some[1] as ProxyEntry).key))?.failureCount).toBe(5);
      await b.compact();
      await a.set({ ...(some[2] as ProxyEntry), failureCount: 6 }); // a writes to the new files
      for (const tier of [a, b]) {
        expect(await tier.size()).toBe(29);
        expect((await tier.get((some[2] as ProxyEntry).key))?.failureCount).toBe(6);
        for (const entry of some.slice(3)) expectSameEntry(await tier.get(entry.key), entry);
      }
      expect(await a.clear()).toBe(29);
      expect(await b.size()).toBe(0);
      expect(a.stats().corruptRecords + b.stats().corruptRecords).toBe(0);
    });
  });

  describe('options', () => {
    it.each([
      [{ dir: '' }, /"dir" must be a non-empty path string, got ""/],
      [{ dir: 'x', maxEntries: 0 }, /"maxEntries" must be a positive integer, got 0/],
      [{ dir: 'x', maxEntries: 1.5 }, /"maxEntries" must be a positive integer, got 1.5/],
      [{ dir: 'x', durability: 'always' }, /"durability" must be "normal" or "full", got "always"/],
      [
        { dir: 'x', compactionThreshold: 0 },
        /"compactionThreshold" must be a number greater than 0/,
      ],
      [{ dir: 'x', compactionThreshold: 1.5 }, /at most 1 .*got 1.5/],
      [{ dir: 'x', lockTimeoutMs: -1 }, /"lockTimeoutMs" must be a positive integer, got -1/],
      [{ dir: 'x', name: '' }, /"name" must be a non-empty string/],
    ])('rejects %j', (options, message) => {
      let error: unknown;
      try {
        new JsonlTier(options as JsonlTierOptions);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).code).toBe('E_INVALID_OPTION');
      expect((error as Error).message).toMatch(message);
    });

    it('fails to open with a TierError naming the directory, and opens on a later attempt', async () => {
      const blocker = join(dir, 'blocker');
      await writeFile(blocker, 'a file where the store directory should be');
      const tier = new JsonlTier({ dir: join(blocker, 'store') });
      const { context } = makeContext(keyring);
      await expect(tier.open(context)).rejects.toMatchObject({
        code: 'E_TIER',
        message: expect.stringContaining(join(blocker, 'store')),
      });
      await rm(blocker);
      await tier.open(context); // the stack retries open() on the same instance
      opened.push(tier);
      const entry = sampleEntry(keyring, 7000);
      await tier.set(entry);
      expectSameEntry(await tier.get(entry.key), entry);
    });

    it('is persistent, named, and refuses use before open and after close', async () => {
      const tier = new JsonlTier({ dir, name: 'disk' });
      expect(tier.persistent).toBe(true);
      expect(tier.name).toBe('disk');
      expect(() => tier.getSync('k')).toThrow(/not open/);
      const { tier: other } = await open();
      await other.close();
      expect(() => other.getSync('k')).toThrow(/closed/);
      expect(existsSync(join(dir, 'shard_00.lock'))).toBe(false);
    });
  });
});
