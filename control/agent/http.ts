// /healthz (the process is up), /readyz (first full sync programmed) and
// Prometheus /metrics on the agent's metrics port.
import { createServer, type Server } from 'node:http';
import type { Registry } from './metrics.js';

export interface HealthSource {
  ready(): boolean;
  /** Why not ready, for /readyz's body. */
  readyReason(): string;
}

export function serveHttp(opts: { host: string; port: number; registry: Registry; health: HealthSource }): Promise<Server> {
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const ok = opts.health.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : `not ready: ${opts.health.readyReason()}\n`);
    } else if (url === '/metrics') {
      let body: string;
      try {
        body = opts.registry.render();
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(e as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz, /metrics\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
