#!/usr/bin/env node
// The proxytier command-line tool. Each command is a thin layer over the library: see
// docs/cli.md for every command, its options and the exit codes.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { describeError } from '../describe-error.js';
import { register as registerDemo } from './commands/demo.js';
import { register as registerDoctor } from './commands/doctor.js';
import { register as registerExport } from './commands/export.js';
import { register as registerImport } from './commands/import.js';
import { register as registerInspect } from './commands/inspect.js';
import { register as registerKey } from './commands/key.js';
import { register as registerMigrate } from './commands/migrate.js';
import { register as registerWrite } from './commands/write.js';
import { Cli, UsageError, type GlobalOptions } from './context.js';
import { example, withCommonOptions, type RegisterCommands } from './program.js';

/** Exit codes (docs/cli.md): 0 success, 1 failure, 2 usage error. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Every command file, in the order `--help` lists their commands. */
const COMMANDS: readonly RegisterCommands[] = [
  registerImport,
  registerExport,
  registerInspect,
  registerWrite,
  registerDoctor,
  registerMigrate,
  registerKey,
  registerDemo,
];

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function version(): string {
  const text = readFileSync(join(packageRoot, 'package.json'), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
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

  for (const register of COMMANDS) register(program, cli);

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
