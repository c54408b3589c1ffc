// Commands that read the store: get, list, stats, history; and the upkeep commands cleanup and
// compact. None of the reads changes statistics or access times.
import { HEALTH_STATUSES, type HealthStatus, type ProxyEntry } from '../../record/entry.js';
import { canonicalizeProxyUrl, deriveKey, describeWithoutCredentials } from '../../record/url.js';
import type { ProxyCache } from '../../proxy-cache.js';
import type { ProxyQuery, ProxyQueryOrder } from '../../tiers/tier.js';
import type { CacheStats } from '../../stats.js';
import { formatIsoTime, parseTimeText } from '../../io/time.js';
import { CliError, UsageError, type Cli } from '../context.js';
import {
  duration,
  entriesWord,
  expiresIn,
  fields,
  hasCredentials,
  percent,
  redactedRecords,
  table,
  time,
} from '../format.js';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { QUERY_ORDERS } from '../../query.js';
import { example, positiveInteger, withCommonOptions, type RegisterCommands } from '../program.js';

/** What `deriveKey` makes: 16 hex digits. */
const DERIVED_KEY = /^[0-9a-f]{16}$/i;

/**
 * The cache key a command argument names: the argument itself when it is a key the store holds
 * or looks like one (16 hex digits), else the key of the proxy URL it is (canonicalised first,
 * so `HTTP://Host:80` and `http://host:80` name the same proxy; inline credentials are dropped).
 */
export async function keyOf(cache: ProxyCache, target: string): Promise<string> {
  if (DERIVED_KEY.test(target)) return target.toLowerCase();
  if (await cache.has(target)) return target;
  try {
    return deriveKey(canonicalizeProxyUrl(target).url);
  } catch {
    return target;
  }
}

// ---------------------------------------------------------------- get

export async function getCommand(cli: Cli, target: string): Promise<void> {
  await cli.withExistingStore(async (cache) => {
    const key = await keyOf(cache, target);
    // peek: no promotion, no statistics, no access-time change.
    const entry = await cache.peek(key);
    if (entry === undefined) {
      throw noLiveEntry(target, key, ' (expired entries are listed by "proxytier list --expired")');
    }
    const [record] = await redactedRecords([entry]);
    if (cli.json) {
      cli.outJson(record);
      return;
    }
    cli.out(entryDetails(entry, Date.now()));
  });
}

/** The argument as messages show it: a key, or the canonical URL (never inline credentials). */
export function describeTarget(target: string, key: string): string {
  // A target that is not a held key and does not parse is shown through the redacting
  // formatter: it may be a URL with credentials that the parser could not take apart.
  if (target === key)
    return DERIVED_KEY.test(key) ? `key ${key}` : `key ${describeWithoutCredentials(key)}`;
  try {
    return `${canonicalizeProxyUrl(target).url} (key ${key})`;
  } catch {
    return `key ${key}`;
  }
}

/** The `E_NOT_FOUND` error of a command whose target holds no live entry. */
export function noLiveEntry(target: string, key: string, hint = ''): CliError {
  return new CliError(`no live entry for ${describeTarget(target, key)}${hint}`, 'E_NOT_FOUND');
}

/** Every field of one entry, credentials as yes/no. */
function entryDetails(entry: ProxyEntry, now: number): string {
  const credentials = [
    entry.username === undefined ? undefined : 'username',
    entry.password === undefined ? undefined : 'password',
  ].filter((name) => name !== undefined);
  return fields([
    ['key', entry.key],
    ['proxy url', entry.proxyUrl],
    [
      'credentials',
      credentials.length === 0
        ? 'no'
        : `yes (${credentials.join(' and ')}; shown only by "export --secrets plain")`,
    ],
    ['source', entry.source],
    ['health', entry.healthStatus],
    ['fetched', time(entry.fetchTime)],
    ['expires', `${time(entry.expiresAt)} (${expiresIn(entry, now)})`],
    ['ttl', `${entry.ttlSeconds}s`],
    ['last accessed', time(entry.lastAccessed)],
    ['access count', String(entry.accessCount)],
    ['failure count', String(entry.failureCount)],
    ['evicted from L1', entry.evictedFromL1 ? 'yes' : 'no'],
    ['last health check', time(entry.lastHealthCheck)],
    ['next check', time(entry.nextCheckTime)],
    ['last health error', entry.lastHealthError ?? '-'],
    [
      'health checks',
      `${entry.totalHealthChecks} (${entry.totalHealthCheckFailures} failed; ${entry.consecutiveHealthSuccesses} consecutive successes, ${entry.consecutiveHealthFailures} consecutive failures)`,
    ],
    ['recovery attempt', String(entry.recoveryAttempt)],
  ]);
}

