// Downloads: manifests (by blob id and by path) and sealed chunk reads with an optional byte range.
// Read access to a blob comes from read access to a file bound to it (or the token admin claim).
import type { Readable } from 'node:stream';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import type { ByteRange } from '../../storage-backend/types.js';
import type { BlobRecord, TreeNode } from '../metadata/types.js';
import { checkRole, effectiveRole, effectiveRoles, requireRole, type EffectiveRole } from './access.js';
import { manifestView, nodeView, type Actor, type ManifestView, type NodeView, type VaultContext } from './context.js';
import { formatPath, parsePath } from './paths.js';
import { chainOf, resolveExisting, resolveExistingIn, resolveManyIn, type DirResolutions } from './resolve.js';
import { checkBlobId, checkIndex, ownUpload } from './uploads.js';

const AUTHORISED: unique symbol = Symbol('authorised');
/** A committed blob whose read was authorised (readableBlob or readableFile): only this module makes one. */
export interface AuthorisedBlob {
  readonly record: BlobRecord;
  readonly [AUTHORISED]: true;
}

/** Loads a committed blob the caller may read. Throws INVALID_ARGUMENT, NOT_FOUND, UPLOAD_STATE, PERMISSION_DENIED. */
async function readableBlob(ctx: VaultContext, actor: Actor, blobId: string): Promise<BlobRecord> {
  checkBlobId(blobId);
  const blob = await ctx.store.getBlob(blobId);
  if (!blob || blob.state === 'deleting') throw new CofferError(ErrorCode.NOT_FOUND, `blob ${blobId} does not exist`);
  if (blob.state !== 'committed') {
    if (blob.owner === actor.user || actor.admin) throw new CofferError(ErrorCode.UPLOAD_STATE, `blob ${blobId} is not committed yet`);
    throw new CofferError(ErrorCode.PERMISSION_DENIED, `blob ${blobId}: not readable`);
  }
  if (actor.admin) return blob;
  for (const node of await ctx.store.findNodesByBlob(blobId)) {
    let chain: TreeNode[];
    try {
      chain = await chainOf(ctx.store, node);
    } catch (_e) {
      continue; // a node detached by a concurrent remove grants nothing
    }
    const role = await effectiveRole(ctx, actor, chain);
    if (role !== 'none') return blob;
  }
  throw new CofferError(ErrorCode.PERMISSION_DENIED, `blob ${blobId}: needs read permission on a file bound to it`);
}

/** Manifest by blob id. Throws as readableBlob. */
export async function manifestByBlob(ctx: VaultContext, actor: Actor, blobId: string): Promise<ManifestView> {
  return manifestView(await readableBlob(ctx, actor, blobId));
}

/** Manifest by path. Throws INVALID_PATH, NOT_FOUND, IS_A_DIRECTORY, NOT_A_DIRECTORY, PERMISSION_DENIED. */
export async function manifestByPath(ctx: VaultContext, actor: Actor, path: string): Promise<{ node: NodeView; manifest: ManifestView }> {
  const { node, manifest } = await readableFile(ctx, actor, path);
  return { node, manifest };
}

/**
 * A file the caller may read, with its committed blob: one access decision (read on the path) that also
 * authorises reading that blob's chunks, since the file node is bound to it (node.blobId). `dirs`: directories
 * already resolved by the same request (a batch read), reused for the path's parent. Throws as manifestByPath.
 */
export async function readableFile(ctx: VaultContext, actor: Actor, path: string, dirs?: DirResolutions): Promise<ReadableFile> {
  const segments = parsePath(path);
  const chain = dirs ? await resolveExistingIn(ctx.store, segments, dirs) : await resolveExisting(ctx.store, segments);
  await requireRole(ctx, actor, chain, 'read', `read ${path}`);
  const node = fileOf(chain, path);
  return boundTo(node, await ctx.store.getBlob(node.blobId), segments, path);
}

export interface ReadableFile {
  node: NodeView;
  manifest: ManifestView;
  blob: AuthorisedBlob;
}

/** The file node a readable chain ends at. Throws IS_A_DIRECTORY. */
function fileOf(chain: readonly TreeNode[], path: string): TreeNode & { blobId: string } {
  const node = chain[chain.length - 1] as TreeNode;
  if (node.type !== 'file' || !node.blobId) throw new CofferError(ErrorCode.IS_A_DIRECTORY, `${path} is a directory`);
  return node as TreeNode & { blobId: string };
}

