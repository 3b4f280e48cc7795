// The one seal-and-store loop of the gateway: a plaintext stream cut into 8 MiB chunks, each sealed under the
// blob's data key (sealStream, pooled buffers) and sent to the storage service with a bounded number of chunk
// PUTs in flight. FileOps.put (a whole file) and PlacedUploads.seal (an S3 part placed at given chunk indices)
// both store through it, so the memory bound of a sealing stream (docs/s3-api.md "Memory under concurrency":
// one plaintext + ≤ STORE_CONCURRENCY + 1 sealed buffers) is stated and kept in one place.
//
// The caller holds the seal-budget slot (transfer-budget.ts) around it; this function holds no slot itself.
import type { BufferPool } from '../../src/buffer-pool.js';
import { blobIdFromHex, sealStream } from '../../src/crypto/index.js';
import type { GatewayRecords } from './records.js';

/** Sealed chunks sent to the storage service at once by one sealing stream. */
export const STORE_CONCURRENCY = 3;

export interface SealStoreTarget {
  blobIdHex: string;
  dek: Uint8Array;
  /** Index of the first chunk (default 0): a placed part starts at its own index. */
  firstIndex?: number;
  /** Whether the last chunk written is the blob's FINAL one (default true). */
  endsBlob?: boolean;
}

export interface SealStoreResult {
  /** Chunks written by this call. */
  chunks: number;
  /** Plaintext bytes sealed. */
  total: number;
}

/**
 * Seals `source` into chunks firstIndex, firstIndex + 1, … of the blob and PUTs each (a chunk PUT is idempotent
 * and retried inside GatewayRecords). Resolves when every chunk is durable; on the first failure it stops pulling
 * the source, waits for the PUTs in flight, and throws that failure (what sealStream or the storage service threw).
 */
export async function sealAndStore(
  records: GatewayRecords, pool: BufferPool, target: SealStoreTarget, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<SealStoreResult> {
  const { blobIdHex, dek } = target;
  const params = {
    blobId: blobIdFromHex(blobIdHex), keyGeneration: 1,
    ...(target.firstIndex === undefined ? {} : { firstIndex: target.firstIndex }),
    ...(target.endsBlob === undefined ? {} : { endsBlob: target.endsBlob }),
  };
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let chunks = 0;
  let total = 0;
  try {
    for await (const chunk of sealStream(source, dek, params, { buffers: pool, pooledPlaintext: true })) {
      if (failure !== undefined) break;
      chunks++;
      total += chunk.plaintextLength;
      const p: Promise<void> = records.putChunk(blobIdHex, chunk.index, chunk.bytes)
        .then(() => chunk.release())
        .catch((e: unknown) => {
          failure ??= e;
        })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= STORE_CONCURRENCY) await Promise.race(inFlight);
    }
  } finally {
    await Promise.allSettled(inFlight);
  }
  if (failure !== undefined) throw failure;
  return { chunks, total };
}
