// Blob ids: 16 random bytes, written as exactly 32 lowercase hex characters everywhere a string is needed
// (chunk paths, metadata, KMS encryption context). Parsing is strict so one blob has one spelling.
import { randomBytes } from 'node:crypto';
import { CofferError, ErrorCode } from '../errors.js';
import { BLOB_ID_SIZE } from './chunk-header.js';

const HEX32 = /^[0-9a-f]{32}$/;

/** A new random blob id (16 bytes). */
export function newBlobId(): Uint8Array {
  return new Uint8Array(randomBytes(BLOB_ID_SIZE));
}

/** 16 bytes → 32 lowercase hex characters. Throws INVALID_ARGUMENT on any other length. */
export function blobIdToHex(blobId: Uint8Array): string {
  if (!(blobId instanceof Uint8Array) || blobId.length !== BLOB_ID_SIZE) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `blob id must be ${BLOB_ID_SIZE} bytes`);
  }
  return Buffer.from(blobId.buffer, blobId.byteOffset, blobId.length).toString('hex');
}

/** Exactly 32 lowercase hex characters → 16 bytes. Throws INVALID_ARGUMENT otherwise (no uppercase, no prefix). */
export function blobIdFromHex(hex: string): Uint8Array {
  if (typeof hex !== 'string' || !HEX32.test(hex)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'blob id must be 32 lowercase hex characters');
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** True if `hex` is a well-formed blob id string. */
export function isBlobIdHex(hex: unknown): hex is string {
  return typeof hex === 'string' && HEX32.test(hex);
}
