// Streaming chunker: cuts any byte stream into 8 MiB chunks and seals them (sealStream), and opens a blob's
// sealed chunks back into plaintext while checking them against the manifest (openStream).
// Memory stays bounded: sealStream holds one 8 MiB plaintext buffer (a full chunk waits there for look-ahead,
// because FINAL can only be set once the source has ended; it is sealed before the buffer is filled again, and the
// buffer is made only when a byte arrives for it) plus the sealed chunk being handed out; openStream holds one
// chunk at a time.
import { CofferError, ErrorCode } from '../errors.js';
import type { BufferPool } from '../buffer-pool.js';
import { BLOB_ID_SIZE, CHUNK_SIZE, MAX_SEALED_SIZE, MAX_U32, expectedChunkLayout, sealedSize } from './chunk-header.js';
import { checkDek, openChunk, sealChunkInto } from './chunk.js';

export interface SealedChunk {
  index: number;
  final: boolean;
  plaintextLength: number;
  /** header ‖ ciphertext ‖ tag, ready to store as the chunk file. */
  bytes: Uint8Array;
  /**
   * Gives the buffer behind `bytes` back to the pool it came from (SealStreamOptions.buffers) once nothing reads
   * `bytes` any more; a no-op without a pool. Not calling it is always safe.
   */
  release(): void;
}

export interface SealStreamOptions {
  /** Seal into buffers from this pool (its size at least MAX_SEALED_SIZE) instead of a fresh buffer per chunk. */
  buffers?: BufferPool;
  /**
   * Also gather the plaintext in buffers from `buffers` (instead of two fresh 8 MiB buffers per stream), made only
   * when bytes arrive for them, zeroed and given back when the stream ends (finished, failed or abandoned).
   */
  pooledPlaintext?: boolean;
}

export interface SealStreamParams {
  blobId: Uint8Array;
  keyGeneration: number;
  /** Index of the first chunk (default 0): a stream placed inside a blob (the S3 layer's multipart parts). */
  firstIndex?: number;
  /** Whether the last chunk is the blob's last, FINAL (default true). With false every chunk is sealed not FINAL. */
  endsBlob?: boolean;
}

/** What the blob's metadata says about it; the chunks are checked against every field. */
export interface BlobManifest {
  blobId: Uint8Array;
  keyGeneration: number;
  chunkCount: number;
  /** Plaintext size in bytes. */
  size: number;
}

/** Open only chunks firstIndex..lastIndex (inclusive) of the blob, e.g. for an HTTP Range request. */
export interface OpenStreamOptions {
  firstIndex?: number;
  lastIndex?: number;
}

function checkBlobParams(blobId: Uint8Array, keyGeneration: number): void {
  if (!(blobId instanceof Uint8Array) || blobId.length !== BLOB_ID_SIZE) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `blob id must be ${BLOB_ID_SIZE} bytes`);
  }
  if (!Number.isInteger(keyGeneration) || keyGeneration < 0 || keyGeneration > MAX_U32) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `key generation ${keyGeneration} is not a u32`);
  }
}

/**
 * Seals a byte stream (pieces of any size, including empty ones) as the chunks of one blob, in index order.
 * An empty stream gives exactly one empty FINAL chunk. Chunks are sealed lazily as the consumer pulls, with
 * Node's cipher on the calling thread (sealChunkInto). Each piece is copied before the next one is pulled, so a
 * source may reuse one buffer for all its pieces.
 * Throws (synchronously) KEY_INVALID for a bad DEK and INVALID_ARGUMENT for a bad blob id or key generation;
 * the iteration throws INVALID_ARGUMENT if the source yields something that is not a Uint8Array, and
 * passes on the source's own errors.
 */
