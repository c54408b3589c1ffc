// The reading and upkeep commands (get, list, stats, history, cleanup, compact, doctor), help,
// the default store location, and the demo that `npm start` runs.
import { spawnSync } from 'node:child_process';
import { chmod, cp, readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, FIXTURES, lines, sandbox, type ExportedRecord, type Sandbox } from './helpers.js';

interface Doctor {
  problems: { severity: 'error' | 'warning'; what: string; fix: string }[];
  checks: {
    dir: { path: string; exists: boolean };
    key: { found: boolean; source: string; keyFile: string; fingerprints: string[] };
    tiers: { name: string; entries: number; answers: boolean; degraded: boolean }[];
    tokens: { current: number; previous: number; unreadable: number };
    modes: { path: string; mode: string; ok: boolean }[];
  };
}

const POOL = [
  'http://alice:wonder-land@192.0.2.1:8080',
  'https://192.0.2.2:443',
  'socks5://192.0.2.3:1080',
  'socks5://bob:builder@192.0.2.4:1080',
].join('\n');

describe('get, list, stats, cleanup, compact', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
    await writeFile(box.path('pool.txt'), `${POOL}\n`);
    await writeFile(box.path('stale.txt'), 'http://192.0.2.99:8080\n');
    expect((await box.run(['import', 'pool.txt', '--source', 'pool'])).code).toBe(0);
    // A TTL of 0 expires at once: an expired entry that is still stored.
    expect((await box.run(['import', 'stale.txt', '--source', 'stale', '--ttl', '0'])).code).toBe(
      0,
    );
  });
  afterAll(() => box.cleanup());

  it('get finds an entry by key or by URL (canonicalised), never showing credentials', async () => {
    const byUrl = await box.json<ExportedRecord>(['get', 'HTTP://192.0.2.1:8080']);
    expect(byUrl).toMatchObject({
      proxy_url: 'http://192.0.2.1:8080',
      has_credentials: true,
      source: 'pool',
    });
    const byKey = await box.json<ExportedRecord>(['get', byUrl.key]);
    expect(byKey).toEqual(byUrl);
    // A URL with inline credentials names the same proxy; they are neither used nor shown.
    const text = await box.run(['get', 'http://alice:wonder-land@192.0.2.1:8080']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^key\s+[0-9a-f]{16}$/m);
    expect(text.stdout).toMatch(
      /^credentials\s+yes \(username and password; shown only by "export --secrets plain"\)$/m,
    );
    expect(text.stdout).not.toContain('wonder-land');
    expect(text.stdout).not.toContain('alice');
  });

  it('get of an absent or expired entry: exit 1, one line', async () => {
    const result = await box.run(['get', 'http://192.0.2.200:8080']);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(
        /^proxytier: E_NOT_FOUND: no live entry for http:\/\/192\.0\.2\.200:8080 \(key [0-9a-f]{16}\)/,
      ),
    ]);
    expect((await box.run(['get', 'http://192.0.2.99:8080'])).code).toBe(1);
    // Credentials typed into the URL are not repeated.
    const typed = await box.run(['get', 'http://carol:hunter2@192.0.2.200:8080']);
    expect(typed.code).toBe(1);
    expect(typed.stderr).not.toContain('hunter2');
    expect(typed.stderr).toContain('no live entry for http://192.0.2.200:8080 (key');
    // A URL the parser cannot take apart is still not repeated with its credentials.
    const malformed = await box.run(['get', 'http://x:s3cret@[::1']);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).not.toContain('s3cret');
    expect(malformed.stderr).toContain(
      'no live entry for key (a 20-character value, not shown because it may hold credentials)',
    );
  });

  it('list prints an aligned table, credentials as yes/no', async () => {
    const result = await box.run(['list', '--sort', 'lastAccessed']);
    expect(result.code).toBe(0);
    const rows = lines(result.stdout);
    const header = rows[0] ?? '';
    expect(header).toMatch(/^KEY +URL +SOURCE +HEALTH +EXPIRES IN +CREDENTIALS$/);
    expect(rows).toHaveLength(5);
    // Aligned: every cell starts where its column's title does.
    const starts = ['URL', 'SOURCE', 'HEALTH', 'EXPIRES IN', 'CREDENTIALS'].map((title) =>
      header.indexOf(title),
    );
    for (const row of rows.slice(1)) {
      for (const start of starts) expect(row.slice(start - 2, start + 1)).toMatch(/^ {2}\S$/);
    }
    const alice = rows.find((row) => row.includes('http://192.0.2.1:8080'));
    expect(alice).toMatch(
      /^[0-9a-f]{16} {2}http:\/\/192\.0\.2\.1:8080 +pool {4}unknown {2}(59m \d+s|1h) +yes$/,
    );
    expect(result.stdout).not.toContain('wonder-land');
    expect(result.stdout).not.toContain('192.0.2.99'); // expired
  });

  it('list filters by health, source and scheme, and limits', async () => {
    const socks = await box.json<ExportedRecord[]>(['list', '--scheme', 'socks5']);
    expect(socks.map((r) => r['proxy_url']).sort()).toEqual([
      'socks5://192.0.2.3:1080',
      'socks5://192.0.2.4:1080',
    ]);
    expect(await box.json<ExportedRecord[]>(['list', '--source', 'nope'])).toEqual([]);
    expect(await box.json<ExportedRecord[]>(['list', '--health', 'healthy', 'dead'])).toEqual([]);
    expect(await box.json<ExportedRecord[]>(['list', '--health', 'unknown,healthy'])).toHaveLength(
      4,
    );
    expect(await box.json<ExportedRecord[]>(['list', '--limit', '2'])).toHaveLength(2);
    const limited = await box.run(['list', '--limit', '2']);
    expect(limited.stdout).toContain('(the first 2; --limit shows more)');
    for (const sort of ['lastHealthCheck', 'successRate', 'responseTime']) {
      expect(await box.json<ExportedRecord[]>(['list', '--sort', sort])).toHaveLength(4);
    }
    expect((await box.run(['list', '--source', 'nope'])).stdout).toBe('no entries match\n');
  });

  it('list --expired shows only entries whose TTL ran out', async () => {
    const expired = await box.json<ExportedRecord[]>(['list', '--expired']);
    expect(expired.map((r) => r['proxy_url'])).toEqual(['http://192.0.2.99:8080']);
    const text = await box.run(['list', '--expired']);
    expect(text.stdout).toMatch(/stale +unknown +expired \d+s ago +no/);
  });

  it('stats shows entries per tier (a fresh process has fresh counters)', async () => {
    const stats = await box.json<{
      requests: number;
      tiers: { name: string; entries: number; hits: number; degraded: boolean }[];
    }>(['stats']);
    expect(stats.requests).toBe(0);
    expect(stats.tiers).toHaveLength(1);
    expect(stats.tiers[0]).toMatchObject({ entries: 5, hits: 0, degraded: false });
    const text = await box.run(['stats']);
    expect(lines(text.stdout)[0]).toMatch(
      /^TIER\s+ENTRIES\s+HITS\s+MISSES\s+HIT RATE\s+EVICTIONS LRU\/TTL\/HEALTH\/CORRUPT\s+DEGRADED$/,
    );
    expect(text.stdout).toContain('overall: 0 requests, 0 hits, 0 misses, hit rate 0.0%');
  });

  it('cleanup removes the expired entries and says how many', async () => {
    const result = await box.run(['cleanup']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('removed 1 expired entry\n');
    expect(await box.json<ExportedRecord[]>(['list', '--expired'])).toEqual([]);
    expect(await box.json(['cleanup'])).toEqual({ removed: 0 });
  });

  it('compact reports what each tier did', async () => {
    const result = await box.json<{ tiers: { tier: string; report: unknown }[] }>(['compact']);
    expect(result.tiers).toHaveLength(1);
    expect(result.tiers[0]?.report).toBeTypeOf('object');
    const text = await box.run(['compact']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^compacted in \d+s$/m);
  });

  it('options may come before or after the command; after wins', async () => {
    const before = await box.run(['list', '--json'], {});
    const elsewhere = await box.run(
      ['--dir', box.path('empty-store'), 'list', '--dir', box.store, '--json'],
      {
        noDir: true,
      },
    );
    expect(elsewhere.stdout).toBe(before.stdout);
  });
});

