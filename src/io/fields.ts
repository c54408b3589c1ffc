// Mapping one imported record (a JSON object or a CSV row) onto `ProxyEntryInput`: field names in
// proxywhirl's snake_case or proxytier's camelCase, values converted from text where a CSV cell
// holds them, encrypted credentials opened with the caller's key. Every message names the field
// as the input spelled it and never shows a credential.
import { InvalidEntryError, InvalidProxyUrlError } from '../errors.js';
import { createEntry, describe, type ProxyEntryInput } from '../record/entry.js';
import { REDACTED, Secret, type TokenCipher } from '../record/secret.js';
import { parseTimeText } from './time.js';

type Kind = 'string' | 'text' | 'integer' | 'time' | 'boolean' | 'credential' | 'token';

interface FieldSpec {
  /** The `ProxyEntryInput` field, or a helper name (`host`, `port`, `scheme`, ...). */
  field: string;
  kind: Kind;
}

// Keys are normalised names: lower case without `_`, `-` or spaces, so `proxy_url`, `proxyUrl` and
// `Proxy URL` are one column.
const FIELDS = new Map<string, FieldSpec>([
  ['key', { field: 'key', kind: 'string' }],
  ['proxyurl', { field: 'proxyUrl', kind: 'string' }],
  ['url', { field: 'url', kind: 'string' }],
  ['proxy', { field: 'proxy', kind: 'string' }],
  ['host', { field: 'host', kind: 'string' }],
  ['port', { field: 'port', kind: 'string' }],
  ['scheme', { field: 'scheme', kind: 'string' }],
  ['protocol', { field: 'scheme', kind: 'string' }],
  ['username', { field: 'username', kind: 'credential' }],
  ['password', { field: 'password', kind: 'credential' }],
  ['usernameencrypted', { field: 'usernameEncrypted', kind: 'token' }],
  ['passwordencrypted', { field: 'passwordEncrypted', kind: 'token' }],
  ['hascredentials', { field: 'hasCredentials', kind: 'boolean' }],
  ['source', { field: 'source', kind: 'string' }],
  ['fetchtime', { field: 'fetchTime', kind: 'time' }],
  ['lastaccessed', { field: 'lastAccessed', kind: 'time' }],
  ['accesscount', { field: 'accessCount', kind: 'integer' }],
  ['ttlseconds', { field: 'ttlSeconds', kind: 'integer' }],
  ['expiresat', { field: 'expiresAt', kind: 'time' }],
  ['healthstatus', { field: 'healthStatus', kind: 'string' }],
  ['failurecount', { field: 'failureCount', kind: 'integer' }],
  ['evictedfroml1', { field: 'evictedFromL1', kind: 'boolean' }],
  ['lasthealthcheck', { field: 'lastHealthCheck', kind: 'time' }],
  ['consecutivehealthfailures', { field: 'consecutiveHealthFailures', kind: 'integer' }],
  ['consecutivehealthsuccesses', { field: 'consecutiveHealthSuccesses', kind: 'integer' }],
  ['recoveryattempt', { field: 'recoveryAttempt', kind: 'integer' }],
  ['nextchecktime', { field: 'nextCheckTime', kind: 'time' }],
  ['lasthealtherror', { field: 'lastHealthError', kind: 'text' }],
  ['totalhealthchecks', { field: 'totalHealthChecks', kind: 'integer' }],
  ['totalhealthcheckfailures', { field: 'totalHealthCheckFailures', kind: 'integer' }],
]);

/** The normalised form of a field or column name: `proxy_url`, `proxyUrl`, `Proxy-URL` → `proxyurl`. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/[\s_-]/g, '');
}

/** True when a (normalised) column name can carry a proxy's address. */
export function isAddressColumn(normalized: string): boolean {
  return (
    normalized === 'proxyurl' ||
    normalized === 'url' ||
    normalized === 'proxy' ||
    normalized === 'host'
  );
}

/** Values pydantic's `SecretStr` and proxytier print instead of a credential. */
const PLACEHOLDERS = new Set([REDACTED, '**********']);

/** What record mapping needs besides the record. */
export interface RecordContext {
  line: number;
  source: string | undefined;
  ttlSeconds: number | undefined;
  cipher: TokenCipher | undefined;
}

export type MappedRecord = { input: ProxyEntryInput } | { error: string };

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;
const HEX = /^(?:[0-9a-f]{2})+$/i;

