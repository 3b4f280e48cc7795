// Cryptographic operations: GenerateDataKey(WithoutPlaintext), Encrypt, Decrypt, ReEncrypt. Authorisation
// (key policy with the request's condition keys) always precedes any use of key material; with a Recipient the
// attestation document is verified first, so attestation condition keys come only from a verified document.
import { randomBytes } from 'node:crypto';
import { attestationRuleOf } from '../../policy/index.js';
import { authorize, requireEnabled, type OpContext, type RequestFacts } from '../context.js';
import { BlobFormatError, bytesToUuid, openBlob, parseBlobHeader, sealBlob, uuidToBytes } from '../ciphertext.js';
import { accessDenied, KmsApiError, validation } from '../errors.js';
import type { KmsKey } from '../key-store.js';
import { assertUsableRecipientKey, sealForRecipient, verifyRecipient, type VerifiedRecipient } from '../recipient.js';
import type { Input, Recipient, SCHEMAS } from '../validate.js';

type In<Op extends keyof typeof SCHEMAS> = Input<(typeof SCHEMAS)[Op]>;
type Out = Record<string, unknown>;
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function checkAlgorithm(alg: string | undefined): void {
  if (alg !== undefined && alg !== 'SYMMETRIC_DEFAULT') {
    throw new KmsApiError('InvalidKeyUsageException', `EncryptionAlgorithm ${alg} is not valid for a SYMMETRIC_DEFAULT key.`);
  }
}

function dryRun(flag: boolean | undefined): void {
  if (flag) throw new KmsApiError('DryRunOperationException', 'The request would have succeeded, but the DryRun flag is set.');
}

function dataKeyLength(i: { NumberOfBytes?: number; KeySpec?: string }): number {
  if ((i.NumberOfBytes === undefined) === (i.KeySpec === undefined)) throw validation('Specify exactly one of NumberOfBytes or KeySpec.');
  if (i.NumberOfBytes !== undefined) return i.NumberOfBytes;
  if (i.KeySpec === 'AES_256') return 32;
  if (i.KeySpec === 'AES_128') return 16;
  throw validation(`KeySpec ${i.KeySpec} is not valid; use AES_256 or AES_128.`);
}

/** Verifies the Recipient (if any) and authorises `action` with its attestation facts. */
function authorizeWith(op: OpContext, key: KmsKey, action: string, ctx: Record<string, string> | undefined, r: Recipient | undefined): VerifiedRecipient | undefined {
  const recipient = r === undefined ? undefined : verifyRecipient(op.settings, r);
  const facts: RequestFacts = { encryptionContext: ctx, attestation: recipient?.document };
  authorize(op, key, action, facts);
  if (recipient) assertUsableRecipientKey(recipient);
  return recipient;
}

async function seal(op: OpContext, key: KmsKey, plaintext: Uint8Array, ctx: Record<string, string> | undefined): Promise<{ blob: Buffer; materialId: string }> {
  const current = await op.settings.store.rotateIfDue(key, op.settings.now().getTime());
  const { id, material } = op.settings.store.currentMaterial(current);
  return { blob: sealBlob({ keyId: uuidToBytes(key.keyId), materialId: id }, material, plaintext, ctx), materialId: id.toString('hex') };
}

async function generate(op: OpContext, i: In<'GenerateDataKey'>, action: string, withPlaintext: boolean): Promise<Out> {
  const key = op.settings.store.resolve(i.KeyId);
  const len = dataKeyLength(i);
  const recipient = authorizeWith(op, key, action, i.EncryptionContext, i.Recipient);
  requireEnabled(key);
  dryRun(i.DryRun);
  const dataKey = randomBytes(len);
  const { blob, materialId } = await seal(op, key, dataKey, i.EncryptionContext);
  const out: Out = { CiphertextBlob: b64(blob), KeyId: key.arn, KeyMaterialId: materialId };
  if (recipient) out.CiphertextForRecipient = b64(sealForRecipient(recipient, dataKey));
  else if (withPlaintext) out.Plaintext = b64(dataKey);
  dataKey.fill(0);
  return out;
}

export const generateDataKey = (op: OpContext, i: In<'GenerateDataKey'>): Promise<Out> => generate(op, i, 'kms:GenerateDataKey', true);
export const generateDataKeyWithoutPlaintext = (op: OpContext, i: In<'GenerateDataKeyWithoutPlaintext'>): Promise<Out> =>
  generate(op, i, 'kms:GenerateDataKeyWithoutPlaintext', false);

export async function encrypt(op: OpContext, i: In<'Encrypt'>): Promise<Out> {
  checkAlgorithm(i.EncryptionAlgorithm);
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, 'kms:Encrypt', { encryptionContext: i.EncryptionContext });
  requireEnabled(key);
  dryRun(i.DryRun);
  const { blob } = await seal(op, key, i.Plaintext, i.EncryptionContext);
  return { CiphertextBlob: b64(blob), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
}

