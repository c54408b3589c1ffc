// JsonlTier: a Bitcask-style log-structured tier over proxywhirl's JSONL shard files. Records are
// appended (deletes as tombstones); an in-memory key directory maps each key to its newest
// record, so a read is one positioned read and one parse. Compaction rewrites a shard's live
// records and leaves a hint file for fast opening. Lock files keep several processes from
// interleaving appends; each process catches up on the others' appends before it reads.
// See docs/jsonl.md for the format and the locking scheme.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ClosedError, ProxyTierError, TierError } from '../../errors.js';
import type { ProxyEntry } from '../../record/entry.js';
import type { Secret, TokenCipher } from '../../record/secret.js';
import type {
  EntryAccess,
  EntryChange,
  EntryPatch,
  Tier,
  TierChanges,
  TierContext,
} from '../tier.js';
import { ACCESS_FILE, ACCESS_LOCK, encodeAccess, readAccess } from './access-log.js';
import { ChangeFeed } from './change-feed.js';
import {
  checkLine,
  encodeRecord,
  entryFromRecord,
  MOVED_LINE,
  parseLine,
  recordBound,
  SHARD_COUNT,
  shardFileName,
  shardOf,
  tombstoneBound,
  writeRecord,
  writeTombstone,
  type ScannedLine,
} from './codec.js';
import { copyRecords, type CompactionReport } from './compaction.js';
import { encodeHint, readHint, tailCrc } from './hint.js';
import { KeyDir } from './keydir.js';
import type { KeyCheck } from '../../crypto/key-check.js';
import { describeError } from '../../describe-error.js';
import { FileLock, removeStaleAsides } from '../../file-lock.js';
import { readKeyCheckFiles, writeKeyCheckFile } from './key-checks.js';
import { fsyncDir, LogFile, readAt, scanRange, writeAll } from './log.js';
import {
  resolveJsonlOptions,
  type JsonlTierOptions,
  type ResolvedJsonlOptions,
} from './options.js';

export type { CompactionReport } from './compaction.js';
export { JSONL_DEFAULTS, type JsonlDurability, type JsonlTierOptions } from './options.js';

/** Counters of a `JsonlTier`, for monitoring and tests. */
export interface JsonlTierStats {
  /** Live entries. */
  entries: number;
  /** Bytes of the shard files that have been indexed. */
  fileBytes: number;
  /** Bytes of superseded records, tombstones and damaged lines (what compaction reclaims). */
  deadBytes: number;
  /** Damaged records skipped (bad checksum, unparseable), with or without a recoverable key. */
  corruptRecords: number;
  /** Damaged records whose key could not be recovered (so no `corruption` eviction was reported). */
  unattributedCorruptRecords: number;
  /** Incomplete last lines (a write cut short by a crash) cut off. */
  tornTails: number;
  /** Shards compacted since open. */
  compactions: number;
  /** Records without a checksum or with plaintext credentials (proxywhirl's), until compacted. */
  legacyRecords: number;
  /** Shard files indexed from a current hint file instead of a full scan (at open or after another process compacted). */
  hintLoads: number;
}

const SET = 0;
const DEL = 1;

/** One append waiting for its shard's next write. */
interface Op {
  kind: typeof SET | typeof DEL;
  key: string;
  /** Where its line is in the shard's pending buffer, and its length without the newline. */
  start: number;
  length: number;
  expiresAt: number;
  stamp: number;
  done: ((error: unknown) => void) | undefined;
  settled: boolean;
  after: (() => void)[] | undefined;
}

interface Shard {
  readonly index: number;
  readonly path: string;
  readonly hintPath: string;
  readonly lock: FileLock;
  file: LogFile | undefined;
  /** Offset just past the last complete line indexed. */
  end: number;
  /** File size at the last look (more than `end` while a partial line is at the end). */
  seenSize: number;
  /** Bytes of live records (with their newlines). */
  live: number;
  legacy: number;
  /** Bytes covered by a current hint file (0 if none). */
  hintSize: number;
  /** The last line read was a compaction's marker: check the path until the file is replaced. */
  moving: boolean;
  /** When the path was last checked for a replaced file (performance.now()). */
  pathCheckedAt: number;
  pending: Op[];
  /** The pending ops' lines, encoded when they were queued, written out in one append. */
  buffer: Buffer;
  filled: number;
  lastOp: Op | undefined;
  flushQueued: boolean;
  /** Waiting for the lock to write `pending`. */
  flushing: boolean;
  flushTask: () => void;
  /** Holders that keep the lock beyond the write lease (compaction, clear). */
  pins: number;
  leaseSince: number;
  /** The lock's `acquisitions` when this process last caught up under it (`#catchUpUnderLease`). */
  caughtUpLease: number;
  lastSignalCheck: number;
  cooldownUntil: number;
  releaseQueued: boolean;
  compactQueued: boolean;
  /** Serialises compaction and clear of this shard. */
  exclusive: Promise<unknown>;
}

/** Where a scan puts what it finds: the key directory itself, or a temporary index. */
interface IndexTarget {
  /** Returns the length of the record it replaced, or -1. */
  put(key: string, offset: number, length: number, expiresAt: number, stamp: number): number;
  /** Returns the length of the record it removed, or -1. */
  remove(key: string): number;
}

/** A shard's index built aside, then reconciled into the key directory (after another process compacted). */
class TempIndex implements IndexTarget {
  readonly map = new Map<string, number>();
  readonly offset: number[] = [];
  readonly length: number[] = [];
  readonly expiresAt: number[] = [];
  readonly stamp: number[] = [];

  put(key: string, offset: number, length: number, expiresAt: number, stamp: number): number {
    const at = this.map.get(key);
    if (at === undefined) {
      this.map.set(key, this.offset.length);
      this.offset.push(offset);
      this.length.push(length);
      this.expiresAt.push(expiresAt);
      this.stamp.push(stamp);
      return -1;
    }
    const replaced = this.length[at] as number;
    this.offset[at] = offset;
    this.length[at] = length;
    this.expiresAt[at] = expiresAt;
    if (stamp > (this.stamp[at] as number)) this.stamp[at] = stamp;
    return replaced;
  }

  remove(key: string): number {
    const at = this.map.get(key);
    if (at === undefined) return -1;
    this.map.delete(key);
    return this.length[at] as number;
  }
}

/** Later stamps within one millisecond: keeps LRU order exact under a coarse or frozen clock. */
const STAMP_STEP = 2 ** -10;
/** A waiting process gets the lock after at most this long of a busy holder's lease. */
const COOLDOWN_MS = 6;
/** The longest a process keeps a write lease while others may want the lock. */
const LEASE_MAX_MS = 1_000;
/** Access stamps waiting to be persisted before the access-order file is appended to. */
const ACCESS_FLUSH_AT = 100_000;
const HEARTBEAT_MS = 1_000;
/** Readers check the shard's path (for a file replaced without a marker) at least this often. */
const PATH_CHECK_MS = 1_000;
/** Initial (and, after a large batch, restored) size of a shard's pending buffer. */
const PENDING_BUFFER = 64 * 1024;

const noop = (): void => {};
const MOVED_BYTES = Buffer.from(`${MOVED_LINE}\n`, 'latin1');

/**
 * L2 on disk in pure JavaScript: proxywhirl's JSONL shard files, append-only with an in-memory key
 * directory, checksums, compaction with hint files, and lock files for several processes.
 *
 * @example
 * const cache = await ProxyCache.open({
 *   tiers: [new MemoryTier({ maxEntries: 10_000 }), new JsonlTier({ dir: '/var/cache/proxies' })],
 * });
 */
