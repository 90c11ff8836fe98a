// The agent's snapshot of the compiled policy, for the CLI (`weir policy`,
// `weir monitor`, `weir trace`): what the numbers in the maps mean (identity
// labels, policy names), written after every policy sync to
// ${stateDir}/policy.msgpack (msgpackr, plain maps; atomic: temp + rename).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { Packr } from 'msgpackr';
import type { CompiledPolicy, IdentityInfo, PolicyProblem, RuleSet } from './types.js';

export const POLICY_SNAPSHOT_FILE = 'policy.msgpack';
export const POLICY_SNAPSHOT_VERSION = 1;

export interface SnapshotEndpoint {
  endpointId: number;
  /** "namespace/name", or the address if no Pod object names it. */
  pod: string;
  ip: string;
  /** undefined: not isolated in that direction. RuleSet.policies names the policies. */
  ingress?: RuleSet;
  egress?: RuleSet;
}

export interface PolicySnapshot {
  version: number;
  /** weir_policy_gen[0].gen after the sync that wrote this. */
  gen: number;
  /** ISO time of the write. */
  writtenAt: string;
  node: string;
  identities: IdentityInfo[];
  /** Every local endpoint the compile saw (isolated or not). */
  endpoints: SnapshotEndpoint[];
  /** [prefix "a.b.c.d/len", identity] as compiled (the maps may lag if a sync failed). */
  ipcache: Array<[string, number]>;
  problems: PolicyProblem[];
  /** String(endpointId) → its programmed policy ids (0: not isolated in that direction). */
  policyIds: Record<string, { ingress_id: number; egress_id: number }>;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export function buildPolicySnapshot(
  compiled: CompiledPolicy,
  o: { gen: number; node: string; policyIds: ReadonlyMap<number, { ingress_id: number; egress_id: number }>; now?: Date },
): PolicySnapshot {
  const policyIds: PolicySnapshot['policyIds'] = {};
  for (const [ep, v] of o.policyIds) policyIds[String(ep)] = { ingress_id: v.ingress_id, egress_id: v.egress_id };
  return {
    version: POLICY_SNAPSHOT_VERSION,
    gen: o.gen,
    writtenAt: (o.now ?? new Date()).toISOString(),
    node: o.node,
    identities: [...compiled.identities.values()].sort((a, b) => a.id - b.id),
    endpoints: [...compiled.endpoints.values()]
      .sort((a, b) => a.endpointId - b.endpointId)
      .map((e) => ({ endpointId: e.endpointId, pod: e.pod, ip: e.ip, ...(e.ingress ? { ingress: e.ingress } : {}), ...(e.egress ? { egress: e.egress } : {}) })),
    ipcache: [...compiled.ipcache],
    problems: compiled.problems,
    policyIds,
  };
}

/** Writes the snapshot atomically (readers see the old or the new file, never a part). */
export function writePolicySnapshot(path: string, snap: PolicySnapshot): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, packr.pack(snap));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* closed already */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Reads a snapshot the agent wrote; throws naming the file and what is wrong. */
export function readPolicySnapshot(path: string): PolicySnapshot {
  const raw = packr.unpack(readFileSync(path)) as Partial<PolicySnapshot> | null;
  if (!raw || typeof raw !== 'object') throw new Error(`policy snapshot ${path}: not an object`);
  if (raw.version !== POLICY_SNAPSHOT_VERSION) throw new Error(`policy snapshot ${path}: version ${String(raw.version)}, this weir reads ${POLICY_SNAPSHOT_VERSION}`);
  for (const f of ['identities', 'endpoints', 'ipcache', 'problems'] as const) {
    if (!Array.isArray(raw[f])) throw new Error(`policy snapshot ${path}: field ${f} is not a list`);
  }
  if (typeof raw.gen !== 'number') throw new Error(`policy snapshot ${path}: field gen is not a number`);
  return raw as PolicySnapshot;
}
