import { LRUCache } from 'lru-cache';
import { ClosedError, InvalidOptionError } from '../errors.js';
import {
  assertIntegerOption,
  assertNameOption,
  assertOptionsObject,
  rejectUnknownOptions,
  type OptionNames,
} from '../option-check.js';
import type { ProxyEntry } from '../record/entry.js';
import type { EntryChange, EntryPatch, EvictionReason, Tier, TierContext } from './tier.js';

/** Eviction policies the memory tier implements. Asking for another one is an error, not a no-op. */
export const MEMORY_EVICTION_POLICIES = ['lru'] as const;
export type MemoryEvictionPolicy = (typeof MEMORY_EVICTION_POLICIES)[number];

/** Options of `MemoryTier`. */
export interface MemoryTierOptions {
  /** Most entries held; the least recently used is evicted beyond it. Required: no unbounded L1. */
  maxEntries: number;
  /** Only `'lru'` is implemented (the default); any other value throws. */
  evictionPolicy?: MemoryEvictionPolicy;
  /** Called after an entry is evicted (besides the stack's own bookkeeping). */
  onEvict?: (entry: ProxyEntry, reason: EvictionReason) => void;
  /** Tier name in statistics and events. Default `memory`. */
  name?: string;
}

/** Every option of `MemoryTier`; TypeScript keeps it equal to the interface's keys. */
const MEMORY_OPTION_NAMES: OptionNames<MemoryTierOptions> = Object.freeze({
  maxEntries: true,
  evictionPolicy: true,
  onEvict: true,
  name: true,
});

/**
 * L1: a bounded in-process LRU map, O(1) for get, set and delete. Entries are held as given
 * (credentials may be decrypted here; they never leave the process). The engine is lru-cache,
 * the most used and measured LRU for Node.js, rather than a hand-written list.
 *
 * @example
 * const l1 = new MemoryTier({ maxEntries: 50_000 });
 */
export class MemoryTier implements Tier {
  readonly name: string;
  readonly persistent = false;
  readonly timeoutMs = undefined;
  readonly maxEntries: number;
  #lru: LRUCache<string, ProxyEntry>;
  #context: TierContext | undefined;
  #onEvict: MemoryTierOptions['onEvict'];
  #closed = false;

  constructor(options: MemoryTierOptions) {
    assertOptionsObject('MemoryTier', options, 'with "maxEntries"');
    rejectUnknownOptions('MemoryTier', options, MEMORY_OPTION_NAMES);
    const { maxEntries, evictionPolicy = 'lru', onEvict, name = 'memory' } = options;
    assertIntegerOption('maxEntries', maxEntries, 1);
    assertNameOption('name', name);
    if (!MEMORY_EVICTION_POLICIES.includes(evictionPolicy)) {
      throw new InvalidOptionError(
        `"evictionPolicy" ${JSON.stringify(evictionPolicy)} is not implemented; the memory tier supports: ${MEMORY_EVICTION_POLICIES.join(', ')}`,
      );
    }
    if (onEvict !== undefined && typeof onEvict !== 'function') {
      throw new InvalidOptionError(`"onEvict" must be a function, got ${typeof onEvict}`);
    }
    this.name = name;
    this.maxEntries = maxEntries;
    this.#onEvict = onEvict;
    this.#lru = new LRUCache<string, ProxyEntry>({
      max: maxEntries,
      // Replacing a key is not an eviction; only capacity pressure ('evict') is reported.
      noDisposeOnSet: true,
      dispose: (entry, key, reason) => {
        if (reason === 'evict') this.#evicted(key, entry, 'lru');
      },
    });
  }

  async open(context: TierContext): Promise<void> {
    this.#context = context;
  }

  getSync(key: string): ProxyEntry | undefined {
    return this.#lru.get(key);
  }

  async get(key: string): Promise<ProxyEntry | undefined> {
    return this.#lru.get(key);
  }

  setSync(entry: ProxyEntry): void {
    if (this.#closed) throw new ClosedError(`the ${this.name} tier is closed`);
    this.#lru.set(entry.key, entry);
  }

  async set(entry: ProxyEntry): Promise<void> {
    this.setSync(entry);
  }

  async update(key: string, patch: EntryPatch): Promise<boolean> {
    const current = this.#lru.peek(key);
    if (current === undefined) return false;
    // Copy on write: the stored object may be shared with the caller or a faster tier.
    this.#lru.set(key, { ...current, ...patch }, { noUpdateTTL: true });
    return true;
  }

  /** Synchronous, so nothing can run between the read and the write. */
  modifySync(key: string, change: EntryChange): ProxyEntry | undefined {
    const current = this.#lru.peek(key);
    if (current === undefined) return undefined;
    const patch = change(current);
    if (patch === undefined) return current;
    const next = { ...current, ...patch };
    this.#lru.set(key, next, { noUpdateTTL: true });
    return next;
  }

  async modify(key: string, change: EntryChange): Promise<ProxyEntry | undefined> {
    return this.modifySync(key, change);
  }

  deleteSync(key: string): boolean {
    return this.#lru.delete(key);
  }

  async delete(key: string): Promise<boolean> {
    return this.#lru.delete(key);
  }

  hasSync(key: string): boolean {
    return this.#lru.has(key);
  }

  async has(key: string): Promise<boolean> {
    return this.#lru.has(key);
  }

  peekSync(key: string): ProxyEntry | undefined {
    return this.#lru.peek(key);
  }

  async clear(): Promise<number> {
    const removed = this.#lru.size;
    this.#lru.clear();
    return removed;
  }

  async size(): Promise<number> {
    return this.#lru.size;
  }

  /** Entries held right now (synchronous). */
  get count(): number {
    return this.#lru.size;
  }

  async *keys(): AsyncIterable<string> {
    // A snapshot, so that deletes made while the caller iterates cannot skip keys.
    yield* [...this.#lru.keys()];
  }

  async *entries(): AsyncIterable<ProxyEntry> {
    yield* [...this.#lru.values()];
  }

  async deleteExpired(now: number): Promise<string[]> {
    const expired: string[] = [];
    for (const [key, entry] of this.#lru.entries()) {
      if (entry.expiresAt <= now) expired.push(key);
    }
    for (const key of expired) this.#lru.delete(key);
    return expired;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#lru.clear();
  }

  #evicted(key: string, entry: ProxyEntry, reason: EvictionReason): void {
    this.#context?.onEvict(key, reason, entry);
    this.#onEvict?.(entry, reason);
  }
}
