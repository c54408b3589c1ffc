// `proxytier key generate` and `proxytier key rotate`.
import { stat } from 'node:fs/promises';
import { FernetKey, generateFernetKey } from '../../crypto/fernet.js';
import { writeKeyFile } from '../../crypto/key-file.js';
import { rotateKey, type KeyRotation } from '../../key-rotation.js';
import { CliError, type Cli } from '../context.js';
import { jobProgress } from '../progress.js';
import type { Command } from 'commander';
import { example, withCommonOptions, type RegisterCommands } from '../program.js';

export interface GenerateOptions {
  output?: string;
}

export async function keyGenerateCommand(cli: Cli, options: GenerateOptions): Promise<void> {
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

/** Registers the `key generate` and `key rotate` commands on the program. */
export const register: RegisterCommands = (program, cli) => {
  const key = program
    .command('key')
    .description('make a new key, or rotate the store key')
    .addHelpText(
      'after',
      example('proxytier key generate --output ~/.config/proxytier/key', 'proxytier key rotate'),
    );
  withCommonOptions(
    key
      .command('generate')
      .description('print a new Fernet key, or write it to a new key file (mode 0600)')
      .option(
        '--output <file>',
        'write the key to this new file instead (an existing file is never replaced)',
      ),
  )
    .addHelpText(
      'after',
      example('proxytier key generate', 'proxytier key generate --output ./new.key'),
    )
    .action((options: GenerateOptions, command: Command) =>
      keyGenerateCommand(cli(command), options),
    );
  withCommonOptions(
    key
      .command('rotate')
      .description(
        're-encrypt every stored credential under a new key (resumes an unfinished rotation)',
      )
      .option(
        '--drop-previous',
        'when every token is current, remove the old keys from the key file',
      ),
  )
    .addHelpText(
      'after',
      `${example('proxytier key rotate', 'proxytier --key-file ./store.key key rotate --drop-previous')}
The new key is written first into the key file, the old ones after it, so every credential stays
readable throughout; then each stored token is re-encrypted. If credentials are still under an
old key (an interrupted rotation), the rotation is resumed instead and no new key is made.
Needs the key to come from a key file; a key from the environment cannot be rewritten (the
error says how to rotate it).
`,
    )
    .action((options: RotateOptions, command: Command) => keyRotateCommand(cli(command), options));
};
