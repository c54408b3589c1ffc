import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { silentLogger } from '../../src/logger.js';
import type { ProxyCacheOptions } from '../../src/options.js';
import { ProxyCache } from '../../src/proxy-cache.js';
import type { ImportItem } from '../../src/io/import.js';

/** A memory-only cache with a test keyring and no sweep timer. */
export async function openCache(options: ProxyCacheOptions = {}): Promise<ProxyCache> {
  return ProxyCache.open({
    sweepIntervalMs: 0,
    logger: silentLogger,
    keyring: new Keyring(generateFernetKey()),
    ...options,
  });
}

/** `text` as an async stream of chunks of `size` characters (to cross every boundary). */
export async function* chunks(text: string | Buffer, size = 7): AsyncGenerator<Buffer> {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** The items' errors, for assertions. */
export function errorsOf(items: ImportItem[]): { line: number; error: string }[] {
  return items.filter((item): item is { line: number; error: string } => 'error' in item);
}

/** The items' inputs with their lines. */
export function inputsOf(items: ImportItem[]) {
  return items.flatMap((item) => ('input' in item ? [{ line: item.line, ...item.input }] : []));
}

/** Credentials with every character class that breaks naive CSV/JSON/text handling. */
export const NASTY_USERNAME = "us\"er,na\tme\nwith — ünïcødé 🚀 \\ 'q'";
export const NASTY_PASSWORD = `p"a,s\ts\r\nw'o;r#d @:/?&=%${'x'.repeat(160)}ŝ€`.padEnd(200, 'Z');
