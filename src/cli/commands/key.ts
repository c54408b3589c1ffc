// `proxytier key generate` and `proxytier key rotate`.
import { readFile, stat } from 'node:fs/promises';
import { FernetKey, generateFernetKey } from '../../crypto/fernet.js';
import { resolveKeyring, writeKeyFile } from '../../crypto/key-source.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { ProxyCache, TokenReport } from '../../proxy-cache.js';
import { CliError, type Cli } from '../context.js';
import { entriesWord } from '../format.js';
import { jobProgress } from '../progress.js';

export async function keyGenerateCommand(cli: Cli, options: { output?: string }): Promise<void> {
  const key = generateFernetKey();
  const fingerprint = new FernetKey(key).fingerprint;
  if (options.output === undefined) {
    if (cli.json) cli.outJson({ key, fingerprint });
    else cli.out(key);
    return;
  }
  // Never replaces an existing file: that would lose the key its credentials need. (writeKeyFile
  // refuses too, atomically; this check only gives the clearer message.)
  if ((await stat(options.output).catch(() => undefined)) !== undefined) {
    throw new CliError(
      `${options.output} already exists and is never replaced (the credentials its key encrypted would be lost); choose another file, or change the store's key with "proxytier key rotate"`,
      'E_KEY_FILE_EXISTS',
    );
  }
  await writeKeyFile(options.output, [key]);
  if (cli.json) cli.outJson({ keyFile: options.output, fingerprint });
  else cli.out(`wrote a new key to ${options.output} (mode 0600, fingerprint ${fingerprint})`);
}

export interface RotateOptions {
  dropPrevious?: boolean;
}

interface RotationResult {
  resumed: boolean;
  keyFile: string | undefined;
  fingerprint: string;
  reencrypted: number;
  alreadyCurrent: number;
  unreadable: number;
  /** Tokens still under a previous key when the rotation ended (0 unless another writer raced). */
  previous: number;
  droppedPreviousKeys: boolean;
}

const ENV_VARIABLES = {
  env: ['PROXYTIER_ENCRYPTION_KEY', 'PROXYTIER_PREVIOUS_KEYS'],
  'proxywhirl-env': ['PROXYWHIRL_CACHE_ENCRYPTION_KEY', 'PROXYWHIRL_CACHE_KEY_PREVIOUS'],
} as const;

/**
 * Rotates the store's key. When stored tokens are still under a previous key, the unfinished
 * rotation is resumed with the keys as they are. Otherwise a new key is made and written first
 * into the key file, the old keys after it (so both decrypt), and every stored token is
 * re-encrypted under it. Killed at any point, running it again finishes the job.
 */
