// `proxytier key generate` and `key rotate`: a rotation killed part-way (SIGKILL) is finished by
// the next run, and afterwards every credential decrypts with the new key alone.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lines, plainExport, sandbox, type ExportedRecord, type Sandbox } from './helpers.js';

const ENTRIES = 4_000;

interface Doctor {
  problems: { severity: string; what: string; fix: string }[];
  checks: {
    key: { source: string; fingerprints: string[] };
    tokens: { current: number; previous: number; unreadable: number };
  };
}

/** The key lines of a key file, current first. */
async function keysOf(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** Credentials only: what must survive a rotation. */
function credentials(records: Map<string, ExportedRecord>) {
  return new Map(
    [...records].map(([key, record]) => [key, [record['username'], record['password']]]),
  );
}

describe('key generate', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
  });
  afterAll(() => box.cleanup());

  it('prints a new Fernet key, a different one each time', async () => {
    const first = await box.run(['key', 'generate']);
    const second = await box.run(['key', 'generate']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^[A-Za-z0-9_-]{43}=\n$/);
    expect(second.stdout).not.toBe(first.stdout);
    const json = await box.json<{ key: string; fingerprint: string }>(['key', 'generate']);
    expect(json.key).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    expect(json.fingerprint).toMatch(/^[0-9a-f]+$/);
  });

  it('writes a key file with mode 0600 and never replaces one', async () => {
    const written = await box.run(['key', 'generate', '--output', 'new.key']);
    expect(written.code).toBe(0);
    expect(written.stdout).toMatch(
      /^wrote a new key to new\.key \(mode 0600, fingerprint [0-9a-f]+\)\n$/,
    );
    expect((await stat(box.path('new.key'))).mode & 0o777).toBe(0o600);
    const [key] = await keysOf(box.path('new.key'));
    expect(written.stdout).not.toContain(key);
    const again = await box.run(['key', 'generate', '--output', 'new.key']);
    expect(again.code).toBe(1);
    expect(lines(again.stderr)).toEqual([
      expect.stringMatching(
        /^proxytier: E_KEY_FILE_EXISTS: new\.key already exists and is never replaced/,
      ),
    ]);
    expect(await keysOf(box.path('new.key'))).toEqual([key]);
  });
});

