// `weir agent`: the per-node daemon. It loads and attaches the datapath
// (reusing every pinned map), then keeps the maps equal to what the cluster
// says: services (kube-proxy's job), tunnels to other nodes' pod CIDRs, and
// the CNI endpoints pods get through weir-cni. SIGTERM leaves everything
// programmed and attached; the next agent picks it up without a flush.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, type V1Node } from '@kubernetes/client-node';
import pino, { type Logger } from 'pino';
import { isPerCpuMapType } from '../../native/index.js';
import { MapNames } from '../datapath/maps.js';
import { setupNode, uplinkInfo, podMtu } from '../datapath/node.js';
import { loadDatapath, type Datapath } from '../datapath/programs.js';
import { UPLINK_MAC_ANNOTATION, desiredTunnels, formatIpv4, nodeRouteFromObject, parseCidr, parseIpv4, reconcileTunnels, type NodeRoute } from '../datapath/routes.js';
import { EndpointManager } from '../endpoint/manager.js';
import { Ipam } from '../ipam/allocator.js';
import { buildDesired } from '../service/model.js';
import { serviceTables } from '../service/maps.js';
import { ServiceReconciler } from '../service/reconciler.js';
import type { ServiceDesired } from '../service/types.js';
import { WeirReason } from '../datapath/types.gen.js';
import { Agent, type Subsystem } from './agent.js';
import { serveCni, type CniServer } from './cni-server.js';
import { policySubsystem, withPolicy, type PolicySubsystem } from './policy.js';
import { resolveConfig, type AgentConfig } from './config.js';
import { agentMetrics, type AgentMetrics } from './metrics.js';
import { ClusterWatch, loadKubeConfig, type ClusterState } from './watch.js';

const internalIp = (n: V1Node | undefined) => n?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;

/** Node ids are the node's IPv4 InternalIP as a number: unique, stable, and the same on every node. */
export function nodeIdOf(n: V1Node | undefined): number | undefined {
  const ip = internalIp(n);
  if (!ip) return undefined;
  try {
    return parseIpv4(ip);
  } catch {
    return undefined;
  }
}

