// `weir monitor`: live drop and policy-verdict events from the pinned
// weir_events ring buffer, one readable line (or JSON object) each. Events
// are decoded with the contract's struct event (types.gen.ts, checked
// against the contract BTF); pod names and identity labels come from
// weir_ep4 and the agent's policy snapshot. A BPF ring buffer has ONE
// consumer position: two readers at once (two monitors, or a monitor and an
// agent reading events) each get some of the events and neither gets all.
import { join } from 'node:path';
import type { Command } from 'commander';
import { BpfMap, possibleCpus, RingBuffer } from '../../../native/index.js';
import { MapNames, structSide, type Side } from '../../datapath/maps.js';
import * as T from '../../datapath/types.gen.js';
import { CliError, EXIT_USAGE, globals, requirePinRoot, type GlobalOptions } from '../context.js';
import { enumName, ip4, monotonicNs, parseIp4, protoName, toJson } from '../format.js';
import { identityMeaning, loadPolicySnapshot, type PolicySnapshotView } from '../views.js';
import { parsePodArg } from './policy.js';

/** Why, in words (enum weir_reason). */
export const REASON_WORDS: Record<number, string> = {
  [T.WeirReason.REASON_FORWARDED]: 'allowed',
  [T.WeirReason.REASON_POLICY_DENIED_INGRESS]: 'policy denied ingress',
  [T.WeirReason.REASON_POLICY_DENIED_EGRESS]: 'policy denied egress',
  [T.WeirReason.REASON_NO_ROUTE]: 'no route',
  [T.WeirReason.REASON_INVALID_PACKET]: 'invalid packet',
  [T.WeirReason.REASON_NO_BACKEND]: 'service has no backend',
  [T.WeirReason.REASON_SPOOFED_SOURCE]: 'spoofed source address',
  [T.WeirReason.REASON_UNSUPPORTED]: 'unsupported packet',
  [T.WeirReason.REASON_CT_FULL]: 'conntrack table full',
  [T.WeirReason.REASON_FRAG_DENIED]: 'fragment of a denied flow',
  [T.WeirReason.REASON_ENCAP_FAILED]: 'VXLAN encapsulation failed',
  [T.WeirReason.REASON_MTU_EXCEEDED]: 'MTU exceeded',
  [T.WeirReason.REASON_FRAG_UNKNOWN]: 'fragment of an unknown flow',
};

/** What let a flow through, or nothing (enum policy_match). */
export const MATCH_WORDS: Record<number, string> = {
  [T.PolicyMatch.MATCH_NONE]: 'no rule matched',
  [T.PolicyMatch.MATCH_L3_L4]: 'peer identity + port',
  [T.PolicyMatch.MATCH_L3]: 'peer identity, any port',
  [T.PolicyMatch.MATCH_L4]: 'any peer, this port',
  [T.PolicyMatch.MATCH_ALL]: 'any peer, any port',
  [T.PolicyMatch.MATCH_NOT_ISOLATED]: 'not isolated',
  [T.PolicyMatch.MATCH_TRACKED]: 'tracked flow',
};

const TYPE_NAMES: Record<number, string> = {
  [T.WeirEventType.EVENT_DROP]: 'drop',
  [T.WeirEventType.EVENT_POLICY_VERDICT]: 'policy-verdict',
  [T.WeirEventType.EVENT_TRACE]: 'trace',
};
const DIR_NAMES: Record<number, string> = { [T.WeirDir.DIR_EGRESS]: 'egress', [T.WeirDir.DIR_INGRESS]: 'ingress', [T.WeirDir.DIR_UPLINK]: 'uplink' };

export interface MonitorEvent {
  /** Wall-clock ISO time of the event (from its bpf_ktime_get_ns stamp). */
  time: string;
  type: string;
  reason: string;
  reasonCode: number;
  dir: string;
  proto: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  endpointId: number;
  /** The local pod of endpointId ("namespace/name", else its address), or null. */
  endpoint: string | null;
  identity: number;
  peer: string;
  match: string | null;
  policyId: number;
  ifindex: number;
  len: number;
}

let eventSide: Side<T.Event> | undefined;
/** The contract's struct event codec (layout checked against the contract BTF). */
export function eventCodec(): Side<T.Event> {
  return (eventSide ??= structSide<T.Event>('struct event', T.EventLayout));
}

export interface EventContext {
  snapshot?: PolicySnapshotView;
  /** endpoint_id -> pod address (weir_ep4). */
  endpoints: Map<number, number>;
  /** now in ms since the epoch and CLOCK_MONOTONIC ns, read together. */
  clock: { wallMs: number; monoNs: bigint };
}

