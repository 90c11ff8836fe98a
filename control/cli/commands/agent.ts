// `weir agent`: the per-node daemon (control/agent/main.ts).
import { Option, type Command } from 'commander';
import { DEFAULTS, SETTINGS } from '../../agent/config.js';

export function registerAgent(program: Command): void {
  const cmd = program
    .command('agent')
    .description('run the per-node agent: load the datapath, watch the cluster, serve CNI and /metrics')
    .option('--config <file>', 'YAML/JSON settings file (the ConfigMap in a cluster)');
  for (const s of Object.values(SETTINGS)) {
    const key = Object.entries(SETTINGS).find(([, v]) => v === s)![0] as keyof typeof DEFAULTS;
    const def = DEFAULTS[key];
    // No commander defaults: the config file and env must be able to set what a flag leaves unset.
    cmd.addOption(new Option(`--${s.flag} <value>`, `${s.help} [env ${s.env}${def !== '' ? `, default ${def}` : ''}]`));
  }
  cmd.action(async (_opts: Record<string, string | undefined>, self: Command) => {
    const { runAgent } = await import('../../agent/main.js');
    const flags: Record<string, string | undefined> = {};
    // With globals: a flag the program also defines (--state-dir) is parsed as
    // the program's, even when written after `agent`.
    for (const [k, v] of Object.entries(self.optsWithGlobals() as Record<string, string | undefined>)) {
      if (v === undefined) continue;
      if (k === 'config') flags.config = v;
      else {
        const s = Object.values(SETTINGS).find((x) => x.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) === k);
        if (s) flags[s.flag] = v;
      }
    }
    await runAgent(flags);
    // runAgent returns once serving; the process lives until SIGTERM.
    await new Promise(() => {});
  });
}