export function sealStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, dek: Uint8Array, params: SealStreamParams,
  options: SealStreamOptions = {},
): AsyncIterable<SealedChunk> {
  checkDek(dek);
  checkBlobParams(params.blobId, params.keyGeneration);
  const { blobId, keyGeneration } = params;
  const pool = options.buffers;
  if (pool && pool.size < MAX_SEALED_SIZE) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `sealStream buffers must hold ${MAX_SEALED_SIZE} bytes, not ${pool.size}`);
  }

  function sealOne(plaintext: Uint8Array, index: number, final: boolean): SealedChunk {
    const buf = pool ? pool.acquire() : Buffer.allocUnsafe(sealedSize(plaintext.length));
    const bytes = sealChunkInto(dek, { blobId, index, keyGeneration, final }, plaintext, buf);
    return { index, final, plaintextLength: plaintext.length, bytes, release: () => pool?.release(buf) };
  }

  const pooledPlaintext = pool !== undefined && options.pooledPlaintext === true;
  const owned: Buffer[] = []; // pooled plaintext buffers, given back at the end
  const newFill = (): Buffer => {
    if (!pooledPlaintext) return Buffer.allocUnsafe(CHUNK_SIZE);
    const buf = pool.acquire();
    owned.push(buf);
    return buf.subarray(0, CHUNK_SIZE);
  };

  return (async function* seal(): AsyncGenerator<SealedChunk> {
    try {
      yield* gather();
    } finally {
      for (const buf of owned.splice(0)) {
        buf.fill(0, 0, CHUNK_SIZE);
        pool?.release(buf);
      }
    }
  })();

  async function* gather(): AsyncGenerator<SealedChunk> {
    let fill: Buffer | null = null; // made when a byte arrives for it
    let used = 0;
    let pending: Buffer | null = null; // a full chunk; final or not depends on whether any byte follows
    let spare: Buffer | null = null; // a buffer whose chunk has been sealed, reused to avoid reallocation
    let index = params.firstIndex ?? 0;
    const endsBlob = params.endsBlob ?? true;
    if (!Number.isInteger(index) || index < 0 || index > MAX_U32) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `first chunk index ${index} is not a u32`);
    for await (const piece of source) {
      if (!(piece instanceof Uint8Array)) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'sealStream source must yield Uint8Array pieces');
      }
      let off = 0;
      while (off < piece.length) {
        if (pending !== null) {
          // At least one more byte exists, so the pending chunk is not the last.
          yield sealOne(pending, index++, false);
          spare = pending;
          pending = null;
        }
        fill ??= spare ?? newFill();
        spare = null;
        const n = Math.min(CHUNK_SIZE - used, piece.length - off);
        fill.set(piece.subarray(off, off + n), used);
        used += n;
        off += n;
        if (used === CHUNK_SIZE) {
          pending = fill;
          fill = null;
          used = 0;
        }
      }
    }
    // When a chunk is pending the fill buffer is empty (any further byte would have flushed it).
    if (pending !== null) yield sealOne(pending, index, endsBlob);
    else yield sealOne(fill === null ? new Uint8Array(0) : fill.subarray(0, used), index, endsBlob);
  }
}

/**
 * Opens a blob's sealed chunks, given in index order, and yields each chunk's plaintext once its tag verified.
 * Each chunk must carry the manifest's blob id and key generation, the next index, the length the manifest's
 * size implies, and FINAL exactly when it is the blob's last chunk. Nothing from a bad chunk is yielded.
 * Throws (synchronously) KEY_INVALID, INVALID_ARGUMENT (bad manifest fields or range), CHUNK_MISMATCH (the
 * manifest's chunkCount disagrees with its size). The iteration throws CHUNK_FORMAT, CHUNK_MISMATCH (wrong
 * blob, index, key generation, length or FINAL; an extra chunk after the last one), CHUNK_AUTH_FAILED, or
 * CHUNK_MISSING when the source ends before the last expected chunk (a truncated blob).
 */
export function openStream(
  sealedChunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, dek: Uint8Array, manifest: BlobManifest,
  options: OpenStreamOptions = {},
): AsyncIterable<Uint8Array> {
  checkDek(dek);
  checkBlobParams(manifest.blobId, manifest.keyGeneration);
  const layout = expectedChunkLayout(manifest.size);
  if (manifest.chunkCount !== layout.chunkCount) {
    throw new CofferError(ErrorCode.CHUNK_MISMATCH,
      `manifest says ${String(manifest.chunkCount)} chunks but a blob of ${manifest.size} bytes has ${layout.chunkCount}`);
  }
  const first = options.firstIndex ?? 0;
  const last = options.lastIndex ?? layout.chunkCount - 1;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last < first || last >= layout.chunkCount) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `chunk range ${first}..${last} is outside 0..${layout.chunkCount - 1}`);
  }
  const { blobId, keyGeneration } = manifest;

  return (async function* open(): AsyncGenerator<Uint8Array> {
    let index = first;
    for await (const sealed of sealedChunks) {
      if (index > last) {
        throw new CofferError(ErrorCode.CHUNK_MISMATCH, `extra chunk after chunk ${last} (the blob has ${layout.chunkCount})`);
      }
      const plaintext = await openChunk(dek, sealed, {
        blobId, index, keyGeneration,
        final: index === layout.chunkCount - 1,
        plaintextLength: layout.plaintextLengthOf(index),
      });
      index++;
      yield plaintext;
    }
    if (index <= last) {
      throw new CofferError(ErrorCode.CHUNK_MISSING, `chunk ${index} is missing: the stream ended before chunk ${last}`, {
        details: { index },
      });
    }
  })();
}
