import { createHash } from 'node:crypto';
import { InvalidProxyUrlError } from '../errors.js';

/** Proxy schemes proxytier accepts, with the port assumed when a URL gives none. */
export const PROXY_SCHEMES: Readonly<Record<string, number>> = Object.freeze({
  http: 80,
  https: 443,
  socks4: 1080,
  socks4a: 1080,
  socks5: 1080,
  socks5h: 1080,
});

/** A proxy URL split into its canonical form (no credentials) and the credentials it carried. */
export interface CanonicalProxyUrl {
  /** `scheme://host:port`, lower-case scheme and host, explicit port, no path. */
  url: string;
  scheme: string;
  host: string;
  port: number;
  /** Inline username, percent-decoded, if the URL carried one. */
  username?: string;
  /** Inline password, percent-decoded, if the URL carried one. */
  password?: string;
}

// URLs that the WHATWG parser would leave exactly as they are: lower-case scheme, a dotted-quad
// IPv4 address without leading zeros or a host name whose last label starts with a letter (a
// numeric last label makes the parser read the host as an IPv4 number), and a port 1-65535.
// Such a URL skips the parser on the hot path. No capture groups: `test` allocates nothing.
const SCHEME = '(?:https?|socks4a?|socks5h?)';
const IPV4_OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `(?:${IPV4_OCTET}\\.){3}${IPV4_OCTET}`;
const HOSTNAME = '(?:[a-z0-9-]+\\.)*[a-z][a-z0-9-]*';
const PORT =
  '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
const PARSER_STABLE = new RegExp(`^${SCHEME}://(?:${IPV4}|${HOSTNAME}):${PORT}$`);
// Canonical output of the parser also includes bracketed IPv6 hosts, which it compresses; those
// are recognised as canonical but never skip the parser on the way in.
const CANONICAL = new RegExp(`^${SCHEME}://(?:${IPV4}|${HOSTNAME}|\\[[0-9a-f:.]+\\]):${PORT}$`);

/** True when parsing `url` would give back `url` itself, so the parser can be skipped. */
export function isParserStableProxyUrl(url: string): boolean {
  return PARSER_STABLE.test(url);
}

/** True when `url` has the canonical shape `scheme://host:port` (cheap check). */
export function isCanonicalProxyUrl(url: string): boolean {
  return CANONICAL.test(url);
}

/**
 * Parses a proxy URL (`[scheme://][user:pass@]host[:port]`, scheme defaulting to `http`) into its
 * canonical form, moving inline credentials out of it. Throws `InvalidProxyUrlError` naming what
 * is wrong; the message never repeats the credentials.
 *
 * @example
 * canonicalizeProxyUrl('HTTP://bob:s3cret@Example.com:8080')
 * // { url: 'http://example.com:8080', scheme: 'http', host: 'example.com', port: 8080,
 * //   username: 'bob', password: 's3cret' }
 */
export function canonicalizeProxyUrl(input: string): CanonicalProxyUrl {
  if (typeof input !== 'string' || input.trim() === '') {
    throw new InvalidProxyUrlError('proxyUrl', '"proxyUrl" must be a non-empty string');
  }
  const trimmed = input.trim();
  rejectControlCharacterInUrl(trimmed);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw new InvalidProxyUrlError(
      'proxyUrl',
      `"proxyUrl" is not a valid URL: ${describeWithoutCredentials(trimmed)}`,
    );
  }
  const scheme = parsed.protocol.slice(0, -1).toLowerCase();
  const defaultPort = PROXY_SCHEMES[scheme];
  if (defaultPort === undefined) {
    throw new InvalidProxyUrlError(
      'proxyUrl',
      `"proxyUrl" has unsupported scheme "${scheme}" (expected one of ${Object.keys(PROXY_SCHEMES).join(', ')}): ${describeWithoutCredentials(trimmed)}`,
    );
  }
  if (parsed.hostname === '') {
    throw new InvalidProxyUrlError(
      'proxyUrl',
      `"proxyUrl" has no host: ${describeWithoutCredentials(trimmed)}`,
    );
  }
  if ((parsed.pathname !== '' && parsed.pathname !== '/') || parsed.search || parsed.hash) {
    throw new InvalidProxyUrlError(
      'proxyUrl',
      `"proxyUrl" must not have a path, query or fragment: ${describeWithoutCredentials(trimmed)}`,
    );
  }
  // WHATWG drops a port equal to the scheme's default; a proxy URL keeps it explicit so that
  // `http://h:80` and `http://h` name the same proxy and hash to the same key.
  const port = parsed.port === '' ? defaultPort : Number(parsed.port);
  if (port === 0) {
    throw new InvalidProxyUrlError(
      'proxyUrl',
      `"proxyUrl" must have a port from 1 to 65535: ${describeWithoutCredentials(trimmed)}`,
    );
  }
  const host = parsed.hostname.toLowerCase();
  const result: CanonicalProxyUrl = { url: `${scheme}://${host}:${port}`, scheme, host, port };
  if (parsed.username !== '') result.username = decodeCredential('username', parsed.username);
  if (parsed.password !== '') result.password = decodeCredential('password', parsed.password);
  return result;
}

