import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DecryptionError, InvalidKeyError } from '../../src/errors.js';
import { FernetKey, generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return expect.fail('expected a throw');
}

describe('Keyring', () => {
  const oldText = generateFernetKey();
  const midText = generateFernetKey();
  const newText = generateFernetKey();
  const oldKey = new FernetKey(oldText);
  const midKey = new FernetKey(midText);
  const newKey = new FernetKey(newText);

  it('encrypts with the current key and decrypts', () => {
    const ring = new Keyring(newText);
    const token = ring.encrypt('pässword');
    expect(newKey.decryptToString(token)).toBe('pässword');
    expect(ring.decrypt(token)).toBe('pässword');
    expect(ring.decrypt(Buffer.from(token, 'ascii'))).toBe('pässword');
    expect(ring.isCurrent(token)).toBe(true);
  });

  it('exposes current, previous and fingerprints (current first)', () => {
    const ring = new Keyring(newKey, [midText, oldKey]);
    expect(ring.current.fingerprint).toBe(newKey.fingerprint);
    expect(ring.previous.map((k) => k.fingerprint)).toEqual([
      midKey.fingerprint,
      oldKey.fingerprint,
    ]);
    expect(ring.fingerprints).toEqual([newKey.fingerprint, midKey.fingerprint, oldKey.fingerprint]);
  });

  it('decrypts a token made with any previous key', () => {
    const ring = new Keyring(newText, [midText, oldText]);
    expect(ring.decrypt(oldKey.encrypt('old'))).toBe('old');
    expect(ring.decrypt(midKey.encrypt('mid'))).toBe('mid');
    expect(ring.isCurrent(oldKey.encrypt('old'))).toBe(false);
  });

  it('passes the TTL through', () => {
    const ring = new Keyring(newText, [oldText]);
    const token = oldKey.encrypt('t', { now: 1_000_000 });
    expect(ring.decrypt(token, { ttlSeconds: 10, now: 1_005_000 })).toBe('t');
    const error = thrown(() => ring.decrypt(token, { ttlSeconds: 10, now: 1_011_000 }));
    expect((error as DecryptionError).message).toMatch(/expired/);
  });

  it('throws one DecryptionError when no key can decrypt', () => {
    const ring = new Keyring(newText, [midText]);
    const error = thrown(() => ring.decrypt(oldKey.encrypt('secret-plaintext')));
    expect(error).toBeInstanceOf(DecryptionError);
    expect((error as DecryptionError).code).toBe('E_DECRYPT');
    expect((error as Error).message).toMatch(/no key in the keyring \(2 keys tried\)/);
    expect((error as Error).message).not.toContain('secret-plaintext');
    expect((error as Error).message).not.toContain(newText);
  });

  it('keeps the reason for a malformed token', () => {
    const ring = new Keyring(newText, [midText]);
    const error = thrown(() => ring.decrypt('%%% not a token'));
    expect(error).toBeInstanceOf(DecryptionError);
    expect((error as Error).message).toMatch(/base64/);
    expect(ring.isCurrent('%%% not a token')).toBe(false);
  });

  it('rotate re-encrypts an old token under the current key', () => {
    const ring = new Keyring(newText, [oldText]);
    const old = oldKey.encrypt('credential');
    const rotated = ring.rotate(old);
    expect(rotated).not.toBe(old);
    expect(newKey.verifies(rotated)).toBe(true);
    expect(oldKey.verifies(rotated)).toBe(false);
    expect(ring.isCurrent(rotated)).toBe(true);
    expect(ring.decrypt(rotated)).toBe('credential');
    expect(ring.rotate(Buffer.from(old, 'ascii'))).not.toBe(old);
  });

  it('rotate returns a current token unchanged, so a resumed rotation is idempotent', () => {
    const ring = new Keyring(newText, [oldText]);
    const current = ring.encrypt('credential');
    expect(ring.rotate(current)).toBe(current);
    expect(ring.rotate(Buffer.from(current, 'ascii'))).toBe(current);
    const once = ring.rotate(oldKey.encrypt('x'));
    expect(ring.rotate(once)).toBe(once);
  });

  it('rotate throws when no key can decrypt', () => {
    const ring = new Keyring(newText, [midText]);
    const error = thrown(() => ring.rotate(oldKey.encrypt('x')));
    expect(error).toBeInstanceOf(DecryptionError);
    expect((error as DecryptionError).code).toBe('E_DECRYPT');
  });

  it('withCurrent makes the old keys previous, without duplicates', () => {
    const ring = new Keyring(midText, [oldText]);
    const next = ring.withCurrent(newText);
    expect(next.fingerprints).toEqual([newKey.fingerprint, midKey.fingerprint, oldKey.fingerprint]);
    expect(ring.fingerprints).toEqual([midKey.fingerprint, oldKey.fingerprint]);
    const token = ring.encrypt('before');
    expect(next.decrypt(token)).toBe('before');
    expect(next.isCurrent(token)).toBe(false);
    // Re-adding a key already in the ring does not duplicate it.
    const again = next.withCurrent(oldText);
    expect(again.fingerprints).toEqual([
      oldKey.fingerprint,
      newKey.fingerprint,
      midKey.fingerprint,
    ]);
    expect(new Keyring(newText, [newText, oldText, oldText]).fingerprints).toEqual([
      newKey.fingerprint,
      oldKey.fingerprint,
    ]);
  });

  it('rejects a malformed key with InvalidKeyError naming which one', () => {
    const bad = 'A'.repeat(40);
    const error = thrown(() => new Keyring(newText, [oldText, bad]));
    expect(error).toBeInstanceOf(InvalidKeyError);
    expect((error as Error).message).toMatch(/previous key 2/);
    expect((error as Error).message).not.toContain(bad);
  });

  it('never prints key material', () => {
    const ring = new Keyring(newText, [oldText]);
    for (const out of [String(ring), JSON.stringify(ring), inspect(ring), inspect({ ring })]) {
      expect(out).toContain(newKey.fingerprint);
      expect(out).toContain(oldKey.fingerprint);
      expect(out).not.toContain(newText);
      expect(out).not.toContain(oldText);
    }
  });
});
