import { assertOptionsObject, rejectUnknownOptions, type OptionNames } from '../option-check.js';
import { setTimeout as delay } from 'node:timers/promises';
import { TierBusyError, TierError } from '../errors.js';
import type { ProxyEntry } from '../record/entry.js';
import { MemoryTier } from './memory.js';
import type {
  EntryAccess,
  EntryChange,
  EntryPatch,
  Tier,
  TierChanges,
  TierContext,
} from './tier.js';

/** Options of `FaultTier`. */
export interface FaultTierOptions {
  /** The tier whose behaviour is wrapped. Default: a `MemoryTier` of 100,000 entries. */
  inner?: Tier;
  /** Tier name in statistics and events. Default `fault`. */
  name?: string;
  /** Whether the stack treats it as persistent (seals secrets before `set`). Default `true`. */
  persistent?: boolean;
  /** Passed through as the tier's `timeoutMs`, so the stack's timeout can be exercised. */
  timeoutMs?: number;
  /**
   * Also offer the inner tier's synchronous reads and deletes (`getSync`, `peekSync`,
   * `deleteSync`, where it has them), failing like the other calls, so the stack takes the same
   * paths as over the real tier. Latency applies to asynchronous calls only. Default `false`.
   */
  sync?: boolean;
}

const FAULT_TIER_OPTION_NAMES: OptionNames<FaultTierOptions> = Object.freeze({
  inner: true,
  name: true,
  persistent: true,
  timeoutMs: true,
  sync: true,
});

/** Operations a `FaultTier` counts and can fail. */
export type FaultOperation =
  | 'get'
  | 'set'
  | 'update'
  | 'modify'
  | 'touch'
  | 'delete'
  | 'has'
  | 'clear'
  | 'size'
  | 'keys'
  | 'entries'
  | 'deleteExpired';

/**
 * A tier for fault-injection tests: it behaves like its inner tier until told to fail, slow
 * down, or find records corrupt. Use it to prove that a stack degrades and recovers; it is
 * exported so applications can test their own handling too.
 *
 * @example
 * const faulty = new FaultTier();
 * const cache = await ProxyCache.open({ tiers: [new MemoryTier({ maxEntries: 10 }), faulty] });
 * faulty.failAll();      // every call now throws E_TIER
 * faulty.heal();         // back to normal
 */
export class FaultTier implements Tier {
  readonly name: string;
  readonly persistent: boolean;
  readonly timeoutMs: number | undefined;
  /** Calls made per operation, failed ones included. */
  readonly calls: Record<FaultOperation, number> = {
    get: 0,
    set: 0,
    update: 0,
    modify: 0,
    touch: 0,
    delete: 0,
    has: 0,
    clear: 0,
    size: 0,
    keys: 0,
    entries: 0,
    deleteExpired: 0,
  };
  #inner: Tier;
  #context: TierContext | undefined;
  #failuresLeft = 0;
  #busyLeft = 0;
  #operationFailures = new Map<FaultOperation, number>();
  #latencyMs = 0;
  #corruptKeys = new Set<string>();
  #abort = new AbortController();

  constructor(options: FaultTierOptions = {}) {
    assertOptionsObject('FaultTier', options);
    rejectUnknownOptions('FaultTier', options, FAULT_TIER_OPTION_NAMES);
    this.name = options.name ?? 'fault';
    this.persistent = options.persistent ?? true;
    this.timeoutMs = options.timeoutMs;
    const inner: Tier = options.inner ?? new MemoryTier({ maxEntries: 100_000, name: this.name });
    this.#inner = inner;
    // The optional methods exist exactly when the inner tier has them, as the stack checks.
    const { touch, readChanges } = inner;
    if (touch !== undefined) {
      this.touch = async (accesses) => {
        await this.#enter('touch');
        await touch.call(inner, accesses);
      };
    }
    if (readChanges !== undefined) {
      // Injected failures do not reach the change feed: it is a local read of the inner tier.
      this.readChanges = () => readChanges.call(inner);
    }
    if (options.sync === true) {
      // Each is offered exactly when the inner tier has it, and fails like the other calls.
      const failing = <R>(operation: FaultOperation, method: ((key: string) => R) | undefined) =>
        method === undefined
          ? undefined
          : (key: string): R => {
              this.#enterSync(operation);
              return method.call(inner, key);
            };
      this.getSync = failing('get', inner.getSync);
      this.peekSync = failing('get', inner.peekSync);
      this.deleteSync = failing('delete', inner.deleteSync);
    }
  }

