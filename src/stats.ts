import { EVICTION_REASONS, type EvictionReason } from './tiers/tier.js';

/** Evictions of one tier, by reason. */
export type EvictionCounts = Record<EvictionReason, number>;

/** Counters of one tier. */
export interface TierStats {
  /** The tier's name. */
  name: string;
  /** Position in the stack: 1 for L1, 2 for L2, ... */
  level: number;
  /** Entries stored now, or `undefined` when the tier could not answer. */
  entries: number | undefined;
  /** Reads this tier answered with a live entry. */
  hits: number;
  /** Reads that reached this tier and found nothing. */
  misses: number;
  /** `hits / (hits + misses)`, 0 when the tier was never read. */
  hitRate: number;
  /** Entries that left this tier on their own, by reason. */
  evictions: EvictionCounts;
  /** Entries copied into this tier from a slower one after a hit there. */
  promotions: number;
  /** Entries this tier evicted (LRU) that slower tiers still hold, marked `evictedFromL1`. */
  demotions: number;
  /** Operations that failed (errors and timeouts). */
  errors: number;
  /** True while the tier is switched off after consecutive failures. */
  degraded: boolean;
  /** How many times the tier has been switched off. */
  degradations: number;
  /** Keys whose writes or deletes are held for replay into this tier (switched off, or replaying). */
  heldChanges: number;
}

/** Counters of the whole cache. */
export interface CacheStats {
  /**
   * `get` and `getSync` calls (and `getOrLoad` calls that read the cache themselves), each
   * counted once however many tiers it visited. Calls that join a running load count in
   * `coalesced` instead.
   */
  requests: number;
  hits: number;
  misses: number;
  /** `hits / requests`, 0 before the first request. */
  hitRate: number;
  /** `getOrLoad` calls that joined a load already running for the same key. */
  coalesced: number;
  /** Loader calls made by `getOrLoad`. */
  loads: number;
  tiers: TierStats[];
}

/** Mutable per-tier counters; `TierStats` is their snapshot. */
export class TierCounters {
  hits = 0;
  misses = 0;
  promotions = 0;
  demotions = 0;
  errors = 0;
  degradations = 0;
  evictions: EvictionCounts = { lru: 0, ttl: 0, health: 0, corruption: 0 };

  snapshot(
    name: string,
    level: number,
    entries: number | undefined,
    degraded: boolean,
    heldChanges = 0,
  ): TierStats {
    const reads = this.hits + this.misses;
    const evictions = {} as EvictionCounts;
    for (const reason of EVICTION_REASONS) evictions[reason] = this.evictions[reason];
    return {
      name,
      level,
      entries,
      hits: this.hits,
      misses: this.misses,
      hitRate: reads === 0 ? 0 : this.hits / reads,
      evictions,
      promotions: this.promotions,
      demotions: this.demotions,
      errors: this.errors,
      degraded,
      degradations: this.degradations,
      heldChanges,
    };
  }
}
