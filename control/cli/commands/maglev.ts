// `weir maglev show SERVICE`: how a Maglev service's lookup table is shared
// among its backends (weir_maglev: svc_id -> inner array of M backend ids).
import type { Command } from 'commander';
import { BpfMap } from '../../../native/index.js';
import { CliError, globals, openMaps, type GlobalOptions } from '../context.js';
import { ip4, percent, table, toJson, write } from '../format.js';
import { frontend, matchesFrontend, parseServiceSelector } from '../views.js';

export interface MaglevView {
  svcId: number;
  frontends: string[];
  innerMapId: number;
  /** M: slots in the table. */
  tableSize: number;
  backends: Array<{ id: number; backend: string | null; slots: number; share: number }>;
}

/** Every slot's backend id: one batch read when the kernel has it, else slot by slot. */
function readSlots(inner: BpfMap): number[] {
  const m = inner.info.maxEntries;
  const out = new Array<number>(m).fill(0);
  try {
    for (const [k, v] of inner.lookupBatch()) out[k.readUInt32LE(0)] = v.readUInt32LE(0);
  } catch {
    const k = Buffer.alloc(4);
    for (let i = 0; i < m; i++) {
      k.writeUInt32LE(i);
      out[i] = inner.lookup(k)?.readUInt32LE(0) ?? 0;
    }
  }
  return out;
}

function show(g: GlobalOptions, service: string): void {
  const sel = parseServiceSelector(service);
  const m = openMaps(g);
  try {
    const frontends = new Map<number, string[]>();
    for (const [k, v] of m.svc4.entries()) {
      if (!matchesFrontend(sel, k.addr, k.port, k.proto, v.svc_id)) continue;
      frontends.set(v.svc_id, [...(frontends.get(v.svc_id) ?? []), frontend(k.addr, k.port, k.proto)]);
    }
    if (sel.svcId !== undefined && !frontends.has(sel.svcId)) frontends.set(sel.svcId, []);
    if (frontends.size === 0) throw new CliError(`no service frontend matches '${service}' in weir_svc4 (see weir service list)`);
    const views: MaglevView[] = [];
    for (const [svcId, fes] of [...frontends].sort((a, b) => a[0] - b[0])) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(svcId);
      const innerId = m.maglev.lookup(key)?.readUInt32LE(0);
      if (innerId === undefined) {
        if (frontends.size === 1) {
          throw new CliError(`service ${fes.join(', ') || `svc_id ${svcId}`} (svc_id ${svcId}) has no Maglev table in weir_maglev: its algorithm is not maglev`);
        }
        continue;
      }
      const inner = BpfMap.fromId(innerId);
      let slots: number[];
      try {
        slots = readSlots(inner);
      } finally {
        inner.close();
      }
      const counts = new Map<number, number>();
      for (const id of slots) counts.set(id, (counts.get(id) ?? 0) + 1);
      const backends = [...counts]
        .map(([id, n]) => {
          const b = id ? m.backend4.get(id) : undefined;
          return { id, backend: b ? `${ip4(b.addr)}:${b.port}` : null, slots: n, share: n / slots.length };
        })
        .sort((a, b) => b.slots - a.slots || a.id - b.id);
      views.push({ svcId, frontends: fes, innerMapId: innerId, tableSize: slots.length, backends });
    }
    if (views.length === 0) throw new CliError(`no service matching '${service}' has a Maglev table in weir_maglev`);
    if (g.output === 'json') return write(toJson({ maglev: views }));
    write(
      views
        .map(
          (v) =>
            `svc_id ${v.svcId} (${v.frontends.join(', ') || 'no frontend'}): ${v.tableSize} slots, ${v.backends.length} backends, inner map id ${v.innerMapId}\n` +
            table(
              ['BACKEND_ID', 'BACKEND', 'SLOTS', 'SHARE'],
              v.backends.map((b) => [b.id, b.backend ?? (b.id === 0 ? '(empty slot)' : '(not in weir_backend4)'), b.slots, percent(b.slots, v.tableSize)]),
            ),
        )
        .join('\n'),
    );
  } finally {
    m.close();
  }
}

export function registerMaglev(program: Command): void {
  program
    .command('maglev')
    .description('Maglev consistent-hashing tables')
    .command('show')
    .description('how many of the M lookup slots each backend of a Maglev service owns')
    .argument('<service>', 'frontend ADDR[:PORT[/PROTO]] (e.g. 10.96.0.10:80/tcp) or a svc_id')
    .action((service: string, _o, cmd: Command) => show(globals(cmd), service));
}
