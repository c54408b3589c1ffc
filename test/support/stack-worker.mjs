// Child process of test/stack/processes.test.ts (started with fork, so it has an IPC channel).
// It opens a ProxyCache of the built package over one shared persistent tier (SQLite or JSONL),
// with or without a MemoryTier as L1, and answers the parent's requests one message each:
// { id, op, ...args } -> { id, ok: true, result } | { id, ok: false, error: { code, message } }.
// argv: <dist dir> <engine: sqlite|jsonl> <store path (database file or directory)> <options JSON>
// where options = { maxEntries (0: no L1), coherenceMs, healthFailureThreshold }.
// The Fernet key arrives in PROXYTIER_TEST_KEY and is never printed.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { clearInterval, setImmediate, setInterval, setTimeout } from 'node:timers';
import { pathToFileURL } from 'node:url';

const [dist, engine, store, optionsText] = process.argv.slice(2);
const options = JSON.parse(optionsText ?? '{}');
const load = (file) => import(pathToFileURL(join(dist, file)).href);
const { Keyring, MemoryTier, ProxyCache, deriveKey, silentLogger } = await load('index.js');

/** Wall time in ms, comparable between processes (fractional). */
const wall = () => performance.timeOrigin + performance.now();
const tick = () => new Promise((resolveTick) => setImmediate(resolveTick));

async function persistentTier() {
  if (engine === 'sqlite') {
    const { SqliteTier } = await load('tiers/sqlite/index.js');
    return new SqliteTier({ path: store, role: 'l3' });
  }
  const { JsonlTier } = await load('tiers/jsonl/index.js');
  return new JsonlTier({ dir: store });
}

const tiers = [];
if ((options.maxEntries ?? 0) > 0) tiers.push(new MemoryTier({ maxEntries: options.maxEntries }));
tiers.push(await persistentTier());

const cache = await ProxyCache.open({
  tiers,
  keyring: new Keyring(process.env.PROXYTIER_TEST_KEY),
  logger: silentLogger,
  sweepIntervalMs: 0,
  ...(options.coherenceMs === undefined ? {} : { coherenceMs: options.coherenceMs }),
  ...(options.healthFailureThreshold === undefined
    ? {}
    : { healthFailureThreshold: options.healthFailureThreshold }),
});
const degraded = [];
cache.on('degrade', ({ tier, error }) => degraded.push(`${tier}: ${error?.code ?? error}`));

const password = async (key) => (await cache.get(key))?.password?.reveal() ?? null;

const ops = {
  /** Writes one entry; `at` is the wall time its promise resolved. */
  async put({ url, password: secret }) {
    const entry = await cache.put({ proxyUrl: url, password: secret, source: 'stack-test' });
    return { key: entry.key, at: wall() };
  },
  async puts({ urls }) {
    for (const url of urls) await cache.put({ proxyUrl: url, password: 'filler' });
    return urls.length;
  },
  get: ({ key }) => password(key),
  delete: ({ key }) => cache.delete(key),
  /**
   * Polls `get(key)` back to back (one setImmediate between) until it returns `want`. `arrivedAt`
   * is when this request arrived, `seenAt` when the value was first seen; `stale` counts reads
   * that returned something else (they can only come from L1: the store already held `want`).
   */
  async waitFor({ key, want, arrivedAt, limitMs }) {
    let polls = 0;
    let stale = 0;
    for (;;) {
      const found = await password(key);
      polls += 1;
      const now = wall();
      if (found === want) return { seenAt: now, arrivedAt, polls, stale };
      stale += 1;
      if (now - arrivedAt > limitMs) return { seenAt: null, arrivedAt, polls, stale, found };
      await tick();
    }
  },
  /** `n` concurrent reportFailure calls. */
  async reportFailures({ key, n }) {
    const settled = await Promise.allSettled(
      Array.from({ length: n }, () => cache.reportFailure(key)),
    );
    return settled.map((outcome) =>
      outcome.status === 'fulfilled'
        ? (outcome.value ?? null)
        : { error: `${outcome.reason?.code ?? 'error'}: ${outcome.reason?.message}` },
    );
  },
  /**
   * One put while a 10 ms interval measures the largest gap between its ticks (from the call of
   * put until the put settled and one more tick after it).
   */
  async putTimed({ url, password: secret }) {
    const startedAt = wall();
    let last = startedAt;
    let maxGap = 0;
    let ticks = 0;
    const timer = setInterval(() => {
      const now = wall();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks += 1;
    }, 10);
    let outcome;
    try {
      const entry = await cache.put({ proxyUrl: url, password: secret, source: 'stack-test' });
      outcome = { ok: true, key: entry.key, settledAt: wall() };
    } catch (error) {
      outcome = {
        ok: false,
        code: error?.code ?? null,
        message: String(error?.message),
        settledAt: wall(),
      };
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 30));
    clearInterval(timer);
    maxGap = Math.max(maxGap, wall() - last);
    return { ...outcome, startedAt, maxGap, ticks };
  },
  key: ({ url }) => deriveKey(url),
  degraded: () => degraded,
  /** How many entries L1 pushed out and demoted to the slower tiers. */
  demotions: async () => (await cache.stats()).tiers[0]?.demotions ?? 0,
  async close() {
    await cache.close();
    return true;
  },
};

process.on('message', async (message) => {
  const arrivedAt = wall();
  const { id, op, ...args } = message;
  try {
    const result = await ops[op]({ arrivedAt, ...args });
    process.send({ id, ok: true, result });
    if (op === 'close') process.disconnect();
  } catch (error) {
    process.send({
      id,
      ok: false,
      error: { code: error?.code ?? null, message: String(error?.message ?? error) },
    });
  }
});
process.send({ ready: true });
