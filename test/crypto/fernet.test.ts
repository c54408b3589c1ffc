import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DecryptionError, InvalidKeyError } from '../../src/errors.js';
import { FernetKey, decodeFernetToken, generateFernetKey } from '../../src/crypto/fernet.js';

// The official vectors (github.com/fernet/spec), copied into the repository.
function loadFixture<T>(relative: string): T {
  return JSON.parse(
    readFileSync(fileURLToPath(new URL(`../fixtures/${relative}`, import.meta.url)), 'utf8'),
  ) as T;
}

interface GenerateVector {
  token: string;
  now: string;
  iv: number[];
  src: string;
  secret: string;
}
interface VerifyVector {
  token: string;
  now: string;
  ttl_sec: number;
  src: string;
  secret: string;
}
interface InvalidVector {
  desc: string;
  token: string;
  now: string;
  ttl_sec: number;
  secret: string;
}

const generateVectors = loadFixture<GenerateVector[]>('fernet/generate.json');
const verifyVectors = loadFixture<VerifyVector[]>('fernet/verify.json');
const invalidVectors = loadFixture<InvalidVector[]>('fernet/invalid.json');

function expectDecryptionError(fn: () => unknown, message?: RegExp): DecryptionError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DecryptionError);
  const error = caught as DecryptionError;
  expect(error.code).toBe('E_DECRYPT');
  if (message) {
    expect(error.message).toMatch(message);
  }
  return error;
}

describe('Fernet spec vectors', () => {
  it('has all the vector files', () => {
    expect(generateVectors.length).toBeGreaterThan(0);
    expect(verifyVectors.length).toBeGreaterThan(0);
    expect(invalidVectors.map((v) => v.desc)).toEqual(
      expect.arrayContaining(['far-future TS (unacceptable clock skew)', 'expired TTL']),
    );
  });

  describe('generate', () => {
    it.each(generateVectors.map((v, i) => [i, v] as const))(
      'vector %i encrypts byte for byte',
      (_i, v) => {
        const key = new FernetKey(v.secret);
        const token = key.encrypt(v.src, { now: Date.parse(v.now), iv: Uint8Array.from(v.iv) });
        expect(token).toBe(v.token);
      },
    );
  });

  describe('verify', () => {
    it.each(verifyVectors.map((v, i) => [i, v] as const))('vector %i decrypts', (_i, v) => {
      const key = new FernetKey(v.secret);
      const plain = key.decryptToString(v.token, {
        ttlSeconds: v.ttl_sec,
        now: Date.parse(v.now),
      });
      expect(plain).toBe(v.src);
    });
  });

  describe('invalid', () => {
    it.each(invalidVectors.map((v) => [v.desc, v] as const))('%s', (_desc, v) => {
      const key = new FernetKey(v.secret);
      const error = expectDecryptionError(() =>
        key.decrypt(v.token, { ttlSeconds: v.ttl_sec, now: Date.parse(v.now) }),
      );
      expect(error.message).not.toContain(v.secret);
    });

    it('names the reason for each kind of failure', () => {
      const reasons: Record<string, RegExp> = {
        'incorrect mac': /incorrect MAC/,
        'too short': /too short/,
        'invalid base64': /base64/,
        'payload size not multiple of block size': /multiple of 16/,
        'payload padding error': /padding/,
        'far-future TS (unacceptable clock skew)': /future/,
        'expired TTL': /expired/,
        'incorrect IV (causes padding error)': /padding/,
      };
      for (const v of invalidVectors) {
        const reason = reasons[v.desc];
        if (reason === undefined) continue;
        const key = new FernetKey(v.secret);
        expectDecryptionError(
          () => key.decrypt(v.token, { ttlSeconds: v.ttl_sec, now: Date.parse(v.now) }),
          reason,
        );
      }
    });
  });
});

