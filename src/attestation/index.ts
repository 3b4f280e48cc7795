// Public entry of the attestation area: decode, verify and judge AWS Nitro attestation documents.
// See docs/attestation.md for the format, the verification steps and the root pinning.
export type { AttestationDocument, TrustRoot, VerifyOptions, PcrPolicy, AttestationRequest } from './types.js';
export { NSM_LIMITS } from './types.js';
export { decodeAttestationDocument, MAX_DOCUMENT_BYTES } from './codec.js';
export { verifyAttestationDocument, verifyAttestation, DEFAULT_MAX_AGE_MS, DEFAULT_CLOCK_SKEW_MS } from './verify.js';
export { enforcePcrPolicy, isDebugModeDocument, normalizePcrPolicy } from './policy.js';
export { AWS_NITRO_ROOT_G1_SHA256, AWS_NITRO_ROOT_G1_PEM, resolveTrustRoot } from './roots.js';
export { TLS_BINDING_PREFIX, boundSpkiSha256, spkiSha256OfCertificate, tlsBinding } from './tls-binding.js';
