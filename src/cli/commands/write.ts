// The commands that change entries from a shell script: delete, clear, report-failure and
// check-result. Each is one call of the library on the store under --dir, which must exist.
import type { HealthCheckStatus } from '../../tiers/tier.js';
import { CliError, UsageError, type Cli } from '../context.js';
import { entriesWord, redactedRecords } from '../format.js';
import { describeTarget, keyOf, noLiveEntry } from './inspect.js';
import { Option, type Command } from 'commander';
import {
  example,
  nonNegativeInteger,
  withCommonOptions,
  type RegisterCommands,
} from '../program.js';

// ---------------------------------------------------------------- delete

/** Deletes each entry named; exit 1 (`E_NOT_FOUND`) when some were not there, after the others. */
export async function deleteCommand(cli: Cli, targets: string[]): Promise<void> {
  const { deleted, missing } = await cli.withExistingStore(async (cache) => {
    const done = { deleted: [] as string[], missing: [] as string[] };
    for (const target of targets) {
      const key = await keyOf(cache, target);
      if (await cache.delete(key)) done.deleted.push(key);
      else done.missing.push(describeTarget(target, key));
    }
    return done;
  });
  if (cli.json) cli.outJson({ deleted, missing });
  else cli.out(`deleted ${deleted.length} of ${targets.length} ${entriesWord(targets.length)}`);
  if (missing.length > 0) {
    throw new CliError(`no entry for ${missing.join(', ')}`, 'E_NOT_FOUND');
  }
}

// ---------------------------------------------------------------- clear

/** Removes every entry; refuses (a usage error) without `--yes`. */
export interface ClearOptions {
  yes?: boolean;
}

export async function clearCommand(cli: Cli, options: ClearOptions): Promise<void> {
  if (options.yes !== true) {
    throw new UsageError(
      `clear removes every entry of the store in ${cli.dir}; run it again with --yes to confirm`,
    );
  }
  const removed = await cli.withExistingStore(async (cache) => {
    // The command's store is one persistent tier (no memory tier in front): its count is all.
    const before = (await cache.stats()).tiers[0]?.entries ?? 0;
    await cache.clear();
    return before;
  });
  if (cli.json) cli.outJson({ removed });
  else cli.out(`removed ${removed} ${entriesWord(removed)} from ${cli.dir}`);
}

// ---------------------------------------------------------------- report-failure

export interface ReportFailureOptions {
  error?: string;
}

/** Records one failed use of a proxy, as `cache.reportFailure` does. */
export async function reportFailureCommand(
  cli: Cli,
  target: string,
  options: ReportFailureOptions,
): Promise<void> {
  const report = await cli.withExistingStore(async (cache) => {
    const key = await keyOf(cache, target);
    const result = await cache.reportFailure(
      key,
      options.error === undefined ? {} : { error: options.error },
    );
    if (result === undefined) throw noLiveEntry(target, key);
    return result;
  });
  if (cli.json) {
    cli.outJson(report);
    return;
  }
  cli.out(
    report.evicted
      ? `failure ${report.failureCount} recorded for ${report.key}: the threshold is reached, the entry was evicted`
      : `failure ${report.failureCount} recorded for ${report.key}`,
  );
}

// ---------------------------------------------------------------- check-result

export interface CheckResultOptions {
  status: HealthCheckStatus;
  ms?: number;
  url: string;
  error?: string;
}

/** Records the result of a health check made outside proxytier, as `recordHealthCheck` does. */
export async function checkResultCommand(
  cli: Cli,
  target: string,
  options: CheckResultOptions,
): Promise<void> {
  const entry = await cli.withExistingStore(async (cache) => {
    const key = await keyOf(cache, target);
    const updated = await cache.recordHealthCheck(key, {
      status: options.status,
      checkUrl: options.url,
      ...(options.ms === undefined ? {} : { responseTimeMs: options.ms }),
      ...(options.error === undefined ? {} : { error: options.error }),
    });
    if (updated === undefined) throw noLiveEntry(target, key);
    return updated;
  });
  if (cli.json) {
    const [record] = await redactedRecords([entry]);
    cli.outJson(record);
    return;
  }
  cli.out(
    `${options.status} check recorded for ${entry.key}: now ${entry.healthStatus} (${entry.totalHealthChecks} checks, ${entry.totalHealthCheckFailures} failed)`,
  );
}

/** Registers the commands that change entries: `delete`, `clear`, `report-failure`, `check-result` on the program. */
export const register: RegisterCommands = (program, cli) => {
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
    .action((options: ClearOptions, command: Command) => clearCommand(cli(command), options));
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
    .action((target: string, options: ReportFailureOptions, command: Command) =>
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
};
