/**
 * Where the keyring comes from. First match wins:
 *
 * 1. the `key` option (with `previousKeys`);
 * 2. `PROXYTIER_ENCRYPTION_KEY` (with `PROXYTIER_PREVIOUS_KEYS`, comma-separated);
 * 3. proxywhirl's `PROXYWHIRL_CACHE_ENCRYPTION_KEY` (with `PROXYWHIRL_CACHE_KEY_PREVIOUS`);
 * 4. a key file: the `keyFile` option, else `PROXYTIER_KEY_FILE`, else {@link defaultKeyFilePath}.
 *
 * With none of them, the key file is created once with a fresh key and reused from then on.
 * There is never an ephemeral key: a key that vanished at exit would make every stored
 * credential unreadable after a restart (proxywhirl's mistake).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidKeyError, InvalidOptionError, KeyUnavailableError } from '../errors.js';
import type { Logger } from '../logger.js';
import { FernetKey, generateFernetKey } from './fernet.js';
import { Keyring } from './keyring.js';

/** Which source {@link resolveKeyring} took the keys from. */
export type KeySource = 'option' | 'env' | 'proxywhirl-env' | 'key-file';

/** Options for {@link resolveKeyring}. */
export interface ResolveKeyringOptions {
  /** The current key, explicitly. Wins over every other source. */
  key?: string;
  /** Previous keys accepted for decryption alongside `key`. Only valid together with `key`. */
  previousKeys?: readonly string[];
  /** Key file path. Default: `PROXYTIER_KEY_FILE`, else {@link defaultKeyFilePath}. */
  keyFile?: string;
  /** The environment to read. Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Receives the one-line notice when a key file is created, and the loose-mode warning. */
  logger: Logger;
  /** Create the key file when no source has a key. Default `true`; `false` throws instead. */
  create?: boolean;
}

/** What {@link resolveKeyring} found. */
export interface ResolvedKeyring {
  /** The keys: current plus previous. */
  keyring: Keyring;
  /** Where they came from. */
  source: KeySource;
  /** The key file's absolute path, when `source` is `'key-file'`. */
  keyFile?: string;
  /** True when this call created the key file. */
  created: boolean;
}

/** Options for {@link writeKeyFile}. */
export interface WriteKeyFileOptions {
  /** Replace an existing file (atomically). Default `false`: an existing file is an error. */
  overwrite?: boolean;
}

const ENV_KEY = 'PROXYTIER_ENCRYPTION_KEY';
const ENV_PREVIOUS = 'PROXYTIER_PREVIOUS_KEYS';
const ENV_PW_KEY = 'PROXYWHIRL_CACHE_ENCRYPTION_KEY';
const ENV_PW_PREVIOUS = 'PROXYWHIRL_CACHE_KEY_PREVIOUS';
const ENV_KEY_FILE = 'PROXYTIER_KEY_FILE';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** How long to wait for a key file another process has created but not yet written. */
const INCOMPLETE_FILE_WAIT_MS = 2000;
const INCOMPLETE_FILE_POLL_MS = 10;

