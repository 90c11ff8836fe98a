// The three things the bench compares, behind one interface. Each programs the
// same synthetic services into the bench's node netns: kube-proxy's iptables
// ruleset (iptables-restore), kube-proxy's nftables ruleset (nft -f), and weir
// (its service model + reconciler writing BPF maps, programs on the client
// pod's veth).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runOk, wrap } from './exec.js';
import type { KmemCgroup } from './memory.js';
import type { Topology } from './topology.js';
import { jumpRulesInput, partialRestoreInput, restoreInput, ruleCount } from './baseline/iptables.js';
import { fullTransaction, partialTransaction } from './baseline/nftables.js';
import { buildCluster, replaceLastEndpoint, type BenchService, type ClusterSpec } from './baseline/services.js';

export type SideName = 'iptables' | 'nftables' | 'weir';
// Cheapest first: when the budget runs short, the slow baselines are the ones cut.
export const ALL_SIDES: SideName[] = ['weir', 'nftables', 'iptables'];

export interface SideMemory {
  /** BPF maps' memlock under the side's pin root (weir). */
  mapsMemlockBytes?: number;
  mapsMemlock?: Record<string, number>;
  /** The agent process's RSS (weir; kube-proxy itself does not run here). */
  agentRssBytes?: number;
}

export interface Side {
  readonly name: SideName;
  /** The memory cgroup its programming runs in (kernel memory is read there), if one could be made. */
  readonly cgroup?: KmemCgroup;
  /** Nothing of this side programmed (not timed). */
  clear(): Promise<void>;
  /** Program N services from nothing; the time from "desired" to "datapath ready". Stopped (TimeoutError) after timeoutMs. */
  programFull(spec: ClusterSpec, timeoutMs?: number): Promise<{ ms: number; size: number }>;
  /** Move service `index`'s last endpoint to a new pod; time to reprogram. */
  programChange(index: number, generation: number): Promise<number>;
  /** Where the last programming's time went, when the side can tell (weir: model vs map writes). */
  lastDetail?(): Record<string, number> | undefined;
  /** Make traffic go through this side (weir: attach its programs). */
  activate(): Promise<void>;
  deactivate(): Promise<void>;
  memory(): Promise<SideMemory>;
  close(): Promise<void>;
}

const timeoutFor = (n: number) => 120_000 + n * 200; // a 10,000-service iptables restore takes minutes

/** Both baselines clear with one `nft flush ruleset`: iptables-nft's tables are nf_tables tables too. */
async function flushRuleset(t: Topology): Promise<void> {
  await runOk('nft', ['flush', 'ruleset'], { netns: t.node, timeoutMs: 600_000 });
}

/** A kube-proxy ruleset side: the rules live in the node netns, flushed on close. */
abstract class RulesetSide {
  protected services: BenchService[] = [];
  constructor(
    readonly t: Topology,
    readonly cgroup?: KmemCgroup,
  ) {}
  async activate() {}
  async deactivate() {}
  async memory() {
    return {};
  }
  async close() {
    await flushRuleset(this.t).catch(() => undefined);
  }
}

export class IptablesSide extends RulesetSide implements Side {
  readonly name = 'iptables' as const;
  async clear() {
    await flushRuleset(this.t);
    // kube-proxy installs these with `iptables -I` outside its restores.
    await runOk('iptables-restore', ['--noflush'], { netns: this.t.node, input: jumpRulesInput() });
  }
  async programFull(spec: ClusterSpec, timeoutMs?: number) {
    this.services = buildCluster(spec);
    const input = restoreInput(this.services);
    const r = await runOk('iptables-restore', ['--noflush', '--counters'], { netns: this.t.node, input, timeoutMs: timeoutMs ?? timeoutFor(spec.services), cgroupProcs: this.cgroup?.procs });
    return { ms: r.ms, size: ruleCount(input) };
  }
  async programChange(index: number, generation: number) {
    const c = replaceLastEndpoint(this.services, index, generation);
    this.services = c.services;
    const input = partialRestoreInput(c.services, c.services[index], [c.removed]);
    const r = await runOk('iptables-restore', ['--noflush', '--counters'], { netns: this.t.node, input, timeoutMs: timeoutFor(c.services.length), cgroupProcs: this.cgroup?.procs });
    return r.ms;
  }
}

export class NftablesSide extends RulesetSide implements Side {
  readonly name = 'nftables' as const;
  async clear() {
    await flushRuleset(this.t);
  }
  async programFull(spec: ClusterSpec, timeoutMs?: number) {
    this.services = buildCluster(spec);
    const input = fullTransaction(this.services);
    const r = await runOk('nft', ['-f', '-'], { netns: this.t.node, input, timeoutMs: timeoutMs ?? timeoutFor(spec.services), cgroupProcs: this.cgroup?.procs });
    return { ms: r.ms, size: input.split('\n').filter((l) => l.startsWith('add rule ')).length };
  }
  async programChange(index: number, generation: number) {
    const c = replaceLastEndpoint(this.services, index, generation);
    this.services = c.services;
    const r = await runOk('nft', ['-f', '-'], { netns: this.t.node, input: partialTransaction(c.services[index], [c.removed]), timeoutMs: 120_000, cgroupProcs: this.cgroup?.procs });
    return r.ms;
  }
}

