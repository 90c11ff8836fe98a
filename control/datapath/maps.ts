// The datapath's maps as typed tables. Layouts come from types.gen.ts (made by
// `make types` from bpf/include/structs.h) and are checked against the
// contract object's BTF when the codecs are made, so a drift between C and
// TypeScript is an error here, never a misread. Addresses and ports in
// __be16/__be32 fields are plain numbers in host order (10.96.0.1 = 0x0a600001).
import { join } from 'node:path';
import { codecFor, loadCollectionSpec, type Btf, type Codec, type ExpectedLayout } from '../../loader/index.js';
import { BpfMap, UpdateFlags } from '../../native/index.js';
import { bpfObject } from '../paths.js';
import * as T from './types.gen.js';

/** Pinned map names (bpf/include/maps.h). */
export const MapNames = {
  svc4: 'weir_svc4',
  backend4: 'weir_backend4',
  lbSlots: 'weir_lb_slots',
  maglev: 'weir_maglev',
  revnat4: 'weir_revnat4',
  ct4: 'weir_ct4',
  affinity4: 'weir_affinity4',
  ep4: 'weir_ep4',
  tunnel4: 'weir_tunnel4',
  node4: 'weir_node4',
  metrics: 'weir_metrics',
  events: 'weir_events',
  ipcache4: 'weir_ipcache4',
  epPolicy: 'weir_ep_policy',
  policy4: 'weir_policy4',
  policyGen: 'weir_policy_gen',
  frag4: 'weir_frag4',
  eventLimit: 'weir_event_limit',
} as const;
export type MapKey = keyof typeof MapNames;

export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/weir';

let contract: Btf | undefined;
/** BTF of build/bpf/contract.o: every map-contract type. */
export function contractBtf(): Btf {
  return (contract ??= loadCollectionSpec(bpfObject('contract')).btf!);
}

/** Encodes/decodes one side of a map: a struct codec or a plain u32. */
export interface Side<V> {
  size: number;
  encode(v: V): Buffer;
  decode(b: Buffer): V;
}

export const u32Side: Side<number> = {
  size: 4,
  encode: (v) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return b;
  },
  decode: (b) => b.readUInt32LE(0),
};

/** __be32 map keys (weir_node4): an address as a host-order number. */
export const be32Side: Side<number> = {
  size: 4,
  encode: (v) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return b;
  },
  decode: (b) => b.readUInt32BE(0),
};

export function structSide<V>(ref: string, layout: ExpectedLayout, btf: Btf = contractBtf()): Side<V> {
  const c: Codec<V> = codecFor<V>(btf, ref, layout);
  return { size: c.size, encode: (v) => c.encode(v), decode: (b) => c.decode(b) };
}

/** A BPF map with typed keys and values. */
export class TypedMap<K, V> {
  constructor(
    readonly name: string,
    readonly map: BpfMap,
    readonly key: Side<K>,
    readonly value: Side<V>,
  ) {}

  get(k: K): V | undefined {
    const v = this.map.lookup(this.key.encode(k));
    return v ? this.value.decode(v) : undefined;
  }

  set(k: K, v: V, flags: number = UpdateFlags.ANY): void {
    this.map.update(this.key.encode(k), this.value.encode(v), flags);
  }

  delete(k: K): boolean {
    return this.map.delete(this.key.encode(k));
  }

  *entries(): Generator<[K, V]> {
    for (const [k, v] of this.map.entries()) yield [this.key.decode(k), this.value.decode(v)];
  }

  /** All entries in one pass (batch lookup where the kernel has it). */
  dump(): Array<[K, V]> {
    return [...this.entries()];
  }

  /** Writes many entries with one BPF_MAP_UPDATE_BATCH call (per-entry updates where the type lacks it). */
  setMany(entries: Array<[K, V]>): void {
    if (entries.length === 0) return;
    const keys = entries.map(([k]) => this.key.encode(k));
    const values = entries.map(([, v]) => this.value.encode(v));
    try {
      this.map.updateBatch(keys, values);
    } catch (e) {
      if ((e as { errno?: number }).errno !== 22 && (e as { errno?: number }).errno !== 95 && (e as { errno?: number }).errno !== 524) throw e;
      keys.forEach((k, i) => this.map.update(k, values[i]));
    }
  }

  deleteMany(keys: K[]): void {
    for (const k of keys) this.map.delete(this.key.encode(k));
  }

  close(): void {
    this.map.close();
  }
}

