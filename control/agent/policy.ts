// The agent's policy subsystem: compiles NetworkPolicies (control/policy/
// compile.ts) over the cluster snapshot and this node's local endpoints, and
// reconciles the result into the policy maps (control/policy/reconciler.ts).
//
// - Identity numbers survive restarts: the first sync compiles once, matches
//   every identity's prefixes against the pinned weir_ipcache4, seeds the
//   allocator with the numbers the maps already use, and compiles again.
// - A NetworkPolicy that turns invalid keeps its last good version (the
//   problem is logged once, naming the object and the field).
// - A CNI ADD runs a sync including the new endpoint before its result is
//   returned (programEndpoint), so a pod never sends before its policy is in
//   place; DEL removes the endpoint's ep_policy entry.
// - After every sync the compiled policy is written for the CLI
//   (${stateDir}/policy.msgpack, control/policy/snapshot.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { compilePolicy } from '../policy/compile.js';
import { MemoryIdentityAllocator } from '../policy/identity.js';
import { encodePolicy, formatPrefix, parsePrefix } from '../policy/maps.js';
import { PolicyReconciler, type PolicyTables } from '../policy/reconciler.js';
import { buildPolicySnapshot, POLICY_SNAPSHOT_FILE, readPolicySnapshot, writePolicySnapshot, type PolicySnapshot } from '../policy/snapshot.js';
import { ID_FIRST_DYNAMIC, type CompiledPolicy, type LocalEndpoint, type PolicyInput } from '../policy/types.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import type { AddRequest, DelRequest } from '../endpoint/manager.js';
import type { Subsystem } from './agent.js';
import type { CniHandler } from './cni-server.js';
import type { AgentMetrics } from './metrics.js';
import type { ClusterState } from './watch.js';

export interface PolicySubsystemOptions {
  maps: PolicyTables;
  nodeName: string;
  /** This node's extra host addresses (the pod gateway). */
  hostAddresses: string[];
  /** Where policy.msgpack goes; undefined: no snapshot. */
  stateDir?: string;
  /** The local endpoints now (EndpointManager.list()). */
  endpoints: () => LocalEndpoint[];
  /** The newest cluster snapshot (for syncs outside the agent loop: CNI ADD). */
  cluster: () => ClusterState;
  log: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  metrics: AgentMetrics;
}

export interface PolicySubsystem extends Subsystem {
  /** Compiles and programs now, with the newest cluster state and endpoints (CNI ADD, before replying). */
  programNow(trigger: string): void;
  /** Removes an endpoint's ep_policy entry (CNI DEL). */
  removeEndpoint(endpointId: number): void;
  /** The last compile (tests, debugging). */
  readonly compiled: CompiledPolicy | undefined;
}

const refOf = (p: V1NetworkPolicy) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
/** Problems that say "not supported" rather than "invalid": the object is as good as it gets. */
const unsupportedOnly = (messages: string[]) => messages.every((m) => /unsupported|IPv6/i.test(m));

