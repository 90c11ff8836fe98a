// Commands the issue asks for whose data does not exist yet: they say so and
// exit 2, never print made-up output.
import type { Command } from 'commander';
import { CliError, EXIT_USAGE } from '../context.js';

function notYet(what: string, why: string): never {
  throw new CliError(`not yet implemented: ${what} ${why}`, EXIT_USAGE);
}

export function registerNotYet(program: Command): void {
  program
    .command('policy')
    .description('network policy (not yet: issue 5)')
    .command('get')
    .description('what may reach a pod and what it may reach (not yet: arrives with NetworkPolicy enforcement, issue 5)')
    .argument('<pod>', 'pod name or address')
    .action(() => notYet('weir policy get', 'needs the policy maps of issue 5 (NetworkPolicy enforcement in BPF)'));
  program
    .command('monitor')
    .description('live drop and policy-verdict events (not yet: issue 5 adds the events)')
    .option('--type <type>', 'only events of this type (drop, policy, trace)')
    .action(() => notYet('weir monitor', 'needs the datapath to emit drop/verdict events into weir_events (issue 5)'));
}
