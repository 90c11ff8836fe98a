import { describe, expect, it } from 'vitest';
import { LbAlgorithm, SvcFlags, SvcScope } from '../datapath/types.gen.js';
import { buildDesired, type ModelInput } from './model.js';
import { node, port, service, slice } from './testobjects.js';
import { frontendKey, ipString, parseIPv4, type DesiredFrontend, type DesiredState } from './types.js';

const ip = (s: string) => parseIPv4(s)!;
const ME = 'node-a';
const TCP = 6;
const UDP = 17;

function build(partial: Partial<ModelInput>, previous?: Parameters<typeof buildDesired>[1]) {
  return buildDesired({ services: [], slices: [], nodeName: ME, defaultAlgorithm: 'random', ...partial }, previous);
}

function fe(state: DesiredState, addr: string, p: number, proto = TCP, scope: number = SvcScope.SVC_SCOPE_EXT): DesiredFrontend {
  const f = state.frontends.get(frontendKey({ addr: addr === '0' ? 0 : ip(addr), port: p, proto, scope }));
  if (!f) throw new Error(`no frontend ${addr}:${p}/${proto}#${scope}; have ${[...state.frontends.keys()].join(' ')}`);
  return f;
}

const three = slice('web-1', 'web', [{ name: 'http', port: 8080 }], [
  { ip: '10.244.0.1', node: ME },
  { ip: '10.244.1.1', node: 'node-b' },
  { ip: '10.244.2.1', node: 'node-c' },
]);

