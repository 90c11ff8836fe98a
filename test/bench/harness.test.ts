// The --quick path's harness on tiny N (2 services x 2 endpoints, one
// repetition): real namespaces, real iptables-restore / nft / weir programming
// and real traffic through each, so the bench keeps working. Asserts the
// structure of the result, never its timings. Also: the budget skips (and says
// why), an interrupted run cleans up, and the report files are written.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planReps, predictFullMs, runBench, type BenchOptions, type BenchResult } from '../../bench/harness.js';
import { writeReport } from '../../bench/report.js';
import { parseProgCost } from '../../bench/prog-cost-runner.js';
import { spliceReadme } from '../../bench/update-readme.js';
import { lineChart } from '../../bench/svg.js';
import { TimeoutError, runOk, stopAll } from '../../bench/exec.js';
import { requireNetns } from '../lib/netns.js';
import { repoRoot } from '../lib/fixtures.js';

describe('budget prediction', () => {
  it('is unknown without history and follows the measured growth', () => {
    expect(predictFullMs([], 100)).toBeUndefined();
    expect(predictFullMs([[100, 10]], 1000)).toBeCloseTo(10 * 10 ** 1.5);
    expect(predictFullMs([[100, 10], [1000, 400]], 10000)).toBeCloseTo(400 * 10 ** Math.log10(40)); // k = log(40)/log(10)
    expect(predictFullMs([[100, 10], [1000, 50]], 10000)).toBeCloseTo(500); // clamped to linear at least
  });

  it('measures as many repetitions as fit, down to none', () => {
    const o = { repetitions: 3, changes: 3, connectSeconds: 1, udpSeconds: 1, noTraffic: false };
    const hist: Array<[number, number, number]> = [[1000, 1000, 100]];
    // full 1000 * 5^1.5 ms, changes 3 * 100 * 5^1.5 ms, traffic 2 + 1 + 3 s
    const perRepS = (1000 * 5 ** 1.5 + 3 * 100 * 5 ** 1.5) / 1000 + 6;
    expect(planReps(hist, 5000, o, 100)).toEqual({ reps: 3, perRepS });
    expect(planReps(hist, 5000, o, 2.5 * perRepS).reps).toBe(2);
    expect(planReps(hist, 5000, o, 0.9 * perRepS).reps).toBe(0);
    expect(planReps(hist, 5000, o, -5).reps).toBe(0);
    expect(planReps([], 5000, o, -5)).toEqual({ reps: 3 }); // nothing to predict from: measure
  });
});

describe('prog-cost table', () => {
  it('parses bench/prog-cost\'s fixed-width table into figures per N', () => {
    const cols = ['established + DNAT, repeat', 'not a service, repeat'];
    const out = [
      'weir service path (from_pod), ns per packet; repeat=100000, per-call rows = mean of 2000 single runs',
      ['services', ...cols].map((c, i) => (i === 0 ? c.padEnd(10) : c.padStart(36))).join(''),
      ['10'.padEnd(10), '364.0'.padStart(36), '300.5'.padStart(36)].join(''),
      ['1000'.padEnd(10), '361.0'.padStart(36), '236.0'.padStart(36)].join(''),
    ].join('\n');
    const t = parseProgCost(out);
    expect([...t.keys()]).toEqual([10, 1000]);
    expect(t.get(10)).toEqual({ 'established + DNAT, repeat': 364, 'not a service, repeat': 300.5 });
    expect(() => parseProgCost('nothing here')).toThrow(/no table/);
  });
});

describe('bounded commands', () => {
  it('a command past its timeout is killed and reported as a TimeoutError (how the budget stops a restore)', async () => {
    const t0 = Date.now();
    await expect(runOk('sleep', ['10'], { timeoutMs: 300 })).rejects.toBeInstanceOf(TimeoutError);
    expect(Date.now() - t0).toBeLessThan(5000);
    await expect(runOk('sh', ['-c', 'exit 3'])).rejects.toThrow(/exited with 3/);
  });
});

