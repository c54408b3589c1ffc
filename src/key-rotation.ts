/**
 * Rotating the key of a store while its workers keep running. The protocol, in order:
 *
 * 1. Lock the key file and the store (`<key file>.lock`, `<dir>/key-rotation.lock`) for the
 *    whole rotation, so two rotations never interleave: a second one waits for the first.
 * 2. Under the lock, read the keys again. When stored tokens are still under a previous key,
 *    an earlier rotation was interrupted: finish it with the keys as they are (no new key).
 *    Otherwise write a new key first in the key file, the old keys after it, atomically.
 * 3. Re-encrypt every token under a previous key, entry by entry with the tier's atomic
 *    `modify`, so what workers write meanwhile survives (see `ProxyCache.reencrypt`).
 * 4. Wait until running workers have seen the new key (they look at their key file once a
 *    second, see `KEY_FILE_CHECK_MS`), then re-encrypt what they sealed with the old key before.
 * 5. Only on request, and only when no stored token needs them, drop the previous keys.
 *
 * Killed at any point, running it again finishes the job: the key file always holds every key
 * a stored token is under.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateFernetKey, FernetKey } from './crypto/fernet.js';
import {
  KEY_FILE_CHECK_MS,
  keyFileLines,
  lockKeyFile,
  readKeyFile,
  writeKeyFile,
} from './crypto/key-file.js';
import { ENV_SOURCE_VARIABLES, KEY_VARIABLES, resolveKeyring } from './crypto/key-source.js';
import type { Keyring } from './crypto/keyring.js';
import { openDefaultStore } from './default-store.js';
import { InvalidOptionError, KeyRotationError, KeyUnavailableError } from './errors.js';
import { FileLock } from './file-lock.js';
import { silentLogger, type Logger } from './logger.js';
import {
  assertIntegerOption,
  assertOptionsObject,
  rejectUnknownOptions,
  type OptionNames,
} from './option-check.js';
import type { ProxyCache } from './proxy-cache.js';
import type { TokenReport } from './stack/stored-entries.js';

/** Options of {@link rotateKey}. */
export interface RotateKeyOptions {
  /** The store's directory, as given to `openDefaultStore({ dir })`. */
  dir: string;
  /** The key file to rotate. Default: the sources of `resolveKeyring`, in its order. */
  keyFile?: string;
  /** The environment the key sources are read from. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Receives the notices of each step (never a key). Default: silent. */
  logger?: Logger;
  /** Remove the previous keys from the key file at the end, once no stored token needs them. */
  dropPrevious?: boolean;
  /** How long to wait for another rotation's lock, in ms. Default 600,000 (10 minutes). */
  lockTimeoutMs?: number;
  /** Called with the number of stored entries seen, every 1,000 and at the end of each pass. */
  onProgress?: (entriesSeen: number) => void;
}

const ROTATE_KEY_OPTION_NAMES: OptionNames<RotateKeyOptions> = Object.freeze({
  dir: true,
  keyFile: true,
  env: true,
  logger: true,
  dropPrevious: true,
  lockTimeoutMs: true,
  onProgress: true,
});

/** What {@link rotateKey} did. */
export interface KeyRotation {
  /** True when it finished an interrupted rotation instead of making a new key. */
  resumed: boolean;
  /** The key file, when the keys come from one. */
  keyFile: string | undefined;
  /** The current key's fingerprint. */
  fingerprint: string;
  /** Tokens re-encrypted under the current key. */
  reencrypted: number;
  /** Tokens that were under the current key already. */
  alreadyCurrent: number;
  /** Tokens that no key decrypts, left as they were. */
  unreadable: number;
  /** Tokens still under a previous key at the end: a writer kept the old key. 0 when complete. */
  previous: number;
  /** True when every stored token is under the current key (`previous` is 0). */
  complete: boolean;
  /** True when the previous keys were removed from the key file. */
  droppedPreviousKeys: boolean;
}

const DEFAULT_LOCK_TIMEOUT_MS = 600_000;
/** Time for every running worker to look at its key file after the new key was written. */
const WORKER_GRACE_MS = 2 * KEY_FILE_CHECK_MS + 250;
/** Re-encryption passes after the grace time, for tokens workers sealed with the old key. */
const LATE_PASSES = 2;
/** How often the held locks are refreshed (they go stale on other hosts without it). */
const HEARTBEAT_MS = 5_000;
/** The store's rotation lock, in its directory (no proxywhirl reader looks at it). */
export const STORE_ROTATION_LOCK = 'key-rotation.lock';

