import { constants as fsConstants, promises as fs } from 'node:fs';

/**
 * Makes a new directory entry (a file created or renamed into `dir`) durable. Best effort: some
 * platforms cannot fsync a directory, and the file itself is already synced by its writer.
 */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, fsConstants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not fatal: see above.
  }
}