/** One ring-buffer record as a MonitorEvent; a record shorter than struct event is an error naming its size. */
export function decodeEvent(data: Buffer, ctx: EventContext): MonitorEvent {
  const codec = eventCodec();
  if (data.length < codec.size) throw new CliError(`weir_events: record of ${data.length} bytes, struct event is ${codec.size}`);
  const e = codec.decode(data.subarray(0, codec.size));
  const wall = ctx.clock.wallMs - Number(ctx.clock.monoNs - e.time) / 1e6;
  const name = ctx.snapshot?.endpoints.get(e.endpoint_id)?.pod;
  const addr = ctx.endpoints.get(e.endpoint_id);
  const type = TYPE_NAMES[e.type] ?? `type ${e.type}`;
  return {
    time: new Date(wall).toISOString(),
    type,
    reason: REASON_WORDS[e.reason] ?? String(enumName(e.reason, T.WeirReason)),
    reasonCode: e.reason,
    dir: DIR_NAMES[e.dir] ?? `dir ${e.dir}`,
    proto: protoName(e.proto),
    src: ip4(e.saddr),
    dst: ip4(e.daddr),
    sport: e.sport,
    dport: e.dport,
    endpointId: e.endpoint_id,
    endpoint: e.endpoint_id === 0 ? null : name ?? (addr !== undefined ? ip4(addr) : null),
    identity: e.identity,
    peer: identityMeaning(e.identity, ctx.snapshot),
    match: e.type === T.WeirEventType.EVENT_POLICY_VERDICT || e.match !== 0 ? MATCH_WORDS[e.match] ?? `match ${e.match}` : null,
    policyId: e.policy_id,
    ifindex: e.ifindex,
    len: e.len,
  };
}

/** One line: time, type, reason, dir, 5-tuple, endpoint, peer, match, policy id. */
export function formatEvent(e: MonitorEvent): string {
  const t = e.time.slice(11, 23);
  const ports = e.proto === 'tcp' || e.proto === 'udp' || e.proto === 'sctp';
  const tuple = ports ? `${e.src}:${e.sport} -> ${e.dst}:${e.dport} ${e.proto}` : `${e.src} -> ${e.dst} ${e.proto}`;
  const parts = [t, e.type.toUpperCase().padEnd(14), e.reason, e.dir, tuple];
  if (e.endpointId) parts.push(`endpoint ${e.endpointId}${e.endpoint ? ` (${e.endpoint})` : ''}`);
  if (e.type !== 'drop' || e.identity) parts.push(`peer ${e.identity} (${e.peer})`);
  if (e.match) parts.push(`match: ${e.match}`);
  if (e.policyId) parts.push(`policy ${e.policyId}`);
  return parts.join('  ');
}

/** Events the per-CPU rate limit dropped, summed over CPUs (weir_event_limit[0].suppressed). */
export function suppressedTotal(limit: BpfMap): bigint {
  const k = Buffer.alloc(4);
  const v = limit.lookup(k);
  if (!v) return 0n;
  const stride = Math.ceil(T.EventLimitLayout.size / 8) * 8;
  let n = 0n;
  const cpus = Math.min(possibleCpus(), Math.floor(v.length / stride));
  for (let i = 0; i < cpus; i++) n += v.readBigUInt64LE(i * stride + T.EventLimitLayout.fields.suppressed.offset);
  return n;
}

interface MonitorOpts {
  type: string;
  pod?: string;
  count?: string;
  duration?: string;
  backlog?: boolean;
}

const TYPE_FILTER: Record<string, number | undefined> = {
  drop: T.WeirEventType.EVENT_DROP,
  'policy-verdict': T.WeirEventType.EVENT_POLICY_VERDICT,
  trace: T.WeirEventType.EVENT_TRACE,
  all: undefined,
};

const SUPPRESSED_EVERY_MS = 5000;

