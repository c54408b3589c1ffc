import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidKeyError, InvalidOptionError, KeyUnavailableError } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import { FernetKey, generateFernetKey } from '../../src/crypto/fernet.js';
import { writeKeyFile } from '../../src/crypto/key-file.js';
import { defaultKeyFilePath, resolveKeyring } from '../../src/crypto/key-source.js';

interface Captured extends Logger {
  lines: { level: string; message: string }[];
}

function captureLogger(): Captured {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  return expect.fail('expected a rejection');
}

const fp = (text: string) => new FernetKey(text).fingerprint;

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'proxytier-keys-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** An environment that never reaches the real home directory. */
function isolatedEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  return { XDG_CONFIG_HOME: join(dir, 'config'), ...extra };
}

describe('defaultKeyFilePath', () => {
  it('uses XDG_CONFIG_HOME, else ~/.config', () => {
    expect(defaultKeyFilePath({ XDG_CONFIG_HOME: '/x/conf' })).toBe('/x/conf/proxytier/key');
    expect(defaultKeyFilePath({})).toMatch(/[/\\]\.config[/\\]proxytier[/\\]key$/);
    expect(defaultKeyFilePath({ XDG_CONFIG_HOME: 'relative' })).toMatch(/\.config/);
  });
});

describe('resolveKeyring: sources in order of precedence', () => {
  const optionKey = generateFernetKey();
  const envKey = generateFernetKey();
  const pwKey = generateFernetKey();
  const fileKey = generateFernetKey();

  it('option > env > proxywhirl env > key file', async () => {
    const keyFile = join(dir, 'file-key');
    await writeKeyFile(keyFile, [fileKey]);
    const logger = captureLogger();
    const full = {
      PROXYTIER_ENCRYPTION_KEY: envKey,
      PROXYWHIRL_CACHE_ENCRYPTION_KEY: pwKey,
      PROXYTIER_KEY_FILE: keyFile,
    };

    const a = await resolveKeyring({ key: optionKey, env: isolatedEnv(full), logger });
    expect(a.source).toBe('option');
    expect(a.keyring.current.fingerprint).toBe(fp(optionKey));

    const b = await resolveKeyring({ env: isolatedEnv(full), logger });
    expect(b.source).toBe('env');
    expect(b.keyring.current.fingerprint).toBe(fp(envKey));

    const { PROXYTIER_ENCRYPTION_KEY: _e, ...noEnv } = full;
    const c = await resolveKeyring({ env: isolatedEnv(noEnv), logger });
    expect(c.source).toBe('proxywhirl-env');
    expect(c.keyring.current.fingerprint).toBe(fp(pwKey));

    const { PROXYWHIRL_CACHE_ENCRYPTION_KEY: _p, ...fileOnly } = noEnv;
    const d = await resolveKeyring({ env: isolatedEnv(fileOnly), logger });
    expect(d).toMatchObject({ source: 'key-file', keyFile, created: false });
    expect(d.keyring.current.fingerprint).toBe(fp(fileKey));

    // An empty variable counts as unset.
    const e = await resolveKeyring({
      env: isolatedEnv({ ...fileOnly, PROXYTIER_ENCRYPTION_KEY: '  ' }),
      logger,
    });
    expect(e.source).toBe('key-file');
    expect(logger.lines).toEqual([]);
  });

  it('keyFile option > PROXYTIER_KEY_FILE > default path', async () => {
    const logger = captureLogger();
    const optionFile = join(dir, 'a', 'key');
    const envFile = join(dir, 'b', 'key');
    await writeKeyFile(optionFile, [optionKey]);
    await writeKeyFile(envFile, [envKey]);
    await writeKeyFile(defaultKeyFilePath(isolatedEnv()), [fileKey]);

    const env = isolatedEnv({ PROXYTIER_KEY_FILE: envFile });
    const a = await resolveKeyring({ keyFile: optionFile, env, logger });
    expect(a.keyFile).toBe(optionFile);
    expect(a.keyring.current.fingerprint).toBe(fp(optionKey));
    const b = await resolveKeyring({ env, logger });
    expect(b.keyFile).toBe(envFile);
    expect(b.keyring.current.fingerprint).toBe(fp(envKey));
    const c = await resolveKeyring({ env: isolatedEnv(), logger });
    expect(c.keyFile).toBe(join(dir, 'config', 'proxytier', 'key'));
    expect(c.keyring.current.fingerprint).toBe(fp(fileKey));
  });
});

