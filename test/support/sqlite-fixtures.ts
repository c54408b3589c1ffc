// Helpers of the SQLite tier's tests: proxywhirl's fixture files copied to a temporary directory
// (opening a database may write to it), the fixture key, and an opened tier on a manual clock.
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ManualClock } from '../../src/clock.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { silentLogger } from '../../src/logger.js';
import type { EvictionReason, TierContext } from '../../src/tiers/tier.js';
import { SqliteTier, type SqliteTierOptions } from '../../src/tiers/sqlite/index.js';

export const FIXTURES = resolve('test/fixtures/proxywhirl');
export const START = Date.parse('2026-11-01T12:00:00Z');

/** proxywhirl's `expected.json`. */
export interface ExpectedFile {
  entries: ExpectedEntry[];
  health_history: ExpectedHistoryRow[];
}

export interface ExpectedEntry {
  key: string;
  proxy_url: string;
  username: string | null;
  password: string | null;
  source: string;
  fetch_time: string;
  last_accessed: string;
  access_count: number;
  ttl_seconds: number;
  expires_at: string;
  health_status: string;
  failure_count: number;
  evicted_from_l1: boolean;
  last_health_check: string | null;
  consecutive_health_failures: number;
  consecutive_health_successes: number;
  recovery_attempt: number;
  next_check_time: string | null;
  last_health_error: string | null;
  total_health_checks: number;
  total_health_check_failures: number;
  expired: boolean;
}

export interface ExpectedHistoryRow {
  proxy_key: string;
  check_time: number;
  status: string;
  response_time_ms: number | null;
  error_message: string | null;
  check_url: string;
}

export async function loadExpected(): Promise<ExpectedFile> {
  return JSON.parse(await readFile(join(FIXTURES, 'expected.json'), 'utf8')) as ExpectedFile;
}

/** The keyring of the fixtures (`fernet.key`). */
export async function fixtureKeyring(): Promise<Keyring> {
  return new Keyring((await readFile(join(FIXTURES, 'fernet.key'), 'utf8')).trim());
}

/** A fresh temporary directory; remove it with `removeDir`. */
export function tempDir(prefix = 'proxytier-sqlite-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Copies a fixture file (relative to the fixture directory) into `dir`; resolves its new path. */
export async function copyFixture(relative: string, dir: string): Promise<string> {
  const target = join(dir, relative);
  await mkdir(join(target, '..'), { recursive: true });
  await copyFile(join(FIXTURES, relative), target);
  return target;
}

/** A tier context on a manual clock that records every eviction. */
export function sqliteContext(keyring: Keyring | undefined, clock = new ManualClock(START)) {
  const evictions: { key: string; reason: EvictionReason }[] = [];
  const context: TierContext = {
    cipher: keyring,
    clock,
    logger: silentLogger,
    onEvict: (key, reason) => evictions.push({ key, reason }),
  };
  return { context, evictions, clock };
}

/** Creates and opens a tier; resolves it with its context. */
export async function openSqlite(
  options: SqliteTierOptions,
  keyring: Keyring | undefined,
  clock = new ManualClock(START),
) {
  const tier = new SqliteTier(options);
  const made = sqliteContext(keyring, clock);
  await tier.open(made.context);
  return { tier, ...made };
}

/** A raw better-sqlite3 connection, as another program (or proxywhirl) would open the file. */
export function rawDatabase(path: string, options: Database.Options = {}): Database.Database {
  return new Database(path, options);
}
