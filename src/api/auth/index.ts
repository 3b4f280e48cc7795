// Public entry of src/api/auth: bearer-token verification and the development signing key / token minting.
export { createAuthenticator } from './verify.js';
export type { AuthConfig, Authenticator } from './verify.js';
export { DEV_ALG, DEV_AUDIENCE, DEV_ISSUER, devKeyPath, devPublicJwk, ensureDevSigningKey, mintDevToken } from './dev-key.js';
export type { MintOptions } from './dev-key.js';
export {
  ENCLAVE_ISSUER_FILE, ENCLAVE_TOKEN_AUDIENCE, ENCLAVE_TOKEN_ISSUER, ENCLAVE_TOKEN_MAX_TTL_S, createEnclaveIssuerAuthenticator, issuerBinding, withEnclaveIssuer,
} from './enclave-issuer.js';
export type { EnclaveIssuerConfig, EnclaveIssuerPublication } from './enclave-issuer.js';
