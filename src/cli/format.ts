// How commands print: aligned tables, durations, and entries as export records.
import { Writable } from 'node:stream';
import { exportRecords } from '../io/export.js';
import type { ProxyEntry } from '../record/entry.js';

/** `entry` or `entries`, for `count` of them. */
export function entriesWord(count: number): string {
  return count === 1 ? 'entry' : 'entries';
}

/** Rows as aligned columns, two spaces apart, with no trailing spaces. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) =>
    Math.max(...all.map((row) => (row[column] ?? '').length)),
  );
  return all
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Key-value lines, keys aligned. */
export function fields(pairs: [string, string][]): string {
  const width = Math.max(...pairs.map(([name]) => name.length));
  return pairs.map(([name, value]) => `${name.padEnd(width)}  ${value}`.trimEnd()).join('\n');
}

/** `2d 3h`, `4h 5m`, `6m 7s`, `8s`: the two largest units of a duration. */
export function duration(ms: number): string {
  let seconds = Math.max(0, Math.round(ms / 1000));
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ];
  const parts: string[] = [];
  for (const [unit, size] of units) {
    if (seconds >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(seconds / size)}${unit}`);
      seconds %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

/** When the entry expires, relative to `now`: `59m 58s`, or `expired 5m ago`. */
export function expiresIn(entry: ProxyEntry, now: number): string {
  const left = entry.expiresAt - now;
  return left > 0 ? duration(left) : `expired ${duration(-left)} ago`;
}

/** An optional time for people: `2026-11-01 13:01:55Z` (UTC, whole seconds), or `-`. */
export function time(ms: number | undefined): string {
  return ms === undefined
    ? '-'
    : new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');
}

export function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

/** True when the entry has a username or a password (never their values). */
export function hasCredentials(entry: ProxyEntry): boolean {
  return entry.username !== undefined || entry.password !== undefined;
}

/**
 * Entries as `export --secrets redacted` writes them (snake_case fields, ISO times,
 * `has_credentials` instead of the credentials), so `get --json`, `list --json` and an export
 * agree field by field.
 */
export async function redactedRecords(
  entries: Iterable<ProxyEntry> | AsyncIterable<ProxyEntry>,
): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const source = (async function* () {
    yield* entries;
  })();
  await exportRecords(source, sink, { format: 'jsonl', secrets: 'redacted' });
  return lines
    .join('')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