/**
 * weir, through a child "agent" process (bench/weir/agent.ts). Timing is the
 * agent's own: model build + reconcile, measured inside the process, as the
 * real agent would spend it (no process start, which kube-proxy's timings
 * include for iptables-restore/nft; see README).
 */
export class WeirSide implements Side {
  readonly name = 'weir' as const;
  #child: ChildProcess;
  #replies: Array<(v: Record<string, unknown>) => void> = [];
  #dead: string | undefined;
  #stderr = '';
  #active = false;

  private constructor(
    readonly t: Topology,
    readonly pinRoot: string,
    readonly cgroup?: KmemCgroup,
  ) {
    // The agent runs in its own memory cgroup: the maps it creates are charged there.
    const [cmd, args] = wrap(...agentCommand(), { cgroupProcs: cgroup?.procs });
    this.#child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.#stderr = (this.#stderr + d).slice(-4000)));
    createInterface({ input: this.#child.stdout! }).on('line', (l) => {
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(l);
      } catch {
        return; // a stray log line
      }
      this.#replies.shift()?.(v);
    });
    this.#child.on('exit', (code, sig) => {
      this.#dead = `weir bench agent exited (${code ?? sig}): ${this.#stderr.trim().slice(-1500)}`;
      for (const r of this.#replies.splice(0)) r({ ok: false, error: this.#dead });
    });
  }

  static async start(t: Topology, pinRoot: string, cgroup?: KmemCgroup): Promise<WeirSide> {
    const s = new WeirSide(t, pinRoot, cgroup);
    try {
      await s.#call({ cmd: 'load', pinRoot, nodeNetns: `/run/netns/${t.node}`, podIf: t.nodeCliIf, clientIp: t.clientIp }, 120_000);
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  #call(req: Record<string, unknown>, timeoutMs = 600_000): Promise<Record<string, unknown>> {
    if (this.#dead) return Promise.reject(new Error(this.#dead));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`weir bench agent: '${req.cmd}' took over ${timeoutMs} ms`)), timeoutMs);
      this.#replies.push((v) => {
        clearTimeout(timer);
        if (v.ok) resolve(v);
        else reject(new Error(`weir bench agent: '${req.cmd}' failed: ${String(v.error)}`));
      });
      this.#child.stdin!.write(JSON.stringify(req) + '\n');
    });
  }

  async clear() {
    await this.#call({ cmd: 'clear' });
  }
  #detail: Record<string, number> | undefined;
  async programFull(spec: ClusterSpec) {
    const r = await this.#call({ cmd: 'program', spec });
    if ((r.problems as number) > 0) throw new Error(`weir's model reported ${r.problems} problems with the bench's services`);
    this.#detail = { modelMs: r.modelMs as number, reconcileMs: r.reconcileMs as number };
    return { ms: r.ms as number, size: (spec.services + 1) * spec.endpoints };
  }
  async programChange(index: number, generation: number) {
    const r = await this.#call({ cmd: 'change', index, generation });
    this.#detail = { modelMs: r.modelMs as number, reconcileMs: r.reconcileMs as number };
    return r.ms as number;
  }
  lastDetail() {
    return this.#detail;
  }
  async activate() {
    await this.#call({ cmd: 'attach' });
    this.#active = true;
  }
  async deactivate() {
    if (this.#active) await this.#call({ cmd: 'detach' });
    this.#active = false;
  }
  async memory(): Promise<SideMemory> {
    const r = await this.#call({ cmd: 'memory' });
    const maps = r.maps as { total: number; byMap: Record<string, number> };
    return { agentRssBytes: r.rssBytes as number, mapsMemlockBytes: maps.total, mapsMemlock: maps.byMap };
  }
  async close() {
    if (!this.#dead) {
      await this.deactivate().catch(() => undefined);
      await this.#call({ cmd: 'exit' }, 10_000).catch(() => undefined);
    }
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}

/** node on the compiled agent (dist-bench), or vite-node on its source (tests, development). */
function agentCommand(): [string, string[]] {
  const here = dirname(fileURLToPath(import.meta.url));
  const js = join(here, 'weir', 'agent.js');
  if (existsSync(js)) return [process.execPath, [js]];
  const ts = join(here, 'weir', 'agent.ts');
  const viteNode = join(here, '..', 'node_modules', '.bin', 'vite-node');
  if (existsSync(ts) && existsSync(viteNode)) return [viteNode, [ts]];
  throw new Error(`weir bench agent not found (${js}); run 'make -C bench'`);
}

