/**
 * The key file: one Fernet key per line, the first the current one, later lines previous keys
 * still accepted for decryption; `#` comment lines and blank lines ignored. This module owns
 * reading and parsing it, creating it once, replacing it atomically, locking it for a rotation,
 * and following it from a running process (see {@link KeyFileFollower}).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidKeyError, InvalidOptionError, KeyUnavailableError } from '../errors.js';
import { FileLock } from '../file-lock.js';
import type { Logger } from '../logger.js';
import { FernetKey, generateFernetKey, parseFernetKey } from './fernet.js';
import { Keyring, type KeyringSource } from './keyring.js';
import { syncDir } from '../sync-dir.js';

/** Options for {@link writeKeyFile}. */
export interface WriteKeyFileOptions {
  /** Replace an existing file (atomically). Default `false`: an existing file is an error. */
  overwrite?: boolean;
}

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
 * Reads a key file into a keyring that follows the file (see {@link KeyFileFollower});
 * `undefined` when the file does not exist. Waits briefly while the file looks like one another
 * process has just created and not yet written (empty, or no complete key line). Warns through
 * `logger` when the file is readable by group or others.
 */
export async function readKeyFile(path: string, logger: Logger): Promise<Keyring | undefined> {
  const deadline = Date.now() + INCOMPLETE_FILE_WAIT_MS;
  let warned = false;
  for (;;) {
    let text: string;
    let stamp: string;
    try {
      const handle = await fs.open(path, fsConstants.O_RDONLY);
      try {
        const stats = await handle.stat();
        stamp = fileStamp(stats);
        if (!warned) {
          warned = true;
          warnIfLoose(stats.mode, path, logger);
        }
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return undefined;
      throw new KeyUnavailableError(`cannot read key file ${path}: ${errnoText(error)}`, {
        cause: error,
      });
    }
    const incomplete = !text.endsWith('\n');
    try {
      const [current, ...previous] = parseKeyFile(text, path);
      return new Keyring(current, previous, new KeyFileFollower(path, stamp, logger));
    } catch (error) {
      if (!incomplete || Date.now() >= deadline) throw error;
    }
    await sleep(INCOMPLETE_FILE_POLL_MS);
  }
}

/** The keys of a key file's text, current first; throws `InvalidKeyError` naming the line. */
export function parseKeyFile(text: string, path: string): [FernetKey, ...FernetKey[]] {
  const keys: FernetKey[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line !== '' && !line.startsWith('#'))
      keys.push(parseFernetKey(line, `${path} line ${i + 1}`));
  });
  const [current, ...previous] = keys;
  if (current === undefined) {
    throw new InvalidKeyError(
      `key file ${path} contains no key; put a Fernet key on its first line, or delete it to ` +
        'have a new key created',
    );
  }
  return [current, ...previous];
}