export function policySubsystem(o: PolicySubsystemOptions): PolicySubsystem {
  let reconciler: PolicyReconciler | undefined;
  let alloc: MemoryIdentityAllocator | undefined;
  let compiled: CompiledPolicy | undefined;
  /** Last version of each NetworkPolicy that compiled without problems. */
  const lastGood = new Map<string, V1NetworkPolicy>();
  /** Problems logged (each once while it lasts). */
  let reported = new Set<string>();
  const kept = new Set<string>();
  /** What the last snapshot written named (skip rewriting an identical one). */
  let snapshotNames = '';

  const input = (state: ClusterState, policies: readonly V1NetworkPolicy[]): PolicyInput => ({
    pods: state.pods as PolicyInput['pods'],
    namespaces: state.namespaces as PolicyInput['namespaces'],
    policies: policies as PolicyInput['policies'],
    nodes: state.nodes as PolicyInput['nodes'],
    nodeName: o.nodeName,
    hostAddresses: o.hostAddresses,
    endpoints: o.endpoints(),
  });

  function previousSnapshot(): PolicySnapshot | undefined {
    if (!o.stateDir) return undefined;
    const path = join(o.stateDir, POLICY_SNAPSHOT_FILE);
    if (!existsSync(path)) return undefined;
    try {
      return readPolicySnapshot(path);
    } catch (e) {
      o.log.warn({ path, err: (e as Error).message }, 'ignoring an unreadable policy snapshot; identities recovered from the maps only');
      return undefined;
    }
  }

  /** First compile after start: reuse the identity numbers the pinned ipcache (and the last snapshot) hold. */
  function recoverAllocator(state: ClusterState, policies: readonly V1NetworkPolicy[]): MemoryIdentityAllocator {
    const pinned = reconciler!.pinnedIpcache();
    const probe = compilePolicy(input(state, policies), new MemoryIdentityAllocator());
    const prefixesOf = new Map<number, string[]>();
    for (const [p, id] of probe.ipcache) {
      const l = prefixesOf.get(id) ?? [];
      l.push(p);
      prefixesOf.set(id, l);
    }
    // Each key takes the pinned number most of its prefixes have; a number goes to one key only.
    const votes: Array<{ key: string; id: number; n: number }> = [];
    for (const info of probe.identities.values()) {
      if (info.id < ID_FIRST_DYNAMIC) continue;
      const count = new Map<number, number>();
      for (const p of prefixesOf.get(info.id) ?? []) {
        const have = pinned.get(normalize(p));
        if (have !== undefined && have >= ID_FIRST_DYNAMIC) count.set(have, (count.get(have) ?? 0) + 1);
      }
      for (const [id, n] of count) votes.push({ key: info.key, id, n });
    }
    // The last snapshot names keys exactly: it wins where the maps still use its number.
    const inMaps = new Set(pinned.values());
    const keys = new Set([...probe.identities.values()].map((i) => i.key));
    for (const i of previousSnapshot()?.identities ?? []) {
      if (i.id >= ID_FIRST_DYNAMIC && inMaps.has(i.id) && keys.has(i.key)) votes.push({ key: i.key, id: i.id, n: Number.MAX_SAFE_INTEGER });
    }
    votes.sort((a, b) => b.n - a.n || a.id - b.id || (a.key < b.key ? -1 : 1));
    const seed = new Map<string, number>();
    const taken = new Set<number>();
    for (const v of votes) {
      if (seed.has(v.key) || taken.has(v.id)) continue;
      seed.set(v.key, v.id);
      taken.add(v.id);
    }
    // Numbers in the maps that no key claimed stay out of use until the next compile retires them.
    const stray = [...new Set(pinned.values())].filter((id) => id >= ID_FIRST_DYNAMIC && !taken.has(id));
    o.log.info({ recovered: seed.size, unclaimed: stray.length }, 'policy identities recovered from the pinned ipcache');
    return new MemoryIdentityAllocator([...seed, ...stray.map((id) => [`\u0000unclaimed:${id}`, id] as [string, number])]);
  }

  function compile(state: ClusterState): CompiledPolicy {
    const t0 = process.hrtime.bigint();
    let policies: readonly V1NetworkPolicy[] = state.networkPolicies;
    if (!alloc) alloc = recoverAllocator(state, policies);
    let c = compilePolicy(input(state, policies), alloc);
    // An invalid policy that was good before: compile its last good version instead.
    const bad = new Map<string, string[]>();
    for (const p of c.problems) if (p.kind === 'NetworkPolicy') bad.set(p.object, [...(bad.get(p.object) ?? []), p.message]);
    const substitute = new Map<string, V1NetworkPolicy>();
    for (const [ref, msgs] of bad) {
      const good = lastGood.get(ref);
      if (good && !unsupportedOnly(msgs)) substitute.set(ref, good);
    }
    if (substitute.size) {
      policies = policies.map((p) => substitute.get(refOf(p)) ?? p);
      // The problems reported are those of what the user wrote, not of the substitute.
      c = { ...compilePolicy(input(state, policies), alloc), problems: c.problems };
    }
    for (const ref of substitute.keys()) {
      if (!kept.has(ref)) o.log.warn({ kind: 'NetworkPolicy', object: ref }, 'policy became invalid; enforcing its last good version until it is fixed');
    }
    kept.clear();
    for (const ref of substitute.keys()) kept.add(ref);
    const live = new Set(state.networkPolicies.map(refOf));
    for (const p of state.networkPolicies) if (!bad.has(refOf(p))) lastGood.set(refOf(p), p);
    for (const ref of lastGood.keys()) if (!live.has(ref)) lastGood.delete(ref);
    o.metrics.policySyncDuration.observe({ phase: 'compile' }, Number(process.hrtime.bigint() - t0) / 1e9);
    return c;
  }

  function report(c: CompiledPolicy): void {
    const now = new Set<string>();
    const byKind = new Map<string, number>();
    for (const p of c.problems) {
      const key = `${p.kind} ${p.object} ${p.field} ${p.message}`;
      now.add(key);
      byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + 1);
      if (!reported.has(key)) o.log.warn({ kind: p.kind, object: p.object, field: p.field }, p.message);
    }
    reported = now;
    o.metrics.policyProblems.reset([...byKind].map(([kind, n]) => [{ kind }, n]));
  }

  function program(state: ClusterState, trigger: string): void {
    const c = compile(state);
    report(c);
    const t0 = process.hrtime.bigint();
    const r = reconciler!.sync(encodePolicy(c));
    o.metrics.policySyncDuration.observe({ phase: 'reconcile' }, Number(process.hrtime.bigint() - t0) / 1e9);
    compiled = c;
    if (r.changed) {
      o.log.info(
        { trigger, gen: r.gen, ipcacheSet: r.ipcacheSet, ipcacheDeleted: r.ipcacheDeleted, policyEntriesSet: r.policyEntriesSet, policyEntriesDeleted: r.policyEntriesDeleted, epPolicySet: r.epPolicySet, epPolicyDeleted: r.epPolicyDeleted },
        'policy maps updated',
      );
    }
    gauges();
    // The snapshot is rewritten when the maps changed or what it names did (policy names, pods, problems).
    const names = [...c.endpoints.values()].map((e) => `${e.endpointId} ${e.pod} ${e.ingress?.policies.join(',') ?? '-'} ${e.egress?.policies.join(',') ?? '-'}`).join('\n') + '\n' + [...reported].sort().join('\n');
    if (o.stateDir && (r.changed || names !== snapshotNames)) {
      snapshotNames = names;
      try {
        writePolicySnapshot(join(o.stateDir, POLICY_SNAPSHOT_FILE), buildPolicySnapshot(c, { gen: r.gen, node: o.nodeName, policyIds: reconciler!.policyIds() }));
      } catch (e) {
        snapshotNames = '';
        o.log.warn({ err: (e as Error).message, dir: o.stateDir }, 'cannot write the policy snapshot for the CLI');
      }
    }
  }

  function gauges(): void {
    if (!reconciler) return;
    const s = reconciler.stats();
    o.metrics.policyIds.set({}, s.policyIds);
    o.metrics.policyEntries.set({}, s.policyEntries);
    o.metrics.policyGen.set({}, s.gen);
    if (compiled) {
      const byKind = new Map<string, number>();
      for (const i of compiled.identities.values()) byKind.set(i.kind, (byKind.get(i.kind) ?? 0) + 1);
      o.metrics.policyIdentities.reset([...byKind].map(([kind, n]) => [{ kind }, n]));
    }
  }

  return {
    name: 'policy',
    get compiled() {
      return compiled;
    },
    async start() {
      reconciler = new PolicyReconciler(o.maps);
      const s = reconciler.stats();
      o.log.info({ policyIds: s.policyIds, policyEntries: s.policyEntries, ipcacheEntries: s.ipcacheEntries, gen: s.gen }, 'policy maps recovered');
    },
    sync(state: ClusterState) {
      program(state, 'sync');
    },
    programNow(trigger: string) {
      if (!reconciler) throw new Error('policy subsystem not started');
      program(o.cluster(), trigger);
    },
    removeEndpoint(endpointId: number) {
      if (reconciler?.removeEndpoint(endpointId)) o.log.info({ endpointId }, 'endpoint policy removed');
    },
    collect() {
      gauges();
    },
  };
}

