// Identity keys and an in-memory IdentityAllocator.
import { ID_FIRST_DYNAMIC, type IdentityAllocator, type IdentityKind } from './types.js';

export const ID_MAX = 0xffffffff;

export interface IdentityKeyParts {
  kind: IdentityKind;
  namespace?: string;
  labels?: Record<string, string>;
  /** Pods only: the named container ports "name/PROTO=port", sorted (see README). */
  namedPorts?: string[];
  /** Canonical ipBlock strings, sorted. */
  cidrs: string[];
}

/**
 * The canonical key of an identity: a JSON array, so no label value can make
 * two different classes collide. Labels are sorted by key; a pod without named
 * container ports has no port component.
 */
export function identityKey(p: IdentityKeyParts): string {
  if (p.kind === 'pod') {
    const labels = Object.keys(p.labels ?? {})
      .sort()
      .map((k) => [k, p.labels![k]]);
    const parts: unknown[] = ['pod', p.namespace ?? '', labels, p.cidrs];
    if (p.namedPorts && p.namedPorts.length) parts.push(p.namedPorts);
    return JSON.stringify(parts);
  }
  return JSON.stringify([p.kind, p.cidrs]);
}

/**
 * Allocates ids from ID_FIRST_DYNAMIC. A key keeps its id until a retain()
 * that does not include it; the freed number is quarantined for one more
 * retain() (so the compile right after a release never hands it to another
 * class while the maps may still hold the old meaning), then reused lowest
 * first. A key asking again while its old number is quarantined gets that
 * number back (e.g. the agent compiling twice in one sync). Can be seeded with known key -> id pairs (recovery from pinned maps).
 */
export class MemoryIdentityAllocator implements IdentityAllocator {
  private byKey = new Map<string, number>();
  private byId = new Map<number, string>();
  private next = ID_FIRST_DYNAMIC;
  /** Free numbers below `next`, reusable now (kept sorted ascending). */
  private free: number[] = [];
  /** Released by the last retain() (id -> its old key): reusable after the next one; the same key asking again gets it back. */
  private quarantine = new Map<number, string>();
  private quarantinedKey = new Map<string, number>();

  constructor(seed?: Iterable<[string, number]>) {
    if (seed) {
      for (const [key, id] of seed) {
        if (!Number.isInteger(id) || id < ID_FIRST_DYNAMIC || id > ID_MAX) continue;
        if (this.byKey.has(key) || this.byId.has(id)) continue; // first claim wins
        this.byKey.set(key, id);
        this.byId.set(id, key);
      }
      let max = ID_FIRST_DYNAMIC - 1;
      for (const id of this.byId.keys()) max = Math.max(max, id);
      this.next = max + 1;
      // gaps below the highest seeded id: not used by any seeded key, but the
      // maps may still hold them for keys we were not told about: quarantine.
      for (let id = ID_FIRST_DYNAMIC; id < this.next; id++) if (!this.byId.has(id)) this.quarantine.set(id, '');
    }
  }

  idFor(key: string): number {
    const have = this.byKey.get(key);
    if (have !== undefined) return have;
    let id: number;
    const back = this.quarantinedKey.get(key);
    if (back !== undefined) {
      // released by the last retain() and not reused since: the same class gets its number back
      this.quarantinedKey.delete(key);
      this.quarantine.delete(back);
      id = back;
    } else if (this.free.length) id = this.free.shift()!;
    else {
      if (this.next > ID_MAX) throw new Error('identity space exhausted');
      id = this.next++;
    }
    this.byKey.set(key, id);
    this.byId.set(id, key);
    return id;
  }

  retain(keys: Set<string>): void {
    const released = new Map<number, string>();
    for (const [key, id] of this.byKey) {
      if (!keys.has(key)) {
        this.byKey.delete(key);
        this.byId.delete(id);
        released.set(id, key);
      }
    }
    if (this.quarantine.size) {
      this.free.push(...this.quarantine.keys());
      this.free.sort((a, b) => a - b);
    }
    this.quarantine = released;
    this.quarantinedKey = new Map([...released].map(([id, key]) => [key, id]));
  }

  /** The current key -> id pairs (e.g. to check them against pinned maps). */
  snapshot(): Map<string, number> {
    return new Map(this.byKey);
  }

  keyOf(id: number): string | undefined {
    return this.byId.get(id);
  }
}
