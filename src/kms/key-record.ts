// The vault's record of a KMS-wrapped data key, stored with the blob's metadata:
// { scheme: 'kms', keyId, ciphertextBlob: base64, encryptionContext: { 'coffer:blob': <blob id hex> } }.
// The encryption context is exactly that one pair: anything else is refused, so a record cannot be replayed
// for another blob (the KMS binds the context into the ciphertext).
import { CofferError, ErrorCode } from '../errors.js';

export interface KmsKeyRecord {
  scheme: 'kms';
  /** ARN of the KMS key that wrapped the data key. */
  keyId: string;
  /** base64 of the KMS CiphertextBlob. */
  ciphertextBlob: string;
  encryptionContext: { 'coffer:blob': string };
}

const BLOB_ID = /^[0-9a-f]{32}$/;

/** @throws CofferError INVALID_ARGUMENT unless `hex` is a 16-byte blob id in lowercase hex. */
export function checkBlobId(hex: string): void {
  if (typeof hex !== 'string' || !BLOB_ID.test(hex)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'blob id must be 32 lowercase hex digits');
}

/** The only encryption context Coffer uses. */
export function blobContext(blobIdHex: string): { 'coffer:blob': string } {
  checkBlobId(blobIdHex);
  return { 'coffer:blob': blobIdHex };
}

/**
 * Validates a stored record (exact fields, exact context) and, if given, that it belongs to `blobIdHex`.
 * @throws CofferError KEY_INVALID
 */
export function parseKmsKeyRecord(value: unknown, blobIdHex?: string): KmsKeyRecord {
  const bad = (why: string): never => {
    throw new CofferError(ErrorCode.KEY_INVALID, `KMS key record: ${why}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('not an object');
  const r = value as Record<string, unknown>;
  const fields = Object.keys(r).sort().join(',');
  if (fields !== 'ciphertextBlob,encryptionContext,keyId,scheme') bad(`unexpected fields ${fields}`);
  if (r.scheme !== 'kms') bad(`scheme ${String(r.scheme)} is not kms`);
  if (typeof r.keyId !== 'string' || r.keyId.length === 0 || r.keyId.length > 2048) bad('keyId must be a non-empty string');
  if (typeof r.ciphertextBlob !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(r.ciphertextBlob)) bad('ciphertextBlob must be base64');
  const ctx = r.encryptionContext as Record<string, unknown> | null;
  if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx) || Object.keys(ctx).join(',') !== 'coffer:blob') {
    bad('encryptionContext must be exactly { "coffer:blob": <blob id> }');
  }
  const id = (ctx as Record<string, unknown>)['coffer:blob'];
  if (typeof id !== 'string' || !BLOB_ID.test(id)) bad('coffer:blob must be 32 lowercase hex digits');
  if (blobIdHex !== undefined && id !== blobIdHex) bad(`record belongs to blob ${String(id)}, not ${blobIdHex}`);
  return { scheme: 'kms', keyId: r.keyId as string, ciphertextBlob: r.ciphertextBlob as string, encryptionContext: { 'coffer:blob': id as string } };
}
