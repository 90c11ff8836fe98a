// `weir lab ...`: the embedded default cluster (control/lab/).
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../context.js';

async function lab() {
  return import('../../lab/lab.js');
}

function fail(e: unknown): never {
  throw new CliError((e as Error).message, EXIT_FAILURE);
}

export function registerLab(program: Command, setExit: (code: number) => void): void {
  const labCmd = program.command('lab').description('the embedded default cluster: nodes and pods as network namespaces on this machine (root)');
  labCmd
    .command('up')
    .description('create the lab (cleans leftovers of a previous run first) and start an agent per node')
    .option('--nodes <n>', 'number of nodes', '2')
    .action(async (o: { nodes: string }) => {
      const n = Number(o.nodes);
      if (!Number.isInteger(n) || n < 1 || n > 50) throw new CliError(`--nodes ${o.nodes}: expected an integer 1..50`, EXIT_USAGE);
      const l = await lab();
      await l.labUp({ nodes: n, log: (s) => process.stdout.write(`${s}\n`) }).catch(fail);
      process.stdout.write('lab is up: weir lab status, weir lab apply -f FILE.yaml, weir lab down\n');
    });
  labCmd
    .command('down')
    .description('remove every netns, link, pin and process the lab made')
    .action(async () => {
      const r = (await lab()).labDown();
      process.stdout.write(`lab down: stopped ${r.processes.length} processes, removed ${r.namespaces.length} namespaces\n`);
    });
  labCmd
    .command('status')
    .description('nodes, agents and pods')
    .action(async (_o, cmd: Command) => {
      const s = await (await lab()).labStatus().catch(fail);
      const json = cmd.optsWithGlobals().output === 'json';
      if (json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return;
      }
      if (!s.up) {
        process.stdout.write('the lab is not up (weir lab up)\n');
        setExit(EXIT_FAILURE);
        return;
      }
      process.stdout.write(`${'NODE'.padEnd(10)}${'IP'.padEnd(16)}${'POD CIDR'.padEnd(18)}AGENT\n`);
      for (const n of s.nodes) process.stdout.write(`${n.name.padEnd(10)}${n.ip.padEnd(16)}${n.podCidr.padEnd(18)}${n.agent}\n`);
      process.stdout.write(`\n${'NAMESPACE'.padEnd(12)}${'NAME'.padEnd(34)}${'STATUS'.padEnd(10)}${'IP'.padEnd(16)}NODE\n`);
      for (const p of s.pods) process.stdout.write(`${p.namespace.padEnd(12)}${p.name.padEnd(34)}${p.phase.padEnd(10)}${p.ip.padEnd(16)}${p.node}\n`);
    });
  labCmd
    .command('apply')
    .description('create or update the objects in a YAML file (- for stdin)')
    .requiredOption('-f, --filename <file>', 'YAML with one or more objects')
    .action(async (o: { filename: string }) => {
      for (const line of await (await lab()).labApply(o.filename).catch(fail)) process.stdout.write(`${line}\n`);
    });
  labCmd
    .command('delete')
    .description('delete the objects in a YAML file')
    .requiredOption('-f, --filename <file>', 'YAML with one or more objects')
    .action(async (o: { filename: string }) => {
      for (const line of await (await lab()).labDelete(o.filename).catch(fail)) process.stdout.write(`${line}\n`);
    });
  labCmd
    .command('exec')
    .description('run a command inside a pod (NAME or NAMESPACE/NAME): weir lab exec client -- curl -s http://10.96.0.10/')
    .argument('<pod>')
    .argument('<cmd...>')
    .action(async (pod: string, cmd: string[]) => {
      const l = await lab();
      try {
        setExit(l.labExec(pod, cmd));
      } catch (e) {
        fail(e);
      }
    });
  labCmd
    .command('kubectl')
    .description("Debian's kubectl against the lab API server")
    .argument('[args...]')
    .allowUnknownOption()
    .action(async (args: string[]) => {
      const l = await lab();
      try {
        setExit(l.labKubectl(args));
      } catch (e) {
        fail(e);
      }
    });
  labCmd
    .command('demo')
    .description('the seeds\' story: lab up, guestbook, connectivity, services, NodePort, load balancing')
    .action(async () => {
      const { runDemo } = await import('../../lab/demo.js');
      const failures = await runDemo().catch(fail);
      if (failures) setExit(EXIT_FAILURE);
    });
  labCmd
    .command('daemon', { hidden: true })
    .description('the lab control plane process (started by weir lab up inside the fabric netns)')
    .option('--nodes <n>', 'number of nodes', '2')
    .action(async (o: { nodes: string }) => {
      const { runLabDaemon } = await import('../../lab/daemon.js');
      await runLabDaemon(Number(o.nodes));
      await new Promise(() => {});
    });
}
