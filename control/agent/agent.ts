// The agent's core loop: watch the cluster, and after every burst of changes
// run each subsystem's sync (services, routes, endpoints, ...) over one
// consistent snapshot. Syncs never overlap; a failed sync is logged, counted
// and retried, and never clears what is already programmed.
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { serveHttp } from './http.js';
import type { AgentMetrics } from './metrics.js';
import type { ClusterState } from './watch.js';

export interface Subsystem {
  name: string;
  /** Called once before the first sync (open maps, serve sockets). */
  start?(): Promise<void>;
  /** Programs the datapath from the snapshot; must be idempotent. */
  sync(state: ClusterState): Promise<void> | void;
  /** Refreshes gauges before a /metrics scrape. */
  collect?(): void;
  /** Leaves the datapath programmed: close fds and sockets only. */
  stop?(): Promise<void>;
}

export interface StateSource {
  start(): Promise<void>;
  stop(): Promise<void>;
  snapshot(): ClusterState;
  on(event: 'change', fn: (res: string) => void): unknown;
}

export interface AgentOptions {
  log: Logger;
  metrics: AgentMetrics;
  source: StateSource;
  subsystems: Subsystem[];
  http?: { host: string; port: number };
  /** Debounce for bursts of watch events. */
  debounceMs?: number;
  /** A full resync even without events (repairs maps someone else changed). */
  resyncMs?: number;
}

export class Agent {
  private server?: Server;
  private timer?: NodeJS.Timeout;
  private resync?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private firstSync = false;
  private stopping = false;
  private lastError = '';
  readonly syncs: Array<{ at: number; ok: boolean }> = [];

  constructor(private o: AgentOptions) {}

  ready(): boolean {
    return this.firstSync && !this.stopping;
  }

  readyReason(): string {
    if (this.stopping) return 'shutting down';
    if (!this.firstSync) return this.lastError ? `first sync failed: ${this.lastError}` : 'waiting for the first full sync';
    return '';
  }

  async start(): Promise<void> {
    const { log, metrics } = this.o;
    metrics.registry.onCollect(() => {
      for (const s of this.o.subsystems) {
        try {
          s.collect?.();
        } catch (e) {
          log.warn({ subsystem: s.name, err: (e as Error).message }, 'collecting metrics failed');
        }
      }
      metrics.ready.set({}, this.ready() ? 1 : 0);
    });
    if (this.o.http) {
      this.server = await serveHttp({ ...this.o.http, registry: metrics.registry, health: this });
      log.info({ port: this.o.http.port }, 'serving /healthz, /readyz, /metrics');
    }
    for (const s of this.o.subsystems) {
      await s.start?.();
      log.info({ subsystem: s.name }, 'subsystem started');
    }
    this.o.source.on('change', () => this.schedule());
    await this.o.source.start();
    log.info('initial list complete');
    await this.syncNow();
    if (this.o.resyncMs) this.resync = setInterval(() => this.schedule(), this.o.resyncMs);
  }

  /** Coalesces bursts of events into one sync after debounceMs. */
  schedule(): void {
    if (this.stopping) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.syncNow(), this.o.debounceMs ?? 20);
  }

  /** Runs one sync (or queues one after the sync in flight). */
  async syncNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.runSyncs().finally(() => {
      this.running = undefined;
    });
    await this.running;
    if (this.again && !this.stopping) {
      this.again = false;
      await this.syncNow();
    }
  }

  private async runSyncs(): Promise<void> {
    const { log, metrics } = this.o;
    const state = this.o.source.snapshot();
    let ok = true;
    for (const s of this.o.subsystems) {
      const t0 = process.hrtime.bigint();
      try {
        await s.sync(state);
        metrics.syncDuration.observe({ subsystem: s.name }, Number(process.hrtime.bigint() - t0) / 1e9);
      } catch (e) {
        ok = false;
        this.lastError = `${s.name}: ${(e as Error).message}`;
        metrics.syncErrors.inc({ subsystem: s.name });
        log.error({ subsystem: s.name, err: (e as Error).message }, 'sync failed; keeping what is programmed and retrying');
      }
    }
    this.syncs.push({ at: Date.now(), ok });
    if (this.syncs.length > 100) this.syncs.shift();
    if (ok && !this.firstSync) {
      this.firstSync = true;
      log.info('first full sync programmed; ready');
    }
    if (!ok && !this.stopping) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.syncNow(), 1000);
    }
  }

  /** Stops watching and serving; the datapath stays pinned and attached. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    clearInterval(this.resync);
    await this.running?.catch(() => undefined);
    await this.o.source.stop();
    for (const s of [...this.o.subsystems].reverse()) {
      await s.stop?.().catch((e: Error) => this.o.log.warn({ subsystem: s.name, err: e.message }, 'stop failed'));
    }
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.o.log.info('stopped; the datapath stays programmed');
  }
}