describe('history', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
    const source = box.path('proxywhirl');
    await cp(FIXTURES, source, { recursive: true });
    const migrated = await box.run(['migrate', source, '--key-file', join(source, 'fernet.key')]);
    expect(migrated.code, migrated.stderr).toBe(0);
  });
  afterAll(() => box.cleanup());

  it('lists the checks of a proxy, newest first, with --limit and --since', async () => {
    const all = await box.json<{ check_time: string; status: string }[]>([
      'history',
      'daa6883de3b5ea2d',
    ]);
    expect(all.length).toBeGreaterThan(2);
    const times = all.map((row) => row.check_time);
    expect([...times].sort().reverse()).toEqual(times);
    expect(await box.json(['history', 'daa6883de3b5ea2d', '--limit', '2'])).toEqual(
      all.slice(0, 2),
    );
    const since = all[1]?.check_time ?? '';
    expect(await box.json(['history', 'daa6883de3b5ea2d', '--since', since])).toEqual(
      all.slice(0, 2),
    );
    // By URL, as a table.
    const text = await box.run(['history', 'https://146.32.130.31:1080']);
    expect(text.code).toBe(0);
    expect(lines(text.stdout)[0]).toMatch(/^TIME\s+STATUS\s+RESPONSE\s+CHECK URL\s+ERROR$/);
    expect(lines(text.stdout)).toHaveLength(all.length + 1);
  });

  it('says so when a proxy has no checks', async () => {
    const result = await box.run(['history', 'http://192.0.2.250:8080']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^no health checks recorded for http:\/\/192\.0\.2\.250:8080 \(key [0-9a-f]{16}\)\n$/,
    );
  });
});