function normalize(prefix: string): string {
  try {
    return formatPrefix(parsePrefix(prefix));
  } catch {
    return prefix;
  }
}

/**
 * Wraps the CNI handler so a new endpoint is programmed with its policy
 * before ADD returns (the runtime starts the pod's processes only after
 * that), and DEL drops its ep_policy entry. If the policy cannot be
 * programmed the ADD is undone and fails (the runtime retries it): a pod
 * never runs without the policy that selects it.
 */
export function withPolicy<H extends CniHandler>(
  inner: H,
  policy: Pick<PolicySubsystem, 'programNow' | 'removeEndpoint' | 'compiled'>,
  records: { get(k: { containerId: string; ifname: string }): { endpointId: number } | undefined },
  log?: Pick<Logger, 'warn'>,
  o: { waitForPodMs?: number } = {},
): H {
  const waitForPodMs = o.waitForPodMs ?? 3_000;
  return {
    ...inner,
    add: async (req: AddRequest) => {
      const reply = await inner.add(req);
      const ns = req.args?.K8S_POD_NAMESPACE;
      const name = req.args?.K8S_POD_NAME;
      const id = records.get(req)?.endpointId;
      try {
        policy.programNow('cni-add');
        // The kubelet made the Pod before the sandbox, but the informer may lag: its
        // labels decide the policy, so give the watch a moment to deliver it.
        if (ns && name && id !== undefined) {
          const resolved = () => policy.compiled?.endpoints.get(id)?.pod === `${ns}/${name}`;
          for (const end = Date.now() + waitForPodMs; !resolved() && Date.now() < end; ) {
            await new Promise((r) => setTimeout(r, 100));
            policy.programNow('cni-add');
          }
          if (!resolved()) log?.warn({ pod: `${ns}/${name}`, endpointId: id, waitedMs: waitForPodMs }, 'pod object not in the watch cache yet: endpoint programmed without its policy until the next sync');
        }
      } catch (e) {
        try {
          await inner.del({ containerId: req.containerId, ifname: req.ifname, netns: req.netns });
        } catch (u) {
          log?.warn({ containerId: req.containerId, err: (u as Error).message }, 'undoing an ADD whose policy failed: DEL failed too');
        }
        throw new CniError(ErrorCode.Datapath, 'cannot program the network policy of the new endpoint', (e as Error).message);
      }
      return reply;
    },
    del: async (req: DelRequest) => {
      const rec = records.get(req);
      await inner.del(req);
      if (rec) policy.removeEndpoint(rec.endpointId);
    },
  };
}
