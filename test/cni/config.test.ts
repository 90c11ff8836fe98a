// The CNI plugin's pure parts: environment and configuration validation with
// the spec's error codes, version negotiation, and result formats per version.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeStdin, parseCniArgs, parseEnv, parseNetConf, validIfname } from '../../control/cni/config.js';
import { CniError, ErrorCode } from '../../control/cni/errors.js';
import { endpointResult } from '../../control/cni/main.js';
import { formatResult, negotiateVersion, prevResultAddress } from '../../control/cni/spec.js';
import { repoRoot } from '../lib/fixtures.js';

const codeOf = (fn: () => unknown): number | undefined => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return (e as CniError).code;
  }
  return undefined;
};

const env = (o: Record<string, string | undefined>) => ({ CNI_PATH: '/opt/cni/bin', ...o }) as NodeJS.ProcessEnv;
const base = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0' };
const conf = (o: Record<string, unknown> = {}) => ({ cniVersion: '1.1.0', name: 'weir', type: 'weir-cni', ...o });

describe('environment', () => {
  it('reads every CNI_* variable and the Kubernetes CNI_ARGS', () => {
    const e = parseEnv(env({ ...base, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c0ffee' }));
    expect(e).toEqual({
      command: 'ADD',
      containerId: 'c0ffee',
      netns: '/run/netns/p',
      ifname: 'eth0',
      path: ['/opt/cni/bin'],
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web-0', K8S_POD_INFRA_CONTAINER_ID: 'c0ffee' },
    });
  });

  it('gives code 4 for a missing or bad variable, naming it', () => {
    for (const [o, name] of [
      [{ ...base, CNI_COMMAND: undefined }, 'CNI_COMMAND'],
      [{ ...base, CNI_COMMAND: 'FROB' }, 'CNI_COMMAND'],
      [{ ...base, CNI_NETNS: undefined }, 'CNI_NETNS'],
      [{ ...base, CNI_NETNS: 'relative/path' }, 'CNI_NETNS'],
      [{ ...base, CNI_CONTAINERID: '' }, 'CNI_CONTAINERID'],
      [{ ...base, CNI_CONTAINERID: '-leading-dash' }, 'CNI_CONTAINERID'],
      [{ ...base, CNI_IFNAME: 'much-too-long-name' }, 'CNI_IFNAME'],
      [{ ...base, CNI_IFNAME: 'a/b' }, 'CNI_IFNAME'],
      [{ ...base, CNI_ARGS: 'K8S_POD_NAME' }, 'CNI_ARGS'],
    ] as const) {
      let err: CniError | undefined;
      try {
        parseEnv(env(o));
      } catch (e) {
        err = e as CniError;
      }
      expect(err?.code, name).toBe(ErrorCode.InvalidEnvironment);
      expect(err?.message).toContain(name);
    }
  });

  it('lets DEL run without a netns, and VERSION/STATUS/GC without container variables', () => {
    expect(parseEnv(env({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' })).netns).toBeUndefined();
    for (const c of ['VERSION', 'STATUS', 'GC']) expect(parseEnv(env({ CNI_COMMAND: c })).command).toBe(c);
  });

  it('knows the spec rules for interface names and CNI_ARGS', () => {
    expect(['eth0', 'net1', 'a'.repeat(15)].every(validIfname)).toBe(true);
    expect(['', '.', '..', 'a'.repeat(16), 'a b', 'a:b'].some(validIfname)).toBe(false);
    expect(parseCniArgs('A=1;;B=x=y')).toEqual({ A: '1', B: 'x=y' });
  });
});

describe('network configuration', () => {
  it('accepts weir fields and applies defaults', () => {
    expect(parseNetConf(conf(), 'ADD')).toMatchObject({ cniVersion: '1.1.0', name: 'weir', socketPath: '/run/weir/cni.sock', timeoutMs: 30_000 });
    expect(parseNetConf(conf({ socketPath: '/tmp/x.sock', timeoutSeconds: 2.5 }), 'ADD')).toMatchObject({ socketPath: '/tmp/x.sock', timeoutMs: 2500 });
  });

  it('maps each kind of bad input to its code: 6 undecodable, 1 version, 2 unsupported field, 7 bad value', () => {
    expect(codeOf(() => decodeStdin('{"cniVersion": '))).toBe(ErrorCode.DecodeFailure);
    expect(codeOf(() => decodeStdin('[1,2]'))).toBe(ErrorCode.DecodeFailure);
    expect(codeOf(() => parseNetConf(conf({ cniVersion: '0.2.0' }), 'ADD'))).toBe(ErrorCode.IncompatibleVersion);
    expect(codeOf(() => parseNetConf(conf({ cniVersion: '9.9.9' }), 'ADD'))).toBe(ErrorCode.IncompatibleVersion);
    expect(codeOf(() => parseNetConf(conf({ cniVersion: '0.3.1' }), 'CHECK'))).toBe(ErrorCode.IncompatibleVersion);
    expect(codeOf(() => parseNetConf(conf({ cniVersion: '1.0.0' }), 'GC'))).toBe(ErrorCode.IncompatibleVersion);
    expect(codeOf(() => parseNetConf(conf({ cniVersion: '1.0.0' }), 'STATUS'))).toBe(ErrorCode.IncompatibleVersion);
    expect(codeOf(() => parseNetConf(conf({ ipam: { type: 'host-local' } }), 'ADD'))).toBe(ErrorCode.UnsupportedField);
    expect(codeOf(() => parseNetConf(conf({ socketpath: '/x' }), 'ADD'))).toBe(ErrorCode.UnsupportedField);
    expect(codeOf(() => parseNetConf(conf({ cniVersion: undefined }), 'ADD'))).toBe(ErrorCode.InvalidConfig);
    expect(codeOf(() => parseNetConf(conf({ name: 'bad name' }), 'ADD'))).toBe(ErrorCode.InvalidConfig);
    expect(codeOf(() => parseNetConf(conf({ socketPath: 'relative.sock' }), 'ADD'))).toBe(ErrorCode.InvalidConfig);
    expect(codeOf(() => parseNetConf(conf({ timeoutSeconds: 0 }), 'ADD'))).toBe(ErrorCode.InvalidConfig);
    expect(codeOf(() => parseNetConf(conf({ 'cni.dev/valid-attachments': [{ containerID: 'x' }] }), 'GC'))).toBe(ErrorCode.InvalidConfig);
  });

  it('reads cni.dev/valid-attachments (and libcni\'s earlier cni.dev/attachments) for GC', () => {
    const list = [{ containerID: 'a', ifname: 'eth0' }];
    expect(parseNetConf(conf({ 'cni.dev/valid-attachments': list }), 'GC').validAttachments).toEqual([{ containerId: 'a', ifname: 'eth0' }]);
    expect(parseNetConf(conf({ 'cni.dev/attachments': list }), 'GC').validAttachments).toEqual([{ containerId: 'a', ifname: 'eth0' }]);
    expect(parseNetConf(conf(), 'GC').validAttachments).toEqual([]);
  });
});

describe('versions and results', () => {
  it('negotiates the highest common version of a conflist', () => {
    expect(negotiateVersion({ cniVersion: '1.0.0', cniVersions: ['0.3.1', '1.0.0', '1.1.0', '2.0.0'] })).toBe('1.1.0');
    expect(negotiateVersion({ cniVersion: '0.4.0' })).toBe('0.4.0');
    expect(negotiateVersion({ cniVersion: '1.0.0', cniVersions: ['7.0.0'] })).toBe('1.0.0');
    expect(codeOf(() => negotiateVersion({ cniVersion: '0.1.0' }))).toBe(ErrorCode.IncompatibleVersion);
  });

  it('the shipped conflist is valid JSON that weir negotiates to 1.1.0 and whose plugin entry parses', () => {
    const list = JSON.parse(readFileSync(join(repoRoot, 'manifests', '10-weir.conflist'), 'utf8'));
    expect(negotiateVersion(list)).toBe('1.1.0');
    expect(list.plugins).toHaveLength(1);
    const plugin = { ...list.plugins[0], name: list.name, cniVersion: '1.1.0' };
    expect(parseNetConf(plugin, 'ADD')).toMatchObject({ type: 'weir-cni', socketPath: '/run/weir/cni.sock' });
  });

  const ep = {
    hostIfname: 'lxc0123456789ab',
    hostMac: '02:00:00:00:00:01',
    podIfname: 'eth0',
    podMac: '02:00:00:00:00:02',
    sandbox: '/run/netns/p',
    mtu: 1450,
    address: '10.244.1.5/32',
    gateway: '10.244.1.1',
    routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }],
  };

  it('1.1.0 results carry interfaces (with mtu and sandbox), ips with interface index and gateway, routes, dns', () => {
    expect(formatResult(endpointResult(ep), '1.1.0')).toEqual({
      cniVersion: '1.1.0',
      interfaces: [
        { name: 'lxc0123456789ab', mac: '02:00:00:00:00:01' },
        { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1450, sandbox: '/run/netns/p' },
      ],
      ips: [{ address: '10.244.1.5/32', gateway: '10.244.1.1', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }],
      dns: {},
    });
  });

  it('1.0.0 drops the interface mtu; 0.4.0 and 0.3.1 add ips[].version', () => {
    const v100 = formatResult(endpointResult(ep), '1.0.0') as { interfaces: object[]; ips: object[] };
    expect(v100.interfaces[1]).toEqual({ name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/p' });
    expect(v100.ips[0]).toEqual({ address: '10.244.1.5/32', gateway: '10.244.1.1', interface: 1 });
    for (const v of ['0.4.0', '0.3.1'] as const) {
      const r = formatResult(endpointResult(ep, { nameservers: ['10.96.0.10'] }), v) as { cniVersion: string; ips: object[]; dns: object };
      expect(r.cniVersion).toBe(v);
      expect(r.ips[0]).toEqual({ version: '4', address: '10.244.1.5/32', gateway: '10.244.1.1', interface: 1 });
      expect(r.dns).toEqual({ nameservers: ['10.96.0.10'] });
    }
  });

  it('finds the pod address in a prevResult of any version', () => {
    for (const v of ['0.4.0', '1.0.0', '1.1.0'] as const) {
      expect(prevResultAddress(formatResult(endpointResult(ep), v), 'eth0')).toEqual({ address: '10.244.1.5/32', mac: '02:00:00:00:00:02', sandbox: '/run/netns/p' });
    }
    expect(prevResultAddress({}, 'eth0')).toEqual({ address: undefined, mac: undefined, sandbox: undefined });
  });
});