describe('doctor', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
    await writeFile(box.path('pool.txt'), `${POOL}\n`);
    expect((await box.run(['import', 'pool.txt'])).code).toBe(0);
  });
  afterAll(() => box.cleanup());

  it('finds nothing wrong with a fresh store, and shows the key fingerprint, never the key', async () => {
    const result = await box.run(['doctor', '--json']);
    expect(result.code).toBe(0);
    const doctor = JSON.parse(result.stdout) as Doctor;
    expect(doctor.problems).toEqual([]);
    expect(doctor.checks.key).toMatchObject({
      found: true,
      source: 'key-file',
      keyFile: box.keyFile,
    });
    expect(doctor.checks.tokens).toEqual({ current: 4, previous: 0, unreadable: 0 });
    expect(doctor.checks.tiers.every((tier) => tier.answers && !tier.degraded)).toBe(true);
    expect(doctor.checks.modes.length).toBeGreaterThanOrEqual(4);
    expect(doctor.checks.modes.every((mode) => mode.ok)).toBe(true);
    const text = await box.run(['doctor']);
    expect(text.stdout).toContain(
      `key       key file ${box.keyFile}, fingerprint ${doctor.checks.key.fingerprints[0] ?? ''}`,
    );
    expect(text.stdout).toContain('no problems found');
    const { readFile } = await import('node:fs/promises');
    const key =
      (await readFile(box.keyFile, 'utf8'))
        .split('\n')
        .find((line) => /^[A-Za-z0-9_-]{43}=$/.test(line)) ?? '';
    expect(key).not.toBe('');
    expect(result.stdout + text.stdout).not.toContain(key);
  });

  it('reports modes that are too open: the key file as an error, store files as warnings', async () => {
    await chmod(box.keyFile, 0o644);
    const files = await readdir(box.store);
    const database = files.find((name) => name.endsWith('.db')) ?? files[0] ?? '';
    await chmod(join(box.store, database), 0o644);
    try {
      const result = await box.run(['doctor', '--json']);
      expect(result.code).toBe(1);
      expect(lines(result.stderr).at(-1)).toBe('proxytier: E_DOCTOR: doctor found 1 error');
      const doctor = JSON.parse(result.stdout) as Doctor;
      expect(doctor.problems).toContainEqual({
        severity: 'error',
        what: `the key file ${box.keyFile} has mode 0644: others than its owner can read it`,
        fix: `chmod 600 ${box.keyFile}`,
      });
      expect(doctor.problems).toContainEqual({
        severity: 'warning',
        what: `the store file ${join(box.store, database)} has mode 0644: others than its owner can read it`,
        fix: `chmod 600 ${join(box.store, database)}`,
      });
      const text = await box.run(['doctor']);
      expect(text.code).toBe(1);
      expect(text.stdout).toContain(`  fix: chmod 600 ${box.keyFile}`);
    } finally {
      await chmod(box.keyFile, 0o600);
      await chmod(join(box.store, database), 0o600);
    }
  });

  it('reports credentials no key can read as an error', async () => {
    const made = await box.run(['key', 'generate', '--output', 'other.key']);
    expect(made.code).toBe(0);
    const result = await box.run(['--key-file', box.path('other.key'), 'doctor', '--json']);
    expect(result.code).toBe(1);
    const doctor = JSON.parse(result.stdout) as Doctor;
    expect(doctor.checks.tokens).toEqual({ current: 0, previous: 0, unreadable: 4 });
    expect(doctor.problems.map((problem) => problem.severity)).toEqual(['error']);
    expect(doctor.problems[0]?.what).toBe(
      '4 stored credential tokens were encrypted under a key this keyring does not hold',
    );
  });

  it('creates nothing where there is no store or key yet', async () => {
    const empty = await sandbox();
    try {
      const result = await empty.run(['doctor', '--json']);
      expect(result.code).toBe(0);
      const doctor = JSON.parse(result.stdout) as Doctor;
      expect(doctor.checks.dir.exists).toBe(false);
      expect(doctor.checks.key.found).toBe(false);
      expect(doctor.problems.map((problem) => problem.severity)).toEqual(['warning', 'warning']);
      expect(await readdir(empty.root)).toEqual([]);
    } finally {
      await empty.cleanup();
    }
  });
});