const KEY_FILE_HEADER =
  '# proxytier encryption keys (Fernet). The first key line is the current key; later lines are\n' +
  '# previous keys, still accepted for decryption. Keep this file secret (mode 0600) and backed\n' +
  '# up: without it, the credentials stored with these keys cannot be decrypted.\n';

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
  const env = options.env ?? process.env;
  const { logger } = options;

  if (options.key !== undefined) {
    if (typeof options.key !== 'string') {
      throw new InvalidOptionError('the `key` option must be a string');
    }
    const current = parseKey(options.key, 'the `key` option');
    const previous = (options.previousKeys ?? []).map((text, i) =>
      parseKey(text, `\`previousKeys\` item ${i + 1}`),
    );
    return { keyring: new Keyring(current, previous), source: 'option', created: false };
  }
  if (options.previousKeys !== undefined && options.previousKeys.length > 0) {
    // Silently ignoring them would hide a misconfiguration until a decryption fails.
    throw new InvalidOptionError('the `previousKeys` option was given without the `key` option');
  }

  const fromEnv = keyringFromEnv(env, ENV_KEY, ENV_PREVIOUS, logger);
  if (fromEnv !== undefined) {
    return { keyring: fromEnv, source: 'env', created: false };
  }
  const fromProxywhirl = keyringFromEnv(env, ENV_PW_KEY, ENV_PW_PREVIOUS, logger);
  if (fromProxywhirl !== undefined) {
    return { keyring: fromProxywhirl, source: 'proxywhirl-env', created: false };
  }

  if (
    options.keyFile !== undefined &&
    (typeof options.keyFile !== 'string' || options.keyFile === '')
  ) {
    throw new InvalidOptionError('the `keyFile` option must be a non-empty path');
  }
  const keyFile = resolve(
    options.keyFile ?? nonEmpty(env[ENV_KEY_FILE]) ?? defaultKeyFilePath(env),
  );
  const existing = await readKeyFile(keyFile, logger);
  if (existing !== undefined) {
    return { keyring: existing, source: 'key-file', keyFile, created: false };
  }
  if (options.create === false) {
    throw new KeyUnavailableError(
      `no encryption key found: checked the \`key\` option, ${ENV_KEY}, ${ENV_PW_KEY} and the ` +
        `key file ${keyFile} (it does not exist). Set ${ENV_KEY} to a Fernet key, pass \`key\`, ` +
        `or create ${keyFile} (mode 0600) with the key on its first line`,
    );
  }
  return createKeyFile(keyFile, logger);
}

/**
 * Writes a key file atomically: the keys go to a temporary 0600 file in the same directory, which
 * is fsynced and then renamed over `path` (or, without `overwrite`, hard-linked so an existing
 * file is never replaced). The directory is created 0700 when missing. The first key is the
 * current one. Throws `InvalidKeyError` for a malformed key, `KeyUnavailableError` when the file
 * exists (without `overwrite`) or cannot be written.
 */
export async function writeKeyFile(
  path: string,
  keys: readonly string[],
  options: WriteKeyFileOptions = {},
): Promise<void> {
  if (keys.length === 0) {
    throw new InvalidOptionError('writeKeyFile needs at least one key');
  }
  const lines = keys.map((text, i) => {
    parseKey(text, `key ${i + 1} for ${path}`);
    return text.trim();
  });
  const target = resolve(path);
  const dir = dirname(target);
  const temp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}`);
  try {
    await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
    const handle = await fs.open(temp, 'wx', FILE_MODE);
    try {
      await handle.writeFile(`${KEY_FILE_HEADER}${lines.join('\n')}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.overwrite === true) {
      await fs.rename(temp, target);
    } else {
      // link() fails with EEXIST instead of replacing, and the file it exposes is complete.
      await fs.link(temp, target);
      await fs.unlink(temp);
    }
    await syncDir(dir);
  } catch (error) {
    await fs.rm(temp, { force: true }).catch(() => undefined);
    if (isErrno(error, 'EEXIST')) {
      throw new KeyUnavailableError(
        `key file ${target} already exists; pass overwrite: true to replace it`,
        { cause: error },
      );
    }
    throw new KeyUnavailableError(`cannot write key file ${target}: ${errnoText(error)}`, {
      cause: error,
    });
  }
}

function keyringFromEnv(
  env: Record<string, string | undefined>,
  keyVar: string,
  previousVar: string,
  logger: Logger,
): Keyring | undefined {
  const keyText = nonEmpty(env[keyVar]);
  const previousText = nonEmpty(env[previousVar]);
  if (keyText === undefined) {
    if (previousText !== undefined) {
      logger.warn(`${previousVar} is set but ${keyVar} is not, so it is ignored`);
    }
    return undefined;
  }
  const current = parseKey(keyText, keyVar);
  const previous: FernetKey[] = [];
  // Items are numbered by their position in the list as written, empty ones included.
  (previousText ?? '').split(',').forEach((item, i) => {
    const text = item.trim();
    if (text !== '') {
      previous.push(parseKey(text, `${previousVar} item ${i + 1}`));
    }
  });
  return new Keyring(current, previous);
}