describe('chart drawing', () => {
  it('draws one line per side with labelled axes, also over a narrow range', () => {
    const svg = lineChart({
      title: 't',
      xLabel: 'N',
      yLabel: 'ms',
      series: [
        { name: 'weir', color: '#00f', points: [[5000, 1990], [10000, 2780]] },
        { name: 'iptables', color: '#f00', points: [] },
      ],
    });
    expect(svg.match(/<polyline/g)).toHaveLength(1);
    expect(svg).toContain('iptables (no data)');
    expect(svg).toContain('>2k</text>'); // a 1-2-5 tick when no decade falls in range
    expect(svg).toContain('>10k</text>');
  });
});

describe('README performance section', () => {
  it('replaces only what is between the markers, and refuses a README without them', () => {
    const readme = '# weir\n## Performance\n<!-- bench:start -->\nold\n<!-- bench:end -->\n## More\n';
    const out = spliceReadme(readme, '| N | x |\n', 'latest.md');
    expect(out).toContain('| N | x |');
    expect(out).not.toContain('\nold\n');
    expect(out.startsWith('# weir\n## Performance\n<!-- bench:start -->')).toBe(true);
    expect(out.endsWith('<!-- bench:end -->\n## More\n')).toBe(true);
    expect(() => spliceReadme('# weir\n', 'x', 'latest.md')).toThrow(/bench:start/);
  });
});

