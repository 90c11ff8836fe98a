// Name and object validation for the fields the lab relies on, worded as the API server.
import { field, type FieldError } from './errors.js';
import type { KObject, ResourceInfo } from './resources.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDnsLabel(s: string): boolean {
  return typeof s === 'string' && s.length <= 63 && DNS_LABEL.test(s);
}

export function isDnsSubdomain(s: string): boolean {
  return typeof s === 'string' && s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

/** An IANA service name: what a named port (containerPort name, targetPort string) may be. */
export function isPortName(s: string): boolean {
  return typeof s === 'string' && s.length >= 1 && s.length <= 15 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(s) && /[a-z]/.test(s) && !s.includes('--');
}

function nameErrors(r: ResourceInfo, name: string): FieldError[] {
  if (r.name === 'services') {
    if (!(name.length <= 63 && DNS1035_LABEL.test(name))) {
      return [field.invalid('metadata.name', name, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")];
    }
  } else if (r.name === 'namespaces') {
    if (!isDnsLabel(name)) {
      return [field.invalid('metadata.name', name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")];
    }
  } else if (!isDnsSubdomain(name)) {
    return [field.invalid('metadata.name', name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")];
  }
  return [];
}

function labelErrors(path: string, labels: unknown): FieldError[] {
  if (labels === undefined) return [];
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) return [field.invalid(path, labels, 'must be a map of strings')];
  const errs: FieldError[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== 'string') errs.push(field.invalid(`${path}.${k}`, v, 'must be a string'));
    else if (v.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v)) {
      errs.push(field.invalid(`${path}`, v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
    }
  }
  return errs;
}

export function validateMeta(r: ResourceInfo, obj: KObject): FieldError[] {
  const name = obj.metadata.name ?? '';
  if (!name) return [field.required('metadata.name', 'name or generateName is required')];
  return [...nameErrors(r, name), ...labelErrors('metadata.labels', obj.metadata.labels)];
}

function validatePod(pod: KObject): FieldError[] {
  const errs: FieldError[] = [];
  const containers = pod.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) return [field.required('spec.containers')];
  const names = new Set<string>();
  containers.forEach((c: any, i: number) => {
    const at = `spec.containers[${i}]`;
    if (!c?.name) errs.push(field.required(`${at}.name`));
    else if (!isDnsLabel(c.name)) errs.push(field.invalid(`${at}.name`, c.name, 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\''));
    else if (names.has(c.name)) errs.push(field.duplicate(`${at}.name`, c.name));
    names.add(c?.name);
    if (!c?.image) errs.push(field.required(`${at}.image`));
    (c?.ports ?? []).forEach((p: any, j: number) => {
      const pat = `${at}.ports[${j}]`;
      if (!(Number.isInteger(p.containerPort) && p.containerPort >= 1 && p.containerPort <= 65535)) {
        errs.push(field.invalid(`${pat}.containerPort`, p.containerPort, 'must be between 1 and 65535, inclusive'));
      }
      if (p.name !== undefined && !isPortName(p.name)) {
        errs.push(field.invalid(`${pat}.name`, p.name, 'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, with at least one letter'));
      }
      if (!['TCP', 'UDP', 'SCTP'].includes(p.protocol)) errs.push(field.notSupported(`${pat}.protocol`, p.protocol, ['SCTP', 'TCP', 'UDP']));
    });
  });
  return errs;
}

function validateDeployment(d: KObject): FieldError[] {
  const errs: FieldError[] = [];
  const spec = d.spec ?? {};
  if (!spec.selector) errs.push(field.required('spec.selector'));
  if (!spec.template) errs.push(field.required('spec.template'));
  if (!(Number.isInteger(spec.replicas) && spec.replicas >= 0)) errs.push(field.invalid('spec.replicas', spec.replicas, 'must be greater than or equal to 0'));
  const tl = spec.template?.metadata?.labels ?? {};
  const ml: Record<string, string> = spec.selector?.matchLabels ?? {};
  if (spec.selector && spec.template && Object.entries(ml).some(([k, v]) => tl[k] !== v)) {
    errs.push(field.invalid('spec.template.metadata.labels', tl, '`selector` does not match template `labels`'));
  }
  if (spec.template) {
    const inner = validatePod({ metadata: {}, spec: spec.template.spec }).map(
      (e) => ({ ...e, field: e.field.replace(/^spec\./, 'spec.template.spec.') }) as FieldError,
    );
    errs.push(...inner);
  }
  return errs;
}

function validateEndpointSlice(s: KObject): FieldError[] {
  const errs: FieldError[] = [];
  if (!['IPv4', 'IPv6', 'FQDN'].includes(s.addressType)) errs.push(field.notSupported('addressType', s.addressType, ['FQDN', 'IPv4', 'IPv6']));
  (s.endpoints ?? []).forEach((e: any, i: number) => {
    if (!Array.isArray(e?.addresses) || e.addresses.length === 0) errs.push(field.required(`endpoints[${i}].addresses`));
  });
  return errs;
}

/** Resource-specific validation (services are validated in services.ts, with allocation). */
export function validateObject(r: ResourceInfo, obj: KObject): FieldError[] {
  switch (r.name) {
    case 'pods': return validatePod(obj);
    case 'deployments': return validateDeployment(obj);
    case 'endpointslices': return validateEndpointSlice(obj);
    case 'networkpolicies': return obj.spec?.podSelector === undefined ? [field.required('spec.podSelector')] : [];
    default: return [];
  }
}

/** Defaults set on create, as the real API server's defaulting functions do for the fields we use. */
export function defaultObject(r: ResourceInfo, obj: KObject): void {
  switch (r.name) {
    case 'pods': {
      const spec = (obj.spec ??= {});
      spec.restartPolicy ??= 'Always';
      spec.dnsPolicy ??= 'ClusterFirst';
      spec.schedulerName ??= 'default-scheduler';
      spec.terminationGracePeriodSeconds ??= 30;
      spec.enableServiceLinks ??= true;
      for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
        for (const p of c?.ports ?? []) p.protocol ??= 'TCP';
        c.imagePullPolicy ??= /:latest$|^[^:]*$/.test(c.image ?? '') ? 'Always' : 'IfNotPresent';
      }
      obj.status ??= {};
      obj.status.phase ??= 'Pending';
      break;
    }
    case 'namespaces':
      obj.spec ??= { finalizers: ['kubernetes'] };
      obj.status = { phase: 'Active' };
      obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': obj.metadata.name! };
      break;
    case 'deployments': {
      const spec = (obj.spec ??= {});
      spec.replicas ??= 1;
      spec.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } };
      spec.revisionHistoryLimit ??= 10;
      spec.progressDeadlineSeconds ??= 600;
      for (const c of spec.template?.spec?.containers ?? []) for (const p of c?.ports ?? []) p.protocol ??= 'TCP';
      obj.status ??= {};
      break;
    }
    case 'endpointslices':
      for (const p of obj.ports ?? []) p.protocol ??= 'TCP';
      break;
    case 'networkpolicies': {
      const spec = (obj.spec ??= {});
      spec.policyTypes ??= spec.egress ? ['Ingress', 'Egress'] : ['Ingress'];
      for (const rule of [...(spec.ingress ?? []), ...(spec.egress ?? [])]) for (const p of rule?.ports ?? []) p.protocol ??= 'TCP';
      break;
    }
  }
}
