// Public API of proxytier. Everything a program can use is exported here and documented in
// docs/api.md; anything not exported is internal.
export { ProxyCache } from './proxy-cache.js';
export type {
  ReencryptReport,
  TokenReport,
  DegradeEvent,
  EvictEvent,
  ExpireEvent,
  FailureReport,
  HeldEvent,
  KeysEvent,
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
export { Keyring, type KeyringChangeListener, type KeyringSource } from './crypto/keyring.js';
export {
  defaultKeyFilePath,
  KEY_VARIABLES,
  resolveKeyring,
  type KeySource,
  type ResolvedKeyring,
  type ResolveKeyringOptions,
} from './crypto/key-source.js';
export {
  KEY_FILE_CHECK_MS,
  readKeyFile,
  writeKeyFile,
  type WriteKeyFileOptions,
} from './crypto/key-file.js';

export {
  EVICTION_REASONS,
  isHealthTier,
  type EntryAccess,
  type EntryChange,
  type EntryPatch,
  type EvictionReason,
  type HealthCheckInput,
  type HealthCheckRecord,
  type HealthCheckStatus,
  type HealthTier,
  type ProxyQuery,
  type ProxyQueryOrder,
  type Tier,
  type TierChanges,
  type TierContext,
} from './tiers/tier.js';
export { MemoryTier, MEMORY_EVICTION_POLICIES, type MemoryTierOptions } from './tiers/memory.js';
export { FaultTier, type FaultOperation, type FaultTierOptions } from './tiers/fault.js';
export {
  JSONL_DEFAULTS,
  JsonlTier,
  type CompactionReport,
  type JsonlDurability,
  type JsonlTierOptions,
  type JsonlTierStats,
} from './tiers/jsonl/index.js';
export {
  HEALTH_STATS_WINDOW,
  isSqliteAvailable,
  SQLITE_DEFAULTS,
  SqliteTier,
  type Durability,
  type HistoryRetention,
  type JsonlImportProblem,
  type JsonlImportResult,
  type SqliteCompactReport,
  type SqliteRole,
  type SqliteTierOptions,
  type WriteStats,
} from './tiers/sqlite/index.js';
export {
  applyHealthCheck,
  DEFAULT_HEALTH_POLICY,
  resolveHealthPolicy,
  type HealthPatch,
  type HealthPolicy,
  type HealthState,
  type TimedHealthCheck,
} from './health.js';
export {
  detectFormat,
  DETECT_BYTES,
  IMPORT_FORMATS,
  importRecords,
  parseProxyRecords,
  readHead,
  type ImportFailure,
  type ImportFormat,
  type ImportItem,
  type ImportOptions,
  type ImportSummary,
  type ParseOptions,
} from './io/import.js';
export {
  EXPORT_FORMATS,
  exportColumns,
  exportRecords,
  SECRETS_MODES,
  type ExportFormat,
  type ExportOptions,
  type SecretsMode,
} from './io/export.js';
export { createProgress, type Progress, type ProgressOptions } from './io/progress.js';
export {
  migrateProxywhirl,
  type MigrateOptions,
  type MigrationReport,
  type MigrationSource,
} from './migrate.js';
export {
  DEFAULT_DATABASE_FILE,
  DEFAULT_JSONL_DIR,
  defaultStoreDir,
  openDefaultStore,
  type DefaultStoreOptions,
} from './default-store.js';
export {
  rotateKey,
  STORE_ROTATION_LOCK,
  type KeyRotation,
  type RotateKeyOptions,
} from './key-rotation.js';
export { TierChangeFeed, type BusMessage, type CacheBus } from './stack/bus.js';
export {
  diagnose,
  type DiagnoseOptions,
  type Diagnosis,
  type DoctorChecks,
  type DoctorProblem,
  type ModeCheck,
  type TierCheck,
} from './doctor.js';