/**
 * Maps `(name, value)` pairs (a JSON object's members, or a CSV row's cells under its header)
 * onto a validated `ProxyEntryInput`, or says what is wrong with them. Unknown names are ignored;
 * `null`, `undefined` and `''` mean absent; numbers, times and booleans given as text are parsed.
 * Validation is `createEntry`'s; its messages are rewritten to use the input's field names.
 */
export function recordToInput(
  pairs: Iterable<readonly [string, unknown]>,
  context: RecordContext,
): MappedRecord {
  const values = new Map<string, unknown>();
  // The name each field had in the input, for messages.
  const names = new Map<string, string>();
  for (const [name, raw] of pairs) {
    const spec = FIELDS.get(normalizeName(name));
    if (spec === undefined || values.has(spec.field)) continue;
    if (raw === undefined || raw === null || raw === '') continue;
    const converted = convert(spec, raw, name);
    if (converted === undefined) continue;
    if (converted instanceof FieldProblem) return { error: converted.message };
    values.set(spec.field, converted);
    names.set(spec.field, name);
  }

  const input: Record<string, unknown> = {};
  const address = proxyAddress(values, names);
  if (typeof address === 'object') return address;
  input.proxyUrl = address;

  for (const field of ['username', 'password'] as const) {
    const plain = values.get(field);
    if (plain !== undefined) {
      if (typeof plain === 'string' && PLACEHOLDERS.has(plain)) {
        return {
          error: `"${names.get(field) ?? field}" holds the placeholder ${JSON.stringify(plain)} that a redacting export writes, not a credential; export again with secrets "encrypted" or "plain"`,
        };
      }
      input[field] = plain;
      continue;
    }
    const encryptedField = `${field}Encrypted`;
    const token = values.get(encryptedField);
    if (token === undefined) continue;
    const name = names.get(encryptedField) ?? encryptedField;
    if (typeof token !== 'string') {
      return { error: `"${name}" must be a Fernet token (text), got ${typeof token}` };
    }
    if (context.cipher === undefined) {
      return { error: `encrypted credentials need the key: "${name}" is a Fernet token` };
    }
    const secret = Secret.fromToken(
      tokenText(token),
      context.cipher,
      `${field} imported from line ${context.line}`,
    );
    try {
      // Decrypting now finds a wrong key here, not at the first use of the stored entry.
      secret.reveal();
    } catch (error) {
      return {
        error: `"${name}" cannot be decrypted with the given key: ${(error as Error).message}`,
      };
    }
    input[field] = secret;
  }

  if (
    values.get('hasCredentials') === true &&
    input.username === undefined &&
    input.password === undefined &&
    !String(input.proxyUrl).includes('@')
  ) {
    return {
      error: `the credentials were left out of this record ("${names.get('hasCredentials') ?? 'has_credentials'}" is true); export again with secrets "encrypted" or "plain"`,
    };
  }

  for (const [field, value] of values) {
    if (field in input || NOT_ENTRY_FIELDS.has(field)) continue;
    input[field] = value;
  }
  if (input.source === undefined && context.source !== undefined) input.source = context.source;
  if (input.ttlSeconds === undefined && context.ttlSeconds !== undefined) {
    input.ttlSeconds = context.ttlSeconds;
  }

  const entryInput = input as unknown as ProxyEntryInput;
  const problem = validate(entryInput, names);
  return problem === undefined ? { input: entryInput } : { error: problem };
}

// Helper fields that are not `ProxyEntryInput` fields.
const NOT_ENTRY_FIELDS = new Set([
  'url',
  'proxy',
  'host',
  'port',
  'scheme',
  'usernameEncrypted',
  'passwordEncrypted',
  'hasCredentials',
]);

/** A text proxy line as an input: `proxyUrl` only, plus the caller's source and TTL. */
export function urlToInput(url: string, context: RecordContext): MappedRecord {
  const input: ProxyEntryInput = { proxyUrl: url };
  if (context.source !== undefined) input.source = context.source;
  if (context.ttlSeconds !== undefined) input.ttlSeconds = context.ttlSeconds;
  const problem = validate(input, new Map([['proxyUrl', 'proxy URL']]));
  return problem === undefined ? { input } : { error: problem };
}

/**
 * Checks `input` with `createEntry` (placeholder TTL and time: only validity matters here; the
 * cache applies its own defaults when the input is stored). Returns the problem, if any.
 */
