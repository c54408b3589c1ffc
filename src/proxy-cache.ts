import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from './clock.js';
import type { Keyring } from './crypto/keyring.js';
import { resolveKeyring } from './crypto/key-source.js';
import { defaultTiers } from './default-store.js';
import {
  ClosedError,
  InvalidEntryError,
  InvalidOptionError,
  ProxyTierError,
  TierError,
  TierTimeoutError,
  TierUnavailableError,
  UnsupportedOperationError,
} from './errors.js';
import type { Logger } from './logger.js';
import { resolveOptions, type ProxyCacheOptions, type ResolvedOptions } from './options.js';
import {
  toValidEntry,
  type EntryDefaults,
  type ProxyEntry,
  type ProxyEntryInput,
} from './record/entry.js';
import { TierCounters, type CacheStats } from './stats.js';
import { applyHealthCheck } from './health.js';
import { healthFields, scanQuery, validateHealthCheck, validateQuery } from './query.js';
import {
  isHealthTier,
  type EntryPatch,
  type EvictionReason,
  type HealthCheckInput,
  type HealthCheckRecord,
  type HealthTier,
  type ProxyQuery,
  type Tier,
  type TierContext,
} from './tiers/tier.js';

/**
 * Payload of the `evict` event: an entry left `tier` for `reason`: LRU pressure or corruption
 * found by the tier, or TTL expiry and health failures acted on by the cache. Explicit `delete`
 * and `clear` calls emit nothing.
 */
export interface EvictEvent {
  key: string;
  tier: string;
  reason: EvictionReason;
}
/** Payload of the `expire` event: an entry's TTL ran out and it was removed from every tier. */
export interface ExpireEvent {
  key: string;
}
/** Payload of the `degrade` event: `tier` was switched off after consecutive failures. */
export interface DegradeEvent {
  tier: string;
  error: Error;
}
/** Payload of the `recover` event: a probe of a degraded `tier` succeeded; it serves again. */
export interface RecoverEvent {
  tier: string;
}

/** Events a `ProxyCache` emits. Nothing is built for an event nobody listens to. */
export interface ProxyCacheEvents {
  evict: [EvictEvent];
  expire: [ExpireEvent];
  degrade: [DegradeEvent];
  recover: [RecoverEvent];
}

/** What `reportFailure` did. */
export interface FailureReport {
  key: string;
  /** The entry's failure count after this report. */
  failureCount: number;
  /** True when the count reached `healthFailureThreshold` and the entry left every tier. */
  evicted: boolean;
}

/** Stored credential tokens by the key that made them (see `tokenReport`). */
export interface TokenReport {
  current: number;
  previous: number;
  unreadable: number;
}

/** Loads an entry on a miss in `getOrLoad`; `undefined` means there is nothing to cache. */
export type Loader = (
  key: string,
) => ProxyEntryInput | undefined | Promise<ProxyEntryInput | undefined>;

// Keys written or deleted while a tier was switched off, replayed when it recovers. Past this
// many the tier is cleared on recovery instead, since it can no longer be brought up to date.
const MAX_DIRTY_KEYS = 100_000;
const FAILED = Symbol('failed');
type Failed = typeof FAILED;

/** Per-tier state the stack keeps: counters, and the circuit breaker for degradation. */
class TierSlot {
  readonly counters = new TierCounters();
  consecutiveFailures = 0;
  degraded = false;
  nextProbeAt = 0;
  /** Keys changed while degraded, or `'overflow'` when there were too many to keep. */
  dirty: Set<string> | 'overflow' | undefined;
  /** Set while the tier could not be opened; a probe then tries `open` again. */
  unopened = false;
  /** A re-open attempt in flight. */
  reopening = false;

  constructor(
    readonly tier: Tier,
    readonly level: number,
  ) {}
}

/**
 * The cache: a stack of tiers, fastest first. `get` reads L1, then L2, then L3, and promotes a
 * hit into the faster tiers; `put` writes through to every tier; entries expire by TTL; a tier
 * that keeps failing is switched off and probed until it works again.
 *
 * @example
 * const cache = await ProxyCache.open();
 * await cache.put({ proxyUrl: 'http://user:pass@10.0.0.1:8080', source: 'provider-a' });
 * const entry = await cache.get(deriveKey('http://10.0.0.1:8080'));
 * entry?.password?.reveal(); // 'pass'
 * await cache.close();
 */
export class ProxyCache extends EventEmitter<ProxyCacheEvents> {
  readonly #slots: TierSlot[];
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #options: ResolvedOptions;
  readonly #keyring: Keyring | undefined;
  readonly #persistent: boolean;
  readonly #defaults: EntryDefaults & { now: number };
  readonly #inflight = new Map<string, Promise<ProxyEntry | undefined>>();
  readonly #background = new Set<Promise<unknown>>();
  #sweepTimer: TimerHandle | undefined;
  /** L1 when it has a synchronous engine (the memory tier): the hot path reads it directly. */
  readonly #l1: TierSlot | undefined;
  #closed = false;
  #requests = 0;
  #coalesced = 0;
  #loads = 0;

