// Public entry of the chunk storage backends: the ChunkStore interface, the shared validators, and
// openChunkStore(config), which picks an implementation by `kind`. Only 'fs' exists today; the 's3' shape is
// declared so configuration code can be written against it, and opening it fails clearly until it lands.
import { CofferError, ErrorCode } from '../src/errors.js';
import { openFsChunkStore, type FsChunkStoreOptions } from './fs/index.js';
import type { ChunkStore } from './types.js';

export type * from './types.js';
export { assertBlobId, assertChunkIndex, assertChunkRef, chunkName, parseChunkName, resolveRange } from './ref.js';
export { FsChunkStore, openFsChunkStore, type FsChunkStoreOptions } from './fs/index.js';

/** A filesystem store rooted at a local or POSIX shared directory. */
export interface FsChunkStoreConfig extends FsChunkStoreOptions {
  kind: 'fs';
}

/** An S3-compatible object store (not implemented yet: openChunkStore refuses it with UNAVAILABLE). */
export interface S3ChunkStoreConfig {
  kind: 's3';
  bucket: string;
  /** Key prefix under which `chunks/…` lives, e.g. "coffer/". */
  prefix?: string;
  region?: string;
  /** For S3-compatible services (MinIO, Ceph RGW): their endpoint URL. */
  endpoint?: string;
  forcePathStyle?: boolean;
  concurrency?: number;
}

export type ChunkStoreConfig = FsChunkStoreConfig | S3ChunkStoreConfig;

/**
 * Opens the chunk store the config names. Throws INVALID_ARGUMENT for an unknown kind or bad/unknown options,
 * UNAVAILABLE for kind 's3' (not implemented yet), and whatever the implementation's open throws.
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
    case 's3':
      throw new CofferError(ErrorCode.UNAVAILABLE, 'the S3 chunk store is not implemented yet; use { kind: "fs", root }');
    default:
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown chunk store kind "${String((config as { kind?: unknown }).kind)}"`);
  }
}
