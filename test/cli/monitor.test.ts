// The monitor's event decoding on hand-built struct event bytes (offsets
// from the contract, types.gen.ts EventLayout), without a kernel: every field,
// the words for reasons/directions/matches, the time conversion, and the line.
import { describe, expect, it } from 'vitest';
import * as T from '../../control/datapath/types.gen.js';
import { decodeEvent, formatEvent, type EventContext } from '../../control/cli/commands/monitor.js';
import { snapshotView } from '../../control/cli/views.js';

const F = T.EventLayout.fields;

function eventBytes(e: Partial<Record<keyof typeof F, number | bigint>>): Buffer {
  const b = Buffer.alloc(T.EventLayout.size);
  b.writeBigUInt64LE(BigInt(e.time ?? 0n), F.time.offset);
  b.writeUInt32LE(Number(e.endpoint_id ?? 0), F.endpoint_id.offset);
  b.writeUInt32LE(Number(e.identity ?? 0), F.identity.offset);
  b.writeUInt32BE(Number(e.saddr ?? 0), F.saddr.offset); // __be32
  b.writeUInt32BE(Number(e.daddr ?? 0), F.daddr.offset);
  b.writeUInt16BE(Number(e.sport ?? 0), F.sport.offset); // __be16
  b.writeUInt16BE(Number(e.dport ?? 0), F.dport.offset);
  b.writeUInt8(Number(e.proto ?? 0), F.proto.offset);
  b.writeUInt8(Number(e.type ?? 0), F.type.offset);
  b.writeUInt8(Number(e.reason ?? 0), F.reason.offset);
  b.writeUInt8(Number(e.dir ?? 0), F.dir.offset);
  b.writeUInt32LE(Number(e.ifindex ?? 0), F.ifindex.offset);
  b.writeUInt32LE(Number(e.len ?? 0), F.len.offset);
  b.writeUInt8(Number(e.match ?? 0), F.match.offset);
  b.writeUInt32LE(Number(e.policy_id ?? 0), F.policy_id.offset);
  return b;
}

const ip = (s: string) => s.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;

const snapshot = snapshotView(
  {
    version: 1,
    gen: 3,
    writtenAt: '2026-01-01T00:00:00.000Z',
    node: 'n1',
    identities: [{ id: 300, kind: 'pod', namespace: 'shop', labels: { role: 'db', app: 'pg' }, cidrs: [], key: 'x' }],
    endpoints: [{ endpointId: 12, pod: 'shop/pg-0', ip: '10.244.1.6' }],
    ipcache: [],
    problems: [],
    policyIds: {},
  },
  '/x/policy.msgpack',
);

describe('monitor event decoding', () => {
  const wallMs = Date.parse('2026-11-21T08:30:00.000Z');
  const ctx: EventContext = { snapshot, endpoints: new Map([[12, ip('10.244.1.6')], [13, ip('10.244.1.7')]]), clock: { wallMs, monoNs: 5_000_000_000n } };

  it('decodes a policy-verdict event: every field, names from the snapshot, wall time from the monotonic stamp', () => {
    const data = eventBytes({
      time: 4_750_000_000n, // 250 ms before "now"
      endpoint_id: 12,
      identity: 300,
      saddr: ip('10.244.1.5'),
      daddr: ip('10.244.1.6'),
      sport: 40001,
      dport: 5432,
      proto: 6,
      type: T.WeirEventType.EVENT_POLICY_VERDICT,
      reason: T.WeirReason.REASON_POLICY_DENIED_INGRESS,
      dir: T.WeirDir.DIR_INGRESS,
      ifindex: 7,
      len: 60,
      match: T.PolicyMatch.MATCH_NONE,
      policy_id: 9,
    });
    const e = decodeEvent(data, ctx);
    expect(e).toEqual({
      time: '2026-11-21T08:29:59.750Z',
      type: 'policy-verdict',
      reason: 'policy denied ingress',
      reasonCode: 1,
      dir: 'ingress',
      proto: 'tcp',
      src: '10.244.1.5',
      dst: '10.244.1.6',
      sport: 40001,
      dport: 5432,
      endpointId: 12,
      endpoint: 'shop/pg-0',
      identity: 300,
      peer: 'ns=shop app=pg role=db',
      match: 'no rule matched',
      policyId: 9,
      ifindex: 7,
      len: 60,
    });
    expect(formatEvent(e)).toBe(
      '08:29:59.750  POLICY-VERDICT  policy denied ingress  ingress  10.244.1.5:40001 -> 10.244.1.6:5432 tcp  endpoint 12 (shop/pg-0)  peer 300 (ns=shop app=pg role=db)  match: no rule matched  policy 9',
    );
  });

  it('a drop without an identity or policy: no peer, match or policy in the line; endpoint by address when the snapshot lacks it', () => {
    const e = decodeEvent(
      eventBytes({ time: 5_000_000_000n, endpoint_id: 13, saddr: ip('10.244.1.7'), daddr: ip('10.9.9.9'), proto: 1, type: T.WeirEventType.EVENT_DROP, reason: T.WeirReason.REASON_SPOOFED_SOURCE, dir: T.WeirDir.DIR_EGRESS }),
      ctx,
    );
    expect(e).toMatchObject({ type: 'drop', reason: 'spoofed source address', endpoint: '10.244.1.7', match: null, proto: 'icmp' });
    expect(formatEvent(e)).toBe('08:30:00.000  DROP            spoofed source address  egress  10.244.1.7 -> 10.9.9.9 icmp  endpoint 13 (10.244.1.7)');
  });

  it('unknown enum values stay numbers, and a short record is an error naming its size', () => {
    const e = decodeEvent(eventBytes({ time: 5_000_000_000n, type: 9, reason: 99, dir: 7 }), { ...ctx, snapshot: undefined });
    expect(e).toMatchObject({ type: 'type 9', reason: '99', dir: 'dir 7', endpoint: null });
    expect(() => decodeEvent(Buffer.alloc(20), ctx)).toThrow('weir_events: record of 20 bytes, struct event is 48');
  });
});
