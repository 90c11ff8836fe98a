// The iptables baseline against what users know: the seed's kube-proxy rules
// (../shared/seeds/001_6de89ca240b06498.txt, an `iptables-save` of a
// 3-endpoint service) compared rule by rule with what bench/baseline/iptables.ts
// generates for the same service. Two differences are expected and asserted
// as such: the seed comes from an older proxier, which (1) wrote 5-digit
// probabilities that iptables-save prints as 0.33332999982 (the current one
// writes "%0.10f": 0.3333333333), and (2) formatted an unnamed port as
// "default/nginx:" (the current ServicePortName.String() has no ":"), which
// changes the comments and the hashed chain names, not the structure.
import { describe, expect, it } from 'vitest';
import { computeProbability, partialRestoreInput, restoreInput, sepChainName, svcChainName, LARGE_CLUSTER_ENDPOINTS } from '../../bench/baseline/iptables.js';
import { base32 } from '../../bench/baseline/kube-hash.js';
import { buildCluster, replaceLastEndpoint, servicePortNameString, type BenchService } from '../../bench/baseline/services.js';

// From the seed, verbatim (iptables-save output of kube-proxy's nat table).
const SEED = `
-A KUBE-SVC-4N57TFCL4MD7ZTDA -m comment --comment "default/nginx:" -m statistic --mode random --probability 0.33332999982 -j KUBE-SEP-STSN56UHN37DAPPX
-A KUBE-SVC-4N57TFCL4MD7ZTDA -m comment --comment "default/nginx:" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-IPTMJGQD74YPEYY6
-A KUBE-SVC-4N57TFCL4MD7ZTDA -m comment --comment "default/nginx:" -j KUBE-SEP-X2W3L3F2HKXUPYXK
-A KUBE-SEP-IPTMJGQD74YPEYY6 -s 10.244.0.16/32 -m comment --comment "default/nginx:" -j KUBE-MARK-MASQ
-A KUBE-SEP-IPTMJGQD74YPEYY6 -p tcp -m comment --comment "default/nginx:" -m tcp -j DNAT --to-destination 10.244.0.16:80
`.trim().split('\n');

// The seed's other services: ServicePortName + protocol -> the KUBE-SVC chain it shows.
const SEED_SVC_CHAINS: Array<[string, string, string]> = [
  ['default/redis-master:', 'tcp', 'KUBE-SVC-7GF4BJM3Z6CMNVML'],
  ['default/redis-slave:', 'tcp', 'KUBE-SVC-AGR3D4D4FQNH4O33'],
  ['default/frontend:', 'tcp', 'KUBE-SVC-GYQQTB6TY565JPRW'],
  ['default/kubernetes:https', 'tcp', 'KUBE-SVC-NPX46M4PTMTKRN6Y'],
  ['kube-system/kube-dns:dns', 'udp', 'KUBE-SVC-TCOU7JCQXEZGVUNU'],
];

/** One iptables rule as a set of facts, whatever order the arguments come in. */
interface Rule {
  chain: string;
  target: string;
  source?: string;
  proto?: string;
  probability?: number;
  probabilityText?: string;
  comment?: string;
  dnatTo?: string;
}

function parseRule(line: string): Rule {
  const words = line.match(/"[^"]*"|\S+/g)!;
  const r: Rule = { chain: '', target: '' };
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    const next = () => words[++i];
    if (w === '-A') r.chain = next();
    else if (w === '-j') r.target = next();
    else if (w === '-s') r.source = next().replace(/\/32$/, '');
    else if (w === '-p') r.proto = next();
    else if (w === '--probability') {
      r.probabilityText = next();
      r.probability = Number(r.probabilityText);
    } else if (w === '--comment') r.comment = next().replace(/^"|"$/g, '');
    else if (w === '--to-destination') r.dnatTo = next();
  }
  return r;
}

// The seed's three endpoints, in its order. Only 10.244.0.16 is printed there; the
// other two are the pod addresses whose KUBE-SEP hashes are the seed's chain names
// (checked below), so the comparison covers all three chains.
const NGINX: BenchService = {
  namespace: 'default',
  name: 'nginx',
  portName: '',
  protocol: 'TCP',
  clusterIP: '10.0.0.10',
  port: 80,
  endpoints: [
    { ip: '10.244.0.15', port: 80 },
    { ip: '10.244.0.16', port: 80 },
    { ip: '10.244.4.14', port: 80 },
  ],
};
const LEGACY_NAME = 'default/nginx:'; // how the seed's proxier spelled this ServicePortName

