// The attested-recipient flow end to end over HTTP: documents from the dev SimulatedNsm, a key policy allowing
// one measurement, CiphertextForRecipient opened by Coffer's KeyService and by openssl; and every way it must
// be refused (wrong PCR, expired, other root, real AWS documents under the dev root, no Recipient, wrong context).
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevRoot, SimulatedNsm } from '../../../enclave/attestation/index.js';
import { decodeAttestationDocument } from '../../attestation/index.js';
import { fixture, nitroFixtures } from '../../attestation/nitro-fixtures.test-util.js';
import { isCofferError } from '../../errors.js';
import { AwsKeyService, attestedKeyPolicy, type KmsKeyRecord } from '../index.js';
import { ALICE_ARN, BOB_ARN, CAROL_ARN, startHarness, type Harness } from './harness.js';

const GOOD_PCR0 = 'a1'.repeat(48);
const BAD_PCR0 = 'b2'.repeat(48);
const blobId = randomBytes(16).toString('hex');

let h: Harness;
let otherDir: string;
let keyArn: string;
let sealer: AwsKeyService; // alice: the client sealer
let admin: AwsKeyService; // carol: the key administrator
let enclave: AwsKeyService; // bob: the enclave principal
let enclaveKey: { privateKey: KeyObject; spki: Buffer };
let goodDoc: Uint8Array;
let generated: { plaintextKey: Uint8Array; keyRecord: KmsKeyRecord };

const vaultPolicy = (): string => attestedKeyPolicy({ admins: [CAROL_ARN], sealers: [ALICE_ARN], enclaves: [BOB_ARN], imageSha384: [GOOD_PCR0] });

function rsa(): { privateKey: KeyObject; spki: Buffer } {
  const p = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey: p.privateKey, spki: p.publicKey.export({ format: 'der', type: 'spki' }) };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isCofferError(e)) return `${e.code}:${String(e.details?.kmsError ?? '')}`;
    return (e as Error).name;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  h = await startHarness(async (dataDir) => (await ensureDevRoot(dataDir)).trustRoot);
  keyArn = (await h.client(h.carol).send(new CreateKeyCommand({ Policy: vaultPolicy(), BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata?.Arn as string;
  const svc = (cred: typeof h.alice, keyId = keyArn): AwsKeyService =>
    new AwsKeyService({ keyId, region: h.server.region, endpoint: h.server.url, credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey } });
  sealer = svc(h.alice);
  admin = svc(h.carol);
  enclave = svc(h.bob);
  enclaveKey = rsa();
  const nsm = await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: GOOD_PCR0 } });
  goodDoc = await nsm.attest({ publicKey: enclaveKey.spki });
  generated = await sealer.generateDataKey(blobId);
  otherDir = mkdtempSync(join(tmpdir(), 'coffer-kms-other-'));
});
afterAll(async () => {
  sealer.close();
  admin.close();
  enclave.close();
  await h.close();
  rmSync(otherDir, { recursive: true, force: true });
});