  readonly touch?: (accesses: readonly EntryAccess[]) => Promise<void>;
  readonly readChanges?: () => TierChanges;
  readonly getSync: ((key: string) => ProxyEntry | undefined) | undefined;
  readonly peekSync: ((key: string) => ProxyEntry | undefined) | undefined;
  readonly deleteSync: ((key: string) => boolean) | undefined;

  /**
   * Makes the next `count` calls (default: every call until `heal()`) throw a `TierError`;
   * `open` counts as a call.
   */
  failAll(count = Number.POSITIVE_INFINITY): void {
    this.#failuresLeft = count;
  }

  /** Makes the next `count` calls of `operation` alone throw a `TierError`. */
  failOn(operation: FaultOperation, count = 1): void {
    this.#operationFailures.set(operation, count);
  }

  /**
   * Makes the next `count` calls throw `TierBusyError` (`E_TIER_BUSY`), as a tier does while
   * another process holds its lock; the stack retries those.
   */
  busy(count = Number.POSITIVE_INFINITY): void {
    this.#busyLeft = count;
  }

  /** Stops failing and removes any latency. */
  heal(): void {
    this.#failuresLeft = 0;
    this.#busyLeft = 0;
    this.#operationFailures.clear();
    this.#latencyMs = 0;
  }

  /** Delays every call by `ms` (real time). */
  setLatency(ms: number): void {
    this.#latencyMs = ms;
  }

  /** The next read of `key` finds its record corrupt: it is dropped and counted. */
  corrupt(key: string): void {
    this.#corruptKeys.add(key);
  }

  async open(context: TierContext): Promise<void> {
    this.#context = context;
    if (this.#failuresLeft > 0) {
      this.#failuresLeft -= 1;
      throw new TierError(this.name, `injected failure in ${this.name}.open`);
    }
    this.#abort = new AbortController();
    await this.#inner.open(context);
  }

  async get(key: string): Promise<ProxyEntry | undefined> {
    await this.#enter('get');
    if (this.#corruptKeys.delete(key)) {
      await this.#inner.delete(key);
      this.#context?.onEvict(key, 'corruption', undefined);
      return undefined;
    }
    return this.#inner.get(key);
  }

  async set(entry: ProxyEntry): Promise<void> {
    await this.#enter('set');
    return this.#inner.set(entry);
  }

  async update(key: string, patch: EntryPatch): Promise<boolean> {
    await this.#enter('update');
    return this.#inner.update(key, patch);
  }

  async modify(key: string, change: EntryChange): Promise<ProxyEntry | undefined> {
    await this.#enter('modify');
    return this.#inner.modify(key, change);
  }

  async delete(key: string): Promise<boolean> {
    await this.#enter('delete');
    return this.#inner.delete(key);
  }

  async has(key: string): Promise<boolean> {
    await this.#enter('has');
    return this.#inner.has(key);
  }

  async clear(): Promise<number> {
    await this.#enter('clear');
    return this.#inner.clear();
  }

  async size(): Promise<number> {
    await this.#enter('size');
    return this.#inner.size();
  }

  async *keys(): AsyncIterable<string> {
    await this.#enter('keys');
    yield* this.#inner.keys();
  }

  async *entries(): AsyncIterable<ProxyEntry> {
    await this.#enter('entries');
    yield* this.#inner.entries();
  }

  async deleteExpired(now: number): Promise<string[]> {
    await this.#enter('deleteExpired');
    return this.#inner.deleteExpired(now);
  }

  async close(): Promise<void> {
    // Wake any call still sleeping in injected latency so nothing holds the process open.
    this.#abort.abort();
    await this.#inner.close();
  }

  async #enter(operation: FaultOperation): Promise<void> {
    this.calls[operation] += 1;
    if (this.#latencyMs > 0) {
      await delay(this.#latencyMs, undefined, { signal: this.#abort.signal, ref: false }).catch(
        () => undefined,
      );
    }
    this.#inject(operation);
  }

  #enterSync(operation: FaultOperation): void {
    this.calls[operation] += 1;
    this.#inject(operation);
  }

  /** Throws the failure the next call was told to meet, if any. */
  #inject(operation: FaultOperation): void {
    if (this.#busyLeft > 0) {
      this.#busyLeft -= 1;
      throw new TierBusyError(this.name, `injected busy answer in ${this.name}.${operation}`);
    }
    const operationFailures = this.#operationFailures.get(operation) ?? 0;
    if (operationFailures > 0) {
      this.#operationFailures.set(operation, operationFailures - 1);
      throw new TierError(this.name, `injected failure in ${this.name}.${operation}`);
    }
    if (this.#failuresLeft > 0) {
      this.#failuresLeft -= 1;
      throw new TierError(this.name, `injected failure in ${this.name}.${operation}`);
    }
  }
}
