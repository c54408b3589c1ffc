// Child process of the SQLite atomicity and change-feed tests. It opens a SqliteTier directly
// (no stack) from the built package and, like the stack, retries a call that fails E_TIER_BUSY
// after a short asynchronous back-off. Prints one JSON line: { done, busyRetries, errors }.
// argv: <dist dir> <database path> <role> <mode> <args...>; keyring key in PROXYTIER_TEST_KEY;
// PROXYTIER_TEST_START (epoch ms): when to start, so that sibling processes run at the same time.
//   modify <key> <count>   count concurrent increments of failureCount
//   health <key> <count>   count concurrent recordHealthCheck calls
//   feed <deleteKey> <modifyKey> <newProxyUrl>   one delete, one modify, one set
import { join } from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

const [dist, path, role, mode, ...args] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(join(dist, file)).href);
const { Keyring } = await load('crypto/keyring.js');
const { systemClock } = await load('clock.js');
const { silentLogger } = await load('logger.js');
const { createEntry } = await load('record/entry.js');
const { SqliteTier } = await load('tiers/sqlite/index.js');

const keyring = new Keyring(process.env.PROXYTIER_TEST_KEY);
const tier = new SqliteTier({ path, role, historyRetention: { maxRowsPerProxy: Infinity } });
await tier.open({ cipher: keyring, clock: systemClock, logger: silentLogger, onEvict() {} });

await sleep(Math.max(0, Number(process.env.PROXYTIER_TEST_START ?? 0) - Date.now()));

let busyRetries = 0;
const errors = [];
async function retrying(call) {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (error?.code !== 'E_TIER_BUSY') throw error;
      busyRetries += 1;
      await sleep(1 + Math.random() * 10);
    }
  }
}

let done = 0;
async function run(call) {
  // Spread the calls over several batches, so the processes' transactions interleave.
  await sleep(Math.random() * 100);
  try {
    await retrying(call);
    done += 1;
  } catch (error) {
    errors.push(`${error?.code ?? 'error'}: ${error?.message ?? String(error)}`);
  }
}

if (mode === 'modify') {
  const [key, count] = args;
  await Promise.all(
    Array.from({ length: Number(count) }, () =>
      run(() => tier.modify(key, (entry) => ({ failureCount: entry.failureCount + 1 }))),
    ),
  );
} else if (mode === 'health') {
  const [key, count] = args;
  await Promise.all(
    Array.from({ length: Number(count) }, (_, n) =>
      run(() =>
        tier.recordHealthCheck(key, {
          status: n % 3 === 0 ? 'unhealthy' : 'healthy',
          responseTimeMs: 10 + n,
          checkUrl: 'https://example.org/ip',
        }),
      ),
    ),
  );
} else if (mode === 'feed') {
  const [deleteKey, modifyKey, proxyUrl] = args;
  const entry = createEntry(
    { proxyUrl, source: 'child' },
    { now: Date.now(), ttlSecondsFor: () => 3600 },
  );
  await run(() => tier.delete(deleteKey));
  await run(() => tier.modify(modifyKey, (found) => ({ failureCount: found.failureCount + 1 })));
  await run(() => tier.set(entry));
} else {
  errors.push(`unknown mode ${mode}`);
}
await tier.close();
process.stdout.write(`${JSON.stringify({ done, busyRetries, errors })}\n`);
