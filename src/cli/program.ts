// What every command file needs to register itself on the program: the options every command
// takes, the argument parsers, the help examples, and the function that turns a command's parsed
// options into its `Cli` context.
import { InvalidArgumentError, type Command } from 'commander';
import { KEY_VARIABLES } from '../crypto/key-source.js';
import type { Cli } from './context.js';

/** The `Cli` of a command being run; `storeKeyFileOnly`: see `migrate`. */
export type CliFor = (command: Command, storeKeyFileOnly?: boolean) => Cli;

/** Each command file exports one: it adds its command(s) to `program`. */
export type RegisterCommands = (program: Command, cli: CliFor) => void;

const DIR_HELP =
  'the store directory (default: $PROXYTIER_DIR, else $XDG_DATA_HOME/proxytier, else ~/.local/share/proxytier)';
const KEY_FILE_HELP = `the store's key file; wins over the environment (default: ${KEY_VARIABLES.key}, ${KEY_VARIABLES.proxywhirlKey}, then $${KEY_VARIABLES.keyFile}, else ~/.config/proxytier/key)`;

/** The options every command accepts after its name too (they win over those before it). */
export function withCommonOptions(command: Command, options: { keyFile?: boolean } = {}): Command {
  command.option('--dir <path>', DIR_HELP);
  if (options.keyFile !== false) command.option('--key-file <path>', KEY_FILE_HELP);
  return command
    .option('--json', 'print one JSON document on standard output')
    .option('--quiet', 'no progress bar and no notices (warnings and errors still show)')
    .option('--debug', 'print the stack trace of an error');
}

export function positiveInteger(name: string) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < 1) {
      throw new InvalidArgumentError(`${name} must be a positive integer.`);
    }
    return number;
  };
}

export function nonNegativeInteger(name: string) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number)) {
      throw new InvalidArgumentError(`${name} must be a non-negative integer.`);
    }
    return number;
  };
}

/** The "Example(s):" section of a command's help. */
export function example(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}
