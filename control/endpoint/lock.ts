// Serialises endpoint operations: calls for one attachment (container id +
// ifname) run one at a time, different attachments run in parallel, and an
// exclusive call (GC, resync) runs alone.
export class OpLock {
  #chains = new Map<string, Promise<void>>();
  #active = new Set<Promise<void>>();
  #exclusive: Promise<void> | undefined;

  async withKey<T>(key: string, fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    const prev = this.#chains.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const chained = prev.then(() => mine);
    this.#chains.set(key, chained);
    this.#active.add(mine);
    try {
      await prev;
      return await fn();
    } finally {
      release();
      this.#active.delete(mine);
      if (this.#chains.get(key) === chained) this.#chains.delete(key);
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    let release!: () => void;
    this.#exclusive = new Promise<void>((r) => (release = r));
    try {
      await Promise.all([...this.#active]);
      return await fn();
    } finally {
      this.#exclusive = undefined;
      release();
    }
  }
}
