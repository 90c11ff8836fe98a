// The lab's stand-in for kube-scheduler: binds pending pods to a Ready node. Pure: no API calls here.
import type { KObject } from '../apiserver/resources.js';

export function isNodeReady(node: KObject): boolean {
  return (node.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
}

/** Pods the lab scheduler binds: unbound, for the default scheduler, not being deleted, not finished. */
export function needsScheduling(pod: KObject): boolean {
  const phase = pod.status?.phase;
  return !pod.spec?.nodeName && (pod.spec?.schedulerName ?? 'default-scheduler') === 'default-scheduler' &&
    !pod.metadata.deletionTimestamp && phase !== 'Succeeded' && phase !== 'Failed';
}

export interface Placement {
  node?: string;
  /** Why no node fits, worded as the scheduler's event: `0/2 nodes are available: ...`. */
  reason?: string;
}

/**
 * The node for a pod: Ready, schedulable, matching spec.nodeSelector, and running the fewest
 * pods (ties by name, so placement is predictable in the lab). Taints and affinity are not modelled.
 */
export function pickNode(pod: KObject, nodes: KObject[], pods: KObject[]): Placement {
  const why = { notReady: 0, unschedulable: 0, selector: 0 };
  const fits = nodes.filter((n) => {
    if (!isNodeReady(n)) return (why.notReady++, false);
    if (n.spec?.unschedulable) return (why.unschedulable++, false);
    const sel: Record<string, string> = pod.spec?.nodeSelector ?? {};
    if (Object.entries(sel).some(([k, v]) => n.metadata.labels?.[k] !== v)) return (why.selector++, false);
    return true;
  });
  if (fits.length === 0) {
    const parts = [
      why.notReady && `${why.notReady} node(s) were not ready`,
      why.unschedulable && `${why.unschedulable} node(s) were unschedulable`,
      why.selector && `${why.selector} node(s) didn't match Pod's node affinity/selector`,
    ].filter(Boolean);
    return { reason: `0/${nodes.length} nodes are available${parts.length ? `: ${parts.join(', ')}` : ''}.` };
  }
  const load = new Map<string, number>();
  for (const p of pods) {
    const n = p.spec?.nodeName;
    if (n && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed') load.set(n, (load.get(n) ?? 0) + 1);
  }
  fits.sort((a, b) => (load.get(a.metadata.name!) ?? 0) - (load.get(b.metadata.name!) ?? 0) || a.metadata.name!.localeCompare(b.metadata.name!));
  return { node: fits[0].metadata.name };
}
