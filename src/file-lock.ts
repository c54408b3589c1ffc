// Advisory lock files between processes on one host (Node has no flock), used by the JSONL
// tier for its shards and by key rotation for the key file and the store. A lock is a file created
// with O_CREAT|O_EXCL ('wx') holding {pid, process start time, host, nonce}; it is stale when its
// process is gone (or a different process now has that pid). Waiters poll with a short backoff
// and append one byte to the lock file so the holder knows to hand it over soon. See docs/jsonl.md.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { LockTimeoutError } from './errors.js';

/** What a lock file says about its holder. */
interface LockOwner {
  pid: number;
  /** Start time of the process in clock ticks since boot (Linux `/proc/<pid>/stat` field 22). */
  start: string | undefined;
  host: string;
  nonce: string;
}

/** A lock whose holder's pid cannot be checked (another host, unreadable file) goes stale after this long without a heartbeat. */
const STALE_UNVERIFIABLE_MS = 30_000;
/** An empty or unreadable lock file (its writer died between create and write) is stale after this long. */
const STALE_EMPTY_MS = 2_000;
const MAX_BACKOFF_MS = 4;

const HOST = hostname();

/** Linux `/proc/<pid>/stat`: the process state and its start time; undefined elsewhere. */
function processInfo(pid: number): { state: string; start: string } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

const SELF_START = processInfo(process.pid)?.start;

/** Nonces of the locks this process holds right now. */
const heldHere = new Set<string>();

function isAlive(owner: LockOwner): boolean {
  if (owner.pid === process.pid && owner.start === SELF_START) return heldHere.has(owner.nonce);
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: the process exists but belongs to someone else.
  }
  const info = processInfo(owner.pid);
  if (info === undefined) return true;
  // A killed process its parent has not reaped yet is a zombie: it holds nothing any more.
  if (info.state === 'Z' || info.state === 'X') return false;
  return owner.start === undefined || info.start === owner.start;
}

function parseOwner(text: string): LockOwner | undefined {
  const firstLine = text.split('\n', 1)[0] ?? '';
  try {
    const parsed = JSON.parse(firstLine) as Partial<LockOwner>;
    if (typeof parsed.pid !== 'number' || typeof parsed.nonce !== 'string') return undefined;
    return {
      pid: parsed.pid,
      start: typeof parsed.start === 'string' ? parsed.start : undefined,
      host: typeof parsed.host === 'string' ? parsed.host : '',
      nonce: parsed.nonce,
    };
  } catch {
    return undefined;
  }
}

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What a failed attempt saw, for the timeout message. */
interface Busy {
  owner: LockOwner | undefined;
}

/**
 * One lock file. `tryAcquire` never blocks; `acquire` polls until it gets the lock or times out.
 * Not reentrant: the tier keeps one `FileLock` per file and tracks who in the process uses it.
 */
export class FileLock {
  readonly path: string;
  /** Named in the timeout error: the tier, or what the lock guards. */
  readonly #tierName: string;
  readonly #timeoutMs: number;
  #fd: number | undefined;
  #nonce = '';
  #contentLength = 0;
  #signalled: string | undefined;
  #acquiring: Promise<void> | undefined;
  #acquisitions = 0;

  constructor(path: string, tierName: string, timeoutMs: number) {
    this.path = path;
    this.#tierName = tierName;
    this.#timeoutMs = timeoutMs;
  }

  get held(): boolean {
    return this.#fd !== undefined;
  }

  /** How many times this process has taken the lock: tells one holding from the next. */
  get acquisitions(): number {
    return this.#acquisitions;
  }

  /** Takes the lock if it is free (or stale); false if another holder has it. */
  tryAcquire(): boolean {
    return this.#attempt() === undefined;
  }

