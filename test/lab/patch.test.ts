// PATCH semantics: JSON merge patch, strategic merge patch (merge-keyed lists), JSON patch.
import { describe, expect, it } from 'vitest';
import { applyPatch, jsonPatch, mergePatch, strategicMerge } from '../../control/lab/apiserver/patch.js';

const podSpec = {
  containers: [
    { name: 'a', image: 'a:1', ports: [{ containerPort: 80, name: 'http' }, { containerPort: 53, protocol: 'UDP' }] },
    { name: 'b', image: 'b:1', env: [{ name: 'X', value: '1' }] },
  ],
};

describe('merge patch (RFC 7386)', () => {
  it('merges objects, replaces lists, deletes on null', () => {
    expect(mergePatch({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { c: null, d: 3 }, l: [3] })).toEqual({ a: { b: 1, d: 3 }, l: [3] });
  });
});

describe('strategic merge patch', () => {
  it('merges containers by name and container ports by containerPort', () => {
    const out = strategicMerge(podSpec, { containers: [{ name: 'a', image: 'a:2', ports: [{ containerPort: 80, name: 'web' }] }] });
    expect(out.containers).toEqual([
      { name: 'a', image: 'a:2', ports: [{ containerPort: 80, name: 'web' }, { containerPort: 53, protocol: 'UDP' }] },
      podSpec.containers[1],
    ]);
  });

  it('$patch: delete removes an element; $setElementOrder orders them; new ones are appended', () => {
    const out = strategicMerge(podSpec, {
      '$setElementOrder/containers': [{ name: 'c' }, { name: 'b' }],
      containers: [{ name: 'a', $patch: 'delete' }, { name: 'c', image: 'c:1' }],
    });
    expect(out.containers.map((c: any) => c.name)).toEqual(['c', 'b']);
  });

  it('service ports merge on port; lists without a merge key are replaced', () => {
    const svc = { ports: [{ port: 80, targetPort: 8080, nodePort: 30001 }, { port: 443, targetPort: 8443 }] };
    expect(strategicMerge(svc, { ports: [{ port: 80, targetPort: 9090 }] }).ports).toEqual([
      { port: 80, targetPort: 9090, nodePort: 30001 }, { port: 443, targetPort: 8443 },
    ]);
    const np = { ingress: [{ from: [{ podSelector: {} }] }] };
    expect(strategicMerge(np, { ingress: [{ ports: [{ port: 80 }] }] })).toEqual({ ingress: [{ ports: [{ port: 80 }] }] });
  });

  it('$patch: replace on a list or object replaces it', () => {
    expect(strategicMerge(podSpec, { containers: [{ $patch: 'replace' }, { name: 'z', image: 'z' }] }).containers).toEqual([{ name: 'z', image: 'z' }]);
    expect(strategicMerge({ m: { a: 1, b: 2 } }, { m: { $patch: 'replace', c: 3 } })).toEqual({ m: { c: 3 } });
  });
});

describe('JSON patch (RFC 6902)', () => {
  it('add, replace, remove, move, copy, test', () => {
    const doc = { a: { b: [1, 2] }, c: 'x' };
    expect(jsonPatch(doc, [
      { op: 'add', path: '/a/b/-', value: 3 },
      { op: 'replace', path: '/c', value: 'y' },
      { op: 'copy', from: '/c', path: '/d' },
      { op: 'move', from: '/d', path: '/e' },
      { op: 'remove', path: '/a/b/0' },
      { op: 'test', path: '/e', value: 'y' },
    ])).toEqual({ a: { b: [2, 3] }, c: 'y', e: 'y' });
    expect(doc).toEqual({ a: { b: [1, 2] }, c: 'x' });
  });

  it('a failed test or a missing path is a 400', () => {
    expect(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }])).toThrow(/test failed at \/a/);
    expect(() => jsonPatch({ a: 1 }, [{ op: 'replace', path: '/b', value: 2 }])).toThrow(/does not exist/);
    expect(() => applyPatch({}, [1], 'merge')).toThrow(/must be a JSON object/);
  });
});