async function monitor(g: GlobalOptions, o: MonitorOpts): Promise<void> {
  if (!(o.type in TYPE_FILTER)) throw new CliError(`--type '${o.type}' is not one of drop, policy-verdict, trace, all`, EXIT_USAGE);
  const wantType = TYPE_FILTER[o.type];
  const count = o.count === undefined ? undefined : Number(o.count);
  if (count !== undefined && !(Number.isInteger(count) && count > 0)) throw new CliError(`--count '${o.count}' is not a positive whole number`, EXIT_USAGE);
  const duration = o.duration === undefined ? undefined : Number(o.duration);
  if (duration !== undefined && !(duration > 0)) throw new CliError(`--duration '${o.duration}' is not a positive number of seconds`, EXIT_USAGE);
  const podArg = o.pod === undefined ? undefined : parsePodArg(o.pod, '--pod');

  const root = requirePinRoot(g);
  const open = (name: string) => {
    try {
      return BpfMap.fromPin(join(root, name));
    } catch (e) {
      throw new CliError(`${join(root, name)}: ${(e as Error).message} — the datapath was never fully loaded here`);
    }
  };
  const events = open(MapNames.events);
  const limit = open(MapNames.eventLimit);
  const ep4 = open(MapNames.ep4);
  const { snapshot } = loadPolicySnapshot(g.stateDir);

  // endpoint_id -> address, refreshed when an unknown endpoint shows up (at most once a second).
  const endpoints = new Map<number, number>();
  let refreshed = 0;
  const refresh = () => {
    refreshed = Date.now();
    endpoints.clear();
    const kd = structSide<T.Endpoint4Key>('struct endpoint4_key', T.Endpoint4KeyLayout);
    const vd = structSide<T.EndpointInfo>('struct endpoint_info', T.EndpointInfoLayout);
    for (const [k, v] of ep4.entries()) endpoints.set(vd.decode(v).endpoint_id, kd.decode(k).addr);
  };
  refresh();

  let podAddr: number | undefined = podArg?.addr;
  if (podArg?.name !== undefined) {
    const hit = snapshot ? [...snapshot.endpoints.values()].find((e) => e.pod === podArg.name) : undefined;
    if (!hit) {
      events.close();
      limit.close();
      ep4.close();
      throw new CliError(`--pod ${podArg.name}: not a local endpoint in the policy snapshot under ${g.stateDir}; give its IP address`);
    }
    podAddr = parseIp4(hit.ip);
  }
  const podEndpoint = podAddr === undefined ? undefined : [...endpoints].find(([, a]) => a === podAddr)?.[0];

  const json = g.output === 'json';
  const out = (line: string) => process.stdout.write(line + '\n');
  let shown = 0;
  let skipped = 0;
  let skipping = !o.backlog;
  const suppressedAtStart = suppressedTotal(limit);
  let suppressedSeen = suppressedAtStart;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => (finish = resolve));

  const onRecord = (data: Buffer) => {
    if (skipping) {
      skipped++;
      return;
    }
    if (count !== undefined && shown >= count) return; // the rest of a batch after the last one wanted
    const size = eventCodec().size;
    if (data.length < size) {
      process.stderr.write(`weir monitor: skipped a weir_events record of ${data.length} bytes (struct event is ${size})\n`);
      return;
    }
    const raw = eventCodec().decode(data.subarray(0, size));
    if (wantType !== undefined && raw.type !== wantType) return;
    if (podAddr !== undefined && raw.saddr !== podAddr && raw.daddr !== podAddr && !(podEndpoint !== undefined && raw.endpoint_id === podEndpoint)) return;
    if (raw.endpoint_id && !endpoints.has(raw.endpoint_id) && Date.now() - refreshed > 1000) refresh();
    const e = decodeEvent(data, { snapshot, endpoints, clock: { wallMs: Date.now(), monoNs: monotonicNs() } });
    out(json ? JSON.stringify(e) : formatEvent(e));
    shown++;
    if (count !== undefined && shown >= count) finish();
  };
  const ring = new RingBuffer(events, onRecord, { onError: (err) => {
    process.stderr.write(`weir monitor: ${(err as Error).message}\n`);
    finish();
  } });
  events.close();
  if (skipping) {
    // The backlog: what the ring holds from before we started.
    // Bounded: a producer as fast as we are must not keep us here.
    for (let i = 0; i < 16 && ring.consume() > 0; i++) {
      /* drain */
    }
    skipping = false;
  }
  // To stderr, so stdout holds only events (and the closing summary).
  process.stderr.write(`listening on ${join(root, MapNames.events)} (${o.type} events${o.pod ? `, pod ${o.pod}` : ''}${o.backlog ? ', with the backlog' : `, ${skipped} old events skipped`}); Ctrl-C to stop\n`);
  ring.start();

  const tick = setInterval(() => {
    const now = suppressedTotal(limit);
    if (now > suppressedSeen) {
      const n = now - suppressedSeen;
      out(json ? JSON.stringify({ type: 'suppressed', events: Number(n), seconds: SUPPRESSED_EVERY_MS / 1000 }) : `! ${n} events suppressed by the rate limit in the last ${SUPPRESSED_EVERY_MS / 1000}s`);
    }
    suppressedSeen = now;
  }, SUPPRESSED_EVERY_MS);
  const timer = duration !== undefined ? setTimeout(finish, duration * 1000) : undefined;
  const onSignal = () => finish();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // `weir monitor | head`: the reader went away; stop quietly.
  let closedPipe = false;
  const onPipe = () => {
    closedPipe = true;
    finish();
  };
  process.stdout.once('error', onPipe);
  try {
    await done;
  } finally {
    ring.stop();
    ring.close();
    clearInterval(tick);
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.off('error', onPipe);
    const suppressed = suppressedTotal(limit) - suppressedAtStart;
    limit.close();
    ep4.close();
    if (!closedPipe) out(json ? JSON.stringify({ type: 'summary', shown, suppressed: Number(suppressed), skippedBacklog: o.backlog ? 0 : skipped }) : `${shown} events shown; ${suppressed} suppressed by the rate limit while monitoring`);
  }
}

export function registerMonitor(program: Command): void {
  program
    .command('monitor')
    .description('live drop and policy-verdict events from the weir_events ring buffer (one reader per ring: a second monitor steals events)')
    .option('--type <type>', 'drop, policy-verdict, trace or all', 'all')
    .option('--pod <pod>', 'only events to/from this pod: NAMESPACE/NAME, NAME or IP')
    .option('--count <n>', 'stop after N events')
    .option('--duration <seconds>', 'stop after this many seconds')
    .option('--backlog', 'also print the events already waiting in the ring (default: only new ones)')
    .action((o: MonitorOpts, cmd: Command) => monitor(globals(cmd), o));
}