async function fetchSelf(core: CoreV1Api, name: string, log: Logger): Promise<V1Node> {
  for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
    try {
      return await core.readNode({ name });
    } catch (e) {
      log.warn({ node: name, err: (e as Error).message, retryInMs: delay }, 'cannot read this node from the API server yet');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

function servicesSubsystem(dp: Datapath, cfg: AgentConfig, log: Logger, metrics: AgentMetrics): Subsystem {
  let reconciler: ServiceReconciler | undefined;
  let previous: Map<string, ServiceDesired> | undefined;
  let reported = new Set<string>();
  /** "frontend error" → frontend, of the failures logged (each once). */
  let reportedFailures = new Map<string, string>();
  return {
    name: 'services',
    async start() {
      reconciler = new ServiceReconciler(serviceTables(dp.maps, cfg.maglevTableSize));
      log.info({ services: reconciler.svcIds.size ?? undefined }, 'service maps recovered');
    },
    sync(state: ClusterState) {
      const self = state.nodes.find((n) => n.metadata?.name === cfg.nodeName);
      const ids = new Map(state.nodes.map((n) => [n.metadata?.name ?? '', nodeIdOf(n)]));
      const out = buildDesired(
        {
          services: state.services,
          slices: state.endpointSlices,
          nodeName: cfg.nodeName,
          node: self,
          defaultAlgorithm: cfg.lbAlgorithm,
          maglevM: cfg.maglevTableSize,
          nodeId: (name) => ids.get(name),
        },
        previous,
      );
      previous = out.services;
      const now = new Set<string>();
      const byKind = new Map<string, number>();
      for (const p of out.problems) {
        const ref = p.namespace ? `${p.namespace}/${p.name}` : p.name;
        const key = `${p.kind} ${ref} ${p.field} ${p.message}`;
        now.add(key);
        byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + 1);
        if (!reported.has(key)) log.warn({ kind: p.kind, object: ref, field: p.field, skipped: p.skipped }, p.message);
      }
      reported = now;
      metrics.objectProblems.reset([...byKind].map(([kind, n]) => [{ kind }, n]));
      // A frontend the kernel refuses is left as it was and retried next
      // pass; the rest are programmed, so this pass does not fail (the agent
      // stays ready). sync still throws for errors of the maps themselves.
      const { failed } = reconciler!.sync(out.state);
      const failing = new Map<string, string>();
      for (const f of failed) {
        const key = `${f.frontend} ${f.error.message}`;
        failing.set(key, f.frontend);
        if (!reportedFailures.has(key)) {
          log.warn({ service: f.service || undefined, port: f.portName || undefined, frontend: f.frontend, err: f.error.message }, 'service frontend not programmed; retrying each sync');
        }
      }
      const stillFailing = new Set(failing.values());
      for (const [key, fk] of reportedFailures) if (!failing.has(key) && !stillFailing.has(fk)) log.info({ frontend: fk }, 'service frontend no longer failing');
      reportedFailures = failing;
      // One per pass with failures, as for a pass that throws.
      if (failed.length > 0) metrics.syncErrors.inc({ subsystem: 'services' });
    },
  };
}

function routesSubsystem(dp: Datapath, cfg: AgentConfig, log: Logger): Subsystem {
  let reported = new Set<string>();
  return {
    name: 'routes',
    sync(state: ClusterState) {
      const routes: NodeRoute[] = [];
      const now = new Set<string>();
      for (const n of state.nodes) {
        const r = nodeRouteFromObject(n as never);
        if (typeof r === 'string') {
          now.add(r);
          if (!reported.has(r)) log.warn({ kind: 'Node', object: n.metadata?.name }, r);
          continue;
        }
        routes.push({ ...r, id: nodeIdOf(n) });
      }
      const res = reconcileTunnels(dp.maps.tunnel4, routes, cfg.nodeName);
      for (const e of res.errors) {
        now.add(e);
        if (!reported.has(e)) log.warn({ kind: 'Node' }, e);
      }
      reported = now;
      if (res.set || res.deleted) log.info({ set: res.set, deleted: res.deleted }, 'tunnel map updated');
    },
  };
}

function endpointsSubsystem(manager: EndpointManager, cfg: AgentConfig, log: Logger, metrics: AgentMetrics, policy?: PolicySubsystem): Subsystem {
  let server: CniServer | undefined;
  return {
    name: 'endpoints',
    async start() {
      const r = await manager.resync();
      if (r.restored || r.missing.length) log.info({ restored: r.restored, missing: r.missing }, 'endpoints re-attached after start');
      // With policy: an ADD returns only once the endpoint's policy is programmed; DEL drops its ep_policy entry.
      const handler = policy ? withPolicy(manager, policy, manager, log) : manager;
      const timed = {
        add: async (req: Parameters<EndpointManager['add']>[0]) => time('ADD', () => handler.add(req)),
        del: async (req: Parameters<EndpointManager['del']>[0]) => time('DEL', () => handler.del(req)),
        check: async (req: Parameters<EndpointManager['check']>[0]) => time('CHECK', () => manager.check(req)),
        gc: async (valid: Parameters<EndpointManager['gc']>[0]) => time('GC', () => manager.gc(valid)),
        status: () => manager.status(),
      };
      async function time<T>(command: string, fn: () => Promise<T>): Promise<T> {
        const t0 = process.hrtime.bigint();
        let result = 'ok';
        try {
          return await fn();
        } catch (e) {
          result = 'error';
          throw e;
        } finally {
          metrics.cniLatency.observe({ command, result }, Number(process.hrtime.bigint() - t0) / 1e9);
        }
      }
      server = await serveCni({ socketPath: cfg.cniSocket, manager: timed, log });
      log.info({ socket: cfg.cniSocket }, 'serving CNI requests');
    },
    sync() {
      /* endpoints change through CNI requests, not the API server */
    },
    async stop() {
      await server?.close();
    },
  };
}

/** Map fill, conntrack entries and datapath drop counters for /metrics. */
function mapMetrics(dp: Datapath, metrics: AgentMetrics): Subsystem {
  return {
    name: 'map-metrics',
    sync() {},
    collect() {
      const rows: Array<[Record<string, string>, number]> = [];
      const fill: Array<[Record<string, string>, number]> = [];
      for (const [key, name] of Object.entries(MapNames)) {
        if (key === 'events' || key === 'metrics' || key === 'maglev') continue;
        const t = (dp.maps as unknown as Record<string, { map: { keys(): Iterable<Buffer>; info: { maxEntries: number } } }>)[key];
        let n = 0;
        for (const _ of t.map.keys()) n++;
        rows.push([{ map: name }, n]);
        fill.push([{ map: name }, n / t.map.info.maxEntries]);
        if (key === 'ct4') metrics.ctEntries.set({}, n);
      }
      metrics.mapEntries.reset(rows);
      metrics.mapFill.reset(fill);
      const reasons = Object.fromEntries(Object.entries(WeirReason).map(([k, v]) => [v, k.replace(/^REASON_/, '').toLowerCase()]));
      const dirs = ['egress', 'ingress', 'uplink'];
      const drops = new Map<string, [Record<string, string>, number]>();
      const fwd = new Map<string, [Record<string, string>, number]>();
      const m = dp.maps.metrics;
      if (!isPerCpuMapType(m.info.type)) return;
      for (const [k, v] of m.entries()) {
        const reason = k.readUInt8(4);
        const dir = dirs[k.readUInt8(5)] ?? String(k.readUInt8(5));
        let packets = 0;
        for (let off = 0; off + 16 <= v.length; off += 16) packets += Number(v.readBigUInt64LE(off));
        const target = reason === 0 ? fwd : drops;
        const labels: Record<string, string> = reason === 0 ? { direction: dir } : { reason: reasons[reason] ?? String(reason), direction: dir };
        const id = JSON.stringify(labels);
        target.set(id, [labels, (target.get(id)?.[1] ?? 0) + packets]);
      }
      metrics.drops.reset([...drops.values()]);
      metrics.forwarded.reset([...fwd.values()]);
    },
  };
}

export async function runAgent(flags: Record<string, string | undefined>): Promise<void> {
  const { config: file, ...rest } = flags;
  const cfg = resolveConfig({ flags: rest, env: process.env, file });
  const log = pino({ level: cfg.logLevel, base: { node: cfg.nodeName } });
  const metrics = agentMetrics();
  const kc = loadKubeConfig({ kubeconfig: cfg.kubeconfig, apiServer: cfg.apiServer });
  const core = kc.makeApiClient(CoreV1Api);
  log.info({ bpffsRoot: cfg.bpffsRoot, uplink: cfg.uplink, lbAlgorithm: cfg.lbAlgorithm }, 'weir agent starting');

  const self = await fetchSelf(core, cfg.nodeName, log);
  const podCidr = cfg.podCidr || self.spec?.podCIDR;
  if (!podCidr) throw new Error(`node ${cfg.nodeName} has no spec.podCIDR and --pod-cidr is not set`);
  const cidr = parseCidr(podCidr, `node ${cfg.nodeName} spec.podCIDR`);
  const gatewayIp = formatIpv4((cidr.addr + 1) >>> 0);
  const up = await uplinkInfo({ uplink: cfg.uplink });
  const nodeIp = internalIp(self) ?? up.ip;
  if (!nodeIp) throw new Error(`node ${cfg.nodeName}: no InternalIP in status.addresses and ${cfg.uplink} has no IPv4 address`);
  if (self.metadata?.annotations?.[UPLINK_MAC_ANNOTATION] !== up.mac) {
    // Other nodes put this MAC in their tunnel maps (no ARP across the fabric).
    try {
      await core.patchNode({ name: cfg.nodeName, body: { metadata: { annotations: { [UPLINK_MAC_ANNOTATION]: up.mac } } } }, undefined as never);
      log.info({ node: cfg.nodeName, mac: up.mac }, 'published the uplink MAC on this node');
    } catch (e) {
      log.warn({ node: cfg.nodeName, err: (e as Error).message }, `cannot annotate this node with ${UPLINK_MAC_ANNOTATION}; other nodes cannot reach its pods until it is set`);
    }
  }

  mkdirSync(cfg.bpffsRoot, { recursive: true });
  mkdirSync(cfg.stateDir, { recursive: true });
  const dp = await loadDatapath({
    pinRoot: cfg.bpffsRoot,
    node: { ip: nodeIp, id: parseIpv4(nodeIp), podCidr, clusterCidr: cfg.clusterCidr, gatewayIp, uplinkIfindex: up.ifindex, uplinkMac: up.mac },
    maglevM: cfg.maglevTableSize,
    ctEntries: cfg.ctEntries,
    lbDefaultAlg: cfg.lbAlgorithm === 'maglev' ? 1 : 0,
  });
  await setupNode(dp, { uplink: cfg.uplink, podCidr, clusterCidr: cfg.clusterCidr, gatewayIp });
  log.info({ nodeIp, podCidr, gatewayIp, uplink: cfg.uplink }, 'datapath loaded and attached (maps reused from pins)');

  const ipam = Ipam.open({ cidr: podCidr, stateFile: join(cfg.stateDir, 'ipam.json'), gateway: gatewayIp });
  let agent: Agent | undefined;
  const manager = EndpointManager.open({
    ipam,
    datapath: dp,
    stateFile: join(cfg.stateDir, 'endpoints.json'),
    mtu: podMtu(up.mtu),
    gateway: gatewayIp,
    notReady: () => (agent?.ready() ? undefined : 'the agent has not finished its first sync with the API server'),
    log,
  });

  const watch = new ClusterWatch(kc, log, metrics);
  const policy = policySubsystem({
    maps: dp.maps,
    nodeName: cfg.nodeName,
    hostAddresses: [gatewayIp],
    stateDir: cfg.stateDir,
    endpoints: () => manager.list().map((r) => ({ endpointId: r.endpointId, ip: r.ip, podNamespace: r.podNamespace, podName: r.podName })),
    cluster: () => watch.snapshot(),
    log,
    metrics,
  });
  agent = new Agent({
    log,
    metrics,
    source: watch,
    subsystems: [servicesSubsystem(dp, cfg, log, metrics), routesSubsystem(dp, cfg, log), policy, endpointsSubsystem(manager, cfg, log, metrics, policy), mapMetrics(dp, metrics)],
    http: { host: cfg.metricsHost, port: cfg.metricsPort },
    resyncMs: 60_000,
  });
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'stopping; the datapath stays pinned and attached');
    await agent!.stop();
    dp.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  await agent.start();
}

export { desiredTunnels };
