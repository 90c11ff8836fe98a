// What every `weir` command shares: where the maps are (--bpffs / --node),
// how to print (-o table|json), and errors that carry their exit code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_PIN_ROOT, MapNames, openPinnedMaps, type DatapathMaps } from '../datapath/maps.js';

/** A lab node's maps live under LAB_PIN_BASE/NODE (the lab pins each node's agent there). */
export const LAB_PIN_BASE = '/sys/fs/bpf/weir-lab';

/** WEIR_LAB_PIN_BASE moves the base (tests use a folder of their own). */
export function labPinRoot(node: string): string {
  return join(process.env.WEIR_LAB_PIN_BASE || LAB_PIN_BASE, node);
}

/** Exit codes: 1 = the command could not do its work, 2 = bad usage. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** An error the CLI prints as `weir <command>: <message>` and exits with `code`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: number = EXIT_FAILURE,
  ) {
    super(message);
  }
}

export type OutputFormat = 'table' | 'json';

export interface GlobalOptions {
  bpffs: string;
  node?: string;
  output: OutputFormat;
  /** The agent's state dir (policy snapshot): --state-dir, else the lab node's, else DEFAULT_STATE_DIR. */
  stateDir: string;
}

/** The agent's default --state-dir (control/agent/config.ts). */
export const DEFAULT_STATE_DIR = '/var/lib/weir';
/** A lab node's agent keeps its state under LAB_STATE_BASE/NODE (control/lab/topology.ts STATE_DIR). */
export const LAB_STATE_BASE = '/run/weir-lab';

/** WEIR_LAB_STATE_BASE moves the base (tests use a folder of their own). */
export function labStateDir(node: string): string {
  return join(process.env.WEIR_LAB_STATE_BASE || LAB_STATE_BASE, node);
}

/** The global options as any (sub)command sees them. */
export function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as { bpffs?: string; node?: string; output?: string; stateDir?: string };
  const output = o.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new CliError(`-o must be 'table' or 'json', got '${output}'`, EXIT_USAGE);
  if (o.node !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(o.node)) {
    throw new CliError(`--node '${o.node}' is not a node name (letters, digits, '.', '_', '-')`, EXIT_USAGE);
  }
  const stateDir = o.stateDir ?? (o.node !== undefined ? labStateDir(o.node) : DEFAULT_STATE_DIR);
  return { bpffs: o.bpffs ?? DEFAULT_PIN_ROOT, node: o.node, output, stateDir };
}

/** The pin root the options select: --node wins over --bpffs. */
export function pinRoot(g: GlobalOptions): string {
  return g.node !== undefined ? labPinRoot(g.node) : g.bpffs;
}

function noMaps(root: string): CliError {
  return new CliError(`no weir maps under ${root} — is the agent running / is this the right --node?`);
}

/** The pin root, checked to exist and to hold at least one weir map pin. */
export function requirePinRoot(g: GlobalOptions): string {
  const root = pinRoot(g);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw noMaps(root);
  const names = readdirSync(root);
  if (!Object.values(MapNames).some((n) => names.includes(n))) throw noMaps(root);
  return root;
}

/** Typed views over the node's pinned maps; every weir map must be pinned. */
export function openMaps(g: GlobalOptions): DatapathMaps {
  const root = requirePinRoot(g);
  const missing = Object.values(MapNames).filter((n) => !existsSync(join(root, n)));
  if (missing.length) throw new CliError(`${root} lacks ${missing.join(', ')} — the datapath was never fully loaded here`);
  return openPinnedMaps(root);
}
