// `weir trace SRC DST:PORT[/PROTO] [--sport N]`: the datapath's lookups for
// one packet, step by step with the map entry each used, and the verdict
// (logic in ../trace.ts). Pod, policy and identity names come from the
// agent's policy snapshot when --state-dir (or --node) has one.
import type { Command } from 'commander';
import { globals, openMaps, pinRoot } from '../context.js';
import { toJson, write } from '../format.js';
import { parseTraceArgs, trace, type TraceResult } from '../trace.js';
import { loadPolicySnapshot } from '../views.js';

function brief(v: unknown): string {
  if (v === null || v === undefined) return '(none)';
  if (typeof v !== 'object') return String(v);
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}

function render(r: TraceResult): string {
  const p = r.packet;
  const lines = [`trace ${p.src}${p.sport !== null ? `:${p.sport}` : ''} -> ${p.dst}:${p.dport}/${p.proto} (first program: ${r.program})`];
  r.steps.forEach((s, i) => {
    lines.push(`${i + 1}. ${s.step}${s.dir ? ` (${s.dir})` : ''}: ${s.result}`);
    if (s.map) lines.push(`   ${s.map} [${brief(s.key)}] = ${brief(s.entry)}`);
  });
  lines.push(`verdict: ${r.verdict}`);
  return lines.join('\n') + '\n';
}

export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('walk the datapath lookups for a packet SRC -> DST:PORT (source, conntrack, service, backend, route, policy of both ends) and print the verdict')
    .argument('<src>', 'source address (a pod, or an outside client)')
    .argument('<dst>', 'destination ADDR:PORT[/tcp|udp] (default tcp)')
    .option('--sport <port>', 'source port: follow an established flow, and compute the exact Maglev slot')
    .action(async (src: string, dst: string, o: { sport?: string }, cmd: Command) => {
      const g = globals(cmd);
      const q = parseTraceArgs(src, dst, o.sport); // bad arguments exit 2 before any map is opened
      const m = openMaps(g);
      try {
        const { snapshot } = loadPolicySnapshot(g.stateDir);
        // Other lab nodes are found next to this one only when --node says this is a lab node.
        const r = trace(m, q, { snapshot, pinRoot: g.node !== undefined ? pinRoot(g) : undefined });
        write(g.output === 'json' ? toJson(r) : render(r));
      } finally {
        m.close();
      }
    });
}
