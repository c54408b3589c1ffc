// L1 (memory tier) figures, each measured against lru-cache, the engine the memory tier is built
// on, in the same run: the ratio is the price of proxytier's stack over a raw LRU.
import { LRUCache } from 'lru-cache';
import { deriveKey, ProxyCache, silentLogger, type ProxyEntry } from '../src/index.js';
import {
  collectGarbage,
  compareThroughput,
  heapGrowthMB,
  median,
  progress,
  round3,
  type AsyncBody,
  type Result,
  type SyncBody,
} from './harness.js';

const HOT_KEYS = 10_000;
const HEAP_ENTRIES = 100_000;
const HEAP_BUDGET_MB = 80;
const HEAP_ROUNDS = 3;

/** Budgets, as the lowest acceptable ratio against lru-cache. */
const BUDGET = { getSync: 0.6, getAsync: 0.25, put: 0.1 } as const;

// ------------------------------------------------------------------ data

/** Deterministic PRNG (mulberry32), so every run measures the same records. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const ALPHABET = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/**
 * A flat (sequential) string with the same characters. Template literals build rope strings that
 * cost more heap than the characters; stored strings read from a file or socket are flat.
 */
function flat(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1');
}

/** `http://10.x.y.z:port`, distinct for every `i` below 2^24. */
function proxyUrl(i: number): string {
  return flat(`http://10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}:${8000 + (i % 2000)}`);
}

interface Credentials {
  username: string;
  password: string;
}

/** A username of 10-24 characters (`cust-<id>-zone-<region>`) and a 12-24 character password. */
function credentials(i: number, next: () => number): Credentials {
  const regions = ['us', 'eu', 'de', 'gb', 'jp', 'sg', 'resi', 'dc'];
  const region = regions[Math.floor(next() * regions.length)] as string;
  const username = `cust-${i.toString(36)}-zone-${region}`.slice(0, 24).padEnd(10, '0');
  const length = 12 + Math.floor(next() * 13);
  let password = '';
  for (let c = 0; c < length; c += 1) {
    password += ALPHABET[Math.floor(next() * ALPHABET.length)] as string;
  }
  return { username: flat(username), password: flat(password) };
}

/** The same fields as a `ProxyEntry`, with plain string credentials: the floor for one record. */
function plainRecord(i: number, creds: Credentials, now: number) {
  const url = proxyUrl(i);
  return {
    key: flat(deriveKey(url)),
    proxyUrl: url,
    username: creds.username,
    password: creds.password,
    source: 'bench',
    fetchTime: now,
    lastAccessed: now,
    accessCount: 0,
    ttlSeconds: 3600,
    expiresAt: now + 3_600_000,
    healthStatus: 'unknown',
    failureCount: 0,
    evictedFromL1: false,
    lastHealthCheck: undefined,
    consecutiveHealthFailures: 0,
    consecutiveHealthSuccesses: 0,
    recoveryAttempt: 0,
    nextCheckTime: undefined,
    lastHealthError: undefined,
    totalHealthChecks: 0,
    totalHealthCheckFailures: 0,
  };
}

function openMemoryCache(maxEntries: number): Promise<ProxyCache> {
  return ProxyCache.open({ maxEntries, sweepIntervalMs: 0, logger: silentLogger });
}

/** Puts `count` distinct proxies with credentials; resolves the entries the cache built. */
async function fill(cache: ProxyCache, count: number, seed: number): Promise<ProxyEntry[]> {
  const next = random(seed);
  const entries: ProxyEntry[] = [];
  for (let i = 0; i < count; i += 1) {
    const creds = credentials(i, next);
    entries.push(await cache.put({ proxyUrl: proxyUrl(i), ...creds, source: 'bench' }));
  }
  return entries;
}

function missed(what: string, misses: number): Error {
  return new Error(`${what}: ${misses} misses on keys that must all be cached`);
}

// ------------------------------------------------------------------ figures

async function hotReads(): Promise<Result[]> {
  const cache = await openMemoryCache(HOT_KEYS);
  const entries = await fill(cache, HOT_KEYS, 1);
  const keys = entries.map((entry) => entry.key);
  const lru = new LRUCache<string, ProxyEntry>({ max: HOT_KEYS });
  for (const entry of entries) lru.set(entry.key, entry);

  // Each body keeps its own cursor and its own loop, so no call site is shared between sides.
  let lruCursor = 0;
  const lruGet: SyncBody = (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      const key = keys[lruCursor] as string;
      lruCursor = lruCursor + 1 === HOT_KEYS ? 0 : lruCursor + 1;
      if (lru.get(key) === undefined) misses += 1;
    }
    if (misses !== 0) throw missed('lru-cache get', misses);
  };
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

  const reference = { name: 'lru-cache get', sync: lruGet };
  const results = [
    await compareThroughput('L1 hit, sync', { name: 'getSync(key)', sync: getSync }, reference, {
      budget: BUDGET.getSync,
    }),
    await compareThroughput(
      'L1 hit, async',
      { name: 'await get(key)', async: getAsync },
      reference,
      { budget: BUDGET.getAsync },
    ),
  ];
  await cache.close();
  return results;
}

