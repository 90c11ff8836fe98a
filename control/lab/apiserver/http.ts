// The HTTP face of the API server: Kubernetes REST paths and verbs onto ApiServer's in-process API.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, version } from './discovery.js';
import { ApiError, badRequest, internal, methodNotAllowed, pathNotFound, unsupportedMediaType } from './errors.js';
import { openapiGroupVersion, openapiRoot, openapiV2 } from './openapi.js';
import { applyPatch, patchTypeOf } from './patch.js';
import { apiVersionOf, RESOURCES, type KObject, type ResourceInfo } from './resources.js';
import type { ApiServer } from './server.js';
import { toTable, wantsTable } from './table.js';

interface Route {
  r: ResourceInfo;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPath: boolean;
}

/** Maps /api/v1/... and /apis/<g>/<v>/... onto a resource, namespace, name and subresource. */
function route(groupVersion: string, segs: string[]): Route | undefined {
  let watchPath = false;
  if (segs[0] === 'watch') {
    watchPath = true;
    segs = segs.slice(1);
  }
  const inGv = RESOURCES.filter((x) => apiVersionOf(x) === groupVersion);
  const find = (name: string | undefined) => inGv.find((x) => x.name === name);
  if (segs[0] === 'namespaces' && segs.length >= 3 && find(segs[2])?.namespaced) {
    const r = find(segs[2])!;
    if (segs.length > 5) return undefined;
    return { r, namespace: segs[1], name: segs[3], subresource: segs[4], watchPath };
  }
  const r = find(segs[0]);
  if (!r || segs.length > 3) return undefined;
  return { r, name: segs[1], subresource: segs[2], watchPath };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw badRequest(`invalid ${name} ${JSON.stringify(v)}: not an integer`);
  return n;
}

