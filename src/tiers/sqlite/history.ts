// Health-history rows as they cross the tier's boundary: the mapping of proxywhirl's
// `health_history` rows to `HealthCheckRecord`s. (Checks are validated by health.ts.)
import { InvalidOptionError } from '../../errors.js';
import { describe } from '../../record/entry.js';
import type { HealthCheckRecord } from '../tier.js';
import { toMs } from './codec.js';

/** A `health_history` row as the tier selects it (by column name). */
export interface HistoryRow {
  proxy_key: string;
  check_time: number;
  status: string;
  response_time_ms: number | null;
  error_message: string | null;
  check_url: string;
}

/** A stored row as a record (times in epoch ms). */
export function historyRecord(row: HistoryRow): HealthCheckRecord {
  return {
    key: row.proxy_key,
    checkTime: toMs(row.check_time),
    status: row.status === 'healthy' ? 'healthy' : 'unhealthy',
    responseTimeMs: row.response_time_ms ?? undefined,
    error: row.error_message ?? undefined,
    checkUrl: row.check_url,
  };
}

/** Checks one imported history row; the error names its position in the input. */
export function validateHistoryRow(row: HealthCheckRecord, index: number): HealthCheckRecord {
  const where = `health history row ${index}`;
  if (row === null || typeof row !== 'object') {
    throw new InvalidOptionError(`${where} must be an object, got ${describe(row)}`);
  }
  const { key, checkTime, status, responseTimeMs, error, checkUrl } = row;
  if (typeof key !== 'string' || key === '') {
    throw new InvalidOptionError(
      `${where}: "key" must be a non-empty string, got ${describe(key)}`,
    );
  }
  if (typeof checkTime !== 'number' || !Number.isFinite(checkTime)) {
    throw new InvalidOptionError(
      `${where}: "checkTime" must be a time in epoch ms, got ${describe(checkTime)}`,
    );
  }
  if (status !== 'healthy' && status !== 'unhealthy') {
    throw new InvalidOptionError(
      `${where}: "status" must be "healthy" or "unhealthy", got ${describe(status)}`,
    );
  }
  if (
    responseTimeMs !== undefined &&
    (typeof responseTimeMs !== 'number' || !Number.isFinite(responseTimeMs))
  ) {
    throw new InvalidOptionError(
      `${where}: "responseTimeMs" must be a number, got ${describe(responseTimeMs)}`,
    );
  }
  if (error !== undefined && typeof error !== 'string') {
    throw new InvalidOptionError(`${where}: "error" must be a string, got ${describe(error)}`);
  }
  if (typeof checkUrl !== 'string') {
    throw new InvalidOptionError(
      `${where}: "checkUrl" must be a string, got ${describe(checkUrl)}`,
    );
  }
  return row;
}