/**
 * Rotates the key of the store in `dir` (see the module comment for the protocol): a new key
 * in the key file, every stored credential re-encrypted under it, the previous keys dropped
 * only with `dropPrevious`. Keys that come from the environment or an option cannot be
 * rewritten: then a rotation only finishes re-encrypting under the current key when tokens are
 * under a previous one, and otherwise fails with `E_KEY_SOURCE` saying how to rotate such keys.
 *
 * @example
 * const rotation = await rotateKey({ dir: './store', keyFile: './store.key' });
 * if (!rotation.complete) console.error('a writer kept the old key: run it again');
 */
export async function rotateKey(options: RotateKeyOptions): Promise<KeyRotation> {
  assertOptionsObject('rotateKey', options, 'with "dir"');
  rejectUnknownOptions('rotateKey', options, ROTATE_KEY_OPTION_NAMES);
  const { dir, dropPrevious = false, lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MS } = options;
  if (typeof dir !== 'string' || dir === '') {
    throw new InvalidOptionError(`"dir" must be a non-empty path, got ${String(dir)}`);
  }
  if (typeof dropPrevious !== 'boolean') {
    throw new InvalidOptionError(`"dropPrevious" must be a boolean, got ${typeof dropPrevious}`);
  }
  assertIntegerOption('lockTimeoutMs', lockTimeoutMs, 0);
  const logger = options.logger ?? silentLogger;
  const found = await resolveKeyring({
    ...(options.keyFile === undefined ? {} : { keyFile: options.keyFile }),
    ...(options.env === undefined ? {} : { env: options.env }),
    logger,
    create: false,
  });
  const rotation = new Rotation(resolve(dir), logger, options.onProgress);
  if (found.source !== 'key-file' || found.keyFile === undefined) {
    return rotation.withStoreLock(lockTimeoutMs, () =>
      rotation.finishWithFixedKeys(found.keyring, found.source),
    );
  }
  const keyFile = found.keyFile;
  let keyLock: FileLock;
  try {
    keyLock = await lockKeyFile(keyFile, lockTimeoutMs);
  } catch (error) {
    throw new KeyUnavailableError(
      `another rotation of ${keyFile} is running and held its lock for ${lockTimeoutMs} ms; try again when it ends`,
      { cause: error },
    );
  }
  const heartbeat = setInterval(() => keyLock.heartbeat(), HEARTBEAT_MS).unref();
  try {
    return await rotation.withStoreLock(lockTimeoutMs, () =>
      rotation.rotateKeyFile(keyFile, dropPrevious),
    );
  } finally {
    clearInterval(heartbeat);
    keyLock.release();
  }
}

/** One rotation's steps, sharing the store and the counts. */
class Rotation {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #onProgress: ((entriesSeen: number) => void) | undefined;
  #reencrypted = 0;

  constructor(
    dir: string,
    logger: Logger,
    onProgress: ((entriesSeen: number) => void) | undefined,
  ) {
    this.#dir = dir;
    this.#logger = logger;
    this.#onProgress = onProgress;
  }