// C0 controls and DEL. The URL parser deletes tabs and newlines wherever they stand, without a
// word (`ab<TAB>c` would be stored as `abc`), so a URL holding one is refused before the parser
// sees it. A credential may still hold any character: percent-escaped in a URL (`%09`), or as a
// field; Basic authentication sends it base64-encoded.
// eslint-disable-next-line no-control-regex -- matching control characters is its purpose
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/** Refuses a control character anywhere in a proxy URL, naming the part it stands in. */
function rejectControlCharacterInUrl(url: string): void {
  const found = CONTROL_CHARACTER.exec(url);
  if (found === null) return;
  const what = 'contains a control character (tab, newline or another below U+0020, or DEL)';
  const refused = 'it is refused rather than removed';
  const schemeEnd = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0].length ?? 0;
  const at = url.lastIndexOf('@');
  if (found.index >= schemeEnd && found.index < at) {
    // Inside the user info: name the credential, with no position (it would tell its length).
    const colon = url.indexOf(':', schemeEnd);
    const field = colon !== -1 && colon < found.index ? 'password' : 'username';
    throw new InvalidProxyUrlError(
      field,
      `"${field}" in "proxyUrl" ${what}; ${refused} (write it percent-escaped, as %09 for a tab)`,
    );
  }
  throw new InvalidProxyUrlError(
    'proxyUrl',
    `"proxyUrl" ${what} at position ${String(found.index)}; ${refused}`,
  );
}

/** Percent-decodes an inline credential; a malformed escape is an error naming the field. */
function decodeCredential(field: 'username' | 'password', raw: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new InvalidProxyUrlError(
      field,
      `"${field}" in "proxyUrl" has a malformed percent-escape (a "%" not followed by two hex digits of UTF-8); write a literal "%" as "%25"`,
    );
  }
  return decoded;
}

/**
 * proxywhirl's cache key: the first 16 hex characters of SHA-256 over the proxy URL.
 */
export function deriveKey(proxyUrl: string): string {
  // Hex of the first 8 bytes, rather than a slice of the full hex string, which would keep the
  // 64-character parent string alive in every stored key.
  return createHash('sha256').update(proxyUrl).digest().toString('hex', 0, 8);
}

/** Shows a URL in an error message with any inline credentials replaced. */
export function describeWithoutCredentials(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? '';
  // Everything up to the last '@' is userinfo, whatever characters the password holds.
  const at = url.lastIndexOf('@');
  const shown = at === -1 ? url : `${scheme}[credentials]@${url.slice(at + 1)}`;
  // Past the scheme, a URL has at most one ':' (before the port) outside an IPv6 literal.
  // Anything else (`host:port:user:pass`, `user:pass host:port`) may carry credentials in a
  // shape that cannot be told apart, so only its length is shown.
  const rest = shown.slice(scheme.length).replace(/\[[^\]]*\]/g, '');
  if (/\s/.test(rest) || (rest.match(/:/g)?.length ?? 0) > 1) {
    return `(a ${url.length}-character value, not shown because it may hold credentials)`;
  }
  return JSON.stringify(shown.length > 200 ? `${shown.slice(0, 200)}...` : shown);
}
