// Pod addresses from the node's pod CIDR (Node.spec.podCIDR). One owner (the
// agent), keyed like the CNI spec keys attachments: (container id, ifname).
// Every change is written to the state file (atomically) before it is used,
// so an agent that restarts, even mid-ADD, never hands out a live address
// twice. Addresses are handed out round-robin after the last one given, so a
// freed address is not reused at once while stale conntrack or peers may
// still point at it.
import { CniError, ErrorCode } from '../cni/errors.js';
import { cidrContains, formatCidr, formatIpv4, parseCidr, parseIpv4, type Cidr } from '../datapath/routes.js';
import { readJsonFile, writeJsonAtomic } from './state-file.js';

export interface AttachmentKey {
  containerId: string;
  ifname: string;
}

export interface IpamOwner extends AttachmentKey {
  podNamespace?: string;
  podName?: string;
}

export interface Allocation extends IpamOwner {
  ip: string;
  /** ISO time of the allocation. */
  allocatedAt: string;
}

export interface IpamOptions {
  /** This node's pod CIDR, e.g. 10.244.1.0/24. */
  cidr: string;
  /** Where allocations are persisted, e.g. /var/lib/weir/ipam.json. */
  stateFile: string;
  /** The pods' gateway address; default: the first address after the network address. Never handed out. */
  gateway?: string;
  /** More addresses never handed out. */
  reserved?: string[];
}

interface StateV1 {
  version: 1;
  cidr: string;
  /** The last address handed out (round-robin cursor). */
  last?: string;
  allocations: Record<string, Omit<Allocation, 'ip'>>;
}

const keyOf = (k: AttachmentKey) => `${k.containerId}/${k.ifname}`;

export class Ipam {
  readonly cidr: string;
  readonly gateway: string;
  readonly stateFile: string;
  readonly #net: Cidr;
  readonly #reserved = new Set<number>();
  readonly #byIp = new Map<number, Allocation>();
  readonly #byKey = new Map<string, number>();
  #last: number;

  private constructor(o: IpamOptions, net: Cidr, gateway: number) {
    this.#net = net;
    this.cidr = formatCidr(net);
    this.gateway = formatIpv4(gateway);
    this.stateFile = o.stateFile;
    const size = 2 ** (32 - net.prefixlen);
    if (size >= 4) {
      this.#reserved.add(net.addr); // network address
      this.#reserved.add((net.addr + size - 1) >>> 0); // broadcast
    }
    this.#reserved.add(gateway);
    for (const [i, r] of (o.reserved ?? []).entries()) {
      const ip = parseIpv4(r, `ipam: reserved[${i}]`);
      if (cidrContains(net, ip)) this.#reserved.add(ip);
    }
    this.#last = gateway;
  }

  /** Opens (or starts) the state file for `cidr`. A file from another CIDR that still holds allocations is an error. */
  static open(o: IpamOptions): Ipam {
    const net = parseCidr(o.cidr, 'ipam: pod CIDR');
    if (net.prefixlen > 30 && o.gateway === undefined) throw new TypeError(`ipam: pod CIDR ${o.cidr} is too small for a gateway and a pod`);
    const gateway = o.gateway !== undefined ? parseIpv4(o.gateway, 'ipam: gateway') : (net.addr + 1) >>> 0;
    if (!cidrContains(net, gateway)) throw new TypeError(`ipam: gateway ${o.gateway} is outside the pod CIDR ${o.cidr}`);
    const ipam = new Ipam(o, net, gateway);
    ipam.#load();
    return ipam;
  }

