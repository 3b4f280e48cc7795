// The key that seals S3 access-key secrets (access-keys.ts): a 32-byte KMS data key generated once by an attested
// enclave (GenerateDataKey with Recipient, encryption context exactly {"coffer:purpose": "s3-access-keys"}), kept
// wrapped in an untrusted slot (a file in the channel directory), and opened at every enclave start with Decrypt +
// Recipient. The same custody as the metadata MAC key (enclave/integrity/metadata-key.ts): the vault key policy
// refuses GenerateDataKey*/Encrypt under a coffer:purpose context without an attestation, so nobody outside an
// admitted enclave can know this key or plant a wrapped key they know. A deleted or replaced wrapped key only
// makes every stored access key fail to open (refused as unknown, never obeyed).
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { openEnvelope } from '../../src/kms/index.js';
import type { Recipient, WrappedKeySlot } from '../integrity/index.js';
import { AesGcmSealer } from './access-keys.js';

export const S3_SEALING_KEY_CONTEXT: Readonly<Record<string, string>> = Object.freeze({ 'coffer:purpose': 's3-access-keys' });

/** The file in the channel directory holding the wrapped key. */
export const S3_SEALING_KEY_FILE = 's3-access-keys.key.wrapped';

export interface OpenSealingKeyOptions {
  kms: KMSClient;
  /** The vault key (ARN) the sealing key is wrapped under. */
  keyId: string;
  slot: WrappedKeySlot;
  recipient: () => Promise<Recipient>;
}

/**
 * Opens the access-key sealing key, generating and storing it on first use (first writer wins).
 * @throws CofferError KMS_ACCESS_DENIED (measurement not admitted), KEY_INVALID (a stored key that does not open), KMS.
 */
export async function openS3SealingKey(o: OpenSealingKeyOptions): Promise<AesGcmSealer> {
  let stored = await o.slot.read();
  if (stored === null) {
    const r = await o.recipient();
    const out = await kmsCall(() => o.kms.send(new GenerateDataKeyCommand({
      KeyId: o.keyId, KeySpec: 'AES_256', EncryptionContext: { ...S3_SEALING_KEY_CONTEXT },
      Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: r.attestationDocument },
    })));
    refusePlaintext(out.Plaintext);
    if (!out.CiphertextBlob || !out.CiphertextForRecipient) throw new CofferError(ErrorCode.KMS, 'GenerateDataKey returned no wrapped S3 sealing key');
    stored = await o.slot.createIfAbsent(out.CiphertextBlob);
    if (Buffer.from(stored).equals(Buffer.from(out.CiphertextBlob))) return sealerFrom(openEnvelope(out.CiphertextForRecipient, r.privateKey));
    // another enclave stored its key first: use that one
  }
  const r = await o.recipient();
  const out = await kmsCall(() => o.kms.send(new DecryptCommand({
    KeyId: o.keyId, CiphertextBlob: stored, EncryptionContext: { ...S3_SEALING_KEY_CONTEXT },
    Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: r.attestationDocument },
  })));
  refusePlaintext(out.Plaintext);
  if (!out.CiphertextForRecipient) throw new CofferError(ErrorCode.KMS, 'Decrypt returned no CiphertextForRecipient');
  return sealerFrom(openEnvelope(out.CiphertextForRecipient, r.privateKey));
}

function sealerFrom(bytes: Uint8Array): AesGcmSealer {
  try {
    return new AesGcmSealer(Buffer.from(bytes)); // a copy the sealer keeps; the envelope's bytes are zeroed
  } finally {
    bytes.fill(0);
  }
}

function refusePlaintext(p: Uint8Array | undefined): void {
  if (p && p.length > 0) {
    p.fill(0);
    throw new CofferError(ErrorCode.KMS, 'KMS returned a plaintext S3 sealing key to an attested request; refusing');
  }
}

async function kmsCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const name = (e as Error)?.name ?? 'Error';
    if (name === 'AccessDeniedException') throw new CofferError(ErrorCode.KMS_ACCESS_DENIED, `KMS refused the S3 sealing key (${name}): ${(e as Error).message}`, { cause: e });
    if (name === 'InvalidCiphertextException' || name === 'IncorrectKeyException') throw new CofferError(ErrorCode.KEY_INVALID, `the stored S3 sealing key does not open (${name})`, { cause: e });
    throw new CofferError(ErrorCode.KMS, `KMS request for the S3 sealing key failed (${name})`, { cause: e, retryable: true });
  }
}
