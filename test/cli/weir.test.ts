// The CLI entry: `bin/weir` runs in place from dist/ (built by make), and
// `weir inspect` shows what the loader reads from an object.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, repoRoot } from '../lib/fixtures.js';
import { listNetns, requireNetns } from '../lib/netns.js';

const bin = join(repoRoot, 'bin', 'weir');
const built = existsSync(join(repoRoot, 'dist', 'control', 'cli', 'main.js'));
if (!built && process.env.CI) throw new Error('dist/ is not built; make test builds it before running vitest');

describe.skipIf(!built)('bin/weir', () => {
  const weir = (...args: string[]) => spawnSync(bin, args, { encoding: 'utf8', timeout: 30_000 });

  it('prints help and the version', () => {
    const help = weir('help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage:/m);
    expect(help.stdout).toContain('weir inspect OBJECT.o');
    const version = execFileSync(bin, ['version'], { encoding: 'utf8' });
    expect(version.trim()).toMatch(/^weir \d+\.\d+\.\d+$/);
  });

  it('inspects an object: programs, linked subprograms, maps with BTF types, constants', () => {
    const r = weir('inspect', '--json', fixture('maps'));
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.license).toBe('GPL');
    expect(out.programs.find((p: { name: string }) => p.name === 'xdp_count')).toMatchObject({
      section: 'xdp',
      functions: ['xdp_count', 'count_packet'],
    });
    expect(out.maps.find((m: { name: string }) => m.name === 'proto_stats')).toMatchObject({
      key: 'struct proto_key',
      value: 'struct proto_stats',
      keySize: 4,
      valueSize: 16,
    });
    expect(out.constants.map((c: { name: string }) => c.name).sort()).toEqual(['count_dir', 'tc_verdict', 'xdp_verdict']);
    const text = weir('inspect', fixture('maps'));
    expect(text.stdout).toMatch(/xdp_count\s+xdp\s+\d+ insns\s+calls: count_packet/);
  });

  it('bad input gets a clear error and a non-zero exit', () => {
    const missing = weir('inspect', '/nonexistent.o');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/weir inspect: cannot read BPF object \/nonexistent\.o/);
    const notBpf = weir('inspect', process.execPath);
    expect(notBpf.status).toBe(1);
    expect(notBpf.stderr).toMatch(/weir inspect: .*(not a BPF object|machine)/i);
    const unknown = weir('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
  });
});

describe.skipIf(!built || requireNetns('weir demo', ['ping']))('weir demo', () => {
  it('runs the foundation demo end to end and leaves nothing behind', async () => {
    const r = spawnSync(bin, ['demo'], { encoding: 'utf8', timeout: 90_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ping -c 5 10\.99\.0\.2 from weir-demo-a: 5\/5 replies/);
    expect(r.stdout).toMatch(/arriving on veth-b, counted by XDP[\s\S]*proto\s+1 \(icmp\)\s+5 packets/);
    expect(r.stdout).toMatch(/xdp_verdict = XDP_DROP\nping -c 3: 0\/3 replies/);
    expect(r.stdout).toMatch(/detached XDP; ping -c 3: 3\/3 replies/);
    expect((await listNetns()).filter((n) => n.startsWith('weir-demo-'))).toEqual([]);
    expect(existsSync('/sys/fs/bpf/weir-demo')).toBe(false);
  });
});
