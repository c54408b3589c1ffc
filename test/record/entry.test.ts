import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { InvalidEntryError } from '../../src/errors.js';
import { createEntry, toValidEntry, type ProxyEntryInput } from '../../src/record/entry.js';
import { REDACTED, Secret } from '../../src/record/secret.js';
import { deriveKey } from '../../src/record/url.js';

const NOW = Date.parse('2026-11-01T12:00:00Z');
const defaults = {
  now: NOW,
  ttlSecondsFor: (source: string) => (source === 'free-list' ? 60 : 3600),
};

describe('createEntry', () => {
  it('fills every field from a URL alone', () => {
    const entry = createEntry({ proxyUrl: 'http://bob:pw@10.0.0.1:8080' }, defaults);
    expect(entry).toMatchObject({
      key: deriveKey('http://10.0.0.1:8080'),
      proxyUrl: 'http://10.0.0.1:8080',
      source: 'manual',
      fetchTime: NOW,
      lastAccessed: NOW,
      accessCount: 0,
      ttlSeconds: 3600,
      expiresAt: NOW + 3_600_000,
      healthStatus: 'unknown',
      failureCount: 0,
      evictedFromL1: false,
      lastHealthCheck: undefined,
      totalHealthChecks: 0,
    });
    expect(entry.username?.reveal()).toBe('bob');
    expect(entry.password?.reveal()).toBe('pw');
  });

  it('lets explicit credential fields win over inline ones', () => {
    const entry = createEntry(
      { proxyUrl: 'http://a:b@10.0.0.1:8080', password: 'explicit' },
      defaults,
    );
    expect(entry.username?.reveal()).toBe('a');
    expect(entry.password?.reveal()).toBe('explicit');
  });

  it('accepts times as epoch ms, Date or ISO string, and uses the source TTL', () => {
    const entry = createEntry(
      {
        proxyUrl: 'http://10.0.0.1:8080',
        source: 'free-list',
        fetchTime: '2026-11-01T13:01:55+00:00',
        lastAccessed: new Date(NOW),
        lastHealthCheck: NOW - 1,
        nextCheckTime: null,
      },
      defaults,
    );
    expect(entry.fetchTime).toBe(Date.parse('2026-11-01T13:01:55Z'));
    expect(entry.expiresAt).toBe(entry.fetchTime + 60_000);
    expect(entry.lastAccessed).toBe(NOW);
    expect(entry.lastHealthCheck).toBe(NOW - 1);
    expect(entry.nextCheckTime).toBeUndefined();
  });

  it.each<[Partial<ProxyEntryInput>, string, string]>([
    [{ ttlSeconds: -5 }, 'ttlSeconds', '"ttlSeconds" must be a non-negative integer, got -5'],
    [{ accessCount: 1.5 }, 'accessCount', '"accessCount" must be a non-negative integer, got 1.5'],
    [{ source: '' }, 'source', '"source" must be a non-empty string, got ""'],
    [
      { healthStatus: 'great' as 'healthy' },
      'healthStatus',
      'must be one of unknown, healthy, degraded, unhealthy, dead, got "great"',
    ],
    [
      { fetchTime: 'yesterday' },
      'fetchTime',
      '"fetchTime" must be a time (epoch milliseconds, Date or ISO 8601 string), got "yesterday"',
    ],
    [
      { evictedFromL1: 1 as unknown as boolean },
      'evictedFromL1',
      '"evictedFromL1" must be a boolean, got 1',
    ],
    [{ key: '' }, 'key', '"key" must be a non-empty string'],
    [
      { password: 42 as unknown as string },
      'password',
      '"password" must be a string or a Secret, got number',
    ],
  ])('rejects %o naming the field, the expectation and the value', (override, field, message) => {
    let error: unknown;
    try {
      createEntry({ proxyUrl: 'http://10.0.0.1:8080', ...override }, defaults);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidEntryError);
    expect(error).toMatchObject({ code: 'E_INVALID_ENTRY', field });
    expect((error as Error).message).toContain(message);
  });

  it('keeps a control character in a credential field exactly (refused only inline in a URL)', () => {
    const entry = createEntry(
      { proxyUrl: 'http://10.0.0.1:8080', username: 'cust\n-1', password: 'ab\tc\u0000d' },
      defaults,
    );
    expect(entry.username?.reveal()).toBe('cust\n-1');
    expect(entry.password?.reveal()).toBe('ab\tc\u0000d');
    expect(() => createEntry({ proxyUrl: 'http://bob:ab\tcd@10.0.0.1:8080' }, defaults)).toThrow(
      /"password" in "proxyUrl" contains a control character/,
    );
  });

  it('a stored entry given a URL with credentials is refused without repeating them', () => {
    const entry = createEntry({ proxyUrl: 'http://10.0.0.1:8080' }, defaults);
    entry.proxyUrl = 'http://bob:s3cret@10.0.0.1:8080';
    let message = '';
    try {
      toValidEntry(entry, defaults);
    } catch (error) {
      expect(error).toMatchObject({ code: 'E_INVALID_ENTRY', field: 'proxyUrl' });
      message = (error as Error).message;
    }
    expect(message).toContain('must stay canonical');
    expect(message).not.toContain('s3cret');
    expect(message).not.toContain('bob');
  });
});

describe('Secret', () => {
  it('shows a redaction everywhere and reveals only on request', () => {
    const secret = new Secret('hunter2');
    const forms = [
      String(secret),
      `${secret}`,
      secret + '',
      JSON.stringify({ secret }),
      inspect(secret),
      inspect({ nested: { secret } }, { depth: 5, showHidden: true }),
    ];
    for (const form of forms) {
      expect(form).not.toContain('hunter2');
      expect(form).toContain(REDACTED);
    }
    expect(secret.reveal()).toBe('hunter2');
  });

  it('seals once and reuses the token', () => {
    let calls = 0;
    const cipher = {
      encrypt: (plain: string) => {
        calls += 1;
        return `token-of-${plain.length}`;
      },
      decrypt: () => 'never',
    };
    const secret = new Secret('abc');
    expect(secret.seal(cipher)).toBe('token-of-3');
    expect(secret.seal(cipher)).toBe('token-of-3');
    expect(calls).toBe(1);
    expect(secret.reveal()).toBe('abc');
  });

  it('decrypts lazily, once', () => {
    let calls = 0;
    const cipher = {
      encrypt: () => 'unused',
      decrypt: (token: string) => {
        calls += 1;
        return token.toUpperCase();
      },
    };
    const secret = Secret.fromToken('abc', cipher, 'password of entry k');
    expect(secret.isRevealed).toBe(false);
    expect(calls).toBe(0);
    expect(secret.reveal()).toBe('ABC');
    expect(secret.reveal()).toBe('ABC');
    expect(calls).toBe(1);
    const broken = Secret.fromToken(
      'x',
      {
        encrypt: () => '',
        decrypt: () => {
          throw new Error('bad MAC');
        },
      },
      'password of entry k',
    );
    expect(() => broken.reveal()).toThrow('cannot decrypt the password of entry k: bad MAC');
  });
});
