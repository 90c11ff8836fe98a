// Interop with a runtime nobody here wrote: Debian's containerd 1.6 + runc run
// a busybox container with `ctr run --cni`, which executes bin/weir-cni from
// /opt/cni/bin with the conflist from /etc/cni/net.d. Those two host paths
// exist only inside a private mount namespace (overlays on /etc and /opt), so
// the machine's own /etc, /opt and /run are never changed; containerd's root, state
// and socket live in a temp folder and it runs inside a netns of this test.
// The image is built without a registry: umoci + busybox-static.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, requireNetns, run, runOk } from '../lib/netns.js';
import { callCni, CNI_BIN, cniBuilt, TestNode } from './agent-fixture.js';

const TOOLS = ['containerd', 'ctr', 'runc', 'umoci', 'unshare', 'busybox', 'ping'];
const skip = requireNetns('containerd calling weir-cni (apt-get install containerd runc umoci busybox-static)', TOOLS) || (!cniBuilt() && 'dist/ is not built (make dist)');
if (!cniBuilt() && process.env.CI) throw new Error('dist/ is not built; make test builds it before vitest');

/** Runs inside `unshare -m`: private /etc and /opt overlays holding the CNI files, a private /run, then containerd and ctr. */
const DRIVER = String.raw`
set -eu
T="$1"; NETNS="$2"; shift 2
mount --make-rprivate /
for d in etc opt; do
  mkdir -p "$T/ov/$d-up" "$T/ov/$d-work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/ov/$d-up,workdir=$T/ov/$d-work" "/$d"
done
mkdir -p /etc/cni/net.d /opt/cni/bin
cp "$T/10-weir.conflist" /etc/cni/net.d/
ln -s "$T/weir-cni" /opt/cni/bin/weir-cni
# containerd/ctr/runc write under /run/containerd: a private tmpfs /run, with
# the host's /run/netns bound back in so the test's namespaces stay reachable.
mkdir -p "$T/hostrun"
mount --rbind /run "$T/hostrun"
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
mount --rbind "$T/hostrun/netns" /run/netns
nsenter --net="$NETNS" containerd --config "$T/config.toml" > "$T/containerd.log" 2>&1 &
CPID=$!
trap 'kill $CPID 2>/dev/null; wait $CPID 2>/dev/null || true' EXIT
for i in $(seq 1 100); do [ -S "$T/containerd.sock" ] && break; sleep 0.1; done
ctr -a "$T/containerd.sock" image import "$T/bb.tar" >/dev/null
IMG=$(ctr -a "$T/containerd.sock" image ls -q | head -n1)
ctr -a "$T/containerd.sock" run --rm --cni "$IMG" weir-ctr-test "$@"
`;

describe.skipIf(skip)('containerd (ctr run --cni) calls weir-cni', () => {
  const lab = new NetnsLab({ prefix: 'weirtest-h4-' });
  let node: TestNode;
  let dir: string;
  let ctrdNs: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'h4-ctr-'));
    const ext = await lab.createNetns('cext');
    node = await TestNode.create(lab, { name: 'cn1', podCidr: '10.244.7.0/24', nodeIp: '192.168.57.1/24', id: 7, uplinkPeerNs: ext, uplinkPeerName: 'ext0', uplinkPeerAddr: '192.168.57.254/24' });
    ctrdNs = await lab.createNetns('containerd');

    // A busybox image as an OCI layout tarball.
    await runOk('umoci', ['init', '--layout', join(dir, 'img')]);
    await runOk('umoci', ['new', '--image', `${join(dir, 'img')}:bb`]);
    await runOk('umoci', ['unpack', '--image', `${join(dir, 'img')}:bb`, join(dir, 'bundle')]);
    mkdirSync(join(dir, 'bundle', 'rootfs', 'bin'), { recursive: true });
    copyFileSync('/usr/bin/busybox', join(dir, 'bundle', 'rootfs', 'bin', 'busybox'));
    for (const c of ['sh', 'ip', 'ping', 'cat']) symlinkSync('busybox', join(dir, 'bundle', 'rootfs', 'bin', c));
    await runOk('umoci', ['repack', '--image', `${join(dir, 'img')}:bb`, join(dir, 'bundle')]);
    await runOk('tar', ['-C', join(dir, 'img'), '-cf', join(dir, 'bb.tar'), '.']);

    const conflist = { cniVersion: '1.0.0', cniVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'], name: 'weir', plugins: [{ type: 'weir-cni', socketPath: node.socketPath, timeoutSeconds: 20 }] };
    writeFileSync(join(dir, '10-weir.conflist'), JSON.stringify(conflist));
    symlinkSync(CNI_BIN, join(dir, 'weir-cni'));
    writeFileSync(
      join(dir, 'config.toml'),
      `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\n[grpc]\n  address = "${dir}/containerd.sock"\n[ttrpc]\n  address = "${dir}/containerd.sock.ttrpc"\n`,
    );
  });

  afterAll(async () => {
    await node?.destroy();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the container gets a pod address and default route from weir, reaches its gateway and a pod, and DEL cleans up', async () => {
    // A pod made directly through the binary, for the container to reach.
    const other = await lab.createNetns('cpod');
    const add = await callCni({ command: 'ADD', containerId: 'ctr-peer', netns: lab.nsPath(other), conf: node.conf() });
    expect(add.code, add.stdout).toBe(0);
    const peerIp = add.json!.ips[0].address.replace('/32', '');

    const script = `ip -4 addr show eth0; ip route; ping -c 2 -W 2 ${node.gateway}; ping -c 2 -W 2 ${peerIp}`;
    const r = await run('unshare', ['-m', 'sh', '-c', DRIVER, 'driver', dir, lab.nsPath(ctrdNs), '/bin/sh', '-c', script], { timeoutMs: 90_000 });
    const log = await run('tail', ['-n', '30', join(dir, 'containerd.log')]);
    expect(r.code, `${r.stdout}\n${r.stderr}\ncontainerd.log:\n${log.stdout}`).toBe(0);
    const addr = /inet (10\.244\.7\.\d+)\/32/.exec(r.stdout);
    expect(addr, r.stdout).not.toBeNull();
    expect(r.stdout).toMatch(/default via 10\.244\.7\.1 dev eth0/);
    expect(r.stdout.match(/2 packets transmitted, 2 packets received/g)).toHaveLength(2);

    // ctr ran ADD (the container had weir's address) and, after exit, DEL (with an empty CNI_NETNS).
    expect(node.manager.list().map((e) => e.containerId)).toEqual(['ctr-peer']);
    expect(node.ipam.list().map((a) => a.containerId)).toEqual(['ctr-peer']);
    expect(node.ipam.byIp(addr![1])).toBeUndefined();
  });
});