  /** Use `ProxyCache.open()`: opening tiers and finding the key are asynchronous. */
  private constructor(options: ResolvedOptions, tiers: Tier[], keyring: Keyring | undefined) {
    super();
    this.#options = options;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#keyring = keyring;
    this.#slots = tiers.map((tier, index) => new TierSlot(tier, index + 1));
    const first = this.#slots[0];
    this.#l1 = first?.tier.getSync === undefined ? undefined : first;
    this.#persistent = tiers.some((tier) => tier.persistent);
    const { defaultTtlSeconds, ttlBySource } = options;
    this.#defaults = {
      now: 0,
      ttlSecondsFor: (source) => ttlBySource.get(source) ?? defaultTtlSeconds,
    };
  }

  /**
   * Validates the options, finds the encryption key (only when a tier is persistent), opens every
   * tier and starts the expiry sweep.
   */
  static async open(options: ProxyCacheOptions = {}): Promise<ProxyCache> {
    const resolved = resolveOptions(options);
    const tiers =
      resolved.tiers ??
      (await defaultTiers(
        resolved.dir as string,
        resolved.logger,
        resolved.memoryTier ? { maxEntries: resolved.maxEntries } : undefined,
      ));
    let keyring = resolved.keyring;
    // A key given explicitly is checked even when no tier needs one, so a typo fails early.
    const needsKey = tiers.some((tier) => tier.persistent) || resolved.encryptionKey !== undefined;
    if (keyring === undefined && needsKey) {
      const found = await resolveKeyring({
        key: resolved.encryptionKey,
        previousKeys: resolved.previousKeys,
        keyFile: resolved.keyFile,
        logger: resolved.logger,
      });
      keyring = found.keyring;
    }
    const cache = new ProxyCache(resolved, tiers, keyring);
    // A tier that cannot open (a corrupt database, a dead server) starts switched off and is
    // probed like any degraded tier; the cache fails to open only when no tier opens at all.
    let lastError: unknown;
    for (const slot of cache.#slots) {
      try {
        await slot.tier.open(cache.#contextFor(slot));
      } catch (error) {
        lastError = error;
        slot.unopened = true;
        cache.#failed(slot, error, true);
      }
    }
    if (cache.#slots.every((slot) => slot.unopened)) {
      await Promise.allSettled(cache.#slots.map((slot) => slot.tier.close()));
      throw lastError;
    }
    if (resolved.sweepIntervalMs > 0) {
      cache.#sweepTimer = resolved.clock.every(resolved.sweepIntervalMs, () =>
        cache.sweepExpired().catch((error: unknown) => {
          cache.#logger.warn(`expiry sweep failed: ${describeError(error)}`);
        }),
      );
    }
    return cache;
  }

  /** The keyring credentials are sealed with, when a tier is persistent. */
  get keyring(): Keyring | undefined {
    return this.#keyring;
  }

  /** The tiers, fastest first. */
  get tiers(): readonly Tier[] {
    return this.#slots.map((slot) => slot.tier);
  }

  /**
   * Reads `key` from the fastest tier that has it and promotes it into the faster ones.
   * An expired entry is removed everywhere and reads as a miss.
   */
  get(key: string): Promise<ProxyEntry | undefined> {
    // Not an async function: an L1 hit is answered with one settled promise and no awaits.
    try {
      if (this.#closed) this.#assertOpen();
      const now = this.#clock.now();
      this.#requests += 1;
      // The L1 read is written out here and in getSync rather than shared in a helper: V8 then
      // optimises the whole hit as one frame (measured: 0.25 -> 0.31 of lru-cache's get for the
      // awaited hit). A failing or switched-off L1 takes the general path.
      const l1 = this.#l1;
      if (l1 === undefined || l1.degraded || l1.consecutiveFailures !== 0) {
        return this.#readFrom(0, key, now);
      }
      let entry: ProxyEntry | undefined;
      try {
        entry = (l1.tier.getSync as (key: string) => ProxyEntry | undefined)(key);
      } catch (error) {
        this.#failed(l1, error);
        return this.#readFrom(1, key, now);
      }
      if (entry === undefined) {
        l1.counters.misses += 1;
        return this.#readFrom(1, key, now);
      }
      if (entry.expiresAt <= now) return this.#expire(key).then(() => undefined);
      l1.counters.hits += 1;
      // Skipping the store when the time has not moved saves a write on bursts of hits.
      if (entry.lastAccessed !== now) entry.lastAccessed = now;
      entry.accessCount += 1;
      return Promise.resolve(entry);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The synchronous read: like `get`, but consults only the tiers with a synchronous engine
   * (memory, sqlite). Use it on hot paths where an L1 hit is the common case.
   */
  getSync(key: string): ProxyEntry | undefined {
    if (this.#closed) this.#assertOpen();
    const now = this.#clock.now();
    this.#requests += 1;
    // The same L1 read as in `get`, written out for the same reason.
    const l1 = this.#l1;
    if (l1 === undefined || l1.degraded || l1.consecutiveFailures !== 0) {
      return this.#readSyncFrom(0, key, now);
    }
    let entry: ProxyEntry | undefined;
    try {
      entry = (l1.tier.getSync as (key: string) => ProxyEntry | undefined)(key);
    } catch (error) {
      this.#failed(l1, error);
      return this.#readSyncFrom(1, key, now);
    }
    if (entry === undefined) {
      l1.counters.misses += 1;
      return this.#readSyncFrom(1, key, now);
    }
    if (entry.expiresAt <= now) {
      this.#track(this.#expire(key));
      return undefined;
    }
    l1.counters.hits += 1;
    if (entry.lastAccessed !== now) entry.lastAccessed = now;
    entry.accessCount += 1;
    return entry;
  }

  /**
   * Validates `input` into a full entry and writes it through to every tier; resolves once each
   * persistent tier has made it durable. Credentials are encrypted once and the same token goes
   * to every persistent tier. Rejects with `E_TIER_UNAVAILABLE` only when no tier took the write.
   */
  put(input: ProxyEntryInput | ProxyEntry): Promise<ProxyEntry> {
    // Not an async function: when every tier is synchronous (a memory-only cache) the write is
    // done before this returns, and the caller pays for one settled promise only.
    try {
      this.#assertOpen();
      const defaults = this.#defaults;
      defaults.now = this.#clock.now();
      const entry = toValidEntry(input, defaults);
      const pending = this.#writeThrough(entry);
      return pending === undefined ? Promise.resolve(entry) : pending.then(() => entry);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** True when a live (unexpired) entry for `key` is in any tier. Counts no statistics. */
  async has(key: string): Promise<boolean> {
    this.#assertOpen();
    const found = await this.#find(key);
    return found !== undefined && found.entry.expiresAt > this.#clock.now();
  }

  /**
   * The entry without promotion, statistics or access-time changes; `undefined` if absent or
   * expired (unless `includeExpired`: an expired entry not yet removed is then returned).
   */
  async peek(
    key: string,
    options: { includeExpired?: boolean } = {},
  ): Promise<ProxyEntry | undefined> {
    this.#assertOpen();
    const found = await this.#find(key);
    if (found === undefined) return undefined;
    return options.includeExpired === true || found.entry.expiresAt > this.#clock.now()
      ? found.entry
      : undefined;
  }

  /** Removes `key` from every tier; resolves `true` when any tier held it. */
  async delete(key: string): Promise<boolean> {
    this.#assertOpen();
    const removed = await this.#deleteEverywhere(key);
    return removed.length > 0;
  }

  /** Removes every entry from every tier. */
  async clear(): Promise<void> {
    this.#assertOpen();
    const now = this.#clock.now();
    await Promise.all(
      this.#slots.map(async (slot) => {
        // A tier that is off (or fails now) is cleared when it comes back instead.
        if (!this.#available(slot, now)) {
          slot.dirty = 'overflow';
          return;
        }
        if ((await this.#attempt(slot, () => slot.tier.clear())) === FAILED)
          slot.dirty = 'overflow';
      }),
    );
  }

  /**
   * Streams the keys of every tier, each once, without loading them all: a tier's key is skipped
   * when a faster tier holds it.
   */
  async *keys(): AsyncIterable<string> {
    for await (const [key] of this.#walk(false)) yield key;
  }

  /**
   * Streams live entries (and expired ones not yet removed, with `includeExpired`), each once,
   * fastest tier's copy first. No statistics or access times change.
   */
  async *entries(options: { includeExpired?: boolean } = {}): AsyncIterable<ProxyEntry> {
    const now = this.#clock.now();
    const includeExpired = options.includeExpired === true;
    for await (const [, entry] of this.#walk(true)) {
      if (entry !== undefined && (includeExpired || entry.expiresAt > now)) yield entry;
    }
  }

  /**
   * `get`, and on a miss one call of `loader` whose result is stored and returned. Concurrent
   * calls for the same key share that one loader call (single-flight).
   */
  getOrLoad(key: string, loader: Loader): Promise<ProxyEntry | undefined> {
    if (this.#closed) return Promise.reject(new ClosedError('the cache is closed'));
    const running = this.#inflight.get(key);
    if (running !== undefined) {
      this.#coalesced += 1;
      return running;
    }
    const load = (async () => {
      const cached = await this.get(key);
      if (cached !== undefined) return cached;
      this.#loads += 1;
      const input = await loader(key);
      if (input === undefined) return undefined;
      return this.put({ ...input, key: input.key ?? key });
    })();
    this.#inflight.set(key, load);
    const forget = () => {
      this.#inflight.delete(key);
    };
    load.then(forget, forget);
    return load;
  }

  /**
   * Records a failed use of a proxy (proxywhirl's `invalidate_by_health`): its failure count rises
   * by one and it is marked unhealthy; at `healthFailureThreshold` it is evicted from every tier.
   * Where a tier keeps health history, the failure is also recorded there as a failed check
   * (`error` and `checkUrl` default to `'reported failure'` and `'reportFailure'`).
   * Resolves `undefined` when the key is not cached.
   */
  async reportFailure(
    key: string,
    detail: { error?: string; checkUrl?: string } = {},
  ): Promise<FailureReport | undefined> {
    this.#assertOpen();
    const found = await this.#find(key);
    if (found === undefined || found.entry.expiresAt <= this.#clock.now()) return undefined;
    if (this.#healthSlot() !== undefined) {
      await this.recordHealthCheck(key, {
        status: 'unhealthy',
        error: detail.error ?? 'reported failure',
        checkUrl: detail.checkUrl ?? 'reportFailure',
      });
    }
    const failureCount = found.entry.failureCount + 1;
    if (failureCount >= this.#options.healthFailureThreshold) {
      const removedFrom = await this.#deleteEverywhere(key);
      for (const slot of removedFrom) this.#countEviction(slot, key, 'health');
      return { key, failureCount, evicted: true };
    }
    await this.#updateEverywhere(key, { failureCount, healthStatus: 'unhealthy' });
    return { key, failureCount, evicted: false };
  }

  /**
   * Records one health check of a proxy: its health fields change by the health policy (status,
   * consecutive successes and failures, totals, last error, next check time; see docs) in every
   * tier, and a tier that keeps history (SQLite, L3 role) appends the check in the same
   * transaction. Resolves the updated entry, or `undefined` when the key is not cached.
   */
  async recordHealthCheck(key: string, check: HealthCheckInput): Promise<ProxyEntry | undefined> {
    this.#assertOpen();
    const timed = validateHealthCheck(check, this.#clock.now());
    const healthSlot = this.#healthSlot();
    let patch: EntryPatch | undefined;
    // The tier that already applied the check, with its history row, in one transaction.
    let appliedBy: TierSlot | undefined;
    if (healthSlot !== undefined) {
      const tier = healthSlot.tier as HealthTier;
      const updated = await this.#attempt(healthSlot, () => tier.recordHealthCheck(key, timed));
      if (updated !== FAILED && updated !== undefined) {
        patch = healthFields(updated);
        appliedBy = healthSlot;
      }
    }
    if (patch === undefined) {
      const found = await this.#find(key);
      if (found === undefined) return undefined;
      patch = applyHealthCheck(found.entry, timed, this.#options.healthPolicy);
    }
    const applied = patch;
    await Promise.all(
      this.#slots.map(async (slot) => {
        if (slot === appliedBy) return;
        if (!this.#available(slot, timed.at)) {
          this.#markDirty(slot, key);
          return;
        }
        if ((await this.#attempt(slot, () => slot.tier.update(key, applied))) === FAILED) {
          this.#markDirty(slot, key);
        }
      }),
    );
    return this.peek(key, { includeExpired: true });
  }

  /**
   * The health history of one proxy, newest first, from the tier that keeps it. Rejects with
   * `E_UNSUPPORTED` when no tier keeps history (for example a memory-only cache).
   */
  async healthHistory(
    key: string,
    options: { since?: number; limit?: number } = {},
  ): Promise<HealthCheckRecord[]> {
    this.#assertOpen();
    const slot = this.#healthSlot();
    if (slot === undefined) {
      throw new UnsupportedOperationError(
        'health history needs a tier that keeps it (the SQLite tier in its "l3" role); this cache has none in service',
      );
    }
    const tier = slot.tier as HealthTier;
    const rows = await this.#attempt(slot, () => tier.healthHistory(key, options));
    if (rows === FAILED) {
      throw new TierUnavailableError(`the "${tier.name}" tier failed to read the health history`);
    }
    return rows;
  }

  /** True when a tier in service keeps health history (the SQLite tier in its "l3" role). */
  get keepsHealthHistory(): boolean {
    return this.#healthSlot() !== undefined;
  }

  /**
   * Adds health-history rows (a migration's), skipping rows already stored. Rejects with
   * `E_UNSUPPORTED` when no tier keeps history.
   */
  async importHealthHistory(
    rows: AsyncIterable<HealthCheckRecord> | Iterable<HealthCheckRecord>,
  ): Promise<{ imported: number; skipped: number }> {
    this.#assertOpen();
    const slot = this.#healthSlot();
    if (slot === undefined) {
      throw new UnsupportedOperationError(
        'importing health history needs a tier that keeps it (the SQLite tier in its "l3" role)',
      );
    }
    const tier = slot.tier as HealthTier;
    const result = await this.#attempt(slot, () => tier.importHealthHistory(rows));
    if (result === FAILED) {
      throw new TierUnavailableError(`the "${tier.name}" tier failed to store the health history`);
    }
    return result;
  }

  /**
   * Entries matching the filters, in the requested order (default: most recently used first),
   * from the tier that indexes them; without one, by scanning every entry (`responseTime` order
   * then needs history and rejects with `E_UNSUPPORTED`). Counts no statistics.
   */
  async query(query: ProxyQuery = {}): Promise<ProxyEntry[]> {
    this.#assertOpen();
    validateQuery(query);
    const slot = this.#healthSlot();
    if (slot !== undefined) {
      const tier = slot.tier as HealthTier;
      const found = await this.#attempt(slot, () => tier.query(query));
      if (found !== FAILED) return found;
    }
    return scanQuery(
      this.entries({ includeExpired: query.includeExpired === true }),
      query,
      this.#clock.now(),
    );
  }

  /** Asks every tier that can (the JSONL log, SQLite) to reclaim space; resolves their reports. */
  async compact(): Promise<{ tier: string; report: unknown }[]> {
    this.#assertOpen();
    const reports: { tier: string; report: unknown }[] = [];
    const now = this.#clock.now();
    for (const slot of this.#slots) {
      const { tier } = slot;
      if (tier.compact === undefined || !this.#available(slot, now)) continue;
      const report = await this.#attempt(slot, () => (tier.compact as () => Promise<unknown>)());
      if (report === FAILED) {
        throw new TierUnavailableError(`compaction of the "${tier.name}" tier failed`);
      }
      reports.push({ tier: tier.name, report });
    }
    return reports;
  }

  /**
   * Counts the credential tokens stored in the persistent tiers by the key that made them:
   * `current`, a `previous` key of the keyring, or `unreadable` by every key.
   */
  async tokenReport(): Promise<TokenReport> {
    this.#assertOpen();
    const report: TokenReport = { current: 0, previous: 0, unreadable: 0 };
    const keyring = this.#keyring;
    if (keyring === undefined) return report;
    await this.#forEachStoredEntry(true, async (entry, tier) => {
      // The memory tier holds copies of what the persistent tiers store: count the stored ones.
      if (!tier.persistent) return false;
      for (const secret of [entry.username, entry.password]) {
        const token = secret?.token;
        if (token === undefined) continue;
        if (keyring.isCurrent(token)) report.current += 1;
        else if (canDecrypt(keyring, token)) report.previous += 1;
        else report.unreadable += 1;
      }
      return false;
    });
    return report;
  }

  /**
   * Re-encrypts, under the keyring's current key, every stored token made by a previous key, in
   * every tier. Safe to run again after an interruption: tokens already current are left alone,
   * so a second run finishes the first. Tokens no key can decrypt are counted and kept.
   */
  async reencrypt(
    options: { onProgress?: (entriesSeen: number) => void } = {},
  ): Promise<TokenReport & { reencrypted: number }> {
    this.#assertOpen();
    const keyring = this.#keyring;
    if (keyring === undefined) {
      throw new UnsupportedOperationError('this cache has no keyring: no tier stores tokens');
    }
    const result = { reencrypted: 0, current: 0, previous: 0, unreadable: 0 };
    let seen = 0;
    await this.#forEachStoredEntry(false, async (entry, tier) => {
      // The memory tier's copies get new tokens too (so that a later write does not store an old
      // one) but only the persistent tiers' tokens are counted.
      const counted = tier.persistent;
      if (counted) {
        seen += 1;
        if (seen % 1_000 === 0) options.onProgress?.(seen);
      }
      let changed = false;
      for (const field of ['username', 'password'] as const) {
        const secret = entry[field];
        const token = secret?.token;
        if (secret === undefined || token === undefined) continue;
        if (keyring.isCurrent(token)) {
          if (counted) result.current += 1;
          continue;
        }
        try {
          secret.replaceToken(keyring.rotate(token));
          if (counted) result.reencrypted += 1;
          changed = true;
        } catch {
          if (counted) result.unreadable += 1;
        }
      }
      return changed;
    });
    options.onProgress?.(seen);
    return result;
  }

  /**
   * Calls `visit` for every entry stored in every tier in service (each tier's own copy); when
   * `visit` resolves true and `readOnly` is false, the entry is written back to that tier.
   */
  async #forEachStoredEntry(
    readOnly: boolean,
    visit: (entry: ProxyEntry, tier: Tier) => Promise<boolean>,
  ): Promise<void> {
    const now = this.#clock.now();
    for (const slot of this.#slots) {
      if (!this.#available(slot, now)) continue;
      const { tier } = slot;
      try {
        for await (const entry of tier.entries()) {
          const changed = await visit(entry, tier);
          if (changed && !readOnly && tier.persistent) {
            if ((await this.#attempt(slot, () => tier.set(entry))) === FAILED) {
              throw new TierUnavailableError(`writing to the "${tier.name}" tier failed`);
            }
          }
        }
      } catch (error) {
        if (error instanceof TierUnavailableError) throw error;
        this.#failed(slot, error);
        throw new TierUnavailableError(`reading the "${tier.name}" tier failed`, { cause: error });
      }
    }
  }

  /** Removes every expired entry from every tier now (the background sweep calls this). */
  async sweepExpired(): Promise<number> {
    this.#assertOpen();
    const now = this.#clock.now();
    const expired = new Set<string>();
    await Promise.all(
      this.#slots.map(async (slot) => {
        if (!this.#available(slot, now)) return;
        const keys = await this.#attempt(slot, () => slot.tier.deleteExpired(now));
        if (keys === FAILED) return;
        for (const key of keys) {
          this.#countEviction(slot, key, 'ttl');
          expired.add(key);
        }
      }),
    );
    if (this.listenerCount('expire') > 0) {
      for (const key of expired) this.#notify('expire', { key });
    }
    return expired.size;
  }

  /** Counters of the cache and of each tier, with each tier's current size. */
  async stats(): Promise<CacheStats> {
    this.#assertOpen();
    const tiers = await Promise.all(
      this.#slots.map(async (slot) => {
        let entries: number | undefined;
        if (!slot.degraded) {
          const size = await this.#attempt(slot, () => slot.tier.size());
          if (size !== FAILED) entries = size;
        }
        return slot.counters.snapshot(slot.tier.name, slot.level, entries, slot.degraded);
      }),
    );
    // A request hits at most one tier, so the tiers' hits add up to the overall hits.
    const hits = tiers.reduce((sum, tier) => sum + tier.hits, 0);
    return {
      requests: this.#requests,
      hits,
      misses: this.#requests - hits,
      hitRate: this.#requests === 0 ? 0 : hits / this.#requests,
      coalesced: this.#coalesced,
      loads: this.#loads,
      tiers,
    };
  }

  /**
   * Resolves once the writes the cache started on its own (promotions, demotion marks, a
   * recovered tier's catch-up) have finished.
   */
  async flush(): Promise<void> {
    while (this.#background.size > 0) {
      await Promise.allSettled([...this.#background]);
    }
  }

  /** Stops the sweep, waits for background writes, and closes every tier. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#sweepTimer?.cancel();
    this.#sweepTimer = undefined;
    await this.flush();
    const results = await Promise.allSettled(this.#slots.map((slot) => slot.tier.close()));
    for (const [index, result] of results.entries()) {
      if (result.status === 'rejected') {
        const name = this.#slots[index]?.tier.name ?? '?';
        this.#logger.warn(`closing tier "${name}" failed: ${describeError(result.reason)}`);
      }
    }
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  // The default inspect would walk private state; show only what is safe and useful.
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const tiers = this.#slots.map((slot) => slot.tier.name).join(' -> ');
    return `ProxyCache { tiers: ${tiers}, requests: ${this.#requests}, closed: ${this.#closed} }`;
  }

  toJSON(): { tiers: string[]; closed: boolean } {
    return { tiers: this.#slots.map((slot) => slot.tier.name), closed: this.#closed };
  }

  // ---------------------------------------------------------------- reads

  /** The rest of an asynchronous read, from tier `start` on. */
  async #readFrom(start: number, key: string, now: number): Promise<ProxyEntry | undefined> {
    for (let index = start; index < this.#slots.length; index += 1) {
      const slot = this.#slots[index] as TierSlot;
      if (!this.#available(slot, now)) continue;
      const { tier } = slot;
      let entry: ProxyEntry | undefined;
      if (tier.getSync !== undefined) {
        try {
          entry = tier.getSync(key);
          if (slot.consecutiveFailures !== 0 || slot.degraded) this.#succeeded(slot);
        } catch (error) {
          this.#failed(slot, error);
          continue;
        }
      } else {
        const found = await this.#attempt(slot, () => tier.get(key));
        if (found === FAILED) continue;
        entry = found;
      }
      if (entry === undefined) {
        slot.counters.misses += 1;
        continue;
      }
      if (entry.expiresAt <= now) {
        await this.#expire(key);
        return undefined;
      }
      return this.#hit(slot, index, entry, now);
    }
    return undefined;
  }

  /** The rest of a synchronous read, over the synchronous tiers from `start` on. */
  #readSyncFrom(start: number, key: string, now: number): ProxyEntry | undefined {
    for (let index = start; index < this.#slots.length; index += 1) {
      const slot = this.#slots[index] as TierSlot;
      const { tier } = slot;
      if (tier.getSync === undefined || !this.#available(slot, now)) continue;
      let entry: ProxyEntry | undefined;
      try {
        entry = tier.getSync(key);
        if (slot.consecutiveFailures !== 0 || slot.degraded) this.#succeeded(slot);
      } catch (error) {
        this.#failed(slot, error);
        continue;
      }
      if (entry === undefined) {
        slot.counters.misses += 1;
        continue;
      }
      if (entry.expiresAt <= now) {
        this.#track(this.#expire(key));
        return undefined;
      }
      return this.#hit(slot, index, entry, now);
    }
    return undefined;
  }

  #hit(slot: TierSlot, index: number, entry: ProxyEntry, now: number): ProxyEntry {
    slot.counters.hits += 1;
    entry.lastAccessed = now;
    entry.accessCount += 1;
    if (index > 0) this.#promote(entry, index);
    return entry;
  }

  /** Copies an entry found in tier `index` into every faster tier. */
  #promote(entry: ProxyEntry, index: number): void {
    const now = entry.lastAccessed;
    const wasDemoted = entry.evictedFromL1;
    entry.evictedFromL1 = false;
    for (let faster = 0; faster < index; faster += 1) {
      const slot = this.#slots[faster] as TierSlot;
      if (!this.#available(slot, now)) continue;
      slot.counters.promotions += 1;
      const { tier } = slot;
      if (tier.setSync !== undefined) {
        try {
          tier.setSync(entry);
          this.#succeeded(slot);
        } catch (error) {
          this.#failed(slot, error);
        }
      } else {
        this.#track(this.#attempt(slot, () => tier.set(entry)));
      }
    }
    if (wasDemoted) {
      // proxywhirl never cleared the flag; it is reset once the entry is back in L1.
      const slower = this.#slots.slice(index);
      for (const slot of slower) {
        this.#track(
          this.#attempt(slot, () => slot.tier.update(entry.key, { evictedFromL1: false })),
        );
      }
    }
  }

  /** The first tier's copy of `key`, without statistics or promotion. */
  async #find(key: string): Promise<{ slot: TierSlot; entry: ProxyEntry } | undefined> {
    const now = this.#clock.now();
    for (const slot of this.#slots) {
      if (!this.#available(slot, now)) continue;
      const { tier } = slot;
      const entry = await this.#attempt(slot, () =>
        tier.peekSync === undefined ? tier.get(key) : tier.peekSync(key),
      );
      if (entry !== FAILED && entry !== undefined) return { slot, entry };
    }
    return undefined;
  }

  /** Walks every tier's keys (and entries when asked), skipping keys a faster tier holds. */
  async *#walk(withEntries: boolean): AsyncIterable<[string, ProxyEntry | undefined]> {
    this.#assertOpen();
    const now = this.#clock.now();
    const usable = this.#slots.filter((slot) => this.#available(slot, now));
    for (let index = 0; index < usable.length; index += 1) {
      const slot = usable[index] as TierSlot;
      const faster = usable.slice(0, index);
      try {
        if (withEntries) {
          for await (const entry of slot.tier.entries()) {
            if (!(await this.#heldByAny(faster, entry.key))) yield [entry.key, entry];
          }
        } else {
          for await (const key of slot.tier.keys()) {
            if (!(await this.#heldByAny(faster, key))) yield [key, undefined];
          }
        }
      } catch (error) {
        this.#failed(slot, error);
      }
    }
  }

  async #heldByAny(slots: TierSlot[], key: string): Promise<boolean> {
    for (const slot of slots) {
      const { tier } = slot;
      const held = tier.hasSync !== undefined ? tier.hasSync(key) : await tier.has(key);
      if (held) return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- writes

  /** Writes to every tier; returns a promise only when some tier is asynchronous. */
  #writeThrough(entry: ProxyEntry): Promise<void> | undefined {
    const now = this.#defaults.now;
    if (this.#persistent && this.#keyring !== undefined) {
      // Sealed once here; every persistent tier writes the same token.
      entry.username?.seal(this.#keyring);
      entry.password?.seal(this.#keyring);
    }
    let written = 0;
    let pending: Promise<unknown>[] | undefined;
    let lastError: unknown;
    for (const slot of this.#slots) {
      if (!this.#available(slot, now)) {
        this.#markDirty(slot, entry.key);
        continue;
      }
      const { tier } = slot;
      if (tier.setSync !== undefined) {
        try {
          tier.setSync(entry);
          if (slot.consecutiveFailures !== 0 || slot.degraded) this.#succeeded(slot);
          written += 1;
        } catch (error) {
          lastError = error;
          this.#failed(slot, error);
          this.#markDirty(slot, entry.key);
        }
      } else {
        (pending ??= []).push(
          this.#attempt(slot, () => tier.set(entry)).then((result) => {
            if (result === FAILED) this.#markDirty(slot, entry.key);
            else written += 1;
          }),
        );
      }
    }
    const check = () => {
      if (written === 0) {
        throw new TierUnavailableError(
          `no tier accepted the write of entry ${entry.key}; every tier failed or is degraded`,
          { cause: lastError },
        );
      }
    };
    if (pending === undefined) {
      check();
      return undefined;
    }
    return Promise.all(pending).then(check);
  }

  async #updateEverywhere(key: string, patch: EntryPatch): Promise<void> {
    const now = this.#clock.now();
    await Promise.all(
      this.#slots.map(async (slot) => {
        if (!this.#available(slot, now)) {
          this.#markDirty(slot, key);
          return;
        }
        const result = await this.#attempt(slot, () => slot.tier.update(key, patch));
        if (result === FAILED) this.#markDirty(slot, key);
      }),
    );
  }

  /** Deletes `key` from every tier; resolves the slots that held it. */
  async #deleteEverywhere(key: string): Promise<TierSlot[]> {
    const now = this.#clock.now();
    const removedFrom: TierSlot[] = [];
    await Promise.all(
      this.#slots.map(async (slot) => {
        if (!this.#available(slot, now)) {
          this.#markDirty(slot, key);
          return;
        }
        const { tier } = slot;
        const removed = await this.#attempt(slot, () =>
          tier.deleteSync === undefined ? tier.delete(key) : tier.deleteSync(key),
        );
        if (removed === FAILED) this.#markDirty(slot, key);
        else if (removed) removedFrom.push(slot);
      }),
    );
    return removedFrom;
  }

  async #expire(key: string): Promise<void> {
    const removedFrom = await this.#deleteEverywhere(key);
    for (const slot of removedFrom) this.#countEviction(slot, key, 'ttl');
    if (this.listenerCount('expire') > 0) this.#notify('expire', { key });
  }

  // ---------------------------------------------------------------- evictions

  #onTierEvict(
    slot: TierSlot,
    key: string,
    reason: EvictionReason,
    entry: ProxyEntry | undefined,
  ): void {
    this.#countEviction(slot, key, reason);
    if (reason !== 'lru' || slot.level !== 1 || this.#slots.length === 1 || entry === undefined) {
      return;
    }
    // proxywhirl's demotion: the entry stays in the slower tiers, flagged as out of L1, with the
    // access counts L1 gathered (L1 hits never write to the slower tiers one by one).
    slot.counters.demotions += 1;
    const patch: EntryPatch = {
      evictedFromL1: true,
      lastAccessed: entry.lastAccessed,
      accessCount: entry.accessCount,
    };
    for (const slower of this.#slots.slice(1)) {
      this.#track(
        this.#attempt(slower, async () => {
          if (await slower.tier.update(key, patch)) return;
          // The slower tier missed the original write (it was degraded then): give it the entry.
          await slower.tier.set({ ...entry, ...patch });
        }),
      );
    }
  }

  #countEviction(slot: TierSlot, key: string, reason: EvictionReason): void {
    slot.counters.evictions[reason] += 1;
    if (this.listenerCount('evict') > 0)
      this.#notify('evict', { key, tier: slot.tier.name, reason });
  }

  // ---------------------------------------------------------------- degradation

  /** Whether to call this tier now: yes unless degraded, and once per probe interval if so. */
  #available(slot: TierSlot, now: number): boolean {
    if (!slot.degraded) return true;
    if (now < slot.nextProbeAt) return false;
    slot.nextProbeAt = now + this.#options.tierProbeIntervalMs;
    if (slot.unopened) {
      // The probe of a tier that never opened is another attempt to open it, in the background.
      if (!slot.reopening) this.#track(this.#reopen(slot));
      return false;
    }
    return true;
  }

  /** The first tier in service that keeps health history and answers queries. */
  #healthSlot(): TierSlot | undefined {
    // Only a tier in service: asking must not use up a switched-off tier's probe.
    return this.#slots.find((slot) => isHealthTier(slot.tier) && !slot.degraded);
  }

  #contextFor(slot: TierSlot): TierContext {
    return {
      cipher: this.#keyring,
      healthPolicy: this.#options.healthPolicy,
      clock: this.#clock,
      logger: this.#logger,
      onEvict: (key, reason, entry) => this.#onTierEvict(slot, key, reason, entry),
    };
  }

  async #reopen(slot: TierSlot): Promise<void> {
    slot.reopening = true;
    try {
      // A tier whose open failed holds nothing open, so it is simply opened again.
      await slot.tier.open(this.#contextFor(slot));
      slot.unopened = false;
      // Recovery replays the writes and deletes it missed while it was closed.
      this.#succeeded(slot);
    } catch (error) {
      this.#failed(slot, error);
    } finally {
      slot.reopening = false;
    }
  }

  /** Runs one tier call with the tier's timeout; failures are counted and become `FAILED`. */
  async #attempt<T>(slot: TierSlot, call: () => T | Promise<T>): Promise<T | Failed> {
    try {
      const { timeoutMs } = slot.tier;
      const result =
        timeoutMs === undefined ? await call() : await withTimeout(slot, call, timeoutMs);
      if (slot.consecutiveFailures !== 0 || slot.degraded) this.#succeeded(slot);
      return result;
    } catch (error) {
      // A caller's mistake (a malformed query, a bad option) says nothing about the tier's
      // health: it goes back to the caller and is not counted against the tier.
      if (error instanceof InvalidOptionError || error instanceof InvalidEntryError) throw error;
      this.#failed(slot, error);
      return FAILED;
    }
  }

  #succeeded(slot: TierSlot): void {
    slot.consecutiveFailures = 0;
    if (!slot.degraded) return;
    slot.degraded = false;
    this.#logger.info(`tier "${slot.tier.name}" works again and is back in service`);
    const dirty = slot.dirty;
    slot.dirty = undefined;
    if (dirty !== undefined) this.#track(this.#resync(slot, dirty));
    if (this.listenerCount('recover') > 0) this.#notify('recover', { tier: slot.tier.name });
  }

  /** Counts a failure; `atOnce` switches the tier off without waiting for the threshold. */
  #failed(slot: TierSlot, error: unknown, atOnce = false): void {
    slot.counters.errors += 1;
    slot.consecutiveFailures += 1;
    if (slot.degraded) return;
    this.#logger.debug(`tier "${slot.tier.name}" failed: ${describeError(error)}`);
    if (!atOnce && slot.consecutiveFailures < this.#options.tierFailureThreshold) return;
    slot.degraded = true;
    slot.counters.degradations += 1;
    slot.nextProbeAt = this.#clock.now() + this.#options.tierProbeIntervalMs;
    slot.dirty ??= new Set();
    const why = atOnce
      ? 'could not be opened'
      : `failed ${slot.consecutiveFailures} times in a row`;
    this.#logger.warn(
      `tier "${slot.tier.name}" ${why} and is switched off (${describeError(error)}); the other tiers keep serving`,
    );
    if (this.listenerCount('degrade') > 0) {
      const asError = error instanceof Error ? error : new TierError(slot.tier.name, String(error));
      this.#notify('degrade', { tier: slot.tier.name, error: asError });
    }
  }

  #markDirty(slot: TierSlot, key: string): void {
    if (slot.dirty === undefined || slot.dirty === 'overflow') return;
    slot.dirty.add(key);
    if (slot.dirty.size > MAX_DIRTY_KEYS) slot.dirty = 'overflow';
  }

  /** Brings a recovered tier up to date with the writes and deletes it missed. */
  async #resync(slot: TierSlot, dirty: Set<string> | 'overflow'): Promise<void> {
    const { tier } = slot;
    if (dirty === 'overflow') {
      this.#logger.warn(
        `tier "${tier.name}" missed more than ${MAX_DIRTY_KEYS} changes while switched off; clearing it`,
      );
      await this.#attempt(slot, () => tier.clear());
      return;
    }
    for (const key of dirty) {
      let current: ProxyEntry | undefined;
      for (const other of this.#slots) {
        if (other === slot || other.degraded) continue;
        const found = await this.#attempt(other, () => other.tier.get(key));
        if (found !== FAILED && found !== undefined) {
          current = found;
          break;
        }
      }
      if (current === undefined) await this.#attempt(slot, () => tier.delete(key));
      else {
        if (tier.persistent && this.#keyring !== undefined) {
          current.username?.seal(this.#keyring);
          current.password?.seal(this.#keyring);
        }
        const copy = current;
        await this.#attempt(slot, () => tier.set(copy));
      }
    }
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * Emits an event. A listener that throws must not break the cache operation that happened to
   * trigger it (an eviction inside a put, say), so its error is logged instead of propagated.
   */
  #notify<K extends keyof ProxyCacheEvents>(name: K, payload: ProxyCacheEvents[K][0]): void {
    try {
      (this.emit as (event: string, value: unknown) => boolean)(name, payload);
    } catch (error) {
      this.#logger.error(`a "${String(name)}" listener threw: ${describeError(error)}`);
    }
  }

  #track(work: Promise<unknown>): void {
    this.#background.add(work);
    const done = () => {
      this.#background.delete(work);
    };
    work.then(done, done);
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the cache is closed');
  }
}

async function withTimeout<T>(
  slot: TierSlot,
  call: () => T | Promise<T>,
  timeoutMs: number,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(
        new TierTimeoutError(
          slot.tier.name,
          `tier "${slot.tier.name}" did not answer within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(call), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function canDecrypt(keyring: Keyring, token: string): boolean {
  try {
    keyring.decrypt(token);
    return true;
  } catch {
    return false;
  }
}

function describeError(error: unknown): string {
  if (error instanceof ProxyTierError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