describe('without better-sqlite3: the JSONL log', () => {
  let box: Sandbox;
  // Module resolution fails for better-sqlite3, as when the optional dependency is missing.
  const env = { NODE_OPTIONS: `--import=${resolve('test/support/sqlite-hide-driver.mjs')}` };
  beforeAll(async () => {
    box = await sandbox();
    await writeFile(box.path('pool.txt'), `${POOL}\n`);
  });
  afterAll(() => box.cleanup());

  it('imports, lists, gets, exports and counts entries in the log', async () => {
    const imported = await box.run(['import', 'pool.txt'], { env });
    expect(imported.code, imported.stderr).toBe(0);
    expect(await readdir(box.store)).toEqual(['jsonl']);
    expect(await box.json<ExportedRecord[]>(['list', '--scheme', 'socks5'], { env })).toHaveLength(
      2,
    );
    expect(
      await box.json<ExportedRecord>(['get', 'socks5://192.0.2.4:1080'], { env }),
    ).toMatchObject({
      has_credentials: true,
    });
    const stats = await box.json<{ tiers: { name: string; entries: number }[] }>(['stats'], {
      env,
    });
    expect(stats.tiers).toEqual([expect.objectContaining({ name: 'jsonl', entries: 4 })]);
    const exported = await box.run(['export', '--secrets', 'plain'], { env });
    expect(exported.stdout).toContain('"password":"builder"');
  });

  it('history says it needs SQLite: one line, exit 1', async () => {
    const result = await box.run(['history', '192.0.2.1:8080'], { env });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(/^proxytier: E_UNSUPPORTED: health history needs a tier that keeps it/),
    ]);
  });

  it('doctor explains what is missing, as a warning', async () => {
    const doctor = await box.json<Doctor>(['doctor'], { env });
    expect(doctor.problems).toEqual([
      {
        severity: 'warning',
        what: 'better-sqlite3 is not available, so the store uses the JSONL log: no health history and no indexed queries',
        fix: 'npm install better-sqlite3 (it needs a C++ toolchain where no prebuilt binary exists)',
      },
    ]);
    expect(doctor.checks.modes.every((mode) => mode.ok)).toBe(true);
  });

  it('doctor tells a JSONL store apart from a missing engine once better-sqlite3 loads', async () => {
    const doctor = await box.json<Doctor>(['doctor']);
    expect(doctor.problems).toEqual([
      {
        severity: 'warning',
        what: 'this is a JSONL store (made where better-sqlite3 was missing; it is available now): no health history and no indexed queries',
        fix: `to move it to SQLite: proxytier --dir ${box.store} export all.jsonl --secrets encrypted --include-expired, then proxytier --dir <new store> import all.jsonl --keep-times`,
      },
    ]);
    // It describes the store the other commands open: the JSONL tier alone, no memory tier.
    expect(doctor.checks.tiers.map((tier) => tier.name)).toEqual(['jsonl']);
  });
});

