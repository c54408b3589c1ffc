// `proxytier demo [file]` (what `npm start` runs): import the example pool into the store, read it
// back, and print the statistics and the healthiest entries.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cli } from '../context.js';
import { redactedRecords } from '../format.js';
import { importInto, importSummaryText, openInput } from './import.js';
import { listTable, statsTable } from './inspect.js';
import type { Command } from 'commander';
import { example, withCommonOptions, type RegisterCommands } from '../program.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The example pool shipped with the package. */
export const EXAMPLE_FILE = join(packageRoot, 'examples', 'proxies.txt');

const SHOWN = 10;

export async function demoCommand(cli: Cli, file: string): Promise<void> {
  const input = await openInput(file, undefined);
  const { keyring } = await cli.storeKeyring();
  await cli.withStore(async (cache) => {
    // Re-running the demo finds the same proxies: they count as skipped, nothing is duplicated.
    const imported = await importInto(cli, cache, input, { source: 'example' }, keyring);
    // Read every example proxy back (hits), and one key that is not there (a miss).
    const examples = await cache.query({ source: 'example' });
    let hits = 0;
    for (const entry of examples) if ((await cache.get(entry.key)) !== undefined) hits += 1;
    await cache.get('0000000000000000');
    const stats = await cache.stats();
    const healthiest = await cache.query({ orderBy: 'successRate', limit: SHOWN });
    if (cli.json) {
      cli.outJson({
        store: cli.dir,
        import: imported,
        readBack: hits,
        stats,
        healthiest: await redactedRecords(healthiest),
      });
      return;
    }
    cli.out(`store: ${cli.dir}`);
    cli.out(importSummaryText(imported));
    cli.out(`read back ${hits} of ${examples.length} example proxies, and one absent key`);
    cli.out('');
    cli.out(statsTable(stats));
    cli.out(`\nthe healthiest entries (credentials are never printed):`);
    cli.out(listTable(healthiest, Date.now(), undefined));
    cli.out('\nnext: proxytier list, proxytier stats, proxytier doctor, proxytier --help');
  }, keyring);
}

/** Registers the `demo` command on the program. */
export const register: RegisterCommands = (program, cli) => {
  withCommonOptions(
    program
      .command('demo')
      .description(
        'import the example proxy pool into the store, read it back, print statistics and the healthiest entries',
      )
      .argument(
        '[file]',
        'a proxy list (default: the example pool shipped with proxytier)',
        EXAMPLE_FILE,
      ),
  )
    .addHelpText('after', example('proxytier demo', 'proxytier demo --dir /tmp/proxytier-demo'))
    .action((file: string, _options: unknown, command: Command) => demoCommand(cli(command), file));
};
