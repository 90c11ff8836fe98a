// Measurement, not a test (numbers go to bpf/ROUTING.md): VXLAN decap at tc
// (from_uplink does it all) versus XDP (xdp_decap.c strips, from_uplink
// delivers). 1) BPF_PROG_TEST_RUN ns/packet; 2) TCP throughput pod -> pod
// across two netns nodes, each way, best of N.
// Run as root (creates weirtest-h3-* namespaces and removes them):
//   make bpf
//   clang -O2 -g -target bpf -mcpu=v3 -I/usr/include/$(uname -m)-linux-gnu -Ibpf/include \
//     -c test/route/measure/xdp_decap.c -o /tmp/h3_xdp_decap.o
//   npx tsc -p test/route/measure/tsconfig.json && RUNS=5 node build/h3measure/test/route/measure/decap.js
import { loadCollectionSpec } from '../../../loader/index.js';
import { nodeConstants } from '../../../control/datapath/programs.js';
import { xdp } from '../../../native/index.js';
import { eth, ipToNumber } from '../../lib/packet.js';
import { RouteLab } from '../lab.js';

const XDP_OBJ = process.env.XDP_DECAP_OBJ ?? '/tmp/h3_xdp_decap.o';
const MB = Number(process.env.MB ?? 200);
const RUNS = Number(process.env.RUNS ?? 3);

async function stream(r: RouteLab, fromNs: string, to: string, port: number, bytes: number): Promise<number> {
  const script = `
    const net = require('net');
    const chunk = Buffer.alloc(1 << 20, 7);
    const t0 = process.hrtime.bigint();
    const s = net.connect(${port}, '${to}', () => {
      let left = ${bytes};
      const pump = () => { while (left > 0) { left -= chunk.length; if (!s.write(chunk)) return s.once('drain', pump); } s.end(); };
      pump();
    });
    s.on('data', () => {});
    s.on('end', () => { console.log(String(process.hrtime.bigint() - t0)); process.exit(0); });
    s.on('error', (e) => { console.error(e.message); process.exit(1); });`;
  const res = await r.lab.nsenter(fromNs, process.execPath, ['-e', script], { timeoutMs: 120_000 });
  if (!res.ok) throw new Error(`stream failed: ${res.stderr}`);
  const ns = Number(res.stdout.trim());
  return bytes / (ns / 1e9) / 1e6; // MB/s
}

async function main() {
  const r = new RouteLab();
  try {
    await r.createFabric();
    const n1 = await r.weirNode('n1', '192.168.77.1', '10.244.1.0/24', 1);
    const n2 = await r.weirNode('n2', '192.168.77.2', '10.244.2.0/24', 2);
    r.tunnel(n1, n2, 2);
    r.tunnel(n2, n1, 1);
    const a = await r.pod(n1, 'a', '10.244.1.11', 11);
    const c = await r.pod(n2, 'c', '10.244.2.21', 21);

    // 1) TEST_RUN: a 64-byte-payload TCP packet from c to a, as it arrives on n1's uplink.
    const inner = eth({ src: n2.mac, dst: n1.mac }).ipv4({ src: c.ip, dst: a.ip }).tcp({ sport: 5555, dport: 80, flags: ['ACK'] }).payload(Buffer.alloc(64)).build();
    const vx = eth({ src: n2.mac, dst: n1.mac }).ipv4({ src: n2.ip, dst: n1.ip }).vxlan({ vni: 1, udpZeroChecksum: true }).payload(inner).build();
    const spec = loadCollectionSpec(XDP_OBJ);
    const consts = nodeConstants({ pinRoot: n1.pinRoot, node: { ip: n1.ip, id: 1, podCidr: n1.podCidr, clusterCidr: '10.244.0.0/16', gatewayIp: n1.gateway, uplinkIfindex: 1, uplinkMac: n1.mac } });
    const x = await spec.load({ constants: Object.fromEntries(Object.entries(consts).filter(([k]) => spec.variables[k])) });
    const xprog = x.programs.xdp_vxlan_decap;
    const stripped = Buffer.concat([vx.subarray(0, 14), inner.subarray(14)]);
    // repeat > 1 would run later iterations on the already-stripped buffer
    // (adjust_room/adjust_head persist across repeats), so: one run per call,
    // the median of many calls.
    const calls = 20_000;
    const median = async (run: () => Promise<{ durationNs: number; retval: number }>) => {
      const t: number[] = [];
      let verdict = 0;
      for (let i = 0; i < calls; i++) {
        const res = await run();
        t.push(res.durationNs);
        verdict = res.retval;
      }
      t.sort((p, q) => p - q);
      return `${t[calls >> 1]} ns (p90 ${t[Math.floor(calls * 0.9)]}, verdict ${verdict})`;
    };
    console.log(`TEST_RUN, median of ${calls} single runs:`);
    console.log(`  tc from_uplink, VXLAN in (decap + deliver): ${await median(() => n1.dp.programs.fromUplink.testRun({ data: vx }))}`);
    console.log(`  tc from_uplink, stripped in (deliver only):  ${await median(() => n1.dp.programs.fromUplink.testRun({ data: stripped }))}`);
    console.log(`  XDP strip only:                              ${await median(() => xprog.testRun({ data: vx }))}`);

    // 2) Throughput, both directions, tc decap then XDP decap on both uplinks.
    const srvA = await r.tcpServer(a.ns, 7000);
    const srvC = await r.tcpServer(c.ns, 7000);
    // Interleaved so load from other work on the machine hits both alike.
    const rates: Record<string, { toA: number[]; toC: number[] }> = { tc: { toA: [], toC: [] }, xdp: { toA: [], toC: [] } };
    const uplinks = await Promise.all([n1, n2].map(async (n) => ({ n, ifindex: (await r.lab.link(n.ns, 'eth0')).ifindex })));
    for (let i = 0; i < RUNS; i++) {
      for (const mode of ['tc', 'xdp'] as const) {
        for (const u of uplinks) {
          if (mode === 'xdp') xdp.attach({ ifindex: u.ifindex, prog: xprog, netns: u.n.nsPath, mode: 'native', replace: true });
          else xdp.detach({ ifindex: u.ifindex, netns: u.n.nsPath });
        }
        rates[mode].toA.push(await stream(r, c.ns, a.ip, 7000, MB << 20));
        rates[mode].toC.push(await stream(r, a.ns, c.ip, 7000, MB << 20));
      }
    }
    const med = (v: number[]) => [...v].sort((p, q) => p - q)[v.length >> 1].toFixed(0);
    for (const [mode, v] of Object.entries(rates)) {
      console.log(`${mode === 'tc' ? 'tc decap' : 'XDP decap (native, veth) + tc deliver'}: c->a median ${med(v.toA)} MB/s [${v.toA.map((n) => n.toFixed(0)).join(' ')}], a->c median ${med(v.toC)} MB/s [${v.toC.map((n) => n.toFixed(0)).join(' ')}] (${MB} MB per run)`);
    }
    await srvA.stop();
    await srvC.stop();
    x.close();
  } finally {
    await r.cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
