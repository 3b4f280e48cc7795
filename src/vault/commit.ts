// Uploads, part 2: commit. Verifies the recorded chunks form exactly one blob (indices 0..n-1, FINAL on n-1
// only, full 8 MiB chunks before it, lengths adding up to size), that the chunk store holds each chunk at its
// recorded size, then flips the blob to 'committed' and only then binds the path (insert, or compare-and-set
// the existing file node's blob). Every step is one atomic write; re-running commit after a crash finishes it.
import pLimit from 'p-limit';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { CHUNK_SIZE, expectedChunkLayout } from '../crypto/index.js';
import type { BlobRecord, TreeNode } from '../metadata/types.js';
import { manifestView, nodeView, type Actor, type ManifestView, type NodeView, type VaultContext } from './context.js';
import { formatPath, parsePath } from './paths.js';
import { chainOf, pathOfChain } from './resolve.js';
import { audit, holdBlob, newNode, releaseBlob } from './tree.js';
import { checkUploadTarget, ownUpload, uploadAttrs } from './uploads.js';

const STAT_CONCURRENCY = 8;

export interface CommitInput {
  chunkCount: number;
  size: number;
}

function mismatch(m: string): CofferError {
  return new CofferError(ErrorCode.CHUNK_MISMATCH, m);
}

async function verifyChunks(ctx: VaultContext, blob: BlobRecord, input: CommitInput): Promise<string[]> {
  const { chunkCount, size } = input;
  const records = await ctx.store.listUploadChunks(blob.id);
  const byIndex = new Map(records.map((r) => [r.index, r]));
  for (let i = 0; i < chunkCount; i++) {
    if (!byIndex.has(i)) throw new CofferError(ErrorCode.UPLOAD_INCOMPLETE, `chunk ${i} of ${chunkCount} was not uploaded`);
  }
  if (records.length !== chunkCount) throw mismatch(`chunks beyond index ${chunkCount - 1} were uploaded`);
  let total = 0;
  for (let i = 0; i < chunkCount; i++) {
    const r = byIndex.get(i)!;
    const last = i === chunkCount - 1;
    if (r.final !== last) throw mismatch(last ? `chunk ${i} is not FINAL` : `chunk ${i} is FINAL but not the last`);
    if (!last && r.plaintextLength !== CHUNK_SIZE) throw mismatch(`chunk ${i} holds ${r.plaintextLength} bytes, not 8 MiB`);
    total += r.plaintextLength;
  }
  if (total !== size) throw mismatch(`chunks hold ${total} bytes, commit says ${size}`);
  const limit = pLimit(STAT_CONCURRENCY);
  await Promise.all(
    records.map((r) =>
      limit(async () => {
        const st = await ctx.chunks.stat({ blobId: blob.id, index: r.index });
        if (!st || st.size !== r.storedSize) {
          throw new CofferError(ErrorCode.CHUNK_MISSING, `chunk ${r.index} is not in the chunk store at its recorded size`);
        }
      }),
    ),
  );
  return Array.from({ length: chunkCount }, (_, i) => byIndex.get(i)!.sha256);
}

/**
 * Commits an upload and binds its path. Idempotent: committing a committed blob returns its node.
 * Throws NOT_FOUND, PERMISSION_DENIED, UPLOAD_STATE (aborted), UPLOAD_INCOMPLETE, CHUNK_MISMATCH, CHUNK_MISSING,
 * INVALID_ARGUMENT, and the path errors of checkUploadTarget (ALREADY_EXISTS, IS_A_DIRECTORY, NOT_FOUND…).
 * If binding fails after the blob was committed, the blob stays committed and unbound: a retried commit binds
 * it, and GC's orphan sweep deletes it after the grace period otherwise.
 */
export async function commitUpload(ctx: VaultContext, actor: Actor, blobId: string, input: CommitInput): Promise<{ node: NodeView; manifest: ManifestView }> {
  const { chunkCount, size } = input;
  const layout = expectedChunkLayout(size);
  if (!Number.isInteger(chunkCount) || chunkCount !== layout.chunkCount) {
    throw mismatch(`a blob of ${size} bytes has ${layout.chunkCount} chunks, not ${chunkCount}`);
  }
  let blob = await ownUpload(ctx, actor, blobId, false);
  if (blob.state === 'deleting') throw new CofferError(ErrorCode.UPLOAD_STATE, `upload ${blobId} was aborted`);
  const attrs = uploadAttrs(blob);
  const segments = parsePath(attrs.path);
  if (blob.state === 'uploading') {
    if (blob.size !== null && blob.size !== size) throw mismatch(`declared size ${blob.size}, commit says ${size}`);
    const chunkSha256 = await verifyChunks(ctx, blob, input);
    await checkUploadTarget(ctx, actor, segments, attrs.overwrite);
    blob = await ctx.store.updateBlob(blobId, 'uploading', { state: 'committed', size, chunkCount, chunkSha256 });
  } else if (blob.size !== size || blob.chunkCount !== chunkCount) {
    throw mismatch(`upload ${blobId} was committed with ${blob.size} bytes in ${blob.chunkCount} chunks`);
  }
  const node = await bind(ctx, actor, blob, segments, attrs.overwrite);
  await ctx.store.deleteUploadChunks(blobId);
  return { node, manifest: manifestView(blob) };
}

