// parseProxyRecords: every format, line numbers, field mapping, and errors that name the line and
// the problem without ever showing a credential.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { ImportFormatError, InvalidOptionError } from '../../src/errors.js';
import { parseProxyRecords, type ImportItem, type ParseOptions } from '../../src/io/import.js';
import { Secret } from '../../src/record/secret.js';
import { chunks, collect, errorsOf, inputsOf } from './helpers.js';

async function parseText(
  text: string,
  options: ParseOptions,
  chunkSize = 7,
): Promise<ImportItem[]> {
  return collect(parseProxyRecords(chunks(text, chunkSize), options));
}

/** Parses with several chunk sizes and checks they all agree; returns the result. */
async function parseAll(text: string, options: ParseOptions): Promise<ImportItem[]> {
  const whole = await parseText(text, options, 1 << 20);
  for (const size of [1, 3, 64]) {
    const split = await parseText(text, options, size);
    expect(JSON.stringify(split), `chunk size ${size}`).toBe(JSON.stringify(whole));
  }
  return whole;
}

function reveal(value: unknown): unknown {
  return value instanceof Secret ? value.reveal() : value;
}

describe('text format', () => {
  it('reads one proxy per line, skipping comments and blank lines, with right line numbers', async () => {
    const text = [
      '# my list',
      '',
      '10.0.0.1:8080',
      '  socks5://10.0.0.2:1080   # trailing comment',
      'http://bob:s3cret@10.0.0.3:3128',
      '\t',
      '10.0.0.4:8000:alice:pa:ss',
    ].join('\r\n');
    const items = await parseAll(text, { format: 'text', source: 'list-a', ttlSeconds: 60 });
    expect(errorsOf(items)).toEqual([]);
    expect(inputsOf(items)).toEqual([
      { line: 3, proxyUrl: '10.0.0.1:8080', source: 'list-a', ttlSeconds: 60 },
      { line: 4, proxyUrl: 'socks5://10.0.0.2:1080', source: 'list-a', ttlSeconds: 60 },
      // Inline credentials stay in the URL; createEntry moves them out.
      { line: 5, proxyUrl: 'http://bob:s3cret@10.0.0.3:3128', source: 'list-a', ttlSeconds: 60 },
      {
        line: 7,
        proxyUrl: 'http://10.0.0.4:8000',
        username: 'alice',
        password: 'pa:ss',
        source: 'list-a',
        ttlSeconds: 60,
      },
    ]);
  });

  it('counts \\n, \\r\\n and lone \\r line breaks alike', async () => {
    const items = await parseAll('a.example:1\rb.example:2\r\n\nc.example:3\nd.example:4', {
      format: 'text',
    });
    expect(items.map((item) => item.line)).toEqual([1, 2, 4, 5]);
  });

  it('reports a bad line by number without echoing what could be a credential', async () => {
    const items = await parseAll(
      'ok.example:80\nuser:hunter2 host.example:80\nftp://ok.example:21\nhost.example:99999\n',
      { format: 'text' },
    );
    const errors = errorsOf(items);
    expect(errors.map((e) => e.line)).toEqual([2, 3, 4]);
    expect(errors[0]?.error).toMatch(/^line 2: "proxy URL" is not a valid URL$/);
    expect(errors[1]?.error).toMatch(/^line 3: .*unsupported scheme "ftp"/);
    for (const e of errors) expect(e.error).not.toContain('hunter2');
  });

  it('reports a line longer than 1 MiB and goes on', async () => {
    const text = `a.example:1\n${'x'.repeat(1_100_000)}\nb.example:2\n`;
    const items = await parseText(text, { format: 'text' }, 65536);
    expect(items.map((item) => item.line)).toEqual([1, 2, 3]);
    expect(errorsOf(items)[0]?.error).toMatch(/^line 2: the record is longer than/);
  });
});

