// `proxytier key generate` and `proxytier key rotate`.
import { stat } from 'node:fs/promises';
import { FernetKey, generateFernetKey } from '../../crypto/fernet.js';
import { writeKeyFile } from '../../crypto/key-file.js';
import { rotateKey, type KeyRotation } from '../../key-rotation.js';
import { CliError, type Cli } from '../context.js';
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

/** `proxytier key rotate`: `rotateKey` on the store of `--dir`, with its progress and report. */
export async function keyRotateCommand(cli: Cli, options: RotateOptions): Promise<void> {
  const progress = jobProgress({ label: 're-encrypting', total: undefined, quiet: cli.quiet });
  let rotation: KeyRotation;
  try {
    rotation = await rotateKey({
      dir: cli.dir,
      ...(cli.options.keyFile === undefined ? {} : { keyFile: cli.options.keyFile }),
      logger: cli.logger,
      dropPrevious: options.dropPrevious === true,
      onProgress: (seen) => progress.update(seen),
    });
  } finally {
    progress.stop();
  }
  report(cli, rotation);
  if (!rotation.complete) {
    throw new CliError(
      `${rotation.previous} tokens are still under a previous key (a process kept writing with the old key during the rotation); run "proxytier key rotate" again`,
      'E_ROTATION_INCOMPLETE',
    );
  }
}

function report(cli: Cli, rotation: KeyRotation): void {
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
      `the previous keys stay in ${rotation.keyFile} for processes whose keys do not come from it (--drop-previous removes them at the end of a rotation)`,
    );
  }
  cli.out(lines.join('\n'));
}
