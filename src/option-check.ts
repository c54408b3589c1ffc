// The checks every options resolver shares: the options are an object, every key in it is one
// the resolver knows (a misspelt option silently ignored is a default the user did not choose),
// and the common kinds of values. Messages name the option and never show a value that may be a
// secret: unknown keys are listed by name only.
import { closest, distance } from 'fastest-levenshtein';
import { InvalidOptionError } from './errors.js';
import { describe } from './record/entry.js';

/**
 * Every option name of an options type, each marked `true`. Written as a `Record` over the type's
 * keys, so TypeScript refuses a list that misses an option or names one the type lacks: the
 * interface stays the one place where the options are declared.
 */
export type OptionNames<T> = { readonly [K in keyof Required<T>]: true };

/** Throws unless `options` is a plain object (not `null`, not an array). */
export function assertOptionsObject(what: string, options: unknown, expected = ''): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    const shape = expected === '' ? '' : ` ${expected}`;
    throw new InvalidOptionError(
      `${what} options must be an object${shape}, got ${describe(options)}`,
    );
  }
}

/**
 * Throws for the first key of `options` that is not in `names`, naming it (after `path` and a
 * dot, for nested options), suggesting the closest known option, and listing them all.
 *
 * @example
 * rejectUnknownOptions('ProxyCache.open', { defaultTTL: 60 }, NAMES);
 * // InvalidOptionError: "defaultTTL" is not a ProxyCache.open option; did you mean
 * // "defaultTtlSeconds"? Options: maxEntries, defaultTtlSeconds, ...
 */
export function rejectUnknownOptions<T>(
  what: string,
  options: object,
  names: { readonly [K in keyof Required<T>]: unknown },
  path = '',
): void {
  const known = Object.keys(names);
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(names, key)) continue;
    const suggestion = closestName(key, known);
    const hint = suggestion === undefined ? '.' : `; did you mean "${suggestion}"?`;
    throw new InvalidOptionError(
      `${JSON.stringify(path === '' ? key : `${path}.${key}`)} is not a ${what} option${hint} Options: ${known.join(', ')}`,
    );
  }
}

/**
 * The known name `name` most likely meant, if any is close: the same letters in another case, a
 * name that begins with the other (`defaultTtl` for `defaultTtlSeconds`), or one at most a third
 * of its letters away, rounded up, and at least 2 (`maxEntry` for `maxEntries`).
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const lower = name.toLowerCase();
  const lowered = known.map((candidate) => candidate.toLowerCase());
  const sameLetters = lowered.indexOf(lower);
  if (sameLetters !== -1) return known[sameLetters];
  const prefixed = lowered.findIndex(
    (candidate) =>
      lower.length >= 3 && (candidate.startsWith(lower) || lower.startsWith(candidate)),
  );
  if (prefixed !== -1) return known[prefixed];
  const nearest = closest(lower, lowered);
  const limit = Math.max(2, Math.ceil(lower.length / 3));
  return distance(lower, nearest) <= limit ? known[lowered.indexOf(nearest)] : undefined;
}

/** Throws unless `value` is a safe integer from `min` to `max`. */
export function assertIntegerOption(
  name: string,
  value: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): asserts value is number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max) {
    return;
  }
  const expected =
    max !== Number.MAX_SAFE_INTEGER
      ? `an integer from ${String(min)} to ${String(max)}`
      : min === 1
        ? 'a positive integer'
        : min === 0
          ? 'a non-negative integer'
          : `an integer of at least ${String(min)}`;
  throw new InvalidOptionError(`"${name}" must be ${expected}, got ${describe(value)}`);
}

/** Throws unless `value` is a non-empty string. */
export function assertNameOption(name: string, value: unknown): asserts value is string {
  if (typeof value === 'string' && value !== '') return;
  throw new InvalidOptionError(`"${name}" must be a non-empty string, got ${describe(value)}`);
}