/** The readable file with `blob`, the record stored at node.blobId, authorised. Throws NOT_FOUND (not that committed blob). */
function boundTo(node: TreeNode & { blobId: string }, blob: BlobRecord | null, segments: readonly string[], path: string): ReadableFile {
  if (!blob || blob.state !== 'committed' || blob.id !== node.blobId) throw new CofferError(ErrorCode.NOT_FOUND, `${path}: its blob is gone`);
  return { node: nodeView(node, formatPath(segments)), manifest: manifestView(blob), blob: { record: blob, [AUTHORISED]: true } };
}

/**
 * readableFile for many paths (a batch read's group), with the same decision, in the same order of checks, for
 * each: per path, its file or the CofferError readableFile throws for it. The metadata is read by rounds instead
 * of per file: the leaves under each directory (resolveManyIn), the grants of every chain that needs them
 * (effectiveRoles) and the blobs of the files allowed (getBlobs). When one of those shared rounds fails
 * (METADATA), every path is decided alone by readableFile, so each still gets its own answer. A failure that is
 * not a CofferError (a bug, a broken store) is thrown.
 */
export async function readableFiles(
  ctx: VaultContext, actor: Actor, paths: readonly string[], dirs: DirResolutions,
): Promise<Array<ReadableFile | CofferError>> {
  try {
    return await readableFilesTogether(ctx, actor, paths, dirs);
  } catch (e) {
    if (!isCofferError(e)) throw e;
    const alone: Array<ReadableFile | CofferError> = [];
    for (const path of paths) alone.push(await readableFile(ctx, actor, path, dirs).catch((err: unknown) => failure(err)));
    return alone;
  }
}

/** A CofferError as a path's answer; anything else rethrown. */
function failure(e: unknown): CofferError {
  if (!isCofferError(e)) throw e;
  return e;
}

/** readableFiles' shared rounds. Throws the CofferError of a failed round. */
async function readableFilesTogether(
  ctx: VaultContext, actor: Actor, paths: readonly string[], dirs: DirResolutions,
): Promise<Array<ReadableFile | CofferError>> {
  const out = new Array<ReadableFile | CofferError>(paths.length);
  const parsed: Array<string[] | null> = paths.map((path, i) => {
    try {
      return parsePath(path);
    } catch (e) {
      out[i] = failure(e);
      return null;
    }
  });
  const at = parsed.flatMap((segments, i) => (segments ? [i] : []));
  const chains = await resolveManyIn(ctx.store, at.map((i) => parsed[i] as string[]), dirs);
  const found = at.flatMap((i, k) => {
    const chain = chains[k] as TreeNode[] | CofferError;
    if (!Array.isArray(chain)) {
      out[i] = chain;
      return [];
    }
    return [{ i, chain }];
  });
  const roles = await effectiveRoles(ctx, actor, found.map((f) => f.chain));
  const files = found.flatMap(({ i, chain }, k) => {
    try {
      const path = paths[i] as string;
      checkRole(roles[k] as EffectiveRole, 'read', `read ${path}`);
      return [{ i, node: fileOf(chain, path) }];
    } catch (e) {
      out[i] = failure(e);
      return [];
    }
  });
  const blobs = await ctx.store.getBlobs(files.map((f) => f.node.blobId));
  files.forEach(({ i, node }, k) => {
    try {
      out[i] = boundTo(node, blobs[k] ?? null, parsed[i] as string[], paths[i] as string);
    } catch (e) {
      out[i] = failure(e);
    }
  });
  return out;
}


export interface ChunkInfo {
  /** Size of the sealed chunk file. */
  size: number;
  sha256: string;
}

/** What the caller wants once it knows the chunk's size and hash (e.g. from Range / If-None-Match). */
export interface ChunkReadPlan {
  range?: ByteRange;
  /** Do not open the data (conditional request satisfied). */
  skipBody?: boolean;
  /** Read the whole chunk into this buffer (no range) instead of opening a stream: see ChunkStore.readInto. */
  into?: Buffer;
}

export type ChunkRead = ChunkInfo & {
  range?: ByteRange;
  /** The body as a stream, or null when there is none (skipBody, or read into `bytes`). */
  stream: Readable | null;
  /** The whole chunk, a view of the plan's `into` buffer. */
  bytes?: Buffer;
};

/**
 * Reads a sealed chunk of a committed blob. `plan` sees the size and hash first and may pick a range or skip the
 * body (it may throw, e.g. RANGE_NOT_SATISFIABLE). Throws as readableBlob, NOT_FOUND (index ≥ chunkCount),
 * CHUNK_MISSING (the store lost it).
 */
