// PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch (lists merged by their
// Kubernetes merge keys, as kubectl apply/edit expect), and JSON patch (RFC 6902).
import { badRequest } from './errors.js';

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergePatch(target: any, patch: any): any {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, any> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * The merge keys of the Kubernetes types' lists that strategic merge patch merges element by
 * element (patchStrategy "merge"); every other list is replaced, as upstream.
 */
function mergeKeyFor(field: string, items: any[]): string | undefined {
  switch (field) {
    case 'containers': case 'initContainers': case 'ephemeralContainers':
    case 'env': case 'volumes': case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts': return 'mountPath';
    case 'conditions': return 'type';
    case 'ownerReferences': return 'uid';
    case 'hostAliases': return 'ip';
    case 'topologySpreadConstraints': return 'topologyKey';
    // Container ports merge on containerPort, Service ports on port.
    case 'ports': return items.some((i) => isObject(i) && 'containerPort' in i) ? 'containerPort' : 'port';
    default: return undefined;
  }
}

function strategicList(field: string, target: unknown, patch: any[], order: any[] | undefined): any[] {
  const key = mergeKeyFor(field, [...(Array.isArray(target) ? target : []), ...patch]);
  if (!key || !Array.isArray(target) || patch.some((p) => isObject(p) && p.$patch === 'replace')) {
    return patch.filter((p) => !(isObject(p) && p.$patch)).map((p) => strategicMerge(undefined, p));
  }
  const out: any[] = target.map((t) => structuredClone(t));
  for (const p of patch) {
    if (!isObject(p)) continue;
    const i = out.findIndex((t) => isObject(t) && t[key] === p[key]);
    if (p.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) out[i] = strategicMerge(out[i], p);
    else out.push(strategicMerge(undefined, p));
  }
  if (order) {
    // $setElementOrder lists the keys in their new order; elements it does not name keep their place after.
    const rank = new Map(order.map((o, n) => [isObject(o) ? o[key] : o, n]));
    out.sort((a, b) => (rank.get(a?.[key]) ?? Infinity) - (rank.get(b?.[key]) ?? Infinity));
  }
  return out;
}

/** Strategic merge patch for the fields the lab's types use: merge-keyed lists and $patch/$setElementOrder directives. */
export function strategicMerge(target: any, patch: any): any {
  if (!isObject(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _p, ...rest } = patch;
    return strategicMerge(undefined, rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, any> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue; // $setElementOrder/..., $retainKeys, $deleteFromPrimitiveList/...: handled with their field or not needed
    if (v === null) delete out[k];
    else if (Array.isArray(v)) out[k] = strategicList(k, out[k], v, patch[`$setElementOrder/${k}`]);
    else {
      const merged = strategicMerge(out[k], v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
  }
  return out;
}

interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  value?: unknown;
  from?: string;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw badRequest(`invalid JSON pointer ${JSON.stringify(path)}`);
  return path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: any, tokens: string[], path: string): any {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    cur = Array.isArray(cur) ? cur[Number(t)] : isObject(cur) ? cur[t] : undefined;
    if (cur === undefined) throw badRequest(`JSON patch path ${path} does not exist`);
  }
  return cur;
}

function getAt(doc: any, path: string): any {
  let cur = doc;
  for (const t of pointer(path)) {
    cur = Array.isArray(cur) ? cur[Number(t)] : isObject(cur) ? cur[t] : undefined;
    if (cur === undefined) throw badRequest(`JSON patch path ${path} does not exist`);
  }
  return cur;
}

function remove(doc: any, path: string): any {
  const tokens = pointer(path);
  const parent = parentOf(doc, tokens, path);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!(i >= 0 && i < parent.length)) throw badRequest(`JSON patch path ${path} does not exist`);
    return parent.splice(i, 1)[0];
  }
  if (!isObject(parent) || !(last in parent)) throw badRequest(`JSON patch path ${path} does not exist`);
  const v = parent[last];
  delete parent[last];
  return v;
}

function add(doc: any, path: string, value: unknown, replace: boolean): any {
  const tokens = pointer(path);
  if (tokens.length === 0) return structuredClone(value);
  const parent = parentOf(doc, tokens, path);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!(i >= 0 && i <= parent.length)) throw badRequest(`JSON patch path ${path} is out of range`);
    if (replace) parent[i] = structuredClone(value);
    else parent.splice(i, 0, structuredClone(value));
  } else if (isObject(parent)) {
    if (replace && !(last in parent)) throw badRequest(`JSON patch path ${path} does not exist`);
    parent[last] = structuredClone(value);
  } else throw badRequest(`JSON patch path ${path} does not exist`);
  return doc;
}

export function jsonPatch(target: any, ops: unknown): any {
  if (!Array.isArray(ops)) throw badRequest('a JSON patch must be an array of operations');
  let doc = structuredClone(target);
  for (const raw of ops as JsonPatchOp[]) {
    switch (raw.op) {
      case 'add': doc = add(doc, raw.path, raw.value, false); break;
      case 'replace': doc = add(doc, raw.path, raw.value, true); break;
      case 'remove': remove(doc, raw.path); break;
      case 'move': { const v = remove(doc, raw.from ?? ''); doc = add(doc, raw.path, v, false); break; }
      case 'copy': doc = add(doc, raw.path, getAt(doc, raw.from ?? ''), false); break;
      case 'test':
        if (JSON.stringify(getAt(doc, raw.path)) !== JSON.stringify(raw.value)) throw badRequest(`JSON patch test failed at ${raw.path}`);
        break;
      default: throw badRequest(`unknown JSON patch op ${JSON.stringify((raw as any)?.op)}`);
    }
  }
  return doc;
}

export type PatchType = 'merge' | 'strategic' | 'json';

export function patchTypeOf(contentType: string | undefined): PatchType | undefined {
  const t = (contentType ?? '').split(';')[0].trim();
  if (t === 'application/merge-patch+json') return 'merge';
  if (t === 'application/strategic-merge-patch+json') return 'strategic';
  if (t === 'application/json-patch+json') return 'json';
  return undefined;
}

export function applyPatch(target: any, patch: unknown, type: PatchType): any {
  if (type === 'json') return jsonPatch(target, patch);
  if (!isObject(patch)) throw badRequest('a merge patch must be a JSON object');
  return type === 'strategic' ? strategicMerge(target, patch) : mergePatch(target, patch);
}
