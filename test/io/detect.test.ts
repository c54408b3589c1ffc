// detectFormat and readHead: the format from the name, else from the content; binary refused.
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ImportFormatError } from '../../src/errors.js';
import { detectFormat, readHead } from '../../src/io/import.js';
import { chunks, collect } from './helpers.js';

const text = (s: string) => Buffer.from(s, 'utf8');

describe('detectFormat', () => {
  it('goes by the extension first', () => {
    const any = text('10.0.0.1:80\n');
    expect(detectFormat('list.csv', any)).toBe('csv');
    expect(detectFormat('/tmp/x/LIST.JSON', any)).toBe('json');
    expect(detectFormat('a.jsonl', any)).toBe('jsonl');
    expect(detectFormat('a.ndjson', any)).toBe('jsonl');
    expect(detectFormat('proxies.txt', text('[1]'))).toBe('text');
    expect(detectFormat('proxies.list', any)).toBe('text');
  });

  it('falls back to the content for other names, standard input or no name', () => {
    expect(detectFormat(undefined, text('  \n [{"proxy_url": "x"}]'))).toBe('json');
    expect(detectFormat('-', text('\ufeff\n{"proxy_url": "x"}\n{"proxy_url": "y"}\n'))).toBe(
      'jsonl',
    );
    expect(detectFormat('dump.dat', text('proxy_url,username\nhttp://a:1,u\n'))).toBe('csv');
    expect(detectFormat(undefined, text('"Proxy URL",source\nx,y\n'))).toBe('csv');
    expect(detectFormat(undefined, text('scheme,host,port\nhttp,a,1\n'))).toBe('csv');
    expect(detectFormat(undefined, text('url\nhttp://a:1\n'))).toBe('csv');
    expect(detectFormat(undefined, text('http://a:1\nhttp://b:1\n'))).toBe('text');
    expect(detectFormat(undefined, text('# list\n10.0.0.1:80\n'))).toBe('text');
    expect(detectFormat(undefined, text('a,b,c\n1,2,3\n'))).toBe('text');
    expect(detectFormat(undefined, Buffer.alloc(0))).toBe('text');
  });

  it('refuses binary content with a coded error, whatever the name', () => {
    const cases: [string | undefined, Buffer, RegExp][] = [
      ['proxies.csv', Buffer.from([0x68, 0x00, 0x69]), /looks binary: it contains NUL bytes/],
      [undefined, gzipSync(text('10.0.0.1:80\n'.repeat(100))), /gzip-compressed/],
      ['x.txt', Buffer.from([0xff, 0xfe, 0x68, 0x00]), /UTF-16/],
      [undefined, Buffer.from(randomBytes(4096).map((b) => (b === 0 ? 1 : b))), /looks binary/],
      [undefined, Buffer.from('\u0001\u0002\u0003\u0004abc'), /looks binary: 4 of its first 7/],
    ];
    for (const [name, bytes, message] of cases) {
      let caught: unknown;
      try {
        detectFormat(name, bytes);
      } catch (error) {
        caught = error;
      }
      expect(caught, String(name)).toBeInstanceOf(ImportFormatError);
      expect((caught as ImportFormatError).code).toBe('E_IMPORT_FORMAT');
      expect((caught as Error).message).toMatch(message);
    }
  });

  it('accepts UTF-8 text with non-ASCII characters, even cut mid-character', () => {
    const sample = text('proxy_url,source\nhttp://a:1,Zürich — 東京\n'.repeat(300));
    expect(detectFormat(undefined, sample.subarray(0, 8191))).toBe('csv');
  });
});

describe('readHead', () => {
  it('reads the first bytes and replays them with the rest', async () => {
    const content = 'x'.repeat(10_000) + '\nend';
    const { head, input } = await readHead(chunks(content, 1000), 8192);
    expect(head.length).toBe(8192);
    expect(Buffer.concat(await collect(input)).toString()).toBe(content);
    const short = await readHead(chunks('abc'), 8192);
    expect(short.head.toString()).toBe('abc');
    expect(Buffer.concat(await collect(short.input)).toString()).toBe('abc');
  });
});
