// `proxytier import <file|->`: stream a proxy list into the store.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { detectFormat, importRecords, parseProxyRecords, readHead } from '../../io/import.js';
import type { ImportFormat, ImportSummary } from '../../io/import.js';
import type { ProxyCache } from '../../proxy-cache.js';
import type { Keyring } from '../../crypto/keyring.js';
import { CliError, type Cli } from '../context.js';
import { jobProgress } from '../progress.js';
import { Option, type Command } from 'commander';
import { IMPORT_FORMATS } from '../../io/import.js';
import {
  example,
  nonNegativeInteger,
  withCommonOptions,
  type RegisterCommands,
} from '../program.js';

/** Failures listed in the text summary; `--json` lists them all. */
export const FAILURES_SHOWN = 20;

export interface ImportCommandOptions {
  format?: ImportFormat;
  source?: string;
  ttl?: number;
  keepTimes?: boolean;
}

export interface ImportResult extends ImportSummary {
  input: string;
  format: ImportFormat;
}

/** An input opened and recognised: the stream (its first bytes included) and its format. */
export interface OpenedInput {
  name: string;
  format: ImportFormat;
  stream: AsyncIterable<Buffer>;
  /** Estimated number of records, for the progress bar (files only). */
  estimate: number | undefined;
}

/**
 * Opens `file` (or standard input for `-`) and finds its format, before the store is touched: a
 * missing, empty, binary or unreadable input fails here with one line.
 */
export async function openInput(
  file: string,
  forced: ImportFormat | undefined,
): Promise<OpenedInput> {
  const name = file === '-' ? 'standard input' : file;
  let size: number | undefined;
  if (file !== '-') {
    const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
      throw new CliError(`cannot read ${file}: ${readProblem(error)}`, error.code);
    });
    if (info.isDirectory()) throw new CliError(`cannot read ${file}: it is a directory`, 'EISDIR');
    size = info.size;
  }
  const raw = file === '-' ? process.stdin : createReadStream(file);
  const opened = await readHead(raw).catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read ${name}: ${readProblem(error)}`, error.code);
  });
  if (opened.head.length === 0) {
    throw new CliError(`${name} is empty: there is nothing to import`, 'E_IMPORT_EMPTY');
  }
  // Binary content is refused even when --format names a format.
  const detected = detectFormat(file === '-' ? undefined : file, opened.head);
  const format = forced ?? detected;
  let estimate: number | undefined;
  if (size !== undefined) {
    const lines = opened.head.reduce((count, byte) => count + (byte === 10 ? 1 : 0), 0);
    estimate = Math.ceil((size * Math.max(lines, 1)) / opened.head.length);
  }
  return { name, format, stream: opened.input, estimate };
}

function readProblem(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return error.message;
  }
}

/** Parses and stores an opened input; shared by `import` and `demo`. */
export async function importInto(
  cli: Cli,
  cache: ProxyCache,
  input: OpenedInput,
  options: ImportCommandOptions,
  keyring: Keyring | undefined,
): Promise<ImportResult> {
  const items = parseProxyRecords(input.stream, {
    format: input.format,
    source: options.source,
    ttlSeconds: options.ttl,
    keyring,
  });
  const progress = jobProgress({
    label: 'importing',
    total: input.estimate,
    quiet: cli.quiet,
  });
  try {
    const summary = await importRecords(cache, items, {
      onProgress: (done) => progress.update(done),
      keepTimes: options.keepTimes === true,
      ...(options.ttl === undefined ? {} : { ttlSeconds: options.ttl }),
    });
    return { input: input.name, format: input.format, ...summary };
  } finally {
    progress.stop();
  }
}

/** The summary lines of an import: counts, then the first failures. */
export function importSummaryText(result: ImportResult): string {
  const lines = [
    `imported ${result.input} (${result.format}): ${result.loaded} loaded, ${result.updated} updated, ${result.refreshed} refreshed, ${result.skipped} skipped, ${result.failed} failed`,
  ];
  if (result.failed > 0) {
    lines.push(
      `${result.failed} ${result.failed === 1 ? 'record was' : 'records were'} not imported:`,
    );
    for (const failure of result.failures.slice(0, FAILURES_SHOWN))
      lines.push(`  ${failure.reason}`);
    const more = result.failed - FAILURES_SHOWN;
    if (more > 0) lines.push(`  ... and ${more} more (--json lists every failure)`);
  }
  return lines.join('\n');
}

export async function importCommand(
  cli: Cli,
  file: string,
  options: ImportCommandOptions,
): Promise<void> {
  if (file === '-' && process.stdin.isTTY === true) {
    cli.notice('reading proxies from the terminal; end with Ctrl-D');
  }
  // The input is opened (and refused when missing, empty or binary) before the store is.
  const input = await openInput(file, options.format);
  const { keyring } = await cli.storeKeyring();
  const result = await cli.withStore(
    (cache) => importInto(cli, cache, input, options, keyring),
    keyring,
  );
  if (cli.json) cli.outJson(result);
  else cli.out(importSummaryText(result));
  if (result.expired > 0) {
    cli.warn(
      `${result.expired} imported ${result.expired === 1 ? 'entry had' : 'entries had'} already expired: --keep-times kept ${result.expired === 1 ? 'its' : 'their'} times, so ${result.expired === 1 ? 'it is' : 'they are'} stored but not served (import without --keep-times to fetch ${result.expired === 1 ? 'it' : 'them'} now)`,
    );
  }
  const stored = result.loaded + result.updated + result.refreshed + result.skipped;
  if (result.failed > 0 && stored === 0) {
    throw new CliError(
      `none of the ${result.failed} records of ${result.input} could be imported (first: ${result.failures[0]?.reason ?? '?'})`,
      'E_IMPORT_NOTHING',
    );
  }
  if (result.failed > 0) {
    cli.notice(
      `${result.failed} of ${result.failed + stored} records failed; the others were imported`,
    );
  }
}

/** Registers the `import` command on the program. */
export const register: RegisterCommands = (program, cli) => {
  withCommonOptions(
    program
      .command('import')
      .description('import proxies from a CSV, JSON, JSONL or text file (or - for standard input)')
      .argument('<file>', 'the file to import, or - for standard input')
      .addOption(
        new Option(
          '--format <format>',
          'the input format (default: from the file extension, else the content)',
        ).choices(IMPORT_FORMATS),
      )
      .option('--source <name>', 'the source of records that name none (default: manual)')
      .option(
        '--ttl <seconds>',
        "the TTL of the imported records (default: each record's own, else the store's, 3600)",
        nonNegativeInteger('--ttl'),
      )
      .option(
        '--keep-times',
        'keep the fetch time and expiry that records state (an export); by default every record is fetched now',
      ),
  )
    .addHelpText(
      'after',
      `${example('proxytier import proxies.csv --source provider-a --ttl 86400', 'curl -s https://example.com/list.txt | proxytier import - --format text')}
Prints loaded / updated / skipped / failed, with the line and reason of each failed record
(the first 20; --json lists all). Exit 0 when the input was read, even if some records failed;
1 when nothing could be read (a missing, empty or binary file, or every record failed).
`,
    )
    .action((file: string, options: ImportCommandOptions, command: Command) =>
      importCommand(cli(command), file, options),
    );
};
