// A small Prometheus text-format registry: counters, gauges and histograms
// with labels. The agent's /metrics serves it; nothing else needs more.

type Labels = Record<string, string>;

const key = (l: Labels) =>
  Object.keys(l)
    .sort()
    .map((k) => `${k}="${String(l[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name ${name}`);
  }
  abstract samples(): string[];
  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()].join('\n');
  }
}

export class Counter extends Metric {
  private values = new Map<string, number>();
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    if (by < 0) throw new Error(`${this.name}: a counter only goes up`);
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(key(labels)) ?? 0;
  }
  samples(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${v}`);
  }
}

export class Gauge extends Metric {
  private values = new Map<string, number>();
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
  }
  set(labels: Labels, v: number): void {
    this.values.set(key(labels), v);
  }
  /** Replaces every labelled value at once (e.g. per-map fill after a scan). */
  reset(entries: Array<[Labels, number]>): void {
    this.values = new Map(entries.map(([l, v]) => [key(l), v]));
  }
  get(labels: Labels = {}): number | undefined {
    return this.values.get(key(labels));
  }
  samples(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${v}`);
  }
}

export class Histogram extends Metric {
  private series = new Map<string, { buckets: number[]; sum: number; count: number }>();
  constructor(
    name: string,
    help: string,
    readonly bounds: number[] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
  ) {
    super(name, help, 'histogram');
  }
  observe(labels: Labels, v: number): void {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { buckets: this.bounds.map(() => 0), sum: 0, count: 0 }));
    this.bounds.forEach((b, i) => {
      if (v <= b) s!.buckets[i]++;
    });
    s.sum += v;
    s.count++;
  }
  count(labels: Labels = {}): number {
    return this.series.get(key(labels))?.count ?? 0;
  }
  samples(): string[] {
    const out: string[] = [];
    for (const [k, s] of this.series) {
      const join = (extra: string) => `{${[k, extra].filter(Boolean).join(',')}}`;
      this.bounds.forEach((b, i) => out.push(`${this.name}_bucket${join(`le="${b}"`)} ${s.buckets[i]}`));
      out.push(`${this.name}_bucket${join('le="+Inf"')} ${s.count}`);
      out.push(`${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}`);
      out.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private metrics: Metric[] = [];
  private collectors: Array<() => void> = [];
  add<M extends Metric>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }
  /** Runs before each scrape: refreshes gauges read from the kernel. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }
  render(): string {
    for (const c of this.collectors) c();
    return this.metrics.map((m) => m.render()).join('\n') + '\n';
  }
}

/** The agent's metrics, by name, so tests and the CLI agree on them. */
export function agentMetrics(reg = new Registry()) {
  return {
    registry: reg,
    syncDuration: reg.add(new Histogram('weir_sync_duration_seconds', 'Time to reconcile desired state into the BPF maps, by subsystem.')),
    syncErrors: reg.add(new Counter('weir_sync_errors_total', 'Reconcile passes that failed, by subsystem.')),
    watchEvents: reg.add(new Counter('weir_watch_events_total', 'Kubernetes watch events received, by resource and type.')),
    mapEntries: reg.add(new Gauge('weir_map_entries', 'Entries in each pinned BPF map.')),
    mapFill: reg.add(new Gauge('weir_map_fill_ratio', 'Entries / max_entries of each pinned BPF map.')),
    drops: reg.add(new Gauge('weir_drops_total', 'Packets dropped by the datapath, by reason and direction (from weir_metrics).')),
    forwarded: reg.add(new Gauge('weir_forwarded_packets_total', 'Packets forwarded by the datapath, by direction (from weir_metrics).')),
    ctEntries: reg.add(new Gauge('weir_conntrack_entries', 'Entries in the conntrack table.')),
    cniLatency: reg.add(new Histogram('weir_cni_request_duration_seconds', 'CNI requests served over the agent socket, by command and result.')),
    objectProblems: reg.add(new Gauge('weir_object_problems', 'Kubernetes objects skipped because they are invalid, by kind.')),
    ready: reg.add(new Gauge('weir_agent_ready', '1 once the first full sync has been programmed.')),
    policyIdentities: reg.add(new Gauge('weir_policy_identities', 'Policy identities in the last compile, by kind (pod, host, remote-node, world).')),
    policyIds: reg.add(new Gauge('weir_policy_ids', 'Policy ids (distinct compiled rule sets) in weir_policy4.')),
    policyEntries: reg.add(new Gauge('weir_policy_entries', 'Entries in weir_policy4.')),
    policyGen: reg.add(new Gauge('weir_policy_generation', 'weir_policy_gen[0].gen: bumped after every policy map change.')),
    policyProblems: reg.add(new Gauge('weir_policy_problems', 'Problems in the last policy compile (objects or fields skipped), by object kind.')),
    policySyncDuration: reg.add(new Histogram('weir_policy_sync_duration_seconds', 'Policy compile and map reconcile time, by phase (compile, reconcile).')),
  };
}
export type AgentMetrics = ReturnType<typeof agentMetrics>;
