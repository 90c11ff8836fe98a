// The datapath's Maglev flow hash now lives in the control plane (weir trace
// uses it); the service tests keep importing it from here.
export { flowHash } from '../../control/datapath/flowhash.js';
