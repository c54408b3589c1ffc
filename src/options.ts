import { systemClock, type Clock } from './clock.js';
import type { Keyring } from './crypto/keyring.js';
import { InvalidOptionError } from './errors.js';
import { resolveHealthPolicy, type HealthPolicy } from './health.js';
import { createStderrLogger, type Logger } from './logger.js';
import {
  assertIntegerOption,
  assertOptionsObject,
  rejectUnknownOptions,
  type OptionNames,
} from './option-check.js';
import type { CacheBus } from './stack/bus.js';
import type { Tier } from './tiers/tier.js';

/** Options of `ProxyCache.open`. Every field is optional; defaults are listed per field. */
export interface ProxyCacheOptions {
  /**
   * The tiers, fastest first (L1, L2, L3...). Default: one `MemoryTier` of `maxEntries` entries.
   * Each tier instance belongs to one cache; the cache opens and closes it. For the embedded
   * persistent store under a directory, use `openDefaultStore({ dir })`.
   */
  tiers?: Tier[];
  /** Size of the memory tier made when `tiers` is not given. Default 10,000. */
  maxEntries?: number;
  /**
   * The keyring that encrypts credentials for persistent tiers. Default: resolved from
   * `encryptionKey`, the environment, or the key file (see docs/api.md, "Keys and encryption").
   * Only consulted when at least one tier is persistent or `encryptionKey` is given.
   */
  keyring?: Keyring;
  /** Current Fernet key (url-safe base64). Prefer the environment or a key file in production. */
  encryptionKey?: string;
  /** Earlier keys that may still have encrypted stored tokens. */
  previousKeys?: string[];
  /**
   * Path of the key file. Default `$PROXYTIER_KEY_FILE`, else `$XDG_CONFIG_HOME/proxytier/key`,
   * else `~/.config/proxytier/key` (see `defaultKeyFilePath`).
   */
  keyFile?: string;
  /** Time source for TTLs, sweeps and probes. Default: the system clock. */
  clock?: Clock;
  /** Where notices and warnings go. Default: one line per message on stderr, level `info`. */
  logger?: Logger;
  /** TTL of an entry that gives none. Default 3,600 s. */
  defaultTtlSeconds?: number;
  /** Per-source TTLs that override `defaultTtlSeconds` for entries that give none. */
  ttlBySource?: Record<string, number>;
  /** How often expired entries are removed in the background, in ms; 0 turns it off. Default 60,000. */
  sweepIntervalMs?: number;
  /** `reportFailure` calls after which an entry is evicted from every tier. Default 3. */
  healthFailureThreshold?: number;
  /**
   * Thresholds and back-off of the health policy that `recordHealthCheck` applies (see
   * `DEFAULT_HEALTH_POLICY`). A tier that keeps health history applies the same policy.
   */
  healthPolicy?: Partial<HealthPolicy>;
  /** Consecutive failures after which a tier is switched off (degraded). Default 3. */
  tierFailureThreshold?: number;
  /** How long a degraded tier waits before one call probes it again, in ms. Default 30,000. */
  tierProbeIntervalMs?: number;
  /**
   * How long a write to a busy tier (`E_TIER_BUSY`: another process holds SQLite's write lock)
   * is retried, with back-off and without blocking, before it rejects; for tiers that set no
   * `timeoutMs` of their own. Default 5,000 ms.
   */
  busyRetryMs?: number;
  /**
   * Most keys whose writes are held for replay per switched-off tier; past it the tier is
   * reconciled from the faster tiers at recovery. Deletes are always held. Default 100,000.
   */
  replayLimit?: number;
  /**
   * Staleness bound of L1 against other processes' writes, in ms: at most this long after
   * another process's write resolved, a read here returns the new value. 0 checks the shared
   * tiers' change feeds on every read. Default 100.
   */
  coherenceMs?: number;
  /** A bus that carries changed keys between hosts (the Redis bus), besides the tiers' feeds. */
  bus?: CacheBus;
  /**
   * How often the uses L1 served are passed down to the slower tiers, so a bounded tier evicts
   * by true recency, in ms. Default 1,000.
   */
  recencyFlushMs?: number;
  /**
   * Open the store without changing it: every write method rejects with `E_READ_ONLY`, the
   * expiry sweep does not run, and the stack's own upkeep writes (recency, expiry on read) are
   * dropped. A store whose key checks the keyring fails (`E_WRONG_KEY`) opens this way with a
   * warning, for recovering what it can. Default `false`.
   */
  readOnly?: boolean;
}

/** `ProxyCacheOptions` after defaults and validation. */
export interface ResolvedOptions {
  /** Undefined when the cache is to make its default memory tier of `maxEntries`. */
  tiers: Tier[] | undefined;
  maxEntries: number;
  keyring: Keyring | undefined;
  encryptionKey: string | undefined;
  previousKeys: string[];
  keyFile: string | undefined;
  clock: Clock;
  logger: Logger;
  defaultTtlSeconds: number;
  ttlBySource: Map<string, number>;
  sweepIntervalMs: number;
  healthFailureThreshold: number;
  healthPolicy: Readonly<HealthPolicy>;
  tierFailureThreshold: number;
  tierProbeIntervalMs: number;
  busyRetryMs: number;
  replayLimit: number;
  coherenceMs: number;
  bus: CacheBus | undefined;
  recencyFlushMs: number;
  readOnly: boolean;
}

