// The bench's outputs from one result: the JSON files, a Markdown table (the
// README's Performance section is generated from it) and the SVG charts.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchResult, SideResult } from './harness.js';
import type { SideName } from './sides.js';
import { lineChart, type Series } from './svg.js';

const COLORS: Record<SideName, string> = { weir: '#1f77b4', iptables: '#d62728', nftables: '#ff7f0e' };

const ms = (v?: number) => (v === undefined || !Number.isFinite(v) ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 0)} ms`);
const us = (v?: number) => (v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(0)} µs`);
const rate = (v?: number) => (v === undefined || !Number.isFinite(v) ? '–' : `${Math.round(v).toLocaleString('en-US')}/s`);
const bytes = (v?: number) => (v === undefined || !Number.isFinite(v) ? '–' : Math.abs(v) >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)} MiB` : `${(v / 1024).toFixed(0)} KiB`);

function ratioCell(r: BenchResult, n: number, side: SideName, metricName: string): string {
  if (side === 'weir') return '';
  const x = r.ratios.find((q) => q.n === n && q.baseline === side && q.metric === metricName);
  return x ? ` (weir ${x.ratio < 0.01 ? x.ratio.toExponential(1) : x.ratio.toFixed(2)}×)` : '';
}

export function markdown(r: BenchResult): string {
  const L: string[] = [];
  L.push(`Measured ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC on ${r.machine.cpus} × ${r.machine.cpuModel}, kernel ${r.machine.kernel}, ${r.machine.iptables}, ${r.machine.nft}.`);
  L.push(`Mode \`${r.config.mode}\`: N = ${r.config.services.join(', ')} services × ${r.config.endpoints} endpoints, median of ${r.config.repetitions} repetition(s); ${r.durationS} s in all.`);
  L.push('In brackets: weir ÷ that baseline, from the same run (below 1 is better for times, latencies and memory; above 1 for rates).');
  L.push('');
  L.push('| N | datapath | full programming | one endpoint change | connect p50 / p99 (last svc) | connects/s (last svc) | connect p50 (random svc) | UDP req/resp/s | kernel memory Δ |');
  L.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  const order: SideName[] = ['weir', 'iptables', 'nftables'];
  const ns = [...new Set(r.results.map((x) => x.n))].sort((a, b) => a - b);
  for (const n of ns) {
    for (const side of order) {
      const x = r.results.find((q) => q.n === n && q.side === side);
      if (!x) continue;
      const t = x.traffic;
      L.push(
        `| ${n.toLocaleString('en-US')} | ${side} | ${ms(x.program?.fullMs.median)}${ratioCell(r, n, side, 'program.fullMs')} | ${ms(x.program?.changeMs.median)}${ratioCell(r, n, side, 'program.changeMs')} | ` +
          `${us(t?.lastService.p50Us.median)} / ${us(t?.lastService.p99Us.median)}${ratioCell(r, n, side, 'traffic.lastService.p50Us')} | ${rate(t?.lastService.perSecond.median)}${ratioCell(r, n, side, 'traffic.lastService.perSecond')} | ` +
          `${us(t?.randomService.p50Us.median)} | ${rate(t?.udp.perSecond.median)}${ratioCell(r, n, side, 'traffic.udp.perSecond')} | ${bytes(x.memory?.kernelDeltaBytes.median)} |`,
      );
    }
  }
  const weir = r.results.filter((x) => x.side === 'weir');
  if (weir.length) {
    L.push('');
    const split = (w: SideResult, k: string) => {
      const d = w.program?.detail;
      return d?.[`${k}.modelMs`] ? ` (${k}: model ${ms(d[`${k}.modelMs`].median)} + map writes ${ms(d[`${k}.reconcileMs`]?.median)})` : '';
    };
    L.push('weir only: ' + weir.map((w) => `N=${w.n}:${split(w, 'full')}${split(w, 'change')} maps memlock ${bytes(w.memory?.mapsMemlockBytes)}, agent RSS ${bytes(w.memory?.agentRssBytes)}${w.progCost ? `, ${w.progCost.nsPerPacket.toFixed(0)} ns/packet (BPF_PROG_TEST_RUN)` : ''}`).join('; ') + '.');
  }
  const notes = [...r.notes];
  for (const [k, v] of Object.entries(r.unavailable)) notes.push(`Not measured — ${k}: ${v}`);
  for (const s of r.skipped) notes.push(`Skipped ${s.side} at N=${s.n} (${s.what}): ${s.reason}.`);
  for (const f of r.failures ?? []) notes.push(`FAILED ${f.side} at N=${f.n}: ${f.error.split('\n')[0]}`);
  if (r.interrupted) notes.push('The run was interrupted (Ctrl-C): the figures above are what was measured before it stopped.');
  if (notes.length) {
    L.push('');
    for (const n of notes) L.push(`- ${n.replace(/\n/g, ' ')}`);
  }
  return L.join('\n') + '\n';
}