export interface DatapathMaps {
  svc4: TypedMap<T.Svc4Key, T.SvcValue>;
  backend4: TypedMap<number, T.Backend4>;
  lbSlots: TypedMap<T.LbSlotKey, number>;
  /** Outer map: svc_id -> inner array fd (write with maglevInner()). */
  maglev: BpfMap;
  revnat4: TypedMap<number, T.Revnat4>;
  ct4: TypedMap<T.Ct4Key, T.CtEntry>;
  affinity4: TypedMap<T.Affinity4Key, T.AffinityValue>;
  ep4: TypedMap<T.Endpoint4Key, T.EndpointInfo>;
  tunnel4: TypedMap<T.Tunnel4Key, T.TunnelInfo>;
  node4: TypedMap<number, T.NodeAddrValue>;
  /** Per-CPU: values come back as one slot per possible CPU. */
  metrics: BpfMap;
  events: BpfMap;
  /** Policy (bpf/POLICY.md): address/CIDR -> identity (LPM). */
  ipcache4: TypedMap<T.Ipcache4Key, T.IpcacheValue>;
  /** endpoint_id -> its ingress/egress policy ids. */
  epPolicy: TypedMap<number, T.EpPolicy>;
  /** (policy id, peer identity, proto, port prefix) -> allow (LPM). */
  policy4: TypedMap<T.Policy4Key, T.PolicyValue>;
  /** One entry (key 0): the policy generation conntrack verdicts belong to. */
  policyGen: TypedMap<number, T.PolicyGen>;
  frag4: TypedMap<T.Frag4Key, T.FragValue>;
  /** Per-CPU event rate limit state (struct event_limit). */
  eventLimit: BpfMap;
  close(): void;
}

/** Typed views over maps that are already open (e.g. a loaded collection's). */
export function typedMaps(open: (name: string) => BpfMap, btf: Btf = contractBtf()): DatapathMaps {
  const s = <V>(ref: string, layout: ExpectedLayout) => structSide<V>(ref, layout, btf);
  const opened: Array<{ close(): void }> = [];
  const o = (name: string) => {
    const m = open(name);
    opened.push(m);
    return m;
  };
  return {
    svc4: new TypedMap(MapNames.svc4, o(MapNames.svc4), s<T.Svc4Key>('struct svc4_key', T.Svc4KeyLayout), s<T.SvcValue>('struct svc_value', T.SvcValueLayout)),
    backend4: new TypedMap(MapNames.backend4, o(MapNames.backend4), u32Side, s<T.Backend4>('struct backend4', T.Backend4Layout)),
    lbSlots: new TypedMap(MapNames.lbSlots, o(MapNames.lbSlots), s<T.LbSlotKey>('struct lb_slot_key', T.LbSlotKeyLayout), u32Side),
    maglev: o(MapNames.maglev),
    revnat4: new TypedMap(MapNames.revnat4, o(MapNames.revnat4), u32Side, s<T.Revnat4>('struct revnat4', T.Revnat4Layout)),
    ct4: new TypedMap(MapNames.ct4, o(MapNames.ct4), s<T.Ct4Key>('struct ct4_key', T.Ct4KeyLayout), s<T.CtEntry>('struct ct_entry', T.CtEntryLayout)),
    affinity4: new TypedMap(MapNames.affinity4, o(MapNames.affinity4), s<T.Affinity4Key>('struct affinity4_key', T.Affinity4KeyLayout), s<T.AffinityValue>('struct affinity_value', T.AffinityValueLayout)),
    ep4: new TypedMap(MapNames.ep4, o(MapNames.ep4), s<T.Endpoint4Key>('struct endpoint4_key', T.Endpoint4KeyLayout), s<T.EndpointInfo>('struct endpoint_info', T.EndpointInfoLayout)),
    tunnel4: new TypedMap(MapNames.tunnel4, o(MapNames.tunnel4), s<T.Tunnel4Key>('struct tunnel4_key', T.Tunnel4KeyLayout), s<T.TunnelInfo>('struct tunnel_info', T.TunnelInfoLayout)),
    node4: new TypedMap(MapNames.node4, o(MapNames.node4), be32Side, s<T.NodeAddrValue>('struct node_addr_value', T.NodeAddrValueLayout)),
    metrics: o(MapNames.metrics),
    events: o(MapNames.events),
    ipcache4: new TypedMap(MapNames.ipcache4, o(MapNames.ipcache4), s<T.Ipcache4Key>('struct ipcache4_key', T.Ipcache4KeyLayout), s<T.IpcacheValue>('struct ipcache_value', T.IpcacheValueLayout)),
    epPolicy: new TypedMap(MapNames.epPolicy, o(MapNames.epPolicy), u32Side, s<T.EpPolicy>('struct ep_policy', T.EpPolicyLayout)),
    policy4: new TypedMap(MapNames.policy4, o(MapNames.policy4), s<T.Policy4Key>('struct policy4_key', T.Policy4KeyLayout), s<T.PolicyValue>('struct policy_value', T.PolicyValueLayout)),
    policyGen: new TypedMap(MapNames.policyGen, o(MapNames.policyGen), u32Side, s<T.PolicyGen>('struct policy_gen', T.PolicyGenLayout)),
    frag4: new TypedMap(MapNames.frag4, o(MapNames.frag4), s<T.Frag4Key>('struct frag4_key', T.Frag4KeyLayout), s<T.FragValue>('struct frag_value', T.FragValueLayout)),
    eventLimit: o(MapNames.eventLimit),
    close() {
      for (const m of opened) m.close();
    },
  };
}

/** Opens every map pinned under `pinRoot` (the programs must have been loaded once). */
export function openPinnedMaps(pinRoot: string = DEFAULT_PIN_ROOT): DatapathMaps {
  return typedMaps((name) => BpfMap.fromPin(join(pinRoot, name)));
}