// ---------------------------------------------------------------- list

export interface ListOptions {
  health?: HealthStatus[];
  source?: string;
  scheme?: string;
  expired?: boolean;
  limit: number;
  sort: ProxyQueryOrder;
}

export async function listCommand(cli: Cli, options: ListOptions): Promise<void> {
  if (options.expired === true && options.sort === 'responseTime') {
    throw new UsageError(
      '--sort responseTime cannot be combined with --expired; sort expired entries by lastAccessed, lastHealthCheck or successRate',
    );
  }
  await cli.withExistingStore(async (cache) => {
    const now = Date.now();
    const entries =
      options.expired === true
        ? await expiredEntries(cache, options, now)
        : await cache.query(queryOf(options));
    if (cli.json) {
      cli.outJson(await redactedRecords(entries));
      return;
    }
    cli.out(listTable(entries, now, options.limit));
  });
}

export function listTable(entries: ProxyEntry[], now: number, limit: number | undefined): string {
  if (entries.length === 0) return 'no entries match';
  const rows = entries.map((entry) => [
    entry.key,
    entry.proxyUrl,
    entry.source,
    entry.healthStatus,
    expiresIn(entry, now),
    hasCredentials(entry) ? 'yes' : 'no',
  ]);
  const text = table(['KEY', 'URL', 'SOURCE', 'HEALTH', 'EXPIRES IN', 'CREDENTIALS'], rows);
  const more =
    limit !== undefined && entries.length === limit
      ? `\n(the first ${limit}; --limit shows more)`
      : '';
  return `${text}${more}`;
}

function queryOf(options: ListOptions): ProxyQuery {
  const query: ProxyQuery = { orderBy: options.sort, limit: options.limit };
  if (options.health !== undefined) query.health = options.health;
  if (options.source !== undefined) query.source = options.source;
  if (options.scheme !== undefined) query.scheme = options.scheme;
  return query;
}

/**
 * Entries whose TTL ran out but that are still stored (not yet removed by `cleanup` or a
 * library's sweep), filtered and sorted like `query`. Only the expired entries are held.
 */
async function expiredEntries(
  cache: ProxyCache,
  options: ListOptions,
  now: number,
): Promise<ProxyEntry[]> {
  const health = options.health === undefined ? undefined : new Set(options.health);
  const scheme = options.scheme?.toLowerCase();
  const found: ProxyEntry[] = [];
  for await (const entry of cache.entries({ includeExpired: true })) {
    if (entry.expiresAt > now) continue;
    if (health !== undefined && !health.has(entry.healthStatus)) continue;
    if (options.source !== undefined && entry.source !== options.source) continue;
    if (scheme !== undefined && !entry.proxyUrl.startsWith(`${scheme}://`)) continue;
    found.push(entry);
  }
  const rank = (entry: ProxyEntry): number => {
    switch (options.sort) {
      case 'lastHealthCheck':
        return entry.lastHealthCheck ?? Number.NEGATIVE_INFINITY;
      case 'successRate':
        return entry.totalHealthChecks === 0
          ? -1
          : 1 - entry.totalHealthCheckFailures / entry.totalHealthChecks;
      default:
        return entry.lastAccessed;
    }
  };
  found.sort((a, b) => rank(b) - rank(a) || (a.key < b.key ? -1 : 1));
  return found.slice(0, options.limit);
}

