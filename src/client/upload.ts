// Sealed upload of one file: cut into 8 MiB chunks, sealed on the client under a fresh per-blob DEK, sent with
// a bounded number of chunks in flight (memory stays flat whatever the file size), then committed, which is
// when the path appears in the vault. Transient failures are retried per chunk; if the upload still cannot
// finish it is kept on the service so that `coffer put --resume BLOB` sends only the missing chunks.
import { createHmac } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { BufferPool } from '../buffer-pool.js';
import {
  MAX_SEALED_SIZE, blobIdFromHex, blobIdToHex, expectedChunkLayout, newBlobId, sealReader, sealStream, uploadBindingTag, type DataKey, type ReadAt,
} from '../crypto/index.js';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { YoungGarbagePacer } from '../young-garbage.js';
import type { DataKeyProvider } from './data-keys.js';
import { isTransient } from './retry.js';
import type { UploadRecord } from './upload-journal.js';
import type { NodeInfo, VaultClient } from './vault-client.js';

export interface UploadOptions {
  /** Vault path to create (or replace with overwrite). */
  path: string;
  keys: DataKeyProvider;
  overwrite?: boolean;
  /** Sealed chunks in flight at once (default 4: ≈ 4 × 8 MiB sealed + one being sealed). */
  concurrency?: number;
  /** Continue this earlier upload (blob id) instead of starting a new one: only missing chunks are sent. */
  resume?: string;
  onProgress?: (plaintextBytes: number) => void;
  /**
   * What identifies the source (uploadFile: device, inode, size, modification and change times). Stored with the
   * upload as a tag keyed by the data key (the service learns nothing of it); a resume must present the same.
   */
  sourceIdentity?: string;
  /** Awaited once every chunk is stored, before the commit; throwing abandons the upload (uploadFile: the source changed). */
  beforeCommit?: () => Promise<void>;
  /** Told the upload's blob id once it exists on the service (e.g. to say how to resume after an interruption). */
  onUpload?: (blobId: string) => void | Promise<void>;
}

export interface UploadResult {
  node: NodeInfo;
  blobId: string;
  chunkCount: number;
  size: number;
  /** Chunks that were already durable on the service (resume). */
  skippedChunks: number;
  /** Whether an earlier upload was continued (`resume`, or one recorded in the journal). */
  resumed: boolean;
}

/** Uploads a local file. Throws CofferError (NOT_FOUND for a missing source, IS_A_DIRECTORY, and the service's errors). */
export async function uploadFile(client: VaultClient, source: string, options: UploadFileOptions): Promise<UploadResult> {
  const { journal } = options;
  const recalled = options.resume === undefined ? await journal?.recall() : null;
  if (recalled) {
    // the same put was cut short before: continue it, unless that upload cannot be continued (gone, abandoned,
    // or this file is not the one it started from any more); then start afresh
    try {
      return await uploadFileOnce(client, source, { ...options, resume: recalled });
    } catch (e) {
      if (!isResumeRefusal(e)) throw e; // anything else (the service down, a token expired) keeps the record
      // not aborted: a refused upload is gone already, or another put's, or of the file as it was (GC expires it)
      await journal?.forget(recalled);
    }
  }
  return uploadFileOnce(client, source, options);
}

function isResumeRefusal(e: unknown): boolean {
  return isCofferError(e) && e.details?.resumeRefused === true;
}

