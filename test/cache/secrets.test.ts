// No plaintext credential may reach String(), JSON, util.inspect, an error, or a log line at any
// level — for entries and for the cache object itself.
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import { FaultTier } from '../../src/tiers/fault.js';
import { MemoryTier } from '../../src/tiers/memory.js';
import { SerializedTier } from '../support/serialized-tier.js';
import { proxy, recordingLogger, START } from './helpers.js';

const USERNAME = 'alice-SECRET-USER-7f3a';
const PASSWORD = 'pw-SECRET-PASS-91c2';

function expectNoPlaintext(text: string, where: string): void {
  expect(text, where).not.toContain(USERNAME);
  expect(text, where).not.toContain(PASSWORD);
}

describe('credentials never leak', () => {
  it('in every printed form of an entry, the cache, its stats and its events', async () => {
    const logger = recordingLogger();
    const l2 = new FaultTier({ name: 'l2' });
    const clock = new ManualClock(START);
    const cache = await ProxyCache.open({
      tiers: [new MemoryTier({ maxEntries: 1 }), l2, new SerializedTier()],
      keyring: new Keyring(generateFernetKey()),
      logger,
      clock,
      sweepIntervalMs: 1_000,
      tierFailureThreshold: 1,
      tierProbeIntervalMs: 10,
    });
    const events: unknown[] = [];
    for (const name of ['evict', 'expire', 'degrade', 'recover'] as const) {
      cache.on(name, (event: unknown) => events.push(event));
    }
    const entry = await cache.put({
      proxyUrl: `http://${USERNAME}:${PASSWORD}@10.9.8.7:3128`,
      ttlSeconds: 5,
    });
    expect(entry.username?.reveal()).toBe(USERNAME);
    expect(entry.password?.reveal()).toBe(PASSWORD);
    expect(entry.proxyUrl).toBe('http://10.9.8.7:3128');

    const printed = [
      String(entry.password),
      `${entry.username} ${entry.password}`,
      JSON.stringify(entry),
      inspect(entry, { depth: 10, showHidden: true }),
      inspect(cache, { depth: 10, showHidden: true }),
      JSON.stringify(cache),
      String(cache),
    ];
    // Exercise the paths that log: eviction, degradation, recovery, expiry, sweep.
    await cache.put({ proxyUrl: proxy(2), username: USERNAME, password: PASSWORD });
    l2.failAll(1);
    await cache.get(entry.key);
    await clock.advance(20);
    await cache.get(entry.key);
    await clock.advance(10_000);
    await cache.flush();
    printed.push(JSON.stringify(await cache.stats()), inspect(events, { depth: 10 }));
    for (const [index, text] of printed.entries()) expectNoPlaintext(text, `printed form ${index}`);
    expect(logger.lines.length).toBeGreaterThan(0);
    for (const line of logger.lines) expectNoPlaintext(line.message, `${line.level} log line`);
    await cache.close();
  });

  it('in errors about bad input', async () => {
    const cache = await ProxyCache.open({ logger: recordingLogger(), sweepIntervalMs: 0 });
    const attempts: (() => Promise<unknown>)[] = [
      () => cache.put({ proxyUrl: `ftp://${USERNAME}:${PASSWORD}@host:21` }),
      () => cache.put({ proxyUrl: `http://${USERNAME}:${PASSWORD}@host:21/path` }),
      () => cache.put({ proxyUrl: `http://${USERNAME}:${PASSWORD}@:99999` }),
      () => cache.put({ proxyUrl: proxy(1), password: PASSWORD, ttlSeconds: -1 }),
      () => cache.put({ proxyUrl: proxy(1), username: USERNAME, source: '' }),
      () => cache.put({ proxyUrl: proxy(1), password: { value: PASSWORD } as unknown as string }),
    ];
    for (const attempt of attempts) {
      const error = await attempt().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(Error);
      expect((error as { code?: string }).code).toMatch(/^E_/);
      expectNoPlaintext(`${(error as Error).message} ${inspect(error)}`, 'error');
    }
    await cache.close();
  });

  it('in the error a wrong key gives', async () => {
    const store = new Map<string, string>();
    const writer = await ProxyCache.open({
      tiers: [new SerializedTier(store)],
      keyring: new Keyring(generateFernetKey()),
      sweepIntervalMs: 0,
    });
    const entry = await writer.put({ proxyUrl: proxy(1), username: USERNAME, password: PASSWORD });
    await writer.close();
    const reader = await ProxyCache.open({
      tiers: [new SerializedTier(store)],
      keyring: new Keyring(generateFernetKey()),
      sweepIntervalMs: 0,
    });
    const found = await reader.get(entry.key);
    let error: unknown;
    try {
      found?.password?.reveal();
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ code: 'E_DECRYPT' });
    expectNoPlaintext(`${(error as Error).message} ${inspect(error)}`, 'decryption error');
    expect((error as Error).message).not.toContain(String(found?.password?.token));
    await reader.close();
  });
});
