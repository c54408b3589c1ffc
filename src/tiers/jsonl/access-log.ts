// The access-order file (`access.jsonl`): last-use stamps of keys, appended in one write when the
// tier closes (and when many stamps are waiting), so LRU order survives a restart without a write
// per read. One line per key: {"k": <key>, "a": <stamp>, "_c": <crc>}, with "t" and "n" (the
// latest lastAccessed and highest accessCount a faster tier reported through `touch`) when there
// are any. Larger values win; lines with a bad checksum are ignored (the order is a hint, not data).
import * as fs from 'node:fs';
import { checkLine, pyString, withChecksum } from './codec.js';

export const ACCESS_FILE = 'access.jsonl';
export const ACCESS_LOCK = 'access.lock';

/** One line of the access-order file; `accessedAt` 0 means no touched use to record. */
export function encodeAccess(
  key: string,
  stamp: number,
  accessedAt: number,
  accessCount: number,
): string {
  const touched = accessedAt > 0 ? `, "t": ${String(accessedAt)}, "n": ${String(accessCount)}` : '';
  return withChecksum(`{"k": ${pyString(key)}, "a": ${String(stamp)}${touched}`);
}

/** What one line says about a key (`accessedAt` and `accessCount` are 0 when absent). */
export type AccessSink = (
  key: string,
  stamp: number,
  accessedAt: number,
  accessCount: number,
) => void;

const finite = (value: unknown): number =>
  typeof value === 'number' && Number.isFinite(value) ? value : 0;

/** Calls `sink` for each valid line of the access-order file; returns its size in bytes (0 if absent). */
export function readAccess(path: string, sink: AccessSink): number {
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
        const line = JSON.parse(buf.toString('latin1', start, end)) as Record<string, unknown>;
        if (typeof line['k'] === 'string' && typeof line['a'] === 'number') {
          sink(line['k'], finite(line['a']), finite(line['t']), finite(line['n']));
        }
      } catch {
        // A checksummed line always parses; ignore anything else.
      }
    }
    start = end + 1;
  }
  return buf.length;
}
