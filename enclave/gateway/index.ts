// Public entry of the enclave gateway (docs/enclave-gateway.md): the plaintext file operations other layers
// build on (FileOps — the S3 layer of issue 10 calls the same module as the hono routes), the records seam
// where integrity checks plug in, the HTTP app, the boot identity and the enclave's data keys.
export { FileOps, isRetryable, type Caller, type FileOpsOptions, type OpenedFile, type PutOptions, type PutResult } from './files.js';
export { GatewayRecords, selfConsistency, type FileRecord, type Grant, type Manifest, type NodeInfo, type RecordIntegrity, type UploadRequest } from './records.js';
export { createGatewayApp, filePathOf, type GatewayAppDeps, type GatewayEnv } from './routes.js';
export { attest, makeEnclaveIdentity, makeTlsIdentity, type EnclaveIdentity, type TlsIdentity } from './identity.js';
export { EnclaveDataKeys } from './data-keys.js';
export { createGatewayMetrics, type GatewayMetrics } from './metrics.js';
export { PlacedUploads, type PlacedUpload } from './placed-uploads.js';