  /** Resolves once the lock is held; rejects with `LockTimeoutError` after the timeout. */
  acquire(): Promise<void> {
    if (this.#fd !== undefined) return Promise.resolve();
    this.#acquiring ??= this.#poll().finally(() => {
      this.#acquiring = undefined;
    });
    return this.#acquiring;
  }

  async #poll(): Promise<void> {
    const deadline = Date.now() + this.#timeoutMs;
    let backoff = 1;
    for (;;) {
      // Taken meanwhile by a `tryAcquire` of this process: polling on would wait for ourselves.
      if (this.#fd !== undefined) return;
      const busy = this.#attempt();
      if (busy === undefined) return;
      if (busy.owner !== undefined && busy.owner.nonce !== this.#signalled) {
        this.#signal(busy.owner.nonce);
      }
      if (Date.now() >= deadline) {
        const holder =
          busy.owner === undefined ? 'an unknown process' : `process ${busy.owner.pid}`;
        throw new LockTimeoutError(
          this.#tierName,
          `could not lock ${this.path} within ${this.#timeoutMs} ms: held by ${holder}`,
        );
      }
      await delay(backoff);
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    }
  }

  /** Undefined when the lock was taken; otherwise who holds it. */
  #attempt(): Busy | undefined {
    for (let round = 0; round < 4; round += 1) {
      let fd: number;
      try {
        fd = fs.openSync(this.path, 'wx', 0o600);
      } catch (error) {
        if (errno(error) !== 'EEXIST') throw error;
        const verdict = this.#inspect();
        if (verdict === 'gone') continue;
        if (verdict.stale) {
          this.#breakStale(verdict.text);
          continue;
        }
        return { owner: verdict.owner };
      }
      const nonce = randomBytes(8).toString('hex');
      const content = `${JSON.stringify({ pid: process.pid, start: SELF_START, host: HOST, nonce, at: Date.now() })}\n`;
      try {
        fs.writeSync(fd, content);
      } catch (error) {
        fs.closeSync(fd);
        fs.rmSync(this.path, { force: true });
        throw error;
      }
      this.#fd = fd;
      this.#acquisitions += 1;
      this.#nonce = nonce;
      this.#contentLength = Buffer.byteLength(content);
      this.#signalled = undefined;
      heldHere.add(nonce);
      return undefined;
    }
    return { owner: undefined };
  }

  #inspect(): 'gone' | { stale: boolean; text: string; owner: LockOwner | undefined } {
    let text: string;
    let mtimeMs: number;
    try {
      text = fs.readFileSync(this.path, 'utf8');
      mtimeMs = fs.statSync(this.path).mtimeMs;
    } catch (error) {
      if (errno(error) === 'ENOENT') return 'gone';
      throw error;
    }
    const owner = parseOwner(text);
    const age = Date.now() - mtimeMs;
    if (owner === undefined) return { stale: age > STALE_EMPTY_MS, text, owner };
    if (owner.host !== HOST) return { stale: age > STALE_UNVERIFIABLE_MS, text, owner };
    return { stale: !isAlive(owner), text, owner };
  }

  /**
   * Removes a stale lock without removing a fresh one that replaced it meanwhile: the file is
   * renamed aside first and only deleted if it still holds what was judged stale; otherwise it is
   * linked back.
   */
  #breakStale(judged: string): void {
    const aside = `${this.path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      fs.renameSync(this.path, aside);
    } catch (error) {
      if (errno(error) === 'ENOENT') return;
      throw error;
    }
    let text = '';
    try {
      text = fs.readFileSync(aside, 'utf8');
    } catch {
      // Unreadable: treat it as what was judged.
      text = judged;
    }
    if (text !== judged) {
      try {
        fs.linkSync(aside, this.path);
      } catch {
        // Someone took the lock meanwhile; the holder we displaced finds out when it releases.
      }
    }
    fs.rmSync(aside, { force: true });
  }

  /** Tells the current holder (by appending a byte to its lock file) that a process is waiting. */
  #signal(nonce: string): void {
    this.#signalled = nonce;
    let fd: number;
    try {
      fd = fs.openSync(this.path, fs.constants.O_WRONLY | fs.constants.O_APPEND);
    } catch {
      return;
    }
    try {
      fs.writeSync(fd, 'w');
    } catch {
      // Best effort: the holder also hands over on its own after a while.
    } finally {
      fs.closeSync(fd);
    }
  }

  /** True when another process appended to the lock file to say it waits. */
  waitersSignalled(): boolean {
    if (this.#fd === undefined) return false;
    return fs.fstatSync(this.#fd).size > this.#contentLength;
  }

  /** Refreshes the lock file's time, for holders that keep it through a long operation. */
  heartbeat(): void {
    if (this.#fd === undefined) return;
    const now = new Date();
    try {
      fs.futimesSync(this.#fd, now, now);
    } catch {
      // Only a liveness hint for other hosts.
    }
  }

  /** Releases the lock, deleting the file only if it is still this holder's. Idempotent. */
  release(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    heldHere.delete(this.#nonce);
    try {
      const mine = fs.fstatSync(fd).ino;
      const current = fs.statSync(this.path, { throwIfNoEntry: false });
      if (current !== undefined && current.ino === mine) fs.unlinkSync(this.path);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Removes lock files left aside by a stale-lock break that did not finish (its process died). */
export function removeStaleAsides(dir: string, names: readonly string[]): void {
  for (const name of names) {
    const match = /\.lock\.stale-(\d+)-[0-9a-f]+$/.exec(name);
    if (match === null) continue;
    const pid = Number(match[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (error) {
      alive = errno(error) !== 'ESRCH';
    }
    if (!alive || pid === process.pid) fs.rmSync(`${dir}/${name}`, { force: true });
  }
}

export { delay };
