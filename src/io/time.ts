// Times as proxywhirl writes them: Python's `datetime.isoformat()` of an aware UTC datetime.
// (The JSONL tier's codec has its own, faster copies tuned for its hot path; these are kept here so
// the import/export layer does not depend on a tier's internals.)

const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2}(?::?\d{2}(?:\.\d+)?)?)?$/i;

/**
 * `2026-11-01T13:01:55+00:00`, with `.ffffff` microseconds only when they are not zero, as
 * Python's `isoformat()` writes a UTC time. Sub-millisecond fractions of `ms` are kept.
 */
export function formatIsoTime(ms: number): string {
  const micros = Math.round(ms * 1000);
  const seconds = Math.floor(micros / 1_000_000);
  const fraction = micros - seconds * 1_000_000;
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  return fraction === 0 ? `${base}+00:00` : `${base}.${String(fraction).padStart(6, '0')}+00:00`;
}

/**
 * Parses an ISO 8601 date-time as Python's `isoformat()` writes it
 * (`YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]`) into epoch milliseconds, keeping microseconds as a
 * fraction. A time without an offset is UTC (proxywhirl's times are UTC; `Date.parse` would read
 * it as local time). `NaN` when the text is not such a time.
 */
export function parseIsoTime(text: string): number {
  const match = ISO_TIME.exec(text);
  if (match === null) return Number.NaN;
  const [, y, mo, d, h, mi, s, fraction, offset] = match;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return Number.NaN;
  }
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  date.setUTCFullYear(Number(y));
  // Date.UTC rolls 31 February over into March: such a day is not a date.
  if (date.getUTCDate() !== day) return Number.NaN;
  let ms = date.getTime();
  if (fraction !== undefined) ms += Number(`0.${fraction}`) * 1000;
  if (offset !== undefined && offset.toUpperCase() !== 'Z') {
    const sign = offset.startsWith('-') ? -1 : 1;
    const digits = offset.slice(1).replaceAll(':', '');
    const offsetSeconds =
      Number(digits.slice(0, 2)) * 3600 +
      Number(digits.slice(2, 4)) * 60 +
      Number(digits.slice(4) || '0');
    ms -= sign * offsetSeconds * 1000;
  }
  return ms;
}
