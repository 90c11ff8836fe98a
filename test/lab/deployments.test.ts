// Lab Deployments: pods from the template, scaling, template changes, status (pure functions).
import { describe, expect, it } from 'vitest';
import type { KObject } from '../../control/lab/apiserver/index.js';
import { planDeployment, podTemplateHash, POD_TEMPLATE_HASH_LABEL } from '../../control/lab/controller/index.js';

function deployment(replicas: number, image = 'weir/echo'): KObject {
  return {
    metadata: { name: 'fe', namespace: 'default', uid: 'dep-uid', generation: 3 },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'fe' } },
      template: { metadata: { labels: { app: 'fe', tier: 'web' }, annotations: { note: 'x' } }, spec: { containers: [{ name: 'fe', image }] } },
    },
  };
}

const suffixes = (i: number) => ['aaaaa', 'bbbbb', 'ccccc', 'ddddd', 'eeeee'][i];

function asPods(plan: ReturnType<typeof planDeployment>, ready = true): KObject[] {
  return plan.create.map((p, i) => ({
    ...p,
    metadata: { ...p.metadata, uid: `pod-${i}`, creationTimestamp: `2026-01-01T00:00:0${i}Z` },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  }));
}

describe('planDeployment', () => {
  it('creates replicas named <deploy>-<hash>-<suffix> with the template labels, annotations, spec and an owner', () => {
    const d = deployment(2);
    const hash = podTemplateHash(d);
    expect(hash).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{6,10}$/);
    const plan = planDeployment(d, [], suffixes);
    expect(plan.create.map((p) => p.metadata.name!)).toEqual([`fe-${hash}-aaaaa`, `fe-${hash}-bbbbb`]);
    const p = plan.create[0];
    expect(p.metadata.labels).toEqual({ app: 'fe', tier: 'web', [POD_TEMPLATE_HASH_LABEL]: hash });
    expect(p.metadata.annotations).toEqual({ note: 'x' });
    expect(p.metadata.namespace).toBe('default');
    expect(p.spec).toEqual({ containers: [{ name: 'fe', image: 'weir/echo' }] });
    expect(p.metadata.ownerReferences).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'fe', uid: 'dep-uid', controller: true, blockOwnerDeletion: true }]);
    expect(plan.delete).toEqual([]);
  });

  it('does nothing more once the pods exist, and reports status', () => {
    const d = deployment(2);
    const pods = asPods(planDeployment(d, [], suffixes));
    const plan = planDeployment(d, pods, suffixes);
    expect(plan.create).toEqual([]);
    expect(plan.delete).toEqual([]);
    expect(plan.status).toEqual({ observedGeneration: 3, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2, unavailableReplicas: 0 });
  });

  it('scales down not-ready pods first, then the newest', () => {
    const d = deployment(4);
    const pods = asPods(planDeployment(d, [], suffixes));
    pods[1].status.conditions[0].status = 'False';
    const plan = planDeployment(deployment(2), pods, suffixes);
    expect(plan.delete).toEqual([pods[1].metadata.name, pods[3].metadata.name]);
  });

  it('a template change replaces every pod of the old template', () => {
    const pods = asPods(planDeployment(deployment(2), [], suffixes));
    const changed = deployment(2, 'weir/echo:v2');
    const plan = planDeployment(changed, pods, suffixes);
    expect(podTemplateHash(changed)).not.toBe(podTemplateHash(deployment(2)));
    expect(plan.create.map((p) => p.metadata.labels![POD_TEMPLATE_HASH_LABEL])).toEqual([podTemplateHash(changed), podTemplateHash(changed)]);
    expect(plan.delete.sort()).toEqual(pods.map((p) => p.metadata.name!).sort());
  });

  it('ignores pods it does not own and terminating pods; never reuses a taken name', () => {
    const d = deployment(1);
    const hash = podTemplateHash(d);
    const stranger = { metadata: { name: `fe-${hash}-zzzzz`, namespace: 'default', labels: { app: 'fe', [POD_TEMPLATE_HASH_LABEL]: hash } } };
    const terminating = { ...asPods(planDeployment(d, [], suffixes))[0], metadata: { ...asPods(planDeployment(d, [], suffixes))[0].metadata, deletionTimestamp: 't' } };
    const plan = planDeployment(d, [stranger, terminating], suffixes);
    // The terminating pod holds fe-<hash>-aaaaa, so the new one takes the next suffix.
    expect(plan.create.map((p) => p.metadata.name!)).toEqual([`fe-${hash}-bbbbb`]);
    expect(plan.delete).toEqual([]);
  });

  it('the template hash ignores key order', () => {
    const a = deployment(1);
    const b = deployment(1);
    b.spec.template = { spec: b.spec.template.spec, metadata: { annotations: { note: 'x' }, labels: { tier: 'web', app: 'fe' } } };
    expect(podTemplateHash(a)).toBe(podTemplateHash(b));
  });
});
