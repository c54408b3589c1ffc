// A model-based test of the stack: fast-check draws sequences of puts, reads, deletes, health
// updates, loads, clock moves, injected tier failures and restarts, runs them against a real
// memory tier over a real SQLite or JSONL tier (behind a FaultTier), and compares every answer
// with a Map that follows the write semantics of docs/api.md ("What a write means"):
// - a call that resolves was committed (or held for replay): its effect is seen from then on,
//   and after the faults heal it is in the persistent tier itself; a delete is never undone;
// - a call that rejects does so with E_TIER_WRITE, only while a failure is injected, and changed
//   nothing (the one exception, a report whose threshold delete failed after its increment
//   landed, leaves the count one of two values, which the model tracks as a range);
// - while a failure is injected a read may miss, but it never returns anything but the newest
//   acknowledged state.
//
// Runs: PROXYTIER_MODEL_RUNS sequences per stack (200 by default); `npm run test:model` runs
// 10,000. A failure prints fast-check's seed and path and the shrunk sequence; replay it with
// PROXYTIER_MODEL_SEED=<seed> PROXYTIER_MODEL_PATH=<path> PROXYTIER_MODEL_REPLAY=<replayPath>
// (the last from the counterexample's comment) and the same PROXYTIER_MODEL_RUNS.
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { silentLogger } from '../../src/logger.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import { DEFAULT_SOURCE, type ProxyEntry } from '../../src/record/entry.js';
import { deriveKey } from '../../src/record/url.js';
import { FaultTier } from '../../src/tiers/fault.js';
import { JsonlTier } from '../../src/tiers/jsonl/index.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { SqliteTier } from '../../src/tiers/sqlite/index.js';
import type { Tier } from '../../src/tiers/tier.js';
import { proxy, START } from '../cache/helpers.js';
import { removeDir, tempDir } from '../support/sqlite-fixtures.js';

const RUNS = positiveEnv('PROXYTIER_MODEL_RUNS', 200);
const SEED = process.env.PROXYTIER_MODEL_SEED;
const PATH = process.env.PROXYTIER_MODEL_PATH;
const REPLAY = process.env.PROXYTIER_MODEL_REPLAY;

/** Proxies the sequences use: few, so that operations meet on the same keys. */
const PROXIES = 6;
const KEYS = Array.from({ length: PROXIES }, (_, index) => deriveKey(proxy(index)));
/** Smaller than the key space, so L1 evicts and demotes. */
const L1_ENTRIES = 4;
const HEALTH_THRESHOLD = 3;
const PROBE_MS = 1_000;
const LOADED_TTL_SECONDS = 3_600;

// ------------------------------------------------------------------------------------ the model

interface Expected {
  password: string | undefined;
  source: string;
  /** The failure count is exact, except after a report whose threshold delete was rejected. */
  failures: { min: number; max: number };
  checks: number;
  checkFailures: number;
  expiresAt: number;
}

class Model {
  readonly entries = new Map<string, Expected>();
  /** True from an injected failure until the next heal: reads may miss, writes may reject. */
  faulty = false;

  live(key: string, now: number): Expected | undefined {
    const expected = this.entries.get(key);
    return expected !== undefined && expected.expiresAt > now ? expected : undefined;
  }

  written(key: string, password: string | undefined, source: string, expiresAt: number): void {
    const failures = { min: 0, max: 0 };
    this.entries.set(key, { password, source, failures, checks: 0, checkFailures: 0, expiresAt });
  }
}

// ------------------------------------------------------------------------- the system under test

interface StackKind {
  name: string;
  makeTier(dir: string): Tier;
}

const KINDS: StackKind[] = [
  {
    name: 'sqlite',
    makeTier: (dir) => new SqliteTier({ path: join(dir, 'store.db'), role: 'l3' }),
  },
  { name: 'jsonl', makeTier: (dir) => new JsonlTier({ dir: join(dir, 'jsonl') }) },
];

/** What the sequences of one stack did, printed after the run, so a reader sees what was covered. */
class Tally {
  sequences = 0;
  steps = 0;
  rejected = 0;
  held = 0;
  degradations = 0;
  recoveries = 0;
  missesWhileFailing = 0;
  healthEvictions = 0;
  reopens = 0;

  toString(): string {
    return (
      `${this.sequences} sequences, ${this.steps} steps: ${this.rejected} calls rejected with ` +
      `E_TIER_WRITE, ${this.held} changes held for replay, ${this.degradations} degradations, ` +
      `${this.recoveries} recoveries, ${this.missesWhileFailing} reads missed while failing, ` +
      `${this.healthEvictions} health evictions, ${this.reopens} reopens`
    );
  }
}

