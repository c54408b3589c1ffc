// Storing parsed records in a cache: each checked once, compared with what the cache holds under
// its key, and written with bounded concurrency but in input order per key. See docs/formats.md,
// "Storing".
import { ImportAbortedError, InvalidOptionError, ProxyTierError } from '../errors.js';
import {
  assertIntegerOption,
  assertOptionsObject,
  rejectUnknownOptions,
  type OptionNames,
} from '../option-check.js';
import type { ProxyCache } from '../proxy-cache.js';
import {
  createEntry,
  ENTRY_FIELDS,
  type ProxyEntry,
  type ProxyEntryInput,
} from '../record/entry.js';
import type { Secret } from '../record/secret.js';
import { describeEntryError } from './fields.js';
import type { ImportItem } from './import.js';

/** What `importRecords` did. */
export interface ImportSummary {
  /** Records stored under a key the cache did not hold. */
  loaded: number;
  /** Records that replaced a live entry the cache held (`peek`) with different fields. */
  updated: number;
  /**
   * Records without times of their own whose stored entry had expired: stored again with a new
   * fetch time and expiry, even when identical, as proxywhirl's `warm_from_file` does.
   */
  refreshed: number;
  /** Records identical to a live entry the cache held (for example the same proxy twice in one input). */
  skipped: number;
  /**
   * Records stored with `keepTimes` whose expiry had already passed: they are stored, but read
   * as misses and go at the next sweep. Always 0 without `keepTimes`.
   */
  expired: number;
  /** Records not stored: malformed, invalid, or refused by the cache. */
  failed: number;
  /** Every failure, in input order. */
  failures: ImportFailure[];
}

export interface ImportFailure {
  line: number;
  /** `line N: ` and what was wrong; never a credential. */
  reason: string;
}

/** Options of `importRecords`. */
export interface ImportOptions {
  /** Called with the number of records finished (stored, skipped or failed) after each one. */
  onProgress?(done: number): void;
  /**
   * Failures tolerated: the next one stops the import with `ImportAbortedError`
   * (`E_IMPORT_ABORTED`, carrying the summary so far). Default: no limit.
   */
  maxErrors?: number;
  /** Writes in flight at once (default 64), so a persistent tier can commit them in groups. */
  concurrency?: number;
  /**
   * Keep the fetch time and expiry that records state (an export, a migration). By default they
   * are reset, as proxywhirl's `warm_from_file` does: each record is fetched now and expires
   * after `ttlSeconds`, else its own TTL, else the cache's TTL for its source. Default `false`.
   */
  keepTimes?: boolean;
  /**
   * The TTL of every record stored with reset times, in seconds, over the record's own. Ignored
   * with `keepTimes`. Default: the record's TTL, else the cache's for its source.
   */
  ttlSeconds?: number;
}

const IMPORT_OPTION_NAMES: OptionNames<ImportOptions> = Object.freeze({
  onProgress: true,
  maxErrors: true,
  concurrency: true,
  keepTimes: true,
  ttlSeconds: true,
});

/**
 * Stores parsed records in `cache`. Each record is checked with `createEntry`, compared with what
 * the cache holds under its key (`peek`, which changes nothing) and written with `put` unless it is
 * identical; the cache applies its own defaults (TTL per source, fetch time) to fields a record
 * leaves out. Writes run with bounded concurrency but in input order per key, so the last record
 * of a key wins. A failed record is counted with its line and reason; nothing valid is lost.
 *
 * "Identical" compares the proxy URL, the credentials (a record without credentials is not the
 * same as an entry with them), and every other field the record gives; fields it leaves out
 * (statistics, health) are not compared, and a skipped record leaves the entry untouched.
 *
 * @throws ImportAbortedError (`E_IMPORT_ABORTED`) when failures exceed `maxErrors`; the error's
 *   `summary` tells what was done. Errors thrown by `items` itself (for example `ImportFormatError`
 *   or a read error) propagate after the writes in flight have finished.
 */
