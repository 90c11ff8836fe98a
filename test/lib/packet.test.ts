import { describe, expect, it } from 'vitest';
import {
  bufferToIp,
  buildPacket,
  canonicalIpv6,
  checksumUpdate16,
  checksumUpdate32,
  checksumUpdateBytes,
  checksumsEquivalent,
  describePacket,
  eth,
  fixChecksums,
  formatMac,
  internetChecksum,
  ipToBuffer,
  ipToNumber,
  ipv4,
  ipv6,
  numberToIp,
  packet,
  parseMac,
  parsePacket,
  parseTcpOptions,
  pseudoHeaderSum,
  tcpFlagsFromByte,
  tcpFlagsToByte,
  tcpOptions,
  verifyChecksums,
  type ParseOptions,
  type ParsedPacket,
} from './packet.js';

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const POD = '10.244.1.2';
const SVC = '10.96.0.10';
const V6A = '2001:db8::1';
const V6B = '2001:db8::2';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Independent checksum: sum 32-bit words with BigInt, then fold (RFC 1071 §2(B) "parallel summation"). */
function checksumBy32BitWords(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  const padded = Buffer.concat([all, Buffer.alloc((4 - (all.length % 4)) % 4)]);
  let sum = 0n;
  for (let i = 0; i < padded.length; i += 4) sum += BigInt(padded.readUInt32BE(i));
  while (sum > 0xffffn) sum = (sum & 0xffffn) + (sum >> 16n);
  return Number(~sum & 0xffffn);
}

function expectChecksumsOk(buf: Buffer, opts: ParseOptions = {}): void {
  const r = verifyChecksums(buf, opts);
  expect(r.errors, describePacket(parsePacket(buf, opts))).toEqual([]);
  expect(r.ok).toBe(true);
}

