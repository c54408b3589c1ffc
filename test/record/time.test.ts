// The one reader of times written as text: every form it takes, that an offset-less time is UTC
// wherever the process runs, and that microseconds survive; the same reading in `createEntry`,
// the import layer and the `--since` option.
import { afterEach, describe, expect, it } from 'vitest';
import { parseSince } from '../../src/cli/commands/inspect.js';
import { parseProxyRecords } from '../../src/io/import.js';
import { createEntry } from '../../src/record/entry.js';
import { parseTimeText } from '../../src/record/time.js';
import { chunks } from '../io/helpers.js';

const SECOND = Date.UTC(2026, 10, 1, 13, 1, 55);

describe('parseTimeText', () => {
  it.each([
    ['2026-11-01T13:01:55Z', SECOND],
    ['2026-11-01T13:01:55+00:00', SECOND],
    ['2026-11-01T13:01:55', SECOND],
    ['2026-11-01 13:01:55', SECOND],
    ['  2026-11-01T13:01:55  ', SECOND],
    ['2026-11-01T15:01:55+02:00', SECOND],
    ['2026-11-01T13:01:55.123456+00:00', SECOND + 123.456],
    ['2026-11-01T13:01:55.5Z', SECOND + 500],
    ['2026-11-01T13:01', SECOND - 55_000],
    ['2026-11-01T14:01+01:00', SECOND - 55_000],
    ['2026-11-01', Date.UTC(2026, 10, 1)],
  ])('%j is %d', (text, expected) => {
    expect(parseTimeText(text)).toBeCloseTo(expected, 6);
  });

  it.each(['yesterday', '2026-13-01', '2026-02-30', '2026-11-01T25:00', 'Sun, 01 Nov 2026', ''])(
    '%j is not a time',
    (text) => {
      expect(parseTimeText(text)).toBeNaN();
    },
  );
});

describe('one reading of an offset-less time everywhere', () => {
  const zone = process.env.TZ;
  afterEach(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  it('is UTC in put, import and --since, in a process far from UTC; microseconds are kept', async () => {
    // Node re-reads TZ when it changes: local time here is UTC+9.
    process.env.TZ = 'Asia/Tokyo';
    expect(new Date(SECOND).getHours()).toBe(22);
    const text = '2026-11-01T13:01:55.123456';
    const entry = createEntry(
      { proxyUrl: 'http://10.0.0.1:8080', fetchTime: text },
      { now: 0, ttlSecondsFor: () => 60 },
    );
    expect(entry.fetchTime).toBeCloseTo(SECOND + 123.456, 6);
    expect(parseSince(text)).toBeCloseTo(SECOND + 123.456, 6);
    const items = [];
    const csv = `proxy_url,fetch_time\nhttp://10.0.0.1:8080,${text}\n`;
    for await (const item of parseProxyRecords(chunks(csv, 64), { format: 'csv' })) {
      items.push(item);
    }
    expect(items).toHaveLength(1);
    const [item] = items;
    expect(item !== undefined && 'input' in item ? item.input.fetchTime : undefined).toBeCloseTo(
      SECOND + 123.456,
      6,
    );
  });
});
