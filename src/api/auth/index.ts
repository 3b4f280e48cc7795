// Public entry of src/api/auth: bearer-token verification and the development signing key / token minting.
export { createAuthenticator } from './verify.js';
export type { AuthConfig, Authenticator } from './verify.js';
export { DEV_ALG, DEV_AUDIENCE, DEV_ISSUER, devKeyPath, devPublicJwk, ensureDevSigningKey, mintDevToken } from './dev-key.js';
export type { MintOptions } from './dev-key.js';
