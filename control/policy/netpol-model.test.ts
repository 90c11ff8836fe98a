// Model tests after the upstream sig-network NetworkPolicy e2e cases
// (kubernetes test/e2e/network/netpol/network_policy.go): the same x/y/z ×
// a/b/c cluster, policies of the same shape, and whole truth tables probed
// through evaluate.ts (egress of the client AND ingress of the server).
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { MemoryIdentityAllocator } from './identity.js';
import { verdict } from './evaluate.js';
import {
  compileModel,
  diffMatrix,
  endpointId,
  GATEWAY_IP,
  podIp,
  policy,
  probe,
  Reachability,
  REMOTE_NODE_IP,
  SELF_NODE_IP,
  TCP,
  UDP,
  type ModelOptions,
} from './testmodel.js';
import type { CompiledPolicy } from './types.js';

type Case = [port: number, proto: number, expected: Reachability];

function check(compiled: CompiledPolicy, cases: Case[]) {
  const errs = cases
    .map(([port, proto, r]) => diffMatrix(r.m, probe(compiled, port, proto), `port ${port}/${proto === TCP ? 'TCP' : 'UDP'}`))
    .filter((e): e is string => !!e);
  if (errs.length) console.log(errs.join('\n\n'));
  expect(errs).toEqual([]);
}

/** The same expectation on 80 and 81 over TCP and UDP. */
const everywhere = (r: Reachability): Case[] => [
  [80, TCP, r],
  [81, TCP, r],
  [80, UDP, r],
  [81, UDP, r],
];

function run(policies: V1NetworkPolicy[], cases: Case[], opts?: ModelOptions) {
  const compiled = compileModel(policies, opts);
  check(compiled, cases);
  return compiled;
}

const denyIngress = (ns = 'x') => policy(ns, 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
const denyEgress = (ns = 'x') => policy(ns, 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] });

