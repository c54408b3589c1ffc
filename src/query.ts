// Health checks and queries as the stack handles them when no tier indexes them itself.
import { InvalidOptionError, UnsupportedOperationError } from './errors.js';
import type { HealthPatch, TimedHealthCheck } from './health.js';
import { HEALTH_STATUSES, type ProxyEntry } from './record/entry.js';
import type { HealthCheckInput, ProxyQuery } from './tiers/tier.js';

const QUERY_ORDERS = ['lastHealthCheck', 'responseTime', 'successRate', 'lastAccessed'] as const;

/** Checks a health check given by a caller and fills its time; errors name the field. */
export function validateHealthCheck(check: HealthCheckInput, now: number): TimedHealthCheck {
  if (check === null || typeof check !== 'object') {
    throw new InvalidOptionError(`a health check must be an object, got ${typeof check}`);
  }
  if (check.status !== 'healthy' && check.status !== 'unhealthy') {
    throw new InvalidOptionError(
      `"status" of a health check must be "healthy" or "unhealthy", got ${JSON.stringify(check.status)}`,
    );
  }
  if (typeof check.checkUrl !== 'string' || check.checkUrl === '') {
    throw new InvalidOptionError('"checkUrl" of a health check must be a non-empty string');
  }
  const { responseTimeMs, error, at } = check;
  if (responseTimeMs !== undefined && !(Number.isFinite(responseTimeMs) && responseTimeMs >= 0)) {
    throw new InvalidOptionError(
      `"responseTimeMs" of a health check must be a non-negative number, got ${String(responseTimeMs)}`,
    );
  }
  if (error !== undefined && typeof error !== 'string') {
    throw new InvalidOptionError(`"error" of a health check must be a string, got ${typeof error}`);
  }
  if (at !== undefined && !Number.isFinite(at)) {
    throw new InvalidOptionError(
      `"at" of a health check must be epoch milliseconds, got ${String(at)}`,
    );
  }
  return { ...check, at: at ?? now };
}

/** The health fields of an entry, as a patch for the other tiers. */
export function healthFields(entry: ProxyEntry): HealthPatch {
  return {
    healthStatus: entry.healthStatus,
    lastHealthCheck: entry.lastHealthCheck,
    consecutiveHealthFailures: entry.consecutiveHealthFailures,
    consecutiveHealthSuccesses: entry.consecutiveHealthSuccesses,
    recoveryAttempt: entry.recoveryAttempt,
    nextCheckTime: entry.nextCheckTime,
    lastHealthError: entry.lastHealthError,
    totalHealthChecks: entry.totalHealthChecks,
    totalHealthCheckFailures: entry.totalHealthCheckFailures,
  };
}

/** Checks the fields of a query; errors name the field, the expectation and the value. */
export function validateQuery(query: ProxyQuery): void {
  if (query === null || typeof query !== 'object') {
    throw new InvalidOptionError(`a query must be an object, got ${typeof query}`);
  }
  const health = query.health === undefined ? [] : [query.health].flat();
  for (const status of health) {
    if (!HEALTH_STATUSES.includes(status)) {
      throw new InvalidOptionError(
        `"health" must be one of ${HEALTH_STATUSES.join(', ')}, got ${JSON.stringify(status)}`,
      );
    }
  }
  if (query.orderBy !== undefined && !QUERY_ORDERS.includes(query.orderBy)) {
    throw new InvalidOptionError(
      `"orderBy" must be one of ${QUERY_ORDERS.join(', ')}, got ${JSON.stringify(query.orderBy)}`,
    );
  }
  if (query.limit !== undefined && !(Number.isSafeInteger(query.limit) && query.limit > 0)) {
    throw new InvalidOptionError(`"limit" must be a positive integer, got ${String(query.limit)}`);
  }
}

/**
 * Answers a query by scanning every entry: for stacks without an indexing tier (memory, JSONL).
 * Memory use grows with the number of matches, which are sorted before `limit` applies.
 */
export async function scanQuery(
  entries: AsyncIterable<ProxyEntry>,
  query: ProxyQuery,
  now: number,
): Promise<ProxyEntry[]> {
  validateQuery(query);
  const order = query.orderBy ?? 'lastAccessed';
  if (order === 'responseTime') {
    throw new UnsupportedOperationError(
      'ordering by response time needs health history (the SQLite tier in its "l3" role)',
    );
  }
  const health = query.health === undefined ? undefined : new Set([query.health].flat());
  const scheme = query.scheme?.toLowerCase();
  const matches: ProxyEntry[] = [];
  for await (const entry of entries) {
    if (health !== undefined && !health.has(entry.healthStatus)) continue;
    if (query.source !== undefined && entry.source !== query.source) continue;
    if (scheme !== undefined && !entry.proxyUrl.startsWith(`${scheme}://`)) continue;
    if (
      query.dueForCheck === true &&
      entry.nextCheckTime !== undefined &&
      entry.nextCheckTime > now
    ) {
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
