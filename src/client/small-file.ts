// Files that fit in one chunk (≤ 8 MiB), in one request each way (docs/http-api.md "Small files"): the upload
// reads the file whole, seals it as chunk 0 (FINAL) and sends create + chunk + commit as one POST; the download
// gets node, manifest and sealed chunk in one GET, authenticates the chunk, and writes it beside the destination,
// renaming it into place only when it verified (DESIGN.md), exactly as a multi-chunk download does.
import { constants, type BigIntStats } from 'node:fs';
import { link, lstat, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { BufferPool } from '../buffer-pool.js';
import {
  CHUNK_SIZE, blobIdFromHex, blobIdToHex, dataKeyObject, expectedChunkLayout, newBlobId, openChunkInto, sealChunkInto, sealedSize, uploadBindingTag,
} from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { DataKeyProvider } from './data-keys.js';
import { partialPath } from './partial-files.js';
import { ASYNC_READER, type SmallFileReader } from './small-file-read.js';
import { sourceTag, type UploadResult } from './upload.js';
import type { Manifest, NodeInfo, SmallFileRequest, VaultClient } from './vault-client.js';

/** The largest file sent in one request: one chunk. */
export const SMALL_FILE_MAX = CHUNK_SIZE;

export interface SmallUploadOptions {
  path: string;
  keys: DataKeyProvider;
  overwrite?: boolean;
  /**
   * The file's lstat (bigint), taken by the caller before this call (put -r's walk): it stands for the fstat
   * before reading, so a file read costs one fstat, not two. The file read must still match it afterwards.
   */
  expected?: BigIntStats;
  /** How the file is read (default: fs/promises, never holding the event loop); put -r passes its tree's reader. */
  reader?: SmallFileReader;
  /** Buffers to seal into (a file whose sealed chunk fits); the prepared file's `release` gives it back. */
  sealedBuffers?: BufferPool;
}

/**
 * Uploads a local file of at most 8 MiB in one request. Throws NOT_FOUND (no such file), IS_A_DIRECTORY,
 * INVALID_ARGUMENT (larger than one chunk: use uploadFile), CONFLICT (the file changed while it was read), and
 * the service's errors. Nothing is committed unless the whole request succeeds.
 */
export async function uploadSmallFile(client: VaultClient, source: string, options: SmallUploadOptions): Promise<UploadResult> {
  const prepared = await prepareSmallFile(client, source, options);
  const { node } = await client.putSmallFile(prepared.request, prepared.sealed);
  return { node, blobId: prepared.request.blobId, chunkCount: 1, size: prepared.request.size, skippedChunks: 0, resumed: false };
}

/** A small file read, sealed and ready to send (alone with putSmallFile, or in a batch with putSmallFiles). */
export interface PreparedSmallFile {
  request: SmallFileRequest;
  sealed: Uint8Array;
  /** Gives the buffer under `sealed` back to `sealedBuffers` once its bytes were copied or sent (call once). */
  release?: () => void;
}

/**
 * Reads a local file of at most 8 MiB and seals it as chunk 0 of a new blob under a new data key. Throws as
 * uploadSmallFile does, before anything is sent.
 */
export async function prepareSmallFile(client: VaultClient, source: string, options: SmallUploadOptions): Promise<PreparedSmallFile> {
  const { plaintext, identity, release: releasePlaintext } = await (options.reader ?? ASYNC_READER).read(source, options.expected);
  const blobId = newBlobId();
  const blobIdHex = blobIdToHex(blobId);
  let dek: Uint8Array | undefined;
  let keyRecord: SmallFileRequest['keyRecord'];
  let sealed: Uint8Array;
  let tag: string;
  let binding: string | undefined;
  const pool = options.sealedBuffers;
  const out = pool !== undefined && sealedSize(plaintext.length) <= pool.size ? pool.acquire() : Buffer.allocUnsafe(sealedSize(plaintext.length));
  try {
    ({ dek, keyRecord } = await options.keys.newDataKey(blobIdHex));
    // one KeyObject for the three uses: Node checks raw key bytes at a cost of ≈ 25 µs a use (crypto data-key.ts)
    const key = dataKeyObject(dek);
    sealed = sealChunkInto(key, { blobId, index: 0, keyGeneration: 1, final: true }, plaintext, out);
    tag = sourceTag(key, identity);
    // lets an enclave endorse this file later: only a holder of the data key can bind this blob to this path
    if (client.http.tokenSubject !== null) binding = uploadBindingTag(key, { blobId: blobIdHex, path: options.path, owner: client.http.tokenSubject, size: plaintext.length });
  } finally {
    dek?.fill(0);
    plaintext.fill(0);
    releasePlaintext();
  }
  return {
    request: {
      path: options.path, blobId: blobIdHex, keyGeneration: 1, keyRecord, size: plaintext.length, overwrite: options.overwrite ?? false, source: tag, ...(binding === undefined ? {} : { binding }),
    },
    sealed,
    ...(pool === undefined ? {} : { release: () => pool.release(out) }),
  };
}

export interface SmallDownloadOptions {
  keys: DataKeyProvider;
  /** Replace an existing destination (default false: ALREADY_EXISTS). */
  overwrite?: boolean;
  /** Set as the file's modification time before it takes its name (get -r: the vault file's modifiedAt). */
  mtime?: Date;
  /** Told the temporary file's path just before it is created, null once it is gone or was never made (signal clean-up). */
  onTempFile?: (path: string | null) => void;
  /** Makes the destination directory's new entry durable (default: fsync it now); get -r batches these. */
  syncDir?: (dir: string) => Promise<void>;
  /**
   * Make the file durable before it takes its name (fsync the file, then its directory entry). Default true.
   * get -r passes false unless `--fsync` (docs/vault.md "Trees", durability): the temporary name and the rename
   * stay, so an interrupted process still leaves every file whole or absent; only a power loss may lose a file
   * downloaded moments before (a re-run fetches it again: its size or time differs).
   */
  fsync?: boolean;
}

/**
 * Fetches a file in one request when it has one chunk. Returns the verified plaintext then, or null with the
 * node and manifest for a larger file (to be fetched chunk by chunk). Throws INTEGRITY (a malformed answer or
 * an inconsistent manifest), CHUNK_AUTH_FAILED, CHUNK_MISMATCH, and the service's errors.
 */
export async function fetchSmallFile(client: VaultClient, vaultPath: string, keys: DataKeyProvider): Promise<{ node: NodeInfo; manifest: Manifest; plaintext: Buffer | null }> {
  return openFileAnswer(await client.getFile(vaultPath), vaultPath, keys);
}

/**
 * Checks one file's answer (from `GET /v1/fs/file` or a batch read) and opens its chunk: the manifest must agree
 * with itself and the node, and the chunk must authenticate as chunk 0, FINAL, of that blob and size. Returns as
 * fetchSmallFile; throws INTEGRITY, CHUNK_AUTH_FAILED, CHUNK_MISMATCH.
 */
export async function openFileAnswer(
  answer: { node: NodeInfo; manifest: Manifest; sealed: Buffer | null }, vaultPath: string, keys: DataKeyProvider,
): Promise<{ node: NodeInfo; manifest: Manifest; plaintext: Buffer | null }> {
  const { node, manifest, sealed } = answer;
  const count = Number.isSafeInteger(manifest.size) && manifest.size >= 0 ? expectedChunkLayout(manifest.size).chunkCount : -1;
  if (count < 0 || manifest.chunkCount !== count || manifest.state !== 'committed' || manifest.blobId !== node.blobId) {
    throw new CofferError(ErrorCode.INTEGRITY, `manifest of ${vaultPath} is inconsistent (size ${manifest.size}, ${manifest.chunkCount} chunks)`);
  }
  if (count !== 1) return { node, manifest, plaintext: null };
  if (!sealed) throw new CofferError(ErrorCode.INTEGRITY, `the answer for ${vaultPath} has no chunk`);
  const dek = await keys.openDataKey(manifest.keyRecord, manifest.blobId);
  try {
    // a KeyObject, not the raw bytes: handed raw bytes, createDecipheriv first throws and catches to find out they
    // are not a KeyObject (≈ 7 µs of a small file's ≈ 18 µs decrypt; crypto/data-key.ts, bench/open-small-key.mjs).
    // Its copy of the key is cleared by Node when it is collected, as a decipher's is; the raw bytes are zeroed below.
    const key = dataKeyObject(dek);
    // its own memory of exactly the file's size (not a slice of Node's 64 KiB pool, no room left for the tag): get -r
    // moves it to a placement worker as it is (place-workers.ts; a view would be copied there and zeroed here).
    // openChunkInto checks the sealed length against this size before deciphering.
    const out = Buffer.allocUnsafeSlow(manifest.size);
    const plaintext = openChunkInto(key, sealed, {
      blobId: blobIdFromHex(manifest.blobId), index: 0, keyGeneration: manifest.keyGeneration, final: true, plaintextLength: manifest.size,
    }, out);
    return { node, manifest, plaintext: Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength) };
  } finally {
    dek.fill(0);
  }
}

