// The lab scheduler: which node a pending pod goes to, and the loop that binds it.
import { describe, expect, it } from 'vitest';
import { ApiServer, type KObject } from '../../control/lab/apiserver/index.js';
import { LabController, needsScheduling, pickNode } from '../../control/lab/controller/index.js';

function node(name: string, opts: { ready?: boolean; unschedulable?: boolean; labels?: Record<string, string> } = {}): KObject {
  return {
    metadata: { name, labels: opts.labels ?? {} },
    spec: opts.unschedulable ? { unschedulable: true } : {},
    status: { conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] },
  };
}

function pod(name: string, nodeName?: string, extra: Record<string, unknown> = {}): KObject {
  return { metadata: { name, namespace: 'default' }, spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'c', image: 'x' }], ...extra }, status: { phase: 'Pending' } };
}

describe('pickNode', () => {
  it('picks the Ready node with the fewest pods, ties by name', () => {
    const nodes = [node('n2'), node('n1'), node('n3')];
    expect(pickNode(pod('p'), nodes, []).node).toBe('n1');
    expect(pickNode(pod('p'), nodes, [pod('a', 'n1'), pod('b', 'n3')]).node).toBe('n2');
  });

  it('skips not-ready and unschedulable nodes and honours nodeSelector; says why when nothing fits', () => {
    const nodes = [node('n1', { ready: false }), node('n2', { unschedulable: true }), node('n3', { labels: { zone: 'b' } })];
    expect(pickNode(pod('p'), nodes, []).node).toBe('n3');
    const sel = pickNode(pod('p', undefined, { nodeSelector: { zone: 'a' } }), nodes, []);
    expect(sel).toEqual({ reason: "0/3 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, 1 node(s) didn't match Pod's node affinity/selector." });
    expect(pickNode(pod('p'), [], [])).toEqual({ reason: '0/0 nodes are available.' });
  });

  it('only unbound default-scheduler pods that are not terminating need scheduling', () => {
    expect(needsScheduling(pod('p'))).toBe(true);
    expect(needsScheduling(pod('p', 'n1'))).toBe(false);
    expect(needsScheduling(pod('p', undefined, { schedulerName: 'other' }))).toBe(false);
    expect(needsScheduling({ ...pod('p'), metadata: { name: 'p', deletionTimestamp: 't' } })).toBe(false);
  });
});

describe('scheduling loop', () => {
  it('binds pending pods across nodes, waits for a Ready node, and leaves it off unless asked', async () => {
    const api = new ApiServer();
    const ctl = new LabController(api, { schedule: true });
    ctl.start();
    api.create('pods', pod('early'));
    await ctl.idle();
    const waiting = api.get('pods', 'early');
    expect(waiting.spec.nodeName).toBeUndefined();
    expect(waiting.status.conditions).toEqual([{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/0 nodes are available.' }]);

    api.create('nodes', node('node-1'));
    api.create('nodes', node('node-2'));
    await ctl.idle();
    expect(api.get('pods', 'early').spec.nodeName).toBe('node-1');
    expect(api.get('pods', 'early').status.conditions).toEqual([{ type: 'PodScheduled', status: 'True' }]);
    for (const n of ['a', 'b', 'c']) api.create('pods', pod(n));
    await ctl.idle();
    const perNode = api.list('pods').items.map((p) => p.spec.nodeName).sort();
    expect(perNode).toEqual(['node-1', 'node-1', 'node-2', 'node-2']);
    ctl.stop();

    const off = new LabController(api);
    off.start();
    api.create('pods', pod('manual'));
    await off.idle();
    expect(api.get('pods', 'manual').spec.nodeName).toBeUndefined();
    off.stop();
    await api.close();
  });
});
