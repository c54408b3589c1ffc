// exportRecords: formats, field names and times as proxywhirl writes them, the three secrets
// modes, backpressure, no statistics touched, and the round trip export → import.
import { Writable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { InvalidOptionError } from '../../src/errors.js';
import {
  exportColumns,
  exportRecords,
  type ExportFormat,
  type SecretsMode,
} from '../../src/io/export.js';
import { importRecords, parseProxyRecords } from '../../src/io/import.js';
import type { ProxyCache } from '../../src/proxy-cache.js';
import type { ProxyEntry, ProxyEntryInput } from '../../src/record/entry.js';
import { FaultTier } from '../../src/tiers/fault.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { chunks, NASTY_PASSWORD, NASTY_USERNAME, openCache } from './helpers.js';

/** A Writable that keeps what it is given; optionally slow, with a small buffer. */
function sink(options: { slow?: boolean; highWaterMark?: number } = {}) {
  const parts: Buffer[] = [];
  let maxBuffered = 0;
  let writesWhileFull = 0;
  const stream = new Writable({
    highWaterMark: options.highWaterMark ?? 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      parts.push(chunk);
      if (options.slow === true) setImmediate(callback);
      else callback();
    },
  });
  const write = stream.write.bind(stream) as (chunk: unknown) => boolean;
  stream.write = ((chunk: unknown) => {
    if (stream.writableNeedDrain) writesWhileFull += 1;
    const ok = write(chunk);
    maxBuffered = Math.max(maxBuffered, stream.writableLength);
    return ok;
  }) as typeof stream.write;
  return {
    stream,
    text: () => Buffer.concat(parts).toString('utf8'),
    stats: () => ({ maxBuffered, writesWhileFull }),
  };
}

const T0 = Date.parse('2026-11-01T13:01:55Z');

/** Entries covering every field: set and unset optional fields, fractions of a millisecond. */
function sampleInputs(): ProxyEntryInput[] {
  return [
    {
      proxyUrl: 'http://10.0.0.1:8080',
      username: NASTY_USERNAME,
      password: NASTY_PASSWORD,
      source: 'provider "a", east',
      fetchTime: T0 + 0.123,
      lastAccessed: T0 + 5_000,
      accessCount: 17,
      ttlSeconds: 86_400,
      expiresAt: Date.parse('2099-01-01T00:00:00Z'),
      healthStatus: 'degraded',
      failureCount: 2,
      evictedFromL1: true,
      lastHealthCheck: T0 + 1_000.5,
      consecutiveHealthFailures: 1,
      consecutiveHealthSuccesses: 0,
      recoveryAttempt: 3,
      nextCheckTime: T0 + 60_000,
      lastHealthError: 'timeout, then "reset"\nline 2',
      totalHealthChecks: 83,
      totalHealthCheckFailures: 5,
    },
    { proxyUrl: 'socks5://10.0.0.2:1080', source: 'list', ttlSeconds: 3_600_000 },
    { proxyUrl: 'https://[2001:db8::1]:443', password: 'only-a-password', ttlSeconds: 3_600_000 },
    { proxyUrl: 'http://10.0.0.4:3128', username: 'ünï', ttlSeconds: 3_600_000, source: 'x' },
  ];
}

async function cacheWithSamples(cache?: ProxyCache): Promise<ProxyCache> {
  const target = cache ?? (await openCache());
  for (const input of sampleInputs()) await target.put(input);
  return target;
}

