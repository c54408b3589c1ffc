// JSONL tier (L2 on disk) figures, each measured beside a raw reference in the same run:
//   (a) puts against a loop appending the same lines with one writeSync each;
//   (b) cold gets (the tier's own read, L1 not involved) against a positioned read + JSON.parse
//       of the same line;
//   (c) opening a 1,000,000-entry store with current hint files against reading the hint files'
//       bytes raw;
//   (d) the same puts and gets on a 1,000,000-entry store against a 10,000-entry one.
// Stores live in a temporary directory that is deleted at the end.
import * as fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  createEntry,
  deriveKey,
  generateFernetKey,
  Keyring,
  silentLogger,
  systemClock,
  type ProxyEntry,
} from '../src/index.js';
import { encodeRecord } from '../src/tiers/jsonl/codec.js';
import { JsonlTier } from '../src/tiers/jsonl/index.js';
import type { TierContext } from '../src/tiers/tier.js';
import {
  collectGarbage,
  compareThroughput,
  median,
  progress,
  round3,
  type AsyncBody,
  type Result,
  type SyncBody,
} from './harness.js';

const SMALL = 10_000;
const LARGE = 1_000_000;
const ROUNDS = { rounds: 5, roundMs: 250, warmupMs: 300 } as const;

/** Budgets, as ratios against the raw reference. */
const BUDGET = { put: 0.5, coldGet: 1 / 3 } as const;

// ------------------------------------------------------------------ data

/** `http://10.x.y.z:port`, distinct for every `i` below 2^24. */
function proxyUrl(i: number): string {
  return `http://10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}:${8000 + (i % 2000)}`;
}

const NOW = Date.now();
const DEFAULTS = { now: NOW, ttlSecondsFor: () => 86_400 };

/** A validated entry, with sealed credentials when a keyring is given. */
function makeEntry(i: number, keyring?: Keyring): ProxyEntry {
  const url = proxyUrl(i);
  const entry = createEntry(
    keyring === undefined
      ? { proxyUrl: url, key: deriveKey(url), source: 'bench' }
      : {
          proxyUrl: url,
          key: deriveKey(url),
          source: 'bench',
          username: `cust-${i.toString(36)}-zone-eu`,
          password: `pw-${(i * 2_654_435_761) >>> 0}`,
        },
    DEFAULTS,
  );
  if (keyring !== undefined) {
    entry.username?.seal(keyring);
    entry.password?.seal(keyring);
  }
  return entry;
}

function context(keyring: Keyring): TierContext {
  return { cipher: keyring, clock: systemClock, logger: silentLogger, onEvict: () => {} };
}

async function openTier(dir: string, keyring: Keyring): Promise<JsonlTier> {
  const tier = new JsonlTier({ dir });
  await tier.open(context(keyring));
  return tier;
}

/** Stores `count` entries (made by `make`) in batches that share one append per shard. */
async function fill(
  tier: JsonlTier,
  count: number,
  make: (i: number) => ProxyEntry,
): Promise<void> {
  const batch = 10_000;
  for (let start = 0; start < count; start += batch) {
    const writes: Promise<void>[] = [];
    for (let i = start; i < Math.min(count, start + batch); i += 1) writes.push(tier.set(make(i)));
    await Promise.all(writes);
    if (start % 200_000 === 0 && start > 0) progress(`jsonl: stored ${start} entries`);
  }
}

