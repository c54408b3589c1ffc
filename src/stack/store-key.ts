// Wrong-key detection at open: before anything is written, every persistent tier's recorded key
// checks (see crypto/key-check.ts) must include one the keyring decrypts. A store that recorded
// none (written by proxywhirl, or before checks existed) is judged by a sample of its tokens. A
// keyring that passes records a check for its current key, so the next rotation's key is known.
import { makeKeyCheck, passesKeyCheck } from '../crypto/key-check.js';
import { KEY_VARIABLES } from '../crypto/key-source.js';
import type { Keyring } from '../crypto/keyring.js';
import { WrongKeyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Tier } from '../tiers/tier.js';

/** How many stored tokens are tried on a store without key checks. */
const SAMPLED_TOKENS = 16;

/**
 * Checks `keyring` against each opened persistent tier. Throws `WrongKeyError` (`E_WRONG_KEY`)
 * naming the fingerprints on both sides when it matches none of a tier's checks, or decrypts
 * none of its sampled tokens; with `readOnly`, logs a warning instead and records nothing.
 */
export async function verifyStoreKey(
  tiers: readonly Tier[],
  keyring: Keyring,
  options: { readOnly: boolean; logger: Logger },
): Promise<void> {
  for (const tier of tiers) {
    if (!tier.persistent || tier.keyChecks === undefined) continue;
    try {
      await verifyTier(tier, keyring, options);
    } catch (error) {
      if (error instanceof WrongKeyError) throw error;
      // A tier that cannot answer now fails its next call too, and is switched off then.
      options.logger.warn(
        `could not check the key against the "${tier.name}" tier: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
}

async function verifyTier(
  tier: Tier,
  keyring: Keyring,
  options: { readOnly: boolean; logger: Logger },
): Promise<void> {
  const checks = (await tier.keyChecks?.()) ?? [];
  let wrong: readonly string[] | undefined;
  if (checks.length > 0) {
    if (!passesKeyCheck(keyring, checks)) wrong = checks.map((check) => check.fingerprint);
  } else if ((await sampleDecrypts(tier, keyring)) === false) {
    wrong = [];
  }
  if (wrong !== undefined) {
    const error = wrongKey(tier, keyring, wrong);
    if (!options.readOnly) throw error;
    options.logger.warn(`${error.message}; opened read-only, credentials may not decrypt`);
    return;
  }
  const current = keyring.current.fingerprint;
  if (!options.readOnly && !checks.some((check) => check.fingerprint === current)) {
    await tier.recordKeyCheck?.(makeKeyCheck(keyring));
  }
}

/** `undefined` when the tier holds no token; otherwise whether one of the first few decrypts. */
async function sampleDecrypts(tier: Tier, keyring: Keyring): Promise<boolean | undefined> {
  let tried = 0;
  for await (const entry of tier.entries()) {
    for (const secret of [entry.username, entry.password]) {
      const token = secret?.token;
      if (token === undefined) continue;
      try {
        keyring.decrypt(token);
        return true;
      } catch {
        tried += 1;
      }
    }
    if (tried >= SAMPLED_TOKENS) break;
  }
  return tried === 0 ? undefined : false;
}

function wrongKey(tier: Tier, keyring: Keyring, expected: readonly string[]): WrongKeyError {
  const have = keyring.fingerprints;
  const wanted =
    expected.length === 0
      ? 'it decrypts none of the stored credentials tried'
      : `the store expects ${expected.length === 1 ? 'key' : 'one of the keys'} ${expected.join(', ')}`;
  return new WrongKeyError(
    `the key does not open the "${tier.name}" tier: the keyring has ${have.join(', ')} and ${wanted}. Use the store's key file (--key-file, ${KEY_VARIABLES.keyFile}) or its key, or open it with readOnly to recover what it can`,
    have,
    expected,
  );
}
