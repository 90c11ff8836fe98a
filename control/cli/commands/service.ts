// `weir service list` and `weir backend list`: weir_svc4 + weir_lb_slots +
// weir_backend4 read back as frontends and their backends.
import type { Command } from 'commander';
import { globals, openMaps, type GlobalOptions } from '../context.js';
import { table, toJson, write } from '../format.js';
import { backendView, frontend, serviceViews, type ServiceView } from '../views.js';

function backendCell(s: ServiceView): string {
  if (s.backends.length === 0) return '(none: rejected)';
  return s.backends
    .map((b) => {
      if ('missing' in b) return `slot ${b.slot}: MISSING`;
      const notes = [b.state, ...b.flags].filter((x) => x !== 'active');
      return `${b.addr}:${b.port}${notes.length ? ` (${notes.join(',')})` : ''}`;
    })
    .join(', ');
}

function serviceList(g: GlobalOptions): void {
  const m = openMaps(g);
  try {
    const list = serviceViews(m);
    if (g.output === 'json') return write(toJson({ services: list }));
    write(
      table(
        ['FRONTEND', 'SCOPE', 'SVC_ID', 'TYPE', 'ALGORITHM', 'AFFINITY', 'BACKENDS'],
        list.map((s) => [
          s.frontend,
          s.scope,
          s.svcId,
          s.flags.join(',') || '-',
          String(s.algorithm),
          s.affinityTimeout === null ? '-' : `clientip ${s.affinityTimeout}s`,
          backendCell(s),
        ]),
      ),
    );
  } finally {
    m.close();
  }
}

function backendList(g: GlobalOptions): void {
  const m = openMaps(g);
  try {
    // Which frontends use each backend: slots name backends by id per svc_id.
    const frontends = new Map<number, string[]>();
    for (const [k, v] of m.svc4.entries()) frontends.set(v.svc_id, [...(frontends.get(v.svc_id) ?? []), frontend(k.addr, k.port, k.proto)]);
    const usedBy = new Map<number, Set<string>>();
    for (const [k, id] of m.lbSlots.entries()) {
      const set = usedBy.get(id) ?? new Set<string>();
      for (const f of frontends.get(k.svc_id) ?? [`svc_id ${k.svc_id}`]) set.add(f);
      usedBy.set(id, set);
    }
    const list = m.backend4
      .dump()
      .map(([id, b]) => ({ ...backendView(id, b), services: [...(usedBy.get(id) ?? [])].sort() }))
      .sort((a, b) => a.id - b.id);
    if (g.output === 'json') return write(toJson({ backends: list }));
    write(
      table(
        ['ID', 'BACKEND', 'STATE', 'NODE_ID', 'FLAGS', 'SERVICES'],
        list.map((b) => [b.id, `${b.addr}:${b.port}/${b.proto}`, b.state, b.nodeId, b.flags.join(',') || '-', b.services.join(', ') || '(unused)']),
      ),
    );
  } finally {
    m.close();
  }
}

export function registerService(program: Command): void {
  program
    .command('service')
    .description('services as the datapath sees them')
    .command('list')
    .description('every frontend (address:port/proto and scope) with its backends in slot order, algorithm, affinity and flags')
    .action((_o, cmd: Command) => serviceList(globals(cmd)));
  program
    .command('backend')
    .description('backends as the datapath sees them')
    .command('list')
    .description('every backend with its state, node and the frontends that use it')
    .action((_o, cmd: Command) => backendList(globals(cmd)));
}