export function parseHealth(value: string, previous: HealthStatus[] | undefined): HealthStatus[] {
  const statuses = value.split(',').map((item) => item.trim().toLowerCase());
  for (const status of statuses) {
    if (!(HEALTH_STATUSES as readonly string[]).includes(status)) {
      throw new UsageError(
        `--health must be one of ${HEALTH_STATUSES.join(', ')}, got ${JSON.stringify(status)}`,
      );
    }
  }
  return [...(previous ?? []), ...(statuses as HealthStatus[])];
}

// ---------------------------------------------------------------- stats

export async function statsCommand(cli: Cli): Promise<void> {
  await cli.withExistingStore(async (cache) => {
    const stats = await cache.stats();
    if (cli.json) cli.outJson(stats);
    else cli.out(statsTable(stats));
  });
}

export function statsTable(stats: CacheStats): string {
  const rows = stats.tiers.map((tier) => [
    tier.name,
    tier.entries === undefined ? '?' : String(tier.entries),
    String(tier.hits),
    String(tier.misses),
    percent(tier.hitRate),
    `${tier.evictions.lru}/${tier.evictions.ttl}/${tier.evictions.health}/${tier.evictions.corruption}`,
    tier.degraded ? 'yes' : 'no',
  ]);
  return [
    table(
      [
        'TIER',
        'ENTRIES',
        'HITS',
        'MISSES',
        'HIT RATE',
        'EVICTIONS LRU/TTL/HEALTH/CORRUPT',
        'DEGRADED',
      ],
      rows,
    ),
    `overall: ${stats.requests} requests, ${stats.hits} hits, ${stats.misses} misses, hit rate ${percent(stats.hitRate)}`,
  ].join('\n');
}

// ---------------------------------------------------------------- history

export interface HistoryOptions {
  limit: number;
  since?: number;
}

export async function historyCommand(
  cli: Cli,
  target: string,
  options: HistoryOptions,
): Promise<void> {
  await cli.withExistingStore(async (cache) => {
    const key = await keyOf(cache, target);
    const rows = await cache.healthHistory(key, {
      limit: options.limit,
      ...(options.since === undefined ? {} : { since: options.since }),
    });
    // proxywhirl's health_history column names, times as ISO strings.
    const records = rows.map((row) => ({
      proxy_key: row.key,
      check_time: formatIsoTime(row.checkTime),
      status: row.status,
      response_time_ms: row.responseTimeMs ?? null,
      error_message: row.error ?? null,
      check_url: row.checkUrl,
    }));
    if (cli.json) {
      cli.outJson(records);
      return;
    }
    if (rows.length === 0) {
      cli.out(`no health checks recorded for ${describeTarget(target, key)}`);
      return;
    }
    cli.out(
      table(
        ['TIME', 'STATUS', 'RESPONSE', 'CHECK URL', 'ERROR'],
        rows.map((row) => [
          time(row.checkTime),
          row.status,
          row.responseTimeMs === undefined ? '-' : `${Math.round(row.responseTimeMs)} ms`,
          row.checkUrl,
          row.error ?? '',
        ]),
      ),
    );
  });
}

