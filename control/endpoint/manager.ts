// EndpointManager: the agent's side of CNI ADD/DEL/CHECK/GC/STATUS. It owns
// the pod's veth pair, addresses, routes and static neighbours, the tc
// programs on the host side (through the datapath) and the pod's weir_ep4
// entry. Every ADD step registers its undo; a failure runs them in reverse,
// so a failed ADD leaves no veth, route, map entry or address behind.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { CniError, ErrorCode, asCniError } from '../cni/errors.js';
import { validIfname } from '../cni/config.js';
import { prevResultAddress } from '../cni/spec.js';
import type { EndpointReply } from '../cni/wire.js';
import { cidrContains, formatIpv4, formatMac, parseCidr, parseIpv4, parseMac } from '../datapath/routes.js';
import { EndpointFlags, type Endpoint4Key, type EndpointInfo } from '../datapath/types.gen.js';
import type { Ipam } from '../ipam/allocator.js';
import { ifindex as ifindexOf, tc, TC_DEFAULT_HANDLE, TC_DEFAULT_PRIORITY } from '../../native/index.js';
import { ip, ipBatch, linkDelete, linkList, linkShow, type AddrJson, type RouteJson } from './ip.js';
import { OpLock } from './lock.js';
import { EndpointStore, recordKey, type EndpointRecord } from './store.js';

/** Host-side veth name: prefix + 12 hex of sha256(containerId/ifname) (15 characters with 'lxc'). */
export function hostIfnameFor(containerId: string, ifname: string, prefix = 'lxc'): string {
  return prefix + createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 15 - prefix.length);
}

/** Where a host-side veth is (programs.ts's LinkRef). */
export interface LinkRef {
  ifname?: string;
  ifindex?: number;
  netns?: string;
}

/** The part of weir_ep4 (a TypedMap) the manager uses. */
export interface Ep4Table {
  get(k: Endpoint4Key): EndpointInfo | undefined;
  set(k: Endpoint4Key, v: EndpointInfo): void;
  delete(k: Endpoint4Key): boolean;
  entries(): Iterable<[Endpoint4Key, EndpointInfo]>;
}

/** The part of programs.ts's Datapath the manager uses. */
export interface EndpointDatapath {
  attachPod(link: LinkRef): number;
  detachPod(link: LinkRef): void;
  maps: { ep4: Ep4Table };
  /** When present, CHECK verifies these programs sit on the host veth. */
  programs?: { fromPod: { info: { id: number } }; toPod: { info: { id: number } } };
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface EndpointManagerOptions {
  ipam: Ipam;
  datapath: EndpointDatapath;
  /** Endpoint records, e.g. /var/lib/weir/endpoints.json. */
  stateFile: string;
  /** Pod interface MTU (both veth ends): the uplink's minus VXLAN's 50 bytes (podMtu in datapath/node.ts). */
  mtu: number;
  /** The netns holding the host-side veths (the node's); default: the agent's own. */
  nodeNetns?: string;
  /** The pods' default gateway; default ipam.gateway. */
  gateway?: string;
  /** Host veth name prefix (default 'lxc'); GC removes prefix+hex links no endpoint owns. */
  hostPrefix?: string;
  /**
   * Extra readiness: undefined when ready, else a reason ("not synced with the
   * API server yet"); `limited` when existing pods may be affected too (STATUS code 51).
   */
  notReady?: () => string | { reason: string; limited: boolean } | undefined;
  log?: Logger;
}

export interface AddRequest {
  containerId: string;
  ifname: string;
  netns: string;
  network?: string;
  /** CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, ...). */
  args?: Record<string, string>;
}

export interface DelRequest {
  containerId: string;
  ifname: string;
  netns?: string;
}

export interface CheckRequest {
  containerId: string;
  ifname: string;
  netns: string;
  prevResult?: unknown;
}

export interface GcReport {
  endpoints: string[];
  addresses: string[];
  links: string[];
  mapEntries: string[];
}

export interface StatusReport {
  ready: boolean;
  reason?: string;
  /** Not ready, and existing pods may have limited connectivity. */
  limited?: boolean;
  endpoints: number;
  freeAddresses: number;
}

const quiet: Logger = { info() {}, warn() {} };
const HOST_LINK_RE = (prefix: string) => new RegExp(`^${prefix}[0-9a-f]{${15 - prefix.length}}$`);

export class EndpointManager {
  readonly ipam: Ipam;
  readonly gateway: string;
  readonly mtu: number;
  readonly nodeNetns: string | undefined;
  readonly #dp: EndpointDatapath;
  readonly #store: EndpointStore;
  readonly #lock = new OpLock();
  readonly #prefix: string;
  readonly #notReady: () => string | { reason: string; limited: boolean } | undefined;
  readonly #log: Logger;

