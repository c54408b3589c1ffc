// Streaming import of proxy lists: detect the format and parse records one at a time (CSV, a JSON
// array, JSONL, plain `host:port` text) into `ProxyEntryInput`s; `store-records.ts` stores them
// in a cache with bounded concurrency. Memory stays flat whatever the input's size: only one
// record per format stage and a bounded number of writes in flight are held at a time. See
// docs/formats.md.
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { parse, type CsvError } from 'csv-parse';
import { ImportFormatError, InvalidOptionError } from '../errors.js';
import { assertOptionsObject, rejectUnknownOptions, type OptionNames } from '../option-check.js';
import type { ProxyEntryInput } from '../record/entry.js';
import type { TokenCipher } from '../record/secret.js';
import {
  isAddressColumn,
  normalizeName,
  recordToInput,
  urlToInput,
  type MappedRecord,
  type RecordContext,
} from './fields.js';
import {
  ByteLineTracker,
  decodeUtf8,
  JsonArraySplitter,
  MAX_RECORD_CHARS,
  splitLines,
  toBuffers,
} from './split.js';

export {
  importRecords,
  type ImportFailure,
  type ImportOptions,
  type ImportSummary,
} from './store-records.js';

/** The formats `parseProxyRecords` reads. */
export type ImportFormat = 'csv' | 'json' | 'jsonl' | 'text';
export const IMPORT_FORMATS: readonly ImportFormat[] = Object.freeze([
  'csv',
  'json',
  'jsonl',
  'text',
]);

/**
 * One parsed record: the input to store, or what was wrong with it. `line` is the 1-based line of
 * the input where the record starts. `error` begins with `line N: ` and never holds a credential.
 */
export type ImportItem = { line: number; input: ProxyEntryInput } | { line: number; error: string };

/** Options of `parseProxyRecords`. */
export interface ParseOptions {
  format: ImportFormat;
  /** Source of records that name none (default: the cache's, `manual`). */
  source?: string;
  /** TTL of records that give none (default: the cache's TTL for the record's source). */
  ttlSeconds?: number;
  /**
   * The key (a `Keyring`) that opens `username_encrypted`/`password_encrypted` tokens. Without it
   * a record carrying encrypted credentials is reported as an error.
   */
  keyring?: TokenCipher;
}

const PARSE_OPTION_NAMES: OptionNames<ParseOptions> = Object.freeze({
  format: true,
  source: true,
  ttlSeconds: true,
  keyring: true,
});

/** How many leading bytes `detectFormat` looks at, and `readHead` reads. */
export const DETECT_BYTES = 8192;

const EXTENSIONS: Readonly<Record<string, ImportFormat>> = {
  csv: 'csv',
  json: 'json',
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  txt: 'text',
  list: 'text',
};

/**
 * The format of an input: from the extension of `pathOrName` (`.csv`, `.json`, `.jsonl` or
 * `.ndjson`, `.txt` or `.list`), failing that from `firstBytes`: `[` first → json; `{` starting the
 * first non-blank line → jsonl; a first line that is a CSV header naming a `proxy_url`, `url`,
 * `proxy` or `host` column (with commas, or that name alone) → csv; anything else → text.
 *
 * @throws ImportFormatError (`E_IMPORT_FORMAT`) when the content looks binary (NUL bytes, UTF-16,
 *   or more than 10% of the first 8 KiB not text), whatever the extension.
 */
export function detectFormat(pathOrName: string | undefined, firstBytes: Buffer): ImportFormat {
  const sample = firstBytes.subarray(0, DETECT_BYTES);
  assertText(pathOrName, sample);
  const extension = /\.([a-z0-9]+)$/i.exec(pathOrName ?? '')?.[1]?.toLowerCase();
  const byName = extension === undefined ? undefined : EXTENSIONS[extension];
  if (byName !== undefined) return byName;
  let text = new StringDecoder('utf8').write(sample);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) return 'json';
  if (trimmed.startsWith('{')) return 'jsonl';
  const firstLine = trimmed.split(/\r\n|\r|\n/, 1)[0] ?? '';
  // A header: cells naming an address column (a one-column header is just that name).
  const cells = firstLine
    .split(',')
    .map((cell) => normalizeName(cell.trim().replace(/^"|"$/g, '')));
  if (cells.some(isAddressColumn)) return 'csv';
  return 'text';
}

