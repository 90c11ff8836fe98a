// A minimal OpenAPI v3 index: only what kubectl reads to learn that the server takes
// ?fieldValidation= on PATCH (so it leaves validation to the server instead of fetching full schemas).
import { apiVersionOf, RESOURCES, type ResourceInfo } from './resources.js';

function gvPath(gv: string): string {
  return gv === 'v1' ? 'api/v1' : `apis/${gv}`;
}

export function openapiRoot(): object {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const gv of new Set(RESOURCES.map(apiVersionOf))) {
    paths[gvPath(gv)] = { serverRelativeURL: `/openapi/v3/${gvPath(gv)}?hash=weir-lab` };
  }
  return { paths };
}

function itemPath(r: ResourceInfo): string {
  const base = `/${gvPath(apiVersionOf(r))}`;
  return r.namespaced ? `${base}/namespaces/{namespace}/${r.name}/{name}` : `${base}/${r.name}/{name}`;
}

export function openapiGroupVersion(path: string): object | undefined {
  const list = RESOURCES.filter((r) => gvPath(apiVersionOf(r)) === path);
  if (list.length === 0) return undefined;
  const paths: Record<string, object> = {};
  for (const r of list) {
    const gvk = { group: r.group, version: r.version, kind: r.kind };
    paths[itemPath(r)] = {
      patch: {
        operationId: `patch${r.kind}`,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        parameters: [
          { name: 'dryRun', in: 'query', schema: { type: 'string' } },
          { name: 'fieldManager', in: 'query', schema: { type: 'string' } },
          { name: 'fieldValidation', in: 'query', schema: { type: 'string' } },
        ],
        responses: { '200': { description: 'OK' } },
      },
    };
  }
  return { openapi: '3.0.0', info: { title: 'weir lab', version: 'v1' }, paths, components: { schemas: {} } };
}

/**
 * An empty OpenAPI v2 document. Older kubectl (Debian's 1.20) fetches it as protobuf before
 * `create -f` to validate on the client; with no definitions it validates nothing and leaves the
 * checks to the server. Protobuf: gnostic openapi_v2.Document { swagger = 1; info = 2 { title = 1; version = 2 } }.
 */
export function openapiV2(protobuf: boolean): { type: string; body: Buffer } {
  if (!protobuf) {
    const doc = { swagger: '2.0', info: { title: 'weir lab', version: 'v1' }, paths: {}, definitions: {} };
    return { type: 'application/json', body: Buffer.from(JSON.stringify(doc)) };
  }
  const str = (field: number, text: string) => Buffer.concat([Buffer.from([(field << 3) | 2, Buffer.byteLength(text)]), Buffer.from(text)]);
  const info = Buffer.concat([str(1, 'weir lab'), str(2, 'v1')]);
  const body = Buffer.concat([str(1, '2.0'), Buffer.from([(2 << 3) | 2, info.length]), info]);
  return { type: 'application/octet-stream', body };
}
