// SimulatedNsm and the development root: the provider contract, plus dev-specific guarantees (root reuse,
// key file modes, the "DEV" subject rule, PCRs from the bundle, dev vs AWS separation).
import { X509Certificate, webcrypto } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, describe, expect, it } from 'vitest';
import { isCofferError } from '../../src/errors.js';
import { decodeAttestationDocument, verifyAttestation, verifyAttestationDocument } from '../../src/attestation/index.js';
import { ensureDevRoot, ES384, serialNumber } from './dev-root.js';
import { loadDevRoot, measureEnclaveBundle, SimulatedNsm } from './index.js';
import { runAttestationProviderContract } from './provider.case.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'coffer-att-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

runAttestationProviderContract('SimulatedNsm', async () => ({
  provider: await SimulatedNsm.create({ dataDir: await tempDir(), pcrs: { 0: 'ab'.repeat(48) } }),
  foreignRoot: { kind: 'aws' },
}));

describe('development root', () => {
  it('is created once per data directory, reused after, with private keys mode 0600', async () => {
    const dataDir = await tempDir();
    const [a, b] = await Promise.all([ensureDevRoot(dataDir), ensureDevRoot(dataDir)]);
    expect(a.rootFingerprint).toBe(b.rootFingerprint);
    const c = await ensureDevRoot(dataDir);
    expect(c.rootCertPem).toBe(a.rootCertPem);
    expect((await loadDevRoot(dataDir)).rootFingerprint).toBe(a.rootFingerprint);
    for (const k of ['root.key', 'intermediate.key']) expect((await stat(join(a.dir, k))).mode & 0o777).toBe(0o600);
    const root = new X509Certificate(a.rootCertPem);
    expect(root.subject).toContain('Coffer DEV attestation root — NOT FOR PRODUCTION');
    expect(root.ca).toBe(true);
    expect(new X509Certificate(a.intermediateCertPem).checkIssued(root)).toBe(true);
    // another data directory gets another root, and documents do not cross between them
    const other = await ensureDevRoot(await tempDir());
    expect(other.rootFingerprint).not.toBe(a.rootFingerprint);
  });

  it('refuses to load a missing root, or one whose key file others can read', async () => {
    const dataDir = await tempDir();
    await expect(loadDevRoot(dataDir)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const r = await ensureDevRoot(dataDir);
    await chmod(join(r.dir, 'intermediate.key'), 0o644);
    await expect(loadDevRoot(dataDir)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('documents verify only under their own dev root, never under AWS or another dev root', async () => {
    const nsm = await SimulatedNsm.create({ dataDir: await tempDir(), pcrs: { 0: 'cd'.repeat(48) } });
    const other = await SimulatedNsm.create({ dataDir: await tempDir(), pcrs: { 0: 'cd'.repeat(48) } });
    const bytes = await nsm.attest({ nonce: new Uint8Array([5]) });
    verifyAttestation(bytes, { root: nsm.trustRoot, pcrPolicy: { pcrs: { 0: 'cd'.repeat(48) } }, expectedNonce: new Uint8Array([5]) });
    expect(() => verifyAttestationDocument(bytes, { root: { kind: 'aws' } })).toThrow(/pinned aws root/);
    expect(() => verifyAttestationDocument(bytes, { root: other.trustRoot })).toThrow(/pinned dev root/);
    expect(() => verifyAttestation(bytes, { root: nsm.trustRoot, pcrPolicy: { pcrs: { 0: 'ce'.repeat(48) } } })).toThrow(/PCR0/);
  });

  it('refuses a dev root without "DEV" in its subject', async () => {
    const keys = (await webcrypto.subtle.generateKey(ES384, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name: 'CN=Coffer attestation root',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3600_000),
      keys,
      signingAlgorithm: ES384,
      extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const nsm = await SimulatedNsm.create({ dataDir: await tempDir(), pcrs: { 0: 'ab'.repeat(48) } });
    const bytes = await nsm.attest({});
    try {
      verifyAttestationDocument(bytes, { root: { kind: 'dev', rootCertPem: cert.toString('pem') } });
      throw new Error('accepted');
    } catch (e) {
      expect(isCofferError(e, 'INVALID_ARGUMENT'), String(e)).toBe(true);
      expect((e as Error).message).toMatch(/DEV/);
    }
  });

  it('leaves are short-lived: a document fails once its leaf expired, and at a clock before it was issued', async () => {
    const issued = new Date('2030-01-01T00:00:00.000Z');
    const nsm = await SimulatedNsm.create({ dataDir: await tempDir(), pcrs: { 0: 'ab'.repeat(48) }, clock: () => issued });
    const bytes = await nsm.attest({});
    verifyAttestationDocument(bytes, { root: nsm.trustRoot, now: new Date(issued.getTime() + 1000) });
    const later = new Date(issued.getTime() + 3 * 3600_000 + 120_000);
    expect(() => verifyAttestationDocument(bytes, { root: nsm.trustRoot, now: later, maxAgeMs: 1e12 })).toThrow(/expired/);
    expect(() => verifyAttestationDocument(bytes, { root: nsm.trustRoot, now: new Date(issued.getTime() - 600_000) })).toThrow(/not valid yet/);
  });
});

describe('PCRs from the enclave bundle', () => {
  it('puts the bundle measurement into PCR0/1/2 and zeros elsewhere', async () => {
    const bundle = await tempDir();
    await writeFile(join(bundle, 'main.js'), 'console.log("enclave")\n');
    const m = await measureEnclaveBundle(bundle);
    const nsm = await SimulatedNsm.create({ dataDir: await tempDir(), bundleDir: bundle });
    const doc = decodeAttestationDocument(await nsm.attest({}));
    expect(Buffer.from(doc.pcrs.get(0) as Uint8Array).toString('hex')).toBe(m.pcr0);
    expect(Buffer.from(doc.pcrs.get(1) as Uint8Array).toString('hex')).toBe(m.pcr1);
    expect(Buffer.from(doc.pcrs.get(2) as Uint8Array).toString('hex')).toBe(m.pcr0);
    expect(Buffer.from(doc.pcrs.get(3) as Uint8Array).toString('hex')).toBe('0'.repeat(96));
  });
  it('refuses malformed PCR input', async () => {
    await expect(SimulatedNsm.create({ dataDir: await tempDir() })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(SimulatedNsm.create({ dataDir: await tempDir(), pcrs: { 0: 'AB'.repeat(48) } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(SimulatedNsm.create({ dataDir: await tempDir(), pcrs: { 40: 'ab'.repeat(48) } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(SimulatedNsm.create({ dataDir: await tempDir(), pcrs: { 0: 'ab'.repeat(48) }, moduleId: 'a, CN=evil' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
