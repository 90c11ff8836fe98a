// Service defaulting, validation and ClusterIP/nodePort allocation, worded as the real API server.
import { ClusterIpAllocator, ipToNumber, NodePortAllocator } from './allocators.js';
import { field, type FieldError } from './errors.js';
import type { KObject } from './resources.js';
import { isDnsLabel, isPortName } from './validation.js';

const TYPES = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];
const PROTOCOLS = ['SCTP', 'TCP', 'UDP'];

function externallyReachable(type: string): boolean {
  return type === 'NodePort' || type === 'LoadBalancer';
}

/** Fills the defaults the API server sets on create (before allocation). */
export function defaultService(svc: KObject): void {
  const spec = (svc.spec ??= {});
  spec.type ??= 'ClusterIP';
  if (spec.type === 'ExternalName') return;
  spec.sessionAffinity ??= 'None';
  if (spec.sessionAffinity === 'ClientIP') {
    spec.sessionAffinityConfig ??= {};
    spec.sessionAffinityConfig.clientIP ??= {};
    spec.sessionAffinityConfig.clientIP.timeoutSeconds ??= 10800;
  }
  if (externallyReachable(spec.type)) spec.externalTrafficPolicy ??= 'Cluster';
  if (spec.type === 'LoadBalancer') spec.allocateLoadBalancerNodePorts ??= true;
  spec.internalTrafficPolicy ??= 'Cluster';
  for (const p of spec.ports ?? []) {
    if (p && typeof p === 'object') {
      p.protocol ??= 'TCP';
      if (p.targetPort === undefined || p.targetPort === 0 || p.targetPort === '') p.targetPort = p.port;
    }
  }
  if (spec.clusterIP !== 'None') {
    spec.ipFamilies ??= ['IPv4'];
    spec.ipFamilyPolicy ??= 'SingleStack';
  }
  svc.status ??= { loadBalancer: {} };
}

function validPort(n: unknown): boolean {
  return Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
}

