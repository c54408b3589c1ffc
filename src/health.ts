/**
 * The health policy: how one health check changes a proxy's health fields. It is a pure function
 * of the stored entry, the check and the policy, so every tier that records checks (the SQLite
 * tier in its L3 role today) applies exactly the same rules, and tests need no clock.
 *
 * The rules, with the default thresholds of {@link DEFAULT_HEALTH_POLICY}:
 *
 * - Every check sets `lastHealthCheck` to the check's time and adds one to `totalHealthChecks`.
 * - A passed check (`status: 'healthy'`) adds one to `consecutiveHealthSuccesses` and resets
 *   `consecutiveHealthFailures` to 0. Once the consecutive passes reach `healthyAfterSuccesses`
 *   (1) the proxy is `healthy`; before that a proxy that was failing is `degraded` (recovering)
 *   and an `unknown` one stays `unknown`. `lastHealthError` is kept: it is the last error seen.
 * - A failed check (`status: 'unhealthy'`) adds one to `consecutiveHealthFailures` and to
 *   `totalHealthCheckFailures`, resets `consecutiveHealthSuccesses` to 0 and sets
 *   `lastHealthError` to the check's error (or `'health check failed'` when it gives none). The
 *   proxy is `degraded` after `degradedAfterFailures` (1) consecutive failures, `unhealthy` after
 *   `unhealthyAfterFailures` (3) and `dead` after `deadAfterFailures` (10).
 * - `recoveryAttempt` counts the checks of a proxy that was `unhealthy` or `dead` when checked
 *   (attempts to bring it back); it returns to 0 when a check finds the proxy healthy.
 * - `nextCheckTime` (back-off): after a pass, `at + checkIntervalMs` (5 min). After a failure,
 *   `at + min(retryBaseMs × 2^(consecutiveFailures − 1), maxIntervalMs)`: 1, 2, 4, 8, 16, 32 min,
 *   then every 60 min. A `dead` proxy is checked every `maxIntervalMs` (60 min).
 * - `failureCount` is not touched: it counts failed *uses* reported with `reportFailure`.
 */
import { InvalidOptionError } from './errors.js';
import { assertIntegerOption, assertOptionsObject, rejectUnknownOptions } from './option-check.js';
import { describe, type HealthStatus, type ProxyEntry } from './record/entry.js';

/** Outcome of one health check, as proxywhirl records it in `health_history.status`. */
export type HealthCheckStatus = 'healthy' | 'unhealthy';

/** One health check of a proxy, as given to `recordHealthCheck`. */
export interface HealthCheckInput {
  status: HealthCheckStatus;
  /** Round-trip time of the check, when it got an answer. */
  responseTimeMs?: number | undefined;
  /** What went wrong, for a failed check. Must not contain credentials. */
  error?: string | undefined;
  /** The URL the check fetched through the proxy. */
  checkUrl: string;
  /** When the check ran, epoch ms. Default: the clock's now. */
  at?: number | undefined;
}

/** One row of a proxy's health history. */
export interface HealthCheckRecord {
  key: string;
  /** Epoch ms. */
  checkTime: number;
  status: HealthCheckStatus;
  responseTimeMs: number | undefined;
  error: string | undefined;
  checkUrl: string;
}

/** Thresholds and intervals of the health policy. Every field is documented with its default. */
export interface HealthPolicy {
  /** Delay until the next check after a passed one, in ms. Default 300,000 (5 min). */
  checkIntervalMs: number;
  /** Delay until the next check after the first failure, in ms; doubles per further failure. Default 60,000. */
  retryBaseMs: number;
  /** Longest delay between two checks, in ms; also the interval of a dead proxy. Default 3,600,000. */
  maxIntervalMs: number;
  /** Consecutive passed checks after which a proxy is `healthy`. Default 1. */
  healthyAfterSuccesses: number;
  /** Consecutive failed checks after which a proxy is `degraded`. Default 1. */
  degradedAfterFailures: number;
  /** Consecutive failed checks after which a proxy is `unhealthy`. Default 3. */
  unhealthyAfterFailures: number;
  /** Consecutive failed checks after which a proxy is `dead`. Default 10. */
  deadAfterFailures: number;
}

/** The default policy (see the module comment for what each threshold does). */
export const DEFAULT_HEALTH_POLICY: Readonly<HealthPolicy> = Object.freeze({
  checkIntervalMs: 300_000,
  retryBaseMs: 60_000,
  maxIntervalMs: 3_600_000,
  healthyAfterSuccesses: 1,
  degradedAfterFailures: 1,
  unhealthyAfterFailures: 3,
  deadAfterFailures: 10,
});

/** The health fields of an entry that a check reads. */
export type HealthState = Pick<
  ProxyEntry,
  | 'healthStatus'
  | 'consecutiveHealthFailures'
  | 'consecutiveHealthSuccesses'
  | 'recoveryAttempt'
  | 'totalHealthChecks'
  | 'totalHealthCheckFailures'
  | 'lastHealthError'
>;

/** What a check changes: every health field, always all of them (a complete `EntryPatch`). */
export type HealthPatch = Pick<
  ProxyEntry,
  | 'healthStatus'
  | 'lastHealthCheck'
  | 'consecutiveHealthFailures'
  | 'consecutiveHealthSuccesses'
  | 'recoveryAttempt'
  | 'nextCheckTime'
  | 'lastHealthError'
  | 'totalHealthChecks'
  | 'totalHealthCheckFailures'
>;

/** A health check whose time is known (the tier fills `at` from its clock when it is absent). */
export type TimedHealthCheck = Readonly<HealthCheckInput> & { readonly at: number };

