// Where weir's own files live, from source (control/) or build (dist/control/).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The checkout (or installed package) root: the nearest folder with package.json and bpf/. */
export function repoRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bpf'))) return (root = dir);
    dir = dirname(dir);
  }
  throw new Error('cannot find the weir root (package.json beside bpf/) above ' + fileURLToPath(import.meta.url));
}

/** A compiled datapath object, e.g. bpfObject('pod') -> build/bpf/pod.o (WEIR_BPF_DIR overrides the folder). */
export function bpfObject(name: string): string {
  const dir = process.env.WEIR_BPF_DIR ?? join(repoRoot(), 'build', 'bpf');
  const path = join(dir, `${name}.o`);
  if (!existsSync(path)) throw new Error(`BPF object ${path} is missing: run 'make bpf' first`);
  return path;
}
