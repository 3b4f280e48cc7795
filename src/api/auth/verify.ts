// Bearer-token verification for the storage service: jose jwtVerify against either a remote JWKS (issuer and
// audience checked) or the local development key. Fails closed: anything but a valid, unexpired token signed
// by the configured issuer is UNAUTHENTICATED. Never logs or echoes the token.
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { CofferError, ErrorCode } from '../../errors.js';
import type { Actor } from '../../vault/index.js';
import { checkUserName } from '../../vault/index.js';
import { DEV_ALG, DEV_AUDIENCE, DEV_ISSUER, devPublicJwk } from './dev-key.js';

export type AuthConfig =
  | { kind: 'dev'; dataDir: string }
  /** A given public key (e.g. the development key's public half handed to the enclave, which never reads the private one). */
  | { kind: 'jwk'; jwk: JWK; issuer: string; audience: string; algorithms: string[] }
  | { kind: 'jwks'; jwksUrl: string; issuer: string; audience: string; algorithms?: string[] };

export interface Authenticator {
  /** The caller named by an `Authorization` header value. Throws UNAUTHENTICATED (or UNAVAILABLE if the JWKS is unreachable). */
  authenticate(authorization: string | undefined): Promise<Actor>;
}

const MAX_TOKEN_LENGTH = 8192;
const DEFAULT_REMOTE_ALGS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];

function unauthenticated(message: string, cause?: unknown): CofferError {
  return new CofferError(ErrorCode.UNAUTHENTICATED, message, { cause });
}

/** Builds the authenticator for a configuration. Throws KEY_INVALID (bad dev key), INVALID_ARGUMENT (bad URL). */
export async function createAuthenticator(config: AuthConfig): Promise<Authenticator> {
  let getKey: JWTVerifyGetKey;
  let issuer: string;
  let audience: string;
  let algorithms: string[];
  if (config.kind === 'jwk') {
    if (typeof config.jwk !== 'object' || config.jwk === null || 'd' in config.jwk) throw new CofferError(ErrorCode.KEY_INVALID, 'token key must be a public JWK');
    getKey = createLocalJWKSet({ keys: [config.jwk] });
    issuer = config.issuer;
    audience = config.audience;
    algorithms = config.algorithms;
  } else if (config.kind === 'dev') {
    getKey = createLocalJWKSet({ keys: [await devPublicJwk(config.dataDir)] });
    issuer = DEV_ISSUER;
    audience = DEV_AUDIENCE;
    algorithms = [DEV_ALG];
  } else {
    let url: URL;
    try {
      url = new URL(config.jwksUrl);
    } catch (e) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'jwksUrl is not a URL', { cause: e });
    }
    if (!config.issuer || !config.audience) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a JWKS issuer needs issuer and audience');
    getKey = createRemoteJWKSet(url);
    issuer = config.issuer;
    audience = config.audience;
    algorithms = config.algorithms ?? DEFAULT_REMOTE_ALGS;
  }
  return {
    async authenticate(authorization) {
      if (!authorization) throw unauthenticated('missing Authorization header');
      const m = /^Bearer ([A-Za-z0-9_\-.]+)$/.exec(authorization);
      if (!m || (m[1] as string).length > MAX_TOKEN_LENGTH) throw unauthenticated('Authorization must be "Bearer <JWT>"');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(m[1] as string, getKey, { issuer, audience, algorithms, requiredClaims: ['exp', 'sub'], clockTolerance: 30 }));
      } catch (e) {
        if (e instanceof joseErrors.JWKSTimeout) throw new CofferError(ErrorCode.UNAVAILABLE, 'token issuer keys unreachable', { cause: e, retryable: true });
        const code = e instanceof joseErrors.JOSEError ? e.code : 'ERR';
        throw unauthenticated(`invalid token (${code})`, e);
      }
      try {
        checkUserName(payload.sub);
      } catch (e) {
        throw unauthenticated('token subject is not a valid user name', e);
      }
      return { user: payload.sub as string, admin: payload.admin === true };
    },
  };
}
