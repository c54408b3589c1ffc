// Queries as the stack handles them when no tier indexes them itself.
import { InvalidOptionError, UnsupportedOperationError } from './errors.js';
import {
  assertIntegerOption,
  assertOptionsObject,
  rejectUnknownOptions,
  type OptionNames,
} from './option-check.js';
import { HEALTH_STATUSES, describe, type HealthStatus, type ProxyEntry } from './record/entry.js';
import type { ProxyQuery, ProxyQueryOrder } from './tiers/tier.js';

/** The orders `query` accepts, the default first. */
export const QUERY_ORDERS: readonly ProxyQueryOrder[] = Object.freeze([
  'lastAccessed',
  'lastHealthCheck',
  'responseTime',
  'successRate',
]);

const QUERY_FILTER_NAMES: OptionNames<ProxyQuery> = Object.freeze({
  health: true,
  source: true,
  scheme: true,
  dueForCheck: true,
  orderBy: true,
  limit: true,
  includeExpired: true,
});

/** A query after validation, with its defaults: what every tier and the scan answer. */
export interface NormalizedQuery {
  /** Distinct and sorted; `undefined` for any status. */
  health: HealthStatus[] | undefined;
  source: string | undefined;
  /** Lower-cased. */
  scheme: string | undefined;
  dueForCheck: boolean;
  orderBy: ProxyQueryOrder;
  limit: number | undefined;
  includeExpired: boolean;
}

/**
 * Validates a `ProxyQuery` and fills its defaults. The one validator of queries: the stack, every
 * tier and the command line give the same query the same answer, or the same error, which names
 * the filter, what was expected and the value.
 */
export function normalizeQuery(query: ProxyQuery | undefined): NormalizedQuery {
  const given = query ?? {};
  assertOptionsObject('a query', given);
  rejectUnknownOptions('query', given, QUERY_FILTER_NAMES);
  let health: HealthStatus[] | undefined;
  if (given.health !== undefined) {
    const list: readonly unknown[] = Array.isArray(given.health) ? given.health : [given.health];
    if (list.length === 0) {
      throw new InvalidOptionError('"health" must name at least one health status, got []');
    }
    for (const status of list) {
      if (!HEALTH_STATUSES.includes(status as HealthStatus)) {
        throw new InvalidOptionError(
          `"health" must be one of ${HEALTH_STATUSES.join(', ')} (or an array of them), got ${describe(status)}`,
        );
      }
    }
    health = [...new Set(list as HealthStatus[])].sort();
  }
  const text = (field: 'source' | 'scheme'): string | undefined => {
    const value = given[field];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') {
      throw new InvalidOptionError(`"${field}" must be a non-empty string, got ${describe(value)}`);
    }
    return value;
  };
  const flag = (field: 'dueForCheck' | 'includeExpired'): boolean => {
    const value = given[field] ?? false;
    if (typeof value !== 'boolean') {
      throw new InvalidOptionError(`"${field}" must be a boolean, got ${describe(value)}`);
    }
    return value;
  };
  const orderBy = given.orderBy ?? 'lastAccessed';
  if (!QUERY_ORDERS.includes(orderBy)) {
    throw new InvalidOptionError(
      `"orderBy" must be one of ${QUERY_ORDERS.join(', ')}, got ${describe(orderBy)}`,
    );
  }
  const limit = given.limit;
  if (limit !== undefined) assertIntegerOption('limit', limit, 1);
  return {
    health,
    source: text('source'),
    scheme: text('scheme')?.toLowerCase(),
    dueForCheck: flag('dueForCheck'),
    orderBy,
    limit,
    includeExpired: flag('includeExpired'),
  };
}

/**
 * Answers a query by scanning every entry: for stacks without an indexing tier (memory, JSONL).
 * Memory use grows with the number of matches, which are sorted before `limit` applies.
 */
export async function scanQuery(
  entries: AsyncIterable<ProxyEntry>,
  query: NormalizedQuery,
  now: number,
): Promise<ProxyEntry[]> {
  const order = query.orderBy;
  if (order === 'responseTime') {
    throw new UnsupportedOperationError(
      'ordering by response time needs health history (the SQLite tier in its "l3" role)',
    );
  }
  const health = query.health === undefined ? undefined : new Set(query.health);
  const scheme = query.scheme;
  const matches: ProxyEntry[] = [];
  for await (const entry of entries) {
    if (health !== undefined && !health.has(entry.healthStatus)) continue;
    if (query.source !== undefined && entry.source !== query.source) continue;
    if (scheme !== undefined && !entry.proxyUrl.startsWith(`${scheme}://`)) continue;
    if (query.dueForCheck && entry.nextCheckTime !== undefined && entry.nextCheckTime > now) {
      continue;
    }
    matches.push(entry);
  }
  const rank = ranker(order);
  matches.sort((a, b) => rank(b) - rank(a) || (a.key < b.key ? -1 : 1));
  return query.limit === undefined ? matches : matches.slice(0, query.limit);
}

function ranker(order: Exclude<ProxyQuery['orderBy'], 'responseTime' | undefined>) {
  switch (order) {
    case 'lastHealthCheck':
      return (entry: ProxyEntry) => entry.lastHealthCheck ?? Number.NEGATIVE_INFINITY;
    case 'successRate':
      return (entry: ProxyEntry) =>
        entry.totalHealthChecks === 0
          ? -1
          : 1 - entry.totalHealthCheckFailures / entry.totalHealthChecks;
    case 'lastAccessed':
      return (entry: ProxyEntry) => entry.lastAccessed;
  }
}
