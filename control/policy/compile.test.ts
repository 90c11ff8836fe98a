import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { formatCidr, formatIPv4, ipBlockContains, parseCidr, parseIpBlock, parseIPv4, type IpBlock } from './cidr.js';
import { compilePolicy, normalizeEntries } from './compile.js';
import { ipcacheLookup, policyLookup, verdict } from './evaluate.js';
import { identityKey, MemoryIdentityAllocator } from './identity.js';
import { compileSelector } from './selector.js';
import {
  ALL_PODS,
  compileModel,
  diffMatrix,
  endpointId,
  modelInput,
  modelPod,
  podIp,
  policy,
  probe,
  Reachability,
  rng,
  scaleInput,
  TCP,
  UDP,
} from './testmodel.js';
import { ID_ANY, ID_FIRST_DYNAMIC, ID_HOST, ID_REMOTE_NODE, ID_WORLD, type CompiledPolicy, type PolicyEntry } from './types.js';


function serialize(c: CompiledPolicy): string {
  return JSON.stringify({ identities: [...c.identities], ipcache: [...c.ipcache], endpoints: [...c.endpoints], problems: c.problems });
}

function checkMatrix(c: CompiledPolicy, port: number, proto: number, r: Reachability) {
  const d = diffMatrix(r.m, probe(c, port, proto), `port ${port}/${proto}`);
  if (d) console.log(d);
  expect(d).toBeUndefined();
}

describe('selector', () => {
  it('matchLabels AND matchExpressions', () => {
    const s = compileSelector({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }] }, 'sel');
    if (!s.ok) throw new Error('expected ok');
    expect(s.matches({ app: 'web' })).toBe(true);
    expect(s.matches({ app: 'web', tier: 'fe' })).toBe(true);
    expect(s.matches({ app: 'web', tier: 'db' })).toBe(false);
    expect(s.matches({ tier: 'fe' })).toBe(false);
    const e = compileSelector({}, 'sel');
    expect(e.ok && e.empty && e.matches({})).toBe(true);
  });

  it('validation names the field', () => {
    const cases: Array<[unknown, string]> = [
      [{ matchExpressions: [{ key: 'a', operator: 'Equals', values: ['x'] }] }, 'sel.matchExpressions[0].operator'],
      [{ matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }, 'sel.matchExpressions[0].values'],
      [{ matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] }, 'sel.matchExpressions[0].values'],
      [{ matchExpressions: [{ operator: 'Exists' }] }, 'sel.matchExpressions[0].key'],
      [{ matchLabels: { a: 1 } }, 'sel.matchLabels.a'],
    ];
    for (const [sel, field] of cases) {
      const r = compileSelector(sel as never, 'sel');
      expect(r.ok, JSON.stringify(sel)).toBe(false);
      if (!r.ok) expect(r.errors[0].field).toBe(field);
    }
  });
});