describe('resolveKeyring: previous keys', () => {
  const [k1, k2, k3] = [generateFernetKey(), generateFernetKey(), generateFernetKey()];
  const logger = captureLogger();

  it('from the option', async () => {
    const r = await resolveKeyring({ key: k1, previousKeys: [k2, k3], env: isolatedEnv(), logger });
    expect(r.keyring.fingerprints).toEqual([fp(k1), fp(k2), fp(k3)]);
  });

  it('from PROXYTIER_PREVIOUS_KEYS (trimmed, empty items ignored)', async () => {
    const env = isolatedEnv({
      PROXYTIER_ENCRYPTION_KEY: k1,
      PROXYTIER_PREVIOUS_KEYS: ` ${k2} ,, ${k3},`,
    });
    const r = await resolveKeyring({ env, logger });
    expect(r.keyring.fingerprints).toEqual([fp(k1), fp(k2), fp(k3)]);
  });

  it('from PROXYWHIRL_CACHE_KEY_PREVIOUS', async () => {
    const env = isolatedEnv({
      PROXYWHIRL_CACHE_ENCRYPTION_KEY: k1,
      PROXYWHIRL_CACHE_KEY_PREVIOUS: `${k2},${k3}`,
    });
    const r = await resolveKeyring({ env, logger });
    expect(r.source).toBe('proxywhirl-env');
    expect(r.keyring.fingerprints).toEqual([fp(k1), fp(k2), fp(k3)]);
    const old = new FernetKey(k3).encrypt('from proxywhirl');
    expect(r.keyring.decrypt(old)).toBe('from proxywhirl');
  });

  it('from the key file (comments and blank lines ignored)', async () => {
    const keyFile = join(dir, 'key');
    await fs.writeFile(keyFile, `# current\n\n${k1}\n  # older ones\n${k2}\r\n\n${k3}\n`, {
      mode: 0o600,
    });
    const r = await resolveKeyring({ keyFile, env: isolatedEnv(), logger });
    expect(r.keyring.fingerprints).toEqual([fp(k1), fp(k2), fp(k3)]);
  });

  it('warns about PROXYTIER_PREVIOUS_KEYS without PROXYTIER_ENCRYPTION_KEY', async () => {
    const log = captureLogger();
    const env = isolatedEnv({ PROXYTIER_PREVIOUS_KEYS: k2, PROXYWHIRL_CACHE_ENCRYPTION_KEY: k1 });
    const r = await resolveKeyring({ env, logger: log });
    expect(r.source).toBe('proxywhirl-env');
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]?.level).toBe('warn');
    expect(log.lines[0]?.message).not.toContain(k2);
  });

  it('rejects previousKeys without key', async () => {
    const error = await rejection(
      resolveKeyring({ previousKeys: [k2], env: isolatedEnv(), logger }),
    );
    expect(error).toBeInstanceOf(InvalidOptionError);
  });

  it('rejects an empty keyFile option', async () => {
    const error = await rejection(resolveKeyring({ keyFile: '', env: isolatedEnv(), logger }));
    expect(error).toBeInstanceOf(InvalidOptionError);
  });
});

