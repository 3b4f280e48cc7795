// The storage-side credential of an enclave acting for a user it authenticated itself (an S3 access key):
// tokens the enclave signs with an Ed25519 key it made in its memory at boot, whose public key it publishes in an
// attestation document (user_data = "coffer-token-issuer-v1:" ‖ the key's JWK SHA-256 thumbprint, RFC 7638). The
// storage service accepts a token of issuer `coffer-enclave` only when signed by a key published that way, in a
// document that verifies under the configured attestation root and PCR policy and is at most 5 minutes old (the
// enclave republishes every minute). So only the admitted enclave code can act for a user this way; everything
// else fails closed: no publication, a stale or unverifiable document, a key the document does not name, a
// token that does not verify — UNAUTHENTICATED. docs/s3-api.md "The storage-side credential".
//
// The publication is a file (`token-issuer.attested.json` in the enclave's channel directory, written by the
// enclave through the host, who may replace or delete it: either only makes tokens fail).
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, createLocalJWKSet, decodeJwt, jwtVerify, type JWK } from 'jose';
import { verifyAttestation, type PcrPolicy, type TrustRoot } from '../../attestation/index.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { checkUserName, type Actor } from '../../vault/index.js';
import type { Authenticator } from './verify.js';

export const ENCLAVE_TOKEN_ISSUER = 'coffer-enclave';
export const ENCLAVE_TOKEN_AUDIENCE = 'coffer-storage';
export const ENCLAVE_ISSUER_BINDING_PREFIX = 'coffer-token-issuer-v1:';
export const ENCLAVE_ISSUER_FILE = 'token-issuer.attested.json';
/** Longest lifetime of an enclave token the service accepts (exp − iat). */
export const ENCLAVE_TOKEN_MAX_TTL_S = 600;

/** The publication: the public JWK and the attestation document (base64) naming its thumbprint. */
export interface EnclaveIssuerPublication {
  v: 1;
  jwk: JWK;
  document: string;
}

/** user_data that names a token key by its RFC 7638 thumbprint. */
export function issuerBinding(thumbprint: string): Uint8Array {
  return new Uint8Array(Buffer.from(`${ENCLAVE_ISSUER_BINDING_PREFIX}${thumbprint}`, 'ascii'));
}

export interface EnclaveIssuerConfig {
  /** The publication file the enclave writes. */
  file: string;
  root: TrustRoot;
  pcrPolicy: PcrPolicy;
  now?: () => Date;
}

function refused(message: string, cause?: unknown): CofferError {
  return new CofferError(ErrorCode.UNAUTHENTICATED, `enclave token refused: ${message}`, cause === undefined ? {} : { cause });
}