/**
 * Points the path at the committed blob. Safe against every writer racing it without transactions:
 * - a concurrent or retried commit of the same blob that got there first (before the look by blob id, or
 *   between it and the look at the path): that node is the answer, and nothing is released (the loser must
 *   never release its own blob as "replaced");
 * - a blob released meanwhile (a later upload replaced it, GC's orphan sweep, an abort): it is never bound
 *   again. It is checked before the node write and again after it; if it was released in between, the path is
 *   put back to the blob it had (still committed: the replaced blob is released only after this check).
 */
async function bind(ctx: VaultContext, actor: Actor, blob: BlobRecord, segments: string[], overwrite: boolean): Promise<NodeView> {
  const path = formatPath(segments);
  const size = blob.size ?? 0;
  for (let attempt = 0; ; attempt++) {
    const bound = await ctx.store.findNodesByBlob(blob.id);
    if (bound[0]) return nodeView(bound[0], pathOfChain(await chainOf(ctx.store, bound[0])));
    await requireCommitted(ctx, blob.id);
    const { parent, existing } = await checkUploadTarget(ctx, actor, segments, true);
    // a racing commit of this very blob bound the path since the look above: that node is the answer
    if (existing?.blobId === blob.id) return nodeView(existing, path);
    if (existing && !overwrite) throw new CofferError(ErrorCode.ALREADY_EXISTS, `${path} already exists`);
    let node: TreeNode;
    try {
      if (existing) {
        await holdBlob(ctx, existing.blobId); // unbind may point the file back at it: GC must not take it meanwhile
        node = await ctx.store.updateNode(existing.id, existing.version, { blobId: blob.id, size });
      } else {
        node = newNode(actor, parent.id, segments[segments.length - 1] as string, ctx.now(), { blobId: blob.id, size });
        await ctx.store.insertNode(node);
      }
    } catch (e) {
      // Lost a race with another writer of the same path (maybe a commit of this very blob), or the file being
      // replaced was removed meanwhile: look again (bounded).
      const raced = isCofferError(e, ErrorCode.ALREADY_EXISTS) || isCofferError(e, ErrorCode.CONFLICT) || isCofferError(e, ErrorCode.NOT_FOUND);
      if (!raced || attempt >= 3) throw e;
      continue;
    }
    if (!(await isCommitted(ctx, blob.id))) {
      await unbind(ctx, node, existing);
      throw released(blob.id);
    }
    await audit(ctx, actor, 'upload.commit', path, { blobId: blob.id, size, chunkCount: blob.chunkCount, replaced: existing?.blobId ?? null });
    if (existing && existing.blobId !== blob.id) await releaseBlob(ctx, actor, existing.blobId);
    return nodeView(node, path);
  }
}

async function isCommitted(ctx: VaultContext, blobId: string): Promise<boolean> {
  return (await ctx.store.getBlob(blobId))?.state === 'committed';
}

async function requireCommitted(ctx: VaultContext, blobId: string): Promise<void> {
  if (!(await isCommitted(ctx, blobId))) throw released(blobId);
}

function released(blobId: string): CofferError {
  return new CofferError(ErrorCode.UPLOAD_STATE, `upload ${blobId} was replaced or aborted while it was being committed; it is not bound`);
}

/** Undoes a bind whose blob turned out released: the node points at what it had before, or goes (compare-and-set). */
async function unbind(ctx: VaultContext, node: TreeNode, previous: TreeNode | null): Promise<void> {
  try {
    if (previous) await ctx.store.updateNode(node.id, node.version, { blobId: previous.blobId, size: previous.size });
    else await ctx.store.deleteNode(node.id, node.version);
  } catch (e) {
    // someone changed the node since: their write stands (it no longer points at the released blob, or GC's
    // skip-if-referenced keeps the chunks until it does)
    if (!isCofferError(e, ErrorCode.CONFLICT) && !isCofferError(e, ErrorCode.NOT_FOUND)) throw e;
  }
}