/**
 * Reads a key file; `undefined` when it does not exist. Waits briefly while the file looks like
 * one another process has just created and not yet written (empty, or no complete key line).
 */
async function readKeyFile(path: string, logger: Logger): Promise<Keyring | undefined> {
  const deadline = Date.now() + INCOMPLETE_FILE_WAIT_MS;
  let warned = false;
  for (;;) {
    let text: string;
    try {
      const handle = await fs.open(path, fsConstants.O_RDONLY);
      try {
        if (!warned) {
          warned = true;
          await warnIfLoose(handle, path, logger);
        }
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (isErrno(error, 'ENOENT')) {
        return undefined;
      }
      throw new KeyUnavailableError(`cannot read key file ${path}: ${errnoText(error)}`, {
        cause: error,
      });
    }
    const incomplete = !text.endsWith('\n');
    try {
      return parseKeyFile(text, path);
    } catch (error) {
      if (!incomplete || Date.now() >= deadline) {
        throw error;
      }
    }
    await sleep(INCOMPLETE_FILE_POLL_MS);
  }
}

/** One key per line; `#` comment lines and blank lines ignored; first key is current. */
function parseKeyFile(text: string, path: string): Keyring {
  const keys: FernetKey[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line !== '' && !line.startsWith('#')) {
      keys.push(parseKey(line, `${path} line ${i + 1}`));
    }
  });
  const [current, ...previous] = keys;
  if (current === undefined) {
    throw new InvalidKeyError(
      `key file ${path} contains no key; put a Fernet key on its first line, or delete it to ` +
        'have a new key created',
    );
  }
  return new Keyring(current, previous);
}

async function createKeyFile(path: string, logger: Logger): Promise<ResolvedKeyring> {
  const key = generateFernetKey();
  let handle: fs.FileHandle;
  try {
    await fs.mkdir(dirname(path), { recursive: true, mode: DIR_MODE });
    // 'wx' = O_CREAT|O_EXCL: of several processes racing here exactly one creates the file.
    handle = await fs.open(path, 'wx', FILE_MODE);
  } catch (error) {
    if (isErrno(error, 'EEXIST')) {
      // Lost the race: use the winner's key (readKeyFile waits out its write).
      const keyring = await readKeyFile(path, logger);
      if (keyring !== undefined) {
        return { keyring, source: 'key-file', keyFile: path, created: false };
      }
    }
    throw new KeyUnavailableError(
      `cannot create key file ${path}: ${errnoText(error)}. Make its directory writable, point ` +
        `${ENV_KEY_FILE} elsewhere, or set ${ENV_KEY}`,
      { cause: error },
    );
  }
  try {
    // One write call, so a concurrent reader sees either nothing or the whole file in practice.
    await handle.writeFile(`${KEY_FILE_HEADER}${key}\n`);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    // Leave no empty file behind: it would block every later start.
    await fs.rm(path, { force: true }).catch(() => undefined);
    throw new KeyUnavailableError(`cannot write key file ${path}: ${errnoText(error)}`, {
      cause: error,
    });
  }
  await handle.close();
  await syncDir(dirname(path));
  logger.info(
    `created a new encryption key in ${path}; back this file up: without it the stored ` +
      'credentials cannot be decrypted',
  );
  return { keyring: new Keyring(key), source: 'key-file', keyFile: path, created: true };
}

async function warnIfLoose(handle: fs.FileHandle, path: string, logger: Logger): Promise<void> {
  if (process.platform === 'win32') {
    return; // POSIX modes mean nothing there.
  }
  const mode = (await handle.stat()).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    logger.warn(
      `key file ${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); ` +
        `run: chmod 600 ${path}`,
    );
  }
}

/** Makes a new directory entry durable; best effort, as some platforms cannot fsync a dir. */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, fsConstants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not fatal: the file itself is already synced.
  }
}

function parseKey(text: string, where: string): FernetKey {
  try {
    return new FernetKey(text);
  } catch (error) {
    if (error instanceof InvalidKeyError) {
      throw new InvalidKeyError(`${where} is not a valid Fernet key: ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

function errnoText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined ? error.message : `${code} (${error.message})`;
  }
  return String(error);
}