/** Fisher-Yates with a fixed seed: the same access order on both sides of a comparison. */
function shuffled<T>(items: T[], seed = 1): T[] {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 4_294_967_296;
  };
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(next() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

function missed(what: string, misses: number): Error {
  return new Error(`${what}: ${misses} misses on keys that must all be stored`);
}

// ------------------------------------------------------------------ (a) puts

async function puts(root: string, keyring: Keyring): Promise<Result[]> {
  const tier = await openTier(join(root, 'puts'), keyring);
  const entries = Array.from({ length: SMALL }, (_, i) => makeEntry(i));
  await fill(tier, SMALL, (i) => entries[i] as ProxyEntry);
  // The reference appends exactly the lines the tier writes (checksum included).
  const lines = entries.map((entry) => `${encodeRecord(entry, undefined, undefined)}\n`);
  const rawPath = join(root, 'raw.jsonl');
  const rawFd = fs.openSync(rawPath, 'a', 0o600);
  let rawBytes = 0;

  let rawCursor = 0;
  const rawAppend: SyncBody = (ops) => {
    for (let n = 0; n < ops; n += 1) {
      const line = lines[rawCursor] as string;
      rawCursor = rawCursor + 1 === SMALL ? 0 : rawCursor + 1;
      rawBytes += fs.writeSync(rawFd, line);
    }
    // Keep the disk use bounded; the file is append-only, so this costs one call per 64 MB.
    if (rawBytes > 64 * 1024 * 1024) {
      fs.ftruncateSync(rawFd, 0);
      rawBytes = 0;
    }
  };
  let batchCursor = 0;
  const putBatch: AsyncBody = async (ops) => {
    const writes: Promise<void>[] = new Array<Promise<void>>(ops);
    for (let n = 0; n < ops; n += 1) {
      writes[n] = tier.set(entries[batchCursor] as ProxyEntry);
      batchCursor = batchCursor + 1 === SMALL ? 0 : batchCursor + 1;
    }
    await Promise.all(writes);
  };
  let seqCursor = 0;
  const putOneByOne: AsyncBody = async (ops) => {
    for (let n = 0; n < ops; n += 1) {
      await tier.set(entries[seqCursor] as ProxyEntry);
      seqCursor = seqCursor + 1 === SMALL ? 0 : seqCursor + 1;
    }
  };

  const reference = { name: 'writeSync per line, same lines', sync: rawAppend };
  const results = [
    await compareThroughput(
      'jsonl put, no credentials, 1000 concurrent',
      { name: 'set x1000, one append per shard', async: putBatch },
      reference,
      { ...ROUNDS, budget: BUDGET.put },
    ),
    await compareThroughput(
      'jsonl put, no credentials, one at a time',
      { name: 'await set(entry)', async: putOneByOne },
      reference,
      ROUNDS,
    ),
  ];
  await tier.close();
  fs.closeSync(rawFd);
  return results;
}

// ------------------------------------------------------------------ (b) cold gets

/** Where each key's line is, read back from the shard files (the reference's index). */
function locateLines(dir: string): Map<string, { fd: number; offset: number; length: number }> {
  const found = new Map<string, { fd: number; offset: number; length: number }>();
  for (const name of fs.readdirSync(dir).filter((file) => file.endsWith('.jsonl'))) {
    const path = join(dir, name);
    const text = fs.readFileSync(path, 'latin1');
    const fd = fs.openSync(path, 'r');
    let start = 0;
    while (start < text.length) {
      const end = text.indexOf('\n', start);
      const { key } = JSON.parse(text.slice(start, end)) as { key: string };
      found.set(key, { fd, offset: start, length: end - start });
      start = end + 1;
    }
  }
  return found;
}

async function coldGets(root: string, keyring: Keyring): Promise<Result[]> {
  const dir = join(root, 'gets');
  const tier = await openTier(dir, keyring);
  await fill(tier, SMALL, (i) => makeEntry(i, keyring));
  await tier.compact(); // one record per key, so the reference finds the same lines
  const located = locateLines(dir);
  const keys = shuffled([...located.keys()]);
  const positions = keys.map(
    (key) => located.get(key) as { fd: number; offset: number; length: number },
  );
  const buffer = Buffer.allocUnsafe(4096);

  let rawCursor = 0;
  const rawRead: SyncBody = (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      const at = positions[rawCursor] as { fd: number; offset: number; length: number };
      rawCursor = rawCursor + 1 === SMALL ? 0 : rawCursor + 1;
      const read = fs.readSync(at.fd, buffer, 0, at.length, at.offset);
      if ((JSON.parse(buffer.toString('utf8', 0, read)) as { key?: string }).key === undefined) {
        misses += 1;
      }
    }
    if (misses !== 0) throw missed('raw read', misses);
  };
  let syncCursor = 0;
  const getSync: SyncBody = (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      const key = keys[syncCursor] as string;
      syncCursor = syncCursor + 1 === SMALL ? 0 : syncCursor + 1;
      if (tier.getSync(key) === undefined) misses += 1;
    }
    if (misses !== 0) throw missed('getSync', misses);
  };
  let asyncCursor = 0;
  const getAsync: AsyncBody = async (ops) => {
    let misses = 0;
    for (let n = 0; n < ops; n += 1) {
      const key = keys[asyncCursor] as string;
      asyncCursor = asyncCursor + 1 === SMALL ? 0 : asyncCursor + 1;
      if ((await tier.get(key)) === undefined) misses += 1;
    }
    if (misses !== 0) throw missed('get', misses);
  };

  const reference = { name: 'positioned read + JSON.parse, same line', sync: rawRead };
  const results = [
    await compareThroughput(
      'jsonl cold get, with credentials, 10k entries',
      { name: 'getSync(key)', sync: getSync },
      reference,
      { ...ROUNDS, budget: BUDGET.coldGet },
    ),
    await compareThroughput(
      'jsonl cold get, with credentials, 10k entries',
      { name: 'await get(key)', async: getAsync },
      reference,
      ROUNDS,
    ),
  ];
  await tier.close();
  for (const position of new Set(positions.map((at) => at.fd))) fs.closeSync(position);
  return results;
}

// ------------------------------------------------------------------ (c) open, (d) scaling