function assertText(pathOrName: string | undefined, sample: Buffer): void {
  const what =
    pathOrName === undefined || pathOrName === '-' ? 'the input' : JSON.stringify(pathOrName);
  const b0 = sample[0];
  const b1 = sample[1];
  if ((b0 === 0xff && b1 === 0xfe) || (b0 === 0xfe && b1 === 0xff)) {
    throw new ImportFormatError(
      `${what} is UTF-16 text; import reads UTF-8: convert it first (for example with iconv)`,
    );
  }
  const hint =
    b0 === 0x1f && b1 === 0x8b
      ? ' (it is gzip-compressed: decompress it first)'
      : b0 === 0x50 && b1 === 0x4b
        ? ' (it is a zip archive: extract it first)'
        : '';
  if (sample.includes(0)) {
    throw new ImportFormatError(
      `${what} looks binary: it contains NUL bytes${hint}; import reads CSV, JSON, JSONL or text`,
    );
  }
  let odd = 0;
  for (const byte of sample) {
    if ((byte < 32 && byte !== 9 && byte !== 10 && byte !== 12 && byte !== 13) || byte === 127) {
      odd += 1;
    }
  }
  // Bytes that are not UTF-8 decode to U+FFFD (an incomplete character at the end is held back).
  for (const char of new StringDecoder('utf8').write(sample)) if (char === '\ufffd') odd += 1;
  if (sample.length > 0 && odd / sample.length > 0.1) {
    throw new ImportFormatError(
      `${what} looks binary: ${odd} of its first ${sample.length} bytes are not text${hint}; import reads CSV, JSON, JSONL or text`,
    );
  }
}

/**
 * Reads the first `bytes` bytes of `input` (for `detectFormat`) without losing them: `input` in
 * the result yields everything, those bytes included. Use it for a stream that cannot be reopened,
 * such as standard input.
 */
export async function readHead(
  input: AsyncIterable<Buffer | Uint8Array | string>,
  bytes = DETECT_BYTES,
): Promise<{ head: Buffer; input: AsyncIterable<Buffer> }> {
  const iterator = toBuffers(input)[Symbol.asyncIterator]();
  const taken: Buffer[] = [];
  let size = 0;
  let ended = false;
  while (size < bytes) {
    const next = await iterator.next();
    if (next.done === true) {
      ended = true;
      break;
    }
    taken.push(next.value);
    size += next.value.length;
  }
  const head = Buffer.concat(taken, size).subarray(0, bytes);
  async function* replay(): AsyncGenerator<Buffer> {
    try {
      while (taken.length > 0) yield taken.shift() as Buffer;
      if (ended) return;
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) return;
        yield next.value;
      }
    } finally {
      await iterator.return?.(undefined);
    }
  }
  return { head, input: replay() };
}

/**
 * Parses `input` (a stream of a file, standard input, or any iterable of chunks) as `format`, one
 * record at a time. Every record comes out once: as an input checked with `createEntry`, or as an
 * error naming its line and what was wrong (never a credential). An input that is not the format
 * at all (a JSON document that is not an array, a CSV header without an address column) throws
 * `ImportFormatError` from the iteration. An empty input yields nothing.
 *
 * @throws InvalidOptionError (`E_INVALID_OPTION`) at once for bad options.
 */
