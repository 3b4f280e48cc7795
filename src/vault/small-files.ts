// Small files in one request each (docs/http-api.md "Small files"): a file that fits in one sealed chunk is
// created, stored and committed by one call, and read back (node, manifest, sealed chunk) by one call.
// Uploads run exactly the multi-step path (createUpload → putChunk → commitUpload), so every check, record and
// audit entry is the same; what is saved is the client's round trips, not any of the service's work.
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { CHUNK_SIZE } from '../crypto/index.js';
import { PackReader } from '../pack-runs.js';
import type { ChunkRef } from '../../storage-backend/index.js';
import { commitUpload } from './commit.js';
import type { Actor, ManifestView, NodeView, VaultContext } from './context.js';
import { checkPackedChunk, readAuthorisedChunk, readableFile, readableFiles, type AuthorisedBlob, type ReadableFile } from './downloads.js';
import { formatPath, parsePath } from './paths.js';
import type { DirResolutions } from './resolve.js';
import { abortUpload, createUpload, putChunk, uploadAttrs, type CreateUploadInput } from './uploads.js';

export interface SmallFileInput extends CreateUploadInput {
  /** Required here: the plaintext size, at most one chunk (8 MiB). */
  size: number;
}

/**
 * Creates, stores and commits a one-chunk file. `body` is the sealed chunk 0 (FINAL), `contentLength` its exact
 * length. Idempotent as a whole: the same request again after a lost answer returns the committed file (its body
 * is then not read). Throws everything createUpload, putChunk and commitUpload throw, and INVALID_ARGUMENT for a
 * size above one chunk. A failure after the upload was created abandons it (GC frees what was stored).
 */
