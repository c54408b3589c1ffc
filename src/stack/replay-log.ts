import type { ProxyEntry } from '../record/entry.js';
import type { EntryPatch } from '../tiers/tier.js';

/** A change a switched-off tier missed, kept until it is replayed there. */
export type HeldChange =
  { kind: 'set'; entry: ProxyEntry } | { kind: 'patch'; patch: EntryPatch } | { kind: 'delete' };

/**
 * The writes, patches and deletes that one tier missed while it was switched off, newest per
 * key. The stack replays them when the tier recovers, and reads treat them as the tier's content
 * meanwhile, so a key deleted during the outage is never read back from the tier.
 *
 * Deletes are always kept (a key each). Writes and patches are kept up to `limit` keys; past it
 * they are dropped and `overflowed` is set, and recovery then copies what the faster tiers hold
 * instead. Nothing the outage did not touch is ever removed from the tier.
 */
export class ReplayLog {
  readonly #changes = new Map<string, HeldChange>();
  #overflowed = false;
  /**
   * Set when the cache was cleared while the tier was switched off: the tier is cleared first
   * thing at recovery, and until then only its held writes are read from it.
   */
  clearFirst = false;

  constructor(readonly limit: number) {}

  /** Keys with a held change. */
  get size(): number {
    return this.#changes.size;
  }

  /** True when writes were dropped because more than `limit` keys were held. */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  /** The held change of `key`, if any. */
  get(key: string): HeldChange | undefined {
    return this.#changes.size === 0 ? undefined : this.#changes.get(key);
  }

  holdSet(entry: ProxyEntry): void {
    if (this.#admit(entry.key)) this.#changes.set(entry.key, { kind: 'set', entry });
  }

  holdPatch(key: string, patch: EntryPatch): void {
    const held = this.#changes.get(key);
    if (held === undefined) {
      if (this.#admit(key)) this.#changes.set(key, { kind: 'patch', patch });
    } else if (held.kind === 'set') {
      this.#changes.set(key, { kind: 'set', entry: { ...held.entry, ...patch } });
    } else if (held.kind === 'patch') {
      this.#changes.set(key, { kind: 'patch', patch: { ...held.patch, ...patch } });
    }
    // A held delete stays a delete: a patch of a deleted key changes nothing.
  }

  holdDelete(key: string): void {
    this.#changes.set(key, { kind: 'delete' });
  }

  /** Drops the held change of `key` (a newer write reached the tier itself). */
  forget(key: string): void {
    if (this.#changes.size !== 0) this.#changes.delete(key);
  }

  /** Drops `change` once replayed, unless a newer one replaced it meanwhile. */
  settle(key: string, change: HeldChange): void {
    if (this.#changes.get(key) === change) this.#changes.delete(key);
  }

  /** The held changes now, oldest key first (a copy: replay may add to the log). */
  snapshot(): [string, HeldChange][] {
    return [...this.#changes];
  }

  /** Clears the overflow mark once recovery has reconciled the tier. */
  reconciled(): void {
    this.#overflowed = false;
  }

  /** Forgets everything (the tier is to be cleared anyway). */
  reset(): void {
    this.#changes.clear();
    this.#overflowed = false;
  }

  #admit(key: string): boolean {
    if (this.#changes.has(key) || this.#changes.size < this.limit) return true;
    this.#overflowed = true;
    return false;
  }
}