/** Verifies enclave tokens against the attested publication. Throws UNAUTHENTICATED for anything short of valid. */
export function createEnclaveIssuerAuthenticator(config: EnclaveIssuerConfig): Authenticator {
  let cache: { mtimeMs: number; size: number; jwk: JWK; verifiedAt: number } | null = null;
  const now = config.now ?? (() => new Date());
  const currentKey = async (): Promise<JWK> => {
    // the sync form: one stat of a small local file per request; the promise form's thread-pool round trip cost
    // ≈ 0.7 ms of CPU per request (1.7 s per GiB of an rclone upload, docs/s3-api.md "Where an rclone part's CPU goes")
    let st;
    try {
      st = statSync(config.file);
    } catch (e) {
      throw refused('no attested issuer key is published', e);
    }
    // a verified publication counts until the file changes, and for at most 5 minutes (then it is checked again)
    if (cache && cache.mtimeMs === st.mtimeMs && cache.size === st.size && now().getTime() - cache.verifiedAt < 300_000) return cache.jwk;
    let pub: EnclaveIssuerPublication;
    try {
      pub = JSON.parse(await readFile(config.file, 'utf8')) as EnclaveIssuerPublication;
    } catch (e) {
      throw refused('the issuer publication is unreadable', e);
    }
    if (pub?.v !== 1 || typeof pub.document !== 'string' || typeof pub.jwk !== 'object' || pub.jwk === null) throw refused('the issuer publication is malformed');
    if (pub.jwk.kty !== 'OKP' || pub.jwk.crv !== 'Ed25519' || 'd' in pub.jwk) throw refused('the issuer key is not a public Ed25519 key');
    let doc;
    try {
      doc = verifyAttestation(new Uint8Array(Buffer.from(pub.document, 'base64')), { root: config.root, pcrPolicy: config.pcrPolicy, now: now() });
    } catch (e) {
      throw refused(`the issuer attestation does not verify: ${(e as Error).message}`, e);
    }
    const thumbprint = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: pub.jwk.x as string }, 'sha256');
    if (!doc.userData || !Buffer.from(doc.userData).equals(Buffer.from(issuerBinding(thumbprint)))) throw refused('the attestation does not name this issuer key');
    const jwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: pub.jwk.x as string };
    cache = { mtimeMs: st.mtimeMs, size: st.size, jwk, verifiedAt: now().getTime() };
    return jwk;
  };
  // Tokens verified lately, by their exact text: the enclave sends one token per user for many requests, and the
  // Ed25519 check cost ≈ 0.8 ms of CPU per storage request. A hit skips only the signature check, which gives the
  // same answer for the same text under the same key: the key must still be the one published now, and the token's
  // exp/nbf are checked against the clock on every use.
  const verifiedTokens = new Map<string, { x: string; user: string; exp: number; nbf: number | undefined }>();
  const TOLERANCE_S = 30;
  return {
    async authenticate(authorization) {
      const m = /^Bearer ([A-Za-z0-9_\-.]+)$/.exec(authorization ?? '');
      if (!m) throw refused('Authorization must be "Bearer <JWT>"');
      const key = await currentKey();
      const hit = verifiedTokens.get(m[1] as string);
      const nowS = now().getTime() / 1000;
      if (hit && hit.x === key.x && nowS < hit.exp + TOLERANCE_S && (hit.nbf === undefined || nowS >= hit.nbf - TOLERANCE_S)) {
        return { user: hit.user, admin: false } satisfies Actor;
      }
      let payload;
      try {
        ({ payload } = await jwtVerify(m[1] as string, createLocalJWKSet({ keys: [key] }), {
          issuer: ENCLAVE_TOKEN_ISSUER, audience: ENCLAVE_TOKEN_AUDIENCE, algorithms: ['EdDSA'], requiredClaims: ['exp', 'iat', 'sub'], clockTolerance: TOLERANCE_S, currentDate: now(),
        }));
      } catch (e) {
        throw refused('invalid token', e);
      }
      if ((payload.exp as number) - (payload.iat as number) > ENCLAVE_TOKEN_MAX_TTL_S) throw refused('token lifetime too long');
      try {
        checkUserName(payload.sub);
      } catch (e) {
        throw refused('token subject is not a valid user name', e);
      }
      verifiedTokens.delete(m[1] as string);
      verifiedTokens.set(m[1] as string, { x: key.x as string, user: payload.sub as string, exp: payload.exp as number, nbf: payload.nbf });
      while (verifiedTokens.size > 1024) verifiedTokens.delete(verifiedTokens.keys().next().value as string);
      // the enclave acts for a user it authenticated (an access key): never as an administrator
      return { user: payload.sub as string, admin: false } satisfies Actor;
    },
  };
}

/**
 * The service's authenticator: tokens of issuer `coffer-enclave` go to the enclave-issuer check (refused when the
 * service has none configured), every other token to `base`.
 */
export function withEnclaveIssuer(base: Authenticator, enclave: Authenticator | null): Authenticator {
  return {
    async authenticate(authorization) {
      const m = /^Bearer ([A-Za-z0-9_\-.]+)$/.exec(authorization ?? '');
      let iss: unknown;
      if (m) {
        try {
          iss = decodeJwt(m[1] as string).iss;
        } catch {
          iss = undefined; // not a JWT: base refuses it with its own message
        }
      }
      if (iss === ENCLAVE_TOKEN_ISSUER) {
        if (!enclave) throw refused('this storage service trusts no enclave issuer');
        return enclave.authenticate(authorization);
      }
      return base.authenticate(authorization);
    },
  };
}