/**
 * Applies one health check to an entry's health fields and returns the new values (the entry is
 * not changed). Pure: the same inputs always give the same patch.
 *
 * @param entry the stored entry (only its health fields are read)
 * @param check the check, with its time `at` in epoch ms
 * @param policy thresholds and intervals; default {@link DEFAULT_HEALTH_POLICY}
 */
export function applyHealthCheck(
  entry: HealthState,
  check: TimedHealthCheck,
  policy: Readonly<HealthPolicy> = DEFAULT_HEALTH_POLICY,
): HealthPatch {
  const at = check.at;
  const passed = check.status === 'healthy';
  const wasFailing = entry.healthStatus === 'unhealthy' || entry.healthStatus === 'dead';
  const successes = passed ? entry.consecutiveHealthSuccesses + 1 : 0;
  const failures = passed ? 0 : entry.consecutiveHealthFailures + 1;

  let status: HealthStatus;
  if (passed) {
    if (successes >= policy.healthyAfterSuccesses) status = 'healthy';
    else if (entry.healthStatus === 'unknown') status = 'unknown';
    else status = entry.healthStatus === 'healthy' ? 'healthy' : 'degraded';
  } else if (failures >= policy.deadAfterFailures) status = 'dead';
  else if (failures >= policy.unhealthyAfterFailures) status = 'unhealthy';
  else if (failures >= policy.degradedAfterFailures) status = 'degraded';
  else status = entry.healthStatus;

  let delay: number;
  if (passed) delay = policy.checkIntervalMs;
  else if (status === 'dead') delay = policy.maxIntervalMs;
  else delay = Math.min(policy.retryBaseMs * 2 ** (failures - 1), policy.maxIntervalMs);

  return {
    healthStatus: status,
    lastHealthCheck: at,
    consecutiveHealthFailures: failures,
    consecutiveHealthSuccesses: successes,
    recoveryAttempt: status === 'healthy' ? 0 : wasFailing ? entry.recoveryAttempt + 1 : 0,
    nextCheckTime: at + delay,
    lastHealthError: passed ? entry.lastHealthError : (check.error ?? 'health check failed'),
    totalHealthChecks: entry.totalHealthChecks + 1,
    totalHealthCheckFailures: entry.totalHealthCheckFailures + (passed ? 0 : 1),
  };
}

/**
 * A complete policy from a partial one: defaults → validate → interpret. Throws
 * `InvalidOptionError` naming the field, the expectation and the value.
 */
export function resolveHealthPolicy(
  partial: Partial<HealthPolicy> | undefined,
  optionName = 'healthPolicy',
): Readonly<HealthPolicy> {
  if (partial === undefined) return DEFAULT_HEALTH_POLICY;
  assertOptionsObject(`"${optionName}"`, partial);
  rejectUnknownOptions<HealthPolicy>(optionName, partial, DEFAULT_HEALTH_POLICY, optionName);
  const policy: HealthPolicy = { ...DEFAULT_HEALTH_POLICY, ...partial };
  for (const field of Object.keys(policy) as (keyof HealthPolicy)[]) {
    assertIntegerOption(`${optionName}.${field}`, policy[field], 1);
  }
  if (
    policy.degradedAfterFailures > policy.unhealthyAfterFailures ||
    policy.unhealthyAfterFailures > policy.deadAfterFailures
  ) {
    throw new InvalidOptionError(
      `"${optionName}" thresholds must satisfy degradedAfterFailures <= unhealthyAfterFailures <= deadAfterFailures, got ${policy.degradedAfterFailures}, ${policy.unhealthyAfterFailures}, ${policy.deadAfterFailures}`,
    );
  }
  if (policy.checkIntervalMs > policy.maxIntervalMs || policy.retryBaseMs > policy.maxIntervalMs) {
    throw new InvalidOptionError(
      `"${optionName}.maxIntervalMs" must be at least checkIntervalMs and retryBaseMs, got ${policy.maxIntervalMs}`,
    );
  }
  return Object.freeze(policy);
}

/**
 * Checks one health check given to `recordHealthCheck` (the one validator: the cache and every
 * tier call it); `at` defaults to `now`. Throws `InvalidOptionError` naming the field.
 */
export function validateHealthCheck(check: HealthCheckInput, now: number): TimedHealthCheck {
  if (check === null || typeof check !== 'object') {
    throw new InvalidOptionError(`a health check must be an object, got ${describe(check)}`);
  }
  const { status, responseTimeMs, error, checkUrl, at } = check;
  if (status !== 'healthy' && status !== 'unhealthy') {
    throw new InvalidOptionError(
      `"status" of a health check must be "healthy" or "unhealthy", got ${describe(status)}`,
    );
  }
  if (
    responseTimeMs !== undefined &&
    (typeof responseTimeMs !== 'number' || !Number.isFinite(responseTimeMs) || responseTimeMs < 0)
  ) {
    throw new InvalidOptionError(
      `"responseTimeMs" of a health check must be a non-negative number, got ${describe(responseTimeMs)}`,
    );
  }
  if (error !== undefined && typeof error !== 'string') {
    throw new InvalidOptionError(
      `"error" of a health check must be a string, got ${describe(error)}`,
    );
  }
  if (typeof checkUrl !== 'string' || checkUrl === '') {
    throw new InvalidOptionError(
      `"checkUrl" of a health check must be a non-empty string, got ${describe(checkUrl)}`,
    );
  }
  if (at !== undefined && (typeof at !== 'number' || !Number.isFinite(at))) {
    throw new InvalidOptionError(
      `"at" of a health check must be a time in epoch ms, got ${describe(at)}`,
    );
  }
  return { status, responseTimeMs, error, checkUrl, at: at ?? now };
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
