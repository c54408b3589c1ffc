#!/usr/bin/env node
// The proxytier command-line tool. Each command is a thin layer over the library: see
// docs/cli.md for every command, its options and the exit codes.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { KEY_VARIABLES } from '../crypto/key-source.js';
import { HEALTH_STATUSES } from '../record/entry.js';
import { QUERY_ORDERS } from '../query.js';
import { IMPORT_FORMATS, type ImportFormat } from '../io/import.js';
import {
  EXPORT_FORMATS,
  SECRETS_MODES,
  type ExportFormat,
  type SecretsMode,
} from '../io/export.js';
import type { ProxyQueryOrder } from '../tiers/tier.js';
import type { HealthStatus } from '../record/entry.js';
import { describeError } from '../describe-error.js';
import { Cli, UsageError, type GlobalOptions } from './context.js';
import { demoCommand, EXAMPLE_FILE } from './commands/demo.js';
import { doctorCommand } from './commands/doctor.js';
import { exportCommand } from './commands/export.js';
import { importCommand } from './commands/import.js';
import {
  cleanupCommand,
  compactCommand,
  getCommand,
  historyCommand,
  listCommand,
  parseHealth,
  parseSince,
  statsCommand,
} from './commands/inspect.js';
import { keyGenerateCommand, keyRotateCommand } from './commands/key.js';
import { migrateCommand } from './commands/migrate.js';
import {
  checkResultCommand,
  clearCommand,
  deleteCommand,
  reportFailureCommand,
  type CheckResultOptions,
} from './commands/write.js';

/** Exit codes (docs/cli.md): 0 success, 1 failure, 2 usage error. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function version(): string {
  const text = readFileSync(join(packageRoot, 'package.json'), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

const DIR_HELP =
  'the store directory (default: $PROXYTIER_DIR, else $XDG_DATA_HOME/proxytier, else ~/.local/share/proxytier)';
const KEY_FILE_HELP = `the store's key file; wins over the environment (default: ${KEY_VARIABLES.key}, ${KEY_VARIABLES.proxywhirlKey}, then $${KEY_VARIABLES.keyFile}, else ~/.config/proxytier/key)`;

function positiveInteger(name: string) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < 1) {
      throw new InvalidArgumentError(`${name} must be a positive integer.`);
    }
    return number;
  };
}

function nonNegativeInteger(name: string) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number)) {
      throw new InvalidArgumentError(`${name} must be a non-negative integer.`);
    }
    return number;
  };
}

function example(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}

/** The options every command accepts after its name too (they win over those before it). */
function withCommonOptions(command: Command, options: { keyFile?: boolean } = {}): Command {
  command.option('--dir <path>', DIR_HELP);
  if (options.keyFile !== false) command.option('--key-file <path>', KEY_FILE_HELP);
  return command
    .option('--json', 'print one JSON document on standard output')
    .option('--quiet', 'no progress bar and no notices (warnings and errors still show)')
    .option('--debug', 'print the stack trace of an error');
}