describe('resolveKeyring: malformed keys name their source, never the key', () => {
  const good = generateFernetKey();
  const bad = `${generateFernetKey().slice(0, 30)}`; // valid base64, 22 bytes
  const logger = captureLogger();

  const cases: [string, () => Promise<unknown>, RegExp][] = [
    ['key option', () => resolveKeyring({ key: bad, logger }), /the `key` option/],
    [
      'previousKeys option',
      () => resolveKeyring({ key: good, previousKeys: [good, bad], logger }),
      /`previousKeys` item 2/,
    ],
    [
      'PROXYTIER_ENCRYPTION_KEY',
      () => resolveKeyring({ env: { PROXYTIER_ENCRYPTION_KEY: bad }, logger }),
      /^PROXYTIER_ENCRYPTION_KEY is not a valid Fernet key: .*32 bytes/,
    ],
    [
      'PROXYTIER_PREVIOUS_KEYS',
      () =>
        resolveKeyring({
          env: { PROXYTIER_ENCRYPTION_KEY: good, PROXYTIER_PREVIOUS_KEYS: `${good},${bad}` },
          logger,
        }),
      /^PROXYTIER_PREVIOUS_KEYS item 2 is not a valid Fernet key: /,
    ],
    [
      'PROXYWHIRL_CACHE_ENCRYPTION_KEY',
      () => resolveKeyring({ env: { PROXYWHIRL_CACHE_ENCRYPTION_KEY: `${bad}!` }, logger }),
      /^PROXYWHIRL_CACHE_ENCRYPTION_KEY is not a valid Fernet key: .*base64/,
    ],
    [
      'PROXYWHIRL_CACHE_KEY_PREVIOUS',
      () =>
        resolveKeyring({
          env: { PROXYWHIRL_CACHE_ENCRYPTION_KEY: good, PROXYWHIRL_CACHE_KEY_PREVIOUS: bad },
          logger,
        }),
      /^PROXYWHIRL_CACHE_KEY_PREVIOUS item 1 /,
    ],
  ];

  it.each(cases)('%s', async (_name, run, message) => {
    const error = await rejection(run());
    expect(error).toBeInstanceOf(InvalidKeyError);
    expect((error as InvalidKeyError).code).toBe('E_INVALID_KEY');
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain(bad);
    expect(error.message).not.toContain(good);
  });

  it('key file', async () => {
    const keyFile = join(dir, 'key');
    await fs.writeFile(keyFile, `# comment\n${good}\n${bad}\n`, { mode: 0o600 });
    const error = await rejection(resolveKeyring({ keyFile, env: {}, logger }));
    expect(error).toBeInstanceOf(InvalidKeyError);
    expect(error.message).toMatch(new RegExp(`^${keyFile} line 3 is not a valid Fernet key`));
    expect(error.message).not.toContain(bad);
    expect(error.message).not.toContain(good);
  });

  it('key file with no key', async () => {
    const keyFile = join(dir, 'key');
    await fs.writeFile(keyFile, '# nothing here\n', { mode: 0o600 });
    const error = await rejection(resolveKeyring({ keyFile, env: {}, logger }));
    expect(error).toBeInstanceOf(InvalidKeyError);
    expect(error.message).toMatch(/contains no key/);
  });
});