  private constructor(o: EndpointManagerOptions, store: EndpointStore) {
    this.ipam = o.ipam;
    this.gateway = o.gateway ?? o.ipam.gateway;
    this.mtu = o.mtu;
    this.nodeNetns = o.nodeNetns;
    this.#dp = o.datapath;
    this.#store = store;
    this.#prefix = o.hostPrefix ?? 'lxc';
    this.#notReady = o.notReady ?? (() => undefined);
    this.#log = o.log ?? quiet;
  }

  /** Opens the endpoint records; call resync() once the datapath is loaded to re-attach and re-write entries. */
  static open(o: EndpointManagerOptions): EndpointManager {
    if (!Number.isInteger(o.mtu) || o.mtu < 576 || o.mtu > 65535) throw new TypeError(`endpoint: mtu ${o.mtu} is not in 576..65535`);
    if (o.gateway !== undefined) parseIpv4(o.gateway, 'endpoint: gateway');
    if (o.hostPrefix !== undefined && !/^[a-z]{1,6}$/.test(o.hostPrefix)) throw new TypeError(`endpoint: hostPrefix '${o.hostPrefix}' must be 1-6 lowercase letters`);
    return new EndpointManager(o, EndpointStore.open(o.stateFile));
  }

  list(): EndpointRecord[] {
    return this.#store.list();
  }

  get(key: { containerId: string; ifname: string }): EndpointRecord | undefined {
    return this.#store.get(key);
  }

