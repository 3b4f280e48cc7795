// Sealed upload of one file: cut into 8 MiB chunks, sealed on the client under a fresh per-blob DEK, sent with
// a bounded number of chunks in flight (memory stays flat whatever the file size), then committed, which is
// when the path appears in the vault.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { blobIdToHex, newBlobId, sealStream } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { DataKeyProvider } from './data-keys.js';
import type { NodeInfo, VaultClient } from './vault-client.js';

export interface UploadOptions {
  /** Vault path to create (or replace with overwrite). */
  path: string;
  keys: DataKeyProvider;
  overwrite?: boolean;
  /** Sealed chunks in flight at once (default 4: ≈ 4 × 8 MiB sealed + one being sealed). */
  concurrency?: number;
  onProgress?: (plaintextBytes: number) => void;
}

export interface UploadResult {
  node: NodeInfo;
  blobId: string;
  chunkCount: number;
  size: number;
}

/** Uploads a local file. Throws CofferError (NOT_FOUND for a missing source, IS_A_DIRECTORY, and the service's errors). */
export async function uploadFile(client: VaultClient, source: string, options: UploadOptions): Promise<UploadResult> {
  const info = await stat(source).catch((e: NodeJS.ErrnoException) => {
    throw new CofferError(e.code === 'ENOENT' ? ErrorCode.NOT_FOUND : ErrorCode.INVALID_ARGUMENT, `cannot read ${source}: ${e.message}`);
  });
  if (info.isDirectory()) throw new CofferError(ErrorCode.IS_A_DIRECTORY, `${source} is a directory`);
  const stream = createReadStream(source, { highWaterMark: 1024 * 1024 });
  return uploadStream(client, stream, info.size, options);
}

/** Uploads a byte stream whose size is known in advance (the service checks it at commit). */
export async function uploadStream(client: VaultClient, stream: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number, options: UploadOptions): Promise<UploadResult> {
  const blobId = newBlobId();
  const blobIdHex = blobIdToHex(blobId);
  const { dek, keyRecord } = await options.keys.newDataKey(blobIdHex);
  try {
    await client.createUpload({ path: options.path, blobId: blobIdHex, keyGeneration: 1, keyRecord, size, overwrite: options.overwrite ?? false });
    const concurrency = Math.max(1, options.concurrency ?? 4);
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let chunkCount = 0;
    let total = 0;
    try {
      for await (const chunk of sealStream(stream, dek, { blobId, keyGeneration: 1 })) {
        if (failure !== undefined) break;
        chunkCount = chunk.index + 1;
        total += chunk.plaintextLength;
        const p: Promise<void> = client
          .putChunk(blobIdHex, chunk.index, chunk.bytes)
          .then(() => options.onProgress?.(chunk.plaintextLength))
          .catch((e: unknown) => {
            failure ??= e;
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= concurrency) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      if (failure !== undefined) throw failure;
    } catch (e) {
      if ('destroy' in stream && typeof stream.destroy === 'function') stream.destroy();
      await Promise.allSettled(inFlight);
      await client.abort(blobIdHex).catch(() => undefined);
      throw e;
    }
    if (total !== size) {
      await client.abort(blobIdHex).catch(() => undefined);
      throw new CofferError(ErrorCode.CONFLICT, `source changed while uploading: read ${total} bytes, expected ${size}`);
    }
    const { node } = await client.commit(blobIdHex, chunkCount, total);
    return { node, blobId: blobIdHex, chunkCount, size: total };
  } finally {
    dek.fill(0);
  }
}
