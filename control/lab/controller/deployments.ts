// Deployments as a lab convenience: the pods a Deployment should have, made straight from its
// template (no ReplicaSets), named <deploy>-<pod-template-hash>-<suffix>. Pure: no API calls here.
import type { KObject } from '../apiserver/resources.js';
import { isPodReady } from './endpointslices.js';
import { safeHash } from './hash.js';

export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';

export function podTemplateHash(deploy: KObject): string {
  return safeHash(deploy.spec?.template ?? {});
}

export function ownedBy(obj: KObject, owner: KObject): boolean {
  return (obj.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid);
}

export interface DeploymentPlan {
  create: KObject[];
  /** Names of pods to delete (same namespace as the deployment). */
  delete: string[];
  status: Record<string, unknown>;
}

/** A new pod from the template: labels (plus pod-template-hash) and annotations copied, owned by the deployment. */
export function podFromTemplate(deploy: KObject, hash: string, suffix: string): KObject {
  const t = deploy.spec.template ?? {};
  const meta: KObject['metadata'] = {
    name: `${deploy.metadata.name}-${hash}-${suffix}`,
    namespace: deploy.metadata.namespace,
    labels: { ...(t.metadata?.labels ?? {}), [POD_TEMPLATE_HASH_LABEL]: hash },
    ownerReferences: [
      { apiVersion: 'apps/v1', kind: 'Deployment', name: deploy.metadata.name!, uid: deploy.metadata.uid!, controller: true, blockOwnerDeletion: true },
    ],
  };
  if (t.metadata?.annotations) meta.annotations = { ...t.metadata.annotations };
  return { apiVersion: 'v1', kind: 'Pod', metadata: meta, spec: structuredClone(t.spec ?? {}) };
}

/**
 * What to do so that `deploy` has spec.replicas running pods of its current template: create the
 * missing ones, delete surplus ones (not ready and newest first, as upstream ranks them) and every
 * pod of an older template. `suffix(i)` names the i-th new pod (random in the controller).
 */
export function planDeployment(deploy: KObject, pods: KObject[], suffix: (i: number) => string): DeploymentPlan {
  const hash = podTemplateHash(deploy);
  const replicas: number = deploy.spec?.replicas ?? 1;
  const owned = pods.filter((p) => p.metadata.namespace === deploy.metadata.namespace && ownedBy(p, deploy));
  const live = owned.filter((p) => !p.metadata.deletionTimestamp);
  const current = live.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] === hash);
  const old = live.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] !== hash);

  const create: KObject[] = [];
  const taken = new Set(owned.map((p) => p.metadata.name));
  for (let i = 0; current.length + create.length < replicas; i++) {
    const pod = podFromTemplate(deploy, hash, suffix(i));
    if (taken.has(pod.metadata.name)) continue;
    taken.add(pod.metadata.name);
    create.push(pod);
  }
  const surplus = [...current]
    .sort((a, b) => {
      const ra = isPodReady(a) ? 1 : 0;
      const rb = isPodReady(b) ? 1 : 0;
      if (ra !== rb) return ra - rb;
      return String(b.metadata.creationTimestamp ?? '').localeCompare(String(a.metadata.creationTimestamp ?? '')) || b.metadata.name!.localeCompare(a.metadata.name!);
    })
    .slice(0, Math.max(0, current.length - replicas));
  const del = [...old, ...surplus].map((p) => p.metadata.name!);

  const ready = live.filter(isPodReady).length;
  const status = {
    observedGeneration: deploy.metadata.generation ?? 1,
    replicas: live.length,
    updatedReplicas: current.length,
    readyReplicas: ready,
    availableReplicas: ready,
    unavailableReplicas: Math.max(0, replicas - ready),
  };
  return { create, delete: del, status };
}