describe('FernetKey', () => {
  const key = new FernetKey(generateFernetKey());

  it('generates 32-byte url-safe keys with padding', () => {
    const text = generateFernetKey();
    expect(text).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    expect(Buffer.from(text, 'base64url')).toHaveLength(32);
    expect(generateFernetKey()).not.toBe(text);
  });

  it.each([
    ['empty', ''],
    ['unicode', 'pässwörd ✓ 🔑 "quoted"\t\n'],
    ['ascii', 'user0'],
    ['long', 'x'.repeat(10_000)],
    ['exactly one block', '0123456789abcdef'],
  ])('round-trips a %s string', (_name, text) => {
    const token = key.encrypt(text);
    expect(token).toMatch(/^[A-Za-z0-9_-]+={0,2}$/);
    expect(token.length % 4).toBe(0);
    expect(key.decryptToString(token)).toBe(text);
  });

  it('round-trips bytes, and tokens given as Buffer or Uint8Array of ASCII', () => {
    const bytes = Uint8Array.from([0, 1, 2, 255, 254]);
    const token = key.encrypt(bytes);
    expect([...key.decrypt(token)]).toEqual([...bytes]);
    expect([...key.decrypt(Buffer.from(token, 'ascii'))]).toEqual([...bytes]);
    expect([...key.decrypt(new Uint8Array(Buffer.from(token, 'ascii')))]).toEqual([...bytes]);
  });

  it('uses a fresh IV every time', () => {
    expect(key.encrypt('same')).not.toBe(key.encrypt('same'));
  });

  it('writes the timestamp as u64 big-endian seconds', () => {
    const now = Date.UTC(2030, 0, 2, 3, 4, 5, 999);
    const data = decodeFernetToken(key.encrypt('t', { now }));
    expect(data.readBigUInt64BE(1)).toBe(BigInt(Math.floor(now / 1000)));
  });

  it('checks the TTL only when asked', () => {
    const now = Date.UTC(2030, 0, 1);
    const token = key.encrypt('t', { now });
    expect(key.decryptToString(token, { now: now + 3_600_000 })).toBe('t');
    expect(key.decryptToString(token, { ttlSeconds: 3600, now: now + 3_600_000 })).toBe('t');
    expectDecryptionError(
      () => key.decrypt(token, { ttlSeconds: 3599, now: now + 3_600_000 }),
      /expired/,
    );
    expect(key.decryptToString(token, { ttlSeconds: 10, now: now - 60_000 })).toBe('t');
    expectDecryptionError(
      () => key.decrypt(token, { ttlSeconds: 10, now: now - 61_000 }),
      /future/,
    );
  });

  it('rejects a token whose single byte was changed, at every position', () => {
    const token = key.encrypt('secret value');
    const bytes = Buffer.from(token, 'base64url');
    for (let i = 0; i < bytes.length; i++) {
      const tampered = Buffer.from(bytes);
      tampered[i] = (tampered[i] ?? 0) ^ 0x01;
      const text = tampered.toString('base64url') + '='.repeat((3 - (bytes.length % 3)) % 3);
      expectDecryptionError(() => key.decrypt(text));
    }
  });

  it('rejects a token made with another key, naming the MAC', () => {
    const other = new FernetKey(generateFernetKey());
    expectDecryptionError(() => other.decrypt(key.encrypt('x')), /incorrect MAC/);
    expect(other.verifies(key.encrypt('x'))).toBe(false);
    expect(key.verifies(key.encrypt('x'))).toBe(true);
    expect(key.verifies('not a token')).toBe(false);
    expect(key.macMatches(Buffer.alloc(10))).toBe(false);
    expect(key.tryDecrypt(Buffer.alloc(10))).toBeUndefined();
  });

  it('never puts the plaintext or the key in an error message', () => {
    const secretText = 'hunter2-plaintext';
    const token = key.encrypt(secretText, { now: 0 });
    const keyText = generateFernetKey();
    const other = new FernetKey(keyText);
    const error = expectDecryptionError(() => other.decrypt(token));
    expect(error.message).not.toContain(secretText);
    expect(error.message).not.toContain(keyText);
    const expired = expectDecryptionError(() => key.decrypt(token, { ttlSeconds: 1 }));
    expect(expired.message).not.toContain(secretText);
  });

  it('rejects a non-token', () => {
    expectDecryptionError(() => key.decrypt(''), /base64/);
    expectDecryptionError(() => key.decrypt('AAAA'), /version/);
    expectDecryptionError(() => key.decrypt('gAAA'), /too short/);
    expectDecryptionError(() => key.decrypt(42 as unknown as string));
  });

  describe('invalid keys', () => {
    const good = generateFernetKey();
    it.each([
      ['empty', '', /empty/],
      ['not base64', `${good.slice(0, 20)}!!${good.slice(22)}`, /not valid base64/],
      ['too short', good.slice(0, 40), /32 bytes.*decodes to 30/],
      ['too long', `${good.slice(0, 43)}AAAA`, /32 bytes.*decodes to 35/],
      ['31 bytes', Buffer.alloc(31, 7).toString('base64url'), /decodes to 31/],
      ['wrong padding', `${good}=`, /not valid base64/],
    ])('%s → InvalidKeyError without the key text', (_name, text, message) => {
      let caught: unknown;
      try {
        new FernetKey(text);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidKeyError);
      const error = caught as InvalidKeyError;
      expect(error.code).toBe('E_INVALID_KEY');
      expect(error.message).toMatch(message);
      if (text !== '') {
        expect(error.message).not.toContain(text);
        expect(error.message).not.toContain(text.slice(0, 12));
      }
    });

    it('rejects a non-string', () => {
      expect(() => new FernetKey(undefined as unknown as string)).toThrow(InvalidKeyError);
    });
  });

  it('accepts standard base64 and missing padding', () => {
    const raw = Buffer.from([...Array(32).keys()].map((i) => 250 - i));
    const urlSafe = raw.toString('base64url');
    const standard = raw.toString('base64');
    expect(standard).toMatch(/[+/]/);
    const a = new FernetKey(urlSafe);
    const b = new FernetKey(standard);
    const c = new FernetKey(`${urlSafe}=`);
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.equals(c)).toBe(true);
    expect(b.decryptToString(a.encrypt('same key'))).toBe('same key');
  });

  it('exposes a fingerprint and the two key halves', () => {
    const text = 'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=';
    const k = new FernetKey(text);
    expect(k.fingerprint).toMatch(/^[0-9a-f]{8}$/);
    expect(Buffer.concat([k.signingKey, k.encryptionKey])).toEqual(Buffer.from(text, 'base64url'));
  });

  it('never prints the key', () => {
    const text = generateFernetKey();
    const k = new FernetKey(text);
    const printed = [
      String(k),
      `${k}`,
      JSON.stringify(k),
      JSON.stringify({ k }),
      inspect(k),
      inspect({ nested: { k } }, { depth: 5, showHidden: true }),
    ];
    const raw = Buffer.from(text, 'base64url');
    for (const out of printed) {
      expect(out).toContain(k.fingerprint);
      expect(out).not.toContain(text);
      expect(out).not.toContain(text.slice(0, 22));
      expect(out).not.toContain(raw.toString('hex').slice(0, 16));
    }
    expect(String(k)).toBe(`FernetKey(${k.fingerprint})`);
    expect(Object.keys(k)).toEqual([]);
  });
});

describe('proxywhirl interop', () => {
  it('decrypts a credential proxywhirl wrote to its JSONL tier', () => {
    // From the fixtures: the key proxywhirl used, and entry 5767fc14bc03465a's username_encrypted
    // in l2-jsonl/shard_00.jsonl (hex of the ASCII token); expected.json says it is "user1".
    const keyText = readFileSync(
      fileURLToPath(new URL('../fixtures/proxywhirl/fernet.key', import.meta.url)),
      'utf8',
    ).trim();
    const usernameEncrypted =
      '6741414141414272424e3366473056756d5a524a69555a566c386750517831417873596c55596b363161314f33' +
      '6b365962767350536246715f675a544741436161314b63613967345a695a454f48542d786a71396b464e7941' +
      '7755696e7333684a673d3d';
    const key = new FernetKey(keyText);
    const tokenBytes = Buffer.from(usernameEncrypted, 'hex');
    expect(key.decryptToString(tokenBytes)).toBe('user1');
    expect(key.decryptToString(tokenBytes.toString('ascii'))).toBe('user1');
  });
});
