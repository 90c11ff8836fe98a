// Helpers for the policy datapath tests: the service harness loads the real
// pod.o and uplink.o with shared maps under a private pin root; these fill
// the policy maps (ipcache, ep_policy, policy4, gen) by hand through the typed
// views, read per-endpoint counters and decode ring-buffer events.
import { codecFor } from '../../loader/index.js';
import { contractBtf, type DatapathMaps } from '../../control/datapath/maps.js';
import * as T from '../../control/datapath/types.gen.js';
import { RingBuffer, possibleCpus } from '../../native/index.js';
import { ipToNumber } from '../lib/packet.js';

export const { PolicyIdentity, PolicyFlags, PolicyMatch, WeirReason, WeirDir, WeirEventType, CtKeyFlags, CtFlags, FragFlags } = T;

let epSeqMac = 1;
/** A local pod behind veth `ifindex` (BPF_PROG_TEST_RUN runs with skb->ifindex 1, the loopback). */
export function setPod(m: DatapathMaps, addr: string, endpointId: number, ifindex = 1): void {
  const n = epSeqMac++;
  m.ep4.set({ addr: ipToNumber(addr) }, {
    ifindex,
    endpoint_id: endpointId,
    mac: Buffer.from([2, 0, 0, 0, 1, n]),
    node_mac: Buffer.from([2, 0, 0, 0, 2, n]),
    flags: 0,
    identity: 0,
  });
}

/** ipcache: `cidr` (a.b.c.d or a.b.c.d/len) has `identity`. */
export function setIdentity(m: DatapathMaps, cidr: string, identity: number): void {
  const [addr, len] = cidr.split('/');
  m.ipcache4.set({ prefixlen: len === undefined ? 32 : Number(len), addr: ipToNumber(addr) }, { identity, flags: 0 });
}

export function isolate(m: DatapathMaps, endpointId: number, o: { ingress?: number; egress?: number }): void {
  m.epPolicy.set(endpointId, { ingress_id: o.ingress ?? 0, egress_id: o.egress ?? 0 });
}

/**
 * An allow entry: (policy, identity) any protocol; with proto, any port; with
 * port, the first `bits` bits of it (16 = that port).
 */
export function allow(m: DatapathMaps, policyId: number, identity: number, proto?: number, port?: number, bits = 16): void {
  const prefixlen = proto === undefined ? 64 : port === undefined ? 80 : 80 + bits;
  m.policy4.set(
    { prefixlen, policy_id: policyId, identity, proto: proto ?? 0, pad: 0, port: port ?? 0 },
    { flags: PolicyFlags.POLICY_F_ALLOW | (proto === undefined ? 0 : PolicyFlags.POLICY_F_L4) },
  );
}

export function disallow(m: DatapathMaps, policyId: number, identity: number, proto?: number, port?: number, bits = 16): void {
  const prefixlen = proto === undefined ? 64 : port === undefined ? 80 : 80 + bits;
  m.policy4.delete({ prefixlen, policy_id: policyId, identity, proto: proto ?? 0, pad: 0, port: port ?? 0 });
}

export function bumpGen(m: DatapathMaps): number {
  const g = (m.policyGen.get(0)?.gen ?? 0) + 1;
  m.policyGen.set(0, { gen: g });
  return g;
}

/** weir_metrics (endpoint, reason, dir), packets summed over CPUs. */
export function epMetric(m: DatapathMaps, endpointId: number, reason: number, dir: number): number {
  const k = Buffer.alloc(8);
  k.writeUInt32LE(endpointId, 0);
  k[4] = reason;
  k[5] = dir;
  const v = m.metrics.lookup(k);
  if (!v) return 0;
  const stride = v.length / possibleCpus();
  let n = 0n;
  for (let c = 0; c < possibleCpus(); c++) n += v.readBigUInt64LE(c * stride);
  return Number(n);
}

/** weir_event_limit summed over CPUs. */
export function eventLimit(m: DatapathMaps): { sent: number; suppressed: number } {
  const v = m.eventLimit.lookup(Buffer.alloc(4));
  if (!v) return { sent: 0, suppressed: 0 };
  const stride = v.length / possibleCpus();
  let sent = 0n;
  let suppressed = 0n;
  for (let c = 0; c < possibleCpus(); c++) {
    sent += v.readBigUInt64LE(c * stride + 8);
    suppressed += v.readBigUInt64LE(c * stride + 16);
  }
  return { sent: Number(sent), suppressed: Number(suppressed) };
}

export interface Ev {
  type: number;
  reason: number;
  dir: number;
  endpoint_id: number;
  identity: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
  match: number;
  policy_id: number;
  ifindex: number;
  len: number;
}

const ipStr = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');

/** Reads weir_events: drain() returns what arrived since the last call. */
export class Events {
  readonly #rb: RingBuffer;
  readonly #got: Ev[] = [];
  constructor(m: DatapathMaps) {
    const codec = codecFor<T.Event>(contractBtf(), 'struct event', T.EventLayout);
    this.#rb = new RingBuffer(m.events, (d) => {
      const e = codec.decode(d);
      this.#got.push({
        type: e.type, reason: e.reason, dir: e.dir, endpoint_id: e.endpoint_id, identity: e.identity,
        saddr: ipStr(e.saddr), daddr: ipStr(e.daddr), sport: e.sport, dport: e.dport, proto: e.proto,
        match: e.match, policy_id: e.policy_id, ifindex: e.ifindex, len: e.len,
      });
    });
  }
  drain(): Ev[] {
    this.#rb.consume();
    return this.#got.splice(0);
  }
  close(): void {
    this.#rb.close();
  }
}