export function parseProxyRecords(
  input: Readable | AsyncIterable<Buffer | Uint8Array | string>,
  options: ParseOptions,
): AsyncIterable<ImportItem> {
  assertOptionsObject('parseProxyRecords', options, 'with "format"');
  rejectUnknownOptions('parseProxyRecords', options, PARSE_OPTION_NAMES);
  const { format, source, ttlSeconds, keyring } = options;
  if (!IMPORT_FORMATS.includes(format)) {
    throw new InvalidOptionError(
      `"format" must be one of ${IMPORT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`,
    );
  }
  if (source !== undefined && (typeof source !== 'string' || source === '')) {
    throw new InvalidOptionError('"source" must be a non-empty string');
  }
  if (ttlSeconds !== undefined && !(Number.isSafeInteger(ttlSeconds) && ttlSeconds >= 0)) {
    throw new InvalidOptionError(
      `"ttlSeconds" must be a non-negative integer, got ${String(ttlSeconds)}`,
    );
  }
  if (
    keyring !== undefined &&
    (typeof keyring !== 'object' || typeof keyring.decrypt !== 'function')
  ) {
    throw new InvalidOptionError('"keyring" must be a Keyring');
  }
  const context = (line: number): RecordContext => ({ line, source, ttlSeconds, cipher: keyring });
  const chunks = input as AsyncIterable<Buffer | Uint8Array | string>;
  switch (format) {
    case 'text':
      return parseText(chunks, context);
    case 'jsonl':
      return parseJsonLines(chunks, context);
    case 'json':
      return parseJsonArray(chunks, context);
    case 'csv':
      return parseCsv(chunks, context);
  }
}

function toItem(line: number, mapped: MappedRecord): ImportItem {
  return 'error' in mapped
    ? { line, error: `line ${line}: ${mapped.error}` }
    : { line, input: mapped.input };
}

function tooLong(line: number): ImportItem {
  return { line, error: `line ${line}: the record is longer than ${MAX_RECORD_CHARS} characters` };
}

// `host:port:user:pass`, a common provider format (with an optional scheme).
const HOST_PORT_USER_PASS =
  /^(?:([a-z][a-z0-9+.-]*):\/\/)?([^\s:@/[\]]+):(\d{1,5}):([^\s:@]+):(.+)$/i;

async function* parseText(
  input: AsyncIterable<Buffer | Uint8Array | string>,
  context: (line: number) => RecordContext,
): AsyncGenerator<ImportItem> {
  for await (const { line, text, tooLong: long } of splitLines(decodeUtf8(input))) {
    if (long) {
      yield tooLong(line);
      continue;
    }
    let value = text;
    const comment = value.search(/\s#/);
    if (comment !== -1) value = value.slice(0, comment);
    value = value.trim();
    if (value === '' || value.startsWith('#')) continue;
    // A copy: a slice would keep the whole input chunk alive for as long as the entry is cached.
    value = Buffer.from(value, 'utf8').toString('utf8');
    const parts = value.includes('@') ? null : HOST_PORT_USER_PASS.exec(value);
    if (parts === null) {
      yield toItem(line, urlToInput(value, context(line)));
    } else {
      const [, scheme, host, port, username, password] = parts;
      yield toItem(
        line,
        recordToInput(
          [
            ['proxy_url', `${scheme ?? 'http'}://${host}:${port}`],
            ['username', username],
            ['password', password],
          ],
          context(line),
        ),
      );
    }
  }
}

async function* parseJsonLines(
  input: AsyncIterable<Buffer | Uint8Array | string>,
  context: (line: number) => RecordContext,
): AsyncGenerator<ImportItem> {
  for await (const { line, text, tooLong: long } of splitLines(decodeUtf8(input))) {
    if (long) {
      yield tooLong(line);
      continue;
    }
    const trimmed = text.trim();
    if (trimmed === '') continue;
    yield jsonToItem(line, trimmed, context(line));
  }
}

async function* parseJsonArray(
  input: AsyncIterable<Buffer | Uint8Array | string>,
  context: (line: number) => RecordContext,
): AsyncGenerator<ImportItem> {
  const splitter = new JsonArraySplitter();
  const toItems = function* (elements: ReturnType<JsonArraySplitter['push']>) {
    for (const element of elements) {
      yield 'error' in element
        ? { line: element.line, error: `line ${element.line}: ${element.error}` }
        : jsonToItem(element.line, element.text, context(element.line));
    }
  };
  for await (const chunk of decodeUtf8(input)) yield* toItems(splitter.push(chunk));
  yield* toItems(splitter.end());
}

function jsonToItem(line: number, text: string, context: RecordContext): ImportItem {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { line, error: `line ${line}: invalid JSON: ${describeJsonError(error)}` };
  }
  if (typeof value === 'string') return toItem(line, urlToInput(value, context));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const type = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    return {
      line,
      error: `line ${line}: expected a JSON object (or a proxy URL string), got ${type}`,
    };
  }
  return toItem(line, recordToInput(Object.entries(value), context));
}

