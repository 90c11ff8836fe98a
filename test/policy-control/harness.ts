// Shared by the policy-control tests: the datapath's maps pinned (no
// programs) under /sys/fs/bpf/wpc-*, and small Kubernetes object builders.
import { mkdirSync, rmSync } from 'node:fs';
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { loadCollectionSpec } from '../../loader/index.js';
import { bpfObject } from '../../control/paths.js';
import { openPinnedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import type { ClusterState } from '../../control/agent/watch.js';

const roots: string[] = [];
const opened: DatapathMaps[] = [];

/** Pins every map of pod.o under a fresh /sys/fs/bpf/wpc-<pid>-<tag> and opens them. */
export async function pinnedMaps(tag: string): Promise<{ pinRoot: string; maps: DatapathMaps; reopen(): DatapathMaps }> {
  const pinRoot = `/sys/fs/bpf/wpc-${process.pid}-${tag}`;
  rmSync(pinRoot, { recursive: true, force: true });
  roots.push(pinRoot);
  mkdirSync(pinRoot, { recursive: true });
  const coll = await loadCollectionSpec(bpfObject('pod')).load({ pinRoot, programs: [] });
  coll.close();
  const open = () => {
    const m = openPinnedMaps(pinRoot);
    opened.push(m);
    return m;
  };
  return { pinRoot, maps: open(), reopen: open };
}

/** Closes every map and removes every pin root made here (afterAll). */
export function cleanupPins(): void {
  for (const m of opened.splice(0)) {
    try {
      m.close();
    } catch {
      /* closed */
    }
  }
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
}

export const ipNum = (s: string) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0) >>> 0;

export function pod(ns: string, name: string, ip: string, labels: Record<string, string> = {}, ports: Array<{ name: string; containerPort: number }> = []): V1Pod {
  return {
    metadata: { namespace: ns, name, labels, uid: `${ns}-${name}` },
    spec: { nodeName: 'n1', containers: [{ name: 'c', ports }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  } as V1Pod;
}

export const namespace = (name: string, labels: Record<string, string> = {}): V1Namespace => ({ metadata: { name, labels } }) as V1Namespace;

export const netpol = (ns: string, name: string, spec: object): V1NetworkPolicy => ({ metadata: { namespace: ns, name }, spec }) as V1NetworkPolicy;

export const node = (name: string, ip: string): V1Node => ({ metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } }) as V1Node;

export function cluster(o: Partial<ClusterState>): ClusterState {
  return { nodes: [], namespaces: [], pods: [], services: [], endpointSlices: [], networkPolicies: [], ...o };
}