describe('resolveKeyring: creating the key file', () => {
  it('creates it 0600 in a 0700 directory and logs one line naming the path', async () => {
    const logger = captureLogger();
    const env = isolatedEnv();
    const r = await resolveKeyring({ env, logger });
    const path = join(dir, 'config', 'proxytier', 'key');
    expect(r).toMatchObject({ source: 'key-file', keyFile: path, created: true });
    expect((await fs.stat(path)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(join(dir, 'config', 'proxytier'))).mode & 0o777).toBe(0o700);
    expect((await fs.stat(join(dir, 'config'))).mode & 0o777).toBe(0o700);

    const text = await fs.readFile(path, 'utf8');
    const keyLine = text.split('\n').find((l) => l !== '' && !l.startsWith('#')) ?? '';
    expect(new FernetKey(keyLine).fingerprint).toBe(r.keyring.current.fingerprint);

    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]?.level).toBe('info');
    expect(logger.lines[0]?.message).toContain(path);
    expect(logger.lines[0]?.message).toMatch(/back.*up/);
    expect(logger.lines[0]?.message).not.toContain(keyLine);
  });

  it('reuses the same key after a restart', async () => {
    const keyFile = join(dir, 'keys', 'key');
    const first = await resolveKeyring({ keyFile, env: {}, logger: captureLogger() });
    const token = first.keyring.encrypt('survives a restart');
    const logger = captureLogger();
    const second = await resolveKeyring({ keyFile, env: {}, logger });
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.keyring.current.fingerprint).toBe(first.keyring.current.fingerprint);
    expect(second.keyring.decrypt(token)).toBe('survives a restart');
    expect(logger.lines).toEqual([]);
  });

  it('gives every concurrent caller the same key', async () => {
    const keyFile = join(dir, 'race', 'key');
    const logger = captureLogger();
    const results = await Promise.all(
      Array.from({ length: 10 }, () => resolveKeyring({ keyFile, env: {}, logger })),
    );
    const fingerprints = new Set(results.map((r) => r.keyring.current.fingerprint));
    expect(fingerprints.size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(logger.lines.filter((l) => l.level === 'info')).toHaveLength(1);
    expect(logger.lines.filter((l) => l.level !== 'info')).toEqual([]);
  });

  it('waits for a key file that exists but is still being written', async () => {
    const keyFile = join(dir, 'key');
    const key = generateFernetKey();
    await fs.writeFile(keyFile, '', { mode: 0o600 });
    const pending = resolveKeyring({ keyFile, env: {}, logger: captureLogger() });
    setTimeout(() => void fs.writeFile(keyFile, `${key}\n`), 50);
    const r = await pending;
    expect(r.keyring.current.fingerprint).toBe(fp(key));
    expect(r.created).toBe(false);
  });

  it('with create: false and no key, throws KeyUnavailableError naming the sources', async () => {
    const keyFile = join(dir, 'missing', 'key');
    const error = await rejection(
      resolveKeyring({
        env: { PROXYTIER_KEY_FILE: keyFile },
        logger: captureLogger(),
        create: false,
      }),
    );
    expect(error).toBeInstanceOf(KeyUnavailableError);
    expect((error as KeyUnavailableError).code).toBe('E_KEY_UNAVAILABLE');
    expect(error.message).toContain('PROXYTIER_ENCRYPTION_KEY');
    expect(error.message).toContain('PROXYWHIRL_CACHE_ENCRYPTION_KEY');
    expect(error.message).toContain(keyFile);
    await expect(fs.stat(keyFile)).rejects.toThrow();
  });

  it('throws KeyUnavailableError with the OS reason when the file cannot be created', async () => {
    // A path under a regular file fails (ENOTDIR) even for root, unlike a read-only directory.
    const blocker = join(dir, 'not-a-dir');
    await fs.writeFile(blocker, 'x');
    const keyFile = join(blocker, 'key');
    const error = await rejection(resolveKeyring({ keyFile, env: {}, logger: captureLogger() }));
    expect(error).toBeInstanceOf(KeyUnavailableError);
    expect(error.message).toContain(keyFile);
    expect((error.cause as NodeJS.ErrnoException).code).toMatch(/ENOTDIR|EEXIST/);
  });

  it('warns once about a key file others can read', async () => {
    const keyFile = join(dir, 'loose-key');
    const key = generateFernetKey();
    await fs.writeFile(keyFile, `${key}\n`);
    await fs.chmod(keyFile, 0o644);
    const logger = captureLogger();
    const r = await resolveKeyring({ keyFile, env: {}, logger });
    expect(r.keyring.current.fingerprint).toBe(fp(key));
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]?.level).toBe('warn');
    expect(logger.lines[0]?.message).toContain(`chmod 600 ${keyFile}`);
    expect(logger.lines[0]?.message).not.toContain(key);
  });
});

describe('writeKeyFile', () => {
  const [k1, k2] = [generateFernetKey(), generateFernetKey()];

  it('writes 0600 in a new 0700 directory, readable by resolveKeyring', async () => {
    const path = join(dir, 'new', 'key');
    await writeKeyFile(path, [k1, k2]);
    expect((await fs.stat(path)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(join(dir, 'new'))).mode & 0o777).toBe(0o700);
    const r = await resolveKeyring({ keyFile: path, env: {}, logger: captureLogger() });
    expect(r.keyring.fingerprints).toEqual([fp(k1), fp(k2)]);
    expect((await fs.readdir(join(dir, 'new'))).sort()).toEqual(['key']);
  });

  it('refuses to replace a file unless overwrite is set', async () => {
    const path = join(dir, 'key');
    await writeKeyFile(path, [k1]);
    const error = await rejection(writeKeyFile(path, [k2]));
    expect(error).toBeInstanceOf(KeyUnavailableError);
    expect(error.message).toMatch(/already exists/);
    await writeKeyFile(path, [k2, k1], { overwrite: true });
    const r = await resolveKeyring({ keyFile: path, env: {}, logger: captureLogger() });
    expect(r.keyring.fingerprints).toEqual([fp(k2), fp(k1)]);
    expect(await fs.readdir(dir)).toEqual(['key']);
  });

  it('rejects a malformed key without writing anything', async () => {
    const path = join(dir, 'key');
    const error = await rejection(writeKeyFile(path, [k1, 'short']));
    expect(error).toBeInstanceOf(InvalidKeyError);
    expect(error.message).toMatch(/key 2/);
    expect(await fs.readdir(dir)).toEqual([]);
  });
});