/**
 * `JSON.parse`'s message without the part of the input V8 quotes in it (`Unexpected token 'x',
 * "...": is not valid JSON`), which could be a credential.
 */
function describeJsonError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const token =
    /^Unexpected token\b.*?(?: in JSON at position (\d+))?(?: \(line \d+ column \d+\))?$/s.exec(
      message,
    );
  let safe = message;
  if (token !== null)
    safe = token[1] === undefined ? 'unexpected token' : `unexpected token at position ${token[1]}`;
  else if (message.includes(' is not valid JSON')) safe = 'not valid JSON';
  return safe.includes('"') ? 'not valid JSON' : safe;
}

async function* parseCsv(
  input: AsyncIterable<Buffer | Uint8Array | string>,
  context: (line: number) => RecordContext,
): AsyncGenerator<ImportItem> {
  const tracker = new ByteLineTracker();
  // The parser hands each record to `on_record`, synchronously and in order, and keeps none: they
  // are queued here and yielded before the next chunk is written, so at most one chunk's records
  // are held, and none is lost when a later one breaks the parse.
  let rows: { fields: string[]; line: number }[] = [];
  const parser = parse({
    bom: true,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    max_record_size: MAX_RECORD_CHARS,
    on_record: (fields: string[], info: { bytes: number }) => {
      rows.push({ fields, line: tracker.consume(info.bytes) });
      return null;
    },
  });
  // Errors are taken from the write callbacks below; this keeps them from being unhandled.
  parser.on('error', () => {});
  const write = (chunk: Buffer | undefined) =>
    new Promise<Error | undefined>((resolve) => {
      const done = (error?: Error | null) => resolve(error ?? undefined);
      if (chunk === undefined) parser.end(done);
      else parser.write(chunk, done);
    });
  let header: string[] | undefined;
  function* take(): Generator<ImportItem> {
    const taken = rows;
    rows = [];
    for (const { fields, line } of taken) {
      if (fields.every((cell) => cell.trim() === '')) continue;
      if (header === undefined) {
        header = fields.map((name) => name.trim());
        if (!header.some((name) => isAddressColumn(normalizeName(name)))) {
          throw new ImportFormatError(
            `the CSV header on line ${line} names no "proxy_url", "url", "proxy" or "host" column`,
          );
        }
        continue;
      }
      if (fields.length !== header.length) {
        // Cells are not matched to columns when their count is off: a credential could land in
        // a column whose value an error message would show.
        yield {
          line,
          error: `line ${line}: the row has ${fields.length} fields but the header has ${header.length}`,
        };
        continue;
      }
      const names = header;
      yield toItem(
        line,
        recordToInput(
          fields.map((value, index) => [names[index] as string, value] as const),
          context(line),
        ),
      );
    }
  }
  try {
    let error: Error | undefined;
    for await (const chunk of toBuffers(input)) {
      tracker.append(chunk);
      error = await write(chunk);
      yield* take();
      if (error !== undefined) break;
    }
    if (error === undefined) {
      error = await write(undefined);
      yield* take();
    }
    if (error !== undefined) {
      const code = (error as Partial<CsvError>).code;
      if (typeof code !== 'string' || !code.startsWith('CSV_')) throw error;
      const line = tracker.peekStart();
      const reason =
        code === 'CSV_QUOTE_NOT_CLOSED'
          ? 'a quoted field is not closed before the end of the input'
          : code === 'CSV_MAX_RECORD_SIZE'
            ? `the record is longer than ${MAX_RECORD_CHARS} characters (an unclosed quote?)`
            : `malformed CSV (${code})`;
      yield { line, error: `line ${line}: ${reason}; the rest of the input cannot be read` };
    }
  } finally {
    parser.destroy();
  }
}
