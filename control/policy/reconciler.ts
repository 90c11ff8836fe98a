// PolicyReconciler: keeps weir_ipcache4, weir_ep_policy, weir_policy4 and
// weir_policy_gen equal to a DesiredPolicyMaps, writing only the difference
// against what the pinned maps hold (read once on start, mirrored after).
// Never a flush; the write order keeps every intermediate state from denying
// anything that is allowed both before and after the sync:
//
//   1. policy4 entries of every policy id the sync needs (ids are content
//      addressed and immutable: an id in use never changes what it allows);
//   2. if any address changes identity (an ipcache write), each endpoint whose
//      policy changes first moves to a transitional id allowing the union of
//      its old and new rules, so whichever identity the datapath sees for an
//      address during step 3, what was allowed before and after is allowed;
//   3. ipcache: sets longest prefix first, then deletes shortest prefix first,
//      so an address only ever resolves to its old or its new identity;
//   4. ep_policy: every endpoint to its final ids (one atomic entry each);
//   5. deletes: ep_policy entries of endpoints no longer isolated or gone,
//      then policy4 entries of ids nothing references;
//   6. weir_policy_gen[0].gen + 1, so conntrack verdicts cached under the old
//      rules are re-evaluated on their next packet.
//
// A write that fails aborts the sync: the mirror is re-read from the maps
// (so the next sync diffs against the truth) and the gen is still bumped if
// anything was written. Every state reached by the order above is safe, so
// an aborted sync leaves the datapath consistent; the next sync finishes it.
import type { EpPolicy, Ipcache4Key, IpcacheValue, Policy4Key, PolicyGen, PolicyValue } from '../datapath/types.gen.js';
import { contentSlots, contentOf, formatPrefix, parsePrefix, policyKey, slotOfKey, unionContent, type DesiredPolicyMaps, type PolicySlot } from './maps.js';

/** The part of a TypedMap the reconciler uses (fakes in unit tests). */
export interface PolicyTable<K, V> {
  get(k: K): V | undefined;
  set(k: K, v: V): void;
  delete(k: K): boolean;
  entries(): Iterable<[K, V]>;
  /** Batched writes where the kernel can (TypedMap.setMany). */
  setMany?(entries: Array<[K, V]>): void;
}

export interface PolicyTables {
  ipcache4: PolicyTable<Ipcache4Key, IpcacheValue>;
  epPolicy: PolicyTable<number, EpPolicy>;
  policy4: PolicyTable<Policy4Key, PolicyValue>;
  policyGen: PolicyTable<number, PolicyGen>;
}

export interface PolicySyncResult {
  /** Whether any map changed (and the gen was bumped). */
  changed: boolean;
  gen: number;
  ipcacheSet: number;
  ipcacheDeleted: number;
  policyEntriesSet: number;
  policyEntriesDeleted: number;
  epPolicySet: number;
  epPolicyDeleted: number;
  /** Transitional ids used (endpoints moved through an old∪new policy). */
  transitional: number;
}

/** Writes above this many entries go through setMany (one batch syscall). */
const BATCH_MIN = 16;

export class PolicyReconciler {
  /** Mirror of weir_ipcache4: formatPrefix → identity. */
  private ipcache = new Map<string, number>();
  /** Mirror of weir_ep_policy. */
  private epPolicy = new Map<number, EpPolicy>();
  /** Policy id → content, for every id with entries in weir_policy4 or named by weir_ep_policy. */
  private idContent = new Map<number, string>();
  private contentId = new Map<string, number>();
  private gen = 0;

  constructor(private readonly t: PolicyTables) {
    this.reload();
  }

