// Vault uploads whose chunks are placed by index by the caller, held open across requests: the S3 layer's
// zero-copy multipart (docs/s3-api.md "Multipart"). An upload is opened once (a blob id and a fresh data key
// from the KMS, bound to the object's path with overwrite), plaintext streams are sealed straight into it at
// given chunk indices, chunks can be read back (opened and checked) before the commit, and the commit makes it
// an ordinary file — the same records, MACs and chunk format as FileOps.put.
//
// The data key of an open upload is kept in enclave memory for a while (64 uploads at most, 15 minutes; dropped
// when they commit, abort or are evicted) so that each part does not cost a KMS Decrypt; otherwise it is opened again from
// the key record the caller presents, which the KMS opens only under the blob id's encryption context. The
// caller must hold that key record somewhere the host cannot swap it (the S3 layer: the sealed upload.json).
import type { BufferPool } from '../../src/buffer-pool.js';
import { HEADER_SIZE, blobIdFromHex, blobIdToHex, newBlobId, openChunkInto } from '../../src/crypto/index.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import type { KeyRecord } from '../../src/metadata/types.js';
import type { EnclaveDataKeys } from './data-keys.js';
import type { GatewayRecords, NodeInfo } from './records.js';
import { sealAndStore, type SealStoreResult } from './seal-store.js';
import type { Release } from './transfer-budget.js';

const KEEP_KEYS = 64;
const KEY_TTL_MS = 15 * 60_000;

/** An open upload: what the caller keeps (and must keep where the host cannot edit it). */
export interface PlacedUpload {
  blobId: string;
  keyRecord: KeyRecord;
}

type RecordsFor = <T>(caller: { user: string; admin: boolean; token: string }, fn: (r: GatewayRecords) => Promise<T>) => Promise<T>;

export class PlacedUploads {
  private readonly keys = new Map<string, { dek: Uint8Array; record: string; until: number }>();

  /** `admit`: a slot of the enclave-wide cap on sealing streams (FileOps'), held while a part's body is pulled and sealed. */
  constructor(
    private readonly withRecords: RecordsFor, private readonly dataKeys: EnclaveDataKeys, private readonly pool: BufferPool,
    private readonly admit?: (source: AsyncIterable<Uint8Array>) => Promise<{ release: Release; source: AsyncIterable<Uint8Array> }>,
  ) {}

  /** Opens an upload that will become the file at `path` (replacing one there) when committed. Throws as FileOps.put. */
  open(caller: Parameters<RecordsFor>[0], path: string): Promise<PlacedUpload> {
    return this.withRecords(caller, async (records) => {
      const blobId = blobIdToHex(newBlobId());
      const key = await this.dataKeys.newDataKey(blobId);
      await records.createUpload({ path, blobId, keyGeneration: 1, keyRecord: key.keyRecord, overwrite: true });
      this.remember(blobId, key.keyRecord, key.dek);
      return { blobId, keyRecord: key.keyRecord };
    });
  }

  /**
   * Seals exactly `size` bytes of `source` as chunks `first`, `first + 1`, … of the upload (each 8 MiB but the
   * last; the last FINAL only with `endsBlob`), every chunk durable when this resolves. A chunk already at an
   * index is replaced. Throws CONFLICT if the source yields another number of bytes, and the storage errors.
   */
  seal(caller: Parameters<RecordsFor>[0], upload: PlacedUpload, first: number, source: AsyncIterable<Uint8Array>, size: number, endsBlob: boolean): Promise<{ chunks: number }> {
    return this.withRecords(caller, async (records) => {
      const dek = await this.dek(upload);
      // a slot before the body is pulled: beyond the budget the body waits in the socket (trickling: admitStream)
      const admitted = this.admit ? await this.admit(source) : { source, release: () => undefined };
      let stored: SealStoreResult;
      try {
        stored = await sealAndStore(records, this.pool, { blobIdHex: upload.blobId, dek, firstIndex: first, endsBlob }, admitted.source);
      } finally {
        admitted.release();
      }
      const { chunks, total } = stored;
      if (total !== size) throw new CofferError(ErrorCode.CONFLICT, `the body had ${total} bytes, not the ${size} announced`);
      return { chunks };
    });
  }

  /**
   * The plaintext of chunks `first` … `first + count - 1` as they are stored now, each authenticated (blob id,
   * index, key, 8 MiB, not FINAL) before a byte of it is yielded; every piece is a fresh buffer.
   */
  async *read(caller: Parameters<RecordsFor>[0], upload: PlacedUpload, first: number, count: number): AsyncGenerator<Uint8Array> {
    const dek = await this.dek(upload);
    const blobId = blobIdFromHex(upload.blobId);
    for (let index = first; index < first + count; index++) {
      const buf = this.pool.acquire();
      try {
        const sealed = await this.withRecords(caller, (r) => r.getUploadChunkInto(upload.blobId, index, buf));
        const plain = openChunkInto(dek, sealed, { blobId, index, keyGeneration: 1, final: false, plaintextLength: 8 * 1024 * 1024 }, sealed.subarray(HEADER_SIZE));
        yield Buffer.from(plain);
      } finally {
        buf.fill(0);
        this.pool.release(buf);
      }
    }
  }

  /** Commits the upload (chunks 0..chunkCount-1, `size` bytes) and binds its path. Idempotent. Throws as FileOps.put. */
  commit(caller: Parameters<RecordsFor>[0], upload: PlacedUpload, chunkCount: number, size: number): Promise<NodeInfo> {
    return this.withRecords(caller, async (records) => {
      const dek = await this.dek(upload);
      const { node } = await records.commit(upload.blobId, chunkCount, size, dek);
      this.forget(upload.blobId);
      return node;
    });
  }

  /** Abandons the upload (its chunks are freed by the storage service's GC). Idempotent. */
  abort(caller: Parameters<RecordsFor>[0], blobId: string): Promise<void> {
    this.forget(blobId);
    return this.withRecords(caller, async (records) => {
      await records.abort(blobId);
    });
  }

  private async dek(upload: PlacedUpload): Promise<Uint8Array> {
    const record = JSON.stringify(upload.keyRecord);
    const kept = this.keys.get(upload.blobId);
    if (kept && kept.record === record && kept.until > Date.now()) return kept.dek;
    // the KMS opens it only for this blob id (encryption context), so a record of another blob does not open
    const dek = await this.dataKeys.openDataKey(upload.keyRecord, upload.blobId);
    this.remember(upload.blobId, upload.keyRecord, dek);
    return dek;
  }

  private remember(blobId: string, keyRecord: KeyRecord, dek: Uint8Array): void {
    this.forget(blobId);
    this.keys.set(blobId, { dek, record: JSON.stringify(keyRecord), until: Date.now() + KEY_TTL_MS });
    while (this.keys.size > KEEP_KEYS) {
      const oldest = this.keys.keys().next().value as string;
      this.forget(oldest);
    }
  }

  private forget(blobId: string): void {
    const kept = this.keys.get(blobId);
    // not zeroed: a seal or read of this upload may still be using it; dropped, it goes with the garbage
    this.keys.delete(blobId);
    void kept;
  }
}