export async function importRecords(
  cache: ProxyCache,
  items: AsyncIterable<ImportItem>,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  assertOptionsObject('importRecords', options);
  rejectUnknownOptions('importRecords', options, IMPORT_OPTION_NAMES);
  const concurrency = options.concurrency ?? 64;
  assertIntegerOption('concurrency', concurrency, 1);
  const keepTimes = options.keepTimes ?? false;
  if (typeof keepTimes !== 'boolean') {
    throw new InvalidOptionError(`"keepTimes" must be a boolean, got ${typeof keepTimes}`);
  }
  const ttlSeconds = options.ttlSeconds;
  if (ttlSeconds !== undefined) assertIntegerOption('ttlSeconds', ttlSeconds, 0);
  const maxErrors = options.maxErrors ?? Number.POSITIVE_INFINITY;
  if (
    maxErrors !== Number.POSITIVE_INFINITY &&
    !(Number.isSafeInteger(maxErrors) && maxErrors >= 0)
  ) {
    throw new InvalidOptionError(
      `"maxErrors" must be a non-negative integer, got ${String(maxErrors)}`,
    );
  }
  const summary: ImportSummary = {
    loaded: 0,
    updated: 0,
    refreshed: 0,
    skipped: 0,
    expired: 0,
    failed: 0,
    failures: [],
  };
  const onProgress = options.onProgress;
  let done = 0;
  // A throwing callback stops the import (after the writes in flight) instead of being taken for
  // a failure of the record that happened to call it.
  let callbackError: { error: unknown } | undefined;
  const finished = (): void => {
    done += 1;
    if (onProgress === undefined || callbackError !== undefined) return;
    try {
      onProgress(done);
    } catch (error) {
      callbackError = { error };
    }
  };
  const fail = (line: number, reason: string): void => {
    summary.failed += 1;
    summary.failures.push({ line, reason });
    finished();
  };
  const inFlight = new Set<Promise<void>>();
  // The last write of each key in flight: the next record of that key waits for it.
  const lastOfKey = new Map<string, Promise<void>>();
  const defaults = { now: 0, ttlSecondsFor: () => 0 };

  const store = async (line: number, input: ProxyEntryInput, candidate: ProxyEntry) => {
    try {
      // An expired stored entry is stored again, with a new fetch time and expiry, even when the
      // record matches it: the user re-imports a list to have its proxies back, not to be told
      // they are there already. A record that states its own times (an export, a migration) is
      // compared as it is, so importing it twice still changes nothing.
      const existing = await cache.peek(candidate.key, { includeExpired: true });
      const expired =
        existing !== undefined &&
        existing.expiresAt <= cache.clock.now() &&
        input.fetchTime === undefined &&
        input.expiresAt === undefined;
      if (existing !== undefined && !expired && sameAsStored(input, candidate, existing)) {
        summary.skipped += 1;
      } else {
        const stored = await cache.put(input);
        if (keepTimes && stored.expiresAt <= cache.clock.now()) summary.expired += 1;
        if (existing === undefined) summary.loaded += 1;
        else if (expired) summary.refreshed += 1;
        else summary.updated += 1;
      }
      finished();
    } catch (error) {
      fail(line, `line ${line}: not stored: ${describeStoreError(error)}`);
    }
  };

  const drain = async () => {
    while (inFlight.size > 0) await Promise.all([...inFlight]);
  };
  try {
    for await (const item of items) {
      if (summary.failed > maxErrors || callbackError !== undefined) break;
      if ('error' in item) {
        fail(item.line, item.error);
        continue;
      }
      const input = keepTimes ? item.input : withResetTimes(item.input, ttlSeconds);
      let candidate: ProxyEntry;
      try {
        defaults.now = cache.clock.now();
        candidate = createEntry(input, defaults);
      } catch (error) {
        fail(item.line, `line ${item.line}: ${describeEntryError(error)}`);
        continue;
      }
      const { key } = candidate;
      const before = lastOfKey.get(key);
      const write: Promise<void> =
        before === undefined
          ? store(item.line, input, candidate)
          : before.then(() => store(item.line, input, candidate));
      lastOfKey.set(key, write);
      inFlight.add(write);
      void write.then(() => {
        inFlight.delete(write);
        if (lastOfKey.get(key) === write) lastOfKey.delete(key);
      });
      if (inFlight.size >= concurrency) await Promise.race(inFlight);
    }
  } finally {
    await drain();
  }
  if (callbackError !== undefined) throw callbackError.error;
  // Writes finish out of order; failures are reported in input order.
  summary.failures.sort((a, b) => a.line - b.line);
  if (summary.failed > maxErrors) {
    throw new ImportAbortedError(
      `import stopped after ${summary.failed} failed records (more than maxErrors = ${maxErrors}); first: ${summary.failures[0]?.reason ?? ''}`,
      summary,
    );
  }
  return summary;
}

/** The record without its fetch time and expiry (the cache sets both from now), with `ttlSeconds`. */
function withResetTimes(input: ProxyEntryInput, ttlSeconds: number | undefined): ProxyEntryInput {
  const { fetchTime: _fetchTime, expiresAt: _expiresAt, ...rest } = input;
  return ttlSeconds === undefined ? rest : { ...rest, ttlSeconds };
}

// Every field but the key and the URL (the key derives from the URL) and the credentials.
const COMPARED_FIELDS = ENTRY_FIELDS.filter((field) => field !== 'key' && field !== 'proxyUrl');

/** True when storing `input` (validated as `candidate`) would change nothing the input states. */
function sameAsStored(input: ProxyEntryInput, candidate: ProxyEntry, stored: ProxyEntry): boolean {
  if (candidate.proxyUrl !== stored.proxyUrl) return false;
  if (!sameSecret(candidate.username, stored.username)) return false;
  if (!sameSecret(candidate.password, stored.password)) return false;
  for (const field of COMPARED_FIELDS) {
    if (input[field] === undefined) continue;
    if (candidate[field] !== stored[field]) return false;
  }
  return true;
}

function sameSecret(a: Secret | undefined, b: Secret | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  if (a.token !== undefined && a.token === b.token) return true;
  try {
    return a.reveal() === b.reveal();
  } catch {
    return false;
  }
}

function describeStoreError(error: unknown): string {
  if (error instanceof ProxyTierError) return `${error.code}: ${describeEntryError(error)}`;
  return error instanceof Error ? error.message : String(error);
}
