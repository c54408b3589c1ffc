// What every command shares: the global options, the logger, the store and its key, output.
import { defaultStoreDir, hasDefaultStore, openDefaultStore } from '../default-store.js';
import type { ProxyCache } from '../proxy-cache.js';
import { resolveKeyring, type ResolvedKeyring } from '../crypto/key-source.js';
import { createStderrLogger, LOG_LEVELS, type Logger, type LogLevel } from '../logger.js';
import { CliError, UsageError } from './errors.js';
import type { Keyring } from '../crypto/keyring.js';

/** Options every command takes (before or after the command name). */
export interface GlobalOptions {
  dir?: string;
  keyFile?: string;
  json?: boolean;
  quiet?: boolean;
  debug?: boolean;
}

export { CliError, UsageError } from './errors.js';

/** The command's context: its options, the logger and the output helpers. */
export class Cli {
  readonly dir: string;
  readonly logger: Logger;

  constructor(readonly options: GlobalOptions) {
    if (options.dir === '') throw new UsageError('--dir must be a directory path, got ""');
    if (options.keyFile === '') throw new UsageError('--key-file must be a file path, got ""');
    this.dir = options.dir ?? defaultStoreDir();
    const wanted = process.env['PROXYTIER_LOG_LEVEL'] ?? 'info';
    let level: LogLevel = (LOG_LEVELS as readonly string[]).includes(wanted)
      ? (wanted as LogLevel)
      : 'info';
    // --quiet keeps warnings (a loose key file, a switched-off tier) but drops notices.
    if (options.quiet === true && LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf('warn')) {
      level = 'warn';
    }
    this.logger = createStderrLogger(level);
  }

  get json(): boolean {
    return this.options.json === true;
  }

  get quiet(): boolean {
    return this.options.quiet === true;
  }

  /** Writes text to standard output. */
  out(text: string): void {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Writes one JSON document to standard output. */
  outJson(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A notice on standard error (progress of a long job, what was created); not with --quiet. */
  notice(text: string): void {
    if (!this.quiet) process.stderr.write(`proxytier: ${text}\n`);
  }

  /** A warning on standard error, shown even with --quiet. */
  warn(text: string): void {
    process.stderr.write(`proxytier: warn: ${text}\n`);
  }

  /**
   * The store's keyring. An explicit `--key-file` wins over the environment; without it the
   * library's order applies (`PROXYTIER_ENCRYPTION_KEY`, proxywhirl's variables,
   * `PROXYTIER_KEY_FILE`, `~/.config/proxytier/key`), and the key file is created when no key
   * exists anywhere.
   */
  async storeKeyring(options: { create?: boolean } = {}): Promise<ResolvedKeyring> {
    const keyFile = this.options.keyFile;
    return resolveKeyring({
      ...(keyFile === undefined ? {} : { keyFile }),
      logger: this.logger,
      create: options.create ?? true,
    });
  }

  /**
   * Opens the store under `--dir`: the default store's persistent tier (SQLite with health
   * history, or the JSONL log where better-sqlite3 is missing) without the memory tier in front
   * of it. A command runs once and exits, so a memory tier would only cost: an import larger
   * than it would mark every entry it pushed out as `evicted_from_l1` in the store (an extra
   * write each, and a field an export then no longer round-trips), and a store that fails to
   * open would leave the memory tier serving alone, silently, instead of failing the command.
   * No background sweep runs: only `cleanup` removes expired entries.
   */
  async openStore(keyring?: Keyring): Promise<ProxyCache> {
    const ring = keyring ?? (await this.storeKeyring()).keyring;
    // Its one notice (better-sqlite3 missing, the JSONL log used instead) would repeat on every
    // command: `stats` names the tier, `doctor` explains, and what needs SQLite says so.
    const quietNotices: Logger = { ...this.logger, info: () => {} };
    return openDefaultStore({
      dir: this.dir,
      memoryTier: false,
      keyring: ring,
      logger: quietNotices,
      sweepIntervalMs: 0,
    });
  }

  /**
   * For a command that only reads or tidies a store: where `--dir` holds none (a mistyped path,
   * a first run), fails with `E_NO_STORE`. Called before the key is resolved, so nothing is
   * created, no database and no key file.
   */
  assertStoreExists(): void {
    if (hasDefaultStore(this.dir)) return;
    throw new CliError(
      `no store in ${this.dir} (run "proxytier import" to create one, or check --dir)`,
      'E_NO_STORE',
    );
  }

  /** `withStore` for a store that must exist already (see `assertStoreExists`). */
  async withExistingStore<T>(
    use: (cache: ProxyCache) => Promise<T>,
    keyring?: Keyring,
  ): Promise<T> {
    this.assertStoreExists();
    return this.withStore(use, keyring);
  }

  /** Runs `use` with the store open and closes it afterwards, whatever happens. */
  async withStore<T>(use: (cache: ProxyCache) => Promise<T>, keyring?: Keyring): Promise<T> {
    const cache = await this.openStore(keyring);
    try {
      return await use(cache);
    } finally {
      await cache.close();
    }
  }
}
