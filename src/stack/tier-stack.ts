import type { Clock, TimerHandle } from '../clock.js';
import type { Keyring } from '../crypto/keyring.js';
import { TierUnavailableError, TierWriteError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ProxyEntry } from '../record/entry.js';
import type {
  EntryAccess,
  EntryChange,
  EntryPatch,
  EvictionReason,
  Tier,
  TierContext,
} from '../tiers/tier.js';
import { TierChangeFeed, type BusMessage, type CacheBus } from './bus.js';
import { describeError } from '../describe-error.js';
import { KeyLock } from './key-lock.js';
import type { HeldChange } from './replay-log.js';
import { FAILED, TierSlot, type SlotSettings } from './tier-slot.js';

/** What the stack reports to the cache's events. */
export interface StackListener {
  evicted(slot: TierSlot, key: string, reason: EvictionReason): void;
  /** An entry's TTL ran out and it was removed. */
  expired(key: string): void;
  degraded(slot: TierSlot, error: Error): void;
  recovered(slot: TierSlot): void;
  /** A write or delete was held for replay in these switched-off tiers. */
  held(key: string, operation: 'put' | 'delete' | 'update', tiers: string[]): void;
}

/** Settings of a stack beyond those of its slots. */
export interface StackSettings extends Omit<SlotSettings, 'onDegrade' | 'onRecover'> {
  keyring: Keyring | undefined;
  healthPolicy: TierContext['healthPolicy'];
  /** How stale an L1 copy may be against other processes' writes, in ms; 0 checks every read. */
  coherenceMs: number;
  /** A bus across hosts, besides the change feeds of the tiers. */
  bus: CacheBus | undefined;
  /** How often L1's uses are passed down to tiers that keep recency, in ms. */
  recencyFlushMs: number;
}

/** The outcome of a write in the persistent tiers. */
interface PersistentOutcome {
  /** Names of the tiers the change was held for. */
  held: string[];
  /** Slots that took the change (for a delete: that held the key). */
  done: TierSlot[];
}

/**
 * The tiers of a cache and the paths through them: reads from the fastest tier that has a key,
 * with promotion; writes, deletes and patches through every tier with the write semantics of
 * docs/api.md ("What a write means"); atomic read-modify-writes in the tier that holds the
 * record; replay of what a switched-off tier missed; L1 coherence with other processes; and L1's
 * recency passed down to the slower tiers.
 */
export class TierStack {
  readonly slots: TierSlot[];
  /** L1 when it has a synchronous engine (the memory tier): the hot path reads it directly. */
  readonly l1: TierSlot | undefined;
  /** True when some tier stores outside the process (its secrets are sealed before writes). */
  readonly persistent: boolean;
  /** Every tier synchronous and none persistent (a memory-only cache): writes need no lock. */
  readonly synchronous: boolean;
  /** The read path calls `checkCoherence` once the clock passes this. */
  nextCoherenceCheck = Number.POSITIVE_INFINITY;
  /** An L1 hit on an entry last used before this time is queued in `touched`. */
  touchEpoch = Number.NEGATIVE_INFINITY;
  /** Entries L1 served since the last recency flush, to pass down. */
  touched: ProxyEntry[] = [];
  /** Counts every change; an asynchronous read that saw it move skips promotion. */
  mutations = 0;

  readonly #settings: StackSettings;
  readonly #listener: StackListener;
  readonly #keyLock = new KeyLock();
  readonly #background = new Set<Promise<unknown>>();
  readonly #persistentSlots: TierSlot[];
  readonly #volatileSlots: TierSlot[];
  readonly #buses: CacheBus[] = [];
  readonly #unsubscribe: (() => void)[] = [];
  readonly #touchTargets: TierSlot[];
  #recencyTimer: TimerHandle | undefined;
  /** One-shot timers the stack set on its own (a replay tried again later); cancelled at close. */
  readonly #timers = new Set<TimerHandle>();
  #closing = false;

