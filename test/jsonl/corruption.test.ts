// Torn and corrupt files: shards truncated at random offsets, garbage appended, bytes flipped.
// Whatever the damage, every intact record is still served exactly, no damaged record is ever
// served with wrong content, and every damaged record is counted.
import {
  appendFile,
  cp,
  mkdtemp,
  readFile,
  readdir,
  rm,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFernetKey } from '../../src/crypto/fernet.js';
import { Keyring } from '../../src/crypto/keyring.js';
import type { ProxyEntry } from '../../src/record/entry.js';
import { shardFileName, shardOf } from '../../src/tiers/jsonl/codec.js';
import { JsonlTier } from '../../src/tiers/jsonl/index.js';
import { expectSameEntry, makeContext, sampleEntry } from '../tiers/contract.js';

/** Deterministic PRNG (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Line {
  key: string;
  file: string;
  start: number;
  /** Offset of its newline. */
  end: number;
}

const COUNT = 320;

describe('jsonl tier: torn and corrupt files', () => {
  let root: string;
  const keyring = new Keyring(generateFernetKey());
  const written = new Map<string, ProxyEntry>();
  const lines: Line[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'proxytier-damage-'));
    const tier = new JsonlTier({ dir: join(root, 'pristine') });
    await tier.open(makeContext(keyring).context);
    const all = Array.from({ length: COUNT }, (_, i) =>
      sampleEntry(keyring, i, i % 3 === 0 ? { username: null, password: null } : {}),
    );
    await Promise.all(all.map((entry) => tier.set(entry)));
    await tier.close();
    for (const entry of all) written.set(entry.key, entry);
    for (let shard = 0; shard < 16; shard += 1) {
      const file = shardFileName(shard);
      const text = await readFile(join(root, 'pristine', file), 'latin1');
      let start = 0;
      while (start < text.length) {
        const end = text.indexOf('\n', start);
        const { key } = JSON.parse(text.slice(start, end)) as { key: string };
        lines.push({ key, file, start, end });
        start = end + 1;
      }
    }
    expect(lines).toHaveLength(COUNT);
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Copies the pristine store, lets `damage` edit the copy, opens it and checks the outcome. */
  async function scenario(
    name: string,
    damage: (dir: string) => Promise<{ damaged: Set<string>; gone: Set<string> }>,
  ) {
    const dir = join(root, name);
    await cp(join(root, 'pristine'), dir, { recursive: true });
    const { damaged, gone } = await damage(dir);
    const tier = new JsonlTier({ dir });
    const { context, evictions } = makeContext(keyring);
    await tier.open(context);
    try {
      let missing = 0;
      for (const [key, entry] of written) {
        const found = await tier.get(key);
        if (found === undefined) {
          // Only a damaged or cut-off record may be missing.
          expect(damaged.has(key) || gone.has(key), `intact record ${key} is missing`).toBe(true);
          if (damaged.has(key)) missing += 1;
        } else {
          expectSameEntry(found, entry); // never served with wrong content
        }
      }
      const stats = tier.stats();
      expect(stats.corruptRecords + stats.tornTails).toBeGreaterThanOrEqual(missing);
      for (const { key, reason } of evictions) {
        expect(reason).toBe('corruption');
        if (written.has(key)) expect(damaged.has(key)).toBe(true);
      }
      // The store keeps working: a new write lands cleanly and survives a reopen.
      const extra = sampleEntry(keyring, 10_000 + name.length);
      await tier.set(extra);
      await tier.close();
      const again = new JsonlTier({ dir });
      await again.open(makeContext(keyring).context);
      expectSameEntry(await again.get(extra.key), extra);
      const servedBefore = [...written.keys()].filter((key) => !damaged.has(key) && !gone.has(key));
      for (const key of servedBefore)
        expectSameEntry(await again.get(key), written.get(key) as ProxyEntry);
      await again.close();
      return { stats, evictions, missing };
    } finally {
      await tier.close();
    }
  }

  function linesOf(file: string): Line[] {
    return lines.filter((line) => line.file === file);
  }

  it('flipped bytes: each damaged record is skipped and counted, the rest served', async () => {
    for (let round = 0; round < 6; round += 1) {
      const next = random(1000 + round);
      const { stats, missing } = await scenario(`flip-${round}`, async (dir) => {
        const damaged = new Set<string>();
        for (let i = 0; i < 12; i += 1) {
          const line = lines[Math.floor(next() * lines.length)] as Line;
          const path = join(dir, line.file);
          const bytes = await readFile(path);
          // Anywhere in the line, its newline included.
          const at = line.start + Math.floor(next() * (line.end - line.start + 1));
          bytes[at] = (bytes[at] as number) ^ (1 + Math.floor(next() * 255));
          await writeFile(path, bytes);
          damaged.add(line.key);
          // A damaged newline glues the next record to this one.
          const after = linesOf(line.file).find((other) => other.start === line.end + 1);
          if (at === line.end && after !== undefined) damaged.add(after.key);
        }
        return { damaged, gone: new Set() };
      });
      expect(missing).toBeGreaterThan(0);
      expect(stats.corruptRecords).toBeGreaterThanOrEqual(missing);
    }
  });

  it('truncated shards: the cut record is cut off, every record before it is served', async () => {
    for (let round = 0; round < 4; round += 1) {
      const next = random(2000 + round);
      const { stats } = await scenario(`truncate-${round}`, async (dir) => {
        const gone = new Set<string>();
        for (const file of (await readdir(dir)).filter((name) => name.endsWith('.jsonl'))) {
          if (next() < 0.4) continue;
          const size = (await readFile(join(dir, file))).length;
          const cut = Math.floor(next() * size);
          await truncate(join(dir, file), cut);
          for (const line of linesOf(file)) if (line.end >= cut) gone.add(line.key);
        }
        return { damaged: new Set(), gone };
      });
      expect(stats.tornTails).toBeGreaterThan(0);
    }
  });

  it('garbage appended, with or without a newline, hides nothing', async () => {
    const next = random(3000);
    const { stats } = await scenario('garbage', async (dir) => {
      for (let shard = 0; shard < 16; shard += 1) {
        const junk = Buffer.from(
          Array.from({ length: 40 + shard * 7 }, () => Math.floor(next() * 256)),
        );
        const path = join(dir, shardFileName(shard));
        if (shard % 4 === 0) await appendFile(path, Buffer.concat([junk, Buffer.from('\n')]));
        else if (shard % 4 === 1)
          await appendFile(path, junk.toString('latin1').replace(/\n/g, ' '));
        else if (shard % 4 === 2)
          await appendFile(path, '{"key": "5767fc14bc03465a", "proxy_url": "ht');
        else await appendFile(path, '\n\n  \n');
      }
      return { damaged: new Set(), gone: new Set() };
    });
    expect(stats.tornTails).toBeGreaterThan(0);
    expect(stats.corruptRecords).toBeGreaterThan(0);
  });

  it('all kinds of damage at once', async () => {
    const next = random(4000);
    await scenario('mixed', async (dir) => {
      const damaged = new Set<string>();
      const gone = new Set<string>();
      for (let shard = 0; shard < 16; shard += 1) {
        const file = shardFileName(shard);
        const path = join(dir, file);
        let bytes = await readFile(path);
        const own = linesOf(file);
        for (let i = 0; i < 2; i += 1) {
          const line = own[Math.floor(next() * own.length)] as Line;
          const at = line.start + Math.floor(next() * (line.end - line.start));
          bytes[at] = (bytes[at] as number) ^ 0x20;
          damaged.add(line.key);
        }
        if (shard % 2 === 0) {
          const cut = Math.floor(bytes.length * (0.5 + next() / 2));
          bytes = bytes.subarray(0, cut);
          for (const line of own) if (line.end >= cut) gone.add(line.key);
        }
        await writeFile(path, Buffer.concat([bytes, Buffer.from('garbage')]));
      }
      return { damaged, gone };
    });
  });

  it('a damaged newline glues two records together but hides neither', async () => {
    const file = shardFileName(9);
    const [first, second] = linesOf(file) as [Line, Line];
    const { stats, missing } = await scenario('newline', async (dir) => {
      const path = join(dir, file);
      const bytes = await readFile(path);
      bytes[first.end] = 0x78; // the newline becomes an 'x'
      await writeFile(path, bytes);
      return { damaged: new Set([first.key, second.key]), gone: new Set() };
    });
    expect(missing).toBe(0);
    expect(stats.corruptRecords).toBe(0);
  });

  it('a record damaged after open is dropped when read, and reported', async () => {
    const dir = join(root, 'late');
    await cp(join(root, 'pristine'), dir, { recursive: true });
    const tier = new JsonlTier({ dir });
    const { context, evictions } = makeContext(keyring);
    await tier.open(context);
    const victim = lines[7] as Line;
    const path = join(dir, victim.file);
    const bytes = await readFile(path);
    bytes[victim.start + 40] = (bytes[victim.start + 40] as number) ^ 0x01;
    await writeFile(path, bytes); // same size, same inode: only the read can notice
    expect(await tier.get(victim.key)).toBeUndefined();
    expect(evictions).toEqual([{ key: victim.key, reason: 'corruption' }]);
    for (const line of linesOf(victim.file)) {
      if (line.key !== victim.key)
        expectSameEntry(await tier.get(line.key), written.get(line.key) as ProxyEntry);
    }
    expect(shardOf(victim.key)).toBe(Number(victim.file.slice(6, 8)));
    await tier.close();
  });
});
