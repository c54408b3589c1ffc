// `diagnose`: checks a store directory and its key, and says what is wrong and how to fix it.
// Read-only: it never creates a key, a directory or a database, and never changes an entry.
import { assertOptionsObject, rejectUnknownOptions, type OptionNames } from './option-check.js';
import { promises as fs } from 'node:fs';
import { join, dirname } from 'node:path';
import { generateFernetKey } from './crypto/fernet.js';
import { KEY_VARIABLES, resolveKeyring, type KeySource } from './crypto/key-source.js';
import { Keyring } from './crypto/keyring.js';
import { DEFAULT_DATABASE_FILE, DEFAULT_JSONL_DIR } from './default-store.js';
import { ProxyTierError } from './errors.js';
import type { Logger } from './logger.js';
import { openDefaultStore } from './default-store.js';
import { isSqliteAvailable } from './tiers/sqlite/index.js';
import type { ProxyCache, TokenReport } from './proxy-cache.js';

/** One thing wrong, with what to do about it. */
export interface DoctorProblem {
  /** `error`: something is broken or unsafe; `warning`: works, but should be looked at. */
  severity: 'error' | 'warning';
  what: string;
  fix: string;
}

/** A file or directory whose mode was checked. */
export interface ModeCheck {
  path: string;
  /** Octal, e.g. `0600`. */
  mode: string;
  /** The most open mode allowed, e.g. `0600`. */
  expected: string;
  ok: boolean;
}

/** A tier of the store as the diagnosis found it. */
export interface TierCheck {
  name: string;
  level: number;
  persistent: boolean;
  /** Entries stored, or `undefined` when the tier could not answer. */
  entries: number | undefined;
  /** True when the tier opened and answered a read and a count. */
  answers: boolean;
  degraded: boolean;
  /** Operations that failed during the diagnosis. */
  errors: number;
}

/** What was looked at. */
export interface DoctorChecks {
  dir: { path: string; exists: boolean };
  key: {
    found: boolean;
    source: KeySource | undefined;
    keyFile: string | undefined;
    /** Fingerprints (never the keys), current first. */
    fingerprints: string[];
  };
  /** Empty when the store could not be opened (or does not exist). */
  tiers: TierCheck[];
  /** Stored credential tokens by the key that made them; `undefined` when not counted. */
  tokens: TokenReport | undefined;
  modes: ModeCheck[];
}

export interface Diagnosis {
  problems: DoctorProblem[];
  checks: DoctorChecks;
}

const DIAGNOSE_OPTION_NAMES: OptionNames<DiagnoseOptions> = Object.freeze({
  dir: true,
  keyFile: true,
  env: true,
});