describe('cidr / ipBlock', () => {
  it('parses, masks host bits, validates except', () => {
    expect(parseCidr('10.1.2.3/16')).toEqual({ addr: parseIPv4('10.1.0.0'), len: 16 });
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
    expect(parseCidr('10.0.0.256/8')).toBeUndefined();
    expect(parseIPv4('010.0.0.1')).toBeUndefined();
    const ok = parseIpBlock({ cidr: '10.0.0.0/8', except: ['10.2.0.0/16', '10.1.0.0/16', '10.1.0.0/16'] }, 'b');
    expect(ok.ok && ok.block.canonical).toBe('10.0.0.0/8 except 10.1.0.0/16,10.2.0.0/16');
    const out = parseIpBlock({ cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] }, 'b');
    expect(!out.ok && out.errors[0].field).toBe('b.except[0]');
    const same = parseIpBlock({ cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] }, 'b');
    expect(same.ok).toBe(false);
    const v6 = parseIpBlock({ cidr: 'fd00::/64' }, 'b');
    expect(!v6.ok && v6.ipv6).toBe(true);
  });

  it('LPM membership: one ipcache lookup gives exactly the ipBlocks holding an address (random CIDR sets)', () => {
    const r = rng(7);
    const randPrefix = (inside?: { addr: number; len: number }, minLen = 8, maxLen = 30) => {
      const lo = inside ? inside.len + 1 : minLen;
      const len = lo + Math.floor(r() * (Math.max(lo, maxLen) - lo + 1));
      const base = inside ? inside.addr : parseIPv4('10.0.0.0')!;
      const span = inside ? 2 ** (32 - inside.len) : 2 ** 16; // keep them overlapping: all within 10.0/16 or the outer
      const a = (base + Math.floor(r() * span)) >>> 0;
      return formatCidr(parseCidr(`${formatIPv4(a)}/${Math.min(len, 32)}`)!);
    };
    for (let round = 0; round < 40; round++) {
      const blocks: IpBlock[] = [];
      const policies: V1NetworkPolicy[] = [];
      const n = 1 + Math.floor(r() * 6);
      for (let i = 0; i < n; i++) {
        const cidr = randPrefix(undefined, 14, 26);
        const c = parseCidr(cidr)!;
        const except = c.len < 31 ? Array.from({ length: Math.floor(r() * 3) }, () => randPrefix(c, c.len + 1, 32)) : [];
        const b = parseIpBlock({ cidr, except }, 'b');
        if (!b.ok) throw new Error('generator');
        blocks.push(b.block);
        policies.push(policy('x', `p${i}`, { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr, except } }] }] }));
      }
      const input = modelInput(policies);
      // extra pods scattered over the same space
      for (let i = 0; i < 20; i++) {
        const pod = modelPod(`y/r${i}`);
        pod.metadata!.name = `r${i}`;
        pod.status!.podIP = formatIPv4((parseIPv4('10.0.0.0')! + Math.floor(r() * 65536)) >>> 0);
        input.pods.push(pod);
      }
      const c = compilePolicy(input, new MemoryIdentityAllocator());
      const podIps = new Set(input.pods.map((p) => p.status!.podIP!));
      for (let i = 0; i < 400; i++) {
        const addr = i < 40 ? parseIPv4([...podIps][i % podIps.size])! : (parseIPv4('10.0.0.0')! + Math.floor(r() * 65536)) >>> 0;
        const ip = formatIPv4(addr);
        const id = ipcacheLookup(c, ip);
        const info = c.identities.get(id);
        expect(info, `identity ${id} of ${ip}`).toBeDefined();
        const direct = blocks.filter((b) => ipBlockContains(b, addr)).map((b) => b.canonical);
        expect([...new Set(info!.cidrs)].sort(), `${ip}`).toEqual([...new Set(direct)].sort());
        expect(info!.kind, ip).toBe(podIps.has(ip) ? 'pod' : 'world');
      }
    }
  });
});

describe('identity allocator', () => {
  it('stable ids, released ids quarantined for one retain, then reused lowest first', () => {
    const a = new MemoryIdentityAllocator();
    expect(a.idFor('k1')).toBe(ID_FIRST_DYNAMIC);
    expect(a.idFor('k2')).toBe(ID_FIRST_DYNAMIC + 1);
    expect(a.idFor('k1')).toBe(ID_FIRST_DYNAMIC);
    a.retain(new Set(['k2']));
    expect(a.idFor('k3')).toBe(ID_FIRST_DYNAMIC + 2); // 256 quarantined
    a.retain(new Set(['k2', 'k3']));
    expect(a.idFor('k4')).toBe(ID_FIRST_DYNAMIC); // reused now
    expect(a.idFor('k2')).toBe(ID_FIRST_DYNAMIC + 1);
    a.retain(new Set(['k2', 'k4']));
    // k3 was released by this retain: asked again before the next one, it gets its number back
    expect(a.idFor('k3')).toBe(ID_FIRST_DYNAMIC + 2);
    a.retain(new Set(['k4']));
    expect(a.idFor('k5')).toBe(ID_FIRST_DYNAMIC + 3); // 257 and 258 quarantined, 259 next
    a.retain(new Set(['k4', 'k5']));
    expect(a.idFor('k6')).toBe(ID_FIRST_DYNAMIC + 1);
  });

  it('seeded from recovered pairs; bad seeds ignored', () => {
    const a = new MemoryIdentityAllocator([
      ['a', 300],
      ['b', 258],
      ['c', 5], // reserved range
      ['d', 300], // duplicate id
    ]);
    expect(a.idFor('a')).toBe(300);
    expect(a.idFor('b')).toBe(258);
    expect(a.idFor('new')).toBe(301); // gaps below 300 may still be in the maps: quarantined
    a.retain(new Set(['a', 'b', 'new']));
    expect(a.idFor('new2')).toBe(256);
  });
});

