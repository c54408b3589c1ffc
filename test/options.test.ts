// Every options object refuses a key it does not know, naming it and suggesting the option that
// was meant, instead of ignoring it and leaving a default the user did not choose.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFernetKey } from '../src/crypto/fernet.js';
import { Keyring } from '../src/crypto/keyring.js';
import { diagnose } from '../src/doctor.js';
import { InvalidOptionError } from '../src/errors.js';
import { rotateKey } from '../src/key-rotation.js';
import { migrateProxywhirl } from '../src/migrate.js';
import { FaultTier } from '../src/tiers/fault.js';
import { resolveHealthPolicy } from '../src/health.js';
import { exportRecords } from '../src/io/export.js';
import { importRecords, parseProxyRecords } from '../src/io/import.js';
import { closestName } from '../src/option-check.js';
import { openDefaultStore } from '../src/default-store.js';
import { ProxyCache } from '../src/proxy-cache.js';
import { JsonlTier } from '../src/tiers/jsonl/index.js';
import { MemoryTier } from '../src/tiers/memory.js';
import { SqliteTier } from '../src/tiers/sqlite/index.js';
import { silentLogger } from '../src/logger.js';
import type { ProxyEntry } from '../src/record/entry.js';
import { chunks } from './io/helpers.js';

async function* noEntries(): AsyncGenerator<ProxyEntry> {}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'proxytier-options-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The error `make` throws or rejects with; fails the test when there is none. */
async function errorOf(make: () => unknown): Promise<InvalidOptionError> {
  try {
    await make();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionError);
    return error as InvalidOptionError;
  }
  throw new Error('no error was thrown');
}

describe('unknown options', () => {
  const at = (name: string) => join(dir, name);
  const quiet = { logger: silentLogger };
  const cases: [string, string, string | undefined, () => unknown][] = [
    [
      'ProxyCache.open',
      'defaultTTL',
      'defaultTtlSeconds',
      () => ProxyCache.open({ ...quiet, defaultTTL: 60 } as never),
    ],
    [
      'ProxyCache.open',
      'maxEntry',
      'maxEntries',
      () => ProxyCache.open({ ...quiet, maxEntry: 1 } as never),
    ],
    [
      'ProxyCache.open',
      'cohrenceMs',
      'coherenceMs',
      () => ProxyCache.open({ ...quiet, cohrenceMs: 5 } as never),
    ],
    [
      'ProxyCache.open',
      'flavour',
      undefined,
      () => ProxyCache.open({ ...quiet, flavour: 'mint' } as never),
    ],
    [
      'openDefaultStore',
      'memorytier',
      'memoryTier',
      () => openDefaultStore({ dir: at('store'), memorytier: false } as never),
    ],
    ['MemoryTier', 'max', 'maxEntries', () => new MemoryTier({ maxEntries: 5, max: 1 } as never)],
    [
      'JsonlTier',
      'lockTimeout',
      'lockTimeoutMs',
      () => new JsonlTier({ dir: at('jsonl'), lockTimeout: 5 } as never),
    ],
    [
      'SqliteTier',
      'busyTimeout',
      'busyTimeoutMs',
      () => new SqliteTier({ path: at('x.db'), role: 'l3', busyTimeout: 5 } as never),
    ],
    [
      'historyRetention',
      'historyRetention.maxRows',
      'maxRowsPerProxy',
      () =>
        new SqliteTier({ path: at('x.db'), role: 'l3', historyRetention: { maxRows: 5 } as never }),
    ],
    [
      'healthPolicy',
      'healthPolicy.checkInterval',
      'checkIntervalMs',
      () => resolveHealthPolicy({ checkInterval: 5 } as never),
    ],
    [
      'parseProxyRecords',
      'ttl',
      'ttlSeconds',
      () => parseProxyRecords(chunks('', 16), { format: 'text', ttl: 5 } as never),
    ],
    [
      'importRecords',
      'maxError',
      'maxErrors',
      async () => {
        const cache = await ProxyCache.open({ ...quiet, maxEntries: 10 });
        try {
          await importRecords(cache, parseProxyRecords(chunks('', 16), { format: 'text' }), {
            maxError: 1,
          } as never);
        } finally {
          await cache.close();
        }
      },
    ],
    ['FaultTier', 'persistant', 'persistent', () => new FaultTier({ persistant: false } as never)],
    [
      'migrateProxywhirl',
      'onprogress',
      'onProgress',
      async () => {
        const cache = await ProxyCache.open({ ...quiet, maxEntries: 10 });
        try {
          await migrateProxywhirl(cache, at('none'), {
            keyring: new Keyring(generateFernetKey()),
            onprogress: () => {},
          } as never);
        } finally {
          await cache.close();
        }
      },
    ],
    ['diagnose', 'keyfile', 'keyFile', () => diagnose({ dir: at('none'), keyfile: 'k' } as never)],
    [
      'rotateKey',
      'dropPrevous',
      'dropPrevious',
      () => rotateKey({ dir: at('none'), dropPrevous: true } as never),
    ],
    [
      'exportRecords',
      'secret',
      'secrets',
      () =>
        exportRecords(noEntries(), new PassThrough(), { format: 'csv', secret: 'plain' } as never),
    ],
  ];

  it.each(cases)('%s refuses %j, suggesting %j', async (what, key, meant, make) => {
    const error = await errorOf(make);
    expect(error.code).toBe('E_INVALID_OPTION');
    expect(error.message).toContain(`"${key}" is not a ${what} option`);
    if (meant === undefined) expect(error.message).not.toContain('did you mean');
    else expect(error.message).toContain(`did you mean "${meant}"?`);
    expect(error.message).toMatch(/Options: \w+(, \w+)+$/);
  });

  it('creates nothing on disk for a refused option', async () => {
    const store = join(dir, 'untouched');
    await errorOf(() => openDefaultStore({ dir: store, maxEntry: 1 } as never));
    await expect(readdir(store)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('never shows the value of an unknown option (it may be a key)', async () => {
    const secret = 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=';
    const error = await errorOf(() =>
      ProxyCache.open({ logger: silentLogger, encryptionKeys: secret } as never),
    );
    expect(error.message).toContain('did you mean "encryptionKey"?');
    expect(error.message).not.toContain(secret);
  });
});

describe('closestName', () => {
  const known = ['maxEntries', 'defaultTtlSeconds', 'sweepIntervalMs', 'coherenceMs'];
  it.each([
    ['MAXENTRIES', 'maxEntries'],
    ['maxEntry', 'maxEntries'],
    ['defaultTtl', 'defaultTtlSeconds'],
    ['sweepIntervalMS', 'sweepIntervalMs'],
    ['coherenseMs', 'coherenceMs'],
    ['ttl', undefined],
    ['x', undefined],
  ])('%j -> %j', (name, expected) => {
    expect(closestName(name, known)).toBe(expected);
  });
});
