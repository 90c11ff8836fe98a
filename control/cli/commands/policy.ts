// `weir policy get POD`, `weir policy list`, `weir identity list`: what the
// policy maps really hold (weir_ep_policy, weir_policy4, weir_ipcache4), in
// words: who may reach a pod and whom it may reach. Names (pods, policies,
// identity labels) come from the agent's policy snapshot in its state dir;
// the maps are the truth, and a snapshot that disagrees with them is
// reported (stale snapshot, agent down or mid-sync).
import type { Command } from 'commander';
import type { DatapathMaps } from '../../datapath/maps.js';
import * as T from '../../datapath/types.gen.js';
import { CliError, EXIT_USAGE, globals, openMaps, pinRoot, type GlobalOptions } from '../context.js';
import { labNodeOf } from '../trace.js';
import { ip4, parseIp4, protoName, table, toJson, write } from '../format.js';
import {
  identityMeaning,
  loadPolicySnapshot,
  lpmMatch,
  mergeRanges,
  policyEntriesById,
  policyKeyRange,
  portText,
  rangeKey,
  ruleSetRanges,
  type PolicyRange,
  type PolicySnapshotView,
  type SnapshotEndpoint,
} from '../views.js';

export type Direction = 'ingress' | 'egress';

export interface PolicyRow {
  identity: number;
  /** Who: "ns=default app=frontend", "host (this node)", "world in 1.2.3.0/24", "any peer". */
  peer: string;
  proto: string;
  /** "80", "8000-8100", "any" */
  ports: string;
  from: number;
  to: number;
}

export interface DirectionView {
  isolated: boolean;
  /** weir_ep_policy's id for this direction (0: not isolated). */
  policyId: number;
  /** "namespace/name" of the policies selecting the pod in this direction (snapshot). */
  policies: string[] | null;
  rows: PolicyRow[];
}

export interface PolicyGetView {
  pod: string;
  ip: string;
  endpointId: number;
  ingress: DirectionView;
  egress: DirectionView;
  /** weir_policy_gen[0].gen and the snapshot's gen. */
  gen: number | null;
  snapshotGen: number | null;
  snapshot: string | null;
  snapshotWrittenAt: string | null;
  warnings: string[];
}

/** A local pod, by address or by name (the snapshot knows names). */
export interface LocalPod {
  addr: number;
  ep: T.EndpointInfo;
  pod: string;
}

/** POD is an IPv4 address, NAMESPACE/NAME or NAME (namespace default). Bad syntax: exit 2. */
export function parsePodArg(s: string, what = 'POD'): { addr?: number; name?: string } {
  const addr = parseIp4(s);
  if (addr !== undefined) return { addr };
  const dns = '[a-z0-9]([-a-z0-9.]*[a-z0-9])?';
  if (new RegExp(`^${dns}/${dns}$`).test(s)) return { name: s };
  if (new RegExp(`^${dns}$`).test(s)) return { name: `default/${s}` };
  throw new CliError(`${what} '${s}' is not a pod: give NAMESPACE/NAME, NAME (namespace default) or an IPv4 address`, EXIT_USAGE);
}

/** The local endpoint a POD argument names; not local or unknown: exit 1 with where to look instead. */
export function resolvePod(
  m: DatapathMaps,
  arg: { addr?: number; name?: string },
  snap: PolicySnapshotView | undefined,
  snapProblem: string | undefined,
  text: string,
  labPinRoot?: string,
): LocalPod {
  let addr = arg.addr;
  if (addr === undefined) {
    if (!snap) throw new CliError(`cannot resolve pod name '${text}': ${snapProblem ?? 'no policy snapshot'}; give the pod's IP address instead`);
    const hit = [...snap.endpoints.values()].find((e) => e.pod === arg.name);
    if (!hit) throw new CliError(`pod ${arg.name} is not a local endpoint of this node (not in the policy snapshot ${snap.path}); it may run on another node: try --node, or its IP`);
    addr = parseIp4(hit.ip);
    if (addr === undefined) throw new CliError(`policy snapshot ${snap.path}: endpoint ${hit.endpointId} has a bad ip '${hit.ip}'`);
  }
  const ep = m.ep4.get({ addr });
  if (!ep || ep.flags & T.EndpointFlags.EP_F_HOST) {
    const route = lpmMatch(m.tunnel4.dump(), addr);
    const lab = route ? labNodeOf(labPinRoot, route[1].node_addr) : undefined;
    const there = lab ? `weir --node ${lab} policy get ${ip4(addr)}` : 'weir --node NAME ...';
    const where = route ? `: it is in the pod CIDR of node ${ip4(route[1].node_addr)} (node_id ${route[1].node_id}), whose agent enforces its policy — run this there (${there})` : '';
    throw new CliError(`${ip4(addr)} is not a local pod endpoint of this node (no entry in weir_ep4${ep ? ', or it is the gateway' : ''})${where}`);
  }
  return { addr, ep, pod: snap?.endpoints.get(ep.endpoint_id)?.pod ?? (arg.name ?? ip4(addr)) };
}

