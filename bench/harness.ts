// The benchmark's measuring loop: for each N, each repetition, each side —
// program N services from nothing (timed), read memory, push TCP connects and
// UDP request/response through the side, change one endpoint a few times
// (timed). Budgeted: a side's full programming at an N is skipped, with the
// reason, when its predicted cost does not fit the time left (never
// extrapolated into a figure). Pure orchestration; the sides do the work.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { TimeoutError, runOk, start, stopAll } from './exec.js';
import { KmemCgroup, kernelMemBytes, settle } from './memory.js';
import { metric, median, rng, type Metric } from './stats.js';
import { addBackendIps, createTopology, destroyTopology, type Topology } from './topology.js';
import { HEADLINE, progCost } from './prog-cost-runner.js';
import { ALL_SIDES, IptablesSide, NftablesSide, WeirSide, type Side, type SideName } from './sides.js';
import { TARGET_PORT, UDP_TARGET_PORT, buildCluster, type BenchService } from './baseline/services.js';

export type Mode = 'quick' | 'default' | 'full';

export interface BenchOptions {
  mode: Mode;
  services: number[];
  endpoints: number;
  repetitions: number;
  /** Seconds the whole run may take; Infinity: measure everything. */
  budgetS: number;
  connectSeconds: number;
  udpSeconds: number;
  /** One-endpoint changes timed per repetition. */
  changes: number;
  sides: SideName[];
  /** Netns/link/pin prefix. */
  prefix: string;
  loadgen: string;
  seed: number;
  /** Skip the traffic tests (programming and memory only). */
  noTraffic?: boolean;
}

export interface LoadgenResult {
  mode: string;
  count: number;
  errors: number;
  seconds: number;
  rate: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  min_us: number;
  max_us: number;
}

export interface TrafficFigures {
  p50Us: Metric;
  p90Us: Metric;
  p99Us: Metric;
  /** New connections (TCP) or transactions (UDP) per second. */
  perSecond: Metric;
  errors: number;
}

export interface SideResult {
  n: number;
  side: SideName;
  repetitions: number;
  program?: {
    fullMs: Metric;
    changeMs: Metric;
    size: number;
    sizeUnit: string;
    /** weir: the full and change times split into model build and map writes (medians). */
    detail?: Record<string, Metric>;
  };
  memory?: {
    /** Kernel memory charged while programming N services from nothing (see memoryMethod). */
    kernelDeltaBytes: Metric;
    /** 'memcg-kmem': the side's own memory cgroup; 'meminfo': system-wide /proc/meminfo (fallback). */
    method: 'memcg-kmem' | 'meminfo'; mapsMemlockBytes?: number; mapsMemlock?: Record<string, number>; agentRssBytes?: number };
  traffic?: { lastService: TrafficFigures; randomService: TrafficFigures; udp: TrafficFigures };
  /** weir: ns per packet of from_pod under BPF_PROG_TEST_RUN (bench/prog-cost), at this N. */
  progCost?: { nsPerPacket: number; columns: Record<string, number> };
}

export interface Skip {
  n: number;
  side: SideName;
  what: string;
  reason: string;
}

export interface BenchResult {
  schema: 'weir-bench/1';
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: Record<string, string | number>;
  config: Omit<BenchOptions, 'loadgen' | 'prefix' | 'budgetS'> & { budgetS: number | null };
  targets: { lastService: string; randomService: Record<number, string>; udpService: string };
  notes: string[];
  unavailable: Partial<Record<SideName | 'progCost', string>>;
  skipped: Skip[];
  /** A side that failed at an N: the error, and the run went on with the others. */
  failures: Array<{ n: number; side: SideName; error: string }>;
  results: SideResult[];
  ratios: Ratio[];
  interrupted?: boolean;
}

export interface Ratio {
  n: number;
  baseline: SideName;
  metric: string;
  weir: number;
  baselineValue: number;
  /** weir / baseline: below 1 is better for times, latencies and memory; above 1 for rates. */
  ratio: number;
}

export interface ProgressEvent {
  phase: string;
  n?: number;
  side?: SideName;
  rep?: number;
  reps?: number;
  elapsedS: number;
  etaS?: number;
}

