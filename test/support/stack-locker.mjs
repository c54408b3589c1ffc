// Child process of test/stack/processes.test.ts (started with fork): holds SQLite's write lock on
// a database file through better-sqlite3 directly. It runs BEGIN IMMEDIATE, tells the parent
// { locked, at }, holds the lock for <hold ms> (a timer, so this process stays responsive), then
// COMMITs and tells the parent { released, at }.
// argv: <database path> <hold ms>
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import Database from 'better-sqlite3';

const [path, holdText] = process.argv.slice(2);
const wall = () => performance.timeOrigin + performance.now();

const db = new Database(path, { timeout: 0 });
db.exec('BEGIN IMMEDIATE');
process.send({ locked: true, at: wall() });
setTimeout(() => {
  db.exec('COMMIT');
  const at = wall();
  db.close();
  process.send({ released: true, at }, () => process.disconnect());
}, Number(holdText));
