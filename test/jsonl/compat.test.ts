// proxywhirl compatibility: the fixture store written by proxywhirl's own JsonlCacheTier opens and
// reads exactly, and what this tier writes is what proxywhirl's json.dump would have written.
import { cp, mkdtemp, readdir, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import type { ProxyEntry } from '../../src/record/entry.js';
import { crc32Portable } from '../../src/tiers/jsonl/crc32.js';
import { encodeRecord, shardFileName, shardOf } from '../../src/tiers/jsonl/codec.js';
import { formatIsoTime, MAX_TIME, MIN_TIME, parseIsoTime } from '../../src/record/time.js';
import { JsonlTier } from '../../src/tiers/jsonl/index.js';
import type { ExpectedEntry } from '../support/sqlite-fixtures.js';
import { expectSameEntry, makeContext, sampleEntry } from '../tiers/contract.js';

const FIXTURES = 'test/fixtures/proxywhirl';

/** proxywhirl's field order, as its `put` builds the dict. */
const PROXYWHIRL_FIELDS = [
  'key',
  'proxy_url',
  'source',
  'fetch_time',
  'last_accessed',
  'access_count',
  'ttl_seconds',
  'expires_at',
  'health_status',
  'failure_count',
  'evicted_from_l1',
  'last_health_check',
  'consecutive_health_failures',
  'consecutive_health_successes',
  'recovery_attempt',
  'next_check_time',
  'last_health_error',
  'total_health_checks',
  'total_health_check_failures',
];

const time = (text: string | null) => (text === null ? undefined : Date.parse(text));

async function readLines(dir: string): Promise<Map<string, { file: string; line: string }>> {
  const lines = new Map<string, { file: string; line: string }>();
  for (const file of (await readdir(dir)).filter((name) => name.endsWith('.jsonl')).sort()) {
    for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
      if (line === '') continue;
      const { key } = JSON.parse(line) as { key: string };
      lines.set(key, { file, line });
    }
  }
  return lines;
}