async function puts(): Promise<Result[]> {
  // The entries are full, validated records the cache built itself (canonical URL, key present),
  // so the figure is the put path for an entry that needs no parsing: a re-put or a refresh.
  const cache = await openMemoryCache(HOT_KEYS);
  const entries = await fill(cache, HOT_KEYS, 2);
  const lru = new LRUCache<string, ProxyEntry>({ max: HOT_KEYS });
  for (const entry of entries) lru.set(entry.key, entry);

  let lruCursor = 0;
  const lruSet: SyncBody = (ops) => {
    for (let n = 0; n < ops; n += 1) {
      const entry = entries[lruCursor] as ProxyEntry;
      lruCursor = lruCursor + 1 === HOT_KEYS ? 0 : lruCursor + 1;
      lru.set(entry.key, entry);
    }
  };
  let putCursor = 0;
  const put: AsyncBody = async (ops) => {
    for (let n = 0; n < ops; n += 1) {
      const entry = entries[putCursor] as ProxyEntry;
      putCursor = putCursor + 1 === HOT_KEYS ? 0 : putCursor + 1;
      await cache.put(entry);
    }
  };

  const result = await compareThroughput(
    'L1 put, validated entry',
    { name: 'await put(entry)', async: put },
    { name: 'lru-cache set', sync: lruSet },
    { budget: BUDGET.put },
  );
  await cache.close();
  return [result];
}

async function heap(): Promise<Result[]> {
  const now = Date.now();
  const proxytier: number[] = [];
  const plain: number[] = [];
  // Interleaved like the throughput rounds; each round starts from an empty, already built cache
  // (lru-cache preallocates its index arrays for `max` at construction, outside the figure).
  for (let round = 0; round < HEAP_ROUNDS; round += 1) {
    progress(`L1 heap: round ${round + 1} of ${HEAP_ROUNDS}`);
    const cache = await openMemoryCache(HEAP_ENTRIES);
    proxytier.push(await heapGrowthMB(() => fill(cache, HEAP_ENTRIES, 3).then(() => cache)));
    await cache.close();
    collectGarbage();

    const lru = new LRUCache<string, ReturnType<typeof plainRecord>>({ max: HEAP_ENTRIES });
    plain.push(
      await heapGrowthMB(() => {
        const next = random(3);
        for (let i = 0; i < HEAP_ENTRIES; i += 1) {
          const record = plainRecord(i, credentials(i, next), now);
          lru.set(record.key, record);
        }
        return lru;
      }),
    );
    lru.clear();
  }
  const value = median(proxytier);
  const plainValue = median(plain);
  const perEntry = (mb: number) => Math.round((mb * 1024 * 1024) / HEAP_ENTRIES);
  progress(
    `L1 heap: ${value.toFixed(2)} MB (${perEntry(value)} B/entry) vs plain ${plainValue.toFixed(2)} MB (${perEntry(plainValue)} B/entry); rounds ${proxytier.map((mb) => mb.toFixed(2)).join(' ')} | ${plain.map((mb) => mb.toFixed(2)).join(' ')}`,
  );
  const name = 'L1 heap growth, 100k entries with 2 credentials';
  const mb = round3(value);
  return [
    {
      name,
      value: mb,
      unit: 'MB',
      reference: `budget ${HEAP_BUDGET_MB} MB`,
      referenceValue: HEAP_BUDGET_MB,
      ratio: round3(value / HEAP_BUDGET_MB),
      better: 'lower',
      budget: 1,
    },
    {
      name,
      value: mb,
      unit: 'MB',
      reference: 'lru-cache, 100k plain objects',
      referenceValue: round3(plainValue),
      ratio: round3(value / plainValue),
      better: 'lower',
    },
  ];
}

/** The L1 suite: hot reads, puts of validated entries, and heap per 100k entries. */
export async function l1Suite(): Promise<Result[]> {
  return [...(await hotReads()), ...(await puts()), ...(await heap())];
}
