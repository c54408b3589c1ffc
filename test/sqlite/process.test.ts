// Real child processes on one database file: writers killed with SIGKILL lose no acknowledged
// write and leave a file that passes integrity_check; several processes writing and reading at
// once see each other's writes and never surface SQLITE_BUSY. The children import the built
// package (`npm test` builds first).
import { fork, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import type { SqliteRole } from '../../src/tiers/sqlite/index.js';
import { openSqlite, rawDatabase, removeDir, tempDir } from '../support/sqlite-fixtures.js';

const DIST = resolve('dist');
const WRITER = resolve('test/support/sqlite-crash-writer.mjs');
const WORKER = resolve('test/support/sqlite-multi-worker.mjs');

let dir: string;
beforeEach(async () => {
  dir = await tempDir('proxytier-sqlite-process-');
});
afterEach(async () => {
  await removeDir(dir);
});

/** mulberry32: the kill points are random, but a failure names its seed to replay it. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Acknowledged {
  key: string;
  run: number;
  n: number;
}

/**
 * Starts a writer, waits until it has acknowledged `killAfter` writes, kills it with SIGKILL and
 * resolves every write it acknowledged (every complete line it printed before dying).
 */
function writeUntilKilled(
  path: string,
  role: SqliteRole,
  run: number,
  killAfter: number,
  key: string,
): Promise<{ acknowledged: Acknowledged[]; stderr: string; signal: string | null }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [WRITER, DIST, path, role, String(run)], {
      env: { PATH: process.env['PATH'] ?? '', PROXYTIER_TEST_KEY: key },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    let stderr = '';
    const acknowledged: Acknowledged[] = [];
    let killed = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'ready') continue;
        const [written, runText, nText] = line.split(' ');
        acknowledged.push({ key: written as string, run: Number(runText), n: Number(nText) });
      }
      if (!killed && acknowledged.length >= killAfter) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    // 'close' comes after the pipes are drained: every line printed before the kill is counted.
    child.on('close', (_code, signal) => resolvePromise({ acknowledged, stderr, signal }));
  });
}

describe('crash: SIGKILL while writing', () => {
  for (const [role, kills] of [
    ['l3', 20],
    ['l2', 8],
  ] as const) {
    it(`${role}: ${kills} kills on one database lose no acknowledged write and corrupt nothing`, async () => {
      const key = generateFernetKey();
      const keyring = new Keyring(key);
      const path = join(dir, `${role}.db`);
      const seed = Date.now() >>> 0;
      const next = random(seed);
      const all: Acknowledged[] = [];
      for (let run = 0; run < kills; run += 1) {
        const killAfter = 1 + Math.floor(next() * 1500);
        const { acknowledged, stderr, signal } = await writeUntilKilled(
          path,
          role,
          run,
          killAfter,
          key,
        );
        const context = `seed ${seed}, run ${run}, kill after ${killAfter}`;
        expect(signal, `${context}: ${stderr}`).toBe('SIGKILL');
        expect(acknowledged.length, context).toBeGreaterThanOrEqual(killAfter);
        all.push(...acknowledged);

        const raw = rawDatabase(path);
        expect(raw.pragma('integrity_check', { simple: true }), context).toBe('ok');
        raw.close();
        const { tier } = await openSqlite({ path, role }, keyring);
        const missing = acknowledged.filter(({ key: written }) => !tier.hasSync(written));
        expect(missing, context).toEqual([]);
        for (const { key: written, run: r, n } of acknowledged) {
          const entry = tier.peekSync(written);
          expect(entry?.username?.reveal(), context).toBe(`user-${r}-${n}`);
          expect(entry?.password?.reveal(), context).toBe(`pw\t${r}/${n} ✓`);
        }
        await tier.close();
      }
      // Every write acknowledged by any run is still there at the end.
      const { tier } = await openSqlite({ path, role }, keyring);
      expect(all.filter(({ key: written }) => !tier.hasSync(written))).toEqual([]);
      expect(await tier.size()).toBeGreaterThanOrEqual(new Set(all.map((a) => a.key)).size);
      await tier.close();
    }, 60_000);
  }
});

interface Report {
  type: 'report';
  id: number;
  acknowledged: number;
  seenWhileWriting: number;
  seen: Record<string, number>;
  errors: string[];
}

describe('several processes on one database', () => {
  it('write and read at once: no SQLITE_BUSY, no lost write, each reads the others', async () => {
    const WORKERS = 3;
    const COUNT = 1_500;
    const key = generateFernetKey();
    const path = join(dir, 'shared.db');
    const children = Array.from({ length: WORKERS }, (_, id) =>
      fork(WORKER, [DIST, path, String(id), String(WORKERS), String(COUNT)], {
        env: { PATH: process.env['PATH'] ?? '', PROXYTIER_TEST_KEY: key },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    const written = children.map(
      (child) =>
        new Promise<number>((resolvePromise, reject) => {
          child.on('message', (message: { type: string; acknowledged: number }) => {
            if (message.type === 'written') resolvePromise(message.acknowledged);
          });
          child.on('exit', (code) => reject(new Error(`worker exited early with ${code}`)));
        }),
    );
    const reports = children.map(
      (child) =>
        new Promise<Report>((resolvePromise, reject) => {
          child.on('message', (message: Report) => {
            if (message.type === 'report') resolvePromise(message);
          });
          child.on('error', reject);
        }),
    );
    const exits = children.map(
      (child) => new Promise<number | null>((done) => child.on('exit', (code) => done(code))),
    );
    expect(await Promise.all(written)).toEqual(Array(WORKERS).fill(COUNT));
    for (const child of children) child.send({ type: 'read' });
    const results = await Promise.all(reports);
    expect(await Promise.all(exits)).toEqual(Array(WORKERS).fill(0));

    for (const report of results) {
      expect(report.errors, `worker ${report.id}`).toEqual([]);
      expect(report.acknowledged).toBe(COUNT);
      for (const peer of Object.keys(report.seen)) {
        expect(report.seen[peer], `worker ${report.id} reading worker ${peer}`).toBe(COUNT);
      }
    }
    // Reading while the others wrote found some of their keys already there.
    expect(results.reduce((sum, report) => sum + report.seenWhileWriting, 0)).toBeGreaterThan(0);

    const raw = rawDatabase(path);
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(raw.prepare('SELECT count(*) FROM cache_entries').pluck().get()).toBe(WORKERS * COUNT);
    raw.close();
  }, 60_000);
});