  /** Re-reads the maps (on start, and after a failed write). */
  reload(): void {
    this.ipcache = new Map();
    for (const [k, v] of this.t.ipcache4.entries()) this.ipcache.set(formatPrefix(k), v.identity);
    this.epPolicy = new Map();
    for (const [k, v] of this.t.epPolicy.entries()) this.epPolicy.set(k, { ingress_id: v.ingress_id, egress_id: v.egress_id });
    const slots = new Map<number, PolicySlot[]>();
    for (const [k, v] of this.t.policy4.entries()) {
      let l = slots.get(k.policy_id);
      if (!l) slots.set(k.policy_id, (l = []));
      l.push(slotOfKey(k, v));
    }
    // An id named by ep_policy with no entries allows nothing (content "").
    for (const v of this.epPolicy.values()) for (const id of [v.ingress_id, v.egress_id]) if (id !== 0 && !slots.has(id)) slots.set(id, []);
    this.idContent = new Map();
    this.contentId = new Map();
    for (const id of [...slots.keys()].sort((a, b) => a - b)) {
      const c = contentOf(slots.get(id)!);
      this.idContent.set(id, c);
      if (!this.contentId.has(c)) this.contentId.set(c, id);
    }
    this.gen = this.t.policyGen.get(0)?.gen ?? 0;
  }

  /** The identities the pinned ipcache holds (for identity recovery on start). */
  pinnedIpcache(): ReadonlyMap<string, number> {
    return this.ipcache;
  }

  /** endpoint id → its policy ids, as programmed. */
  policyIds(): ReadonlyMap<number, EpPolicy> {
    return this.epPolicy;
  }

  /** Number of policy ids in use and weir_policy4 entries (for metrics). */
  stats(): { policyIds: number; policyEntries: number; ipcacheEntries: number; gen: number } {
    let entries = 0;
    for (const c of this.idContent.values()) entries += c === '' ? 0 : c.split(' ').length;
    return { policyIds: this.idContent.size, policyEntries: entries, ipcacheEntries: this.ipcache.size, gen: this.gen };
  }

  get generation(): number {
    return this.gen;
  }

  /** The content a policy id stands for (undefined: unknown id). */
  contentOf(id: number): string | undefined {
    return this.idContent.get(id);
  }

  sync(desired: DesiredPolicyMaps): PolicySyncResult {
    const r: PolicySyncResult = { changed: false, gen: this.gen, ipcacheSet: 0, ipcacheDeleted: 0, policyEntriesSet: 0, policyEntriesDeleted: 0, epPolicySet: 0, epPolicyDeleted: 0, transitional: 0 };
    // Ids present now may still be in use by the datapath until step 5: a new
    // content never reuses one of them in this sync.
    const busy = new Set<number>(this.idContent.keys());
    for (const v of this.epPolicy.values()) busy.add(v.ingress_id).add(v.egress_id);
    let nextFree = 1;
    const idFor = (content: string): number => {
      const have = this.contentId.get(content);
      if (have !== undefined) return have;
      while (busy.has(nextFree)) nextFree++;
      const id = nextFree++;
      busy.add(id);
      this.writePolicy(id, content, r);
      return id;
    };
    try {
      // 1. final policies.
      const final = new Map<number, EpPolicy>();
      for (const [ep, d] of desired.endpoints) {
        const ingress_id = d.ingress === undefined ? 0 : idFor(d.ingress);
        const egress_id = d.egress === undefined ? 0 : idFor(d.egress);
        if (ingress_id !== 0 || egress_id !== 0) final.set(ep, { ingress_id, egress_id });
      }

      // ipcache difference.
      const sets: Array<[string, number]> = [];
      for (const [p, id] of desired.ipcache) if (this.ipcache.get(p) !== id) sets.push([p, id]);
      const dels: string[] = [];
      for (const p of this.ipcache.keys()) if (!desired.ipcache.has(p)) dels.push(p);

      // 2. transitional policies while addresses change identity.
      if (sets.length > 0 || dels.length > 0) {
        for (const [ep, cur] of this.epPolicy) {
          const want = final.get(ep) ?? { ingress_id: 0, egress_id: 0 };
          if (want.ingress_id === cur.ingress_id && want.egress_id === cur.egress_id) continue;
          const mid = { ingress_id: this.transitional(cur.ingress_id, want.ingress_id, idFor), egress_id: this.transitional(cur.egress_id, want.egress_id, idFor) };
          if (mid.ingress_id === cur.ingress_id && mid.egress_id === cur.egress_id) continue;
          if (mid.ingress_id !== want.ingress_id || mid.egress_id !== want.egress_id) r.transitional++;
          this.writeEp(ep, mid, r);
        }
      }

      // 3. ipcache: longest prefixes first, then deletes shortest first.
      const plen = (p: string) => Number(p.slice(p.indexOf('/') + 1));
      sets.sort((a, b) => plen(b[0]) - plen(a[0]));
      this.writeMany(
        this.t.ipcache4,
        sets.map(([p, id]) => [parsePrefix(p), { identity: id, flags: 0 }]),
        () => {
          for (const [p, id] of sets) this.ipcache.set(p, id);
        },
      );
      r.ipcacheSet = sets.length;
      if (sets.length) r.changed = true;
      dels.sort((a, b) => plen(a) - plen(b));
      for (const p of dels) {
        this.t.ipcache4.delete(parsePrefix(p));
        this.ipcache.delete(p);
        r.ipcacheDeleted++;
        r.changed = true;
      }

      // 4. endpoints to their final ids.
      for (const [ep, want] of final) {
        const cur = this.epPolicy.get(ep);
        if (cur && cur.ingress_id === want.ingress_id && cur.egress_id === want.egress_id) continue;
        this.writeEp(ep, want, r);
      }

      // 5. stale ep_policy entries, then policies nothing names.
      for (const ep of [...this.epPolicy.keys()]) {
        if (final.has(ep)) continue;
        this.t.epPolicy.delete(ep);
        this.epPolicy.delete(ep);
        r.epPolicyDeleted++;
        r.changed = true;
      }
      this.gcPolicies(r);
    } catch (e) {
      this.reload();
      if (r.changed) this.bump(r);
      throw e;
    }
    if (r.changed) this.bump(r);
    r.gen = this.gen;
    return r;
  }

