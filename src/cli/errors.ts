// The command line's own errors. They are `ProxyTierError`s like the library's, so every error
// the tool prints goes through one `describeError` and has a stable code.
import { ProxyTierError } from '../errors.js';

/** A failure a command reports itself, in one line (exit code 1), its code first. */
export class CliError extends ProxyTierError {
  override readonly code: string;
  /** `code`: a stable code (`E_NO_STORE`), or the system error's (`ENOENT`); default `E_CLI`. */
  constructor(message: string, code?: string) {
    super(message);
    this.code = code ?? 'E_CLI';
  }
}

/**
 * A mistake in how the command was called (exit code 2). Printed without its code, like the
 * argument parser's own usage errors, which it continues.
 */
export class UsageError extends ProxyTierError {
  override readonly code = 'E_USAGE';
  readonly exitCode = 2;
}
