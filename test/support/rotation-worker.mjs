// Child process of test/process/rotation.test.ts: a worker of a store whose key is rotated while
// it runs. It opens the default store under <dir> (with its memory tier), its key from
// PROXYTIER_KEY_FILE, and until <stop file> exists it records health checks of the known keys,
// reads their credentials and writes new proxies with credentials. It prints "ready" once open,
// and at the end one JSON line: the checks acknowledged per key, the decryption errors seen, and
// the proxies it wrote (their passwords are test values, not secrets).
// argv: <dist dir> <store dir> <stop file> <worker id> <keys JSON file>
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { setImmediate } from 'node:timers';
import { pathToFileURL } from 'node:url';

const [dist, dir, stopFile, id, keysFile] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(join(dist, file)).href);
const { openDefaultStore, silentLogger } = await load('index.js');
const keys = JSON.parse(readFileSync(keysFile, 'utf8'));

const cache = await openDefaultStore({ dir, logger: silentLogger, sweepIntervalMs: 0 });
let keyChanges = 0;
cache.on('keys', () => {
  keyChanges += 1;
});
const acknowledged = {};
const decryptErrors = [];
const written = [];
process.stdout.write('ready\n');

let n = 0;
while (!existsSync(stopFile)) {
  const key = keys[n % keys.length];
  const after = await cache.recordHealthCheck(key, {
    status: 'healthy',
    responseTimeMs: 5 + (n % 50),
    checkUrl: 'http://127.0.0.1/health',
  });
  if (after !== undefined) acknowledged[key] = (acknowledged[key] ?? 0) + 1;
  if (n % 3 === 0) {
    try {
      const entry = await cache.get(keys[(n * 7) % keys.length]);
      entry?.username?.reveal();
      entry?.password?.reveal();
    } catch (error) {
      decryptErrors.push(error?.code ?? String(error));
    }
  }
  if (n % 25 === 0) {
    const password = `pw-${id}-${n}`;
    const entry = await cache.put({
      proxyUrl: `http://10.77.${Number(id)}.${(n / 25) % 250}:${9000 + Math.floor(n / 6250)}`,
      username: `worker${id}`,
      password,
      source: 'rotation-test',
    });
    written.push({ key: entry.key, username: `worker${id}`, password });
  }
  n += 1;
  if (n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
}
await cache.close();
process.stdout.write(`${JSON.stringify({ acknowledged, decryptErrors, written, keyChanges })}\n`);