  async withStoreLock<T>(timeoutMs: number, run: () => Promise<T>): Promise<T> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const lock = new FileLock(join(this.#dir, STORE_ROTATION_LOCK), 'store', timeoutMs);
    try {
      await lock.acquire();
    } catch (error) {
      throw new KeyUnavailableError(
        `another key rotation of the store in ${this.#dir} is running and held its lock for ${timeoutMs} ms; try again when it ends`,
        { cause: error },
      );
    }
    const heartbeat = setInterval(() => lock.heartbeat(), HEARTBEAT_MS).unref();
    try {
      return await run();
    } finally {
      clearInterval(heartbeat);
      lock.release();
    }
  }

  /** Keys from the environment or an option: only an unfinished re-encryption can be done. */
  async finishWithFixedKeys(keyring: Keyring, source: string): Promise<KeyRotation> {
    return this.#withCache(keyring, async (cache) => {
      const before = await cache.tokenReport();
      if (before.previous === 0) {
        const variables =
          source === 'env' || source === 'proxywhirl-env'
            ? ENV_SOURCE_VARIABLES[source]
            : { key: 'the `key` option', previousKeys: 'its previous keys' };
        throw new KeyRotationError(
          'E_KEY_SOURCE',
          `the key comes from ${variables.key}, which proxytier cannot rewrite. To rotate it: make a key with "proxytier key generate", set ${variables.key} to it and ${variables.previousKeys} to the old key, then run the rotation again to re-encrypt the stored credentials (or keep keys in a key file: --key-file, ${KEY_VARIABLES.keyFile})`,
        );
      }
      this.#logger.info(
        `resuming an unfinished rotation: ${before.previous} stored credential tokens are still under a previous key`,
      );
      const after = await this.#passes(cache, keyring, LATE_PASSES, true);
      return this.#result(true, undefined, keyring, after, false);
    });
  }

  /** Keys from a key file, which this process holds the lock of. */
  async rotateKeyFile(keyFile: string, dropPrevious: boolean): Promise<KeyRotation> {
    // Read again under the lock: a rotation that held it before may have changed the file.
    const keyring = await readKeyFile(keyFile, this.#logger);
    if (keyring === undefined) {
      throw new KeyUnavailableError(`key file ${keyFile} disappeared before the rotation began`);
    }
    return this.#withCache(keyring, async (cache) => {
      const before = await cache.tokenReport();
      const resumed = before.previous > 0;
      let wroteKeyAt: number | undefined;
      if (resumed) {
        this.#logger.info(
          `resuming an unfinished rotation: ${before.previous} stored credential tokens are still under a previous key; no new key is made`,
        );
      } else {
        const key = generateFernetKey();
        // The new key first, then every key the file held: until every token is re-encrypted,
        // both the new and the old tokens decrypt. The file is replaced atomically.
        await writeKeyFile(keyFile, [key, ...(await keyFileLines(keyFile))], { overwrite: true });
        wroteKeyAt = performance.now();
        keyring.refresh(true);
        const fingerprint = new FernetKey(key).fingerprint;
        if (keyring.current.fingerprint !== fingerprint) {
          throw new KeyUnavailableError(
            `the key file ${keyFile} changed while it was rewritten (by something that does not take its lock); run the rotation again`,
          );
        }
        // The store learns the new key before any token is under it (see crypto/key-check.ts).
        await cache.recordKeyCheck();
        this.#logger.info(
          `wrote a new key (fingerprint ${fingerprint}) to ${keyFile}; the old keys stay after it`,
        );
      }
      let report = await this.#pass(cache, keyring, true);
      if (wroteKeyAt !== undefined) {
        // Workers that read the file before it changed seal with the old key until they look
        // again: wait for them, then re-encrypt what they wrote.
        const wait = wroteKeyAt + WORKER_GRACE_MS - performance.now();
        if (wait > 0) await sleep(wait);
        report = await this.#passes(cache, keyring, LATE_PASSES, false);
      } else if (report.previous > 0) {
        report = await this.#passes(cache, keyring, LATE_PASSES, false);
      }
      let dropped = false;
      if (dropPrevious) {
        if (report.previous === 0 && report.unreadable === 0) {
          await writeKeyFile(keyFile, [(await keyFileLines(keyFile))[0] as string], {
            overwrite: true,
          });
          dropped = true;
        } else {
          this.#logger.warn('the previous keys were kept: some stored tokens still need them');
        }
      }
      return this.#result(resumed, keyFile, keyring, report, dropped);
    });
  }

  async #withCache<T>(keyring: Keyring, use: (cache: ProxyCache) => Promise<T>): Promise<T> {
    // Its notice that better-sqlite3 is missing would only repeat what the store's tier says.
    const quiet: Logger = { ...this.#logger, info: () => {} };
    const cache = await openDefaultStore({
      dir: this.#dir,
      memoryTier: false,
      keyring,
      logger: quiet,
      sweepIntervalMs: 0,
    });
    try {
      return await use(cache);
    } finally {
      await cache.close();
    }
  }

  /** One re-encryption pass; resolves the tokens as counted after it. */
  async #pass(cache: ProxyCache, keyring: Keyring, first: boolean): Promise<TokenReport> {
    if (first) {
      const stats = await cache.stats();
      const total = Math.max(0, ...stats.tiers.map((tier) => tier.entries ?? 0));
      this.#logger.info(
        `re-encrypting the credentials of ${total} stored ${total === 1 ? 'entry' : 'entries'} under key ${keyring.current.fingerprint}`,
      );
    } else {
      this.#logger.debug('re-encrypting what was written with a previous key meanwhile');
    }
    const done = await cache.reencrypt(
      this.#onProgress === undefined ? {} : { onProgress: this.#onProgress },
    );
    this.#reencrypted += done.reencrypted;
    // Counted again: a writer still using the old key may have added tokens meanwhile.
    return cache.tokenReport();
  }

  /** Up to `passes` passes, until no token is under a previous key. */
  async #passes(
    cache: ProxyCache,
    keyring: Keyring,
    passes: number,
    first: boolean,
  ): Promise<TokenReport> {
    let report = await this.#pass(cache, keyring, first);
    for (let pass = 1; pass < passes && report.previous > 0; pass += 1) {
      report = await this.#pass(cache, keyring, false);
    }
    return report;
  }

  #result(
    resumed: boolean,
    keyFile: string | undefined,
    keyring: Keyring,
    report: TokenReport,
    droppedPreviousKeys: boolean,
  ): KeyRotation {
    return {
      resumed,
      keyFile,
      fingerprint: keyring.current.fingerprint,
      reencrypted: this.#reencrypted,
      alreadyCurrent: Math.max(0, report.current - this.#reencrypted),
      unreadable: report.unreadable,
      previous: report.previous,
      complete: report.previous === 0,
      droppedPreviousKeys,
    };
  }
}
