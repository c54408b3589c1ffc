// `import` of every input format and `export` in every format and secrets mode, through the built
// command-line tool: what goes in comes back out, field by field.
import { copyFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
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

interface ImportJson {
  input: string;
  format: string;
  loaded: number;
  updated: number;
  skipped: number;
  failed: number;
  failures: { line: number; reason: string }[];
}

/** proxywhirl's 40 entries, with every field set somewhere and tricky credentials. */
async function fixtureEntries(): Promise<ExportedRecord[]> {
  const text = await readFile(join(FIXTURES, 'expected.json'), 'utf8');
  const { entries } = JSON.parse(text) as { entries: (ExportedRecord & { expired?: boolean })[] };
  return entries.map(({ expired: _expired, ...record }) => record);
}

describe('import: every input format', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
  });
  afterAll(() => box.cleanup());

  it('reads a text list: URLs, host:port, host:port:user:pass, comments', async () => {
    await writeFile(
      box.path('list.txt'),
      [
        '# a comment',
        'http://192.0.2.1:8080',
        '192.0.2.2:3128  # trailing comment',
        '',
        'socks5://alice:s3cret@192.0.2.3:1080',
        '192.0.2.4:8000:bob:pa:ss',
      ].join('\n'),
    );
    const result = await box.json<ImportJson>(['import', 'list.txt', '--source', 'list-a']);
    expect(result).toMatchObject({
      format: 'text',
      loaded: 4,
      updated: 0,
      refreshed: 0,
      skipped: 0,
      failed: 0,
    });
    const all = await plainExport(box);
    const bob = [...all.values()].find((record) => record['proxy_url'] === 'http://192.0.2.4:8000');
    expect(bob).toMatchObject({ username: 'bob', password: 'pa:ss', source: 'list-a' });
    const alice = [...all.values()].find((r) => r['proxy_url'] === 'socks5://192.0.2.3:1080');
    expect(alice).toMatchObject({ username: 'alice', password: 's3cret' });
  });

  it('reads CSV with quoted cells, and --ttl applies to records without one', async () => {
    await writeFile(
      box.path('pool.csv'),
      'proxy_url,username,password,source\n' +
        'http://192.0.2.10:8080,"u,1","p ""quoted""",csv-src\n' +
        'https://192.0.2.11:443,,,csv-src\n',
    );
    const result = await box.json<ImportJson>(['import', 'pool.csv', '--ttl', '120']);
    expect(result).toMatchObject({ format: 'csv', loaded: 2, failed: 0 });
    const all = await plainExport(box);
    const first = [...all.values()].find((r) => r['proxy_url'] === 'http://192.0.2.10:8080');
    expect(first).toMatchObject({
      username: 'u,1',
      password: 'p "quoted"',
      source: 'csv-src',
      ttl_seconds: 120,
    });
  });

  it('reads a JSON array and JSONL, and detects the format from the content', async () => {
    await writeFile(
      box.path('a.json'),
      JSON.stringify([{ proxy_url: 'http://192.0.2.20:80' }, 'http://192.0.2.21:80']),
    );
    await writeFile(
      box.path('b.jsonl'),
      '{"proxy_url":"http://192.0.2.22:80","health_status":"healthy"}\n{"url":"http://192.0.2.23:80"}\n',
    );
    // No extension: the content decides.
    await writeFile(box.path('no-extension'), '[{"proxy_url":"http://192.0.2.24:80"}]');
    expect(await box.json<ImportJson>(['import', 'a.json'])).toMatchObject({
      format: 'json',
      loaded: 2,
    });
    expect(await box.json<ImportJson>(['import', 'b.jsonl'])).toMatchObject({
      format: 'jsonl',
      loaded: 2,
    });
    expect(await box.json<ImportJson>(['import', 'no-extension'])).toMatchObject({
      format: 'json',
      loaded: 1,
    });
  });

  it('reads standard input with "-", detecting or forcing the format', async () => {
    const detected = await box.json<ImportJson>(['import', '-'], {
      input: 'proxy_url\nhttp://192.0.2.30:80\n',
    });
    expect(detected).toMatchObject({ input: 'standard input', format: 'csv', loaded: 1 });
    const forced = await box.json<ImportJson>(['import', '-', '--format', 'text'], {
      input: 'http://192.0.2.31:80\n',
    });
    expect(forced).toMatchObject({ format: 'text', loaded: 1 });
  });

  it('counts the same list again as skipped, and a changed record as updated', async () => {
    const again = await box.json<ImportJson>(['import', 'list.txt', '--source', 'list-a']);
    expect(again).toMatchObject({ loaded: 0, updated: 0, refreshed: 0, skipped: 4, failed: 0 });
    const moved = await box.json<ImportJson>(['import', 'list.txt', '--source', 'list-b']);
    expect(moved).toMatchObject({ loaded: 0, updated: 4, refreshed: 0, skipped: 0 });
  });

  it('prints a readable summary without --json', async () => {
    const result = await box.run(['import', 'list.txt', '--source', 'list-b']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      'imported list.txt (text): 0 loaded, 0 updated, 0 refreshed, 4 skipped, 0 failed\n',
    );
  });
});

