// What `JsonlTier.readChanges()` reports: the keys of other processes' records that this process's
// catch-ups indexed since the previous call, or 'flush' when a shard file was replaced under it
// (another process compacted or cleared it: which keys changed is then unknown). The tier's own
// appends never pass through a catch-up, so they are never reported.
import type { TierChanges } from '../tier.js';

/** Beyond this many changed keys between two calls, 'flush' is reported instead (and memory stays bounded). */
export const MAX_REPORTED_CHANGES = 10_000;

export class ChangeFeed {
  /** False until the first `take()`: nothing is collected for a feed nobody reads. */
  #started = false;
  #keys = new Set<string>();
  #flush = false;

  /** A record or tombstone of `key` from another process was indexed. */
  changed(key: string): void {
    if (!this.#started || this.#flush) return;
    this.#keys.add(key);
    if (this.#keys.size > MAX_REPORTED_CHANGES) this.rewritten();
  }

  /** A shard file was re-indexed from scratch: every key of it may have changed. */
  rewritten(): void {
    if (!this.#started) return;
    this.#flush = true;
    this.#keys.clear();
  }

  /** What changed since the previous call, and a new starting point. The first call reports nothing. */
  take(): TierChanges {
    const changes: TierChanges = this.#flush ? 'flush' : [...this.#keys];
    this.#started = true;
    this.#flush = false;
    this.#keys.clear();
    return changes;
  }
}
