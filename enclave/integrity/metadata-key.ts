// The enclave's metadata MAC key (docs/format.md "Metadata MAC v1", docs/kms.md "Key custody"): a 32-byte KMS data
// key generated once by an attested enclave (GenerateDataKey with Recipient, encryption context exactly
// {"coffer:purpose": "metadata-mac"}), kept wrapped in the untrusted store, and opened by every enclave start with
// Decrypt + Recipient. The vault key policy refuses Encrypt/GenerateDataKey*/ReEncryptTo with a coffer:purpose
// context unless attested, so nobody outside an enclave can plant a wrapped key they know; a deleted or replaced
// wrapped key only makes every existing MAC fail (refused, never obeyed).
import type { KeyObject } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { openEnvelope } from '../../src/kms/index.js';
import { MetadataMacKey } from './mac.js';

export const METADATA_KEY_CONTEXT: Readonly<Record<string, string>> = Object.freeze({ 'coffer:purpose': 'metadata-mac' });

/** Where the wrapped metadata key lives (untrusted: the metadata store, a host file). */
export interface WrappedKeySlot {
  /** The stored CiphertextBlob, or null when none was ever stored. */
  read(): Promise<Uint8Array | null>;
  /** Stores `blob` unless one is stored already; returns what is stored afterwards (first writer wins). */
  createIfAbsent(blob: Uint8Array): Promise<Uint8Array>;
}

/** What an enclave presents to the KMS: a fresh attestation document binding the RSA key, and that key. */
export interface Recipient {
  attestationDocument: Uint8Array;
  privateKey: KeyObject;
}

export interface OpenMetadataKeyOptions {
  kms: KMSClient;
  /** The vault key (ARN) the metadata key is wrapped under. */
  keyId: string;
  slot: WrappedKeySlot;
  recipient: () => Promise<Recipient>;
}

/**
 * Opens the metadata key, generating and storing it on first use.
 * @throws CofferError KMS_ACCESS_DENIED (measurement not admitted), KEY_INVALID (a stored key that does not open),
 *   CMS, KMS.
 */
export async function openMetadataKey(o: OpenMetadataKeyOptions): Promise<MetadataMacKey> {
  let stored = await o.slot.read();
  if (stored === null) {
    const r = await o.recipient();
    const out = await kmsCall(() => o.kms.send(new GenerateDataKeyCommand({
      KeyId: o.keyId, KeySpec: 'AES_256', EncryptionContext: { ...METADATA_KEY_CONTEXT },
      Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: r.attestationDocument },
    })));
    refusePlaintext(out.Plaintext);
    if (!out.CiphertextBlob || !out.CiphertextForRecipient) throw new CofferError(ErrorCode.KMS, 'GenerateDataKey returned no wrapped metadata key');
    stored = await o.slot.createIfAbsent(out.CiphertextBlob);
    if (Buffer.from(stored).equals(Buffer.from(out.CiphertextBlob))) return keyFrom(openEnvelope(out.CiphertextForRecipient, r.privateKey));
    // another enclave stored its key first: use that one
  }
  const r = await o.recipient();
  const out = await kmsCall(() => o.kms.send(new DecryptCommand({
    KeyId: o.keyId, CiphertextBlob: stored, EncryptionContext: { ...METADATA_KEY_CONTEXT },
    Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: r.attestationDocument },
  })));
  refusePlaintext(out.Plaintext);
  if (!out.CiphertextForRecipient) throw new CofferError(ErrorCode.KMS, 'Decrypt returned no CiphertextForRecipient');
  return keyFrom(openEnvelope(out.CiphertextForRecipient, r.privateKey));
}

function keyFrom(bytes: Uint8Array): MetadataMacKey {
  try {
    return new MetadataMacKey(bytes);
  } finally {
    bytes.fill(0);
  }
}

function refusePlaintext(p: Uint8Array | undefined): void {
  if (p && p.length > 0) {
    p.fill(0);
    throw new CofferError(ErrorCode.KMS, 'KMS returned a plaintext metadata key to an attested request; refusing');
  }
}

const DENIED = new Set(['AccessDeniedException']);
const INVALID = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);

async function kmsCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const name = (e as Error)?.name ?? 'Error';
    if (DENIED.has(name)) throw new CofferError(ErrorCode.KMS_ACCESS_DENIED, `KMS refused the metadata key (${name}): ${(e as Error).message}`, { cause: e });
    if (INVALID.has(name)) throw new CofferError(ErrorCode.KEY_INVALID, `the stored metadata key does not open (${name})`, { cause: e });
    throw new CofferError(ErrorCode.KMS, `KMS request for the metadata key failed (${name})`, { cause: e, retryable: true });
  }
}
