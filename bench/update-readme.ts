// Puts bench/results/latest.md into the top-level README's Performance
// section, between <!-- bench:start --> and <!-- bench:end -->, so the README
// shows measured figures and nobody edits them by hand.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';

export function spliceReadme(readme: string, table: string, source: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no '${START}' ... '${END}' block to fill`);
  const body = `\n<!-- generated from ${source} by bench/update-readme.ts; do not edit by hand -->\n${table.trim()}\n\n![connect latency](bench/results/latest-connect-latency.svg)\n![programming time](bench/results/latest-programming-time.svg)\n`;
  return readme.slice(0, a + START.length) + body + readme.slice(b);
}

const here = dirname(fileURLToPath(import.meta.url));
const root = existsSync(join(here, '..', 'package.json')) ? resolve(here, '..') : resolve(here, '..', '..');
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const md = join(root, 'bench', 'results', 'latest.md');
  if (!existsSync(md)) {
    process.stderr.write(`update-readme: ${md} is missing; run the bench first\n`);
    process.exit(1);
  }
  const readmePath = join(root, 'README.md');
  writeFileSync(readmePath, spliceReadme(readFileSync(readmePath, 'utf8'), readFileSync(md, 'utf8'), 'bench/results/latest.md'));
  process.stdout.write(`updated ${readmePath}\n`);
}
