// L1 coherence figures: what polling the persistent tiers' change feeds on the read path costs an
// L1 hit. Two caches, each a memory tier over its own SQLite file, hold the same 10,000 proxies in
// L1; one has the default `coherenceMs` (the feed is read at most every 100 ms, on a get), the
// other `coherenceMs: Number.MAX_SAFE_INTEGER`, so its feed is read once at open and never again.
// Every read is an L1 hit (checked against the tiers' counters at the end), measured as
// throughput (the mean) and as the p99 of single reads timed alone, synchronous and awaited.
// Stores live in a temporary directory that is deleted at the end.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  DEFAULTS,
  generateFernetKey,
  Keyring,
  MemoryTier,
  ProxyCache,
  silentLogger,
  type ProxyEntry,
} from '../src/index.js';
import { SqliteTier } from '../src/tiers/sqlite/index.js';
import {
  compareLatency,
  compareThroughput,
  type AsyncBody,
  type Result,
  type SyncBody,
  type TimedAsyncBody,
  type TimedSyncBody,
} from './harness.js';

const HOT_KEYS = 10_000;
const BATCH = 1_000;
// More, shorter rounds than elsewhere: the two sides differ by little, and on a shared machine
// the median of many interleaved rounds moves less. Every round still spans a poll (100 ms).
const ROUNDS = { rounds: 9, roundMs: 150, warmupMs: 300 } as const;
// Latency rounds keep at most 1M samples each (sorting them is the round's overhead).
const LATENCY = { ...ROUNDS, roundMs: 100, maxSamples: 1_000_000 } as const;

function proxyUrl(i: number): string {
  return `http://10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}:${8000 + (i % 2000)}`;
}

function credentials(i: number): { username: string; password: string } {
  return {
    username: `cust-${i.toString(36)}-zone-eu`,
    password: `pw-${(i * 2_654_435_761) >>> 0}`,
  };
}

/** A memory tier of `HOT_KEYS` over a SQLite file, as `openDefaultStore` stacks them. */
function openStack(path: string, keyring: Keyring, coherenceMs: number): Promise<ProxyCache> {
  return ProxyCache.open({
    tiers: [new MemoryTier({ maxEntries: HOT_KEYS }), new SqliteTier({ path, role: 'l3' })],
    keyring,
    coherenceMs,
    logger: silentLogger,
    sweepIntervalMs: 0,
  });
}

/**
 * Puts the hot proxies, with credentials, 1,000 at a time into each cache in turn, so neither
 * side's records are systematically older in the heap; resolves each cache's keys.
 */
async function fillBoth(caches: readonly ProxyCache[]): Promise<string[][]> {
  const keys = caches.map((): string[] => []);
  for (let start = 0; start < HOT_KEYS; start += BATCH) {
    for (const [side, cache] of caches.entries()) {
      const writes: Promise<ProxyEntry>[] = [];
      for (let i = start; i < start + BATCH; i += 1) {
        writes.push(cache.put({ proxyUrl: proxyUrl(i), source: 'bench', ...credentials(i) }));
      }
      for (const entry of await Promise.all(writes)) keys[side]?.push(entry.key);
    }
  }
  return keys;
}

function missed(what: string, misses: number): Error {
  return new Error(`${what}: ${misses} misses on keys that must all be cached`);
}

/**
 * The four bodies for one cache, each with its own cursor. Both caches run the same code
 * (closures of one literal share their type feedback in V8), so the setting is the only
 * difference between the two sides.
 */
