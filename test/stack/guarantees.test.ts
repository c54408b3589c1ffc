// The stack's promises under faults and concurrency, each written against a defect that an
// earlier version had: a write that resolved without landing, a delete that came back, a replay
// that lost what it held, an increment lost to a race, a loader that overwrote newer data, and a
// clock that stood still.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, READS_PER_READING, systemClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { silentLogger } from '../../src/logger.js';
import type { HeldEvent } from '../../src/proxy-cache.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import { deriveKey } from '../../src/record/url.js';
import { FaultTier } from '../../src/tiers/fault.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { SqliteTier } from '../../src/tiers/sqlite/index.js';
import { openCache, proxy, START } from '../cache/helpers.js';
import { removeDir, tempDir } from '../support/sqlite-fixtures.js';

/** Moves the manual clock in small steps, letting I/O run between them, until `work` settles. */
async function drive<T>(clock: ManualClock, work: Promise<T>, stepMs = 10): Promise<T> {
  let settled = false;
  const done = work.finally(() => {
    settled = true;
  });
  for (let step = 0; step < 10_000 && !settled; step += 1) {
    await new Promise((resolve) => setImmediate(resolve));
    await clock.advance(stepMs);
  }
  return done;
}

async function memoryOverFault(options: Parameters<typeof openCache>[0] = {}) {
  const l1 = new MemoryTier({ maxEntries: 100 });
  const disk = new FaultTier({ name: 'disk' });
  const opened = await openCache({ tiers: [l1, disk], ...options });
  return { ...opened, l1, disk };
}

describe('a write resolves only once every persistent tier in service committed it', () => {
  it('one failed set rejects the put, naming the tier; nothing is acknowledged that did not land', async () => {
    const { cache, disk } = await memoryOverFault({ tierFailureThreshold: 3 });
    const before = await cache.put({ proxyUrl: proxy(1), password: 'old' });
    disk.failAll(1);
    await expect(
      cache.put({ proxyUrl: proxy(1), password: 'new', source: 'changed' }),
    ).rejects.toMatchObject({ code: 'E_TIER_WRITE', tier: 'disk' });
    // What is read is what is stored: the old entry, in L1 as on disk.
    const read = await cache.get(before.key);
    expect(read?.password?.reveal()).toBe('old');
    expect((await disk.get(before.key))?.password?.reveal()).toBe('old');
    await cache.close();
  });

  it('one failed delete rejects, and the key is neither gone from disk nor half-served', async () => {
    const { cache, disk } = await memoryOverFault({ tierFailureThreshold: 3 });
    const entry = await cache.put({ proxyUrl: proxy(2) });
    disk.failAll(1);
    await expect(cache.delete(entry.key)).rejects.toMatchObject({ code: 'E_TIER_WRITE' });
    expect(await disk.has(entry.key)).toBe(true);
    expect(await cache.delete(entry.key)).toBe(true); // the retry lands
    expect(await cache.get(entry.key)).toBeUndefined();
    expect(await disk.has(entry.key)).toBe(false);
    await cache.close();
  });

  it('a busy tier is retried with back-off on the clock until it answers', async () => {
    const { cache, clock, disk } = await memoryOverFault({ busyRetryMs: 1_000 });
    disk.busy(5);
    const entry = await drive(clock, cache.put({ proxyUrl: proxy(3) }));
    expect(await disk.has(entry.key)).toBe(true);
    expect((await cache.stats()).tiers[1]).toMatchObject({ errors: 0, degraded: false });
    await cache.close();
  });

  it('a tier busy past the retry budget rejects with E_TIER_WRITE', async () => {
    const { cache, clock, disk } = await memoryOverFault({ busyRetryMs: 100 });
    disk.busy(Number.POSITIVE_INFINITY);
    const putting = cache.put({ proxyUrl: proxy(4) }).catch((error: unknown) => error);
    expect(await drive(clock, putting)).toMatchObject({
      code: 'E_TIER_WRITE',
      cause: { code: 'E_TIER_BUSY' },
    });
    await cache.close();
  });

  it('a write to a switched-off tier is held, said so by the held event, and replayed', async () => {
    const { cache, clock, disk } = await memoryOverFault({
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 1_000,
    });
    const held: HeldEvent[] = [];
    cache.on('held', (event) => held.push(event));
    disk.failAll(1);
    const entry = await cache.put({ proxyUrl: proxy(5) }); // this failure switches disk off
    expect(held).toEqual([{ key: entry.key, operation: 'put', tiers: ['disk'] }]);
    expect((await cache.stats()).tiers[1]).toMatchObject({ degraded: true, heldChanges: 1 });
    await clock.advance(1_000);
    await cache.get('probe');
    await cache.flush();
    expect(await disk.has(entry.key)).toBe(true);
    expect((await cache.stats()).tiers[1]).toMatchObject({ degraded: false, heldChanges: 0 });
    await cache.close();
  });
});

