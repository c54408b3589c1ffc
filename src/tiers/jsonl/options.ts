import { InvalidOptionError } from '../../errors.js';
import {
  assertIntegerOption,
  assertNameOption,
  assertOptionsObject,
  rejectUnknownOptions,
  type OptionNames,
} from '../../option-check.js';
import { describe } from '../../record/entry.js';

/** How far a write has gone when its promise resolves. */
export type JsonlDurability = 'normal' | 'full';

/** Options of `JsonlTier`. */
export interface JsonlTierOptions {
  /** Directory of the shard files; created (mode 0700) if missing. Required. */
  dir: string;
  /** Most entries kept; beyond it the least recently used is deleted. Default: unbounded. */
  maxEntries?: number;
  /**
   * `'normal'` (default): a write resolves once its bytes are in the file (it survives a crash of
   * the process). `'full'`: once they are also flushed to the disk (`fdatasync`; survives a power
   * loss), at the cost of one flush per batch of writes.
   */
  durability?: JsonlDurability;
  /** Share of dead bytes (superseded records, tombstones) at which a shard is compacted. Default 0.5. */
  compactionThreshold?: number;
  /** Shards smaller than this many bytes are never compacted automatically. Default 1 MiB. */
  compactionMinBytes?: number;
  /** How long a write may wait for another process's lock before it fails. Default 30,000 ms. */
  lockTimeoutMs?: number;
  /** Tier name in statistics and errors. Default `jsonl`. */
  name?: string;
}

/** Options after defaults, validated. */
export interface ResolvedJsonlOptions {
  dir: string;
  maxEntries: number | undefined;
  durability: JsonlDurability;
  compactionThreshold: number;
  compactionMinBytes: number;
  lockTimeoutMs: number;
  name: string;
}

/** Every option of `JsonlTier`; TypeScript keeps it equal to the interface's keys. */
const JSONL_OPTION_NAMES: OptionNames<JsonlTierOptions> = Object.freeze({
  dir: true,
  maxEntries: true,
  durability: true,
  compactionThreshold: true,
  compactionMinBytes: true,
  lockTimeoutMs: true,
  name: true,
});

/** Defaults of `JsonlTierOptions`. */
export const JSONL_DEFAULTS = Object.freeze({
  durability: 'normal' as JsonlDurability,
  compactionThreshold: 0.5,
  compactionMinBytes: 1024 * 1024,
  lockTimeoutMs: 30_000,
  name: 'jsonl',
});

/** Applies defaults, then validates: each message names the option, the expectation and the value. */
export function resolveJsonlOptions(options: JsonlTierOptions): ResolvedJsonlOptions {
  assertOptionsObject('JsonlTier', options, 'with "dir"');
  rejectUnknownOptions('JsonlTier', options, JSONL_OPTION_NAMES);
  const {
    dir,
    maxEntries,
    durability = JSONL_DEFAULTS.durability,
    compactionThreshold = JSONL_DEFAULTS.compactionThreshold,
    compactionMinBytes = JSONL_DEFAULTS.compactionMinBytes,
    lockTimeoutMs = JSONL_DEFAULTS.lockTimeoutMs,
    name = JSONL_DEFAULTS.name,
  } = options;
  if (typeof dir !== 'string' || dir.trim() === '') {
    throw new InvalidOptionError(`"dir" must be a non-empty path string, got ${describe(dir)}`);
  }
  if (maxEntries !== undefined) assertIntegerOption('maxEntries', maxEntries, 1);
  if (durability !== 'normal' && durability !== 'full') {
    throw new InvalidOptionError(
      `"durability" must be "normal" or "full", got ${describe(durability)}`,
    );
  }
  if (
    typeof compactionThreshold !== 'number' ||
    !(compactionThreshold > 0 && compactionThreshold <= 1)
  ) {
    throw new InvalidOptionError(
      `"compactionThreshold" must be a number greater than 0 and at most 1 (the share of dead bytes), got ${describe(compactionThreshold)}`,
    );
  }
  assertIntegerOption('compactionMinBytes', compactionMinBytes, 0);
  assertIntegerOption('lockTimeoutMs', lockTimeoutMs, 1);
  assertNameOption('name', name);
  return {
    dir,
    maxEntries,
    durability,
    compactionThreshold,
    compactionMinBytes,
    lockTimeoutMs,
    name,
  };
}
