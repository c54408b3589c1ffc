import type { Clock } from '../clock.js';
import type { KeyCheck } from '../crypto/key-check.js';
import type { HealthCheckInput, HealthCheckRecord, HealthPolicy } from '../health.js';
import type { Logger } from '../logger.js';
import type { HealthStatus, ProxyEntry } from '../record/entry.js';
import type { TokenCipher } from '../record/secret.js';

/** Why an entry left a tier. `delete` and `clear` calls are not evictions and are not counted. */
export type EvictionReason = 'lru' | 'ttl' | 'health' | 'corruption';

/** Every eviction reason, in the order statistics print them. */
export const EVICTION_REASONS: readonly EvictionReason[] = ['lru', 'ttl', 'health', 'corruption'];

/** What the stack hands a tier when it opens it. */
export interface TierContext {
  /** Encrypts and decrypts credentials; persistent tiers store only tokens. */
  cipher: TokenCipher | undefined;
  /** The cache's health policy, for tiers that apply health checks themselves. */
  healthPolicy?: Readonly<HealthPolicy> | undefined;
  clock: Clock;
  logger: Logger;
  /**
   * Called when the tier drops an entry on its own: LRU pressure, a corrupt record it skipped.
   * `entry` is given when the tier still has it at hand (the memory tier always does).
   */
  onEvict(key: string, reason: EvictionReason, entry: ProxyEntry | undefined): void;
}

/** Fields the stack may change on a stored entry without rewriting its credentials. */
export type EntryPatch = Partial<
  Pick<
    ProxyEntry,
    | 'lastAccessed'
    | 'accessCount'
    | 'healthStatus'
    | 'failureCount'
    | 'evictedFromL1'
    | 'lastHealthCheck'
    | 'consecutiveHealthFailures'
    | 'consecutiveHealthSuccesses'
    | 'recoveryAttempt'
    | 'nextCheckTime'
    | 'lastHealthError'
    | 'totalHealthChecks'
    | 'totalHealthCheckFailures'
  >
>;

/**
 * Credentials put in place by a key rotation: secrets already sealed (their `token` set) that
 * hold the same values as the stored ones under another key. Only a `modify` change returns them.
 */
export type SealedCredentials = Partial<Pick<ProxyEntry, 'username' | 'password'>>;

/**
 * A read-modify-write of one stored entry: given the entry as stored now, returns the fields to
 * change, or `undefined` to change nothing. It runs synchronously inside the tier's atomic
 * section, so it must be pure: no I/O, no awaiting, no side effects beyond its return value.
 */
export type EntryChange = (current: ProxyEntry) => (EntryPatch & SealedCredentials) | undefined;

/** One entry's use as L1 saw it, passed down so a bounded lower tier evicts by true recency. */
export interface EntryAccess {
  key: string;
  /** Epoch ms of the latest use. */
  lastAccessed: number;
  /** The entry's access count after that use. */
  accessCount: number;
}

/**
 * What a tier's change feed reports: the keys other processes wrote or deleted since the previous
 * call, or `'flush'` when it cannot tell which (it fell behind a pruned change log, a file was
 * rewritten): the reader then forgets everything it cached from this tier.
 */
export type TierChanges = readonly string[] | 'flush';

/**
 * The contract every tier implements (memory, jsonl, sqlite, redis, and test tiers). The stack is
 * the only caller: it decides TTL, promotion and degradation; a tier stores, finds and forgets.
 *
 * Every method is asynchronous so a network tier fits behind it. A tier whose engine is
 * synchronous may also implement the optional `*Sync` methods, which the stack prefers on its
 * hot paths. A method that fails throws (or rejects with) a `TierError`.
 *
 * Before `set`, the stack has sealed every secret of a `persistent` tier's entry
 * (`secret.token` is set), so a tier writes tokens and never encrypts. A persistent tier returns
 * secrets made with `Secret.fromToken(token, context.cipher)`.
 */
export interface Tier {
  /** Short name used in statistics, events and errors (`memory`, `sqlite`, ...). */
  readonly name: string;
  /** True when the tier stores entries outside the process (its secrets must be sealed). */
  readonly persistent: boolean;
  /**
   * How long the stack waits for one call before it counts as a failure (`E_TIER_TIMEOUT`).
   * Unset for tiers that cannot hang (in-process engines).
   */
  readonly timeoutMs?: number | undefined;