describe('service model: frontends', () => {
  it('ClusterIP with several ports, each resolved by port name from the slices', () => {
    const out = build({
      services: [service('web', { ports: [port(80, { name: 'http', targetPort: 'http' as never }), port(53, { name: 'dns', protocol: 'UDP' })] })],
      slices: [slice('web-1', 'web', [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: '10.244.0.1' }, { ip: '10.244.0.2' }])],
    });
    expect(out.problems).toEqual([]);
    expect(out.state.frontends.size).toBe(2);
    const http = fe(out.state, '10.96.0.10', 80);
    expect(http.flags).toBe(SvcFlags.SVC_F_CLUSTERIP);
    expect(http.backends).toEqual(['10.244.0.1:8080/6', '10.244.0.2:8080/6']);
    expect(http.revnat).toEqual({ addr: ip('10.96.0.10'), port: 80 });
    expect(http.algorithm).toBe(LbAlgorithm.LB_ALG_RANDOM);
    const dns = fe(out.state, '10.96.0.10', 53, UDP);
    expect(dns.backends).toEqual(['10.244.0.1:5353/17', '10.244.0.2:5353/17']);
    expect(out.state.backends.size).toBe(4);
  });

  it('a named targetPort takes the port of the slice port with the Service port name', () => {
    const out = build({
      services: [service('web', { ports: [port(443, { name: 'https', targetPort: 'tls-alt' as never })] })],
      slices: [slice('web-1', 'web', [{ name: 'https', port: 8443 }, { name: 'other', port: 9999 }], [{ ip: '10.244.0.1' }])],
    });
    expect(fe(out.state, '10.96.0.10', 443).backends).toEqual(['10.244.0.1:8443/6']);
  });

  it('a slice port of another protocol or name is not used; no matching port means no backends', () => {
    const out = build({
      services: [service('web', { ports: [port(80, { name: 'http' })] })],
      slices: [slice('web-1', 'web', [{ name: 'http', port: 8080, protocol: 'UDP' }, { name: 'x', port: 1 }], [{ ip: '10.244.0.1' }])],
    });
    expect(fe(out.state, '10.96.0.10', 80).backends).toEqual([]);
    expect(out.state.backends.size).toBe(0);
  });

  it('NodePort: one addr-0 entry per nodePort per protocol; node addresses from the Node', () => {
    const out = build({
      services: [
        service('np', {
          type: 'NodePort',
          ports: [port(80, { name: 'http', nodePort: 30080 }), port(80, { name: 'http-udp', protocol: 'UDP', nodePort: 30080 })],
        }),
      ],
      slices: [slice('np-1', 'np', [{ name: 'http', port: 8080 }, { name: 'http-udp', port: 8080, protocol: 'UDP' }], [{ ip: '10.244.0.1' }])],
      node: node(ME, [['InternalIP', '192.168.1.10'], ['ExternalIP', '203.0.113.5'], ['Hostname', 'node-a'], ['InternalIP', 'fd00::1']]),
    });
    expect(out.problems).toEqual([]);
    const tcp = fe(out.state, '0', 30080, TCP);
    const udp = fe(out.state, '0', 30080, UDP);
    expect(tcp.flags).toBe(SvcFlags.SVC_F_NODEPORT);
    expect(tcp.backends).toEqual(['10.244.0.1:8080/6']);
    expect(udp.backends).toEqual(['10.244.0.1:8080/17']);
    expect(tcp.revnat).toEqual({ addr: 0, port: 30080 });
    expect(fe(out.state, '10.96.0.10', 80, TCP).flags).toBe(SvcFlags.SVC_F_CLUSTERIP);
    expect(out.state.frontends.size).toBe(4);
    expect([...out.state.nodeAddrs].map(ipString).sort()).toEqual(['192.168.1.10', '203.0.113.5']);
  });

  it('a Node object for another node is a problem; the extra addresses still count', () => {
    const out = build({ node: node('node-z', [['InternalIP', '192.168.1.99']]), extraNodeAddrs: [ip('192.168.1.10')] });
    expect(out.problems).toMatchObject([{ kind: 'Node', name: 'node-z', field: 'metadata.name' }]);
    expect([...out.state.nodeAddrs]).toEqual([ip('192.168.1.10')]);
  });

  it('LoadBalancer: ingress IPs (not hostnames, not ipMode Proxy) plus its NodePort', () => {
    const out = build({
      services: [
        service('lb', { type: 'LoadBalancer', ports: [port(443, { name: 'https', nodePort: 31443 })] }, {
          status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }, { hostname: 'lb.example.com' }, { ip: '198.51.100.8', ipMode: 'Proxy' }] } },
        }),
      ],
      slices: [slice('lb-1', 'lb', [{ name: 'https', port: 8443 }], [{ ip: '10.244.0.1' }])],
    });
    expect(out.problems).toEqual([]);
    expect(fe(out.state, '198.51.100.7', 443).flags).toBe(SvcFlags.SVC_F_LOADBALANCER);
    expect(fe(out.state, '198.51.100.7', 443).revnat).toEqual({ addr: ip('198.51.100.7'), port: 443 });
    expect(fe(out.state, '0', 31443).flags).toBe(SvcFlags.SVC_F_NODEPORT);
    expect(out.state.frontends.size).toBe(3); // ClusterIP, LB IP, NodePort
  });

  it('LoadBalancer with allocateLoadBalancerNodePorts false has no NodePort entry', () => {
    const out = build({
      services: [
        service('lb', { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, ports: [port(443, { name: 'https' })] }, {
          status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } },
        }),
      ],
    });
    expect([...out.state.frontends.values()].map((f) => f.flags).sort()).toEqual([SvcFlags.SVC_F_CLUSTERIP, SvcFlags.SVC_F_LOADBALANCER]);
  });

  it('externalIPs: one entry per IP and port', () => {
    const out = build({
      services: [service('ext', { externalIPs: ['203.0.113.10', '203.0.113.11'], ports: [port(80, { name: 'a' }), port(81, { name: 'b' })] })],
    });
    for (const a of ['203.0.113.10', '203.0.113.11']) for (const p of [80, 81]) expect(fe(out.state, a, p).flags).toBe(SvcFlags.SVC_F_EXTERNALIP);
    expect(out.state.frontends.size).toBe(6);
  });

  it('sessionAffinity ClientIP: default timeout 10800, or the configured one', () => {
    const out = build({
      services: [
        service('a', { sessionAffinity: 'ClientIP', ports: [port(80)] }),
        service('b', { clusterIP: '10.96.0.11', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }, ports: [port(80)] }),
        service('c', { clusterIP: '10.96.0.12', sessionAffinity: 'None', ports: [port(80)] }),
      ],
    });
    expect(fe(out.state, '10.96.0.10', 80)).toMatchObject({ affinityTimeout: 10800, flags: SvcFlags.SVC_F_CLUSTERIP | SvcFlags.SVC_F_AFFINITY });
    expect(fe(out.state, '10.96.0.11', 80)).toMatchObject({ affinityTimeout: 60 });
    expect(fe(out.state, '10.96.0.12', 80)).toMatchObject({ affinityTimeout: 0, flags: SvcFlags.SVC_F_CLUSTERIP });
  });

  it('externalTrafficPolicy Local: external scope has only local backends, internal scope all', () => {
    const out = build({
      services: [service('web', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [port(80, { name: 'http', nodePort: 30080 })] })],
      slices: [three],
    });
    const ext = fe(out.state, '0', 30080);
    expect(ext.flags).toBe(SvcFlags.SVC_F_NODEPORT | SvcFlags.SVC_F_ETP_LOCAL | SvcFlags.SVC_F_TWO_SCOPES);
    expect(ext.backends).toEqual(['10.244.0.1:8080/6']);
    const int = fe(out.state, '0', 30080, TCP, SvcScope.SVC_SCOPE_INT);
    expect(int.flags).toBe(SvcFlags.SVC_F_NODEPORT | SvcFlags.SVC_F_ETP_LOCAL);
    expect(int.backends).toHaveLength(3);
    // ETP does not apply to the ClusterIP: one scope, every backend.
    const cip = fe(out.state, '10.96.0.10', 80);
    expect(cip.flags).toBe(SvcFlags.SVC_F_CLUSTERIP);
    expect(cip.backends).toHaveLength(3);
    expect(out.state.frontends.size).toBe(3);
    expect(out.state.backends.get('10.244.0.1:8080/6')!.local).toBe(true);
    expect(out.state.backends.get('10.244.1.1:8080/6')!.local).toBe(false);
  });

  it('internalTrafficPolicy Local: internal scope has only local backends', () => {
    const out = build({
      services: [service('web', { type: 'NodePort', internalTrafficPolicy: 'Local', ports: [port(80, { name: 'http', nodePort: 30080 })] })],
      slices: [three],
    });
    const ext = fe(out.state, '10.96.0.10', 80);
    expect(ext.flags).toBe(SvcFlags.SVC_F_CLUSTERIP | SvcFlags.SVC_F_ITP_LOCAL | SvcFlags.SVC_F_TWO_SCOPES);
    expect(ext.backends).toHaveLength(3);
    const int = fe(out.state, '10.96.0.10', 80, TCP, SvcScope.SVC_SCOPE_INT);
    expect(int.backends).toEqual(['10.244.0.1:8080/6']);
    expect(fe(out.state, '0', 30080, TCP, SvcScope.SVC_SCOPE_INT).backends).toEqual(['10.244.0.1:8080/6']);
  });

  it('both policies Local: one scope with the local backends', () => {
    const out = build({
      services: [
        service('web', { type: 'NodePort', internalTrafficPolicy: 'Local', externalTrafficPolicy: 'Local', ports: [port(80, { name: 'http', nodePort: 30080 })] }),
      ],
      slices: [three],
    });
    const np = fe(out.state, '0', 30080);
    expect(np.flags).toBe(SvcFlags.SVC_F_NODEPORT | SvcFlags.SVC_F_ITP_LOCAL | SvcFlags.SVC_F_ETP_LOCAL);
    expect(np.backends).toEqual(['10.244.0.1:8080/6']);
    // The ClusterIP: ETP does not apply, so its scopes differ.
    expect(fe(out.state, '10.96.0.10', 80, TCP, SvcScope.SVC_SCOPE_INT).backends).toEqual(['10.244.0.1:8080/6']);
    expect(out.state.frontends.size).toBe(3);
  });

  it('headless and ExternalName services are ignored without problems', () => {
    const out = build({
      services: [service('headless', { clusterIP: 'None', ports: [port(80)] }), { metadata: { name: 'ext', namespace: 'default' }, spec: { type: 'ExternalName', externalName: 'example.com' } }],
      slices: [slice('headless-1', 'headless', [{ port: 80 }], [{ ip: '10.244.0.1' }])],
    });
    expect(out.problems).toEqual([]);
    expect(out.state.frontends.size).toBe(0);
    expect(out.state.backends.size).toBe(0);
  });

  it('SCTP ports are reported as unsupported; the other ports are programmed', () => {
    const out = build({ services: [service('mixed', { ports: [port(80, { name: 'http' }), port(3868, { name: 'diameter', protocol: 'SCTP' })] })] });
    expect(out.problems).toEqual([
      { kind: 'Service', namespace: 'default', name: 'mixed', field: 'spec.ports[1].protocol', message: 'SCTP is not supported; port skipped', skipped: 'field' },
    ]);
    expect(out.state.frontends.size).toBe(1);
    fe(out.state, '10.96.0.10', 80);
  });

  it('algorithm: the agent default, the annotation, and a bad annotation falls back to the default', () => {
    const svcs = [
      service('plain', { ports: [port(80)] }),
      service('mag', { clusterIP: '10.96.0.11', ports: [port(80)] }, { metadata: { annotations: { 'weir.io/lb-algorithm': 'maglev' } } }),
      service('rnd', { clusterIP: '10.96.0.12', ports: [port(80)] }, { metadata: { annotations: { 'weir.io/lb-algorithm': 'random' } } }),
      service('bad', { clusterIP: '10.96.0.13', ports: [port(80)] }, { metadata: { annotations: { 'weir.io/lb-algorithm': 'round-robin' } } }),
    ];
    const r = build({ services: svcs });
    expect([10, 11, 12, 13].map((i) => fe(r.state, `10.96.0.${i}`, 80).algorithm)).toEqual([0, 1, 0, 0]);
    expect(r.problems).toMatchObject([{ kind: 'Service', namespace: 'default', name: 'bad', field: 'metadata.annotations["weir.io/lb-algorithm"]', skipped: 'field' }]);
    const m = build({ services: svcs, defaultAlgorithm: 'maglev' });
    expect([10, 11, 12, 13].map((i) => fe(m.state, `10.96.0.${i}`, 80).algorithm)).toEqual([1, 1, 0, 1]);
    expect(() => build({ defaultAlgorithm: 'rr' as never })).toThrow(/lb algorithm "rr"/);
  });

  it('a Maglev frontend with more backends than the table size falls back to random, reported', () => {
    const out = build({
      services: [service('big', { ports: [port(80, { name: 'http' })] }, { metadata: { annotations: { 'weir.io/lb-algorithm': 'maglev' } } })],
      slices: [slice('big-1', 'big', [{ name: 'http', port: 8080 }], Array.from({ length: 8 }, (_, i) => ({ ip: `10.244.0.${i + 1}` })))],
      maglevM: 7,
    });
    expect(fe(out.state, '10.96.0.10', 80)).toMatchObject({ algorithm: LbAlgorithm.LB_ALG_RANDOM });
    expect(fe(out.state, '10.96.0.10', 80).backends).toHaveLength(8);
    expect(out.problems).toMatchObject([{ kind: 'Service', name: 'big', skipped: 'field', message: '8 backends do not fit a Maglev table of 7; using random' }]);
  });
});

