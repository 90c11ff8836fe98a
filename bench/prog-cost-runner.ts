// Per-packet cost of weir's service path, from bench/prog-cost (the service
// datapath's BPF_PROG_TEST_RUN benchmark, run as it is meant to be run: a
// child process printing a table), parsed into figures per N.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOk } from './exec.js';

export type ProgCostTable = Map<number, Record<string, number>>;

const COL0 = 10;
const COLW = 36;

/** Parses prog-cost's table: a title line, a header of fixed-width columns, one row per N. */
export function parseProgCost(out: string): ProgCostTable {
  const lines = out.split('\n').filter((l) => l.trim());
  const hi = lines.findIndex((l) => l.startsWith('services'));
  if (hi < 0) throw new Error(`bench/prog-cost printed no table: ${out.slice(0, 500)}`);
  const header = lines[hi];
  const cols: string[] = [];
  for (let at = COL0; at < header.length; at += COLW) cols.push(header.slice(at, at + COLW).trim());
  const table: ProgCostTable = new Map();
  for (const l of lines.slice(hi + 1)) {
    const cells = l.trim().split(/\s+/).map(Number);
    if (cells.length !== cols.length + 1 || cells.some((x) => !Number.isFinite(x))) continue;
    table.set(cells[0], Object.fromEntries(cols.map((c, i) => [c, cells[i + 1]])));
  }
  return table;
}

function command(): [string, string[]] | string {
  const here = dirname(fileURLToPath(import.meta.url));
  const js = join(here, 'prog-cost', 'run.js');
  if (existsSync(js)) return [process.execPath, [js]];
  const ts = join(here, 'prog-cost', 'run.ts');
  const viteNode = join(here, '..', 'node_modules', '.bin', 'vite-node');
  if (existsSync(ts) && existsSync(viteNode)) return [viteNode, [ts]];
  return 'bench/prog-cost/ (BPF_PROG_TEST_RUN ns/packet of the service path) is not present';
}

/** Runs prog-cost for these N; a string says why it could not. */
export async function progCost(sizes: number[], quick: boolean): Promise<ProgCostTable | string> {
  const c = command();
  if (typeof c === 'string') return c;
  const env = `SIZES=${sizes.join(',')}`;
  const knobs = quick ? ['REPEAT=100000', 'CALLS=2000'] : ['REPEAT=1000000', 'CALLS=20000'];
  try {
    const r = await runOk('env', [env, ...knobs, c[0], ...c[1]], { timeoutMs: 600_000 });
    const t = parseProgCost(r.stdout);
    if (t.size === 0) return `bench/prog-cost printed no rows: ${r.stdout.slice(0, 300)}`;
    return t;
  } catch (e) {
    return `bench/prog-cost failed: ${(e as Error).message.slice(0, 600)}`;
  }
}

/** The headline figure: an established service flow with its DNAT, per packet (repeat mode). */
export const HEADLINE = 'established + DNAT, repeat';
