// The agent's record of every endpoint it made, persisted atomically: DEL
// without a prevResult, CHECK, GC and a restarted agent all start from it.
import { readJsonFile, writeJsonAtomic } from '../ipam/state-file.js';

export interface EndpointRecord {
  containerId: string;
  ifname: string;
  /** The pod's netns path as the runtime gave it. */
  netns: string;
  podNamespace?: string;
  podName?: string;
  network?: string;
  ip: string;
  gateway: string;
  endpointId: number;
  hostIfname: string;
  hostIfindex: number;
  hostMac: string;
  podMac: string;
  mtu: number;
  createdAt: string;
}

/** Ids below this are left for the node's own entries (the gateway, EP_F_HOST). */
export const FIRST_ENDPOINT_ID = 256;

interface StateV1 {
  version: 1;
  nextId: number;
  endpoints: EndpointRecord[];
}

export const recordKey = (k: { containerId: string; ifname: string }) => `${k.containerId}/${k.ifname}`;

export class EndpointStore {
  readonly #byKey = new Map<string, EndpointRecord>();
  #nextId = FIRST_ENDPOINT_ID;

  private constructor(readonly path: string) {}

  static open(path: string): EndpointStore {
    const s = new EndpointStore(path);
    const raw = readJsonFile(path) as StateV1 | undefined;
    if (raw === undefined) return s;
    if (!raw || raw.version !== 1 || !Array.isArray(raw.endpoints) || !Number.isInteger(raw.nextId)) {
      throw new Error(`endpoint state ${path}: expected {"version": 1, "nextId", "endpoints": [...]}`);
    }
    for (const [i, r] of raw.endpoints.entries()) {
      if (!r || typeof r.containerId !== 'string' || typeof r.ifname !== 'string' || typeof r.ip !== 'string' || typeof r.hostIfname !== 'string') {
        throw new Error(`endpoint state ${path}: endpoints[${i}] lacks containerId/ifname/ip/hostIfname`);
      }
      s.#byKey.set(recordKey(r), r);
    }
    s.#nextId = Math.max(raw.nextId, FIRST_ENDPOINT_ID);
    return s;
  }

  #persist(): void {
    writeJsonAtomic(this.path, { version: 1, nextId: this.#nextId, endpoints: [...this.#byKey.values()] } satisfies StateV1);
  }

  /** A fresh endpoint id (persisted with the next write; a crash may reuse an id no record holds, which is harmless). */
  takeId(): number {
    const id = this.#nextId;
    this.#nextId = id >= 0xffffffff ? FIRST_ENDPOINT_ID : id + 1;
    return id;
  }

  get(k: { containerId: string; ifname: string }): EndpointRecord | undefined {
    return this.#byKey.get(recordKey(k));
  }

  list(): EndpointRecord[] {
    return [...this.#byKey.values()];
  }

  put(r: EndpointRecord): void {
    const k = recordKey(r);
    const prev = this.#byKey.get(k);
    this.#byKey.set(k, r);
    try {
      this.#persist();
    } catch (e) {
      if (prev) this.#byKey.set(k, prev);
      else this.#byKey.delete(k);
      throw e;
    }
  }

  delete(k: { containerId: string; ifname: string }): boolean {
    const key = recordKey(k);
    const prev = this.#byKey.get(key);
    if (!prev) return false;
    this.#byKey.delete(key);
    try {
      this.#persist();
    } catch (e) {
      this.#byKey.set(key, prev);
      throw e;
    }
    return true;
  }
}
