// The key directory: for every live key, where its newest record lies (shard, offset, length)
// and what expiry and LRU need (expiresAt, last-use stamp), in least-recently-used order.
//
// Written by hand rather than on lru-cache: the directory must be unbounded (maxEntries is
// optional), hold its numbers in typed arrays (a million keys cost ~40 bytes of numbers each, not
// an object each), and be walked and re-sorted by stamp when a store opens. lru-cache preallocates
// `max` slots and keeps one value object per key.

const NONE = -1;

/** Slot-indexed arrays of record positions, plus an intrusive doubly linked LRU list. */
export class KeyDir {
  readonly #map = new Map<string, number>();
  #keys: (string | undefined)[] = [];
  /** Shard index of each slot. */
  shard = new Uint8Array(0);
  /** Byte offset of the record's line in its shard file. */
  offset = new Float64Array(0);
  /** Byte length of the record's line, without its newline. */
  length = new Uint32Array(0);
  /** The record's `expiresAt`, epoch ms. */
  expiresAt = new Float64Array(0);
  /** Last use (read or write) as a stamp: epoch ms, strictly increasing within one process. */
  stamp = new Float64Array(0);
  /**
   * Uses a faster tier served since the record was written (`touch`), 0 when none: the latest
   * `lastAccessed` and the highest `accessCount` seen. A read returns them where they are ahead
   * of the record's own fields, so L1 hits do not cost a record rewrite each.
   */
  accessedAt = new Float64Array(0);
  accessCount = new Float64Array(0);
  #prev = new Int32Array(0);
  #next = new Int32Array(0);
  /** 1 while the slot's stamp is newer than what is persisted (hint file or access log). */
  #dirty = new Uint8Array(0);
  #dirtyCount = 0;
  #capacity = 0;
  #top = 0;
  readonly #free: number[] = [];
  #head = NONE;
  #tail = NONE;
  /** Length of the record `put` replaced, or -1 when the key was new. */
  replacedLength = -1;
  readonly #perShard = new Int32Array(256);

  constructor(initialCapacity = 1024) {
    this.#grow(initialCapacity);
  }

  get size(): number {
    return this.#map.size;
  }

  get dirtyCount(): number {
    return this.#dirtyCount;
  }

  /** Number of live keys whose records are in `shard`. */
  countOf(shard: number): number {
    return this.#perShard[shard] as number;
  }

  /** The slot of `key`, or -1. */
  slotOf(key: string): number {
    return this.#map.get(key) ?? NONE;
  }

  keyOf(slot: number): string {
    return this.#keys[slot] as string;
  }

  /**
   * Records that `key`'s newest record is at (`shard`, `offset`, `length`). With `touch`, `stamp`
   * becomes its last use and it moves to the most recent end; without, an existing key keeps its
   * place and the later of the two stamps. A new key always joins at the most recent end.
   * Returns the slot; `replacedLength` tells the length of the record it superseded.
   */
  put(
    key: string,
    shard: number,
    offset: number,
    length: number,
    expiresAt: number,
    stamp: number,
    touch: boolean,
  ): number {
    let slot = this.#map.get(key);
    if (slot === undefined) {
      slot = this.#allocate();
      this.#map.set(key, slot);
      this.#keys[slot] = key;
      this.replacedLength = -1;
      this.stamp[slot] = stamp;
      this.#link(slot);
      this.#perShard[shard] = (this.#perShard[shard] as number) + 1;
    } else {
      this.replacedLength = this.length[slot] as number;
      if (touch) {
        this.stamp[slot] = stamp;
        this.#unlink(slot);
        this.#link(slot);
      } else if (stamp > (this.stamp[slot] as number)) {
        this.stamp[slot] = stamp;
      }
    }
    this.shard[slot] = shard;
    this.offset[slot] = offset;
    this.length[slot] = length;
    this.expiresAt[slot] = expiresAt;
    return slot;
  }

  /** Forgets `key`; returns its former slot (its fields stay readable until reused) or -1. */
  remove(key: string): number {
    const slot = this.#map.get(key);
    if (slot === undefined) return NONE;
    this.#map.delete(key);
    this.#unlink(slot);
    const shard = this.shard[slot] as number;
    this.#perShard[shard] = (this.#perShard[shard] as number) - 1;
    this.#keys[slot] = undefined;
    this.setDirty(slot, false);
    this.clearAccess(slot);
    this.#free.push(slot);
    return slot;
  }

