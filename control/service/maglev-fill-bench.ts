// Measures programming many Maglev services into real pinned maps (root):
// the first sync of N services × B backends, and PinnedMaglev.replaceMany of
// N ready tables alone. Pins go to /sys/fs/bpf/h10-bench-<pid> and are removed.
//   npx vite-node control/service/maglev-fill-bench.ts [services] [backends] [rounds] [mmap|batch]
// 'batch' pins weir_maglev with a plain inner template (as an agent before
// BPF_F_MMAPABLE did), so PinnedMaglev fills tables with BPF_MAP_UPDATE_BATCH.
import { mkdirSync, rmSync } from 'node:fs';
import { loadCollectionSpec } from '../../loader/index.js';
import { bpfObject } from '../paths.js';
import { openPinnedMaps } from '../datapath/maps.js';
import { buildDesired } from './model.js';
import { ServiceReconciler } from './reconciler.js';
import { serviceTables } from './maps.js';
import { MAGLEV_M_DEFAULT, maglevTable } from './maglev.js';
import { port, service, slice } from './testobjects.js';

const n = Number(process.argv[2] ?? 1000);
const b = Number(process.argv[3] ?? 10);
const rounds = Number(process.argv[4] ?? 3);
const mode = process.argv[5] ?? 'mmap';
if (mode !== 'mmap' && mode !== 'batch') throw new Error(`mode must be mmap or batch, got ${mode}`);
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

const pinRoot = `/sys/fs/bpf/h10-bench-${process.pid}`;
mkdirSync(pinRoot, { recursive: true });
try {
  const mag = { metadata: { annotations: { 'weir.io/lb-algorithm': 'maglev' } } };
  const out = buildDesired({
    services: Array.from({ length: n }, (_, i) => service(`m${i}`, { clusterIP: `10.${96 + (i >> 8)}.${i & 255}.1`, ports: [port(80, { name: 'http' })] }, mag)),
    slices: Array.from({ length: n }, (_, i) =>
      slice(`m${i}-1`, `m${i}`, [{ name: 'http', port: 8080 }], Array.from({ length: b }, (_, j) => ({ ip: `10.${(i >> 8) + 1}.${i & 255}.${j + 1}` }))),
    ),
    nodeName: 'node-a',
    defaultAlgorithm: 'random',
  });
  if (out.problems.length) throw new Error(`model problems: ${JSON.stringify(out.problems[0])}`);

  for (let r = 0; r < rounds; r++) {
    const spec = loadCollectionSpec(bpfObject('pod'));
    if (mode === 'batch') spec.maps['weir_maglev'].inner!.flags = 0;
    (await spec.load({ pinRoot, programs: [] })).close();
    const maps = openPinnedMaps(pinRoot);
    try {
      const rec = new ServiceReconciler(serviceTables(maps));
      let t0 = process.hrtime.bigint();
      rec.sync(out.state);
      const first = ms(t0);

      // The table store alone: N fresh tables (ids 1..B) swapped in over the same svc ids.
      const keys = Array.from({ length: b }, (_, j) => `10.1.0.${j + 1}:8080/6`);
      const table = maglevTable(keys, MAGLEV_M_DEFAULT).map((x) => x + 1);
      const tables = Array.from({ length: n }, (_, i) => ({ svcId: 1_000_000 + i, table, tag: `bench${i}` }));
      const store = serviceTables(maps).maglev;
      t0 = process.hrtime.bigint();
      store.replaceMany(tables);
      const replace = ms(t0);
      store.deleteMany(tables.map((t) => t.svcId));
      console.log(`${store.fillMode} round ${r + 1}: first sync ${n}×${b} maglev: ${(first / 1000).toFixed(2)} s; replaceMany(${n}) alone: ${(replace / 1000).toFixed(2)} s (${(replace / n).toFixed(2)} ms/table)`);
      rec.sync({ frontends: new Map(), backends: new Map(), nodeAddrs: new Set() });
    } finally {
      maps.close();
    }
    rmSync(pinRoot, { recursive: true, force: true });
    mkdirSync(pinRoot, { recursive: true });
  }
} finally {
  rmSync(pinRoot, { recursive: true, force: true });
}
