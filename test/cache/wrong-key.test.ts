// A wrong key is refused when the store opens, before anything is written, on every persistent
// tier that keeps credentials (SQLite, JSONL); readOnly opens such a store for recovery and
// changes nothing in it. A store without key checks (proxywhirl's, or an older one) is judged by
// a sample of its tokens.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import type { ProxyEntry } from '../../src/record/entry.js';
import { JsonlTier } from '../../src/tiers/jsonl/index.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { SqliteTier } from '../../src/tiers/sqlite/index.js';
import type { Tier } from '../../src/tiers/tier.js';
import { proxy, recordingLogger } from './helpers.js';

const ENGINES: [string, (dir: string) => Tier][] = [
  ['sqlite', (dir) => new SqliteTier({ path: join(dir, 'store.db'), role: 'l3' })],
  ['jsonl', (dir) => new JsonlTier({ dir: join(dir, 'jsonl') })],
];

/** Every stored entry as text, credentials as their tokens: what "nothing changed" compares. */
async function snapshot(tier: Tier, keyring: Keyring): Promise<string[]> {
  const cache = await ProxyCache.open({
    tiers: [tier],
    keyring,
    readOnly: true,
    sweepIntervalMs: 0,
    logger: recordingLogger(),
  });
  const rows: string[] = [];
  for await (const entry of cache.entries({ includeExpired: true })) {
    rows.push(
      JSON.stringify({
        ...entry,
        username: entry.username?.token,
        password: entry.password?.token,
      }),
    );
  }
  const checks = (await tier.keyChecks?.()) ?? [];
  await cache.close();
  return [...rows.sort(), ...checks.map((check) => `check ${check.fingerprint}`)];
}

describe.each(ENGINES)('wrong-key detection on %s', (_name, makeTier) => {
  let dir: string;
  const rightKey = generateFernetKey();
  const right = new Keyring(rightKey);
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxytier-wrong-key-'));
    const cache = await ProxyCache.open({
      tiers: [makeTier(dir)],
      keyring: right,
      sweepIntervalMs: 0,
      logger: recordingLogger(),
    });
    for (let i = 0; i < 5; i += 1) {
      await cache.put({ proxyUrl: proxy(i), username: `u${i}`, password: `p${i}` });
    }
    await cache.put({ proxyUrl: proxy(9), source: 'open' }); // no credentials
    await cache.close();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses another key with E_WRONG_KEY naming fingerprints only, and writes nothing', async () => {
    const before = await snapshot(makeTier(dir), right);
    const otherKey = generateFernetKey();
    const other = new Keyring(otherKey);
    const opening = ProxyCache.open({
      tiers: [new MemoryTier({ maxEntries: 10 }), makeTier(dir)],
      keyring: other,
      sweepIntervalMs: 0,
      logger: recordingLogger(),
    });
    const error = await opening.then(
      () => undefined,
      (caught: unknown) => caught as Error & { code: string; have: string[]; expected: string[] },
    );
    expect(error?.code).toBe('E_WRONG_KEY');
    expect(error?.have).toEqual(other.fingerprints);
    expect(error?.expected).toEqual(right.fingerprints);
    expect(error?.message).toContain(other.current.fingerprint);
    expect(error?.message).toContain(right.current.fingerprint);
    expect(error?.message).not.toContain(otherKey);
    expect(error?.message).not.toContain(rightKey);
    expect(await snapshot(makeTier(dir), right)).toEqual(before);
  });

  it('a keyring that holds the store key as a previous key opens it and records its new key', async () => {
    const rotated = right.withCurrent(generateFernetKey());
    const cache = await ProxyCache.open({
      tiers: [makeTier(dir)],
      keyring: rotated,
      sweepIntervalMs: 0,
      logger: recordingLogger(),
    });
    await cache.close();
    // From now on the new key alone is known to the store.
    const alone = new Keyring(rotated.current);
    const again = await ProxyCache.open({
      tiers: [makeTier(dir)],
      keyring: alone,
      sweepIntervalMs: 0,
      logger: recordingLogger(),
    });
    await again.close();
  });

  it('readOnly opens a store under another key, reads what it can and changes nothing', async () => {
    const before = await snapshot(makeTier(dir), right);
    const logger = recordingLogger();
    const cache = await ProxyCache.open({
      tiers: [new MemoryTier({ maxEntries: 10 }), makeTier(dir)],
      keyring: new Keyring(generateFernetKey()),
      readOnly: true,
      sweepIntervalMs: 0,
      logger,
    });
    expect(
      logger.lines.filter((line) => line.level === 'warn').map((line) => line.message),
    ).toEqual([expect.stringMatching(/E_WRONG_KEY|the key does not open .*opened read-only/)]);
    const entries: ProxyEntry[] = [];
    for await (const entry of cache.entries()) entries.push(entry);
    expect(entries).toHaveLength(6);
    const withCredentials = entries.find((entry) => entry.password !== undefined);
    expect(withCredentials?.proxyUrl).toMatch(/^http:\/\/10\./);
    expect(() => withCredentials?.password?.reveal()).toThrow(
      expect.objectContaining({ code: 'E_DECRYPT' }),
    );
    const open = await cache.get(entries.find((entry) => entry.source === 'open')?.key as string);
    expect(open?.source).toBe('open');
    for (const write of [
      () => cache.put({ proxyUrl: proxy(20) }),
      () => cache.delete(entries[0]?.key as string),
      () => cache.clear(),
      () => cache.reportFailure(entries[0]?.key as string),
      () => cache.sweepExpired(),
      () => cache.getOrLoad('x', () => ({ proxyUrl: proxy(21) })),
    ]) {
      await expect(write()).rejects.toMatchObject({ code: 'E_READ_ONLY' });
    }
    await cache.close();
    expect(await snapshot(makeTier(dir), right)).toEqual(before);
  });
});

describe('a store without key checks', () => {
  it('is judged by its tokens: another key is refused, the right one opens and records its check', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'proxytier-wrong-key-'));
    try {
      const path = join(dir, 'store.db');
      const right = new Keyring(generateFernetKey());
      const writer = await ProxyCache.open({
        tiers: [new SqliteTier({ path, role: 'l3' })],
        keyring: right,
        sweepIntervalMs: 0,
        logger: recordingLogger(),
      });
      await writer.put({ proxyUrl: proxy(1), password: 'p1' });
      await writer.close();
      // As proxywhirl leaves a database: no key checks.
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(path);
      db.prepare('DELETE FROM proxytier_key_checks').run();
      db.close();

      await expect(
        ProxyCache.open({
          tiers: [new SqliteTier({ path, role: 'l3' })],
          keyring: new Keyring(generateFernetKey()),
          sweepIntervalMs: 0,
          logger: recordingLogger(),
        }),
      ).rejects.toMatchObject({
        code: 'E_WRONG_KEY',
        expected: [],
        message: expect.stringContaining('it decrypts none of the stored credentials tried'),
      });
      const tier = new SqliteTier({ path, role: 'l3' });
      const reader = await ProxyCache.open({
        tiers: [tier],
        keyring: right,
        sweepIntervalMs: 0,
        logger: recordingLogger(),
      });
      expect((await tier.keyChecks()).map((check) => check.fingerprint)).toEqual(
        right.fingerprints,
      );
      await reader.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
