// Times as proxywhirl writes them: Python's `datetime.isoformat()` of an aware UTC datetime,
// `2026-11-01T13:01:55+00:00`, with `.ffffff` only when the microseconds are not zero. Written by
// hand rather than with `Date#toISOString`, which has milliseconds, a `Z`, and no microseconds;
// these run on the JSONL tier's hot path, so they avoid regular expressions and Date objects.

const TWO_DIGITS = Array.from({ length: 100 }, (_, i) => (i < 10 ? `0${i}` : String(i)));

/** Earliest and latest times Python's datetime (years 1-9999) can hold, in epoch ms. */
export const MIN_TIME = -62_135_596_800_000;
export const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** `YYYY-MM-DD` of a day number (days since 1970-01-01), by Howard Hinnant's civil_from_days. */
function civilDate(day: number): string {
  const z = day + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  const year = y >= 1000 ? String(y) : String(y).padStart(4, '0');
  return `${year}-${TWO_DIGITS[m] as string}-${TWO_DIGITS[d] as string}`;
}

/**
 * Python's `datetime.isoformat()` of an aware UTC datetime: `2026-11-01T13:01:55+00:00`, with
 * `.ffffff` microseconds only when they are not zero. Sub-millisecond fractions of `ms` are kept.
 * Throws `RangeError` outside the years 1-9999, which Python cannot represent.
 */
export function formatIsoTime(ms: number): string {
  if (!(ms >= MIN_TIME && ms <= MAX_TIME)) {
    throw new RangeError(`not a time in the years 1-9999: ${String(ms)}`);
  }
  // Whole milliseconds and the microseconds below them separately: ms * 1000 would lose
  // precision past 2^53 (around the year 2255).
  let whole = Math.floor(ms);
  let subMicros = Math.round((ms - whole) * 1000);
  if (subMicros === 1000) {
    whole += 1;
    subMicros = 0;
  }
  const second = Math.floor(whole / 1000);
  const fraction = (whole - second * 1000) * 1000 + subMicros;
  const day = Math.floor(second / 86_400);
  let rest = second - day * 86_400;
  const hour = Math.floor(rest / 3600);
  rest -= hour * 3600;
  const minute = Math.floor(rest / 60);
  const base = `${civilDate(day)}T${TWO_DIGITS[hour] as string}:${TWO_DIGITS[minute] as string}:${TWO_DIGITS[rest - minute * 60] as string}`;
  if (fraction === 0) return `${base}+00:00`;
  return `${base}.${String(fraction).padStart(6, '0')}+00:00`;
}

function digits(text: string, start: number, count: number): number {
  let value = 0;
  for (let i = start; i < start + count; i += 1) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/**
 * Parses what Python's `isoformat()` writes (`YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|±HH:MM[:SS]]`; no
 * offset means UTC) into epoch milliseconds, keeping microseconds as a fraction. `NaN` when the
 * text is not such a time.
 */
export function parseIsoTime(text: string): number {
  const n = text.length;
  if (n < 19) return Number.NaN;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  const sep = text.charCodeAt(10);
  if (
    year < 0 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > 31 ||
    hour < 0 ||
    hour > 23 ||
    minute < 0 ||
    minute > 59 ||
    second < 0 ||
    second > 59 ||
    text.charCodeAt(4) !== 45 ||
    text.charCodeAt(7) !== 45 ||
    (sep !== 84 && sep !== 32) ||
    text.charCodeAt(13) !== 58 ||
    text.charCodeAt(16) !== 58
  ) {
    return Number.NaN;
  }
  let i = 19;
  let fractionMs = 0;
  if (i < n && text.charCodeAt(i) === 46) {
    i += 1;
    let micros = 0;
    let count = 0;
    while (i < n && count < 6) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      micros = micros * 10 + d;
      count += 1;
      i += 1;
    }
    if (count === 0) return Number.NaN;
    for (let pad = count; pad < 6; pad += 1) micros *= 10;
    fractionMs = micros / 1000;
  }
  let offsetMs = 0;
  if (i < n) {
    const sign = text.charCodeAt(i);
    if (sign === 90 && i + 1 === n) {
      // 'Z'
    } else if ((sign === 43 || sign === 45) && (n - i === 6 || n - i === 9)) {
      const oh = digits(text, i + 1, 2);
      const om = digits(text, i + 4, 2);
      const os = n - i === 9 ? digits(text, i + 7, 2) : 0;
      if (oh < 0 || om < 0 || os < 0 || text.charCodeAt(i + 3) !== 58) return Number.NaN;
      offsetMs = (oh * 3600 + om * 60 + os) * 1000 * (sign === 45 ? -1 : 1);
    } else {
      return Number.NaN;
    }
  }
  // Date.UTC rolls 31 February over into March: such a day is not a date.
  if (day > 28 && day > daysInMonth(year, month)) return Number.NaN;
  let base = Date.UTC(year, month - 1, day, hour, minute, second);
  if (year < 100) {
    // Date.UTC maps years 0-99 to 1900-1999.
    const date = new Date(base);
    date.setUTCFullYear(year);
    base = date.getTime();
  }
  return base + fractionMs - offsetMs;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * The one reader of times written as text, for `put`, import and every command-line option:
 * everything `parseIsoTime` reads, and also a date alone (`2026-11-01`, midnight) or a time
 * without seconds (`2026-11-01T13:01`). A time without an offset is UTC, as proxywhirl means it,
 * wherever the process runs; microseconds are kept. `NaN` for anything else: no locale-dependent
 * `Date.parse` forms, whose reading of an offset-less time is the machine's time zone.
 */
export function parseTimeText(text: string): number {
  const trimmed = text.trim();
  if (trimmed.length === 10) return parseIsoTime(`${trimmed}T00:00:00`);
  // `YYYY-MM-DDTHH:MM`, maybe followed by an offset: give it its seconds.
  if (trimmed.length >= 16 && (trimmed.length === 16 || trimmed.charCodeAt(16) !== 58)) {
    return parseIsoTime(`${trimmed.slice(0, 16)}:00${trimmed.slice(16)}`);
  }
  return parseIsoTime(trimmed);
}