  #load(): void {
    const raw = readJsonFile(this.stateFile) as StateV1 | undefined;
    if (raw === undefined) return;
    const where = `ipam state ${this.stateFile}`;
    if (!raw || typeof raw !== 'object' || raw.version !== 1 || typeof raw.allocations !== 'object' || raw.allocations === null) {
      throw new Error(`${where}: expected {"version": 1, "cidr", "allocations"}; refusing to guess which addresses are in use`);
    }
    const entries = Object.entries(raw.allocations);
    if (raw.cidr !== this.cidr && entries.length > 0) {
      throw new Error(`${where}: field cidr is ${raw.cidr} with ${entries.length} live allocation(s), but this node's pod CIDR is ${this.cidr}; delete those pods (or the file, once no pod uses its addresses) before changing the CIDR`);
    }
    for (const [ipText, a] of entries) {
      const ip = parseIpv4(ipText, `${where}: allocations key`);
      if (!cidrContains(this.#net, ip)) throw new Error(`${where}: allocation ${ipText} is outside ${this.cidr}`);
      if (!a || typeof a.containerId !== 'string' || typeof a.ifname !== 'string') throw new Error(`${where}: allocations["${ipText}"] lacks containerId/ifname`);
      const alloc: Allocation = { ...a, ip: ipText };
      this.#byIp.set(ip, alloc);
      this.#byKey.set(keyOf(a), ip);
    }
    if (raw.cidr === this.cidr && typeof raw.last === 'string') {
      const last = parseIpv4(raw.last, `${where}: last`);
      if (cidrContains(this.#net, last)) this.#last = last;
    }
  }

  #persist(): void {
    const allocations: StateV1['allocations'] = {};
    for (const [ip, a] of [...this.#byIp].sort((x, y) => x[0] - y[0])) {
      const { ip: _ip, ...rest } = a;
      allocations[formatIpv4(ip)] = rest;
    }
    const state: StateV1 = { version: 1, cidr: this.cidr, last: formatIpv4(this.#last), allocations };
    try {
      writeJsonAtomic(this.stateFile, state);
    } catch (e) {
      throw new CniError(ErrorCode.IoFailure, 'cannot persist the IPAM state', `${this.stateFile}: ${(e as Error).message}`);
    }
  }

  /** Addresses that can ever be handed out. */
  get capacity(): number {
    const size = 2 ** (32 - this.#net.prefixlen);
    let reservedInside = 0;
    for (const r of this.#reserved) if (cidrContains(this.#net, r)) reservedInside++;
    return size - reservedInside;
  }

  /** Addresses free now. */
  get free(): number {
    return this.capacity - this.#byIp.size;
  }

  /**
   * The owner's address: its existing one (a retried ADD), or the next free
   * one, persisted before it is returned. Throws a CniError (code 102) when the
   * CIDR is full, code 5 when the state cannot be written (nothing changes).
   */
  allocate(owner: IpamOwner): Allocation {
    const have = this.#byKey.get(keyOf(owner));
    if (have !== undefined) return { ...this.#byIp.get(have)! };
    const size = 2 ** (32 - this.#net.prefixlen);
    const start = (this.#last - this.#net.addr + 1) % size;
    for (let i = 0; i < size; i++) {
      const ip = (this.#net.addr + ((start + i) % size)) >>> 0;
      if (this.#reserved.has(ip) || this.#byIp.has(ip)) continue;
      const alloc: Allocation = {
        ip: formatIpv4(ip),
        containerId: owner.containerId,
        ifname: owner.ifname,
        ...(owner.podNamespace ? { podNamespace: owner.podNamespace } : {}),
        ...(owner.podName ? { podName: owner.podName } : {}),
        allocatedAt: new Date().toISOString(),
      };
      const prevLast = this.#last;
      this.#byIp.set(ip, alloc);
      this.#byKey.set(keyOf(owner), ip);
      this.#last = ip;
      try {
        this.#persist();
      } catch (e) {
        this.#byIp.delete(ip);
        this.#byKey.delete(keyOf(owner));
        this.#last = prevLast;
        throw e;
      }
      return { ...alloc };
    }
    throw new CniError(ErrorCode.PoolExhausted, 'no free pod address', `every address of this node's pod CIDR ${this.cidr} is in use (${this.#byIp.size} pods, ${this.capacity} usable addresses)`);
  }

  get(key: AttachmentKey): Allocation | undefined {
    const ip = this.#byKey.get(keyOf(key));
    return ip === undefined ? undefined : { ...this.#byIp.get(ip)! };
  }

  byIp(ip: string): Allocation | undefined {
    const a = this.#byIp.get(parseIpv4(ip, 'ipam: address'));
    return a ? { ...a } : undefined;
  }

  list(): Allocation[] {
    return [...this.#byIp.values()].map((a) => ({ ...a }));
  }

  /** Frees the owner's address (persisted). Releasing what is not held is fine: undefined. */
  release(key: AttachmentKey): Allocation | undefined {
    const ip = this.#byKey.get(keyOf(key));
    if (ip === undefined) return undefined;
    const a = this.#byIp.get(ip)!;
    this.#byIp.delete(ip);
    this.#byKey.delete(keyOf(key));
    try {
      this.#persist();
    } catch (e) {
      this.#byIp.set(ip, a);
      this.#byKey.set(keyOf(key), ip);
      throw e;
    }
    return { ...a };
  }

  /** GC: frees every allocation `keep` rejects, in one write. Returns what was freed. */
  retain(keep: (a: Allocation) => boolean): Allocation[] {
    const drop = [...this.#byIp].filter(([, a]) => !keep(a));
    if (drop.length === 0) return [];
    for (const [ip, a] of drop) {
      this.#byIp.delete(ip);
      this.#byKey.delete(keyOf(a));
    }
    try {
      this.#persist();
    } catch (e) {
      for (const [ip, a] of drop) {
        this.#byIp.set(ip, a);
        this.#byKey.set(keyOf(a), ip);
      }
      throw e;
    }
    return drop.map(([, a]) => ({ ...a }));
  }
}