describe('JSONL format', () => {
  it('maps snake_case and camelCase fields, skipping blank lines', async () => {
    const text = [
      '{"proxy_url": "http://10.0.0.1:8080", "ttl_seconds": 30, "health_status": "healthy", "evicted_from_l1": true}',
      '',
      '{"proxyUrl": "http://10.0.0.2:8080", "username": "u", "password": "p", "fetchTime": "2026-11-01T13:01:55.123456+00:00", "lastHealthCheck": null}',
      '"socks5://10.0.0.3:1080"',
    ].join('\n');
    const items = await parseAll(text, { format: 'jsonl', source: 'fallback' });
    expect(errorsOf(items)).toEqual([]);
    expect(inputsOf(items)).toEqual([
      {
        line: 1,
        proxyUrl: 'http://10.0.0.1:8080',
        ttlSeconds: 30,
        healthStatus: 'healthy',
        evictedFromL1: true,
        source: 'fallback',
      },
      {
        line: 3,
        proxyUrl: 'http://10.0.0.2:8080',
        username: 'u',
        password: 'p',
        // Microseconds are kept as a fraction of a millisecond; an ISO time without offset is UTC.
        fetchTime: Date.parse('2026-11-01T13:01:55.123Z') + 0.456,
        source: 'fallback',
      },
      { line: 4, proxyUrl: 'socks5://10.0.0.3:1080', source: 'fallback' },
    ]);
  });

  it('names the line and the field as the input spelled it', async () => {
    const text = [
      '{"proxy_url": "http://10.0.0.1:1", "ttl_seconds": -3}',
      '{"proxyUrl": "http://10.0.0.1:1", "accessCount": "many"}',
      '{"password": "hunter2"}',
      '{"proxy_url": "http://10.0.0.1:1", "password": hunter2}',
      '[1, 2]',
      '{"proxy_url": "http://10.0.0.1:1", "evicted_from_l1": "maybe"}',
      '{"proxy_url": "http://10.0.0.1:1", "health_status": "sleepy"}',
      '{"proxy_url": "http://10.0.0.1:1", "fetch_time": "yesterday"}',
      '{"proxy_url": "http://u:hunter2@10.0.0.1:notaport"}',
    ].join('\n');
    const errors = errorsOf(await parseAll(text, { format: 'jsonl' }));
    expect(errors.map((e) => e.error)).toEqual([
      'line 1: "ttl_seconds" must be a non-negative integer, got -3',
      'line 2: "accessCount" must be a non-negative integer, got "many"',
      'line 3: missing proxy URL (no "proxy_url", "url" or "host" field)',
      expect.stringMatching(/^line 4: invalid JSON: unexpected token/),
      'line 5: expected a JSON object (or a proxy URL string), got an array',
      'line 6: "evicted_from_l1" must be true, false, 1 or 0, got "maybe"',
      expect.stringMatching(/^line 7: "health_status" must be one of unknown, healthy/),
      expect.stringMatching(/^line 8: "fetch_time" must be a time/),
      'line 9: "proxy_url" is not a valid URL',
    ]);
    for (const e of errors) expect(e.error).not.toContain('hunter2');
  });

  it('never shows the input V8 quotes in a JSON.parse message', async () => {
    const lines = [
      '{"proxy_url": "http://10.0.0.1:1", "password": "hunter2" oops}',
      '{"proxy_url": "http://10.0.0.1:1", "password": hunter2}',
      '{"proxy_url": "http://10.0.0.1:1", "password": "hunter2\u0001"}',
      '{"password": "hunter2", ',
    ];
    const errors = errorsOf(await parseAll(lines.join('\n'), { format: 'jsonl' }));
    expect(errors).toHaveLength(4);
    for (const e of errors) {
      expect(e.error).toMatch(/^line \d: invalid JSON: /);
      expect(e.error).not.toContain('hunter2');
    }
  });

  it('refuses the placeholder a redacting export writes, and a record whose credentials were left out', async () => {
    const text = [
      '{"proxy_url": "http://10.0.0.1:1", "username": "bob", "password": "[redacted]"}',
      '{"proxy_url": "http://10.0.0.1:1", "username": "**********"}',
      '{"proxy_url": "http://10.0.0.1:1", "has_credentials": true}',
      '{"proxy_url": "http://10.0.0.1:1", "has_credentials": false}',
    ].join('\n');
    const items = await parseAll(text, { format: 'jsonl' });
    expect(errorsOf(items).map((e) => e.line)).toEqual([1, 2, 3]);
    expect(errorsOf(items)[0]?.error).toMatch(/placeholder "\[redacted\]"/);
    expect(errorsOf(items)[2]?.error).toMatch(/credentials were left out/);
    expect(inputsOf(items)).toEqual([{ line: 4, proxyUrl: 'http://10.0.0.1:1' }]);
  });
});

