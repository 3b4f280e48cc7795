// Many small files in one request (docs/vault.md "Many small files", docs/http-api.md "Many small files"): every
// file is checked exactly as a one-request file is (uploads.ts's field checks, the path and the caller's write
// permission, the sealed chunk's header against the file), then all the new ones are stored as ONE pack (one
// fsync, one directory fsync) and recorded with ONE batched blob insert and ONE batched node insert. Each file
// still commits whole or not at all and fails alone: a bad or conflicting file gets its own error, the rest go in.
//
// Order (crash safety): pack durable → blob records (committed, chunk SHA-256 pinned) → file nodes. A crash after
// the pack leaves chunks no record points at (GC's stray sweep frees them once the pack is older than its grace);
// after the blobs, committed blobs no file points at (GC's orphan sweep). No file is ever visible half-written.
// Files that are not new at a new path (a retry of a file already applied, an overwrite) take the one-file path.
import pLimit from 'p-limit';
import { blobIdToHex, decodeChunkHeader, CHUNK_SIZE, HEADER_SIZE, TAG_SIZE } from '../crypto/index.js';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import type { BlobRecord, TreeNode } from '../metadata/types.js';
import { requireRole } from './access.js';
import { manifestView, nodeView, type Actor, type ManifestView, type NodeView, type VaultContext } from './context.js';
import { formatPath, parsePath } from './paths.js';
import { resolveExisting } from './resolve.js';
import { putSmallFile, type SmallFileInput } from './small-files.js';
import { audit, newNode } from './tree.js';
import { checkCreateInput } from './uploads.js';

/**
 * Most files in one batch, and most sealed bytes. The request is held whole while it is checked and packed, so
 * the service's memory for batches is bounded by BATCHES_AT_ONCE × (BATCH_MAX_BYTES + the JSON part's cap).
 */
export const BATCH_MAX_FILES = 1000;
export const BATCH_MAX_BYTES = 8 * 1024 * 1024;
/** Batches one service process reads and stores at once; others wait unread (TCP pushes back on their clients). */
export const BATCHES_AT_ONCE = 4;

export interface BatchFile {
  input: SmallFileInput;
  /** The whole sealed chunk 0 (FINAL). */
  sealed: Buffer;
}

export type BatchResult =
  | { ok: true; node: NodeView; manifest: ManifestView; repeated: boolean }
  | { ok: false; error: CofferError };

const ONE_FILE_CONCURRENCY = 4;

/**
 * Stores and commits many one-chunk files; answers per file, in order. Throws only for the batch as a whole:
 * INVALID_ARGUMENT (no files, too many, too many bytes) and failures no single file owns (the pack write: NO_SPACE,
 * INTERNAL; the metadata round: METADATA). After such a failure any subset may have been committed; the same
 * batch again is safe (applied files answer as repeated).
 */
export async function putSmallFiles(ctx: VaultContext, actor: Actor, files: BatchFile[]): Promise<BatchResult[]> {
  if (!Array.isArray(files) || files.length === 0 || files.length > BATCH_MAX_FILES) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a batch holds 1..${BATCH_MAX_FILES} files`);
  }
  if (files.reduce((n, f) => n + f.sealed.length, 0) > BATCH_MAX_BYTES) {
    throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `a batch holds at most ${BATCH_MAX_BYTES} bytes of sealed chunks`);
  }
  const results: Array<BatchResult | undefined> = files.map(() => undefined);
  const fail = (i: number, e: unknown): void => {
    if (!isCofferError(e)) throw e;
    results[i] = { ok: false, error: e };
  };
  const parents = new Map<string, Promise<TreeNode>>();
  const fresh: Array<{ i: number; segments: string[]; parent: TreeNode }> = [];
  const slow: number[] = [];
  const seenPaths = new Set<string>();
  const seenBlobs = new Set<string>();
  for (const [i, f] of files.entries()) {
    try {
      checkFile(f);
      const segments = parsePath(f.input.path);
      if (segments.length === 0) throw new CofferError(ErrorCode.IS_A_DIRECTORY, '/ is a directory');
      const path = formatPath(segments);
      // the same path or blob twice in one batch: the second fails, as a second request would
      if (seenPaths.has(path)) throw new CofferError(ErrorCode.ALREADY_EXISTS, `${path} is twice in this batch`);
      if (seenBlobs.has(f.input.blobId)) throw new CofferError(ErrorCode.ALREADY_EXISTS, `blob ${f.input.blobId} is twice in this batch`);
      seenPaths.add(path);
      seenBlobs.add(f.input.blobId);
      const parentPath = formatPath(segments.slice(0, -1));
      let parent = parents.get(parentPath);
      if (!parent) {
        parent = writableDir(ctx, actor, segments.slice(0, -1), path);
        parents.set(parentPath, parent);
        parent.catch(() => undefined);
      }
      const dir = await parent;
      // a blob id already recorded (a retry of this very request) or a path already taken: the one-file path
      // answers exactly as POST /v1/files would (repeated, ALREADY_EXISTS, an overwrite with its release…)
      const [blob, existing] = await Promise.all([ctx.store.getBlob(f.input.blobId), ctx.store.getChild(dir.id, segments[segments.length - 1] as string)]);
      if (existing?.type === 'dir') throw new CofferError(ErrorCode.IS_A_DIRECTORY, `${path} is a directory`);
      if (blob !== null || existing !== null) slow.push(i);
      else fresh.push({ i, segments, parent: dir });
    } catch (e) {
      fail(i, e);
    }
  }
  if (fresh.length > 0) await commitFresh(ctx, actor, files, fresh, results);
  const limit = pLimit(ONE_FILE_CONCURRENCY);
  await Promise.all(slow.map((i) => limit(async () => {
    const f = files[i] as BatchFile;
    try {
      results[i] = { ok: true, ...(await putSmallFile(ctx, actor, f.input, once(f.sealed), f.sealed.length)) };
    } catch (e) {
      fail(i, e);
    }
  })));
  return results.map((r) => r ?? { ok: false, error: new CofferError(ErrorCode.INTERNAL, 'no answer for this file') });
}

/** The file's own fields and its sealed chunk's header, as createUpload and putChunk check them. */
function checkFile(f: BatchFile): void {
  const { input, sealed } = f;
  if (!Number.isSafeInteger(input.size) || input.size < 0 || input.size > CHUNK_SIZE) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a one-request file holds 0..${CHUNK_SIZE} bytes; use the multi-step upload for more`);
  }
  checkCreateInput(input);
  if (sealed.length < HEADER_SIZE + TAG_SIZE) throw new CofferError(ErrorCode.CHUNK_MISMATCH, 'body shorter than an empty sealed chunk');
  const header = decodeChunkHeader(sealed.subarray(0, HEADER_SIZE)); // CHUNK_FORMAT
  const mismatch = (m: string): CofferError => new CofferError(ErrorCode.CHUNK_MISMATCH, `chunk 0: ${m}`);
  if (blobIdToHex(header.blobId) !== input.blobId) throw mismatch('header names another blob');
  if (header.index !== 0) throw mismatch(`header says index ${header.index}`);
  if (header.keyGeneration !== input.keyGeneration) throw mismatch(`header key generation ${header.keyGeneration}, upload has ${input.keyGeneration}`);
  if (!header.final || header.plaintextLength !== input.size) throw mismatch('length or FINAL flag disagrees with the declared size');
  if (sealed.length !== input.size + HEADER_SIZE + TAG_SIZE) throw mismatch(`length ${sealed.length} but header implies ${input.size + HEADER_SIZE + TAG_SIZE}`);
}

