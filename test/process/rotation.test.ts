// Key rotation with running workers: three worker processes record health checks, read
// credentials and write new proxies on one store while two `proxytier key rotate` runs start at
// the same moment. Afterwards every credential decrypts in a fresh process with the key file
// alone, no token is under a key missing from it, no worker saw E_DECRYPT, and every health
// check a worker was told was recorded is stored.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDefaultStore, silentLogger, type ProxyCache } from '../../src/index.js';
import { CLI } from '../cli/helpers.js';

const DIST = resolve('dist');
const WORKER = resolve('test/support/rotation-worker.mjs');
const WORKERS = 3;
const ENTRIES = 300;

interface WorkerReport {
  acknowledged: Record<string, number>;
  decryptErrors: string[];
  written: { key: string; username: string; password: string }[];
  keyChanges: number;
}

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a process to its end, collecting its output; `onLine` sees each stdout line as it comes. */
function run(
  args: string[],
  env: Record<string, string>,
  onLine?: (line: string) => void,
): Promise<Exit> {
  return new Promise((resolveExit, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      stdout += text;
      pending += text;
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        onLine?.(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolveExit({ code, stdout, stderr }));
  });
}

function keyLines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe('key rotation with running workers', () => {
  let root: string;
  let store: string;
  let keyFile: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'proxytier-rotation-'));
    store = join(root, 'store');
    keyFile = join(root, 'key');
    env = { PATH: process.env['PATH'] ?? '', HOME: root, PROXYTIER_KEY_FILE: keyFile };
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function withStore<T>(use: (cache: ProxyCache) => Promise<T>): Promise<T> {
    const cache = await openDefaultStore({
      dir: store,
      memoryTier: false,
      keyFile,
      logger: silentLogger,
      sweepIntervalMs: 0,
    });
    try {
      return await use(cache);
    } finally {
      await cache.close();
    }
  }

  it('loses no credential, no health check and no read while two rotations race', async () => {
    const initial = new Map<string, { username: string; password: string }>();
    await withStore(async (cache) => {
      for (let i = 0; i < ENTRIES; i += 1) {
        const username = `user${i}`;
        const password = `secret-${i}-${i * 7919}`;
        const entry = await cache.put({
          proxyUrl: `http://10.66.${i >> 8}.${i & 255}:8080`,
          username,
          password,
        });
        initial.set(entry.key, { username, password });
      }
    });
    const keysFile = join(root, 'keys.json');
    await writeFile(keysFile, JSON.stringify([...initial.keys()]));
    const firstKeys = keyLines(await readFile(keyFile, 'utf8'));

    const stopFile = join(root, 'stop');
    let ready = 0;
    let allReady: () => void = () => {};
    const readyPromise = new Promise<void>((resolveReady) => {
      allReady = resolveReady;
    });
    const workers = Array.from({ length: WORKERS }, (_, id) =>
      run([WORKER, DIST, store, stopFile, String(id), keysFile], env, (line) => {
        if (line === 'ready') {
          ready += 1;
          if (ready === WORKERS) allReady();
        }
      }),
    );
    await readyPromise;
    await new Promise((resolveWait) => setTimeout(resolveWait, 300));

    const rotate = [CLI, '--dir', store, '--key-file', keyFile, 'key', 'rotate', '--json'];
    const rotations = await Promise.all([run(rotate, env), run(rotate, env)]);
    await new Promise((resolveWait) => setTimeout(resolveWait, 500));
    await writeFile(stopFile, '');
    const exits = await Promise.all(workers);

    for (const rotation of rotations) expect(rotation.code, rotation.stderr).toBe(0);
    // Both rotations made a key, one after the other: the file holds both and the first key.
    const finalKeys = keyLines(await readFile(keyFile, 'utf8'));
    expect(finalKeys).toHaveLength(3);
    expect(finalKeys.slice(2)).toEqual(firstKeys);
    const reports = exits.map((exit) => {
      expect(exit.code, exit.stderr).toBe(0);
      return JSON.parse(keyLines(exit.stdout).at(-1) as string) as WorkerReport;
    });
    for (const report of reports) {
      expect(report.decryptErrors).toEqual([]);
      // Each worker learned of both new keys while it ran.
      expect(report.keyChanges).toBeGreaterThanOrEqual(1);
    }

    // A fresh process with the key file alone decrypts every credential, old and new.
    const exported = await run(
      [
        CLI,
        '--dir',
        store,
        '--key-file',
        keyFile,
        'export',
        '--secrets',
        'plain',
        '--format',
        'json',
      ],
      env,
    );
    expect(exported.code, exported.stderr).toBe(0);
    const records = new Map(
      (JSON.parse(exported.stdout) as { key: string; username?: string; password?: string }[]).map(
        (record) => [record.key, record],
      ),
    );
    const expected = new Map(initial);
    for (const report of reports) {
      for (const { key, username, password } of report.written) {
        expected.set(key, { username, password });
      }
    }
    expect(records.size).toBe(expected.size);
    for (const [key, credentials] of expected) {
      expect(records.get(key), key).toMatchObject(credentials);
    }
    const doctor = await run([CLI, '--dir', store, '--key-file', keyFile, 'doctor', '--json'], env);
    const tokens = (JSON.parse(doctor.stdout) as { checks: { tokens: Record<string, number> } })
      .checks.tokens;
    expect(tokens).toEqual({ current: 2 * expected.size, previous: 0, unreadable: 0 });

    // Every acknowledged health check is stored: the rotation rewrote tokens, nothing else.
    const acknowledged = new Map<string, number>();
    for (const report of reports) {
      for (const [key, count] of Object.entries(report.acknowledged)) {
        acknowledged.set(key, (acknowledged.get(key) ?? 0) + count);
      }
    }
    const total = [...acknowledged.values()].reduce((sum, count) => sum + count, 0);
    expect(total).toBeGreaterThan(1_000);
    const stored = await withStore(async (cache) => {
      const counts = new Map<string, number>();
      for await (const entry of cache.entries()) counts.set(entry.key, entry.totalHealthChecks);
      return counts;
    });
    for (const [key, count] of acknowledged) expect(stored.get(key), key).toBe(count);
  }, 120_000);
});
