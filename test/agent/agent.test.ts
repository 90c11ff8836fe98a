// The agent's core loop with a fake cluster source: readiness only after the
// first full sync, bursts coalesced, failures retried without clearing state,
// and the HTTP endpoints Kubernetes probes.
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, type Subsystem } from '../../control/agent/agent.js';
import { ConfigError, DEFAULTS, resolveConfig } from '../../control/agent/config.js';
import { agentMetrics, Counter, Histogram, Registry } from '../../control/agent/metrics.js';
import type { ClusterState } from '../../control/agent/watch.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const empty: ClusterState = { nodes: [], namespaces: [], pods: [], services: [], endpointSlices: [], networkPolicies: [] };

class FakeSource extends EventEmitter {
  state = empty;
  started = false;
  async start() {
    this.started = true;
  }
  async stop() {}
  snapshot() {
    return this.state;
  }
}

const log = pino({ level: 'silent' });
let agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents) await a.stop();
  agents = [];
});

function make(subsystems: Subsystem[], http = false) {
  const source = new FakeSource();
  const metrics = agentMetrics();
  const agent = new Agent({ log, metrics, source, subsystems, debounceMs: 5, http: http ? { host: '127.0.0.1', port: 0 } : undefined });
  agents.push(agent);
  return { agent, source, metrics };
}

const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('agent core loop', () => {
  it('is ready only after the first full sync and syncs each subsystem with the same snapshot', async () => {
    const seen: ClusterState[] = [];
    const { agent, source } = make([{ name: 'a', sync: (s) => void seen.push(s) }, { name: 'b', sync: (s) => void seen.push(s) }]);
    expect(agent.ready()).toBe(false);
    expect(agent.readyReason()).toMatch(/waiting for the first full sync/);
    await agent.start();
    expect(source.started).toBe(true);
    expect(agent.ready()).toBe(true);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBe(seen[1]);
  });

  it('coalesces a burst of watch events into few syncs', async () => {
    let n = 0;
    const { agent, source } = make([{ name: 'count', sync: () => void n++ }]);
    await agent.start();
    for (let i = 0; i < 50; i++) source.emit('change', 'pods');
    await until(() => n >= 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(n).toBeLessThan(5);
  });

  it('a failing subsystem keeps the agent unready, is counted, and is retried', async () => {
    let fail = true;
    let calls = 0;
    const { agent, metrics } = make([
      {
        name: 'flaky',
        sync: () => {
          calls++;
          if (fail) throw new Error('map full');
        },
      },
    ]);
    await agent.start();
    expect(agent.ready()).toBe(false);
    expect(agent.readyReason()).toMatch(/flaky: map full/);
    expect(metrics.syncErrors.get({ subsystem: 'flaky' })).toBe(1);
    fail = false;
    await until(() => agent.ready());
    expect(calls).toBeGreaterThanOrEqual(2);
  });

  it('serves /healthz, /readyz and /metrics', async () => {
    const { agent } = make([{ name: 'svc', sync: () => {} }], true);
    await agent.start();
    const port = ((agent as unknown as { server: { address(): { port: number } } }).server.address()).port;
    const get = async (p: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${p}`);
      return { status: r.status, body: await r.text() };
    };
    expect(await get('/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await get('/readyz')).status).toBe(200);
    const m = await get('/metrics');
    expect(m.body).toMatch(/^# TYPE weir_sync_duration_seconds histogram$/m);
    expect(m.body).toMatch(/^weir_sync_duration_seconds_count\{subsystem="svc"\} 1$/m);
    expect(m.body).toMatch(/^weir_agent_ready 1$/m);
    expect((await get('/nope')).status).toBe(404);
  });
});

describe('metrics registry', () => {
  it('renders counters and histograms in the Prometheus text format', () => {
    const r = new Registry();
    const c = r.add(new Counter('x_total', 'things'));
    c.inc({ kind: 'a"b' });
    const h = r.add(new Histogram('lat_seconds', 'latency', [0.1, 1]));
    h.observe({}, 0.5);
    const text = r.render();
    expect(text).toContain('x_total{kind="a\\"b"} 1');
    expect(text).toContain('lat_seconds_bucket{le="0.1"} 0');
    expect(text).toContain('lat_seconds_bucket{le="1"} 1');
    expect(text).toContain('lat_seconds_bucket{le="+Inf"} 1');
    expect(() => r.add(new Counter('x_total', 'again'))).toThrow(/twice/);
    expect(() => c.inc({}, -1)).toThrow(/only goes up/);
  });
});

describe('agent config', () => {
  it('layers defaults < file < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-cfg-'));
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, 'lbAlgorithm: maglev\nmetricsPort: 9000\nnodeName: from-file\n');
    const cfg = resolveConfig({ file, env: { WEIR_METRICS_PORT: '9100' }, flags: { 'node-name': 'n1' } });
    expect(cfg.lbAlgorithm).toBe('maglev');
    expect(cfg.metricsPort).toBe(9100);
    expect(cfg.nodeName).toBe('n1');
    expect(cfg.bpffsRoot).toBe(DEFAULTS.bpffsRoot);
  });

  it('names the setting and its source when a value is bad', () => {
    expect(() => resolveConfig({ flags: { 'lb-algorithm': 'roundrobin' } })).toThrow(/flag: lb-algorithm="roundrobin": expected random or maglev/);
    expect(() => resolveConfig({ env: { WEIR_MAGLEV_TABLE_SIZE: '16384' } })).toThrow(/WEIR_MAGLEV_TABLE_SIZE.*must be a prime/);
    expect(() => resolveConfig({ flags: { 'cluster-cidr': '10.244.0.1/16' } })).toThrow(ConfigError);
    expect(() => resolveConfig({ flags: { 'metrics-port': '70000' } })).toThrow(/1\.\.65535/);
    expect(() => resolveConfig({ flags: { bogus: '1' } })).toThrow(/unknown flag --bogus/);
    const dir = mkdtempSync(join(tmpdir(), 'weir-cfg-'));
    writeFileSync(join(dir, 'a.yaml'), 'lbAlgoritm: maglev\n');
    expect(() => resolveConfig({ file: join(dir, 'a.yaml') })).toThrow(/unknown setting 'lbAlgoritm'/);
  });
});