async function openLarge(dir: string, keyring: Keyring): Promise<Result> {
  const hintFiles = fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.hint'))
    .map((name) => join(dir, name));
  const opens: number[] = [];
  const raws: number[] = [];
  let hintBytes = 0;
  for (let round = 0; round < 3; round += 1) {
    collectGarbage();
    let start = performance.now();
    hintBytes = 0;
    for (const path of hintFiles) hintBytes += fs.readFileSync(path).length;
    raws.push(performance.now() - start);
    collectGarbage();
    start = performance.now();
    const tier = await openTier(dir, keyring);
    opens.push(performance.now() - start);
    const stats = tier.stats();
    if (stats.entries !== LARGE || stats.hintLoads !== 16) {
      throw new Error(`open: ${stats.entries} entries, ${stats.hintLoads} hint files used`);
    }
    await tier.close();
  }
  const value = median(opens);
  const referenceValue = median(raws);
  progress(
    `jsonl open 1M: ${value.toFixed(0)} ms vs ${referenceValue.toFixed(0)} ms to read ${(hintBytes / 1e6).toFixed(1)} MB of hints (rounds ${opens.map((ms) => ms.toFixed(0)).join(' ')} | ${raws.map((ms) => ms.toFixed(0)).join(' ')})`,
  );
  return {
    name: 'jsonl open, 1M entries, current hint files: open()',
    value: round3(value),
    unit: 'ms',
    reference: `read the 16 hint files raw (${(hintBytes / 1e6).toFixed(1)} MB)`,
    referenceValue: round3(referenceValue),
    ratio: round3(value / referenceValue),
    better: 'lower',
  };
}

async function scaling(smallDir: string, largeDir: string, keyring: Keyring): Promise<Result[]> {
  const small = await openTier(smallDir, keyring);
  const large = await openTier(largeDir, keyring);
  // The same puts on both: overwrites of 10,000 entries that both stores hold.
  const entries = Array.from({ length: SMALL }, (_, i) => makeEntry(i));
  const putBody = (tier: JsonlTier): AsyncBody => {
    let cursor = 0;
    return async (ops) => {
      const writes: Promise<void>[] = new Array<Promise<void>>(ops);
      for (let n = 0; n < ops; n += 1) {
        writes[n] = tier.set(entries[cursor] as ProxyEntry);
        cursor = cursor + 1 === SMALL ? 0 : cursor + 1;
      }
      await Promise.all(writes);
    };
  };
  // Gets of random keys over each store's whole key space.
  const keysOf = async (tier: JsonlTier) => {
    const keys: string[] = [];
    for await (const key of tier.keys()) keys.push(key);
    return shuffled(keys, 2).slice(0, 200_000);
  };
  const getBody = (tier: JsonlTier, keys: string[]): SyncBody => {
    let cursor = 0;
    return (ops) => {
      let misses = 0;
      for (let n = 0; n < ops; n += 1) {
        if (tier.getSync(keys[cursor] as string) === undefined) misses += 1;
        cursor = cursor + 1 === keys.length ? 0 : cursor + 1;
      }
      if (misses !== 0) throw missed('getSync', misses);
    };
  };
  const smallKeys = await keysOf(small);
  const largeKeys = await keysOf(large);
  const options = { rounds: 3, roundMs: 250, warmupMs: 250 };
  const results = [
    await compareThroughput(
      'jsonl put x1000 concurrent, store size',
      { name: '1M-entry store', async: putBody(large) },
      { name: '10k-entry store', async: putBody(small) },
      options,
    ),
    await compareThroughput(
      'jsonl cold getSync, store size',
      { name: '1M-entry store', sync: getBody(large, largeKeys) },
      { name: '10k-entry store', sync: getBody(small, smallKeys) },
      options,
    ),
  ];
  await small.close();
  await large.close();
  return results;
}

async function sizes(root: string, keyring: Keyring): Promise<Result[]> {
  const smallDir = join(root, 'small');
  const largeDir = join(root, 'large');
  const small = await openTier(smallDir, keyring);
  await fill(small, SMALL, (i) => makeEntry(i));
  await small.compact();
  await small.close();
  progress(`jsonl: building a ${LARGE}-entry store`);
  const large = await openTier(largeDir, keyring);
  await fill(large, LARGE, (i) => makeEntry(i));
  progress('jsonl: compacting it (writes the hint files)');
  await large.compact();
  await large.close();
  collectGarbage();
  const opened = await openLarge(largeDir, keyring);
  return [opened, ...(await scaling(smallDir, largeDir, keyring))];
}

/** The JSONL suite: puts, cold gets, opening 1M entries, and cost against store size. */
export async function jsonlSuite(): Promise<Result[]> {
  const root = await mkdtemp(join(tmpdir(), 'proxytier-bench-jsonl-'));
  const keyring = new Keyring(generateFernetKey());
  try {
    return [
      ...(await puts(root, keyring)),
      ...(await coldGets(root, keyring)),
      ...(await sizes(root, keyring)),
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
