import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Usage (root, after make dist): node test/cni/measure-cni.mjs [pods]
// Times weir-cni ADD/CHECK/DEL through the binary against an in-process agent
// on a node netns (h4m-*), and the agent's own share in-process.
const ROOT = new URL('../../', import.meta.url).pathname;
const D = `${ROOT}dist/control`;
const { loadDatapath } = await import(`${D}/datapath/programs.js`);
const { setupNode, podMtu } = await import(`${D}/datapath/node.js`);
const { Ipam } = await import(`${D}/ipam/allocator.js`);
const { EndpointManager } = await import(`${D}/endpoint/manager.js`);
const { serveCni } = await import(`${D}/agent/cni-server.js`);
const sh = (...a) => execFileSync(a[0], a.slice(1), { encoding: 'utf8' });
const N = Number(process.argv[2] ?? 20);
const node = 'h4m-node', ext = 'h4m-ext';
const pods = Array.from({ length: N }, (_, i) => `h4m-p${i}`);
const dir = mkdtempSync(join(tmpdir(), 'h4m-'));
const pin = `/sys/fs/bpf/h4-measure-${process.pid}`;
try {
  for (const n of [node, ext, ...pods]) sh('ip', 'netns', 'add', n);
  sh('ip', '-n', node, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'e0', 'netns', ext);
  sh('ip', '-n', node, 'addr', 'add', '192.168.70.1/24', 'dev', 'uplink0');
  sh('ip', '-n', node, 'link', 'set', 'uplink0', 'up');
  const up = JSON.parse(sh('ip', '-n', node, '-j', 'link', 'show', 'uplink0'))[0];
  const dp = await loadDatapath({ pinRoot: pin, node: { ip: '192.168.70.1', id: 1, podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16', gatewayIp: '10.244.1.1', uplinkIfindex: up.ifindex, uplinkMac: up.address } });
  await setupNode(dp, { netns: `/run/netns/${node}`, uplink: 'uplink0', podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16', gatewayIp: '10.244.1.1' });
  const ipam = Ipam.open({ cidr: '10.244.1.0/24', stateFile: join(dir, 'ipam.json') });
  const m = EndpointManager.open({ ipam, datapath: dp, stateFile: join(dir, 'ep.json'), mtu: podMtu(1500), nodeNetns: `/run/netns/${node}` });
  const srv = await serveCni({ socketPath: join(dir, 'cni.sock'), manager: m });
  const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'weir', type: 'weir-cni', socketPath: join(dir, 'cni.sock') });
  const call = (cmd, i) => new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(`${ROOT}bin/weir-cni`, [], { env: { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: `m${i}`, CNI_NETNS: `/run/netns/${pods[i]}`, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' } });
    let out = ''; c.stdout.on('data', (d) => (out += d)); c.stdin.end(conf);
    c.on('close', (code) => (code === 0 ? res(Number(process.hrtime.bigint() - t0) / 1e6) : rej(new Error(out))));
  });
  const agentTimes = [];
  const stat = (a) => { const s = [...a].sort((x, y) => x - y); return `median ${s[s.length >> 1].toFixed(1)} ms, p90 ${s[Math.floor(s.length * 0.9)].toFixed(1)} ms`; };
  const v = []; for (let i = 0; i < 10; i++) { const t0 = process.hrtime.bigint(); execFileSync(`${ROOT}bin/weir-cni`, { input: '{"cniVersion":"1.1.0"}', env: { CNI_COMMAND: 'VERSION' } }); v.push(Number(process.hrtime.bigint() - t0) / 1e6); }
  console.log(`VERSION (process start only): ${stat(v)}`);
  const a = []; for (let i = 0; i < N; i++) a.push(await call('ADD', i));
  console.log(`ADD sequential x${N}: ${stat(a)}`);
  const c = []; for (let i = 0; i < N; i++) c.push(await call('CHECK', i));
  console.log(`CHECK sequential x${N}: ${stat(c)}`);
  const d = []; for (let i = 0; i < N; i++) d.push(await call('DEL', i));
  console.log(`DEL sequential x${N}: ${stat(d)}`);
  const t0 = Date.now(); await Promise.all(pods.map((_, i) => call('ADD', i))); const tp = Date.now() - t0;
  console.log(`ADD ${N} in parallel: ${tp} ms wall`);
  const t1 = Date.now(); await Promise.all(pods.map((_, i) => call('DEL', i))); console.log(`DEL ${N} in parallel: ${Date.now() - t1} ms wall`);
  // in-process (no plugin process): agent work only
  const ai = []; for (let i = 0; i < N; i++) { const t = process.hrtime.bigint(); await m.add({ containerId: `x${i}`, ifname: 'eth0', netns: `/run/netns/${pods[i]}` }); ai.push(Number(process.hrtime.bigint() - t) / 1e6); }
  console.log(`agent add (in-process) x${N}: ${stat(ai)}`);
  for (let i = 0; i < N; i++) await m.del({ containerId: `x${i}`, ifname: 'eth0' });
  await srv.close(); dp.close();
} finally {
  for (const n of [node, ext, ...pods]) { try { sh('ip', 'netns', 'del', n); } catch {} }
  rmSync(pin, { recursive: true, force: true }); rmSync(dir, { recursive: true, force: true });
}