describe('compilePolicy', () => {
  it('deterministic: same input (in any order) gives the same output; unrelated changes keep ids', () => {
    const pols = [
      policy('x', 'a', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.2.0/24'] } }] }] }),
      policy('y', 'b', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'serve-80-tcp' }] }] }),
    ];
    const in1 = modelInput(pols);
    const c1 = compilePolicy(in1, new MemoryIdentityAllocator());
    const in2 = modelInput([...pols].reverse());
    in2.pods.reverse();
    in2.namespaces.reverse();
    in2.endpoints.reverse();
    const c2 = compilePolicy(in2, new MemoryIdentityAllocator());
    expect(serialize(c2)).toBe(serialize(c1));

    // an unrelated pod and policy later: existing addresses keep their identities
    const alloc = new MemoryIdentityAllocator();
    const before = compilePolicy(modelInput(pols), alloc);
    const in3 = modelInput([...pols, policy('z', 'c', { podSelector: { matchLabels: { pod: 'c' } }, ingress: [{}] })]);
    const extra = modelPod('z/new');
    extra.status!.podIP = '10.244.3.99';
    in3.pods.unshift(extra);
    const after = compilePolicy(in3, alloc);
    for (const [prefix, id] of before.ipcache) expect(after.ipcache.get(prefix), prefix).toBe(id);
  });

  it('typed client objects (ingress peers in "_from") compile like raw JSON ("from")', () => {
    const typed: V1NetworkPolicy = {
      metadata: { namespace: 'x', name: 'typed' },
      spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] },
    };
    const raw = policy('x', 'typed', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] });
    const a = compileModel([typed]);
    expect(serialize(a)).toBe(serialize(compileModel([raw])));
    checkMatrix(a, 80, TCP, new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true));
  });

  it('ipcache: pods, nodes (host / remote-node), host addresses, blocks; reserved ids when no block holds them', () => {
    const c = compileModel([]);
    expect(c.ipcache.get('192.168.0.1/32')).toBe(ID_HOST);
    expect(c.ipcache.get('10.244.0.1/32')).toBe(ID_HOST);
    expect(c.ipcache.get('192.168.0.2/32')).toBe(ID_REMOTE_NODE);
    expect(ipcacheLookup(c, '8.8.8.8')).toBe(ID_WORLD);
    const xa = c.identities.get(c.ipcache.get(`${podIp('x/a')}/32`)!)!;
    expect(xa).toMatchObject({ kind: 'pod', namespace: 'x', labels: { pod: 'a' }, cidrs: [] });
    expect(xa.id).toBeGreaterThanOrEqual(ID_FIRST_DYNAMIC);
    expect(c.ipcache.size).toBe(ALL_PODS.length + 3);
  });

  it('pods: no IP, hostNetwork and finished pods get no identity; terminating pods keep theirs', () => {
    const input = modelInput([]);
    const mk = (name: string, ip: string, f: (p: V1Pod) => void) => {
      const p = modelPod(`z/${name}`);
      p.status!.podIP = ip;
      f(p);
      input.pods.push(p);
    };
    mk('noip', '', (p) => delete p.status!.podIP);
    mk('hostnet', '10.9.0.2', (p) => (p.spec!.hostNetwork = true));
    mk('done', '10.9.0.3', (p) => (p.status!.phase = 'Succeeded'));
    mk('going', '10.9.0.4', (p) => (p.metadata!.deletionTimestamp = new Date()));
    const c = compilePolicy(input, new MemoryIdentityAllocator());
    expect(c.ipcache.has('10.9.0.2/32')).toBe(false);
    expect(c.ipcache.has('10.9.0.3/32')).toBe(false);
    expect(c.identities.get(c.ipcache.get('10.9.0.4/32')!)?.kind).toBe('pod');
  });

  it('endpoints: found by name, else by IP; unknown pod -> not isolated', () => {
    const input = modelInput([policy('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] })]);
    input.endpoints = [
      { endpointId: 1, ip: podIp('x/a'), podNamespace: 'x', podName: 'a' },
      { endpointId: 2, ip: podIp('x/b') },
      { endpointId: 3, ip: '10.244.1.200', podNamespace: 'x', podName: 'ghost' },
    ];
    const c = compilePolicy(input, new MemoryIdentityAllocator());
    expect(c.endpoints.get(1)).toMatchObject({ pod: 'x/a', ingress: { policies: ['x/deny'] } });
    expect(c.endpoints.get(2)).toMatchObject({ pod: 'x/b', ingress: { policies: ['x/deny'] } });
    expect(c.endpoints.get(3)).toEqual({ endpointId: 3, pod: '10.244.1.200', ip: '10.244.1.200' });
    // deny-all ruleset still holds the host entries
    expect(c.endpoints.get(1)!.ingress!.entries).toEqual([{ identity: ID_HOST, proto: 0, port: 0, endPort: 0 }]);
  });

  it('a local pod whose status has no podIP yet gets its endpoint address in the ipcache', () => {
    const input = modelInput([]);
    const a = input.pods.find((p) => p.metadata?.namespace === 'x' && p.metadata?.name === 'a')!;
    const ip = podIp('x/a');
    a.status = { ...a.status, podIP: undefined, podIPs: undefined };
    const before = compilePolicy({ ...input, endpoints: [] }, new MemoryIdentityAllocator());
    expect(before.ipcache.has(`${ip}/32`)).toBe(false);
    input.endpoints = [{ endpointId: 1, ip, podNamespace: 'x', podName: 'a' }];
    const c = compilePolicy(input, new MemoryIdentityAllocator());
    const id = c.ipcache.get(`${ip}/32`);
    expect(id).toBeGreaterThanOrEqual(ID_FIRST_DYNAMIC);
    expect(c.identities.get(id!)).toMatchObject({ kind: 'pod', namespace: 'x', labels: a.metadata!.labels });
  });

  it('egress named ports resolve per destination pod (same labels, different port numbers)', () => {
    const input = modelInput([
      policy('x', 'to-web', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 'http' }] }],
      }),
    ]);
    const web = (name: string, ip: string, port: number): V1Pod => ({
      metadata: { namespace: 'w', name, labels: { app: 'web' } },
      spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: port }] }] },
      status: { podIP: ip, phase: 'Running' },
    });
    input.pods.push(web('s1', '10.244.9.1', 8080), web('s2', '10.244.9.2', 9090));
    const c = compilePolicy(input, new MemoryIdentityAllocator());
    const ep = endpointId('x/a');
    expect(verdict(c, ep, 'egress', '10.244.9.1', TCP, 8080)).toMatchObject({ allowed: true, match: 'l3-l4' });
    expect(verdict(c, ep, 'egress', '10.244.9.1', TCP, 9090).allowed).toBe(false);
    expect(verdict(c, ep, 'egress', '10.244.9.2', TCP, 9090).allowed).toBe(true);
    expect(verdict(c, ep, 'egress', '10.244.9.2', TCP, 8080).allowed).toBe(false);
    expect(verdict(c, ep, 'egress', '10.244.9.2', UDP, 9090).allowed).toBe(false);
    expect(ipcacheLookup(c, '10.244.9.1')).not.toBe(ipcacheLookup(c, '10.244.9.2'));
  });

  it('match kinds as the datapath reports them', () => {
    const p = policy('x', 'm', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        { from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] },
        { from: [{ podSelector: { matchLabels: { pod: 'c' } } }] },
        { ports: [{ port: 81, protocol: 'UDP' }] },
      ],
    });
    const c = compileModel([p]);
    const ep = endpointId('x/a');
    expect(verdict(c, ep, 'ingress', podIp('x/b'), TCP, 80).match).toBe('l3-l4');
    expect(verdict(c, ep, 'ingress', podIp('x/c'), TCP, 80).match).toBe('l3');
    expect(verdict(c, ep, 'ingress', podIp('y/a'), UDP, 81).match).toBe('l4');
    expect(verdict(c, ep, 'ingress', podIp('x/b'), UDP, 81).match).toBe('l4'); // own identity misses, then ANY
    expect(verdict(c, ep, 'ingress', podIp('y/a'), TCP, 80).match).toBe('none');
    expect(verdict(c, endpointId('y/a'), 'ingress', podIp('x/b'), TCP, 80).match).toBe('not-isolated');
    const all = compileModel([policy('x', 'all', { podSelector: {}, ingress: [{}] })]);
    expect(verdict(all, ep, 'ingress', podIp('y/a'), TCP, 80).match).toBe('all');
  });

  it('normalizeEntries never changes a lookup (random entry sets)', () => {
    const r = rng(99);
    for (let round = 0; round < 300; round++) {
      const entries: PolicyEntry[] = [];
      for (let i = 0; i < 12; i++) {
        const identity = [ID_ANY, 256, 257][Math.floor(r() * 3)];
        const proto = [0, 6, 17][Math.floor(r() * 3)];
        const port = proto === 0 ? 0 : r() < 0.15 ? 0 : 1 + Math.floor(r() * 40);
        const endPort = port === 0 ? 0 : Math.min(65535, port + (r() < 0.5 ? 0 : Math.floor(r() * 10)));
        entries.push({ identity, proto, port, endPort });
      }
      const n = normalizeEntries(entries);
      for (let i = 1; i < n.length; i++) {
        const [a, b] = [n[i - 1], n[i]];
        expect(a.identity < b.identity || (a.identity === b.identity && (a.proto < b.proto || (a.proto === b.proto && a.endPort + 1 < b.port)))).toBe(true);
      }
      for (const identity of [ID_ANY, 256, 257])
        for (const proto of [6, 17, 1])
          for (let port = 0; port <= 55; port++) expect(policyLookup(n, identity, proto, port)?.l4).toBe(policyLookup(entries, identity, proto, port)?.l4);
    }
  });
});

