#!/usr/bin/env node
// The proxytier command-line tool. Each command is a thin layer over the public library API.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ProxyCache } from '../proxy-cache.js';
import { ProxyTierError } from '../errors.js';
import type { CacheStats } from '../stats.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const defaultExample = join(packageRoot, 'examples', 'proxies.txt');

/** Exit codes, documented in the README. */
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

async function readVersion(): Promise<string> {
  const text = await readFile(join(packageRoot, 'package.json'), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** Lines of a plain proxy list: blank lines and `#` comments are skipped. */
function proxyLines(text: string): { line: number; url: string }[] {
  return text
    .split(/\r?\n/)
    .map((raw, index) => ({ line: index + 1, url: raw.trim() }))
    .filter(({ url }) => url !== '' && !url.startsWith('#'));
}

function statsTable(stats: CacheStats): string {
  const rows = [
    [
      'tier',
      'entries',
      'hits',
      'misses',
      'hit rate',
      'evictions (lru/ttl/health/corrupt)',
      'degraded',
    ],
    ...stats.tiers.map((tier) => [
      `L${tier.level} ${tier.name}`,
      String(tier.entries ?? '?'),
      String(tier.hits),
      String(tier.misses),
      `${(tier.hitRate * 100).toFixed(1)}%`,
      `${tier.evictions.lru}/${tier.evictions.ttl}/${tier.evictions.health}/${tier.evictions.corruption}`,
      tier.degraded ? 'yes' : 'no',
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd(),
  );
  const overall = `overall: ${stats.requests} requests, ${stats.hits} hits, ${stats.misses} misses, hit rate ${(stats.hitRate * 100).toFixed(1)}%`;
  return [...lines, overall].join('\n');
}

/** `proxytier demo`: loads a proxy list into the default store, reads it back, prints stats. */
async function demo(file: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const cache = await ProxyCache.open();
  try {
    let loaded = 0;
    const failed: string[] = [];
    const keys: string[] = [];
    for (const { line, url } of proxyLines(text)) {
      try {
        const entry = await cache.put({ proxyUrl: url, source: 'example' });
        keys.push(entry.key);
        loaded += 1;
      } catch (error) {
        failed.push(`line ${line}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    process.stdout.write(
      `loaded ${loaded} proxies from ${file}${failed.length ? `, ${failed.length} failed` : ''}\n`,
    );
    for (const failure of failed) process.stdout.write(`  ${failure}\n`);
    for (const key of keys) await cache.get(key);
    await cache.get('0000000000000000');
    const unlucky = keys[0];
    if (unlucky !== undefined) {
      const report = await cache.reportFailure(unlucky);
      process.stdout.write(
        `reported a failure of ${unlucky}: failure count ${report?.failureCount ?? 0}\n`,
      );
    }
    process.stdout.write(
      '\n' + statsTable(await cache.stats()) + '\n\nentries (credentials are never printed):\n',
    );
    let shown = 0;
    for await (const entry of cache.entries()) {
      if (shown === 20) break;
      const credentials =
        entry.username === undefined
          ? ''
          : `  credentials ${String(entry.username)}:${String(entry.password)}`;
      process.stdout.write(
        `  ${entry.key}  ${entry.proxyUrl.padEnd(30)} ${entry.healthStatus.padEnd(9)}${credentials}\n`,
      );
      shown += 1;
    }
  } finally {
    await cache.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('proxytier')
    .description('A multi-tier, encrypted, crash-safe cache of proxy records')
    .version(await readVersion())
    .option('--debug', 'show stack traces on errors')
    .exitOverride();
  program
    .command('demo')
    .description('load a proxy list into the default store, read it back and print statistics')
    .argument('[file]', 'a plain list of proxies, one per line', defaultExample)
    .addHelpText('after', '\nExample:\n  $ proxytier demo examples/proxies.txt')
    .action(demo);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    if (
      code === 'commander.helpDisplayed' ||
      code === 'commander.version' ||
      code === 'commander.help'
    ) {
      return;
    }
    if (code.startsWith('commander.')) {
      process.exitCode = EXIT_USAGE;
      return;
    }
    const debug = argv.includes('--debug');
    const message =
      error instanceof ProxyTierError
        ? `${error.code}: ${error.message}`
        : error instanceof Error
          ? error.message
          : String(error);
    process.stderr.write(
      `proxytier: ${debug && error instanceof Error ? (error.stack ?? message) : message}\n`,
    );
    process.exitCode = EXIT_FAILURE;
  }
}

await main(process.argv);
