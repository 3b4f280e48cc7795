// Public entry of the chunk storage backends: the ChunkStore interface, the shared validators, and
// openChunkStore(config), which picks an implementation by `kind`: 'fs' (fs/) or 's3' (s3/, loaded only when
// used, so fs users never load the AWS SDK).
import { CofferError, ErrorCode } from '../src/errors.js';
import { openFsChunkStore, type FsChunkStoreOptions } from './fs/index.js';
import type { S3ChunkStoreOptions } from './s3/index.js';
import type { ChunkStore } from './types.js';

export type * from './types.js';
export { assertBlobId, assertChunkIndex, assertChunkRef, chunkName, parseChunkName, resolveRange } from './ref.js';
export { FsChunkStore, openFsChunkStore, type FsChunkStoreOptions } from './fs/index.js';

/** A filesystem store rooted at a local or POSIX shared directory. */
export interface FsChunkStoreConfig extends FsChunkStoreOptions {
  kind: 'fs';
}

/** An S3-compatible object store (storage-backend/s3/; the AWS SDK is loaded only when one is opened). */
export interface S3ChunkStoreConfig extends S3ChunkStoreOptions {
  kind: 's3';
}

export type ChunkStoreConfig = FsChunkStoreConfig | S3ChunkStoreConfig;

/**
 * Opens the chunk store the config names. Throws INVALID_ARGUMENT for an unknown kind or bad/unknown options,
 * UNAVAILABLE for an S3 bucket that is absent or unreachable, and whatever the implementation's open throws.
 */
export async function openChunkStore(config: ChunkStoreConfig): Promise<ChunkStore> {
  if (typeof config !== 'object' || config === null) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'chunk store config must be an object with a "kind"');
  }
  switch (config.kind) {
    case 'fs': {
      const { kind: _kind, ...options } = config;
      return openFsChunkStore(options);
    }
    case 's3': {
      const { kind: _kind, ...options } = config;
      const { openS3ChunkStore } = await import('./s3/index.js');
      return openS3ChunkStore(options);
    }
    default:
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown chunk store kind "${String((config as { kind?: unknown }).kind)}"`);
  }
}
