// NetworkPolicy in the datapath, program tier: the real pod.o / uplink.o
// under BPF_PROG_TEST_RUN with the policy maps filled by hand. Each test
// asserts the verdict, the per-endpoint counters and the events.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FORWARDED, HAIRPIN_IP, MACS, NODE_IP, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, TCP, UDP, loadLb, setBackend, setService, tcpPkt, tupleOf, udpPkt,
  type Flow, type Lb,
} from '../service/harness.js';
import { requireRoot } from '../lib/netns.js';
import { eth, ipToNumber } from '../lib/packet.js';
import {
  CtFlags, CtKeyFlags, Events, FragFlags, PolicyIdentity, PolicyMatch, WeirDir, WeirEventType, WeirReason,
  allow, bumpGen, disallow, epMetric, eventLimit, isolate, setIdentity, setPod,
} from './harness.js';

const skip = requireRoot('BPF_PROG_TEST_RUN');
const ICMP = 1;

// This node (service harness): 192.168.50.10, pods 10.244.1.0/24, cluster 10.244.0.0/16.
const A = { ip: '10.244.1.10', ep: 10, id: 300 };
const B = { ip: '10.244.1.20', ep: 20, id: 301 };
const C = { ip: '10.244.1.30', ep: 30, id: 302 };
const R = { ip: '10.244.2.5', id: 303 }; // a pod on node 2
const REMOTE_NODE = '192.168.50.11';
const VIP = '10.96.0.10';
const { ID_ANY, ID_HOST, ID_WORLD, ID_REMOTE_NODE } = PolicyIdentity;
const { DIR_EGRESS, DIR_INGRESS } = WeirDir;

const f = (src: { ip: string }, dst: { ip: string } | string, dport: number, sport = 40000): Flow => ({
  src: src.ip, dst: typeof dst === 'string' ? dst : dst.ip, sport, dport,
});
const swap = (x: Flow): Flow => ({ src: x.dst, dst: x.src, sport: x.dport, dport: x.sport });
const ping = (src: string, dst: string, id = 77, type: 'echo-request' | 'echo-reply' = 'echo-request') =>
  eth(MACS).ipv4({ src, dst }).icmpv4({ type, id, seq: 1 }).payload('ping').build();
/** A UDP datagram as two IPv4 fragments (first: the UDP header + 8 bytes; later: the rest at offset 16). */
const udpFrags = (x: Flow, id: number) => {
  const whole = eth(MACS).ipv4({ src: x.src, dst: x.dst, id }).udp({ sport: x.sport, dport: x.dport }).payload(Buffer.alloc(40, 1)).build();
  const l4 = whole.subarray(34);
  const first = eth(MACS).ipv4({ src: x.src, dst: x.dst, id, mf: true, protocol: UDP }).payload(l4.subarray(0, 16)).build();
  const later = eth(MACS).ipv4({ src: x.src, dst: x.dst, id, fragOffset: 2, protocol: UDP }).payload(l4.subarray(16)).build();
  return { first, later };
};
const policyCt = (m: Lb['maps'], x: Flow, proto = TCP) =>
  m.ct4.get({ saddr: ipToNumber(x.src), daddr: ipToNumber(x.dst), sport: x.sport, dport: x.dport, proto, flags: CtKeyFlags.CT_KEY_POLICY, pad: 0 });