describe('kube-proxy chain names', () => {
  it('base32 is RFC 4648 (Go StdEncoding)', () => {
    expect(base32(Buffer.from('foobar'))).toBe('MZXW6YTBOI'); // RFC 4648 test vector, unpadded
    expect(base32(Buffer.from('f'))).toBe('MY');
  });

  it('reproduces every chain name of the seed from its service and endpoint', () => {
    expect(svcChainName(LEGACY_NAME, 'tcp')).toBe('KUBE-SVC-4N57TFCL4MD7ZTDA');
    expect(NGINX.endpoints.map((e) => sepChainName(LEGACY_NAME, 'tcp', `${e.ip}:${e.port}`))).toEqual([
      'KUBE-SEP-STSN56UHN37DAPPX',
      'KUBE-SEP-IPTMJGQD74YPEYY6',
      'KUBE-SEP-X2W3L3F2HKXUPYXK',
    ]);
    for (const [name, proto, chain] of SEED_SVC_CHAINS) expect(svcChainName(name, proto)).toBe(chain);
    expect(sepChainName('default/kubernetes:https', 'tcp', '172.29.132.126:6443')).toBe('KUBE-SEP-EHCIXHWU3R7SVNN2');
  });

  it('spells the ServicePortName as the current proxier does', () => {
    expect(servicePortNameString(NGINX)).toBe('default/nginx');
    expect(servicePortNameString({ namespace: 'default', name: 'kubernetes', portName: 'https' })).toBe('default/kubernetes:https');
  });

  it('formats probabilities with %0.10f', () => {
    expect(computeProbability(3)).toBe('0.3333333333');
    expect(computeProbability(2)).toBe('0.5000000000');
    expect(computeProbability(7)).toBe('0.1428571429');
  });
});

