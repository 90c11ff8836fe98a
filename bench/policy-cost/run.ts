// ns per packet of from_pod with and without NetworkPolicy (a benchmark, not
// a test: it prints a table). Runs build/bpf/pod.o, or WEIR_BPF_DIR's, under
// BPF_PROG_TEST_RUN with repeat (every repeat runs on the same skb, so the
// first repeat creates the CT entries and the rest are established packets).
//   npx vite-node bench/policy-cost/run.ts            REPEAT=1000000 ROUNDS=5
import { mkdirSync, rmSync } from 'node:fs';
import { loadCollectionSpec } from '../../loader/index.js';
import { BpfMap } from '../../native/index.js';
import { typedMaps } from '../../control/datapath/maps.js';
import { bpfObject } from '../../control/paths.js';
import { eth, ipToNumber } from '../../test/lib/packet.js';
import { allow, bumpGen, isolate, setIdentity, setPod } from '../../test/policy-bpf/harness.js';

const REPEAT = Number(process.env.REPEAT ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const be32 = (ip: string) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToNumber(ip));
  return b;
};
const ack = (src: string, dst: string, sport: number, dport: number) =>
  eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst }).tcp({ sport, dport, flags: ['ACK'], seq: 1 }).build();

const CLIENT = '10.244.1.5';
const POD = '10.244.1.21';
const VIP1 = '10.96.0.1';
const VIP2 = '10.96.0.2';

async function run(policy: boolean): Promise<Record<string, number[]>> {
  const pinRoot = `/sys/fs/bpf/wpb-bench-${process.pid}-${policy ? 1 : 0}`;
  mkdirSync(pinRoot, { recursive: true });
  const constants = {
    NODE_IP: be32('192.168.50.10'), POD_CIDR: be32('10.244.1.0'), POD_CIDR_MASK: be32('255.255.255.0'),
    CLUSTER_CIDR: be32('10.244.0.0'), CLUSTER_CIDR_MASK: be32('255.255.0.0'), GATEWAY_IP: be32('10.244.1.1'),
  };
  let coll: Awaited<ReturnType<ReturnType<typeof loadCollectionSpec>['load']>> | undefined;
  let m: ReturnType<typeof typedMaps> | undefined;
  try {
    coll = await loadCollectionSpec(bpfObject('pod')).load({ pinRoot, constants });
    m = typedMaps((name) => BpfMap.fromPin(`${pinRoot}/${name}`));
    setPod(m, CLIENT, 5);
    setPod(m, POD, 21);
    // ping-pong services (bench/prog-cost): VIP1:80 -> VIP2:81 -> VIP1:80 ...
    m.backend4.set(9, { addr: ipToNumber(VIP2), port: 81, proto: 6, state: 0, node_id: 1, flags: 1, pad: Buffer.alloc(3) });
    m.backend4.set(10, { addr: ipToNumber(VIP1), port: 80, proto: 6, state: 0, node_id: 1, flags: 1, pad: Buffer.alloc(3) });
    for (const [id, vip, port, be] of [[1, VIP1, 80, 9], [2, VIP2, 81, 10]] as const) {
      m.lbSlots.set({ svc_id: id, slot: 1 }, be);
      m.revnat4.set(id, { addr: ipToNumber(vip), port, pad: 0 });
      m.svc4.set({ addr: ipToNumber(vip), port, proto: 6, scope: 0 }, { svc_id: id, count: 1, revnat_id: id, affinity_timeout: 0, flags: 1, algorithm: 0, pad: 0 });
    }
    if (policy) {
      setIdentity(m, CLIENT, 300);
      setIdentity(m, POD, 301);
      isolate(m, 5, { egress: 2 });
      isolate(m, 21, { ingress: 1 });
      allow(m, 1, 300, 6, 8080);
      allow(m, 2, 301, 6, 8080);
      allow(m, 2, 2 /* world: the VIPs */, 6);
      bumpGen(m);
    }
    const prog = coll.programs.from_pod;
    const cases: Record<string, Buffer> = {
      'pod -> local pod, established': ack(CLIENT, POD, 40001, 8080),
      'established + DNAT (ping-pong)': ack(CLIENT, VIP1, 40000, 80),
    };
    const out: Record<string, number[]> = {};
    for (const [name, data] of Object.entries(cases)) {
      const first = await prog.testRun({ data, repeat: 1 });
      if (first.retval === 2) throw new Error(`${name}: dropped; the numbers would not measure the allowed path`);
      out[name] = [];
      for (let i = 0; i < ROUNDS; i++) out[name].push((await prog.testRun({ data, repeat: REPEAT })).durationNs);
    }
    return out;
  } finally {
    m?.close();
    coll?.close();
    rmSync(pinRoot, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`from_pod ns/packet (median of ${ROUNDS} x repeat ${REPEAT}), object: ${bpfObject('pod')}`);
for (const policy of [false, true]) {
  const r = await run(policy);
  for (const [name, xs] of Object.entries(r)) console.log(`${policy ? 'isolating policy' : 'no policy       '}  ${name.padEnd(32)} ${median(xs).toFixed(1).padStart(8)}   [${xs.map((x) => x.toFixed(0)).join(' ')}]`);
}
