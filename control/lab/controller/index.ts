// The lab controller: kube-controller-manager's EndpointSlice logic and lab Deployments.
export { LabController } from './controller.js';
export type { LabControllerOptions } from './controller.js';
export {
  desiredEndpointSlices, isPodReady, managesService, ownedSlices, podBelongsInSlices, podIp, resolveTargetPort, sliceUpToDate,
  HEADLESS_LABEL, MANAGED_BY, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL,
} from './endpointslices.js';
export type { Endpoint, EndpointPort } from './endpointslices.js';
export { planDeployment, podFromTemplate, podTemplateHash, POD_TEMPLATE_HASH_LABEL } from './deployments.js';
export type { DeploymentPlan } from './deployments.js';
export { canonicalJson, safeHash, shortHash } from './hash.js';
export { isNodeReady, needsScheduling, pickNode } from './scheduler.js';
export type { Placement } from './scheduler.js';
