// Key custody (issue 9 point 7), as `npm start` runs it: every route to a blob's plaintext data key that a
// holder of a KMS credential of this data directory can take — the client credential `coffer dev` prints, the
// administrator's kept in the data dir, the enclave's — is refused by the embedded KMS over real HTTP. The only
// way out stays CiphertextForRecipient to an enclave whose verified measurement the key policy admits.
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CreateAliasCommand, CreateGrantCommand, CreateKeyCommand, DecryptCommand, DeleteAliasCommand, DescribeKeyCommand, EncryptCommand,
  GenerateDataKeyCommand, GenerateDataKeyWithoutPlaintextCommand, GetKeyPolicyCommand, KMSClient, PutKeyPolicyCommand, ReEncryptCommand,
  ScheduleKeyDeletionCommand, UpdateAliasCommand,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedNsm } from '../../enclave/attestation/index.js';
import { mintDevToken } from '../../src/api/index.js';
import { KmsDataKeys } from '../../src/client/data-keys.js';
import { uploadStream } from '../../src/client/upload.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { blobIdFromHex, openChunk } from '../../src/crypto/index.js';
import { startDev, vaultKeyPolicy, type RunningDev } from '../../src/dev.js';
import { isCofferError } from '../../src/errors.js';
import { AwsKeyService, credentialsPath, loadOrCreateCredentials, openEnvelope, roleCredentials, type KmsCredential } from '../../src/kms/index.js';
import { createLogger } from '../../src/telemetry/index.js';
import { runCliProcess } from '../../bench/cli-process.js';
import { METADATA_KEY_CONTEXT, openMetadataKey, type WrappedKeySlot } from '../../enclave/integrity/index.js';

let work: string;
let dataDir: string;
let dev: RunningDev;
let vault: VaultClient;
let admin: KmsCredential;
let blob: { id: string; record: { ciphertextBlob: string; encryptionContext: Record<string, string> }; chunk0: Uint8Array; keyGeneration: number; chunks: number };
let realDek: Buffer;
const clients: KMSClient[] = [];

function kmsAs(cred: KmsCredential): KMSClient {
  const c = new KMSClient({ region: dev.region, endpoint: dev.kmsUrl, credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey }, maxAttempts: 1 });
  clients.push(c);
  return c;
}

/** The AWS error type a call failed with; a call that succeeds fails the test, showing what it returned. */
async function refusal(p: Promise<unknown>): Promise<string> {
  let result: unknown;
  try {
    result = await p;
  } catch (e) {
    return (e as Error).name;
  }
  throw new Error(`expected a refusal, got ${JSON.stringify(result, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v))}`);
}

function rsa(): { privateKey: KeyObject; spki: Buffer } {
  const p = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey: p.privateKey, spki: p.publicKey.export({ format: 'der', type: 'spki' }) };
}

const ciphertext = (): Buffer => Buffer.from(blob.record.ciphertextBlob, 'base64');
const allowAll = (arn: string): string =>
  JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: arn }, Action: 'kms:*', Resource: '*' }] });