function rowsOf(ranges: PolicyRange[], snap?: PolicySnapshotView): PolicyRow[] {
  return ranges.map((r) => ({
    identity: r.identity,
    peer: identityMeaning(r.identity, snap),
    proto: r.proto === 0 ? 'any' : protoName(r.proto),
    ports: r.proto === 0 ? 'any' : portText(r),
    from: r.from,
    to: r.to,
  }));
}

/** Reads one pod's policy from the maps and checks it against the snapshot. */
export function policyGet(m: DatapathMaps, p: LocalPod, snap: PolicySnapshotView | undefined, snapProblem: string | undefined): PolicyGetView {
  const warnings: string[] = [];
  if (snapProblem) warnings.push(snapProblem);
  const epp = m.epPolicy.get(p.ep.endpoint_id);
  const byId = policyEntriesById(m);
  const gen = m.policyGen.get(0)?.gen ?? null;
  const sEp: SnapshotEndpoint | undefined = snap?.endpoints.get(p.ep.endpoint_id);
  if (snap && !sEp) warnings.push(`endpoint ${p.ep.endpoint_id} (${ip4(p.addr)}) is not in the policy snapshot: the snapshot is stale or the agent has not compiled it yet`);
  if (snap && sEp && sEp.ip !== ip4(p.addr)) warnings.push(`the snapshot has endpoint ${p.ep.endpoint_id} at ${sEp.ip}, the maps at ${ip4(p.addr)}: stale snapshot`);
  if (snap && gen !== null && snap.gen !== null && snap.gen !== gen) {
    warnings.push(`the snapshot is of policy generation ${snap.gen}, the maps are at ${gen}: the agent is mid-sync, down, or wrote the maps without a new snapshot`);
  }
  const programmed = snap?.policyIds.get(p.ep.endpoint_id);
  if (programmed && (programmed.ingress_id !== (epp?.ingress_id ?? 0) || programmed.egress_id !== (epp?.egress_id ?? 0))) {
    warnings.push(
      `the snapshot says endpoint ${p.ep.endpoint_id} has policy ids ingress ${programmed.ingress_id} / egress ${programmed.egress_id}, weir_ep_policy holds ${epp?.ingress_id ?? 0} / ${epp?.egress_id ?? 0}: stale snapshot or the agent is mid-sync or down`,
    );
  }
  const direction = (dir: Direction): DirectionView => {
    const id = epp ? (dir === 'ingress' ? epp.ingress_id : epp.egress_id) : 0;
    const compiled = sEp?.[dir];
    const view: DirectionView = { isolated: id !== 0, policyId: id, policies: compiled ? [...compiled.policies] : snap && sEp ? [] : null, rows: [] };
    if (id !== 0) {
      const entries = byId.get(id) ?? [];
      const allowing = entries.filter(([, v]) => v.flags & T.PolicyFlags.POLICY_F_ALLOW);
      const ranges = mergeRanges(allowing.map(([k]) => policyKeyRange(k)));
      view.rows = rowsOf(ranges, snap);
      if (compiled) {
        const want = ruleSetRanges(compiled).map(rangeKey).sort();
        const have = ranges.map(rangeKey).sort();
        if (want.join() !== have.join()) {
          const missing = want.filter((x) => !have.includes(x));
          const extra = have.filter((x) => !want.includes(x));
          warnings.push(`${dir}: the maps and the snapshot disagree (maps lack ${missing.join(', ') || 'nothing'}; maps have extra ${extra.join(', ') || 'nothing'} — as identity/proto/ports): stale snapshot or a sync in progress`);
        }
      }
    }
    if (snap && sEp && !!compiled !== view.isolated) {
      warnings.push(`${dir}: the snapshot says ${compiled ? `isolated by ${compiled.policies.join(', ')}` : 'not isolated'}, weir_ep_policy says ${view.isolated ? `policy id ${id}` : 'not isolated'}: stale snapshot or the agent is down`);
    }
    return view;
  };
  return {
    pod: p.pod,
    ip: ip4(p.addr),
    endpointId: p.ep.endpoint_id,
    ingress: direction('ingress'),
    egress: direction('egress'),
    gen,
    snapshotGen: snap?.gen ?? null,
    snapshot: snap?.path ?? null,
    snapshotWrittenAt: snap?.writtenAt ?? null,
    warnings,
  };
}

