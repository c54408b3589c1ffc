// Parsing streams: the memory a parse keeps does not grow with the input. Measured as live heap
// after a full garbage collection at intervals during the parse of a ~50 MB file.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProxyRecords, type ImportFormat } from '../../src/io/import.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const TARGET_BYTES = 50 * 1024 * 1024;
const PADDING = 'x'.repeat(400);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'proxytier-memory-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function record(format: ImportFormat, i: number): string {
  const url = `http://user${i}:pass${i}@10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`;
  switch (format) {
    case 'text':
      return `${url} # ${PADDING}\n`;
    case 'jsonl':
      return `${JSON.stringify({ proxy_url: url, last_health_error: PADDING })}\n`;
    case 'json':
      return `${i === 0 ? '[\n' : ',\n'}${JSON.stringify({ proxy_url: url, last_health_error: PADDING }, null, 2)}`;
    case 'csv':
      return `${i === 0 ? 'proxy_url,last_health_error\n' : ''}${url},"${PADDING}\n${PADDING}"\n`;
  }
}

async function generate(format: ImportFormat): Promise<{ path: string; records: number }> {
  const path = join(dir, `big-${format}`);
  const out = createWriteStream(path);
  let written = 0;
  let records = 0;
  while (written < TARGET_BYTES) {
    const batch: string[] = [];
    for (let n = 0; n < 1000; n += 1) batch.push(record(format, records++));
    const text = batch.join('');
    written += Buffer.byteLength(text);
    if (!out.write(text)) await once(out, 'drain');
  }
  if (format === 'json') out.write('\n]\n');
  out.end();
  await once(out, 'finish');
  return { path, records };
}

describe('streaming parse of a ~50 MB file', () => {
  for (const format of ['text', 'json', 'jsonl', 'csv'] as const) {
    it(`keeps the heap flat for ${format}`, async () => {
      const { path, records } = await generate(format);
      const size = (await stat(path)).size;
      expect(size).toBeGreaterThan(TARGET_BYTES);
      // Live heap, plus Buffers (file chunks live outside the heap).
      const used = () => {
        gc();
        const { heapUsed, arrayBuffers } = process.memoryUsage();
        return { heapUsed, total: heapUsed + arrayBuffers };
      };
      const baseline = used();
      let peak = baseline;
      let count = 0;
      let errors = 0;
      for await (const item of parseProxyRecords(createReadStream(path), { format })) {
        count += 1;
        if ('error' in item) errors += 1;
        if (count % 20_000 === 0) {
          const now = used();
          peak = {
            heapUsed: Math.max(peak.heapUsed, now.heapUsed),
            total: Math.max(peak.total, now.total),
          };
        }
      }
      expect(errors).toBe(0);
      expect(count).toBe(records);
      expect(peak.heapUsed - baseline.heapUsed).toBeLessThan(30 * 1024 * 1024);
      expect(peak.total - baseline.total).toBeLessThan(size / 10);
    });
  }
});
