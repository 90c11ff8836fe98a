// `weir status`: map fill, the programs that use this node's maps and where
// they are attached, and whether the agent answers on its health port.
import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { CliError, EXIT_USAGE, globals, requirePinRoot, type GlobalOptions } from '../context.js';
import { percent, table, toJson, write } from '../format.js';
import { mapSummaries, type MapSummary } from './map.js';

/** The agent's default metrics/health port (manifests/ and the agent use the same). */
export const DEFAULT_METRICS_PORT = 9962;

export interface ProgramStatus {
  id: number;
  name: string;
  type: string;
  loadedAt: string | null;
  /** "veth1 (ifindex 7) tc ingress"; empty when not attached in the CLI's network namespace. */
  attached: string[];
}

export interface AgentStatus {
  url: string;
  reachable: boolean;
  healthz?: { status: number; body: string };
  readyz?: { status: number; body: string };
  error?: string;
}

function bpftool(args: string[]): unknown {
  const r = spawnSync('bpftool', ['-j', ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw new Error(`bpftool ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`bpftool ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return JSON.parse(r.stdout || 'null');
}

interface BpftoolProg {
  id: number;
  name?: string;
  type: string;
  loaded_at?: number;
  map_ids?: number[];
}
interface BpftoolNet {
  xdp?: Array<{ devname: string; ifindex: number; mode?: string; id: number }>;
  tc?: Array<{ devname: string; ifindex: number; kind: string; name?: string; id: number }>;
}

/** Programs that use any of `mapIds` (so exactly this node's datapath), and their tc/XDP hooks in this netns. */
export function programsUsing(mapIds: Set<number>): ProgramStatus[] {
  const progs = (bpftool(['prog', 'show']) as BpftoolProg[]).filter((p) => (p.map_ids ?? []).some((id) => mapIds.has(id)));
  const attached = new Map<number, string[]>();
  const add = (id: number, where: string) => attached.set(id, [...(attached.get(id) ?? []), where]);
  for (const n of (bpftool(['net', 'show']) as BpftoolNet[] | null) ?? []) {
    for (const x of n.xdp ?? []) add(x.id, `${x.devname} (ifindex ${x.ifindex}) xdp${x.mode ? ` ${x.mode}` : ''}`);
    for (const t of n.tc ?? []) add(t.id, `${t.devname} (ifindex ${t.ifindex}) tc ${t.kind.replace(/^clsact\//, '')}`);
  }
  return progs
    .map((p) => ({
      id: p.id,
      name: p.name ?? '',
      type: p.type,
      loadedAt: p.loaded_at ? new Date(p.loaded_at * 1000).toISOString() : null,
      attached: attached.get(p.id) ?? [],
    }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id);
}

async function probe(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(1500) });
  return { status: r.status, body: (await r.text()).trim().slice(0, 200) };
}

export async function agentStatus(port: number): Promise<AgentStatus> {
  const url = `http://127.0.0.1:${port}`;
  try {
    const healthz = await probe(`${url}/healthz`);
    const readyz = await probe(`${url}/readyz`).catch(() => undefined);
    return { url, reachable: true, healthz, readyz };
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
    return { url, reachable: false, error: cause };
  }
}

async function status(g: GlobalOptions, o: { metricsPort: string }): Promise<void> {
  const port = Number(o.metricsPort);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`--metrics-port '${o.metricsPort}' is not a port number`, EXIT_USAGE);
  const root = requirePinRoot(g);
  const maps: MapSummary[] = mapSummaries(root);
  let programs: ProgramStatus[] | null = null;
  let programsError: string | undefined;
  try {
    programs = programsUsing(new Set(maps.map((m) => m.id)));
  } catch (e) {
    programsError = (e as Error).message;
  }
  const agent = await agentStatus(port);
  if (g.output === 'json') return write(toJson({ pinRoot: root, maps, programs, programsError, agent }));
  let out = `pin root: ${root}\n\nmaps:\n`;
  out += table(
    ['NAME', 'ENTRIES', 'MAX', 'FILL'],
    maps.map((m) => [m.name, m.entries === null ? '-' : m.entries, m.maxEntries, m.entries === null ? '-' : percent(m.entries, m.maxEntries)]),
  );
  out += '\nprograms using these maps:\n';
  if (programs === null) out += `  unknown: ${programsError}\n`;
  else if (programs.length === 0) out += '  none loaded\n';
  else {
    out += table(
      ['ID', 'NAME', 'TYPE', 'ATTACHED'],
      programs.map((p) => [p.id, p.name, p.type, p.attached.join(', ') || '(not attached in this network namespace)']),
    );
  }
  out += `\nagent (${agent.url}): `;
  if (!agent.reachable) out += `agent not reachable (${agent.error})\n`;
  else out += `healthz ${agent.healthz!.status} ${agent.healthz!.body}; readyz ${agent.readyz ? `${agent.readyz.status} ${agent.readyz.body}` : 'no answer'}\n`;
  write(out);
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('map fill, the programs using this node\'s maps and where they are attached, agent health')
    .option('--metrics-port <port>', 'the agent\'s metrics/health port on 127.0.0.1', String(DEFAULT_METRICS_PORT))
    .action((o: { metricsPort: string }, cmd: Command) => status(globals(cmd), o));
}