export const IPVS_NOTE = 'IPVS mode is not measured: this kernel has no IP_VS (CONFIG_IP_VS unset), and the bench does not fake it.';

const TRAFFIC_OVERHEAD_S = 1;

/** Predicted ms of one full programming of `n`, from this side's medians at smaller N (a power law through the last two). */
export function predictFullMs(history: Array<[number, number]>, n: number): number | undefined {
  const pts = history.filter(([x]) => x < n).sort((a, b) => a[0] - b[0]);
  if (pts.length === 0) return undefined;
  const [n1, t1] = pts[pts.length - 1];
  let k = 1.5; // superlinear unless measured otherwise: iptables-nft's restore is
  if (pts.length >= 2) {
    const [n0, t0] = pts[pts.length - 2];
    if (t0 > 0 && t1 > 0 && n1 > n0) k = Math.log(t1 / t0) / Math.log(n1 / n0);
  }
  k = Math.min(2.5, Math.max(1, k));
  return t1 * Math.pow(n / n1, k);
}

/**
 * How many repetitions of a side at N fit in `leftS` seconds, predicted from its own
 * [N, full ms, change ms] medians at smaller N; all of them when there is no history.
 */
export function planReps(
  hist: Array<[number, number, number]>,
  n: number,
  o: Pick<BenchOptions, 'repetitions' | 'changes' | 'connectSeconds' | 'udpSeconds' | 'noTraffic'>,
  leftS: number,
): { reps: number; perRepS?: number } {
  const full = predictFullMs(hist.map(([x, f]) => [x, f]), n);
  if (full === undefined) return { reps: o.repetitions };
  const change = predictFullMs(hist.map(([x, , c]) => [x, c]), n) ?? full;
  const trafficS = o.noTraffic ? 0 : 2 * o.connectSeconds + o.udpSeconds + 3 * TRAFFIC_OVERHEAD_S;
  const perRepS = (full + o.changes * change) / 1000 + trafficS;
  return { reps: Math.max(0, Math.min(o.repetitions, Math.floor(leftS / perRepS))), perRepS };
}

