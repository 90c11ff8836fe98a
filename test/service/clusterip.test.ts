// ClusterIP service path of the real pod.o under BPF_PROG_TEST_RUN: DNAT
// (TCP, UDP, UDP without checksum), conntrack entries, reverse NAT (to_pod
// and a backend pod's reply through from_pod), CT reuse when the backend set
// changes, reject without backends, hairpin, ICMP error translation.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eth, ipToNumber } from '../lib/packet.js';
import { requireRoot } from '../lib/netns.js';
import { WeirReason, WeirDir } from '../../control/datapath/types.gen.js';
import {
  CtFlags, CtKeyFlags, FORWARDED, HAIRPIN_IP, Lb, MACS, TC_ACT_REDIRECT, TCP, UDP,
  csumErrors, loadLb, metric, setBackend, setEndpoint, setService, tcpPkt, tupleOf, udpPkt,
} from './harness.js';

const skip = requireRoot('BPF_PROG_TEST_RUN on build/bpf/pod.o');

const VIP = '10.96.0.10';
const CLIENT = '10.244.1.5';
const B1 = '10.244.1.20';
const B2 = '10.244.1.30';
const flow = (sport = 40000, dport = 80) => ({ src: CLIENT, dst: VIP, sport, dport });

describe.skipIf(skip)('service datapath: ClusterIP', () => {
  let lb: Lb;
  beforeEach(async () => {
    lb = await loadLb('h1-cip');
    for (const a of [CLIENT, B1, B2]) setEndpoint(lb.maps, a);
    setBackend(lb.maps, { id: 11, addr: B1, port: 8080 });
    setBackend(lb.maps, { id: 12, addr: B2, port: 8080 });
    setService(lb.maps, { id: 7, addr: VIP, port: 80, backends: [11] });
  });
  afterEach(() => lb.close());

  it('DNATs a TCP SYN to the backend with correct checksums and records both CT entries', async () => {
    const r = await lb.fromPod(tcpPkt(flow(), ['SYN']));
    expect(FORWARDED).toContain(r.retval);
    expect(tupleOf(r.p)).toEqual({ src: CLIENT, dst: B1, sport: 40000, dport: 8080 });
    expect(csumErrors(r.data)).toEqual([]);

    const svcEntry = lb.maps.ct4.get({ saddr: ipToNumber(CLIENT), daddr: ipToNumber(VIP), sport: 40000, dport: 80, proto: TCP, flags: CtKeyFlags.CT_KEY_SERVICE, pad: 0 });
    expect(svcEntry).toMatchObject({ backend_id: 11, revnat_id: 7, packets_fwd: 1n });
    expect(svcEntry!.flags & CtFlags.CT_F_SERVICE).toBeTruthy();
    const plain = lb.maps.ct4.get({ saddr: ipToNumber(CLIENT), daddr: ipToNumber(B1), sport: 40000, dport: 8080, proto: TCP, flags: 0, pad: 0 });
    expect(plain).toMatchObject({ backend_id: 11, revnat_id: 7 });
    expect(plain!.tcp_state & 1).toBe(1); // CT_TCP_SYN_FWD
    expect(plain!.last_seen).toBeGreaterThan(0n);
  });

  it('DNATs UDP, and a UDP checksum of 0 stays 0', async () => {
    setService(lb.maps, { id: 8, addr: VIP, port: 53, proto: UDP, backends: [12] });
    setBackend(lb.maps, { id: 12, addr: B2, port: 5353, proto: UDP });
    const r = await lb.fromPod(udpPkt(flow(41000, 53), 'query'));
    expect(FORWARDED).toContain(r.retval);
    expect(tupleOf(r.p)).toEqual({ src: CLIENT, dst: B2, sport: 41000, dport: 5353 });
    expect(r.p.udp!.checksum).not.toBe(0);
    expect(csumErrors(r.data)).toEqual([]);

    const z = await lb.fromPod(udpPkt(flow(41001, 53), 'query', true));
    expect(tupleOf(z.p)).toEqual({ src: CLIENT, dst: B2, sport: 41001, dport: 5353 });
    expect(z.p.udp!.checksum).toBe(0);
    expect(csumErrors(z.data)).toEqual([]);
    expect(z.p.payload.toString()).toBe('query');
  });

  it('leaves traffic to non-service addresses alone', async () => {
    const pkt = tcpPkt({ src: CLIENT, dst: '10.244.3.3', sport: 1, dport: 80 });
    const r = await lb.fromPod(pkt);
    expect(r.data.equals(pkt)).toBe(true);
    const other = tcpPkt(flow(40000, 81)); // the VIP, another port
    expect((await lb.fromPod(other)).data.equals(other)).toBe(true);
  });

  it('reverse-NATs replies in to_pod and in from_pod (backend pod on this node)', async () => {
    await lb.fromPod(tcpPkt(flow(), ['SYN']));
    const reply = tcpPkt({ src: B1, dst: CLIENT, sport: 8080, dport: 40000 }, ['SYN', 'ACK'], '', 5000, 1001);
    for (const run of [lb.toPod, lb.fromPod]) {
      const r = await run(reply);
      expect(tupleOf(r.p)).toEqual({ src: VIP, dst: CLIENT, sport: 80, dport: 40000 });
      expect(csumErrors(r.data)).toEqual([]);
    }
    const plain = lb.maps.ct4.get({ saddr: ipToNumber(CLIENT), daddr: ipToNumber(B1), sport: 40000, dport: 8080, proto: TCP, flags: 0, pad: 0 });
    expect(plain!.packets_rev).toBe(2n);
    expect(plain!.tcp_state & 0x20).toBe(0x20); // CT_TCP_ESTABLISHED: both SYNs seen

    // A packet that only looks like a reply (other port) is untouched.
    const stray = tcpPkt({ src: B1, dst: CLIENT, sport: 8080, dport: 40001 }, ['ACK']);
    expect((await lb.toPod(stray)).data.equals(stray)).toBe(true);
  });

  it('keeps established flows on their backend when the backend set changes; a removed backend is replaced', async () => {
    await lb.fromPod(tcpPkt(flow(), ['SYN']));
    // The service now has only B2.
    setService(lb.maps, { id: 7, addr: VIP, port: 80, backends: [12] });
    const again = await lb.fromPod(tcpPkt(flow(), ['ACK'], 'data'));
    expect(tupleOf(again.p).dst).toBe(B1);
    expect(csumErrors(again.data)).toEqual([]);
    const fresh = await lb.fromPod(tcpPkt(flow(40002), ['SYN']));
    expect(tupleOf(fresh.p).dst).toBe(B2);
    // B1 is deleted from the backend map: the old flow picks anew.
    lb.maps.backend4.delete(11);
    const moved = await lb.fromPod(tcpPkt(flow(), ['ACK'], 'more'));
    expect(tupleOf(moved.p)).toMatchObject({ dst: B2, dport: 8080 });
    const svcEntry = lb.maps.ct4.get({ saddr: ipToNumber(CLIENT), daddr: ipToNumber(VIP), sport: 40000, dport: 80, proto: TCP, flags: CtKeyFlags.CT_KEY_SERVICE, pad: 0 });
    expect(svcEntry!.backend_id).toBe(12);
  });

  it('rejects TCP to a service without backends with a RST back to the client', async () => {
    setService(lb.maps, { id: 9, addr: VIP, port: 443, backends: [] });
    const syn = tcpPkt(flow(40010, 443), ['SYN'], '', 7777);
    const r = await lb.fromPod(syn);
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.p.eth).toMatchObject({ src: MACS.dst, dst: MACS.src });
    expect(tupleOf(r.p)).toEqual({ src: VIP, dst: CLIENT, sport: 443, dport: 40010 });
    expect(r.p.tcp!.flags.sort()).toEqual(['ACK', 'RST']);
    expect(r.p.tcp!.ack).toBe(7778);
    expect(r.p.tcp!.seq).toBe(0);
    expect(csumErrors(r.data)).toEqual([]);
    expect(r.data.length).toBe(54);

    // A segment carrying an ACK gets a RST with seq = its ack number.
    const ack = await lb.fromPod(tcpPkt(flow(40011, 443), ['ACK'], 'hello', 100, 123456));
    expect(ack.p.tcp!.flags).toEqual(['RST']);
    expect(ack.p.tcp!.seq).toBe(123456);
    expect(csumErrors(ack.data)).toEqual([]);
    expect(metric(lb.maps, WeirReason.REASON_NO_BACKEND, WeirDir.DIR_EGRESS)).toBe(2);
  });

  it('rejects UDP to a service without backends with ICMP port unreachable quoting the datagram', async () => {
    setService(lb.maps, { id: 9, addr: VIP, port: 53, proto: UDP, backends: [] });
    const q = udpPkt(flow(41000, 53), 'a-longer-query-payload');
    const r = await lb.fromPod(q);
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.p.ipv4).toMatchObject({ src: VIP, dst: CLIENT, protocol: 1 });
    expect(r.p.icmpv4).toMatchObject({ type: 3, code: 3 });
    expect(r.p.inner!.ipv4).toMatchObject({ src: CLIENT, dst: VIP });
    expect(r.p.inner!.udp).toMatchObject({ sport: 41000, dport: 53 });
    // The quote is the original IP header + 8 bytes, byte for byte.
    expect(r.data.subarray(14 + 20 + 8).equals(q.subarray(14, 14 + 28))).toBe(true);
    expect(csumErrors(r.data)).toEqual([]);
  });

  it('hairpin: a pod reaching itself through its service is SNATed to 169.254.42.1 and the reply comes back translated', async () => {
    setBackend(lb.maps, { id: 13, addr: CLIENT, port: 8080 });
    setService(lb.maps, { id: 7, addr: VIP, port: 80, backends: [13] });
    const out = await lb.fromPod(tcpPkt(flow(), ['SYN']));
    expect(tupleOf(out.p)).toEqual({ src: HAIRPIN_IP, dst: CLIENT, sport: 40000, dport: 8080 });
    expect(csumErrors(out.data)).toEqual([]);
    const plain = lb.maps.ct4.get({ saddr: ipToNumber(HAIRPIN_IP), daddr: ipToNumber(CLIENT), sport: 40000, dport: 8080, proto: TCP, flags: 0, pad: 0 });
    expect(plain!.flags & CtFlags.CT_F_HAIRPIN).toBeTruthy();
    // The pod answers 169.254.42.1 (its default route: back through from_pod).
    const reply = await lb.fromPod(tcpPkt({ src: CLIENT, dst: HAIRPIN_IP, sport: 8080, dport: 40000 }, ['SYN', 'ACK']));
    expect(tupleOf(reply.p)).toEqual({ src: VIP, dst: CLIENT, sport: 80, dport: 40000 });
    expect(csumErrors(reply.data)).toEqual([]);
    // Later packets of the flow keep the same translation.
    const next = await lb.fromPod(tcpPkt(flow(), ['ACK'], 'x'));
    expect(tupleOf(next.p)).toEqual({ src: HAIRPIN_IP, dst: CLIENT, sport: 40000, dport: 8080 });
  });

  it('translates an ICMP port unreachable from the backend about a DNATed datagram (outer and quoted headers)', async () => {
    setService(lb.maps, { id: 8, addr: VIP, port: 53, proto: UDP, backends: [12] });
    setBackend(lb.maps, { id: 12, addr: B2, port: 5353, proto: UDP });
    const sent = await lb.fromPod(udpPkt(flow(41000, 53), 'q'));
    expect(tupleOf(sent.p).dst).toBe(B2);
    // The backend's kernel quotes the translated datagram whole.
    const err = eth(MACS).ipv4({ src: B2, dst: CLIENT })
      .icmpv4({ type: 'dest-unreachable', code: 'port-unreachable' })
      .payload(sent.data.subarray(14)).build();
    const r = await lb.toPod(err);
    expect(r.p.ipv4).toMatchObject({ src: VIP, dst: CLIENT });
    expect(r.p.inner!.ipv4).toMatchObject({ src: CLIENT, dst: VIP });
    expect(r.p.inner!.udp).toMatchObject({ sport: 41000, dport: 53 });
    const rep = (await import('../lib/packet.js')).verifyChecksums(r.data);
    expect(rep.errors).toEqual([]);
    expect(rep.checked).toEqual(expect.arrayContaining(['ipv4', 'icmpv4', 'inner.ipv4', 'inner.udp']));
    // The same error leaving the backend pod (from_pod) is translated too.
    const r2 = await lb.fromPod(err);
    expect(r2.data.subarray(12).equals(r.data.subarray(12))).toBe(true); // MACs are the routing step's
  });

  it('translates a frag-needed from a router on the path, and an error about a reply sent by the client', async () => {
    const sent = await lb.fromPod(tcpPkt(flow(), ['ACK'], 'x'.repeat(100)));
    const router = '10.244.0.1';
    const fragNeeded = eth(MACS).ipv4({ src: router, dst: CLIENT })
      .icmpv4({ type: 'dest-unreachable', code: 'frag-needed', mtu: 1400, quoteBytes: 28 })
      .payload(sent.data.subarray(14)).build();
    const r = await lb.toPod(fragNeeded);
    expect(r.p.ipv4).toMatchObject({ src: router, dst: CLIENT }); // a router's address stays
    expect(r.p.icmpv4).toMatchObject({ type: 3, code: 4, mtu: 1400 });
    expect(r.p.inner!.ipv4).toMatchObject({ src: CLIENT, dst: VIP });
    expect(r.p.inner!.tcp).toMatchObject({ sport: 40000, dport: 80 });
    expect(csumErrors(r.data)).toEqual([]);

    // The client's kernel rejects a reply (VIP -> client) with an ICMP error
    // addressed to the VIP: quote source and outer destination become the backend.
    const reply = await lb.toPod(tcpPkt({ src: B1, dst: CLIENT, sport: 8080, dport: 40000 }, ['ACK'], 'y'));
    const back = eth(MACS).ipv4({ src: CLIENT, dst: VIP })
      .icmpv4({ type: 'time-exceeded', quoteBytes: 28 })
      .payload(reply.data.subarray(14)).build();
    const r2 = await lb.fromPod(back);
    expect(r2.p.ipv4).toMatchObject({ src: CLIENT, dst: B1 });
    expect(r2.p.inner!.ipv4).toMatchObject({ src: B1, dst: CLIENT });
    expect(r2.p.inner!.tcp).toMatchObject({ sport: 8080, dport: 40000 });
    expect(csumErrors(r2.data)).toEqual([]);
  });

  it('a SYN retransmit stays on its backend; a new SYN after the connection was reset picks afresh', async () => {
    await lb.fromPod(tcpPkt(flow(40020), ['SYN']));
    setService(lb.maps, { id: 7, addr: VIP, port: 80, backends: [12] });
    expect(tupleOf((await lb.fromPod(tcpPkt(flow(40020), ['SYN']))).p).dst).toBe(B1);
    await lb.fromPod(tcpPkt(flow(40020), ['RST']));
    expect(tupleOf((await lb.fromPod(tcpPkt(flow(40020), ['SYN']))).p).dst).toBe(B2);
  });

  it('DNATs a packet with IP options (L4 found after the options), checksums right', async () => {
    const pkt = eth(MACS).ipv4({ src: CLIENT, dst: VIP, options: Buffer.from([1, 1, 1, 0]) })
      .tcp({ sport: 40030, dport: 80, flags: ['SYN'] }).build();
    const r = await lb.fromPod(pkt);
    expect(r.p.ipv4!.headerLength).toBe(24);
    expect(tupleOf(r.p)).toEqual({ src: CLIENT, dst: B1, sport: 40030, dport: 8080 });
    expect(csumErrors(r.data)).toEqual([]);
  });
});