export interface DiagnoseOptions {
  /** The store directory (as given to `openDefaultStore({ dir })`). */
  dir: string;
  /** A key file that wins over the environment (the command line's `--key-file`). */
  keyFile?: string;
  /** The environment to read keys from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/**
 * Diagnoses the store in `dir` and its key: that each tier opens and answers, where the key comes
 * from (its fingerprint, never the key), the modes of the key file (0600) and its directory
 * (0700) and of the store's directory (0700) and files (0600), credentials still encrypted under
 * a previous key (fixed by `proxytier key rotate`) or under no known key, switched-off tiers, and
 * a store that is not read because its engine is missing. Nothing is created or changed.
 */
export async function diagnose(options: DiagnoseOptions): Promise<Diagnosis> {
  assertOptionsObject('diagnose', options, 'with "dir"');
  rejectUnknownOptions('diagnose', options, DIAGNOSE_OPTION_NAMES);
  const env = options.env ?? process.env;
  const problems: DoctorProblem[] = [];
  const messages: string[] = [];
  const checks: DoctorChecks = {
    dir: { path: options.dir, exists: false },
    key: { found: false, source: undefined, keyFile: undefined, fingerprints: [] },
    tiers: [],
    tokens: undefined,
    modes: [],
  };

  // ---- the key
  let keyring: Keyring | undefined;
  let keyProblem: string | undefined;
  try {
    const found = await resolveKeyring({
      ...(options.keyFile === undefined ? {} : { keyFile: options.keyFile }),
      env,
      logger: silent,
      create: false,
    });
    keyring = found.keyring;
    checks.key = {
      found: true,
      source: found.source,
      keyFile: found.keyFile,
      fingerprints: found.keyring.fingerprints,
    };
    if (found.keyFile !== undefined) {
      await checkMode(checks, problems, found.keyFile, 0o600, 'error', 'the key file');
      await checkMode(
        checks,
        problems,
        dirname(found.keyFile),
        0o700,
        'warning',
        "the key file's directory",
      );
    }
  } catch (error) {
    keyProblem = errorText(error);
  }

  // ---- the store directory and its files
  const dirInfo = await fs.stat(options.dir).catch(() => undefined);
  checks.dir.exists = dirInfo?.isDirectory() === true;
  if (dirInfo !== undefined && !dirInfo.isDirectory()) {
    problems.push({
      severity: 'error',
      what: `the store directory ${options.dir} is not a directory`,
      fix: 'point --dir (or PROXYTIER_DIR) at a directory, or move the file away',
    });
  } else if (dirInfo === undefined) {
    problems.push({
      severity: 'warning',
      what: `the store directory ${options.dir} does not exist`,
      fix: 'it is created by the first command that stores proxies (proxytier import); if a store should be there, check --dir and PROXYTIER_DIR',
    });
  } else {
    await checkMode(checks, problems, options.dir, 0o700, 'warning', 'the store directory');
    await checkTree(checks, problems, options.dir);
  }

  if (keyProblem !== undefined) {
    problems.push({
      severity: 'warning',
      what: `no usable encryption key: ${keyProblem}`,
      fix: `restore the key file from its backup, set ${KEY_VARIABLES.key}, or point --key-file at the key; with no key at all, one is created the first time a command stores a proxy`,
    });
  }

  // ---- the tiers, and the tokens they hold
  if (checks.dir.exists) {
    const database = await exists(join(options.dir, DEFAULT_DATABASE_FILE));
    const log = await exists(join(options.dir, DEFAULT_JSONL_DIR));
    if (!database && !log) {
      problems.push({
        severity: 'warning',
        what: `${options.dir} holds no store yet (neither ${DEFAULT_DATABASE_FILE} nor ${DEFAULT_JSONL_DIR}/)`,
        fix: 'it is created by the first command that stores proxies (proxytier import); if a store should be there, check --dir and PROXYTIER_DIR',
      });
      return { problems, checks };
    }
    await checkStore(options.dir, keyring, checks, problems, messages, keyProblem !== undefined);
  }

  return { problems, checks };
}

async function checkStore(
  dir: string,
  keyring: Keyring | undefined,
  checks: DoctorChecks,
  problems: DoctorProblem[],
  messages: string[],
  keyMissing: boolean,
): Promise<void> {
  let cache: ProxyCache;
  try {
    // Without a key, a key that exists nowhere else stands in: it decrypts nothing, so every
    // stored token counts as unreadable. It is never written anywhere and encrypts nothing.
    // Read-only: a diagnosis changes nothing, and a store under another key still opens.
    cache = await openDefaultStore({
      dir,
      keyring: keyring ?? new Keyring(generateFernetKey()),
      logger: collectingLogger(messages),
      sweepIntervalMs: 0,
      memoryTier: false,
      readOnly: true,
    });
  } catch (error) {
    problems.push({
      severity: 'error',
      what: `the store in ${dir} cannot be opened: ${errorText(error)}`,
      fix: 'check the permissions and free space of the directory; a damaged database can be moved away and the proxies imported again from an export',
    });
    return;
  }
  try {
    // A read of an absent key visits every tier; then every tier is asked for its size.
    await cache.peek('doctor-probe-0000');
    const stats = await cache.stats();
    checks.tiers = stats.tiers.map((tier, index) => ({
      name: tier.name,
      level: tier.level,
      persistent: cache.tiers[index]?.persistent === true,
      entries: tier.entries,
      answers: !tier.degraded && tier.entries !== undefined && tier.errors === 0,
      degraded: tier.degraded,
      errors: tier.errors,
    }));
    for (const tier of checks.tiers) {
      if (tier.answers) continue;
      const said = messages.filter((line) => line.includes(`"${tier.name}"`)).at(-1);
      problems.push({
        severity: 'error',
        what: `the ${tier.name} tier (L${tier.level}) ${tier.degraded ? 'is switched off' : 'does not answer'}${said === undefined ? '' : `: ${said}`}`,
        fix: `check the permissions and free space of ${dir}; a damaged file can be moved away (the other tiers keep serving) and the proxies imported again`,
      });
    }
    if (checks.tiers.some((tier) => tier.name.startsWith('jsonl'))) {
      const database = join(dir, DEFAULT_DATABASE_FILE);
      const orphan = await fs.stat(database).catch(() => undefined);
      const sqliteHere = await isSqliteAvailable();
      problems.push(
        orphan === undefined && sqliteHere
          ? {
              // A store keeps the engine it was made with (see defaultTiers): this one is a JSONL
              // store, made where better-sqlite3 was missing; nothing is missing now.
              severity: 'warning',
              what: 'this is a JSONL store (made where better-sqlite3 was missing; it is available now): no health history and no indexed queries',
              fix: `to move it to SQLite: proxytier --dir ${dir} export all.jsonl --secrets encrypted --include-expired, then proxytier --dir <new store> import all.jsonl --keep-times`,
            }
          : orphan === undefined
            ? {
                severity: 'warning',
                what: 'better-sqlite3 is not available, so the store uses the JSONL log: no health history and no indexed queries',
                fix: 'npm install better-sqlite3 (it needs a C++ toolchain where no prebuilt binary exists)',
              }
            : {
                severity: 'error',
                what: `${database} holds a SQLite store, but better-sqlite3 is not available, so it is not read (the JSONL log is used instead)`,
                fix: 'npm install better-sqlite3 (it needs a C++ toolchain where no prebuilt binary exists)',
              },
      );
    }
    const tokens = await cache.tokenReport();
    checks.tokens = tokens;
    if (tokens.previous > 0) {
      problems.push({
        severity: 'warning',
        what: `${tokens.previous} stored credential ${tokens.previous === 1 ? 'token is' : 'tokens are'} still encrypted under a previous key (an unfinished key rotation)`,
        fix: 'proxytier key rotate',
      });
    }
    if (tokens.unreadable > 0) {
      problems.push({
        severity: 'error',
        what: keyMissing
          ? `${tokens.unreadable} stored credential ${tokens.unreadable === 1 ? 'token' : 'tokens'} cannot be read: no encryption key was found`
          : `${tokens.unreadable} stored credential ${tokens.unreadable === 1 ? 'token was' : 'tokens were'} encrypted under a key this keyring does not hold`,
        fix: 'add the key that made them to the key file as a previous key (one key per line, after the current one), or import those proxies again',
      });
    }
  } catch (error) {
    problems.push({
      severity: 'error',
      what: `the store in ${dir} fails to answer: ${errorText(error)}`,
      fix: 'check the permissions and free space of the directory, then run proxytier doctor again',
    });
  } finally {
    await cache.close().catch(() => undefined);
  }
}

async function checkMode(
  checks: DoctorChecks,
  problems: DoctorProblem[],
  path: string,
  expected: number,
  severity: DoctorProblem['severity'],
  what: string,
): Promise<void> {
  if (process.platform === 'win32') return;
  const info = await fs.stat(path).catch(() => undefined);
  if (info === undefined) return;
  const mode = info.mode & 0o777;
  const ok = (mode & ~expected & 0o777) === 0;
  checks.modes.push({ path, mode: octal(mode), expected: octal(expected), ok });
  if (!ok) {
    problems.push({
      severity,
      what: `${what} ${path} has mode ${octal(mode)}: others than its owner can ${expected === 0o600 ? 'read' : 'list'} it`,
      fix: `chmod ${expected.toString(8)} ${path}`,
    });
  }
}

/** Every file under the store directory must be 0600, every directory 0700. */
async function checkTree(
  checks: DoctorChecks,
  problems: DoctorProblem[],
  dir: string,
): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      await checkMode(checks, problems, path, 0o700, 'warning', 'the store directory');
      await checkTree(checks, problems, path);
    } else if (entry.isFile()) {
      await checkMode(checks, problems, path, 0o600, 'warning', 'the store file');
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return (await fs.stat(path).catch(() => undefined)) !== undefined;
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

function errorText(error: unknown): string {
  if (error instanceof ProxyTierError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Keeps what the cache reports (a tier that failed to open says why), for the problems list. */
function collectingLogger(lines: string[]): Logger {
  const keep = (message: string): void => {
    if (lines.length < 100) lines.push(message);
  };
  return { debug: keep, info: keep, warn: keep, error: keep };
}