describe('export', () => {
  let box: Sandbox;
  let entries: ExportedRecord[];
  beforeAll(async () => {
    box = await sandbox();
    entries = await fixtureEntries();
    await writeFile(
      box.path('fixture.jsonl'),
      entries.map((record) => JSON.stringify(record)).join('\n') + '\n',
    );
    const result = await box.json<ImportJson>(['import', 'fixture.jsonl', '--keep-times']);
    expect(result).toMatchObject({ loaded: 40, failed: 0 });
  });
  afterAll(() => box.cleanup());

  it('stores every field of every record as given (expired entries with --include-expired)', async () => {
    const exported = await plainExport(box, ['--include-expired']);
    expect(exported.size).toBe(entries.length);
    for (const record of entries) expect(exported.get(record.key)).toEqual(record);
  });

  it('leaves expired entries out unless --include-expired is given', async () => {
    const { entries: expected } = JSON.parse(
      await readFile(join(FIXTURES, 'expected.json'), 'utf8'),
    ) as { entries: { key: string; expired: boolean }[] };
    const live = await plainExport(box);
    expect([...live.keys()].sort()).toEqual(
      expected
        .filter((record) => !record.expired)
        .map((record) => record.key)
        .sort(),
    );
  });

  it('round-trips every field through jsonl, csv and json, with plain and encrypted secrets', async () => {
    const original = await plainExport(box, ['--include-expired']);
    for (const format of ['jsonl', 'csv', 'json']) {
      for (const secrets of ['plain', 'encrypted']) {
        const file = `round.${format}`;
        const exported = await box.run(['export', file, '--secrets', secrets, '--include-expired']);
        expect(exported.code, exported.stderr).toBe(0);
        expect(exported.stdout).toContain(
          `exported 40 entries to ${file} (${format}, secrets ${secrets})`,
        );
        // A fresh store with the same key (encrypted tokens need it).
        const other = await sandbox();
        try {
          await copyFile(box.keyFile, other.keyFile);
          const imported = await other.json<ImportJson>(['import', box.path(file), '--keep-times']);
          expect(imported).toMatchObject({ format, loaded: 40, failed: 0 });
          const back = await plainExport(other, ['--include-expired']);
          expect(back).toEqual(original);
          const again = await other.json<ImportJson>(['import', box.path(file), '--keep-times']);
          expect(again).toMatchObject({ loaded: 0, updated: 0, refreshed: 0, skipped: 40 });
        } finally {
          await other.cleanup();
        }
      }
    }
  });

  it('writes no credential by default, and redacted records say whether there is one', async () => {
    const result = await box.run(['export', '--format', 'json', '--include-expired']);
    expect(result.code).toBe(0);
    for (const record of entries) {
      for (const field of ['username', 'password']) {
        const value = record[field];
        if (typeof value === 'string' && value.length > 3)
          expect(result.stdout).not.toContain(value);
      }
    }
    const records = JSON.parse(result.stdout) as ExportedRecord[];
    const withCredentials = entries.filter((record) => record['username'] !== null);
    expect(records.filter((record) => record['has_credentials'] === true)).toHaveLength(
      withCredentials.length,
    );
    expect(records[0]).not.toHaveProperty('password');
    expect(lines(result.stderr)).toEqual([
      'proxytier: exported 40 entries (json, secrets redacted)',
    ]);
  });

  it('warns on standard error when it writes credentials in clear', async () => {
    const result = await box.run(['export', '--secrets', 'plain', 'plain.csv']);
    expect(result.code).toBe(0);
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(
      /^proxytier: warn: --secrets plain writes every credential in clear to plain\.csv/,
    );
  });

  it('takes the format from the extension, else jsonl, and --format wins', async () => {
    expect((await box.run(['export', 'x.csv'])).code).toBe(0);
    expect((await readFile(box.path('x.csv'), 'utf8')).split('\n')[0]).toMatch(
      /^key,proxy_url,has_credentials,/,
    );
    expect((await box.run(['export', 'x.txt'])).code).toBe(0);
    expect((await readFile(box.path('x.txt'), 'utf8')).startsWith('{"key":')).toBe(true);
    expect((await box.run(['export', 'x.txt', '--format', 'json'])).code).toBe(0);
    expect((await readFile(box.path('x.txt'), 'utf8')).startsWith('[\n{"key":')).toBe(true);
  });

  it('writes files with mode 0600 and leaves no temporary file behind', async () => {
    await writeFile(box.path('old.jsonl'), 'old content\n', { mode: 0o644 });
    const result = await box.run(['export', 'old.jsonl']);
    expect(result.code).toBe(0);
    expect((await stat(box.path('old.jsonl'))).mode & 0o777).toBe(0o600);
    expect(await readFile(box.path('old.jsonl'), 'utf8')).not.toContain('old content');
    expect((await readdir(box.root)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('leaves the target untouched when the export fails, at open or part-way', async () => {
    await writeFile(box.path('keep.json'), 'previous export\n');
    const { code: made, stdout } = await box.run(['key', 'generate', '--json']);
    expect(made).toBe(0);
    const otherKey = (JSON.parse(stdout) as { key: string }).key;
    await writeFile(box.path('other.key'), `${otherKey}\n`, { mode: 0o600 });
    // Another key is refused when the store opens, before anything is read or written.
    const wrong = await box.run(['--key-file', box.path('other.key'), 'export', 'keep.json']);
    expect(wrong.code).toBe(1);
    expect(lines(wrong.stderr).at(-1)).toMatch(/^proxytier: E_WRONG_KEY: the key does not open/);
    expect(await readFile(box.path('keep.json'), 'utf8')).toBe('previous export\n');

    // One entry sealed under a second key (written with both keys, the old one previous): the
    // store's own key opens it, and the plain export fails part-way, at that entry.
    const [storeKey] = (await readFile(box.keyFile, 'utf8'))
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'));
    const added = await box.run(['import', '-'], {
      input: 'http://late:c0mma@10.9.9.9:8080\n',
      env: { PROXYTIER_ENCRYPTION_KEY: otherKey, PROXYTIER_PREVIOUS_KEYS: storeKey as string },
    });
    expect(added.code, added.stderr).toBe(0);
    const result = await box.run(['export', 'keep.json', '--secrets', 'plain']);
    expect(result.code).toBe(1);
    expect(lines(result.stderr).at(-1)).toMatch(/^proxytier: E_DECRYPT: cannot decrypt the /);
    expect(await readFile(box.path('keep.json'), 'utf8')).toBe('previous export\n');
    expect((await readdir(box.root)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    expect((await box.run(['delete', 'http://10.9.9.9:8080'])).code).toBe(0);
  });

  it('never changes statistics or access times', async () => {
    const before = await box.run(['export', '--secrets', 'encrypted', '--include-expired']);
    await box.run(['get', entries[0]?.key ?? '']);
    await box.run(['list']);
    await box.run(['stats']);
    const after = await box.run(['export', '--secrets', 'encrypted', '--include-expired']);
    expect(after.stdout).toBe(before.stdout);
    const stats = await box.json<{ requests: number; tiers: { hits: number }[] }>(['stats']);
    expect(stats.requests).toBe(0);
  });
});

describe('import of an older export', () => {
  const oldExport = ['10.4.0.1', '10.4.0.2']
    .map((host) =>
      JSON.stringify({
        proxy_url: `http://${host}:8080`,
        source: 'old',
        fetch_time: '2025-01-01T10:00:00+00:00',
        expires_at: '2025-01-01T11:00:00+00:00',
        ttl_seconds: 3600,
      }),
    )
    .join('\n');

  it('fetches the records now by default, with --ttl as their TTL', async () => {
    const box = await sandbox();
    try {
      await writeFile(box.path('old.jsonl'), `${oldExport}\n`);
      const before = Date.now();
      const result = await box.run(['import', 'old.jsonl', '--ttl', '120']);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('2 loaded');
      const live = await plainExport(box);
      expect(live.size).toBe(2);
      for (const record of live.values()) {
        expect(record['ttl_seconds']).toBe(120);
        const expires = Date.parse(String(record['expires_at']));
        expect(expires).toBeGreaterThanOrEqual(before + 119_000);
        expect(expires).toBeLessThanOrEqual(Date.now() + 121_000);
      }
    } finally {
      await box.cleanup();
    }
  });

  it('with --keep-times keeps them, and warns how many had already expired', async () => {
    const box = await sandbox();
    try {
      await writeFile(box.path('old.jsonl'), `${oldExport}\n`);
      const result = await box.run(['import', 'old.jsonl', '--keep-times']);
      expect(result.code, result.stderr).toBe(0);
      expect(lines(result.stderr)).toContainEqual(
        'proxytier: warn: 2 imported entries had already expired: --keep-times kept their times, so they are stored but not served (import without --keep-times to fetch them now)',
      );
      expect((await plainExport(box)).size).toBe(0);
      expect((await plainExport(box, ['--include-expired'])).size).toBe(2);
    } finally {
      await box.cleanup();
    }
  });
});
