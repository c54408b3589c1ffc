/**
 * Key checks: a store records, per key that sealed its credentials, a Fernet token of a known
 * text under that key, named by the key's fingerprint. A keyring that decrypts none of them is
 * not the store's key, which is found at open instead of after a week of credentials sealed with
 * two keys. The text is public and the token proves nothing about any credential.
 */
import type { Keyring } from './keyring.js';

/** One recorded key check. */
export interface KeyCheck {
  /** Fingerprint of the key that made `token` (see `FernetKey.fingerprint`). */
  fingerprint: string;
  /** A Fernet token of {@link KEY_CHECK_TEXT} under that key. */
  token: string;
}

/** The plaintext of every key check. */
export const KEY_CHECK_TEXT = 'proxytier key check v1';

/** A key check for the keyring's current key. */
export function makeKeyCheck(keyring: Keyring): KeyCheck {
  return { fingerprint: keyring.current.fingerprint, token: keyring.encrypt(KEY_CHECK_TEXT) };
}

/** True when the keyring decrypts at least one of `checks` to the check text. */
export function passesKeyCheck(keyring: Keyring, checks: readonly KeyCheck[]): boolean {
  return checks.some((check) => {
    try {
      return keyring.decrypt(check.token) === KEY_CHECK_TEXT;
    } catch {
      return false;
    }
  });
}