export async function keyRotateCommand(cli: Cli, options: RotateOptions): Promise<void> {
  const found = await cli.storeKeyring({ create: false });
  const keyFile = found.keyFile;
  let keyring = found.keyring;
  let pending = await cli.withStore((cache) => cache.tokenReport(), keyring);
  const resumed = pending.previous > 0;
  if (found.source !== 'key-file' || keyFile === undefined) {
    const [current, previous] =
      found.source === 'key-file' || found.source === 'option'
        ? ['the key', 'its previous keys']
        : ENV_VARIABLES[found.source];
    if (!resumed) {
      throw new CliError(
        `the key comes from ${current}, which proxytier cannot rewrite. To rotate it: make a key with "proxytier key generate", set ${current} to it and ${previous} to the old key, then run "proxytier key rotate" again to re-encrypt the stored credentials (or keep keys in a key file: --key-file, PROXYTIER_KEY_FILE)`,
        'E_KEY_SOURCE',
      );
    }
  }
  if (resumed) {
    cli.notice(
      `resuming an unfinished rotation: ${pending.previous} stored credential ${pending.previous === 1 ? 'token is' : 'tokens are'} still under a previous key; no new key is made`,
    );
  } else {
    if (keyFile === undefined) throw new Error('unreachable: a rotation needs a key file');
    const key = generateFernetKey();
    // The new key first, then every key the file held: until every token is re-encrypted, both
    // the new and the old tokens decrypt. The file is replaced atomically.
    await writeKeyFile(keyFile, [key, ...(await keyLines(keyFile))], { overwrite: true });
    keyring = (await resolveKeyring({ keyFile, env: {}, logger: cli.logger, create: false }))
      .keyring;
    if (keyring.current.fingerprint !== new FernetKey(key).fingerprint) {
      throw new CliError(
        `the key file ${keyFile} changed while it was rewritten; run the rotation again`,
      );
    }
    cli.notice(
      `wrote a new key (fingerprint ${keyring.current.fingerprint}) to ${keyFile}; the old keys stay after it`,
    );
  }
  const result = await cli.withStore((cache) => reencrypt(cli, cache, keyring), keyring);
  pending = { current: result.current, previous: result.previous, unreadable: result.unreadable };
  let dropped = false;
  if (options.dropPrevious === true && keyFile !== undefined && found.source === 'key-file') {
    if (pending.previous === 0 && pending.unreadable === 0) {
      const [current] = await keyLines(keyFile);
      if (current !== undefined) {
        await writeKeyFile(keyFile, [current], { overwrite: true });
        dropped = true;
      }
    } else {
      cli.warn('the previous keys were kept: some stored tokens still need them');
    }
  }
  const rotation: RotationResult = {
    resumed,
    keyFile,
    fingerprint: keyring.current.fingerprint,
    reencrypted: result.reencrypted,
    alreadyCurrent: result.alreadyCurrent,
    unreadable: pending.unreadable,
    previous: pending.previous,
    droppedPreviousKeys: dropped,
  };
  report(cli, rotation);
  if (pending.previous > 0) {
    throw new CliError(
      `${pending.previous} tokens are still under a previous key (another process wrote them during the rotation); run "proxytier key rotate" again`,
      'E_ROTATION_INCOMPLETE',
    );
  }
}

/** The key lines of a key file, in order (comments and blank lines left out). */
async function keyLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

async function reencrypt(
  cli: Cli,
  cache: ProxyCache,
  keyring: Keyring,
): Promise<{ reencrypted: number; alreadyCurrent: number } & TokenReport> {
  const stats = await cache.stats();
  const total = Math.max(0, ...stats.tiers.map((tier) => tier.entries ?? 0));
  cli.notice(
    `re-encrypting the credentials of ${total} stored ${entriesWord(total)} under key ${keyring.current.fingerprint}`,
  );
  const progress = jobProgress({ label: 're-encrypting', total, quiet: cli.quiet });
  let result;
  try {
    result = await cache.reencrypt({ onProgress: (seen) => progress.update(seen) });
  } finally {
    progress.stop();
  }
  // Counted again: a writer still using the old key may have added tokens meanwhile.
  const after = await cache.tokenReport();
  return { reencrypted: result.reencrypted, alreadyCurrent: result.current, ...after };
}

function report(cli: Cli, rotation: RotationResult): void {
  if (cli.json) {
    cli.outJson(rotation);
    return;
  }
  const lines = [
    `${rotation.resumed ? 'finished the unfinished rotation' : 'rotated the key'}: ${rotation.reencrypted} credential ${rotation.reencrypted === 1 ? 'token' : 'tokens'} re-encrypted, ${rotation.alreadyCurrent} already under the current key (fingerprint ${rotation.fingerprint})`,
  ];
  if (rotation.unreadable > 0) {
    lines.push(
      `${rotation.unreadable} ${rotation.unreadable === 1 ? 'token' : 'tokens'} could not be decrypted by any key and ${rotation.unreadable === 1 ? 'was' : 'were'} left as ${rotation.unreadable === 1 ? 'it was' : 'they were'} (see "proxytier doctor")`,
    );
  }
  if (rotation.droppedPreviousKeys) {
    lines.push(`removed the previous keys from ${rotation.keyFile ?? 'the key file'}`);
  } else if (rotation.keyFile !== undefined) {
    lines.push(
      `the previous keys stay in ${rotation.keyFile} so that processes still running with them keep working (--drop-previous removes them at the end of a rotation)`,
    );
  }
  cli.out(lines.join('\n'));
}
