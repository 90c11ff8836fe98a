// `weir bench`: the benchmark against kube-proxy's iptables and nftables
// modes (bench/, built into dist-bench/ by `make -C bench`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { repoRoot } from '../../paths.js';
import { CliError, EXIT_FAILURE } from '../context.js';

export function registerBench(program: Command, setExit: (code: number) => void): void {
  program
    .command('bench')
    .description('weir vs kube-proxy iptables/nftables, side by side (root; --quick, --full, --help for all options)')
    .argument('[args...]', 'passed to the bench (see bench/README.md)')
    .allowUnknownOption()
    .helpOption(false)
    .action((args: string[]) => {
      const run = join(repoRoot(), 'dist-bench', 'bench', 'run.js');
      if (!existsSync(run)) throw new CliError(`${run} is missing: build the bench with 'make -C bench' (or run 'make bench')`, EXIT_FAILURE);
      const r = spawnSync(process.execPath, [run, ...args], { stdio: 'inherit' });
      setExit(r.status ?? 1);
    });
}
