// The secret scan: every command of the command-line tool, run as a user would (successes and
// errors: malformed URLs that carry credentials, a wrong key, missing files), with --debug and
// PROXYTIER_LOG_LEVEL=debug, and every byte it printed searched for every stored credential and
// every key the store has ever had. The one command whose job is to print credentials,
// `export --secrets plain`, is left out; `key generate` prints a new key that no store uses.
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, sandbox, type RunResult, type Sandbox } from './helpers.js';

// Distinctive values, so that a hit is never a coincidence; some need percent-escapes in a URL.
const USERS = ['scan-user-Qx7', 'scanuser2Kw', 'ünïcode-usr'];
const PASSWORDS = ['s3cr3t-PW-x9!', 'p@ss:w0rd/Zq', 'tab-less%percent-Jj4'];
const BAD_PASSWORD = 'never-stored-Vb3';

function urlWith(user: string, password: string, host: string): string {
  return `http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:8080`;
}

/** Every form a secret could take in output: as is, percent-escaped, and base64 of it. */
function forms(secret: string): string[] {
  return [
    secret,
    encodeURIComponent(secret),
    Buffer.from(secret).toString('base64').replace(/=+$/, ''),
  ];
}

describe('secret scan over every command', () => {
  let box: Sandbox;
  const outputs: { command: string; result: RunResult }[] = [];
  const debugEnv = { PROXYTIER_LOG_LEVEL: 'debug' };

  async function run(args: string[], input?: string): Promise<RunResult> {
    const result = await box.run(['--debug', ...args], {
      env: debugEnv,
      ...(input === undefined ? {} : { input }),
    });
    outputs.push({ command: args.join(' '), result });
    return result;
  }

  beforeAll(async () => {
    box = await sandbox();
    const list = USERS.map((user, i) => urlWith(user, PASSWORDS[i] as string, `10.44.0.${i + 1}`));
    await writeFile(box.path('list.txt'), `${list.join('\n')}\n`);
    await writeFile(
      box.path('bad.txt'),
      [
        `http://${USERS[0]}:${BAD_PASSWORD}@[::1`,
        `http://${USERS[1]}:${BAD_PASSWORD}%zz@10.44.1.1:80`,
        `http://${USERS[2]}:${BAD_PASSWORD}\u0007@10.44.1.2:80`,
        `${USERS[0]}:${BAD_PASSWORD}@10.44.1.3:99999`,
      ].join('\n') + '\n',
    );
    await writeFile(
      box.path('bad.csv'),
      `proxy_url,username,password\nhttp://10.44.2.1:80,${USERS[0]},${BAD_PASSWORD}\nnot a url,${USERS[1]},${BAD_PASSWORD}\n`,
    );
    const first = list[0] as string;
    const key = (await run(['import', 'list.txt', '--json'])).stdout;
    const stored = (JSON.parse(key) as { loaded: number }).loaded;
    expect(stored).toBe(USERS.length);
    const generated = await box.run(['key', 'generate']);
    await writeFile(box.path('other.key'), generated.stdout, { mode: 0o600 });

    await run(['import', 'bad.txt']);
    await run(['import', 'bad.csv']);
    await run(['import', '-'], `${urlWith(USERS[0] as string, BAD_PASSWORD, '[::1')}\n`);
    await run(['import', 'missing.csv']);
    await run(['get', first]);
    await run(['get', first, '--json']);
    await run(['get', `http://${USERS[0]}:${BAD_PASSWORD}@[::1`]);
    await run(['get', urlWith(USERS[1] as string, BAD_PASSWORD, '10.44.9.9')]);
    await run(['list']);
    await run(['list', '--json']);
    await run(['stats']);
    await run(['stats', '--json']);
    await run(['history', first]);
    await run(['history', first, '--json']);
    await run(['check-result', first, '--status', 'unhealthy', '--ms', '12', '--error', 'timeout']);
    await run(['check-result', first, '--status', 'healthy', '--ms', '9', '--json']);
    await run(['report-failure', first, '--json']);
    await run(['report-failure', `http://${USERS[2]}:${BAD_PASSWORD}@10.44.9.8:80`]);
    await run(['export']);
    await run(['export', '--format', 'csv']);
    await run(['export', '--secrets', 'encrypted', '--format', 'json']);
    await run(['export', 'out.jsonl', '--secrets', 'encrypted']);
    await run(['--key-file', box.path('other.key'), 'list']);
    await run(['--key-file', box.path('other.key'), 'export', '--secrets', 'plain']);
    await run(['--key-file', box.path('missing.key'), 'list']);
    await run(['--key-file', box.path('other.key'), 'doctor']);
    await run(['doctor']);
    await run(['doctor', '--json']);
    await run(['cleanup']);
    await run(['compact']);
    await run(['key', 'rotate']);
    await run(['key', 'rotate', '--json']);
    await run(['migrate', box.path('no-such-dir')]);
    await run(['migrate', FIXTURES, '--key-file', box.path('other.key')]);
    await run(['delete', urlWith(USERS[1] as string, PASSWORDS[1] as string, '10.44.0.2')]);
    await run(['delete', `http://${USERS[0]}:${BAD_PASSWORD}@[::1`]);
    await run(['clear']);
    await run(['clear', '--yes']);
    await run(['no-such-command', first]);
    await run(['--dir', box.path('nothing-here'), 'list']);
    await run(['demo']);
  }, 300_000);
  afterAll(() => box.cleanup());

  it('ran every command, successes and failures', () => {
    const codes = new Set(outputs.map(({ result }) => result.code));
    expect(codes).toContain(0);
    expect(codes).toContain(1);
    expect(outputs.length).toBeGreaterThan(40);
    // The wrong key was refused, so the scan covered that error too.
    const wrong = outputs.find(({ command }) => command.includes('other.key list'));
    expect(wrong?.result.stderr).toMatch(/E_WRONG_KEY/);
  });

  it('printed no credential and no key, anywhere', async () => {
    const keys = (await readFile(box.keyFile, 'utf8'))
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    expect(keys.length).toBeGreaterThanOrEqual(3); // the first key and two rotations
    const secrets = [...USERS, ...PASSWORDS, BAD_PASSWORD, ...keys].flatMap(forms);
    const hits: string[] = [];
    for (const { command, result } of outputs) {
      const printed = `${result.stdout}\n${result.stderr}`;
      for (const secret of secrets) {
        if (printed.includes(secret)) hits.push(`${command}: ${secret.slice(0, 4)}…`);
      }
    }
    expect(hits).toEqual([]);
  });
});