export async function readChunk(
  ctx: VaultContext, actor: Actor, blobId: string, index: number, plan: (info: ChunkInfo) => ChunkReadPlan = () => ({}),
): Promise<ChunkRead> {
  checkIndex(index);
  return readAuthorisedChunk(ctx, { record: await readableBlob(ctx, actor, blobId), [AUTHORISED]: true }, index, plan);
}

/** readChunk for a blob already authorised (readableFile): no second access check. Throws as readChunk. */
export async function readAuthorisedChunk(
  ctx: VaultContext, authorised: AuthorisedBlob, index: number, plan: (info: ChunkInfo) => ChunkReadPlan = () => ({}),
): Promise<ChunkRead> {
  const blob = chunkOf(authorised, index);
  const blobId = blob.id;
  const st = await ctx.chunks.stat({ blobId, index });
  if (!st) throw new CofferError(ErrorCode.CHUNK_MISSING, `chunk ${index} of blob ${blobId} is missing from the chunk store`);
  const info: ChunkInfo = { size: st.size, sha256: blob.chunkSha256?.[index] ?? '' };
  const p = plan(info);
  if (p.skipBody) return { ...info, stream: null };
  if (p.into && !p.range) return { ...info, stream: null, bytes: await ctx.chunks.readInto({ blobId, index }, p.into) };
  const stream = await ctx.chunks.get({ blobId, index }, p.range);
  return { ...info, range: p.range, stream };
}

/** The authorised blob's record, when it is committed and has chunk `index`. Throws as readAuthorisedChunk. */
function chunkOf(authorised: AuthorisedBlob, index: number): BlobRecord {
  checkIndex(index);
  if (authorised[AUTHORISED] !== true) throw new CofferError(ErrorCode.PERMISSION_DENIED, 'blob read not authorised');
  const blob = authorised.record;
  if (blob.state !== 'committed') throw new CofferError(ErrorCode.NOT_FOUND, `blob ${blob.id} is not committed`);
  const count = blob.chunkCount ?? 0;
  if (index >= count) throw new CofferError(ErrorCode.NOT_FOUND, `blob ${blob.id} has ${count} chunks`);
  return blob;
}

/**
 * readAuthorisedChunk with `skipBody` for a chunk the store holds in a pack it knows (packedLocation): the same
 * checks and the same `plan` call, with the size stat would answer for it (the packed length, from the store's
 * memory) and no stat call. Returns null when the store knows no pack holding it: then call readAuthorisedChunk.
 * Throws as readAuthorisedChunk.
 */
export function checkPackedChunk(
  ctx: VaultContext, authorised: AuthorisedBlob, index: number, plan: (info: ChunkInfo) => void,
): ChunkInfo | null {
  const blob = chunkOf(authorised, index);
  const loc = ctx.chunks.packedLocation?.({ blobId: blob.id, index });
  if (!loc) return null;
  const info: ChunkInfo = { size: loc.length, sha256: blob.chunkSha256?.[index] ?? '' };
  plan(info);
  return info;
}

/**
 * Reads a sealed chunk of an upload still in progress, for the upload's owner only (the enclave's S3 layer reads
 * back chunks it placed itself: docs/s3-api.md "Multipart"). Ciphertext only, as every chunk read.
 * Throws INVALID_ARGUMENT, NOT_FOUND (no such upload or chunk), PERMISSION_DENIED (another user's upload),
 * UPLOAD_STATE (committed or aborted), CHUNK_MISSING.
 */
export async function readUploadChunk(ctx: VaultContext, actor: Actor, blobId: string, index: number, into: Buffer): Promise<Uint8Array> {
  checkIndex(index);
  const blob = await ownUpload(ctx, actor, blobId, false);
  if (blob.state !== 'uploading') throw new CofferError(ErrorCode.UPLOAD_STATE, `upload ${blobId} is ${blob.state}`);
  const record = (await ctx.store.listUploadChunks(blobId)).find((r) => r.index === index);
  if (!record) throw new CofferError(ErrorCode.NOT_FOUND, `upload ${blobId} has no chunk ${index}`);
  const st = await ctx.chunks.stat({ blobId, index });
  if (!st || st.size !== record.storedSize) throw new CofferError(ErrorCode.CHUNK_MISSING, `chunk ${index} of upload ${blobId} is not in the chunk store at its recorded size`);
  return ctx.chunks.readInto({ blobId, index }, into);
}
