import { TierUnavailableError } from '../errors.js';
import type { ProxyEntry } from '../record/entry.js';
import type { Tier } from '../tiers/tier.js';
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
