/**
 * Where the keyring comes from. First match wins:
 *
 * 1. the `key` option (with `previousKeys`);
 * 2. the `keyFile` option: a key file named explicitly is the source, whatever the environment;
 * 3. `PROXYTIER_ENCRYPTION_KEY` (with `PROXYTIER_PREVIOUS_KEYS`, comma-separated);
 * 4. proxywhirl's `PROXYWHIRL_CACHE_ENCRYPTION_KEY` (with `PROXYWHIRL_CACHE_KEY_PREVIOUS`);
 * 5. the key file `PROXYTIER_KEY_FILE`, else {@link defaultKeyFilePath}.
 *
 * With none of them, the key file is created once with a fresh key and reused from then on.
 * There is never an ephemeral key: a key that vanished at exit would make every stored
 * credential unreadable after a restart (proxywhirl's mistake). Reading, creating and writing
 * the key file is `key-file.ts`'s; this module only decides which source is used.
 */
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { InvalidOptionError, KeyUnavailableError } from '../errors.js';
import type { Logger } from '../logger.js';
import { assertOptionsObject, rejectUnknownOptions, type OptionNames } from '../option-check.js';
import { parseFernetKey, type FernetKey } from './fernet.js';
import { createKeyFile, readKeyFile } from './key-file.js';
import { Keyring } from './keyring.js';

/** Which source {@link resolveKeyring} took the keys from. */
export type KeySource = 'option' | 'env' | 'proxywhirl-env' | 'key-file';

/** The environment variables that name keys, each written here once. */
export const KEY_VARIABLES = Object.freeze({
  /** The current key. */
  key: 'PROXYTIER_ENCRYPTION_KEY',
  /** Previous keys, comma-separated, accepted for decryption with `key`. */
  previousKeys: 'PROXYTIER_PREVIOUS_KEYS',
  /** proxywhirl's current key. */
  proxywhirlKey: 'PROXYWHIRL_CACHE_ENCRYPTION_KEY',
  /** proxywhirl's previous keys, comma-separated. */
  proxywhirlPreviousKeys: 'PROXYWHIRL_CACHE_KEY_PREVIOUS',
  /** The key file's path. */
  keyFile: 'PROXYTIER_KEY_FILE',
} as const);

/** The variables of each environment source: its current key and its previous keys. */
export const ENV_SOURCE_VARIABLES: Readonly<
  Record<'env' | 'proxywhirl-env', { key: string; previousKeys: string }>
> = Object.freeze({
  env: { key: KEY_VARIABLES.key, previousKeys: KEY_VARIABLES.previousKeys },
  'proxywhirl-env': {
    key: KEY_VARIABLES.proxywhirlKey,
    previousKeys: KEY_VARIABLES.proxywhirlPreviousKeys,
  },
});

/** Options for {@link resolveKeyring}. */
export interface ResolveKeyringOptions {
  /** The current key, explicitly. Wins over every other source. */
  key?: string;
  /** Previous keys accepted for decryption alongside `key`. Only valid together with `key`. */
  previousKeys?: readonly string[];
  /**
   * The key file. Named here, it is the source (after `key`), whatever the environment says.
   * Default: `PROXYTIER_KEY_FILE`, else {@link defaultKeyFilePath}, after the key variables.
   */
  keyFile?: string;
  /** The environment to read. Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Receives the one-line notice when a key file is created, and the loose-mode warning. */
  logger: Logger;
  /** Create the key file when no source has a key. Default `true`; `false` throws instead. */
  create?: boolean;
}

const RESOLVE_KEYRING_OPTION_NAMES: OptionNames<ResolveKeyringOptions> = Object.freeze({
  key: true,
  previousKeys: true,
  keyFile: true,
  env: true,
  logger: true,
  create: true,
});

/** What {@link resolveKeyring} found. */
export interface ResolvedKeyring {
  /** The keys: current plus previous. A keyring from a key file follows the file. */
  keyring: Keyring;
  /** Where they came from. */
  source: KeySource;
  /** The key file's absolute path, when `source` is `'key-file'`. */
  keyFile?: string;
  /** True when this call created the key file. */
  created: boolean;
}

/**
 * The default key file: `$XDG_CONFIG_HOME/proxytier/key`, or `~/.config/proxytier/key` when
 * `XDG_CONFIG_HOME` is unset or not absolute. Deliberately outside any cache directory, so a
 * copied or leaked cache does not carry the key that decrypts it.
 */
