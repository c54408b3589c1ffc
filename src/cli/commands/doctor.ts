// `proxytier doctor`: what is wrong with the store and its key, and how to fix it.
import { ENV_SOURCE_VARIABLES } from '../../crypto/key-source.js';
import { diagnose, type Diagnosis } from '../../doctor.js';
import { CliError, type Cli } from '../context.js';
import { table } from '../format.js';
import type { Command } from 'commander';
import { example, withCommonOptions, type RegisterCommands } from '../program.js';

export async function doctorCommand(cli: Cli): Promise<void> {
  const diagnosis = await diagnose({
    dir: cli.dir,
    ...(cli.options.keyFile === undefined ? {} : { keyFile: cli.options.keyFile }),
  });
  if (cli.json) cli.outJson(diagnosis);
  else cli.out(doctorText(diagnosis));
  const errors = diagnosis.problems.filter((problem) => problem.severity === 'error').length;
  if (errors > 0) {
    throw new CliError(
      `doctor found ${errors} ${errors === 1 ? 'error' : 'errors'}${cli.json ? '' : ' (listed above)'}`,
      'E_DOCTOR',
    );
  }
}

function doctorText({ checks, problems }: Diagnosis): string {
  const lines: string[] = [];
  lines.push(`store     ${checks.dir.path}${checks.dir.exists ? '' : ' (does not exist)'}`);
  if (checks.key.found) {
    const where =
      checks.key.source === 'key-file'
        ? `key file ${checks.key.keyFile ?? ''}`
        : checks.key.source === 'env' || checks.key.source === 'proxywhirl-env'
          ? ENV_SOURCE_VARIABLES[checks.key.source].key
          : String(checks.key.source);
    const [current, ...previous] = checks.key.fingerprints;
    lines.push(
      `key       ${where}, fingerprint ${current ?? '?'}${previous.length === 0 ? '' : ` (+${previous.length} previous: ${previous.join(', ')})`}`,
    );
  } else {
    lines.push('key       none found');
  }
  if (checks.tokens !== undefined) {
    const { current, previous, unreadable } = checks.tokens;
    lines.push(
      `tokens    ${current} under the current key, ${previous} under a previous key, ${unreadable} unreadable`,
    );
  }
  if (checks.tiers.length > 0) {
    lines.push('');
    lines.push(
      table(
        ['TIER', 'ENTRIES', 'ANSWERS', 'DEGRADED'],
        checks.tiers.map((tier) => [
          tier.name,
          tier.entries === undefined ? '?' : String(tier.entries),
          tier.answers ? 'yes' : 'no',
          tier.degraded ? 'yes' : 'no',
        ]),
      ),
    );
  }
  const loose = checks.modes.filter((mode) => !mode.ok).length;
  lines.push('');
  lines.push(`modes     ${checks.modes.length} files and directories checked, ${loose} too open`);
  lines.push('');
  if (problems.length === 0) {
    lines.push('no problems found');
  } else {
    for (const problem of problems) {
      lines.push(`${problem.severity}: ${problem.what}`);
      lines.push(`  fix: ${problem.fix}`);
    }
  }
  return lines.join('\n');
}

/** Registers the `doctor` command on the program. */
export const register: RegisterCommands = (program, cli) => {
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
};