/** Finds the key a blob names; checks an explicitly given KeyId names the same key. */
function keyOfBlob(op: OpContext, blob: Buffer, given: string | undefined): { key: KmsKey; materialId: Buffer } {
  let header;
  try {
    header = parseBlobHeader(blob);
  } catch (e) {
    if (e instanceof BlobFormatError) throw new KmsApiError('InvalidCiphertextException', e.message);
    throw e;
  }
  const keyId = bytesToUuid(header.keyId);
  const key = op.settings.store.keys().find((k) => k.keyId === keyId);
  if (given !== undefined) {
    const named = op.settings.store.resolve(given);
    if (named.keyId !== keyId) throw new KmsApiError('IncorrectKeyException', 'The key ID in the request does not identify the KMS key that encrypted the ciphertext.');
  }
  if (!key) throw new KmsApiError('InvalidCiphertextException', 'The ciphertext refers to a KMS key that does not exist in this KMS.');
  return { key, materialId: header.materialId };
}

function open(op: OpContext, key: KmsKey, materialId: Buffer, blob: Buffer, ctx: Record<string, string> | undefined): Buffer {
  const material = op.settings.store.material(key, materialId);
  if (!material) throw new KmsApiError('InvalidCiphertextException', 'The ciphertext refers to key material this key does not have.');
  try {
    return openBlob(blob, material, ctx);
  } catch (e) {
    if (e instanceof BlobFormatError) throw new KmsApiError('InvalidCiphertextException', 'The ciphertext or its encryption context is invalid.');
    throw e;
  }
}

export function decrypt(op: OpContext, i: In<'Decrypt'>): Out {
  checkAlgorithm(i.EncryptionAlgorithm);
  if (i.DryRunModifiers?.length) throw new KmsApiError('UnsupportedOperationException', 'DryRunModifiers are not supported.');
  const { key, materialId } = keyOfBlob(op, i.CiphertextBlob, i.KeyId);
  const recipient = authorizeWith(op, key, 'kms:Decrypt', i.EncryptionContext, i.Recipient);
  requireEnabled(key);
  dryRun(i.DryRun);
  const plaintext = open(op, key, materialId, i.CiphertextBlob, i.EncryptionContext);
  const out: Out = { KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT', KeyMaterialId: materialId.toString('hex') };
  if (recipient) out.CiphertextForRecipient = b64(sealForRecipient(recipient, plaintext));
  else out.Plaintext = b64(plaintext);
  plaintext.fill(0);
  return out;
}

/**
 * Custody invariant (docs/kms.md "Key custody"): a data key under an attestation-bound key moves only to a key
 * whose policy is the same rule — else a rewrapper could move it under a key they control and Decrypt it there.
 * @throws KmsApiError AccessDeniedException
 */
function requireSameAttestationRule(op: OpContext, source: KmsKey, destination: KmsKey): void {
  const from = attestationRuleOf(source.policy);
  if (!from.bound) return;
  const to = attestationRuleOf(destination.policy);
  if (!to.bound || to.fingerprint !== from.fingerprint) {
    throw accessDenied(
      `User: ${op.caller.principalArn} is not authorized to perform: kms:ReEncryptFrom on resource: ${source.arn}: its data keys are bound to enclave attestation and may move only to a key with the same policy, which ${destination.arn} does not have`,
    );
  }
}

/** Decrypts and re-encrypts inside the KMS; the plaintext never leaves it. Both keys' policies are checked. */
export async function reEncrypt(op: OpContext, i: In<'ReEncrypt'>): Promise<Out> {
  checkAlgorithm(i.SourceEncryptionAlgorithm);
  checkAlgorithm(i.DestinationEncryptionAlgorithm);
  if (i.DryRunModifiers?.length) throw new KmsApiError('UnsupportedOperationException', 'DryRunModifiers are not supported.');
  const { key: source, materialId } = keyOfBlob(op, i.CiphertextBlob, i.SourceKeyId);
  const destination = op.settings.store.resolve(i.DestinationKeyId);
  const sameKey = source.keyId === destination.keyId;
  authorize(op, source, 'kms:ReEncryptFrom', { encryptionContext: i.SourceEncryptionContext, reEncryptOnSameKey: sameKey });
  authorize(op, destination, 'kms:ReEncryptTo', { encryptionContext: i.DestinationEncryptionContext, reEncryptOnSameKey: sameKey });
  if (!sameKey) requireSameAttestationRule(op, source, destination);
  requireEnabled(source);
  requireEnabled(destination);
  dryRun(i.DryRun);
  const plaintext = open(op, source, materialId, i.CiphertextBlob, i.SourceEncryptionContext);
  const sealed = await seal(op, destination, plaintext, i.DestinationEncryptionContext);
  plaintext.fill(0);
  return {
    CiphertextBlob: b64(sealed.blob), SourceKeyId: source.arn, KeyId: destination.arn,
    SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT', DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
    SourceKeyMaterialId: materialId.toString('hex'), DestinationKeyMaterialId: sealed.materialId,
  };
}