describe('key rotate', () => {
  let box: Sandbox;
  let before: Map<string, ExportedRecord>;

  beforeAll(async () => {
    box = await sandbox();
    const list: string[] = [];
    for (let i = 0; i < ENTRIES; i += 1) {
      list.push(`http://user${i}:p@ss,${i}"x@10.2.${i >> 8}.${i & 255}:8080`);
    }
    await writeFile(box.path('creds.txt'), `${list.join('\n')}\n`);
    const imported = await box.run(['import', 'creds.txt', '--ttl', '86400']);
    expect(imported.code, imported.stderr).toBe(0);
    before = await plainExport(box);
    expect(before.size).toBe(ENTRIES);
  });
  afterAll(() => box.cleanup());

  it('finishes a rotation that was killed part-way, and only the new key is needed after', async () => {
    const oldKeys = await keysOf(box.keyFile);
    expect(oldKeys).toHaveLength(1);
    // Start a rotation and kill it (SIGKILL) a short random time after it starts re-encrypting.
    const child = box.start(['key', 'rotate']);
    let stderr = '';
    const ended = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    await new Promise<void>((started) => {
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        if (stderr.includes('re-encrypting')) started();
      });
      void ended.then(() => started());
    });
    await new Promise((wait) => setTimeout(wait, Math.floor(Math.random() * 150)));
    child.kill('SIGKILL');
    await ended;

    // The key file was replaced atomically: it holds the new key first, then the old one.
    const during = await keysOf(box.keyFile);
    expect(during.slice(1)).toEqual(oldKeys);
    const newKey = during[0] as string;

    // Running it again finishes the job (resuming it when some tokens were still under the old
    // key), without making yet another key.
    const again = await box.run(['key', 'rotate', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const result = JSON.parse(again.stdout) as {
      resumed: boolean;
      previous: number;
      unreadable: number;
    };
    expect(result).toMatchObject({ previous: 0, unreadable: 0 });
    if (result.resumed) {
      expect(again.stderr).toContain('resuming an unfinished rotation');
      expect(await keysOf(box.keyFile)).toEqual(during);
    }

    // No token is left under an old key, none is unreadable, and every credential is intact.
    const doctor = await box.json<Doctor>(['doctor']);
    expect(doctor.checks.tokens).toEqual({ current: 2 * ENTRIES, previous: 0, unreadable: 0 });
    expect(credentials(await plainExport(box))).toEqual(credentials(before));

    // The key that made every token is the current one of the file: with it alone, everything
    // still decrypts.
    const current = (await keysOf(box.keyFile))[0] as string;
    if (!result.resumed) expect(current).not.toBe(newKey);
    await writeFile(box.path('only-current.key'), `${current}\n`, { mode: 0o600 });
    const alone = await plainExport(box, [], { PROXYTIER_KEY_FILE: box.path('only-current.key') });
    expect(credentials(alone)).toEqual(credentials(before));
    for (const old of oldKeys) expect(current).not.toBe(old);
  });

  it('resumes an unfinished rotation instead of making a new key', async () => {
    // An unfinished rotation: a new key put first into the key file, nothing re-encrypted yet.
    const generated = await box.run(['key', 'generate']);
    const keys = [generated.stdout.trim(), ...(await keysOf(box.keyFile))];
    await writeFile(box.keyFile, `${keys.join('\n')}\n`, { mode: 0o600 });
    const doctor = await box.json<Doctor>(['doctor']);
    expect(doctor.checks.tokens.previous).toBe(2 * ENTRIES);
    expect(doctor.problems).toContainEqual({
      severity: 'warning',
      what: `${2 * ENTRIES} stored credential tokens are still encrypted under a previous key (an unfinished key rotation)`,
      fix: 'proxytier key rotate',
    });

    const result = await box.run(['key', 'rotate']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      `proxytier: resuming an unfinished rotation: ${2 * ENTRIES} stored credential tokens are still under a previous key; no new key is made`,
    );
    expect(lines(result.stdout)[0]).toMatch(
      new RegExp(
        `^finished the unfinished rotation: ${2 * ENTRIES} credential tokens re-encrypted, 0 already under the current key`,
      ),
    );
    expect(await keysOf(box.keyFile)).toEqual(keys);
    const after = await box.json<Doctor>(['doctor']);
    expect(after.checks.tokens).toEqual({ current: 2 * ENTRIES, previous: 0, unreadable: 0 });
    expect(after.problems).toEqual([]);
  });

  it('--drop-previous removes the old keys once every token is current', async () => {
    const result = await box.run(['key', 'rotate', '--drop-previous']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`removed the previous keys from ${box.keyFile}`);
    expect(await keysOf(box.keyFile)).toHaveLength(1);
    expect(credentials(await plainExport(box))).toEqual(credentials(before));
  });

  it('refuses to rotate a key from the environment, and explains how', async () => {
    const [key] = await keysOf(box.keyFile);
    const env = { PROXYTIER_ENCRYPTION_KEY: key as string };
    const result = await box.run(['key', 'rotate'], { env });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(
        /^proxytier: E_KEY_SOURCE: the key comes from PROXYTIER_ENCRYPTION_KEY, which proxytier cannot rewrite\. To rotate it: make a key with "proxytier key generate", set PROXYTIER_ENCRYPTION_KEY to it and PROXYTIER_PREVIOUS_KEYS to the old key/,
      ),
    ]);
    // Done that way, `key rotate` re-encrypts under the new environment key.
    const fresh = (await box.run(['key', 'generate'])).stdout.trim();
    const rotated = { PROXYTIER_ENCRYPTION_KEY: fresh, PROXYTIER_PREVIOUS_KEYS: key as string };
    const resumed = await box.run(['key', 'rotate'], { env: rotated });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain('resuming an unfinished rotation');
    const doctor = await box.json<Doctor>(['doctor'], { env: { PROXYTIER_ENCRYPTION_KEY: fresh } });
    expect(doctor.checks.tokens).toEqual({ current: 2 * ENTRIES, previous: 0, unreadable: 0 });
  });
});
