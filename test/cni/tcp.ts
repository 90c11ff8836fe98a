// TCP probes between lab namespaces: a server that tells each client the
// address it saw, and a client that reports its own local address, so a test
// can check that the address a pod sees for itself is the one its peer sees.
import type { LabProcess, NetnsLab } from '../lib/netns.js';

const SERVER = String.raw`
const net = require('node:net');
const port = Number(process.argv[1]);
const srv = net.createServer((s) => {
  const seen = s.remoteAddress.replace(/^::ffff:/, '');
  process.stdout.write(JSON.stringify({ from: seen }) + '\n');
  s.end(JSON.stringify({ seen, at: s.localAddress.replace(/^::ffff:/, '') }) + '\n');
});
srv.listen(port, '0.0.0.0', () => process.stdout.write('READY\n'));
`;

const CLIENT = String.raw`
const net = require('node:net');
const [addr, port] = [process.argv[1], Number(process.argv[2])];
const s = net.connect({ host: addr, port, timeout: 5000 });
let data = '';
s.on('data', (d) => (data += d));
s.on('timeout', () => { console.error('timeout'); process.exit(2); });
s.on('error', (e) => { console.error(String(e)); process.exit(1); });
let local = '';
s.on('connect', () => (local = s.localAddress.replace(/^::ffff:/, '')));
s.on('end', () => { process.stdout.write(JSON.stringify({ local, reply: JSON.parse(data) }) + '\n'); });
`;

export async function tcpServer(lab: NetnsLab, ns: string, port: number): Promise<LabProcess> {
  const p = lab.spawn(ns, process.execPath, ['-e', SERVER, String(port)], { timeoutMs: 300_000 });
  await p.waitForLine(/^READY$/, 10_000);
  return p;
}

/** Connects from `ns`; resolves with the client's local address and what the server saw. */
export async function tcpProbe(lab: NetnsLab, ns: string, addr: string, port: number): Promise<{ local: string; seen: string; at: string }> {
  const r = await lab.nsenter(ns, process.execPath, ['-e', CLIENT, addr, String(port)], { timeoutMs: 15_000 });
  if (!r.ok) throw new Error(`tcp ${addr}:${port} from ${ns} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  const o = JSON.parse(r.stdout.trim()) as { local: string; reply: { seen: string; at: string } };
  return { local: o.local, seen: o.reply.seen, at: o.reply.at };
}
