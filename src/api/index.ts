// Public entry of src/api: the storage service (hono app and Node server) and its auth.
export { createApp } from './app.js';
export type { AppDeps, ApiLimits } from './app.js';
export { startStorageServer } from './server.js';
export type { ServerLimits, StorageServer, StorageServerOptions } from './server.js';
export { createAuthenticator, ensureDevSigningKey, mintDevToken, DEV_AUDIENCE, DEV_ISSUER } from './auth/index.js';
export type { AuthConfig, Authenticator, MintOptions } from './auth/index.js';
export { parseRange } from './http.js';
