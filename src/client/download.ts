// Verified download of one file: fetch the manifest and the sealed chunks, check every chunk header against the
// manifest and authenticate it with the DEK, write plaintext to a temporary file beside the destination, and
// rename it into place only when every chunk verified. On any failure the destination is untouched and the
// temporary file is removed (DESIGN.md: a failed download leaves nothing at the destination).
import { createHash } from 'node:crypto';
import { link, lstat, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { BufferPool, DIRECT_IO_ALIGNMENT, alignUp, alignedAllocator } from '../buffer-pool.js';
import { HEADER_SIZE, MAX_SEALED_SIZE, blobIdFromHex, expectedChunkLayout, openChunkInto } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { Gate } from '../gate.js';
import type { DataKeyProvider } from './data-keys.js';
import { localName } from './local-name.js';
import { OutputFile } from './output-file.js';
import { partialPath, sweepDeadPartials } from './partial-files.js';
import type { Manifest, NodeInfo, VaultClient } from './vault-client.js';
import { YoungGarbagePacer } from '../young-garbage.js';

export interface DownloadOptions {
  keys: DataKeyProvider;
  /** Replace an existing destination file (default false: ALREADY_EXISTS). */
  overwrite?: boolean;
  /** Chunks fetched and opened at once (default 4). */
  concurrency?: number;
  onProgress?: (plaintextBytes: number) => void;
  /** Called once the manifest is known, before any chunk is fetched (e.g. to size a progress bar). */
  onStart?: (node: NodeInfo) => void;
  /**
   * Told the temporary file's path just before it is created, and null once it is gone (renamed, removed, or
   * never created): a CLI that is interrupted by a signal removes it (the finally blocks here never run then),
   * and must tolerate a name that does not exist (yet).
   */
  onTempFile?: (path: string | null) => void;
  /** Sweep the destination directory's dead partial files first (default true; get -r sweeps once per directory). */
  sweepPartials?: boolean;
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
  // lstat: a symbolic link at the destination (even a dangling one) is something that exists there
  let existing = await lstat(dest).catch(() => null);
  if (existing?.isDirectory() || (existing?.isSymbolicLink() && (await stat(dest).catch(() => null))?.isDirectory())) {
    dest = path.join(dest, localName(node.name));
    existing = await lstat(dest).catch(() => null);
  }
  if (!options.overwrite && existing) {
    throw new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} exists (use --force to replace it)`);
  }
  checkManifest(manifest);
  const dek = await options.keys.openDataKey(manifest.keyRecord, manifest.blobId);
  // a short name of its own, so that a destination name up to the 255-byte limit still leaves room for it; and
  // first away with the partial files of downloads here that were killed (they hold plaintext)
  if (options.sweepPartials !== false) await sweepDeadPartials(path.dirname(dest));
  const temp = partialPath(path.dirname(dest));
  // named to the signal handler before it exists: named after, a signal while open(2) runs would leave the file
  // (plaintext) behind. A name that was never created costs the handler nothing (it ignores ENOENT).
  options.onTempFile?.(temp);
  const fh = await OutputFile.create(temp).catch((e: NodeJS.ErrnoException) => {
    options.onTempFile?.(null);
    // said of the destination the user named, not of the temporary file beside it
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw new CofferError(ErrorCode.NOT_FOUND, `${path.dirname(dest)} is not an existing directory`, { cause: e });
    if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') throw new CofferError(ErrorCode.PERMISSION_DENIED, `cannot write in ${path.dirname(dest)} (${e.code})`, { cause: e });
    throw e;
  });
  let placed = false;
  try {
    try {
      // Flush to disk while downloading (every 64 MiB, one flush at a time) so the final fsync before the rename
      // waits for the last stretch only, not for the whole file. A failed flush fails the download.
      let unsynced = 0;
      let flushing: Promise<void> | null = null;
      let flushError: unknown;
      const maybeFlush = (n: number): void => {
        if (flushError !== undefined) throw flushError;
        unsynced += n;
        if (unsynced < 64 * 1024 * 1024 || flushing) return;
        unsynced = 0;
        flushing = fh.datasync().catch((e: unknown) => {
          flushError ??= e;
        }).finally(() => {
          flushing = null;
        });
      };
      await openChunks(client, manifest, dek, Math.max(1, options.concurrency ?? 4), async (offset, plaintext) => {
        await fh.write(plaintext, offset);
        maybeFlush(plaintext.length);
        options.onProgress?.(plaintext.length);
      });
      await flushing;
      if (flushError !== undefined) throw flushError;
      await fh.finish(manifest.size);
    } finally {
      dek.fill(0);
      await fh.close();
    }
    // Without --force the file takes the destination's name only if nothing appeared there meanwhile: link(2)
    // refuses an existing name (rename would replace it). With --force, rename replaces atomically.
    if (options.overwrite) {
      await rename(temp, dest);
    } else {
      const appeared = (): CofferError => new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} appeared during the download (use --force to replace it)`);
      const linked = await link(temp, dest).then(() => true, (e: NodeJS.ErrnoException) => {
        if (e.code === 'EEXIST') throw appeared();
        if (!NO_HARD_LINKS.has(e.code ?? '')) throw e;
        return false; // a filesystem without hard links: check, then rename (a window of one system call)
      });
      if (linked) await unlink(temp);
      else if (await lstat(dest).then(() => true, () => false)) throw appeared();
      else await rename(temp, dest);
    }
    placed = true;
    await fsyncDir(path.dirname(dest));
  } finally {
    // nothing half-done stays behind: not the partial file, nor a complete one that could not take its name
    if (!placed) await unlink(temp).catch(() => undefined);
    options.onTempFile?.(null);
  }
  return { node, destination: dest, size: manifest.size, chunkCount: manifest.chunkCount };
}

