// importRecords: what is loaded, updated, skipped and failed; last-wins order per key under
// concurrent writes; big inputs with bad lines; proxywhirl's own JSONL files.
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { ImportAbortedError, InvalidOptionError } from '../../src/errors.js';
import { exportRecords } from '../../src/io/export.js';
import {
  detectFormat,
  importRecords,
  parseProxyRecords,
  readHead,
  type ImportFormat,
  type ImportItem,
} from '../../src/io/import.js';
import type { ProxyEntry } from '../../src/record/entry.js';
import { deriveKey } from '../../src/record/url.js';
import { FaultTier } from '../../src/tiers/fault.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { chunks, openCache } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'proxytier-import-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function parse(text: string, format: ImportFormat = 'text') {
  return parseProxyRecords(chunks(text, 4096), { format });
}

async function* itemsOf(items: ImportItem[]): AsyncGenerator<ImportItem> {
  yield* items;
}

describe('importRecords', () => {
  it('counts new keys as loaded, changed ones as updated and identical ones as skipped', async () => {
    const cache = await openCache();
    const first = await importRecords(
      cache,
      parse('10.0.0.1:80\n10.0.0.2:80\n10.0.0.1:80\nhttp://u:p@10.0.0.3:80\n'),
    );
    expect(first).toEqual({
      loaded: 3,
      updated: 0,
      refreshed: 0,
      skipped: 1,
      expired: 0,
      failed: 0,
      failures: [],
    });

    // Stored entries gather statistics; a re-import of the same list changes nothing.
    const key1 = deriveKey('http://10.0.0.1:80');
    await cache.get(key1);
    const again = await importRecords(cache, parse('10.0.0.1:80\nhttp://u:p@10.0.0.3:80\n'));
    expect(again).toMatchObject({ loaded: 0, updated: 0, refreshed: 0, skipped: 2, failed: 0 });
    expect((await cache.peek(key1))?.accessCount).toBe(1);

    // A new password, or credentials dropped, is a change; the later record wins.
    const key3 = deriveKey('http://10.0.0.3:80');
    const changed = await importRecords(
      cache,
      parse('http://u:new@10.0.0.3:80\n10.0.0.2:80\nhttp://u:newer@10.0.0.3:80\n'),
    );
    expect(changed).toMatchObject({ loaded: 0, updated: 2, refreshed: 0, skipped: 1, failed: 0 });
    expect((await cache.peek(key3))?.password?.reveal()).toBe('newer');
    await cache.close();
  });

  it('compares the fields a record gives, and replaces the entry when one differs', async () => {
    const cache = await openCache();
    const line = (fields: object) => JSON.stringify({ proxy_url: 'http://10.0.0.9:80', ...fields });
    const text = [
      line({ source: 'a', ttl_seconds: 60, health_status: 'healthy' }),
      line({ source: 'a', ttl_seconds: 60, health_status: 'healthy' }),
      line({ source: 'a' }),
      line({ source: 'b' }),
      line({ source: 'b', fetch_time: '2099-11-01T13:01:55.000001+00:00' }),
      line({ source: 'b', fetch_time: '2099-11-01T13:01:55.000001+00:00' }),
    ].join('\n');
    const summary = await importRecords(cache, parse(text, 'jsonl'), { keepTimes: true });
    expect(summary).toMatchObject({ loaded: 1, updated: 2, refreshed: 0, skipped: 3, failed: 0 });
    const entry = await cache.peek(deriveKey('http://10.0.0.9:80'));
    expect(entry?.source).toBe('b');
    expect(entry?.fetchTime).toBe(Date.parse('2099-11-01T13:01:55Z') + 0.001);
    await cache.close();
  });

  it('keeps the last record of each key under concurrent, out-of-order writes', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    // A persistent-style tier whose writes finish in random order.
    class JitterTier extends FaultTier {
      override async set(entry: ProxyEntry): Promise<void> {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        this.setLatency(1 + Math.floor(Math.random() * 4));
        try {
          await super.set(entry);
        } finally {
          inFlight -= 1;
        }
      }
    }
    const l2 = new JitterTier({ name: 'l2' });
    const cache = await openCache({ tiers: [new MemoryTier({ maxEntries: 1000 }), l2] });
    const lines: string[] = [];
    // Versions of a key close together, so that several are in flight at once.
    for (let host = 0; host < 40; host += 2) {
      for (let version = 0; version < 8; version += 1) {
        lines.push(`http://user:v${version}@10.0.1.${host}:8080`);
        lines.push(`http://user:v${version}@10.0.1.${host + 1}:8080`);
      }
    }
    const progress: number[] = [];
    const summary = await importRecords(cache, parse(lines.join('\n')), {
      onProgress: (done) => progress.push(done),
      concurrency: 8,
    });
    expect(summary).toMatchObject({
      loaded: 40,
      updated: 280,
      refreshed: 0,
      skipped: 0,
      expired: 0,
      failed: 0,
    });
    expect(progress.at(-1)).toBe(320);
    expect(maxInFlight).toBeGreaterThan(1);
    expect(maxInFlight).toBeLessThanOrEqual(8);
    for (let host = 0; host < 40; host += 1) {
      const stored = await l2.get(deriveKey(`http://10.0.1.${host}:8080`));
      expect(stored?.password?.reveal()).toBe('v7');
    }
    await cache.close();
  });

  it('counts invalid hand-made items and items that carry an error', async () => {
    const cache = await openCache();
    const summary = await importRecords(
      cache,
      itemsOf([
        { line: 1, input: { proxyUrl: 'http://10.0.0.1:80', ttlSeconds: -1 } },
        { line: 2, error: 'line 2: something was wrong' },
        { line: 3, input: { proxyUrl: 'http://10.0.0.3:80' } },
      ]),
    );
    expect(summary).toEqual({
      loaded: 1,
      updated: 0,
      refreshed: 0,
      skipped: 0,
      expired: 0,
      failed: 2,
      failures: [
        { line: 1, reason: 'line 1: "ttlSeconds" must be a non-negative integer, got -1' },
        { line: 2, reason: 'line 2: something was wrong' },
      ],
    });
    await cache.close();
  });

  it('refuses a malformed escape or a raw control character in a URL credential, naming the column, never the value', async () => {
    const cache = await openCache();
    const summary = await importRecords(
      cache,
      parse(
        [
          JSON.stringify({ proxy: 'http://bob:50%off@10.0.0.1:8080' }),
          JSON.stringify({ proxy_url: 'http://bob:ta\tb@10.0.0.2:8080' }),
          JSON.stringify({ proxy_url: 'http://bob:ok%25@10.0.0.3:8080', username: 'tab\there' }),
        ].join('\n'),
        'jsonl',
      ),
    );
    expect(summary).toMatchObject({ loaded: 1, failed: 2 });
    const reasons = summary.failures.map((failure) => failure.reason);
    expect(reasons[0]).toMatch(/^line 1: "password" in "proxy" has a malformed percent-escape/);
    expect(reasons[1]).toMatch(/^line 2: "password" in "proxy_url" contains a control character/);
    expect(reasons.join('\n')).not.toMatch(/50%off|ta\tb/);
    // A credential given as a field keeps every character; an escaped one decodes exactly.
    const stored = await cache.get(deriveKey('http://10.0.0.3:8080'));
    expect(stored?.password?.reveal()).toBe('ok%');
    expect(stored?.username?.reveal()).toBe('tab\there');
    await cache.close();
  });

  it('refreshes expired entries on a re-import (new fetch time and expiry from the cache clock)', async () => {
    const start = Date.parse('2026-11-01T12:00:00Z');
    const clock = new ManualClock(start);
    const cache = await openCache({ clock });
    const list = 'http://u:p@10.0.0.1:80\n10.0.0.2:80\n';
    const first = await importRecords(
      cache,
      parseProxyRecords(chunks(list), { format: 'text', ttlSeconds: 60 }),
    );
    expect(first).toMatchObject({ loaded: 2, refreshed: 0, skipped: 0 });
    expect((await cache.peek(deriveKey('http://10.0.0.1:80')))?.fetchTime).toBe(start);
    await clock.advance(61_000);
    expect(await cache.query({})).toEqual([]);
    const again = await importRecords(
      cache,
      parseProxyRecords(chunks(list), { format: 'text', ttlSeconds: 60 }),
    );
    expect(again).toMatchObject({ loaded: 0, updated: 0, refreshed: 2, skipped: 0, failed: 0 });
    const live = await cache.query({});
    expect(live).toHaveLength(2);
    for (const entry of live) {
      expect(entry.fetchTime).toBe(start + 61_000);
      expect(entry.expiresAt).toBe(start + 121_000);
    }
    expect(live.find((entry) => entry.username !== undefined)?.password?.reveal()).toBe('p');
    // Live now: the same list once more changes nothing.
    const third = await importRecords(
      cache,
      parseProxyRecords(chunks(list), { format: 'text', ttlSeconds: 60 }),
    );
    expect(third).toMatchObject({ refreshed: 0, skipped: 2 });
    await cache.close();
  });

  it('with keepTimes, compares a record with its own times as it is and counts those expired', async () => {
    const clock = new ManualClock(Date.parse('2026-11-01T12:00:00Z'));
    const cache = await openCache({ clock });
    const line = JSON.stringify({
      proxy_url: 'http://10.0.0.9:80',
      fetch_time: '2026-11-01T10:00:00+00:00',
      expires_at: '2026-11-01T11:00:00+00:00',
    });
    const parse = () => parseProxyRecords(chunks(line), { format: 'jsonl' });
    const once = await importRecords(cache, parse(), { keepTimes: true });
    expect(once).toMatchObject({ loaded: 1, expired: 1 });
    const twice = await importRecords(cache, parse(), { keepTimes: true });
    expect(twice).toMatchObject({ loaded: 0, refreshed: 0, skipped: 1 });
    // Stored, but not served: it had expired before it arrived.
    expect(await cache.get(deriveKey('http://10.0.0.9:80'))).toBeUndefined();
    await cache.close();
  });

  it('by default, an older export is fetched now: its stated times give way to the TTL', async () => {
    const now = Date.parse('2026-11-01T12:00:00Z');
    const clock = new ManualClock(now);
    const cache = await openCache({ clock });
    const record = (port: number) =>
      JSON.stringify({
        proxy_url: `http://10.0.0.9:${port}`,
        fetch_time: '2026-10-01T10:00:00+00:00',
        expires_at: '2026-10-01T11:00:00+00:00',
        ttl_seconds: 3600,
      });
    const text = `${record(80)}\n${record(81)}\n`;
    const summary = await importRecords(
      cache,
      parseProxyRecords(chunks(text), { format: 'jsonl' }),
    );
    expect(summary).toMatchObject({ loaded: 2, expired: 0, failed: 0 });
    const live = await cache.get(deriveKey('http://10.0.0.9:80'));
    expect(live?.fetchTime).toBe(now);
    expect(live?.expiresAt).toBe(now + 3_600_000);
    // A TTL given to the import wins over the records' own.
    await cache.clear();
    await importRecords(cache, parseProxyRecords(chunks(text), { format: 'jsonl' }), {
      ttlSeconds: 60,
    });
    const short = await cache.get(deriveKey('http://10.0.0.9:81'));
    expect(short?.ttlSeconds).toBe(60);
    expect(short?.expiresAt).toBe(now + 60_000);
    await expect(
      importRecords(cache, parseProxyRecords(chunks(text), { format: 'jsonl' }), {
        keeptimes: true,
      } as never),
    ).rejects.toThrow(/"keeptimes" is not a importRecords option; did you mean "keepTimes"\?/);
    await cache.close();
  });

  it('reports a write the cache refused as a failure of that line', async () => {
    const l1 = new FaultTier({ name: 'only', persistent: false });
    const cache = await openCache({ tiers: [l1], tierFailureThreshold: 1000 });
    l1.failAll();
    const summary = await importRecords(cache, parse('10.0.0.1:80\n'));
    expect(summary.failed).toBe(1);
    expect(summary.failures[0]?.reason).toMatch(/^line 1: not stored: /);
    await cache.close();
  });

  it('stops with ImportAbortedError past maxErrors, keeping what was stored', async () => {
    const cache = await openCache();
    const text = ['10.0.0.1:80', 'bad:port', '10.0.0.2:80', 'bad:port', 'bad:port', '10.0.0.3:80'];
    const error = await importRecords(cache, parse(text.join('\n')), { maxErrors: 1 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ImportAbortedError);
    const aborted = error as ImportAbortedError;
    expect(aborted.code).toBe('E_IMPORT_ABORTED');
    expect(aborted.summary).toMatchObject({ loaded: 2, failed: 2 });
    expect(aborted.summary.failures.map((f) => f.line)).toEqual([2, 4]);
    expect(await cache.peek(deriveKey('http://10.0.0.3:80'))).toBeUndefined();
    await expect(importRecords(cache, parse(''), { concurrency: 0 })).rejects.toBeInstanceOf(
      InvalidOptionError,
    );
    await cache.close();
  });

  it('stops, after the writes in flight, when onProgress throws', async () => {
    const cache = await openCache();
    const text = Array.from({ length: 100 }, (_, i) => `10.0.2.${i}:80`).join('\n');
    const stop = new Error('stop here');
    await expect(
      importRecords(cache, parse(text), {
        onProgress: (done) => {
          if (done === 10) throw stop;
        },
      }),
    ).rejects.toBe(stop);
    expect((await cache.stats()).tiers[0]?.entries).toBeLessThan(100);
    await cache.close();
  });

  it('loads nothing from an empty input', async () => {
    const cache = await openCache();
    for (const format of ['csv', 'json', 'jsonl', 'text'] as const) {
      expect(await importRecords(cache, parse('', format))).toEqual({
        loaded: 0,
        updated: 0,
        refreshed: 0,
        skipped: 0,
        expired: 0,
        failed: 0,
        failures: [],
      });
    }
    await cache.close();
  });
});

