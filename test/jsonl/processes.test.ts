// Real child processes on one directory (test/support/jsonl-child.mjs, importing the built
// package): SIGKILL at random moments, several writers and compactors at once, what one process
// writes another reads, and the lock files between them.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createEntry } from '../../src/record/entry.js';
import { shardFileName, shardOf } from '../../src/tiers/jsonl/codec.js';
import { JsonlTier } from '../../src/tiers/jsonl/index.js';
import { makeContext, START } from '../tiers/contract.js';

const SCRIPT = resolve('test/support/jsonl-child.mjs');

/** Deterministic PRNG (mulberry32). */
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

/** A child process whose stdout is read line by line. */
class Child {
  readonly process: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #partial = '';
  #waiters: { test: (lines: string[]) => boolean; resolve: () => void }[] = [];
  #consumed = 0;

  constructor(mode: string, dir: string, key: string, env: Record<string, string> = {}) {
    this.process = spawn(process.execPath, [SCRIPT, mode, dir], {
      env: { PATH: process.env['PATH'] ?? '', PROXYTIER_TEST_KEY: key, ...env },
    });
    this.process.stdout.setEncoding('utf8');
    this.process.stdout.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop() ?? '';
      this.lines.push(...parts);
      this.#wake();
    });
    this.process.stderr.setEncoding('utf8');
    this.process.stderr.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolveExit) => {
      this.process.on('close', (code, signal) => {
        if (this.#partial !== '') this.lines.push(this.#partial);
        this.#partial = '';
        this.#wake();
        resolveExit({ code, signal });
      });
    });
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.test(this.lines)) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Resolves once the lines read so far satisfy `test`. */
  until(test: (lines: string[]) => boolean): Promise<void> {
    if (test(this.lines)) return Promise.resolve();
    return new Promise((resolveWait, reject) => {
      this.#waiters.push({ test, resolve: resolveWait });
      void this.exited.then(() => {
        if (!test(this.lines)) reject(new Error(`child exited first; stderr: ${this.stderr}`));
      });
    });
  }

  /** Sends one command to a `serve` child and resolves its one-line answer. */
  async ask(command: string): Promise<string> {
    const want = this.#consumed + 1;
    this.process.stdin.write(`${command}\n`);
    await this.until((lines) => lines.length >= want);
    this.#consumed = want;
    return this.lines[want - 1] as string;
  }

  async ready(): Promise<void> {
    await this.until((lines) => lines.includes('ready'));
    this.#consumed = this.lines.indexOf('ready') + 1;
  }
}

