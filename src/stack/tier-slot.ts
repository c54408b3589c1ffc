import type { Clock } from '../clock.js';
import {
  InvalidEntryError,
  InvalidOptionError,
  TierBusyError,
  TierError,
  TierTimeoutError,
} from '../errors.js';
import type { Logger } from '../logger.js';
import { TierCounters } from '../stats.js';
import type { Tier, TierContext } from '../tiers/tier.js';
import { describeError } from '../describe-error.js';
import { ReplayLog } from './replay-log.js';

/** What a slot's call resolves when the tier failed it (after any retries). */
export const FAILED = Symbol('failed');
export type Failed = typeof FAILED;

/** Settings and callbacks a slot shares with the rest of its stack. */
export interface SlotSettings {
  clock: Clock;
  logger: Logger;
  /** Consecutive failed calls after which the tier is switched off. */
  failureThreshold: number;
  /** How long a switched-off tier waits before one call probes it again, in ms. */
  probeIntervalMs: number;
  /** How long a busy tier's call is retried when the tier sets no `timeoutMs`, in ms. */
  busyRetryMs: number;
  /** Most keys whose writes are held for replay per tier (deletes are always held). */
  replayLimit: number;
  /** The tier was switched off; `why` completes "tier X ...". */
  onDegrade(slot: TierSlot, error: Error, why: string): void;
  /** The tier works again: the stack replays what it missed. */
  onRecover(slot: TierSlot): void;
}

// Back-off between retries of a busy tier: doubling from 2 ms, at most 100 ms apart.
const FIRST_RETRY_MS = 2;
const MAX_RETRY_GAP_MS = 100;

/**
 * One tier of a stack and everything the stack knows about it: its counters, its circuit
 * breaker (consecutive failures, switched off, next probe), its time limits, and the changes it
 * missed while switched off (its replay log). Every call the stack makes to a tier goes through
 * its slot, so a failure is counted and acted on in one place.
 */
export class TierSlot {
  readonly counters = new TierCounters();
  readonly replay: ReplayLog;
  consecutiveFailures = 0;
  /** True while switched off after consecutive failures (or a failed open). */
  degraded = false;
  /** Set while the tier could not be opened; its probe is another attempt to open it. */
  unopened = false;
  /** True while a replay of held changes runs. */
  replaying = false;
  /** Set when a replay was asked for while one ran (the tier recovered again meanwhile). */
  replayRequested = false;
  #nextProbeAt = 0;
  #reopening = false;
  #context: TierContext | undefined;

  constructor(
    readonly tier: Tier,
    /** Position in the stack: 1 for L1. */
    readonly level: number,
    readonly settings: SlotSettings,
  ) {
    this.replay = new ReplayLog(settings.replayLimit);
  }

  /** Opens the tier; a tier that cannot open starts switched off and is re-opened by a probe. */
  async open(context: TierContext): Promise<unknown> {
    this.#context = context;
    try {
      await this.tier.open(context);
      return undefined;
    } catch (error) {
      this.unopened = true;
      this.failed(error, true);
      return error;
    }
  }

