// Paths to the BPF objects the Makefile compiles from test/fixtures/*.c.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function fixture(name: string): string {
  const p = join(repoRoot, 'build', 'fixtures', `${name}.o`);
  if (!existsSync(p)) throw new Error(`fixture ${p} is missing: run \`make fixtures\``);
  return p;
}