/** The key lines of a key file as written, current first (comments and blank lines left out). */
export async function keyFileLines(path: string): Promise<string[]> {
  const text = await fs.readFile(path, 'utf8');
  parseKeyFile(text, path);
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/**
 * Creates the key file with a fresh key, once: of several processes racing here exactly one
 * creates it (`O_EXCL`) and the others read the winner's key. Logs one notice saying to back the
 * file up. Resolves the keyring and whether this call created the file. `hint` ends the error
 * message when the file cannot be created (what else the user can do).
 */
export async function createKeyFile(
  path: string,
  logger: Logger,
  hint = '',
): Promise<{ keyring: Keyring; created: boolean }> {
  const key = generateFernetKey();
  let handle: fs.FileHandle;
  try {
    await fs.mkdir(dirname(path), { recursive: true, mode: DIR_MODE });
    handle = await fs.open(path, 'wx', FILE_MODE);
  } catch (error) {
    if (isErrno(error, 'EEXIST')) {
      // Lost the race: use the winner's key (readKeyFile waits out its write).
      const keyring = await readKeyFile(path, logger);
      if (keyring !== undefined) return { keyring, created: false };
    }
    throw new KeyUnavailableError(`cannot create key file ${path}: ${errnoText(error)}${hint}`, {
      cause: error,
    });
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
  const stamp = fileStamp(await handle.stat());
  await handle.close();
  await syncDir(dirname(path));
  logger.info(
    `created a new encryption key in ${path}; back this file up: without it the stored ` +
      'credentials cannot be decrypted',
  );
  return {
    keyring: new Keyring(key, [], new KeyFileFollower(path, stamp, logger)),
    created: true,
  };
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
  if (keys.length === 0) throw new InvalidOptionError('writeKeyFile needs at least one key');
  const lines = keys.map((text, i) => {
    parseFernetKey(text, `key ${i + 1} for ${path}`);
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

/**
 * Takes the lock that serialises changes of a key file (`<path>.lock`, beside it), waiting up to
 * `timeoutMs` for another holder. The lock file names its holder's pid; a holder that died
 * leaves a stale lock that the next taker breaks. Resolves the held lock; release it when done.
 */
export async function lockKeyFile(path: string, timeoutMs: number): Promise<FileLock> {
  const lock = new FileLock(`${resolve(path)}.lock`, 'key file', timeoutMs);
  await lock.acquire();
  return lock;
}

/**
 * How a running process learns that its key file changed (a rotation wrote a new current key):
 * `reload(false)` compares the file's inode, size and times with those of the last reading, one
 * `stat` at most every {@link KEY_FILE_CHECK_MS}; `reload(true)` re-reads now (a token that no
 * loaded key decrypts), at most every {@link KEY_FILE_RELOAD_MS}. A file that vanished or no
 * longer parses keeps the keys loaded and logs one warning.
 */
export class KeyFileFollower implements KeyringSource {
  readonly path: string;
  #stamp: string;
  #checkedAt: number;
  #reloadedAt = Number.NEGATIVE_INFINITY;
  #warned = false;
  readonly #logger: Logger;

  constructor(path: string, stamp: string, logger: Logger) {
    this.path = path;
    this.#stamp = stamp;
    this.#logger = logger;
    this.#checkedAt = performance.now();
  }

  reload(force: boolean): FernetKey[] | undefined {
    // A monotonic clock: a wall clock set back would stop the checks.
    const now = performance.now();
    if (force) {
      if (now - this.#reloadedAt < KEY_FILE_RELOAD_MS) return undefined;
    } else if (now - this.#checkedAt < KEY_FILE_CHECK_MS) {
      return undefined;
    }
    this.#checkedAt = now;
    if (force) this.#reloadedAt = now;
    try {
      const stamp = fileStamp(statSync(this.path));
      if (stamp === this.#stamp) return undefined;
      const keys = parseKeyFile(readFileSync(this.path, 'utf8'), this.path);
      this.#stamp = stamp;
      this.#warned = false;
      return keys;
    } catch (error) {
      if (!this.#warned) {
        this.#warned = true;
        this.#logger.warn(
          `cannot re-read key file ${this.path} (${errnoText(error)}); the keys loaded before stay in use`,
        );
      }
      return undefined;
    }
  }
}

/** How often a running process looks at its key file for a new current key, at most. */
export const KEY_FILE_CHECK_MS = 1_000;
/** How often a token that no loaded key decrypts makes the key file be re-read, at most. */
export const KEY_FILE_RELOAD_MS = 100;

function fileStamp(stats: { ino: number; size: number; mtimeMs: number; ctimeMs: number }): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}

function warnIfLoose(mode: number, path: string, logger: Logger): void {
  if (process.platform === 'win32') return; // POSIX modes mean nothing there.
  const bits = mode & 0o777;
  if ((bits & 0o077) !== 0) {
    logger.warn(
      `key file ${path} is accessible by group or others (mode ${bits.toString(8).padStart(4, '0')}); ` +
        `run: chmod 600 ${path}`,
    );
  }
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

export function errnoText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined ? error.message : `${code} (${error.message})`;
  }
  return String(error);
}
