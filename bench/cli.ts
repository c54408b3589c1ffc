// Command-line import and export of 100,000 CSV lines with credentials, each beside the stack's
// own rate for the same entries in the same run, so the difference is the cost of the command
// line: process start, reading and parsing the file, comparing with what is stored, formatting.
//   import: `proxytier import proxies.csv` (a child process, timed from spawn to exit) against
//           `ProxyCache.put` of the same 100,000 entries into an identical, empty store, 64 in
//           flight as the import issues them;
//   export: `proxytier export out.csv --secrets encrypted` against iterating the same store's
//           entries in process (`cache.entries()`), which every export has to do.
// The store is the command line's default (SQLite, no memory tier); each side gets a fresh one.
// Rounds alternate between the sides; the median of 3 is reported.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  generateFernetKey,
  Keyring,
  openDefaultStore,
  type ProxyCache,
  silentLogger,
  type ProxyEntryInput,
} from '../src/index.js';
import { collectGarbage, median, progress, round3, type Result } from './harness.js';

const LINES = 100_000;
const ROUNDS = 3;
const IN_FLIGHT = 64;
// The built command line, as a user runs it (`npm run bench` builds dist/ first).
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function proxyInput(index: number): ProxyEntryInput {
  return {
    proxyUrl: `http://10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:${3000 + (index % 5000)}`,
    username: `user-${index.toString(36)}-${(index * 7919).toString(36)}`,
    password: `pw-${(index * 104_729).toString(36)}-${index}`,
    source: index % 3 === 0 ? 'provider-a' : 'provider-b',
  };
}

function csvOf(inputs: ProxyEntryInput[]): string {
  const rows = inputs.map(
    (input) =>
      `${input.proxyUrl},${String(input.username)},${String(input.password)},${input.source}`,
  );
  return `proxy_url,username,password,source\n${rows.join('\n')}\n`;
}

/** Runs the command line; resolves its wall time in ms. */
function runCli(args: string[], env: NodeJS.ProcessEnv): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
  const elapsed = performance.now() - started;
  if (result.status !== 0) {
    throw new Error(`proxytier ${args[0] ?? ''} exited ${String(result.status)}: ${result.stderr}`);
  }
  return elapsed;
}

async function openStore(dir: string, keyring: Keyring): Promise<ProxyCache> {
  return openDefaultStore({
    dir,
    memoryTier: false,
    keyring,
    logger: silentLogger,
    sweepIntervalMs: 0,
  });
}

async function putAll(cache: ProxyCache, inputs: ProxyEntryInput[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < inputs.length) {
      const input = inputs[next] as ProxyEntryInput;
      next += 1;
      await cache.put(input);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

async function iterateAll(cache: ProxyCache): Promise<number> {
  let count = 0;
  for await (const entry of cache.entries()) if (entry.key !== '') count += 1;
  return count;
}

/** The command-line suite: import and export of 100,000 CSV lines with credentials. */
export async function cliSuite(): Promise<Result[]> {
  const dir = await mkdtemp(join(tmpdir(), 'proxytier-bench-cli-'));
  try {
    const key = generateFernetKey();
    const keyFile = join(dir, 'key');
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
    const keyring = new Keyring(key);
    const env = { PATH: process.env['PATH'] ?? '', HOME: dir, PROXYTIER_KEY_FILE: keyFile };
    const inputs = Array.from({ length: LINES }, (_, index) => proxyInput(index));
    const csv = join(dir, 'proxies.csv');
    await writeFile(csv, csvOf(inputs));

    const importMs: number[] = [];
    const putMs: number[] = [];
    const exportMs: number[] = [];
    const iterateMs: number[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      progress(`cli: round ${round + 1} of ${ROUNDS}`);
      collectGarbage();
      const cliStore = join(dir, `cli-${round}`);
      importMs.push(runCli(['import', csv, '--dir', cliStore, '--quiet'], env));

      collectGarbage();
      const store = join(dir, `stack-${round}`);
      const cache = await openStore(store, keyring);
      let started = performance.now();
      await putAll(cache, inputs);
      putMs.push(performance.now() - started);

      exportMs.push(
        runCli(
          [
            'export',
            join(dir, `out-${round}.csv`),
            '--dir',
            cliStore,
            '--secrets',
            'encrypted',
            '--quiet',
          ],
          env,
        ),
      );
      started = performance.now();
      const seen = await iterateAll(cache);
      iterateMs.push(performance.now() - started);
      await cache.close();
      if (seen !== LINES) throw new Error(`the store holds ${seen} entries, expected ${LINES}`);
    }
    const rate = (ms: number[]) => Math.round(LINES / (median(ms) / 1000));
    const importRate = rate(importMs);
    const putRate = rate(putMs);
    const exportRate = rate(exportMs);
    const iterateRate = rate(iterateMs);
    progress(
      `cli: import ${importRate}/s vs put ${putRate}/s; export ${exportRate}/s vs iterate ${iterateRate}/s`,
    );
    return [
      {
        name: 'cli import, 100k CSV lines with credentials: proxytier import (whole process)',
        value: importRate,
        unit: 'lines/s',
        reference: 'ProxyCache.put of the same entries, 64 in flight',
        referenceValue: putRate,
        ratio: round3(importRate / putRate),
        better: 'higher',
      },
      {
        name: 'cli export, 100k entries with credentials: proxytier export --secrets encrypted (whole process)',
        value: exportRate,
        unit: 'entries/s',
        reference: 'cache.entries() over the same store, in process',
        referenceValue: iterateRate,
        ratio: round3(exportRate / iterateRate),
        better: 'higher',
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
