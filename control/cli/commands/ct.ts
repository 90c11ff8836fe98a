// `weir ct list`: the conntrack table (weir_ct4) with ages, counters, the
// service and backend of each flow, and who fills the table.
import type { Command } from 'commander';
import * as T from '../../datapath/types.gen.js';
import { CliError, EXIT_USAGE, globals, openMaps, type GlobalOptions } from '../context.js';
import { duration, flagNames, ip4, monotonicNs, parseIp4, percent, protoName, table, toJson, write } from '../format.js';
import { dumpAll, frontend, matchesFrontend, parseServiceSelector, type ServiceSelector } from '../views.js';

export interface CtView {
  src: string;
  dst: string;
  proto: string;
  /** The pre-DNAT entry of a service flow (client -> frontend), which pins the backend. */
  serviceKey: boolean;
  /** The frontend this flow was addressed to, when it is a service flow. */
  service: string | null;
  backend: string | null;
  backendId: number;
  revnatId: number;
  /** Seconds since the flow was created / last seen (bpf_ktime_get_ns is CLOCK_MONOTONIC). */
  ageSeconds: number;
  idleSeconds: number;
  packetsFwd: bigint;
  bytesFwd: bigint;
  packetsRev: bigint;
  bytesRev: bigint;
  tcpState: string[];
  flags: string[];
  nat: string | null;
  policyGen: number;
}

interface CtOpts {
  service?: string;
  pod?: string;
  top?: string;
}

function top(counts: Map<string, number>, n: number): Array<{ name: string; entries: number }> {
  return [...counts]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, n)
    .map(([name, entries]) => ({ name, entries }));
}

