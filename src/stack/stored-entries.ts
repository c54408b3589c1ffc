import type { Keyring } from '../crypto/keyring.js';
import { TierUnavailableError } from '../errors.js';
import type { ProxyEntry } from '../record/entry.js';
import { Secret } from '../record/secret.js';
import type { EntryChange, SealedCredentials, Tier } from '../tiers/tier.js';
import { FAILED, type TierSlot } from './tier-slot.js';
import type { TierStack } from './tier-stack.js';

/** Walks every tier's keys (and entries when asked), skipping keys a faster tier holds. */
export async function* walkStack(
  stack: TierStack,
  withEntries: boolean,
): AsyncIterable<[string, ProxyEntry | undefined]> {
  const now = stack.clock.now();
  const usable = stack.slots.filter((slot) => slot.available(now));
  for (let index = 0; index < usable.length; index += 1) {
    const slot = usable[index] as TierSlot;
    const faster = usable.slice(0, index);
    try {
      if (withEntries) {
        for await (const entry of slot.tier.entries()) {
          if (!(await heldByAny(faster, entry.key))) yield [entry.key, entry];
        }
      } else {
        for await (const key of slot.tier.keys()) {
          if (!(await heldByAny(faster, key))) yield [key, undefined];
        }
      }
    } catch (error) {
      slot.failed(error);
    }
  }
}

async function heldByAny(slots: TierSlot[], key: string): Promise<boolean> {
  for (const slot of slots) {
    const { tier } = slot;
    const held = tier.hasSync !== undefined ? tier.hasSync(key) : await tier.has(key);
    if (held) return true;
  }
  return false;
}

/**
 * Calls `visit` for every entry stored in every tier in service (each tier's own copy); when
 * `visit` resolves true and `readOnly` is false, the entry is written back to that tier.
 */
export async function forEachStoredEntry(
  stack: TierStack,
  readOnly: boolean,
  visit: (entry: ProxyEntry, tier: Tier) => Promise<boolean>,
): Promise<void> {
  const now = stack.clock.now();
  for (const slot of stack.slots) {
    if (!slot.available(now)) continue;
    const { tier } = slot;
    try {
      for await (const entry of tier.entries()) {
        const changed = await visit(entry, tier);
        if (changed && !readOnly && tier.persistent) {
          if ((await slot.call(() => tier.set(entry))) === FAILED) {
            throw new TierUnavailableError(`writing to the "${tier.name}" tier failed`);
          }
        }
      }
    } catch (error) {
      if (error instanceof TierUnavailableError) throw error;
      slot.failed(error);
      throw new TierUnavailableError(`reading the "${tier.name}" tier failed`, { cause: error });
    }
  }
}

/** Stored credential tokens by the key that made them (see `ProxyCache.tokenReport`). */
export interface TokenReport {
  /** Under the keyring's current key. */
  current: number;
  /** Under one of its previous keys (a rotation will re-encrypt them). */
  previous: number;
  /** Under no key of the keyring. */
  unreadable: number;
}

/** What `reencryptStored` did, counted over the persistent tiers' tokens. */
export interface ReencryptReport extends TokenReport {
  /** Tokens this pass re-encrypted under the current key. */
  reencrypted: number;
}

/** How many entries one re-encryption pass changes at once (SQLite commits them in groups). */
const REENCRYPT_IN_FLIGHT = 64;
const CREDENTIAL_FIELDS = ['username', 'password'] as const;

/**
 * Re-encrypts under `keyring`'s current key every stored token that a previous key made, in
 * every tier in service. Each entry is changed with the tier's atomic `modify`: the tokens are
 * read and replaced in one step, as stored at that moment, and nothing else of the entry is
 * written, so health checks and writes other processes make meanwhile survive, and a token
 * another writer replaced since the scan is never overwritten with an older one. Tokens no key
 * decrypts are counted and left as they are. `onProgress` gets the persistent entries seen.
 */
export async function reencryptStored(
  stack: TierStack,
  keyring: Keyring,
  onProgress?: (entriesSeen: number) => void,
): Promise<ReencryptReport> {
  const report: ReencryptReport = { reencrypted: 0, current: 0, previous: 0, unreadable: 0 };
  const change: EntryChange = (stored) => resealed(stored, keyring);
  let seen = 0;
  const now = stack.clock.now();
  for (const slot of stack.slots) {
    if (!slot.available(now)) continue;
    const { tier } = slot;
    // The memory tier's copies get new tokens too (so that a later write does not store an old
    // one) but only the persistent tiers' tokens are counted.
    const counted = tier.persistent;
    const inFlight = new Set<Promise<void>>();
    const reseal = async (entry: ProxyEntry): Promise<void> => {
      const after = await slot.call(() => tier.modify(entry.key, change));
      if (after === FAILED) {
        throw new TierUnavailableError(`re-encrypting in the "${tier.name}" tier failed`);
      }
      if (counted && after !== undefined) countAfter(report, entry, after, keyring);
    };
    try {
      for await (const entry of tier.entries()) {
        if (counted) {
          seen += 1;
          if (seen % 1_000 === 0) onProgress?.(seen);
        }
        if (!needsReseal(entry, keyring)) {
          if (counted) countAsRead(report, entry, keyring);
          continue;
        }
        const job = reseal(entry).finally(() => inFlight.delete(job));
        inFlight.add(job);
        if (inFlight.size >= REENCRYPT_IN_FLIGHT) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    } catch (error) {
      await Promise.allSettled(inFlight);
      if (error instanceof TierUnavailableError) throw error;
      slot.failed(error);
      throw new TierUnavailableError(`reading the "${tier.name}" tier failed`, { cause: error });
    }
  }
  onProgress?.(seen);
  return report;
}

function needsReseal(entry: ProxyEntry, keyring: Keyring): boolean {
  return CREDENTIAL_FIELDS.some((field) => {
    const token = entry[field]?.token;
    return token !== undefined && !keyring.isCurrent(token);
  });
}

/** The change of one entry: its tokens under a previous key, re-encrypted under the current one. */
function resealed(stored: ProxyEntry, keyring: Keyring): SealedCredentials | undefined {
  let patch: SealedCredentials | undefined;
  for (const field of CREDENTIAL_FIELDS) {
    const token = stored[field]?.token;
    if (token === undefined || keyring.isCurrent(token)) continue;
    let next: string;
    try {
      next = keyring.rotate(token);
    } catch {
      continue; // No key decrypts it: counted as unreadable, kept as it is.
    }
    patch ??= {};
    patch[field] = Secret.fromToken(next, keyring, `${field} of entry ${stored.key}`);
  }
  return patch;
}

/** Counts an entry left alone: every token is current or unreadable. */
function countAsRead(report: TokenReport, entry: ProxyEntry, keyring: Keyring): void {
  for (const field of CREDENTIAL_FIELDS) {
    const token = entry[field]?.token;
    if (token === undefined) continue;
    if (keyring.isCurrent(token)) report.current += 1;
    else report.unreadable += 1;
  }
}

/** Counts an entry after its `modify`: tokens that changed were re-encrypted (by this pass). */
function countAfter(
  report: ReencryptReport,
  before: ProxyEntry,
  after: ProxyEntry,
  keyring: Keyring,
): void {
  for (const field of CREDENTIAL_FIELDS) {
    const token = after[field]?.token;
    if (token === undefined) continue;
    if (!keyring.isCurrent(token)) report.unreadable += 1;
    else if (token === before[field]?.token) report.current += 1;
    else report.reencrypted += 1;
  }
}