  hostIfname(containerId: string, ifname: string): string {
    return hostIfnameFor(containerId, ifname, this.#prefix);
  }

  status(): StatusReport {
    const endpoints = this.#store.list().length;
    const freeAddresses = this.ipam.free;
    const extra = this.#notReady();
    const limited = typeof extra === 'object' && extra.limited;
    const reason = (typeof extra === 'object' ? extra.reason : extra) ?? (freeAddresses === 0 ? `no free address in the pod CIDR ${this.ipam.cidr}` : undefined);
    return { ready: reason === undefined, ...(reason ? { reason } : {}), ...(limited ? { limited } : {}), endpoints, freeAddresses };
  }

  // ---- ADD ----

  add(req: AddRequest): Promise<EndpointReply> {
    return this.#lock.withKey(recordKey(req), () => this.#add(req));
  }

  async #add(req: AddRequest): Promise<EndpointReply> {
    // The plugin checked these; the socket may have other clients, and the values go into ip's batch input.
    if (!validIfname(req.ifname)) throw new CniError(ErrorCode.InvalidEnvironment, 'invalid CNI_IFNAME', `'${req.ifname}' is not a valid interface name`);
    if (!req.netns.startsWith('/') || /\s/.test(req.netns)) throw new CniError(ErrorCode.InvalidEnvironment, 'invalid CNI_NETNS', `'${req.netns}' is not an absolute path without whitespace`);
    if (!existsSync(req.netns)) {
      throw new CniError(ErrorCode.UnknownContainer, 'container network namespace does not exist', `CNI_NETNS ${req.netns} is not there (container ${req.containerId})`);
    }
    // The runtime must not ADD twice without a DEL; if it does (or a crashed agent left one), start clean.
    if (this.#store.get(req)) await this.#del({ containerId: req.containerId, ifname: req.ifname, netns: req.netns }, false);

    const undo: Array<[string, () => unknown]> = [];
    try {
      const alloc = this.ipam.allocate({
        containerId: req.containerId,
        ifname: req.ifname,
        podNamespace: req.args?.K8S_POD_NAMESPACE,
        podName: req.args?.K8S_POD_NAME,
      });
      undo.push(['release address', () => this.ipam.release(req)]);
      const addr = parseIpv4(alloc.ip);
      const hostIfname = this.hostIfname(req.containerId, req.ifname);

      // MACs chosen here, so one ip batch creates the pair and wires the host
      // side (fewer processes per ADD); the pod side is a second batch.
      const hostMac = randomMac();
      const podMac = randomMac();
      const nodeSide = [
        `link add ${hostIfname} address ${hostMac} mtu ${this.mtu} type veth peer name ${req.ifname} address ${podMac} mtu ${this.mtu} netns ${req.netns}`,
        `link set dev ${hostIfname} up`,
        `route replace ${alloc.ip}/32 dev ${hostIfname} scope link`,
        `neigh replace ${alloc.ip} lladdr ${podMac} dev ${hostIfname} nud permanent`,
      ];
      undo.push(['delete veth', () => linkDelete(this.nodeNetns, hostIfname)]);
      try {
        await ipBatch(this.nodeNetns, nodeSide);
      } catch (e) {
        const createClash = /File exists/i.test((e as Error).message) && /Command failed -:1\b/.test((e as Error).message);
        // A host veth by this name can only be a leftover of this same attachment (a crashed ADD): replace it once.
        if (createClash && hostLinkExists(hostIfname, this.nodeNetns)) {
          await linkDelete(this.nodeNetns, hostIfname);
          this.#log.warn({ hostIfname }, 'removed a stale host veth');
          await this.#step(ErrorCode.LinkSetup, 'cannot create the veth pair', () => ipBatch(this.nodeNetns, nodeSide));
        } else {
          throw new CniError(
            ErrorCode.LinkSetup,
            createClash ? `interface ${req.ifname} already exists in the container` : 'cannot create the veth pair',
            (e as Error).message,
          );
        }
      }
      const host = { ifindex: ifindexOf(hostIfname, this.nodeNetns), address: hostMac };

      // Static neighbour for the gateway: the pod never needs to ARP (from_pod would answer if it did).
      await this.#step(ErrorCode.LinkSetup, 'cannot configure the pod interface', () =>
        ipBatch(req.netns, [
          `addr add ${alloc.ip}/32 dev ${req.ifname}`,
          `link set dev ${req.ifname} up`,
          `route add ${this.gateway}/32 dev ${req.ifname} scope link`,
          `route add default via ${this.gateway} dev ${req.ifname}`,
          `neigh replace ${this.gateway} lladdr ${hostMac} dev ${req.ifname} nud permanent`,
        ]),
      );
      const pod = { address: podMac };

      const endpointId = this.#store.takeId();
      const entry: EndpointInfo = {
        ifindex: host.ifindex,
        endpoint_id: endpointId,
        mac: parseMac(pod.address),
        node_mac: parseMac(host.address),
        flags: 0,
        identity: 0,
      };
      await this.#step(ErrorCode.Datapath, 'cannot write the endpoint map', async () => this.#dp.maps.ep4.set({ addr }, entry));
      undo.push(['delete map entry', () => this.#dp.maps.ep4.delete({ addr })]);
      // The entry goes in before the programs: from_pod answers the pod's ARP only for known endpoints.
      await this.#step(ErrorCode.Datapath, 'cannot attach the datapath programs', async () =>
        this.#dp.attachPod({ ifindex: host.ifindex, netns: this.nodeNetns }),
      );
      undo.push(['detach programs', () => this.#dp.detachPod({ ifindex: host.ifindex, netns: this.nodeNetns })]);

      const rec: EndpointRecord = {
        containerId: req.containerId,
        ifname: req.ifname,
        netns: req.netns,
        ...(req.args?.K8S_POD_NAMESPACE ? { podNamespace: req.args.K8S_POD_NAMESPACE } : {}),
        ...(req.args?.K8S_POD_NAME ? { podName: req.args.K8S_POD_NAME } : {}),
        ...(req.network ? { network: req.network } : {}),
        ip: alloc.ip,
        gateway: this.gateway,
        endpointId,
        hostIfname,
        hostIfindex: host.ifindex,
        hostMac: host.address,
        podMac: pod.address,
        mtu: this.mtu,
        createdAt: new Date().toISOString(),
      };
      await this.#step(ErrorCode.IoFailure, 'cannot persist the endpoint record', async () => this.#store.put(rec));
      this.#log.info({ containerId: req.containerId, ifname: req.ifname, ip: alloc.ip, hostIfname, endpointId }, 'endpoint added');
      return this.#reply(rec);
    } catch (e) {
      for (const [what, fn] of undo.reverse()) {
        try {
          await fn();
        } catch (u) {
          this.#log.warn({ containerId: req.containerId, step: what, err: (u as Error).message }, 'rollback step failed');
        }
      }
      throw asCniError(e);
    }
  }

  async #step<T>(code: number, msg: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw e instanceof CniError ? e : new CniError(code, msg, (e as Error).message);
    }
  }

  #reply(r: EndpointRecord): EndpointReply {
    return {
      hostIfname: r.hostIfname,
      hostMac: r.hostMac,
      podIfname: r.ifname,
      podMac: r.podMac,
      sandbox: r.netns,
      mtu: r.mtu,
      address: `${r.ip}/32`,
      gateway: r.gateway,
      routes: [{ dst: '0.0.0.0/0', gw: r.gateway }],
    };
  }