function renderDirection(dir: Direction, d: DirectionView): string {
  const who = dir === 'ingress' ? 'may reach it' : 'it may reach';
  if (!d.isolated) {
    return `${dir}: not isolated (no policy selects it for ${dir}): ${dir === 'ingress' ? 'anyone may reach it' : 'it may reach anyone'}\n`;
  }
  const by = d.policies === null ? '(policy names unknown: no snapshot)' : d.policies.length ? `by ${d.policies.join(', ')}` : '(no policy named in the snapshot)';
  let out = `${dir}: isolated ${by} — policy id ${d.policyId}\n`;
  if (d.rows.length === 0) return out + `  ${who}: nobody (everything ${dir === 'ingress' ? 'to' : 'from'} it is denied)\n`;
  out += `  ${who}:\n`;
  out += table(['PEER', 'IDENTITY', 'PROTO', 'PORTS'], d.rows.map((r) => [r.peer, r.identity, r.proto, r.ports]))
    .split('\n')
    .filter(Boolean)
    .map((l) => `    ${l}`)
    .join('\n');
  return out + '\n';
}

/** Rows of one (peer, proto) merged into one line: "80, 443, 8000-8100". */
function collapse(rows: PolicyRow[]): PolicyRow[] {
  const out: PolicyRow[] = [];
  for (const r of rows) {
    const last = out[out.length - 1];
    if (last && last.identity === r.identity && last.proto === r.proto && r.proto !== 'any') last.ports += `, ${r.ports}`;
    else out.push({ ...r });
  }
  return out;
}

export function renderPolicyGet(v: PolicyGetView): string {
  let out = `pod ${v.pod} (${v.ip}), endpoint ${v.endpointId}\n`;
  out += renderDirection('ingress', { ...v.ingress, rows: collapse(v.ingress.rows) });
  out += renderDirection('egress', { ...v.egress, rows: collapse(v.egress.rows) });
  for (const w of v.warnings) out += `warning: ${w}\n`;
  return out;
}

async function get(g: GlobalOptions, podArg: string): Promise<void> {
  const arg = parsePodArg(podArg);
  const m = openMaps(g);
  try {
    const { snapshot, problem } = loadPolicySnapshot(g.stateDir);
    const p = resolvePod(m, arg, snapshot, problem, podArg, g.node !== undefined ? pinRoot(g) : undefined);
    const v = policyGet(m, p, snapshot, problem);
    write(g.output === 'json' ? toJson(v) : renderPolicyGet(v));
  } finally {
    m.close();
  }
}

export interface PolicyListRow {
  pod: string;
  ip: string;
  endpointId: number;
  ingressId: number;
  egressId: number;
  ingressPolicies: string[] | null;
  egressPolicies: string[] | null;
}