async function handle(api: ApiServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://lab');
  const q = url.searchParams;
  const segs = url.pathname.split('/').filter(Boolean);
  const method = req.method ?? 'GET';
  const host = req.headers.host ?? '127.0.0.1';

  if (method === 'GET') {
    const p = url.pathname.replace(/\/$/, '');
    if (p === '/healthz' || p === '/livez' || p === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (p === '/version') return send(res, 200, version(api.options.gitVersion));
    if (p === '/api') return send(res, 200, apiVersions(host));
    if (p === '/openapi/v3') return send(res, 200, openapiRoot());
    if (p === '/openapi/v2') {
      const doc = openapiV2(/protobuf/.test(String(req.headers.accept ?? '')));
      res.writeHead(200, { 'Content-Type': doc.type, 'Content-Length': doc.body.length });
      res.end(doc.body);
      return;
    }
    if (p.startsWith('/openapi/v3/')) {
      const doc = openapiGroupVersion(p.slice('/openapi/v3/'.length));
      if (doc) return send(res, 200, doc);
    }
    if (p === '/apis') return send(res, 200, apiGroupList());
    if (p === '/api/v1') return send(res, 200, apiResourceList('v1'));
    if (segs[0] === 'apis' && segs.length === 2) {
      const g = apiGroup(segs[1]);
      if (g) return send(res, 200, g);
    }
    if (segs[0] === 'apis' && segs.length === 3) {
      const l = apiResourceList(`${segs[1]}/${segs[2]}`);
      if (l) return send(res, 200, l);
    }
  }

  let rt: Route | undefined;
  if (segs[0] === 'api' && segs[1] === 'v1') rt = route('v1', segs.slice(2));
  else if (segs[0] === 'apis' && segs.length >= 4) rt = route(`${segs[1]}/${segs[2]}`, segs.slice(3));
  if (!rt) throw pathNotFound();
  const { r, namespace, name, subresource } = rt;
  if (subresource && !(subresource === 'status' && r.hasStatus) && !(subresource === 'binding' && r.name === 'pods') && !(subresource === 'scale' && r.name === 'deployments')) {
    throw pathNotFound();
  }
  if (subresource === 'scale' && name) return serveScale(api, req, res, name, namespace, q.getAll('dryRun').includes('All'));
  const dryRun = q.getAll('dryRun').includes('All');
  const sel = { namespace, labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined };

  if (method === 'GET') {
    const isWatch = rt.watchPath || q.get('watch') === 'true' || q.get('watch') === '1';
    if (isWatch) {
      const fieldSelector = name ? [`metadata.name=${name}`, sel.fieldSelector].filter(Boolean).join(',') : sel.fieldSelector;
      return serveWatch(api, res, r, { ...sel, fieldSelector }, q, wantsTable(req));
    }
    if (name) {
      if (subresource === 'binding') throw methodNotAllowed('the server does not allow this method on the requested resource');
      const obj = api.get(r.name, name, namespace);
      return send(res, 200, wantsTable(req) ? toTable(r, [obj], obj.metadata.resourceVersion!) : obj);
    }
    const list = api.list(r.name, sel);
    if (wantsTable(req)) return send(res, 200, toTable(r, list.items, list.resourceVersion));
    return send(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: { resourceVersion: list.resourceVersion }, items: list.items });
  }

  const ctype = req.headers['content-type'];
  const body = await readBody(req);
  switch (method) {
    case 'POST': {
      if (subresource === 'binding' && name) {
        const target = (body as any)?.target;
        if (!target?.name) throw badRequest('a Binding needs target.name');
        const pod = api.get('pods', name, namespace);
        if (pod.spec?.nodeName) throw api_conflictBinding(r, name, pod.spec.nodeName);
        api.patch('pods', name, { spec: { nodeName: target.name } }, { namespace, dryRun });
        return send(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
      }
      if (name) throw methodNotAllowed('the server does not allow this method on the requested resource');
      if (!body || typeof body !== 'object') throw badRequest(`the body of a ${r.kind} create must be a JSON object`);
      return send(res, 201, api.create(r.name, body as any, { namespace, dryRun }));
    }
    case 'PUT': {
      if (!name) throw methodNotAllowed('the server does not allow this method on the requested resource');
      const obj = body as any;
      if (!obj || typeof obj !== 'object') throw badRequest(`the body of a ${r.kind} update must be a JSON object`);
      if (obj.metadata?.name && obj.metadata.name !== name) {
        throw badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
      }
      obj.metadata = { ...obj.metadata, name };
      return send(res, 200, api.update(r.name, obj, { namespace, dryRun, subresource: subresource as 'status' | undefined }));
    }
    case 'PATCH': {
      if (!name) throw methodNotAllowed('the server does not allow this method on the requested resource');
      const type = patchTypeOf(ctype);
      if (!type) throw unsupportedMediaType(String(ctype));
      return send(res, 200, api.patch(r.name, name, body, { namespace, dryRun, type, subresource: subresource as 'status' | undefined }));
    }
    case 'DELETE': {
      const opts = (body ?? {}) as any;
      const gracePeriodSeconds = intParam(q, 'gracePeriodSeconds') ?? opts.gracePeriodSeconds;
      const del = { namespace, dryRun: dryRun || (opts.dryRun ?? []).includes('All'), gracePeriodSeconds, preconditions: opts.preconditions };
      if (!name) {
        const items = api.deleteCollection(r.name, { ...sel, ...del });
        return send(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: {}, items });
      }
      if (subresource) throw methodNotAllowed('the server does not allow this method on the requested resource');
      return send(res, 200, api.delete(r.name, name, del));
    }
    default:
      throw methodNotAllowed(`the server does not allow the method ${method}`);
  }
}