describe('Recipient: attested release of data keys', () => {
  it('an allowed measurement gets the data key as CiphertextForRecipient, and only that way', async () => {
    expect(generated.keyRecord).toMatchObject({ scheme: 'kms', keyId: keyArn, encryptionContext: { 'coffer:blob': blobId } });
    const key = await enclave.decryptForRecipient(generated.keyRecord, blobId, goodDoc, enclaveKey.privateKey);
    expect(Buffer.from(key).equals(Buffer.from(generated.plaintextKey))).toBe(true);

    const raw = await h.client(h.bob).send(new DecryptCommand({
      CiphertextBlob: Buffer.from(generated.keyRecord.ciphertextBlob, 'base64'), EncryptionContext: generated.keyRecord.encryptionContext,
      Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: goodDoc },
    }));
    expect(raw.Plaintext === undefined || raw.Plaintext.length === 0).toBe(true);
    // the envelope is standard CMS: openssl opens it with the enclave's private key
    const dir = mkdtempSync(join(tmpdir(), 'coffer-kms-ossl-'));
    try {
      writeFileSync(join(dir, 'env.der'), raw.CiphertextForRecipient as Uint8Array);
      writeFileSync(join(dir, 'key.pem'), enclaveKey.privateKey.export({ format: 'pem', type: 'pkcs8' }));
      const out = execFileSync('openssl', ['cms', '-decrypt', '-inform', 'DER', '-in', join(dir, 'env.der'), '-inkey', join(dir, 'key.pem'), '-binary']);
      expect(out.equals(Buffer.from(generated.plaintextKey))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an enclave generates a new data key through Recipient; a host replaying its document cannot open it', async () => {
    const id = randomBytes(16).toString('hex');
    const g = await enclave.generateDataKeyForRecipient(id, goodDoc, enclaveKey.privateKey);
    expect(g.plaintextKey).toHaveLength(32);
    const again = await enclave.decryptForRecipient(g.keyRecord, id, goodDoc, enclaveKey.privateKey);
    expect(Buffer.from(again).equals(Buffer.from(g.plaintextKey))).toBe(true);
    expect(await codeOf(enclave.decryptForRecipient(g.keyRecord, id, goodDoc, rsa().privateKey))).toBe('CMS:');
  });

  it('denies Decrypt without a Recipient on an attestation-only key, for every principal', async () => {
    const blob = Buffer.from(generated.keyRecord.ciphertextBlob, 'base64');
    for (const cred of [h.alice, h.bob, h.carol]) {
      const e = await h.client(cred).send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: generated.keyRecord.encryptionContext })).catch((x: Error) => x);
      expect((e as Error).name).toBe('AccessDeniedException');
    }
    // and the enclave principal may not take plaintext data keys either
    const e = await h.client(h.bob).send(new GenerateDataKeyCommand({ KeyId: keyArn, NumberOfBytes: 32 })).catch((x: Error) => x);
    expect((e as Error).name).toBe('AccessDeniedException');
  });

  it('denies a wrong PCR, an expired document, and documents from another root', async () => {
    const wrongPcr = await (await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: BAD_PCR0 } })).attest({ publicKey: enclaveKey.spki });
    expect(await codeOf(enclave.decryptForRecipient(generated.keyRecord, blobId, wrongPcr, enclaveKey.privateKey))).toBe('KMS_ACCESS_DENIED:AccessDeniedException');

    const past = new Date(Date.now() - 60 * 60_000);
    const expired = await (await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: GOOD_PCR0 }, clock: () => past })).attest({ publicKey: enclaveKey.spki });
    expect(await codeOf(enclave.decryptForRecipient(generated.keyRecord, blobId, expired, enclaveKey.privateKey))).toBe('KMS_ACCESS_DENIED:AccessDeniedException');

    const foreign = await (await SimulatedNsm.create({ dataDir: otherDir, pcrs: { 0: GOOD_PCR0 } })).attest({ publicKey: enclaveKey.spki });
    expect(await codeOf(enclave.decryptForRecipient(generated.keyRecord, blobId, foreign, enclaveKey.privateKey))).toBe('KMS_ACCESS_DENIED:AccessDeniedException');

    for (const f of nitroFixtures) {
      expect(await codeOf(enclave.decryptForRecipient(generated.keyRecord, blobId, f.bytes, enclaveKey.privateKey))).toBe('KMS_ACCESS_DENIED:AccessDeniedException');
    }
    const garbage = new Uint8Array([0x84, 1, 2, 3]);
    expect(await codeOf(enclave.decryptForRecipient(generated.keyRecord, blobId, garbage, enclaveKey.privateKey))).toBe('KMS:ValidationException');
  });

  it('never releases a key to a debug-mode enclave, even under a policy that pins only PCR3 (which debug enclaves keep)', async () => {
    const ROLE_PCR3 = 'c3'.repeat(48);
    const policy = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'Admin', Effect: 'Allow', Principal: { AWS: [ALICE_ARN] }, Action: ['kms:PutKeyPolicy', 'kms:GenerateDataKey', 'kms:DescribeKey'], Resource: '*' },
        {
          Sid: 'RoleOnly', Effect: 'Allow', Principal: { AWS: [BOB_ARN] }, Action: ['kms:Decrypt'], Resource: '*',
          Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR3': [ROLE_PCR3] } },
        },
      ],
    });
    const arn = (await h.client(h.alice).send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata?.Arn as string;
    const svc = (cred: typeof h.alice): AwsKeyService =>
      new AwsKeyService({ keyId: arn, region: h.server.region, endpoint: h.server.url, credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey } });
    const [aliceSvc, bobSvc] = [svc(h.alice), svc(h.bob)];
    try {
      const made = await aliceSvc.generateDataKey(blobId);
      const debug = await (await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: '0'.repeat(96), 3: ROLE_PCR3 } })).attest({ publicKey: enclaveKey.spki });
      expect(await codeOf(bobSvc.decryptForRecipient(made.keyRecord, blobId, debug, enclaveKey.privateKey))).toBe('KMS_ACCESS_DENIED:AccessDeniedException');
      // the same policy with a real (non-zero) image measurement: released
      const real = await (await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: GOOD_PCR0, 3: ROLE_PCR3 } })).attest({ publicKey: enclaveKey.spki });
      const key = await bobSvc.decryptForRecipient(made.keyRecord, blobId, real, enclaveKey.privateKey);
      expect(Buffer.from(key).equals(Buffer.from(made.plaintextKey))).toBe(true);
    } finally {
      aliceSvc.close();
      bobSvc.close();
    }
    expect(() => attestedKeyPolicy({ admins: [], sealers: [], enclaves: [BOB_ARN], imageSha384: ['0'.repeat(96)] })).toThrow(/debug-mode/);
  });

  it('refuses a wrong encryption context (server side) and a record for another blob (client side)', async () => {
    const other = randomBytes(16).toString('hex');
    const forged = { ...generated.keyRecord, encryptionContext: { 'coffer:blob': other } };
    expect(await codeOf(enclave.decryptForRecipient(forged, other, goodDoc, enclaveKey.privateKey))).toBe('KEY_INVALID:InvalidCiphertextException');
    expect(await codeOf(enclave.decryptForRecipient(generated.keyRecord, other, goodDoc, enclaveKey.privateKey))).toBe('KEY_INVALID:');
    const extra = { ...generated.keyRecord, encryptionContext: { 'coffer:blob': blobId, more: 'x' } };
    expect(await codeOf(enclave.decryptForRecipient(extra, blobId, goodDoc, enclaveKey.privateKey))).toBe('KEY_INVALID:');
  });

  it('a document whose key is not RSA-2048+ gets no envelope', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
    const doc = await (await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: GOOD_PCR0 } })).attest({ publicKey: ec });
    expect(await codeOf(enclave.decryptForRecipient(generated.keyRecord, blobId, doc, enclaveKey.privateKey))).toBe('KMS:ValidationException');
    const noKey = await (await SimulatedNsm.create({ dataDir: h.dataDir, pcrs: { 0: GOOD_PCR0 } })).attest({});
    expect(await codeOf(enclave.decryptForRecipient(generated.keyRecord, blobId, noKey, enclaveKey.privateKey))).toBe('KMS:ValidationException');
  });

  it('rewraps a record under another attested key without touching the data key', async () => {
    const second = (await h.client(h.carol).send(new CreateKeyCommand({ Policy: vaultPolicy(), BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata?.Arn as string;
    expect(await codeOf(sealer.rewrap(generated.keyRecord, second))).toBe('KMS_ACCESS_DENIED:AccessDeniedException');
    const moved = await admin.rewrap(generated.keyRecord, second);
    expect(moved.keyId).toBe(second);
    expect(moved.encryptionContext).toEqual(generated.keyRecord.encryptionContext);
    const key = await enclave.decryptForRecipient(moved, blobId, goodDoc, enclaveKey.privateKey);
    expect(Buffer.from(key).equals(Buffer.from(generated.plaintextKey))).toBe(true);
    expect(await codeOf(enclave.rewrap(generated.keyRecord, second))).toBe('KMS_ACCESS_DENIED:AccessDeniedException');
  });
});

describe('Recipient under the AWS Nitro root, with real documents', () => {
  const f = fixture('base-nitro-validator.cbor');
  const at = new Date(Date.parse(f.timestamp) + 1000);
  let aws: Harness;
  let client: KMSClient;
  let key: string;
  beforeAll(async () => {
    aws = await startHarness(() => ({ kind: 'aws' }), { now: () => at });
    client = aws.client(aws.alice, { systemClockOffset: at.getTime() - Date.now() });
    const pcr0 = Buffer.from(decodeAttestationDocument(f.bytes).pcrs.get(0) as Uint8Array).toString('hex');
    key = (await client.send(new CreateKeyCommand({ Policy: attestedKeyPolicy({ admins: [ALICE_ARN], sealers: [], enclaves: [ALICE_ARN], imageSha384: [pcr0] }), BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata?.KeyId as string;
  });
  afterAll(() => aws.close());

  it('accepts the chain and PCR0 of a real document, then refuses its non-RSA key; a wrong PCR0 is denied first', async () => {
    const send = (k: string) => client.send(new GenerateDataKeyCommand({ KeyId: k, NumberOfBytes: 32, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: f.bytes } }));
    const e1 = (await send(key).catch((x: Error) => x)) as Error;
    expect(e1.name).toBe('ValidationException');
    expect(e1.message).toMatch(/public key/);
    const other = (await client.send(new CreateKeyCommand({ Policy: attestedKeyPolicy({ admins: [ALICE_ARN], sealers: [], enclaves: [ALICE_ARN], imageSha384: [BAD_PCR0] }), BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata?.KeyId as string;
    expect(((await send(other).catch((x: Error) => x)) as Error).name).toBe('AccessDeniedException');
    // a simulated (dev-root) document is foreign to an AWS-root KMS
    const devDir = mkdtempSync(join(tmpdir(), 'coffer-kms-dev-'));
    try {
      const dev = await (await SimulatedNsm.create({ dataDir: devDir, pcrs: { 0: GOOD_PCR0 }, clock: () => at })).attest({ publicKey: rsa().spki });
      const e3 = (await client.send(new GenerateDataKeyCommand({ KeyId: key, NumberOfBytes: 32, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: dev } })).catch((x: Error) => x)) as Error;
      expect(e3.name).toBe('AccessDeniedException');
    } finally {
      rmSync(devDir, { recursive: true, force: true });
    }
  });
});
