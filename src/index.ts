// Public entry of the Coffer library (used by the CLI, the enclave runtime and tests).
export * from './errors.js';
