// Label and field selectors, in the syntax of ?labelSelector= and ?fieldSelector=.
import { badRequest } from './errors.js';
import type { KObject, ResourceInfo } from './resources.js';

export type Requirement =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

/** Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`; throws a 400 on bad syntax. */
export function parseLabelSelector(text: string): Requirement[] {
  const out: Requirement[] = [];
  for (const part of splitTopLevel(text)) {
    const s = part.trim();
    if (!s) continue;
    let m: RegExpMatchArray | null;
    if ((m = s.match(/^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      out.push({ key: m[1], op: m[2] as 'in' | 'notin', values: m[3].split(',').map((v) => v.trim()).filter((v) => v !== '') });
    } else if ((m = s.match(/^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/))) {
      out.push({ key: m[1], op: m[2] === '!=' ? 'neq' : 'eq', value: m[3] });
    } else if ((m = s.match(/^!\s*([^\s!=(),]+)$/))) {
      out.push({ key: m[1], op: 'notexists' });
    } else if ((m = s.match(/^([^\s!=(),]+)$/))) {
      out.push({ key: m[1], op: 'exists' });
    } else {
      throw badRequest(`unable to parse requirement: ${JSON.stringify(s)} in label selector ${JSON.stringify(text)}`);
    }
  }
  return out;
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

export function matchLabels(reqs: Requirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'eq': return has && l[r.key] === r.value;
      case 'neq': return !has || l[r.key] !== r.value;
      case 'in': return has && r.values.includes(l[r.key]);
      case 'notin': return !has || !r.values.includes(l[r.key]);
      case 'exists': return has;
      case 'notexists': return !has;
    }
  });
}

/** A Service-style selector map ({app: web}) matches when every pair is present. */
export function matchSelectorMap(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return Object.entries(selector).every(([k, v]) => l[k] === v);
}

/** A metav1.LabelSelector (matchLabels + matchExpressions) as used by Deployments and NetworkPolicies. */
export function matchLabelSelector(
  sel: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!sel) return false;
  if (sel.matchLabels && !matchSelectorMap(sel.matchLabels, labels)) return false;
  const l = labels ?? {};
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const values = e.values ?? [];
    const ok =
      e.operator === 'In' ? has && values.includes(l[e.key]) :
      e.operator === 'NotIn' ? !has || !values.includes(l[e.key]) :
      e.operator === 'Exists' ? has :
      e.operator === 'DoesNotExist' ? !has : false;
    if (!ok) return false;
  }
  return true;
}

export interface FieldRequirement {
  field: string;
  op: 'eq' | 'neq';
  value: string;
}

/** Parses `spec.nodeName=n1,metadata.name!=x`; rejects fields the resource does not index, as the real server does. */
export function parseFieldSelector(text: string, r: ResourceInfo): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  for (const part of text.split(',')) {
    const s = part.trim();
    if (!s) continue;
    const m = s.match(/^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid field selector: ${JSON.stringify(s)}`);
    const [, f, op, value] = m;
    if (f !== 'metadata.name' && f !== 'metadata.namespace' && !r.fieldSelectors.includes(f)) {
      throw badRequest(`field label not supported: ${f}`);
    }
    out.push({ field: f, op: op === '!=' ? 'neq' : 'eq', value });
  }
  return out;
}

function fieldValue(obj: KObject, path: string): string {
  let cur: any = obj;
  for (const p of path.split('.')) cur = cur == null ? undefined : cur[p];
  if (cur === undefined || cur === null) return '';
  return String(cur);
}

export function matchFields(reqs: FieldRequirement[], obj: KObject): boolean {
  return reqs.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === 'eq'));
}
