// `query()` filters and orders as SQL over the L3 tables. Each filter maps onto an index:
// source and health on (source, health_status) or idx_health_status, dueForCheck on
// next_check_time, expiry on idx_expires_at; the aggregate orders on the side table's indexes.
import type { NormalizedQuery } from '../../query.js';
import { ENTRY_FIELDS, STATS_TABLE } from './schema.js';

/** The SQL of one statement of a query and the values to bind. */
export interface QueryPhase {
  sql: string;
  params: unknown[];
  /** True when the statement ends in `LIMIT ?` and takes the number of rows still wanted. */
  limited: boolean;
}

/**
 * A query as one or two statements. The aggregate orders (`responseTime`, `successRate`) walk
 * the side table's index first, over the proxies that have aggregates; when that leaves room
 * under the limit, a second statement adds the proxies without aggregates (never checked, or no
 * response time measured), in key order. Each phase stays index-driven instead of sorting a
 * LEFT JOIN of the whole table.
 */
export interface BuiltQuery {
  phases: QueryPhase[];
}

const T = 'cache_entries';
const S = STATS_TABLE;
const SELECT_LIST = ENTRY_FIELDS.map((field) => `${T}.${field} AS ${field}`).join(', ');

/**
 * Builds the SQL for a normalized query. The statement text depends only on the query's shape
 * (which filters, how many health values, which order), so the tier caches one prepared
 * statement per shape.
 */
export function buildQuery(query: NormalizedQuery, nowSeconds: number): BuiltQuery {
  const where: string[] = [];
  const params: unknown[] = [];
  if (query.source !== undefined) {
    where.push(`${T}.source = ?`);
    params.push(query.source);
  }
  if (query.health !== undefined) {
    if (query.health.length === 1) where.push(`${T}.health_status = ?`);
    else where.push(`${T}.health_status IN (${query.health.map(() => '?').join(', ')})`);
    params.push(...query.health);
  }
  if (query.scheme !== undefined) {
    // A prefix range rather than LIKE: exact (LIKE is case-insensitive and treats _ as a
    // wildcard). ':/0' is the first string after every 'scheme://...' ('0' follows '/').
    where.push(`${T}.proxy_url >= ? AND ${T}.proxy_url < ?`);
    params.push(`${query.scheme}://`, `${query.scheme}:/0`);
  }
  if (query.dueForCheck) {
    // Two ranges of one index (SQLite's multi-index OR): never scheduled, or due by now.
    where.push(`(${T}.next_check_time IS NULL OR ${T}.next_check_time <= ?)`);
    params.push(nowSeconds);
  }
  if (!query.includeExpired) {
    // The unary + keeps SQLite from driving the query by idx_expires_at: the sweep removes
    // expired entries, so "not expired" selects nearly everything and another index is better.
    where.push(`+${T}.expires_at > ?`);
    params.push(nowSeconds);
  }
  const limit = query.limit === undefined ? '' : ' LIMIT ?';
  const limited = query.limit !== undefined;
  const withLimit = (values: unknown[]) => (limited ? [...values, query.limit] : values);
  const filters = (extra: string[]) => {
    const all = [...where, ...extra];
    return all.length === 0 ? '' : ` WHERE ${all.join(' AND ')}`;
  };

  if (query.orderBy === 'lastAccessed' || query.orderBy === 'lastHealthCheck') {
    const column = query.orderBy === 'lastAccessed' ? 'last_accessed' : 'last_health_check';
    // With an indexed filter, the filter's index drives the query and the (few) matches are
    // sorted; the unary + stops SQLite from walking the whole order index instead.
    const indexedFilter =
      query.source !== undefined || query.health !== undefined || query.dueForCheck;
    const sortKey = `${indexedFilter ? '+' : ''}${T}.${column}`;
    // Most recent first; never-checked proxies (NULL) come last in a DESC order.
    return {
      phases: [
        {
          sql: `SELECT ${SELECT_LIST} FROM ${T}${filters([])} ORDER BY ${sortKey} DESC, ${T}.key${limit}`,
          params: withLimit(params),
          limited,
        },
      ],
    };
  }
  const fastest = query.orderBy === 'responseTime';
  const measured = fastest ? [`${S}.mean_response_ms IS NOT NULL`] : [];
  const order = fastest
    ? `${S}.mean_response_ms, ${T}.key`
    : `${S}.success_rate DESC, ifnull(${S}.mean_response_ms, 1e308), ${T}.key`;
  const unmeasured = `NOT EXISTS (SELECT 1 FROM ${S} WHERE ${S}.key = ${T}.key${fastest ? ` AND ${S}.mean_response_ms IS NOT NULL` : ''})`;
  return {
    phases: [
      {
        sql: `SELECT ${SELECT_LIST} FROM ${T} JOIN ${S} ON ${S}.key = ${T}.key${filters(measured)} ORDER BY ${order}${limit}`,
        params: withLimit(params),
        limited,
      },
      {
        sql: `SELECT ${SELECT_LIST} FROM ${T}${filters([unmeasured])} ORDER BY ${T}.key${limit}`,
        params: withLimit(params),
        limited,
      },
    ],
  };
}
