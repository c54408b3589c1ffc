// One shard's log file: an fd opened O_RDWR|O_APPEND (reads are positioned, writes append), group
// fdatasync for 'full' durability, and the chunked scanner that turns bytes into lines.
import * as fs from 'node:fs';
import { scanLine, type ScannedLine } from './codec.js';

const OPEN_FLAGS = fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT;

/** Called once the bytes written before it are on disk (or the flush failed). */
type SyncWaiter = (error: Error | null) => void;

/** An open shard file. Closed only once no `fdatasync` on it is in flight. */
export class LogFile {
  readonly fd: number;
  readonly ino: number;
  #syncing = false;
  #waiting: SyncWaiter[] = [];
  #closeWhenIdle = false;
  #closed = false;

  private constructor(fd: number, ino: number) {
    this.fd = fd;
    this.ino = ino;
  }

  /** Opens (creating with mode 0600 if missing) `path`. */
  static open(path: string): LogFile {
    const fd = fs.openSync(path, OPEN_FLAGS, 0o600);
    try {
      return new LogFile(fd, fs.fstatSync(fd).ino);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  /** Wraps an fd already opened with the right flags. */
  static from(fd: number): LogFile {
    return new LogFile(fd, fs.fstatSync(fd).ino);
  }

  size(): number {
    return fs.fstatSync(this.fd).size;
  }

  /**
   * Resolves `waiters` once everything written so far is on disk. Calls made while a flush runs
   * share the next one: one `fdatasync` per batch of batches (group commit).
   */
  syncThen(waiters: SyncWaiter[]): void {
    for (const waiter of waiters) this.#waiting.push(waiter);
    if (!this.#syncing) this.#startSync();
  }

  #startSync(): void {
    const batch = this.#waiting;
    this.#waiting = [];
    this.#syncing = true;
    fs.fdatasync(this.fd, (error) => {
      this.#syncing = false;
      for (const waiter of batch) waiter(error);
      if (this.#waiting.length > 0) this.#startSync();
      else if (this.#closeWhenIdle) this.#closeNow();
    });
  }

  /** Closes the fd now, or after the flush in flight. Idempotent. */
  close(): void {
    if (this.#syncing) this.#closeWhenIdle = true;
    else this.#closeNow();
  }

  #closeNow(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      fs.closeSync(this.fd);
    } catch {
      // Already gone; nothing else to release.
    }
  }
}

/** Writes all of `buf` (a short write is continued, as the kernel allows). */
export function writeAll(fd: number, buf: Buffer): void {
  let written = 0;
  while (written < buf.length) {
    written += fs.writeSync(fd, buf, written, buf.length - written);
  }
}

/** Reads `length` bytes at `position` into a fresh buffer (shorter if the file ends first). */
export function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let read = 0;
  while (read < length) {
    const n = fs.readSync(fd, buf, read, length - read, position + read);
    if (n === 0) break;
    read += n;
  }
  return read === length ? buf : buf.subarray(0, read);
}

/** Flushes a directory's entries (new and renamed files) to disk. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the file data itself was flushed.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Receives each line of a scan: what it holds, where it starts and its length (no newline). */
export type LineVisitor = (line: ScannedLine, offset: number, length: number) => void;

const SCAN_CHUNK = 1024 * 1024;
let scanBuffer = Buffer.allocUnsafe(SCAN_CHUNK);
const KEY_START = Buffer.from('{"key": ', 'latin1');

/**
 * Visits the complete lines of `fd` in [`from`, `to`); returns the offset just past the last
 * complete line (so a trailing partial line, still being written or torn, is left for later).
 * A damaged line is split where another record visibly starts inside it (a newline byte that was
 * overwritten glues two records together), so that one bad byte never hides a good record.
 */
export function scanRange(fd: number, from: number, to: number, visit: LineVisitor): number {
  let bufStart = from;
  let filled = 0;
  let done = from;
  while (bufStart + filled < to) {
    if (filled === scanBuffer.length) {
      const bigger = Buffer.allocUnsafe(scanBuffer.length * 2);
      scanBuffer.copy(bigger, 0, 0, filled);
      scanBuffer = bigger;
    }
    const want = Math.min(scanBuffer.length - filled, to - bufStart - filled);
    const n = fs.readSync(fd, scanBuffer, filled, want, bufStart + filled);
    if (n === 0) break;
    filled += n;
    const buf = scanBuffer;
    let start = 0;
    for (;;) {
      const newline = buf.indexOf(10, start);
      if (newline === -1 || newline >= filled) break;
      visitLine(buf, start, newline, bufStart, visit);
      start = newline + 1;
    }
    done = bufStart + start;
    if (start > 0) {
      buf.copy(buf, 0, start, filled);
      filled -= start;
      bufStart += start;
    }
  }
  return done;
}

function visitLine(
  buf: Buffer,
  start: number,
  end: number,
  base: number,
  visit: LineVisitor,
): void {
  const line = scanLine(buf, start, end);
  if (line.kind !== 'corrupt') {
    visit(line, base + start, end - start);
    return;
  }
  // Look for records glued inside the damaged line.
  const starts: number[] = [start];
  for (let at = buf.indexOf(KEY_START, start + 1); at !== -1 && at < end;) {
    starts.push(at);
    at = buf.indexOf(KEY_START, at + 1);
  }
  if (starts.length === 1) {
    visit(line, base + start, end - start);
    return;
  }
  starts.push(end);
  for (let i = 0; i + 1 < starts.length; i += 1) {
    const segmentStart = starts[i] as number;
    let segmentEnd = starts[i + 1] as number;
    let part = scanLine(buf, segmentStart, segmentEnd);
    if (part.kind === 'corrupt' && segmentEnd - 1 > segmentStart && i + 2 < starts.length) {
      // The byte before the next record was probably its newline.
      const trimmed = scanLine(buf, segmentStart, segmentEnd - 1);
      if (trimmed.kind !== 'corrupt') {
        part = trimmed;
        segmentEnd -= 1;
      }
    }
    if (part.kind !== 'blank') visit(part, base + segmentStart, segmentEnd - segmentStart);
  }
}
