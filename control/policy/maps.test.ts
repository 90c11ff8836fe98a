import { describe, expect, it } from 'vitest';
import { PolicyFlags } from '../datapath/types.gen.js';
import { contentOf, contentSlots, encodePolicy, entrySlots, formatPrefix, parsePrefix, policyKey, ruleSetContent, slotOfKey, unionContent } from './maps.js';
import type { CompiledPolicy, EndpointPolicy, RuleSet } from './types.js';

const ALLOW = PolicyFlags.POLICY_F_ALLOW;
const L4 = PolicyFlags.POLICY_F_L4;

/** Whether the slots allow (identity, proto, port) as the datapath's LPM lookup would (exact identity only). */
function allows(content: string, identity: number, proto: number, port: number): boolean {
  return contentSlots(content).some((s) => {
    if (s.identity !== identity) return false;
    if (s.prefixlen === 64) return true;
    if (s.proto !== proto) return false;
    const bits = s.prefixlen - 80;
    return bits === 0 || port >>> (16 - bits) === s.port >>> (16 - bits);
  });
}

describe('ipcache prefixes', () => {
  it('parses, clears host bits and formats', () => {
    expect(parsePrefix('10.244.1.7/32')).toEqual({ prefixlen: 32, addr: 0x0af40107 });
    expect(parsePrefix('10.244.1.7/16')).toEqual({ prefixlen: 16, addr: 0x0af40000 });
    expect(parsePrefix('0.0.0.0/0')).toEqual({ prefixlen: 0, addr: 0 });
    expect(parsePrefix('192.168.1.1')).toEqual({ prefixlen: 32, addr: 0xc0a80101 });
    expect(formatPrefix(parsePrefix('172.16.5.9/12'))).toBe('172.16.0.0/12');
  });
  it('names the bad prefix', () => {
    expect(() => parsePrefix('10.0.0.256/32')).toThrow(/10\.0\.0\.256\/32/);
    expect(() => parsePrefix('10.0.0/8')).toThrow(/a\.b\.c\.d\/len/);
    expect(() => parsePrefix('10.0.0.0/33')).toThrow(/10\.0\.0\.0\/33/);
  });
});

describe('policy entries as LPM slots', () => {
  it('any protocol: prefixlen 64, no L4 flag', () => {
    expect(entrySlots({ identity: 300, proto: 0, port: 0, endPort: 0 })).toEqual([{ identity: 300, proto: 0, prefixlen: 64, port: 0, flags: ALLOW }]);
  });
  it('a protocol, any port: prefixlen 80', () => {
    expect(entrySlots({ identity: 0, proto: 17, port: 0, endPort: 0 })).toEqual([{ identity: 0, proto: 17, prefixlen: 80, port: 0, flags: ALLOW | L4 }]);
  });
  it('one port: prefixlen 96', () => {
    expect(entrySlots({ identity: 1, proto: 6, port: 8080, endPort: 8080 })).toEqual([{ identity: 1, proto: 6, prefixlen: 96, port: 8080, flags: ALLOW | L4 }]);
  });
  it('a range becomes an exact prefix cover', () => {
    for (const [lo, hi] of [
      [80, 90],
      [1, 65535],
      [1024, 2047],
      [32000, 32768],
      [65535, 65535],
    ]) {
      const c = contentOf(entrySlots({ identity: 5, proto: 6, port: lo, endPort: hi }));
      for (const p of [lo - 1, lo, lo + 1, Math.floor((lo + hi) / 2), hi - 1, hi, hi + 1]) {
        if (p < 0 || p > 65535) continue;
        expect(allows(c, 5, 6, p), `${lo}-${hi} port ${p}`).toBe(p >= lo && p <= hi);
      }
      expect(allows(c, 5, 17, lo), 'other protocol').toBe(false);
      expect(allows(c, 6, 6, lo), 'other identity').toBe(false);
    }
    expect(entrySlots({ identity: 5, proto: 6, port: 80, endPort: 90 }).map((s) => s.prefixlen)).toEqual([93, 95, 96]) // 80-87, 88-89, 90;
  });
});

describe('content of a rule set', () => {
  const rs = (entries: RuleSet['entries']): RuleSet => ({ entries, policies: ['ns/p'] });
  it('is the same for rule sets that encode to the same keys, whatever their order or policy names', () => {
    const a = rs([
      { identity: 1, proto: 0, port: 0, endPort: 0 },
      { identity: 300, proto: 6, port: 80, endPort: 81 },
    ]);
    const b: RuleSet = {
      entries: [
        { identity: 300, proto: 6, port: 81, endPort: 81 },
        { identity: 300, proto: 6, port: 80, endPort: 80 },
        { identity: 1, proto: 0, port: 0, endPort: 0 },
      ],
      policies: ['other/q'],
    };
    expect(ruleSetContent(a)).toBe(ruleSetContent(b));
    expect(ruleSetContent(a)).not.toBe(ruleSetContent(rs([{ identity: 1, proto: 0, port: 0, endPort: 0 }])));
    expect(ruleSetContent(rs([]))).toBe('');
  });
  it('round-trips through policy4 keys (what recovery reads from the pins)', () => {
    const c = ruleSetContent(rs([{ identity: 301, proto: 17, port: 5000, endPort: 5100 }, { identity: 0, proto: 6, port: 0, endPort: 0 }]));
    const back = contentOf(contentSlots(c).map((s) => slotOfKey(policyKey(42, s), { flags: s.flags })));
    expect(back).toBe(c);
    expect(policyKey(42, contentSlots(c)[0]).policy_id).toBe(42);
  });
  it('union holds both', () => {
    const a = ruleSetContent(rs([{ identity: 300, proto: 6, port: 80, endPort: 80 }]));
    const b = ruleSetContent(rs([{ identity: 301, proto: 6, port: 443, endPort: 443 }]));
    const u = unionContent(a, b);
    expect(allows(u, 300, 6, 80) && allows(u, 301, 6, 443)).toBe(true);
    expect(unionContent(a, a)).toBe(a);
    expect(unionContent('', b)).toBe(b);
  });
});

describe('encodePolicy', () => {
  it('normalizes ipcache prefixes and shares content between endpoints', () => {
    const ing: RuleSet = { entries: [{ identity: 1, proto: 0, port: 0, endPort: 0 }], policies: ['a/deny'] };
    const ep = (id: number, e: Partial<EndpointPolicy>): [number, EndpointPolicy] => [id, { endpointId: id, pod: `a/p${id}`, ip: `10.244.0.${id - 250}`, ...e }];
    const c: CompiledPolicy = {
      identities: new Map(),
      ipcache: new Map([
        ['10.244.0.7/32', 300],
        ['192.168.7.9/24', 301],
      ]),
      endpoints: new Map([ep(256, { ingress: ing }), ep(257, { ingress: { ...ing, policies: ['a/other'] } }), ep(258, {}), ep(259, { egress: ing })]),
      problems: [],
    };
    const d = encodePolicy(c);
    expect([...d.ipcache]).toEqual([
      ['10.244.0.7/32', 300],
      ['192.168.7.0/24', 301],
    ]);
    expect(d.endpoints.get(256)).toEqual({ ingress: ruleSetContent(ing) });
    expect(d.endpoints.get(257)).toEqual(d.endpoints.get(256));
    expect(d.endpoints.has(258)).toBe(false);
    expect(d.endpoints.get(259)).toEqual({ egress: ruleSetContent(ing) });
  });
});