  /** A use of `slot` at `stamp`: it becomes the most recently used. */
  touch(slot: number, stamp: number): void {
    this.stamp[slot] = stamp;
    if (this.#tail !== slot) {
      this.#unlink(slot);
      this.#link(slot);
    }
    this.setDirty(slot, true);
  }

  /** Records a use a faster tier served; only later times and higher counts are kept. True if either moved. */
  noteAccess(slot: number, lastAccessed: number, accessCount: number): boolean {
    let moved = false;
    if (lastAccessed > (this.accessedAt[slot] as number)) {
      this.accessedAt[slot] = lastAccessed;
      moved = true;
    }
    if (accessCount > (this.accessCount[slot] as number)) {
      this.accessCount[slot] = accessCount;
      moved = true;
    }
    return moved;
  }

  /** Forgets the noted uses (the slot's record now carries them, or the slot is free). */
  clearAccess(slot: number): void {
    this.accessedAt[slot] = 0;
    this.accessCount[slot] = 0;
  }

  isDirty(slot: number): boolean {
    return this.#dirty[slot] === 1;
  }

  setDirty(slot: number, dirty: boolean): void {
    const was = this.#dirty[slot] === 1;
    if (was === dirty) return;
    this.#dirty[slot] = dirty ? 1 : 0;
    this.#dirtyCount += dirty ? 1 : -1;
  }

  /** The least recently used slot, or -1 when empty. */
  get head(): number {
    return this.#head;
  }

  /** The slot used just after `slot`, or -1. */
  nextOf(slot: number): number {
    return this.#next[slot] as number;
  }

  /** Every live slot, least recently used first. */
  *slots(): IterableIterator<number> {
    for (let slot = this.#head; slot !== NONE; slot = this.#next[slot] as number) yield slot;
  }

  /** Live slots of one shard, least recently used first. */
  slotsOfShard(shard: number): number[] {
    const found: number[] = [];
    for (let slot = this.#head; slot !== NONE; slot = this.#next[slot] as number) {
      if (this.shard[slot] === shard) found.push(slot);
    }
    return found;
  }

  /** Keys of every live slot, least recently used first. */
  keys(): string[] {
    const keys: string[] = new Array<string>(this.#map.size);
    let i = 0;
    for (let slot = this.#head; slot !== NONE; slot = this.#next[slot] as number) {
      keys[i] = this.#keys[slot] as string;
      i += 1;
    }
    return keys;
  }

  /**
   * Re-links the LRU list in stamp order (oldest first), keeping the current order between equal
   * stamps. Used once per open, after hint files, scans and the access log set the stamps; the
   * sort is adaptive, so input already in runs (one per hint file) costs little more than a pass.
   */
  sortByStamp(): void {
    const order: number[] = [...this.slots()];
    const stamps = this.stamp;
    order.sort((a, b) => (stamps[a] as number) - (stamps[b] as number));
    this.#head = NONE;
    this.#tail = NONE;
    for (const slot of order) this.#link(slot);
  }

  #link(slot: number): void {
    this.#prev[slot] = this.#tail;
    this.#next[slot] = NONE;
    if (this.#tail === NONE) this.#head = slot;
    else this.#next[this.#tail] = slot;
    this.#tail = slot;
  }

  #unlink(slot: number): void {
    const prev = this.#prev[slot] as number;
    const next = this.#next[slot] as number;
    if (prev === NONE) this.#head = next;
    else this.#next[prev] = next;
    if (next === NONE) this.#tail = prev;
    else this.#prev[next] = prev;
  }

  #allocate(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    if (this.#top === this.#capacity) this.#grow(this.#capacity * 2);
    const slot = this.#top;
    this.#top += 1;
    return slot;
  }

  #grow(capacity: number): void {
    const grow = <T extends Uint8Array | Uint32Array | Int32Array | Float64Array>(
      old: T,
      make: new (size: number) => T,
    ): T => {
      const made = new make(capacity);
      made.set(old);
      return made;
    };
    this.shard = grow(this.shard, Uint8Array);
    this.offset = grow(this.offset, Float64Array);
    this.length = grow(this.length, Uint32Array);
    this.expiresAt = grow(this.expiresAt, Float64Array);
    this.stamp = grow(this.stamp, Float64Array);
    this.accessedAt = grow(this.accessedAt, Float64Array);
    this.accessCount = grow(this.accessCount, Float64Array);
    this.#prev = grow(this.#prev, Int32Array);
    this.#next = grow(this.#next, Int32Array);
    this.#dirty = grow(this.#dirty, Uint8Array);
    this.#capacity = capacity;
  }
}
