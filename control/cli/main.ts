// The `weir` command line (commander). Map and domain views read the pinned
// maps directly, so they work while the agent is down. Each command group
// lives in commands/*.ts; run() returns the exit code: 0 ok, 1 the command
// failed, 2 bad usage.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { LoaderError } from '../../loader/index.js';
import { BpfError } from '../../native/index.js';
import { DEFAULT_PIN_ROOT } from '../datapath/maps.js';
import { CliError, DEFAULT_STATE_DIR, EXIT_FAILURE, EXIT_USAGE, LAB_PIN_BASE, LAB_STATE_BASE } from './context.js';
import { registerAgent } from './commands/agent.js';
import { registerBench } from './commands/bench.js';
import { registerCt } from './commands/ct.js';
import { registerLab } from './commands/lab.js';
import { registerEndpoint } from './commands/endpoint.js';
import { registerMaglev } from './commands/maglev.js';
import { registerMap } from './commands/map.js';
import { registerMonitor } from './commands/monitor.js';
import { registerObject, version } from './commands/object.js';
import { registerIdentity, registerPolicy } from './commands/policy.js';
import { registerRoute } from './commands/route.js';
import { registerService } from './commands/service.js';
import { registerStatus } from './commands/status.js';
import { registerTrace } from './commands/trace.js';

const EXAMPLES = `
Examples:
  weir map list                      the maps pinned under /sys/fs/bpf/weir
  weir --node node-1 service list    a lab node's services (pins under ${LAB_PIN_BASE}/node-1)
  weir map dump svc4 -o json         one map, decoded, as JSON
  weir --node node-1 policy get x/a  who may reach pod x/a and whom it may reach
  weir --node node-1 monitor         live drops and policy verdicts, with reasons
  weir inspect OBJECT.o              what the loader reads from a BPF object
  weir help map                      help for one command
`;

/** The command ran again in another network namespace; this is its exit code. */
class Reexec {
  constructor(readonly code: number) {}
}

/**
 * Runs this same command line inside a network namespace with only the
 * network switched (nsenter --net), so bpffs pins stay visible (`ip netns
 * exec` would remount /sys and hide them).
 */
function enterNetns(netns: string, argv: string[]): number {
  const path = netns.includes('/') ? netns : `/run/netns/${netns}`;
  if (!/^[\w./-]+$/.test(path) || !existsSync(path)) throw new CliError(`--netns: no network namespace at ${path}`, EXIT_USAGE);
  const r = spawnSync('nsenter', [`--net=${path}`, '--', process.execPath, process.argv[1], ...argv], {
    stdio: 'inherit',
    env: { ...process.env, WEIR_NETNS_ENTERED: netns },
  });
  if (r.error) throw new CliError(`--netns: cannot run nsenter: ${r.error.message}`);
  return r.status ?? EXIT_FAILURE;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('weir');
  // Settings first: .command() copies them into every subcommand.
  program
    .exitOverride()
    .configureOutput({ outputError: (s, w) => w(`weir: ${s.replace(/^error: /, '')}`) })
    .showHelpAfterError('(run weir --help for usage)')
    .allowExcessArguments(false)
    .description('Kubernetes pod network and kube-proxy replacement on eBPF')
    .version(`weir ${version()}`, '-V, --version', 'print the version')
    .option('--bpffs <path>', 'pin root of the maps to read', DEFAULT_PIN_ROOT)
    .option('--node <name>', `a lab node's maps (pin root ${LAB_PIN_BASE}/NAME); wins over --bpffs`)
    .option('--state-dir <path>', `the agent's state dir, where it writes the policy snapshot (default ${DEFAULT_STATE_DIR}; with --node ${LAB_STATE_BASE}/NAME)`)
    .option('--netns <name|path>', 'run in this network namespace (/run/netns/NAME or a path): attachments, agent health and interface names as that namespace sees them')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText('after', EXAMPLES);
  registerAgent(program);
  registerLab(program, setExit);
  registerBench(program, setExit);
  registerMap(program);
  registerService(program);
  registerCt(program);
  registerMaglev(program);
  registerEndpoint(program);
  registerRoute(program);
  registerStatus(program);
  registerTrace(program);
  registerPolicy(program);
  registerIdentity(program);
  registerMonitor(program);
  registerObject(program, setExit);
  return program;
}

export async function run(argv: string[]): Promise<number> {
  let exit = 0;
  let where = 'weir';
  const program = buildProgram((c) => (exit = c));
  program.hook('preAction', (_root, action) => {
    where = commandPath(action);
    const netns = (action.optsWithGlobals() as { netns?: string }).netns;
    if (netns !== undefined && process.env.WEIR_NETNS_ENTERED !== netns) throw new Reexec(enterNetns(netns, argv));
  });
  if (argv.length === 0) {
    process.stdout.write(program.helpInformation() + EXAMPLES);
    return 0;
  }
  // `weir help ct list` = `weir ct list --help` (commander's help command takes one name).
  if (argv[0] === 'help' && argv.length > 2) argv = [...argv.slice(1), '--help'];
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exit;
  } catch (e) {
    if (e instanceof Reexec) return e.code;
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_USAGE; // commander printed it
    if (e instanceof CliError) {
      process.stderr.write(`${where}: ${e.message}\n`);
      return e.code;
    }
    if (e instanceof LoaderError || e instanceof BpfError) {
      process.stderr.write(`${where}: ${e.message}\n`);
      return EXIT_FAILURE;
    }
    process.stderr.write(`${where}: ${(e as Error).message ?? String(e)}\n`);
    if (process.env.WEIR_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return EXIT_FAILURE;
  }
}