describe('address helpers', () => {
  it('converts IPv4 between string, number and buffer', () => {
    expect(ipToNumber('10.96.0.10')).toBe(0x0a60000a);
    expect(numberToIp(0x0a60000a)).toBe('10.96.0.10');
    expect(numberToIp(0xffffffff)).toBe('255.255.255.255');
    expect(ipToBuffer('192.0.2.1')).toEqual(Buffer.from([192, 0, 2, 1]));
    expect(bufferToIp(Buffer.from([0, 0, 0, 0]))).toBe('0.0.0.0');
    for (const bad of ['1.2.3', '1.2.3.256', '1.2.3.4.5', 'a.b.c.d', '']) expect(() => ipToNumber(bad)).toThrow();
    expect(() => numberToIp(2 ** 32)).toThrow();
  });

  it('parses IPv6 with :: compression and embedded IPv4', () => {
    expect(ipToBuffer('::').equals(Buffer.alloc(16))).toBe(true);
    expect(ipToBuffer('::1').toString('hex')).toBe('00000000000000000000000000000001');
    expect(ipToBuffer('fd00::').toString('hex')).toBe('fd000000000000000000000000000000');
    expect(ipToBuffer('2001:DB8:0:0:8:800:200C:417A').toString('hex')).toBe('20010db80000000000080800200c417a');
    expect(ipToBuffer('::ffff:10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001');
    expect(ipToBuffer('64:ff9b::192.0.2.33').toString('hex')).toBe('0064ff9b0000000000000000c0000221');
    for (const bad of [':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '1:2:3:4:5:6:7', '::ffff:1.2.3']) {
      expect(() => ipToBuffer(bad), bad).toThrow();
    }
  });

  it('formats IPv6 canonically (RFC 5952)', () => {
    expect(canonicalIpv6('2001:0db8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonicalIpv6('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1'); // first of equal runs
    expect(canonicalIpv6('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1'); // single 0 not compressed
    expect(canonicalIpv6('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1'); // longest run wins
    expect(canonicalIpv6('0:0:0:0:0:0:0:0')).toBe('::');
    expect(canonicalIpv6('fe80:0:0:0:0:0:0:0')).toBe('fe80::');
  });

  it('parses and formats MAC addresses', () => {
    expect(parseMac('AA:bb:0c:1:2:ff')).toEqual(Buffer.from([0xaa, 0xbb, 0x0c, 0x01, 0x02, 0xff]));
    expect(parseMac('aa-bb-cc-dd-ee-ff')).toEqual(Buffer.from('aabbccddeeff', 'hex'));
    expect(formatMac(Buffer.from('0200000000ab', 'hex'))).toBe('02:00:00:00:00:ab');
    expect(() => parseMac('aa:bb:cc:dd:ee')).toThrow();
    expect(() => parseMac('aa:bb:cc:dd:ee:fg')).toThrow();
  });

  it('maps TCP flags to bits and back', () => {
    expect(tcpFlagsToByte(['SYN', 'ACK'])).toBe(0x12);
    expect(tcpFlagsFromByte(0x12)).toEqual(['SYN', 'ACK']);
    expect(tcpFlagsFromByte(0xff)).toEqual(['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR']);
  });
});

describe('checksum reference vectors', () => {
  it('RFC 1071 §3 example: sum of 0001 f203 f4f5 f6f7 is ddf2', () => {
    const data = hex('0001 f203 f4f5 f6f7');
    expect(internetChecksum(data)).toBe(~0xddf2 & 0xffff);
    // Over data + its checksum the result is zero.
    const withSum = Buffer.concat([data, Buffer.from([0x22, 0x0d])]);
    expect(internetChecksum(withSum)).toBe(0);
  });

  it('pads odd-length data with a zero byte', () => {
    expect(internetChecksum(hex('0102 03'))).toBe(~(0x0102 + 0x0300) & 0xffff);
  });

  it('builds the well-known IPv4 header 4500 0073 ... b861 byte for byte', () => {
    // 192.168.0.1 -> 192.168.0.199, UDP, TTL 64, DF, total length 0x73 (the example used by Wikipedia).
    const expected = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
    const pkt = ipv4({ src: '192.168.0.1', dst: '192.168.0.199', df: true, protocol: 17 })
      .payload(Buffer.alloc(0x73 - 20))
      .build();
    expect(pkt.subarray(0, 20).toString('hex')).toBe(expected.toString('hex'));
    expect(internetChecksum(expected)).toBe(0);
    expect(parsePacket(pkt, { first: 'ip' }).ipv4?.checksum).toBe(0xb861);
  });

  it('UDP over IPv4, hand-computed: 10.0.0.1:1 -> 10.0.0.2:2, empty payload = 0xebd8', () => {
    // pseudo: 0a00+0001+0a00+0002+0011+0008 = 141c; header: 0001+0002+0008 = 000b; ~(1427) = ebd8
    const pkt = ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }).udp({ sport: 1, dport: 2 }).build();
    expect(pkt.readUInt16BE(20 + 6)).toBe(0xebd8);
    expectChecksumsOk(pkt, { first: 'ip' });
  });

  it('UDP over IPv6, hand-computed: [2001:db8::1]:1 -> [2001:db8::2]:2, empty payload = 0xa466', () => {
    // pseudo: (2001+0db8+0001)+(2001+0db8+0002)+0008+0011 = 5b8e; header 000b; ~(5b99) = a466
    const pkt = ipv6({ src: V6A, dst: V6B }).udp({ sport: 1, dport: 2 }).build();
    expect(pkt.readUInt16BE(40 + 6)).toBe(0xa466);
    expectChecksumsOk(pkt, { first: 'ip' });
  });

  it('ICMP echo request id 1 seq 1, no data, hand-computed = 0xf7fd', () => {
    // 0800 + 0000 + 0001 + 0001 = 0802 -> f7fd
    const pkt = ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }).icmpv4({ type: 'echo-request', id: 1, seq: 1 }).build();
    expect(pkt.subarray(20).toString('hex')).toBe('0800f7fd00010001');
  });

  it('TCP SYN checksum matches an independent 32-bit-word computation', () => {
    const opts = tcpOptions({ mss: 1460, sackPermitted: true, timestamps: [123456, 0], wscale: 7 });
    const pkt = eth({ src: MAC_A, dst: MAC_B })
      .ipv4({ src: POD, dst: SVC, id: 0x1c46, df: true })
      .tcp({ sport: 40000, dport: 80, seq: 0xdeadbeef, flags: ['SYN'], window: 64240, options: opts })
      .build();
    const seg = Buffer.from(pkt.subarray(14 + 20));
    const got = seg.readUInt16BE(16);
    seg.writeUInt16BE(0, 16);
    const pseudo = Buffer.concat([ipToBuffer(POD), ipToBuffer(SVC), Buffer.from([0, 6, 0, seg.length])]);
    expect(got).toBe(checksumBy32BitWords(pseudo, seg));
    expectChecksumsOk(pkt);
  });

  it('TCP over IPv6 with odd payload matches the independent computation', () => {
    const pkt = ipv6({ src: 'fd00:10:244::5', dst: 'fd00:10:96::a' })
      .tcp({ sport: 1234, dport: 443, flags: ['PSH', 'ACK'], seq: 7, ack: 9 })
      .payload('odd!!')
      .build();
    const seg = Buffer.from(pkt.subarray(40));
    const got = seg.readUInt16BE(16);
    seg.writeUInt16BE(0, 16);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(seg.length);
    const pseudo = Buffer.concat([ipToBuffer('fd00:10:244::5'), ipToBuffer('fd00:10:96::a'), len, Buffer.from([0, 0, 0, 6])]);
    expect(got).toBe(checksumBy32BitWords(pseudo, seg));
  });

  it('pseudoHeaderSum agrees with an explicit pseudo-header buffer', () => {
    const explicit = Buffer.concat([ipToBuffer(V6A), ipToBuffer(V6B), hex('0001 0004 0000 003a')]);
    expect(internetChecksum(Buffer.alloc(0), pseudoHeaderSum(V6A, V6B, 58, 0x10004))).toBe(internetChecksum(explicit));
  });
});

describe('incremental checksum update (RFC 1624)', () => {
  it('reproduces the RFC 1624 §4 example (HC=dd2f, m=5555 -> 3285 gives 0000)', () => {
    expect(checksumUpdate16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  it('matches full recomputation for a DNAT rewrite of address and port', () => {
    const before = eth({ src: MAC_A, dst: MAC_B })
      .ipv4({ src: POD, dst: SVC, id: 77 })
      .tcp({ sport: 40000, dport: 80, flags: ['SYN'], seq: 1 })
      .build();
    const BACKEND = '10.244.2.7';
    const after = Buffer.from(before);
    ipToBuffer(BACKEND).copy(after, 14 + 16);
    after.writeUInt16BE(8080, 14 + 20 + 2);

    const ipCsum = checksumUpdateBytes(before.readUInt16BE(14 + 10), ipToBuffer(SVC), ipToBuffer(BACKEND));
    let l4 = checksumUpdate32(before.readUInt16BE(14 + 20 + 16), ipToNumber(SVC), ipToNumber(BACKEND));
    l4 = checksumUpdate16(l4, 80, 8080);
    after.writeUInt16BE(ipCsum, 14 + 10);
    after.writeUInt16BE(l4, 14 + 20 + 16);

    expectChecksumsOk(after);
    const full = fixChecksums(after);
    expect(checksumsEquivalent(full.readUInt16BE(14 + 10), ipCsum)).toBe(true);
    expect(checksumsEquivalent(full.readUInt16BE(14 + 20 + 16), l4)).toBe(true);
  });

  it('agrees with full recomputation over many random rewrites', () => {
    let seed = 0x12345678;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    };
    for (let n = 0; n < 300; n++) {
      const src = numberToIp(rnd());
      const dst = numberToIp(rnd());
      const newDst = numberToIp(rnd());
      const pkt = ipv4({ src, dst, id: rnd() & 0xffff })
        .udp({ sport: rnd() & 0xffff, dport: rnd() & 0xffff })
        .payload(Buffer.from([rnd() & 0xff, rnd() & 0xff, rnd() & 0xff]))
        .build();
      const old = pkt.readUInt16BE(26);
      ipToBuffer(newDst).copy(pkt, 16);
      pkt.writeUInt16BE(checksumUpdate32(pkt.readUInt16BE(10), ipToNumber(dst), ipToNumber(newDst)), 10);
      let c = checksumUpdateBytes(old, ipToBuffer(dst), ipToBuffer(newDst));
      if (c === 0) c = 0xffff; // UDP: a computed 0 is sent as ffff
      pkt.writeUInt16BE(c, 26);
      const r = verifyChecksums(pkt, { first: 'ip' });
      expect(r.errors).toEqual([]);
      const full = fixChecksums(pkt, { first: 'ip' });
      expect(checksumsEquivalent(full.readUInt16BE(10), pkt.readUInt16BE(10))).toBe(true);
      expect(checksumsEquivalent(full.readUInt16BE(26), c)).toBe(true);
    }
  });
});

describe('build -> parse round trips', () => {
  it('eth / ipv4 / tcp with options and payload', () => {
    const opts = tcpOptions({ mss: 1400, wscale: 7, sackPermitted: true, timestamps: [1, 2] });
    const pkt = eth({ src: MAC_A, dst: MAC_B })
      .ipv4({ src: POD, dst: SVC, ttl: 63, id: 4242, tos: 0xb8, df: true })
      .tcp({ sport: 40000, dport: 80, seq: 1000, ack: 2000, flags: ['PSH', 'ACK'], window: 501, options: opts, urgentPointer: 3 })
      .payload('GET / HTTP/1.1\r\n\r\n')
      .build();
    const p = parsePacket(pkt);
    expect(p.layers.map((l) => l.kind)).toEqual(['eth', 'ipv4', 'tcp']);
    expect(p.eth).toMatchObject({ src: MAC_A, dst: MAC_B, type: 0x0800, vlan: [], offset: 0, headerLength: 14 });
    expect(p.ipv4).toMatchObject({
      version: 4, ihl: 5, tos: 0xb8, dscp: 46, ecn: 0, id: 4242, ttl: 63, protocol: 6, df: true, mf: false,
      fragOffset: 0, src: POD, dst: SVC, totalLength: pkt.length - 14, offset: 14,
    });
    expect(p.tcp).toMatchObject({
      sport: 40000, dport: 80, seq: 1000, ack: 2000, flags: ['PSH', 'ACK'], window: 501, urgentPointer: 3,
      dataOffset: 5 + Math.ceil(opts.length / 4),
    });
    expect(parseTcpOptions(p.tcp!.options).filter((o) => o.name !== 'nop' && o.name !== 'eol')).toMatchObject([
      { name: 'mss', mss: 1400 },
      { name: 'sack-permitted' },
      { name: 'timestamps', timestamps: [1, 2] },
      { name: 'wscale', wscale: 7 },
    ]);
    expect(p.payload.toString()).toBe('GET / HTTP/1.1\r\n\r\n');
    expect(p.truncated).toBe(false);
    expect(p.notes).toEqual([]);
    expectChecksumsOk(pkt);
    expect(describePacket(p)).toContain('tcp 40000>80 [PSH,ACK]');
  });

  it('eth with 802.1Q tag / ipv4 / udp', () => {
    const pkt = eth({ src: MAC_A, dst: MAC_B, vlan: { id: 100, pcp: 5, dei: true } })
      .ipv4({ src: '192.0.2.1', dst: '192.0.2.2' })
      .udp({ sport: 5353, dport: 53 })
      .payload(Buffer.from([1, 2, 3]))
      .build();
    expect(pkt.readUInt16BE(12)).toBe(0x8100);
    const p = parsePacket(pkt);
    expect(p.eth).toMatchObject({ type: 0x0800, headerLength: 18, vlan: [{ tpid: 0x8100, id: 100, pcp: 5, dei: true }] });
    expect(p.udp).toMatchObject({ sport: 5353, dport: 53, length: 11 });
    expect(p.payload).toEqual(Buffer.from([1, 2, 3]));
    expectChecksumsOk(pkt);
  });

  it('ipv4 options, fragments and Ethernet padding', () => {
    const pkt = eth({ src: MAC_A, dst: MAC_B, padToMin: true })
      .ipv4({ src: '10.99.0.1', dst: '10.99.0.2', options: Buffer.from([0x94, 0x04, 0, 0, 1]), mf: true, id: 9 })
      .udp({ sport: 1, dport: 2 })
      .build();
    expect(pkt.length).toBe(60);
    const p = parsePacket(pkt);
    expect(p.ipv4).toMatchObject({ ihl: 7, headerLength: 28, mf: true, options: Buffer.from([0x94, 4, 0, 0, 1, 0, 0, 0]) });
    expect(p.udp?.length).toBe(8);
    expect(p.payload.length).toBe(0); // padding excluded by IP total length
    expectChecksumsOk(pkt);

    const frag2 = ipv4({ src: '10.99.0.1', dst: '10.99.0.2', fragOffset: 185, protocol: 17 }).payload('rest').build();
    const f = parsePacket(frag2, { first: 'ip' });
    expect(f.ipv4?.fragOffset).toBe(185);
    expect(f.udp).toBeUndefined();
    expect(f.payload.toString()).toBe('rest');
    expectChecksumsOk(frag2, { first: 'ip' });
  });

  it('eth / ipv6 / tcp and udp', () => {
    const base = eth({ src: MAC_A, dst: MAC_B }).ipv6({ src: 'fd00::a', dst: 'fd00::b', hopLimit: 5, flowLabel: 0xabcde, trafficClass: 0x20 });
    const t = parsePacket(base.tcp({ sport: 1, dport: 2, flags: ['RST'] }).build());
    expect(t.eth?.type).toBe(0x86dd);
    expect(t.ipv6).toMatchObject({
      version: 6, src: 'fd00::a', dst: 'fd00::b', hopLimit: 5, flowLabel: 0xabcde, trafficClass: 0x20, nextHeader: 6, payloadLength: 20,
    });
    expect(t.tcp?.flags).toEqual(['RST']);
    const u = base.udp({ sport: 3, dport: 4 }).payload('x').build();
    expect(parsePacket(u).udp).toMatchObject({ sport: 3, dport: 4, length: 9 });
    expectChecksumsOk(u);
  });

  it('icmpv4 echo request and reply', () => {
    const req = eth({ src: MAC_A, dst: MAC_B })
      .ipv4({ src: '10.99.0.1', dst: '10.99.0.2' })
      .icmpv4({ type: 'echo-request', id: 0x1234, seq: 7 })
      .payload('pingdata')
      .build();
    const p = parsePacket(req);
    expect(p.ipv4?.protocol).toBe(1);
    expect(p.icmpv4).toMatchObject({ type: 8, code: 0, typeName: 'echo-request', id: 0x1234, seq: 7, isError: false });
    expect(p.payload.toString()).toBe('pingdata');
    expect(p.inner).toBeUndefined();
    expectChecksumsOk(req);
    const rep = ipv4({ src: '10.99.0.2', dst: '10.99.0.1' }).icmpv4({ type: 'echo-reply', id: 1, seq: 2 }).build();
    expect(parsePacket(rep, { first: 'ip' }).icmpv4).toMatchObject({ type: 0, typeName: 'echo-reply', id: 1, seq: 2 });
  });

  it('icmpv4 port unreachable quoting the original UDP datagram', () => {
    const orig = ipv4({ src: POD, dst: SVC, id: 5 }).udp({ sport: 33333, dport: 53 }).payload('query');
    const pkt = eth({ src: MAC_B, dst: MAC_A })
      .ipv4({ src: SVC, dst: POD })
      .icmpv4({ type: 'dest-unreachable', code: 'port-unreachable' })
      .ipv4({ src: POD, dst: SVC, id: 5 })
      .udp({ sport: 33333, dport: 53 })
      .payload('query')
      .build();
    const p = parsePacket(pkt);
    expect(p.icmpv4).toMatchObject({ type: 3, code: 3, isError: true, typeName: 'dest-unreachable' });
    expect(p.payload.equals(orig.build())).toBe(true);
    expect(p.inner?.quoted).toBe(true);
    expect(p.inner?.truncated).toBe(false);
    expect(p.inner?.ipv4).toMatchObject({ src: POD, dst: SVC, id: 5 });
    expect(p.inner?.udp).toMatchObject({ sport: 33333, dport: 53 });
    expect(p.inner?.payload.toString()).toBe('query');
    const r = verifyChecksums(pkt);
    expect(r.errors).toEqual([]);
    expect(r.checked).toEqual(['ipv4', 'icmpv4', 'inner.ipv4', 'inner.udp']);
  });

  it('icmpv4 frag-needed with MTU quoting a truncated TCP segment', () => {
    const pkt = ipv4({ src: '10.99.0.254', dst: POD })
      .icmpv4({ type: 'dest-unreachable', code: 'frag-needed', mtu: 1450, quoteBytes: 28 })
      .ipv4({ src: POD, dst: SVC, df: true })
      .tcp({ sport: 40000, dport: 80, seq: 0xabcdef01, flags: ['ACK'] })
      .payload(Buffer.alloc(1460, 0x61))
      .build();
    expect(pkt.length).toBe(20 + 8 + 28);
    const p = parsePacket(pkt, { first: 'ip' });
    expect(p.icmpv4).toMatchObject({ type: 3, code: 4, mtu: 1450 });
    expect(p.truncated).toBe(false);
    const inner = p.inner!;
    expect(inner.truncated).toBe(true);
    expect(inner.notes).toEqual([]);
    expect(inner.ipv4).toMatchObject({ src: POD, dst: SVC, totalLength: 20 + 20 + 1460, df: true });
    expect(inner.tcp).toMatchObject({ sport: 40000, dport: 80, seq: 0xabcdef01, truncated: true });
    // The quoted TCP checksum cannot be verified; the quoted IP header can.
    const r = verifyChecksums(pkt, { first: 'ip' });
    expect(r.errors).toEqual([]);
    expect(r.checked).toEqual(['ipv4', 'icmpv4', 'inner.ipv4']);
    expect(describePacket(p)).toContain('mtu 1450');
  });

  it('icmpv6 echo, dest unreachable and packet too big', () => {
    const echo = ipv6({ src: V6A, dst: V6B }).icmpv6({ type: 'echo-request', id: 9, seq: 10 }).payload('hi').build();
    const e = parsePacket(echo, { first: 'ip' });
    expect(e.ipv6?.nextHeader).toBe(58);
    expect(e.icmpv6).toMatchObject({ type: 128, id: 9, seq: 10, typeName: 'echo-request' });
    expectChecksumsOk(echo, { first: 'ip' });
    const inner = ipv6({ src: V6B, dst: V6A }).udp({ sport: 5000, dport: 6000 }).payload('data');
    const unreach = eth({ src: MAC_A, dst: MAC_B })
      .ipv6({ src: V6A, dst: V6B })
      .icmpv6({ type: 'dest-unreachable', code: 'port-unreachable' })
      .ipv6({ src: V6B, dst: V6A })
      .udp({ sport: 5000, dport: 6000 })
      .payload('data')
      .build();
    const u = parsePacket(unreach);
    expect(u.icmpv6).toMatchObject({ type: 1, code: 4, isError: true });
    expect(u.inner?.udp).toMatchObject({ sport: 5000, dport: 6000 });
    expect(u.payload.equals(inner.build())).toBe(true);
    expect(verifyChecksums(unreach).checked).toEqual(['icmpv6', 'inner.udp']);
    expectChecksumsOk(unreach);

    const ptb = ipv6({ src: V6A, dst: V6B })
      .icmpv6({ type: 'packet-too-big', mtu: 1280 })
      .ipv6({ src: V6B, dst: V6A })
      .tcp({ sport: 1, dport: 2 })
      .payload(Buffer.alloc(1400))
      .truncate(1280)
      .build();
    // Truncating the outer packet makes its own length fields lie: flagged.
    const pp = parsePacket(ptb, { first: 'ip' });
    expect(pp.icmpv6).toMatchObject({ type: 2, mtu: 1280, typeName: 'packet-too-big' });
    expect(pp.truncated).toBe(true);
    expect(verifyChecksums(ptb, { first: 'ip' }).ok).toBe(false);
    const ptbOk = ipv6({ src: V6A, dst: V6B })
      .icmpv6({ type: 'packet-too-big', mtu: 1280, quoteBytes: 1280 - 48 })
      .ipv6({ src: V6B, dst: V6A })
      .tcp({ sport: 1, dport: 2 })
      .payload(Buffer.alloc(1400))
      .build();
    expect(ptbOk.length).toBe(1280);
    const q = parsePacket(ptbOk, { first: 'ip' });
    expect(q.inner?.tcp).toMatchObject({ sport: 1, dport: 2 });
    expect(q.inner?.truncated).toBe(true);
    expect(verifyChecksums(ptbOk, { first: 'ip' }).errors).toEqual([]);
  });

  it('VXLAN over IPv4 (default port 8472) with an inner TCP frame', () => {
    const pkt = eth({ src: MAC_A, dst: MAC_B })
      .ipv4({ src: '192.0.2.10', dst: '192.0.2.20', df: true })
      .vxlan({ vni: 0xabcdef, sport: 51000 })
      .eth({ src: '0a:00:00:00:00:01', dst: '0a:00:00:00:00:02' })
      .ipv4({ src: POD, dst: '10.244.2.9' })
      .tcp({ sport: 40000, dport: 8080, flags: ['SYN'] })
      .build();
    expect(pkt.length).toBe(14 + 20 + 8 + 8 + 14 + 20 + 20);
    // RFC 7348 header: flags 0x08, 24 reserved bits, VNI, 8 reserved bits.
    expect(pkt.subarray(42, 50).toString('hex')).toBe('08000000abcdef00');
    const p = parsePacket(pkt);
    expect(p.udp).toMatchObject({ sport: 51000, dport: 8472, length: 8 + 8 + 54 });
    expect(p.vxlan).toMatchObject({ vni: 0xabcdef, flags: 8, vniValid: true, reserved1: 0, reserved2: 0 });
    expect(p.inner?.eth?.dst).toBe('0a:00:00:00:00:02');
    expect(p.inner?.ipv4?.dst).toBe('10.244.2.9');
    expect(p.inner?.tcp).toMatchObject({ dport: 8080, flags: ['SYN'] });
    expect(p.inner?.quoted).toBe(false);
    const r = verifyChecksums(pkt);
    expect(r.errors).toEqual([]);
    expect(r.checked).toEqual(['ipv4', 'udp', 'inner.ipv4', 'inner.tcp']);
    expect(describePacket(p)).toMatch(/vxlan vni 11259375 \|\| inner: eth/);
  });

  it('VXLAN on 4789 over IPv6, zero outer UDP checksum flagged on v6', () => {
    const build = (zero: boolean): Buffer =>
      packet()
        .ipv6({ src: V6A, dst: V6B })
        .udp({ sport: 1000, dport: 4789, zeroChecksum: zero })
        .vxlan({ vni: 42 })
        .eth({ src: MAC_A, dst: MAC_B })
        .ipv6({ src: 'fd00::1', dst: 'fd00::2' })
        .icmpv6({ type: 'echo-reply', id: 1, seq: 1 })
        .build();
    const p = parsePacket(build(false), { first: 'ipv6' });
    expect(p.vxlan?.vni).toBe(42);
    expect(p.inner?.icmpv6).toMatchObject({ type: 129 });
    expectChecksumsOk(build(false), { first: 'ipv6' });
    const r = verifyChecksums(build(true), { first: 'ipv6' });
    expect(r.errors).toEqual(['udp: checksum 0 is not allowed over IPv6']);
    expect(r.checked).toEqual(['udp', 'inner.icmpv6']);
  });

  it('buildPacket accepts plain layer specs', () => {
    const a = buildPacket([
      { kind: 'eth', src: MAC_A, dst: MAC_B },
      { kind: 'ipv4', src: POD, dst: SVC },
      { kind: 'udp', sport: 1, dport: 2 },
      { kind: 'raw', data: 'abc' },
    ]);
    const b = eth({ src: MAC_A, dst: MAC_B }).ipv4({ src: POD, dst: SVC }).udp({ sport: 1, dport: 2 }).payload('abc').build();
    expect(a.equals(b)).toBe(true);
  });

  it('builders are immutable and share prefixes', () => {
    const base = eth({ src: MAC_A, dst: MAC_B }).ipv4({ src: POD, dst: SVC });
    const t = base.tcp({ sport: 1, dport: 2 });
    const u = base.udp({ sport: 1, dport: 2 });
    expect(base.layers.length).toBe(2);
    expect(parsePacket(t.build()).tcp).toBeDefined();
    expect(parsePacket(u.build()).udp).toBeDefined();
  });

  it('rejects impossible inputs clearly', () => {
    expect(() => eth({ src: MAC_A, dst: MAC_B }).payload('x').build()).toThrow(/ethertype/);
    expect(() => ipv4({ src: POD, dst: SVC }).payload('x').build()).toThrow(/protocol/);
    expect(() => ipv4({ src: POD, dst: SVC }).tcp({ sport: 70000, dport: 1 }).build()).toThrow(/sport/);
    expect(() => packet().vxlan({ vni: 1 << 24 }).build()).toThrow(/vni/);
    // explicit ethertype / protocol work for anything
    const arp = eth({ src: MAC_A, dst: 'ff:ff:ff:ff:ff:ff', type: 0x0806 }).payload(Buffer.alloc(28)).build();
    const pa = parsePacket(arp);
    expect(pa.eth?.type).toBe(0x0806);
    expect(pa.payload.length).toBe(28);
  });
});

describe('verifyChecksums on broken packets', () => {
  const tcpPkt = (o: { ipBad?: boolean; tcpBad?: boolean } = {}): Buffer =>
    eth({ src: MAC_A, dst: MAC_B })
      .ipv4({ src: POD, dst: SVC, badChecksum: o.ipBad })
      .tcp({ sport: 1, dport: 2, badChecksum: o.tcpBad })
      .payload('data')
      .build();

  it('flags a bad IPv4 header checksum and reports the expected value', () => {
    const good = tcpPkt();
    const r = verifyChecksums(tcpPkt({ ipBad: true }));
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual([
      `ipv4: header checksum 0x${(good.readUInt16BE(24) ^ 1).toString(16).padStart(4, '0')} is wrong (expected 0x${good.readUInt16BE(24).toString(16).padStart(4, '0')})`,
    ]);
  });

  it('flags a bad TCP checksum only', () => {
    const r = verifyChecksums(tcpPkt({ tcpBad: true }));
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^tcp: checksum 0x[0-9a-f]{4} is wrong/);
  });

  it('flags a flipped payload bit', () => {
    const pkt = tcpPkt();
    pkt[pkt.length - 1] ^= 0x10;
    expect(verifyChecksums(pkt).errors[0]).toMatch(/^tcp:/);
  });

  it('explicit checksum values are written as given', () => {
    const pkt = ipv4({ src: POD, dst: SVC, checksum: 0x1234 }).udp({ sport: 1, dport: 2, checksum: 0xbeef }).build();
    const p = parsePacket(pkt, { first: 'ip' });
    expect(p.ipv4?.checksum).toBe(0x1234);
    expect(p.udp?.checksum).toBe(0xbeef);
    expect(verifyChecksums(pkt, { first: 'ip' }).errors).toHaveLength(2);
    expect(verifyChecksums(fixChecksums(pkt, { first: 'ip' }), { first: 'ip' }).ok).toBe(true);
  });

  it('UDP checksum 0: fine over IPv4, an error over IPv6', () => {
    const v4 = ipv4({ src: POD, dst: SVC }).udp({ sport: 1, dport: 2, zeroChecksum: true }).payload('x').build();
    expect(parsePacket(v4, { first: 'ip' }).udp?.checksum).toBe(0);
    expectChecksumsOk(Buffer.concat([hex('020000000000 020000000001 0800'), v4]));
    const v6 = ipv6({ src: V6A, dst: V6B }).udp({ sport: 1, dport: 2, zeroChecksum: true }).payload('x').build();
    const r = verifyChecksums(v6, { first: 'ip' });
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual(['udp: checksum 0 is not allowed over IPv6']);
  });

  it('badChecksum on UDP never produces 0 (which would mean "no checksum")', () => {
    for (let sport = 0; sport < 2000; sport++) {
      const pkt = ipv4({ src: POD, dst: SVC }).udp({ sport, dport: 53, badChecksum: true }).build();
      const c = pkt.readUInt16BE(26);
      expect(c).not.toBe(0);
      expect(verifyChecksums(pkt, { first: 'ip' }).ok).toBe(false);
    }
  });

  it('flags bad ICMPv4 and ICMPv6 checksums', () => {
    const v4 = ipv4({ src: POD, dst: SVC }).icmpv4({ type: 'echo-request', id: 1, seq: 1, badChecksum: true }).build();
    expect(verifyChecksums(v4, { first: 'ip' }).errors[0]).toMatch(/^icmpv4: checksum/);
    const v6 = ipv6({ src: V6A, dst: V6B }).icmpv6({ type: 'echo-request', id: 1, seq: 1, badChecksum: true }).build();
    expect(verifyChecksums(v6, { first: 'ip' }).errors[0]).toMatch(/^icmpv6: checksum/);
    // ICMPv6 includes the pseudo-header: moving it to other addresses breaks it.
    const good = ipv6({ src: V6A, dst: V6B }).icmpv6({ type: 'echo-request', id: 1, seq: 1 }).build();
    ipToBuffer('2001:db8::99').copy(good, 24);
    expect(verifyChecksums(good, { first: 'ip' }).ok).toBe(false);
  });

  it('finds corruption inside a VXLAN inner frame and names the path', () => {
    const pkt = eth({ src: MAC_A, dst: MAC_B })
      .ipv4({ src: '192.0.2.10', dst: '192.0.2.20' })
      .vxlan({ vni: 7, udpZeroChecksum: true })
      .eth({ src: MAC_A, dst: MAC_B })
      .ipv4({ src: POD, dst: SVC, badChecksum: true })
      .udp({ sport: 1, dport: 2, badChecksum: true })
      .build();
    const r = verifyChecksums(pkt);
    expect(r.errors.map((e) => e.split(':')[0])).toEqual(['inner.ipv4', 'inner.udp']);
    expect(r.checked).toEqual(['ipv4', 'udp', 'inner.ipv4', 'inner.udp']);
    expect(verifyChecksums(fixChecksums(pkt)).ok).toBe(true);
  });

  it('finds corruption inside an ICMP-quoted IP header', () => {
    const pkt = ipv4({ src: SVC, dst: POD })
      .icmpv4({ type: 'time-exceeded', quoteBytes: 28 })
      .ipv4({ src: POD, dst: SVC, ttl: 1, badChecksum: true })
      .udp({ sport: 1, dport: 33434 })
      .payload(Buffer.alloc(32))
      .build();
    const p = parsePacket(pkt, { first: 'ip' });
    expect(p.icmpv4).toMatchObject({ type: 11, typeName: 'time-exceeded', isError: true });
    expect(verifyChecksums(pkt, { first: 'ip' }).errors.map((e) => e.split(':')[0])).toEqual(['inner.ipv4']);
  });

  it('reports truncated packets and wrong lengths', () => {
    const full = tcpPkt();
    const cut = eth({ src: MAC_A, dst: MAC_B }).ipv4({ src: POD, dst: SVC }).tcp({ sport: 1, dport: 2 }).payload('data').truncate(full.length - 2).build();
    expect(cut.length).toBe(full.length - 2);
    const p = parsePacket(cut);
    expect(p.truncated).toBe(true);
    expect(p.notes.join()).toMatch(/ipv4: length says/);
    expect(verifyChecksums(cut).errors.join()).toMatch(/tcp: packet truncated \(2 bytes missing\)/);

    // Header cut in the middle: zero-filled fields, flagged.
    const hdrCut = full.subarray(0, 14 + 10);
    const h = parsePacket(hdrCut);
    expect(h.ipv4?.truncated).toBe(true);
    expect(h.tcp).toBeUndefined();
    expect(verifyChecksums(hdrCut).ok).toBe(false);
    const v6Cut = eth({ src: MAC_A, dst: MAC_B }).ipv6({ src: V6A, dst: V6B }).udp({ sport: 1, dport: 2 }).truncate(14 + 30).build();
    expect(verifyChecksums(v6Cut).errors).toEqual(['ipv6: header truncated, checksums not verifiable']);
    expect(verifyChecksums(Buffer.from([1, 2, 3])).errors).toEqual(['eth: header truncated, checksums not verifiable']);

    const badLen = ipv4({ src: POD, dst: SVC }).udp({ sport: 1, dport: 2, length: 100 }).payload('x').build();
    const b = parsePacket(badLen, { first: 'ip' });
    expect(b.notes.join()).toMatch(/udp: length 100 disagrees/);
    expect(verifyChecksums(badLen, { first: 'ip' }).ok).toBe(false);

    const badTot = ipv4({ src: POD, dst: SVC, totalLength: 10 }).udp({ sport: 1, dport: 2 }).build();
    expect(parsePacket(badTot, { first: 'ip' }).notes.join()).toMatch(/total length 10 < header length 20/);

    const badIhl = ipv4({ src: POD, dst: SVC, ihl: 3 }).udp({ sport: 1, dport: 2 }).build();
    const bi = parsePacket(badIhl, { first: 'ip' });
    expect(bi.notes).toContain('ipv4: bad IHL 3');
    expect(bi.udp).toBeUndefined();
  });

  it('never throws on garbage input', () => {
    let seed = 99;
    for (let i = 0; i < 500; i++) {
      const len = i % 120;
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        b[j] = seed >>> 24;
      }
      if (len > 14 && i % 2 === 0) b.writeUInt16BE(i % 4 === 0 ? 0x0800 : 0x86dd, 12);
      if (len > 14 && i % 4 === 0) b[14] = 0x45;
      const p: ParsedPacket = parsePacket(b);
      expect(p.layers.length).toBeGreaterThanOrEqual(0);
      expect(() => verifyChecksums(b)).not.toThrow();
      expect(() => describePacket(p)).not.toThrow();
    }
  });
});