  // ---- DEL ----

  /** Removes everything the attachment holds; what is already gone is fine. */
  del(req: DelRequest): Promise<void> {
    return this.#lock.withKey(recordKey(req), () => this.#del(req, true));
  }

  async #del(req: DelRequest, log: boolean): Promise<void> {
    const rec = this.#store.get(req);
    const hostIfname = rec?.hostIfname ?? this.hostIfname(req.containerId, req.ifname);
    const ipText = rec?.ip ?? this.ipam.get(req)?.ip;
    // Traffic stops first (map entry), then the link goes; the address is freed only when both are gone.
    if (ipText) {
      const k = { addr: parseIpv4(ipText) };
      const cur = this.#dp.maps.ep4.get(k);
      if (cur && !(cur.flags & EndpointFlags.EP_F_HOST) && (!rec || cur.endpoint_id === rec.endpointId)) {
        await this.#step(ErrorCode.Datapath, 'cannot delete the endpoint map entry', async () => this.#dp.maps.ep4.delete(k));
      }
    }
    await this.#step(ErrorCode.LinkSetup, 'cannot delete the host veth', () => linkDelete(this.nodeNetns, hostIfname));
    await this.#step(ErrorCode.IoFailure, 'cannot release the address', async () => this.ipam.release(req));
    await this.#step(ErrorCode.IoFailure, 'cannot delete the endpoint record', async () => this.#store.delete(req));
    if (log && (rec || ipText)) this.#log.info({ containerId: req.containerId, ifname: req.ifname, ip: ipText, hostIfname }, 'endpoint deleted');
  }

  // ---- CHECK ----

  /** Verifies interface, address, routes, neighbour, programs and map entry; throws code 101 listing every problem. */
  check(req: CheckRequest): Promise<void> {
    return this.#lock.withKey(recordKey(req), () => this.#check(req));
  }

  async #check(req: CheckRequest): Promise<void> {
    const rec = this.#store.get(req);
    if (!rec) throw new CniError(ErrorCode.CheckFailed, 'endpoint check failed', `weir has no endpoint for container ${req.containerId} interface ${req.ifname}`);
    if (!existsSync(req.netns)) throw new CniError(ErrorCode.CheckFailed, 'endpoint check failed', `CNI_NETNS ${req.netns} does not exist`);
    const problems: string[] = [];
    const want = `${rec.ip}/32`;
    if (!sameFile(req.netns, rec.netns)) problems.push(`CNI_NETNS ${req.netns} is not the namespace the endpoint was added to (${rec.netns})`);
    if (this.ipam.get(req)?.ip !== rec.ip) problems.push(`IPAM does not hold ${rec.ip} for this container`);
    if (req.prevResult !== undefined) {
      const prev = prevResultAddress(req.prevResult, req.ifname);
      if (prev.address !== want) problems.push(`prevResult names address ${prev.address ?? 'none'} for ${req.ifname}, the endpoint has ${want}`);
      if (prev.mac && prev.mac.toLowerCase() !== rec.podMac.toLowerCase()) problems.push(`prevResult names MAC ${prev.mac}, the interface has ${rec.podMac}`);
    }

