// The weir side's "agent": a child process that loads weir's datapath under a
// bench pin root, and on request programs services through the same service
// model and reconciler the real agent uses. A separate process so its RSS is
// the agent's, not the bench's. Protocol: one JSON request per stdin line,
// one JSON reply per stdout line ({ok:true,...} or {ok:false,error}).
import { createInterface } from 'node:readline';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { buildCluster, replaceLastEndpoint, type BenchService, type ClusterSpec } from '../baseline/services.js';
import { toService, toSlice } from './objects.js';

type Req =
  | { cmd: 'load'; pinRoot: string; nodeNetns: string; podIf: string; clientIp: string }
  | { cmd: 'program'; spec: ClusterSpec }
  | { cmd: 'change'; index: number; generation: number }
  | { cmd: 'attach' }
  | { cmd: 'detach' }
  | { cmd: 'memory' }
  | { cmd: 'clear' }
  | { cmd: 'exit' };

// Loaded lazily: the modules come from other parts of weir that may still be missing.
let dp: any;
let reconciler: any;
let mods: any;
let state: { pinRoot: string; nodeNetns: string; podIf: string; clientIp: string } | undefined;
let services: BenchService[] = [];
let previous: Map<string, unknown> | undefined;

async function imports() {
  if (mods) return mods;
  const [programs, model, rec, maps] = await Promise.all([
    import('../../control/datapath/programs.js'),
    import('../../control/service/model.js'),
    import('../../control/service/reconciler.js'),
    import('../../control/service/maps.js'),
  ]);
  return (mods = { programs, model, rec, maps });
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** Model + reconcile: the work between "these services are desired" and "the maps hold them". */
function sync(): { ms: number; modelMs: number; reconcileMs: number; problems: number; writes: unknown } {
  // The Kubernetes objects are what the agent's informers would hold already: not timed.
  const input = { services: services.map(toService), slices: services.map(toSlice), nodeName: 'bench-node', defaultAlgorithm: 'random' };
  const t0 = process.hrtime.bigint();
  const out = mods.model.buildDesired(input, previous);
  const modelMs = ms(t0);
  previous = out.services;
  reconciler.resetCounters?.();
  const t1 = process.hrtime.bigint();
  reconciler.sync(out.state);
  const reconcileMs = ms(t1);
  return { ms: ms(t0), modelMs, reconcileMs, problems: out.problems.length, writes: reconciler.counters };
}

async function handle(r: Req): Promise<Record<string, unknown>> {
  switch (r.cmd) {
    case 'load': {
      const m = await imports();
      state = { pinRoot: r.pinRoot, nodeNetns: r.nodeNetns, podIf: r.podIf, clientIp: r.clientIp };
      dp = await m.programs.loadDatapath({
        pinRoot: r.pinRoot,
        // The node owns the client pod's /29; the backends are reached by the kernel's routes.
        node: {
          ip: '192.168.251.1',
          id: 1,
          podCidr: '10.244.255.248/29',
          clusterCidr: '10.244.255.0/24',
          gatewayIp: '10.244.255.249',
          uplinkIfindex: 1,
          uplinkMac: '02:00:00:00:00:01',
        },
      });
      reconciler = new m.rec.ServiceReconciler(m.maps.serviceTables(dp.maps));
      // The agent is a long-running process: warm the model and reconciler code once, so
      // the first measurement is not the JIT's (then leave the maps empty again).
      services = buildCluster({ services: 2, endpoints: 2 });
      sync();
      services = [];
      previous = undefined;
      sync();
      return {};
    }
    case 'program': {
      services = buildCluster(r.spec);
      return sync();
    }
    case 'change': {
      const c = replaceLastEndpoint(services, r.index, r.generation);
      services = c.services;
      return sync();
    }
    case 'attach': {
      // from_pod accepts only the veth's own endpoint address as source (anti-spoofing):
      // register the client pod as the CNI endpoint code does.
      const { ifindex } = await import('../../native/index.js');
      const addr = state!.clientIp.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
      dp.maps.ep4.set({ addr }, { ifindex: ifindex(state!.podIf, state!.nodeNetns), endpoint_id: 1, mac: Buffer.alloc(6), node_mac: Buffer.alloc(6), flags: 0, identity: 0 });
      dp.attachPod({ ifname: state!.podIf, netns: state!.nodeNetns });
      return {};
    }
    case 'detach':
      dp.detachPod({ ifname: state!.podIf, netns: state!.nodeNetns });
      return {};
    case 'clear': {
      services = [];
      previous = undefined;
      return sync();
    }
    case 'memory': {
      const { BpfMap } = await import('../../native/index.js');
      return { rssBytes: process.memoryUsage().rss, maps: mapsMemlock(BpfMap) };
    }
    case 'exit':
      dp?.close();
      if (state) rmSync(state.pinRoot, { recursive: true, force: true });
      setImmediate(() => process.exit(0));
      return {};
  }
}

/** memlock of every map pinned under our root, as the kernel reports it (fdinfo; bpftool shows the same). */
function mapsMemlock(BpfMap: any): { total: number; byMap: Record<string, number> } {
  const byMap: Record<string, number> = {};
  for (const name of readdirSync(state!.pinRoot)) {
    let m: any;
    try {
      m = BpfMap.fromPin(`${state!.pinRoot}/${name}`);
    } catch {
      continue; // a program pin or something else
    }
    try {
      const info = readFileSync(`/proc/self/fdinfo/${m.fd}`, 'utf8');
      const k = /^memlock:\s+(\d+)/m.exec(info);
      if (k) byMap[name] = Number(k[1]);
    } finally {
      m.close();
    }
  }
  return { total: Object.values(byMap).reduce((a, b) => a + b, 0), byMap };
}

const rl = createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    let reply: Record<string, unknown>;
    try {
      reply = { ok: true, ...(await handle(JSON.parse(line) as Req)) };
    } catch (e) {
      reply = { ok: false, error: e instanceof Error ? e.stack ?? e.message : String(e) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
});
rl.on('close', () => {
  try {
    dp?.close();
  } finally {
    if (state) rmSync(state.pinRoot, { recursive: true, force: true });
  }
});