describe('a 100,000-line file with 1% bad lines', () => {
  const LINES = 100_000;

  /** Writes the file; returns it and the bad lines' numbers with what their reasons must say. */
  async function generate(format: ImportFormat) {
    const bad = new Map<number, RegExp>();
    const out: string[] = [];
    if (format === 'csv') out.push('proxy_url,username,password,ttl_seconds,evicted_from_l1');
    const header = out.length;
    for (let i = 0; i < LINES; i += 1) {
      const line = i + 1 + header;
      const url = `http://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:${1000 + (i % 50_000)}`;
      const kind = i % 100 === 99 ? Math.floor(i / 100) % 3 : -1;
      if (format === 'text') {
        if (kind === 0) out.push(`10.0.0.1:${70_000 + i}`);
        else if (kind === 1) out.push('ftp://10.0.0.1:21');
        else if (kind === 2) out.push('http://10.0.0.1:80/some/path');
        else out.push(i % 2 === 0 ? url : url.replace('http://', `http://u${i}:p${i}@`));
        if (kind === 0) bad.set(line, /^line \d+: "proxy URL" is not a valid URL$/);
        if (kind === 1) bad.set(line, /unsupported scheme "ftp"/);
        if (kind === 2) bad.set(line, /must not have a path/);
      } else if (format === 'jsonl') {
        if (kind === 0) out.push(`{"proxy_url": "${url}", "password": oops}`);
        else if (kind === 1) out.push(`{"url": "${url}", "ttl_seconds": -3}`);
        else if (kind === 2) out.push(`{"username": "u${i}"}`);
        else out.push(JSON.stringify({ proxy_url: url, username: `u${i}`, password: `p${i}` }));
        if (kind === 0) bad.set(line, /invalid JSON/);
        if (kind === 1) bad.set(line, /"ttl_seconds" must be a non-negative integer, got -3$/);
        if (kind === 2) bad.set(line, /missing proxy URL/);
      } else {
        if (kind === 0) out.push(`${url},u,p,60,true,extra`);
        else if (kind === 1) out.push(`${url},u,p,-3,true`);
        else if (kind === 2) out.push(`${url},u,p,60,maybe`);
        else out.push(`${url},u${i},"p,${i}",${i % 1000},${i % 2 === 0}`);
        if (kind === 0) bad.set(line, /the row has 6 fields but the header has 5/);
        if (kind === 1) bad.set(line, /"ttl_seconds" must be a non-negative integer, got -3$/);
        if (kind === 2) bad.set(line, /"evicted_from_l1" must be true, false, 1 or 0/);
      }
    }
    const path = join(dir, `big.${format === 'text' ? 'txt' : format}`);
    await writeFile(path, `${out.join('\n')}\n`);
    return { path, bad, good: LINES - bad.size };
  }

  for (const format of ['text', 'jsonl', 'csv'] as const) {
    it(`imports every good ${format} line and reports each bad one by number and reason`, async () => {
      const { path, bad, good } = await generate(format);
      expect(bad.size).toBe(1000);
      const cache = await openCache({ maxEntries: 200_000 });
      const { head, input } = await readHead(createReadStream(path));
      expect(detectFormat(path, head)).toBe(format);
      const summary = await importRecords(cache, parseProxyRecords(input, { format }));
      expect(summary.loaded).toBe(good);
      expect(summary.updated + summary.skipped).toBe(0);
      expect(summary.failed).toBe(bad.size);
      expect(summary.failures.map((f) => f.line)).toEqual([...bad.keys()]);
      for (const failure of summary.failures) {
        expect(failure.reason.startsWith(`line ${failure.line}: `)).toBe(true);
        expect(failure.reason).toMatch(bad.get(failure.line) as RegExp);
      }
      expect((await cache.stats()).tiers[0]?.entries).toBe(good);
      await cache.close();
    });
  }
});

