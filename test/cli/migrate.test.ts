// `proxytier migrate` on a copy of proxywhirl's own cache files: every entry, credential and
// health-history row arrives; a second run changes nothing; a wrong key fails cleanly.
import { createHash } from 'node:crypto';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FIXTURES,
  lines,
  plainExport,
  sandbox,
  type ExportedRecord,
  type Sandbox,
} from './helpers.js';

interface Expected {
  entries: (ExportedRecord & { expired: boolean })[];
  health_history: {
    proxy_key: string;
    check_time: number;
    status: string;
    response_time_ms: number | null;
    error_message: string | null;
    check_url: string;
  }[];
}

interface Report {
  sources: {
    path: string;
    kind: string;
    entries: {
      loaded: number;
      updated: number;
      refreshed: number;
      skipped: number;
      failed: number;
    };
    history: { imported: number; skipped: number } | null;
  }[];
}

/** A digest of every file under `dir`, to show the source was not written. */
async function digest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
  for (const file of files) hash.update(file).update(await readFile(file));
  return hash.digest('hex');
}

describe('migrate', () => {
  let box: Sandbox;
  let expected: Expected;
  let source: string;
  let sourceDigest: string;
  let firstExport: Map<string, ExportedRecord>;

  beforeAll(async () => {
    box = await sandbox();
    expected = JSON.parse(await readFile(join(FIXTURES, 'expected.json'), 'utf8')) as Expected;
    source = box.path('proxywhirl');
    await cp(FIXTURES, source, { recursive: true });
    sourceDigest = await digest(source);
  });
  afterAll(() => box.cleanup());

  it('imports every entry and health-history row, and counts them per source file', async () => {
    const report = await box.json<Report>([
      'migrate',
      source,
      '--key-file',
      join(source, 'fernet.key'),
    ]);
    expect(report.sources.map((item) => item.kind).sort()).toEqual([
      'jsonl',
      'l2-sqlite',
      'l3-sqlite',
    ]);
    for (const item of report.sources) {
      const { loaded, updated, skipped, failed } = item.entries;
      expect(failed).toBe(0);
      expect(loaded + updated + skipped).toBe(expected.entries.length);
    }
    const l3 = report.sources.find((item) => item.kind === 'l3-sqlite');
    expect(l3?.history).toEqual({ imported: expected.health_history.length, skipped: 0 });
    expect(await digest(source)).toBe(sourceDigest);
  });

  it('then exports exactly what proxywhirl stored, field by field, credentials included', async () => {
    firstExport = await plainExport(box, ['--include-expired']);
    expect(firstExport.size).toBe(expected.entries.length);
    for (const { expired: _expired, ...record } of expected.entries) {
      expect(firstExport.get(record.key)).toEqual(record);
    }
    // Without --include-expired, the expired entries are left out.
    const live = await plainExport(box);
    expect([...live.keys()].sort()).toEqual(
      expected.entries
        .filter((record) => !record.expired)
        .map((record) => record.key)
        .sort(),
    );
  });

  it('lists the expired entries with list --expired', async () => {
    const expired = await box.json<ExportedRecord[]>(['list', '--expired']);
    expect(expired.map((record) => record.key).sort()).toEqual(
      expected.entries
        .filter((record) => record.expired)
        .map((record) => record.key)
        .sort(),
    );
  });

  it('keeps the health history of every proxy', async () => {
    const keys = [...new Set(expected.health_history.map((row) => row.proxy_key))];
    for (const key of keys) {
      const rows = await box.json<Record<string, unknown>[]>(['history', key, '--limit', '1000']);
      const want = expected.health_history
        .filter((row) => row.proxy_key === key)
        .map((row) => ({
          ...row,
          check_time: new Date(row.check_time * 1000).toISOString().replace(/\.000Z$/, '+00:00'),
        }))
        .sort((a, b) => (a.check_time < b.check_time ? 1 : -1));
      expect(rows).toEqual(want);
    }
  });

  it('changes nothing when run again', async () => {
    const result = await box.run(['migrate', source, '--key-file', join(source, 'fernet.key')]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(
      (await box.run(['migrate', source, '--key-file', join(source, 'fernet.key'), '--json']))
        .stdout,
    ) as Report;
    for (const item of report.sources) {
      expect(item.entries).toEqual({
        loaded: 0,
        updated: 0,
        refreshed: 0,
        skipped: expected.entries.length,
        failed: 0,
      });
      if (item.kind === 'l3-sqlite') {
        expect(item.history).toEqual({ imported: 0, skipped: expected.health_history.length });
      }
    }
    expect(result.stdout).toMatch(
      /\(l3-sqlite\): 0 loaded, 0 updated, 40 skipped, 0 failed; health history: 0 imported, 24 skipped/,
    );
    expect(await plainExport(box, ['--include-expired'])).toEqual(firstExport);
  });

  it('with a wrong key: one line on stderr, exit 1, and the store keeps what it had', async () => {
    const made = await box.run(['key', 'generate', '--output', 'wrong.key']);
    expect(made.code).toBe(0);
    const result = await box.run(['migrate', source, '--key-file', box.path('wrong.key')]);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(
        /^proxytier: E_DECRYPT: \d+ records could not be decrypted with proxywhirl's key: is it the key of this cache\?/,
      ),
    ]);
    expect(result.stdout).toContain("with credentials that proxywhirl's key cannot decrypt");
    expect(await plainExport(box, ['--include-expired'])).toEqual(firstExport);
  });

  it('without a key: a usage error naming both ways to give it', async () => {
    const result = await box.run(['migrate', source]);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([
      "proxytier: migrate needs proxywhirl's key to read the stored credentials: pass --key-file <proxywhirl key file> or set PROXYWHIRL_CACHE_ENCRYPTION_KEY",
    ]);
    const missing = await box.run(['migrate', box.path('nothere')]);
    expect(missing.code).toBe(1);
    expect(lines(missing.stderr)).toEqual([
      `proxytier: ENOENT: cannot read ${box.path('nothere')}: no such directory`,
    ]);
  });

  it("takes proxywhirl's key from PROXYWHIRL_CACHE_ENCRYPTION_KEY", async () => {
    const other = await sandbox();
    try {
      const key = (await readFile(join(FIXTURES, 'fernet.key'), 'utf8')).trim();
      // The library honours proxywhirl's variable for the store's own key too (it comes before
      // the key file), so every command of this store runs with it.
      const env = { PROXYWHIRL_CACHE_ENCRYPTION_KEY: key };
      const report = await other.json<Report>(['migrate', source], { env });
      expect(report.sources.every((item) => item.entries.failed === 0)).toBe(true);
      expect(await plainExport(other, ['--include-expired'], env)).toEqual(firstExport);
      const doctor = await other.json<{
        checks: { key: { source: string }; tokens: { current: number; previous: number } };
      }>(['doctor'], { env });
      expect(doctor.checks.key.source).toBe('proxywhirl-env');
      expect(doctor.checks.tokens.previous).toBe(0);
      expect(doctor.checks.tokens.current).toBeGreaterThan(0);
    } finally {
      await other.cleanup();
    }
  });
});