describe('encrypted credentials', () => {
  const keyring = new Keyring(generateFernetKey());
  const token = keyring.encrypt('s3cret-pass');
  const hex = Buffer.from(token, 'latin1').toString('hex');

  it('opens Fernet tokens, as text or as proxywhirl hex, with the key', async () => {
    const text = [
      JSON.stringify({ proxy_url: 'http://10.0.0.1:1', password_encrypted: token }),
      JSON.stringify({ proxy_url: 'http://10.0.0.1:2', password_encrypted: hex }),
    ].join('\n');
    const items = await parseAll(text, { format: 'jsonl', keyring });
    const inputs = inputsOf(items);
    expect(inputs).toHaveLength(2);
    for (const input of inputs) {
      expect(input.password).toBeInstanceOf(Secret);
      expect(reveal(input.password)).toBe('s3cret-pass');
      expect((input.password as Secret).token).toBe(token);
    }
  });

  it('says the key is needed, or that it is the wrong key', async () => {
    const text = JSON.stringify({ proxy_url: 'http://10.0.0.1:1', password_encrypted: hex });
    const withoutKey = errorsOf(await parseText(text, { format: 'jsonl' }));
    expect(withoutKey[0]?.error).toBe(
      'line 1: encrypted credentials need the key: "password_encrypted" is a Fernet token',
    );
    const wrongKey = errorsOf(
      await parseText(text, { format: 'jsonl', keyring: new Keyring(generateFernetKey()) }),
    );
    expect(wrongKey[0]?.error).toMatch(
      /^line 1: "password_encrypted" cannot be decrypted with the given key: /,
    );
    const notText = errorsOf(
      await parseText('{"proxy_url": "http://10.0.0.1:1", "username_encrypted": 5}', {
        format: 'jsonl',
        keyring,
      }),
    );
    expect(notText[0]?.error).toBe(
      'line 1: "username_encrypted" must be a Fernet token (text), got number',
    );
  });
});