/** `--since`: an ISO 8601 time (without an offset it is UTC), a date, or epoch milliseconds. */
export function parseSince(value: string): number {
  const text = value.trim();
  const ms = /^\d+$/.test(text) ? Number(text) : parseTimeText(text);
  if (!Number.isFinite(ms)) {
    throw new UsageError(
      `--since must be an ISO 8601 time such as 2026-11-01T13:00:00Z, got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

// ---------------------------------------------------------------- cleanup, compact

export async function cleanupCommand(cli: Cli): Promise<void> {
  const removed = await cli.withExistingStore((cache) => cache.sweepExpired());
  if (cli.json) cli.outJson({ removed });
  else cli.out(`removed ${removed} expired ${entriesWord(removed)}`);
}

export async function compactCommand(cli: Cli): Promise<void> {
  const started = Date.now();
  const reports = await cli.withExistingStore((cache) => cache.compact());
  if (cli.json) {
    cli.outJson({ tiers: reports });
    return;
  }
  if (reports.length === 0) {
    cli.out('no tier of this store needs compacting');
    return;
  }
  for (const { tier, report } of reports) cli.out(`${tier}: ${describeReport(report)}`);
  cli.out(`compacted in ${duration(Date.now() - started)}`);
}

/** A compaction report as `name value` pairs. */
function describeReport(report: unknown): string {
  if (report === null || typeof report !== 'object') return String(report);
  return Object.entries(report as Record<string, unknown>)
    .map(
      ([name, value]) =>
        `${name} ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`,
    )
    .join(', ');
}

/** Registers the commands that read the store: `get`, `list`, `stats`, `history`, `cleanup`, `compact` on the program. */
export const register: RegisterCommands = (program, cli) => {
  withCommonOptions(
    program
      .command('get')
      .description('show one entry (credentials as yes/no), by key or proxy URL')
      .argument('<key|url>', 'a cache key (16 hex digits) or a proxy URL'),
  )
    .addHelpText(
      'after',
      example('proxytier get 5767fc14bc03465a', 'proxytier get socks5://198.51.100.7:1080 --json'),
    )
    .action((target: string, _options: unknown, command: Command) =>
      getCommand(cli(command), target),
    );
  withCommonOptions(
    program
      .command('list')
      .description('list entries as a table: key, url, source, health, expires in, credentials')
      .option(
        '--health <status...>',
        `only these health statuses (${HEALTH_STATUSES.join(', ')}; several allowed)`,
        (value: string, previous: HealthStatus[] | undefined) => parseHealth(value, previous),
      )
      .option('--source <name>', 'only entries of this source')
      .option('--scheme <scheme>', 'only entries of this proxy scheme (http, https, socks5, ...)')
      .option('--expired', 'only entries whose TTL ran out but that are not removed yet')
      .option('--limit <n>', 'at most this many entries', positiveInteger('--limit'), 50)
      .addOption(
        new Option(
          '--sort <order>',
          'the order: most recent access or check, best success rate, fastest response',
        )
          .choices(QUERY_ORDERS)
          .default('lastAccessed'),
      ),
  )
    .addHelpText(
      'after',
      example(
        'proxytier list --health healthy degraded --sort successRate --limit 20',
        'proxytier list --source provider-a --scheme socks5',
        'proxytier list --expired',
      ),
    )
    .action((options: ListOptions, command: Command) => listCommand(cli(command), options));
  withCommonOptions(
    program.command('stats').description('entries, hits, misses, evictions and state of each tier'),
  )
    .addHelpText(
      'after',
      `${example('proxytier stats', 'proxytier stats --json')}
Hits, misses and evictions are counted by the process that makes them: a fresh proxytier process
starts at zero, so this command mostly shows how many entries each tier holds. A program using
the library sees its own counters with cache.stats().
`,
    )
    .action((_options: unknown, command: Command) => statsCommand(cli(command)));
  withCommonOptions(
    program
      .command('history')
      .description('the health checks of one proxy, newest first')
      .argument('<key|url>', 'a cache key or a proxy URL')
      .option('--limit <n>', 'at most this many checks', positiveInteger('--limit'), 20)
      .option(
        '--since <time>',
        'only checks at or after this ISO 8601 time (UTC without an offset)',
        (value: string) => {
          try {
            return parseSince(value);
          } catch (error) {
            throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
          }
        },
      ),
  )
    .addHelpText(
      'after',
      example(
        'proxytier history http://192.0.2.10:8080 --since 2026-11-01T00:00:00Z',
        'proxytier history daa6883de3b5ea2d --limit 5 --json',
      ),
    )
    .action((target: string, options: HistoryOptions, command: Command) =>
      historyCommand(cli(command), target, options),
    );
  withCommonOptions(program.command('cleanup').description('remove the entries whose TTL ran out'))
    .addHelpText('after', example('proxytier cleanup'))
    .action((_options: unknown, command: Command) => cleanupCommand(cli(command)));
  withCommonOptions(
    program
      .command('compact')
      .description('reclaim space: checkpoint and vacuum the database, rewrite the log'),
  )
    .addHelpText('after', example('proxytier compact --json'))
    .action((_options: unknown, command: Command) => compactCommand(cli(command)));
};