describe('the generated rules of a 3-endpoint service against the seed', () => {
  const text = restoreInput([NGINX]);
  const name = servicePortNameString(NGINX);
  const svc = svcChainName(name, 'tcp');
  const seps = NGINX.endpoints.map((e) => sepChainName(name, 'tcp', `${e.ip}:${e.port}`));
  // The seed's chains under the current proxier's names.
  const rename = new Map([[svcChainName(LEGACY_NAME, 'tcp'), svc], ...NGINX.endpoints.map((e, i) => [sepChainName(LEGACY_NAME, 'tcp', `${e.ip}:${e.port}`), seps[i]] as [string, string])]);
  const seed = SEED.map(parseRule).map((r) => ({ ...r, chain: rename.get(r.chain) ?? r.chain, target: rename.get(r.target) ?? r.target }));
  const generated = text
    .split('\n')
    .filter((l) => (l.startsWith(`-A ${svc} `) && !l.includes("KUBE-MARK-MASQ")) || l.startsWith(`-A ${seps[1]} `))
    .map(parseRule);

  it('has the seed\'s rules, in its order, with the same matches and targets', () => {
    expect(generated.map((r) => [r.chain, r.target, r.source, r.proto, r.dnatTo])).toEqual(seed.map((r) => [r.chain, r.target, r.source, r.proto, r.dnatTo]));
  });

  it('gives the same probabilities, written as the current proxier writes them', () => {
    const g = generated.filter((r) => r.chain === svc);
    const s = seed.filter((r) => r.chain === svc);
    expect(g.map((r) => r.probabilityText)).toEqual(['0.3333333333', '0.5000000000', undefined]);
    expect(s.map((r) => r.probabilityText)).toEqual(['0.33332999982', '0.50000000000', undefined]);
    g.forEach((r, i) => {
      if (s[i].probability === undefined) expect(r.probability).toBeUndefined();
      else expect(r.probability!).toBeCloseTo(s[i].probability!, 4);
    });
    // The last endpoint is unconditional: the three rules together pick each endpoint 1/3 of the time.
    const p = g.map((r) => r.probability ?? 1);
    expect(p[0]).toBeCloseTo(1 / 3, 9);
    expect((1 - p[0]) * p[1]).toBeCloseTo(1 / 3, 9);
    expect((1 - p[0]) * (1 - p[1]) * p[2]).toBeCloseTo(1 / 3, 9);
  });

  it('writes the current proxier\'s comments where the seed has the old ones', () => {
    const g = generated.filter((r) => r.chain === svc);
    expect(g.map((r) => r.comment)).toEqual(NGINX.endpoints.map((e) => `default/nginx -> ${e.ip}:${e.port}`));
    expect(seed.every((r) => r.comment === 'default/nginx:')).toBe(true);
    expect(generated.filter((r) => r.chain === seps[1]).map((r) => r.comment)).toEqual(['default/nginx', 'default/nginx']);
  });

  it('has the rest of the proxier\'s structure around the service', () => {
    const lines = text.split('\n');
    expect(lines[0]).toBe('*filter');
    expect(lines).toContain('*nat');
    expect(lines.filter((l) => l === 'COMMIT')).toHaveLength(2);
    for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', svc, ...seps]) expect(lines).toContain(`:${c} - [0:0]`);
    expect(lines).toContain(`-A KUBE-SERVICES -m comment --comment "default/nginx cluster IP" -m tcp -p tcp -d 10.0.0.10 --dport 80 -j ${svc}`);
    expect(lines).toContain(`-A ${svc} -m comment --comment "default/nginx cluster IP" -m tcp -p tcp -d 10.0.0.10 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`);
    expect(lines).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000');
    expect(lines).toContain('-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN');
    expect(lines).toContain('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully');
    // The NodePort tail-call is the last rule of KUBE-SERVICES.
    const ks = lines.filter((l) => l.startsWith('-A KUBE-SERVICES '));
    expect(ks[ks.length - 1]).toContain('-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  });
});

describe('sizes and syncs', () => {
  it('one KUBE-SERVICES jump per service port, E SEP chains per service, KUBE-NODEPORTS for NodePorts', () => {
    const services = buildCluster({ services: 30, endpoints: 4, nodePortEvery: 10 });
    const lines = restoreInput(services).split('\n');
    expect(lines.filter((l) => l.startsWith('-A KUBE-SERVICES ') && l.includes('cluster IP'))).toHaveLength(31); // + udp-echo
    expect(lines.filter((l) => /^:KUBE-SEP-/.test(l))).toHaveLength(31 * 4);
    expect(lines.filter((l) => l.startsWith('-A KUBE-NODEPORTS '))).toHaveLength(3);
    expect(lines.filter((l) => /^:KUBE-EXT-/.test(l))).toHaveLength(3);
    expect(lines.filter((l) => l.includes('--probability'))).toHaveLength(31 * 3);
  });

  it('drops per-endpoint comments above the large-cluster threshold, as kube-proxy does', () => {
    const services = buildCluster({ services: Math.ceil(LARGE_CLUSTER_ENDPOINTS / 5) + 1, endpoints: 5 });
    const lines = restoreInput(services).split('\n');
    expect(lines.filter((l) => l.startsWith('-A KUBE-SEP-') && l.includes('--comment'))).toHaveLength(0);
    expect(lines.filter((l) => l.startsWith('-A KUBE-SERVICES ') && l.includes('cluster IP'))).toHaveLength(services.length);
  });

  it('a partial restore rewrites the top-level chains and only the changed service\'s chains', () => {
    const services = buildCluster({ services: 20, endpoints: 3 });
    const c = replaceLastEndpoint(services, 7);
    const text = partialRestoreInput(c.services, c.services[7], [c.removed]);
    const name = servicePortNameString(c.services[7]);
    const lines = text.split('\n');
    const svcChains = lines.filter((l) => /^:KUBE-SVC-/.test(l));
    expect(svcChains).toEqual([`:${svcChainName(name, 'tcp')} - [0:0]`]);
    expect(lines.filter((l) => l.startsWith('-A KUBE-SERVICES ') && l.includes('cluster IP'))).toHaveLength(21);
    const removed = sepChainName(name, 'tcp', `${c.removed.ip}:${c.removed.port}`);
    expect(lines).toContain(`:${removed} - [0:0]`);
    expect(lines).toContain(`-X ${removed}`);
    expect(lines).toContain(`-A ${sepChainName(name, 'tcp', `${c.added.ip}:${c.added.port}`)} -m comment --comment ${name} -m tcp -p tcp -j DNAT --to-destination ${c.added.ip}:${c.added.port}`);
  });
});
