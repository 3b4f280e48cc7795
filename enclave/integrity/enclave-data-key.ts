// A 32-byte KMS data key that only attested enclaves can know (docs/kms.md "Key custody"): generated once by an
// enclave (GenerateDataKey with Recipient under an exact `coffer:purpose` encryption context), kept wrapped in an
// untrusted slot, and opened at every enclave start with Decrypt + Recipient. The vault key policy refuses
// Encrypt/GenerateDataKey*/ReEncryptTo with a coffer:purpose context unless attested, so nobody outside an
// enclave can plant a wrapped key they know; a deleted or replaced wrapped key only makes what it protects fail
// (refused, never obeyed). Used for the metadata MAC key (metadata-key.ts) and the S3 access-key sealing key
// (enclave/s3/sealing-key.ts).
import type { KeyObject } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { openEnvelope } from '../../src/kms/index.js';

/** Where a wrapped key lives (untrusted: the metadata store, a host file). */
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

export interface EnclaveDataKeyOptions {
  kms: KMSClient;
  /** The vault key (ARN) the data key is wrapped under. */
  keyId: string;
  slot: WrappedKeySlot;
  recipient: () => Promise<Recipient>;
}

export interface EnclaveDataKeyKind<T> {
  /** The exact encryption context, e.g. {"coffer:purpose": "metadata-mac"}. */
  context: Readonly<Record<string, string>>;
  /** Named in error messages: "metadata key", "S3 sealing key". */
  what: string;
  /** Makes the key object from the opened bytes; the bytes are zeroed right after. */
  make(bytes: Uint8Array): T;
}

/**
 * Opens the data key, generating and storing it on first use (first writer wins).
 * @throws CofferError KMS_ACCESS_DENIED (measurement not admitted), KEY_INVALID (a stored key that does not open),
 *   CMS, KMS.
 */
export async function openEnclaveDataKey<T>(o: EnclaveDataKeyOptions, kind: EnclaveDataKeyKind<T>): Promise<T> {
  const recipientSpec = (r: Recipient) => ({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' as const, AttestationDocument: r.attestationDocument });
  const opened = (envelope: Uint8Array, r: Recipient): T => {
    const bytes = openEnvelope(envelope, r.privateKey);
    try {
      return kind.make(bytes);
    } finally {
      bytes.fill(0);
    }
  };
  let stored = await o.slot.read();
  if (stored === null) {
    const r = await o.recipient();
    const out = await kmsCall(kind.what, () => o.kms.send(new GenerateDataKeyCommand({
      KeyId: o.keyId, KeySpec: 'AES_256', EncryptionContext: { ...kind.context }, Recipient: recipientSpec(r),
    })));
    refusePlaintext(kind.what, out.Plaintext);
    if (!out.CiphertextBlob || !out.CiphertextForRecipient) throw new CofferError(ErrorCode.KMS, `GenerateDataKey returned no wrapped ${kind.what}`);
    stored = await o.slot.createIfAbsent(out.CiphertextBlob);
    if (Buffer.from(stored).equals(Buffer.from(out.CiphertextBlob))) return opened(out.CiphertextForRecipient, r);
    // another enclave stored its key first: use that one
  }
  const r = await o.recipient();
  const out = await kmsCall(kind.what, () => o.kms.send(new DecryptCommand({
    KeyId: o.keyId, CiphertextBlob: stored, EncryptionContext: { ...kind.context }, Recipient: recipientSpec(r),
  })));
  refusePlaintext(kind.what, out.Plaintext);
  if (!out.CiphertextForRecipient) throw new CofferError(ErrorCode.KMS, 'Decrypt returned no CiphertextForRecipient');
  return opened(out.CiphertextForRecipient, r);
}

function refusePlaintext(what: string, p: Uint8Array | undefined): void {
  if (p && p.length > 0) {
    p.fill(0);
    throw new CofferError(ErrorCode.KMS, `KMS returned a plaintext ${what} to an attested request; refusing`);
  }
}

const DENIED = new Set(['AccessDeniedException']);
const INVALID = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);

async function kmsCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const name = (e as Error)?.name ?? 'Error';
    if (DENIED.has(name)) throw new CofferError(ErrorCode.KMS_ACCESS_DENIED, `KMS refused the ${what} (${name}): ${(e as Error).message}`, { cause: e });
    if (INVALID.has(name)) throw new CofferError(ErrorCode.KEY_INVALID, `the stored ${what} does not open (${name})`, { cause: e });
    throw new CofferError(ErrorCode.KMS, `KMS request for the ${what} failed (${name})`, { cause: e, retryable: true });
  }
}
