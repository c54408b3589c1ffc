import { ProxyTierError } from './errors.js';

/**
 * One line for logs and the command line: the error's code, when it has one, and its message.
 * Never a stack. A system error's code (`ENOENT`) is added unless the message already names it.
 * Used for every error proxytier prints, so they all read alike.
 */
export function describeError(error: unknown): string {
  if (error instanceof ProxyTierError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && !error.message.includes(code)
      ? `${code}: ${error.message}`
      : error.message;
  }
  return String(error);
}
