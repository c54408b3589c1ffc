// Child process of the crash test: writes through a ProxyCache stack [memory, sqlite] as fast as
// it can and prints each key on stdout once its put has resolved (one line per acknowledged
// write). The test kills it with SIGKILL at a random moment.
// argv: <dist dir> <database path> <role> <run number>; the Fernet key is in PROXYTIER_TEST_KEY.
import { join } from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

const [dist, path, role, runText] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(join(dist, file)).href);
const { Keyring, MemoryTier, ProxyCache, silentLogger } = await load('index.js');
const { SqliteTier } = await load('tiers/sqlite/index.js');

const run = Number(runText);
const cache = await ProxyCache.open({
  tiers: [new MemoryTier({ maxEntries: 1000 }), new SqliteTier({ path, role })],
  keyring: new Keyring(process.env.PROXYTIER_TEST_KEY),
  logger: silentLogger,
  sweepIntervalMs: 0,
});
// A tier switched off would let the memory tier alone acknowledge writes: report and stop.
cache.on('degrade', ({ tier, error }) => {
  process.stderr.write(`degraded ${tier}: ${error.message}\n`);
  process.exit(3);
});
process.stdout.write('ready\n');

let next = 0;
async function writer() {
  for (;;) {
    const n = next;
    next += 1;
    const entry = await cache.put({
      proxyUrl: `http://10.${run}.${(n >> 8) & 255}.${n & 255}:${2000 + (n >> 16)}`,
      username: `user-${run}-${n}`,
      password: `pw\t${run}/${n} ✓`,
      source: 'crash-test',
    });
    // Writes to a pipe are synchronous on Linux (blocking when the parent lags behind), so a
    // line is on the pipe before this writer's next put starts.
    process.stdout.write(`${entry.key} ${run} ${n}\n`);
  }
}
await Promise.all(Array.from({ length: 64 }, writer));
