// The commands that change entries from a shell: delete, clear, report-failure, check-result.
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lines, sandbox, type ExportedRecord, type Sandbox } from './helpers.js';

const POOL = [
  'http://alice:s3cret@192.0.2.1:8080',
  'http://192.0.2.2:8080',
  'socks5://192.0.2.3:1080',
];

describe('delete, clear, report-failure, check-result', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
    await writeFile(box.path('pool.txt'), `${POOL.join('\n')}\n`);
    expect((await box.run(['import', 'pool.txt'])).code).toBe(0);
  });
  afterAll(() => box.cleanup());

  const urls = async () =>
    (await box.json<ExportedRecord[]>(['list'])).map((record) => record.proxy_url).sort();

  it('check-result records a check: health, counters and history follow it', async () => {
    const healthy = await box.json<ExportedRecord>([
      'check-result',
      '192.0.2.2:8080',
      '--status',
      'healthy',
      '--ms',
      '180',
    ]);
    expect(healthy).toMatchObject({ health_status: 'healthy', total_health_checks: 1 });
    const failed = await box.run([
      'check-result',
      '192.0.2.2:8080',
      '--status',
      'unhealthy',
      '--error',
      'timeout',
    ]);
    expect(failed.code).toBe(0);
    expect(failed.stdout).toMatch(
      /^unhealthy check recorded for [0-9a-f]{16}: now \w+ \(2 checks, 1 failed\)$/m,
    );
    const history = await box.json<
      { status: string; response_time_ms: number | null; error_message: string | null }[]
    >(['history', '192.0.2.2:8080']);
    expect(history.map((row) => [row.status, row.response_time_ms, row.error_message])).toEqual([
      ['unhealthy', null, 'timeout'],
      ['healthy', 180, null],
    ]);
    const bad = await box.run(['check-result', '192.0.2.2:8080', '--status', 'fine']);
    expect(bad.code).toBe(2);
  });

  it('report-failure counts failures and evicts at the threshold (3)', async () => {
    const target = 'http://alice:s3cret@192.0.2.1:8080';
    for (const count of [1, 2]) {
      expect(await box.json(['report-failure', target, '--error', 'HTTP 403'])).toMatchObject({
        failureCount: count,
        evicted: false,
      });
    }
    const third = await box.run(['report-failure', target]);
    expect(third.code).toBe(0);
    expect(third.stdout).toContain('the threshold is reached, the entry was evicted');
    expect(third.stdout + third.stderr).not.toContain('s3cret');
    expect(await urls()).not.toContain('http://192.0.2.1:8080');
    const again = await box.run(['report-failure', target]);
    expect(again.code).toBe(1);
    expect(lines(again.stderr)).toEqual([
      expect.stringMatching(
        /^proxytier: E_NOT_FOUND: no live entry for http:\/\/192\.0\.2\.1:8080 \(key [0-9a-f]{16}\)$/,
      ),
    ]);
  });

  it('delete removes what it names; a name not there exits 1 after the others', async () => {
    const result = await box.run(['delete', 'socks5://192.0.2.3:1080', '192.0.2.99:1']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('deleted 1 of 2 entries\n');
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(
        /^proxytier: E_NOT_FOUND: no entry for http:\/\/192\.0\.2\.99:1 \(key [0-9a-f]{16}\)$/,
      ),
    ]);
    expect(await urls()).toEqual(['http://192.0.2.2:8080']);
  });

  it('clear asks for --yes, then removes every entry', async () => {
    const refused = await box.run(['clear']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('run it again with --yes to confirm');
    expect(await urls()).toHaveLength(1);
    expect(await box.json(['clear', '--yes'])).toEqual({ removed: 1 });
    expect(await urls()).toEqual([]);
  });
});
