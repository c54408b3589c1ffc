// Bad input through the command-line tool: every problem is one clear line on standard error
// with the documented exit code, bad records are counted with their line and reason, and
// nothing already stored is lost.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lines, sandbox, type Sandbox } from './helpers.js';

interface ImportJson {
  loaded: number;
  updated: number;
  skipped: number;
  failed: number;
  failures: { line: number; reason: string }[];
}

const LINES = 100_000;

/** Line `n` (1-based) of the big input: every 100th line is malformed, in one of three ways. */
function bigLine(n: number): string {
  const address = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  if (n % 100 !== 0) return JSON.stringify({ proxy_url: `http://${address}:8080`, source: 'big' });
  switch ((n / 100) % 3) {
    case 0:
      return `{"proxy_url":"http://${address}:8080","ttl_seconds":-3}`;
    case 1:
      return '{"port": 8080}';
    default:
      return `{"proxy_url":"ftp://${address}:21"}`;
  }
}

describe('bad input', () => {
  let box: Sandbox;
  /** The store's content before each bad command, to compare after it. */
  let before: string;
  const snapshot = async () => {
    const result = await box.run(['export', '--secrets', 'encrypted', '--include-expired']);
    expect(result.code).toBe(0);
    return result.stdout;
  };
  /** Runs a command that must fail with one line on stderr and leave the store as it was. */
  const failsCleanly = async (args: string[], code: number, pattern: RegExp) => {
    const result = await box.run(args);
    expect(result.code, result.stderr).toBe(code);
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(pattern);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace without --debug
    expect(await snapshot()).toBe(before);
    return result;
  };

  beforeAll(async () => {
    box = await sandbox();
    await writeFile(
      box.path('seed.txt'),
      'http://alice:s3cret@192.0.2.1:8080\nhttp://192.0.2.2:3128\nsocks5://bob:pw@192.0.2.3:1080\n',
    );
    const seeded = await box.run(['import', 'seed.txt']);
    expect(seeded.code).toBe(0);
    before = await snapshot();
    expect(before.split('\n').filter(Boolean)).toHaveLength(3);
  });
  afterAll(() => box.cleanup());

  it('a missing file: exit 1, one line naming it', async () => {
    await failsCleanly(
      ['import', 'nothere.csv'],
      1,
      /^proxytier: ENOENT: cannot read nothere\.csv: no such file\n$/,
    );
  });

  it('an empty file: exit 1, one line', async () => {
    await writeFile(box.path('empty.csv'), '');
    await failsCleanly(
      ['import', 'empty.csv'],
      1,
      /^proxytier: E_IMPORT_EMPTY: empty\.csv is empty: there is nothing to import\n$/,
    );
  });

  it('a binary file: exit 1, one line with E_IMPORT_FORMAT, even with --format', async () => {
    const binary = Buffer.alloc(4096);
    for (let i = 0; i < binary.length; i += 1) binary[i] = (i * 7919) & 255;
    binary[0] = 0x1f;
    binary[1] = 0x8b;
    await writeFile(box.path('pool.txt.gz'), binary);
    await failsCleanly(
      ['import', 'pool.txt.gz'],
      1,
      /^proxytier: E_IMPORT_FORMAT: "pool\.txt\.gz" looks binary: .*gzip-compressed: decompress it first/,
    );
    await failsCleanly(
      ['import', 'pool.txt.gz', '--format', 'text'],
      1,
      /E_IMPORT_FORMAT: .*looks binary/,
    );
  });

  it('a directory, a JSON document that is not an array, a CSV without an address column', async () => {
    await failsCleanly(
      ['import', box.root],
      1,
      /^proxytier: EISDIR: cannot read .*: it is a directory\n$/,
    );
    await writeFile(box.path('object.json'), '{"proxy_url": "http://192.0.2.9:80"}');
    await failsCleanly(
      ['import', 'object.json'],
      1,
      /^proxytier: E_IMPORT_FORMAT: the JSON input must be an array/,
    );
    await writeFile(box.path('nohost.csv'), 'name,port\na,1\n');
    await failsCleanly(
      ['import', 'nohost.csv'],
      1,
      /^proxytier: E_IMPORT_FORMAT: the CSV header on line 1 names no "proxy_url", "url", "proxy" or "host" column\n$/,
    );
  });

  it('a file where every record is bad: the failures, then exit 1', async () => {
    await writeFile(box.path('bad.txt'), 'not a proxy\nftp://192.0.2.1:21\n');
    const result = await box.run(['import', 'bad.txt']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('0 loaded, 0 updated, 0 refreshed, 0 skipped, 2 failed');
    expect(result.stdout).toContain('line 2: "proxy URL" has unsupported scheme "ftp"');
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(
        /^proxytier: E_IMPORT_NOTHING: none of the 2 records of bad\.txt could be imported/,
      ),
    ]);
    expect(await snapshot()).toBe(before);
  });

  it('usage errors: exit 2, one line', async () => {
    await failsCleanly(
      ['import', 'seed.txt', '--bogus'],
      2,
      /^proxytier: unknown option '--bogus'\n$/,
    );
    await failsCleanly(['lst'], 2, /^proxytier: unknown command 'lst' \(Did you mean list\?\)\n$/);
    await failsCleanly(['import'], 2, /^proxytier: missing required argument 'file'\n$/);
    await failsCleanly(
      ['import', 'seed.txt', '--ttl', 'soon'],
      2,
      /--ttl must be a non-negative integer/,
    );
    await failsCleanly(
      ['import', 'seed.txt', '--format', 'xml'],
      2,
      /Allowed choices are csv, json, jsonl, text/,
    );
    await failsCleanly(
      ['export', '--secrets', 'clear'],
      2,
      /Allowed choices are redacted, encrypted, plain/,
    );
    await failsCleanly(['list', '--limit', '0'], 2, /--limit must be a positive integer/);
    await failsCleanly(
      ['list', '--health', 'fine'],
      2,
      /^proxytier: --health must be one of unknown, healthy, degraded, unhealthy, dead, got "fine"\n$/,
    );
    await failsCleanly(
      ['list', '--sort', 'random'],
      2,
      /Allowed choices are lastAccessed, lastHealthCheck, responseTime, successRate/,
    );
    await failsCleanly(
      ['history', '192.0.2.1:8080', '--since', 'yesterday'],
      2,
      /--since must be an ISO 8601 time/,
    );
    await failsCleanly(
      ['list', '--expired', '--sort', 'responseTime'],
      2,
      /cannot be combined with --expired/,
    );
  });

  it('--debug adds the stack trace', async () => {
    const result = await box.run(['--debug', 'import', 'nothere.csv']);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)[0]).toBe(
      'proxytier: ENOENT: cannot read nothere.csv: no such file',
    );
    expect(result.stderr).toMatch(/\n\s+at /);
  });

  it(`imports a ${LINES.toLocaleString('en-US')}-line file with 1% bad lines: the rest, and each bad line's number and reason`, async () => {
    const content: string[] = [];
    for (let n = 1; n <= LINES; n += 1) content.push(bigLine(n));
    await writeFile(box.path('big.jsonl'), `${content.join('\n')}\n`);
    const result = await box.run(['import', 'big.jsonl', '--json']);
    expect(result.code, result.stderr).toBe(0);
    // Standard error is not a terminal here: no progress bar, only the one-line notice.
    expect(lines(result.stderr)).toEqual([
      'proxytier: 1000 of 100000 records failed; the others were imported',
    ]);
    const summary = JSON.parse(result.stdout) as ImportJson;
    expect(summary).toMatchObject({
      loaded: 99_000,
      updated: 0,
      refreshed: 0,
      skipped: 0,
      failed: 1_000,
    });
    expect(summary.failures).toHaveLength(1_000);
    expect(summary.failures.map((failure) => failure.line)).toEqual(
      Array.from({ length: 1_000 }, (_, i) => (i + 1) * 100),
    );
    expect(summary.failures[0]).toEqual({
      line: 100,
      reason: 'line 100: missing proxy URL (no "proxy_url", "url" or "host" field)',
    });
    expect(summary.failures[1]).toEqual({
      line: 200,
      reason:
        'line 200: "proxy_url" has unsupported scheme "ftp" (expected one of http, https, socks4, socks4a, socks5, socks5h)',
    });
    expect(summary.failures[2]).toEqual({
      line: 300,
      reason: 'line 300: "ttl_seconds" must be a non-negative integer, got -3',
    });
    expect(summary.failures.at(-1)?.reason).toBe(
      'line 100000: missing proxy URL (no "proxy_url", "url" or "host" field)',
    );

    // Without --json: the first 20 failures, then how many more.
    const again = await box.run(['import', 'big.jsonl']);
    expect(again.code).toBe(0);
    const out = lines(again.stdout);
    expect(out[0]).toBe(
      'imported big.jsonl (jsonl): 0 loaded, 0 updated, 0 refreshed, 99000 skipped, 1000 failed',
    );
    expect(out[1]).toBe('1000 records were not imported:');
    expect(out.slice(2, 22)).toHaveLength(20);
    expect(out[2]).toBe('  line 100: missing proxy URL (no "proxy_url", "url" or "host" field)');
    expect(out[22]).toBe('  ... and 980 more (--json lists every failure)');

    // The entries stored before are all still there.
    const stats = await box.json<{ tiers: { entries: number }[] }>(['stats']);
    expect(stats.tiers[0]?.entries).toBe(99_003);
    const seed = await box.run(['get', 'http://192.0.2.1:8080', '--json']);
    expect(JSON.parse(seed.stdout)).toMatchObject({ has_credentials: true });
  });
});

describe('a directory that holds no store', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
  });
  afterAll(() => box.cleanup());

  it.each([
    ['get', '192.0.2.1:8080'],
    ['list'],
    ['stats'],
    ['history', '192.0.2.1:8080'],
    ['export', 'out.jsonl'],
    ['cleanup'],
    ['compact'],
    ['delete', '192.0.2.1:8080'],
    ['clear', '--yes'],
    ['report-failure', '192.0.2.1:8080'],
    ['check-result', '192.0.2.1:8080', '--status', 'healthy'],
  ])('%s exits 1 naming it, and creates nothing (no database, no key file)', async (...args) => {
    const mistyped = join(box.root, 'sotre');
    const result = await box.run(['--dir', mistyped, ...args], { noDir: true });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      `proxytier: E_NO_STORE: no store in ${mistyped} (run "proxytier import" to create one, or check --dir)`,
    ]);
    expect(existsSync(mistyped)).toBe(false);
    expect(existsSync(box.keyFile)).toBe(false);
    expect(existsSync(join(box.root, 'out.jsonl'))).toBe(false);
  });
});