export function defaultKeyFilePath(env: Record<string, string | undefined> = process.env): string {
  const xdg = env['XDG_CONFIG_HOME'];
  // The XDG spec says a relative value is invalid and must be ignored.
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), '.config');
  return join(base, 'proxytier', 'key');
}

/**
 * Finds the keyring from the first source that has a key (see the module comment for the order)
 * or, when none has and `create` is not false, creates the key file with a fresh key. Throws
 * `InvalidKeyError` naming the source of a malformed key (never the key), `KeyUnavailableError`
 * when there is no key and it may not or cannot be created, `InvalidOptionError` for bad options.
 */
export async function resolveKeyring(options: ResolveKeyringOptions): Promise<ResolvedKeyring> {
  assertOptionsObject('resolveKeyring', options, 'with "logger"');
  rejectUnknownOptions('resolveKeyring', options, RESOLVE_KEYRING_OPTION_NAMES);
  const env = options.env ?? process.env;
  const { logger } = options;

  if (options.key !== undefined) {
    if (typeof options.key !== 'string') {
      throw new InvalidOptionError('the `key` option must be a string');
    }
    const current = parseFernetKey(options.key, 'the `key` option');
    const previous = (options.previousKeys ?? []).map((text, i) =>
      parseFernetKey(text, `\`previousKeys\` item ${i + 1}`),
    );
    return { keyring: new Keyring(current, previous), source: 'option', created: false };
  }
  if (options.previousKeys !== undefined && options.previousKeys.length > 0) {
    // Silently ignoring them would hide a misconfiguration until a decryption fails.
    throw new InvalidOptionError('the `previousKeys` option was given without the `key` option');
  }
  if (
    options.keyFile !== undefined &&
    (typeof options.keyFile !== 'string' || options.keyFile === '')
  ) {
    throw new InvalidOptionError('the `keyFile` option must be a non-empty path');
  }

  if (options.keyFile === undefined) {
    for (const source of ['env', 'proxywhirl-env'] as const) {
      const keyring = keyringFromEnv(env, ENV_SOURCE_VARIABLES[source], logger);
      if (keyring !== undefined) return { keyring, source, created: false };
    }
  }

  const keyFile = resolve(
    options.keyFile ?? nonEmpty(env[KEY_VARIABLES.keyFile]) ?? defaultKeyFilePath(env),
  );
  const existing = await readKeyFile(keyFile, logger);
  if (existing !== undefined) {
    return { keyring: existing, source: 'key-file', keyFile, created: false };
  }
  if (options.create === false) {
    const checked =
      options.keyFile === undefined
        ? `the \`key\` option, ${KEY_VARIABLES.key}, ${KEY_VARIABLES.proxywhirlKey} and the key file ${keyFile}`
        : `the key file ${keyFile}`;
    throw new KeyUnavailableError(
      `no encryption key found: checked ${checked} (it does not exist). Set ${KEY_VARIABLES.key} ` +
        `to a Fernet key, pass \`key\`, or create ${keyFile} (mode 0600) with the key on its ` +
        'first line',
    );
  }
  const made = await createKeyFile(
    keyFile,
    logger,
    `. Make its directory writable, point ${KEY_VARIABLES.keyFile} elsewhere, or set ${KEY_VARIABLES.key}`,
  );
  return { keyring: made.keyring, source: 'key-file', keyFile, created: made.created };
}

function keyringFromEnv(
  env: Record<string, string | undefined>,
  variables: { key: string; previousKeys: string },
  logger: Logger,
): Keyring | undefined {
  const keyText = nonEmpty(env[variables.key]);
  const previousText = nonEmpty(env[variables.previousKeys]);
  if (keyText === undefined) {
    if (previousText !== undefined) {
      logger.warn(`${variables.previousKeys} is set but ${variables.key} is not, so it is ignored`);
    }
    return undefined;
  }
  const current = parseFernetKey(keyText, variables.key);
  const previous: FernetKey[] = [];
  // Items are numbered by their position in the list as written, empty ones included.
  (previousText ?? '').split(',').forEach((item, i) => {
    const text = item.trim();
    if (text !== '') previous.push(parseFernetKey(text, `${variables.previousKeys} item ${i + 1}`));
  });
  return new Keyring(current, previous);
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}