describe('JSON array format', () => {
  it('splits a pretty-printed array, giving the line where each object starts', async () => {
    const text = `[
  {
    "proxy_url": "http://10.0.0.1:8080",
    "last_health_error": "timeout } ] \\" {"
  },
  {"proxy_url": "http://10.0.0.2:8080", "nested": {"a": [1, {"b": "]"}]}},
  "socks5://10.0.0.3:1080",

  {
    "proxy_url": "http://10.0.0.4:8080", "source": "s4"
  }
]
`;
    const items = await parseAll(text, { format: 'json' });
    expect(errorsOf(items)).toEqual([]);
    expect(inputsOf(items)).toEqual([
      { line: 2, proxyUrl: 'http://10.0.0.1:8080', lastHealthError: 'timeout } ] " {' },
      { line: 6, proxyUrl: 'http://10.0.0.2:8080' },
      { line: 7, proxyUrl: 'socks5://10.0.0.3:1080' },
      { line: 9, proxyUrl: 'http://10.0.0.4:8080', source: 's4' },
    ]);
  });

  it('takes host, numeric port and protocol fields when there is no URL', async () => {
    const items = await parseAll('[{"host": "10.0.0.2", "port": 3128, "protocol": "HTTPS"}]', {
      format: 'json',
    });
    expect(inputsOf(items)).toEqual([{ line: 1, proxyUrl: 'https://10.0.0.2:3128' }]);
  });

  it('reports bad elements and keeps the good ones around them', async () => {
    const text = [
      '[',
      '{"proxy_url": "http://10.0.0.1:1"},',
      '{"proxy_url": "http://10.0.0.2:1", "password": hunter2},',
      '42,',
      '{"proxy_url": "http://10.0.0.3:1"}',
      '{"proxy_url": "http://10.0.0.4:1"},',
      ',',
      '{"proxy_url": "http://10.0.0.5:1"},',
      ']',
    ].join('\n');
    const items = await parseAll(text, { format: 'json' });
    expect(inputsOf(items).map((i) => i.line)).toEqual([2, 5, 6, 8]);
    expect(errorsOf(items)).toEqual([
      { line: 3, error: expect.stringMatching(/^line 3: invalid JSON/) },
      { line: 4, error: 'line 4: expected a JSON object (or a proxy URL string), got number' },
      { line: 6, error: "line 6: missing ',' between two elements of the JSON array" },
      { line: 7, error: 'line 7: empty element in the JSON array (two commas)' },
    ]);
    expect(JSON.stringify(items)).not.toContain('hunter2');
  });

  it('reports an array or an element cut off at the end of the input', async () => {
    const unclosed = await parseAll('[{"proxy_url": "http://10.0.0.1:1"},\n', { format: 'json' });
    expect(errorsOf(unclosed)).toEqual([
      {
        line: 2,
        error: "line 2: the JSON array is not closed: ']' is missing at the end of the input",
      },
    ]);
    expect(inputsOf(unclosed)).toHaveLength(1);
    const cut = await parseAll('[{"proxy_url": "http://10.0.0.1:1"},\n{"proxy_url": "ht', {
      format: 'json',
    });
    expect(errorsOf(cut)).toEqual([
      {
        line: 2,
        error: 'line 2: the element starting here is not closed before the end of the input',
      },
    ]);
  });

  it('throws ImportFormatError for a document that is not an array', async () => {
    const error = await parseText('{"proxy_url": "http://10.0.0.1:1"}', { format: 'json' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ImportFormatError);
    expect((error as ImportFormatError).code).toBe('E_IMPORT_FORMAT');
    expect((error as Error).message).toMatch(/use the jsonl format/);
  });

  it('reads [] and an empty input as no records', async () => {
    expect(await parseAll('  [ ]  ', { format: 'json' })).toEqual([]);
    expect(await parseAll('', { format: 'json' })).toEqual([]);
  });
});

describe('CSV format', () => {
  it('reads a header, quoted fields and embedded newlines, with start lines', async () => {
    const text = [
      'Proxy URL,username,password,ttl_seconds,evicted_from_l1,fetch_time,last_health_check',
      'http://10.0.0.1:8080,alice,"multi',
      'line, ""quoted"" pass",120,true,2026-11-01T13:01:55+00:00,',
      '',
      'http://10.0.0.2:8080,,,,0,1700000000000,',
      '"http://10.0.0.3:8080","bob","p\r\nw",,FALSE,,2026-11-01T13:01:55Z',
    ].join('\r\n');
    const items = await parseAll(text, { format: 'csv', ttlSeconds: 99 });
    expect(errorsOf(items)).toEqual([]);
    expect(inputsOf(items)).toEqual([
      {
        line: 2,
        proxyUrl: 'http://10.0.0.1:8080',
        username: 'alice',
        password: 'multi\r\nline, "quoted" pass',
        ttlSeconds: 120,
        evictedFromL1: true,
        fetchTime: Date.parse('2026-11-01T13:01:55Z'),
      },
      {
        line: 5,
        proxyUrl: 'http://10.0.0.2:8080',
        evictedFromL1: false,
        fetchTime: 1700000000000,
        ttlSeconds: 99,
      },
      {
        line: 6,
        proxyUrl: 'http://10.0.0.3:8080',
        username: 'bob',
        password: 'p\r\nw',
        evictedFromL1: false,
        lastHealthCheck: Date.parse('2026-11-01T13:01:55Z'),
        ttlSeconds: 99,
      },
    ]);
  });

  it('builds the URL from host, port and scheme columns', async () => {
    const text = 'protocol,host,port\nsocks5,10.0.0.1,1080\n,10.0.0.2,3128\nhttps,::1,443\n';
    const items = await parseAll(text, { format: 'csv' });
    expect(inputsOf(items).map((i) => i.proxyUrl)).toEqual([
      'socks5://10.0.0.1:1080',
      '10.0.0.2:3128',
      'https://[::1]:443',
    ]);
  });

  it('reports rows with the wrong number of fields and bad values by line, and goes on', async () => {
    const text = [
      'url,password,ttl_seconds',
      'http://10.0.0.1:1,pass,word,60',
      'http://10.0.0.2:1,x,-3',
      'http://10.0.0.3:1,x,',
      ',secret,5',
    ].join('\n');
    const items = await parseAll(text, { format: 'csv' });
    expect(errorsOf(items)).toEqual([
      { line: 2, error: 'line 2: the row has 4 fields but the header has 3' },
      { line: 3, error: 'line 3: "ttl_seconds" must be a non-negative integer, got -3' },
      { line: 5, error: 'line 5: missing proxy URL (no "proxy_url", "url" or "host" field)' },
    ]);
    expect(inputsOf(items).map((i) => i.line)).toEqual([4]);
    expect(JSON.stringify(errorsOf(items))).not.toMatch(/pass|word|secret/);
  });

  it('reports an unclosed quote at the line where its record starts', async () => {
    const text =
      'url,password\nhttp://10.0.0.1:1,a\nhttp://10.0.0.2:1,"never closed\nhttp://10.0.0.3:1,b\n';
    const items = await parseAll(text, { format: 'csv' });
    expect(inputsOf(items).map((i) => i.line)).toEqual([2]);
    expect(errorsOf(items)).toEqual([
      {
        line: 3,
        error:
          'line 3: a quoted field is not closed before the end of the input; the rest of the input cannot be read',
      },
    ]);
  });

  it('throws ImportFormatError for a header without an address column; empty input is no records', async () => {
    await expect(parseText('a,b\n1,2\n', { format: 'csv' })).rejects.toBeInstanceOf(
      ImportFormatError,
    );
    expect(await parseAll('', { format: 'csv' })).toEqual([]);
    expect(await parseAll('proxy_url,password\n', { format: 'csv' })).toEqual([]);
  });

  it('reads a Node Readable and a byte order mark', async () => {
    const stream = Readable.from([Buffer.from('\ufeffproxy_url\nhttp://10.0.0.1:1\n', 'utf8')]);
    const items = await collect(parseProxyRecords(stream, { format: 'csv' }));
    expect(inputsOf(items)).toEqual([{ line: 2, proxyUrl: 'http://10.0.0.1:1' }]);
  });
});

describe('options', () => {
  it('are checked at once', () => {
    expect(() => parseProxyRecords(chunks(''), { format: 'xml' as 'csv' })).toThrow(
      InvalidOptionError,
    );
    expect(() => parseProxyRecords(chunks(''), { format: 'csv', ttlSeconds: -1 })).toThrow(
      InvalidOptionError,
    );
    expect(() => parseProxyRecords(chunks(''), { format: 'csv', source: '' })).toThrow(
      InvalidOptionError,
    );
  });
});
