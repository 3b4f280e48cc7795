// Both halves of the storage-side credential: the enclave's token issuer (storage-tokens.ts) and the storage
// service's check of it (src/api/auth/enclave-issuer.ts), with a simulated NSM under a development root.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnclaveIssuerAuthenticator, ENCLAVE_ISSUER_FILE, withEnclaveIssuer, type EnclaveIssuerConfig } from '../../src/api/auth/index.js';
import type { Authenticator } from '../../src/api/auth/index.js';
import { ensureDevRoot, SimulatedNsm } from '../attestation/index.js';
import { startEnclaveTokenIssuer, type EnclaveTokenIssuer } from './storage-tokens.js';

const PCR0 = 'ab'.repeat(48);
let dir: string;
let issuer: EnclaveTokenIssuer;
let config: EnclaveIssuerConfig;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-issuer-'));
  const root = await ensureDevRoot(dir);
  const nsm = await SimulatedNsm.create({ dataDir: dir, pcrs: { 0: PCR0, 1: 'cd'.repeat(48), 2: 'ef'.repeat(48) } });
  issuer = await startEnclaveTokenIssuer(nsm, new Uint8Array(randomBytes(64)), dir);
  config = { file: path.join(dir, ENCLAVE_ISSUER_FILE), root: root.trustRoot, pcrPolicy: { pcrs: { 0: PCR0 } } };
});

afterAll(async () => {
  await issuer?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const bearer = (t: string): string => `Bearer ${t}`;

describe('enclave tokens at the storage service', () => {
  it('a token of the attested issuer names its user, never an administrator', async () => {
    const auth = createEnclaveIssuerAuthenticator(config);
    expect(await auth.authenticate(bearer(await issuer.tokenFor('alice')))).toEqual({ user: 'alice', admin: false });
  });

  it('refuses a PCR0 the policy does not admit, a foreign root, a stale document, a key the document does not name', async () => {
    const token = bearer(await issuer.tokenFor('alice'));
    await expect(createEnclaveIssuerAuthenticator({ ...config, pcrPolicy: { pcrs: { 0: '00'.repeat(47) + '01' } } }).authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const other = await mkdtemp(path.join(os.tmpdir(), 'coffer-issuer-other-'));
    try {
      const foreign = await ensureDevRoot(other);
      await expect(createEnclaveIssuerAuthenticator({ ...config, root: foreign.trustRoot }).authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
    const later = new Date(Date.now() + 10 * 60_000);
    await expect(createEnclaveIssuerAuthenticator({ ...config, now: () => later }).authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    // the host swaps in its own key beside the enclave's document
    const original = await readFile(config.file, 'utf8');
    try {
      const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
      const { exportJWK } = await import('jose');
      const pub = JSON.parse(original) as { jwk: object };
      pub.jwk = await exportJWK(publicKey);
      await writeFile(config.file, JSON.stringify(pub));
      const forged = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setIssuer('coffer-enclave').setAudience('coffer-storage').setSubject('alice')
        .setIssuedAt().setExpirationTime('60s').sign(privateKey);
      await expect(createEnclaveIssuerAuthenticator(config).authenticate(bearer(forged))).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      await rm(config.file);
      await expect(createEnclaveIssuerAuthenticator(config).authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    } finally {
      await writeFile(config.file, original);
    }
  });

  it('a token verified before is refused once it expires, and once the published key changes or goes (same authenticator)', async () => {
    let at = new Date();
    const auth = createEnclaveIssuerAuthenticator({ ...config, now: () => at });
    const token = bearer(await issuer.tokenFor('alice'));
    expect(await auth.authenticate(token)).toEqual({ user: 'alice', admin: false });
    expect(await auth.authenticate(token)).toEqual({ user: 'alice', admin: false }); // the verified one, again
    const exp = (JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as { exp: number }).exp;
    const original = await readFile(config.file, 'utf8');
    try {
      at = new Date((exp + 31) * 1000); // past exp and the clock tolerance, still within the publication's 5 minutes
      await expect(auth.authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      at = new Date();
      expect(await auth.authenticate(token)).toEqual({ user: 'alice', admin: false });
      // a new enclave publishes its own valid key: the old enclave's token, verified before, is refused
      const nsm = await SimulatedNsm.create({ dataDir: dir, pcrs: { 0: PCR0 } });
      const successor = await startEnclaveTokenIssuer(nsm, new Uint8Array(randomBytes(64)), dir);
      try {
        expect(await auth.authenticate(bearer(await successor.tokenFor('alice')))).toEqual({ user: 'alice', admin: false });
        await expect(auth.authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      } finally {
        await successor.close();
      }
      const { publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
      const { exportJWK } = await import('jose');
      const pub = JSON.parse(original) as { jwk: object };
      pub.jwk = await exportJWK(publicKey);
      await writeFile(config.file, JSON.stringify(pub)); // another key (its document does not name it: refused too)
      await expect(auth.authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      await rm(config.file);
      await expect(auth.authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    } finally {
      await writeFile(config.file, original);
    }
    expect(await auth.authenticate(token)).toEqual({ user: 'alice', admin: false });
  });

  it('refuses a token the enclave key did not sign, and none at all', async () => {
    const auth = createEnclaveIssuerAuthenticator(config);
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const foreign = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setIssuer('coffer-enclave').setAudience('coffer-storage').setSubject('alice')
      .setIssuedAt().setExpirationTime('60s').sign(privateKey);
    await expect(auth.authenticate(bearer(foreign))).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(auth.authenticate(undefined)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('routes coffer-enclave tokens to the enclave check only; without one configured they are refused', async () => {
    const base: Authenticator = { authenticate: async () => ({ user: 'from-base', admin: true }) };
    const token = bearer(await issuer.tokenFor('bob'));
    expect(await withEnclaveIssuer(base, createEnclaveIssuerAuthenticator(config)).authenticate(token)).toEqual({ user: 'bob', admin: false });
    await expect(withEnclaveIssuer(base, null).authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await withEnclaveIssuer(base, null).authenticate('Bearer not.a.jwt')).toEqual({ user: 'from-base', admin: true });
  });
});