/** One store directory and the cache open on it; reopened on the same clock and key. */
class Real {
  readonly clock = new ManualClock(START);
  readonly keyring = new Keyring(generateFernetKey());
  cache!: ProxyCache;
  disk!: FaultTier;
  inner!: Tier;
  #open = false;

  constructor(
    readonly kind: StackKind,
    readonly dir: string,
    readonly tierFailureThreshold: number,
    readonly tally: Tally,
  ) {}

  async open(): Promise<void> {
    this.inner = this.kind.makeTier(this.dir);
    this.disk = new FaultTier({ name: 'disk', inner: this.inner, sync: true });
    this.cache = await ProxyCache.open({
      tiers: [new MemoryTier({ maxEntries: L1_ENTRIES }), this.disk],
      clock: this.clock,
      keyring: this.keyring,
      logger: silentLogger,
      sweepIntervalMs: 0,
      tierFailureThreshold: this.tierFailureThreshold,
      tierProbeIntervalMs: PROBE_MS,
      healthFailureThreshold: HEALTH_THRESHOLD,
    });
    this.#open = true;
    const { tally } = this;
    this.cache.on('held', () => (tally.held += 1));
    this.cache.on('degrade', () => (tally.degradations += 1));
    this.cache.on('recover', () => (tally.recoveries += 1));
    this.cache.on('evict', ({ reason }) => {
      if (reason === 'health') tally.healthEvictions += 1;
    });
  }

  async close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    await this.cache.close();
  }

  /**
   * Stops the injected failures and waits until the disk tier is back in service with nothing
   * held: a read of a key nobody wrote reaches the tier once its probe is due, and `flush` waits
   * for the replay that recovery starts.
   */
  async heal(): Promise<void> {
    this.disk.heal();
    for (let attempt = 0; attempt < 5; attempt += 1) {
      await this.clock.advance(PROBE_MS + 1);
      await this.cache.has('never-written');
      await this.cache.flush();
      const disk = (await this.cache.stats()).tiers[1];
      if (disk !== undefined && !disk.degraded && disk.heldChanges === 0) return;
    }
    throw new Error(
      `the disk tier did not recover: ${JSON.stringify((await this.cache.stats()).tiers[1])}`,
    );
  }
}

// ------------------------------------------------------------------------------------ checking

function expectMatches(entry: ProxyEntry, expected: Expected, where: string): void {
  const seen = {
    password: entry.password?.reveal(),
    source: entry.source,
    checks: entry.totalHealthChecks,
    checkFailures: entry.totalHealthCheckFailures,
    expiresAt: entry.expiresAt,
  };
  const wanted = {
    password: expected.password,
    source: expected.source,
    checks: expected.checks,
    checkFailures: expected.checkFailures,
    expiresAt: expected.expiresAt,
  };
  expect(seen, where).toEqual(wanted);
  const { min, max } = expected.failures;
  expect(entry.failureCount, `${where}: failure count`).toBeGreaterThanOrEqual(min);
  expect(entry.failureCount, `${where}: failure count`).toBeLessThanOrEqual(max);
  expected.failures = { min: entry.failureCount, max: entry.failureCount };
}