  /**
   * Opens files or connections. Called before any other method; called again only when it
   * failed, so an `open` that throws must leave nothing open behind it.
   */
  open(context: TierContext): Promise<void>;
  /** The stored entry, or `undefined`. Does not check expiry: the stack does. */
  get(key: string): Promise<ProxyEntry | undefined>;
  getSync?(key: string): ProxyEntry | undefined;
  /** Like `getSync` but without counting as a use (no change to LRU recency). */
  peekSync?(key: string): ProxyEntry | undefined;
  /** Stores the entry, replacing any under the same key. Resolves once it is durable. */
  set(entry: ProxyEntry): Promise<void>;
  setSync?(entry: ProxyEntry): void;
  /** Changes some fields of a stored entry. Resolves `false` when the key is absent. */
  update(key: string, patch: EntryPatch): Promise<boolean>;
  /**
   * Atomic read-modify-write of one entry: reads the entry as stored now (after catching up with
   * other processes' writes), applies `change`, and stores the patch, with no write of this or
   * another process in between. Resolves the entry after the change (the stored one unchanged
   * when `change` returns `undefined`), or `undefined` when the key is absent. Health counters go
   * through this so concurrent increments are never lost.
   */
  modify(key: string, change: EntryChange): Promise<ProxyEntry | undefined>;
  /**
   * Records uses that a faster tier served (L1 hits), so that a bounded tier evicts by true
   * recency. Only `lastAccessed` and `accessCount` change, only where they move forward, and
   * only for keys that exist: a touch never creates an entry. Optional: an unbounded tier may
   * leave it out.
   */
  touch?(accesses: readonly EntryAccess[]): Promise<void>;
  /**
   * The change feed of a tier that other processes share (SQLite, JSONL): the keys that other
   * processes changed since the previous call (see `TierChanges`). The first call only sets the
   * starting point and reports nothing. Synchronous and cheap when nothing changed (one
   * `PRAGMA data_version`, one `fstat` per file), since the stack calls it on its read path at
   * most once per staleness bound.
   */
  readChanges?(): TierChanges;
  /**
   * The key checks recorded with the stored data (see `crypto/key-check.ts`), kept where
   * proxywhirl's readers do not look. A persistent tier that stores credentials implements both;
   * the cache reads them at open to refuse a wrong key before anything is written.
   */
  keyChecks?(): Promise<readonly KeyCheck[]>;
  /** Records a key check; one already recorded for the same fingerprint is kept as it is. */
  recordKeyCheck?(check: KeyCheck): Promise<void>;
  /** Removes the entry. Resolves `true` when it existed. */
  delete(key: string): Promise<boolean>;
  deleteSync?(key: string): boolean;
  has(key: string): Promise<boolean>;
  hasSync?(key: string): boolean;
  /** Removes every entry; resolves the number removed. */
  clear(): Promise<number>;
  /** Number of stored entries (expired ones included until they are removed). */
  size(): Promise<number>;
  /** Streams the stored keys without loading every entry. */
  keys(): AsyncIterable<string>;
  /** Streams the stored entries. */
  entries(): AsyncIterable<ProxyEntry>;
  /** Removes every entry with `expiresAt <= now` in bulk; resolves their keys. */
  deleteExpired(now: number): Promise<string[]>;
  /** Reclaims space (rewrites logs, checkpoints a database). Optional; resolves a report. */
  compact?(): Promise<unknown>;
  /** Flushes and releases everything the tier holds open. Idempotent. */
  close(): Promise<void>;
}

export type { HealthCheckInput, HealthCheckRecord, HealthCheckStatus } from '../health.js';

/** Orders a `query` can sort by; each is served by an index or a bounded aggregate. */
export type ProxyQueryOrder = 'lastHealthCheck' | 'responseTime' | 'successRate' | 'lastAccessed';

/** Filters of `query`. Every field is optional; an empty query lists live entries. */
export interface ProxyQuery {
  health?: HealthStatus | readonly HealthStatus[];
  source?: string;
  /** Proxy URL scheme: `http`, `https`, `socks5`, ... */
  scheme?: string;
  /** Only entries whose `nextCheckTime` is unset or has passed. */
  dueForCheck?: boolean;
  /** Default `lastAccessed` (most recent first). `responseTime` is fastest first, `successRate` best first. */
  orderBy?: ProxyQueryOrder;
  limit?: number;
  /** Also return entries whose TTL has run out (default false). */
  includeExpired?: boolean;
}

/**
 * A tier that keeps health-check history and answers queries (the SQLite tier in its L3 role).
 * The stack routes `recordHealthCheck`, `healthHistory` and `query` to the first such tier.
 */
export interface HealthTier extends Tier {
  /**
   * Applies one check to the stored entry (see `applyHealthCheck`) and appends it to the
   * history, atomically. Resolves the updated entry, or `undefined` when the key is absent.
   */
  recordHealthCheck(key: string, check: HealthCheckInput): Promise<ProxyEntry | undefined>;
  /** History of one proxy, newest first. */
  healthHistory(
    key: string,
    options?: { since?: number; limit?: number },
  ): Promise<HealthCheckRecord[]>;
  /** Entries matching the filters, in the requested order. */
  query(query: ProxyQuery): Promise<ProxyEntry[]>;
  /** Every history row of every proxy, oldest first, streamed. */
  allHealthHistory(): AsyncIterable<HealthCheckRecord>;
  /**
   * Adds history rows (from a migration); a row equal to one already stored (same proxy, time,
   * status, check URL, response time and error) is skipped, so importing twice adds nothing.
   */
  importHealthHistory(
    rows: AsyncIterable<HealthCheckRecord> | Iterable<HealthCheckRecord>,
  ): Promise<{ imported: number; skipped: number }>;
}

/** True when `tier` keeps health history and answers queries. */
export function isHealthTier(tier: Tier): tier is HealthTier {
  const candidate = tier as Partial<HealthTier>;
  return (
    typeof candidate.recordHealthCheck === 'function' &&
    typeof candidate.healthHistory === 'function' &&
    typeof candidate.query === 'function' &&
    typeof candidate.allHealthHistory === 'function' &&
    typeof candidate.importHealthHistory === 'function'
  );
}
