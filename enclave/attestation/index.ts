// Public entry of the enclave attestation providers: the development root and simulated NSM, the bundle
// measurement (PCR0), and the production Nitro NSM provider. See docs/attestation.md.
export type { AttestationProvider, AttestationRequest } from './provider.js';
export { validateAttestationRequest } from './provider.js';
export { ensureDevRoot, loadDevRoot, devRootDir, DEV_ROOT_SUBJECT, type DevRoot } from './dev-root.js';
export { measureEnclaveBundle, measureFiles, SIMULATED_PCR1_INPUT, type BundleMeasurement } from './measure.js';
export { SimulatedNsm, DEFAULT_LEAF_LIFETIME_MS, type SimulatedNsmOptions } from './simulated-nsm.js';
export { NitroNsmProvider, type NitroNsmOptions } from './nitro-nsm.js';