function validate(input: ProxyEntryInput, names: ReadonlyMap<string, string>): string | undefined {
  try {
    createEntry(input, { now: 0, ttlSecondsFor: () => 0 });
    return undefined;
  } catch (error) {
    return describeEntryError(error, names);
  }
}

/**
 * A safe message for an error `createEntry` threw: the field named as the input spelled it, and
 * never the proxy URL's text (a malformed URL may hold credentials in a form no parser recognises,
 * such as `host:port:user:pass` or `user:pass host:port`).
 */
export function describeEntryError(
  error: unknown,
  names: ReadonlyMap<string, string> = new Map(),
): string {
  if (error instanceof InvalidEntryError) {
    let message = error.message;
    if (error instanceof InvalidProxyUrlError || error.field === 'proxyUrl') {
      // Drop the value the URL error shows (quoted, or its length when it was withheld).
      message = message.replace(/: (?:"(?:[^"\\]|\\.)*"|\(a \d+-character value[^)]*\))$/, '');
    }
    // A credential inside the URL is named as `"password" in "proxyUrl"`: both take the
    // input's spelling.
    for (const field of new Set([error.field, 'proxyUrl'])) {
      const name = names.get(field);
      if (name !== undefined && name !== field) {
        message = message.split(`"${field}"`).join(`"${name}"`);
      }
    }
    return message;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The proxy URL: `proxy_url`, `url` or `proxy`, else `[scheme://]host:port` from columns. */
function proxyAddress(
  values: Map<string, unknown>,
  names: Map<string, string>,
): string | { error: string } {
  for (const field of ['proxyUrl', 'url', 'proxy']) {
    const value = values.get(field);
    if (value === undefined) continue;
    if (typeof value !== 'string') {
      return { error: `"${names.get(field) ?? field}" must be a string, got ${typeof value}` };
    }
    names.set('proxyUrl', names.get(field) ?? field);
    return value;
  }
  const host = values.get('host');
  if (host === undefined) {
    return { error: 'missing proxy URL (no "proxy_url", "url" or "host" field)' };
  }
  const port = values.get('port');
  const scheme = values.get('scheme');
  if (typeof host !== 'string' || (port !== undefined && typeof port !== 'string')) {
    return { error: '"host" and "port" must be text' };
  }
  names.set('proxyUrl', names.get('host') ?? 'host');
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const prefix =
    typeof scheme === 'string' ? `${scheme.toLowerCase().replace(/:\/\/$/, '')}://` : '';
  return `${prefix}${bracketed}${port === undefined ? '' : `:${port}`}`;
}

/** What `convert` returns for a value it cannot take (distinct from any value a record holds). */
class FieldProblem {
  constructor(readonly message: string) {}
}

/** Converts a raw value to what `ProxyEntryInput` takes, or an error naming the field. */
function convert(spec: FieldSpec, raw: unknown, name: string): unknown {
  switch (spec.kind) {
    case 'credential':
    case 'text':
      return raw;
    case 'string':
    case 'token': {
      if (typeof raw === 'number' && spec.field === 'port') return String(raw);
      if (typeof raw !== 'string') return raw;
      const text = raw.trim();
      if (text === '') return undefined;
      return spec.field === 'healthStatus' ? text.toLowerCase() : text;
    }
    case 'integer':
      return typeof raw === 'string' && NUMBER.test(raw.trim()) ? Number(raw.trim()) : raw;
    case 'time': {
      if (typeof raw !== 'string') return raw;
      const text = raw.trim();
      if (NUMBER.test(text)) return Number(text);
      const ms = parseTimeText(text);
      // Anything else goes to createEntry as it is, for its error naming the field.
      return Number.isFinite(ms) ? ms : text;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      const text = typeof raw === 'string' ? raw.trim().toLowerCase() : raw;
      if (text === 'true' || text === '1' || text === 1) return true;
      if (text === 'false' || text === '0' || text === 0) return false;
      return new FieldProblem(`"${name}" must be true, false, 1 or 0, got ${describe(raw)}`);
    }
  }
}

/** A Fernet token as text: proxywhirl stores the lower-case hex of the token's ASCII. */
function tokenText(value: string): string {
  if (!value.startsWith('g') && HEX.test(value))
    return Buffer.from(value, 'hex').toString('latin1');
  return value;
}
