// `npm run bench [-- --json] [-- --filter <substring>]`: runs every suite and prints each figure
// beside the reference it was measured against in the same run.
import { formatNumber, meetsBudget, progress, type Result } from './harness.js';
import { cliSuite } from './cli.js';
import { coherenceSuite } from './coherence.js';
import { jsonlSuite } from './jsonl.js';
import { l1Suite } from './l1.js';
import { sqliteSuite } from './sqlite.js';

/** Every suite, by name. A new suite is one line here. */
const SUITES: ReadonlyArray<readonly [name: string, run: () => Promise<Result[]>]> = [
  ['l1', l1Suite],
  ['l1-coherence', coherenceSuite],
  ['sqlite', sqliteSuite],
  ['jsonl', jsonlSuite],
  ['cli', cliSuite],
];

const USAGE = `usage: node --expose-gc dist-bench/bench/main.js [--json] [--filter <substring>]
  --json                one JSON object {"results":[...]} on stdout, progress on stderr
  --filter <substring>  run only the suites whose name contains <substring>
suites: ${SUITES.map(([name]) => name).join(', ')}`;

interface Args {
  json: boolean;
  filter: string | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { json: false, filter: undefined };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] as string;
    if (arg === '--json') args.json = true;
    else if (arg === '--filter') {
      const value = argv[i + 1];
      if (value === undefined) throw new UsageError('--filter needs a substring');
      args.filter = value;
      i += 1;
    } else if (arg.startsWith('--filter=')) args.filter = arg.slice('--filter='.length);
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
  }
  return args;
}

class UsageError extends Error {}

function formatValue(result: Result, value: number): string {
  return result.unit === 'ops/s'
    ? `${formatNumber(value)} ops/s`
    : `${value.toFixed(2)} ${result.unit}`;
}

function formatBudget(result: Result): string {
  if (result.budget === undefined) return '-';
  return `${result.better === 'higher' ? '>=' : '<='} ${result.budget.toFixed(2)}`;
}

function table(results: readonly Result[]): string {
  const header = ['figure', 'value', 'reference', 'reference value', 'ratio', 'budget', 'status'];
  const rows = results.map((result) => {
    const pass = meetsBudget(result);
    return [
      result.name,
      formatValue(result, result.value),
      result.reference,
      formatValue(result, result.referenceValue),
      `${result.ratio.toFixed(3)} ${result.better === 'higher' ? '(higher is better)' : '(lower is better)'}`,
      formatBudget(result),
      pass === undefined ? '-' : pass ? 'PASS' : 'FAIL',
    ];
  });
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] as string).length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] as number))
      .join('  ')
      .trimEnd();
  return [
    line(header),
    line(widths.map((width) => '-'.repeat(width))),
    ...rows.map(line),
    '',
    'ratio = value / reference value, both measured in this run (medians of interleaved rounds).',
    'Throughput (ops/s): higher is better; the budget is the lowest acceptable ratio.',
    'Heap (MB): lower is better; the budget is the highest acceptable ratio.',
    "Latency (ns, one operation timed alone): lower is better; the median of the rounds' quantile.",
  ].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (globalThis.gc === undefined) {
    throw new UsageError('run node with --expose-gc (npm run bench does): heap figures need it');
  }
  const selected = SUITES.filter(
    ([name]) => args.filter === undefined || name.includes(args.filter),
  );
  if (selected.length === 0) {
    throw new UsageError(`no suite matches ${JSON.stringify(args.filter)}\n${USAGE}`);
  }
  const started = Date.now();
  const results: Result[] = [];
  for (const [name, run] of selected) {
    progress(`suite ${name}`);
    results.push(...(await run()));
  }
  progress(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ results })}\n`);
  } else {
    process.stdout.write(`\n${table(results)}\n`);
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`bench: ${error.message}\n`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(
    `bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
