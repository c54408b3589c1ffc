// CRC-32 (the zlib/PNG polynomial). Node has `zlib.crc32` from 20.15 / 22.2, native and fast; on an
// older Node 20 a table-driven version computes the same values. No npm package is worth a
// dependency for 15 lines that the platform mostly provides.
import * as zlib from 'node:zlib';

type Crc32 = (data: string | Uint8Array, initial?: number) => number;

const native = (zlib as { crc32?: Crc32 }).crc32;

let table: Uint32Array | undefined;

function makeTable(): Uint32Array {
  const made = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    made[n] = c >>> 0;
  }
  return made;
}

/** The table-driven CRC-32, exported so tests can check it against `zlib.crc32`. */
export function crc32Portable(data: string | Uint8Array, initial = 0): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  table ??= makeTable();
  let crc = (initial ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i += 1) {
    crc = (table[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** Continues `crc` over one more byte (cheaper than a native call for a single byte). */
export function crc32Byte(crc: number, byte: number): number {
  table ??= makeTable();
  const c = (crc ^ 0xffffffff) >>> 0;
  return ((table[(c ^ byte) & 0xff] as number) ^ (c >>> 8) ^ 0xffffffff) >>> 0;
}

/** CRC-32 of `data` (strings as UTF-8), continuing from `initial` when given. */
export const crc32: Crc32 = typeof native === 'function' ? native : crc32Portable;
