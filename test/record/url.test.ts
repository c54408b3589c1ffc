import { describe, expect, it } from 'vitest';
import { InvalidProxyUrlError } from '../../src/errors.js';
import {
  canonicalizeProxyUrl,
  deriveKey,
  isCanonicalProxyUrl,
  isParserStableProxyUrl,
} from '../../src/record/url.js';

describe('canonicalizeProxyUrl', () => {
  /** The error `canonicalizeProxyUrl(input)` throws (the test fails when it throws none). */
  function errorOf(input: string): InvalidProxyUrlError {
    try {
      canonicalizeProxyUrl(input);
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidProxyUrlError);
      return error as InvalidProxyUrlError;
    }
    throw new Error(`canonicalizeProxyUrl(${JSON.stringify(input)}) did not throw`);
  }

  it.each([
    ['http://10.0.0.1:8080', 'http://10.0.0.1:8080'],
    ['HTTP://Example.COM:3128', 'http://example.com:3128'],
    ['10.0.0.1:8080', 'http://10.0.0.1:8080'],
    ['http://10.0.0.1', 'http://10.0.0.1:80'],
    ['http://10.0.0.1:80', 'http://10.0.0.1:80'],
    ['https://10.0.0.1', 'https://10.0.0.1:443'],
    ['socks5://10.0.0.1', 'socks5://10.0.0.1:1080'],
    ['socks4://10.0.0.1:4145/', 'socks4://10.0.0.1:4145'],
    ['  http://10.0.0.1:8080  ', 'http://10.0.0.1:8080'],
    ['http://[::1]:8080', 'http://[::1]:8080'],
  ])('%s -> %s', (input, expected) => {
    const canonical = canonicalizeProxyUrl(input);
    expect(canonical.url).toBe(expected);
    expect(isCanonicalProxyUrl(canonical.url)).toBe(true);
  });

  it('moves inline credentials out of the URL, percent-decoded', () => {
    expect(canonicalizeProxyUrl('http://bob:p%40ss%3Aw%2Frd@10.0.0.1:8080')).toEqual({
      url: 'http://10.0.0.1:8080',
      scheme: 'http',
      host: '10.0.0.1',
      port: 8080,
      username: 'bob',
      password: 'p@ss:w/rd',
    });
    expect(canonicalizeProxyUrl('socks5://only-user@10.0.0.1:1080')).toMatchObject({
      url: 'socks5://10.0.0.1:1080',
      username: 'only-user',
    });
  });

  it.each([
    ['', 'must be a non-empty string'],
    ['ftp://10.0.0.1:21', 'unsupported scheme "ftp"'],
    ['http://10.0.0.1:8080/path', 'must not have a path, query or fragment'],
    ['http://10.0.0.1:8080?x=1', 'must not have a path, query or fragment'],
    ['http://10.0.0.1:99999', 'is not a valid URL'],
    ['http://user:hunter2@10.0.0.1:99999', 'is not a valid URL'],
  ])('rejects %j with a message naming the problem', (input, message) => {
    const error = errorOf(input);
    expect(error).toMatchObject({ code: 'E_INVALID_PROXY_URL', field: 'proxyUrl' });
    expect(error.message).toContain(message);
    expect(error.message).not.toContain('hunter2');
  });

  it.each([
    ['http://bob:50%off@10.0.0.1:8080', 'password'],
    ['http://bob:100%@10.0.0.1:8080', 'password'],
    ['http://b%ZZob:pw@10.0.0.1:8080', 'username'],
    ['http://bob:%C3%28@10.0.0.1:8080', 'password'],
  ])('refuses the malformed percent-escape in %j with a coded error naming %s', (input, field) => {
    const error = errorOf(input);
    expect(error).toMatchObject({ code: 'E_INVALID_PROXY_URL', field });
    expect(error.message).toContain(`"${field}" in "proxyUrl" has a malformed percent-escape`);
    expect(error.message).toContain('%25');
    for (const secret of ['50%off', '100%', 'b%ZZob', '%C3%28']) {
      expect(error.message).not.toContain(secret);
    }
  });

  it.each([
    ['http://bob:ab\tc\nd@10.0.0.1:8080', 'password'],
    ['http://b\rob:abcd@10.0.0.1:8080', 'username'],
    ['http://bob:ab\u007fcd@10.0.0.1:8080', 'password'],
    ['http://10.0.\t0.1:8080', 'proxyUrl'],
    ['http://bob:abcd@10.0.0.1:80\n80', 'proxyUrl'],
  ])('refuses the control character in %j (never strips it), naming %s', (input, field) => {
    const error = errorOf(input);
    expect(error).toMatchObject({ code: 'E_INVALID_PROXY_URL', field });
    expect(error.message).toContain('control character');
    expect(error.message).toContain('refused rather than removed');
    if (field !== 'proxyUrl') expect(error.message).toContain(`"${field}" in "proxyUrl"`);
    expect(error.message).not.toMatch(/ab.?cd|ab\tc/);
  });

  it('decodes every valid escape of a credential exactly, control characters included', () => {
    expect(canonicalizeProxyUrl('http://bob:50%25off@10.0.0.1:8080').password).toBe('50%off');
    expect(canonicalizeProxyUrl('http://b%0Aob:ab%09c%0Dd@10.0.0.1:8080')).toMatchObject({
      username: 'b\nob',
      password: 'ab\tc\rd',
    });
    expect(canonicalizeProxyUrl('http://b%C3%A9b:p%20w@10.0.0.1:8080')).toMatchObject({
      username: 'b\u00e9b',
      password: 'p w',
    });
  });

  it.each([
    'http://user:pa/ss@host:1/x',
    'ftp://user:hunter2@host:1',
    '1.2.3.4:80:user:hunter2',
    'user:hunter2 host:80',
    'http://user:p@ss@word@host:99999',
  ])('never repeats a credential of %j in its error', (input) => {
    let message = '';
    try {
      canonicalizeProxyUrl(input);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).not.toBe('');
    for (const secret of ['pa/ss', 'hunter2', 'p@ss', 'word@'])
      expect(message).not.toContain(secret);
  });

  it('accepts only canonical strings on the fast path', () => {
    for (const url of [
      'HTTP://a:1',
      'http://a',
      'http://u:p@a:1',
      'http://a:1/',
      'http://a:0',
      'http://a:70000',
    ]) {
      expect(isCanonicalProxyUrl(url), url).toBe(false);
    }
  });
});

