// The datapath maps read back as services, backends and frontends: the
// shared reading behind `weir service list`, `backend list`, `ct list` and
// `maglev show`.
import type { DatapathMaps, TypedMap } from '../datapath/maps.js';
import * as T from '../datapath/types.gen.js';
import { CliError, EXIT_USAGE } from './context.js';
import { enumName, flagNames, ip4, parseIp4, protoName, protoNumber } from './format.js';

/** Every entry of a typed map: batch reads where the kernel has them (a large conntrack table in a few syscalls), else key by key. */
export function dumpAll<K, V>(m: TypedMap<K, V>): Array<[K, V]> {
  let raw: Array<[Buffer, Buffer]>;
  try {
    raw = m.map.lookupBatch();
  } catch {
    return m.dump();
  }
  return raw.map(([k, v]) => [m.key.decode(k), m.value.decode(v)]);
}

export interface BackendView {
  id: number;
  addr: string;
  port: number;
  proto: string;
  state: string;
  nodeId: number;
  flags: string[];
}

export interface ServiceView {
  /** "10.96.0.10:80/tcp"; NodePorts (addr 0) as "*:30080/tcp". */
  frontend: string;
  addr: string;
  port: number;
  proto: string;
  scope: string;
  svcId: number;
  revnatId: number;
  flags: string[];
  algorithm: string | number;
  /** Seconds of ClientIP affinity; null when the service has none. */
  affinityTimeout: number | null;
  /** Backends in slot order (slot 1..count); a missing slot or backend shows as null. */
  backends: Array<(BackendView & { slot: number }) | { slot: number; missing: string }>;
}

export function frontend(addr: number, port: number, proto: number): string {
  return `${addr === 0 ? '*' : ip4(addr)}:${port}/${protoName(proto)}`;
}

export function backendView(id: number, b: T.Backend4): BackendView {
  return {
    id,
    addr: ip4(b.addr),
    port: b.port,
    proto: protoName(b.proto),
    state: String(enumName(b.state, T.BackendState, 'BACKEND_')),
    nodeId: b.node_id,
    flags: flagNames(b.flags, T.BackendFlags, 'BACKEND_F_'),
  };
}

export function serviceViews(m: DatapathMaps): ServiceView[] {
  const out: ServiceView[] = [];
  for (const [k, v] of m.svc4.entries()) {
    const backends: ServiceView['backends'] = [];
    for (let slot = 1; slot <= v.count; slot++) {
      const id = m.lbSlots.get({ svc_id: v.svc_id, slot });
      if (id === undefined) {
        backends.push({ slot, missing: `slot ${slot} of svc_id ${v.svc_id} is not in weir_lb_slots` });
        continue;
      }
      const b = m.backend4.get(id);
      backends.push(b ? { slot, ...backendView(id, b) } : { slot, missing: `backend ${id} is not in weir_backend4` });
    }
    out.push({
      frontend: frontend(k.addr, k.port, k.proto),
      addr: k.addr === 0 ? '*' : ip4(k.addr),
      port: k.port,
      proto: protoName(k.proto),
      scope: String(enumName(k.scope, T.SvcScope, 'SVC_SCOPE_')),
      svcId: v.svc_id,
      revnatId: v.revnat_id,
      flags: flagNames(v.flags, T.SvcFlags, 'SVC_F_'),
      algorithm: enumName(v.algorithm, T.LbAlgorithm, 'LB_ALG_'),
      affinityTimeout: v.flags & T.SvcFlags.SVC_F_AFFINITY ? v.affinity_timeout : null,
      backends,
    });
  }
  return out.sort((a, b) => a.frontend.localeCompare(b.frontend, 'en', { numeric: true }) || a.scope.localeCompare(b.scope));
}

/** A service selector: "ADDR", "ADDR:PORT", "ADDR:PORT/PROTO" or a numeric svc_id. */
export interface ServiceSelector {
  addr?: number;
  port?: number;
  proto?: number;
  svcId?: number;
  text: string;
}

export function parseServiceSelector(s: string, what = 'service'): ServiceSelector {
  if (/^\d+$/.test(s)) return { svcId: Number(s), text: s };
  const m = /^(\*|[\d.]+)(?::(\d+))?(?:\/([a-z0-9]+))?$/i.exec(s);
  const addr = m ? (m[1] === '*' ? 0 : parseIp4(m[1])) : undefined;
  const port = m?.[2] !== undefined ? Number(m[2]) : undefined;
  const proto = m?.[3] !== undefined ? protoNumber(m[3]) : undefined;
  if (!m || addr === undefined || (port !== undefined && port > 65535) || (m[3] !== undefined && proto === undefined)) {
    throw new CliError(`${what} '${s}' is not ADDR[:PORT[/PROTO]] (e.g. 10.96.0.10:80/tcp) or a svc_id`, EXIT_USAGE);
  }
  return { addr, port, proto, text: s };
}

export function matchesFrontend(sel: ServiceSelector, addr: number, port: number, proto: number, svcId?: number): boolean {
  if (sel.svcId !== undefined) return svcId === sel.svcId;
  return sel.addr === addr && (sel.port === undefined || sel.port === port) && (sel.proto === undefined || sel.proto === proto);
}
