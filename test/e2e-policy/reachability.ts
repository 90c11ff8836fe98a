// Truth tables for the NetworkPolicy end-to-end tests, in the style of the
// upstream Kubernetes netpol e2e ("probe connectivity"): every (client pod,
// server pod, port, protocol) cell is either allowed or denied. The EXPECTED
// tables are written by hand in each scenario with expect() calls that state
// Kubernetes semantics ("nothing reaches x/a but y/*"); nothing here
// evaluates a NetworkPolicy.

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
/** "x/a" ... "z/c", in table order. */
export const PODS: string[] = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));
export const PORTS = [80, 81] as const;
export const PROTOS = ['TCP', 'UDP'] as const;
export type Proto = (typeof PROTOS)[number];
/** "80/TCP" ... : one table per port and protocol. */
export const CHANNELS: string[] = PORTS.flatMap((port) => PROTOS.map((proto) => `${port}/${proto}`));

/** "*" every pod, "x/*" a namespace, "x/a" a pod; or a list of those. */
export type Sel = string | string[];

/** Whether SEL names POD. */
export function selects(sel: Sel, pod: string): boolean {
  if (Array.isArray(sel)) return sel.some((s) => selects(s, pod));
  if (sel === '*') return true;
  if (sel.endsWith('/*')) return pod.startsWith(sel.slice(0, -1));
  if (!PODS.includes(sel)) throw new Error(`selector ${sel}: not a pod of the test (${PODS.join(' ')})`);
  return sel === pod;
}

export class Reachability {
  /** cells[channel][client][server] */
  readonly cells: Record<string, Record<string, Record<string, boolean>>> = {};

  constructor(allowed: boolean) {
    for (const ch of CHANNELS) {
      this.cells[ch] = {};
      for (const c of PODS) {
        this.cells[ch][c] = {};
        for (const s of PODS) this.cells[ch][c][s] = allowed;
      }
    }
  }

  /** Sets every cell from a client in FROM to a server in TO (optionally only on a port and/or protocol). Later calls win. */
  expect(from: Sel, to: Sel, allowed: boolean, on: { port?: number; proto?: Proto } = {}): this {
    for (const ch of CHANNELS) {
      const [port, proto] = ch.split('/');
      if (on.port !== undefined && Number(port) !== on.port) continue;
      if (on.proto !== undefined && proto !== on.proto) continue;
      for (const c of PODS) if (selects(from, c)) for (const s of PODS) if (selects(to, s)) this.cells[ch][c][s] = allowed;
    }
    return this;
  }

  /** A pod talking to its own address never leaves its netns, so no policy applies (upstream: AllowLoopback). */
  allowLoopback(): this {
    for (const ch of CHANNELS) for (const p of PODS) this.cells[ch][p][p] = true;
    return this;
  }

  get(ch: string, client: string, server: string): boolean {
    return this.cells[ch][client][server];
  }
}

/** What one probe saw: allowed / denied, or a broken probe (refused, error, wrong server). */
export type Observed = Record<string, Record<string, Record<string, { verdict: string; server?: string; err?: string }>>>;

const mark = (v: string) => (v === 'allowed' ? '.' : v === 'denied' ? 'X' : '?');

/** Upstream-style tables: rows are clients, columns servers; '.' allowed, 'X' denied, '?' neither (refused/error). */
export function formatTable(title: string, cell: (client: string, server: string) => string): string {
  const w = 5;
  const lines = [title, `${'  '.padEnd(w + 2)}${PODS.map((p) => p.padEnd(w)).join('').trimEnd()}`];
  for (const c of PODS) lines.push(`  ${c.padEnd(w)}${PODS.map((s) => cell(c, s).padEnd(w)).join('').trimEnd()}`);
  return lines.join('\n');
}

export interface Comparison {
  ok: boolean;
  wrong: string[];
  report: string;
}

/** Compares an observed matrix with the expected one; the report has, per channel, expected, observed and the cells that differ ('!'). */
export function compare(expected: Reachability, observed: Observed, skip: (ch: string, client: string, server: string) => boolean = () => false): Comparison {
  const wrong: string[] = [];
  const parts: string[] = [];
  for (const ch of CHANNELS) {
    const bad = new Set<string>();
    for (const c of PODS)
      for (const s of PODS) {
        if (skip(ch, c, s)) continue;
        const o = observed[ch]?.[c]?.[s];
        const want = expected.get(ch, c, s) ? 'allowed' : 'denied';
        const serverOk = o?.verdict !== 'allowed' || o.server === s.split('/')[1];
        if (!o || o.verdict !== want || !serverOk) {
          bad.add(`${c} ${s}`);
          wrong.push(`${ch} ${c} -> ${s}: expected ${want}, got ${o ? `${o.verdict}${o.server && !serverOk ? ` (answered by ${o.server})` : ''}${o.err ? ` (${o.err})` : ''}` : 'no result'}`);
        }
      }
    const exp = formatTable(`${ch} expected`, (c, s) => (skip(ch, c, s) ? '-' : expected.get(ch, c, s) ? '.' : 'X'));
    const obs = formatTable(`${ch} observed`, (c, s) => (skip(ch, c, s) ? '-' : mark(observed[ch]?.[c]?.[s]?.verdict ?? '')));
    const cmp = formatTable(`${ch} compare`, (c, s) => (skip(ch, c, s) ? '-' : bad.has(`${c} ${s}`) ? '!' : '.'));
    if (bad.size) parts.push([exp, obs, cmp].join('\n'));
  }
  return { ok: wrong.length === 0, wrong, report: parts.join('\n\n') };
}

/** The observed tables alone (for the log of a passing scenario). */
export function formatObserved(observed: Observed, channels: string[] = CHANNELS): string {
  return channels.map((ch) => formatTable(ch, (c, s) => mark(observed[ch]?.[c]?.[s]?.verdict ?? ''))).join('\n');
}
