// Child process of the several-processes test (started with fork, so it has an IPC channel).
// It writes its own keys through a [memory, sqlite] stack while reading the other workers' keys,
// tells the parent it is done, and on the parent's word reads every key the others wrote.
// argv: <dist dir> <database path> <worker id> <workers> <keys per worker>; key in PROXYTIER_TEST_KEY.
import { join } from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

const [dist, path, idText, workersText, countText] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(join(dist, file)).href);
const { Keyring, MemoryTier, ProxyCache, deriveKey, silentLogger } = await load('index.js');
const { SqliteTier } = await load('tiers/sqlite/index.js');

const id = Number(idText);
const workers = Number(workersText);
const count = Number(countText);
const errors = [];
const record = (error) =>
  errors.push(`${error?.code ?? 'error'}: ${error?.message ?? String(error)}`);

const cache = await ProxyCache.open({
  tiers: [new MemoryTier({ maxEntries: 500 }), new SqliteTier({ path, role: 'l3' })],
  keyring: new Keyring(process.env.PROXYTIER_TEST_KEY),
  logger: silentLogger,
  sweepIntervalMs: 0,
});
cache.on('degrade', ({ tier, error }) =>
  record({ code: 'DEGRADED', message: `${tier}: ${error.message}` }),
);

const url = (worker, n) => `http://10.${100 + worker}.${(n >> 8) & 255}.${n & 255}:3128`;
const password = (worker, n) => `pw-${worker}-${n}`;
const peers = Array.from({ length: workers }, (_, worker) => worker).filter((w) => w !== id);

// Phase 1: write, 8 puts in flight, and read the peers' keys as they appear.
let acknowledged = 0;
let seenWhileWriting = 0;
let next = 0;
async function writer() {
  while (next < count) {
    const n = next;
    next += 1;
    try {
      await cache.put({ proxyUrl: url(id, n), password: password(id, n), source: `worker-${id}` });
      acknowledged += 1;
    } catch (error) {
      record(error);
    }
    for (const peer of peers) {
      try {
        const found = await cache.get(deriveKey(url(peer, n)));
        if (found !== undefined) {
          seenWhileWriting += 1;
          if (found.password?.reveal() !== password(peer, n))
            record({ message: `wrong password for ${peer}/${n}` });
        }
      } catch (error) {
        record(error);
      }
    }
  }
}
await Promise.all(Array.from({ length: 8 }, writer));
process.send({ type: 'written', acknowledged });

// Phase 2, once every worker has written: every key of every peer must be readable.
process.on('message', async (message) => {
  if (message.type !== 'read') return;
  const seen = {};
  for (const peer of peers) {
    seen[peer] = 0;
    for (let n = 0; n < count; n += 1) {
      try {
        const found = await cache.get(deriveKey(url(peer, n)));
        if (found?.password?.reveal() === password(peer, n)) seen[peer] += 1;
      } catch (error) {
        record(error);
      }
    }
  }
  await cache.close();
  process.send({ type: 'report', id, acknowledged, seenWhileWriting, seen, errors });
  process.disconnect();
});
