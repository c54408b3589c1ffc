// `proxytier export [file|-]`: write every stored entry as JSONL, CSV or a JSON array.
import type { Writable } from 'node:stream';
import { exportRecords, type ExportFormat, type SecretsMode } from '../../io/export.js';
import type { ProxyCache } from '../../proxy-cache.js';
import type { Keyring } from '../../crypto/keyring.js';
import { writeFileAtomically } from '../atomic-file.js';
import type { Cli } from '../context.js';
import { entriesWord } from '../format.js';
import { jobProgress } from '../progress.js';
import { Option, type Command } from 'commander';
import { EXPORT_FORMATS, SECRETS_MODES } from '../../io/export.js';
import { example, withCommonOptions, type RegisterCommands } from '../program.js';

export interface ExportCommandOptions {
  format?: ExportFormat;
  secrets: SecretsMode;
  includeExpired?: boolean;
}

const BY_EXTENSION: Readonly<Record<string, ExportFormat>> = {
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  json: 'json',
  csv: 'csv',
};

/** The format a file name asks for (`.csv`, `.json`, `.jsonl`/`.ndjson`), else JSONL. */
export function exportFormatFor(file: string | undefined): ExportFormat {
  const extension = /\.([a-z0-9]+)$/i.exec(file ?? '')?.[1]?.toLowerCase();
  return (extension === undefined ? undefined : BY_EXTENSION[extension]) ?? 'jsonl';
}

export async function exportCommand(
  cli: Cli,
  file: string | undefined,
  options: ExportCommandOptions,
): Promise<void> {
  const toStdout = file === undefined || file === '-';
  const format = options.format ?? exportFormatFor(toStdout ? undefined : file);
  const destination = toStdout ? 'standard output' : file;
  if (options.secrets === 'plain') {
    cli.warn(
      `--secrets plain writes every credential in clear to ${destination}; treat it as a secret and delete it when done`,
    );
  }
  cli.assertStoreExists();
  const { keyring } = await cli.storeKeyring();
  const { exported } = await cli.withStore(async (cache) => {
    const write = (output: Writable) => writeEntries(cli, cache, output, format, options, keyring);
    return toStdout ? write(process.stdout) : writeFileAtomically(file, write);
  }, keyring);
  const summary = {
    exported,
    file: toStdout ? null : file,
    format,
    secrets: options.secrets,
    includeExpired: options.includeExpired === true,
  };
  if (toStdout) {
    // Standard output holds the data: the count goes to standard error.
    cli.notice(
      `exported ${exported} ${entriesWord(exported)} (${format}, secrets ${options.secrets})`,
    );
  } else if (cli.json) {
    cli.outJson(summary);
  } else {
    cli.out(
      `exported ${exported} ${entriesWord(exported)} to ${file} (${format}, secrets ${options.secrets})`,
    );
  }
}

async function writeEntries(
  cli: Cli,
  cache: ProxyCache,
  output: Writable,
  format: ExportFormat,
  options: ExportCommandOptions,
  keyring: Keyring,
): Promise<{ exported: number }> {
  const total = cli.quiet ? undefined : await storedEntries(cache);
  const progress = jobProgress({ label: 'exporting', total: total ?? 0, quiet: cli.quiet });
  try {
    // entries() changes no statistics and no access time.
    return await exportRecords(
      cache.entries({ includeExpired: options.includeExpired === true }),
      output,
      {
        format,
        secrets: options.secrets,
        keyring,
        onProgress: (done) => progress.update(done),
      },
    );
  } finally {
    progress.stop();
  }
}

/** How many entries the store holds (expired ones included), for the progress bar. */
async function storedEntries(cache: ProxyCache): Promise<number | undefined> {
  if (process.stderr.isTTY !== true) return undefined;
  const stats = await cache.stats();
  return Math.max(0, ...stats.tiers.map((tier) => tier.entries ?? 0));
}

/** Registers the `export` command on the program. */
export const register: RegisterCommands = (program, cli) => {
  withCommonOptions(
    program
      .command('export')
      .description('export every stored entry as JSONL, CSV or a JSON array')
      .argument(
        '[file]',
        'the file to write (atomically, mode 0600); - or none for standard output',
      )
      .addOption(
        new Option(
          '--format <format>',
          'the output format (default: from the file extension, else jsonl)',
        ).choices(EXPORT_FORMATS),
      )
      .addOption(
        new Option(
          '--secrets <mode>',
          'how credentials are written: left out, as Fernet tokens under the store key, or in clear',
        )
          .choices(SECRETS_MODES)
          .default('redacted'),
      )
      .option(
        '--include-expired',
        'also export entries whose TTL ran out but that are still stored',
      ),
  )
    .addHelpText(
      'after',
      `${example('proxytier export pool.csv', 'proxytier export --secrets encrypted backup.jsonl', 'proxytier export --secrets plain --format json - | jq .')}
Export reads the store without changing statistics or access times. "plain" writes every
credential in clear (a warning says so); "encrypted" writes tokens that an import with the same
key restores. Exported then imported, every field comes back as it was.
`,
    )
    .action((file: string | undefined, options: ExportCommandOptions, command: Command) =>
      exportCommand(cli(command), file, options),
    );
};
