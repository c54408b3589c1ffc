// A child process for the JSONL tier's crash, multi-process and visibility tests. It imports the
// BUILT package (npm test builds first), the way a user's worker process would.
//
//   node jsonl-child.mjs crash <dir>     puts and deletes through a ProxyCache (memory + jsonl)
//                                        and compacts, until killed; reports each op before it
//                                        starts ("I ...") and after its promise resolved ("A ...")
//   node jsonl-child.mjs worker <dir>    one of several concurrent workers (WORKER_ID, RUN_MS):
//                                        puts, deletes and compacts its own keys, reads the others'
//   node jsonl-child.mjs dump <dir>      prints every entry's version and the tier's statistics
//   node jsonl-child.mjs serve <dir>     runs commands read from stdin, one per line (among them
//                                        `incr <key> <n>`: n atomic increments of failureCount in 4
//                                        concurrent loops that yield to the event loop between
//                                        calls; `busy <key> <ms>`: a write, then awaited reads
//                                        that never let the event loop turn, answering `holding`
//                                        after the write and `done` at the end)
//
// PROXYTIER_TEST_KEY holds the Fernet key. Output lines are written with a synchronous write(2)
// on fd 1: process.stdout to the parent's stdio socket is asynchronous, and what it still queued
// would be lost at SIGKILL, so the parent would miss operations that did happen.
import { Buffer } from 'node:buffer';
import { writeSync } from 'node:fs';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { setImmediate, setTimeout } from 'node:timers';
import { JsonlTier } from '../../dist/tiers/jsonl/index.js';
import { FileLock } from '../../dist/file-lock.js';
import {
  createEntry,
  Keyring,
  MemoryTier,
  ProxyCache,
  silentLogger,
  systemClock,
} from '../../dist/index.js';

const [mode, dir] = process.argv.slice(2);
const keyring = new Keyring(process.env.PROXYTIER_TEST_KEY ?? '');
const out = (line) => {
  const bytes = Buffer.from(`${line}\n`);
  let written = 0;
  while (written < bytes.length) {
    try {
      written += writeSync(1, bytes, written);
    } catch (error) {
      // The socket is non-blocking: when the parent has not read yet, try again.
      if (error.code !== 'EAGAIN') throw error;
    }
  }
};
const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));

function urlOf(key) {
  let hash = 0;
  for (const char of key) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return `http://10.${(hash >>> 16) & 255}.${(hash >>> 8) & 255}.${hash & 255}:${1024 + (hash % 60000)}`;
}

/** A sealed entry whose version is carried in `totalHealthChecks` and in the password. */
function entryOf(key, version) {
  const entry = createEntry(
    {
      proxyUrl: urlOf(key),
      key,
      username: `user-${key}`,
      password: `pw-${version}`,
      source: 'child',
      totalHealthChecks: version,
    },
    { now: Date.now(), ttlSecondsFor: () => 86_400 },
  );
  entry.username?.seal(keyring);
  entry.password?.seal(keyring);
  return entry;
}

function context(evictions = []) {
  return {
    cipher: keyring,
    clock: systemClock,
    logger: silentLogger,
    onEvict: (key, reason) => evictions.push({ key, reason }),
  };
}

async function crash() {
  const tier = new JsonlTier({ dir, compactionMinBytes: 0, compactionThreshold: 0.3 });
  const cache = await ProxyCache.open({
    tiers: [new MemoryTier({ maxEntries: 1000 }), tier],
    keyring,
    sweepIntervalMs: 0,
    logger: silentLogger,
  });
  let version = Number(process.env.VERSION_BASE ?? '0');
  const keys = Number(process.env.KEYS ?? '150');
  const busy = new Set();
  const worker = async () => {
    for (;;) {
      await yieldToLoop();
      const key = `k${Math.floor(Math.random() * keys)}`;
      if (busy.has(key)) continue;
      busy.add(key);
      if (Math.random() < 0.7) {
        version += 1;
        const v = version;
        out(`I P ${key} ${v}`);
        await cache.put({
          proxyUrl: urlOf(key),
          key,
          username: `user-${key}`,
          password: `pw-${v}`,
          source: 'child',
          totalHealthChecks: v,
        });
        out(`A P ${key} ${v}`);
      } else {
        out(`I D ${key}`);
        await cache.delete(key);
        out(`A D ${key}`);
      }
      busy.delete(key);
    }
  };
  const compactor = async () => {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 40));
      out('I C');
      await tier.compact();
      out('A C');
    }
  };
  out('ready');
  await Promise.all([...Array.from({ length: 8 }, worker), compactor()]);
}

