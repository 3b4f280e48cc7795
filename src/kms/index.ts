// Public entry of the KMS area: the vault's KeyService (AWS KMS or the embedded KMS through @aws-sdk/client-kms),
// the embedded KMS server, key-policy builders, and the CMS envelope opener enclaves use. See docs/kms.md.
export { AwsKeyService, type KeyService, type AwsKeyServiceOptions, type GeneratedDataKey } from './key-service.js';
export { parseKmsKeyRecord, blobContext, checkBlobId, type KmsKeyRecord } from './key-record.js';
export {
  startKmsServer, loadOrCreateCredentials, newCredential, credentialsPath, roleCredentials, DEFAULT_ADMIN_ARN, DEFAULT_SEALER_ARN,
  DEFAULT_ENCLAVE_ARN, DEFAULT_ACCOUNT_ID, MAX_CLOCK_SKEW_MS, type KmsServer, type KmsServerOptions, type KmsCredential, type RoleCredentials,
} from './server/index.js';
export {
  attestedKeyPolicy, defaultKeyPolicy, parsePolicy, evaluatePolicy, PolicyError, attestationRuleOf, type AttestedKeyPolicyOptions,
} from './policy/index.js';
export { buildEnvelope, openEnvelope } from './cms/index.js';
