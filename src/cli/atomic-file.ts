// Files a command writes (exports) appear whole or not at all: written to a temporary file in the
// same directory (mode 0600), flushed to disk, then renamed over the target.
import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { basename, dirname, join, resolve } from 'node:path';
import { syncDir } from '../sync-dir.js';

/**
 * Calls `write` with a stream to a temporary file next to `path`, then makes it `path`. When
 * `write` (or anything after it) fails, the temporary file is removed and `path` is untouched.
 */
export async function writeFileAtomically<T>(
  path: string,
  write: (output: Writable) => Promise<T>,
): Promise<T> {
  const target = resolve(path);
  const dir = dirname(target);
  const temp = join(
    dir,
    `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
  // 'wx': a new file, created 0600 whatever the umask allows.
  const output = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
  try {
    await once(output, 'open');
    const result = await write(output);
    await new Promise<void>((done, fail) => {
      output.once('error', fail);
      output.end(() => done());
    });
    if (!output.closed) await once(output, 'close');
    // fsync applies to the file, whichever descriptor asks: its data is on disk before the rename.
    const handle = await fs.open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, target);
    await syncDir(dir);
    return result;
  } catch (error) {
    output.destroy();
    await fs.rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
}
