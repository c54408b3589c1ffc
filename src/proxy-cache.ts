import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from './clock.js';
import type { Keyring } from './crypto/keyring.js';
import { resolveKeyring } from './crypto/key-source.js';
import {
  ClosedError,
  ReadOnlyError,
  TierUnavailableError,
  UnsupportedOperationError,
} from './errors.js';
import { applyHealthCheck, healthFields, validateHealthCheck } from './health.js';
import type { Logger } from './logger.js';
import { resolveOptions, type ProxyCacheOptions, type ResolvedOptions } from './options.js';
import { normalizeQuery, scanQuery } from './query.js';
import {
  toValidEntry,
  type EntryDefaults,
  type ProxyEntry,
  type ProxyEntryInput,
} from './record/entry.js';
import { describeError } from './describe-error.js';
import { verifyStoreKey } from './stack/store-key.js';
import {
  forEachStoredEntry,
  reencryptStored,
  walkStack,
  type ReencryptReport,
  type TokenReport,
} from './stack/stored-entries.js';
import { FAILED, type TierSlot } from './stack/tier-slot.js';
import { TierStack, type StackListener } from './stack/tier-stack.js';
import type { CacheStats } from './stats.js';
import { MemoryTier } from './tiers/memory.js';
import { readOnlyView } from './tiers/read-only.js';
import {
  isHealthTier,
  type EvictionReason,
  type HealthCheckInput,
  type HealthCheckRecord,
  type HealthTier,
  type ProxyQuery,
  type Tier,
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

/**
 * Payload of the `held` event: a write or delete of `key` was not made in the switched-off
 * `tiers`; it is held in memory and replayed there when they recover (until then it is not
 * durable in them: a crash loses it). The call itself resolved.
 */
export interface HeldEvent {
  key: string;
  operation: 'put' | 'delete' | 'update';
  tiers: string[];
}

/**
 * Payload of the `keys` event: the keyring took new keys from its key file (a rotation wrote a
 * new current key); `fingerprints` are the keys' fingerprints, current first, never the keys.
 */
export interface KeysEvent {
  fingerprints: readonly string[];
}

/** Events a `ProxyCache` emits. Nothing is built for an event nobody listens to. */
export interface ProxyCacheEvents {
  keys: [KeysEvent];
  evict: [EvictEvent];
  expire: [ExpireEvent];
  degrade: [DegradeEvent];
  recover: [RecoverEvent];
  held: [HeldEvent];
}

/** What `reportFailure` did. */
export interface FailureReport {
  key: string;
  /** The entry's failure count after this report. */
  failureCount: number;
  /** True when the count reached `healthFailureThreshold` and the entry left every tier. */
  evicted: boolean;
}

export type { ReencryptReport, TokenReport } from './stack/stored-entries.js';

/** Loads an entry on a miss in `getOrLoad`; `undefined` means there is nothing to cache. */
export type Loader = (
  key: string,
) => ProxyEntryInput | undefined | Promise<ProxyEntryInput | undefined>;

/**
 * The cache: a stack of tiers, fastest first. `get` reads L1, then L2, then L3, and promotes a
 * hit into the faster tiers; `put` writes through to every tier and resolves once every
 * persistent tier in service has committed it; entries expire by TTL; a tier that keeps failing
 * is switched off, its missed changes held for replay, and probed until it works again.
 *
 * @example
 * const cache = await ProxyCache.open();
 * await cache.put({ proxyUrl: 'http://user:pass@10.0.0.1:8080', source: 'provider-a' });
 * const entry = await cache.get(deriveKey('http://10.0.0.1:8080'));
 * entry?.password?.reveal(); // 'pass'
 * await cache.close();
 */
export class ProxyCache extends EventEmitter<ProxyCacheEvents> {
  readonly #stack: TierStack;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #options: ResolvedOptions;
  readonly #keyring: Keyring | undefined;
  readonly #defaults: EntryDefaults & { now: number };
  readonly #inflight = new Map<string, Promise<ProxyEntry | undefined>>();
  /** Keys whose `getOrLoad` loader runs; a put or delete meanwhile marks its load superseded. */
  readonly #loading = new Map<string, { superseded: boolean }>();
  #sweepTimer: TimerHandle | undefined;
  #stopKeyEvents: (() => void) | undefined;
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
    this.#stack = new TierStack(
      tiers,
      {
        clock: options.clock,
        logger: options.logger,
        failureThreshold: options.tierFailureThreshold,
        probeIntervalMs: options.tierProbeIntervalMs,
        busyRetryMs: options.busyRetryMs,
        replayLimit: options.replayLimit,
        keyring,
        healthPolicy: options.healthPolicy,
        coherenceMs: options.coherenceMs,
        bus: options.bus,
        recencyFlushMs: options.recencyFlushMs,
      },
      this.#stackListener(),
    );
    this.#stopKeyEvents = keyring?.onChange((fingerprints) => {
      this.#logger.info(
        `the key file changed: new current key ${fingerprints[0] ?? '?'}, ${fingerprints.length - 1} previous`,
      );
      this.#notify('keys', { fingerprints });
    });
    const { defaultTtlSeconds, ttlBySource } = options;
    this.#defaults = {
      now: 0,
      ttlSecondsFor: (source) => ttlBySource.get(source) ?? defaultTtlSeconds,
    };
  }

  /**
   * Validates the options, finds the encryption key (only when a tier is persistent), opens every
   * tier and starts the expiry sweep. Without `tiers`, the cache is one memory tier; for the
   * embedded persistent store under a directory, see `openDefaultStore({ dir })`.
   */
  static async open(options: ProxyCacheOptions = {}): Promise<ProxyCache> {
    const resolved = resolveOptions(options);
    const given = resolved.tiers ?? [new MemoryTier({ maxEntries: resolved.maxEntries })];
    const tiers = resolved.readOnly
      ? given.map((tier) => (tier.persistent ? readOnlyView(tier) : tier))
      : given;
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
    await cache.#stack.open();
    if (keyring !== undefined) {
      try {
        await verifyStoreKey(cache.#openedTiers(), keyring, {
          readOnly: resolved.readOnly,
          logger: resolved.logger,
        });
      } catch (error) {
        await cache.close();
        throw error;
      }
    }
    if (resolved.sweepIntervalMs > 0 && !resolved.readOnly) {
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

  /** The clock the cache reads time from (import reads it too, so a test clock governs both). */
  get clock(): Clock {
    return this.#clock;
  }

  /** The tiers, fastest first. */
  get tiers(): readonly Tier[] {
    return this.#stack.slots.map((slot) => slot.tier);
  }

  /**
   * Reads `key` from the fastest tier that has it and promotes it into the faster ones.
   * An expired entry is removed everywhere and reads as a miss.
   */
  get(key: string): Promise<ProxyEntry | undefined> {
    // Not an async function: an L1 hit is answered with one settled promise and no awaits.
    try {
      if (this.#closed) this.#assertOpen();
      const stack = this.#stack;
      const now = this.#clock.now();
      if (now >= stack.nextCoherenceCheck) stack.checkCoherence(now);
      this.#requests += 1;
      // The L1 read is written out here and in getSync rather than shared in a helper: V8 then
      // optimises the whole hit as one frame (measured: 0.25 -> 0.31 of lru-cache's get for the
      // awaited hit). A failing or switched-off L1 takes the general path.
      const l1 = stack.l1;
      if (l1 === undefined || l1.degraded || l1.consecutiveFailures !== 0) {
        return stack.readFrom(0, key, now);
      }
      let entry: ProxyEntry | undefined;
      try {
        entry = (l1.tier.getSync as (key: string) => ProxyEntry | undefined)(key);
      } catch (error) {
        l1.failed(error);
        return stack.readFrom(1, key, now);
      }
      if (entry === undefined) {
        l1.counters.misses += 1;
        return stack.readFrom(1, key, now);
      }
      if (entry.expiresAt <= now) return stack.expire(key).then(() => undefined);
      l1.counters.hits += 1;
      // Skipping the store when the time has not moved saves a write on bursts of hits; the
      // first hit in each recency window queues the entry to be passed down.
      if (entry.lastAccessed !== now) {
        if (entry.lastAccessed < stack.touchEpoch) stack.touched.push(entry);
        entry.lastAccessed = now;
      }
      entry.accessCount += 1;
      return Promise.resolve(entry);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The synchronous read: like `get`, but consults only the tiers with a synchronous engine
   * (memory, sqlite, jsonl). Use it on hot paths where an L1 hit is the common case.
   */
  getSync(key: string): ProxyEntry | undefined {
    if (this.#closed) this.#assertOpen();
    const stack = this.#stack;
    const now = this.#clock.now();
    if (now >= stack.nextCoherenceCheck) stack.checkCoherence(now);
    this.#requests += 1;
    // The same L1 read as in `get`, written out for the same reason.
    const l1 = stack.l1;
    if (l1 === undefined || l1.degraded || l1.consecutiveFailures !== 0) {
      return stack.readSyncFrom(0, key, now);
    }
    let entry: ProxyEntry | undefined;
    try {
      entry = (l1.tier.getSync as (key: string) => ProxyEntry | undefined)(key);
    } catch (error) {
      l1.failed(error);
      return stack.readSyncFrom(1, key, now);
    }
    if (entry === undefined) {
      l1.counters.misses += 1;
      return stack.readSyncFrom(1, key, now);
    }
    if (entry.expiresAt <= now) {
      stack.expireInBackground(key);
      return undefined;
    }
    l1.counters.hits += 1;
    if (entry.lastAccessed !== now) {
      if (entry.lastAccessed < stack.touchEpoch) stack.touched.push(entry);
      entry.lastAccessed = now;
    }
    entry.accessCount += 1;
    return entry;
  }

  /**
   * Validates `input` into a full entry and writes it through to every tier. Resolves once every
   * persistent tier in service has committed it; a switched-off tier gets it at its recovery
   * (the `held` event says so). Rejects with `E_TIER_WRITE` (naming the tier) when a tier in
   * service could not commit it after retries; the faster tiers' copies are then dropped, so the
   * next read shows what is stored. Credentials are encrypted once and the same token goes to
   * every persistent tier.
   */
  put(input: ProxyEntryInput | ProxyEntry): Promise<ProxyEntry> {
    // Not an async function: when every tier is synchronous (a memory-only cache) the write is
    // done before this returns, and the caller pays for one settled promise only.
    try {
      this.#assertWritable('put');
      const defaults = this.#defaults;
      defaults.now = this.#clock.now();
      const entry = toValidEntry(input, defaults);
      if (this.#loading.size !== 0) this.#supersede(entry.key);
      const pending = this.#stack.write(entry);
      return pending === undefined ? Promise.resolve(entry) : pending.then(() => entry);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** True when a live (unexpired) entry for `key` is in any tier. Counts no statistics. */
  async has(key: string): Promise<boolean> {
    this.#assertOpen();
    const found = await this.#stack.find(key);
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
    const found = await this.#stack.find(key);
    if (found === undefined) return undefined;
    return options.includeExpired === true || found.entry.expiresAt > this.#clock.now()
      ? found.entry
      : undefined;
  }

  /**
   * Removes `key` from every tier; resolves `true` when any tier held it. Like `put`, it resolves
   * once every persistent tier in service has committed the delete, and rejects with
   * `E_TIER_WRITE` when one could not; a switched-off tier gets it at recovery, and no read
   * brings the key back meanwhile.
   */
  async delete(key: string): Promise<boolean> {
    this.#assertWritable('delete');
    if (this.#loading.size !== 0) this.#supersede(key);
    const removed = await this.#stack.delete(key);
    return removed.length > 0;
  }

  /** Removes every entry from every tier; a switched-off tier is cleared when it recovers. */
  async clear(): Promise<void> {
    this.#assertWritable('clear');
    for (const load of this.#loading.values()) load.superseded = true;
    await this.#stack.clear();
  }

  /**
   * Streams the keys of every tier, each once, without loading them all: a tier's key is skipped
   * when a faster tier holds it.
   */
  async *keys(): AsyncIterable<string> {
    this.#assertOpen();
    for await (const [key] of walkStack(this.#stack, false)) yield key;
  }

  /**
   * Streams live entries (and expired ones not yet removed, with `includeExpired`), each once,
   * fastest tier's copy first. No statistics or access times change.
   */
  async *entries(options: { includeExpired?: boolean } = {}): AsyncIterable<ProxyEntry> {
    this.#assertOpen();
    const now = this.#clock.now();
    const includeExpired = options.includeExpired === true;
    for await (const [, entry] of walkStack(this.#stack, true)) {
      if (entry !== undefined && (includeExpired || entry.expiresAt > now)) yield entry;
    }
  }

  /**
   * `get`, and on a miss one call of `loader` whose result is stored and returned. Concurrent
   * calls for the same key share that one loader call (single-flight); its error reaches every
   * one of them, and the next call after a failure runs the loader again. A `put` or `delete` of
   * the key made while the loader runs wins: the loader's older result is then not stored, and
   * the calls resolve what the cache holds.
   */
  getOrLoad(key: string, loader: Loader): Promise<ProxyEntry | undefined> {
    if (this.#closed) return Promise.reject(new ClosedError('the cache is closed'));
    if (this.#options.readOnly) return Promise.reject(readOnlyError('getOrLoad'));
    const running = this.#inflight.get(key);
    if (running !== undefined) {
      this.#coalesced += 1;
      return running;
    }
    // Marked from the start: a put or delete that lands while the miss is being read is newer
    // than anything the loader can return.
    const mark = { superseded: false };
    this.#loading.set(key, mark);
    const load = (async () => {
      let input: ProxyEntryInput | undefined;
      try {
        const cached = await this.get(key);
        if (cached !== undefined) return cached;
        this.#loads += 1;
        input = await loader(key);
      } finally {
        if (this.#loading.get(key) === mark) this.#loading.delete(key);
      }
      if (mark.superseded) return this.get(key);
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
   * The increment is atomic in the tier that holds the record, so concurrent reports, in this
   * process or others sharing the store, are all counted, and exactly one of them (the one that
   * reaches the threshold) reports `evicted: true`.
   * Where a tier keeps health history, the failure is also recorded there as a failed check
   * (`error` and `checkUrl` default to `'reported failure'` and `'reportFailure'`).
   * Resolves `undefined` when the key is not cached.
   */
  async reportFailure(
    key: string,
    detail: { error?: string; checkUrl?: string } = {},
  ): Promise<FailureReport | undefined> {
    this.#assertWritable('reportFailure');
    const stack = this.#stack;
    return stack.locked(key, async () => {
      const healthSlot = this.#healthSlot();
      if (healthSlot !== undefined) {
        const tier = healthSlot.tier as HealthTier;
        const check = validateHealthCheck(
          {
            status: 'unhealthy',
            error: detail.error ?? 'reported failure',
            checkUrl: detail.checkUrl ?? 'reportFailure',
          },
          this.#clock.now(),
        );
        await healthSlot.call(() => tier.recordHealthCheck(key, check));
      }
      const changed = await stack.modifyLocked(key, (current) => ({
        failureCount: current.failureCount + 1,
        healthStatus: 'unhealthy',
      }));
      if (changed === undefined) return undefined;
      const { entry } = changed;
      if (entry.expiresAt <= this.#clock.now()) {
        stack.expireInBackground(key);
        return undefined;
      }
      const { failureCount } = entry;
      const threshold = this.#options.healthFailureThreshold;
      if (failureCount >= threshold) {
        const removedFrom = await stack.deleteLocked(key);
        // Only the report that reached the threshold evicts; a report that raced past it (from
        // another process, before the delete landed) only finishes the removal.
        const evicted = failureCount === threshold;
        if (evicted) for (const slot of removedFrom) this.#countEviction(slot, key, 'health');
        return { key, failureCount, evicted };
      }
      await stack.patchLocked(key, replicatedFields(entry), changed.slot);
      return { key, failureCount, evicted: false };
    });
  }

  /**
   * Records one health check of a proxy: its health fields change by the health policy (status,
   * consecutive successes and failures, totals, last error, next check time; see docs) in every
   * tier, and a tier that keeps history (SQLite, L3 role) appends the check in the same
   * transaction. The change is atomic in the tier that holds the record, so concurrent checks
   * are all counted. Resolves the updated entry, or `undefined` when the key is not cached.
   */
  async recordHealthCheck(key: string, check: HealthCheckInput): Promise<ProxyEntry | undefined> {
    this.#assertWritable('recordHealthCheck');
    const timed = validateHealthCheck(check, this.#clock.now());
    const stack = this.#stack;
    return stack.locked(key, async () => {
      const healthSlot = this.#healthSlot();
      let applied: { slot: TierSlot; entry: ProxyEntry } | undefined;
      if (healthSlot !== undefined) {
        const tier = healthSlot.tier as HealthTier;
        const updated = await healthSlot.call(() => tier.recordHealthCheck(key, timed));
        if (updated === undefined) {
          stack.dropFromVolatile(key, healthSlot);
          return undefined;
        }
        if (updated !== FAILED) applied = { slot: healthSlot, entry: updated };
      }
      applied ??= await stack.modifyLocked(key, (current) =>
        applyHealthCheck(current, timed, this.#options.healthPolicy),
      );
      if (applied === undefined) return undefined;
      await stack.patchLocked(key, replicatedFields(applied.entry), applied.slot);
      return applied.entry;
    });
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
    const rows = await slot.call(() => tier.healthHistory(key, options));
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
    this.#assertWritable('importHealthHistory');
    const slot = this.#healthSlot();
    if (slot === undefined) {
      throw new UnsupportedOperationError(
        'importing health history needs a tier that keeps it (the SQLite tier in its "l3" role)',
      );
    }
    const tier = slot.tier as HealthTier;
    const result = await slot.call(() => tier.importHealthHistory(rows));
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
    const normalized = normalizeQuery(query);
    const slot = this.#healthSlot();
    if (slot !== undefined) {
      const tier = slot.tier as HealthTier;
      const found = await slot.call(() => tier.query(query));
      if (found !== FAILED) return found;
    }
    return scanQuery(
      this.entries({ includeExpired: normalized.includeExpired }),
      normalized,
      this.#clock.now(),
    );
  }

  /** Asks every tier that can (the JSONL log, SQLite) to reclaim space; resolves their reports. */
  async compact(): Promise<{ tier: string; report: unknown }[]> {
    this.#assertWritable('compact');
    const reports: { tier: string; report: unknown }[] = [];
    const now = this.#clock.now();
    for (const slot of this.#stack.slots) {
      const { tier } = slot;
      if (tier.compact === undefined || !slot.available(now)) continue;
      const report = await slot.call(() => (tier.compact as () => Promise<unknown>)());
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
    await forEachStoredEntry(this.#stack, true, async (entry, tier) => {
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
   * every tier. Each entry's tokens are replaced atomically as stored at that moment, and nothing
   * else of it is written: health checks and writes made meanwhile (by this process or others)
   * survive. Safe to run again after an interruption: tokens already current are left alone, so
   * a second run finishes the first. Tokens no key can decrypt are counted and kept. To rotate
   * the key of a store, use `rotateKey`, which writes the new key first and calls this.
   */
  async reencrypt(
    options: { onProgress?: (entriesSeen: number) => void } = {},
  ): Promise<ReencryptReport> {
    this.#assertWritable('reencrypt');
    const keyring = this.#keyring;
    if (keyring === undefined) {
      throw new UnsupportedOperationError('this cache has no keyring: no tier stores tokens');
    }
    return reencryptStored(this.#stack, keyring, options.onProgress);
  }

  /**
   * Checks the keyring against the key checks of every persistent tier in service, as `open`
   * does, and records one for its current key where it is missing. `rotateKey` calls it after it
   * wrote a new key, so that the store knows the new key before any token is under it. Rejects
   * with `WrongKeyError` (`E_WRONG_KEY`) when the keyring matches none of a tier's checks.
   */
  async recordKeyCheck(): Promise<void> {
    this.#assertWritable('recordKeyCheck');
    const keyring = this.#keyring;
    if (keyring === undefined) return;
    await verifyStoreKey(this.#openedTiers(), keyring, {
      readOnly: false,
      logger: this.#logger,
    });
  }

  /** Removes every expired entry from every tier now (the background sweep calls this). */
  async sweepExpired(): Promise<number> {
    this.#assertWritable('sweepExpired');
    const now = this.#clock.now();
    const expired = new Set<string>();
    await Promise.all(
      this.#stack.slots.map(async (slot) => {
        if (!slot.available(now)) return;
        const keys = await slot.call(() => slot.tier.deleteExpired(now));
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
      this.#stack.slots.map(async (slot) => {
        let entries: number | undefined;
        if (!slot.degraded) {
          const size = await slot.call(() => slot.tier.size());
          if (size !== FAILED) entries = size;
        }
        return slot.counters.snapshot(
          slot.tier.name,
          slot.level,
          entries,
          slot.degraded,
          slot.replay.size,
        );
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
   * Resolves once the work the cache started on its own (promotions, demotion marks, recency
   * passed down, a recovered tier's replay) has finished.
   */
  async flush(): Promise<void> {
    await this.#stack.flush();
  }

  /** Stops the sweep, waits for background writes, and closes every tier. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#sweepTimer?.cancel();
    this.#sweepTimer = undefined;
    this.#stopKeyEvents?.();
    await this.#stack.close();
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  // The default inspect would walk private state; show only what is safe and useful.
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const tiers = this.#stack.slots.map((slot) => slot.tier.name).join(' -> ');
    return `ProxyCache { tiers: ${tiers}, requests: ${this.#requests}, closed: ${this.#closed} }`;
  }

  toJSON(): { tiers: string[]; closed: boolean } {
    return { tiers: this.#stack.slots.map((slot) => slot.tier.name), closed: this.#closed };
  }

  // ---------------------------------------------------------------- plumbing

  /** The first tier in service that keeps health history and answers queries. */
  #healthSlot(): TierSlot | undefined {
    // Only a tier in service: asking must not use up a switched-off tier's probe.
    return this.#stack.slots.find((slot) => isHealthTier(slot.tier) && !slot.degraded);
  }

  /** Marks a running `getOrLoad` of `key` as overtaken by a newer write. */
  #supersede(key: string): void {
    const load = this.#loading.get(key);
    if (load !== undefined) load.superseded = true;
  }

  #stackListener(): StackListener {
    return {
      evicted: (slot, key, reason) => {
        this.#countEviction(slot, key, reason);
      },
      expired: (key) => {
        if (this.listenerCount('expire') > 0) this.#notify('expire', { key });
      },
      degraded: (slot, error) => {
        if (this.listenerCount('degrade') > 0) {
          this.#notify('degrade', { tier: slot.tier.name, error });
        }
      },
      recovered: (slot) => {
        if (this.listenerCount('recover') > 0) this.#notify('recover', { tier: slot.tier.name });
      },
      held: (key, operation, tiers) => {
        if (this.listenerCount('held') > 0) this.#notify('held', { key, operation, tiers });
      },
    };
  }

  #countEviction(slot: TierSlot, key: string, reason: EvictionReason): void {
    slot.counters.evictions[reason] += 1;
    if (this.listenerCount('evict') > 0) {
      this.#notify('evict', { key, tier: slot.tier.name, reason });
    }
  }

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

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the cache is closed');
  }

  /** The tiers that opened and serve (a switched-off one answers nothing). */
  #openedTiers(): Tier[] {
    return this.#stack.slots
      .filter((slot) => !slot.unopened && !slot.degraded)
      .map((slot) => slot.tier);
  }

  #assertWritable(operation: string): void {
    this.#assertOpen();
    if (this.#options.readOnly) throw readOnlyError(operation);
  }
}

/** The fields a health change sets, copied from the tier that applied it to the others. */
function replicatedFields(entry: ProxyEntry) {
  return { ...healthFields(entry), failureCount: entry.failureCount };
}

function readOnlyError(operation: string): ReadOnlyError {
  return new ReadOnlyError(
    `the cache was opened with readOnly: true, and ${operation}() would change the store`,
  );
}

function canDecrypt(keyring: Keyring, token: string): boolean {
  try {
    keyring.decrypt(token);
    return true;
  } catch {
    return false;
  }
}
