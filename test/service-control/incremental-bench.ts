// Times one endpoint change at N services over the in-memory tables: model
// (buildDesired) and reconcile (ServiceReconciler.sync), median of R changes.
// `npx vite-node test/service-control/incremental-bench.ts 10000 5 [fresh]`
// fresh: every sync gets new objects (as bench/weir/agent.ts builds them);
// default: unchanged objects are the same instances (as an informer cache hands them).
import { buildCluster, replaceLastEndpoint, type BenchService } from '../../bench/baseline/services.js';
import { toService, toSlice } from '../../bench/weir/objects.js';
import { fakeTables } from '../../control/service/fake.js';
import { buildDesired } from '../../control/service/model.js';
import { ServiceReconciler } from '../../control/service/reconciler.js';
import type { ServiceDesired, V1EndpointSlice, V1Service } from '../../control/service/types.js';

const n = Number(process.argv[2] ?? 5000);
const e = Number(process.argv[3] ?? 5);
const fresh = process.argv[4] === 'fresh';
const rounds = 9;

let services: BenchService[] = buildCluster({ services: n, endpoints: e, nodePortEvery: 10 });
const objs = new Map<BenchService, [V1Service, V1EndpointSlice]>();
const objects = () =>
  services.map((s) => {
    let o = fresh ? undefined : objs.get(s);
    if (!o) objs.set(s, (o = [toService(s), toSlice(s)]));
    return o;
  });
const rec = new ServiceReconciler(fakeTables());
let previous: Map<string, ServiceDesired> | undefined;
const ms = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;
function sync() {
  const o = objects();
  const input = { services: o.map((x) => x[0]), slices: o.map((x) => x[1]), nodeName: 'bench-node', defaultAlgorithm: 'random' as const };
  const t0 = process.hrtime.bigint();
  const out = buildDesired(input, previous);
  const model = ms(t0);
  previous = out.services;
  rec.resetCounters();
  const t1 = process.hrtime.bigint();
  rec.sync(out.state);
  return { model, reconcile: ms(t1), writes: rec.counters };
}
const first = sync();
const runs: Array<{ model: number; reconcile: number }> = [];
for (let i = 0; i < rounds; i++) {
  services = replaceLastEndpoint(services, (i * 7919) % services.length, i + 1).services;
  runs.push(sync());
}
const med = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
const last = sync();
console.log(
  `N=${n} E=${e} ${fresh ? 'fresh objects' : 'same objects'}: first sync ${(first.model + first.reconcile).toFixed(0)} ms; ` +
    `one endpoint change: model ${med(runs.map((r) => r.model)).toFixed(1)} ms, reconcile ${med(runs.map((r) => r.reconcile)).toFixed(1)} ms (median of ${rounds}); ` +
    `unchanged resync writes ${JSON.stringify(Object.values(last.writes).map((w) => w.writes + w.deletes))}`,
);