describe('the parser fast path', () => {
  it.each([
    'http://999.1.1.1:80',
    'http://0x7f.0.0.1:80',
    'http://010.0.0.1:80',
    'http://1.2.3.4:8080',
    'http://1.2.3:8080',
    'http://example.com:80',
    'http://a-b.example.com:3128',
    'http://example.123:80',
    'http://[::1]:80',
    'http://[0:0::1]:80',
  ])('is taken for %s only when the parser would return it unchanged', (url) => {
    if (isParserStableProxyUrl(url)) {
      expect(canonicalizeProxyUrl(url).url).toBe(url);
    } else {
      let canonical: string | undefined;
      try {
        canonical = canonicalizeProxyUrl(url).url;
      } catch {
        canonical = undefined;
      }
      if (canonical !== undefined) expect(isCanonicalProxyUrl(canonical)).toBe(true);
    }
  });

  it('rejects port 0', () => {
    expect(() => canonicalizeProxyUrl('http://10.0.0.1:0')).toThrow(
      'must have a port from 1 to 65535',
    );
  });
});

describe('deriveKey', () => {
  // Pairs taken from proxywhirl's own cache files (test/fixtures/proxywhirl).
  it.each([
    ['https://146.32.130.31:1080', 'daa6883de3b5ea2d'],
    ['http://98.110.216.186:9050', '5767fc14bc03465a'],
    ['socks5://31.170.216.130:55421', 'fffcbd0164ea2db9'],
  ])('matches proxywhirl for %s', (url, key) => {
    expect(deriveKey(url)).toBe(key);
  });
});
