// Watch fan-out: one Watcher per open watch, fed from the store's commit log in resourceVersion order.
import type { Status } from './errors.js';
import type { KObject } from './resources.js';
import { matchFields, matchLabels, type FieldRequirement, type Requirement } from './selectors.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  type: WatchEventType;
  object: KObject | Status;
}

/** One committed change, as kept in the bounded history for watches that resume from a resourceVersion. */
export interface Change {
  rv: number;
  resource: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KObject;
  /** The object before a MODIFIED change, to turn selector transitions into ADDED/DELETED. */
  prev?: KObject;
}

export interface WatchFilter {
  resource: string;
  namespace?: string;
  labels: Requirement[];
  fields: FieldRequirement[];
}

export class Watcher {
  private queue: WatchEvent[] = [];
  private scheduled = false;
  stopped = false;
  private closing = false;
  bookmarkTimer?: NodeJS.Timeout;

  constructor(
    readonly filter: WatchFilter,
    private readonly deliver: (e: WatchEvent) => void,
    private readonly onStop: (w: Watcher) => void,
  ) {}

  matches(obj: KObject | undefined): boolean {
    if (!obj) return false;
    if (this.filter.namespace && obj.metadata.namespace !== this.filter.namespace) return false;
    return matchLabels(this.filter.labels, obj.metadata.labels) && matchFields(this.filter.fields, obj);
  }

  /** Translates a change into what this watcher sees, as the real server does for selector transitions. */
  offer(c: Change): void {
    if (c.resource !== this.filter.resource) return;
    const now = this.matches(c.object);
    if (c.type === 'MODIFIED') {
      const before = this.matches(c.prev);
      if (now && before) this.push({ type: 'MODIFIED', object: c.object });
      else if (now) this.push({ type: 'ADDED', object: c.object });
      else if (before) this.push({ type: 'DELETED', object: c.object });
    } else if (now) this.push({ type: c.type, object: c.object });
  }

  /** Queues an event; delivery is on a microtask so a handler may call the API without re-entering a commit. */
  push(e: WatchEvent): void {
    if (this.stopped) return;
    this.queue.push(e);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const batch = this.queue;
      this.queue = [];
      for (const ev of batch) {
        if (this.stopped) return;
        this.deliver(ev);
      }
      if (this.closing) this.stop();
    });
  }

  /** Sends a last event (a 410 ERROR) and then ends the watch. */
  fail(e: WatchEvent): void {
    this.push(e);
    this.closing = true;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.bookmarkTimer) clearInterval(this.bookmarkTimer);
    this.onStop(this);
  }
}
