// The lab's embedded Kubernetes API server.
export { ApiServer } from './server.js';
export type { ApiServerOptions, DeleteOptions, ListOptions, ListResult, WatchHandle, WatchOptions, WriteOptions } from './server.js';
export { ApiError } from './errors.js';
export type { Status, StatusCause } from './errors.js';
export type { WatchEvent, WatchEventType } from './watch.js';
export { findResource, resource, resourceForKind, RESOURCES, apiVersionOf } from './resources.js';
export type { KObject, ObjectMeta, OwnerReference, ResourceInfo } from './resources.js';
export { matchLabelSelector, matchSelectorMap, parseLabelSelector, matchLabels } from './selectors.js';
export { applyManifest, deleteManifest, parseManifest } from './manifest.js';
export type { ManifestResult } from './manifest.js';
export { labKubeconfig } from './kubeconfig.js';
