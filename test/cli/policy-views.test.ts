// The pure parts of the policy views: weir_policy4 LPM keys back to port
// ranges, range merging, the LPM match the trace shows, identity meanings.
import { describe, expect, it } from 'vitest';
import { identityMeaning, mergeRanges, policyKeyRange, policyLpmMatch, ruleSetRanges, snapshotView } from '../../control/cli/views.js';
import type * as T from '../../control/datapath/types.gen.js';

const key = (prefixlen: number, identity: number, proto = 0, port = 0): T.Policy4Key => ({ prefixlen, policy_id: 7, identity, proto, pad: 0, port });

describe('policy views', () => {
  it('decodes LPM port prefixes back to ranges', () => {
    expect(policyKeyRange(key(64, 300))).toEqual({ identity: 300, proto: 0, from: 0, to: 65535 });
    expect(policyKeyRange(key(80, 300, 6))).toEqual({ identity: 300, proto: 6, from: 0, to: 65535 });
    expect(policyKeyRange(key(96, 300, 6, 443))).toEqual({ identity: 300, proto: 6, from: 443, to: 443 });
    expect(policyKeyRange(key(92, 300, 6, 8000))).toEqual({ identity: 300, proto: 6, from: 8000, to: 8015 });
    expect(policyKeyRange(key(81, 300, 17, 32768))).toEqual({ identity: 300, proto: 17, from: 32768, to: 65535 });
  });

  it('merges adjacent and overlapping prefixes of one (identity, proto): an endPort range compiled to prefixes reads back whole', () => {
    // 1000-1999 as the compiler would split it into aligned prefixes.
    const prefixes: Array<[number, number]> = [[1000, 93], [1008, 92], [1024, 87], [1536, 88], [1792, 89], [1920, 90], [1984, 92]];
    const ranges = prefixes.map(([port, len]) => policyKeyRange(key(len, 300, 6, port)));
    expect(mergeRanges([...ranges, policyKeyRange(key(96, 300, 17, 53)), policyKeyRange(key(96, 301, 6, 2000))])).toEqual([
      { identity: 300, proto: 6, from: 1000, to: 1999 },
      { identity: 300, proto: 17, from: 53, to: 53 },
      { identity: 301, proto: 6, from: 2000, to: 2000 },
    ]);
    expect(ruleSetRanges({ policies: [], entries: [{ identity: 300, proto: 6, port: 1000, endPort: 1999 }, { identity: 1, proto: 0, port: 0, endPort: 0 }, { identity: 2, proto: 6, port: 0, endPort: 0 }] })).toEqual([
      { identity: 1, proto: 0, from: 0, to: 65535 },
      { identity: 2, proto: 6, from: 0, to: 65535 },
      { identity: 300, proto: 6, from: 1000, to: 1999 },
    ]);
  });

  it('finds the longest matching entry for (policy, identity, proto, port)', () => {
    const v = { flags: 1 };
    const entries: Array<[T.Policy4Key, T.PolicyValue]> = [[key(64, 300), v], [key(92, 300, 6, 8000), v], [key(96, 300, 6, 8007), v], [key(80, 301, 17), v]];
    expect(policyLpmMatch(entries, 7, 300, 6, 8007)?.[0].prefixlen).toBe(96);
    expect(policyLpmMatch(entries, 7, 300, 6, 8001)?.[0].prefixlen).toBe(92);
    expect(policyLpmMatch(entries, 7, 300, 17, 53)?.[0].prefixlen).toBe(64);
    expect(policyLpmMatch(entries, 7, 301, 17, 9)?.[0].prefixlen).toBe(80);
    expect(policyLpmMatch(entries, 7, 301, 6, 9)).toBeUndefined();
    expect(policyLpmMatch(entries, 8, 300, 6, 8007)).toBeUndefined();
  });

  it('says what an identity is, with or without a snapshot', () => {
    const snap = snapshotView(
      {
        version: 1, gen: 1, writtenAt: '', node: 'n', ipcache: [], problems: [], policyIds: {}, endpoints: [],
        identities: [
          { id: 256, kind: 'pod', namespace: 'a', labels: { z: '1', b: '2' }, cidrs: ['10.244.0.0/16'], key: 'k' },
          { id: 257, kind: 'remote-node', cidrs: ['172.18.0.0/24'], key: 'k2' },
        ],
      },
      'p',
    );
    expect(identityMeaning(256, snap)).toBe('ns=a b=2 z=1 in 10.244.0.0/16');
    expect(identityMeaning(257, snap)).toBe('remote-node in 172.18.0.0/24');
    expect(identityMeaning(3, snap)).toBe('remote-node (other nodes)');
    expect(identityMeaning(0)).toBe('any peer');
    expect(identityMeaning(999)).toBe('identity 999');
    expect(identityMeaning(999, snap)).toBe('identity 999 (not in the snapshot: stale?)');
  });
});