  /** Removes one endpoint's ep_policy entry (CNI DEL); its policies go at the next sync. */
  removeEndpoint(endpointId: number): boolean {
    if (!this.epPolicy.has(endpointId) && !this.t.epPolicy.get(endpointId)) return false;
    this.t.epPolicy.delete(endpointId);
    this.epPolicy.delete(endpointId);
    // No gen bump: without an entry the endpoint is not isolated, so no
    // cached allow verdict became wrong.
    return true;
  }

  private transitional(cur: number, want: number, idFor: (c: string) => number): number {
    if (cur === want) return cur;
    if (cur === 0 || want === 0) return 0; // not isolated allows everything: the union
    const a = this.idContent.get(cur);
    const b = this.idContent.get(want);
    if (a === undefined || b === undefined) return want;
    return idFor(unionContent(a, b));
  }

  private writePolicy(id: number, content: string, r: PolicySyncResult): void {
    const entries: Array<[Policy4Key, PolicyValue]> = contentSlots(content).map((s) => [policyKey(id, s), { flags: s.flags }]);
    // Registered before the write: a partial write is then garbage collected
    // (the id is named by nothing) instead of leaking.
    this.idContent.set(id, content);
    this.contentId.set(content, id);
    this.writeMany(this.t.policy4, entries, () => undefined);
    r.policyEntriesSet += entries.length;
    if (entries.length) r.changed = true;
  }

  private writeEp(ep: number, v: EpPolicy, r: PolicySyncResult): void {
    this.t.epPolicy.set(ep, v);
    this.epPolicy.set(ep, { ...v });
    r.epPolicySet++;
    r.changed = true;
  }

  private gcPolicies(r: PolicySyncResult): void {
    const used = new Set<number>();
    for (const v of this.epPolicy.values()) used.add(v.ingress_id).add(v.egress_id);
    for (const [id, content] of [...this.idContent]) {
      if (used.has(id)) continue;
      for (const s of contentSlots(content)) {
        this.t.policy4.delete(policyKey(id, s));
        r.policyEntriesDeleted++;
        r.changed = true;
      }
      this.idContent.delete(id);
      if (this.contentId.get(content) === id) this.contentId.delete(content);
    }
  }

  private writeMany<K, V>(t: PolicyTable<K, V>, entries: Array<[K, V]>, done: () => void): void {
    if (entries.length >= BATCH_MIN && t.setMany) t.setMany(entries);
    else for (const [k, v] of entries) t.set(k, v);
    done();
  }

  private bump(r: PolicySyncResult): void {
    let g = (this.gen + 1) >>> 0;
    if (g === 0) g = 1; // 0 is what a fresh map holds: never reuse it
    this.t.policyGen.set(0, { gen: g });
    this.gen = g;
    r.gen = g;
  }
}