/** link(2) errors of filesystems that have no hard links (some FUSE and network filesystems). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

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
    await openChunks(client, manifest, dek, Math.max(1, options.concurrency ?? 4), async (_offset, plaintext) => {
      options.onProgress?.(plaintext.length);
    });
  } finally {
    dek.fill(0);
  }
  return { node, destination: '', size: manifest.size, chunkCount: manifest.chunkCount };
}

/**
 * The SHA-256 (hex) of a vault file's plaintext, every chunk authenticated on the way (`put -r --checksum`,
 * `get -r --checksum`). Throws as verifyFile.
 */
export async function fileSha256(client: VaultClient, vaultPath: string, keys: DataKeyProvider): Promise<string> {
  const { manifest } = await client.manifestByPath(vaultPath);
  checkManifest(manifest);
  const dek = await keys.openDataKey(manifest.keyRecord, manifest.blobId);
  const hash = createHash('sha256');
  try {
    // one chunk at a time, so they arrive in order
    await openChunks(client, manifest, dek, 1, async (_offset, plaintext) => {
      hash.update(plaintext);
    });
  } finally {
    dek.fill(0);
  }
  return hash.digest('hex');
}

/**
 * Where a sealed chunk sits in its download buffer: just far enough in that its ciphertext, and so the plaintext
 * opened over it in place, starts on a 4 KiB boundary (the output file is written with O_DIRECT).
 */
const SEALED_AT = DIRECT_IO_ALIGNMENT - HEADER_SIZE;
/** A download buffer: the sealed chunk at SEALED_AT, and room to pad the plaintext to whole 4 KiB blocks. */
const BUFFER_SIZE = alignUp(SEALED_AT + MAX_SEALED_SIZE);

/**
 * Fetches chunks with bounded concurrency, checks each header against the manifest, authenticates and opens it
 * in place, and hands the plaintext with its offset to `sink` (in any order; the buffer is reused once the
 * sink's promise settles). Throws at the first bad chunk. One aligned buffer per chunk in flight, from a pool,
 * so nothing is allocated per chunk: the body is read straight into it (body-fetcher.ts) and the plaintext
 * replaces the ciphertext. The buffers are zeroed at the end.
 */
export async function openChunks(
  client: VaultClient, manifest: Manifest, dek: Uint8Array, concurrency: number,
  sink: (offset: number, plaintext: Uint8Array) => Promise<void>,
  /** Told of the first chunk that fails (a sink waiting for an earlier chunk must stop waiting). */
  onFailure?: (e: unknown) => void,
): Promise<void> {
  const blobId = blobIdFromHex(manifest.blobId);
  const layout = expectedChunkLayout(manifest.size);
  const buffers = new BufferPool(BUFFER_SIZE, concurrency, alignedAllocator(BUFFER_SIZE, concurrency));
  // Chunks are started one by one as others finish (never one task per chunk up front: a 16 TiB file has two
  // million chunks, and a hostile manifest may claim far more), so memory stays flat whatever the size; after
  // the first failure nothing new starts.
  const gate = new Gate(concurrency);
  // the socket's read buffers and the decipher's slice outputs, freed every 32 MiB opened (src/young-garbage.ts)
  const youngGarbage = new YoungGarbagePacer();
  try {
    for (let index = 0; index < manifest.chunkCount && gate.error === undefined; index++) {
      await gate.submit(async () => {
        try {
          const buf = buffers.acquire();
          const sealed = await client.getChunkInto(manifest.blobId, index, buf.subarray(SEALED_AT));
          const plaintext = openChunkInto(dek, sealed, {
            blobId,
            index,
            keyGeneration: manifest.keyGeneration,
            final: index === manifest.chunkCount - 1,
            plaintextLength: layout.plaintextLengthOf(index),
          }, sealed.subarray(HEADER_SIZE));
          youngGarbage.moved(plaintext.length);
          await sink(layout.offsetOf(index), plaintext);
          buffers.release(buf);
        } catch (e) {
          onFailure?.(e);
          throw e;
        }
      });
    }
  } finally {
    // the chunks in flight finish (or fail) before the caller closes and removes the file, and before the
    // buffers they read into are zeroed
    await gate.drain();
    buffers.clear();
  }
  if (gate.error !== undefined) throw gate.error;
}

/** The manifest comes from the untrusted service: it must at least be self-consistent before we use it. */
export function checkManifest(m: Manifest): void {
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