describe('netpol model (upstream e2e cases)', () => {
  it('no policies: everything allowed', () => {
    run([], everywhere(new Reachability(true)));
  });

  it("should support a 'default-deny-ingress' policy", () => {
    run([denyIngress()], everywhere(new Reachability(true).expectAllIngress('x/*', false)));
  });

  it("should support a 'default-deny-egress' policy", () => {
    run([denyEgress()], everywhere(new Reachability(true).expectAllEgress('x/*', false)));
  });

  it("should support a 'default-deny-all' policy", () => {
    const p = policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    run([p], everywhere(new Reachability(true).expectAllIngress('x/*', false).expectAllEgress('x/*', false)));
  });

  it('empty ingress rules list = deny (same as no rules)', () => {
    const p = policy('x', 'empty-rules', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [] });
    run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false)));
  });

  it("should support an 'allow-all' policy (ingress and egress)", () => {
    const i = policy('x', 'allow-all-in', { podSelector: {}, ingress: [{}] });
    const e = policy('x', 'allow-all-out', { podSelector: {}, egress: [{}], policyTypes: ['Egress'] });
    const empties = policy('x', 'allow-all-empty-lists', { podSelector: {}, ingress: [{ from: [], ports: [] }] });
    run([i, e, empties], everywhere(new Reachability(true)));
  });

  it('should enforce multiple ingress policies with ingress allow-all policy taking precedence', () => {
    const only80 = policy('x', 'only-80', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 80 }] }] });
    const c = compileModel([only80]);
    const only = new Reachability(true).expectAllIngress('x/a', false);
    check(c, [[80, TCP, new Reachability(true)], [81, TCP, only], [80, UDP, only]]);
    const all = policy('x', 'allow-all', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{}] });
    run([only80, all], everywhere(new Reachability(true)));
  });

  it('should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector', () => {
    const p = policy('x', 'allow-other-ns', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }] }],
    });
    run([p], everywhere(new Reachability(true).expect('x/*', 'x/a', false)));
  });

  it('should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label', () => {
    const p = policy('x', 'allow-y', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }] }],
    });
    run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true)));
  });

  it('should enforce policy to allow ingress traffic from pods in all namespaces', () => {
    const p = policy('x', 'allow-all-ns', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: {} }] }] });
    run([p], everywhere(new Reachability(true)));
  });

  it('should enforce policy to allow traffic from pods within server namespace based on PodSelector', () => {
    const p = policy('x', 'allow-b', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] });
    run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true)));
  });

  it('should enforce policy based on PodSelector and NamespaceSelector (AND in one peer)', () => {
    const p = policy('x', 'and', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        {
          from: [
            {
              namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] },
              podSelector: { matchLabels: { pod: 'b' } },
            },
          ],
        },
      ],
    });
    run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('y/b', 'x/a', true).expect('z/b', 'x/a', true)));
  });

  it('should enforce policy based on PodSelector or NamespaceSelector (two peers)', () => {
    const p = policy('x', 'or', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        {
          from: [
            { namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } },
            { podSelector: { matchLabels: { pod: 'b' } } },
          ],
        },
      ],
    });
    run([p], everywhere(new Reachability(true).expect('x/c', 'x/a', false)));
  });

  it('should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector', () => {
    const p = policy('x', 'egress-and', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'a' } } }] }],
    });
    run([p], everywhere(new Reachability(true).expectAllEgress('x/a', false).expect('x/a', 'y/a', true)));
  });

  describe('podSelector with matchExpressions, each operator', () => {
    const opts: ModelOptions = { podLabels: { 'x/b': { tier: 'front' } } };
    const from = (expr: { key: string; operator: string; values?: string[] }) =>
      policy('x', 'expr', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchExpressions: [expr] } }] }] });
    const only = (...allowed: string[]) => {
      const r = new Reachability(true).expectAllIngress('x/a', false);
      for (const a of allowed) r.expect(a, 'x/a', true);
      return everywhere(r);
    };
    it('In', () => run([from({ key: 'pod', operator: 'In', values: ['b', 'c'] })], only('x/b', 'x/c'), opts));
    it('NotIn (absent key matches)', () => run([from({ key: 'tier', operator: 'NotIn', values: ['front'] })], only('x/c'), opts));
    it('Exists', () => run([from({ key: 'tier', operator: 'Exists' })], only('x/b'), opts));
    it('DoesNotExist', () => run([from({ key: 'tier', operator: 'DoesNotExist' })], only('x/c'), opts));
    it('namespaceSelector with matchExpressions (default ns label)', () => {
      const p = policy('x', 'ns-expr', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['z'] }] } }] }],
      });
      run([p], only('z/a', 'z/b', 'z/c'), opts);
    });
  });

  describe('ipBlock', () => {
    it('should allow egress access to server in CIDR block', () => {
      const p = policy('x', 'cidr', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: `${podIp('y/b')}/32` } }] }],
      });
      run([p], everywhere(new Reachability(true).expectAllEgress('x/a', false).expect('x/a', 'y/b', true)));
    });

    it('should enforce except clause while egress access to server in CIDR block', () => {
      const p = policy('x', 'cidr-except', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '10.244.0.0/16', except: [`${podIp('y/b')}/32`, '10.244.3.0/24'] } }] }],
      });
      run([p], everywhere(new Reachability(true).expect('x/a', 'y/b', false).expect('x/a', 'z/*', false)));
    });

    it('should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed', () => {
      const p = policy('x', 'overlap', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              { ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.2.0/24'] } },
              { ipBlock: { cidr: `${podIp('y/b')}/32` } },
            ],
          },
        ],
      });
      run([p], everywhere(new Reachability(true).expect('x/a', 'y/a', false).expect('x/a', 'y/c', false)));
    });

    it('ipBlock ingress covers node addresses and the world, except prefixes carve out', () => {
      const p = policy('x', 'cidr-in', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['192.168.0.0/24', '10.0.0.0/8'] } }] }],
      });
      const c = compileModel([p]);
      const ep = endpointId('x/a');
      expect(verdict(c, ep, 'ingress', '8.8.8.8', TCP, 80).allowed).toBe(true);
      expect(verdict(c, ep, 'ingress', '172.16.0.1', UDP, 53).allowed).toBe(true);
      expect(verdict(c, ep, 'ingress', REMOTE_NODE_IP, TCP, 80).allowed).toBe(false);
      expect(verdict(c, ep, 'ingress', '10.1.2.3', TCP, 80).allowed).toBe(false);
      expect(verdict(c, ep, 'ingress', podIp('y/a'), TCP, 80).allowed).toBe(false);
      // host always allowed, even inside an except
      expect(verdict(c, ep, 'ingress', SELF_NODE_IP, TCP, 80)).toMatchObject({ allowed: true, match: 'l3' });
    });
  });

  describe('named ports', () => {
    it('should allow ingress access on one named port', () => {
      const p = policy('x', 'named-in', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] });
      const denied = new Reachability(true).expectAllIngress('x/a', false);
      run([p], [[81, TCP, new Reachability(true)], [80, TCP, denied], [81, UDP, denied], [80, UDP, denied]]);
    });

    it('should allow ingress access from namespace on one named port', () => {
      const p = policy('x', 'named-in-ns', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 'serve-80-udp', protocol: 'UDP' }] }],
      });
      const denied = new Reachability(true).expectAllIngress('x/a', false);
      run([p], [[80, UDP, new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true)], [80, TCP, denied], [81, UDP, denied]]);
    });

    it('should allow egress access on one named port', () => {
      const p = policy('x', 'named-out', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 'serve-80-tcp' }] }],
      });
      const denied = new Reachability(true).expectAllEgress('x/a', false);
      run([p], [[80, TCP, new Reachability(true)], [81, TCP, denied], [80, UDP, denied]]);
    });

    it('a named port that does not resolve allows nothing', () => {
      const p = policy('x', 'named-none', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 'serve-99-tcp' }] }] });
      run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false)));
    });
  });

  describe('ports', () => {
    it('should enforce policy based on Ports', () => {
      const p = policy('x', 'port-81', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 81, protocol: 'TCP' }] }],
      });
      const only = new Reachability(true).expectAllIngress('x/a', false);
      run([p], [[81, TCP, new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true)], [80, TCP, only], [81, UDP, only]]);
    });

    it('should not allow access by TCP when a policy specifies only UDP', () => {
      const p = policy('x', 'udp-81', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] });
      const denied = new Reachability(true).expectAllIngress('x/a', false);
      run([p], [[81, UDP, new Reachability(true)], [81, TCP, denied], [80, UDP, denied]]);
    });

    it('should enforce ingress policy allowing any port traffic to a server on a specific protocol', () => {
      const p = policy('x', 'any-tcp', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ protocol: 'TCP' }] }] });
      const denied = new Reachability(true).expectAllIngress('x/a', false);
      run([p], [[80, TCP, new Reachability(true)], [81, TCP, new Reachability(true)], [80, UDP, denied], [81, UDP, denied]]);
    });

    it('endPort ranges are inclusive (ingress 80-81 TCP, egress 1000-2047 UDP)', () => {
      const p = policy('x', 'range', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ ports: [{ port: 80, endPort: 81 }] }],
        egress: [{ ports: [{ port: 1000, endPort: 2047, protocol: 'UDP' }] }],
      });
      const inDenied = new Reachability(true).expectAllIngress('x/a', false);
      const outDenied = new Reachability(true).expectAllEgress('x/a', false);
      const both = new Reachability(true).expectAllIngress('x/a', false).expectAllEgress('x/a', false);
      run([p], [
        [80, TCP, outDenied],
        [81, TCP, outDenied],
        [79, TCP, both],
        [82, TCP, both],
        [80, UDP, both],
        [999, UDP, both],
        [1000, UDP, inDenied],
        [1500, UDP, inDenied],
        [2047, UDP, inDenied],
        [2048, UDP, both],
      ]);
    });
  });

  it('should enforce multiple, stacked policies with overlapping podSelectors (union)', () => {
    const p1 = policy('x', 'from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] });
    const p2 = policy('x', 'from-zb', {
      podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } }, podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] }],
    });
    const c = compileModel([p1, p2]);
    const at80 = new Reachability(true).expectAllIngress('x/a', false).expectAllIngress('x/b', false)
      .expect('y/*', 'x/a', true).expect('z/b', 'x/a', true).expect('z/b', 'x/b', true);
    const at81 = new Reachability(true).expectAllIngress('x/a', false).expectAllIngress('x/b', false).expect('y/*', 'x/a', true);
    check(c, [[80, TCP, at80], [81, TCP, at81]]);
    expect(c.endpoints.get(endpointId('x/a'))!.ingress!.policies).toEqual(['x/from-y', 'x/from-zb']);
  });

  it('should work with Ingress, Egress specified together / controlled independently', () => {
    const p = policy('x', 'both', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      egress: [{ to: [{ podSelector: { matchLabels: { pod: 'c' } } }] }],
    });
    run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true).expectAllEgress('x/a', false).expect('x/a', 'x/c', true)));
  });

  it('should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)', () => {
    const server = policy('y', 'allow-x', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }] }] });
    const client = policy('x', 'deny-out', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'] });
    run([server, client], everywhere(new Reachability(true).expectAllIngress('y/*', false).expect('x/*', 'y/*', true).expectAllEgress('x/a', false)));
  });

  describe('policyTypes defaults', () => {
    it('egress rules without policyTypes: isolates both directions', () => {
      const p = policy('x', 'default-types', { podSelector: { matchLabels: { pod: 'a' } }, egress: [{ to: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] });
      run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false).expectAllEgress('x/a', false).expect('x/a', 'x/b', true)));
    });
    it('ingress rules only, or an empty egress list, without policyTypes: ingress only', () => {
      const p = policy('x', 'ingress-only', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }], egress: [] });
      run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true)));
    });
    it('policyTypes [Egress] ignores ingress rules', () => {
      const p = policy('x', 'egress-type', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] });
      run([p], everywhere(new Reachability(true).expectAllEgress('x/a', false)));
    });
  });

  describe('updates', () => {
    it('should enforce updated policy (same allocator, identities stable)', () => {
      const alloc = new MemoryIdentityAllocator();
      const v1 = policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] });
      const c1 = compileModel([v1], {}, alloc);
      check(c1, everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true)));
      const v2 = policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] });
      const c2 = compileModel([v2], {}, alloc);
      check(c2, everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true)));
      expect([...c2.ipcache]).toEqual([...c1.ipcache]);
    });

    it('should stop enforcing policies after they are deleted', () => {
      const alloc = new MemoryIdentityAllocator();
      check(compileModel([denyIngress()], {}, alloc), everywhere(new Reachability(true).expectAllIngress('x/*', false)));
      check(compileModel([], {}, alloc), everywhere(new Reachability(true)));
    });

    it('should allow ingress access from updated pod (deny, then allow on pod label change)', () => {
      const alloc = new MemoryIdentityAllocator();
      const p = policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }] }] });
      check(compileModel([p], {}, alloc), everywhere(new Reachability(true).expectAllIngress('x/a', false)));
      check(
        compileModel([p], { podLabels: { 'x/b': { role: 'client' } } }, alloc),
        everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true)),
      );
    });

    it('should deny ingress access to updated pod (label makes the policy select it)', () => {
      const alloc = new MemoryIdentityAllocator();
      const p = policy('x', 'p', { podSelector: { matchLabels: { target: 'true' } }, policyTypes: ['Ingress'] });
      check(compileModel([p], {}, alloc), everywhere(new Reachability(true)));
      check(compileModel([p], { podLabels: { 'x/a': { target: 'true' } } }, alloc), everywhere(new Reachability(true).expectAllIngress('x/a', false)));
    });

    it('should allow ingress access from updated namespace (namespace label change)', () => {
      const alloc = new MemoryIdentityAllocator();
      const p = policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] });
      const c1 = compileModel([p], {}, alloc);
      check(c1, everywhere(new Reachability(true).expectAllIngress('x/a', false)));
      const c2 = compileModel([p], { nsLabels: { y: { team: 'blue' } } }, alloc);
      check(c2, everywhere(new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true)));
      // a namespace label is not part of any identity: the ipcache is unchanged
      expect([...c2.ipcache]).toEqual([...c1.ipcache]);
    });
  });

  it('host (own node, gateway) always allowed both ways; remote node and world are not', () => {
    const p = policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    // a policy elsewhere puts this node's address into an ipBlock: it gets a dynamic host-kind identity
    const other = policy('y', 'cidr', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '192.168.0.0/24' } }] }] });
    const c = compileModel([p, other]);
    const ep = endpointId('x/b');
    for (const ip of [SELF_NODE_IP, GATEWAY_IP])
      for (const dir of ['ingress', 'egress'] as const)
        for (const [proto, port] of [[TCP, 10250], [UDP, 53], [1, 0]]) {
          expect(verdict(c, ep, dir, ip, proto, port), `${dir} ${ip} ${proto}/${port}`).toMatchObject({ allowed: true, match: 'l3' });
        }
    const selfId = verdict(c, ep, 'ingress', SELF_NODE_IP, TCP, 1).identity;
    expect(selfId).toBeGreaterThanOrEqual(256);
    expect(c.identities.get(selfId)).toMatchObject({ kind: 'host', cidrs: ['192.168.0.0/24'] });
    expect(verdict(c, ep, 'ingress', REMOTE_NODE_IP, TCP, 80)).toMatchObject({ allowed: false, match: 'none' });
    expect(verdict(c, ep, 'egress', '1.1.1.1', TCP, 443)).toMatchObject({ allowed: false, match: 'none', identity: 2 });
  });

  describe('SCTP (unsupported)', () => {
    it("should properly isolate pods selected by a policy allowing only SCTP (never widened to 'all ports')", () => {
      const p = policy('x', 'sctp', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] });
      const c = run([p], everywhere(new Reachability(true).expectAllIngress('x/a', false)));
      expect(c.problems).toEqual([
        { object: 'x/sctp', kind: 'NetworkPolicy', field: 'spec.ingress[0].ports[0].protocol', message: expect.stringContaining('SCTP unsupported') },
      ]);
    });
    it("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'; other ports of the rule stay", () => {
      const p = policy('x', 'sctp-tcp', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }, { protocol: 'TCP', port: 81 }] }],
      });
      const denied = new Reachability(true).expectAllIngress('x/a', false);
      run([p], [[80, TCP, denied], [81, TCP, new Reachability(true)], [81, UDP, denied], [80, 132, denied]]);
    });
  });
});
