/**
 * Time as the cache sees it. Every expiry decision and every timer goes through a `Clock`, so a
 * test can inject a `ManualClock`, call `advance()`, and never sleep.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Calls `callback` every `intervalMs` until the returned handle is cancelled. A real timer must
   * not keep the process alive on its own (it is `unref`ed).
   */
  every(intervalMs: number, callback: () => unknown): TimerHandle;
}

/** A repeating timer started by `Clock.every`. */
export interface TimerHandle {
  cancel(): void;
}

// Reading the wall clock costs more than an L1 hit, so a reading is reused for up to 1 ms
// (lru-cache does the same for its TTLs). An entry may therefore be served up to 1 ms after it
// expires, a precision no proxy TTL needs.
let cachedNow = 0;
function forgetNow(): void {
  cachedNow = 0;
}

/**
 * The wall clock: `Date.now()` read at most once per millisecond, and `setInterval` timers that
 * do not hold the process open.
 */
export const systemClock: Clock = Object.freeze({
  now(): number {
    if (cachedNow !== 0) return cachedNow;
    cachedNow = Date.now();
    setTimeout(forgetNow, 1).unref();
    return cachedNow;
  },
  every(intervalMs: number, callback: () => unknown): TimerHandle {
    const timer = setInterval(callback, intervalMs);
    timer.unref();
    return { cancel: () => clearInterval(timer) };
  },
});

interface ManualTimer {
  intervalMs: number;
  dueAt: number;
  callback: () => unknown;
  cancelled: boolean;
}

/**
 * A clock that moves only when told to. `advance(ms)` runs every timer that falls due, in time
 * order, and resolves once the promises those timers returned have settled.
 *
 * @example
 * const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
 * const cache = await ProxyCache.open({ clock });
 * await clock.advance(61_000); // expiry sweeps that fell due have run
 */
export class ManualClock implements Clock {
  #now: number;
  #timers = new Set<ManualTimer>();

  /** @param start epoch milliseconds to start at (default `Date.now()` when constructed). */
  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  every(intervalMs: number, callback: () => unknown): TimerHandle {
    const timer: ManualTimer = {
      intervalMs,
      dueAt: this.#now + intervalMs,
      callback,
      cancelled: false,
    };
    this.#timers.add(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
        this.#timers.delete(timer);
      },
    };
  }

  /** Number of live timers; lets a test check that `close()` stopped them. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Sets the time without running timers (for example to step backwards in a test). */
  set(epochMs: number): void {
    this.#now = epochMs;
  }

  /** Moves time forward by `ms`, running each timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const timer of this.#timers) {
        if (timer.dueAt <= target && (next === undefined || timer.dueAt < next.dueAt)) next = timer;
      }
      if (next === undefined) break;
      this.#now = next.dueAt;
      next.dueAt += next.intervalMs;
      await next.callback();
    }
    this.#now = target;
  }
}
