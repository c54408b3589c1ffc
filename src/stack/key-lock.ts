/**
 * Runs the changes of one key one after another, in the order they were asked for, while changes
 * of different keys run concurrently. The stack's writes, deletes, health updates and replays of a
 * key go through it, so a read-modify-write in the stack never interleaves with another change of
 * the same key in this process (across processes, the tier's own atomic `modify` does that).
 */
export class KeyLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Runs `work` once every earlier `run` of `key` has settled; resolves as `work` does. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key);
    const result = previous === undefined ? work() : previous.then(work, work);
    const tail = result.then(noop, noop);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** True while a change of `key` is queued or running. */
  busy(key: string): boolean {
    return this.#tails.size !== 0 && this.#tails.has(key);
  }
}

function noop(): void {}
