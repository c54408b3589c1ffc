// Real child processes: a cache must never hold a process open, and a key file created by one
// process must be the key of the next one.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const run = promisify(execFile);
// `npm test` builds first; the children import the built package as a user would.
const entry = resolve('dist/index.js');

async function runScript(source: string, env: Record<string, string> = {}) {
  return run(process.execPath, ['--input-type=module', '-e', source], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
    timeout: 20_000,
  });
}

describe('process lifecycle', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxytier-process-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits on its own after open and close, with the sweep timer running', async () => {
    const started = Date.now();
    const { stdout } = await runScript(`
      import { ProxyCache } from ${JSON.stringify(entry)};
      const cache = await ProxyCache.open({ sweepIntervalMs: 1000 });
      await cache.put({ proxyUrl: 'http://user:pass@192.0.2.1:8080' });
      console.log((await cache.stats()).tiers[0].entries);
      await cache.close();
    `);
    expect(stdout.trim()).toBe('1');
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('does not hold the process open even when close() is forgotten', async () => {
    const { stdout } = await runScript(`
      import { ProxyCache } from ${JSON.stringify(entry)};
      const cache = await ProxyCache.open({ sweepIntervalMs: 60000 });
      await cache.put({ proxyUrl: 'http://192.0.2.1:8080' });
      console.log('done');
    `);
    expect(stdout.trim()).toBe('done');
  });

  it('creates the key file once (mode 0600) and the next process reuses it', async () => {
    const keyFile = join(dir, 'config', 'proxytier', 'key');
    const env = { PROXYTIER_KEY_FILE: keyFile };
    const first = await runScript(
      `
      import { resolveKeyring, createStderrLogger } from ${JSON.stringify(entry)};
      const { keyring, created } = await resolveKeyring({ logger: createStderrLogger() });
      console.log(JSON.stringify({ created, token: keyring.encrypt('carried over') }));
    `,
      env,
    );
    const { created, token } = JSON.parse(first.stdout) as { created: boolean; token: string };
    expect(created).toBe(true);
    expect(first.stderr).toContain(keyFile);
    expect(first.stderr.trim().split('\n')).toHaveLength(1);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'config', 'proxytier'))).mode & 0o777).toBe(0o700);

    const second = await runScript(
      `
      import { resolveKeyring, createStderrLogger } from ${JSON.stringify(entry)};
      const { keyring, created } = await resolveKeyring({ logger: createStderrLogger() });
      console.log(JSON.stringify({ created, plain: keyring.decrypt(${JSON.stringify(token)}) }));
    `,
      env,
    );
    expect(JSON.parse(second.stdout)).toEqual({ created: false, plain: 'carried over' });
    expect(second.stderr).toBe('');
  });
});
