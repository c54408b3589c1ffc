import { ProxyTierError } from '../errors.js';

/** One line for logs: the error's code, when it has one, and its message. Never a stack. */
export function describeError(error: unknown): string {
  if (error instanceof ProxyTierError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
