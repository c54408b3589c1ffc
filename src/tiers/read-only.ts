// A read-only view of a persistent tier, for a cache opened with `readOnly: true` (recovering a
// store under a wrong key, inspecting a store without changing it). The cache refuses every
// public write itself with E_READ_ONLY; what reaches a tier through this view are the stack's own
// upkeep writes (recency, promotion flags, expiry on read, key checks), which are dropped, so
// nothing in the store changes. Reads pass through untouched.
//
// A Proxy rather than a class listing every member: a tier's optional members (synchronous
// reads, health queries, a change feed) must stay exactly as present or absent as on the tier.
import type { ProxyEntry } from '../record/entry.js';
import type { Tier } from './tier.js';

type Member = (...args: never[]) => unknown;

/**
 * What each dropped write answers (what the tier would say had nothing been stored), and reads
 * made as peeks where the tier has them: a tier that notes access times on reads (SQLite, JSONL)
 * would write them out later.
 */
function readOnlyMembers(tier: Tier): Record<string, Member> {
  const peekSync = tier.peekSync?.bind(tier);
  const peeks: Record<string, Member> =
    peekSync === undefined ? {} : { getSync: peekSync, get: async (key: string) => peekSync(key) };
  return {
    ...peeks,
    set: async () => undefined,
    setSync: () => undefined,
    update: async () => false,
    modify: async (key: string): Promise<ProxyEntry | undefined> => tier.get(key),
    touch: async () => undefined,
    delete: async () => false,
    deleteSync: () => false,
    clear: async () => 0,
    deleteExpired: async () => [],
    compact: async () => undefined,
    recordHealthCheck: async (key: string): Promise<ProxyEntry | undefined> => tier.get(key),
    importHealthHistory: async () => 0,
    recordKeyCheck: async () => undefined,
  };
}

/** `tier` seen through a view whose writes change nothing (see the module comment). */
export function readOnlyView(tier: Tier): Tier {
  const dropped = readOnlyMembers(tier);
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(tier, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      let member = bound.get(property);
      if (member === undefined) {
        member =
          typeof property === 'string' && Object.hasOwn(dropped, property)
            ? dropped[property]
            : (value as Member).bind(target);
        bound.set(property, member);
      }
      return member;
    },
  });
}
