// The access-order file (`access.jsonl`): last-use stamps of keys, appended in one write when the
// tier closes (and when many stamps are waiting), so LRU order survives a restart without a write
// per read. One line per key: {"k": <key>, "a": <stamp>, "_c": <crc>}. Later and larger stamps
// win; lines with a bad checksum are ignored (the order is a hint, not data).
import * as fs from 'node:fs';
import { checkLine, pyString, withChecksum } from './codec.js';

export const ACCESS_FILE = 'access.jsonl';
export const ACCESS_LOCK = 'access.lock';

/** One line of the access-order file. */
export function encodeAccess(key: string, stamp: number): string {
  return withChecksum(`{"k": ${pyString(key)}, "a": ${String(stamp)}`);
}

/** Calls `sink` for each valid line of the access-order file; returns its size in bytes (0 if absent). */
export function readAccess(path: string, sink: (key: string, stamp: number) => void): number {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path);
  } catch {
    return 0;
  }
  let start = 0;
  while (start < buf.length) {
    let end = buf.indexOf(10, start);
    if (end === -1) end = buf.length;
    if (checkLine(buf, start, end) === 'ok') {
      try {
        const line = JSON.parse(buf.toString('latin1', start, end)) as { k?: unknown; a?: unknown };
        if (typeof line.k === 'string' && typeof line.a === 'number' && Number.isFinite(line.a)) {
          sink(line.k, line.a);
        }
      } catch {
        // A checksummed line always parses; ignore anything else.
      }
    }
    start = end + 1;
  }
  return buf.length;
}
