// createProgress: drawn on a terminal with the count, rate and ETA; silent anywhere else.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgress } from '../../src/io/progress.js';

function fakeStream(isTTY: boolean) {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString('utf8');
      callback();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  if (isTTY) {
    stream.isTTY = true;
    stream.columns = 120;
  }
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

describe('createProgress', () => {
  it('prints nothing when the stream is not a TTY', () => {
    const out = fakeStream(false);
    const progress = createProgress({ total: 10, label: 'importing', stream: out.stream });
    progress.update(5);
    progress.stop();
    progress.stop();
    expect(out.text()).toBe('');
  });

  it('shows the count, the total, the rate and the ETA on a TTY', () => {
    const out = fakeStream(true);
    const progress = createProgress({ total: 200, label: 'importing', stream: out.stream });
    progress.update(50);
    progress.stop();
    progress.update(60);
    const text = out.text();
    expect(text).toContain('importing');
    expect(text).toContain('50/200');
    expect(text).toMatch(/[\d,]+\/s/);
    expect(text).toContain('ETA');
    expect(text).not.toContain('60/200');
  });

  it('shows the count and the rate when the total is unknown', () => {
    const out = fakeStream(true);
    const progress = createProgress({ label: 'exporting', stream: out.stream });
    progress.update(1234);
    progress.stop();
    expect(out.text()).toMatch(/exporting 1234 records \| [\d,]+\/s/);
  });
});
