// Verified download of one file: fetch the manifest and the sealed chunks, check every chunk header against the
// manifest and authenticate it with the DEK, write plaintext to a temporary file beside the destination, and
// rename it into place only when every chunk verified. On any failure the destination is untouched and the
// temporary file is removed (DESIGN.md: a failed download leaves nothing at the destination).
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { BufferPool, alignedAllocator } from '../buffer-pool.js';
import { CHUNK_SIZE, MAX_SEALED_SIZE, blobIdFromHex, expectedChunkLayout, openChunkInto } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { DataKeyProvider } from './data-keys.js';
import { OutputFile } from './output-file.js';
import type { Manifest, NodeInfo, VaultClient } from './vault-client.js';

export interface DownloadOptions {
  keys: DataKeyProvider;
  /** Replace an existing destination file (default false: ALREADY_EXISTS). */
  overwrite?: boolean;
  /** Chunks fetched and opened at once (default 4). */
  concurrency?: number;
  onProgress?: (plaintextBytes: number) => void;
  /** Called once the manifest is known, before any chunk is fetched (e.g. to size a progress bar). */
  onStart?: (node: NodeInfo) => void;
}

export interface DownloadResult {
  node: NodeInfo;
  destination: string;
  size: number;
  chunkCount: number;
}

/** Throws CofferError: NOT_FOUND, IS_A_DIRECTORY, ALREADY_EXISTS, CHUNK_AUTH_FAILED, CHUNK_MISMATCH, INTEGRITY… */
export async function downloadFile(client: VaultClient, vaultPath: string, destination: string, options: DownloadOptions): Promise<DownloadResult> {
  const { node, manifest } = await client.manifestByPath(vaultPath);
  options.onStart?.(node);
  let dest = path.resolve(destination);
  let existing = await stat(dest).catch(() => null);
  if (existing?.isDirectory()) {
    dest = path.join(dest, node.name);
    existing = await stat(dest).catch(() => null);
  }
  if (!options.overwrite && existing) {
    throw new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} exists (use --force to replace it)`);
  }
  checkManifest(manifest);
  const dek = await options.keys.openDataKey(manifest.keyRecord, manifest.blobId);
  const temp = path.join(path.dirname(dest), `.${path.basename(dest)}.coffer-partial-${randomBytes(6).toString('hex')}`);
  const fh = await OutputFile.create(temp);
  let ok = false;
  try {
    // Flush to disk while downloading (every 64 MiB, one flush at a time) so the final fsync before the rename
    // waits for the last stretch only, not for the whole file.
    let unsynced = 0;
    let flushing: Promise<void> | null = null;
    const maybeFlush = (n: number): void => {
      unsynced += n;
      if (unsynced < 64 * 1024 * 1024 || flushing) return;
      unsynced = 0;
      flushing = fh.datasync().finally(() => {
        flushing = null;
      });
    };
    const n = Math.max(1, options.concurrency ?? 4);
    // aligned plaintext buffers, so that the file can be written with O_DIRECT (output-file.ts)
    const plainBuffers = new BufferPool(CHUNK_SIZE, n, alignedAllocator(CHUNK_SIZE, n));
    await openChunks(client, manifest, dek, n, plainBuffers, async (offset, plaintext) => {
      await fh.write(plaintext, offset);
      maybeFlush(plaintext.length);
      options.onProgress?.(plaintext.length);
    });
    await flushing;
    await fh.finish(manifest.size);
    ok = true;
  } finally {
    dek.fill(0);
    await fh.close();
    if (!ok) await unlink(temp).catch(() => undefined);
  }
  await rename(temp, dest);
  await fsyncDir(path.dirname(dest));
  return { node, destination: dest, size: manifest.size, chunkCount: manifest.chunkCount };
}

/**
 * Downloads, checks and opens every chunk of a file and discards the plaintext: proves the file is complete and
 * authentic under its key without writing it anywhere (`coffer get --verify-only`). Throws as downloadFile.
 */
export async function verifyFile(client: VaultClient, vaultPath: string, options: Omit<DownloadOptions, 'overwrite'>): Promise<DownloadResult> {
  const { node, manifest } = await client.manifestByPath(vaultPath);
  options.onStart?.(node);
  checkManifest(manifest);
  const dek = await options.keys.openDataKey(manifest.keyRecord, manifest.blobId);
  try {
    const n = Math.max(1, options.concurrency ?? 4);
    await openChunks(client, manifest, dek, n, new BufferPool(CHUNK_SIZE, n), async (_offset, plaintext) => {
      options.onProgress?.(plaintext.length);
    });
  } finally {
    dek.fill(0);
  }
  return { node, destination: '', size: manifest.size, chunkCount: manifest.chunkCount };
}

/**
 * Fetches chunks with bounded concurrency, checks each header against the manifest and authenticates it, and
 * hands the plaintext with its offset to `sink` (in any order; the plaintext buffer is reused once the sink's
 * promise settles). Throws at the first bad chunk. Sealed and plaintext buffers come from pools of
 * `concurrency` each (plaintext: the caller's, of CHUNK_SIZE), so nothing is allocated per chunk; both are
 * zeroed at the end.
 */
async function openChunks(
  client: VaultClient, manifest: Manifest, dek: Uint8Array, concurrency: number, plainBuffers: BufferPool,
  sink: (offset: number, plaintext: Uint8Array) => Promise<void>,
): Promise<void> {
  const blobId = blobIdFromHex(manifest.blobId);
  const layout = expectedChunkLayout(manifest.size);
  const limit = pLimit(concurrency);
  const sealedBuffers = new BufferPool(MAX_SEALED_SIZE, concurrency);
  let failed = false;
  const tasks = Array.from({ length: manifest.chunkCount }, (_, index) =>
    limit(async () => {
      if (failed) return; // after the first failure the queued chunks are skipped
      const sealedBuf = sealedBuffers.acquire();
      const sealed = await client.getChunkInto(manifest.blobId, index, sealedBuf);
      const plainBuf = plainBuffers.acquire();
      const plaintext = openChunkInto(dek, sealed, {
        blobId,
        index,
        keyGeneration: manifest.keyGeneration,
        final: index === manifest.chunkCount - 1,
        plaintextLength: layout.plaintextLengthOf(index),
      }, plainBuf);
      sealedBuffers.release(sealedBuf);
      await sink(layout.offsetOf(index), plaintext);
      plainBuffers.release(plainBuf);
    }).catch((e: unknown) => {
      failed = true;
      throw e;
    }),
  );
  try {
    await Promise.all(tasks);
  } catch (e) {
    // let the chunks already in flight finish (or fail) before the caller closes and removes the file
    await Promise.allSettled(tasks);
    throw e;
  } finally {
    plainBuffers.clear();
    sealedBuffers.clear();
  }
}

/** The manifest comes from the untrusted service: it must at least be self-consistent before we use it. */
function checkManifest(m: Manifest): void {
  const count = Number.isSafeInteger(m.size) && m.size >= 0 ? expectedChunkLayout(m.size).chunkCount : -1;
  if (count < 0 || m.chunkCount !== count || m.state !== 'committed') {
    throw new CofferError(ErrorCode.INTEGRITY, `manifest of blob ${m.blobId} is inconsistent (size ${m.size}, ${m.chunkCount} chunks, state ${m.state})`);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
