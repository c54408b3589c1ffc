// Public API of proxytier. Everything a program can use is exported here and documented in
// docs/api.md; anything not exported is internal.
export { ProxyCache } from './proxy-cache.js';
export type {
  DegradeEvent,
  EvictEvent,
  ExpireEvent,
  FailureReport,
  Loader,
  ProxyCacheEvents,
  RecoverEvent,
} from './proxy-cache.js';
export { DEFAULTS, type ProxyCacheOptions } from './options.js';
export type { CacheStats, EvictionCounts, TierStats } from './stats.js';
export { ManualClock, systemClock, type Clock, type TimerHandle } from './clock.js';
export {
  createStderrLogger,
  LOG_LEVELS,
  silentLogger,
  type Logger,
  type LogLevel,
} from './logger.js';
export * from './errors.js';

export {
  createEntry,
  DEFAULT_SOURCE,
  HEALTH_STATUSES,
  isExpired,
  type EntryDefaults,
  type HealthStatus,
  type ProxyEntry,
  type ProxyEntryInput,
  type TimeInput,
} from './record/entry.js';
export { REDACTED, Secret, type TokenCipher } from './record/secret.js';
export {
  canonicalizeProxyUrl,
  deriveKey,
  PROXY_SCHEMES,
  type CanonicalProxyUrl,
} from './record/url.js';

export {
  decodeFernetToken,
  FernetKey,
  generateFernetKey,
  type FernetDecryptOptions,
  type FernetEncryptOptions,
} from './crypto/fernet.js';
export { Keyring } from './crypto/keyring.js';
export {
  defaultKeyFilePath,
  resolveKeyring,
  writeKeyFile,
  type KeySource,
  type ResolvedKeyring,
  type ResolveKeyringOptions,
  type WriteKeyFileOptions,
} from './crypto/key-source.js';

export {
  EVICTION_REASONS,
  isHealthTier,
  type EntryPatch,
  type EvictionReason,
  type HealthCheckInput,
  type HealthCheckRecord,
  type HealthCheckStatus,
  type HealthTier,
  type ProxyQuery,
  type ProxyQueryOrder,
  type Tier,
  type TierContext,
} from './tiers/tier.js';
export { MemoryTier, MEMORY_EVICTION_POLICIES, type MemoryTierOptions } from './tiers/memory.js';
export { FaultTier, type FaultOperation, type FaultTierOptions } from './tiers/fault.js';