/**
 * Writes verified plaintext to `dest` as a download does: a temporary file beside it, fsynced (unless
 * `fsync: false`), then linked (without overwrite: an existing name is refused, ALREADY_EXISTS) or renamed
 * (overwrite) into place, and the directory entry made durable. On failure nothing is left behind.
 */
export async function placeFile(dest: string, plaintext: Uint8Array, options: Omit<SmallDownloadOptions, 'keys'>): Promise<void> {
  const dir = path.dirname(dest);
  const durable = options.fsync ?? true;
  const temp = partialPath(dir);
  // named before it exists, as in download.ts: a signal during open(2) must not leave it behind
  options.onTempFile?.(temp);
  const fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600).catch((e: NodeJS.ErrnoException) => {
    options.onTempFile?.(null);
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw new CofferError(ErrorCode.NOT_FOUND, `${dir} is not an existing directory`, { cause: e });
    if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') throw new CofferError(ErrorCode.PERMISSION_DENIED, `cannot write in ${dir} (${e.code})`, { cause: e });
    throw e;
  });
  let placed = false;
  try {
    try {
      let n = 0;
      while (n < plaintext.length) n += (await fh.write(plaintext, n, plaintext.length - n, n)).bytesWritten;
      // the time first, so the fsync makes it durable too (a re-run after a crash compares it)
      if (options.mtime) await fh.utimes(options.mtime, options.mtime);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.overwrite) {
      await rename(temp, dest);
    } else {
      const linked = await link(temp, dest).then(() => true, (e: NodeJS.ErrnoException) => {
        if (e.code === 'EEXIST') throw new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} exists (use --force to replace it)`);
        if (!NO_HARD_LINKS.has(e.code ?? '')) throw e;
        return false;
      });
      if (linked) await unlink(temp);
      else if (await lstat(dest).then(() => true, () => false)) throw new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} appeared meanwhile (use --force to replace it)`);
      else await rename(temp, dest); // a filesystem without hard links: check, then rename (as download.ts)
    }
    placed = true;
    if (durable) await (options.syncDir ?? fsyncDir)(dir);
  } finally {
    if (!placed) await unlink(temp).catch(() => undefined);
    options.onTempFile?.(null);
  }
}

const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

export async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