describe('replay keeps what it holds', () => {
  it('a replay whose first write fails drops nothing and resumes at the next recovery', async () => {
    const { cache, clock, disk } = await memoryOverFault({
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 1_000,
    });
    disk.failAll();
    const written = [];
    for (let index = 0; index < 5; index += 1) {
      written.push(await cache.put({ proxyUrl: proxy(10 + index) }));
    }
    const deleted = written.pop()!;
    disk.heal();
    await disk.set(deleted); // the tier has the key the outage deleted
    disk.failAll();
    await cache.delete(deleted.key);
    // The probe (a read) succeeds, then the first replayed write fails: the tier is off again.
    disk.heal();
    disk.failOn('set', 1);
    await clock.advance(1_000);
    await cache.get('probe');
    await cache.flush();
    expect((await cache.stats()).tiers[1]?.heldChanges).toBeGreaterThan(0);
    for (const entry of written) {
      expect(await cache.get(entry.key)).toBeDefined(); // still served while held
    }
    expect(await cache.get(deleted.key)).toBeUndefined(); // never read back from the tier
    await clock.advance(1_000);
    await cache.get('probe again');
    await cache.flush();
    for (const entry of written) expect(await disk.has(entry.key)).toBe(true);
    expect(await disk.has(deleted.key)).toBe(false);
    expect((await cache.stats()).tiers[1]?.heldChanges).toBe(0);
    await cache.close();
  });

  // Found by the model-based test: the tier went off and on again while its replay ran, and the
  // delete held meanwhile stayed held for good, with the tier in service.
  it('a change held while a replay runs is replayed too, when the tier recovers again', async () => {
    const { cache, clock, disk } = await memoryOverFault({
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 1_000,
    });
    const kept = await cache.put({ proxyUrl: proxy(40) });
    disk.failAll(1);
    const held = await cache.put({ proxyUrl: proxy(41) });
    await clock.advance(1_000);
    disk.setLatency(30); // the probe and then the replayed write take a while
    await cache.has('probe');
    disk.setLatency(0);
    // While the replayed write is in flight, a delete fails: the tier is off again, and the
    // delete is held. The replayed write then succeeds and brings the tier back.
    disk.failOn('delete', 1);
    expect(await cache.delete(kept.key)).toBe(true);
    await cache.flush();
    const stats = await cache.stats();
    expect(stats.tiers[1]).toMatchObject({ degraded: false, heldChanges: 0 });
    expect(await disk.has(kept.key)).toBe(false);
    expect(await disk.has(held.key)).toBe(true);
    await cache.close();
  });

  it('a read while the probe is due does not bring back a key deleted during the outage', async () => {
    const { cache, clock, disk } = await memoryOverFault({
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 1_000,
    });
    const entry = await cache.put({ proxyUrl: proxy(44) });
    disk.failAll(1);
    expect(await cache.delete(entry.key)).toBe(true); // held: the tier still has the row
    expect(await disk.has(entry.key)).toBe(true);
    await clock.advance(1_000);
    // The probe is due: a read of the key must not take the tier's row for an answer.
    expect(await cache.get(entry.key)).toBeUndefined();
    await cache.get('probe');
    await cache.flush();
    expect(await cache.get(entry.key)).toBeUndefined();
    expect(await disk.has(entry.key)).toBe(false);
    await cache.close();
  });

  // Found by the model-based test: a health update began while the tier was off (so L1 applied
  // it), the tier recovered before its patch went down, and the patch of a key the tier had not
  // yet been given replaced the held write, which was lost.
  it('a patch that reaches a tier just recovered lands on top of its held write', async () => {
    const { cache, clock, disk } = await memoryOverFault({
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 1_000,
    });
    disk.failAll(1);
    const expiring = await cache.put({ proxyUrl: proxy(42), ttlSeconds: 1 });
    const held = await cache.put({ proxyUrl: proxy(43), ttlSeconds: 3_600 });
    await clock.advance(6_000);
    // Reading the expired entry removes it in the background: that delete probes the tier.
    expect(cache.getSync(expiring.key)).toBeUndefined();
    expect(await cache.reportFailure(held.key)).toMatchObject({ failureCount: 1 });
    await cache.flush();
    expect((await cache.stats()).tiers[1]).toMatchObject({ degraded: false, heldChanges: 0 });
    expect((await disk.get(held.key))?.failureCount).toBe(1);
    await cache.close();
  });

  it('past the replay limit, recovery copies from L1 and deletes nothing the outage left alone', async () => {
    const { cache, clock, disk } = await memoryOverFault({
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 1_000,
      replayLimit: 2,
    });
    const before = [];
    for (let index = 0; index < 3; index += 1) {
      before.push(await cache.put({ proxyUrl: proxy(20 + index) }));
    }
    disk.failAll(1);
    const during = [];
    for (let index = 0; index < 6; index += 1) {
      during.push(await cache.put({ proxyUrl: proxy(30 + index) }));
    }
    await cache.delete(before[0]!.key);
    await clock.advance(1_000);
    await cache.get('probe');
    await cache.flush();
    expect(await disk.has(before[0]!.key)).toBe(false);
    for (const entry of before.slice(1)) expect(await disk.has(entry.key)).toBe(true);
    for (const entry of during) expect(await disk.has(entry.key)).toBe(true);
    await cache.close();
  });
});