  /** True when the tier takes calls now: in service, or switched off with its probe due. */
  available(now: number): boolean {
    if (!this.degraded) return true;
    if (now < this.#nextProbeAt) return false;
    this.#nextProbeAt = now + this.settings.probeIntervalMs;
    if (this.unopened) {
      // A tier that never opened is probed by opening it again, in the background.
      if (!this.#reopening) void this.#reopen();
      return false;
    }
    return true;
  }

  /**
   * Runs one call of the tier: within the tier's `timeoutMs` when it sets one, retried with
   * back-off (on the clock, never blocking) while the tier answers `E_TIER_BUSY`, until the time
   * budget is spent. Resolves the result, or `FAILED` after counting the failure. A caller's
   * mistake (a bad option or entry) is thrown back and not counted against the tier.
   */
  async call<T>(work: () => T | Promise<T>): Promise<T | Failed> {
    const { clock } = this.settings;
    const budgetMs = this.tier.timeoutMs ?? this.settings.busyRetryMs;
    const deadline = clock.now() + budgetMs;
    let gap = FIRST_RETRY_MS;
    for (;;) {
      try {
        const result = await this.#timed(work);
        if (this.consecutiveFailures !== 0 || this.degraded) this.succeeded();
        return result;
      } catch (error) {
        if (error instanceof InvalidOptionError || error instanceof InvalidEntryError) throw error;
        const left = deadline - clock.now();
        if (error instanceof TierBusyError && left > 0) {
          await sleep(clock, Math.min(gap, left));
          gap = Math.min(gap * 2, MAX_RETRY_GAP_MS);
          continue;
        }
        this.failed(error);
        this.lastError = error;
        return FAILED;
      }
    }
  }

  /** The last failure a `call` returned `FAILED` for; the stack puts it in its error's cause. */
  lastError: unknown;

  /** A synchronous call (a tier's `*Sync` method): no retries, the failure counted. */
  callSync<T>(work: () => T): T | Failed {
    try {
      const result = work();
      if (this.consecutiveFailures !== 0 || this.degraded) this.succeeded();
      return result;
    } catch (error) {
      if (error instanceof InvalidOptionError || error instanceof InvalidEntryError) throw error;
      this.failed(error);
      this.lastError = error;
      return FAILED;
    }
  }

  succeeded(): void {
    this.consecutiveFailures = 0;
    if (!this.degraded) return;
    this.degraded = false;
    this.settings.logger.info(`tier "${this.tier.name}" works again and is back in service`);
    this.settings.onRecover(this);
  }

  /** Counts a failure; `atOnce` switches the tier off without waiting for the threshold. */
  failed(error: unknown, atOnce = false): void {
    this.counters.errors += 1;
    this.consecutiveFailures += 1;
    if (this.degraded) return;
    const { logger, failureThreshold, probeIntervalMs, clock } = this.settings;
    logger.debug(`tier "${this.tier.name}" failed: ${describeError(error)}`);
    if (!atOnce && this.consecutiveFailures < failureThreshold) return;
    this.degraded = true;
    this.counters.degradations += 1;
    this.#nextProbeAt = clock.now() + probeIntervalMs;
    const why = atOnce
      ? 'could not be opened'
      : `failed ${this.consecutiveFailures} times in a row`;
    logger.warn(
      `tier "${this.tier.name}" ${why} and is switched off (${describeError(error)}); the other tiers keep serving`,
    );
    const asError = error instanceof Error ? error : new TierError(this.tier.name, String(error));
    this.settings.onDegrade(this, asError, why);
  }

  async #reopen(): Promise<void> {
    this.#reopening = true;
    try {
      // A tier whose open failed holds nothing open, so it is simply opened again.
      await this.tier.open(this.#context as TierContext);
      this.unopened = false;
      this.succeeded();
    } catch (error) {
      this.failed(error);
    } finally {
      this.#reopening = false;
    }
  }

  #timed<T>(work: () => T | Promise<T>): Promise<T> {
    const { timeoutMs } = this.tier;
    if (timeoutMs === undefined) return Promise.resolve().then(work);
    return new Promise<T>((resolve, reject) => {
      const timer = this.settings.clock.after(timeoutMs, () => {
        reject(
          new TierTimeoutError(
            this.tier.name,
            `tier "${this.tier.name}" did not answer within ${timeoutMs} ms`,
          ),
        );
      });
      Promise.resolve()
        .then(work)
        .then(
          (value) => {
            timer.cancel();
            resolve(value);
          },
          (error: unknown) => {
            timer.cancel();
            reject(error instanceof Error ? error : new Error(String(error)));
          },
        );
    });
  }
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.after(ms, resolve);
  });
}