/** Builds the program; `run` turns each action's options into a `Cli`. */
export function buildProgram(): Command {
  const program = new Command('proxytier');
  program
    .description('A multi-tier, encrypted, crash-safe cache of proxy records')
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(`proxytier: ${oneLine(text)}\n`),
    });
  withCommonOptions(program);
  program.addHelpText(
    'after',
    `${example('proxytier import proxies.csv', 'proxytier list --health healthy --limit 10', 'proxytier export --secrets encrypted backup.jsonl')}
Options given before the command apply to it; those after it win. Exit codes: 0 success,
1 failure, 2 usage error. Documentation: docs/cli.md.
`,
  );

  // An option after the command wins over the same option before it. For `migrate`, whose own
  // --key-file names proxywhirl's key, the store's key file is only the one before the command.
  const cli = (command: Command, storeKeyFileOnly = false): Cli => {
    const global = program.opts<GlobalOptions>();
    const local = command.opts<GlobalOptions>();
    const pick = <K extends keyof GlobalOptions>(name: K): GlobalOptions[K] =>
      local[name] ?? global[name];
    return new Cli({
      dir: pick('dir'),
      keyFile: storeKeyFileOnly ? global.keyFile : pick('keyFile'),
      json: pick('json'),
      quiet: pick('quiet'),
      debug: pick('debug'),
    });
  };

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
    .action(
      (
        file: string,
        options: { format?: ImportFormat; source?: string; ttl?: number; keepTimes?: boolean },
        command: Command,
      ) => importCommand(cli(command), file, options),
    );

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
    .action(
      (
        file: string | undefined,
        options: { format?: ExportFormat; secrets: SecretsMode; includeExpired?: boolean },
        command: Command,
      ) => exportCommand(cli(command), file, options),
    );

  withCommonOptions(
    program
      .command('get')
      .description('show one entry (credentials as yes/no), by key or proxy URL')
      .argument('<key|url>', 'a cache key (16 hex digits) or a proxy URL'),
  )
    .addHelpText(
      'after',
      example('proxytier get 5767fc14bc03465a', 'proxytier get socks5://198.51.100.7:1080 --json'),
    )
    .action((target: string, _options: unknown, command: Command) =>
      getCommand(cli(command), target),
    );

  withCommonOptions(
    program
      .command('list')
      .description('list entries as a table: key, url, source, health, expires in, credentials')
      .option(
        '--health <status...>',
        `only these health statuses (${HEALTH_STATUSES.join(', ')}; several allowed)`,
        (value: string, previous: HealthStatus[] | undefined) => parseHealth(value, previous),
      )
      .option('--source <name>', 'only entries of this source')
      .option('--scheme <scheme>', 'only entries of this proxy scheme (http, https, socks5, ...)')
      .option('--expired', 'only entries whose TTL ran out but that are not removed yet')
      .option('--limit <n>', 'at most this many entries', positiveInteger('--limit'), 50)
      .addOption(
        new Option(
          '--sort <order>',
          'the order: most recent access or check, best success rate, fastest response',
        )
          .choices(QUERY_ORDERS)
          .default('lastAccessed'),
      ),
  )
    .addHelpText(
      'after',
      example(
        'proxytier list --health healthy degraded --sort successRate --limit 20',
        'proxytier list --source provider-a --scheme socks5',
        'proxytier list --expired',
      ),
    )
    .action(
      (
        options: {
          health?: HealthStatus[];
          source?: string;
          scheme?: string;
          expired?: boolean;
          limit: number;
          sort: ProxyQueryOrder;
        },
        command: Command,
      ) => listCommand(cli(command), options),
    );

  withCommonOptions(
    program.command('stats').description('entries, hits, misses, evictions and state of each tier'),
  )
    .addHelpText(
      'after',
      `${example('proxytier stats', 'proxytier stats --json')}
Hits, misses and evictions are counted by the process that makes them: a fresh proxytier process
starts at zero, so this command mostly shows how many entries each tier holds. A program using
the library sees its own counters with cache.stats().
`,
    )
    .action((_options: unknown, command: Command) => statsCommand(cli(command)));

  withCommonOptions(
    program
      .command('history')
      .description('the health checks of one proxy, newest first')
      .argument('<key|url>', 'a cache key or a proxy URL')
      .option('--limit <n>', 'at most this many checks', positiveInteger('--limit'), 20)
      .option(
        '--since <time>',
        'only checks at or after this ISO 8601 time (UTC without an offset)',
        (value: string) => {
          try {
            return parseSince(value);
          } catch (error) {
            throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
          }
        },
      ),
  )
    .addHelpText(
      'after',
      example(
        'proxytier history http://192.0.2.10:8080 --since 2026-11-01T00:00:00Z',
        'proxytier history daa6883de3b5ea2d --limit 5 --json',
      ),
    )
    .action((target: string, options: { limit: number; since?: number }, command: Command) =>
      historyCommand(cli(command), target, options),
    );

  withCommonOptions(
    program
      .command('delete')
      .description('delete entries by key or proxy URL')
      .argument('<key|url...>', 'cache keys or proxy URLs'),
  )
    .addHelpText(
      'after',
      `${example('proxytier delete 5767fc14bc03465a http://192.0.2.10:8080')}
Exit 1 (E_NOT_FOUND) when one of them was not there; the others are deleted.
`,
    )
    .action((targets: string[], _options: unknown, command: Command) =>
      deleteCommand(cli(command), targets),
    );

  withCommonOptions(
    program
      .command('clear')
      .description('remove every entry of the store (asks for --yes)')
      .option('--yes', 'confirm: without it nothing is removed'),
  )
    .addHelpText('after', example('proxytier clear --yes'))
    .action((options: { yes?: boolean }, command: Command) => clearCommand(cli(command), options));

  withCommonOptions(
    program
      .command('report-failure')
      .description('record a failed use of a proxy; at the threshold it is evicted')
      .argument('<key|url>', 'a cache key or a proxy URL')
      .option('--error <text>', 'what went wrong (kept in the health history)'),
  )
    .addHelpText(
      'after',
      example('proxytier report-failure http://192.0.2.10:8080 --error "HTTP 403 from target"'),
    )
    .action((target: string, options: { error?: string }, command: Command) =>
      reportFailureCommand(cli(command), target, options),
    );

  withCommonOptions(
    program
      .command('check-result')
      .description('record the result of a health check made outside proxytier')
      .argument('<key|url>', 'a cache key or a proxy URL')
      .addOption(
        new Option('--status <status>', 'the result of the check')
          .choices(['healthy', 'unhealthy'])
          .makeOptionMandatory(),
      )
      .option('--ms <n>', 'its response time in milliseconds', nonNegativeInteger('--ms'))
      .option('--url <url>', 'the URL it fetched through the proxy', 'cli')
      .option('--error <text>', 'what went wrong, for a failed check'),
  )
    .addHelpText(
      'after',
      example(
        'proxytier check-result 192.0.2.10:8080 --status healthy --ms 180',
        'proxytier check-result 192.0.2.10:8080 --status unhealthy --error timeout --json',
      ),
    )
    .action((target: string, options: CheckResultOptions, command: Command) =>
      checkResultCommand(cli(command), target, options),
    );

  withCommonOptions(program.command('cleanup').description('remove the entries whose TTL ran out'))
    .addHelpText('after', example('proxytier cleanup'))
    .action((_options: unknown, command: Command) => cleanupCommand(cli(command)));

  withCommonOptions(
    program
      .command('compact')
      .description('reclaim space: checkpoint and vacuum the database, rewrite the log'),
  )
    .addHelpText('after', example('proxytier compact --json'))
    .action((_options: unknown, command: Command) => compactCommand(cli(command)));

  withCommonOptions(
    program
      .command('doctor')
      .description(
        'check the store and its key: tiers, key source, file modes, tokens under old keys',
      ),
  )
    .addHelpText(
      'after',
      `${example('proxytier doctor', 'proxytier doctor --json')}
Nothing is created or changed. Exit 1 when a problem of severity "error" was found.
`,
    )
    .action((_options: unknown, command: Command) => doctorCommand(cli(command)));

  withCommonOptions(
    program
      .command('migrate')
      .description(
        'import a proxywhirl cache directory: its JSONL shards, L2 and L3 databases and health history',
      )
      .argument('<proxywhirl-cache-dir>', "proxywhirl's cache directory")
      .option(
        '--key-file <path>',
        "proxywhirl's key file (default: PROXYWHIRL_CACHE_ENCRYPTION_KEY and PROXYWHIRL_CACHE_KEY_PREVIOUS); the store's own key file goes before the command",
      ),
    { keyFile: false },
  )
    .addHelpText(
      'after',
      `${example('proxytier migrate ~/.cache/proxywhirl --key-file ~/.cache/proxywhirl/fernet.key', 'PROXYWHIRL_CACHE_ENCRYPTION_KEY=... proxytier --key-file ~/my.key migrate ./cache')}
The source files are never written. Running it again changes nothing: identical entries are
skipped and health checks already present are not added twice.
`,
    )
    .action((dir: string, options: { keyFile?: string }, command: Command) =>
      migrateCommand(cli(command, true), dir, options),
    );

  const key = program
    .command('key')
    .description('make a new key, or rotate the store key')
    .addHelpText(
      'after',
      example('proxytier key generate --output ~/.config/proxytier/key', 'proxytier key rotate'),
    );
  withCommonOptions(
    key
      .command('generate')
      .description('print a new Fernet key, or write it to a new key file (mode 0600)')
      .option(
        '--output <file>',
        'write the key to this new file instead (an existing file is never replaced)',
      ),
  )
    .addHelpText(
      'after',
      example('proxytier key generate', 'proxytier key generate --output ./new.key'),
    )
    .action((options: { output?: string }, command: Command) =>
      keyGenerateCommand(cli(command), options),
    );
  withCommonOptions(
    key
      .command('rotate')
      .description(
        're-encrypt every stored credential under a new key (resumes an unfinished rotation)',
      )
      .option(
        '--drop-previous',
        'when every token is current, remove the old keys from the key file',
      ),
  )
    .addHelpText(
      'after',
      `${example('proxytier key rotate', 'proxytier --key-file ./store.key key rotate --drop-previous')}
The new key is written first into the key file, the old ones after it, so every credential stays
readable throughout; then each stored token is re-encrypted. If credentials are still under an
old key (an interrupted rotation), the rotation is resumed instead and no new key is made.
Needs the key to come from a key file; a key from the environment cannot be rewritten (the
error says how to rotate it).
`,
    )
    .action((options: { dropPrevious?: boolean }, command: Command) =>
      keyRotateCommand(cli(command), options),
    );

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

  return program;
}

/** Commander's messages on one line, without its `error: ` prefix. */
function oneLine(text: string): string {
  return text
    .replace(/^error: /, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
}

/** Runs the tool; resolves the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; every other commander error is a usage error (already printed).
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const debug = argv.includes('--debug');
    const message = error instanceof UsageError ? error.message : describeError(error);
    process.stderr.write(`proxytier: ${message}\n`);
    if (debug && error instanceof Error && error.stack !== undefined) {
      process.stderr.write(`${error.stack}\n`);
    }
    return error instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
}

// A reader that stops early (`proxytier export | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT_OK);
  throw error;
});

process.exitCode = await main(process.argv);