async function entriesOf(cache: ProxyCache): Promise<ProxyEntry[]> {
  const out: ProxyEntry[] = [];
  for await (const entry of cache.entries()) out.push(entry);
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

/** Every field, credentials revealed, for comparison. */
function plainFields(entry: ProxyEntry): Record<string, unknown> {
  return { ...entry, username: entry.username?.reveal(), password: entry.password?.reveal() };
}

async function exportText(
  cache: ProxyCache,
  format: ExportFormat,
  secrets?: SecretsMode,
  keyring?: Keyring,
): Promise<string> {
  const out = sink();
  const result = await exportRecords(cache.entries(), out.stream, { format, secrets, keyring });
  expect(result.exported).toBe(sampleInputs().length);
  return out.text();
}

describe('exportRecords', () => {
  it('writes JSONL with proxywhirl field names, isoformat times and nulls', async () => {
    const cache = await cacheWithSamples();
    const lines = (await exportText(cache, 'jsonl', 'plain')).trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const full = records.find((r) => r.proxy_url === 'http://10.0.0.1:8080');
    expect(Object.keys(full ?? {})).toEqual(exportColumns('plain'));
    expect(full).toMatchObject({
      username: NASTY_USERNAME,
      password: NASTY_PASSWORD,
      fetch_time: '2026-11-01T13:01:55.000123+00:00',
      last_accessed: '2026-11-01T13:02:00+00:00',
      last_health_check: '2026-11-01T13:01:56.000500+00:00',
      expires_at: '2099-01-01T00:00:00+00:00',
      evicted_from_l1: true,
      health_status: 'degraded',
    });
    const bare = records.find((r) => r.proxy_url === 'socks5://10.0.0.2:1080');
    expect(bare).toMatchObject({
      username: null,
      password: null,
      last_health_check: null,
      next_check_time: null,
      last_health_error: null,
      evicted_from_l1: false,
    });
    await cache.close();
  });

  it('writes CSV with a header in a fixed order, and a streamed JSON array', async () => {
    const cache = await cacheWithSamples();
    const csv = await exportText(cache, 'csv', 'redacted');
    const rows = parseCsv(csv) as string[][];
    expect(rows[0]).toEqual(exportColumns('redacted'));
    expect(rows).toHaveLength(5);
    const json = await exportText(cache, 'json', 'redacted');
    expect(json.startsWith('[\n{"key":')).toBe(true);
    expect(json.endsWith('}\n]\n')).toBe(true);
    const array = JSON.parse(json) as Record<string, unknown>[];
    expect(array.map((r) => Object.keys(r))).toEqual(Array(4).fill(exportColumns('redacted')));
    await cache.close();
  });

  it('writes an empty JSON array, a lone CSV header and nothing for JSONL when empty', async () => {
    const cache = await openCache();
    const run = async (format: ExportFormat) => {
      const out = sink();
      expect(await exportRecords(cache.entries(), out.stream, { format })).toEqual({ exported: 0 });
      return out.text();
    };
    expect(await run('json')).toBe('[]\n');
    expect(await run('csv')).toBe(`${exportColumns().join(',')}\n`);
    expect(await run('jsonl')).toBe('');
    await cache.close();
  });

  it('leaves credentials out by default and says which records had them', async () => {
    const cache = await cacheWithSamples();
    for (const format of ['jsonl', 'csv', 'json'] as const) {
      const text = await exportText(cache, format);
      for (const secret of [NASTY_USERNAME, NASTY_PASSWORD, 'only-a-password', 'ünï']) {
        expect(text).not.toContain(JSON.stringify(secret).slice(1, -1));
        expect(text).not.toContain(secret);
      }
      expect(text).not.toContain('[redacted]');
      expect(text).not.toMatch(/"(username|password)"/);
    }
    const records = (await exportText(cache, 'jsonl'))
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { proxy_url: string; has_credentials: boolean });
    expect(Object.fromEntries(records.map((r) => [r.proxy_url, r.has_credentials]))).toEqual({
      'http://10.0.0.1:8080': true,
      'socks5://10.0.0.2:1080': false,
      'https://[2001:db8::1]:443': true,
      'http://10.0.0.4:3128': true,
    });
    await cache.close();
  });

  it('writes Fernet tokens under the given key, reusing a token that key made, changing no secret', async () => {
    const keyring = new Keyring(generateFernetKey());
    // A persistent tier makes the cache seal the secrets with its keyring.
    const cache = await cacheWithSamples(
      await openCache({ keyring, tiers: [new MemoryTier({ maxEntries: 100 }), new FaultTier()] }),
    );
    const [stored] = (await entriesOf(cache)).filter((e) => e.username !== undefined);
    const tokenBefore = stored?.username?.token;
    expect(tokenBefore).toBeDefined();

    const same = (await exportText(cache, 'jsonl', 'encrypted', keyring)).trimEnd().split('\n');
    const records = same.map((line) => JSON.parse(line) as Record<string, string | null>);
    expect(records.map((r) => r.username_encrypted)).toContain(tokenBefore);
    expect(same.join('\n')).not.toContain(NASTY_PASSWORD.slice(0, 20));

    const other = new Keyring(generateFernetKey());
    const text = await exportText(cache, 'jsonl', 'encrypted', other);
    for (const line of text.trimEnd().split('\n')) {
      const record = JSON.parse(line) as Record<string, string | null>;
      for (const field of ['username_encrypted', 'password_encrypted']) {
        const token = record[field];
        if (token !== null && token !== undefined) expect(() => other.decrypt(token)).not.toThrow();
      }
    }
    expect(stored?.username?.token).toBe(tokenBefore);
    await expect(
      exportRecords(cache.entries(), sink().stream, { format: 'jsonl', secrets: 'encrypted' }),
    ).rejects.toBeInstanceOf(InvalidOptionError);
    await cache.close();
  });

  it('rejects bad options before writing anything', async () => {
    const cache = await openCache();
    const out = sink();
    await expect(
      exportRecords(cache.entries(), out.stream, { format: 'xml' as 'csv' }),
    ).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(
      exportRecords(cache.entries(), out.stream, {
        format: 'csv',
        secrets: 'hidden' as 'plain',
      }),
    ).rejects.toBeInstanceOf(InvalidOptionError);
    expect(out.text()).toBe('');
    await cache.close();
  });

  it('waits for drain on a slow output and changes no statistic or access time', async () => {
    const cache = await openCache({ maxEntries: 20_000 });
    for (let i = 0; i < 10_000; i += 1) {
      await cache.put({ proxyUrl: `http://10.9.${i >> 8}.${i & 255}:80`, password: `pw${i}` });
    }
    const before = (await entriesOf(cache)).map((e) => [e.accessCount, e.lastAccessed]);
    const statsBefore = await cache.stats();
    const out = sink({ slow: true, highWaterMark: 1024 });
    const progress: number[] = [];
    const result = await exportRecords(cache.entries(), out.stream, {
      format: 'csv',
      secrets: 'plain',
      onProgress: (n) => progress.push(n),
    });
    expect(result.exported).toBe(10_000);
    expect(progress.at(-1)).toBe(10_000);
    expect(out.text().length).toBeGreaterThan(1_500_000);
    // Never written to while full; never more than one ~64 KiB batch buffered.
    expect(out.stats().writesWhileFull).toBe(0);
    expect(out.stats().maxBuffered).toBeLessThan(80 * 1024);
    expect((await entriesOf(cache)).map((e) => [e.accessCount, e.lastAccessed])).toEqual(before);
    expect(await cache.stats()).toEqual(statsBefore);
    await cache.close();
  });

  it('rejects when the output fails or closes early', async () => {
    const cache = await openCache({ maxEntries: 20_000 });
    for (let i = 0; i < 5_000; i += 1)
      await cache.put({ proxyUrl: `http://10.8.${i >> 8}.${i & 255}:80` });
    const failing = new Writable({
      highWaterMark: 1024,
      write(_chunk, _encoding, callback) {
        setImmediate(() => callback(new Error('disk full')));
      },
    });
    await expect(exportRecords(cache.entries(), failing, { format: 'jsonl' })).rejects.toThrow(
      'disk full',
    );
    const closing = new Writable({
      highWaterMark: 1024,
      write(_chunk, _encoding, callback) {
        setImmediate(() => closing.destroy());
        void callback;
      },
    });
    await expect(exportRecords(cache.entries(), closing, { format: 'jsonl' })).rejects.toThrow(
      /closed/,
    );
    await cache.close();
  });
});

