// The JSONL tier's key checks (see crypto/key-check.ts): one file per key fingerprint in the
// tier's directory, `key-check.<fingerprint>`, holding the check token. proxywhirl reads only its
// shard files, so it never sees them. One file per key needs no lock: a file is created once,
// complete (written aside, then hard-linked into place), and never rewritten.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { KeyCheck } from '../../crypto/key-check.js';

const FILE_PATTERN = /^key-check\.([0-9a-f]{8})$/;
const FILE_MODE = 0o600;

/** The checks found in `dir`, in name order; a file that cannot be read is skipped. */
export function readKeyCheckFiles(dir: string): KeyCheck[] {
  const checks: KeyCheck[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const match = FILE_PATTERN.exec(name);
    if (match === null) continue;
    const token = fs.readFileSync(join(dir, name), 'latin1').trim();
    if (token !== '') checks.push({ fingerprint: match[1] as string, token });
  }
  return checks;
}

/** Writes the check's file unless one exists for its fingerprint. */
export function writeKeyCheckFile(dir: string, check: KeyCheck): void {
  if (!/^[0-9a-f]{8}$/.test(check.fingerprint)) {
    throw new Error(`a key fingerprint is 8 hex digits, got ${JSON.stringify(check.fingerprint)}`);
  }
  const target = join(dir, `key-check.${check.fingerprint}`);
  const aside = join(dir, `.key-check.${check.fingerprint}.${randomBytes(6).toString('hex')}`);
  const fd = fs.openSync(aside, 'wx', FILE_MODE);
  try {
    fs.writeSync(fd, `${check.token}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(aside, target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    fs.rmSync(aside, { force: true });
  }
}