describe('malformed policies never widen access', () => {
  const problemsOf = (c: CompiledPolicy) => c.problems.map((p) => `${p.object} ${p.field}`);

  it('a bad peer is skipped, the rest of the rule stays, the policy still isolates', () => {
    const p = policy('x', 'bad-peer', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        {
          from: [
            { podSelector: { matchExpressions: [{ key: 'pod', operator: 'Is', values: ['c'] }] } },
            { podSelector: { matchLabels: { pod: 'b' } } },
            { ipBlock: { cidr: '10.0.0.0/33' } },
            { ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/8'] } },
            { ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} },
            {},
          ],
        },
      ],
    });
    const c = compileModel([p]);
    expect(problemsOf(c)).toEqual([
      'x/bad-peer spec.ingress[0].from[0].podSelector.matchExpressions[0].operator',
      'x/bad-peer spec.ingress[0].from[2].ipBlock.cidr',
      'x/bad-peer spec.ingress[0].from[3].ipBlock.except[0]',
      'x/bad-peer spec.ingress[0].from[4]',
      'x/bad-peer spec.ingress[0].from[5]',
    ]);
    checkMatrix(c, 80, TCP, new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true));
  });

  it('a rule whose peers are all invalid allows no one', () => {
    const p = policy('x', 'no-peers', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In' }] } }] }],
    });
    const c = compileModel([p]);
    expect(problemsOf(c)).toEqual(['x/no-peers spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values']);
    checkMatrix(c, 80, TCP, new Reachability(true).expectAllIngress('x/a', false));
  });

  it('bad ports are skipped; a rule left with no valid port allows nothing', () => {
    const p = policy('x', 'bad-ports', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        {
          ports: [
            { port: 90, endPort: 80 },
            { port: 'serve-80-tcp', endPort: 90 },
            { endPort: 90 } as never,
            { port: 0 },
            { port: 70000 },
            { port: 80, protocol: 'ICMP' },
            { port: '80' },
          ],
        },
        { ports: [{ port: 81, protocol: 'UDP' }] },
      ],
    });
    const c = compileModel([p]);
    expect(problemsOf(c)).toEqual([
      'x/bad-ports spec.ingress[0].ports[0].endPort',
      'x/bad-ports spec.ingress[0].ports[1].endPort',
      'x/bad-ports spec.ingress[0].ports[2].endPort',
      'x/bad-ports spec.ingress[0].ports[3].port',
      'x/bad-ports spec.ingress[0].ports[4].port',
      'x/bad-ports spec.ingress[0].ports[5].protocol',
      'x/bad-ports spec.ingress[0].ports[6].port',
    ]);
    const denied = new Reachability(true).expectAllIngress('x/a', false);
    for (const port of [80, 81, 85, 90]) checkMatrix(c, port, TCP, denied);
    checkMatrix(c, 81, UDP, new Reachability(true));
  });

  it('an invalid spec.podSelector isolates every pod of the namespace and allows nothing', () => {
    const p = policy('x', 'bad-select', {
      podSelector: { matchExpressions: [{ key: 'pod', operator: 'Bogus', values: ['a'] }] },
      policyTypes: ['Ingress'],
      ingress: [{}],
    });
    const c = compileModel([p]);
    expect(problemsOf(c)).toEqual(['x/bad-select spec.podSelector.matchExpressions[0].operator']);
    checkMatrix(c, 80, TCP, new Reachability(true).expectAllIngress('x/*', false));
  });

  it('unknown policyTypes values are ignored (reported); an IPv6 block matches nothing', () => {
    const p = policy('x', 'odd', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Ingress', 'Sideways'],
      ingress: [{ from: [{ ipBlock: { cidr: 'fd00::/8' } }] }],
    });
    const c = compileModel([p]);
    expect(problemsOf(c)).toEqual(['x/odd spec.policyTypes[1]', 'x/odd spec.ingress[0].from[0].ipBlock.cidr']);
    checkMatrix(c, 80, TCP, new Reachability(true).expectAllIngress('x/a', false));
  });
});