const skip = requireNetns('bench harness', ['iptables-restore', 'nft', 'cc', 'taskset']);
describe.skipIf(skip)('bench harness on tiny N', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'h6-bench-'));
  const loadgen = join(tmp, 'loadgen');
  const prefix = `h6t${process.pid % 10000}`;
  const base = (): BenchOptions => ({
    mode: 'quick',
    services: [2],
    endpoints: 2,
    repetitions: 1,
    budgetS: Infinity,
    connectSeconds: 1,
    udpSeconds: 1,
    changes: 1,
    sides: ['weir', 'iptables', 'nftables'],
    prefix,
    loadgen,
    seed: 1,
  });
  let result: BenchResult;
  const phases: string[] = [];

  // The bench's memory cgroups live under this process's own (v1 memory or v2 unified) cgroup.
  const ownCgroup = (() => {
    const self = readFileSync('/proc/self/cgroup', 'utf8');
    const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(self);
    if (v1) return join('/sys/fs/cgroup/memory', v1[1]);
    return join('/sys/fs/cgroup', /^0::(.*)$/m.exec(self)?.[1] ?? '');
  })();
  const leftovers = () => ({
    netns: execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`${prefix}-`)),
    pins: readdirSync('/sys/fs/bpf').filter((f) => f.startsWith(`${prefix}-`)),
    cgroups: existsSync(ownCgroup) ? readdirSync(ownCgroup).filter((f) => f.startsWith(`${prefix}-`)) : [],
  });

  beforeAll(() => {
    execFileSync('cc', ['-O2', '-Wall', '-o', loadgen, join(repoRoot, 'bench', 'loadgen', 'loadgen.c')]);
  });
  afterAll(() => {
    stopAll();
    for (const ns of leftovers().netns) execFileSync('ip', ['netns', 'del', ns.split(' ')[0]]);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('measures every side and returns the documented structure', async () => {
    result = await runBench(base(), (e) => phases.push(e.phase));
    expect(result.schema).toBe('weir-bench/1');
    expect(result.config).toMatchObject({ mode: 'quick', services: [2], endpoints: 2, repetitions: 1, budgetS: null });
    expect(result.notes.join(' ')).toMatch(/IP_VS/);
    expect(result.skipped).toEqual([]);
    expect(result.failures).toEqual([]);
    expect(typeof result.machine.kernel).toBe('string');
    const measured = result.results.map((r) => r.side);
    // weir is measured when its datapath and service reconciler are built; otherwise it must say why.
    if (!measured.includes('weir')) expect(result.unavailable.weir).toMatch(/\S/);
    expect(measured).toEqual(expect.arrayContaining(['iptables', 'nftables']));
    for (const r of result.results) {
      expect(r.n).toBe(2);
      expect(r.program!.fullMs.samples).toHaveLength(1);
      expect(r.program!.fullMs.median).toBeGreaterThan(0);
      expect(r.program!.changeMs.samples).toHaveLength(1);
      expect(r.program!.size).toBeGreaterThan(0);
      expect(r.memory!.kernelDeltaBytes.samples).toHaveLength(1);
      expect(['memcg-kmem', 'meminfo']).toContain(r.memory!.method);
      for (const t of [r.traffic!.lastService, r.traffic!.randomService, r.traffic!.udp]) {
        expect(t.perSecond.median).toBeGreaterThan(0);
        expect(t.p50Us.median).toBeGreaterThan(0);
        expect(t.p99Us.median).toBeGreaterThanOrEqual(t.p50Us.median);
      }
      if (r.side === 'weir') {
        expect(r.memory!.mapsMemlockBytes).toBeGreaterThan(0);
        expect(r.memory!.agentRssBytes).toBeGreaterThan(0);
      }
    }
    if (measured.includes('weir') && !result.unavailable.progCost) {
      expect(result.results.find((r) => r.side === 'weir')!.progCost!.nsPerPacket).toBeGreaterThan(0);
    }
    if (measured.includes('weir')) {
      const baselines = new Set(result.ratios.map((x) => x.baseline));
      expect(baselines).toEqual(new Set(['iptables', 'nftables']));
      for (const x of result.ratios) expect(x.ratio).toBeCloseTo(x.weir / x.baselineValue, 9);
    }
    expect(phases).toEqual(expect.arrayContaining(['setup', 'clear', 'program', 'traffic', 'endpoint change', 'cleanup']));
    expect(leftovers()).toEqual({ netns: [], pins: [], cgroups: [] });
  });

  it('writes the JSON, the Markdown table and the SVG charts', () => {
    const out = writeReport(result, join(tmp, 'results'));
    const latest = JSON.parse(readFileSync(join(tmp, 'results', 'latest.json'), 'utf8'));
    expect(latest).toEqual(JSON.parse(readFileSync(out.json, 'utf8')));
    const md = readFileSync(out.md, 'utf8');
    expect(md).toMatch(/\| N \| datapath \|/);
    expect(md).toMatch(/\| 2 \| iptables \|/);
    expect(md).toMatch(/IP_VS/);
    for (const f of ['connect-latency', 'programming-time', 'endpoint-change']) {
      const svg = readFileSync(join(tmp, 'results', `latest-${f}.svg`), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('iptables');
      expect(svg).toContain('<polyline');
    }
  });

  it('skips what the budget cannot fit and says why, measuring nothing it skipped', async () => {
    // A 0 s budget: after the first N (always measured: nothing to predict from) nothing fits.
    const r = await runBench({ ...base(), services: [2, 3], budgetS: 0, sides: ['nftables'], noTraffic: true });
    expect(r.results.map((x) => [x.side, x.n])).toEqual([['nftables', 2]]);
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0]).toMatchObject({ side: 'nftables', n: 3 });
    expect(r.skipped[0].reason).toMatch(/budget/);
    expect(leftovers()).toEqual({ netns: [], pins: [], cgroups: [] });
  });

  it('an interrupted run stops, marks the result and removes what it made', async () => {
    const ac = new AbortController();
    const r = await runBench({ ...base(), sides: ['iptables'] }, (e) => {
      if (e.phase === 'traffic' && !ac.signal.aborted) {
        ac.abort();
        stopAll();
      }
    }, ac.signal);
    expect(r.interrupted).toBe(true);
    expect(leftovers()).toEqual({ netns: [], pins: [], cgroups: [] });
    expect(existsSync(`/run/netns/${prefix}-node`)).toBe(false);
  });
});