/** Whether `key` opens the blob's first chunk (the test's ground truth for "is this the data key"). */
async function opensChunk(key: Uint8Array): Promise<boolean> {
  const expect = { blobId: blobIdFromHex(blob.id), index: 0, keyGeneration: blob.keyGeneration, final: blob.chunks === 1 };
  return openChunk(key, blob.chunk0, expect).then(() => true, () => false);
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-custody-'));
  dataDir = path.join(work, 'data');
  dev = await startDev({ dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', noGateway: true, logger: createLogger({ level: 'silent' }) });
  admin = roleCredentials(await loadOrCreateCredentials(dataDir)).admin;
  vault = new VaultClient({ server: dev.storageUrl, token: await mintDevToken(dataDir, { user: 'alice' }) });
  // a client seals a file in KMS mode with the credential `coffer dev` prints
  const sealer = new KmsDataKeys(new AwsKeyService({ keyId: dev.keyArn, endpoint: dev.kmsUrl, region: dev.region, credentials: dev.sealer }));
  const bytes = randomBytes(100_000);
  await uploadStream(vault, [bytes], bytes.length, { path: '/secret.bin', keys: sealer });
  sealer.close?.();
  const { manifest } = await vault.manifestByPath('/secret.bin');
  blob = {
    id: manifest.blobId,
    record: manifest.keyRecord as unknown as typeof blob.record,
    chunk0: await vault.getChunk(manifest.blobId, 0),
    keyGeneration: manifest.keyGeneration,
    chunks: manifest.chunkCount,
  };
  // ground truth: the attested enclave's way, which must keep working
  const enclave = new AwsKeyService({ keyId: dev.keyArn, endpoint: dev.kmsUrl, region: dev.region, credentials: dev.enclaveCredential });
  const nsm = await SimulatedNsm.create({ dataDir, pcrs: { 0: dev.measurement.pcr0 } });
  const pair = rsa();
  realDek = Buffer.from(await enclave.decryptForRecipient(manifest.keyRecord, blob.id, await nsm.attest({ publicKey: pair.spki }), pair.privateKey));
  enclave.close();
  expect(await opensChunk(realDek)).toBe(true);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.destroy();
  vault?.close();
  await dev?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('roles', () => {
  it('the client credential is a sealer, distinct from the administrator and the enclave; the file is 0600', async () => {
    expect(new Set([dev.sealer.accessKeyId, dev.enclaveCredential.accessKeyId, admin.accessKeyId]).size).toBe(3);
    expect(dev.sealer.principalArn).toMatch(/:user\/coffer-client$/);
    expect(dev.enclaveCredential.principalArn).toMatch(/:role\/coffer-enclave$/);
    expect((await stat(credentialsPath(dataDir))).mode & 0o777).toBe(0o600);
    expect(dev.keyPolicy).toBe(vaultKeyPolicy(roleCredentials(await loadOrCreateCredentials(dataDir)), dev.measurement.pcr0));
  });

  it('the enclave credential gets no plaintext data key, new or old', async () => {
    const enclave = kmsAs(dev.enclaveCredential);
    expect(await refusal(enclave.send(new GenerateDataKeyCommand({ KeyId: dev.keyArn, KeySpec: 'AES_256', EncryptionContext: blob.record.encryptionContext })))).toBe('AccessDeniedException');
    expect(await refusal(enclave.send(new DecryptCommand({ CiphertextBlob: ciphertext(), EncryptionContext: blob.record.encryptionContext })))).toBe('AccessDeniedException');
  });
});

describe('the paths of issue 9 point 7', () => {
  it('CreateKey, then ReEncrypt of the blob key to it, then Decrypt: refused at ReEncrypt, for the client and the administrator', async () => {
    for (const cred of [dev.sealer, admin, dev.enclaveCredential]) {
      const kms = kmsAs(cred);
      const mine = (await kms.send(new CreateKeyCommand({ Description: 'attacker key' }))).KeyMetadata?.Arn as string;
      expect(await refusal(kms.send(new ReEncryptCommand({
        CiphertextBlob: ciphertext(), SourceEncryptionContext: blob.record.encryptionContext, DestinationKeyId: mine, DestinationEncryptionContext: blob.record.encryptionContext,
      })))).toBe('AccessDeniedException');
      // nothing under "mine" to decrypt; and the original still needs an attestation
      expect(await refusal(kms.send(new DecryptCommand({ CiphertextBlob: ciphertext(), EncryptionContext: blob.record.encryptionContext })))).toBe('AccessDeniedException');
    }
  });

  it('PutKeyPolicy allow-all on the vault key, then Decrypt: refused, with or without the lockout bypass, for every role', async () => {
    for (const cred of [dev.sealer, admin, dev.enclaveCredential]) {
      const kms = kmsAs(cred);
      for (const bypass of [false, true]) {
        const put = kms.send(new PutKeyPolicyCommand({ KeyId: dev.keyArn, PolicyName: 'default', Policy: allowAll(cred.principalArn), BypassPolicyLockoutSafetyCheck: bypass }));
        expect(await refusal(put)).toBe('AccessDeniedException');
      }
      expect(await refusal(kms.send(new DecryptCommand({ CiphertextBlob: ciphertext(), EncryptionContext: blob.record.encryptionContext })))).toBe('AccessDeniedException');
    }
    expect((await kmsAs(admin).send(new GetKeyPolicyCommand({ KeyId: dev.keyArn, PolicyName: 'default' }))).Policy).toBe(dev.keyPolicy);
  });
});

describe('every other route to a plaintext data key', () => {
  it('ReEncrypt to a key that admits another measurement, other principals, or whose policy could later be changed: refused', async () => {
    const kms = kmsAs(admin);
    const roles = roleCredentials(await loadOrCreateCredentials(dataDir));
    const policy = JSON.parse(dev.keyPolicy) as { Statement: Array<{ Sid: string }> };
    const variants: Record<string, string> = {
      'my own enclave build': vaultKeyPolicy(roles, 'ee'.repeat(48)),
      'the administrator as enclave principal': vaultKeyPolicy({ ...roles, enclave: admin }, dev.measurement.pcr0),
      'the same rule without the policy lock': JSON.stringify({ ...policy, Statement: policy.Statement.filter((s) => s.Sid !== 'DenyPolicyChange') }),
    };
    for (const [what, text] of Object.entries(variants)) {
      const key = (await kms.send(new CreateKeyCommand({ Policy: text, BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata?.Arn as string;
      const moved = kms.send(new ReEncryptCommand({ CiphertextBlob: ciphertext(), SourceEncryptionContext: blob.record.encryptionContext, DestinationKeyId: key, DestinationEncryptionContext: blob.record.encryptionContext }));
      expect(await refusal(moved), what).toBe('AccessDeniedException');
    }
  });

  it('ReEncrypt to a key with the identical policy works (keys rewrap) and opens nothing more: Decrypt and PutKeyPolicy there are refused', async () => {
    const kms = kmsAs(admin);
    const twin = (await kms.send(new CreateKeyCommand({ Policy: dev.keyPolicy, BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata?.Arn as string;
    const moved = await kms.send(new ReEncryptCommand({ CiphertextBlob: ciphertext(), SourceEncryptionContext: blob.record.encryptionContext, DestinationKeyId: twin, DestinationEncryptionContext: blob.record.encryptionContext }));
    expect((moved as { Plaintext?: unknown }).Plaintext).toBeUndefined();
    for (const cred of [dev.sealer, admin, dev.enclaveCredential]) {
      const c = kmsAs(cred);
      expect(await refusal(c.send(new DecryptCommand({ CiphertextBlob: moved.CiphertextBlob, EncryptionContext: blob.record.encryptionContext })))).toBe('AccessDeniedException');
      expect(await refusal(c.send(new PutKeyPolicyCommand({ KeyId: twin, Policy: allowAll(cred.principalArn), BypassPolicyLockoutSafetyCheck: true })))).toBe('AccessDeniedException');
    }
  });

  it('the KMS itself keeps an attestation-bound policy fixed, even one that lets its administrator change it', async () => {
    const kms = kmsAs(admin);
    const loose = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { AWS: admin.principalArn }, Action: 'kms:*', Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } },
        { Effect: 'Allow', Principal: { AWS: dev.enclaveCredential.principalArn }, Action: 'kms:Decrypt', Resource: '*', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': dev.measurement.pcr0 } } },
      ],
    });
    const key = (await kms.send(new CreateKeyCommand({ Policy: loose }))).KeyMetadata?.Arn as string;
    const err = await kms.send(new PutKeyPolicyCommand({ KeyId: key, Policy: allowAll(admin.principalArn) })).catch((e: Error) => e);
    expect((err as Error).name).toBe('AccessDeniedException');
    expect((err as Error).message).toMatch(/bound to enclave attestation cannot be changed/);
  });

  it('ReEncrypt within the vault key to another blob\'s context stays attestation-only', async () => {
    const kms = kmsAs(admin);
    const other = { 'coffer:blob': randomBytes(16).toString('hex') };
    const moved = await kms.send(new ReEncryptCommand({ CiphertextBlob: ciphertext(), SourceEncryptionContext: blob.record.encryptionContext, DestinationKeyId: dev.keyArn, DestinationEncryptionContext: other }));
    expect(await refusal(kms.send(new DecryptCommand({ CiphertextBlob: moved.CiphertextBlob, EncryptionContext: other })))).toBe('AccessDeniedException');
  });

  it('GenerateDataKey with an existing blob\'s context gives a fresh key, never the blob\'s', async () => {
    const out = await kmsAs(dev.sealer).send(new GenerateDataKeyCommand({ KeyId: dev.keyArn, KeySpec: 'AES_256', EncryptionContext: blob.record.encryptionContext }));
    const fresh = Buffer.from(out.Plaintext as Uint8Array);
    expect(fresh.equals(realDek)).toBe(false);
    expect(await opensChunk(fresh)).toBe(false);
    // and neither its wrapped form nor GenerateDataKeyWithoutPlaintext's can be opened without an attestation
    const noPt = await kmsAs(dev.sealer).send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: dev.keyArn, KeySpec: 'AES_256', EncryptionContext: blob.record.encryptionContext }));
    for (const c of [out.CiphertextBlob, noPt.CiphertextBlob]) {
      expect(await refusal(kmsAs(dev.sealer).send(new DecryptCommand({ CiphertextBlob: c, EncryptionContext: blob.record.encryptionContext })))).toBe('AccessDeniedException');
    }
  });

  it('the key record named as another key\'s ciphertext, spliced onto another key, or re-encrypted by Encrypt: nothing opens', async () => {
    const kms = kmsAs(admin);
    const mine = (await kms.send(new CreateKeyCommand({}))).KeyMetadata;
    expect(await refusal(kms.send(new DecryptCommand({ CiphertextBlob: ciphertext(), EncryptionContext: blob.record.encryptionContext, KeyId: mine?.KeyId })))).toBe('IncorrectKeyException');
    // the blob names its key in bytes 5..21 (docs/kms.md "Ciphertext blob"): point it at mine
    const spliced = ciphertext();
    Buffer.from((mine?.KeyId as string).replaceAll('-', ''), 'hex').copy(spliced, 5);
    expect(await refusal(kms.send(new DecryptCommand({ CiphertextBlob: spliced, EncryptionContext: blob.record.encryptionContext })))).toBe('InvalidCiphertextException');
    // Encrypt of the wrapped record under my key round-trips the wrapped bytes, not the key inside them
    const wrapped = await kms.send(new EncryptCommand({ KeyId: mine?.KeyId, Plaintext: ciphertext() }));
    const back = await kms.send(new DecryptCommand({ CiphertextBlob: wrapped.CiphertextBlob }));
    expect(Buffer.from(back.Plaintext as Uint8Array).equals(ciphertext())).toBe(true);
    expect(Buffer.from(back.Plaintext as Uint8Array).includes(realDek)).toBe(false);
  });

  it('grants, alias moves and key deletion are not available', async () => {
    const kms = kmsAs(admin);
    const mine = (await kms.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId as string;
    expect(await refusal(kms.send(new CreateGrantCommand({ KeyId: dev.keyArn, GranteePrincipal: admin.principalArn, Operations: ['Decrypt'] })))).toBe('UnknownOperationException');
    expect(await refusal(kms.send(new DecryptCommand({ CiphertextBlob: ciphertext(), EncryptionContext: blob.record.encryptionContext, GrantTokens: ['x'] })))).toBe('UnsupportedOperationException');
    expect(await refusal(kms.send(new UpdateAliasCommand({ AliasName: dev.keyAlias, TargetKeyId: mine })))).toBe('UnknownOperationException');
    expect(await refusal(kms.send(new DeleteAliasCommand({ AliasName: dev.keyAlias })))).toBe('UnknownOperationException');
    expect(await refusal(kms.send(new CreateAliasCommand({ AliasName: dev.keyAlias, TargetKeyId: mine })))).toBe('AlreadyExistsException');
    expect(await refusal(kms.send(new ScheduleKeyDeletionCommand({ KeyId: dev.keyArn })))).toBe('UnknownOperationException');
    expect((await kms.send(new DescribeKeyCommand({ KeyId: dev.keyAlias }))).KeyMetadata?.Arn).toBe(dev.keyArn);
  });
});

describe('Decrypt with a Recipient that is not the admitted enclave', () => {
  const decryptFor = (cred: KmsCredential, doc: Uint8Array) =>
    kmsAs(cred).send(new DecryptCommand({
      CiphertextBlob: ciphertext(), EncryptionContext: blob.record.encryptionContext, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: doc },
    }));

  it('forged (another root), debug-mode, wrong PCR0, too old, or tampered: refused', async () => {
    const mine = rsa();
    const other = path.join(work, 'other-root');
    const pcr0 = dev.measurement.pcr0;
    const otherBundle = path.join(work, 'other-bundle');
    await mkdir(otherBundle, { recursive: true });
    await writeFile(path.join(otherBundle, 'main.js'), 'process.stdout.write(process.argv.join())\n');
    const docs: Record<string, Uint8Array> = {
      forged: await (await SimulatedNsm.create({ dataDir: other, pcrs: { 0: pcr0 } })).attest({ publicKey: mine.spki }),
      debug: await (await SimulatedNsm.create({ dataDir, pcrs: { 0: '0'.repeat(96) } })).attest({ publicKey: mine.spki }),
      'wrong PCR0': await (await SimulatedNsm.create({ dataDir, bundleDir: otherBundle })).attest({ publicKey: mine.spki }),
      'too old': await (await SimulatedNsm.create({ dataDir, pcrs: { 0: pcr0 }, clock: () => new Date(Date.now() - 30 * 60_000) })).attest({ publicKey: mine.spki }),
    };
    const good = await (await SimulatedNsm.create({ dataDir, pcrs: { 0: pcr0 } })).attest({ publicKey: mine.spki });
    const tampered = Buffer.from(good);
    tampered[tampered.length - 200] = (tampered[tampered.length - 200] ?? 0) ^ 0x01;
    docs.tampered = tampered;
    for (const [what, doc] of Object.entries(docs)) {
      expect(['AccessDeniedException', 'ValidationException'], what).toContain(await refusal(decryptFor(dev.enclaveCredential, doc)));
    }
  });

  it('a valid document is not enough with the client or administrator credential', async () => {
    const doc = await (await SimulatedNsm.create({ dataDir, pcrs: { 0: dev.measurement.pcr0 } })).attest({ publicKey: rsa().spki });
    for (const cred of [dev.sealer, admin]) expect(await refusal(decryptFor(cred, doc))).toBe('AccessDeniedException');
  });

  it('a replayed document gets only an envelope to the enclave\'s key, which the replayer cannot open', async () => {
    const enclaveKey = rsa();
    const captured = await (await SimulatedNsm.create({ dataDir, pcrs: { 0: dev.measurement.pcr0 } })).attest({ publicKey: enclaveKey.spki });
    const out = await decryptFor(dev.enclaveCredential, captured);
    expect(out.Plaintext === undefined || out.Plaintext.length === 0).toBe(true);
    const attacker = rsa();
    expect(isCofferError((() => {
      try {
        return openEnvelope(out.CiphertextForRecipient as Uint8Array, attacker.privateKey);
      } catch (e) {
        return e;
      }
    })(), 'CMS')).toBe(true);
    expect(Buffer.from(openEnvelope(out.CiphertextForRecipient as Uint8Array, enclaveKey.privateKey)).equals(realDek)).toBe(true);
  });
});

describe('the enclave metadata MAC key (coffer:purpose context)', () => {
  const memorySlot = (initial: Uint8Array | null = null): WrappedKeySlot & { value: Uint8Array | null } => ({
    value: initial,
    async read() {
      return this.value;
    },
    async createIfAbsent(b: Uint8Array) {
      this.value ??= b;
      return this.value;
    },
  });
  const enclaveRecipient = async () => {
    const pair = rsa();
    const doc = await (await SimulatedNsm.create({ dataDir, pcrs: { 0: dev.measurement.pcr0 } })).attest({ publicKey: pair.spki });
    return { attestationDocument: doc, privateKey: pair.privateKey };
  };

  it('is generated once by the attested enclave, stored wrapped, and opened again to the same key', async () => {
    const slot = memorySlot();
    const kms = kmsAs(dev.enclaveCredential);
    const first = await openMetadataKey({ kms, keyId: dev.keyArn, slot, recipient: enclaveRecipient });
    expect(slot.value).not.toBeNull();
    const again = await openMetadataKey({ kms, keyId: dev.keyArn, slot, recipient: enclaveRecipient });
    const facts = { path: '/n', user: 'u', role: 'read' };
    expect(again.grant(facts)).toBe(first.grant(facts));
    // nobody else opens it: no Recipient, or a credential that is not the enclave's
    for (const cred of [dev.sealer, admin, dev.enclaveCredential]) {
      expect(await refusal(kmsAs(cred).send(new DecryptCommand({ CiphertextBlob: slot.value as Uint8Array, EncryptionContext: { ...METADATA_KEY_CONTEXT } })))).toBe('AccessDeniedException');
    }
    const byAdmin = await openMetadataKey({ kms: kmsAs(admin), keyId: dev.keyArn, slot, recipient: enclaveRecipient }).catch((e: unknown) => e);
    expect(isCofferError(byAdmin, 'KMS_ACCESS_DENIED')).toBe(true);
  });

  it('cannot be planted: no role wraps a key it knows under a coffer:purpose context, and a blob key is no metadata key', async () => {
    const known = Buffer.alloc(32, 0x41);
    for (const cred of [dev.sealer, admin, dev.enclaveCredential]) {
      const kms = kmsAs(cred);
      expect(await refusal(kms.send(new EncryptCommand({ KeyId: dev.keyArn, Plaintext: known, EncryptionContext: { ...METADATA_KEY_CONTEXT } })))).toBe('AccessDeniedException');
      expect(await refusal(kms.send(new GenerateDataKeyCommand({ KeyId: dev.keyArn, KeySpec: 'AES_256', EncryptionContext: { ...METADATA_KEY_CONTEXT } })))).toBe('AccessDeniedException');
      expect(await refusal(kms.send(new ReEncryptCommand({
        CiphertextBlob: ciphertext(), SourceEncryptionContext: blob.record.encryptionContext, DestinationKeyId: dev.keyArn, DestinationEncryptionContext: { ...METADATA_KEY_CONTEXT },
      })))).toBe('AccessDeniedException');
    }
    const planted = memorySlot(ciphertext());
    const err = await openMetadataKey({ kms: kmsAs(dev.enclaveCredential), keyId: dev.keyArn, slot: planted, recipient: enclaveRecipient }).catch((e: unknown) => e);
    expect(isCofferError(err, 'KEY_INVALID')).toBe(true);
  });
});

describe('coffer keys rewrap', () => {
  it('runs as the administrator kept in the data dir, and moves data keys only to a key with the same policy', async () => {
    const kms = kmsAs(admin);
    const roles = roleCredentials(await loadOrCreateCredentials(dataDir));
    const create = async (policy: string) => (await kms.send(new CreateKeyCommand({ Policy: policy, BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata?.Arn as string;
    const twin = await create(dev.keyPolicy);
    const other = await create(vaultKeyPolicy(roles, 'ee'.repeat(48)));
    // no AWS credentials in the environment: the embedded KMS's administrator from the data dir is used
    const env = { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '', COFFER_MONGODB_URI: '' };
    const args = (to: string) => ['keys', 'rewrap', '--to-key', to, '--data-dir', dataDir, '--kms-endpoint', dev.kmsUrl, '--region', dev.region, '--json'];
    const refusedRun = await runCliProcess(args(other), env);
    expect(refusedRun.code, refusedRun.stdout).not.toBe(0);
    expect(refusedRun.stderr).toMatch(/AccessDenied|KMS_ACCESS_DENIED|not authorized/);
    const ok = await runCliProcess(args(twin), env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ toKey: twin });
    const { manifest } = await vault.manifestByPath('/secret.bin');
    expect((manifest.keyRecord as unknown as { keyId: string }).keyId).toBe(twin);
    // the attested enclave still opens it, to the same data key; nobody else does
    const enclave = new AwsKeyService({ keyId: twin, endpoint: dev.kmsUrl, region: dev.region, credentials: dev.enclaveCredential });
    const pair = rsa();
    const doc = await (await SimulatedNsm.create({ dataDir, pcrs: { 0: dev.measurement.pcr0 } })).attest({ publicKey: pair.spki });
    expect(Buffer.from(await enclave.decryptForRecipient(manifest.keyRecord, blob.id, doc, pair.privateKey)).equals(realDek)).toBe(true);
    enclave.close();
    const moved = Buffer.from((manifest.keyRecord as unknown as { ciphertextBlob: string }).ciphertextBlob, 'base64');
    expect(await refusal(kmsAs(admin).send(new DecryptCommand({ CiphertextBlob: moved, EncryptionContext: blob.record.encryptionContext })))).toBe('AccessDeniedException');
  }, 60_000);
});

