// `proxytier migrate <proxywhirl-cache-dir>`: import a proxywhirl cache (JSONL shards, the L2
// database, the L3 database with its health history) into the store.
import { stat } from 'node:fs/promises';
import { KEY_VARIABLES, resolveKeyring } from '../../crypto/key-source.js';
import { migrateProxywhirl, type MigrationReport } from '../../migrate.js';
import { CliError, UsageError, type Cli } from '../context.js';
import { jobProgress } from '../progress.js';
import { FAILURES_SHOWN } from './import.js';
import type { Command } from 'commander';
import { example, withCommonOptions, type RegisterCommands } from '../program.js';

const PW_KEY = KEY_VARIABLES.proxywhirlKey;
const PW_PREVIOUS = KEY_VARIABLES.proxywhirlPreviousKeys;

export interface MigrateCommandOptions {
  /** proxywhirl's key file (not the store's: that is the global `--key-file`). */
  keyFile?: string;
}

/**
 * The keyring that decrypts proxywhirl's credentials: from `--key-file`, else from proxywhirl's
 * own variables. Nothing else is consulted (the store's key is a different key) and nothing is
 * created.
 */
async function proxywhirlKeyring(cli: Cli, keyFile: string | undefined) {
  if (keyFile !== undefined) {
    await stat(keyFile).catch((error: NodeJS.ErrnoException) => {
      throw new CliError(
        `cannot read proxywhirl's key file ${keyFile}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`,
        error.code,
      );
    });
    return (await resolveKeyring({ keyFile, env: {}, logger: cli.logger, create: false })).keyring;
  }
  const key = process.env[PW_KEY];
  if (key === undefined || key.trim() === '') {
    throw new UsageError(
      `migrate needs proxywhirl's key to read the stored credentials: pass --key-file <proxywhirl key file> or set ${PW_KEY}`,
    );
  }
  const env = { [PW_KEY]: key, [PW_PREVIOUS]: process.env[PW_PREVIOUS] };
  return (await resolveKeyring({ env, logger: cli.logger, create: false })).keyring;
}

export async function migrateCommand(
  cli: Cli,
  sourceDir: string,
  options: MigrateCommandOptions,
): Promise<void> {
  const info = await stat(sourceDir).catch((error: NodeJS.ErrnoException) => {
    throw new CliError(
      `cannot read ${sourceDir}: ${error.code === 'ENOENT' ? 'no such directory' : error.message}`,
      error.code,
    );
  });
  if (!info.isDirectory()) {
    throw new CliError(
      `${sourceDir} is not a directory: give proxywhirl's cache directory`,
      'ENOTDIR',
    );
  }
  const source = await proxywhirlKeyring(cli, options.keyFile);
  const { keyring } = await cli.storeKeyring();
  const report = await cli.withStore(async (cache) => {
    const progress = jobProgress({
      label: 'migrating',
      total: undefined,
      quiet: cli.quiet,
    });
    try {
      return await migrateProxywhirl(cache, sourceDir, {
        keyring: source,
        onProgress: (done) => progress.update(done),
      });
    } finally {
      progress.stop();
    }
  }, keyring);
  if (cli.json) cli.outJson(report);
  else cli.out(migrationText(report));
  checkOutcome(cli, report);
}

function migrationText(report: MigrationReport): string {
  const lines: string[] = [];
  let listed = 0;
  let unlisted = 0;
  for (const source of report.sources) {
    const { loaded, updated, skipped, failed } = source.entries;
    const history =
      source.history === undefined
        ? ''
        : `; health history: ${source.history.imported} imported, ${source.history.skipped} skipped`;
    lines.push(
      `${source.path} (${source.kind}): ${loaded} loaded, ${updated} updated, ${skipped} skipped, ${failed} failed${history}`,
    );
    // Records whose credentials the key cannot open all fail for one reason: counted, not listed.
    const undecryptable = source.failures.filter((failure) => isDecryptFailure(failure.reason));
    if (undecryptable.length > 0) {
      lines.push(`  ${undecryptable.length} with credentials that proxywhirl's key cannot decrypt`);
    }
    for (const failure of source.failures) {
      if (isDecryptFailure(failure.reason)) continue;
      if (listed < FAILURES_SHOWN) {
        lines.push(`  ${failure.reason}`);
        listed += 1;
      } else {
        unlisted += 1;
      }
    }
  }
  if (unlisted > 0) lines.push(`  ... and ${unlisted} more failures (--json lists them all)`);
  for (const file of report.unread) lines.push(`${file.path}: not read: ${file.reason}`);
  return lines.join('\n');
}

function isDecryptFailure(reason: string): boolean {
  return /E_DECRYPT|cannot be decrypted/.test(reason);
}

/** A wrong key, or nothing migrated at all, fails the command (after the report is printed). */
function checkOutcome(cli: Cli, report: MigrationReport): void {
  let failed = 0;
  let stored = 0;
  let undecryptable = 0;
  for (const source of report.sources) {
    const { loaded, updated, skipped } = source.entries;
    failed += source.entries.failed;
    stored += loaded + updated + skipped;
    undecryptable += source.failures.filter((failure) => isDecryptFailure(failure.reason)).length;
  }
  if (undecryptable > 0) {
    throw new CliError(
      `${undecryptable} ${undecryptable === 1 ? 'record' : 'records'} could not be decrypted with proxywhirl's key: is it the key of this cache? (--key-file, or ${PW_KEY} with ${PW_PREVIOUS})`,
      'E_DECRYPT',
    );
  }
  if (failed > 0 && stored === 0) {
    throw new CliError(`none of the ${failed} records could be migrated`, 'E_MIGRATE');
  }
  if (failed > 0) cli.notice(`${failed} records failed; the others were migrated`);
}

/** Registers the `migrate` command on the program. */
export const register: RegisterCommands = (program, cli) => {
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
    .action((dir: string, options: MigrateCommandOptions, command: Command) =>
      migrateCommand(cli(command, true), dir, options),
    );
};
