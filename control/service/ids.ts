// Stable 32-bit ids for frontends (svc_id), backends and reverse-NAT entries.
// An id is tied to an identity string (e.g. "10.96.0.1:80/6#0"); at start the
// ids are recovered from what the pinned maps hold, so an agent restart keeps
// every id. New ids come from a counter that only moves forward (wrapping
// after 2^32-1 and skipping ids in use): a freed id is not handed out again
// soon, so a conntrack entry still naming an old backend id never lands on a
// different backend. 0 is never used (it means "none" in the datapath).

export class IdAllocator {
  readonly #byKey = new Map<string, number>();
  readonly #byId = new Map<number, string>();
  #next = 1;

  constructor(
    readonly what: string,
    readonly max: number = 0xffffffff,
  ) {}

  /** Takes over an id found in a map. false (nothing changed) when the key or the id is already taken. */
  restore(key: string, id: number): boolean {
    this.seen(id);
    if (id < 1 || id > this.max || this.#byKey.has(key) || this.#byId.has(id)) return false;
    this.#byKey.set(key, id);
    this.#byId.set(id, key);
    return true;
  }

  /** Moves the counter past an id seen in a map (also one that is not restored). */
  seen(id: number): void {
    if (id >= this.#next && id <= this.max) this.#next = id + 1;
  }

  get(key: string): number | undefined {
    return this.#byKey.get(key);
  }

  keyOf(id: number): string | undefined {
    return this.#byId.get(id);
  }

  /** The key's id, allocating one when it has none. */
  acquire(key: string): number {
    const have = this.#byKey.get(key);
    if (have !== undefined) return have;
    if (this.#byId.size >= this.max) throw new RangeError(`${this.what} ids exhausted (${this.max} in use)`);
    let id = this.#next;
    for (;;) {
      if (id > this.max) id = 1;
      if (!this.#byId.has(id)) break;
      id++;
    }
    this.#next = id + 1;
    this.#byKey.set(key, id);
    this.#byId.set(id, key);
    return id;
  }

  release(key: string): void {
    const id = this.#byKey.get(key);
    if (id === undefined) return;
    this.#byKey.delete(key);
    this.#byId.delete(id);
  }

  get size(): number {
    return this.#byKey.size;
  }

  entries(): IterableIterator<[string, number]> {
    return this.#byKey.entries();
  }
}
