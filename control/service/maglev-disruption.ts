// Prints the Maglev disruption table of README.md: removing one of N backends,
// what share of the slots that did NOT belong to it change owner.
// Run: npx vite-node control/service/maglev-disruption.ts
import { MAGLEV_M_DEFAULT, MAGLEV_M_LARGE, maglevTable } from './maglev.js';

const ident = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080/6`;
const pct = (x: number) => `${(100 * x).toFixed(3)}%`;

console.log('| M | N | removals tried | others moved: mean | max |');
console.log('|---|---|---|---|---|');
for (const m of [MAGLEV_M_DEFAULT, MAGLEV_M_LARGE]) {
  for (const n of [3, 10, 100, 1000]) {
    const bs = Array.from({ length: n }, (_, i) => ident(i));
    const full = maglevTable(bs, m);
    const trials = Math.min(n, 100);
    let max = 0;
    let sum = 0;
    for (let k = 0; k < trials; k++) {
      const removed = Math.floor((k * n) / trials);
      const rest = bs.filter((_, i) => i !== removed);
      const after = maglevTable(rest, m);
      let moved = 0;
      let others = 0;
      for (let s = 0; s < m; s++) {
        if (full[s] === removed) continue;
        others++;
        if (rest[after[s]] !== bs[full[s]]) moved++;
      }
      max = Math.max(max, moved / others);
      sum += moved / others;
    }
    console.log(`| ${m} | ${n} | ${trials} | ${pct(sum / trials)} | ${pct(max)} |`);
  }
}
