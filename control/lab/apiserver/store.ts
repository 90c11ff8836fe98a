// The object store: objects by resource and key, one global resourceVersion counter, a bounded
// change history for resumable watches, and an optional JSON snapshot file for lab restarts.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { KObject } from './resources.js';
import type { Change, Watcher } from './watch.js';

export function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

interface Snapshot {
  resourceVersion: number;
  objects: Record<string, KObject[]>;
}

export class Store {
  /** The resourceVersion of the last commit. */
  rv: number;
  /** Changes at or below this resourceVersion are no longer in history: watching from before it is 410 Gone. */
  compactedRv: number;
  private objects = new Map<string, Map<string, KObject>>();
  private history: Change[] = [];
  readonly watchers = new Set<Watcher>();
  private snapshotTimer?: NodeJS.Timeout;

  constructor(
    private readonly historySize: number,
    private readonly snapshotPath?: string,
  ) {
    // Start above any version a previous run without a snapshot could have handed out, so a client
    // resuming from one gets 410 and relists instead of silently missing changes.
    this.rv = Date.now();
    if (snapshotPath && existsSync(snapshotPath)) {
      const snap = JSON.parse(readFileSync(snapshotPath, 'utf8')) as Snapshot;
      for (const [res, list] of Object.entries(snap.objects)) {
        const m = this.table(res);
        for (const o of list) m.set(keyOf(o.metadata.namespace, o.metadata.name!), o);
      }
      this.rv = Math.max(this.rv, snap.resourceVersion);
    }
    this.compactedRv = this.rv;
  }

  table(resource: string): Map<string, KObject> {
    let m = this.objects.get(resource);
    if (!m) this.objects.set(resource, (m = new Map()));
    return m;
  }

  get(resource: string, key: string): KObject | undefined {
    return this.table(resource).get(key);
  }

  all(resource: string): KObject[] {
    return [...this.table(resource).values()];
  }

  /** Commits one change: bumps the version, stamps it on the object, records and fans it out. */
  commit(resource: string, type: Change['type'], obj: KObject, prev?: KObject): KObject {
    this.rv += 1;
    obj.metadata.resourceVersion = String(this.rv);
    const key = keyOf(obj.metadata.namespace, obj.metadata.name!);
    if (type === 'DELETED') this.table(resource).delete(key);
    else this.table(resource).set(key, obj);
    const change: Change = { rv: this.rv, resource, type, object: obj, prev };
    this.history.push(change);
    while (this.history.length > this.historySize) this.compactedRv = this.history.shift()!.rv;
    for (const w of this.watchers) w.offer(change);
    this.scheduleSnapshot();
    return obj;
  }

  /** Changes after `rv`, or undefined when history no longer reaches back that far. */
  since(rv: number): Change[] | undefined {
    if (rv < this.compactedRv || rv > this.rv) return undefined;
    return this.history.filter((c) => c.rv > rv);
  }

  private scheduleSnapshot(): void {
    if (!this.snapshotPath || this.snapshotTimer) return;
    this.snapshotTimer = setTimeout(() => this.flush(), 20);
    this.snapshotTimer.unref();
  }

  /** Writes the snapshot now (atomically: temp file + rename). */
  flush(): void {
    if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
    this.snapshotTimer = undefined;
    if (!this.snapshotPath) return;
    const snap: Snapshot = { resourceVersion: this.rv, objects: {} };
    for (const [res, m] of this.objects) snap.objects[res] = [...m.values()];
    const tmp = `${this.snapshotPath}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(snap));
    renameSync(tmp, this.snapshotPath);
  }
}
