// How the enclave acts for an S3 user at the storage service (docs/s3-api.md "The storage-side credential"): an
// access key is verified inside the enclave, and the storage service must then accept the enclave's calls as
// that user. The enclave makes an Ed25519 key pair in its memory at boot, publishes the public key in an
// attestation document (user_data names the key's JWK thumbprint; src/api/auth/enclave-issuer.ts verifies it) and
// signs short-lived tokens (5 minutes) for the users its access keys name — never admin. The private key never
// leaves enclave memory; the publication is refreshed every minute so the storage service always finds a fresh
// document (it refuses one older than 5 minutes).
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import {
  ENCLAVE_ISSUER_FILE, ENCLAVE_TOKEN_AUDIENCE, ENCLAVE_TOKEN_ISSUER, issuerBinding, type EnclaveIssuerPublication,
} from '../../src/api/auth/index.js';
import type { AttestationProvider } from '../attestation/index.js';

const TOKEN_TTL_S = 300;
const REUSE_FOR_MS = 120_000;
const REPUBLISH_MS = 60_000;

export interface EnclaveTokenIssuer {
  /** A token the storage service accepts as `user` (admin false). Cached for 2 minutes per user. */
  tokenFor(user: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * Makes the key, publishes it in `channelDir` and keeps the publication fresh. `publicKey` is the enclave's
 * RSA SPKI (kept in every document, as the KMS Recipient contract expects). Throws what the provider throws.
 */
export async function startEnclaveTokenIssuer(provider: AttestationProvider, publicKey: Uint8Array, channelDir: string): Promise<EnclaveTokenIssuer> {
  const { privateKey, publicKey: pub } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = await exportJWK(pub);
  const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
  const file = path.join(channelDir, ENCLAVE_ISSUER_FILE);
  const publish = async (): Promise<void> => {
    const document = await provider.attest({ publicKey, userData: issuerBinding(thumbprint) });
    const body: EnclaveIssuerPublication = { v: 1, jwk: { kty: 'OKP', crv: 'Ed25519', x: jwk.x as string }, document: Buffer.from(document).toString('base64') };
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(body) + '\n', { mode: 0o644, flush: true });
    await rename(tmp, file).catch(async (e: unknown) => {
      await rm(tmp, { force: true });
      throw e;
    });
  };
  await publish();
  const timer = setInterval(() => void publish().catch(() => undefined), REPUBLISH_MS);
  timer.unref();
  const cache = new Map<string, { token: string; until: number }>();
  return {
    async tokenFor(user) {
      const hit = cache.get(user);
      if (hit && hit.until > Date.now()) return hit.token;
      const token = await sign(privateKey, user);
      if (cache.size > 10_000) cache.clear();
      cache.set(user, { token, until: Date.now() + REUSE_FOR_MS });
      return token;
    },
    async close() {
      clearInterval(timer);
      cache.clear();
    },
  };
}

function sign(key: CryptoKey, user: string): Promise<string> {
  return new SignJWT({ admin: false })
    .setProtectedHeader({ alg: 'EdDSA' })
    .setIssuer(ENCLAVE_TOKEN_ISSUER)
    .setAudience(ENCLAVE_TOKEN_AUDIENCE)
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(`${TOKEN_TTL_S}s`)
    .sign(key);
}