/** A rejection is allowed only while a failure is injected, and only as E_TIER_WRITE. */
function expectFaultRejection(model: Model, real: Real, error: unknown, what: string): void {
  real.tally.rejected += 1;
  expect(model.faulty, `${what} rejected with no failure injected: ${String(error)}`).toBe(true);
  expect(error, what).toMatchObject({ code: 'E_TIER_WRITE', tier: 'disk' });
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(work: Promise<T>): Promise<Settled<T>> {
  return work.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

async function turns(count: number): Promise<void> {
  for (let turn = 0; turn < count; turn += 1) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** After a heal: the persistent tier itself holds exactly the live entries, and no deleted one. */
async function expectDiskMatches(model: Model, real: Real): Promise<void> {
  const now = real.clock.now();
  for (const key of KEYS) {
    const stored = await real.inner.get(key);
    const expected = model.live(key, now);
    if (expected === undefined) {
      // Gone, or expired and not yet swept; never an entry the model deleted.
      if (stored !== undefined) {
        expect(model.entries.has(key), `${key} is on disk after its delete`).toBe(true);
        expect(stored.expiresAt, `${key} on disk`).toBeLessThanOrEqual(now);
      }
      continue;
    }
    expect(stored, `${key} acknowledged but not on disk`).toBeDefined();
    expectMatches(stored as ProxyEntry, expected, `${key} on disk`);
  }
}

// ------------------------------------------------------------------------------------ commands

/** A step of a sequence; `run` counts it and does `act`. */
abstract class Step implements fc.AsyncCommand<Model, Real> {
  check = (_model: Readonly<Model>): boolean => true;
  run(model: Model, real: Real): Promise<void> {
    real.tally.steps += 1;
    return this.act(model, real);
  }
  abstract act(model: Model, real: Real): Promise<void>;
}

class Put extends Step {
  constructor(
    readonly index: number,
    readonly password: string | undefined,
    readonly source: string,
    readonly ttlSeconds: number,
  ) {
    super();
  }
  override async act(model: Model, real: Real): Promise<void> {
    const now = real.clock.now();
    const key = KEYS[this.index] as string;
    const { password, source, ttlSeconds } = this;
    const outcome = await settle(
      real.cache.put({ proxyUrl: proxy(this.index), password, source, ttlSeconds }),
    );
    if (!outcome.ok) return expectFaultRejection(model, real, outcome.error, String(this));
    expect(outcome.value.key).toBe(key);
    model.written(key, password, source, now + ttlSeconds * 1000);
  }
  override toString = () =>
    `put(${this.index}, ${this.password}, ${this.source}, ${this.ttlSeconds}s)`;
}

class Get extends Step {
  constructor(
    readonly index: number,
    readonly sync: boolean,
  ) {
    super();
  }
  override async act(model: Model, real: Real): Promise<void> {
    const key = KEYS[this.index] as string;
    const expected = model.live(key, real.clock.now());
    const entry = this.sync ? real.cache.getSync(key) : await real.cache.get(key);
    if (entry === undefined) {
      // A miss while a failure is injected is degraded service; otherwise it loses a write.
      if (!model.faulty) expect(expected, `${String(this)} missed`).toBeUndefined();
      if (expected !== undefined) real.tally.missesWhileFailing += 1;
      return;
    }
    expect(expected, `${String(this)} returned a deleted or expired entry`).toBeDefined();
    expectMatches(entry, expected as Expected, String(this));
  }
  override toString = () => `${this.sync ? 'getSync' : 'get'}(${this.index})`;
}

class Delete extends Step {
  constructor(readonly index: number) {
    super();
  }
  override async act(model: Model, real: Real): Promise<void> {
    const key = KEYS[this.index] as string;
    const expected = model.live(key, real.clock.now());
    const outcome = await settle(real.cache.delete(key));
    if (!outcome.ok) return expectFaultRejection(model, real, outcome.error, String(this));
    if (!model.faulty) {
      if (expected !== undefined) expect(outcome.value, String(this)).toBe(true);
      if (!model.entries.has(key)) expect(outcome.value, String(this)).toBe(false);
    }
    model.entries.delete(key);
  }
  override toString = () => `delete(${this.index})`;
}

/** `count` concurrent `reportFailure` calls on one key. */
class ReportFailures extends Step {
  constructor(
    readonly index: number,
    readonly count: number,
  ) {
    super();
  }
  override async act(model: Model, real: Real): Promise<void> {
    const key = KEYS[this.index] as string;
    const expected = model.live(key, real.clock.now());
    const outcomes = await Promise.all(
      Array.from({ length: this.count }, () => settle(real.cache.reportFailure(key))),
    );
    const counts: number[] = [];
    let evictions = 0;
    let rejected = 0;
    for (const outcome of outcomes) {
      if (!outcome.ok) {
        expectFaultRejection(model, real, outcome.error, String(this));
        rejected += 1;
      } else if (outcome.value !== undefined) {
        expect(expected, `${String(this)} counted a failure of a missing entry`).toBeDefined();
        const { failureCount, evicted } = outcome.value;
        counts.push(failureCount);
        // Only the report that reaches the threshold evicts.
        expect(evicted, String(this)).toBe(failureCount === HEALTH_THRESHOLD);
        if (evicted) evictions += 1;
      }
    }
    if (expected === undefined) return;
    counts.sort((a, b) => a - b);
    expect(new Set(counts).size, `${String(this)} counts ${counts.join(',')}`).toBe(counts.length);
    const { min, max } = expected.failures;
    if (counts.length > 0) {
      expect(counts[0], String(this)).toBeGreaterThanOrEqual(min + 1);
      // A report of this batch rejected after its increment landed may come before the first.
      expect(counts[0], String(this)).toBeLessThanOrEqual(max + 1 + rejected);
    }
    if (!model.faulty && min === max) {
      // Serialised per key: each report counts one more, until one reaches the threshold and
      // removes the entry; the reports after it find nothing.
      const wanted: number[] = [];
      for (let count = min + 1; wanted.length < this.count; count += 1) {
        wanted.push(count);
        if (count >= HEALTH_THRESHOLD) break;
      }
      expect(counts, String(this)).toEqual(wanted);
      expect(evictions, String(this)).toBe(wanted.includes(HEALTH_THRESHOLD) ? 1 : 0);
    }
    const last = counts.at(-1);
    if (last !== undefined && last >= HEALTH_THRESHOLD) {
      model.entries.delete(key); // that report's removal resolved
    } else if (rejected > 0) {
      // A rejected report changed nothing, or (its threshold delete failing) only the count.
      expected.failures = { min: last ?? min, max: (last ?? max) + rejected };
    } else if (last !== undefined) {
      expected.failures = { min: last, max: last };
    }
  }
  override toString = () => `reportFailure(${this.index}) x${this.count}`;
}

class RecordCheck extends Step {
  constructor(
    readonly index: number,
    readonly healthy: boolean,
  ) {
    super();
  }
  override async act(model: Model, real: Real): Promise<void> {
    const key = KEYS[this.index] as string;
    const now = real.clock.now();
    const expected = model.live(key, now);
    const known = model.entries.get(key);
    const status = this.healthy ? 'healthy' : 'unhealthy';
    const outcome = await settle(
      real.cache.recordHealthCheck(key, {
        status,
        responseTimeMs: 100,
        checkUrl: 'https://check.test/',
      }),
    );
    if (!outcome.ok) return expectFaultRejection(model, real, outcome.error, String(this));
    const entry = outcome.value;
    if (entry === undefined) {
      if (!model.faulty) expect(expected, `${String(this)} missed`).toBeUndefined();
      return;
    }
    // An expired entry not yet removed may take the check; nobody reads it again.
    expect(known, `${String(this)} updated a deleted entry`).toBeDefined();
    if (expected === undefined) return;
    expected.checks += 1;
    if (!this.healthy) expected.checkFailures += 1;
    expectMatches(entry, expected, String(this));
  }
  override toString = () =>
    `recordHealthCheck(${this.index}, ${this.healthy ? 'healthy' : 'unhealthy'})`;
}

class GetOrLoad extends Step {
  constructor(readonly index: number) {
    super();
  }
  override async act(model: Model, real: Real): Promise<void> {
    const key = KEYS[this.index] as string;
    const now = real.clock.now();
    const expected = model.live(key, now);
    let loads = 0;
    const outcome = await settle(
      real.cache.getOrLoad(key, () => {
        loads += 1;
        const input = { proxyUrl: proxy(this.index), password: 'loaded', source: 'loader' };
        return { ...input, ttlSeconds: LOADED_TTL_SECONDS };
      }),
    );
    if (!outcome.ok) return expectFaultRejection(model, real, outcome.error, String(this));
    const entry = outcome.value;
    expect(entry, String(this)).toBeDefined();
    if (loads === 0) {
      expect(expected, `${String(this)} served a deleted or expired entry`).toBeDefined();
      return expectMatches(entry as ProxyEntry, expected as Expected, String(this));
    }
    // The loader runs on a miss; a miss of a live entry is allowed only while failing.
    if (!model.faulty) expect(expected, `${String(this)} ran the loader on a hit`).toBeUndefined();
    expect(entry?.password?.reveal()).toBe('loaded');
    model.written(key, 'loaded', 'loader', now + LOADED_TTL_SECONDS * 1000);
  }
  override toString = () => `getOrLoad(${this.index})`;
}

/** A put or delete of the key while `getOrLoad`'s loader runs wins over the loader's result. */
class LoadRacedBy extends Step {
  constructor(
    readonly index: number,
    readonly racer: 'put' | 'delete',
  ) {
    super();
  }
  override check = (model: Readonly<Model>) => !model.faulty;
  override async act(model: Model, real: Real): Promise<void> {
    const key = KEYS[this.index] as string;
    const now = real.clock.now();
    if (model.live(key, now) !== undefined) return; // getOrLoad would not load
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let loads = 0;
    const loading = real.cache.getOrLoad(key, async () => {
      loads += 1;
      await gate;
      return { proxyUrl: proxy(this.index), password: 'stale', ttlSeconds: LOADED_TTL_SECONDS };
    });
    for (let turn = 0; turn < 1_000 && loads === 0; turn += 1) await turns(1);
    expect(loads, 'the loader started').toBe(1);
    if (this.racer === 'put') {
      await real.cache.put({ proxyUrl: proxy(this.index), password: 'newer', ttlSeconds: 60 });
      model.written(key, 'newer', DEFAULT_SOURCE, now + 60_000);
    } else {
      await real.cache.delete(key);
      model.entries.delete(key);
    }
    release();
    const entry = await loading;
    if (this.racer === 'delete') expect(entry, String(this)).toBeUndefined();
    else expect(entry?.password?.reveal(), String(this)).toBe('newer');
  }
  override toString = () => `getOrLoad(${this.index}) raced by ${this.racer}`;
}

class Advance extends Step {
  constructor(readonly ms: number) {
    super();
  }
  override async act(_model: Model, real: Real): Promise<void> {
    await real.clock.advance(this.ms);
    await turns(2);
  }
  override toString = () => `advance(${this.ms} ms)`;
}

class FailNext extends Step {
  constructor(
    readonly count: number,
    readonly operation: 'any' | 'set' | 'delete' | 'modify' | 'get',
  ) {
    super();
  }
  override act(model: Model, real: Real): Promise<void> {
    if (this.operation === 'any') real.disk.failAll(this.count);
    else real.disk.failOn(this.operation, this.count);
    model.faulty = true;
    return Promise.resolve();
  }
  override toString = () => `fail next ${this.count} ${this.operation} call(s) of the disk tier`;
}

class Heal extends Step {
  override async act(model: Model, real: Real): Promise<void> {
    await real.heal();
    model.faulty = false;
    await expectDiskMatches(model, real);
  }
  override toString = () => 'heal the disk tier and wait for its replay';
}

/** Heals, closes and opens the store again: every acknowledged write is still there. */
class Reopen extends Step {
  override async act(model: Model, real: Real): Promise<void> {
    await real.heal();
    model.faulty = false;
    await real.close();
    await real.open();
    real.tally.reopens += 1;
    await expectDiskMatches(model, real);
  }
  override toString = () => 'close and reopen';
}

const index = fc.integer({ min: 0, max: PROXIES - 1 });
// Weighted so that a sequence is mostly traffic, with failures, heals and restarts among it.
const step = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        index,
        fc.option(fc.constantFrom('pw-a', 'pw-b', 'p@ss:w/rd'), { nil: undefined }),
        fc.constantFrom('provider-a', 'provider-b'),
        fc.constantFrom(1, 5, 3_600),
      )
      .map(([at, password, source, ttl]): Step => new Put(at, password, source, ttl)),
  },
  { weight: 4, arbitrary: fc.tuple(index, fc.boolean()).map(([at, sync]) => new Get(at, sync)) },
  { weight: 2, arbitrary: index.map((at) => new Delete(at)) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(index, fc.integer({ min: 1, max: 4 }))
      .map(([at, count]) => new ReportFailures(at, count)),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(index, fc.boolean()).map(([at, ok]) => new RecordCheck(at, ok)),
  },
  { weight: 1, arbitrary: index.map((at) => new GetOrLoad(at)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(index, fc.constantFrom('put' as const, 'delete' as const))
      .map(([at, racer]) => new LoadRacedBy(at, racer)),
  },
  { weight: 2, arbitrary: fc.constantFrom(10, 600, 1_500, 6_000).map((ms) => new Advance(ms)) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom('any' as const, 'set' as const, 'delete' as const, 'modify' as const),
      )
      .map(([count, operation]) => new FailNext(count, operation)),
  },
  { weight: 1, arbitrary: fc.constant(new Heal()) },
  { weight: 1, arbitrary: fc.constant(new Reopen()) },
);
const commands = fc.commands([step], {
  maxCommands: 60,
  size: 'large',
  ...(REPLAY === undefined ? {} : { replayPath: REPLAY }),
});

// ------------------------------------------------------------------------------------ the runs

describe.each(KINDS)('the stack [memory, FaultTier($name)] against its model', (kind) => {
  const tally = new Tally();
  afterAll(() => {
    console.log(`model ${kind.name}: ${String(tally)}`);
  });

  it(
    `agrees with the model over ${RUNS} random sequences`,
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 3 }), commands, async (threshold, sequence) => {
          const dir = await tempDir(`proxytier-model-${kind.name}-`);
          const real = new Real(kind, dir, threshold, tally);
          tally.sequences += 1;
          const model = new Model();
          try {
            await real.open();
            await fc.asyncModelRun(() => ({ model, real }), sequence);
            // Whatever the sequence did, healing leaves the disk holding what was acknowledged.
            await real.heal();
            await expectDiskMatches(model, real);
          } finally {
            await real.close();
            await removeDir(dir);
          }
        }),
        {
          numRuns: RUNS,
          ...(SEED === undefined ? {} : { seed: Number(SEED) }),
          ...(PATH === undefined ? {} : { path: PATH }),
        },
      );
    },
    120_000 + RUNS * 500,
  );
});

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}