  constructor(tiers: Tier[], settings: StackSettings, listener: StackListener) {
    this.#settings = settings;
    this.#listener = listener;
    const slotSettings: SlotSettings = {
      ...settings,
      onDegrade: (slot, error) => listener.degraded(slot, error),
      onRecover: (slot) => {
        this.#recovered(slot);
      },
    };
    this.slots = tiers.map((tier, index) => new TierSlot(tier, index + 1, slotSettings));
    const first = this.slots[0];
    this.l1 = first?.tier.getSync === undefined || first.tier.persistent ? undefined : first;
    this.persistent = tiers.some((tier) => tier.persistent);
    this.synchronous = tiers.every(
      (tier) => !tier.persistent && tier.setSync !== undefined && tier.deleteSync !== undefined,
    );
    this.#persistentSlots = this.slots.filter((slot) => slot.tier.persistent);
    this.#volatileSlots = this.slots.filter((slot) => !slot.tier.persistent);
    this.#touchTargets =
      this.l1 === undefined ? [] : this.slots.filter((slot) => slot.tier.touch !== undefined);
  }

  get clock(): Clock {
    return this.#settings.clock;
  }

  get logger(): Logger {
    return this.#settings.logger;
  }

  /** Opens every tier; rejects with the last error when none opens. */
  async open(): Promise<void> {
    let lastError: unknown;
    for (const slot of this.slots) {
      const error = await slot.open(this.#contextFor(slot));
      if (error !== undefined) lastError = error;
    }
    if (this.slots.every((slot) => slot.unopened)) {
      await Promise.allSettled(this.slots.map((slot) => slot.tier.close()));
      throw lastError;
    }
    this.#startCoherence();
    if (this.#touchTargets.length > 0) {
      this.touchEpoch = this.clock.now();
      this.#recencyTimer = this.clock.every(this.#settings.recencyFlushMs, () =>
        this.flushRecency(),
      );
    }
  }

  // ---------------------------------------------------------------- reads

  /** The rest of an asynchronous read, from tier `start` on. */
  async readFrom(start: number, key: string, now: number): Promise<ProxyEntry | undefined> {
    const seen = this.mutations;
    for (let index = start; index < this.slots.length; index += 1) {
      const slot = this.slots[index] as TierSlot;
      const held = slot.replay.get(key);
      if (held !== undefined && held.kind === 'delete') return undefined;
      const available = slot.available(now);
      let entry: ProxyEntry | undefined;
      if (held !== undefined && held.kind === 'set') {
        entry = held.entry;
      } else if (!available) {
        continue;
      } else {
        const { tier } = slot;
        const found =
          tier.getSync === undefined
            ? await slot.call(() => tier.get(key))
            : slot.callSync(() => (tier.getSync as (key: string) => ProxyEntry | undefined)(key));
        if (found === FAILED) continue;
        // A tier still to be cleared holds nothing but its held writes.
        if (slot.replay.clearFirst) entry = undefined;
        else
          entry = held === undefined || found === undefined ? found : { ...found, ...held.patch };
      }
      if (entry === undefined) {
        slot.counters.misses += 1;
        continue;
      }
      if (entry.expiresAt <= now) {
        await this.expire(key);
        return undefined;
      }
      // A change of any key while this read waited may have been of this one: serve what was
      // read, but do not copy it into the faster tiers, where it could outlive the change.
      return this.#hit(slot, index, entry, now, this.mutations === seen);
    }
    return undefined;
  }

  /** The rest of a synchronous read, over the synchronous tiers from `start` on. */
  readSyncFrom(start: number, key: string, now: number): ProxyEntry | undefined {
    for (let index = start; index < this.slots.length; index += 1) {
      const slot = this.slots[index] as TierSlot;
      const held = slot.replay.get(key);
      if (held !== undefined && held.kind === 'delete') return undefined;
      const { tier } = slot;
      let entry: ProxyEntry | undefined;
      if (held !== undefined && held.kind === 'set') {
        entry = held.entry;
      } else {
        const getSync = tier.getSync;
        if (getSync === undefined || !slot.available(now)) continue;
        const found = slot.callSync(() => getSync.call(tier, key));
        if (found === FAILED) continue;
        if (slot.replay.clearFirst) entry = undefined;
        else
          entry = held === undefined || found === undefined ? found : { ...found, ...held.patch };
      }
      if (entry === undefined) {
        slot.counters.misses += 1;
        continue;
      }
      if (entry.expiresAt <= now) {
        this.expireInBackground(key);
        return undefined;
      }
      return this.#hit(slot, index, entry, now, true);
    }
    return undefined;
  }

