// Streaming splitters for the import formats: UTF-8 decoding, lines (text, JSONL), the elements of
// a top-level JSON array, and line numbers for CSV records. Each holds at most one record (and one
// input chunk) at a time, so memory does not grow with the input.
import { StringDecoder } from 'node:string_decoder';
import { ImportFormatError } from '../errors.js';

/** The largest record (a line, a JSON element, a CSV row) an import accepts, in characters. */
export const MAX_RECORD_CHARS = 1 << 20;

/** Input chunks as Buffers; string chunks are encoded as UTF-8. */
export async function* toBuffers(
  input: AsyncIterable<Buffer | Uint8Array | string>,
): AsyncGenerator<Buffer> {
  for await (const chunk of input) {
    if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
    else if (Buffer.isBuffer(chunk)) yield chunk;
    else yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

/**
 * Decodes UTF-8 chunks (a multi-byte character may be split between two) into strings, dropping a
 * leading byte order mark. Malformed bytes become U+FFFD.
 */
export async function* decodeUtf8(
  input: AsyncIterable<Buffer | Uint8Array | string>,
): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let first = true;
  for await (const chunk of input) {
    let text = typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
    if (first && text !== '') {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (text !== '') yield text;
  }
  const rest = decoder.end();
  if (rest !== '') yield rest;
}

/** One line of input; `tooLong` when it exceeded `MAX_RECORD_CHARS` (its text is then dropped). */
export interface Line {
  line: number;
  text: string;
  tooLong: boolean;
}

/**
 * Splits text into lines at `\n`, `\r\n` or a lone `\r`, numbering them from 1. A line longer than
 * `maxChars` is not kept: it comes out once, with `tooLong` set and empty text.
 */
export async function* splitLines(
  chunks: AsyncIterable<string>,
  maxChars = MAX_RECORD_CHARS,
): AsyncGenerator<Line> {
  let partial = '';
  let tooLong = false;
  let line = 1;
  // The previous chunk ended with `\r`: a `\n` starting this one belongs to that line break.
  let skipLf = false;
  for await (const chunk of chunks) {
    let pos = 0;
    if (skipLf) {
      skipLf = false;
      if (chunk.charCodeAt(0) === 10) pos = 1;
    }
    let nextLf = chunk.indexOf('\n', pos);
    let nextCr = chunk.indexOf('\r', pos);
    while (nextLf !== -1 || nextCr !== -1) {
      let end: number;
      let width = 1;
      if (nextCr !== -1 && (nextLf === -1 || nextCr < nextLf)) {
        end = nextCr;
        if (end + 1 === chunk.length) skipLf = true;
        else if (chunk.charCodeAt(end + 1) === 10) width = 2;
      } else {
        end = nextLf;
      }
      if (tooLong || partial.length + (end - pos) > maxChars) {
        yield { line, text: '', tooLong: true };
      } else {
        yield {
          line,
          text: partial === '' ? chunk.slice(pos, end) : partial + chunk.slice(pos, end),
          tooLong: false,
        };
      }
      partial = '';
      tooLong = false;
      line += 1;
      pos = end + width;
      if (nextLf !== -1 && nextLf < pos) nextLf = chunk.indexOf('\n', pos);
      if (nextCr !== -1 && nextCr < pos) nextCr = chunk.indexOf('\r', pos);
    }
    if (!tooLong && pos < chunk.length) {
      if (partial.length + (chunk.length - pos) > maxChars) {
        tooLong = true;
        partial = '';
      } else {
        partial += chunk.slice(pos);
      }
    }
  }
  if (tooLong) yield { line, text: '', tooLong: true };
  else if (partial !== '') yield { line, text: partial, tooLong: false };
}

/** One element of a JSON array: its text, or what was wrong; `line` is where it starts. */
export type JsonElement = { line: number; text: string } | { line: number; error: string };

const BEFORE = 0; // before the opening '['
const EXPECT_VALUE = 1; // after '[' or ','
const AFTER_VALUE = 2; // after an element, before ',' or ']'
const IN_VALUE = 3; // inside an object, array or string element
const IN_SCALAR = 4; // inside a number, true, false or null
const DONE = 5; // after the closing ']'

/**
 * Splits a top-level JSON array into the texts of its elements, each with the line it starts on,
 * for `JSON.parse` one at a time. Written here because no installed dependency streams JSON and
 * this needs only a small part of a streaming parser: it tracks strings, escapes and nesting
 * depth, nothing else (validation is `JSON.parse`'s job). A malformed element is reported and the
 * split goes on with the next one; an element larger than `maxChars` is reported, not kept.
 */
export class JsonArraySplitter {
  #state = BEFORE;
  #line = 1;
  #previousCr = false;
  #depth = 0;
  #inString = false;
  #escaped = false;
  #parts: string[] = [];
  #size = 0;
  #tooLong = false;
  #startLine = 0;
  readonly #maxChars: number;

  constructor(maxChars = MAX_RECORD_CHARS) {
    this.#maxChars = maxChars;
  }

  /** Splits the next chunk; returns the elements it completed. */
  push(chunk: string): JsonElement[] {
    const out: JsonElement[] = [];
    let segment = this.#state === IN_VALUE || this.#state === IN_SCALAR ? 0 : -1;
    for (let i = 0; i < chunk.length; i += 1) {
      const c = chunk.charCodeAt(i);
      const isSpace = c === 32 || c === 10 || c === 13 || c === 9;
      switch (this.#state) {
        case IN_VALUE:
          if (this.#inString) {
            if (this.#escaped) this.#escaped = false;
            else if (c === 92) this.#escaped = true;
            else if (c === 34) {
              this.#inString = false;
              if (this.#depth === 0) {
                this.#finish(out, chunk, segment, i + 1);
                segment = -1;
              }
            }
          } else if (c === 34) this.#inString = true;
          else if (c === 123 || c === 91) this.#depth += 1;
          else if (c === 125 || c === 93) {
            this.#depth -= 1;
            if (this.#depth === 0) {
              this.#finish(out, chunk, segment, i + 1);
              segment = -1;
            }
          }
          break;
        case IN_SCALAR:
          if (isSpace || c === 44 || c === 93) {
            this.#finish(out, chunk, segment, i);
            segment = -1;
            if (c === 44) this.#state = EXPECT_VALUE;
            else if (c === 93) this.#state = DONE;
          }
          break;
        case EXPECT_VALUE:
          if (isSpace) break;
          if (c === 93) {
            // `]` right after `[`, or a trailing comma (tolerated: nothing is lost).
            this.#state = DONE;
          } else if (c === 44) {
            out.push({ line: this.#line, error: 'empty element in the JSON array (two commas)' });
          } else {
            segment = this.#begin(c, i);
          }
          break;
        case AFTER_VALUE:
          if (isSpace) break;
          if (c === 44) this.#state = EXPECT_VALUE;
          else if (c === 93) this.#state = DONE;
          else {
            out.push({
              line: this.#line,
              error: "missing ',' between two elements of the JSON array",
            });
            segment = this.#begin(c, i);
          }
          break;
        case BEFORE:
          if (isSpace) break;
          if (c !== 91) {
            throw new ImportFormatError(
              `the JSON input must be an array of records ('[' ...), but line ${this.#line} starts with ${
                c === 123
                  ? "'{' (for one JSON object per line, use the jsonl format)"
                  : 'something else'
              }`,
            );
          }
          this.#state = EXPECT_VALUE;
          break;
        case DONE:
          if (isSpace) break;
          out.push({ line: this.#line, error: 'unexpected text after the end of the JSON array' });
          this.#state = -1; // ignore the rest
          break;
        default:
          break;
      }
      if (c === 10) {
        if (!this.#previousCr) this.#line += 1;
        this.#previousCr = false;
      } else if (c === 13) {
        this.#line += 1;
        this.#previousCr = true;
      } else this.#previousCr = false;
    }
    if (segment !== -1) this.#keep(chunk.slice(segment));
    return out;
  }

  /** Ends the input; returns what remains to report. */
  end(): JsonElement[] {
    const out: JsonElement[] = [];
    if (this.#state === IN_SCALAR) {
      this.#finish(out, '', 0, 0);
    }
    if (this.#state === IN_VALUE) {
      out.push({
        line: this.#startLine,
        error: 'the element starting here is not closed before the end of the input',
      });
    } else if (this.#state === EXPECT_VALUE || this.#state === AFTER_VALUE) {
      out.push({
        line: this.#line,
        error: "the JSON array is not closed: ']' is missing at the end of the input",
      });
    }
    return out;
  }

  #begin(c: number, i: number): number {
    this.#startLine = this.#line;
    this.#parts = [];
    this.#size = 0;
    this.#tooLong = false;
    if (c === 123 || c === 91) {
      this.#state = IN_VALUE;
      this.#depth = 1;
      this.#inString = false;
    } else if (c === 34) {
      this.#state = IN_VALUE;
      this.#depth = 0;
      this.#inString = true;
    } else {
      this.#state = IN_SCALAR;
    }
    this.#escaped = false;
    return i;
  }

  #keep(text: string): void {
    if (this.#tooLong) return;
    this.#size += text.length;
    if (this.#size > this.#maxChars) {
      this.#tooLong = true;
      this.#parts = [];
    } else this.#parts.push(text);
  }

  #finish(out: JsonElement[], chunk: string, from: number, to: number): void {
    this.#keep(chunk.slice(from, to));
    this.#state = AFTER_VALUE;
    const line = this.#startLine;
    if (this.#tooLong) {
      out.push({ line, error: `the element is larger than ${this.#maxChars} characters` });
    } else {
      out.push({
        line,
        text: this.#parts.length === 1 ? (this.#parts[0] as string) : this.#parts.join(''),
      });
    }
    this.#parts = [];
    this.#size = 0;
  }
}

/**
 * Line numbers for CSV records from the parser's byte offsets. The parser reports where each
 * record ends (`info.bytes`, reliable) but not where it starts, and its own line count is wrong
 * for `\r\n` inside quoted fields; this keeps the bytes between the last record and the parser's
 * position and counts line breaks (`\n`, `\r\n`, lone `\r`) in them.
 */
export class ByteLineTracker {
  #chunks: Buffer[] = [];
  #index = 0;
  #offset = 0;
  #line = 1;
  #previousCr = false;

  /** Adds the next input chunk, before the parser sees it. */
  append(chunk: Buffer): void {
    if (chunk.length > 0) this.#chunks.push(chunk);
  }

  /**
   * Consumes the bytes up to `end` (a record's end offset) and returns the line of the record's
   * first byte: the first byte that is not a line break (skipped empty lines come before it).
   */
  consume(end: number): number {
    let start = 0;
    while (this.#offset < end) {
      const chunk = this.#chunks[0];
      if (chunk === undefined) break;
      const c = chunk[this.#index] as number;
      if (c === 10) {
        if (!this.#previousCr) this.#line += 1;
        this.#previousCr = false;
      } else if (c === 13) {
        this.#line += 1;
        this.#previousCr = true;
      } else {
        if (start === 0) start = this.#line;
        this.#previousCr = false;
      }
      this.#offset += 1;
      this.#index += 1;
      if (this.#index === chunk.length) {
        this.#chunks.shift();
        this.#index = 0;
      }
    }
    return start === 0 ? this.#line : start;
  }

  /** The line where the next record starts (after any empty lines), without consuming. */
  peekStart(): number {
    let line = this.#line;
    let previousCr = this.#previousCr;
    for (let n = 0; n < this.#chunks.length; n += 1) {
      const chunk = this.#chunks[n] as Buffer;
      for (let i = n === 0 ? this.#index : 0; i < chunk.length; i += 1) {
        const c = chunk[i];
        if (c === 10) {
          if (!previousCr) line += 1;
          previousCr = false;
        } else if (c === 13) {
          line += 1;
          previousCr = true;
        } else return line;
      }
    }
    return line;
  }
}
