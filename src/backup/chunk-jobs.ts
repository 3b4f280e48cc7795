// The chunk files a committed blob must have, as copy/verify jobs: name, size, SHA-256 from the blob record,
// and a header check (DESIGN.md "Chunk format v1": blob id, index, key generation, plaintext length and a FINAL
// flag exactly on the last chunk must agree with the blob). Needs no key: the header is the AEAD's AAD, not secret.
import { blobIdToHex, decodeChunkHeader, expectedChunkLayout, sealedSize } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { BlobRecord } from '../metadata/types.js';
import type { ChunkJob } from './copy-chunks.js';

/** Throws INTEGRITY when a committed blob's record is not self-consistent (size, count and digests). */
export function assertBlobRecord(blob: BlobRecord): { size: number; chunkSha256: string[] } {
  const { size, chunkCount, chunkSha256 } = blob;
  if (size === null || chunkCount === null || chunkSha256 === null || expectedChunkLayout(size).chunkCount !== chunkCount || chunkSha256.length !== chunkCount) {
    throw new CofferError(ErrorCode.INTEGRITY, `blob ${blob.id}: its record's size, chunk count and digests disagree (run coffer fsck)`);
  }
  return { size, chunkSha256 };
}

export function headerCheck(blob: BlobRecord, index: number, plaintextLength: number, final: boolean): (sealed: Buffer) => void {
  return (sealed) => {
    const h = decodeChunkHeader(sealed);
    const wrong = blobIdToHex(h.blobId) !== blob.id ? `blob id ${blobIdToHex(h.blobId)}`
      : h.index !== index ? `index ${h.index}`
      : h.keyGeneration !== blob.keyGeneration ? `key generation ${h.keyGeneration} (blob has ${blob.keyGeneration})`
      : h.plaintextLength !== plaintextLength ? `plaintext length ${h.plaintextLength} (expected ${plaintextLength})`
      : h.final !== final ? (final ? 'no FINAL flag on the last chunk' : 'a FINAL flag before the last chunk')
      : null;
    if (wrong) throw new CofferError(ErrorCode.CHUNK_MISMATCH, `header says ${wrong}`);
  };
}

/** One job per chunk of the blob, in index order (lazily: a huge blob yields its chunks one by one). */
export function* chunkJobsOf(blob: BlobRecord, withHeaderCheck = true): Generator<ChunkJob> {
  const { size, chunkSha256 } = assertBlobRecord(blob);
  const layout = expectedChunkLayout(size);
  for (let index = 0; index < layout.chunkCount; index++) {
    const len = layout.plaintextLengthOf(index);
    yield {
      ref: { blobId: blob.id, index },
      size: sealedSize(len),
      sha256: chunkSha256[index] as string,
      ...(withHeaderCheck ? { checkHeader: headerCheck(blob, index, len, index === layout.chunkCount - 1) } : {}),
    };
  }
}