function scaleOf(d: KObject): object {
  const sel = Object.entries(d.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  return {
    kind: 'Scale', apiVersion: 'autoscaling/v1',
    metadata: { name: d.metadata.name, namespace: d.metadata.namespace, uid: d.metadata.uid, resourceVersion: d.metadata.resourceVersion, creationTimestamp: d.metadata.creationTimestamp },
    spec: { replicas: d.spec?.replicas ?? 0 },
    status: { replicas: d.status?.replicas ?? 0, selector: sel },
  };
}

/** deployments/{name}/scale (autoscaling/v1 Scale), which `kubectl scale` uses. */
async function serveScale(api: ApiServer, req: IncomingMessage, res: ServerResponse, name: string, namespace: string | undefined, dryRun: boolean): Promise<void> {
  const d = api.get('deployments', name, namespace);
  if (req.method === 'GET') return send(res, 200, scaleOf(d));
  const body = await readBody(req);
  let want: any;
  if (req.method === 'PUT') want = body;
  else if (req.method === 'PATCH') {
    const type = patchTypeOf(req.headers['content-type']);
    if (!type) throw unsupportedMediaType(String(req.headers['content-type']));
    want = applyPatch(scaleOf(d), body, type);
  } else throw methodNotAllowed(`the server does not allow the method ${req.method} on deployments/scale`);
  const replicas = want?.spec?.replicas;
  const rv = want?.metadata?.resourceVersion;
  const updated = api.update('deployments', { ...d, metadata: { ...d.metadata, resourceVersion: rv || d.metadata.resourceVersion }, spec: { ...d.spec, replicas } }, { namespace, dryRun });
  return send(res, 200, scaleOf(updated));
}

function api_conflictBinding(r: ResourceInfo, name: string, node: string): ApiError {
  return new ApiError({
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Conflict', code: 409,
    message: `Operation cannot be fulfilled on ${r.name}/binding "${name}": pod ${name} is already assigned to node "${node}"`,
    details: { name, kind: `${r.name}/binding` },
  });
}

/** Streams watch events as JSON lines until the client goes, the server closes, or timeoutSeconds passes. */
function serveWatch(
  api: ApiServer, res: ServerResponse, r: ResourceInfo, sel: { namespace?: string; labelSelector?: string; fieldSelector?: string },
  q: URLSearchParams, asTable: boolean,
): void {
  let first = true;
  const timeout = intParam(q, 'timeoutSeconds');
  // Validates selectors and resourceVersion before the 200 goes out, so bad ones get a plain error.
  let ended = false;
  const handle = api.openWatch(
    r.name,
    { ...sel, resourceVersion: q.get('resourceVersion') ?? undefined, allowWatchBookmarks: q.get('allowWatchBookmarks') === 'true' },
    (e) => {
      if (res.writableEnded) return;
      // kubectl get -w asks for Tables: each object becomes a one-row Table (columns in the first only).
      if (asTable && e.type !== 'ERROR' && e.type !== 'BOOKMARK') {
        const t = toTable(r, [e.object as KObject], (e.object as KObject).metadata.resourceVersion!) as { columnDefinitions: unknown[] };
        if (!first) t.columnDefinitions = [];
        first = false;
        res.write(JSON.stringify({ type: e.type, object: t }) + '\n');
      } else res.write(JSON.stringify(e) + '\n');
    },
    () => {
      ended = true;
      if (!res.writableEnded) res.end();
    },
  );
  if (ended) return;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache' });
  res.flushHeaders();
  const timer = timeout ? setTimeout(() => handle.stop(), timeout * 1000) : undefined;
  timer?.unref();
  res.on('close', () => {
    if (timer) clearTimeout(timer);
    handle.stop();
  });
}

export function createHttpServer(api: ApiServer): Server {
  const srv = createServer((req, res) => {
    handle(api, req, res).catch((err: unknown) => {
      const status = err instanceof ApiError ? err.status : internal((err as Error)?.message ?? String(err)).status;
      if (res.headersSent) {
        res.end();
        return;
      }
      send(res, status.code, status);
    });
  });
  // Watches stay open for a long time; no server-side idle cut-off.
  srv.requestTimeout = 0;
  srv.headersTimeout = 60_000;
  srv.keepAliveTimeout = 5_000;
  return srv;
}
