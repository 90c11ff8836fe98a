// `weir demo`: what the foundation can do today, end to end, on this machine.
// Two network namespaces joined by a veth; a BPF object loaded by weir's own
// loader; XDP on one end and tc egress on the other, attached through the
// native addon into the namespaces; real pings and UDP; the counters read back
// from the maps and decoded by their BTF types; then an XDP program swapped
// for a dropping one and back. Everything it makes is removed at the end,
// also on Ctrl-C or failure. The lab (`weir lab up`) replaces this demo once
// the service, pod-network and agent work lands.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Collection, CollectionSpec, decodeValue, loadCollectionSpec } from '../../loader/index.js';
import { tc, xdp } from '../../native/index.js';

const NS_A = 'weir-demo-a';
const NS_B = 'weir-demo-b';
const ADDR_A = '10.99.0.1';
const ADDR_B = '10.99.0.2';
const PIN_ROOT = '/sys/fs/bpf/weir-demo';

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function cleanup(): void {
  for (const ns of [NS_A, NS_B]) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      /* not there */
    }
  }
  rmSync(PIN_ROOT, { recursive: true, force: true });
}

function objectPath(): string {
  // The loader/packet-counting fixture, built by `make fixtures`.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'build', 'fixtures', 'maps.o');
    if (existsSync(p)) return p;
    if (dirname(dir) === dir) throw new Error('build/fixtures/maps.o is missing: run `make build`');
    dir = dirname(dir);
  }
}

function table(coll: Collection, spec: CollectionSpec, label: string): void {
  const m = coll.maps.proto_stats;
  const btf = spec.btf!;
  const ms = spec.maps.proto_stats;
  const rows = [...m.entries()].map(([k, v]) => ({ key: decodeValue(btf, ms.btfKeyTypeId, k), value: decodeValue(btf, ms.btfValueTypeId, v) }));
  say(`  ${label} (map ${m.info.name}, id ${m.info.id}):`);
  if (rows.length === 0) say('    (empty)');
  const names: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp' };
  for (const r of rows) {
    const k = r.key as { proto: number; dir: number };
    const v = r.value as { packets: number; bytes: number };
    say(`    proto ${String(k.proto).padStart(3)} (${names[k.proto] ?? '?'})  ${String(v.packets).padStart(4)} packets  ${String(v.bytes).padStart(6)} bytes`);
  }
}

function ping(count: number): number {
  try {
    const out = sh('ip', ['netns', 'exec', NS_A, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', ADDR_B]);
    return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
  } catch (e) {
    const out = String((e as { stdout?: string }).stdout ?? '');
    return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
  }
}

export async function runDemo(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('weir demo: needs root (it creates network namespaces and loads BPF programs)\n');
    return 1;
  }
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  cleanup(); // leftovers of an interrupted run
  const colls: Collection[] = [];
  try {
    say('weir foundation demo: two namespaces, one veth, programs loaded by weir\'s loader\n');
    sh('ip', ['netns', 'add', NS_A]);
    sh('ip', ['netns', 'add', NS_B]);
    sh('ip', ['-n', NS_A, 'link', 'add', 'veth-a', 'type', 'veth', 'peer', 'name', 'veth-b', 'netns', NS_B]);
    sh('ip', ['-n', NS_A, 'addr', 'add', `${ADDR_A}/24`, 'dev', 'veth-a']);
    sh('ip', ['-n', NS_B, 'addr', 'add', `${ADDR_B}/24`, 'dev', 'veth-b']);
    for (const [ns, dev] of [[NS_A, 'veth-a'], [NS_B, 'veth-b']]) {
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    say(`  ${NS_A} ${ADDR_A} (veth-a) <──veth──> (veth-b) ${ADDR_B} ${NS_B}`);

    mkdirSync(PIN_ROOT, { recursive: true });
    const obj = objectPath();
    const spec = loadCollectionSpec(obj);
    const ingress = await loadCollectionSpec(obj).load({ pinRoot: PIN_ROOT, constants: { count_dir: 0 } });
    const egress = await loadCollectionSpec(obj).load({ pinRoot: PIN_ROOT, constants: { count_dir: 1 } });
    colls.push(ingress, egress);
    const nsB = `/run/netns/${NS_B}`;
    const nsA = `/run/netns/${NS_A}`;
    const ifB = Number(JSON.parse(sh('ip', ['-n', NS_B, '-j', 'link', 'show', 'veth-b']))[0].ifindex);
    const ifA = Number(JSON.parse(sh('ip', ['-n', NS_A, '-j', 'link', 'show', 'veth-a']))[0].ifindex);
    xdp.attach({ ifindex: ifB, prog: ingress.programs.xdp_count, netns: nsB });
    tc.attach({ ifindex: ifA, attachPoint: 'egress', prog: egress.programs.tc_count, netns: nsA });
    say(`  loaded ${obj}`);
    say(`  XDP  xdp_count (prog id ${ingress.programs.xdp_count.info.id}) on veth-b in ${NS_B}, native mode`);
    say(`  tc   tc_count  (prog id ${egress.programs.tc_count.info.id}) on veth-a egress in ${NS_A}\n`);

    say(`ping -c 5 ${ADDR_B} from ${NS_A}: ${ping(5)}/5 replies`);
    for (let i = 0; i < 3; i++) sh('ip', ['netns', 'exec', NS_A, 'bash', '-c', `echo weir > /dev/udp/${ADDR_B}/9999`]);
    say(`3 UDP datagrams to ${ADDR_B}:9999\n`);
    table(egress, spec, 'leaving veth-a, counted by tc');
    table(ingress, spec, 'arriving on veth-b, counted by XDP');

    const dropper = await loadCollectionSpec(obj).load({ pinRoot: PIN_ROOT, constants: { xdp_verdict: 1 } });
    colls.push(dropper);
    xdp.attach({ ifindex: ifB, prog: dropper.programs.xdp_count, replace: true, netns: nsB });
    say(`\nreplaced XDP on veth-b with the same program, constant xdp_verdict = XDP_DROP`);
    say(`ping -c 3: ${ping(3)}/3 replies`);
    xdp.detach({ ifindex: ifB, netns: nsB });
    say(`detached XDP; ping -c 3: ${ping(3)}/3 replies`);
    say(`\nsee also: ./bin/weir inspect ${obj}`);
    return 0;
  } catch (e) {
    process.stderr.write(`weir demo: ${(e as Error).message}\n`);
    return 1;
  } finally {
    for (const c of colls) c.close();
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    say('\ncleaned up: namespaces, links, programs and pins removed');
  }
}
