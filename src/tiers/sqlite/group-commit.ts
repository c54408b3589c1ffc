// Group commit: writes issued close together share one transaction, so their cost is one commit
// (one fsync with synchronous=FULL) instead of one each. Every write's promise settles only
// after the transaction that holds it has committed (or failed): nothing is acknowledged early.
import { sqliteCode } from './driver.js';

/** What the queue needs from its owner to run a batch. `S` is the per-transaction scratch state. */
export interface BatchRunner<S> {
  /** Opens a write transaction (BEGIN IMMEDIATE) and returns fresh scratch state. */
  begin(): S;
  /** Runs after the batch's operations, before COMMIT (e.g. LRU eviction). */
  beforeCommit(state: S): void;
  commit(): void;
  /** Rolls back if a transaction is still open. Must not throw. */
  rollback(): void;
  /** Opens a savepoint around one write (only when a batch is retried write by write). */
  savepoint(): void;
  /** Keeps the writes since the savepoint. */
  release(): void;
  /** Undoes the writes since the savepoint and drops it. */
  rollbackToSavepoint(): void;
  /** Applies the effects of a committed transaction to in-memory state. */
  afterCommit(state: S): void;
  /** Undoes what `begin` took from in-memory state, after a rollback. */
  afterRollback(state: S): void;
  /** Turns an engine error into the coded error the callers receive. */
  wrap(error: unknown, doing: string): Error;
  /** Runs after a flush, outside it: callbacks that may queue writes again go here. */
  idle(): void;
}

interface Op<S> {
  run: (state: S) => unknown;
  resolve: ((value: unknown) => void) | undefined;
  reject: ((error: unknown) => void) | undefined;
  settled: boolean;
  failed: boolean;
  value: unknown;
}

/** Options of the queue. */
export interface GroupCommitOptions {
  /** How long the first write of a batch waits for others, in ms; 0 = the next turn of the event loop. */
  commitDelayMs: number;
  /** A batch reaching this many writes is committed at once. */
  maxBatch: number;
}

/**
 * A write is rejected alone, and its batch retried without it, when the failure belongs to that
 * write: a constraint it violates, or an error of its own (not an engine I/O, lock or corruption
 * error, which fails the whole transaction).
 */
function belongsToOperation(error: unknown): boolean {
  const code = sqliteCode(error);
  return code === undefined || code.startsWith('SQLITE_CONSTRAINT');
}

type Phase = 'begin' | 'write' | 'commit';

const DOING: Record<Phase, string> = {
  begin: 'starting a write transaction',
  write: 'writing',
  commit: 'committing a write transaction',
};

/** A batch's transaction failed in `phase` and was rolled back; `reason` is the original error. */
class TransactionFailed extends Error {
  constructor(
    readonly reason: unknown,
    readonly phase: Phase,
  ) {
    super('transaction failed');
  }
}

/** Counters of a write queue, for statistics and tests. */
export interface WriteStats {
  /** Transactions committed. */
  transactions: number;
  /** Writes acknowledged (their transaction committed). */
  writes: number;
  /** Writes rejected (their transaction failed, or they violated a constraint alone). */
  rejected: number;
  /** Transactions that failed and were rolled back (a retried batch counts once per attempt). */
  failedTransactions: number;
}

/** The write queue of one tier. */
export class GroupCommit<S> {
  /** Running totals since the queue was made. */
  readonly stats: WriteStats = { transactions: 0, writes: 0, rejected: 0, failedTransactions: 0 };
  readonly #runner: BatchRunner<S>;
  readonly #options: GroupCommitOptions;
  #queue: Op<S>[] = [];
  #scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
  #flushing = false;
  /** Work to do in the next transaction even without queued writes (access times). */
  #idleWork = false;

  constructor(runner: BatchRunner<S>, options: GroupCommitOptions) {
    this.#runner = runner;
    this.#options = options;
  }

