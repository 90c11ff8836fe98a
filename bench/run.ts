// `make bench` / `node dist-bench/bench/run.js`: weir against kube-proxy's
// iptables and nftables modes, side by side, on this machine. Needs root
// (it makes network namespaces and loads BPF programs); touches nothing
// outside the namespaces and pins it creates, and removes them on exit and
// on Ctrl-C.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { runBench, type BenchOptions, type Mode, type ProgressEvent } from './harness.js';
import { writeReport } from './report.js';
import { stopAll } from './exec.js';
import { ALL_SIDES, type SideName } from './sides.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The checkout: bench/ from source, dist-bench/bench/ when compiled. */
const root = existsSync(join(here, '..', 'package.json')) ? resolve(here, '..') : resolve(here, '..', '..');

const PRESETS: Record<Mode, Omit<BenchOptions, 'sides' | 'prefix' | 'loadgen' | 'seed' | 'endpoints'>> = {
  quick: { mode: 'quick', services: [10, 100, 1000], repetitions: 1, budgetS: 110, connectSeconds: 1, udpSeconds: 1, changes: 2 },
  // 15 minutes on a 2-core machine, less a minute for setup, cleanup and the report.
  default: { mode: 'default', services: [10, 100, 1000, 5000, 10000], repetitions: 3, budgetS: 840, connectSeconds: 1, udpSeconds: 1, changes: 3 },
  full: { mode: 'full', services: [10, 100, 1000, 5000, 10000], repetitions: 3, budgetS: Infinity, connectSeconds: 2, udpSeconds: 2, changes: 3 },
};

const int = (what: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${what} must be an integer >= ${min}`);
  return n;
};
const list = (v: string) =>
  v.split(',').map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n) || n < 2) throw new InvalidArgumentError(`--services: '${x}' is not an integer >= 2`);
    return n;
  });

function fmtS(s?: number): string {
  if (s === undefined || !Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}

function progressPrinter(): (e: ProgressEvent) => void {
  const tty = process.stderr.isTTY;
  return (e) => {
    const where = e.n !== undefined ? ` N=${e.n.toLocaleString('en-US')} ${e.side} rep ${e.rep}/${e.reps}` : '';
    const line = `[bench] ${e.phase.padEnd(15)}${where} | elapsed ${fmtS(e.elapsedS)} | ETA ${fmtS(e.etaS)}`;
    if (tty) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(line + '\n');
    if (tty && (e.phase === 'cleanup')) process.stderr.write('\n');
  };
}

export async function main(argv: string[]): Promise<number> {
  const cmd = new Command('bench')
    .description('weir vs kube-proxy (iptables and nftables modes): programming time, connect latency, memory')
    .option('--quick', 'N up to 1000, one repetition, about 2 minutes (smoke check)')
    .option('--full', 'measure every N for every side, however long the baselines take')
    .option('--services <list>', 'service counts N, comma-separated', list)
    .option('--endpoints <n>', 'endpoints per service (E)', int('--endpoints', 1), 5)
    .option('--reps <n>', 'repetitions (the report gives medians)', int('--reps', 1))
    .option('--budget <seconds>', 'time budget of the whole run', int('--budget', 10))
    .option('--sides <list>', 'what to measure: weir,iptables,nftables', (v: string) => {
      const s = v.split(',').map((x) => x.trim()) as SideName[];
      for (const x of s) if (!ALL_SIDES.includes(x)) throw new InvalidArgumentError(`--sides: unknown side '${x}' (weir, iptables, nftables)`);
      return s;
    })
    .option('--connect-seconds <s>', 'seconds of TCP connects per target', int('--connect-seconds', 1))
    .option('--udp-seconds <s>', 'seconds of UDP request/response', int('--udp-seconds', 1))
    .option('--no-traffic', 'programming and memory only')
    .option('--prefix <p>', 'prefix of the bench netns, links and pins', 'wbench')
    .option('--out <dir>', 'results folder', join(root, 'bench', 'results'))
    .option('--loadgen <path>', 'the compiled load generator', join(root, 'build', 'bench', 'loadgen'))
    .option('--seed <n>', 'seed for the "random service" pick', int('--seed', 0), 1)
    .exitOverride();
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    return (e as { exitCode?: number }).exitCode ?? 2;
  }
  const a = cmd.opts();
  if (a.quick && a.full) {
    process.stderr.write('bench: --quick and --full exclude each other\n');
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (network namespaces, iptables/nft inside them, BPF)\n');
    return 1;
  }
  if (!/^[a-z][a-z0-9]{0,7}$/.test(a.prefix)) {
    process.stderr.write(`bench: --prefix '${a.prefix}' must be 1-8 lowercase letters/digits (it names links, max 15 chars)\n`);
    return 2;
  }
  if (!existsSync(a.loadgen)) {
    process.stderr.write(`bench: load generator ${a.loadgen} is missing; run 'make -C bench loadgen'\n`);
    return 1;
  }
  const mode: Mode = a.quick ? 'quick' : a.full ? 'full' : 'default';
  const p = PRESETS[mode];
  const o: BenchOptions = {
    ...p,
    services: a.services ?? p.services,
    endpoints: a.endpoints,
    repetitions: a.reps ?? p.repetitions,
    budgetS: a.budget ?? p.budgetS,
    connectSeconds: a.connectSeconds ?? p.connectSeconds,
    udpSeconds: a.udpSeconds ?? p.udpSeconds,
    sides: a.sides ?? ALL_SIDES,
    prefix: a.prefix,
    loadgen: resolve(a.loadgen),
    seed: a.seed,
    noTraffic: a.traffic === false,
  };

  const ac = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('\n[bench] interrupted: stopping and cleaning up (Ctrl-C again to force)\n');
      ac.abort();
      stopAll(); // the running restore/loadgen dies; the harness cleans up in its finally
      return;
    }
    // Forced: remove the namespaces synchronously, then leave.
    for (const ns of ['cli', 'node', 'be']) {
      try {
        execFileSync('ip', ['netns', 'del', `${o.prefix}-${ns}`], { stdio: 'ignore' });
      } catch {
        /* not there */
      }
    }
    process.exit(130);
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  try {
    const r = await runBench(o, progressPrinter(), ac.signal);
    const out = writeReport(r, a.out);
    process.stdout.write('\n' + (await import('node:fs')).readFileSync(out.md, 'utf8'));
    process.stdout.write(`\nresults: ${out.json}\n         ${out.md}\n         ${out.charts.join('\n         ')}\n`);
    return r.interrupted ? 130 : 0;
  } catch (e) {
    process.stderr.write(`\nbench failed: ${(e as Error).stack ?? e}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