describe.skipIf(skip)('NetworkPolicy datapath (BPF_PROG_TEST_RUN)', () => {
  let lb: Lb;
  let ev: Events;

  const setup = async (constants: Record<string, number> = {}) => {
    lb = await loadLb('wpb-progs', constants);
    ev = new Events(lb.maps);
    setPod(lb.maps, A.ip, A.ep);
    setPod(lb.maps, B.ip, B.ep);
    setPod(lb.maps, C.ip, C.ep);
    for (const p of [A, B, C, R]) setIdentity(lb.maps, p.ip, p.id);
    setIdentity(lb.maps, NODE_IP, ID_HOST);
    setIdentity(lb.maps, '10.244.1.1', ID_HOST);
    setIdentity(lb.maps, REMOTE_NODE, ID_REMOTE_NODE);
    lb.maps.tunnel4.set(
      { prefixlen: 24, addr: ipToNumber('10.244.2.0') },
      { node_addr: ipToNumber(REMOTE_NODE), node_id: 2, node_mac: Buffer.from([2, 0, 0, 0, 9, 9]), vtep_mac: Buffer.alloc(6) },
    );
    bumpGen(lb.maps);
  };
  beforeEach(async () => setup());
  afterEach(() => {
    ev?.close();
    lb?.close();
  });

  it('default allow: no ep_policy entry, every pod talks; flows are tracked anyway and no verdict events are sent', async () => {
    const x = f(A, B, 8080);
    expect((await lb.fromPod(tcpPkt(x))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(udpPkt(f(B, C, 53)))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(ping(C.ip, A.ip))).retval).toBe(TC_ACT_REDIRECT);
    const e = policyCt(lb.maps, x)!;
    expect(e.flags & CtFlags.CT_F_POLICY_ALLOWED).toBeTruthy();
    expect(e.policy_gen).toBe(lb.maps.policyGen.get(0)!.gen);
    expect(epMetric(lb.maps, A.ep, WeirReason.REASON_FORWARDED, DIR_EGRESS)).toBe(1);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_FORWARDED, DIR_INGRESS)).toBe(1);
    expect(ev.drain()).toEqual([]);
  });

  it('ingress isolation: allowed by identity and port, denied for another peer or port, with counters and events', async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    allow(lb.maps, 7, A.id, TCP, 8080);
    expect((await lb.fromPod(tcpPkt(f(A, B, 8080)))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(tcpPkt(f(C, B, 8080)))).retval).toBe(TC_ACT_SHOT);
    expect((await lb.fromPod(tcpPkt(f(A, B, 9090, 40001)))).retval).toBe(TC_ACT_SHOT);
    expect((await lb.fromPod(udpPkt(f(A, B, 8080, 40002)))).retval).toBe(TC_ACT_SHOT); // TCP only
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_POLICY_DENIED_INGRESS, DIR_INGRESS)).toBe(3);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_FORWARDED, DIR_INGRESS)).toBe(1);
    const got = ev.drain();
    const verdicts = got.filter((e) => e.type === WeirEventType.EVENT_POLICY_VERDICT);
    expect(verdicts[0]).toMatchObject({
      reason: WeirReason.REASON_FORWARDED, dir: DIR_INGRESS, endpoint_id: B.ep, identity: A.id, saddr: A.ip, daddr: B.ip,
      sport: 40000, dport: 8080, proto: TCP, match: PolicyMatch.MATCH_L3_L4, policy_id: 7, ifindex: 1,
    });
    expect(verdicts[1]).toMatchObject({ reason: WeirReason.REASON_POLICY_DENIED_INGRESS, identity: C.id, match: PolicyMatch.MATCH_NONE, policy_id: 7, saddr: C.ip });
    const drops = got.filter((e) => e.type === WeirEventType.EVENT_DROP);
    expect(drops).toHaveLength(3);
    expect(drops[0]).toMatchObject({ reason: WeirReason.REASON_POLICY_DENIED_INGRESS, dir: DIR_INGRESS, endpoint_id: B.ep, saddr: C.ip, daddr: B.ip, dport: 8080, proto: TCP });
    expect(drops[0].len).toBeGreaterThan(0);
    // Denies are not cached: allowing C later lets its next SYN through.
    allow(lb.maps, 7, C.id, TCP, 8080);
    bumpGen(lb.maps);
    expect((await lb.fromPod(tcpPkt(f(C, B, 8080)))).retval).toBe(TC_ACT_REDIRECT);
  });

  it('ID_ANY entries: any peer on a port (MATCH_L4), any peer any port (MATCH_ALL); an identity without ports (MATCH_L3)', async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    allow(lb.maps, 7, ID_ANY, UDP, 53);
    expect((await lb.fromPod(udpPkt(f(C, B, 53)))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(udpPkt(f(C, B, 54)))).retval).toBe(TC_ACT_SHOT);
    allow(lb.maps, 7, C.id);
    expect((await lb.fromPod(udpPkt(f(C, B, 54)))).retval).toBe(TC_ACT_REDIRECT);
    isolate(lb.maps, A.ep, { ingress: 8 });
    allow(lb.maps, 8, ID_ANY);
    expect((await lb.fromPod(tcpPkt(f(B, A, 1234)))).retval).toBe(TC_ACT_REDIRECT);
    const matches = ev.drain().filter((e) => e.type === WeirEventType.EVENT_POLICY_VERDICT).map((e) => [e.dport, e.match]);
    expect(matches).toEqual([[53, PolicyMatch.MATCH_L4], [54, PolicyMatch.MATCH_NONE], [54, PolicyMatch.MATCH_L3], [1234, PolicyMatch.MATCH_ALL]]);
  });

  it('ICMP echo is a flow keyed by the echo id that only protocol-less entries allow; its reply passes', async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    allow(lb.maps, 7, ID_ANY, TCP); // TCP any port: not ICMP
    expect((await lb.fromPod(ping(A.ip, B.ip, 5))).retval).toBe(TC_ACT_SHOT);
    allow(lb.maps, 7, A.id);
    expect((await lb.fromPod(ping(A.ip, B.ip, 6))).retval).toBe(TC_ACT_REDIRECT);
    expect(policyCt(lb.maps, { src: A.ip, dst: B.ip, sport: 6, dport: 6 }, ICMP)).toBeDefined();
    isolate(lb.maps, B.ep, { ingress: 7, egress: 9 }); // B may send nothing new
    expect((await lb.fromPod(ping(B.ip, A.ip, 6, 'echo-reply'))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(ping(B.ip, A.ip, 8))).retval).toBe(TC_ACT_SHOT);
  });

  it('port ranges are LPM prefixes of the port: 8192-8207 as one 12-bit prefix', async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    allow(lb.maps, 7, A.id, TCP, 8192, 12);
    const verdict = async (port: number) => (await lb.fromPod(tcpPkt(f(A, B, port, 30000 + port)))).retval;
    for (const p of [8192, 8200, 8207]) expect(await verdict(p), String(p)).toBe(TC_ACT_REDIRECT);
    for (const p of [8191, 8208, 80]) expect(await verdict(p), String(p)).toBe(TC_ACT_SHOT);
  });

  it('egress isolation: allowed peers and ports only, to pods on this node, other nodes and outside', async () => {
    isolate(lb.maps, A.ep, { egress: 9 });
    allow(lb.maps, 9, B.id, TCP, 80);
    allow(lb.maps, 9, ID_WORLD, UDP, 53);
    expect((await lb.fromPod(tcpPkt(f(A, B, 80)))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(tcpPkt(f(A, C, 80)))).retval).toBe(TC_ACT_SHOT);
    expect((await lb.fromPod(tcpPkt(f(A, R, 80)))).retval).toBe(TC_ACT_SHOT);
    expect((await lb.fromPod(udpPkt(f(A, '8.8.8.8', 53)))).retval).toBe(TC_ACT_OK); // to the node's stack (masquerade)
    expect((await lb.fromPod(udpPkt(f(A, '8.8.8.8', 123)))).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, A.ep, WeirReason.REASON_POLICY_DENIED_EGRESS, DIR_EGRESS)).toBe(3);
    expect(epMetric(lb.maps, A.ep, WeirReason.REASON_FORWARDED, DIR_EGRESS)).toBe(2);
    const d = ev.drain().filter((e) => e.type === WeirEventType.EVENT_POLICY_VERDICT && e.daddr === R.ip);
    expect(d).toEqual([expect.objectContaining({ dir: DIR_EGRESS, endpoint_id: A.ep, identity: R.id, policy_id: 9, reason: WeirReason.REASON_POLICY_DENIED_EGRESS })]);
  });

  it('replies of allowed flows pass both ways even where new flows are denied', async () => {
    isolate(lb.maps, A.ep, { ingress: 1, egress: 2 });
    isolate(lb.maps, B.ep, { ingress: 3, egress: 4 });
    allow(lb.maps, 2, B.id, TCP, 8080);
    allow(lb.maps, 3, A.id, TCP, 8080);
    const x = f(A, B, 8080);
    expect((await lb.fromPod(tcpPkt(x))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(tcpPkt(swap(x), ['SYN', 'ACK']))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(tcpPkt(x, ['ACK'], 'data'))).retval).toBe(TC_ACT_REDIRECT);
    // the node's stack delivering B's reply (to_pod) passes too
    expect((await lb.toPod(tcpPkt(swap(x), ['ACK']))).retval).toBe(TC_ACT_OK);
    // but B opening a connection to A on the same ports is new: denied
    expect((await lb.fromPod(tcpPkt(f(B, A, 8080, 40000)))).retval).toBe(TC_ACT_SHOT);
  });

  it('a policy change (generation bump) re-evaluates the next forward packet: a now-denied flow is dropped and forgotten', async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    allow(lb.maps, 7, A.id, TCP, 8080);
    const x = f(A, B, 8080);
    expect((await lb.fromPod(tcpPkt(x))).retval).toBe(TC_ACT_REDIRECT);
    // still allowed after a bump: the entry moves to the new generation
    const g2 = bumpGen(lb.maps);
    expect((await lb.fromPod(tcpPkt(x, ['ACK'], 'a'))).retval).toBe(TC_ACT_REDIRECT);
    expect(policyCt(lb.maps, x)!.policy_gen).toBe(g2);
    // the entry removed but the gen not bumped yet: the cached verdict holds
    disallow(lb.maps, 7, A.id, TCP, 8080);
    expect((await lb.fromPod(tcpPkt(x, ['ACK'], 'b'))).retval).toBe(TC_ACT_REDIRECT);
    bumpGen(lb.maps);
    expect((await lb.fromPod(tcpPkt(x, ['ACK'], 'c'))).retval).toBe(TC_ACT_SHOT);
    expect(policyCt(lb.maps, x)).toBeUndefined();
    expect((await lb.fromPod(tcpPkt(x, ['ACK'], 'd'))).retval).toBe(TC_ACT_SHOT);
  });

  it('service flow: ClusterIP DNAT to a backend whose ingress policy is checked on the backend address; replies are matched before reverse NAT', async () => {
    setBackend(lb.maps, { id: 1, addr: B.ip, port: 8080 });
    setService(lb.maps, { id: 1, addr: VIP, port: 80, backends: [1] });
    isolate(lb.maps, B.ep, { ingress: 7, egress: 8 }); // egress: nothing
    allow(lb.maps, 7, A.id, TCP, 8080);
    const out = await lb.fromPod(tcpPkt(f(A, VIP, 80)));
    expect(out.retval).toBe(TC_ACT_REDIRECT);
    expect(tupleOf(out.p)).toEqual(f(A, B, 8080));
    expect(policyCt(lb.maps, f(A, B, 8080))).toBeDefined(); // keyed as the pods see it
    expect((await lb.fromPod(tcpPkt(f(C, VIP, 80, 40001)))).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_POLICY_DENIED_INGRESS, DIR_INGRESS)).toBe(1);
    // B's reply is reverse-NATed to VIP:80 -> A and passes although B's egress allows nothing
    const rep = await lb.fromPod(tcpPkt(swap(f(A, B, 8080)), ['SYN', 'ACK']));
    expect(rep.retval).toBe(TC_ACT_REDIRECT);
    expect(tupleOf(rep.p)).toEqual(swap(f(A, VIP, 80)));
    // hairpin: B through its own service; ingress sees B's own identity
    allow(lb.maps, 7, B.id, TCP, 8080);
    allow(lb.maps, 8, B.id, TCP, 8080);
    const hp = await lb.fromPod(tcpPkt(f(B, VIP, 80, 41000)));
    expect(hp.retval).toBe(TC_ACT_REDIRECT);
    expect(tupleOf(hp.p)).toEqual({ src: HAIRPIN_IP, dst: B.ip, sport: 41000, dport: 8080 });
    expect((await lb.fromPod(tcpPkt({ src: B.ip, dst: HAIRPIN_IP, sport: 8080, dport: 41000 }, ['SYN', 'ACK']))).retval).toBe(TC_ACT_REDIRECT);
  });

  it('cross-node: a VXLAN packet is decapsulated, then checked against the local pod ingress policy', async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    allow(lb.maps, 7, R.id, TCP, 8080);
    const vx = (x: Flow) => eth({ src: '02:00:00:00:09:09', dst: MACS.dst })
      .ipv4({ src: REMOTE_NODE, dst: NODE_IP, id: 1 })
      .vxlan({ vni: 1, sport: 45678, udpZeroChecksum: true })
      .payload(tcpPkt(x))
      .build();
    expect((await lb.fromUplink(vx(f(R, B, 8080)))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromUplink(vx(f(R, B, 22)))).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_POLICY_DENIED_INGRESS, DIR_INGRESS)).toBe(1);
    // B's reply to R leaves by VXLAN although B's egress allows nothing new
    isolate(lb.maps, B.ep, { ingress: 7, egress: 8 });
    expect((await lb.fromPod(tcpPkt(swap(f(R, B, 8080)), ['SYN', 'ACK']))).retval).toBe(TC_ACT_REDIRECT);
  });

  it("to_pod: the node's stack delivering to an isolated pod; host traffic allowed by the compiler's host entry", async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    expect((await lb.toPod(tcpPkt(f({ ip: '203.0.113.5' }, B, 8080)))).retval).toBe(TC_ACT_SHOT);
    expect((await lb.toPod(tcpPkt(f({ ip: NODE_IP }, B, 10250)))).retval).toBe(TC_ACT_SHOT);
    allow(lb.maps, 7, ID_HOST);
    expect((await lb.toPod(tcpPkt(f({ ip: NODE_IP }, B, 10250)))).retval).toBe(TC_ACT_OK);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_FORWARDED, DIR_INGRESS)).toBe(1);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_POLICY_DENIED_INGRESS, DIR_INGRESS)).toBe(2);
    const v = ev.drain().filter((e) => e.type === WeirEventType.EVENT_POLICY_VERDICT);
    expect(v.map((e) => e.identity)).toEqual([ID_WORLD, ID_HOST, ID_HOST]);
  });

  it('NodePort to a local backend: the ingress policy sees the outside client', async () => {
    lb.maps.node4.set(ipToNumber(NODE_IP), { flags: 0 });
    setBackend(lb.maps, { id: 2, addr: B.ip, port: 8080 });
    setService(lb.maps, { id: 2, addr: '0.0.0.0', port: 30080, backends: [2], flags: 2 /* SVC_F_NODEPORT */, revnat: { addr: '0.0.0.0', port: 30080 } });
    isolate(lb.maps, B.ep, { ingress: 7 });
    setIdentity(lb.maps, '198.51.100.0/24', 400); // an ipBlock
    allow(lb.maps, 7, 400, TCP, 8080);
    expect((await lb.fromUplink(tcpPkt(f({ ip: '198.51.100.7' }, NODE_IP, 30080)))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromUplink(tcpPkt(f({ ip: '203.0.113.7' }, NODE_IP, 30080)))).retval).toBe(TC_ACT_SHOT);
    // B's reply leaves directly (lb_reply_out) after the policy step, which matches it by its
    // pre-reverse-NAT tuple: a reply, so it passes although B's egress allows nothing.
    isolate(lb.maps, B.ep, { ingress: 7, egress: 8 });
    const rep = await lb.fromPod(tcpPkt(swap(f({ ip: '198.51.100.7' }, B, 8080)), ['SYN', 'ACK']));
    expect(rep.retval).not.toBe(TC_ACT_SHOT);
    expect(tupleOf(rep.p)).toEqual(swap(f({ ip: '198.51.100.7' }, NODE_IP, 30080)));
    // a new flow from B to the same client is egress-denied
    expect((await lb.fromPod(tcpPkt(f(B, { ip: '198.51.100.7' }, 443)))).retval).toBe(TC_ACT_SHOT);
  });

  it('anti-spoofing: a source that is not the endpoint of the veth it came from is dropped', async () => {
    setPod(lb.maps, '10.244.1.40', 40, 999); // another veth
    const spoofs = [
      tcpPkt({ src: '10.244.1.40', dst: B.ip, sport: 1, dport: 80 }), // another pod's address
      tcpPkt({ src: '10.244.1.99', dst: B.ip, sport: 1, dport: 80 }), // nobody's
      tcpPkt({ src: '10.244.1.1', dst: B.ip, sport: 1, dport: 80 }), // not registered as a pod
      udpPkt({ src: '8.8.8.8', dst: B.ip, sport: 53, dport: 5353 }),
    ];
    lb.maps.ep4.set({ addr: ipToNumber('10.244.1.1') }, { ifindex: 1, endpoint_id: 1, mac: Buffer.alloc(6), node_mac: Buffer.alloc(6), flags: 1 /* EP_F_HOST */, identity: 0 });
    for (const s of spoofs) expect((await lb.fromPod(s)).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, 0, WeirReason.REASON_SPOOFED_SOURCE, DIR_EGRESS)).toBe(4);
    const d = ev.drain();
    expect(d).toHaveLength(4);
    expect(d[0]).toMatchObject({ type: WeirEventType.EVENT_DROP, reason: WeirReason.REASON_SPOOFED_SOURCE, saddr: '10.244.1.40', daddr: B.ip, ifindex: 1 });
    expect((await lb.fromPod(tcpPkt(f(A, B, 80)))).retval).toBe(TC_ACT_REDIRECT);
  });

  it('fragments: first and later fragments follow the verdict; an unknown later fragment to an isolated pod is dropped', async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    allow(lb.maps, 7, A.id, UDP, 5353);
    const ok = udpFrags(f(A, B, 5353), 101);
    expect((await lb.fromPod(ok.first)).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(ok.later)).retval).toBe(TC_ACT_REDIRECT);
    expect(lb.maps.frag4.get({ saddr: ipToNumber(A.ip), daddr: ipToNumber(B.ip), id: 101, proto: UDP, pad: 0 })).toMatchObject({ sport: 40000, dport: 5353, flags: FragFlags.FRAG_F_ALLOWED });
    const bad = udpFrags(f(C, B, 5353), 102);
    expect((await lb.fromPod(bad.first)).retval).toBe(TC_ACT_SHOT);
    expect((await lb.fromPod(bad.later)).retval).toBe(TC_ACT_SHOT);
    const badPort = udpFrags(f(A, B, 5354), 103);
    expect((await lb.fromPod(badPort.first)).retval).toBe(TC_ACT_SHOT);
    expect((await lb.fromPod(badPort.later)).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_FRAG_DENIED, DIR_INGRESS)).toBe(2);
    // a later fragment whose first fragment never came
    expect((await lb.fromPod(udpFrags(f(A, B, 5353), 104).later)).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_FRAG_UNKNOWN, DIR_INGRESS)).toBe(1);
    // ... passes where nothing is isolated (C), as before policies
    expect((await lb.fromPod(udpFrags(f(A, C, 5353), 105).later)).retval).toBe(TC_ACT_REDIRECT);
    const unk = ev.drain().find((e) => e.reason === WeirReason.REASON_FRAG_UNKNOWN)!;
    expect(unk).toMatchObject({ type: WeirEventType.EVENT_DROP, endpoint_id: B.ep, saddr: A.ip, daddr: B.ip, proto: UDP, sport: 0, dport: 0 });
    // egress side: an isolated sender's unknown later fragment
    isolate(lb.maps, C.ep, { egress: 9 });
    expect((await lb.fromPod(udpFrags(f(C, A, 5353), 106).later)).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, C.ep, WeirReason.REASON_FRAG_UNKNOWN, DIR_EGRESS)).toBe(1);
  });

  it('IP options: the packet is judged by its L4 ports after the options', async () => {
    isolate(lb.maps, B.ep, { ingress: 7 });
    allow(lb.maps, 7, A.id, TCP, 8080);
    const opt = (port: number, sport: number) =>
      eth(MACS).ipv4({ src: A.ip, dst: B.ip, options: Buffer.from([0x94, 0x04, 0, 0, 1, 1, 1, 0]) /* router alert, NOPs, EOL */ })
        .tcp({ sport, dport: port, flags: ['SYN'], seq: 1 }).build();
    expect((await lb.fromPod(opt(8080, 50000))).retval).toBe(TC_ACT_REDIRECT);
    expect((await lb.fromPod(opt(8081, 50001))).retval).toBe(TC_ACT_SHOT);
    expect(policyCt(lb.maps, { src: A.ip, dst: B.ip, sport: 50000, dport: 8080 })).toBeDefined();
  });

  it('truncated headers and tiny overlapping TCP fragments are dropped as invalid, with an event', async () => {
    const full = tcpPkt(f(A, B, 80));
    const trunc = Buffer.from(full.subarray(0, 14 + 20 + 10)); // 10 of 20 TCP header bytes
    trunc.writeUInt16BE(30, 16);
    expect((await lb.fromPod(trunc)).retval).toBe(TC_ACT_SHOT);
    const longIhl = Buffer.from(full);
    longIhl[14] = 0x4f; // a 60-byte IPv4 header in a 40-byte packet
    expect((await lb.fromPod(longIhl)).retval).toBe(TC_ACT_SHOT);
    const overlap = eth(MACS).ipv4({ src: A.ip, dst: B.ip, id: 9, fragOffset: 1, protocol: TCP }).payload(Buffer.alloc(16)).build();
    expect((await lb.fromPod(overlap)).retval).toBe(TC_ACT_SHOT);
    expect((await lb.toPod(trunc)).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, 0, WeirReason.REASON_INVALID_PACKET, DIR_EGRESS)).toBe(3);
    expect(epMetric(lb.maps, 0, WeirReason.REASON_INVALID_PACKET, DIR_INGRESS)).toBe(1);
    const d = ev.drain();
    expect(d.map((e) => [e.type, e.reason])).toEqual(Array(4).fill([WeirEventType.EVENT_DROP, WeirReason.REASON_INVALID_PACKET]));
    expect(d[0]).toMatchObject({ saddr: A.ip, daddr: B.ip, proto: TCP });
  });

  it('ICMP errors about a tracked flow pass (related); others are new traffic and obey isolation', async () => {
    isolate(lb.maps, A.ep, { ingress: 1 }); // A accepts nothing new
    const sent = await lb.fromPod(udpPkt(f(A, B, 5353)));
    expect(sent.retval).toBe(TC_ACT_REDIRECT);
    const err = (about: Buffer) => eth(MACS).ipv4({ src: B.ip, dst: A.ip })
      .icmpv4({ type: 'dest-unreachable', code: 'port-unreachable' }).payload(about.subarray(14)).build();
    expect((await lb.fromPod(err(sent.data))).retval).toBe(TC_ACT_REDIRECT);
    const never = udpPkt(f(A, B, 5354)); // never sent: no flow
    expect((await lb.fromPod(err(never))).retval).toBe(TC_ACT_SHOT);
    expect(epMetric(lb.maps, A.ep, WeirReason.REASON_POLICY_DENIED_INGRESS, DIR_INGRESS)).toBe(1);
  });

  it('ICMP error about a service flow: matched before and after lb translates its quote', async () => {
    setBackend(lb.maps, { id: 3, addr: B.ip, port: 5353, proto: UDP });
    setService(lb.maps, { id: 3, addr: VIP, port: 53, proto: UDP, backends: [3] });
    isolate(lb.maps, A.ep, { ingress: 1, egress: 2 });
    allow(lb.maps, 2, B.id, UDP, 5353);
    const sent = await lb.fromPod(udpPkt(f(A, VIP, 53)));
    expect(sent.retval).toBe(TC_ACT_REDIRECT);
    // the backend's port unreachable quotes A -> B:5353 and goes to A (translated to VIP on the way)
    const err = eth(MACS).ipv4({ src: B.ip, dst: A.ip }).icmpv4({ type: 'dest-unreachable', code: 'port-unreachable' }).payload(sent.data.subarray(14)).build();
    const r = await lb.fromPod(err);
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.p.inner!.ipv4).toMatchObject({ src: A.ip, dst: VIP });
    // an error quoting a datagram of no flow is new traffic to A: denied
    const stray = eth(MACS).ipv4({ src: B.ip, dst: A.ip }).icmpv4({ type: 'dest-unreachable', code: 'port-unreachable' })
      .payload(udpPkt(f(A, B, 5399)).subarray(14)).build();
    expect((await lb.fromPod(stray)).retval).toBe(TC_ACT_SHOT);
  });

  it('events are rate limited per CPU: a flood of drops sends EVENTS_PER_SEC and counts the rest as suppressed', async () => {
    ev.close();
    lb.close();
    await setup({ EVENTS_PER_SEC: 5 });
    isolate(lb.maps, B.ep, { ingress: 7 });
    const before = eventLimit(lb.maps);
    const N = 60;
    const t0 = Date.now();
    for (let i = 0; i < N; i++) expect((await lb.fromPod(tcpPkt(f(C, B, 8080, 20000 + i)))).retval).toBe(TC_ACT_SHOT);
    const seconds = Math.ceil((Date.now() - t0) / 1000) + 1; // windows the flood can span
    const got = ev.drain();
    const after = eventLimit(lb.maps);
    // each denied SYN is worth two events (verdict + drop)
    expect(got.length).toBeGreaterThanOrEqual(5);
    expect(got.length).toBeLessThanOrEqual(5 * seconds * 2 /* CPUs */);
    expect(after.sent - before.sent).toBe(got.length);
    expect(after.suppressed - before.suppressed).toBe(2 * N - got.length);
    expect(epMetric(lb.maps, B.ep, WeirReason.REASON_POLICY_DENIED_INGRESS, DIR_INGRESS)).toBe(N); // counters never suppressed
  });
});

describe.skipIf(skip)('route and lb drops report events too', () => {
  it('no route to a pod of this node: counted and reported', async () => {
    const lb = await loadLb('wpb-progs2');
    const ev = new Events(lb.maps);
    try {
      setPod(lb.maps, A.ip, A.ep);
      expect((await lb.fromPod(tcpPkt(f(A, '10.244.1.77', 80)))).retval).toBe(TC_ACT_SHOT);
      expect(ev.drain()).toEqual([expect.objectContaining({ type: WeirEventType.EVENT_DROP, reason: WeirReason.REASON_NO_ROUTE, saddr: A.ip, daddr: '10.244.1.77', sport: 40000, dport: 80, proto: TCP })]);
      expect(FORWARDED).toContain(TC_ACT_REDIRECT);
    } finally {
      ev.close();
      lb.close();
    }
  });
});
