// The command line's errors are ProxyTierErrors with stable codes, printed by the one
// describeError every error of the library and the tool goes through.
import { describe, expect, it } from 'vitest';
import { CliError, UsageError } from '../../src/cli/errors.js';
import { describeError } from '../../src/describe-error.js';
import { ProxyTierError, TierError } from '../../src/errors.js';

describe('command-line errors', () => {
  it('join the ProxyTierError hierarchy, each with a code', () => {
    const missing = new CliError('no store in ./x', 'E_NO_STORE');
    const usage = new UsageError('--limit must be a positive integer');
    for (const error of [missing, usage, new CliError('something failed')]) {
      expect(error).toBeInstanceOf(ProxyTierError);
      expect(error.code).toMatch(/^E[A-Z_]+$/);
    }
    expect(new CliError('something failed').code).toBe('E_CLI');
    expect(usage.exitCode).toBe(2);
  });

  it('read alike through describeError', () => {
    expect(describeError(new CliError('no store in ./x', 'E_NO_STORE'))).toBe(
      'E_NO_STORE: no store in ./x',
    );
    expect(describeError(new TierError('sqlite', 'disk I/O error'))).toBe('E_TIER: disk I/O error');
    const system = Object.assign(new Error('open failed'), { code: 'ENOENT' });
    expect(describeError(system)).toBe('ENOENT: open failed');
    const named = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    expect(describeError(named)).toBe('ENOENT: no such file');
  });
});