describe('jsonl tier: proxywhirl compatibility', () => {
  let dir: string;
  let keyring: Keyring;
  let expected: ExpectedEntry[];
  const opened: JsonlTier[] = [];

  async function open(
    path: string,
    options: Partial<ConstructorParameters<typeof JsonlTier>[0]> = {},
  ) {
    const tier = new JsonlTier({ dir: path, ...options });
    const ctx = makeContext(keyring);
    await tier.open(ctx.context);
    opened.push(tier);
    return { tier, evictions: ctx.evictions };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxytier-compat-'));
    await cp(join(FIXTURES, 'l2-jsonl'), join(dir, 'store'), { recursive: true });
    keyring = new Keyring((await readFile(join(FIXTURES, 'fernet.key'), 'utf8')).trim());
    expected = (
      JSON.parse(await readFile(join(FIXTURES, 'expected.json'), 'utf8')) as {
        entries: ExpectedEntry[];
      }
    ).entries;
  });

  afterEach(async () => {
    for (const tier of opened.splice(0)) await tier.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads every entry of the fixture store exactly, credentials included', async () => {
    const { tier, evictions } = await open(join(dir, 'store'));
    expect(expected).toHaveLength(40);
    expect(await tier.size()).toBe(40);
    for (const want of expected) {
      const got = await tier.get(want.key);
      expect(got, want.key).toBeDefined();
      const entry = got as ProxyEntry;
      expect({
        key: entry.key,
        proxyUrl: entry.proxyUrl,
        source: entry.source,
        fetchTime: entry.fetchTime,
        lastAccessed: entry.lastAccessed,
        accessCount: entry.accessCount,
        ttlSeconds: entry.ttlSeconds,
        expiresAt: entry.expiresAt,
        healthStatus: entry.healthStatus,
        failureCount: entry.failureCount,
        evictedFromL1: entry.evictedFromL1,
        lastHealthCheck: entry.lastHealthCheck,
        consecutiveHealthFailures: entry.consecutiveHealthFailures,
        consecutiveHealthSuccesses: entry.consecutiveHealthSuccesses,
        recoveryAttempt: entry.recoveryAttempt,
        nextCheckTime: entry.nextCheckTime,
        lastHealthError: entry.lastHealthError,
        totalHealthChecks: entry.totalHealthChecks,
        totalHealthCheckFailures: entry.totalHealthCheckFailures,
      }).toEqual({
        key: want.key,
        proxyUrl: want.proxy_url,
        source: want.source,
        fetchTime: time(want.fetch_time),
        lastAccessed: time(want.last_accessed),
        accessCount: want.access_count,
        ttlSeconds: want.ttl_seconds,
        expiresAt: time(want.expires_at),
        healthStatus: want.health_status,
        failureCount: want.failure_count,
        evictedFromL1: want.evicted_from_l1,
        lastHealthCheck: time(want.last_health_check),
        consecutiveHealthFailures: want.consecutive_health_failures,
        consecutiveHealthSuccesses: want.consecutive_health_successes,
        recoveryAttempt: want.recovery_attempt,
        nextCheckTime: time(want.next_check_time),
        lastHealthError: want.last_health_error ?? undefined,
        totalHealthChecks: want.total_health_checks,
        totalHealthCheckFailures: want.total_health_check_failures,
      });
      expect(entry.username?.reveal()).toBe(want.username ?? undefined);
      expect(entry.password?.reveal()).toBe(want.password ?? undefined);
    }
    const unusual = expected.filter((e) => /[^\x20-\x7e]|"|\\/.test(`${e.username}${e.password}`));
    expect(unusual.length).toBeGreaterThan(4);
    expect(expected.some((e) => (e.password ?? '').length === 200)).toBe(true);
    expect(evictions).toEqual([]);
    expect(tier.stats().corruptRecords).toBe(0);
    expect(tier.stats().legacyRecords).toBe(40);
  });

  it('finds each key in the shard proxywhirl chose (md5 % 16)', async () => {
    const lines = await readLines(join(FIXTURES, 'l2-jsonl'));
    expect(lines.size).toBe(40);
    for (const [key, { file }] of lines) expect(file).toBe(shardFileName(shardOf(key)));
  });

  it('writes each fixture record back byte for byte as proxywhirl wrote it, plus the checksum', async () => {
    const fixtureLines = await readLines(join(FIXTURES, 'l2-jsonl'));
    const { tier: source } = await open(join(dir, 'store'));
    const { tier: target } = await open(join(dir, 'copy'));
    for (const want of expected) await target.set((await source.get(want.key)) as ProxyEntry);
    await target.close();
    const written = await readLines(join(dir, 'copy'));
    for (const [key, { file, line }] of fixtureLines) {
      const ours = written.get(key);
      expect(ours?.file).toBe(file);
      const text = ours?.line ?? '';
      // The line without its checksum member is proxywhirl's line, and the checksum is the CRC-32
      // of exactly that text.
      const withoutChecksum = `${text.slice(0, -19)}}`;
      expect(withoutChecksum).toBe(line);
      expect(text.slice(-19)).toMatch(/^, "_c": "[0-9a-f]{8}"\}$/);
      const crc = parseInt(text.slice(-10, -2), 16);
      expect(crc).toBe(crc32Portable(withoutChecksum));
      const fields = Object.keys(JSON.parse(text) as object);
      expect(fields.slice(0, PROXYWHIRL_FIELDS.length)).toEqual(PROXYWHIRL_FIELDS);
      expect(fields.at(-1)).toBe('_c');
    }
  });

  it('accepts rows with plaintext credentials and never writes them back in plaintext', async () => {
    const key = 'plaintext-row-1';
    const row = {
      key,
      proxy_url: 'http://192.0.2.10:3128',
      source: 'hand-written',
      fetch_time: '2026-11-01T10:00:00+00:00',
      last_accessed: '2026-11-01T10:05:00.250000+00:00',
      access_count: 3,
      ttl_seconds: 3600,
      expires_at: '2099-01-01T00:00:00+00:00',
      health_status: 'healthy',
      failure_count: 0,
      evicted_from_l1: false,
      username: 'plain-üser',
      password: 'pl@in "pass"\tword',
    };
    const shardPath = join(dir, 'store', shardFileName(shardOf(key)));
    await appendFile(shardPath, `${JSON.stringify(row)}\n`);
    let { tier } = await open(join(dir, 'store'));
    const entry = (await tier.get(key)) as ProxyEntry;
    expect(entry.username?.reveal()).toBe('plain-üser');
    expect(entry.password?.reveal()).toBe('pl@in "pass"\tword');
    expect(entry.lastAccessed).toBe(Date.parse('2026-11-01T10:05:00.250Z'));
    expect(entry.consecutiveHealthFailures).toBe(0);

    const report = await tier.compact();
    expect(report.migrated).toBeGreaterThanOrEqual(41);
    expect(report.corrupt).toBe(0);
    const text = await readFile(shardPath, 'utf8');
    expect(text).not.toContain('plain-');
    expect(text).not.toContain('pl@in');
    expect(text).toContain('"username_encrypted": "');
    await tier.close();
    ({ tier } = await open(join(dir, 'store')));
    const again = (await tier.get(key)) as ProxyEntry;
    expect(again.username?.reveal()).toBe('plain-üser');
    expect(again.password?.reveal()).toBe('pl@in "pass"\tword');
    expect(tier.stats().legacyRecords).toBe(0);
    for (const want of expected) {
      expect((await tier.get(want.key))?.password?.reveal()).toBe(want.password ?? undefined);
    }
  });

  it('writes datetimes as isoformat() does: +00:00, microseconds only when not zero', async () => {
    const { tier } = await open(join(dir, 'fresh'));
    const whole = sampleEntry(keyring, 1, { fetchTime: Date.parse('2026-11-01T13:01:55Z') });
    const fraction = sampleEntry(keyring, 2, {
      fetchTime: Date.parse('2026-11-01T13:01:55.123Z'),
      lastHealthCheck: Date.parse('2026-11-01T13:02:00.001Z'),
    });
    await tier.set(whole);
    await tier.set(fraction);
    await tier.close();
    const lines = await readLines(join(dir, 'fresh'));
    expect(lines.get(whole.key)?.line).toContain('"fetch_time": "2026-11-01T13:01:55+00:00"');
    expect(lines.get(fraction.key)?.line).toContain(
      '"fetch_time": "2026-11-01T13:01:55.123000+00:00"',
    );
    expect(lines.get(fraction.key)?.line).toContain(
      '"last_health_check": "2026-11-01T13:02:00.001000+00:00"',
    );
    expect(lines.get(whole.key)?.line).toContain('"last_health_check": null');
    expect(lines.get(whole.key)?.line).not.toContain('username"');
  });

  it('escapes strings as json.dumps does (non-ASCII as \\uXXXX, quotes, control characters)', async () => {
    const { tier } = await open(join(dir, 'escapes'));
    const entry = sampleEntry(keyring, 5, {
      key: 'ключ-1',
      source: 'zürich "eu"\t✓',
      lastHealthError: 'time\nout \u007f 🔑',
    });
    await tier.set(entry);
    expectSameEntry(await tier.get(entry.key), entry);
    await tier.close();
    const text = await readFile(join(dir, 'escapes', shardFileName(shardOf(entry.key))), 'utf8');
    // What Python's json.dumps prints for the same strings.
    expect(text).toContain('{"key": "\\u043a\\u043b\\u044e\\u0447-1", "proxy_url": ');
    expect(text).toContain('"source": "z\\u00fcrich \\"eu\\"\\t\\u2713"');
    expect(text).toContain('"last_health_error": "time\\nout \\u007f \\ud83d\\udd11"');
    expect(Buffer.byteLength(text, 'utf8')).toBe(text.length); // all ASCII
  });

  it('keeps microseconds that proxywhirl wrote', () => {
    const ms = parseIsoTime('2026-11-01T13:01:55.123456+00:00');
    expect(formatIsoTime(ms)).toBe('2026-11-01T13:01:55.123456+00:00');
    expect(parseIsoTime('2026-11-01T13:01:55+02:00')).toBe(Date.parse('2026-11-01T11:01:55Z'));
    expect(parseIsoTime('2026-11-01T13:01:55')).toBe(Date.parse('2026-11-01T13:01:55Z'));
    expect(Number.isNaN(parseIsoTime('yesterday'))).toBe(true);
  });

  it('formats any time of the years 1-9999 as toISOString would, in isoformat() shape', () => {
    let state = 12345;
    const next = () => {
      state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
      return state / 4_294_967_296;
    };
    const samples = [0, -1, 951_782_400_000, 4_107_542_399_999, MIN_TIME, MAX_TIME];
    for (let i = 0; i < 5000; i += 1)
      samples.push(Math.floor(MIN_TIME + next() * (MAX_TIME - MIN_TIME)));
    const base = sampleEntry(keyring, 9);
    for (const ms of samples) {
      const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
      const millis = ms - Math.floor(ms / 1000) * 1000;
      const expected = `${iso.slice(0, 19)}${millis === 0 ? '' : `.${String(millis * 1000).padStart(6, '0')}`}+00:00`;
      expect(formatIsoTime(ms)).toBe(expected);
      expect(parseIsoTime(expected)).toBe(ms);
      // The record writer formats times on its own (with a cache of recent seconds).
      const next = ms < MAX_TIME ? ms + 0.5 : ms;
      const line = encodeRecord(
        { ...base, fetchTime: ms, nextCheckTime: next },
        undefined,
        undefined,
      );
      expect(line).toContain(`"fetch_time": "${expected}"`);
      expect(line).toContain(`"next_check_time": "${formatIsoTime(next)}"`);
    }
    expect(() => formatIsoTime(MAX_TIME + 1)).toThrow(RangeError);
  });

  it('appends a tombstone line in the documented shape', async () => {
    const { tier } = await open(join(dir, 'fresh'));
    const entry = sampleEntry(keyring, 3);
    await tier.set(entry);
    await tier.delete(entry.key);
    await tier.close();
    const text = await readFile(join(dir, 'fresh', shardFileName(shardOf(entry.key))), 'utf8');
    const last = text.trimEnd().split('\n').at(-1) as string;
    expect(last).toMatch(
      new RegExp(`^\\{"key": "${entry.key}", "_deleted": true, "_c": "[0-9a-f]{8}"\\}$`),
    );
  });

  it('computes the same CRC-32 with the portable fallback as with zlib', () => {
    const native = (zlib as { crc32?: (data: string | Uint8Array) => number }).crc32;
    for (const sample of ['', 'a', '{"key": "x"}', 'ü✓🔑'.repeat(50)]) {
      if (native !== undefined) expect(crc32Portable(sample)).toBe(native(sample));
    }
    expect(crc32Portable('123456789')).toBe(0xcbf43926);
  });

  it('creates its files 0600 and its directory 0700', async () => {
    const { stat } = await import('node:fs/promises');
    const { tier } = await open(join(dir, 'modes'));
    await tier.set(sampleEntry(keyring, 4));
    await tier.compact();
    await tier.close();
    expect((await stat(join(dir, 'modes'))).mode & 0o777).toBe(0o700);
    for (const name of await readdir(join(dir, 'modes'))) {
      expect((await stat(join(dir, 'modes', name))).mode & 0o777, name).toBe(0o600);
    }
    await writeFile(join(dir, 'unused'), '');
  });
});
