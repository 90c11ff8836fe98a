// Applying and deleting multi-document YAML manifests through the in-process API (`weir lab apply/delete -f`).
import { parseAllDocuments } from 'yaml';
import { ApiError, badRequest } from './errors.js';
import { RESOURCES, resourceForKind, type KObject } from './resources.js';
import type { ApiServer } from './server.js';

export interface ManifestResult {
  /** kubectl-style reference: `service/fe`, `deployment.apps/fe`. */
  ref: string;
  namespace?: string;
  action: 'created' | 'configured' | 'unchanged' | 'deleted' | 'not found';
}

/** The objects of a YAML (or JSON) text, `List` kinds flattened; every one names its apiVersion and kind. */
export function parseManifest(text: string, source = 'manifest'): KObject[] {
  const out: KObject[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    if (doc.errors.length) throw badRequest(`${source}: document ${i + 1}: ${doc.errors[0].message}`);
    const v = doc.toJSON();
    if (v === null || v === undefined) return;
    const items = v.kind === 'List' && Array.isArray(v.items) ? v.items : [v];
    for (const o of items) {
      if (!o || typeof o !== 'object' || !o.apiVersion || !o.kind) throw badRequest(`${source}: document ${i + 1}: apiVersion and kind are required`);
      if (!resourceForKind(o.apiVersion, o.kind)) {
        const known = RESOURCES.map((r) => `${r.group ? `${r.group}/` : ''}${r.version} ${r.kind}`).join(', ');
        throw badRequest(`${source}: document ${i + 1}: ${o.apiVersion} ${o.kind} is not served by the lab (it serves ${known})`);
      }
      o.metadata ??= {};
      out.push(o);
    }
  });
  return out;
}

function refOf(o: KObject): string {
  const r = resourceForKind(o.apiVersion!, o.kind!)!;
  return `${r.singularName}${r.group ? `.${r.group}` : ''}/${o.metadata.name}`;
}

/** Creates what is missing and merge-patches what exists (server-set fields such as clusterIP stay). */
export function applyManifest(api: ApiServer, objects: KObject[], defaultNamespace = 'default'): ManifestResult[] {
  return objects.map((o) => {
    const r = resourceForKind(o.apiVersion!, o.kind!)!;
    const namespace = r.namespaced ? (o.metadata.namespace ?? defaultNamespace) : undefined;
    const name = o.metadata.name;
    if (!name) throw badRequest(`${o.kind} in manifest has no metadata.name`);
    let existing: KObject | undefined;
    try {
      existing = api.get(r.name, name, namespace);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 404)) throw e;
    }
    if (!existing) {
      api.create(r.name, { ...o, metadata: { ...o.metadata, namespace } });
      return { ref: refOf(o), namespace, action: 'created' };
    }
    const { status: _s, ...desired } = o;
    const after = api.patch(r.name, name, { ...desired, metadata: { ...o.metadata, namespace } }, { namespace });
    return { ref: refOf(o), namespace, action: after.metadata.resourceVersion === existing.metadata.resourceVersion ? 'unchanged' : 'configured' };
  });
}

export function deleteManifest(api: ApiServer, objects: KObject[], defaultNamespace = 'default'): ManifestResult[] {
  return objects.map((o) => {
    const r = resourceForKind(o.apiVersion!, o.kind!)!;
    const namespace = r.namespaced ? (o.metadata.namespace ?? defaultNamespace) : undefined;
    try {
      api.delete(r.name, o.metadata.name!, { namespace });
      return { ref: refOf(o), namespace, action: 'deleted' as const };
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return { ref: refOf(o), namespace, action: 'not found' as const };
      throw e;
    }
  });
}
