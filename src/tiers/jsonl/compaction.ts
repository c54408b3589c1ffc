// Compaction's copy phase: the live records of a shard file, in file order, are copied into a new
// file in large asynchronous reads and writes, so the event loop (readers, writers of this
// process) keeps running meanwhile. Each record is checked on the way: a record with a bad
// checksum is dropped (and reported), a record without one (proxywhirl's) is re-encoded so that
// every record of the new file carries a checksum and no plaintext credential.
import * as fs from 'node:fs';
import { checkLine } from './codec.js';

/** What `compact()` did. */
export interface CompactionReport {
  /** Shard files rewritten. */
  shards: number;
  /** Live records copied into the new files. */
  records: number;
  /** Size of the rewritten shard files before and after. */
  bytesBefore: number;
  bytesAfter: number;
  /** Records found damaged while copying (dropped, and reported as `corruption` evictions). */
  corrupt: number;
  /** proxywhirl records rewritten with a checksum (and plaintext credentials sealed). */
  migrated: number;
}

/** The verdict on one record: keep its bytes, replace them, or drop it as damaged. */
export type RecordRewrite = (
  line: Buffer,
  index: number,
  check: 'ok' | 'none',
) => string | 'keep' | 'drop';

/** Positions of the copied records in the new file; `length` 0 marks a dropped record. */
export interface CopyResult {
  offsets: Float64Array;
  lengths: Uint32Array;
  bytes: number;
  corrupt: number;
  migrated: number;
}

const WINDOW = 1024 * 1024;

function readAsync(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, length, position, (error, bytesRead) => {
      if (error) reject(error);
      else resolve(bytesRead);
    });
  });
}

function writeAsync(fd: number, buf: Buffer, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (offset: number): void => {
      fs.write(fd, buf, offset, length - offset, null, (error, written) => {
        if (error) reject(error);
        else if (offset + written < length) step(offset + written);
        else resolve();
      });
    };
    step(0);
  });
}

/**
 * Copies the records at (`offsets[i]`, `lengths[i]`) of `source` (sorted by offset) to the end of
 * `target`, which starts empty. `check` decides, for a record whose checksum is missing or which
 * must be migrated, what to write instead; `between` runs after each window (heartbeat, abort).
 */
export async function copyRecords(
  source: number,
  target: number,
  offsets: readonly number[],
  lengths: readonly number[],
  rewrite: RecordRewrite,
  between: () => void,
): Promise<CopyResult> {
  const count = offsets.length;
  const result: CopyResult = {
    offsets: new Float64Array(count),
    lengths: new Uint32Array(count),
    bytes: 0,
    corrupt: 0,
    migrated: 0,
  };
  let input = Buffer.allocUnsafe(WINDOW);
  let output = Buffer.allocUnsafe(WINDOW);
  let outFill = 0;
  const flushOutput = async () => {
    if (outFill === 0) return;
    await writeAsync(target, output, outFill);
    outFill = 0;
  };
  const emit = async (bytes: Buffer | string) => {
    const length = typeof bytes === 'string' ? bytes.length : bytes.length;
    if (outFill + length + 1 > output.length) {
      await flushOutput();
      if (length + 1 > output.length) output = Buffer.allocUnsafe(length + 1);
    }
    if (typeof bytes === 'string') output.write(bytes, outFill, 'latin1');
    else bytes.copy(output, outFill);
    outFill += length;
    output[outFill] = 10;
    outFill += 1;
  };

  let i = 0;
  while (i < count) {
    // One window: consecutive records that fit in the input buffer (at least one).
    const windowStart = offsets[i] as number;
    let j = i;
    while (
      j < count &&
      (j === i || (offsets[j] as number) + (lengths[j] as number) - windowStart <= input.length)
    ) {
      j += 1;
    }
    const windowEnd = (offsets[j - 1] as number) + (lengths[j - 1] as number);
    if (windowEnd - windowStart > input.length) input = Buffer.allocUnsafe(windowEnd - windowStart);
    let filled = 0;
    while (filled < windowEnd - windowStart) {
      const n = await readAsync(
        source,
        input.subarray(filled),
        windowEnd - windowStart - filled,
        windowStart + filled,
      );
      if (n === 0) break;
      filled += n;
    }
    for (let k = i; k < j; k += 1) {
      const start = (offsets[k] as number) - windowStart;
      const length = lengths[k] as number;
      if (start + length > filled) {
        result.corrupt += 1;
        continue;
      }
      const line = input.subarray(start, start + length);
      const check = checkLine(line, 0, length);
      let out: Buffer | string | undefined;
      if (check === 'bad') out = undefined;
      else {
        const verdict = rewrite(line, k, check);
        if (verdict === 'drop') out = undefined;
        else if (verdict === 'keep') out = line;
        else {
          out = verdict;
          result.migrated += 1;
        }
      }
      if (out === undefined) {
        result.corrupt += 1;
        continue;
      }
      // The output buffer may be flushed inside emit; the offset is where the record lands.
      const outLength = out.length;
      const before = result.bytes;
      await emit(out);
      result.offsets[k] = before;
      result.lengths[k] = outLength;
      result.bytes += outLength + 1;
    }
    between();
    i = j;
  }
  await flushOutput();
  return result;
}