function traffic(rs: LoadgenResult[]): TrafficFigures {
  return {
    p50Us: metric(rs.map((r) => r.p50_us)),
    p90Us: metric(rs.map((r) => r.p90_us)),
    p99Us: metric(rs.map((r) => r.p99_us)),
    perSecond: metric(rs.map((r) => r.rate)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
  };
}

async function loadgenRaw(o: BenchOptions, t: Topology, mode: 'tcp-connect' | 'udp-rr', ip: string, port: number, secs: number): Promise<LoadgenResult> {
  const r = await runOk(o.loadgen, [mode, ip, String(port), String(secs)], { netns: t.cli, cpus: '1', timeoutMs: (secs + 30) * 1000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as LoadgenResult;
}

async function loadgen(o: BenchOptions, t: Topology, mode: 'tcp-connect' | 'udp-rr', ip: string, port: number, secs: number): Promise<LoadgenResult> {
  const res = await loadgenRaw(o, t, mode, ip, port, secs);
  if (res.count === 0) throw new Error(`${mode} to ${ip}:${port} got no answer at all (${res.errors} errors): the side does not translate this service`);
  return res;
}

async function startServers(o: BenchOptions, t: Topology): Promise<void> {
  for (const [mode, port] of [['tcp-server', TARGET_PORT], ['udp-server', UDP_TARGET_PORT]] as const) {
    const c = start(o.loadgen, [mode, String(port)], { netns: t.be, cpus: '0' });
    const rl = createInterface({ input: c.stdout! });
    const ready = once(rl, 'line');
    const failed = once(c, 'exit').then(() => {
      throw new Error(`loadgen ${mode} in ${t.be} exited before it was ready`);
    });
    await Promise.race([ready, failed]);
  }
}

async function machineFacts(): Promise<Record<string, string | number>> {
  const { readFileSync } = await import('node:fs');
  const os = await import('node:os');
  const v = async (cmd: string, args: string[]) => (await runOk(cmd, args).catch(() => ({ stdout: 'unknown' }))).stdout.trim().split('\n')[0];
  return {
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memTotalBytes: os.totalmem(),
    node: process.version,
    iptables: await v('iptables', ['--version']),
    nft: await v('nft', ['--version']),
    ipvs: existsSync('/proc/net/ip_vs') ? 'present' : 'absent',
    hostname: readFileSync('/proc/sys/kernel/hostname', 'utf8').trim(),
  };
}

export async function runBench(o: BenchOptions, onProgress: (e: ProgressEvent) => void = () => undefined, signal?: AbortSignal): Promise<BenchResult> {
  const t0 = Date.now();
  const elapsedS = () => (Date.now() - t0) / 1000;
  const sizes = [...o.services].sort((a, b) => a - b);
  const pick = rng(o.seed);
  const randomService: Record<number, number> = {};
  for (const n of sizes) randomService[n] = 1 + Math.floor(pick() * (n - 1)); // never the last one
  const result: BenchResult = {
    schema: 'weir-bench/1',
    startedAt: new Date(t0).toISOString(),
    finishedAt: '',
    durationS: 0,
    machine: await machineFacts(),
    config: { ...o, budgetS: Number.isFinite(o.budgetS) ? o.budgetS : null },
    targets: {
      lastService: 'svc-N (the last service in KUBE-SERVICES: iptables\' worst case)',
      randomService: Object.fromEntries(sizes.map((n) => [n, `svc-${randomService[n]}`])),
      udpService: 'udp-echo (UDP request/response)',
    },
    notes: [IPVS_NOTE],
    unavailable: {},
    skipped: [],
    failures: [],
    results: [],
    ratios: [],
  };
  delete (result.config as Partial<BenchOptions>).loadgen;
  delete (result.config as Partial<BenchOptions>).prefix;

  const sides: Side[] = [];
  let topo: Topology | undefined;
  const cgroups: KmemCgroup[] = [];
  const cgroupFor = (name: SideName): KmemCgroup | undefined => {
    const cg = KmemCgroup.create(`${o.prefix}-bench-${process.pid}-${name}`);
    if (typeof cg === 'string') {
      if (!result.notes.some((x) => x.startsWith('Kernel memory'))) result.notes.push(`Kernel memory is the system-wide /proc/meminfo change (noisy): ${cg}.`);
      return undefined;
    }
    cgroups.push(cg);
    return cg;
  };
  try {
    onProgress({ phase: 'setup', elapsedS: elapsedS() });
    topo = await createTopology(o.prefix);
    if (!o.noTraffic) await startServers(o, topo);
    for (const name of ALL_SIDES.filter((x) => o.sides.includes(x))) {
      if (name === 'iptables') sides.push(new IptablesSide(topo, cgroupFor(name)));
      else if (name === 'nftables') sides.push(new NftablesSide(topo, cgroupFor(name)));
      else {
        try {
          sides.push(await WeirSide.start(topo, `/sys/fs/bpf/${o.prefix}-bench-${process.pid}`, cgroupFor(name)));
        } catch (e) {
          result.unavailable.weir = (e as Error).message.split('\n').slice(0, 6).join('\n');
        }
      }
    }

    /** Per side: [N, median full ms, median change ms] of what was measured. */
    const history = new Map<SideName, Array<[number, number, number]>>();
    const stepsTotal = sizes.length * o.repetitions * sides.length;
    let stepsDone = 0;
    const eta = (): number | undefined => {
      if (stepsDone === 0) return undefined;
      return (elapsedS() / stepsDone) * (stepsTotal - stepsDone);
    };

    for (const n of sizes) {
      const services = buildCluster({ services: n, endpoints: o.endpoints });
      const last = services[n];
      const rand = services[randomService[n]];
      const udp = services[0];
      if (!o.noTraffic) await addBackendIps(topo, [...last.endpoints, ...rand.endpoints, ...udp.endpoints].map((e) => e.ip));
      // Spread over the list, never the last or the random service (their endpoints carry the traffic).
      const changeTargets = Array.from({ length: o.changes }, (_, i) => {
        const x = Math.max(1, Math.floor((n * (i + 1)) / (o.changes + 1)));
        return x === n || x === randomService[n] ? Math.max(1, x - 1) : x;
      });

      for (const side of sides) {
        // Budget: how many repetitions of this side at this N fit in what is left?
        let reps = o.repetitions;
        if (Number.isFinite(o.budgetS)) {
          const hist = history.get(side.name) ?? [];
          const left = o.budgetS - elapsedS();
          const plan = planReps(hist, n, o, left);
          reps = plan.reps;
          if (plan.perRepS !== undefined && reps < o.repetitions) {
            const [pn, pf] = hist[hist.length - 1];
            const why = `a full ${side.name} programming at N=${pn} took ${(pf / 1000).toFixed(1)} s, so one repetition at N=${n} would need about ${plan.perRepS.toFixed(0)} s and only ${Math.max(0, left).toFixed(0)} s of the ${o.budgetS} s budget are left; --full measures it`;
            result.skipped.push({ n, side: side.name, what: reps < 1 ? 'programming, memory and traffic' : reps + 1 === o.repetitions ? `repetition ${o.repetitions} (measured ${reps})` : `repetitions ${reps + 1}-${o.repetitions} (measured ${reps})`, reason: why });
            stepsDone += o.repetitions - reps;
            if (reps < 1) continue;
          }
        }
        try {
          const detail: Record<string, number[]> = {};
          const note = (prefix: string) => {
            for (const [k, v] of Object.entries(side.lastDetail?.() ?? {})) (detail[`${prefix}.${k}`] ??= []).push(v);
          };
          const acc = { full: [] as number[], change: [] as number[], kmem: [] as number[], size: 0, last: [] as LoadgenResult[], rand: [] as LoadgenResult[], udp: [] as LoadgenResult[] };
          let mem: Awaited<ReturnType<Side['memory']>> = {};
          for (let rep = 1; rep <= reps; rep++) {
            if (signal?.aborted) throw new Error('interrupted');
            const progress = (phase: string) => onProgress({ phase, n, side: side.name, rep, reps, elapsedS: elapsedS(), etaS: eta() });
            progress('clear');
            await side.clear();
            if (!o.noTraffic) {
              // Control: once cleared, nothing translates the VIP, so the traffic measured below goes
              // through this side and not through something another side left behind.
              const leak = await loadgenRaw(o, topo, 'tcp-connect', last.clusterIP, last.port, 0.3);
              if (leak.count > 0) throw new Error(`${last.clusterIP}:${last.port} still answers after clearing ${side.name}: the node netns translates it by other means`);
            }
            await settle();
            const kmem = () => side.cgroup?.usage() ?? kernelMemBytes();
            const before = kmem();
            progress('program');
            // The budget is also enforced while running: a baseline's restore still going at its end is stopped.
            const deadline = Number.isFinite(o.budgetS) ? Math.max(5_000, (o.budgetS - elapsedS()) * 1000) : undefined;
            const full = await side.programFull({ services: n, endpoints: o.endpoints }, deadline);
            acc.full.push(full.ms);
            note('full');
            acc.size = full.size;
            await settle();
            acc.kmem.push(kmem() - before);
            if (rep === 1) mem = await side.memory();
            if (!o.noTraffic) {
              await side.activate();
              progress('traffic');
              acc.last.push(await loadgen(o, topo, 'tcp-connect', last.clusterIP, last.port, o.connectSeconds));
              acc.rand.push(await loadgen(o, topo, 'tcp-connect', rand.clusterIP, rand.port, o.connectSeconds));
              acc.udp.push(await loadgen(o, topo, 'udp-rr', udp.clusterIP, udp.port, o.udpSeconds));
              await side.deactivate();
            }
            progress('endpoint change');
            for (let i = 0; i < changeTargets.length; i++) {
              acc.change.push(await side.programChange(changeTargets[i], rep * 10 + i));
              note('change');
            }
            stepsDone++;
          }
          await side.clear();
          const h = history.get(side.name) ?? [];
          h.push([n, median(acc.full), median(acc.change)]);
          history.set(side.name, h);
          const r: SideResult = {
            n,
            side: side.name,
            repetitions: reps,
            program: {
              fullMs: metric(acc.full),
              changeMs: metric(acc.change),
              size: acc.size,
              sizeUnit: side.name === 'weir' ? 'backends' : 'rules',
              ...(Object.keys(detail).length ? { detail: Object.fromEntries(Object.entries(detail).map(([k, v]) => [k, metric(v)])) } : {}),
            },
            memory: { kernelDeltaBytes: metric(acc.kmem), method: side.cgroup ? 'memcg-kmem' : 'meminfo', ...mem },
          };
          if (!o.noTraffic) r.traffic = { lastService: traffic(acc.last), randomService: traffic(acc.rand), udp: traffic(acc.udp) };
          result.results.push(r);
        } catch (e) {
          if (signal?.aborted) throw e;
          if (e instanceof TimeoutError && Number.isFinite(o.budgetS)) {
            result.skipped.push({
              n,
              side: side.name,
              what: 'the rest of this N (the figures of repetitions already done are dropped)',
              reason: `${e.message} when the ${o.budgetS} s budget ran out; no figure is reported for it; --full measures it`,
            });
          } else {
            // One side failing at one N is a finding, not the end of the run.
            result.failures.push({ n, side: side.name, error: (e as Error).message.slice(0, 2000) });
          }
          await side.deactivate().catch(() => undefined);
          await side.clear().catch(() => undefined);
        }
      }
    }
    // Per-packet cost of weir's service path at each N weir was measured at.
    const weirNs = result.results.filter((r) => r.side === 'weir').map((r) => r.n);
    if (weirNs.length && !signal?.aborted) {
      onProgress({ phase: 'prog-cost', elapsedS: elapsedS() });
      const t = await progCost(weirNs, o.mode === 'quick');
      if (typeof t === 'string') result.unavailable.progCost = t;
      else
        for (const r of result.results.filter((x) => x.side === 'weir')) {
          const row = t.get(r.n);
          if (row && row[HEADLINE] !== undefined) r.progCost = { nsPerPacket: row[HEADLINE], columns: row };
        }
    }
  } catch (e) {
    if (signal?.aborted) result.interrupted = true;
    else throw e;
  } finally {
    onProgress({ phase: 'cleanup', elapsedS: elapsedS() });
    for (const s of sides) await s.close().catch(() => undefined);
    stopAll();
    await destroyTopology(topo ?? { cli: `${o.prefix}-cli`, node: `${o.prefix}-node`, be: `${o.prefix}-be` });
    await settle(100);
    for (const cg of cgroups) cg.remove();
  }
  result.ratios = ratios(result.results);
  result.finishedAt = new Date().toISOString();
  result.durationS = Math.round(elapsedS());
  return result;
}

/** weir beside each baseline, for every figure both have at the same N. */
export function ratios(results: SideResult[]): Ratio[] {
  const out: Ratio[] = [];
  const figures: Array<[string, (r: SideResult) => number | undefined]> = [
    ['program.fullMs', (r) => r.program?.fullMs.median],
    ['program.changeMs', (r) => r.program?.changeMs.median],
    ['traffic.lastService.p50Us', (r) => r.traffic?.lastService.p50Us.median],
    ['traffic.lastService.p99Us', (r) => r.traffic?.lastService.p99Us.median],
    ['traffic.lastService.perSecond', (r) => r.traffic?.lastService.perSecond.median],
    ['traffic.randomService.p50Us', (r) => r.traffic?.randomService.p50Us.median],
    ['traffic.randomService.perSecond', (r) => r.traffic?.randomService.perSecond.median],
    ['traffic.udp.perSecond', (r) => r.traffic?.udp.perSecond.median],
    ['memory.kernelDeltaBytes', (r) => r.memory?.kernelDeltaBytes.median],
  ];
  for (const w of results.filter((r) => r.side === 'weir')) {
    for (const b of results.filter((r) => r.side !== 'weir' && r.n === w.n)) {
      for (const [name, get] of figures) {
        const x = get(w);
        const y = get(b);
        if (x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y) || y === 0) continue;
        out.push({ n: w.n, baseline: b.side, metric: name, weir: x, baselineValue: y, ratio: x / y });
      }
    }
  }
  return out;
}

export type { BenchService };