describe('help, version, default store, demo', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
  });
  afterAll(() => box.cleanup());

  const COMMANDS = [
    ['import'],
    ['export'],
    ['get'],
    ['list'],
    ['stats'],
    ['history'],
    ['cleanup'],
    ['compact'],
    ['doctor'],
    ['migrate'],
    ['key', 'generate'],
    ['key', 'rotate'],
    ['demo'],
  ];

  it('every command has --help with an example, on standard output, exit 0', async () => {
    for (const command of COMMANDS) {
      const result = await box.run([...command, '--help']);
      expect(result.code, command.join(' ')).toBe(0);
      expect(result.stdout).toContain(`Usage: proxytier ${command.join(' ')}`);
      expect(result.stdout).toMatch(/\nExamples?:\n {2}\$ proxytier /);
      expect(result.stderr).toBe('');
    }
    const top = await box.run(['--help']);
    expect(top.code).toBe(0);
    for (const [name] of COMMANDS) expect(top.stdout).toContain(`  ${name ?? ''} `);
    expect(top.stdout).toContain('Exit codes: 0 success,\n1 failure, 2 usage error.');
  });

  it('--version prints the version; no command is a usage error', async () => {
    const version = await box.run(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    const none = await box.run([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: proxytier');
  });

  it('keeps the store in ~/.local/share/proxytier, or $XDG_DATA_HOME/proxytier, or $PROXYTIER_DIR', async () => {
    await writeFile(box.path('one.txt'), 'http://192.0.2.1:8080\n');
    expect((await box.run(['import', 'one.txt'], { noDir: true })).code).toBe(0);
    expect(await readdir(box.path('.local', 'share', 'proxytier'))).toContain('proxytier.db');
    expect((await stat(box.path('.local', 'share', 'proxytier'))).mode & 0o777).toBe(0o700);
    const xdg = box.path('xdg');
    expect(
      (await box.run(['import', 'one.txt'], { noDir: true, env: { XDG_DATA_HOME: xdg } })).code,
    ).toBe(0);
    expect(await readdir(join(xdg, 'proxytier'))).toContain('proxytier.db');
    const explicit = box.path('explicit');
    const result = await box.run(['import', 'one.txt'], {
      noDir: true,
      env: { PROXYTIER_DIR: explicit, XDG_DATA_HOME: xdg },
    });
    expect(result.code).toBe(0);
    expect(await readdir(explicit)).toContain('proxytier.db');
  });

  it('draws a progress bar for a big import only when standard error is a terminal', async () => {
    // `script` runs the command on a pseudo-terminal (util-linux); without it, nothing to check.
    const script = spawnSync('script', ['--version'], { encoding: 'utf8' });
    if (script.status !== 0) return;
    const list: string[] = [];
    for (let i = 0; i < 8_000; i += 1) list.push(`http://10.7.${i >> 8}.${i & 255}:8080`);
    await writeFile(box.path('many.txt'), `${list.join('\n')}\n`);
    const command = `${process.execPath} ${CLI} --dir ${box.path('tty-store')} import ${box.path('many.txt')}`;
    const onTerminal = spawnSync('script', ['-qec', command, '/dev/null'], {
      cwd: box.root,
      env: box.env,
      encoding: 'utf8',
    });
    expect(onTerminal.status).toBe(0);
    expect(onTerminal.stdout).toMatch(/importing \[[=-]+\] \d+% \| \d+\/\d+/);
    expect(onTerminal.stdout).toContain('8000 loaded, 0 updated, 0 refreshed, 0 skipped, 0 failed');
    // The same on a pipe, or with --quiet on a terminal: no bar.
    const piped = await box.run(['import', 'many.txt'], {
      noDir: true,
      env: { PROXYTIER_DIR: box.path('tty-store') },
    });
    expect(piped.stderr).toBe('');
    const quiet = spawnSync('script', ['-qec', `${command} --quiet`, '/dev/null'], {
      cwd: box.root,
      env: box.env,
      encoding: 'utf8',
    });
    expect(quiet.stdout).not.toContain('importing [');
  });

  it('demo imports the example pool, prints stats and the healthiest entries; again, it skips', async () => {
    const first = await box.run(['demo'], {
      noDir: true,
      env: { PROXYTIER_DIR: box.path('demo') },
    });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(
      /imported .*proxies\.txt \(text\): 12 loaded, 0 updated, 0 refreshed, 0 skipped, 0 failed/,
    );
    expect(first.stdout).toContain('read back 12 of 12 example proxies');
    expect(first.stdout).toMatch(/^TIER\s+ENTRIES\s+HITS/m);
    expect(first.stdout).toContain('the healthiest entries (credentials are never printed):');
    expect(first.stdout).not.toContain('s3cret-pass');
    const second = await box.run(['demo'], {
      noDir: true,
      env: { PROXYTIER_DIR: box.path('demo') },
    });
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('0 loaded, 0 updated, 0 refreshed, 12 skipped, 0 failed');
  });
});
