// The SQLite tier's key checks (see crypto/key-check.ts): a side table proxywhirl never reads.
import type { KeyCheck } from '../../crypto/key-check.js';
import type { Database } from './driver.js';

const KEY_CHECKS_TABLE = 'proxytier_key_checks';

export const KEY_CHECKS_DDL = `CREATE TABLE IF NOT EXISTS ${KEY_CHECKS_TABLE} (
  fingerprint TEXT PRIMARY KEY,
  token TEXT NOT NULL,
  created_at REAL NOT NULL
)`;

export function readKeyChecks(db: Database): KeyCheck[] {
  return db
    .prepare(`SELECT fingerprint, token FROM ${KEY_CHECKS_TABLE} ORDER BY created_at`)
    .all() as KeyCheck[];
}

/** Inserts the check unless one of its fingerprint exists; `at` is epoch seconds. */
export function insertKeyCheck(db: Database, check: KeyCheck, at: number): void {
  db.prepare(
    `INSERT INTO ${KEY_CHECKS_TABLE} (fingerprint, token, created_at) VALUES (?, ?, ?) ON CONFLICT(fingerprint) DO NOTHING`,
  ).run(check.fingerprint, check.token, at);
}
