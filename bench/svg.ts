// A small log-log line chart as SVG text: no dependencies, readable in any browser.

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Log scale on y (default true). x is always log (N spans decades). */
  logY?: boolean;
}

const W = 720;
const H = 420;
const M = { l: 80, r: 160, t: 40, b: 56 };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmt(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

/** Log-axis ticks: the decades in range, or 1-2-5 steps when fewer than two decades fit. */
function logTicks(lo: number, hi: number): number[] {
  const steps = (mult: number[]) => {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const m of mult) out.push(m * 10 ** e);
    return out.filter((v) => v >= lo && v <= hi);
  };
  const d = steps([1]);
  return d.length >= 2 ? d : steps([1, 2, 5]);
}

export function lineChart(c: Chart): string {
  const pts = c.series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && Number.isFinite(y) && (c.logY === false || y > 0));
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`;
  const title = `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`;
  if (pts.length === 0) return `${head}<rect width="${W}" height="${H}" fill="white"/>${title}<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text></svg>\n`;
  const logY = c.logY !== false;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) [x0, x1] = [x0 / 2, x1 * 2];
  let y0 = logY ? Math.min(...ys) / 1.5 : 0;
  let y1 = Math.max(...ys) * (logY ? 1.5 : 1.1);
  if (y0 === y1) [y0, y1] = [y0 / 2, y1 * 2 || 1];
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const sx = (x: number) => M.l + ((Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0))) * pw;
  const sy = (y: number) =>
    logY ? M.t + ph - ((Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * ph : M.t + ph - ((y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [head, `<rect width="${W}" height="${H}" fill="white"/>`, title];
  parts.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    parts.push(`<line x1="${sx(x)}" y1="${M.t}" x2="${sx(x)}" y2="${M.t + ph}" stroke="#eee"/>`);
    parts.push(`<text x="${sx(x)}" y="${M.t + ph + 18}" text-anchor="middle">${fmt(x)}</text>`);
  }
  const yTicks = logY ? logTicks(y0, y1) : Array.from({ length: 6 }, (_, i) => y0 + ((y1 - y0) * i) / 5);
  for (const y of yTicks) {
    parts.push(`<line x1="${M.l}" y1="${sy(y)}" x2="${M.l + pw}" y2="${sy(y)}" stroke="#eee"/>`);
    parts.push(`<text x="${M.l - 8}" y="${sy(y) + 4}" text-anchor="end">${fmt(y)}</text>`);
  }
  parts.push(`<text x="${M.l + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  c.series.forEach((s, i) => {
    const p = s.points.filter(([x, y]) => x > 0 && Number.isFinite(y) && (!logY || y > 0)).sort((a, b) => a[0] - b[0]);
    if (p.length > 0) {
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
      for (const [x, y] of p) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(s.name)}: N=${x}, ${fmt(y)}</title></circle>`);
    }
    const ly = M.t + 10 + i * 20;
    parts.push(`<line x1="${M.l + pw + 14}" y1="${ly}" x2="${M.l + pw + 36}" y2="${ly}" stroke="${s.color}" stroke-width="3"/>`);
    parts.push(`<text x="${M.l + pw + 42}" y="${ly + 4}">${esc(s.name)}${p.length === 0 ? ' (no data)' : ''}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