/** The directory at `segments`, which the caller may write in (checkUploadTarget's checks, once per directory). */
async function writableDir(ctx: VaultContext, actor: Actor, segments: string[], target: string): Promise<TreeNode> {
  const chain = await resolveExisting(ctx.store, segments);
  const parent = chain[chain.length - 1] as TreeNode;
  if (parent.type !== 'dir') throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `parent of ${target} is not a directory`);
  await requireRole(ctx, actor, chain, 'write', `upload to ${target}`);
  return parent;
}

/** Pack → committed blob records → file nodes → one audit entry, for files new at new paths. */
async function commitFresh(
  ctx: VaultContext, actor: Actor, files: BatchFile[], fresh: Array<{ i: number; segments: string[]; parent: TreeNode }>, results: Array<BatchResult | undefined>,
): Promise<void> {
  const chunks = fresh.map(({ i }) => ({ ref: { blobId: (files[i] as BatchFile).input.blobId, index: 0 }, data: (files[i] as BatchFile).sealed }));
  let stored: Array<{ size: number; sha256: string }>;
  if (ctx.chunks.putPack) {
    stored = (await ctx.chunks.putPack(chunks)).chunks;
  } else {
    const limit = pLimit(8); // a store without packs (S3): one put per chunk, still one metadata round
    stored = await Promise.all(chunks.map((c) => limit(() => ctx.chunks.put(c.ref, once(c.data), { expectedSize: c.data.length }))));
  }
  const now = ctx.now();
  const blobs: BlobRecord[] = fresh.map(({ i, segments }, k) => {
    const { input } = files[i] as BatchFile;
    return {
      id: input.blobId, state: 'committed', owner: actor.user, keyGeneration: input.keyGeneration, keyRecord: input.keyRecord,
      size: input.size, chunkCount: 1, chunkSha256: [(stored[k] as { sha256: string }).sha256], createdAt: now, updatedAt: now,
      attrs: {
        path: formatPath(segments), overwrite: false,
        ...(input.source === undefined ? {} : { source: input.source }), ...(input.binding === undefined ? {} : { binding: input.binding }),
      },
    };
  });
  const blobErrors = await ctx.store.insertBlobs(blobs);
  const bound = fresh.flatMap((f, k) => (blobErrors[k] === null ? [{ ...f, blob: blobs[k] as BlobRecord }] : []));
  fresh.forEach((f, k) => {
    const e = blobErrors[k];
    if (e) results[f.i] = { ok: false, error: e }; // its packed chunk is garbage: GC's stray sweep
  });
  const nodes = bound.map(({ segments, parent, blob }) => newNode(actor, parent.id, segments[segments.length - 1] as string, now, { blobId: blob.id, size: blob.size ?? 0 }));
  const nodeErrors = await ctx.store.insertNodes(nodes);
  const committed: Array<{ path: string; blobId: string; size: number }> = [];
  for (const [k, b] of bound.entries()) {
    const path = formatPath(b.segments);
    const e = nodeErrors[k];
    if (e) {
      // lost the path to another writer since the check: this blob is bound nowhere; release it for GC now
      await ctx.store.updateBlob(b.blob.id, 'committed', { state: 'deleting' }).catch(() => undefined);
      results[b.i] = { ok: false, error: isCofferError(e, ErrorCode.ALREADY_EXISTS) ? new CofferError(ErrorCode.ALREADY_EXISTS, `${path} already exists`) : e };
      continue;
    }
    results[b.i] = { ok: true, node: nodeView(nodes[k] as TreeNode, path), manifest: manifestView(b.blob), repeated: false };
    committed.push({ path, blobId: b.blob.id, size: b.blob.size ?? 0 });
  }
  // one entry for the batch (the chain is appended to in series: one per file would serialise the batch again)
  if (committed.length > 0) await audit(ctx, actor, 'upload.commit-batch', committed[0]!.path, { files: committed });
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