function bump(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

function ctList(g: GlobalOptions, o: CtOpts): void {
  const pod = o.pod === undefined ? undefined : parseIp4(o.pod);
  if (o.pod !== undefined && pod === undefined) {
    throw new CliError(`--pod '${o.pod}' is not an IPv4 address (the maps know pods by address, not by name)`, EXIT_USAGE);
  }
  const sel: ServiceSelector | undefined = o.service === undefined ? undefined : parseServiceSelector(o.service, '--service');
  const topN = o.top === undefined ? 5 : Number(o.top);
  if (!Number.isInteger(topN) || topN < 0) throw new CliError(`--top '${o.top}' is not a whole number`, EXIT_USAGE);
  const m = openMaps(g);
  try {
    const svcIdOf = new Map<string, number>();
    for (const [k, v] of m.svc4.entries()) svcIdOf.set(`${k.addr}/${k.port}/${k.proto}`, v.svc_id);
    const now = monotonicNs();
    const all = dumpAll(m.ct4);
    const bySource = new Map<string, number>();
    const byService = new Map<string, number>();
    const byProto = new Map<string, number>();
    const entries: CtView[] = [];
    for (const [k, v] of all) {
      const serviceKey = (k.flags & T.CtKeyFlags.CT_KEY_SERVICE) !== 0;
      // The frontend: the key's own destination for a pre-DNAT entry, else the reverse-NAT target.
      let fe: { addr: number; port: number } | undefined;
      if (serviceKey) fe = { addr: k.daddr, port: k.dport };
      else if (v.revnat_id) fe = m.revnat4.get(v.revnat_id);
      const b = v.backend_id ? m.backend4.get(v.backend_id) : undefined;
      bump(bySource, ip4(k.saddr));
      bump(byService, fe ? frontend(fe.addr, fe.port, k.proto) : '(not a service flow)');
      bump(byProto, protoName(k.proto));
      if (sel && !(fe && matchesFrontend(sel, fe.addr, fe.port, k.proto, svcIdOf.get(`${fe.addr}/${fe.port}/${k.proto}`)))) continue;
      if (pod !== undefined && k.saddr !== pod && k.daddr !== pod && b?.addr !== pod) continue;
      entries.push({
        src: `${ip4(k.saddr)}:${k.sport}`,
        dst: `${ip4(k.daddr)}:${k.dport}`,
        proto: protoName(k.proto),
        serviceKey,
        service: fe ? frontend(fe.addr, fe.port, k.proto) : null,
        backend: b ? `${ip4(b.addr)}:${b.port}` : v.backend_id ? `id ${v.backend_id} (gone)` : null,
        backendId: v.backend_id,
        revnatId: v.revnat_id,
        ageSeconds: v.created ? Number(now - v.created) / 1e9 : 0,
        idleSeconds: v.last_seen ? Number(now - v.last_seen) / 1e9 : 0,
        packetsFwd: v.packets_fwd,
        bytesFwd: v.bytes_fwd,
        packetsRev: v.packets_rev,
        bytesRev: v.bytes_rev,
        tcpState: flagNames(v.tcp_state, T.CtTcpState, 'CT_TCP_'),
        flags: flagNames(v.flags, T.CtFlags, 'CT_F_'),
        nat: v.flags & T.CtFlags.CT_F_SNAT ? `${ip4(v.nat_addr)}:${v.nat_port}` : null,
        policyGen: v.policy_gen,
      });
    }
    entries.sort((a, b) => a.idleSeconds - b.idleSeconds || (a.src < b.src ? -1 : a.src > b.src ? 1 : 0));
    const max = m.ct4.map.info.maxEntries;
    const summary = {
      entries: all.length,
      maxEntries: max,
      fill: all.length / max,
      shown: entries.length,
      topSources: top(bySource, topN).map((t) => ({ source: t.name, entries: t.entries })),
      topServices: top(byService, topN).map((t) => ({ service: t.name, entries: t.entries })),
      byProto: Object.fromEntries(byProto),
    };
    if (g.output === 'json') return write(toJson({ entries, summary }));
    const secs = (s: number) => duration(BigInt(Math.round(s * 1e9)));
    let out = table(
      ['SRC', 'DST', 'PROTO', 'SERVICE', 'BACKEND', 'AGE', 'IDLE', 'PKTS FWD/REV', 'BYTES FWD/REV', 'TCP', 'FLAGS'],
      entries.map((e) => [
        e.src,
        e.dst,
        e.proto,
        e.service ? `${e.service}${e.serviceKey ? ' (pre-DNAT)' : ''}` : '-',
        e.backend ?? '-',
        secs(e.ageSeconds),
        secs(e.idleSeconds),
        `${e.packetsFwd}/${e.packetsRev}`,
        `${e.bytesFwd}/${e.bytesRev}`,
        e.tcpState.join(',') || '-',
        [...e.flags, ...(e.nat ? [`nat ${e.nat}`] : [])].join(',') || '-',
      ]),
    );
    out += `\n${summary.entries} of ${max} entries (${percent(summary.entries, max)} full)${entries.length !== all.length ? `, ${entries.length} shown` : ''}\n`;
    out += `top sources:  ${summary.topSources.map((t) => `${t.source} ${t.entries}`).join(', ') || '-'}\n`;
    out += `top services: ${summary.topServices.map((t) => `${t.service} ${t.entries}`).join(', ') || '-'}\n`;
    out += `by protocol:  ${[...byProto].map(([p, n]) => `${p} ${n}`).join(', ') || '-'}\n`;
    write(out);
  } finally {
    m.close();
  }
}

export function registerCt(program: Command): void {
  program
    .command('ct')
    .description('connection tracking')
    .command('list')
    .description('every tracked flow with its service, backend, age, idle time and counters, and who fills the table')
    .option('--service <frontend>', 'only flows to this service: ADDR[:PORT[/PROTO]] or a svc_id')
    .option('--pod <ip>', 'only flows from, to or through (as backend) this pod address')
    .option('--top <n>', 'how many top sources/services the summary names', '5')
    .action((o: CtOpts, cmd: Command) => ctList(globals(cmd), o));
}