    const host = await linkShow(this.nodeNetns, rec.hostIfname);
    if (!host) problems.push(`host veth ${rec.hostIfname} is missing`);
    else {
      if (host.ifindex !== rec.hostIfindex) problems.push(`host veth ${rec.hostIfname} has ifindex ${host.ifindex}, expected ${rec.hostIfindex}`);
      if (!host.flags.includes('UP')) problems.push(`host veth ${rec.hostIfname} is down`);
      const routes = JSON.parse(await ip(this.nodeNetns, ['-j', 'route', 'show', 'exact', `${rec.ip}/32`])) as RouteJson[];
      if (!routes.some((r) => r.dev === rec.hostIfname)) problems.push(`node route ${rec.ip}/32 dev ${rec.hostIfname} is missing`);
      if (this.#dp.programs) {
        const q = (attachPoint: 'ingress' | 'egress') =>
          tc.query({ ifindex: host.ifindex, attachPoint, priority: TC_DEFAULT_PRIORITY, handle: TC_DEFAULT_HANDLE, netns: this.nodeNetns })?.progId;
        if (q('ingress') !== this.#dp.programs.fromPod.info.id) problems.push(`from_pod is not attached at tc ingress of ${rec.hostIfname}`);
        if (q('egress') !== this.#dp.programs.toPod.info.id) problems.push(`to_pod is not attached at tc egress of ${rec.hostIfname}`);
      }
    }

    const pod = await linkShow(req.netns, req.ifname);
    if (!pod) problems.push(`interface ${req.ifname} is missing in ${req.netns}`);
    else {
      if (pod.address?.toLowerCase() !== rec.podMac.toLowerCase()) problems.push(`${req.ifname} has MAC ${pod.address}, expected ${rec.podMac}`);
      if (!pod.flags.includes('UP')) problems.push(`${req.ifname} is down`);
      if (pod.mtu !== rec.mtu) problems.push(`${req.ifname} has MTU ${pod.mtu}, expected ${rec.mtu}`);
      const addrs = JSON.parse(await ip(req.netns, ['-j', '-4', 'addr', 'show', 'dev', req.ifname])) as AddrJson[];
      if (!addrs[0]?.addr_info.some((a) => `${a.local}/${a.prefixlen}` === want)) problems.push(`${req.ifname} lacks address ${want}`);
      const routes = JSON.parse(await ip(req.netns, ['-j', '-4', 'route', 'show', 'default'])) as RouteJson[];
      if (!routes.some((r) => r.gateway === rec.gateway && r.dev === req.ifname)) problems.push(`default route via ${rec.gateway} dev ${req.ifname} is missing`);
    }

    const entry = this.#dp.maps.ep4.get({ addr: parseIpv4(rec.ip) });
    if (!entry) problems.push(`weir_ep4 has no entry for ${rec.ip}`);
    else if (entry.ifindex !== rec.hostIfindex || entry.endpoint_id !== rec.endpointId || formatMac(entry.mac) !== rec.podMac.toLowerCase() || formatMac(entry.node_mac) !== rec.hostMac.toLowerCase()) {
      problems.push(`weir_ep4 entry for ${rec.ip} is {ifindex ${entry.ifindex}, id ${entry.endpoint_id}, mac ${formatMac(entry.mac)}}, expected {ifindex ${rec.hostIfindex}, id ${rec.endpointId}, mac ${rec.podMac}}`);
    }
    if (problems.length) throw new CniError(ErrorCode.CheckFailed, 'endpoint check failed', problems.join('; '));
  }

  // ---- GC ----

  /**
   * Releases every attachment not in `valid` (CNI GC): endpoints, addresses,
   * host veths named like weir's that no endpoint owns, and pod entries of
   * weir_ep4 in this node's CIDR that no endpoint owns.
   */
  gc(valid: Array<{ containerId: string; ifname: string }>): Promise<GcReport> {
    return this.#lock.exclusive(() => this.#gc(valid));
  }

  async #gc(valid: Array<{ containerId: string; ifname: string }>): Promise<GcReport> {
    const keep = new Set(valid.map(recordKey));
    const report: GcReport = { endpoints: [], addresses: [], links: [], mapEntries: [] };
    const errors: string[] = [];
    for (const rec of this.#store.list()) {
      if (keep.has(recordKey(rec))) continue;
      try {
        await this.#del(rec, true);
        report.endpoints.push(recordKey(rec));
      } catch (e) {
        errors.push(`${recordKey(rec)}: ${(e as Error).message}`);
      }
    }
    // Addresses whose ADD died before its record was written.
    for (const a of this.ipam.retain((a) => keep.has(recordKey(a)) && this.#store.get(a) !== undefined)) report.addresses.push(a.ip);

    const owned = new Set(this.#store.list().map((r) => r.hostIfname));
    const re = HOST_LINK_RE(this.#prefix);
    for (const l of await linkList(this.nodeNetns)) {
      if (!re.test(l.ifname) || owned.has(l.ifname) || l.linkinfo?.info_kind !== 'veth') continue;
      try {
        if (await linkDelete(this.nodeNetns, l.ifname)) report.links.push(l.ifname);
      } catch (e) {
        errors.push(`link ${l.ifname}: ${(e as Error).message}`);
      }
    }

    const liveIps = new Set(this.#store.list().map((r) => r.ip));
    const podCidr = parseCidr(this.ipam.cidr);
    const stale: Endpoint4Key[] = [];
    for (const [k, v] of this.#dp.maps.ep4.entries()) {
      if (v.flags & EndpointFlags.EP_F_HOST || !cidrContains(podCidr, k.addr)) continue;
      if (!liveIps.has(formatIpv4(k.addr))) stale.push(k);
    }
    for (const k of stale) {
      this.#dp.maps.ep4.delete(k);
      report.mapEntries.push(formatIpv4(k.addr));
    }
    this.#log.info({ ...report }, 'gc done');
    if (errors.length) throw new CniError(ErrorCode.Internal, 'gc could not remove everything', errors.join('; '));
    return report;
  }

  // ---- restart ----

  /**
   * After an agent (re)start with the datapath loaded: re-attaches the
   * programs to every recorded host veth and re-writes its weir_ep4 entry
   * (both idempotent). Endpoints whose veth is gone (pod netns deleted) lose
   * their map entry and wait for the runtime's DEL or GC.
   */
  resync(): Promise<{ restored: number; missing: string[] }> {
    return this.#lock.exclusive(async () => {
      let restored = 0;
      const missing: string[] = [];
      for (const rec of this.#store.list()) {
        const host = await linkShow(this.nodeNetns, rec.hostIfname);
        const k = { addr: parseIpv4(rec.ip) };
        if (!host || host.ifindex !== rec.hostIfindex) {
          const cur = this.#dp.maps.ep4.get(k);
          if (cur && cur.endpoint_id === rec.endpointId) this.#dp.maps.ep4.delete(k);
          missing.push(recordKey(rec));
          continue;
        }
        this.#dp.attachPod({ ifindex: host.ifindex, netns: this.nodeNetns });
        this.#dp.maps.ep4.set(k, {
          ifindex: host.ifindex,
          endpoint_id: rec.endpointId,
          mac: parseMac(rec.podMac),
          node_mac: parseMac(rec.hostMac),
          flags: 0,
          identity: 0,
        });
        restored++;
      }
      return { restored, missing };
    });
  }
}

/** A random locally administered unicast MAC. */
function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return formatMac(b);
}

function hostLinkExists(name: string, netns: string | undefined): boolean {
  try {
    ifindexOf(name, netns);
    return true;
  } catch {
    return false;
  }
}

/** Same namespace file (paths may differ: /run/netns/x vs /var/run/netns/x). */
function sameFile(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}
