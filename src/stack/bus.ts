import type { Tier, TierChanges } from '../tiers/tier.js';

type FeedTier = Tier & { readChanges(): TierChanges };

/** What a bus tells the stack: keys another process changed, or that it lost track of them. */
export type BusMessage =
  | { kind: 'changed'; keys: readonly string[] }
  /** Messages were missed (a pruned change log, a reconnect): drop everything held in L1. */
  | { kind: 'flush' };

/**
 * How the processes that share a store keep their L1 coherent: each publishes the keys it changed
 * and hears the keys the others changed; the stack drops those keys from its L1 so the next read
 * goes to the shared tier. A tier shared on one host feeds it from its own files (see
 * `TierChangeFeed`); a bus across hosts (Redis) implements the same interface over the network.
 */
export interface CacheBus {
  /** Short name for logs. */
  readonly name: string;
  /** Tells the other processes that these keys changed here. */
  publish(keys: readonly string[]): void;
  /** Registers the listener for other processes' changes; returns a function that removes it. */
  subscribe(listener: (message: BusMessage) => void): () => void;
  /**
   * Delivers what arrived since the last call, synchronously, to the listeners. The stack calls
   * it on its read path at most once per staleness bound (`coherenceMs`); a bus that pushes its
   * messages as they arrive may do nothing here.
   */
  poll(): void;
  close(): Promise<void>;
}

/**
 * The bus of a tier that processes of one host share (SQLite, JSONL): the tier's own writes are
 * the publication, and `poll` reads the tier's change feed (`Tier.readChanges`).
 */
export class TierChangeFeed implements CacheBus {
  readonly name: string;
  readonly #tier: FeedTier;
  readonly #listeners = new Set<(message: BusMessage) => void>();

  constructor(tier: Tier) {
    if (tier.readChanges === undefined) {
      throw new TypeError(`tier "${tier.name}" has no change feed (readChanges)`);
    }
    this.name = `${tier.name} change feed`;
    this.#tier = tier as FeedTier;
  }

  publish(): void {
    // The write itself, in the shared file or database, is what the other processes read.
  }

  subscribe(listener: (message: BusMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  poll(): void {
    const changes = this.#tier.readChanges();
    if (changes !== 'flush' && changes.length === 0) return;
    const message: BusMessage =
      changes === 'flush' ? { kind: 'flush' } : { kind: 'changed', keys: changes };
    for (const listener of this.#listeners) listener(message);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}