async function list(g: GlobalOptions): Promise<void> {
  const m = openMaps(g);
  try {
    const { snapshot, problem } = loadPolicySnapshot(g.stateDir);
    const byId = policyEntriesById(m);
    const rows: PolicyListRow[] = m.ep4
      .dump()
      .filter(([, v]) => !(v.flags & T.EndpointFlags.EP_F_HOST))
      .map(([k, v]) => {
        const epp = m.epPolicy.get(v.endpoint_id);
        const s = snapshot?.endpoints.get(v.endpoint_id);
        const names = (dir: 'ingress' | 'egress') => (s ? s[dir]?.policies ?? [] : null);
        return {
          pod: s?.pod ?? ip4(k.addr),
          ip: ip4(k.addr),
          endpointId: v.endpoint_id,
          ingressId: epp?.ingress_id ?? 0,
          egressId: epp?.egress_id ?? 0,
          ingressPolicies: names('ingress'),
          egressPolicies: names('egress'),
        };
      })
      .sort((a, b) => a.endpointId - b.endpointId);
    const policies = [...byId].map(([id, e]) => ({ policyId: id, entries: e.length })).sort((a, b) => a.policyId - b.policyId);
    const gen = m.policyGen.get(0)?.gen ?? null;
    const warnings = problem ? [problem] : [];
    if (snapshot && gen !== null && snapshot.gen !== null && snapshot.gen !== gen) warnings.push(`the snapshot is of policy generation ${snapshot.gen}, the maps are at ${gen}`);
    if (g.output === 'json') return write(toJson({ gen, snapshotGen: snapshot?.gen ?? null, endpoints: rows, policies, problems: snapshot?.problems ?? [], warnings }));
    const dir = (id: number, names: string[] | null) => (id === 0 ? 'open' : `id ${id}${names?.length ? ` (${names.join(', ')})` : ''}`);
    let out = table(
      ['POD', 'IP', 'ENDPOINT', 'INGRESS', 'EGRESS'],
      rows.map((r) => [r.pod, r.ip, r.endpointId, dir(r.ingressId, r.ingressPolicies), dir(r.egressId, r.egressPolicies)]),
    );
    out += `\npolicy ids in weir_policy4: ${policies.map((p) => `${p.policyId} (${p.entries} entries)`).join(', ') || 'none'}; generation ${gen ?? '-'}\n`;
    for (const p of snapshot?.problems ?? []) out += `problem: ${p.kind} ${p.object} ${p.field}: ${p.message}\n`;
    for (const w of warnings) out += `warning: ${w}\n`;
    write(out);
  } finally {
    m.close();
  }
}

async function identities(g: GlobalOptions): Promise<void> {
  const m = openMaps(g);
  try {
    const { snapshot, problem } = loadPolicySnapshot(g.stateDir);
    const rows = m.ipcache4
      .dump()
      .map(([k, v]) => ({ prefix: `${ip4(k.addr)}/${k.prefixlen}`, addr: k.addr, prefixlen: k.prefixlen, identity: v.identity, meaning: identityMeaning(v.identity, snapshot) }))
      .sort((a, b) => a.addr - b.addr || a.prefixlen - b.prefixlen)
      .map(({ prefix, identity, meaning }) => ({ prefix, identity, meaning }));
    if (g.output === 'json') return write(toJson({ entries: rows, warnings: problem ? [problem] : [] }));
    let out = table(['PREFIX', 'IDENTITY', 'MEANING'], rows.map((r) => [r.prefix, r.identity, r.meaning]));
    out += `\n${rows.length} entries; an address no prefix holds is identity ${T.PolicyIdentity.ID_WORLD} (world)\n`;
    if (problem) out += `warning: ${problem}\n`;
    write(out);
  } finally {
    m.close();
  }
}

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('network policy as the maps enforce it');
  policy
    .command('get')
    .description('whether a pod is isolated per direction and by which policies, who may reach it and whom it may reach (from weir_ep_policy and weir_policy4)')
    .argument('<pod>', 'NAMESPACE/NAME, NAME (namespace default) or the pod IP')
    .action((pod: string, _o, cmd: Command) => get(globals(cmd), pod));
  policy
    .command('list')
    .description('every local endpoint with its ingress/egress policy ids and the policies behind them')
    .action((_o, cmd: Command) => list(globals(cmd)));
}

export function registerIdentity(program: Command): void {
  program
    .command('identity')
    .description('policy identities')
    .command('list')
    .description('the ipcache: every prefix -> identity -> what it stands for (labels, host, world, CIDR sets)')
    .action((_o, cmd: Command) => identities(globals(cmd)));
}
