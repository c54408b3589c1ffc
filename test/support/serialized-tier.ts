// A small persistent-style tier for tests of the stack: it keeps each entry as a JSON string in a
// Map shared by every instance opened on the same `store`, with credentials as Fernet tokens, the
// way a file or database tier does. It lets tests reopen "the same store" with another keyring.
import { TierError } from '../../src/errors.js';
import type { ProxyEntry } from '../../src/record/entry.js';
import { Secret } from '../../src/record/secret.js';
import type { EntryChange, EntryPatch, Tier, TierContext } from '../../src/tiers/tier.js';

export type SerializedStore = Map<string, string>;

export class SerializedTier implements Tier {
  readonly persistent = true;
  #context: TierContext | undefined;

  constructor(
    readonly store: SerializedStore = new Map(),
    readonly name = 'serialized',
  ) {}

  async open(context: TierContext): Promise<void> {
    this.#context = context;
  }

  #decode(text: string): ProxyEntry {
    const cipher = this.#context?.cipher;
    if (cipher === undefined) throw new TierError(this.name, 'no cipher');
    const { usernameToken, passwordToken, ...fields } = JSON.parse(text) as ProxyEntry & {
      usernameToken?: string;
      passwordToken?: string;
    };
    return {
      ...fields,
      username: usernameToken === undefined ? undefined : Secret.fromToken(usernameToken, cipher),
      password: passwordToken === undefined ? undefined : Secret.fromToken(passwordToken, cipher),
    } as ProxyEntry;
  }

  #encode(entry: ProxyEntry): string {
    const { username, password, ...fields } = entry;
    if ((username && !username.token) || (password && !password.token)) {
      throw new TierError(this.name, 'a persistent tier was given an unsealed secret');
    }
    return JSON.stringify({
      ...fields,
      usernameToken: username?.token,
      passwordToken: password?.token,
    });
  }

  async get(key: string): Promise<ProxyEntry | undefined> {
    const text = this.store.get(key);
    return text === undefined ? undefined : this.#decode(text);
  }

  async set(entry: ProxyEntry): Promise<void> {
    this.store.set(entry.key, this.#encode(entry));
  }

  async update(key: string, patch: EntryPatch): Promise<boolean> {
    const text = this.store.get(key);
    if (text === undefined) return false;
    this.store.set(key, JSON.stringify({ ...JSON.parse(text), ...patch }));
    return true;
  }

  async modify(key: string, change: EntryChange): Promise<ProxyEntry | undefined> {
    const text = this.store.get(key);
    if (text === undefined) return undefined;
    const current = this.#decode(text);
    const patch = change(current);
    // A change may carry sealed credentials (a re-encryption): encode the whole entry again.
    if (patch !== undefined) this.store.set(key, this.#encode({ ...current, ...patch }));
    return this.get(key);
  }

  async delete(key: string): Promise<boolean> {
    return this.store.delete(key);
  }

  async has(key: string): Promise<boolean> {
    return this.store.has(key);
  }

  async clear(): Promise<number> {
    const removed = this.store.size;
    this.store.clear();
    return removed;
  }

  async size(): Promise<number> {
    return this.store.size;
  }

  async *keys(): AsyncIterable<string> {
    yield* [...this.store.keys()];
  }

  async *entries(): AsyncIterable<ProxyEntry> {
    for (const text of [...this.store.values()]) yield this.#decode(text);
  }

  async deleteExpired(now: number): Promise<string[]> {
    const removed: string[] = [];
    for (const key of [...this.store.keys()]) {
      const entry = this.#decode(this.store.get(key) as string);
      if (entry.expiresAt <= now) {
        this.store.delete(key);
        removed.push(key);
      }
    }
    return removed;
  }

  async close(): Promise<void> {}
}
