import { ManualClock } from '../../src/clock.js';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import type { ProxyCacheOptions } from '../../src/options.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import { FaultTier } from '../../src/tiers/fault.js';
import { MemoryTier } from '../../src/tiers/memory.js';

export const START = Date.parse('2026-11-01T12:00:00Z');

/** A logger that keeps every line, so tests can inspect what was logged at each level. */
export function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A cache on a manual clock with a test keyring; the sweep timer is off unless asked for. */
export async function openCache(options: ProxyCacheOptions = {}) {
  const clock = new ManualClock(START);
  const keyring = new Keyring(generateFernetKey());
  const cache = await ProxyCache.open({
    clock,
    keyring,
    logger: silentLogger,
    sweepIntervalMs: 0,
    ...options,
  });
  return { cache, clock, keyring };
}

/** L1 memory (small) over two fault-injecting tiers that behave normally until told otherwise. */
export async function openThreeTiers(options: ProxyCacheOptions = {}, l1Size = 100) {
  const l1 = new MemoryTier({ maxEntries: l1Size });
  const l2 = new FaultTier({ name: 'l2' });
  const l3 = new FaultTier({ name: 'l3' });
  const opened = await openCache({ tiers: [l1, l2, l3], ...options });
  return { ...opened, l1, l2, l3 };
}

export function proxy(index: number): string {
  return `http://10.1.${Math.floor(index / 250)}.${index % 250}:${3000 + index}`;
}
