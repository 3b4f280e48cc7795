// The keys path end to end, as `npm start` runs it: `startDev` brings up the embedded KMS (dev attestation
// root), the vault key whose policy admits only the development enclave measurement, and the storage service.
// A client seals with a KMS data key; an enclave with the right measurement gets the key back only as CMS
// CiphertextForRecipient and opens the chunks; a wrong measurement is refused; `keys rewrap` moves every blob
// key to another KMS key (resumable after an interruption, audited, chunks untouched).
import { generateKeyPairSync } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CreateKeyCommand, DecryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedNsm } from '../../enclave/attestation/index.js';
import { KmsDataKeys } from '../../src/client/data-keys.js';
import { uploadStream } from '../../src/client/upload.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { blobIdFromHex, openChunk } from '../../src/crypto/index.js';
import { startDev, type RunningDev } from '../../src/dev.js';
import { isCofferError } from '../../src/errors.js';
import { mintDevToken } from '../../src/api/index.js';
import { attestedKeyPolicy, AwsKeyService } from '../../src/kms/index.js';
import { openMetadataStore } from '../../src/metadata/index.js';
import { rewrapAll } from '../../src/keys/rewrap.js';
import { verifyAuditChain } from '../../src/vault/index.js';
import { createLogger } from '../../src/telemetry/index.js';

const MiB = 1024 * 1024;
let work: string;
let dev: RunningDev;
let client: VaultClient;
let keys: AwsKeyService;
const files = new Map<string, { blobId: string; bytes: Buffer }>();

function adminCreds() {
  return { accessKeyId: dev.sealer.accessKeyId, secretAccessKey: dev.sealer.secretAccessKey };
}

function rsaRecipient() {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { spki: publicKey.export({ type: 'spki', format: 'der' }), privateKey };
}

async function openAsEnclave(nsm: SimulatedNsm, vaultPath: string, service: AwsKeyService = keys): Promise<Buffer> {
  const { manifest } = await client.manifestByPath(vaultPath);
  const { spki, privateKey } = rsaRecipient();
  const doc = await nsm.attest({ publicKey: new Uint8Array(spki) });
  const dek = await service.decryptForRecipient(manifest.keyRecord, manifest.blobId, doc, privateKey);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < manifest.chunkCount; i++) {
    const sealed = await client.getChunk(manifest.blobId, i);
    parts.push(await openChunk(dek, sealed, { blobId: blobIdFromHex(manifest.blobId), index: i, keyGeneration: manifest.keyGeneration, final: i === manifest.chunkCount - 1 }));
  }
  return Buffer.concat(parts);
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-kms-flow-'));
  const dataDir = path.join(work, 'data');
  dev = await startDev({ dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', noGateway: true, logger: createLogger({ level: 'silent' }) });
  const token = await mintDevToken(dataDir, { user: 'alice' });
  client = new VaultClient({ server: dev.storageUrl, token });
  keys = new AwsKeyService({ keyId: dev.keyAlias, endpoint: dev.kmsUrl, region: dev.region, credentials: adminCreds() });
  const sealer = new KmsDataKeys(keys);
  for (const [name, size] of [['/small.txt', 11], ['/big.bin', 8 * MiB + 5]] as const) {
    const bytes = randomBytes(size);
    const r = await uploadStream(client, [bytes], size, { path: name, keys: sealer });
    files.set(name, { blobId: r.blobId, bytes });
  }
}, 180_000);