describe('health updates are atomic', () => {
  it('three concurrent reportFailure calls at threshold 3 evict exactly once', async () => {
    const { cache } = await memoryOverFault({ healthFailureThreshold: 3 });
    const entry = await cache.put({ proxyUrl: proxy(40) });
    const reports = await Promise.all([1, 2, 3].map(() => cache.reportFailure(entry.key)));
    expect(reports.map((report) => report?.failureCount).sort()).toEqual([1, 2, 3]);
    expect(reports.filter((report) => report?.evicted)).toHaveLength(1);
    expect(await cache.get(entry.key)).toBeUndefined();
    expect((await cache.stats()).tiers.map((tier) => tier.evictions.health)).toEqual([1, 1]);
    await cache.close();
  });

  it('five concurrent health checks count five', async () => {
    const { cache, disk } = await memoryOverFault();
    const entry = await cache.put({ proxyUrl: proxy(41) });
    await Promise.all(
      [1, 2, 3, 4, 5].map(() =>
        cache.recordHealthCheck(entry.key, { status: 'healthy', checkUrl: 'https://example.org' }),
      ),
    );
    expect((await cache.get(entry.key))?.totalHealthChecks).toBe(5);
    expect((await disk.get(entry.key))?.totalHealthChecks).toBe(5);
    await cache.close();
  });
});

describe('getOrLoad never overwrites newer data', () => {
  function gate<T>() {
    let open!: (value: T) => void;
    const promise = new Promise<T>((resolve) => {
      open = resolve;
    });
    return { promise, open };
  }

  it('a put made while the loader runs wins over the loader result', async () => {
    const { cache } = await memoryOverFault();
    const key = deriveKey(proxy(50));
    const loaded = gate<{ proxyUrl: string; password: string }>();
    const loading = cache.getOrLoad(key, () => loaded.promise);
    await Promise.resolve();
    await cache.put({ proxyUrl: proxy(50), password: 'newer' });
    loaded.open({ proxyUrl: proxy(50), password: 'older' });
    expect((await loading)?.password?.reveal()).toBe('newer');
    expect((await cache.get(key))?.password?.reveal()).toBe('newer');
    await cache.close();
  });

  it('a delete made while the loader runs wins too', async () => {
    const { cache } = await memoryOverFault();
    const key = deriveKey(proxy(51));
    await cache.put({ proxyUrl: proxy(51) });
    await cache.delete(key);
    const loaded = gate<{ proxyUrl: string }>();
    const loading = cache.getOrLoad(key, () => loaded.promise);
    await new Promise((resolve) => setImmediate(resolve));
    await cache.delete(key);
    loaded.open({ proxyUrl: proxy(51) });
    expect(await loading).toBeUndefined();
    expect(await cache.get(key)).toBeUndefined();
    await cache.close();
  });

  it('the loader error reaches every waiter, and the next call loads again', async () => {
    const { cache } = await memoryOverFault();
    const key = deriveKey(proxy(52));
    let calls = 0;
    const failing = async () => {
      calls += 1;
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error('provider down');
    };
    const results = await Promise.allSettled([1, 2, 3].map(() => cache.getOrLoad(key, failing)));
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(calls).toBe(1);
    const entry = await cache.getOrLoad(key, () => ({ proxyUrl: proxy(52) }));
    expect(entry?.key).toBe(key);
    await cache.close();
  });
});