describe('jsonl tier: several processes', () => {
  let dir: string;
  let key: string;
  let keyring: Keyring;
  const children: Child[] = [];
  const opened: JsonlTier[] = [];

  function child(mode: string, env: Record<string, string> = {}): Child {
    const made = new Child(mode, dir, key, env);
    children.push(made);
    return made;
  }

  async function openHere(options: { lockTimeoutMs?: number } = {}) {
    const tier = new JsonlTier({ dir, ...options });
    const ctx = makeContext(keyring, new ManualClock(START));
    await tier.open(ctx.context);
    opened.push(tier);
    return { tier, evictions: ctx.evictions };
  }

  function sealed(entryKey: string, version: number) {
    const entry = createEntry(
      {
        proxyUrl: `http://192.0.2.${version % 250}:${1000 + version}`,
        key: entryKey,
        username: 'u',
        password: `pw-${version}`,
        totalHealthChecks: version,
      },
      { now: START, ttlSecondsFor: () => 86_400 },
    );
    entry.username?.seal(keyring);
    entry.password?.seal(keyring);
    return entry;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxytier-procs-'));
    key = generateFernetKey();
    keyring = new Keyring(key);
  });

  afterEach(async () => {
    for (const made of children.splice(0)) {
      made.process.kill('SIGKILL');
      await made.exited;
    }
    for (const tier of opened.splice(0)) await tier.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged write and delete through 24 SIGKILLs during puts, deletes and compactions', async () => {
    const next = random(7);
    const KEYS = 150;
    /** What each key must hold: a version, or null for deleted/never written. */
    const model = new Map<string, number | null>();
    for (let k = 0; k < KEYS; k += 1) model.set(`k${k}`, null);
    let killedDuringCompaction = 0;
    let tornTails = 0;
    for (let round = 0; round < 24; round += 1) {
      const worker = child('crash', {
        VERSION_BASE: String(round * 1_000_000),
        KEYS: String(KEYS),
      });
      await worker.ready();
      // Kill after a random number of reported operations: an event, not a sleep.
      const after = 40 + Math.floor(next() * 1500);
      await worker.until((lines) => lines.length >= after);
      worker.process.kill('SIGKILL');
      const { signal } = await worker.exited;
      expect(signal).toBe('SIGKILL');

      const inFlight = new Map<string, number | null>();
      let compacting = false;
      for (const line of worker.lines) {
        const [phase, op, entryKey, version] = line.split(' ');
        if (op === 'C') {
          compacting = phase === 'I';
          continue;
        }
        if (entryKey === undefined) continue;
        const value = op === 'P' ? Number(version) : null;
        if (phase === 'I') inFlight.set(entryKey, value);
        else if (phase === 'A') {
          model.set(entryKey, value);
          inFlight.delete(entryKey);
        }
      }
      if (compacting) killedDuringCompaction += 1;

      const { tier, evictions } = await openHere();
      for (const [entryKey, acknowledged] of model) {
        const found = await tier.get(entryKey);
        const seen = found === undefined ? null : found.totalHealthChecks;
        const allowed = [acknowledged];
        if (inFlight.has(entryKey)) allowed.push(inFlight.get(entryKey) as number | null);
        if (!allowed.includes(seen)) {
          const file = join(dir, shardFileName(shardOf(entryKey)));
          const text = await readFile(file, 'latin1');
          const mine = text.split('\n').filter((line) => line.includes(`"${entryKey}"`));
          console.log(
            JSON.stringify(
              {
                round,
                entryKey,
                allowed,
                seen,
                stats: tier.stats(),
                evictions,
                files: await readdir(dir),
                size: text.length,
                lines: mine.map((line) => `${line.slice(0, 40)}...${line.slice(-60)}`),
                ops: worker.lines.filter(
                  (line) => line.includes(` ${entryKey} `) || line.endsWith(` ${entryKey}`),
                ),
                tail: worker.lines.slice(-4),
              },
              null,
              1,
            ),
          );
        }
        expect(allowed, `round ${round}, key ${entryKey}`).toContain(seen);
        if (found !== undefined) expect(found.password?.reveal()).toBe(`pw-${seen}`);
        // Whatever an unacknowledged op left is the starting point of the next round.
        model.set(entryKey, seen);
      }
      const stats = tier.stats();
      expect(stats.corruptRecords, `round ${round}`).toBe(0);
      expect(evictions).toEqual([]);
      tornTails += stats.tornTails;
      await tier.close();
      opened.splice(opened.indexOf(tier), 1);
    }
    expect(killedDuringCompaction).toBeGreaterThan(0);
    expect([...model.values()].filter((value) => value !== null).length).toBeGreaterThan(20);
    // Not asserted (it depends on timing), but shown when the test is run verbosely.
    console.log(
      `jsonl crash test: ${killedDuringCompaction} of 24 kills during a compaction; ${tornTails} torn tails cut`,
    );
  }, 90_000);

  it('lets 3 processes put, delete and compact one directory at once, losing and corrupting nothing', async () => {
    const WORKERS = 3;
    const workers = Array.from({ length: WORKERS }, (_, id) =>
      child('worker', { WORKER_ID: String(id), WORKERS: String(WORKERS), RUN_MS: '3500' }),
    );
    const results = await Promise.all(workers.map((worker) => worker.exited));
    for (const [id, result] of results.entries()) {
      expect(result.code, (workers[id] as Child).stderr).toBe(0);
    }
    const model = new Map<string, number | null>();
    let puts = 0;
    let compactions = 0;
    for (const worker of workers) {
      for (const line of worker.lines) {
        const [kind, op, entryKey, value] = line.split(' ');
        if (kind === 'E') throw new Error(`a worker saw stale data: ${line}`);
        if (kind === 'C') compactions += Number(op);
        if (kind === 'S') {
          const stats = JSON.parse(line.slice(2)) as { corruptRecords: number; boards: object };
          expect(stats.corruptRecords).toBe(0);
          // Each worker saw the others' progress boards: their writes reached it.
          expect(Object.keys(stats.boards).length).toBe(WORKERS);
        }
        if (kind !== 'A' || entryKey === undefined) continue;
        if (op === 'P') {
          model.set(entryKey, Number(value));
          puts += 1;
        } else model.set(entryKey, null);
      }
    }
    expect(puts).toBeGreaterThan(300);
    expect(compactions).toBeGreaterThan(0);

    // A fresh process reads everything back.
    const reader = child('dump');
    await reader.exited;
    const dump = JSON.parse(reader.lines[0] as string) as {
      entries: Record<string, number | string>;
      stats: { corruptRecords: number };
      evictions: unknown[];
    };
    expect(dump.stats.corruptRecords).toBe(0);
    expect(dump.evictions).toEqual([]);
    for (const [entryKey, version] of model) {
      expect(dump.entries[entryKey] ?? null, entryKey).toBe(version);
    }
    const extra = Object.keys(dump.entries).filter((k) => !model.has(k) && !k.startsWith('board-'));
    expect(extra).toEqual([]);
  }, 60_000);

  it('shows each process what the other wrote, deleted and compacted, without reopening', async () => {
    const { tier } = await openHere();
    const other = child('serve');
    await other.ready();
    expect(await other.ask('set a 1')).toBe('ok');
    expect(tier.getSync('a')?.totalHealthChecks).toBe(1);
    await tier.set(sealed('b', 2));
    expect(await other.ask('get b')).toBe('2');
    expect(Number(await other.ask('compact'))).toBeGreaterThan(0);
    expect((await tier.get('a'))?.password?.reveal()).toBe('pw-1');
    await tier.set(sealed('c', 3)); // into the file the other process just put in place
    expect(await other.ask('get c')).toBe('3');
    await tier.compact();
    expect(await other.ask('get a')).toBe('1');
    expect(await other.ask('size')).toBe('3');
    expect(await other.ask('del a')).toBe('true');
    expect(await tier.has('a')).toBe(false);
    expect(await tier.size()).toBe(2);
    await other.ask('exit');
    expect((await other.exited).code).toBe(0);
    expect(tier.stats().corruptRecords).toBe(0);
  });

  it('keeps every increment of 3 processes modifying one entry 100 times each', async () => {
    const { tier } = await openHere();
    await tier.set(sealed('counter', 1));
    const workers = Array.from({ length: 3 }, () => child('serve'));
    await Promise.all(workers.map((worker) => worker.ready()));
    await new Promise((resolveTurn) => setImmediate(resolveTurn)); // our write lease ends
    const answers = await Promise.all(workers.map((worker) => worker.ask('incr counter 100')));
    expect(answers).toEqual(['ok', 'ok', 'ok']);
    expect((await tier.get('counter'))?.failureCount).toBe(300);
    expect((await tier.get('counter'))?.password?.reveal()).toBe('pw-1');
    expect(tier.stats().corruptRecords).toBe(0);
  }, 60_000);

  it("gives up an idle process's write lease, and a busy one's within a second", async () => {
    // lockTimeoutMs bounds how long this process waits for the other's lease.
    const { tier } = await openHere({ lockTimeoutMs: 1_500 });
    const other = child('serve');
    await other.ready();
    // Idle: the other process wrote, then waits for its next command.
    expect(await other.ask('set idle-key 1')).toBe('ok');
    await tier.set(sealed('idle-key', 2));
    expect(await other.ask('get idle-key')).toBe('2');

    // Busy: the other process wrote, then runs promise continuations that never let its event
    // loop turn (a loop of awaited reads), for 3 s.
    other.process.stdin.write('busy busy-key 3000\n');
    await other.until((lines) => lines.includes('holding'));
    const started = performance.now();
    await tier.set(sealed('busy-key', 2));
    const waited = performance.now() - started;
    expect(waited).toBeLessThan(1_500);
    await other.until((lines) => lines.some((line) => line.startsWith('done')));
    expect(tier.getSync('busy-key')?.totalHealthChecks).toBe(2);
  }, 20_000);

  it("waits for a lock another process holds, times out with E_TIER_LOCK, and breaks a dead holder's lock", async () => {
    const { tier } = await openHere({ lockTimeoutMs: 300 });
    const entry = sealed('locked-key', 1);
    const lockName = shardFileName(shardOf(entry.key)).replace('.jsonl', '.lock');
    const holder = child('serve');
    await holder.ready();
    expect(await holder.ask(`lock ${lockName}`)).toBe('locked');
    await expect(tier.set(entry)).rejects.toMatchObject({ code: 'E_TIER_LOCK' });
    expect(await holder.ask('unlock')).toBe('unlocked');
    await tier.set(entry);
    expect(tier.getSync(entry.key)?.totalHealthChecks).toBe(1);

    const { tier: patient } = await openHere({ lockTimeoutMs: 20_000 });
    expect(await holder.ask(`lock ${lockName}`)).toBe('locked');
    const waiting = patient.set(sealed('locked-key', 2));
    holder.process.kill('SIGKILL');
    await holder.exited;
    await waiting; // the dead holder's lock was found stale and broken
    expect(tier.getSync(entry.key)?.totalHealthChecks).toBe(2);
  });
});