describe('service model: endpoints', () => {
  const svc = service('web', { ports: [port(80, { name: 'http' })] });
  const backendsOf = (eps: Parameters<typeof slice>[3]) => {
    const out = build({ services: [svc], slices: [slice('web-1', 'web', [{ name: 'http', port: 8080 }], eps)] });
    const f = fe(out.state, '10.96.0.10', 80);
    return f.backends.map((k) => `${k.split(':')[0]}${out.state.backends.get(k)!.terminating ? ' (terminating)' : ''}`);
  };

  it('ready and unset-ready endpoints are used; not-ready ones are not', () => {
    expect(backendsOf([{ ip: '10.244.0.1', ready: true }, { ip: '10.244.0.2' }, { ip: '10.244.0.3', ready: false, serving: false }])).toEqual(['10.244.0.1', '10.244.0.2']);
  });

  it('serving+terminating endpoints are used only when no ready one remains', () => {
    const terminating = { ip: '10.244.0.2', ready: false, serving: true, terminating: true };
    expect(backendsOf([{ ip: '10.244.0.1', ready: true }, terminating])).toEqual(['10.244.0.1']);
    expect(backendsOf([{ ip: '10.244.0.1', ready: false, serving: false, terminating: true }, terminating])).toEqual(['10.244.0.2 (terminating)']);
    // Serving but not terminating (and not ready): not a fallback, as in kube-proxy.
    expect(backendsOf([{ ip: '10.244.0.1', ready: false, serving: true, terminating: false }])).toEqual([]);
    // Not serving and not terminating: never used.
    expect(backendsOf([{ ip: '10.244.0.1', ready: false, serving: false, terminating: false }])).toEqual([]);
  });

  it('the fallback is per scope: a Local scope falls back to its own terminating endpoints', () => {
    const out = build({
      services: [service('web', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [port(80, { name: 'http', nodePort: 30080 })] })],
      slices: [
        slice('web-1', 'web', [{ name: 'http', port: 8080 }], [
          { ip: '10.244.0.1', node: ME, ready: false, serving: true, terminating: true },
          { ip: '10.244.1.1', node: 'node-b', ready: true },
        ]),
      ],
    });
    expect(fe(out.state, '0', 30080).backends).toEqual(['10.244.0.1:8080/6']);
    expect(fe(out.state, '0', 30080, TCP, SvcScope.SVC_SCOPE_INT).backends).toEqual(['10.244.1.1:8080/6']);
    expect(out.state.backends.get('10.244.0.1:8080/6')).toMatchObject({ terminating: true, local: true });
  });

  it('several slices are merged and duplicate endpoints counted once', () => {
    const out = build({
      services: [svc],
      slices: [
        slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1' }, { ip: '10.244.0.2' }]),
        slice('web-2', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.2' }, { ip: '10.244.0.3' }]),
        slice('other-1', 'other', [{ name: 'http', port: 8080 }], [{ ip: '10.244.9.9' }]),
        slice('web-ns2', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.8.8' }], 'other-ns'),
      ],
    });
    expect(fe(out.state, '10.96.0.10', 80).backends).toEqual(['10.244.0.1:8080/6', '10.244.0.2:8080/6', '10.244.0.3:8080/6']);
  });

  it('a duplicate endpoint that is ready in one slice and terminating in another counts as ready', () => {
    const out = build({
      services: [svc],
      slices: [
        slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1', ready: false, serving: true, terminating: true }]),
        slice('web-2', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1', ready: true }, { ip: '10.244.0.2', ready: true }]),
      ],
    });
    expect(fe(out.state, '10.96.0.10', 80).backends).toHaveLength(2);
    expect(out.state.backends.get('10.244.0.1:8080/6')!.terminating).toBe(false);
  });

  it('IPv6 and FQDN slices are not used', () => {
    const v6 = { ...slice('web-v6', 'web', [{ name: 'http', port: 8080 }], [{ ip: 'fd00::1' }]), addressType: 'IPv6' };
    const out = build({ services: [svc], slices: [v6] });
    expect(out.problems).toEqual([]);
    expect(fe(out.state, '10.96.0.10', 80).backends).toEqual([]);
  });

  it('a backend shared by two services is one entry; active wins over terminating', () => {
    const out = build({
      services: [svc, service('web2', { clusterIP: '10.96.0.11', ports: [port(80, { name: 'http' })] })],
      slices: [
        slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1', ready: true }]),
        slice('web2-1', 'web2', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1', ready: false, serving: true, terminating: true }]),
      ],
    });
    expect(out.state.backends.size).toBe(1);
    expect(out.state.backends.get('10.244.0.1:8080/6')!.terminating).toBe(false);
    expect(fe(out.state, '10.96.0.11', 80).backends).toEqual(['10.244.0.1:8080/6']);
  });
});

describe('service model: bad input', () => {
  const good = service('good', { clusterIP: '10.96.0.50', ports: [port(80, { name: 'http' })] });
  const goodSlice = slice('good-1', 'good', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1' }]);

  const cases: Array<[string, ReturnType<typeof service>, string]> = [
    ['invalid clusterIP', service('bad', { clusterIP: '10.96.0.300', ports: [port(80)] }), 'spec.clusterIP'],
    ['port 0', service('bad', { ports: [port(0)] }), 'spec.ports[0].port'],
    ['port above 65535', service('bad', { ports: [port(80), port(70000)] }), 'spec.ports[1].port'],
    ['missing port', service('bad', { ports: [{ name: 'x' } as never] }), 'spec.ports[0].port'],
    ['missing ports', service('bad', {}), 'spec.ports'],
    ['bad protocol', service('bad', { ports: [port(80, { protocol: 'ICMP' })] }), 'spec.ports[0].protocol'],
    ['invalid externalIP', service('bad', { externalIPs: ['203.0.113.1', 'not-an-ip'], ports: [port(80)] }), 'spec.externalIPs[1]'],
    ['NodePort without nodePort', service('bad', { type: 'NodePort', ports: [port(80)] }), 'spec.ports[0].nodePort'],
    ['nodePort out of range', service('bad', { type: 'NodePort', ports: [port(80, { nodePort: 99999 })] }), 'spec.ports[0].nodePort'],
    ['invalid LB ingress IP', service('bad', { type: 'LoadBalancer', ports: [port(80, { nodePort: 30001 })] }, { status: { loadBalancer: { ingress: [{ ip: '1.2.3' }] } } }), 'status.loadBalancer.ingress[0].ip'],
    ['unknown type', service('bad', { type: 'Weird', ports: [port(80)] }), 'spec.type'],
    ['missing clusterIP', service('bad', { clusterIP: undefined, ports: [port(80)] }), 'spec.clusterIP'],
    ['missing spec', { metadata: { name: 'bad', namespace: 'default' } }, 'spec'],
  ];
  for (const [what, bad, field] of cases) {
    it(`${what}: reported with namespace/name/field, skipped, others untouched`, () => {
      const out = build({ services: [good, bad], slices: [goodSlice] });
      expect(out.problems).toHaveLength(1);
      expect(out.problems[0]).toMatchObject({ kind: 'Service', namespace: 'default', name: 'bad', field, skipped: 'object' });
      expect(out.state.frontends.size).toBe(1);
      expect(fe(out.state, '10.96.0.50', 80).backends).toEqual(['10.244.0.1:8080/6']);
      expect(out.services.has('default/bad')).toBe(false);
    });
  }

  it('a Service without a name is reported and skipped', () => {
    const out = build({ services: [good, { metadata: { namespace: 'default' }, spec: { clusterIP: '10.96.0.9', ports: [{ port: 80 }] } }] });
    expect(out.problems).toMatchObject([{ kind: 'Service', namespace: 'default', name: '', field: 'metadata.name' }]);
    expect(out.state.frontends.size).toBe(1);
  });

  const sliceCases: Array<[string, ReturnType<typeof slice>, string]> = [
    ['invalid endpoint address', slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1' }, { ip: '10.244.0.999' }]), 'endpoints[1].addresses[0]'],
    ['slice port 0', slice('web-1', 'web', [{ name: 'http', port: 0 }], [{ ip: '10.244.0.1' }]), 'ports[0].port'],
    ['slice port missing', slice('web-1', 'web', [{ name: 'http' }], [{ ip: '10.244.0.1' }]), 'ports[0].port'],
    ['endpoint without addresses', { ...slice('web-1', 'web', [{ name: 'http', port: 8080 }], []), endpoints: [{ addresses: [] }] }, 'endpoints[0].addresses'],
  ];
  for (const [what, bad, field] of sliceCases) {
    it(`slice with ${what}: reported, skipped, the service keeps its previous backends`, () => {
      const web = service('web', { ports: [port(80, { name: 'http' })] });
      const before = build({ services: [web, good], slices: [slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.7' }]), goodSlice] });
      expect(before.problems).toEqual([]);
      const after = build({ services: [web, good], slices: [bad, goodSlice] }, before.services);
      expect(after.problems).toHaveLength(1);
      expect(after.problems[0]).toMatchObject({ kind: 'EndpointSlice', namespace: 'default', name: 'web-1', field, skipped: 'object' });
      expect(fe(after.state, '10.96.0.10', 80).backends).toEqual(['10.244.0.7:8080/6']);
      expect(fe(after.state, '10.96.0.50', 80).backends).toEqual(['10.244.0.1:8080/6']);
      // Without a previous state the broken slice contributes nothing.
      const cold = build({ services: [web], slices: [bad] });
      expect(fe(cold.state, '10.96.0.10', 80).backends).toEqual([]);
    });
  }

  it('a Service that turns malformed keeps what it had; fixed, it is rebuilt', () => {
    const v1 = service('web', { ports: [port(80, { name: 'http' })] });
    const s = slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1' }]);
    const before = build({ services: [v1, good], slices: [s, goodSlice] });
    const broken = service('web', { ports: [port(80, { name: 'http' }), port(0, { name: 'x' })] });
    const during = build({ services: [broken, good], slices: [s, goodSlice] }, before.services);
    expect(during.problems).toMatchObject([{ name: 'web', field: 'spec.ports[1].port' }]);
    expect([...during.state.frontends.keys()].sort()).toEqual([...before.state.frontends.keys()].sort());
    expect(fe(during.state, '10.96.0.10', 80).backends).toEqual(['10.244.0.1:8080/6']);
    // Deleted (no longer listed) means gone, even with a previous state.
    const deleted = build({ services: [good], slices: [goodSlice] }, during.services);
    expect(deleted.state.frontends.size).toBe(1);
  });

  it('a frontend claimed by two Services goes to the first by name; the second is reported', () => {
    const out = build({
      services: [
        service('b', { clusterIP: '10.96.0.2', externalIPs: ['203.0.113.1'], ports: [port(80)] }),
        service('a', { clusterIP: '10.96.0.1', externalIPs: ['203.0.113.1'], ports: [port(80)] }),
      ],
    });
    expect(fe(out.state, '203.0.113.1', 80).service).toBe('default/a');
    expect(out.problems).toMatchObject([{ kind: 'Service', name: 'b', skipped: 'field' }]);
    expect(out.state.frontends.size).toBe(3);
  });

  it('bad traffic policy and affinity values fall back to defaults with a problem', () => {
    const out = build({
      services: [
        service('p', {
          externalTrafficPolicy: 'Sometimes',
          sessionAffinity: 'ClientIP',
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } },
          ports: [port(80)],
        }),
      ],
    });
    expect(out.problems.map((p) => p.field)).toEqual(['spec.externalTrafficPolicy', 'spec.sessionAffinityConfig.clientIP.timeoutSeconds']);
    expect(fe(out.state, '10.96.0.10', 80)).toMatchObject({ affinityTimeout: 10800, flags: SvcFlags.SVC_F_CLUSTERIP | SvcFlags.SVC_F_AFFINITY });
  });
});

describe('parseIPv4', () => {
  it('accepts dotted quads only', () => {
    expect(parseIPv4('10.96.0.1')).toBe(0x0a600001);
    expect(parseIPv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['10.96.0', '10.96.0.256', '010.1.1.1', ' 10.1.1.1', '1.2.3.4.5', 'a.b.c.d', '', undefined, 7]) expect(parseIPv4(bad)).toBeUndefined();
  });
});
