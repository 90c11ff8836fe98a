// Kubernetes label selectors (metav1.LabelSelector): matchLabels and
// matchExpressions with In, NotIn, Exists, DoesNotExist, ANDed. An empty
// selector matches everything. Validation errors name the field.
import type { V1LabelSelector } from '@kubernetes/client-node';

export type Labels = Record<string, string>;

export interface SelectorError {
  field: string;
  message: string;
}

export type LabelMatcher = (labels: Labels) => boolean;

export type SelectorResult =
  | { ok: true; matches: LabelMatcher; empty: boolean }
  | { ok: false; errors: SelectorError[] };

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

function has(labels: Labels, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(labels, key);
}

/**
 * Compiles a selector. `field` is its path in the object (e.g.
 * "spec.ingress[0].from[1].podSelector"), used in error messages. A selector
 * with any invalid part is rejected as a whole (callers decide what that
 * means; the compiler never lets it widen access).
 */
export function compileSelector(sel: V1LabelSelector | undefined | null, field: string): SelectorResult {
  const errors: SelectorError[] = [];
  const tests: LabelMatcher[] = [];
  if (sel === undefined || sel === null) return { ok: true, matches: () => true, empty: true };
  if (typeof sel !== 'object' || Array.isArray(sel)) {
    return { ok: false, errors: [{ field, message: 'must be an object' }] };
  }
  const ml = sel.matchLabels;
  if (ml !== undefined && ml !== null) {
    if (typeof ml !== 'object' || Array.isArray(ml)) {
      errors.push({ field: `${field}.matchLabels`, message: 'must be a map of strings' });
    } else {
      for (const [k, v] of Object.entries(ml)) {
        if (k === '') errors.push({ field: `${field}.matchLabels`, message: 'empty label key' });
        else if (typeof v !== 'string') {
          errors.push({ field: `${field}.matchLabels.${k}`, message: `value must be a string, got ${JSON.stringify(v)}` });
        } else tests.push((l) => has(l, k) && l[k] === v);
      }
    }
  }
  const me = sel.matchExpressions;
  if (me !== undefined && me !== null) {
    if (!Array.isArray(me)) {
      errors.push({ field: `${field}.matchExpressions`, message: 'must be a list' });
    } else {
      me.forEach((req, i) => {
        const f = `${field}.matchExpressions[${i}]`;
        if (!req || typeof req !== 'object') {
          errors.push({ field: f, message: 'must be an object' });
          return;
        }
        const { key, operator } = req;
        const values = req.values ?? [];
        if (typeof key !== 'string' || key === '') {
          errors.push({ field: `${f}.key`, message: 'required' });
          return;
        }
        if (!OPERATORS.has(operator)) {
          errors.push({
            field: `${f}.operator`,
            message: `unknown operator ${JSON.stringify(operator)} (In, NotIn, Exists, DoesNotExist)`,
          });
          return;
        }
        if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) {
          errors.push({ field: `${f}.values`, message: 'must be a list of strings' });
          return;
        }
        if ((operator === 'In' || operator === 'NotIn') && values.length === 0) {
          errors.push({ field: `${f}.values`, message: `must be non-empty for operator ${operator}` });
          return;
        }
        if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) {
          errors.push({ field: `${f}.values`, message: `must be empty for operator ${operator}` });
          return;
        }
        const set = new Set(values);
        switch (operator) {
          case 'In':
            tests.push((l) => has(l, key) && set.has(l[key]));
            break;
          case 'NotIn':
            tests.push((l) => !has(l, key) || !set.has(l[key]));
            break;
          case 'Exists':
            tests.push((l) => has(l, key));
            break;
          case 'DoesNotExist':
            tests.push((l) => !has(l, key));
            break;
        }
      });
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  if (tests.length === 0) return { ok: true, matches: () => true, empty: true };
  return { ok: true, matches: (l) => tests.every((t) => t(l)), empty: false };
}