async function uploadFileOnce(client: VaultClient, source: string, options: UploadFileOptions): Promise<UploadResult> {
  const { journal } = options;
  const info = await stat(source).catch((e: NodeJS.ErrnoException) => {
    throw new CofferError(e.code === 'ENOENT' ? ErrorCode.NOT_FOUND : ErrorCode.INVALID_ARGUMENT, `cannot read ${source}: ${e.message}`, { cause: e });
  });
  if (info.isDirectory()) throw new CofferError(ErrorCode.IS_A_DIRECTORY, `${source} is a directory`);
  const fh = await open(source, 'r');
  try {
    // A file written while it is read would be committed as a mixture of old and new bytes (tar and rsync have
    // the same problem and the same answer): its identity is taken before and compared after, before the commit.
    const before = identityOf(await fh.stat({ bigint: true }));
    const beforeCommit = async (): Promise<void> => {
      if (identityOf(await fh.stat({ bigint: true })) !== before) {
        throw new CofferError(ErrorCode.CONFLICT, `${source} changed while it was uploaded; nothing was committed (run put again)`);
      }
    };
    let sending: string | undefined; // this run's upload, once the service has it
    const onUpload = async (blobId: string): Promise<void> => {
      sending = blobId;
      await journal?.remember(blobId);
      await options.onUpload?.(blobId);
    };
    try {
      const readAt: ReadAt = async (buf, offset, length, position) => (await fh.read(buf, offset, length, position)).bytesRead;
      const result = await uploadStream(client, { readAt }, Number(info.size), { ...options, sourceIdentity: before, beforeCommit, onUpload });
      await journal?.forget(result.blobId);
      return result;
    } catch (e) {
      // kept on the service for a resume: its record stays; an upload this run started or took up and that ended
      // (abandoned, refused) goes; a failure before any upload was identified leaves the record as it was
      const kept = isCofferError(e) && typeof e.details?.resumeBlobId === 'string';
      if (sending !== undefined && !kept) await journal?.forget(sending);
      throw e;
    }
  } finally {
    await fh.close();
  }
}

export interface UploadFileOptions extends UploadOptions {
  /**
   * Where this upload is recorded while it runs (UploadJournal.recordFor): an earlier upload recorded there, cut
   * short, is continued (unless `resume` names one), and a finished one is forgotten.
   */
  journal?: UploadRecord;
}

/** Device, inode, size, and modification and change times in nanoseconds: what changes when a file's bytes do. */
export function identityOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * A source read at positions (a regular file): each chunk is read straight into the buffer it is sealed in, 8 MiB
 * a read, the next one read while one is sealed (src/crypto/seal-reader.ts). Needs the size up front.
 */
export interface ReadAtSource {
  readAt: ReadAt;
}

function isReadAtSource(s: unknown): s is ReadAtSource {
  return typeof s === 'object' && s !== null && typeof (s as Partial<ReadAtSource>).readAt === 'function';
}

/** The source tag stored with an upload: the identity, keyed by the blob's data key (opaque to the service). */
export function sourceTag(dek: DataKey, identity: string): string {
  return createHmac('sha256', dek).update(`coffer-source-v1\0${identity}`).digest('base64url');
}

/**
 * Uploads a byte stream. With its size known in advance the service checks it at commit; with `size` null (a
 * pipe) the upload declares none and is committed with what was read when the stream ended cleanly (a stream
 * that fails is never committed). A stream of unknown size cannot be resumed.
 */