/** Field errors for a (defaulted) Service; allocation errors come later, from the allocator. */
export function validateService(svc: KObject): FieldError[] {
  const errs: FieldError[] = [];
  const spec = svc.spec ?? {};
  if (!TYPES.includes(spec.type)) {
    errs.push(field.notSupported('spec.type', spec.type, TYPES));
    return errs;
  }
  if (spec.type === 'ExternalName') {
    if (!spec.externalName) errs.push(field.required('spec.externalName'));
    return errs;
  }
  const headless = spec.clusterIP === 'None';
  const ports: any[] = Array.isArray(spec.ports) ? spec.ports : [];
  if (spec.ports !== undefined && !Array.isArray(spec.ports)) errs.push(field.invalid('spec.ports', spec.ports, 'must be a list'));
  if (ports.length === 0 && !headless) errs.push(field.required('spec.ports'));
  const names = new Set<string>();
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    const at = `spec.ports[${i}]`;
    if (!p || typeof p !== 'object') {
      errs.push(field.invalid(at, p, 'must be an object'));
      return;
    }
    if (ports.length > 1 && !p.name) errs.push(field.required(`${at}.name`));
    if (p.name) {
      if (!isDnsLabel(p.name)) {
        errs.push(field.invalid(`${at}.name`, p.name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
      } else if (names.has(p.name)) errs.push(field.duplicate(`${at}.name`, p.name));
      names.add(p.name);
    }
    if (p.port === undefined) errs.push(field.required(`${at}.port`));
    else if (!validPort(p.port)) errs.push(field.invalid(`${at}.port`, p.port, 'must be between 1 and 65535, inclusive'));
    if (!PROTOCOLS.includes(p.protocol)) errs.push(field.notSupported(`${at}.protocol`, p.protocol, PROTOCOLS));
    if (typeof p.targetPort === 'number') {
      if (!validPort(p.targetPort)) errs.push(field.invalid(`${at}.targetPort`, p.targetPort, 'must be between 1 and 65535, inclusive'));
    } else if (typeof p.targetPort === 'string') {
      if (!isPortName(p.targetPort)) {
        errs.push(field.invalid(`${at}.targetPort`, p.targetPort, 'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, with at least one letter'));
      }
    } else errs.push(field.invalid(`${at}.targetPort`, p.targetPort, 'must be a port number or name'));
    const key = `${p.port}/${p.protocol}`;
    if (seen.has(key)) errs.push(field.duplicate(at, { port: p.port, protocol: p.protocol }));
    seen.add(key);
    if (p.nodePort !== undefined && p.nodePort !== 0) {
      if (!externallyReachable(spec.type)) {
        errs.push(field.forbidden(`${at}.nodePort`, `may not be used when \`type\` is '${spec.type}'`));
      } else if (!validPort(p.nodePort)) {
        errs.push(field.invalid(`${at}.nodePort`, p.nodePort, 'must be between 1 and 65535, inclusive'));
      }
    }
  });
  if (spec.clusterIP !== undefined && spec.clusterIP !== '' && !headless && ipToNumber(spec.clusterIP) === undefined) {
    errs.push(field.invalid('spec.clusterIPs[0]', spec.clusterIP, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'));
  }
  if (headless && externallyReachable(spec.type)) {
    errs.push(field.invalid('spec.clusterIPs[0]', 'None', `may not be set to 'None' for ${spec.type} services`));
  }
  if (!['None', 'ClientIP'].includes(spec.sessionAffinity)) {
    errs.push(field.notSupported('spec.sessionAffinity', spec.sessionAffinity, ['ClientIP', 'None']));
  }
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  if (spec.sessionAffinity === 'ClientIP' && !(Number.isInteger(timeout) && timeout >= 1 && timeout <= 86400)) {
    errs.push(field.invalid('spec.sessionAffinityConfig.clientIP.timeoutSeconds', timeout, 'must be greater than 0 and less than 86400'));
  }
  if (spec.externalTrafficPolicy !== undefined) {
    if (!externallyReachable(spec.type) && !(spec.externalIPs?.length > 0)) {
      errs.push(field.invalid('spec.externalTrafficPolicy', spec.externalTrafficPolicy, 'may only be set for externally-accessible services'));
    } else if (!['Cluster', 'Local'].includes(spec.externalTrafficPolicy)) {
      errs.push(field.notSupported('spec.externalTrafficPolicy', spec.externalTrafficPolicy, ['Cluster', 'Local']));
    }
  }
  if (!['Cluster', 'Local'].includes(spec.internalTrafficPolicy)) {
    errs.push(field.notSupported('spec.internalTrafficPolicy', spec.internalTrafficPolicy, ['Cluster', 'Local']));
  }
  return errs;
}

/** Owns the ClusterIP and nodePort allocators; every change either completes or leaves them as they were. */
export class ServiceAllocations {
  readonly ips: ClusterIpAllocator;
  readonly nodePorts: NodePortAllocator;

  constructor(serviceCidr: string, nodePortRange: [number, number]) {
    this.ips = new ClusterIpAllocator(serviceCidr);
    this.nodePorts = new NodePortAllocator(nodePortRange[0], nodePortRange[1]);
  }

  /** Marks what an already-stored service holds (on load from a snapshot). */
  restore(svc: KObject): void {
    const spec = svc.spec ?? {};
    if (spec.clusterIP && spec.clusterIP !== 'None' && this.ips.inRange(spec.clusterIP)) this.ips.allocate(spec.clusterIP);
    for (const p of spec.ports ?? []) if (p.nodePort) this.nodePorts.allocate(p.nodePort, p.protocol ?? 'TCP');
    if (spec.healthCheckNodePort) this.nodePorts.allocate(spec.healthCheckNodePort, 'TCP');
  }

  /**
   * Allocates what `svc` needs beyond what `old` already holds (old is undefined on create), filling
   * spec.clusterIP(s) and nodePorts. Returns field errors and allocates nothing when any.
   * Call release(old minus new) after the store commits, via commitUpdate.
   */
  allocate(svc: KObject, old?: KObject): FieldError[] {
    const spec = svc.spec;
    if (spec.type === 'ExternalName') {
      delete spec.clusterIP;
      delete spec.clusterIPs;
      return [];
    }
    const errs: FieldError[] = [];
    const taken: (() => void)[] = [];
    const oldSpec = old?.spec ?? {};
    // ClusterIP: immutable once set; an update that omits it keeps the old one, as the real server does.
    if (old && oldSpec.clusterIP && (spec.clusterIP === undefined || spec.clusterIP === '')) spec.clusterIP = oldSpec.clusterIP;
    if (old && oldSpec.clusterIP && oldSpec.type !== 'ExternalName' && spec.clusterIP !== oldSpec.clusterIP) {
      errs.push(field.invalid('spec.clusterIPs[0]', spec.clusterIP, 'field is immutable'));
    } else if (!(old && spec.clusterIP === oldSpec.clusterIP) && spec.clusterIP !== 'None') {
      if (spec.clusterIP) {
        const ip = spec.clusterIP;
        if (!this.ips.inRange(ip)) {
          errs.push(field.invalid('spec.clusterIPs[0]', ip, `failed to allocate IP ${ip}: the provided IP (${ip}) is not in the valid range. The range of valid IPs is ${this.ips.cidr.text}`));
        } else if (this.ips.isAllocated(ip)) {
          errs.push(field.invalid('spec.clusterIPs[0]', ip, `failed to allocate IP ${ip}: provided IP is already allocated`));
        } else {
          this.ips.allocate(ip);
          taken.push(() => this.ips.release(ip));
        }
      } else {
        const ip = this.ips.allocateNext();
        if (ip === undefined) errs.push(field.invalid('spec.clusterIPs', [], `failed to allocate IP: range is full (${this.ips.cidr.text})`));
        else {
          spec.clusterIP = ip;
          taken.push(() => this.ips.release(ip));
        }
      }
    }
    if (spec.clusterIP) spec.clusterIPs = [spec.clusterIP];

    const wantsNodePorts = spec.type === 'NodePort' || (spec.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts !== false);
    const oldPorts = new Set<string>((oldSpec.ports ?? []).filter((p: any) => p.nodePort).map((p: any) => `${p.nodePort}/${p.protocol}`));
    const oldByName = new Map<string, number>((oldSpec.ports ?? []).map((p: any) => [`${p.name ?? ''}/${p.port}/${p.protocol}`, p.nodePort]));
    (spec.ports ?? []).forEach((p: any, i: number) => {
      if (!wantsNodePorts && spec.type !== 'LoadBalancer') {
        delete p.nodePort;
        return;
      }
      // An update that omits a port's nodePort keeps the one it had.
      if (old && !p.nodePort) {
        const prev = oldByName.get(`${p.name ?? ''}/${p.port}/${p.protocol}`);
        if (prev) p.nodePort = prev;
      }
      if (p.nodePort) {
        if (oldPorts.has(`${p.nodePort}/${p.protocol}`)) return;
        const at = `spec.ports[${i}].nodePort`;
        if (!this.nodePorts.inRange(p.nodePort)) {
          errs.push(field.invalid(at, p.nodePort, `provided port is not in the valid range. The range of valid ports is ${this.nodePorts.rangeText}`));
        } else if (this.nodePorts.isAllocated(p.nodePort, p.protocol)) {
          errs.push(field.invalid(at, p.nodePort, 'provided port is already allocated'));
        } else {
          this.nodePorts.allocate(p.nodePort, p.protocol);
          const n = p.nodePort;
          taken.push(() => this.nodePorts.release(n, p.protocol));
        }
      } else if (wantsNodePorts) {
        const n = this.nodePorts.allocateNext(p.protocol);
        if (n === undefined) errs.push(field.invalid(`spec.ports[${i}].nodePort`, 0, `failed to allocate a nodePort: range is full (${this.nodePorts.rangeText})`));
        else {
          p.nodePort = n;
          taken.push(() => this.nodePorts.release(n, p.protocol));
        }
      }
    });
    // LoadBalancer + Local gets a health-check nodePort, as the real server allocates.
    if (spec.type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local') {
      if (!spec.healthCheckNodePort && oldSpec.healthCheckNodePort) spec.healthCheckNodePort = oldSpec.healthCheckNodePort;
      if (!spec.healthCheckNodePort) {
        const n = this.nodePorts.allocateNext('TCP');
        if (n !== undefined) {
          spec.healthCheckNodePort = n;
          taken.push(() => this.nodePorts.release(n, 'TCP'));
        }
      } else if (spec.healthCheckNodePort !== oldSpec.healthCheckNodePort) {
        const n = spec.healthCheckNodePort;
        if (!this.nodePorts.inRange(n) || this.nodePorts.isAllocated(n, 'TCP')) {
          errs.push(field.invalid('spec.healthCheckNodePort', n, 'provided port is already allocated or out of range'));
        } else {
          this.nodePorts.allocate(n, 'TCP');
          taken.push(() => this.nodePorts.release(n, 'TCP'));
        }
      }
    } else delete spec.healthCheckNodePort;

    if (errs.length > 0) for (const undo of taken) undo();
    return errs;
  }

  /** Releases what `old` held that `now` (undefined on delete) no longer holds. */
  releaseDropped(old: KObject, now?: KObject): void {
    const o = old.spec ?? {};
    const n = now?.spec ?? {};
    if (o.clusterIP && o.clusterIP !== 'None' && o.clusterIP !== n.clusterIP) this.ips.release(o.clusterIP);
    const keep = new Set<string>((n.ports ?? []).filter((p: any) => p.nodePort).map((p: any) => `${p.nodePort}/${p.protocol}`));
    for (const p of o.ports ?? []) if (p.nodePort && !keep.has(`${p.nodePort}/${p.protocol}`)) this.nodePorts.release(p.nodePort, p.protocol);
    if (o.healthCheckNodePort && o.healthCheckNodePort !== n.healthCheckNodePort) this.nodePorts.release(o.healthCheckNodePort, 'TCP');
  }
}