describe('scale', () => {
  it('5000 pods, 500 namespaces, 300 policies, 50 local endpoints (prints timings)', () => {
    const input = scaleInput();
    const alloc = new MemoryIdentityAllocator();
    const timed = () => {
      const [t, cpu] = [performance.now(), process.cpuUsage()];
      const out = compilePolicy(input, alloc);
      const used = process.cpuUsage(cpu);
      return { out, wall: performance.now() - t, cpu: (used.user + used.system) / 1000 };
    };
    const { out: c, wall: first, cpu: firstCpu } = timed();
    const { out: c2, wall: second, cpu: secondCpu } = timed();
    const isolated = [...c.endpoints.values()].filter((e) => e.ingress || e.egress).length;
    const entries = [...c.endpoints.values()].reduce((n, e) => n + (e.ingress?.entries.length ?? 0) + (e.egress?.entries.length ?? 0), 0);
    console.log(
      `policy compile scale: first ${first.toFixed(0)} ms (cpu ${firstCpu.toFixed(0)} ms), second ${second.toFixed(0)} ms (cpu ${secondCpu.toFixed(0)} ms); ` +
        `${c.identities.size} identities, ${c.ipcache.size} ipcache entries, ${isolated}/50 endpoints isolated, ${entries} entries`,
    );
    expect(serialize(c2)).toBe(serialize(c));
    expect(isolated).toBeGreaterThan(0);
    expect(c.problems).toEqual([]);
  });
});

// keep the helper used (identityKey is part of the module's surface)
it('identity keys are unambiguous JSON', () => {
  expect(identityKey({ kind: 'pod', namespace: 'a', labels: { 'b"': 'c' }, cidrs: [] })).not.toBe(identityKey({ kind: 'pod', namespace: 'a', labels: { b: '"c' }, cidrs: [] }));
  expect(identityKey({ kind: 'world', cidrs: ['1.0.0.0/8'] })).toBe('["world",["1.0.0.0/8"]]');
});