export class JsonlTier implements Tier {
  readonly name: string;
  readonly persistent = true;
  readonly timeoutMs = undefined;
  readonly #options: ResolvedJsonlOptions;
  #keydir = new KeyDir();
  #shards: Shard[] = [];
  readonly #pendingByKey = new Map<string, Op>();
  readonly #background = new Set<Promise<unknown>>();
  readonly #accessLock: FileLock;
  readonly #feed = new ChangeFeed();
  #context: TierContext | undefined;
  #state: 'new' | 'opening' | 'open' | 'closing' | 'closed' = 'new';
  #closing: Promise<void> | undefined;
  #lastStamp = Number.NEGATIVE_INFINITY;
  #readBuffer = Buffer.allocUnsafe(4096);
  readonly #probe = Buffer.allocUnsafe(1);
  #accessFlushQueued = false;
  readonly #counters = {
    corrupt: 0,
    unattributed: 0,
    tornTails: 0,
    compactions: 0,
    hintLoads: 0,
  };

  constructor(options: JsonlTierOptions) {
    this.#options = resolveJsonlOptions(options);
    this.name = this.#options.name;
    const { dir, lockTimeoutMs } = this.#options;
    this.#accessLock = new FileLock(join(dir, ACCESS_LOCK), this.name, lockTimeoutMs);
    this.#shards = this.#makeShards();
  }

  /** Fresh per-shard state (at construction, and again after an open that failed). */
  #makeShards(): Shard[] {
    const { dir, lockTimeoutMs } = this.#options;
    const shards: Shard[] = [];
    for (let index = 0; index < SHARD_COUNT; index += 1) {
      const path = join(dir, shardFileName(index));
      const shard: Shard = {
        index,
        path,
        hintPath: path.replace(/\.jsonl$/, '.hint'),
        lock: new FileLock(path.replace(/\.jsonl$/, '.lock'), this.name, lockTimeoutMs),
        file: undefined,
        end: 0,
        seenSize: 0,
        live: 0,
        legacy: 0,
        hintSize: 0,
        moving: false,
        pathCheckedAt: 0,
        pending: [],
        buffer: Buffer.allocUnsafe(PENDING_BUFFER),
        filled: 0,
        lastOp: undefined,
        flushQueued: false,
        flushing: false,
        flushTask: () => {
          shard.flushQueued = false;
          this.#flush(shard);
        },
        pins: 0,
        leaseSince: 0,
        caughtUpLease: 0,
        lastSignalCheck: 0,
        cooldownUntil: 0,
        releaseQueued: false,
        compactQueued: false,
        exclusive: Promise.resolve(),
      };
      shards.push(shard);
    }
    return shards;
  }

  /** The directory of the shard files. */
  get dir(): string {
    return this.#options.dir;
  }

  /** The most entries kept, if bounded. */
  get maxEntries(): number | undefined {
    return this.#options.maxEntries;
  }

  // ------------------------------------------------------------------ open and close

  async open(context: TierContext): Promise<void> {
    if (this.#state !== 'new')
      throw new TierError(this.name, `the ${this.name} tier was already opened`);
    this.#state = 'opening';
    this.#context = context;
    const { dir } = this.#options;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      removeStaleAsides(dir, fs.readdirSync(dir));
      for (const shard of this.#shards) await this.#openShard(shard);
      readAccess(join(dir, ACCESS_FILE), (key, stamp, accessedAt, accessCount) => {
        const keydir = this.#keydir;
        const slot = keydir.slotOf(key);
        if (slot < 0) return;
        if (stamp > (keydir.stamp[slot] as number)) keydir.stamp[slot] = stamp;
        keydir.noteAccess(slot, accessedAt, accessCount);
      });
      // LRU order matters for eviction only; each shard's order and every stamp are persisted
      // (hint files, access log) whether or not the list is sorted.
      if (this.#options.maxEntries !== undefined) this.#keydir.sortByStamp();
      const newest = this.#keydir.head === -1 ? -1 : this.#lastSlotStamp();
      this.#lastStamp = Math.max(this.#lastStamp, newest);
      if (this.#options.durability === 'full') fsyncDir(dir);
    } catch (error) {
      // Hold nothing open, and start from scratch: the stack may simply call open() again later.
      for (const shard of this.#shards) {
        shard.lock.release();
        shard.file?.close();
      }
      this.#shards = this.#makeShards();
      this.#keydir = new KeyDir();
      this.#lastStamp = Number.NEGATIVE_INFINITY;
      this.#state = 'new';
      throw this.#wrap(error, `cannot open the store in ${dir}`);
    }
    this.#state = 'open';
    this.#enforceMaxEntries();
  }

  #lastSlotStamp(): number {
    let newest = Number.NEGATIVE_INFINITY;
    const { stamp } = this.#keydir;
    for (const slot of this.#keydir.slots()) {
      const value = stamp[slot] as number;
      if (value > newest) newest = value;
    }
    return newest;
  }

  async #openShard(shard: Shard): Promise<void> {
    await shard.lock.acquire();
    try {
      // Leftovers of a compaction or clear that was interrupted: nobody else writes them while
      // this process holds the shard's lock.
      fs.rmSync(`${shard.path}.compacting`, { force: true });
      fs.rmSync(`${shard.hintPath}.tmp`, { force: true });
      shard.file = LogFile.open(shard.path);
      this.#indexFile(shard, shard.file, this.#directTarget(shard));
      this.#cutPartialTail(shard);
    } finally {
      shard.lock.release();
    }
  }

  /** Flushes pending writes, finishes compactions, saves access order and closes. Idempotent. */
  close(): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'closed';
      return Promise.resolve();
    }
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#state = 'closing';
    try {
      await this.#drain();
      while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
      await this.#drain();
      await this.#flushAccessOrder().catch((error: unknown) => {
        this.#logger()?.warn(
          `${this.name}: could not save the access order: ${describeError(error)}`,
        );
      });
    } finally {
      for (const shard of this.#shards) {
        shard.lock.release();
        shard.file?.close();
        shard.file = undefined;
      }
      this.#state = 'closed';
    }
  }

  // ------------------------------------------------------------------ reads

  getSync(key: string): ProxyEntry | undefined {
    return this.#lookup(key, true, true);
  }

  async get(key: string): Promise<ProxyEntry | undefined> {
    return this.#lookup(key, true, true);
  }

  peekSync(key: string): ProxyEntry | undefined {
    return this.#lookup(key, false, true);
  }

  hasSync(key: string): boolean {
    this.#assertOpen();
    const op = this.#pendingByKey.get(key);
    if (op !== undefined) return op.kind === SET;
    this.#refresh(this.#shardOfKey(key));
    return this.#keydir.slotOf(key) >= 0;
  }

  async has(key: string): Promise<boolean> {
    return this.hasSync(key);
  }

  async size(): Promise<number> {
    this.#assertOpen();
    await this.#drain();
    this.#refreshAll();
    return this.#keydir.size;
  }

  async *keys(): AsyncIterable<string> {
    this.#assertOpen();
    await this.#drain();
    this.#refreshAll();
    // A snapshot, so deletes made while the caller iterates cannot skip keys.
    yield* this.#keydir.keys();
  }

  async *entries(): AsyncIterable<ProxyEntry> {
    this.#assertOpen();
    await this.#drain();
    this.#refreshAll();
    for (const key of this.#keydir.keys()) {
      if (this.#state !== 'open') return;
      const entry = this.#lookup(key, false, false);
      if (entry !== undefined) yield entry;
    }
  }

  /** Counters: entries, bytes, dead bytes, damaged records found, compactions. */
  stats(): JsonlTierStats {
    let fileBytes = 0;
    let live = 0;
    let legacy = 0;
    for (const shard of this.#shards) {
      fileBytes += shard.end;
      live += shard.live;
      legacy += shard.legacy;
    }
    return {
      entries: this.#keydir.size,
      fileBytes,
      deadBytes: fileBytes - live,
      corruptRecords: this.#counters.corrupt,
      unattributedCorruptRecords: this.#counters.unattributed,
      tornTails: this.#counters.tornTails,
      compactions: this.#counters.compactions,
      legacyRecords: legacy,
      hintLoads: this.#counters.hintLoads,
    };
  }

  #lookup(key: string, touch: boolean, refresh: boolean): ProxyEntry | undefined {
    this.#assertOpen();
    const op = this.#pendingByKey.get(key);
    if (op !== undefined) return op.kind === SET ? this.#decodePending(op) : undefined;
    const keydir = this.#keydir;
    let slot = keydir.slotOf(key);
    const shard =
      slot >= 0 ? (this.#shards[keydir.shard[slot] as number] as Shard) : this.#shardOfKey(key);
    if (refresh && this.#refresh(shard)) slot = keydir.slotOf(key);
    if (slot < 0) return undefined;
    const entry = this.#readSlot(shard, slot, key);
    if (entry !== undefined && touch) {
      keydir.touch(slot, this.#nextStamp());
      if (keydir.dirtyCount >= ACCESS_FLUSH_AT) this.#queueAccessFlush();
    }
    return entry;
  }

  #readSlot(shard: Shard, slot: number, key: string): ProxyEntry | undefined {
    const keydir = this.#keydir;
    const length = keydir.length[slot] as number;
    const offset = keydir.offset[slot] as number;
    if (this.#readBuffer.length < length) this.#readBuffer = Buffer.allocUnsafe(length * 2);
    const buf = this.#readBuffer;
    let read: number;
    try {
      read = fs.readSync((shard.file as LogFile).fd, buf, 0, length, offset);
    } catch (error) {
      throw this.#wrap(error, `cannot read ${shard.path}`);
    }
    const check = read === length ? checkLine(buf, 0, length) : 'bad';
    if (check === 'bad') {
      this.#damagedRecord(shard, key, offset, 'checksum mismatch');
      return undefined;
    }
    try {
      const text = buf.toString('utf8', 0, length);
      const entry = entryFromRecord(parseLine(text), this.#cipher(), check === 'ok');
      if (entry.key === key) {
        // Uses a faster tier reported (touch) after the record was written.
        const accessedAt = keydir.accessedAt[slot] as number;
        if (accessedAt > entry.lastAccessed) {
          entry.lastAccessed = accessedAt;
          entry.accessCount = Math.max(entry.accessCount, keydir.accessCount[slot] as number);
        }
        return entry;
      }
    } catch {
      // Falls through: an unchecked (proxywhirl) line that no longer parses.
    }
    this.#damagedRecord(shard, key, offset, 'not a valid record');
    return undefined;
  }

  #decodePending(op: Op): ProxyEntry | undefined {
    const shard = this.#shardOfKey(op.key);
    const text = shard.buffer.toString('latin1', op.start, op.start + op.length);
    const entry = entryFromRecord(parseLine(text), this.#cipher());
    return entry.key === op.key ? entry : undefined;
  }

  /** Room for `bytes` more in the shard's pending buffer; returns where they go. */
  #reserve(shard: Shard, bytes: number): number {
    if (shard.filled + bytes > shard.buffer.length) {
      const bigger = Buffer.allocUnsafe(Math.max(shard.buffer.length * 2, shard.filled + bytes));
      shard.buffer.copy(bigger, 0, 0, shard.filled);
      shard.buffer = bigger;
    }
    return shard.filled;
  }

  // ------------------------------------------------------------------ writes

  set(entry: ProxyEntry): Promise<void> {
    try {
      this.#assertOpen();
      const username = this.#token(entry.username, 'username', entry.key);
      const password = this.#token(entry.password, 'password', entry.key);
      // A stored key's shard is in the key directory: no need to hash it again.
      const slot = this.#keydir.slotOf(entry.key);
      const shard =
        slot >= 0
          ? (this.#shards[this.#keydir.shard[slot] as number] as Shard)
          : this.#shardOfKey(entry.key);
      return this.#append(shard, entry, username, password);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Queues `entry`'s record for the shard's next append; resolves once it is written. Encoded
   * now, straight into the pending buffer: the entry as it is at this call. A write is a use of
   * the key (it becomes the most recently used, so the LRU bound never evicts it first).
   */
  #append(
    shard: Shard,
    entry: ProxyEntry,
    username: string | undefined,
    password: string | undefined,
  ): Promise<void> {
    const start = this.#reserve(shard, recordBound(entry, username, password));
    const end = writeRecord(shard.buffer, start, entry, username, password);
    shard.filled = end;
    return new Promise<void>((resolve, reject) => {
      this.#enqueue(shard, {
        kind: SET,
        key: entry.key,
        start,
        length: end - start - 1,
        expiresAt: entry.expiresAt,
        stamp: this.#nextStamp(),
        done: (error) => (error === undefined ? resolve() : reject(error)),
        settled: false,
        after: undefined,
      });
    });
  }

  /** A `modify` whose change is `patch`: atomic too, so it never recreates a key another process deleted. */
  async update(key: string, patch: EntryPatch): Promise<boolean> {
    return (await this.modify(key, () => patch)) !== undefined;
  }

  /**
   * Atomic read-modify-write. Takes the shard's lock first (waiting asynchronously, like a write,
   * up to `lockTimeoutMs`); taking it catches up with the other processes' appends, and while it
   * is held nobody else appends. From there to queueing the new record everything is synchronous,
   * so no other call of this process interleaves either; the record then goes out in the shard's
   * next append, still under the lock (a lease is never given up while a write of this process
   * waits for it). A write of this process still pending is the current state.
   */
  async modify(key: string, change: EntryChange): Promise<ProxyEntry | undefined> {
    this.#assertOpen();
    const shard = this.#shardOfKey(key);
    try {
      // The lease may be handed over again before a continuation runs: then wait once more.
      while (!this.#tryLock(shard)) {
        await this.#lockAsync(shard);
        this.#assertOpen();
      }
    } catch (error) {
      throw this.#wrap(error, `cannot lock ${shard.lock.path}`);
    }
    const pending = this.#pendingByKey.get(key);
    let current: ProxyEntry | undefined;
    if (pending !== undefined) {
      current = pending.kind === SET ? this.#decodePending(pending) : undefined;
    } else {
      const slot = this.#keydir.slotOf(key);
      current = slot < 0 ? undefined : this.#readSlot(shard, slot, key);
    }
    if (current === undefined) return undefined;
    const patch = change(current);
    if (patch === undefined) return current;
    const next: ProxyEntry = { ...current, ...patch };
    await this.#append(
      shard,
      next,
      this.#migratedToken(next.username, 'username', key),
      this.#migratedToken(next.password, 'password', key),
    );
    return next;
  }

  /**
   * Uses that a faster tier served (L1 hits): noted in the key directory, not written to the
   * shard files. A read returns them where they are later than the record's own `lastAccessed`,
   * the LRU order takes them in, and `access.jsonl` keeps them across a restart. Keys this process
   * does not hold, or is writing right now (the write is the newer use), are skipped.
   */
  async touch(accesses: readonly EntryAccess[]): Promise<void> {
    this.#assertOpen();
    const keydir = this.#keydir;
    // Oldest first, so the LRU list ends in the order of the uses.
    const ordered = [...accesses].sort((a, b) => a.lastAccessed - b.lastAccessed);
    for (const { key, lastAccessed, accessCount } of ordered) {
      if (!Number.isFinite(lastAccessed) || this.#pendingByKey.has(key)) continue;
      const slot = keydir.slotOf(key);
      if (slot < 0 || !keydir.noteAccess(slot, lastAccessed, accessCount)) continue;
      if (lastAccessed > (keydir.stamp[slot] as number)) {
        keydir.touch(slot, lastAccessed);
        if (lastAccessed > this.#lastStamp) this.#lastStamp = lastAccessed;
      } else keydir.setDirty(slot, true);
    }
    if (keydir.dirtyCount >= ACCESS_FLUSH_AT) this.#queueAccessFlush();
  }

  /** The key checks recorded in the directory (`key-check.<fingerprint>` files). */
  async keyChecks(): Promise<readonly KeyCheck[]> {
    this.#assertOpen();
    try {
      return readKeyCheckFiles(this.#options.dir);
    } catch (error) {
      throw this.#wrap(error, 'reading the key checks');
    }
  }

  /** Records a key check as its own file; an existing one for the fingerprint is kept. */
  async recordKeyCheck(check: KeyCheck): Promise<void> {
    this.#assertOpen();
    try {
      writeKeyCheckFile(this.#options.dir, check);
    } catch (error) {
      throw this.#wrap(error, 'recording a key check');
    }
  }

  /**
   * The change feed: keys whose records or tombstones other processes appended since the
   * previous call, as this process's catch-ups indexed them (before reads, writes, and here), or
   * 'flush' when one of their compactions or clears replaced a shard file. One `stat` per shard
   * whose lock this process does not hold; a shard whose size and inode are unchanged costs
   * nothing more.
   */
  readChanges(): TierChanges {
    this.#assertOpen();
    for (const shard of this.#shards) {
      // While this process holds the lock, caught up, nobody else can have appended.
      if (this.#holdsCaughtUpLease(shard) && !this.#endLongLease(shard)) continue;
      try {
        const st = fs.statSync(shard.path, { throwIfNoEntry: false });
        const file = shard.file as LogFile;
        if (st !== undefined && (st.ino !== file.ino || st.size !== shard.seenSize)) {
          shard.pathCheckedAt = performance.now();
          this.#catchUp(shard, false);
        }
      } catch (error) {
        throw this.#wrap(error, `cannot read ${shard.path}`);
      }
    }
    return this.#feed.take();
  }

  delete(key: string): Promise<boolean> {
    try {
      this.#assertOpen();
      const shard = this.#shardOfKey(key);
      const op = this.#pendingByKey.get(key);
      let existed: boolean;
      if (op !== undefined) existed = op.kind === SET;
      else {
        this.#refresh(shard);
        existed = this.#keydir.slotOf(key) >= 0;
      }
      if (!existed) return Promise.resolve(false);
      return new Promise<boolean>((resolve, reject) => {
        this.#tombstone(shard, key, (error) =>
          error === undefined ? resolve(true) : reject(error),
        );
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async deleteExpired(now: number): Promise<string[]> {
    this.#assertOpen();
    await this.#drain();
    this.#refreshAll();
    const keydir = this.#keydir;
    const expired: string[] = [];
    for (const slot of keydir.slots()) {
      if ((keydir.expiresAt[slot] as number) <= now) expired.push(keydir.keyOf(slot));
    }
    // All tombstones are queued in this tick: one append per shard.
    const written = expired.map(
      (key) =>
        new Promise<void>((resolve, reject) => {
          this.#tombstone(this.#shardOfKey(key), key, (error) =>
            error === undefined ? resolve() : reject(error),
          );
        }),
    );
    await Promise.all(written);
    return expired;
  }

  async clear(): Promise<number> {
    this.#assertOpen();
    await this.#drain();
    let removed = 0;
    for (const shard of this.#shards) {
      this.#assertOpen();
      removed += await this.#track(this.#exclusive(shard, () => this.#clearShard(shard)));
    }
    await this.#accessLock.acquire();
    try {
      fs.rmSync(join(this.#options.dir, ACCESS_FILE), { force: true });
    } finally {
      this.#accessLock.release();
    }
    return removed;
  }

  /** Compacts every shard that has dead bytes, proxywhirl records, or no current hint file. */
  async compact(): Promise<CompactionReport> {
    this.#assertOpen();
    await this.#drain();
    const report: CompactionReport = {
      shards: 0,
      records: 0,
      bytesBefore: 0,
      bytesAfter: 0,
      corrupt: 0,
      migrated: 0,
    };
    for (const shard of this.#shards) {
      if (this.#state !== 'open') break; // close() was called meanwhile: stop between shards
      this.#refresh(shard);
      if (shard.end === 0) continue;
      if (shard.end === shard.live && shard.legacy === 0 && shard.hintSize === shard.end) continue;
      const done = await this.#track(this.#exclusive(shard, () => this.#compactShard(shard)));
      if (done === undefined) continue;
      report.shards += 1;
      report.records += done.records;
      report.bytesBefore += done.bytesBefore;
      report.bytesAfter += done.bytesAfter;
      report.corrupt += done.corrupt;
      report.migrated += done.migrated;
    }
    return report;
  }

  #tombstone(shard: Shard, key: string, done: ((error: unknown) => void) | undefined): void {
    this.#forget(key);
    const start = this.#reserve(shard, tombstoneBound(key));
    const end = writeTombstone(shard.buffer, start, key);
    shard.filled = end;
    this.#enqueue(shard, {
      kind: DEL,
      key,
      start,
      length: end - start - 1,
      expiresAt: 0,
      stamp: 0,
      done,
      settled: false,
      after: undefined,
    });
  }

  /** Removes `key` from the key directory now (its tombstone follows), keeping byte counts right. */
  #forget(key: string): void {
    const keydir = this.#keydir;
    const slot = keydir.slotOf(key);
    if (slot < 0) return;
    const shard = this.#shards[keydir.shard[slot] as number] as Shard;
    shard.live -= (keydir.length[slot] as number) + 1;
    keydir.remove(key);
  }

  #enqueue(shard: Shard, op: Op): void {
    shard.pending.push(op);
    shard.lastOp = op;
    this.#pendingByKey.set(op.key, op);
    if (!shard.flushQueued) {
      shard.flushQueued = true;
      // Group commit: every write queued in this tick goes out in one append.
      queueMicrotask(shard.flushTask);
    }
  }

  #flush(shard: Shard): void {
    if (shard.flushing || shard.pending.length === 0) return;
    let locked: boolean;
    try {
      locked = this.#tryLock(shard);
    } catch (error) {
      this.#rejectPending(shard, this.#wrap(error, `cannot lock ${shard.lock.path}`));
      return;
    }
    if (locked) {
      this.#writeBatch(shard);
      return;
    }
    shard.flushing = true;
    this.#lockAsync(shard).then(
      () => {
        shard.flushing = false;
        this.#writeBatch(shard);
      },
      (error: unknown) => {
        shard.flushing = false;
        this.#rejectPending(shard, this.#wrap(error, `cannot lock ${shard.lock.path}`));
      },
    );
  }

  /** Appends every pending op of `shard` in one write. The caller holds the shard's lock. */
  #writeBatch(shard: Shard): void {
    const ops = shard.pending;
    if (ops.length === 0) return;
    shard.pending = [];
    const file = shard.file as LogFile;
    const bytes = shard.buffer.subarray(0, shard.filled);
    const base = shard.end;
    try {
      writeAll(file.fd, bytes);
    } catch (error) {
      // Leave no partial batch behind (we hold the lock, so the end is ours).
      try {
        fs.ftruncateSync(file.fd, base);
      } catch {
        // The next writer cuts a partial line off anyway.
      }
      this.#resetBuffer(shard);
      const wrapped = this.#wrap(error, `cannot append to ${shard.path}`);
      for (const op of ops) {
        if (this.#pendingByKey.get(op.key) === op) this.#pendingByKey.delete(op.key);
        this.#settle(op, wrapped);
      }
      this.#afterWrite(shard);
      return;
    }
    this.#resetBuffer(shard);
    const keydir = this.#keydir;
    for (const op of ops) {
      const { length } = op;
      if (op.kind === SET) {
        const slot = keydir.put(
          op.key,
          shard.index,
          base + op.start,
          length,
          op.expiresAt,
          op.stamp,
          true,
        );
        const replaced = keydir.replacedLength;
        shard.live += length + 1 - (replaced >= 0 ? replaced + 1 : 0);
        keydir.setDirty(slot, true);
        // The new record carries (a modify) or replaces (a set) the uses touch noted.
        keydir.clearAccess(slot);
      } else {
        this.#forget(op.key);
      }
      if (this.#pendingByKey.get(op.key) === op) this.#pendingByKey.delete(op.key);
    }
    shard.end = base + bytes.length;
    shard.seenSize = shard.end;
    if (this.#options.durability === 'full') {
      file.syncThen(
        ops.map((op) => (error: Error | null) => {
          this.#settle(
            op,
            error === null ? undefined : this.#wrap(error, `cannot flush ${shard.path}`),
          );
        }),
      );
    } else {
      for (const op of ops) this.#settle(op, undefined);
    }
    this.#enforceMaxEntries();
    this.#afterWrite(shard);
    this.#maybeCompact(shard);
  }

  #settle(op: Op, error: unknown): void {
    op.settled = true;
    if (op.done !== undefined) op.done(error);
    else if (error !== undefined) {
      this.#logger()?.warn(`${this.name}: a background write failed: ${describeError(error)}`);
    }
    if (op.after !== undefined) for (const wake of op.after) wake();
  }

  /** Empties the pending buffer (after its bytes were written, or failed to be). */
  #resetBuffer(shard: Shard): void {
    shard.filled = 0;
    if (shard.buffer.length > 16 * PENDING_BUFFER)
      shard.buffer = Buffer.allocUnsafe(PENDING_BUFFER);
  }

  #rejectPending(shard: Shard, error: ProxyTierError): void {
    const ops = shard.pending;
    shard.pending = [];
    this.#resetBuffer(shard);
    for (const op of ops) {
      if (this.#pendingByKey.get(op.key) === op) this.#pendingByKey.delete(op.key);
      this.#settle(op, error);
    }
  }

  /** Resolves once every op queued before the call has settled. */
  async #drain(): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const shard of this.#shards) {
      const op = shard.lastOp;
      if (op !== undefined && !op.settled) {
        waits.push(new Promise<void>((resolve) => (op.after ??= []).push(resolve)));
      }
    }
    if (waits.length > 0) await Promise.all(waits);
  }

  #enforceMaxEntries(): void {
    const max = this.#options.maxEntries;
    const keydir = this.#keydir;
    if (max === undefined || keydir.size <= max) return;
    let excess = keydir.size - max;
    let slot = keydir.head;
    while (excess > 0 && slot !== -1) {
      const next = keydir.nextOf(slot);
      const key = keydir.keyOf(slot);
      // A key with a write on its way is being used right now.
      if (!this.#pendingByKey.has(key)) {
        this.#tombstone(this.#shards[keydir.shard[slot] as number] as Shard, key, undefined);
        this.#context?.onEvict(key, 'lru', undefined);
        excess -= 1;
      }
      slot = next;
    }
  }

  // ------------------------------------------------------------------ locking

  /** Takes the shard's lock now if it is free; catches up with the file once per holding. */
  #tryLock(shard: Shard): boolean {
    if (!shard.lock.held) {
      if (performance.now() < shard.cooldownUntil) return false;
      if (!shard.lock.tryAcquire()) return false;
    }
    this.#catchUpUnderLease(shard);
    return true;
  }

  async #lockAsync(shard: Shard): Promise<void> {
    if (!shard.lock.held) {
      const wait = shard.cooldownUntil - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (!shard.lock.held) await shard.lock.acquire();
    }
    // Handed over again before this continuation ran: the caller tries once more.
    if (shard.lock.held) this.#catchUpUnderLease(shard);
  }

  /** True when this process holds the lock and has caught up under this holding. */
  #holdsCaughtUpLease(shard: Shard): boolean {
    return shard.lock.held && shard.caughtUpLease === shard.lock.acquisitions;
  }

  /**
   * Catches up once per holding of the lock, whoever in this process uses it first. The lock's
   * poll takes it in a timer, and the waiter that started the poll runs some microtasks later:
   * another caller of this process can find the lock held before then, and must not read the key
   * directory before the other processes' appends are in it (it would lose their increments).
   */
  #catchUpUnderLease(shard: Shard): void {
    if (this.#holdsCaughtUpLease(shard)) return;
    const now = performance.now();
    shard.leaseSince = now;
    shard.lastSignalCheck = now;
    try {
      this.#catchUp(shard, true);
    } catch (error) {
      shard.lock.release();
      throw error;
    }
    shard.caughtUpLease = shard.lock.acquisitions;
    this.#queueRelease(shard);
  }

  /**
   * The write lease: the lock stays held until the event loop turns (so a burst of writes pays
   * for one lock file, not one each), or sooner when another process says it is waiting.
   */
  #queueRelease(shard: Shard): void {
    if (shard.releaseQueued) return;
    shard.releaseQueued = true;
    setImmediate(() => {
      shard.releaseQueued = false;
      if (!shard.lock.held || shard.pins > 0) return;
      if (shard.pending.length > 0) this.#queueRelease(shard);
      else this.#release(shard);
    });
  }

  /**
   * Ends a lease held for LEASE_MAX_MS that nothing of this process needs now; true if the lock
   * is no longer held. A lease normally ends when the event loop turns (above), and a writer
   * hands it over after an append; this covers a process whose loop does not turn, such as one
   * running a long chain of promise continuations (a loop of awaited cache hits): its reads of
   * the shard and its change-feed polls end the lease. (A timer would not help there: timers run
   * only when the loop turns, and then the release above has already run.)
   */
  #endLongLease(shard: Shard): boolean {
    if (shard.pins > 0 || shard.pending.length > 0 || shard.flushing) return false;
    if (performance.now() - shard.leaseSince < LEASE_MAX_MS) return false;
    this.#release(shard);
    return true;
  }

  /** Gives the lock up; a failure to remove the lock file is logged, not thrown at a reader. */
  #release(shard: Shard): void {
    try {
      shard.lock.release();
    } catch (error) {
      this.#logger()?.warn(
        `${this.name}: could not remove ${shard.lock.path}: ${describeError(error)}`,
      );
    }
  }

  #afterWrite(shard: Shard): void {
    // Writes queued meanwhile (evictions' tombstones) go out under this lease first.
    if (shard.pins > 0 || !shard.lock.held || shard.pending.length > 0) return;
    const now = performance.now();
    if (now - shard.lastSignalCheck < 1) return;
    shard.lastSignalCheck = now;
    let waiting: boolean;
    try {
      waiting = shard.lock.waitersSignalled();
    } catch {
      waiting = true;
    }
    if (waiting) {
      // Hand over, and stay away long enough for the waiter's next poll to find the lock free.
      shard.lock.release();
      shard.cooldownUntil = now + COOLDOWN_MS;
    } else if (now - shard.leaseSince > LEASE_MAX_MS) {
      // A waiter whose signal got lost still finds a gap now and then.
      shard.lock.release();
    }
  }

  /** Holds the shard's lock beyond the write lease until `#unpin`. */
  async #pin(shard: Shard): Promise<void> {
    // Checked and pinned in one synchronous step: an append's hand-over cannot come between.
    while (!this.#tryLock(shard)) await this.#lockAsync(shard);
    shard.pins += 1;
  }

  #unpin(shard: Shard): void {
    shard.pins -= 1;
    if (shard.pins === 0) this.#queueRelease(shard);
  }

  /** Keeps `work` in the set `close()` waits for. */
  #track<T>(work: Promise<T>): Promise<T> {
    const settled = work.then(noop, noop);
    this.#background.add(settled);
    void settled.then(() => this.#background.delete(settled));
    return work;
  }

  #exclusive<T>(shard: Shard, run: () => Promise<T>): Promise<T> {
    const next = shard.exclusive.then(run);
    shard.exclusive = next.catch(noop);
    return next;
  }

  // ------------------------------------------------------------------ other processes

  #refreshAll(): void {
    for (const shard of this.#shards) this.#refresh(shard);
  }

  /**
   * Catches up with what other processes appended; true if the key directory changed. The usual
   * cost is one 1-byte read at the size last seen (nothing there: nothing new). The path itself is
   * checked when a compaction's marker says the file is being replaced, and at least once a second.
   */
  #refresh(shard: Shard): boolean {
    // Nobody else can write while we hold it (once caught up under this holding).
    if (this.#holdsCaughtUpLease(shard) && !this.#endLongLease(shard)) return false;
    try {
      const now = performance.now();
      if (!shard.moving && now - shard.pathCheckedAt < PATH_CHECK_MS) {
        const fd = (shard.file as LogFile).fd;
        if (fs.readSync(fd, this.#probe, 0, 1, shard.seenSize) === 0) return false;
      }
      shard.pathCheckedAt = now;
      return this.#catchUp(shard, false);
    } catch (error) {
      throw this.#wrap(error, `cannot read ${shard.path}`);
    }
  }

  #catchUp(shard: Shard, locked: boolean): boolean {
    const file = shard.file as LogFile;
    const st = fs.statSync(shard.path, { throwIfNoEntry: false });
    if (st === undefined || st.ino !== file.ino || st.size < shard.end) {
      if (st === undefined && !locked) return false;
      this.#reopen(shard);
      if (locked) this.#cutPartialTail(shard);
      return true;
    }
    let changed = false;
    if (st.size !== shard.seenSize) {
      // Only other processes' appends are scanned here (ours move `end` as they are written).
      const end = scanRange(
        file.fd,
        shard.end,
        st.size,
        this.#visitor(shard, this.#directTarget(shard, this.#feed)),
      );
      changed = end !== shard.end;
      shard.end = end;
      shard.seenSize = st.size;
    }
    if (locked) {
      this.#cutPartialTail(shard);
      shard.moving = false; // Nobody replaces the file while we hold the lock.
    }
    return changed;
  }

  /** The shard file was replaced (another process compacted or cleared it): index the new one. */
  #reopen(shard: Shard): void {
    this.#feed.rewritten();
    const file = LogFile.open(shard.path);
    const temp = new TempIndex();
    try {
      this.#indexFile(shard, file, temp);
    } catch (error) {
      file.close();
      throw error;
    }
    const keydir = this.#keydir;
    for (const slot of keydir.slotsOfShard(shard.index)) {
      const key = keydir.keyOf(slot);
      const at = temp.map.get(key);
      if (at === undefined) keydir.remove(key);
      else {
        keydir.put(
          key,
          shard.index,
          temp.offset[at] as number,
          temp.length[at] as number,
          temp.expiresAt[at] as number,
          temp.stamp[at] as number,
          false,
        );
        temp.map.delete(key);
      }
    }
    for (const [key, at] of temp.map) {
      keydir.put(
        key,
        shard.index,
        temp.offset[at] as number,
        temp.length[at] as number,
        temp.expiresAt[at] as number,
        temp.stamp[at] as number,
        false,
      );
    }
    shard.file?.close();
    shard.file = file;
  }

  /** Indexes `file` into `target`: from its hint file if current, then by scanning the rest. */
  #indexFile(shard: Shard, file: LogFile, target: IndexTarget): void {
    const size = file.size();
    shard.live = 0;
    shard.legacy = 0;
    shard.moving = false;
    const covered = readHint(
      shard.hintPath,
      shard.index,
      file.fd,
      { ino: file.ino, size },
      (key, offset, length, expiresAt, stamp) => {
        const replaced = target.put(key, offset, length, expiresAt, stamp);
        shard.live += length + 1 - (replaced >= 0 ? replaced + 1 : 0);
      },
    );
    shard.hintSize = covered ?? 0;
    if (covered !== undefined) this.#counters.hintLoads += 1;
    shard.end = scanRange(file.fd, covered ?? 0, size, this.#visitor(shard, target));
    shard.seenSize = size;
  }

  /** The key directory as an index target; `feed` hears of every key indexed. */
  #directTarget(shard: Shard, feed?: ChangeFeed): IndexTarget {
    const keydir = this.#keydir;
    return {
      put: (key, offset, length, expiresAt, stamp) => {
        feed?.changed(key);
        keydir.put(key, shard.index, offset, length, expiresAt, stamp, false);
        return keydir.replacedLength;
      },
      remove: (key) => {
        feed?.changed(key);
        const slot = keydir.slotOf(key);
        if (slot < 0) return -1;
        const length = keydir.length[slot] as number;
        keydir.remove(key);
        return length;
      },
    };
  }

  #visitor(shard: Shard, target: IndexTarget) {
    return (line: ScannedLine, offset: number, length: number): void => {
      switch (line.kind) {
        case 'put': {
          const replaced = target.put(line.key, offset, length, line.expiresAt, line.lastAccessed);
          shard.live += length + 1 - (replaced >= 0 ? replaced + 1 : 0);
          if (line.legacy) shard.legacy += 1;
          shard.moving = false;
          break;
        }
        case 'del': {
          const removed = target.remove(line.key);
          if (removed >= 0) shard.live -= removed + 1;
          shard.moving = false;
          break;
        }
        case 'moved':
          // Another process is about to replace this file (or died trying: then the next record
          // appended after the marker clears this).
          shard.moving = true;
          break;
        case 'blank':
          break;
        case 'corrupt': {
          this.#counters.corrupt += 1;
          const key =
            line.key !== undefined && shardOf(line.key) === shard.index ? line.key : undefined;
          this.#logger()?.warn(
            `${this.name}: skipped a damaged record at byte ${offset} of ${shard.path} (${line.reason})`,
          );
          if (key === undefined) {
            this.#counters.unattributed += 1;
            break;
          }
          // The newest state of that key is unknown: an older record must not stand in for it.
          const removed = target.remove(key);
          if (removed >= 0) shard.live -= removed + 1;
          this.#context?.onEvict(key, 'corruption', undefined);
          break;
        }
      }
    };
  }

  /** A record found damaged when read: drop the key and report it. */
  #damagedRecord(shard: Shard, key: string, offset: number, reason: string): void {
    this.#counters.corrupt += 1;
    this.#forget(key);
    this.#logger()?.warn(
      `${this.name}: dropped entry ${key}: its record at byte ${offset} of ${shard.path} is damaged (${reason})`,
    );
    this.#context?.onEvict(key, 'corruption', undefined);
  }

  /** Cuts off an incomplete last line (a write cut short by a crash). The caller holds the lock. */
  #cutPartialTail(shard: Shard): void {
    if (shard.seenSize <= shard.end) return;
    const file = shard.file as LogFile;
    fs.ftruncateSync(file.fd, shard.end);
    this.#counters.tornTails += 1;
    this.#logger()?.warn(
      `${this.name}: cut off ${shard.seenSize - shard.end} bytes of an incomplete record at the end of ${shard.path}`,
    );
    shard.seenSize = shard.end;
  }

  // ------------------------------------------------------------------ compaction

  #maybeCompact(shard: Shard): void {
    const { compactionMinBytes, compactionThreshold } = this.#options;
    if (shard.compactQueued || this.#state !== 'open' || shard.end < compactionMinBytes) return;
    if ((shard.end - shard.live) / shard.end < compactionThreshold) return;
    shard.compactQueued = true;
    const run = this.#exclusive(shard, () => this.#compactShard(shard))
      .catch((error: unknown) => {
        this.#logger()?.warn(
          `${this.name}: compaction of ${shard.path} failed: ${describeError(error)}`,
        );
      })
      .finally(() => {
        shard.compactQueued = false;
        this.#background.delete(run);
      });
    this.#background.add(run);
  }

  /**
   * Rewrites the shard's live records into a new file, then, holding the lock throughout so no
   * other process appends meanwhile: copies what this process appended during the copy, flushes,
   * writes the hint file, renames both into place and switches over, all in one synchronous step.
   */
  async #compactShard(shard: Shard): Promise<CompactionReport | undefined> {
    if (this.#state === 'closed') return undefined;
    await this.#pin(shard);
    const tmpPath = `${shard.path}.compacting`;
    let target: LogFile | undefined;
    try {
      this.#catchUp(shard, true);
      const old = shard.file as LogFile;
      const snapshotEnd = shard.end;
      if (snapshotEnd === 0) return undefined;
      const keydir = this.#keydir;
      const slots = keydir.slotsOfShard(shard.index);
      slots.sort((a, b) => (keydir.offset[a] as number) - (keydir.offset[b] as number));
      const keys = slots.map((slot) => keydir.keyOf(slot));
      const offsets = slots.map((slot) => keydir.offset[slot] as number);
      const lengths = slots.map((slot) => keydir.length[slot] as number);
      fs.rmSync(tmpPath, { force: true });
      target = LogFile.from(
        fs.openSync(
          tmpPath,
          fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_EXCL,
          0o600,
        ),
      );
      const targetFd = target.fd;
      let lastBeat = performance.now();
      const copy = await copyRecords(
        old.fd,
        targetFd,
        offsets,
        lengths,
        (line, k, check) => this.#migrate(line, keys[k] as string, check),
        () => {
          if (performance.now() - lastBeat > HEARTBEAT_MS) {
            lastBeat = performance.now();
            shard.lock.heartbeat();
          }
        },
      );
      await new Promise<void>((resolve, reject) => {
        fs.fdatasync(targetFd, (error) => (error ? reject(error) : resolve()));
      });

      // ---- From here on, synchronous: no write of this process can interleave.
      const tailLength = shard.end - snapshotEnd;
      if (tailLength > 0) {
        writeAll(targetFd, readAt(old.fd, snapshotEnd, tailLength));
        fs.fdatasyncSync(targetFd);
      }
      const newSize = copy.bytes + tailLength;
      // Which copied records are still their key's newest: decided before any offset moves, since
      // a moved offset may equal an old one.
      const unchanged = slots.map(
        (slot, k) =>
          keydir.slotOf(keys[k] as string) === slot && keydir.offset[slot] === offsets[k],
      );
      // Records appended during the copy moved with the tail...
      const shift = copy.bytes - snapshotEnd;
      for (const slot of keydir.slotsOfShard(shard.index)) {
        if ((keydir.offset[slot] as number) >= snapshotEnd) {
          keydir.offset[slot] = (keydir.offset[slot] as number) + shift;
        }
      }
      // ...and the copied ones moved to where the copy put them.
      const damaged: string[] = [];
      slots.forEach((slot, k) => {
        const key = keys[k] as string;
        if (!unchanged[k]) return;
        if (copy.lengths[k] === 0) {
          damaged.push(key);
          return;
        }
        keydir.offset[slot] = copy.offsets[k] as number;
        keydir.length[slot] = copy.lengths[k] as number;
      });
      for (const key of damaged) keydir.remove(key);
      const records: [string, number, number, number, number][] = [];
      let live = 0;
      for (const slot of keydir.slotsOfShard(shard.index)) {
        const length = keydir.length[slot] as number;
        live += length + 1;
        records.push([
          keydir.keyOf(slot),
          keydir.offset[slot] as number,
          length,
          keydir.expiresAt[slot] as number,
          keydir.stamp[slot] as number,
        ]);
      }
      const hint = encodeHint(
        shard.index,
        { ino: target.ino, size: newSize, tailCrc: tailCrc(targetFd, newSize) },
        records,
      );
      const hintTmp = `${shard.hintPath}.tmp`;
      const hintFd = fs.openSync(hintTmp, 'w', 0o600);
      try {
        writeAll(hintFd, hint);
        fs.fdatasyncSync(hintFd);
      } finally {
        fs.closeSync(hintFd);
      }
      // Readers of the old file learn from this marker that it is being replaced.
      writeAll(old.fd, MOVED_BYTES);
      // The hint goes first: a reader that sees the new shard file finds its hint beside it.
      fs.renameSync(hintTmp, shard.hintPath);
      fs.renameSync(tmpPath, shard.path);
      fsyncDir(this.#options.dir);
      shard.file = target;
      target = undefined;
      old.close();
      shard.end = newSize;
      shard.seenSize = newSize;
      shard.live = live;
      shard.legacy = 0;
      shard.hintSize = newSize;
      // The hint holds the stamps; uses noted by touch still wait for the access-order file.
      for (const slot of keydir.slotsOfShard(shard.index)) {
        if (keydir.accessedAt[slot] === 0) keydir.setDirty(slot, false);
      }
      this.#counters.compactions += 1;
      for (const key of damaged) {
        this.#counters.corrupt += 1;
        this.#logger()?.warn(
          `${this.name}: dropped entry ${key}: its record in ${shard.path} is damaged`,
        );
        this.#context?.onEvict(key, 'corruption', undefined);
      }
      return {
        shards: 1,
        records: records.length,
        bytesBefore: snapshotEnd + tailLength,
        bytesAfter: newSize,
        corrupt: copy.corrupt,
        migrated: copy.migrated,
      };
    } finally {
      if (target !== undefined) {
        target.close();
        fs.rmSync(tmpPath, { force: true });
      }
      this.#unpin(shard);
    }
  }

  /** Compaction's verdict on one record: keep it, rewrite a proxywhirl record, or drop it. */
  #migrate(line: Buffer, key: string, check: 'ok' | 'none'): string | 'keep' | 'drop' {
    if (
      check === 'ok' &&
      line.indexOf('"username": ') === -1 &&
      line.indexOf('"password": ') === -1
    ) {
      return 'keep';
    }
    let entry: ProxyEntry;
    try {
      entry = entryFromRecord(parseLine(line.toString('utf8')), this.#cipher());
    } catch {
      return 'drop';
    }
    if (entry.key !== key) return 'drop';
    try {
      return encodeRecord(
        entry,
        this.#migratedToken(entry.username, 'username', key),
        this.#migratedToken(entry.password, 'password', key),
      );
    } catch {
      // Plaintext credentials and no key to seal them with: leave the record as it is.
      return 'keep';
    }
  }

  async #clearShard(shard: Shard): Promise<number> {
    await this.#pin(shard);
    try {
      this.#catchUp(shard, true);
      const removed = this.#keydir.countOf(shard.index);
      if (shard.end === 0 && removed === 0) return 0;
      const tmpPath = `${shard.path}.compacting`;
      fs.rmSync(tmpPath, { force: true });
      const fd = fs.openSync(
        tmpPath,
        fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_EXCL,
        0o600,
      );
      const empty = LogFile.from(fd);
      try {
        fs.rmSync(shard.hintPath, { force: true });
        writeAll((shard.file as LogFile).fd, MOVED_BYTES);
        fs.renameSync(tmpPath, shard.path);
      } catch (error) {
        empty.close();
        fs.rmSync(tmpPath, { force: true });
        throw error;
      }
      fsyncDir(this.#options.dir);
      const old = shard.file as LogFile;
      shard.file = empty;
      old.close();
      for (const slot of this.#keydir.slotsOfShard(shard.index)) {
        this.#keydir.remove(this.#keydir.keyOf(slot));
      }
      shard.end = 0;
      shard.seenSize = 0;
      shard.live = 0;
      shard.legacy = 0;
      shard.hintSize = 0;
      return removed;
    } finally {
      this.#unpin(shard);
    }
  }

  // ------------------------------------------------------------------ access order

  #queueAccessFlush(): void {
    if (this.#accessFlushQueued) return;
    this.#accessFlushQueued = true;
    const run = this.#flushAccessOrder()
      .catch((error: unknown) => {
        this.#logger()?.warn(
          `${this.name}: could not save the access order: ${describeError(error)}`,
        );
      })
      .finally(() => {
        this.#accessFlushQueued = false;
        this.#background.delete(run);
      });
    this.#background.add(run);
  }

  /**
   * Appends the stamps not yet persisted to the access-order file in one write. When the file has
   * grown well past one line per live key, it is rewritten instead, merged with what it held.
   */
  async #flushAccessOrder(): Promise<void> {
    const keydir = this.#keydir;
    if (keydir.dirtyCount === 0) return;
    await this.#accessLock.acquire();
    try {
      const path = join(this.#options.dir, ACCESS_FILE);
      const size = fs.statSync(path, { throwIfNoEntry: false })?.size ?? 0;
      const rewrite = size > Math.max(1024 * 1024, keydir.size * 200);
      const lines: string[] = [];
      if (rewrite) {
        // What the file holds (other processes' lines too), merged with ours: larger wins.
        const known = new Map<string, [number, number, number]>();
        readAccess(path, (key, stamp, accessedAt, accessCount) => {
          const seen = known.get(key) ?? [0, 0, 0];
          known.set(key, [
            Math.max(seen[0], stamp),
            Math.max(seen[1], accessedAt),
            Math.max(seen[2], accessCount),
          ]);
        });
        for (const slot of keydir.slots()) {
          const key = keydir.keyOf(slot);
          const [stamp, accessedAt, accessCount] = known.get(key) ?? [0, 0, 0];
          lines.push(
            encodeAccess(
              key,
              Math.max(keydir.stamp[slot] as number, stamp),
              Math.max(keydir.accessedAt[slot] as number, accessedAt),
              Math.max(keydir.accessCount[slot] as number, accessCount),
            ),
          );
          keydir.setDirty(slot, false);
        }
        const tmp = `${path}.tmp`;
        fs.writeFileSync(tmp, lines.length === 0 ? '' : `${lines.join('\n')}\n`, { mode: 0o600 });
        fs.renameSync(tmp, path);
        return;
      }
      for (const slot of keydir.slots()) {
        if (!keydir.isDirty(slot)) continue;
        lines.push(
          encodeAccess(
            keydir.keyOf(slot),
            keydir.stamp[slot] as number,
            keydir.accessedAt[slot] as number,
            keydir.accessCount[slot] as number,
          ),
        );
        keydir.setDirty(slot, false);
      }
      if (lines.length === 0) return;
      const fd = fs.openSync(path, 'a', 0o600);
      try {
        writeAll(fd, Buffer.from(`${lines.join('\n')}\n`, 'latin1'));
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      this.#accessLock.release();
    }
  }

  // ------------------------------------------------------------------ plumbing

  #shardOfKey(key: string): Shard {
    return this.#shards[shardOf(key)] as Shard;
  }

  #nextStamp(): number {
    const now = (this.#context as TierContext).clock.now();
    const stamp = now > this.#lastStamp ? now : this.#lastStamp + STAMP_STEP;
    this.#lastStamp = stamp;
    return stamp;
  }

  #cipher(): TokenCipher | undefined {
    return this.#context?.cipher;
  }

  #logger() {
    return this.#context?.logger;
  }

  /** The token of a secret the stack sealed; a tier never encrypts what it is given. */
  #token(secret: Secret | undefined, field: string, key: string): string | undefined {
    if (secret === undefined) return undefined;
    const token = secret.token;
    if (token === undefined) {
      throw new TierError(
        this.name,
        `the ${field} of entry ${key} is not sealed: a persistent tier stores only Fernet tokens`,
      );
    }
    return token;
  }

  /**
   * The token of a secret read from a proxywhirl row that held it in plaintext: sealed now with
   * the stack's keyring, so that rewriting the row never writes the plaintext again.
   */
  #migratedToken(secret: Secret | undefined, field: string, key: string): string | undefined {
    if (secret === undefined || secret.token !== undefined) return secret?.token;
    const cipher = this.#cipher();
    if (cipher === undefined) return this.#token(secret, field, key);
    return secret.seal(cipher);
  }

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ClosedError(
        this.#state === 'new' || this.#state === 'opening'
          ? `the ${this.name} tier is not open yet`
          : `the ${this.name} tier is closed`,
      );
    }
  }

  #wrap(error: unknown, doing: string): ProxyTierError {
    if (error instanceof ProxyTierError) return error;
    return new TierError(this.name, `${doing}: ${describeError(error)}`, { cause: error });
  }
}