export async function uploadStream(
  client: VaultClient, stream: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadAtSource, size: number | null, options: UploadOptions,
): Promise<UploadResult> {
  if (size === null && isReadAtSource(stream)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a source read at positions needs its size');
  if (size === null && options.resume) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a stream of unknown size cannot be resumed');
  const { blobIdHex, dek, durable, committed } = options.resume && size !== null ? await resumeOrRefuse(client, options.resume, size, options) : await startUpload(client, size, options);
  const resumed = options.resume !== undefined;
  await options.onUpload?.(blobIdHex);
  if (committed && size !== null) {
    // every chunk is in and the blob committed; only binding its path was cut short: commit again binds it
    dek.fill(0);
    if ('destroy' in stream && typeof stream.destroy === 'function') stream.destroy();
    const chunkCount = expectedChunkLayout(size).chunkCount;
    const { node } = await client.commit(blobIdHex, chunkCount, size); // retried by the client: idempotent
    if (node.path !== options.path) {
      // it was bound, then moved or renamed since: that file is not at the path asked for, so this is no answer
      throw new CofferError(ErrorCode.CONFLICT, `upload ${blobIdHex} was committed and its file is at ${node.path} now, not ${options.path}`, {
        details: { resumeRefused: true },
      });
    }
    options.onProgress?.(size);
    return { node, blobId: blobIdHex, chunkCount, size, skippedChunks: chunkCount, resumed };
  }
  try {
    const concurrency = Math.max(1, options.concurrency ?? 4);
    // one sealed buffer per chunk in flight plus the one being sealed (and, read at positions, the one being read
    // ahead), reused chunk after chunk
    const buffers = new BufferPool(MAX_SEALED_SIZE, concurrency + 2);
    const params = { blobId: blobIdFromHex(blobIdHex), keyGeneration: 1 };
    const chunks = isReadAtSource(stream) ? sealReader(stream.readAt, size as number, dek, params, buffers) : sealStream(stream, dek, params, { buffers });
    const inFlight = new Set<Promise<void>>();
    const youngGarbage = new YoungGarbagePacer();
    let failure: unknown;
    let chunkCount = 0;
    let total = 0;
    let skipped = 0;
    try {
      for await (const chunk of chunks) {
        if (failure !== undefined) break;
        youngGarbage.moved(chunk.plaintextLength); // frees the sealing's dead cipher outputs every 32 MiB (src/young-garbage.ts)
        chunkCount = chunk.index + 1;
        total += chunk.plaintextLength;
        if (durable.get(chunk.index) === chunk.plaintextLength) {
          skipped++;
          chunk.release();
          options.onProgress?.(chunk.plaintextLength);
          continue;
        }
        const p: Promise<void> = client
          .putChunk(blobIdHex, chunk.index, chunk.bytes) // retried by the client: a chunk PUT is idempotent
          .then(() => {
            chunk.release(); // answered, so the whole body was sent: the buffer is free (on failure it is dropped)
            options.onProgress?.(chunk.plaintextLength);
          })
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
      throw await keepOrAbort(client, blobIdHex, e);
    }
    if (size !== null && total !== size) {
      await client.abort(blobIdHex).catch(() => undefined);
      throw new CofferError(ErrorCode.CONFLICT, `source changed while uploading: read ${total} bytes, expected ${size}`);
    }
    if (options.beforeCommit) {
      try {
        await options.beforeCommit();
      } catch (e) {
        await client.abort(blobIdHex).catch(() => undefined); // its chunks are of no use to anyone: GC frees them now
        throw e;
      }
    }
    // commit is idempotent (docs/http-api.md): the client repeats it after a lost answer
    let node: NodeInfo;
    try {
      ({ node } = await client.commit(blobIdHex, chunkCount, total));
    } catch (e) {
      throw worthResuming(e) ? keptForResume(e, blobIdHex) : e; // every chunk is durable: a resume only commits
    }
    return { node, blobId: blobIdHex, chunkCount, size: total, skippedChunks: skipped, resumed };
  } finally {
    dek.fill(0);
  }
}

async function startUpload(client: VaultClient, size: number | null, options: UploadOptions): Promise<Resumed> {
  const blobIdHex = blobIdToHex(newBlobId());
  const { dek, keyRecord } = await options.keys.newDataKey(blobIdHex);
  try {
    const request = {
      path: options.path, blobId: blobIdHex, keyGeneration: 1, keyRecord, ...(size === null ? {} : { size }), overwrite: options.overwrite ?? false,
      ...(options.sourceIdentity === undefined ? {} : { source: sourceTag(dek, options.sourceIdentity) }),
      // lets an enclave endorse this file later: only a holder of the data key can bind this blob to this path
      // (a stream of unknown size, `put -`, cannot be bound up front: such a file is not endorsable by the gateway)
      ...(client.http.tokenSubject === null || size === null ? {} : { binding: uploadBindingTag(dek, { blobId: blobIdHex, path: options.path, owner: client.http.tokenSubject, size }) }),
    };
    // the same request again is answered with the upload it made (docs/http-api.md): the client retries it
    await client.createUpload(request);
  } catch (e) {
    dek.fill(0);
    throw e;
  }
  return { blobIdHex, dek, durable: new Map(), committed: false };
}

/** An upload to send: its key, the chunks already durable, and whether it is committed but not yet bound (a commit cut short). */
interface Resumed {
  blobIdHex: string;
  dek: Uint8Array;
  durable: Map<number, number>;
  committed: boolean;
}

/**
 * What says for certain that an upload cannot be continued from this file by this caller: it is gone or
 * abandoned, it was for another path, size, source or --force, or its key cannot be opened with this key file.
 * Not a failure of the moment (the service or KMS down, a token expired): trying again later may work.
 */
const REFUSALS: ReadonlySet<string> = new Set([
  ErrorCode.NOT_FOUND, ErrorCode.UPLOAD_STATE, ErrorCode.CONFLICT, ErrorCode.PERMISSION_DENIED, ErrorCode.KEY_INVALID, ErrorCode.KMS_ACCESS_DENIED,
]);

/** resumeUpload, its refusals marked `details.resumeRefused`: that upload cannot go on. */
async function resumeOrRefuse(client: VaultClient, blobIdHex: string, size: number, options: UploadOptions): Promise<Resumed> {
  try {
    return await resumeUpload(client, blobIdHex, size, options);
  } catch (e) {
    if (!isCofferError(e) || !REFUSALS.has(e.code) || isTransient(e)) throw e;
    throw new CofferError(e.code, e.message, { cause: e, details: { ...e.details, resumeRefused: true } });
  }
}

/** Picks an earlier upload up again: same path and size, key re-opened from its record (key-file mode). */
async function resumeUpload(client: VaultClient, blobIdHex: string, size: number, options: UploadOptions): Promise<Resumed> {
  const state = await client.uploadState(blobIdHex);
  if (state.state === 'deleting') throw new CofferError(ErrorCode.UPLOAD_STATE, `upload ${blobIdHex} was abandoned (deleting); start a new one`);
  if (state.path !== options.path) throw new CofferError(ErrorCode.CONFLICT, `upload ${blobIdHex} is for ${state.path}, not ${options.path}`);
  if (state.size !== null && state.size !== size) throw new CofferError(ErrorCode.CONFLICT, `upload ${blobIdHex} was for ${state.size} bytes; the file now has ${size}`);
  if (state.overwrite !== (options.overwrite ?? false)) {
    // the commit would replace (or refuse to replace) a file as the first run was told, not as this one is
    throw new CofferError(ErrorCode.CONFLICT, `upload ${blobIdHex} was started ${state.overwrite ? 'with' : 'without'} --force; resume it the same way`);
  }
  const dek = await options.keys.openDataKey(state.keyRecord, blobIdHex);
  // Chunks already stored are skipped by length alone, so they must come from this very source: another file of
  // the same size, or this one changed since, would be committed as a mixture.
  if (options.sourceIdentity !== undefined && state.source !== sourceTag(dek, options.sourceIdentity)) {
    dek.fill(0);
    throw new CofferError(
      ErrorCode.CONFLICT,
      `upload ${blobIdHex} was started from another file, or this file changed since; it cannot be resumed from it (run put without --resume)`,
    );
  }
  return { blobIdHex, dek, durable: new Map(state.chunks.map((c) => [c.index, c.plaintextLength])), committed: state.state === 'committed' };
}

/** A failure after which the upload is worth resuming: transient, not ours to judge, or the service's own (5xx). */
function worthResuming(e: unknown): boolean {
  const status = isCofferError(e) ? e.details?.status : undefined;
  return isTransient(e) || !isCofferError(e) || (typeof status === 'number' && status >= 500);
}

/** The error to report for an upload kept for `--resume`: its details name the blob. */
function keptForResume(e: unknown, blobIdHex: string): CofferError {
  return new CofferError(
    isCofferError(e) ? e.code : ErrorCode.UNAVAILABLE,
    `${e instanceof Error ? e.message : String(e)}; the upload is kept: resume it with --resume ${blobIdHex}`,
    { cause: e, retryable: true, details: { resumeBlobId: blobIdHex } },
  );
}

/**
 * After a failure while sending chunks: one worth resuming keeps the upload for `--resume`; one where the request
 * itself is wrong (4xx) abandons it so GC frees its chunks at once.
 */
async function keepOrAbort(client: VaultClient, blobIdHex: string, e: unknown): Promise<unknown> {
  if (worthResuming(e)) return keptForResume(e, blobIdHex);
  await client.abort(blobIdHex).catch(() => undefined);
  return e;
}
