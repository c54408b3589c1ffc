// Runs the built command-line tool as a user would: `node dist/cli/main.js ...` in a child
// process, with a temporary HOME, store and key file, so nothing touches the real home.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** `npm test` builds first; the tests run what a user runs. */
export const CLI = resolve('dist/cli/main.js');
export const FIXTURES = resolve('test/fixtures/proxywhirl');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the child's standard input (then closed). */
  input?: string | Buffer;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Leave out the `--dir <store>` the sandbox adds first. */
  noDir?: boolean;
}

/** A temporary home with a store directory and a key file path. */
export interface Sandbox {
  root: string;
  store: string;
  keyFile: string;
  env: Record<string, string>;
  /** Runs `proxytier --dir <store> ...args`. */
  run(args: string[], options?: RunOptions): Promise<RunResult>;
  /** Starts it without waiting (for killing it part-way). */
  start(args: string[], options?: RunOptions): ChildProcess;
  /** `run` that expects exit code 0 and parses standard output as JSON. */
  json<T = unknown>(args: string[], options?: RunOptions): Promise<T>;
  path(...parts: string[]): string;
  cleanup(): Promise<void>;
}

export async function sandbox(): Promise<Sandbox> {
  const root = await mkdtemp(join(tmpdir(), 'proxytier-cli-'));
  const store = join(root, 'store');
  const keyFile = join(root, 'key');
  // Only PATH is inherited: no XDG_CONFIG_HOME / XDG_DATA_HOME, no key variables.
  const env = { PATH: process.env['PATH'] ?? '', HOME: root, PROXYTIER_KEY_FILE: keyFile };
  const argsFor = (args: string[], options: RunOptions) =>
    options.noDir === true ? [CLI, ...args] : [CLI, '--dir', store, ...args];
  const start = (args: string[], options: RunOptions = {}): ChildProcess => {
    const child = spawn(process.execPath, argsFor(args, options), {
      cwd: root,
      env: { ...env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin?.end(options.input ?? '');
    return child;
  };
  const run = (args: string[], options: RunOptions = {}): Promise<RunResult> =>
    new Promise((done, fail) => {
      const child = start(args, options);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', fail);
      child.on('close', (code, signal) =>
        done({
          code,
          signal,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        }),
      );
    });
  return {
    root,
    store,
    keyFile,
    env,
    run,
    start,
    async json<T>(args: string[], options?: RunOptions): Promise<T> {
      const result = await run([...args, '--json'], options);
      if (result.code !== 0) {
        throw new Error(`proxytier ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
      }
      return JSON.parse(result.stdout) as T;
    },
    path: (...parts) => join(root, ...parts),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

/** An exported record (`export --format json`), as loose JSON. */
export type ExportedRecord = Record<string, unknown> & { key: string };

/** Every live entry of the store, by key, as `export --secrets plain --format json` writes it. */
export async function plainExport(
  box: Sandbox,
  extra: string[] = [],
  env?: Record<string, string>,
): Promise<Map<string, ExportedRecord>> {
  const result = await box.run(
    ['export', '--secrets', 'plain', '--format', 'json', ...extra],
    env === undefined ? {} : { env },
  );
  if (result.code !== 0) throw new Error(`export failed: ${result.stderr}`);
  const records = JSON.parse(result.stdout) as ExportedRecord[];
  return new Map(records.map((record) => [record.key, record]));
}

/** Standard error's lines, without empty ones. */
export function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}