function bodies(cache: ProxyCache, keys: readonly string[]) {
  let syncCursor = 0;
  const getSync: SyncBody = (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      const key = keys[syncCursor] as string;
      syncCursor = syncCursor + 1 === HOT_KEYS ? 0 : syncCursor + 1;
      if (cache.getSync(key) === undefined) misses += 1;
    }
    if (misses !== 0) throw missed('getSync', misses);
  };
  let asyncCursor = 0;
  const getAsync: AsyncBody = async (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      const key = keys[asyncCursor] as string;
      asyncCursor = asyncCursor + 1 === HOT_KEYS ? 0 : asyncCursor + 1;
      if ((await cache.get(key)) === undefined) misses += 1;
    }
    if (misses !== 0) throw missed('get', misses);
  };
  let timedSyncCursor = 0;
  const timedGetSync: TimedSyncBody = (out, from, count) => {
    let misses = 0;
    for (let n = 0; n < count; n += 1) {
      const key = keys[timedSyncCursor] as string;
      timedSyncCursor = timedSyncCursor + 1 === HOT_KEYS ? 0 : timedSyncCursor + 1;
      const start = performance.now();
      const entry = cache.getSync(key);
      out[from + n] = performance.now() - start;
      if (entry === undefined) misses += 1;
    }
    if (misses !== 0) throw missed('getSync', misses);
  };
  let timedAsyncCursor = 0;
  const timedGetAsync: TimedAsyncBody = async (out, from, count) => {
    let misses = 0;
    for (let n = 0; n < count; n += 1) {
      const key = keys[timedAsyncCursor] as string;
      timedAsyncCursor = timedAsyncCursor + 1 === HOT_KEYS ? 0 : timedAsyncCursor + 1;
      const start = performance.now();
      const entry = await cache.get(key);
      out[from + n] = performance.now() - start;
      if (entry === undefined) misses += 1;
    }
    if (misses !== 0) throw missed('get', misses);
  };
  return { getSync, getAsync, timedGetSync, timedGetAsync };
}

/** Throws unless every read since open was answered by L1. */
async function assertAllL1(what: string, cache: ProxyCache): Promise<void> {
  const stats = await cache.stats();
  const [l1, l2] = stats.tiers;
  if (l1 === undefined || l2 === undefined || l1.misses !== 0 || l2.hits !== 0) {
    throw new Error(
      `${what}: reads left L1 (L1 misses ${l1?.misses}, SQLite hits ${l2?.hits}): the figure would not be of L1 hits`,
    );
  }
}

/** The coherence suite: L1 hits with the change feed polled every 100 ms against never. */
export async function coherenceSuite(): Promise<Result[]> {
  const root = await mkdtemp(join(tmpdir(), 'proxytier-bench-coherence-'));
  const keyring = new Keyring(generateFernetKey());
  const caches: ProxyCache[] = [];
  try {
    const on = await openStack(join(root, 'on.db'), keyring, DEFAULTS.coherenceMs);
    caches.push(on);
    const off = await openStack(join(root, 'off.db'), keyring, Number.MAX_SAFE_INTEGER);
    caches.push(off);
    const [onKeys = [], offKeys = []] = await fillBoth([on, off]);
    const a = bodies(on, onKeys);
    const b = bodies(off, offKeys);

    const onName = `coherenceMs ${DEFAULTS.coherenceMs} (default)`;
    const offName = 'the same, coherenceMs MAX_SAFE_INTEGER (never polled)';
    const results = [
      await compareThroughput(
        'L1 hit with the change feed on, sync',
        { name: `getSync(key), ${onName}`, sync: a.getSync },
        { name: offName, sync: b.getSync },
        ROUNDS,
      ),
      await compareLatency(
        'L1 hit with the change feed on, sync, p99',
        { name: `getSync(key), ${onName}`, sync: a.timedGetSync },
        { name: offName, sync: b.timedGetSync },
        LATENCY,
      ),
      await compareThroughput(
        'L1 hit with the change feed on, awaited',
        { name: `await get(key), ${onName}`, async: a.getAsync },
        { name: offName, async: b.getAsync },
        ROUNDS,
      ),
      await compareLatency(
        'L1 hit with the change feed on, awaited, p99',
        { name: `await get(key), ${onName}`, async: a.timedGetAsync },
        { name: offName, async: b.timedGetAsync },
        LATENCY,
      ),
    ];
    await assertAllL1('change feed on', on);
    await assertAllL1('change feed off', off);
    return results;
  } finally {
    for (const cache of caches) await cache.close();
    await rm(root, { recursive: true, force: true });
  }
}