function seriesOf(r: BenchResult, get: (x: SideResult) => number | undefined): Series[] {
  return (['weir', 'iptables', 'nftables'] as SideName[])
    .filter((s) => r.config.sides.includes(s))
    .map((s) => ({
      name: s,
      color: COLORS[s],
      points: r.results.filter((x) => x.side === s).map((x) => [x.n, get(x)] as [number, number | undefined]).filter((p): p is [number, number] => p[1] !== undefined),
    }));
}

export function charts(r: BenchResult): Record<string, string> {
  return {
    'connect-latency.svg': lineChart({
      title: 'TCP connect latency to the last service (p50)',
      xLabel: 'services (N)',
      yLabel: 'connect latency p50 (µs)',
      series: seriesOf(r, (x) => x.traffic?.lastService.p50Us.median),
    }),
    'programming-time.svg': lineChart({
      title: 'Programming N services from nothing',
      xLabel: 'services (N)',
      yLabel: 'time to datapath ready (ms)',
      series: seriesOf(r, (x) => x.program?.fullMs.median),
    }),
    'endpoint-change.svg': lineChart({
      title: 'Reprogramming after one endpoint change',
      xLabel: 'services (N)',
      yLabel: 'time (ms)',
      series: seriesOf(r, (x) => x.program?.changeMs.median),
    }),
  };
}

/** rsvg-convert, when installed, turns the SVG charts into PNGs too. */
function toPng(svgPath: string): string | undefined {
  const png = svgPath.replace(/\.svg$/, '.png');
  try {
    execFileSync('rsvg-convert', ['-o', png, svgPath], { stdio: 'ignore', timeout: 20_000 });
    return png;
  } catch {
    return undefined;
  }
}

/** Writes <dir>/<timestamp>.json, latest.json, latest.md and the charts (latest-*.svg, <timestamp>-*.svg, PNGs when possible). */
export function writeReport(r: BenchResult, dir: string): { json: string; md: string; charts: string[] } {
  mkdirSync(dir, { recursive: true });
  const stamp = r.startedAt.replace(/[:.]/g, '-');
  const json = JSON.stringify(r, null, 2) + '\n';
  const jsonPath = join(dir, `${stamp}.json`);
  writeFileSync(jsonPath, json);
  writeFileSync(join(dir, 'latest.json'), json);
  const md = markdown(r);
  writeFileSync(join(dir, `${stamp}.md`), md);
  writeFileSync(join(dir, 'latest.md'), md);
  const written: string[] = [];
  for (const [name, svg] of Object.entries(charts(r))) {
    writeFileSync(join(dir, `${stamp}-${name}`), svg);
    writeFileSync(join(dir, `latest-${name}`), svg);
    written.push(join(dir, `latest-${name}`));
    const png = toPng(join(dir, `latest-${name}`));
    if (png) written.push(png);
  }
  return { json: jsonPath, md: join(dir, 'latest.md'), charts: written };
}
