// The ChunkStore interface: where sealed chunk files live. Implementations: fs/ (local or any POSIX shared
// filesystem) and, later, s3/. Every implementation runs the one contract suite in storage-backend/contract.case.ts.
// A chunk store never sees plaintext or keys: it stores opaque sealed bytes and knows nothing of their format.
import type { Readable } from 'node:stream';

/** Identifies one chunk: blob id as 32 lowercase hex characters, index a u32. */
export interface ChunkRef {
  blobId: string;
  index: number;
}

export interface PutOptions {
  /** Refuse (PAYLOAD_TOO_LARGE) and leave nothing behind if the stream yields more than this many bytes. */
  maxBytes?: number;
  /** Refuse (CHUNK_MISMATCH) and leave nothing behind if the stream's total length differs. */
  expectedSize?: number;
  signal?: AbortSignal;
  /**
   * Called once the bytes are durable under a temporary name, just before they replace anything under the
   * chunk's name. If it throws, nothing is renamed, the temporary data is removed and put rejects with that
   * error (the caller's last chance to refuse, e.g. an upload committed while this chunk was streaming).
   */
  beforeRename?: () => Promise<void>;
  /**
   * The SHA-256 (64 lowercase hex) the caller already computed of exactly the bytes it passes (bulk copies hash
   * on worker threads, src/hash-pool.ts). A store may return it as PutResult.sha256 instead of hashing the
   * bytes again (the filesystem store does); a store that hashes anyway returns its own digest.
   */
  sha256?: string;
}

export interface PutResult {
  /** Bytes stored. */
  size: number;
  /** SHA-256 of the stored bytes, lowercase hex. */
  sha256: string;
}

/** One whole sealed chunk for putPack. */
export interface PackedChunkInput {
  ref: ChunkRef;
  data: Uint8Array;
  /** As PutOptions.sha256: the caller's digest of exactly `data`; a store may return it instead of hashing again. */
  sha256?: string;
}

export interface PackPutResult {
  /** The pack's id (32 lowercase hex), docs/format.md "Pack file v2". */
  packId: string;
  /** Per chunk, in the order given: bytes stored and their SHA-256. */
  chunks: PutResult[];
}

/** Options of listBlobs. */
export interface ListBlobsOptions {
  /**
   * Leave out blobs whose only chunks sit in packs written less than this many ms ago (GC's stray sweep: a batch
   * writes its pack before the records that point at it). Chunk v1 files are always listed.
   */
  settledMs?: number;
}

export interface ChunkStat {
  size: number;
}

/** Inclusive byte range, as in HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Contract (checked by storage-backend/contract.case.ts):
 * - put is atomic and durable: when it resolves, the whole chunk is on stable storage under its name; when it
 *   rejects (bad stream, limit exceeded, abort, ENOSPC, crash), no partial chunk is visible under its name and
 *   no temporary file is left behind (a crash may leave a temp file, which `sweepTemporary` removes).
 *   Idempotent: putting the same bytes again succeeds; different bytes replace atomically (old or new, never mixed).
 * - get returns the stored bytes (or the inclusive range); NOT_FOUND if absent (permanent).
 * - readInto reads the whole chunk into the start of a caller's buffer and returns the filled view: the same
 *   bytes as get, without a stream or an allocation per chunk; PAYLOAD_TOO_LARGE (nothing read) when the chunk
 *   is larger than the buffer, NOT_FOUND if absent.
 * - delete and deleteBlob are idempotent: deleting what is absent succeeds.
 * - Errors are CofferError: NOT_FOUND, NO_SPACE (permanent until space is freed), PAYLOAD_TOO_LARGE,
 *   CHUNK_MISMATCH, INVALID_ARGUMENT (bad blob id / index), PATH_OUTSIDE_ROOT, INTERNAL (retryable when transient).
 */
export interface ChunkStore {
  put(ref: ChunkRef, data: Readable | AsyncIterable<Uint8Array>, options?: PutOptions): Promise<PutResult>;
  get(ref: ChunkRef, range?: ByteRange): Promise<Readable>;
  readInto(ref: ChunkRef, into: Buffer): Promise<Buffer>;
  stat(ref: ChunkRef): Promise<ChunkStat | null>;
  delete(ref: ChunkRef): Promise<void>;
  deleteBlob(blobId: string): Promise<void>;
  /** Indices of the blob's stored chunks, ascending. Empty when the blob has none. */
  list(blobId: string): Promise<number[]>;
  /** Every blob id that has at least one chunk (order unspecified). For GC and backup. */
  listBlobs(options?: ListBlobsOptions): AsyncIterable<string>;
  /** Removes temporary files older than `olderThanMs` left by a crash. Returns how many were removed. */
  sweepTemporary(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
  /**
   * Optional (the fs store has it; see docs/storage-backend.md "Packs" for S3): stores many small whole sealed
   * chunks as one pack file (docs/format.md "Pack file v2") with one fsync and one directory fsync. Atomic and
   * durable as a whole: when it resolves every chunk is on stable storage and readable through get, readInto,
   * stat and list like any other; when it rejects none of them is visible through the pack. `beforeRename` is as
   * in PutOptions. Not idempotent per se (a retry writes a second pack; the first holds live copies of the same
   * chunks, of which reads use one): callers retry only chunks they have not recorded. Each ref must be new
   * (in no other pack, no chunk file). Throws INVALID_ARGUMENT (no chunks, over 65,536, a length no sealed
   * chunk has, a ref twice), NO_SPACE, INTERNAL.
   */
  putPack?(chunks: PackedChunkInput[], options?: { beforeRename?: () => Promise<void> }): Promise<PackPutResult>;
  /**
   * Optional (the fs store), for bulk readers: where a chunk sits in a pack the store has indexed, from memory
   * (no rescan; undefined for a chunk file or a pack not seen yet). With readPackRange, neighbouring packed
   * chunks are read with one call instead of one each; the caller still checks every chunk it slices out.
   */
  packedLocation?(ref: ChunkRef): PackLocation | undefined;
  /**
   * Optional (the fs store), for bulk copies asking "already there?" of chunks that are mostly absent: stat
   * without looking for packs written elsewhere since the store last scanned (no rescan: packed chunks answer
   * from memory, chunk files from the disk as in stat). Equal to stat for every chunk this store object wrote or
   * saw at its last scan; may say null for a chunk in a pack another process wrote since. So null means "copy
   * it" only to a caller for whom a second copy is harmless (puts are atomic, a retried pack is shadowed), never
   * "absent" (use stat). Errors as stat.
   */
  statKnown?(ref: ChunkRef): Promise<ChunkStat | null>;
  /** Optional, with packedLocation: `length` bytes at `offset` of a pack. NOT_FOUND when the pack is gone. */
  readPackRange?(packId: string, offset: number, length: number, into: Buffer): Promise<Buffer>;
}

/** Where one packed chunk lives: its pack and its span in it. */
export interface PackLocation {
  packId: string;
  offset: number;
  length: number;
}