describe('round trip: export, then import into a fresh cache', () => {
  for (const format of ['jsonl', 'csv', 'json'] as const) {
    for (const secrets of ['encrypted', 'plain'] as const) {
      it(`restores every field as ${format} with ${secrets} credentials`, async () => {
        const keyring = new Keyring(generateFernetKey());
        const source = await cacheWithSamples();
        const text = await exportText(source, format, secrets, keyring);
        if (secrets === 'encrypted') expect(text).not.toContain(NASTY_PASSWORD.slice(0, 20));

        const target = await openCache();
        const summary = await importRecords(
          target,
          parseProxyRecords(chunks(text, 13), { format, keyring }),
          { keepTimes: true },
        );
        expect(summary).toEqual({
          loaded: 4,
          updated: 0,
          refreshed: 0,
          skipped: 0,
          expired: 0,
          failed: 0,
          failures: [],
        });
        const restored = (await entriesOf(target)).map(plainFields);
        expect(restored).toEqual((await entriesOf(source)).map(plainFields));
        expect(NASTY_PASSWORD).toHaveLength(200);

        // Importing the same export again changes nothing.
        const again = await importRecords(
          target,
          parseProxyRecords(chunks(text, 4096), { format, keyring }),
          { keepTimes: true },
        );
        expect(again).toMatchObject({ loaded: 0, updated: 0, refreshed: 0, skipped: 4, failed: 0 });
        await source.close();
        await target.close();
      });
    }
  }
});