async function worker() {
  const id = process.env.WORKER_ID ?? '0';
  const workers = Number(process.env.WORKERS ?? '2');
  const runMs = Number(process.env.RUN_MS ?? '3000');
  const tier = new JsonlTier({ dir, compactionMinBytes: 64 * 1024, compactionThreshold: 0.4 });
  await tier.open(context());
  const keys = 200;
  let version = 0;
  let ops = 0;
  const seen = new Map();
  const busy = new Set();
  const deadline = Date.now() + runMs;
  out('ready');
  const loop = async () => {
    while (Date.now() < deadline) {
      await yieldToLoop();
      const key = `w${id}-k${Math.floor(Math.random() * keys)}`;
      if (busy.has(key)) continue;
      busy.add(key);
      if (Math.random() < 0.75) {
        version += 1;
        const v = version;
        await tier.set(entryOf(key, v));
        out(`A P ${key} ${v}`);
      } else {
        const existed = await tier.delete(key);
        out(`A D ${key} ${existed}`);
      }
      busy.delete(key);
      ops += 1;
      if (ops % 25 === 0) {
        // The board: each worker's progress, which the others must never see go backwards.
        await tier.set(entryOf(`board-${id}`, ops));
        for (let other = 0; other < workers; other += 1) {
          const found = tier.getSync(`board-${other}`);
          if (found === undefined) continue;
          const value = found.totalHealthChecks;
          if (value < (seen.get(other) ?? 0)) out(`E board ${other} went back to ${value}`);
          seen.set(other, value);
          if (found.password?.reveal() !== `pw-${value}`) out(`E board ${other} password`);
        }
      }
    }
  };
  const compactor = async () => {
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 300));
      const report = await tier.compact();
      out(`C ${report.shards} ${report.corrupt}`);
    }
  };
  await Promise.all([loop(), loop(), loop(), loop(), compactor()]);
  const stats = tier.stats();
  await tier.close();
  out(`S ${JSON.stringify({ ...stats, boards: Object.fromEntries(seen) })}`);
}

async function dump() {
  const tier = new JsonlTier({ dir });
  const evictions = [];
  await tier.open(context(evictions));
  const entries = {};
  for await (const entry of tier.entries()) {
    const version = entry.totalHealthChecks;
    entries[entry.key] = entry.password?.reveal() === `pw-${version}` ? version : `bad ${version}`;
  }
  out(JSON.stringify({ entries, stats: tier.stats(), evictions }));
  await tier.close();
}

async function serve() {
  const tier = new JsonlTier({
    dir,
    lockTimeoutMs: Number(process.env.LOCK_TIMEOUT_MS ?? '30000'),
  });
  await tier.open(context());
  let lock;
  out('ready');
  for await (const line of createInterface({ input: process.stdin })) {
    const [command, key, value] = line.split(' ');
    try {
      if (command === 'set') {
        await tier.set(entryOf(key, Number(value)));
        out('ok');
      } else if (command === 'get') {
        out(String(tier.getSync(key)?.totalHealthChecks ?? 'none'));
      } else if (command === 'del') {
        out(String(await tier.delete(key)));
      } else if (command === 'compact') {
        out(String((await tier.compact()).shards));
      } else if (command === 'incr') {
        const loop = async (count) => {
          for (let i = 0; i < count; i += 1) {
            const found = await tier.modify(key, (current) => ({
              failureCount: current.failureCount + 1,
            }));
            if (found === undefined) throw new Error(`${key} is missing`);
            await yieldToLoop();
          }
        };
        const n = Number(value);
        await Promise.all([0, 1, 2, 3].map((part) => loop(Math.floor((n + part) / 4))));
        out('ok');
      } else if (command === 'busy') {
        await tier.set(entryOf(key, 1));
        out('holding');
        // Promise continuations only: no timer, no setImmediate, no I/O callback runs meanwhile.
        const until = Date.now() + Number(value);
        let reads = 0;
        while (Date.now() < until) {
          if ((await tier.get(key)) !== undefined) reads += 1;
        }
        out(`done ${reads}`);
      } else if (command === 'size') {
        out(String(await tier.size()));
      } else if (command === 'lock') {
        // Holds a shard's lock file as a busy writer would.
        lock = new FileLock(`${dir}/${key}`, 'child', 30_000);
        await lock.acquire();
        out('locked');
      } else if (command === 'unlock') {
        lock?.release();
        out('unlocked');
      } else if (command === 'exit') {
        out('bye');
        break;
      }
    } catch (error) {
      out(`error ${error.code ?? ''} ${error.message}`);
    }
  }
  await tier.close();
  // stdin would keep the process alive.
  process.exit(0);
}

const modes = { crash, worker, dump, serve };
await modes[mode]();