afterAll(async () => {
  client?.close();
  keys?.close();
  await dev?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('KMS-held keys', () => {
  it('stores only the wrapped key, bound to the blob', async () => {
    const { manifest } = await client.manifestByPath('/big.bin');
    expect(manifest.keyRecord).toMatchObject({ scheme: 'kms', encryptionContext: { 'coffer:blob': manifest.blobId } });
    expect(JSON.stringify(manifest.keyRecord)).not.toMatch(/plaintext/i);
  });

  it('an enclave with the admitted measurement gets the key and reads byte-identical data', async () => {
    const nsm = await SimulatedNsm.create({ dataDir: path.join(work, 'data'), pcrs: { 0: dev.measurement.pcr0 } });
    for (const [name, f] of files) expect((await openAsEnclave(nsm, name)).equals(f.bytes)).toBe(true);
  });

  it('an enclave running other code is refused', async () => {
    const other = path.join(work, 'other-bundle');
    await mkdir(other, { recursive: true });
    await writeFile(path.join(other, 'main.js'), 'console.log("exfiltrate")\n');
    const nsm = await SimulatedNsm.create({ dataDir: path.join(work, 'data'), bundleDir: other });
    const err = await openAsEnclave(nsm, '/small.txt').catch((e: unknown) => e);
    expect(isCofferError(err, 'KMS_ACCESS_DENIED')).toBe(true);
  });

  it('a client cannot Decrypt a blob key without attestation (AccessDeniedException)', async () => {
    const { manifest } = await client.manifestByPath('/small.txt');
    const kms = new KMSClient({ region: dev.region, endpoint: dev.kmsUrl, credentials: adminCreds() });
    try {
      const record = manifest.keyRecord as unknown as { ciphertextBlob: string; encryptionContext: Record<string, string> };
      const err = await kms
        .send(new DecryptCommand({ CiphertextBlob: Buffer.from(record.ciphertextBlob, 'base64'), EncryptionContext: record.encryptionContext }))
        .catch((e: unknown) => e);
      expect((err as Error).name).toBe('AccessDeniedException');
    } finally {
      kms.destroy();
    }
  });

  it('rewrap moves every blob key to another KMS key, resumes after an interruption, chunks untouched', async () => {
    const kms = new KMSClient({ region: dev.region, endpoint: dev.kmsUrl, credentials: adminCreds() });
    const arn = dev.sealer.principalArn;
    const created = await kms.send(new CreateKeyCommand({ Policy: attestedKeyPolicy({ admins: [arn], sealers: [arn], enclaves: [arn], imageSha384: [dev.measurement.pcr0] }) }));
    const toKeyArn = created.KeyMetadata?.Arn as string;
    const before = await Promise.all([...files.keys()].map(async (p) => (await client.manifestByPath(p)).manifest));
    const store = await openMetadataStore({ kind: 'sqlite', path: path.join(work, 'data', 'metadata.sqlite') });
    try {
      const service = new AwsKeyService({ keyId: toKeyArn, client: kms });
      // interrupted after the first blob
      const ac = new AbortController();
      const first = await rewrapAll({ store, keys: service, toKeyArn, actor: ':operator:test', signal: ac.signal, onBlob: () => ac.abort() }).catch((e: unknown) => e);
      expect(isCofferError(first, 'TIMEOUT')).toBe(true);
      // run again: continues, and a third run has nothing left to do
      const second = await rewrapAll({ store, keys: service, toKeyArn, actor: ':operator:test' });
      expect(second.rewrapped + second.already).toBe(files.size);
      expect(second.already).toBeGreaterThanOrEqual(1);
      const third = await rewrapAll({ store, keys: service, toKeyArn, actor: ':operator:test' });
      expect(third).toMatchObject({ rewrapped: 0, already: files.size });
      const audit = await verifyAuditChain(store);
      expect(audit.ok).toBe(true);
      const entries = await store.listAudit(0, 10_000);
      expect(entries.filter((e) => e.action === 'key.rewrap').length).toBeGreaterThanOrEqual(files.size);
    } finally {
      await store.close();
    }
    const after = await Promise.all([...files.keys()].map(async (p) => (await client.manifestByPath(p)).manifest));
    after.forEach((m, i) => {
      expect(m.keyRecord.keyId).toBe(toKeyArn);
      expect(m.chunks.map((c) => c.sha256)).toEqual(before[i]?.chunks.map((c) => c.sha256));
    });
    const nsm = await SimulatedNsm.create({ dataDir: path.join(work, 'data'), pcrs: { 0: dev.measurement.pcr0 } });
    for (const [name, f] of files) expect((await openAsEnclave(nsm, name)).equals(f.bytes)).toBe(true);
    kms.destroy();
  });

  it('a restart reuses the vault key and its policy', async () => {
    const before = { arn: dev.keyArn, pcr0: dev.measurement.pcr0 };
    client.close();
    keys.close();
    await dev.close();
    dev = await startDev({ dataDir: path.join(work, 'data'), listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', noGateway: true, logger: createLogger({ level: 'silent' }) });
    expect(dev.keyArn).toBe(before.arn);
    expect(dev.measurement.pcr0).toBe(before.pcr0);
    client = new VaultClient({ server: dev.storageUrl, token: await mintDevToken(path.join(work, 'data'), { user: 'alice' }) });
    keys = new AwsKeyService({ keyId: dev.keyAlias, endpoint: dev.kmsUrl, region: dev.region, credentials: adminCreds() });
    const nsm = await SimulatedNsm.create({ dataDir: path.join(work, 'data'), pcrs: { 0: dev.measurement.pcr0 } });
    const small = files.get('/small.txt');
    expect((await openAsEnclave(nsm, '/small.txt')).equals(small?.bytes as Buffer)).toBe(true);
  });
});