  /** The first tier's copy of `key` (held changes included), without statistics or promotion. */
  async find(key: string): Promise<{ slot: TierSlot; entry: ProxyEntry } | undefined> {
    const now = this.clock.now();
    for (const slot of this.slots) {
      const held = slot.replay.get(key);
      if (held?.kind === 'delete') return undefined;
      if (held?.kind === 'set') return { slot, entry: held.entry };
      if (!slot.available(now) || slot.replay.clearFirst) continue;
      const { tier } = slot;
      const found = await slot.call(() =>
        tier.peekSync === undefined ? tier.get(key) : tier.peekSync(key),
      );
      if (found === FAILED || found === undefined) continue;
      return { slot, entry: held === undefined ? found : { ...found, ...held.patch } };
    }
    return undefined;
  }

  #hit(
    slot: TierSlot,
    index: number,
    entry: ProxyEntry,
    now: number,
    promote: boolean,
  ): ProxyEntry {
    slot.counters.hits += 1;
    entry.lastAccessed = now;
    entry.accessCount += 1;
    if (index > 0 && promote) this.#promote(entry, index);
    return entry;
  }

  /** Copies an entry found in tier `index` into every faster tier. */
  #promote(entry: ProxyEntry, index: number): void {
    const now = entry.lastAccessed;
    const wasDemoted = entry.evictedFromL1;
    entry.evictedFromL1 = false;
    for (let faster = 0; faster < index; faster += 1) {
      const slot = this.slots[faster] as TierSlot;
      if (!slot.available(now)) continue;
      slot.counters.promotions += 1;
      const { tier } = slot;
      const setSync = tier.setSync;
      if (setSync !== undefined) slot.callSync(() => setSync.call(tier, entry));
      else this.track(slot.call(() => tier.set(entry)));
    }
    if (wasDemoted) {
      // proxywhirl never cleared the flag; it is reset once the entry is back in L1.
      for (const slot of this.slots.slice(index)) {
        this.track(slot.call(() => slot.tier.update(entry.key, { evictedFromL1: false })));
      }
    }
  }

  // ---------------------------------------------------------------- writes

  /**
   * Writes `entry` to every tier: resolves once every switched-on persistent tier committed it
   * (or, switched off, holds it for replay); rejects with `E_TIER_WRITE` when one could not.
   * Returns `undefined` when the write is already done (every tier synchronous).
   */
  write(entry: ProxyEntry): Promise<void> | undefined {
    this.mutations += 1;
    if (this.persistent && this.#settings.keyring !== undefined) {
      // Sealed once here; every persistent tier writes the same token.
      entry.username?.seal(this.#settings.keyring);
      entry.password?.seal(this.#settings.keyring);
    }
    if (this.synchronous) {
      this.#writeVolatile(entry, this.clock.now(), 0);
      return undefined;
    }
    return this.#keyLock.run(entry.key, () => this.#writeLocked(entry));
  }

  async #writeLocked(entry: ProxyEntry): Promise<void> {
    const now = this.clock.now();
    const outcome = await this.#inPersistentTiers(
      entry.key,
      'put',
      (tier) => tier.set(entry).then(() => true),
      (slot) => slot.replay.holdSet(entry),
    );
    const pending = this.#writeVolatile(entry, now, outcome.done.length + outcome.held.length);
    if (pending !== undefined) await pending;
    this.#published(entry.key, 'put', outcome.held);
  }

  /**
   * Writes the non-persistent tiers (L1), synchronously where they can; `elsewhere` tiers
   * already took the write. Throws `E_TIER_UNAVAILABLE` when no tier at all has it.
   */
  #writeVolatile(entry: ProxyEntry, now: number, elsewhere: number): Promise<void> | undefined {
    let stored = elsewhere;
    let pending: Promise<unknown>[] | undefined;
    for (const slot of this.#volatileSlots) {
      if (!slot.available(now)) continue;
      const { tier } = slot;
      const setSync = tier.setSync;
      if (setSync === undefined) {
        (pending ??= []).push(
          slot
            .call(() => tier.set(entry))
            .then((result) => {
              if (result !== FAILED) stored += 1;
            }),
        );
      } else if (slot.callSync(() => setSync.call(tier, entry)) !== FAILED) {
        stored += 1;
      }
    }
    if (pending === undefined) {
      this.#assertStored(entry.key, stored);
      return undefined;
    }
    return Promise.all(pending).then(() => {
      this.#assertStored(entry.key, stored);
    });
  }

  #assertStored(key: string, stored: number): void {
    if (stored === 0) {
      throw new TierUnavailableError(
        `no tier accepted the write of entry ${key}; every tier failed or is switched off`,
        { cause: this.#volatileSlots.find((slot) => slot.lastError !== undefined)?.lastError },
      );
    }
  }

  /**
   * Deletes `key` from every tier with the same semantics as `write`; resolves the slots that
   * held it.
   */
  delete(key: string): Promise<TierSlot[]> {
    this.mutations += 1;
    return this.#keyLock.run(key, () => this.deleteLocked(key));
  }

  /** `delete` for a caller that already holds the key's lock. */
  async deleteLocked(key: string): Promise<TierSlot[]> {
    this.mutations += 1;
    const outcome = await this.#inPersistentTiers(
      key,
      'delete',
      (tier) => (tier.deleteSync === undefined ? tier.delete(key) : tier.deleteSync(key)),
      (slot) => slot.replay.holdDelete(key),
    );
    const removedFrom = outcome.done;
    const now = this.clock.now();
    for (const slot of this.#volatileSlots) {
      if (!slot.available(now)) continue;
      const { tier } = slot;
      const removed = await slot.call(() =>
        tier.deleteSync === undefined ? tier.delete(key) : tier.deleteSync(key),
      );
      if (removed === true) removedFrom.push(slot);
    }
    this.#published(key, 'delete', outcome.held);
    return removedFrom;
  }

  /**
   * Applies `patch` to `key` in every tier but `except`, as a write (it may reject with
   * `E_TIER_WRITE`). For a caller that holds the key's lock.
   */
  async patchLocked(key: string, patch: EntryPatch, except?: TierSlot): Promise<void> {
    this.mutations += 1;
    const outcome = await this.#inPersistentTiers(
      key,
      'update',
      (tier) => tier.update(key, patch),
      (slot) => slot.replay.holdPatch(key, patch),
      except,
    );
    const now = this.clock.now();
    for (const slot of this.#volatileSlots) {
      if (slot === except || !slot.available(now)) continue;
      await slot.call(() => slot.tier.update(key, patch));
    }
    this.#published(key, 'update', outcome.held);
  }

  /**
   * The atomic read-modify-write of `key`, done by the tier that holds the record: the first
   * persistent tier in service (`first`, when given and in service, goes before it), else L1.
   * Resolves the slot that did it and the entry after the change, or `undefined` when that tier
   * does not have the key (its stale copies in faster tiers are then dropped). For a caller that
   * holds the key's lock.
   */
  async modifyLocked(
    key: string,
    change: EntryChange,
    first?: TierSlot,
  ): Promise<{ slot: TierSlot; entry: ProxyEntry } | undefined> {
    this.mutations += 1;
    const now = this.clock.now();
    const order = [...(first === undefined ? [] : [first]), ...this.#persistentSlots];
    for (const slot of [...order, ...this.#volatileSlots]) {
      if (!slot.available(now)) continue;
      // A change held for this tier comes first, so the read-modify-write sees it.
      if (slot.replay.get(key) !== undefined && !(await this.#replayKey(slot, key))) {
        if (slot.degraded) continue;
        throw this.#writeError(slot, key, 'update');
      }
      const result = await slot.call(() => slot.tier.modify(key, change));
      if (result === FAILED) {
        if (slot.degraded) continue;
        throw this.#writeError(slot, key, 'update');
      }
      if (result === undefined) {
        this.dropFromVolatile(key, slot);
        return undefined;
      }
      return { slot, entry: result };
    }
    throw new TierUnavailableError(
      `no tier could apply the change of entry ${key}; every tier failed or is switched off`,
    );
  }

  /** Runs `work` after every earlier change of `key` in this process. */
  locked<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.#keyLock.run(key, work);
  }

  /**
   * One change in every persistent tier (but `except`), concurrently: a tier in service runs
   * `apply`; one switched off (or switched off by this failure) gets `hold`. A tier in service
   * that fails makes the whole change reject with `E_TIER_WRITE`.
   */
  async #inPersistentTiers(
    key: string,
    operation: 'put' | 'delete' | 'update',
    apply: (tier: Tier) => Promise<boolean> | boolean,
    hold: (slot: TierSlot) => void,
    except?: TierSlot,
  ): Promise<PersistentOutcome> {
    const now = this.clock.now();
    const outcome: PersistentOutcome = { held: [], done: [] };
    let failed: TierSlot | undefined;
    await Promise.all(
      this.#persistentSlots.map(async (slot) => {
        if (slot === except) return;
        if (!slot.available(now) || slot.replay.clearFirst) {
          hold(slot);
          outcome.held.push(slot.tier.name);
          return;
        }
        // A patch applies on top of what the tier missed while it was off, so a change still
        // held for the key goes first (a write or delete replaces it instead).
        const pending = operation === 'update' && slot.replay.get(key) !== undefined;
        const caughtUp = !pending || (await this.#replayKey(slot, key));
        const result = caughtUp ? await slot.call(() => apply(slot.tier)) : FAILED;
        if (result === FAILED) {
          if (slot.degraded) {
            hold(slot);
            outcome.held.push(slot.tier.name);
          } else {
            failed ??= slot;
          }
          return;
        }
        // The tier has the newest state now: an older held change must not be replayed over it.
        slot.replay.forget(key);
        if (result) outcome.done.push(slot);
      }),
    );
    if (failed !== undefined) {
      // What the faster tiers hold may no longer match the stored state: drop it.
      this.dropFromVolatile(key);
      throw this.#writeError(failed, key, operation);
    }
    return outcome;
  }

  #writeError(slot: TierSlot, key: string, operation: string): TierWriteError {
    const cause = slot.lastError;
    return new TierWriteError(
      slot.tier.name,
      `the "${slot.tier.name}" tier could not commit the ${operation} of entry ${key} (${describeError(cause)}); nothing was changed there`,
      { cause },
    );
  }

  /** Drops `key` from the non-persistent tiers (before `below`, when given). */
  dropFromVolatile(key: string, below?: TierSlot): void {
    for (const slot of this.#volatileSlots) {
      if (below !== undefined && slot.level >= below.level) continue;
      const { tier } = slot;
      if (tier.deleteSync !== undefined) slot.callSync(() => tier.deleteSync?.(key));
      else this.track(slot.call(() => tier.delete(key)));
    }
  }

  #published(key: string, operation: 'put' | 'delete' | 'update', held: string[]): void {
    if (held.length > 0) this.#listener.held(key, operation, held);
    const bus = this.#settings.bus;
    if (bus !== undefined) bus.publish([key]);
  }

  /**
   * Removes an expired `key` everywhere, counting TTL evictions; never rejects (a tier that
   * fails keeps the entry, which still reads as expired, until the sweep removes it).
   */
  expire(key: string): Promise<void> {
    return this.delete(key).then(
      (removedFrom) => {
        for (const slot of removedFrom) this.#listener.evicted(slot, key, 'ttl');
        this.#listener.expired(key);
      },
      (error: unknown) => {
        this.logger.debug(`removing expired entry ${key} failed: ${describeError(error)}`);
      },
    );
  }

  /** `expire` for a synchronous caller: tracked, so `flush` and `close` wait for it. */
  expireInBackground(key: string): void {
    this.track(this.expire(key));
  }

  /** Clears every tier; a switched-off tier is cleared first thing when it recovers. */
  async clear(): Promise<void> {
    this.mutations += 1;
    const now = this.clock.now();
    let failed: TierSlot | undefined;
    await Promise.all(
      this.slots.map(async (slot) => {
        slot.replay.reset();
        if (!slot.available(now)) {
          slot.replay.clearFirst = true;
          return;
        }
        if ((await slot.call(() => slot.tier.clear())) !== FAILED) return;
        if (slot.degraded) slot.replay.clearFirst = true;
        else if (slot.tier.persistent) failed ??= slot;
      }),
    );
    if (failed !== undefined) throw this.#writeError(failed, '(all)', 'clear');
  }

  // ---------------------------------------------------------------- replay

  #recovered(slot: TierSlot): void {
    if (!slot.tier.persistent) {
      // A cache tier that missed changes cannot tell which: it starts empty again.
      slot.replay.reset();
      this.track(slot.call(() => slot.tier.clear()));
    } else {
      this.track(this.replay(slot));
    }
    this.#listener.recovered(slot);
  }

  /**
   * Brings a recovered tier up to date: a pending clear first, then every held change, oldest
   * first, each under its key's lock. A change that fails stays held; the replay stops when the
   * tier is switched off again and resumes at its next recovery, or is tried again after a
   * probe interval when the tier stays in service.
   */
  async replay(slot: TierSlot): Promise<void> {
    if (slot.replaying) {
      // The tier went off and on again while this replay ran: changes held meanwhile are not in
      // its snapshot, so the running replay goes round once more.
      slot.replayRequested = true;
      return;
    }
    slot.replaying = true;
    let complete = true;
    try {
      do {
        slot.replayRequested = false;
        complete = await this.#replayOnce(slot);
      } while (complete && slot.replayRequested && !slot.degraded);
    } finally {
      slot.replaying = false;
    }
    if (!complete && !slot.degraded && !this.#closing) {
      const retry = this.clock.after(this.#settings.probeIntervalMs, () => {
        this.#timers.delete(retry);
        this.track(this.replay(slot));
      });
      this.#timers.add(retry);
    }
  }

  /** One pass over what `slot` holds; false when something stays held for a later pass. */
  async #replayOnce(slot: TierSlot): Promise<boolean> {
    if (slot.replay.clearFirst) {
      if ((await slot.call(() => slot.tier.clear())) === FAILED) return false;
      slot.replay.clearFirst = false;
    }
    let complete = true;
    for (const [key] of slot.replay.snapshot()) {
      if (slot.degraded) return false;
      const replayed = await this.#keyLock.run(key, () => this.#replayKey(slot, key));
      if (!replayed) complete = false;
    }
    if (slot.replay.overflowed && !slot.degraded) await this.#reconcile(slot);
    return complete && !slot.degraded;
  }

  async #replayKey(slot: TierSlot, key: string): Promise<boolean> {
    const change: HeldChange | undefined = slot.replay.get(key);
    if (change === undefined) return true;
    const { tier } = slot;
    const result = await slot.call(async (): Promise<unknown> => {
      if (change.kind === 'set') return tier.set(change.entry);
      if (change.kind === 'delete') return tier.delete(key);
      return tier.update(key, change.patch);
    });
    if (result === FAILED) return false;
    slot.replay.settle(key, change);
    return true;
  }

  /**
   * After an overflow, the writes the log could not keep are copied from the faster tiers that
   * are in service. What the tier already holds is kept: nothing the outage did not touch is
   * lost. Writes only a switched-off tier had are lost for it, with a warning.
   */
  async #reconcile(slot: TierSlot): Promise<void> {
    const now = this.clock.now();
    const sources = this.slots.filter((other) => other.level < slot.level && other.available(now));
    this.logger.warn(
      `tier "${slot.tier.name}" missed more than ${slot.replay.limit} writes while switched off; copying what ${sources.map((other) => `"${other.tier.name}"`).join(', ') || 'no faster tier'} holds into it`,
    );
    for (const source of sources) {
      for await (const entry of source.tier.entries()) {
        if (slot.degraded) return;
        await this.#keyLock.run(entry.key, async () => {
          if (slot.replay.get(entry.key)?.kind === 'delete') return;
          if (slot.tier.persistent && this.#settings.keyring !== undefined) {
            entry.username?.seal(this.#settings.keyring);
            entry.password?.seal(this.#settings.keyring);
          }
          await slot.call(() => slot.tier.set(entry));
        });
      }
    }
    slot.replay.reconciled();
  }

  // ---------------------------------------------------------------- coherence

  #startCoherence(): void {
    if (this.l1 === undefined) return;
    for (const slot of this.#persistentSlots) {
      if (slot.tier.readChanges !== undefined) this.#buses.push(new TierChangeFeed(slot.tier));
    }
    if (this.#settings.bus !== undefined) this.#buses.push(this.#settings.bus);
    if (this.#buses.length === 0) return;
    const onMessage = (message: BusMessage) => {
      this.#dropChanged(message);
    };
    for (const bus of this.#buses) this.#unsubscribe.push(bus.subscribe(onMessage));
    // The first poll sets each feed's starting point.
    this.checkCoherence(this.clock.now());
  }

  /** Reads the change feeds now and drops what other processes changed from L1. */
  checkCoherence(now: number): void {
    this.nextCoherenceCheck = now + this.#settings.coherenceMs;
    for (const bus of this.#buses) {
      try {
        bus.poll();
      } catch (error) {
        // Better to serve a possibly stale L1 than nothing: the next poll tries again.
        this.logger.debug(`reading the ${bus.name} failed: ${describeError(error)}`);
      }
    }
  }

  #dropChanged(message: BusMessage): void {
    const l1 = this.l1;
    if (l1 === undefined) return;
    const { tier } = l1;
    if (message.kind === 'flush') {
      this.track(l1.call(() => tier.clear()));
      return;
    }
    for (const key of message.keys) tier.deleteSync?.(key);
  }

  // ---------------------------------------------------------------- recency and demotion

  /** Passes the uses L1 served since the last flush to the tiers that keep recency. */
  async flushRecency(): Promise<void> {
    const served = this.touched;
    // The window moves on even when nothing was served: the next hit of an entry used before
    // now is the first of the new window.
    this.touchEpoch = this.clock.now();
    if (served.length === 0) return;
    this.touched = [];
    const accesses: EntryAccess[] = served.map((entry) => ({
      key: entry.key,
      lastAccessed: entry.lastAccessed,
      accessCount: entry.accessCount,
    }));
    const now = this.clock.now();
    await Promise.all(
      this.#touchTargets.map(async (slot) => {
        if (!slot.available(now)) return;
        await slot.call(() => slot.tier.touch?.(accesses));
      }),
    );
  }

  /**
   * proxywhirl's demotion: an entry L1 pushed out stays in the slower tiers, flagged as out of
   * L1, with the access counts L1 gathered. It never re-creates an entry missing below (deleted
   * by another process, or not yet replayed there).
   */
  demote(key: string, entry: ProxyEntry): void {
    const patch: EntryPatch = {
      evictedFromL1: true,
      lastAccessed: entry.lastAccessed,
      accessCount: entry.accessCount,
    };
    const now = this.clock.now();
    for (const slower of this.slots.slice(1)) {
      if (!slower.available(now)) {
        if (slower.tier.persistent) slower.replay.holdPatch(key, patch);
        continue;
      }
      this.track(slower.call(() => slower.tier.update(key, patch)));
    }
  }

  // ---------------------------------------------------------------- plumbing

  #contextFor(slot: TierSlot): TierContext {
    return {
      cipher: this.#settings.keyring,
      healthPolicy: this.#settings.healthPolicy,
      clock: this.clock,
      logger: this.logger,
      onEvict: (key, reason, entry) => {
        this.#listener.evicted(slot, key, reason);
        if (reason === 'lru' && slot === this.l1 && this.slots.length > 1 && entry !== undefined) {
          slot.counters.demotions += 1;
          this.demote(key, entry);
        }
      },
    };
  }

  /** Keeps a promise of work the stack started on its own, so `flush` and `close` wait for it. */
  track(work: Promise<unknown>): void {
    this.#background.add(work);
    const done = () => {
      this.#background.delete(work);
    };
    work.then(done, done);
  }

  /** Resolves once the work the stack started on its own has finished. */
  async flush(): Promise<void> {
    await this.flushRecency();
    while (this.#background.size > 0) {
      await Promise.allSettled([...this.#background]);
    }
  }

  /** Stops the timers and feeds, waits for background work, and closes every tier. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#recencyTimer?.cancel();
    this.#recencyTimer = undefined;
    for (const timer of this.#timers) timer.cancel();
    this.#timers.clear();
    this.nextCoherenceCheck = Number.POSITIVE_INFINITY;
    await this.flush();
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    await Promise.allSettled(this.#buses.map((bus) => bus.close()));
    const results = await Promise.allSettled(this.slots.map((slot) => slot.tier.close()));
    for (const [index, result] of results.entries()) {
      if (result.status === 'rejected') {
        const name = this.slots[index]?.tier.name ?? '?';
        this.logger.warn(`closing tier "${name}" failed: ${describeError(result.reason)}`);
      }
    }
  }
}
