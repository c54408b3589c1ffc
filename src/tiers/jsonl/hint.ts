// Hint files (`shard_NN.hint`): written by compaction beside the shard file it produced, they list
// every live key with its record's position, expiry and last-use stamp, in LRU order, so a large
// store opens without reading every record. A hint is used only if its checksum is right and the
// shard file is still the one it describes (same inode, at least as long, same bytes before the
// described end); anything else falls back to scanning the shard file.
//
// Layout (little-endian), in sections so that loading is array views, not parsing:
//   "PTHINT02", u32 header length, header JSON {shard, ino, size, tailCrc, count, keyBytes, ascii},
//   zero padding to a multiple of 8, then f64[count] offsets, f64[count] expiresAt,
//   f64[count] stamps, u32[count] lengths, u32[count] key byte lengths, the keys (UTF-8,
//   concatenated), and last a u32 CRC-32 of every byte before it.
import * as fs from 'node:fs';
import { crc32 } from './crc32.js';

const MAGIC = Buffer.from('PTHINT02', 'latin1');
/** Bytes of the shard file, ending at the described size, whose CRC identifies it. */
const TAIL_BYTES = 4096;

/** Which shard file a hint describes. */
export interface HintIdentity {
  ino: number;
  size: number;
  tailCrc: number;
}

/** Receives one live key of a hint file. */
export type HintSink = (
  key: string,
  offset: number,
  length: number,
  expiresAt: number,
  stamp: number,
) => void;

/** CRC-32 of the `TAIL_BYTES` of `fd` that end at `size`. */
export function tailCrc(fd: number, size: number): number {
  const from = Math.max(0, size - TAIL_BYTES);
  const buf = Buffer.allocUnsafe(size - from);
  let read = 0;
  while (read < buf.length) {
    const n = fs.readSync(fd, buf, read, buf.length - read, from + read);
    if (n === 0) break;
    read += n;
  }
  return crc32(buf.subarray(0, read));
}

const align8 = (n: number): number => (n + 7) & ~7;

/** Builds a hint file's bytes. `records` holds [key, offset, length, expiresAt, stamp]. */
export function encodeHint(
  shard: number,
  identity: HintIdentity,
  records: readonly (readonly [string, number, number, number, number])[],
): Buffer {
  const count = records.length;
  const keys = records.map(([key]) => Buffer.from(key, 'utf8'));
  const keyBytes = keys.reduce((sum, key) => sum + key.length, 0);
  const ascii = records.every(([key], i) => key.length === (keys[i] as Buffer).length);
  const header = Buffer.from(
    JSON.stringify({ shard, ...identity, count, keyBytes, ascii }),
    'utf8',
  );
  const body = align8(MAGIC.length + 4 + header.length);
  const size = body + count * (8 * 3 + 4 * 2) + keyBytes + 4;
  const buf = Buffer.alloc(size);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(header.length, MAGIC.length);
  header.copy(buf, MAGIC.length + 4);
  let at = body;
  for (const field of [1, 3, 4] as const) {
    for (const record of records) at = buf.writeDoubleLE(record[field], at);
  }
  for (const record of records) at = buf.writeUInt32LE(record[2], at);
  for (const key of keys) at = buf.writeUInt32LE(key.length, at);
  for (const key of keys) at += key.copy(buf, at);
  buf.writeUInt32LE(crc32(buf.subarray(0, at)), at);
  return buf;
}

/** A typed array over `buf[at, at + count * width)`, copied if it is not aligned for the type. */
function view<T extends Float64Array | Uint32Array>(
  make: { new (buffer: ArrayBuffer, offset: number, length: number): T; new (length: number): T },
  buf: Buffer,
  at: number,
  count: number,
  width: number,
): T {
  const absolute = buf.byteOffset + at;
  if (absolute % width === 0) return new make(buf.buffer as ArrayBuffer, absolute, count);
  const copy = new make(count);
  new Uint8Array(copy.buffer).set(buf.subarray(at, at + count * width));
  return copy;
}

/**
 * Reads the hint file at `path` if it describes shard `shard` as `current` is now (inode, and
 * at least its size); calls `sink` per key (in the order written: least recently used first) and
 * returns the size it covers. `undefined` when the hint is missing, damaged or stale, or its tail
 * CRC does not match (checked with `fd`); then nothing was fed to `sink`.
 */
export function readHint(
  path: string,
  shard: number,
  fd: number,
  current: { ino: number; size: number },
  sink: HintSink,
): number | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path);
  } catch {
    return undefined;
  }
  if (buf.length < MAGIC.length + 8 || buf.compare(MAGIC, 0, MAGIC.length, 0, MAGIC.length) !== 0) {
    return undefined;
  }
  const end = buf.length - 4;
  if (crc32(buf.subarray(0, end)) !== buf.readUInt32LE(end)) return undefined;
  const headerLength = buf.readUInt32LE(MAGIC.length);
  let header: Partial<
    Record<'shard' | 'ino' | 'size' | 'tailCrc' | 'count' | 'keyBytes' | 'ascii', unknown>
  >;
  try {
    header = JSON.parse(
      buf.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength),
    ) as typeof header;
  } catch {
    return undefined;
  }
  const { ino, size, count, keyBytes } = header;
  if (
    header.shard !== shard ||
    typeof ino !== 'number' ||
    typeof size !== 'number' ||
    typeof count !== 'number' ||
    typeof keyBytes !== 'number' ||
    ino !== current.ino ||
    size > current.size
  ) {
    return undefined;
  }
  let at = align8(MAGIC.length + 4 + headerLength);
  if (at + count * 32 + keyBytes !== end || header.tailCrc !== tailCrc(fd, size)) return undefined;
  const offsets = view(Float64Array, buf, at, count, 8);
  const expires = view(Float64Array, buf, (at += count * 8), count, 8);
  const stamps = view(Float64Array, buf, (at += count * 8), count, 8);
  const lengths = view(Uint32Array, buf, (at += count * 8), count, 4);
  const keyLengths = view(Uint32Array, buf, (at += count * 4), count, 4);
  at += count * 4;
  // Check everything first, so that a damaged hint feeds nothing to the sink.
  let total = 0;
  for (let i = 0; i < count; i += 1) {
    total += keyLengths[i] as number;
    if ((offsets[i] as number) + (lengths[i] as number) > size) return undefined;
  }
  if (total !== keyBytes) return undefined;
  // Node's long-standing decoders behind toString(), without its argument checks: this loop
  // runs once per key of the store.
  const fast = buf as Buffer & {
    latin1Slice(start: number, end: number): string;
    utf8Slice(start: number, end: number): string;
  };
  const ascii = header.ascii === true;
  for (let i = 0; i < count; i += 1) {
    const next = at + (keyLengths[i] as number);
    const key = ascii ? fast.latin1Slice(at, next) : fast.utf8Slice(at, next);
    sink(
      key,
      offsets[i] as number,
      lengths[i] as number,
      expires[i] as number,
      stamps[i] as number,
    );
    at = next;
  }
  return size;
}