  /** Writes waiting for their transaction. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Queues a write; resolves with what `run` returned once its transaction has committed. */
  enqueue<T>(run: (state: S) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        run,
        resolve: resolve as (value: unknown) => void,
        reject,
        settled: false,
        failed: false,
        value: undefined,
      });
      if (this.#queue.length >= this.#options.maxBatch) this.flushNow();
      else this.#schedule();
    });
  }

  /**
   * Runs a write synchronously, committing it together with every write already queued (which
   * keeps the order in which they were issued). Returns its result or throws its error.
   */
  runSync<T>(run: (state: S) => T): T {
    if (this.#flushing) {
      throw this.#runner.wrap(
        new Error('a synchronous write cannot run while a batch is being committed'),
        'writing',
      );
    }
    const op: Op<S> = {
      run,
      resolve: undefined,
      reject: undefined,
      settled: false,
      failed: false,
      value: undefined,
    };
    this.#queue.push(op);
    this.flushNow();
    if (op.failed) throw op.value;
    return op.value as T;
  }

  /** Asks for a transaction soon even if no write is queued (to persist access times). */
  requestIdleFlush(): void {
    this.#idleWork = true;
    this.#schedule();
  }

  /** Commits everything queued now, synchronously. */
  flushNow(): void {
    const scheduled = this.#scheduled;
    if (scheduled !== undefined) {
      // Each kind of handle to its own clear function: clearImmediate given a timer would
      // corrupt Node's immediate queue.
      if (this.#options.commitDelayMs === 0) clearImmediate(scheduled as NodeJS.Immediate);
      else clearTimeout(scheduled as NodeJS.Timeout);
      this.#scheduled = undefined;
    }
    // A flush never nests: callbacks run after it, and writes they queue go to the next batch.
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#queue.length > 0 || this.#idleWork) {
        const batch = this.#queue.splice(0, this.#options.maxBatch);
        this.#idleWork = false;
        this.#commitBatch(batch);
      }
    } finally {
      this.#flushing = false;
    }
    this.#runner.idle();
  }

  #schedule(): void {
    if (this.#scheduled !== undefined || this.#flushing) return;
    const run = () => {
      this.#scheduled = undefined;
      this.flushNow();
    };
    // Not unref'd: a queued write must commit even if nothing else keeps the process alive.
    this.#scheduled =
      this.#options.commitDelayMs === 0
        ? setImmediate(run)
        : setTimeout(run, this.#options.commitDelayMs);
  }

  #commitBatch(batch: Op<S>[]): void {
    // First attempt: the whole batch, no savepoints (the common case costs nothing extra). If one
    // write fails on its own, the transaction is rolled back and the batch is run again with a
    // savepoint around each write, so that write alone is rejected and the others commit.
    try {
      this.#attempt(batch, false);
      return;
    } catch (error) {
      if (!(error instanceof TransactionFailed)) throw error;
      if (error.phase !== 'write' || !belongsToOperation(error.reason)) {
        this.#failAll(batch, error);
        return;
      }
    }
    try {
      this.#attempt(batch, true);
    } catch (error) {
      if (!(error instanceof TransactionFailed)) throw error;
      this.#failAll(batch, error);
    }
  }

  #attempt(batch: Op<S>[], careful: boolean): void {
    const runner = this.#runner;
    let state: S;
    try {
      state = runner.begin();
    } catch (error) {
      runner.rollback();
      this.stats.failedTransactions += 1;
      throw new TransactionFailed(error, 'begin');
    }
    const results: unknown[] = new Array<unknown>(batch.length);
    const failedHere = new Map<number, unknown>();
    let phase: Phase = 'write';
    try {
      for (let index = 0; index < batch.length; index += 1) {
        const op = batch[index] as Op<S>;
        if (!careful) {
          results[index] = op.run(state);
          continue;
        }
        runner.savepoint();
        try {
          results[index] = op.run(state);
          runner.release();
        } catch (error) {
          if (!belongsToOperation(error)) throw error;
          runner.rollbackToSavepoint();
          failedHere.set(index, error);
        }
      }
      runner.beforeCommit(state);
      phase = 'commit';
      runner.commit();
    } catch (error) {
      runner.rollback();
      runner.afterRollback(state);
      this.stats.failedTransactions += 1;
      throw new TransactionFailed(error, phase);
    }
    this.stats.transactions += 1;
    runner.afterCommit(state);
    for (let index = 0; index < batch.length; index += 1) {
      const op = batch[index] as Op<S>;
      if (failedHere.has(index)) {
        this.#settle(op, true, runner.wrap(failedHere.get(index), DOING.write));
      } else this.#settle(op, false, results[index]);
    }
  }

  #failAll(batch: Op<S>[], failure: TransactionFailed): void {
    const error = this.#runner.wrap(failure.reason, DOING[failure.phase]);
    for (const op of batch) if (!op.settled) this.#settle(op, true, error);
  }

  #settle(op: Op<S>, failed: boolean, value: unknown): void {
    op.settled = true;
    op.failed = failed;
    if (failed) this.stats.rejected += 1;
    else this.stats.writes += 1;
    op.value = value;
    if (failed) op.reject?.(value);
    else op.resolve?.(value);
  }
}
