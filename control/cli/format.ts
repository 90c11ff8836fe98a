// Printing: aligned tables, JSON (bigints as numbers when exact, else
// strings), and the small formatters for addresses, MACs, protocols, flags
// and durations that every view uses.

/** Host-order IPv4 number -> dotted quad. */
export function ip4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Dotted quad -> host-order number; undefined when `s` is not one. */
export function parseIp4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function mac(b: Buffer | Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const PROTOS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp' };
const PROTO_NUMS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, sctp: 132 };

export function protoName(p: number): string {
  return PROTOS[p] ?? String(p);
}

export function protoNumber(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s);
  return PROTO_NUMS[s.toLowerCase()];
}

/** Names of the bits set in `v` from an enum-const table; unknown bits as hex. */
export function flagNames(v: number, table: Record<string, number>, strip = ''): string[] {
  const out: string[] = [];
  let rest = v;
  for (const [name, bit] of Object.entries(table)) {
    if (bit !== 0 && (v & bit) === bit) {
      out.push(strip && name.startsWith(strip) ? name.slice(strip.length).toLowerCase() : name);
      rest &= ~bit;
    }
  }
  if (rest) out.push(`0x${rest.toString(16)}`);
  return out;
}

/** The name of an enum value, or the number when the table lacks it. */
export function enumName(v: number, table: Record<string, number>, strip = ''): string | number {
  const hit = Object.entries(table).find(([, x]) => x === v);
  if (!hit) return v;
  return strip && hit[0].startsWith(strip) ? hit[0].slice(strip.length).toLowerCase() : hit[0];
}

/** "3d4h", "12m05s", "4.2s", "850ms" for a duration in nanoseconds. */
export function duration(ns: bigint): string {
  if (ns < 0n) return `-${duration(-ns)}`;
  const ms = Number(ns / 1_000_000n);
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const total = Math.floor(s);
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  return `${m}m${String(sec).padStart(2, '0')}s`;
}

/** CLOCK_MONOTONIC in ns: the clock bpf_ktime_get_ns() reads (libuv's hrtime uses it too). */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

export function percent(n: number, of: number): string {
  if (of <= 0) return '-';
  const p = (100 * n) / of;
  if (p > 0 && p < 0.001) return '<0.001%';
  return p === 0 || p >= 10 ? `${p.toFixed(0)}%` : `${p.toFixed(p < 0.01 ? 3 : 2)}%`;
}

/** JSON with bigints as numbers when exact, else decimal strings; Buffers as hex. */
export function toJson(v: unknown): string {
  return JSON.stringify(
    v,
    (_k, x) => {
      if (typeof x === 'bigint') return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString();
      if (x && typeof x === 'object' && (x as { type?: string }).type === 'Buffer' && Array.isArray((x as { data?: unknown }).data)) {
        return Buffer.from((x as { data: number[] }).data).toString('hex');
      }
      return x;
    },
    2,
  );
}

const NUMERIC = /^(<?\d[\d.]*%?|-)$/;

/** An aligned text table; columns of numbers, percentages and '-' align right. */
export function table(headers: string[], rows: Array<Array<string | number | bigint>>): string {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const right = headers.map((_, i) => cells.some((r) => r[i] !== '-') && cells.every((r) => NUMERIC.test(r[i] ?? '')));
  const line = (r: string[]) =>
    r
      .map((c, i) => (right[i] ? c.padStart(widths[i]) : i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export function write(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}