export async function putSmallFile(
  ctx: VaultContext, actor: Actor, input: SmallFileInput, body: AsyncIterable<Uint8Array>, contentLength: number,
): Promise<{ node: NodeView; manifest: ManifestView; repeated: boolean }> {
  if (!Number.isSafeInteger(input.size) || input.size < 0 || input.size > CHUNK_SIZE) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a one-request file holds 0..${CHUNK_SIZE} bytes; use the multi-step upload for more`);
  }
  try {
    await createUpload(ctx, actor, input);
  } catch (e) {
    const done = isCofferError(e, ErrorCode.ALREADY_EXISTS) ? await committedBySameRequest(ctx, actor, input) : false;
    if (!done) throw e;
    return { ...(await commitUpload(ctx, actor, input.blobId, { chunkCount: 1, size: input.size })), repeated: true };
  }
  try {
    await putChunk(ctx, actor, input.blobId, 0, body, contentLength);
    return { ...(await commitUpload(ctx, actor, input.blobId, { chunkCount: 1, size: input.size })), repeated: false };
  } catch (e) {
    // a retried request would make a new upload anyway (the client keeps no state for one-request files)
    if (!isCofferError(e) || !e.retryable) await abortUpload(ctx, actor, input.blobId).catch(() => undefined);
    throw e;
  }
}

/** Whether blob `input.blobId` is this caller's, committed, for this path: the request was applied before. */
async function committedBySameRequest(ctx: VaultContext, actor: Actor, input: SmallFileInput): Promise<boolean> {
  const blob = await ctx.store.getBlob(input.blobId);
  if (blob?.state !== 'committed' || blob.owner !== actor.user || blob.size !== input.size) return false;
  return uploadAttrs(blob).path === formatPath(parsePath(input.path));
}

export interface SmallFileRead {
  node: NodeView;
  manifest: ManifestView;
  /** The sealed chunk 0, when the file has exactly one chunk (else null: fetch chunks one by one). */
  sealed: Buffer | null;
}

/**
 * Where a sealed chunk read for the caller goes: a buffer of exactly `size` bytes that the caller owns (the batch
 * read route hands in buffers from its pool and takes them back once sent). Default: a fresh buffer.
 */
export type SealedBufferFor = (size: number) => Buffer;

/**
 * Reads a file's node, manifest and (for a one-chunk file) its sealed chunk. `dirs`: directories the same request
 * resolved already (readSmallFiles). Throws as manifestByPath and readChunk.
 */
export async function getSmallFile(
  ctx: VaultContext,
  actor: Actor,
  path: string,
  bufferFor: SealedBufferFor = Buffer.allocUnsafe,
  dirs?: DirResolutions,
): Promise<SmallFileRead> {
  // one access decision: read on the path authorises the chunk of the blob that file is bound to
  return readSealed(ctx, await readableFile(ctx, actor, path, dirs), bufferFor);
}

/** getSmallFile's chunk read, for a file already decided readable. Throws as readChunk. */
async function readSealed(ctx: VaultContext, found: ReadableFile, bufferFor: SealedBufferFor): Promise<SmallFileRead> {
  const { node, manifest, blob } = found;
  if (manifest.chunkCount !== 1) return { node, manifest, sealed: null };
  const stored = manifest.chunks[0]?.storedSize ?? 0;
  const r = await readAuthorisedChunk(ctx, blob, 0, (info) => {
    if (info.size !== stored) throw new CofferError(ErrorCode.CHUNK_MISSING, `chunk 0 of blob ${manifest.blobId} is not in the chunk store at its recorded size`);
    return { into: bufferFor(info.size) };
  });
  return { node, manifest, sealed: r.bytes ?? null };
}

/** The most paths one batch read names (docs/http-api.md "Many small files in one request"). */
export const MAX_BATCH_READ = 256;
/** Files the batch read prepares ahead of the one being sent: bounds memory (each ≤ one sealed chunk). */
const BATCH_READ_AHEAD = 4;
/**
 * With a store that reads pack ranges: files prepared together (a group) at most, and their sealed bytes at most
 * (a file above it is a group of its own). A group's packed chunks are read by runs of neighbours, one
 * readPackRange each into one RUN_BYTES buffer per batch read, then copied into each file's own buffer.
 */
const GROUP_FILES = 64;
const GROUP_BYTES = 1024 * 1024;
const RUN_BYTES = 1024 * 1024;

export type BatchReadItem = { path: string; read: SmallFileRead } | { path: string; error: CofferError };

/**
 * Reads many files as getSmallFile reads one, each with its own access check, yielding them in the order asked.
 * Each directory the paths name is walked once per batch (a batch's files mostly share one: 5 metadata reads
 * a file became 2, docs/benchmarks.md), and the files are decided by rounds of GROUP_FILES (readableFiles: one
 * getChildren a directory, one getBlobs, one listGrants a round, instead of 2 or 3 reads a file); the access
 * decision is still made per file, on its whole chain, with the checks and errors of getSmallFile.
 * A file's own failure (not found, not readable, a lost chunk) is yielded as its item and the rest go on; a
 * failure that is not a CofferError (a bug, a broken store) is thrown. Throws INVALID_ARGUMENT for more than
 * MAX_BATCH_READ paths. Memory: with a store that has packedLocation and readPackRange (put -r packed a
 * directory's files together, so a batch's chunks are mostly neighbours in one pack), two groups (the one being
 * sent and the next, each ≤ GROUP_BYTES of sealed chunks or one file) and one RUN_BYTES buffer; otherwise at most
 * BATCH_READ_AHEAD + 1 files, whatever the number of paths.
 */
export async function* readSmallFiles(ctx: VaultContext, actor: Actor, paths: readonly string[], bufferFor?: SealedBufferFor): AsyncGenerator<BatchReadItem> {
  if (paths.length > MAX_BATCH_READ) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `at most ${MAX_BATCH_READ} paths in one batch read`);
  const dirs: DirResolutions = new Map();
  if (ctx.chunks.packedLocation && ctx.chunks.readPackRange) {
    yield* readGrouped(ctx, actor, paths, bufferFor ?? Buffer.allocUnsafe, dirs);
    return;
  }
  // the files decided by rounds of GROUP_FILES (readableFiles: the metadata of a round read together), the next
  // round decided while this one's chunks are read, BATCH_READ_AHEAD ahead of the one being sent
  const rounds: Array<readonly string[]> = [];
  for (let i = 0; i < paths.length; i += GROUP_FILES) rounds.push(paths.slice(i, i + GROUP_FILES));
  const decide = (r: number): Promise<Array<ReadableFile | CofferError>> | null => {
    if (r >= rounds.length) return null;
    const p = readableFiles(ctx, actor, rounds[r] as readonly string[], dirs);
    p.catch(() => undefined); // awaited below; handled meanwhile, should it fail before then
    return p;
  };
  const read = (path: string, found: ReadableFile | CofferError): Promise<BatchReadItem> => {
    if (found instanceof CofferError) return Promise.resolve({ path, error: found });
    return readSealed(ctx, found, bufferFor ?? Buffer.allocUnsafe).then((r) => ({ path, read: r }), (e: unknown) => failedItem(path, e));
  };
  let deciding = decide(0);
  try {
    for (let r = 0; deciding; r++) {
      const round = rounds[r] as readonly string[];
      const found = await deciding;
      deciding = decide(r + 1);
      const ahead: Array<Promise<BatchReadItem>> = [];
      let next = 0;
      try {
        for (;;) {
          while (ahead.length <= BATCH_READ_AHEAD && next < round.length) ahead.push(read(round[next] as string, found[next++] as ReadableFile | CofferError));
          const head = ahead.shift();
          if (!head) break;
          yield await head;
        }
      } finally {
        // an abandoned stream (the client went away): settle what was started, so nothing rejects unhandled
        await Promise.allSettled(ahead);
      }
    }
  } finally {
    await deciding?.catch(() => undefined);
  }
}

/** A CofferError as the file's item; anything else (a bug, a broken store) rethrown. */
function failedItem(path: string, e: unknown): BatchReadItem {
  if (!isCofferError(e)) throw e;
  return { path, error: e };
}

/** readSmallFiles for a store with packs: groups of files, their packed chunks read by runs (one group ahead). */
async function* readGrouped(ctx: VaultContext, actor: Actor, paths: readonly string[], bufferFor: SealedBufferFor, dirs: DirResolutions): AsyncGenerator<BatchReadItem> {
  let run: Buffer | null = null;
  let next = 0;
  // files decided (readableFiles: GROUP_FILES paths a round) and not yet in a group; a file that would have passed
  // GROUP_BYTES goes back to its head, to be the next group's first
  let decided: Array<{ path: string; found: ReadableFile | CofferError }> = [];
  const decide = async (): Promise<void> => {
    const batch = paths.slice(next, next + GROUP_FILES);
    next += batch.length;
    const found = await readableFiles(ctx, actor, batch, dirs);
    decided = batch.map((path, i) => ({ path, found: found[i] as ReadableFile | CofferError }));
  };
  const group = async (): Promise<BatchReadItem[]> => {
    const items: BatchReadItem[] = [];
    // chunks to read, each into items[at]; checked as getSmallFile checks them (readAuthorisedChunk) beforehand
    type Job = { ref: ChunkRef; at: number; size: number; blob: AuthorisedBlob };
    const reader = new PackReader<Job>((ref) => ctx.chunks.packedLocation?.(ref), RUN_BYTES);
    const alone: Job[] = [];
    const sizeCheck = (blobId: string, stored: number) => (info: { size: number }): void => {
      if (info.size !== stored) throw new CofferError(ErrorCode.CHUNK_MISSING, `chunk 0 of blob ${blobId} is not in the chunk store at its recorded size`);
    };
    let bytes = 0;
    while ((decided.length > 0 || next < paths.length) && items.length < GROUP_FILES) {
      if (decided.length === 0) await decide();
      const head = decided.shift() as (typeof decided)[number];
      const { path: p, found } = head;
      if (found instanceof CofferError) {
        items.push({ path: p, error: found });
        continue;
      }
      const { node, manifest, blob } = found;
      const stored = manifest.chunkCount === 1 ? (manifest.chunks[0]?.storedSize ?? 0) : 0;
      if (items.length > 0 && bytes + stored > GROUP_BYTES) {
        decided.unshift(head);
        break;
      }
      const at = items.length;
      items.push({ path: p, read: { node, manifest, sealed: null } });
      if (manifest.chunkCount !== 1) continue;
      bytes += stored;
      try {
        // the same checks as getSmallFile (committed, index, present, its recorded size); the body is read below. A
        // packed chunk's size comes from the store's memory, as its stat would answer (no stat call a file)
        const check = sizeCheck(manifest.blobId, stored);
        if (!checkPackedChunk(ctx, blob, 0, check)) await readAuthorisedChunk(ctx, blob, 0, (info) => (check(info), { skipBody: true }));
      } catch (e) {
        items[at] = failedItem(p, e);
        continue;
      }
      const job: Job = { ref: { blobId: manifest.blobId, index: 0 }, at, size: stored, blob };
      if (!reader.add(job)) alone.push(job);
    }
    const slot = (at: number): SmallFileRead => (items[at] as { read: SmallFileRead }).read;
    // a chunk read on its own, exactly as getSmallFile reads it (its errors its item's)
    const readAlone = async (job: Job): Promise<void> => {
      try {
        const r = await readAuthorisedChunk(ctx, job.blob, 0, (info) => (sizeCheck(job.ref.blobId, job.size)(info), { into: bufferFor(info.size) }));
        slot(job.at).sealed = r.bytes ?? null;
      } catch (e) {
        items[job.at] = failedItem((items[job.at] as BatchReadItem).path, e);
      }
    };
    for (const r of reader.take()) {
      const start = (r.chunks[0] as (typeof r.chunks)[number]).loc.offset;
      const last = r.chunks.at(-1) as (typeof r.chunks)[number];
      let span: Buffer;
      try {
        run ??= Buffer.allocUnsafeSlow(RUN_BYTES);
        span = await (ctx.chunks.readPackRange as NonNullable<typeof ctx.chunks.readPackRange>)(r.packId, start, last.loc.offset + last.loc.length - start, run);
      } catch (e) {
        if (!isCofferError(e)) throw e;
        // the pack is gone meanwhile (GC) or unreadable: each file read on its own, failing alone as before
        for (const c of r.chunks) await readAlone(c.job);
        continue;
      }
      for (const c of r.chunks) {
        if (c.loc.length !== c.job.size) {
          await readAlone(c.job); // moved since its check: read (and checked) on its own
          continue;
        }
        const into = bufferFor(c.job.size);
        span.copy(into, 0, c.loc.offset - start, c.loc.offset - start + c.loc.length);
        slot(c.job.at).sealed = into;
      }
    }
    for (const job of alone) await readAlone(job);
    return items;
  };
  let ahead: Promise<BatchReadItem[]> | null = group();
  try {
    while (ahead) {
      const items: BatchReadItem[] = await ahead;
      ahead = decided.length > 0 || next < paths.length ? group() : null;
      yield* items;
    }
  } finally {
    // an abandoned stream: settle the group being read, so nothing rejects unhandled
    await ahead?.catch(() => undefined);
  }
}
