// API errors as Kubernetes Status objects, with the real API server's reasons, codes and messages.
import type { ResourceInfo } from './resources.js';

export interface StatusCause {
  reason: string;
  message: string;
  field: string;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[] };
  code: number;
}

export class ApiError extends Error {
  constructor(readonly status: Status) {
    super(status.message);
    this.name = 'ApiError';
  }
  get code(): number {
    return this.status.code;
  }
  get reason(): string | undefined {
    return this.status.reason;
  }
}

function failure(code: number, reason: string, message: string, details?: Status['details']): ApiError {
  const status: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) status.details = details;
  return new ApiError(status);
}

function qualified(r: ResourceInfo): string {
  return r.group ? `${r.name}.${r.group}` : r.name;
}

function details(r: ResourceInfo, name: string): Status['details'] {
  return r.group ? { name, group: r.group, kind: r.name } : { name, kind: r.name };
}

export function notFound(r: ResourceInfo, name: string): ApiError {
  return failure(404, 'NotFound', `${qualified(r)} "${name}" not found`, details(r, name));
}

export function alreadyExists(r: ResourceInfo, name: string): ApiError {
  return failure(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, details(r, name));
}

export function conflict(r: ResourceInfo, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again'): ApiError {
  return failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`, details(r, name));
}

export function badRequest(message: string): ApiError {
  return failure(400, 'BadRequest', message);
}

export function methodNotAllowed(message: string): ApiError {
  return failure(405, 'MethodNotAllowed', message);
}

export function pathNotFound(): ApiError {
  return failure(404, 'NotFound', 'the server could not find the requested resource', {});
}

export function unsupportedMediaType(type: string): ApiError {
  return failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json (got ${type})`);
}

/** 410 Gone: the watch or list asked for a resourceVersion the history no longer holds. */
export function expired(message: string): ApiError {
  return failure(410, 'Expired', message);
}

export function internal(message: string): ApiError {
  return failure(500, 'InternalError', `Internal error occurred: ${message}`);
}

/** One field error, worded as the API server's field.Error. */
export class FieldError {
  constructor(readonly type: FieldErrorType, readonly field: string, readonly message: string) {}
}

export type FieldErrorType =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueDuplicate'
  | 'FieldValueForbidden';

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value === 'object' ? JSON.stringify(value) : String(value);
}

export const field = {
  required: (path: string, detail = '') => new FieldError('FieldValueRequired', path, 'Required value' + (detail ? `: ${detail}` : '')),
  invalid: (path: string, value: unknown, detail: string) => new FieldError('FieldValueInvalid', path, `Invalid value: ${show(value)}: ${detail}`),
  notSupported: (path: string, value: unknown, supported: string[]) =>
    new FieldError('FieldValueNotSupported', path, `Unsupported value: ${show(value)}: supported values: ${supported.map((s) => `"${s}"`).join(', ')}`),
  duplicate: (path: string, value: unknown) => new FieldError('FieldValueDuplicate', path, `Duplicate value: ${show(value)}`),
  forbidden: (path: string, detail: string) => new FieldError('FieldValueForbidden', path, `Forbidden: ${detail}`),
};

/** 422 Invalid with one cause per field error, like `Service "web" is invalid: spec.ports[0].port: ...`. */
export function invalid(r: ResourceInfo, name: string, errors: FieldError[]): ApiError {
  const causes = errors.map((e) => ({ reason: e.type, message: e.message, field: e.field }));
  const list = errors.map((e) => `${e.field}: ${e.message}`);
  const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  const d: Status['details'] = { name, kind: r.kind, causes };
  if (r.group) d.group = r.group;
  return failure(422, 'Invalid', `${r.kind} "${name}" is invalid: ${summary}`, d);
}

export function success(r: ResourceInfo, name: string, uid?: string): Status {
  const d: Status['details'] = { name, kind: r.name };
  if (r.group) d.group = r.group;
  if (uid) d.uid = uid;
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: d, code: 200 };
}
