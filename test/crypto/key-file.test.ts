// The key file as running processes see it: a keyring read from it follows a rotation written
// by another process (new tokens decrypt at once, new writes move to the new key within the
// check interval), a vanished file keeps the loaded keys, and the rotation lock is exclusive.
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FernetKey, generateFernetKey } from '../../src/crypto/fernet.js';
import {
  KEY_FILE_CHECK_MS,
  lockKeyFile,
  readKeyFile,
  writeKeyFile,
} from '../../src/crypto/key-file.js';
import { resolveKeyring } from '../../src/crypto/key-source.js';
import { Keyring } from '../../src/crypto/keyring.js';
import type { Logger } from '../../src/logger.js';
import { Secret } from '../../src/record/secret.js';

function captureLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { debug() {}, info() {}, warn: (message) => warnings.push(message), error() {}, warnings };
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

describe('a keyring read from a key file', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'proxytier-key-file-'));
    path = join(dir, 'key');
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('decrypts a token made under a key written to the file after it was read', async () => {
    const oldKey = generateFernetKey();
    await writeKeyFile(path, [oldKey]);
    const keyring = (await readKeyFile(path, captureLogger())) as Keyring;
    const changes: (readonly string[])[] = [];
    keyring.onChange((fingerprints) => changes.push(fingerprints));

    const newKey = generateFernetKey();
    await writeKeyFile(path, [newKey, oldKey], { overwrite: true });
    const token = new FernetKey(newKey).encrypt('p@ss');
    // No wait: a token that no loaded key decrypts makes the keyring read its file at once.
    expect(keyring.decrypt(token)).toBe('p@ss');
    expect(keyring.current.fingerprint).toBe(new FernetKey(newKey).fingerprint);
    expect(changes).toEqual([
      [new FernetKey(newKey).fingerprint, new FernetKey(oldKey).fingerprint],
    ]);
    expect(keyring.generation).toBe(1);
  });

  it('encrypts under the new current key once the check interval has passed', async () => {
    const oldKey = generateFernetKey();
    await writeKeyFile(path, [oldKey]);
    const keyring = (await readKeyFile(path, captureLogger())) as Keyring;
    const secret = new Secret('hunter2');
    const sealedBefore = secret.seal(keyring);
    expect(new FernetKey(oldKey).verifies(sealedBefore)).toBe(true);

    const newKey = generateFernetKey();
    await writeKeyFile(path, [newKey, oldKey], { overwrite: true });
    await sleep(KEY_FILE_CHECK_MS + 50);
    const fresh = keyring.encrypt('x');
    expect(new FernetKey(newKey).verifies(fresh)).toBe(true);
    // A secret sealed before the change is sealed again under the new key at its next write.
    const sealedAfter = secret.seal(keyring);
    expect(sealedAfter).not.toBe(sealedBefore);
    expect(new FernetKey(newKey).verifies(sealedAfter)).toBe(true);
    expect(keyring.decrypt(sealedAfter)).toBe('hunter2');
  });

  it('keeps the loaded keys, with one warning, when the file vanishes or stops parsing', async () => {
    const key = generateFernetKey();
    await writeKeyFile(path, [key]);
    const logger = captureLogger();
    const keyring = (await readKeyFile(path, logger)) as Keyring;
    await fs.rm(path);
    const stranger = new FernetKey(generateFernetKey()).encrypt('x');
    expect(() => keyring.decrypt(stranger)).toThrow(/no key in the keyring/);
    await fs.writeFile(path, 'not a key\n', { mode: 0o600 });
    await sleep(150);
    expect(() => keyring.decrypt(stranger)).toThrow(/no key in the keyring/);
    expect(keyring.current.fingerprint).toBe(new FernetKey(key).fingerprint);
    expect(keyring.decrypt(keyring.encrypt('still works'))).toBe('still works');
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]).toMatch(
      /cannot re-read key file .*the keys loaded before stay in use/,
    );
    expect(logger.warnings[0]).not.toContain(key);
  });

  it('a keyring made from keys alone never reads anything', () => {
    const keyring = new Keyring(generateFernetKey());
    expect(keyring.follows).toBe(false);
    expect(keyring.refresh(true)).toBe(false);
  });
});

describe('key sources', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'proxytier-key-file-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('an explicit key file wins over the key variables, without touching the environment', async () => {
    const fileKey = generateFernetKey();
    const path = join(dir, 'key');
    await writeKeyFile(path, [fileKey]);
    const env = { PROXYTIER_ENCRYPTION_KEY: generateFernetKey(), HOME: dir };
    const found = await resolveKeyring({ keyFile: path, env, logger: captureLogger() });
    expect(found).toMatchObject({ source: 'key-file', keyFile: path });
    expect(found.keyring.current.fingerprint).toBe(new FernetKey(fileKey).fingerprint);
    expect(Object.keys(env)).toEqual(['PROXYTIER_ENCRYPTION_KEY', 'HOME']);
    // Without it, the variable comes first.
    expect((await resolveKeyring({ env, logger: captureLogger() })).source).toBe('env');
  });

  it('rejects an unknown option, naming the closest one', async () => {
    await expect(
      resolveKeyring({ keyfile: 'x', logger: captureLogger() } as never),
    ).rejects.toThrow(/"keyfile" is not a resolveKeyring option; did you mean "keyFile"\?/);
  });
});

describe('the rotation lock', () => {
  it('is held by one taker at a time, and the next one gets it once released', async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'proxytier-key-lock-'));
    try {
      const path = join(dir, 'key');
      const first = await lockKeyFile(path, 1_000);
      await expect(lockKeyFile(path, 50)).rejects.toMatchObject({ code: 'E_TIER_LOCK' });
      const second = lockKeyFile(path, 5_000);
      await sleep(30);
      first.release();
      const held = await second;
      expect(held.held).toBe(true);
      held.release();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