describe('proxywhirl files', () => {
  const fixtures = new URL('../fixtures/proxywhirl/', import.meta.url);

  it('imports proxywhirl JSONL shards with the key, restoring every field and credential', async () => {
    const key = (await readFile(new URL('fernet.key', fixtures), 'utf8')).trim();
    const keyring = new Keyring(key);
    const expected = JSON.parse(await readFile(new URL('expected.json', fixtures), 'utf8')) as {
      entries: Record<string, unknown>[];
    };
    const cache = await openCache();
    const shards = new URL('l2-jsonl/', fixtures);
    let loaded = 0;
    for (const name of (await readdir(shards)).sort()) {
      const summary = await importRecords(
        cache,
        parseProxyRecords(createReadStream(new URL(name, shards)), { format: 'jsonl', keyring }),
        { keepTimes: true },
      );
      expect(summary.failed, name).toBe(0);
      loaded += summary.loaded;
    }
    expect(loaded).toBe(expected.entries.length);

    // Exported in clear, the live entries read exactly as proxywhirl's model_dump(mode="json").
    const lines: string[] = [];
    const sink = new (await import('node:stream')).Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        callback();
      },
    });
    await exportRecords(cache.entries(), sink, { format: 'jsonl', secrets: 'plain' });
    const live = expected.entries
      .filter((entry) => entry.expired === false)
      .map(({ expired: _expired, ...entry }) => entry);
    const exported = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const byKey = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      String(a.key).localeCompare(String(b.key));
    expect(exported.sort(byKey)).toEqual(live.sort(byKey));
    expect(lines.map((line) => Object.keys(JSON.parse(line) as object))[0]).toEqual(
      Object.keys(live[0] as object),
    );
    await cache.close();
  });
});