describe('the clock keeps moving', () => {
  it('a loop of awaited L1 hits stops serving an entry within READS_PER_READING reads of its expiry', async () => {
    const cache = await ProxyCache.open({ logger: silentLogger, sweepIntervalMs: 0 });
    const entry = await cache.put({ proxyUrl: proxy(60), ttlSeconds: 1 });
    // Counted in reads, not milliseconds, so a process descheduled on a loaded machine cannot
    // fail it: the clock's reading is never older than the last READS_PER_READING reads.
    let servedAfterExpiry = 0;
    for (;;) {
      const expired = Date.now() >= entry.expiresAt;
      if ((await cache.get(entry.key)) === undefined) break;
      if (expired) servedAfterExpiry += 1;
    }
    expect(servedAfterExpiry).toBeLessThanOrEqual(READS_PER_READING);
    await cache.close();
  });

  it('synchronous code that never yields stops serving an entry within READS_PER_READING reads of its expiry', async () => {
    const cache = await ProxyCache.open({ logger: silentLogger, sweepIntervalMs: 0 });
    const entry = await cache.put({ proxyUrl: proxy(61), ttlSeconds: 1 });
    let servedAfterExpiry = 0;
    for (;;) {
      const expired = Date.now() >= entry.expiresAt;
      if (cache.getSync(entry.key) === undefined) break;
      if (expired) servedAfterExpiry += 1;
    }
    expect(servedAfterExpiry).toBeLessThanOrEqual(READS_PER_READING);
    expect(systemClock.now() - entry.expiresAt).toBeGreaterThanOrEqual(0);
    await cache.close();
  });
});

describe('L1 is coherent with another connection to the same database', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('proxytier-coherence-');
  });
  afterEach(async () => {
    await removeDir(dir);
  });

  async function worker(clock: ManualClock, keyring: Keyring, l1Size = 100) {
    return ProxyCache.open({
      tiers: [
        new MemoryTier({ maxEntries: l1Size }),
        new SqliteTier({ path: `${dir}/shared.db`, role: 'l3' }),
      ],
      clock,
      keyring,
      logger: silentLogger,
      sweepIntervalMs: 0,
    });
  }

  it("another worker's new password and failures reach this L1 within the staleness bound", async () => {
    const clock = new ManualClock(START);
    const keyring = new Keyring(generateFernetKey());
    const a = await worker(clock, keyring);
    const b = await worker(clock, keyring);
    const entry = await a.put({ proxyUrl: proxy(70), password: 'first' });
    expect((await a.get(entry.key))?.password?.reveal()).toBe('first');
    await b.put({ proxyUrl: proxy(70), password: 'second' });
    await b.reportFailure(entry.key);
    await clock.advance(100);
    const seen = await a.get(entry.key);
    expect(seen?.password?.reveal()).toBe('second');
    expect(seen?.failureCount).toBe(1);
    await a.close();
    await b.close();
  });

  it("another worker's delete is never undone by this worker's demotion", async () => {
    const clock = new ManualClock(START);
    const keyring = new Keyring(generateFernetKey());
    const a = await worker(clock, keyring, 2);
    const b = await worker(clock, keyring);
    const doomed = await a.put({ proxyUrl: proxy(71), password: 'secret' });
    await a.get(doomed.key);
    await b.delete(doomed.key);
    // A pushes the deleted entry out of its L1 before it reads the change feed.
    await a.put({ proxyUrl: proxy(72) });
    await a.put({ proxyUrl: proxy(73) });
    await a.flush();
    expect(await b.get(doomed.key)).toBeUndefined();
    await clock.advance(100);
    expect(await a.get(doomed.key)).toBeUndefined();
    await a.close();
    await b.close();
  });
});