/** Every option of `ProxyCache.open`; TypeScript keeps it equal to the interface's keys. */
export const PROXY_CACHE_OPTION_NAMES: OptionNames<ProxyCacheOptions> = Object.freeze({
  tiers: true,
  maxEntries: true,
  keyring: true,
  encryptionKey: true,
  previousKeys: true,
  keyFile: true,
  clock: true,
  logger: true,
  defaultTtlSeconds: true,
  ttlBySource: true,
  sweepIntervalMs: true,
  healthFailureThreshold: true,
  healthPolicy: true,
  tierFailureThreshold: true,
  tierProbeIntervalMs: true,
  busyRetryMs: true,
  replayLimit: true,
  coherenceMs: true,
  bus: true,
  recencyFlushMs: true,
  readOnly: true,
});

/** Default values, exported so documentation and tests can name them. */
export const DEFAULTS = Object.freeze({
  maxEntries: 10_000,
  defaultTtlSeconds: 3_600,
  sweepIntervalMs: 60_000,
  healthFailureThreshold: 3,
  tierFailureThreshold: 3,
  tierProbeIntervalMs: 30_000,
  busyRetryMs: 5_000,
  replayLimit: 100_000,
  coherenceMs: 100,
  recencyFlushMs: 1_000,
});

/** Applies defaults, validates every option (naming it and what was expected), interprets. */
export function resolveOptions(options: ProxyCacheOptions = {}): ResolvedOptions {
  assertOptionsObject('ProxyCache.open', options);
  if ('dir' in options || 'memoryTier' in options) {
    throw new InvalidOptionError(
      '"dir" and "memoryTier" are options of openDefaultStore({ dir }), which builds the embedded store; ProxyCache.open takes "tiers"',
    );
  }
  rejectUnknownOptions('ProxyCache.open', options, PROXY_CACHE_OPTION_NAMES);
  const maxEntries = options.maxEntries ?? DEFAULTS.maxEntries;
  assertIntegerOption('maxEntries', maxEntries, 1);
  const tiers = options.tiers;
  if (tiers !== undefined && (!Array.isArray(tiers) || tiers.length === 0)) {
    throw new InvalidOptionError('"tiers" must be a non-empty array of tiers');
  }
  const names = new Set<string>();
  tiers?.forEach((tier, index) => {
    if (tier === null || typeof tier !== 'object' || typeof tier.get !== 'function') {
      throw new InvalidOptionError(`"tiers[${index}]" is not a tier (it has no get method)`);
    }
    if (names.has(tier.name)) {
      throw new InvalidOptionError(
        `"tiers[${index}]" has the name "${tier.name}" of an earlier tier; give each tier a distinct name`,
      );
    }
    names.add(tier.name);
  });
  const defaultTtlSeconds = options.defaultTtlSeconds ?? DEFAULTS.defaultTtlSeconds;
  assertIntegerOption('defaultTtlSeconds', defaultTtlSeconds, 0);
  const ttlBySource = new Map<string, number>();
  for (const [source, ttl] of Object.entries(options.ttlBySource ?? {})) {
    assertIntegerOption(`ttlBySource[${JSON.stringify(source)}]`, ttl, 0);
    ttlBySource.set(source, ttl);
  }
  const sweepIntervalMs = options.sweepIntervalMs ?? DEFAULTS.sweepIntervalMs;
  assertIntegerOption('sweepIntervalMs', sweepIntervalMs, 0);
  const healthFailureThreshold = options.healthFailureThreshold ?? DEFAULTS.healthFailureThreshold;
  assertIntegerOption('healthFailureThreshold', healthFailureThreshold, 1);
  const tierFailureThreshold = options.tierFailureThreshold ?? DEFAULTS.tierFailureThreshold;
  assertIntegerOption('tierFailureThreshold', tierFailureThreshold, 1);
  const tierProbeIntervalMs = options.tierProbeIntervalMs ?? DEFAULTS.tierProbeIntervalMs;
  assertIntegerOption('tierProbeIntervalMs', tierProbeIntervalMs, 0);
  const busyRetryMs = options.busyRetryMs ?? DEFAULTS.busyRetryMs;
  assertIntegerOption('busyRetryMs', busyRetryMs, 0);
  const replayLimit = options.replayLimit ?? DEFAULTS.replayLimit;
  assertIntegerOption('replayLimit', replayLimit, 1);
  const coherenceMs = options.coherenceMs ?? DEFAULTS.coherenceMs;
  assertIntegerOption('coherenceMs', coherenceMs, 0);
  const recencyFlushMs = options.recencyFlushMs ?? DEFAULTS.recencyFlushMs;
  assertIntegerOption('recencyFlushMs', recencyFlushMs, 1);
  const readOnly = options.readOnly ?? false;
  if (typeof readOnly !== 'boolean') {
    throw new InvalidOptionError(`"readOnly" must be a boolean, got ${typeof readOnly}`);
  }
  const bus = options.bus;
  if (bus !== undefined && (bus === null || typeof bus.subscribe !== 'function')) {
    throw new InvalidOptionError('"bus" must be a CacheBus (it has no subscribe method)');
  }
  if (options.previousKeys !== undefined && !Array.isArray(options.previousKeys)) {
    throw new InvalidOptionError('"previousKeys" must be an array of key strings');
  }
  return {
    tiers,
    maxEntries,
    keyring: options.keyring,
    encryptionKey: options.encryptionKey,
    previousKeys: options.previousKeys ?? [],
    keyFile: options.keyFile,
    clock: options.clock ?? systemClock,
    logger: options.logger ?? createStderrLogger(),
    defaultTtlSeconds,
    ttlBySource,
    sweepIntervalMs,
    healthFailureThreshold,
    healthPolicy: resolveHealthPolicy(options.healthPolicy),
    tierFailureThreshold,
    tierProbeIntervalMs,
    busyRetryMs,
    replayLimit,
    coherenceMs,
    bus,
    recencyFlushMs,
    readOnly,
  };
}
