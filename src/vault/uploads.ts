// Uploads, part 1: create an upload, receive sealed chunks, report upload state, abort.
// The service never decrypts: it checks each chunk's 48-byte header against the upload before storing a byte,
// then streams the chunk into the ChunkStore (atomic, durable) and records it. Commit is in commit.ts.
import { isDeepStrictEqual } from 'node:util';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import {
  CHUNK_SIZE, HEADER_SIZE, MAX_SEALED_SIZE, MAX_U32, TAG_SIZE, blobIdToHex, decodeChunkHeader, expectedChunkLayout, isBlobIdHex,
} from '../crypto/index.js';
import type { BlobRecord, KeyRecord, TreeNode, UploadChunkRecord } from '../metadata/types.js';
import { requireRole } from './access.js';
import type { Actor, VaultContext } from './context.js';
import { formatPath, parsePath } from './paths.js';
import { resolveExisting } from './resolve.js';
import { audit } from './tree.js';

export const MAX_KEY_RECORD_BYTES = 16 * 1024;

export interface CreateUploadInput {
  path: string;
  blobId: string;
  keyGeneration: number;
  keyRecord: KeyRecord;
  size?: number;
  overwrite?: boolean;
  /**
   * The client's tag of the source it uploads (opaque to the vault; Coffer's client: a keyed hash of the file's
   * identity), returned by getUpload so a resume can check it continues from the same source.
   */
  source?: string;
  /**
   * The uploader's binding tag (docs/metadata.md "Record MACs"): keyed by the data key, it binds blob, path, owner and
   * size, so an enclave can endorse a file a client committed here. Opaque to the vault; returned in the manifest.
   */
  binding?: string;
}

export interface UploadChunkView {
  index: number;
  plaintextLength: number;
  final: boolean;
  storedSize: number;
  sha256: string;
}

export interface UploadView {
  blobId: string;
  state: BlobRecord['state'];
  path: string;
  owner: string;
  keyGeneration: number;
  /** The wrapped key, so that its owner can resume sealing the same blob (it is stored wrapped; never a secret). */
  keyRecord: BlobRecord['keyRecord'];
  size: number | null;
  overwrite: boolean;
  /** The client's source tag given at create, if any. */
  source?: string;
  createdAt: string;
  chunks: UploadChunkView[];
}

/** What the vault keeps in BlobRecord.attrs while uploading. */
interface UploadAttrs {
  path: string;
  overwrite: boolean;
  /** Index of the FINAL chunk once one was announced (early rejection of a second FINAL). */
  finalIndex?: number;
  source?: string;
  binding?: string;
}

export function uploadAttrs(blob: BlobRecord): UploadAttrs {
  const a = blob.attrs as Partial<UploadAttrs>;
  return {
    path: typeof a.path === 'string' ? a.path : '', overwrite: a.overwrite === true,
    finalIndex: typeof a.finalIndex === 'number' ? a.finalIndex : undefined, source: typeof a.source === 'string' ? a.source : undefined,
  };
}

export function chunkView(c: UploadChunkRecord): UploadChunkView {
  return { index: c.index, plaintextLength: c.plaintextLength, final: c.final, storedSize: c.storedSize, sha256: c.sha256 };
}

export function checkBlobId(blobId: unknown): asserts blobId is string {
  if (!isBlobIdHex(blobId)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'blob id must be 32 lowercase hex characters');
}

export function checkIndex(index: unknown): asserts index is number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > MAX_U32) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'chunk index must be an integer 0..2^32-1');
  }
}

/** Key records are flat in practice; a deep one is refused before anything recurses over it (a stack overflow). */
const MAX_KEY_RECORD_DEPTH = 16;

/** Nesting depth of a JSON value, iteratively, stopping once past the limit. */
function depthOf(value: unknown): number {
  let level: unknown[] = [value];
  let depth = 0;
  while (level.length > 0 && depth <= MAX_KEY_RECORD_DEPTH) {
    depth++;
    const next: unknown[] = [];
    for (const v of level) if (typeof v === 'object' && v !== null) next.push(...Object.values(v));
    level = next;
  }
  return depth;
}

function checkKeyRecord(keyRecord: unknown): asserts keyRecord is KeyRecord {
  if (typeof keyRecord !== 'object' || keyRecord === null || Array.isArray(keyRecord)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'keyRecord must be a JSON object');
  }
  const scheme = (keyRecord as { scheme?: unknown }).scheme;
  if (typeof scheme !== 'string' || scheme.length === 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'keyRecord.scheme must be a non-empty string');
  if (depthOf(keyRecord) > MAX_KEY_RECORD_DEPTH) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `keyRecord nested deeper than ${MAX_KEY_RECORD_DEPTH} levels`);
  }
  if (Buffer.byteLength(JSON.stringify(keyRecord), 'utf8') > MAX_KEY_RECORD_BYTES) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `keyRecord larger than ${MAX_KEY_RECORD_BYTES} bytes`);
  }
}

/** Loads a blob the caller may write chunks to / commit. Throws NOT_FOUND, PERMISSION_DENIED. */
export async function ownUpload(ctx: VaultContext, actor: Actor, blobId: string, allowTokenAdmin: boolean): Promise<BlobRecord> {
  checkBlobId(blobId);
  const blob = await ctx.store.getBlob(blobId);
  if (!blob) throw new CofferError(ErrorCode.NOT_FOUND, `upload ${blobId} does not exist`);
  if (blob.owner !== actor.user && !(allowTokenAdmin && actor.admin)) {
    throw new CofferError(ErrorCode.PERMISSION_DENIED, `upload ${blobId} belongs to another user`);
  }
  return blob;
}

/**
 * Checks the target path and permissions for binding a file at `path`; returns the parent directory.
 * Throws INVALID_PATH, NOT_FOUND, NOT_A_DIRECTORY, IS_A_DIRECTORY, ALREADY_EXISTS, PERMISSION_DENIED.
 */
export async function checkUploadTarget(ctx: VaultContext, actor: Actor, segments: string[], overwrite: boolean): Promise<{ parent: TreeNode; existing: TreeNode | null }> {
  if (segments.length === 0) throw new CofferError(ErrorCode.IS_A_DIRECTORY, '/ is a directory');
  const chain = await resolveExisting(ctx.store, segments.slice(0, -1));
  const parent = chain[chain.length - 1] as TreeNode;
  if (parent.type !== 'dir') throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `parent of ${formatPath(segments)} is not a directory`);
  await requireRole(ctx, actor, chain, 'write', `upload to ${formatPath(segments)}`);
  const existing = await ctx.store.getChild(parent.id, segments[segments.length - 1] as string);
  if (existing?.type === 'dir') throw new CofferError(ErrorCode.IS_A_DIRECTORY, `${formatPath(segments)} is a directory`);
  if (existing && !overwrite) throw new CofferError(ErrorCode.ALREADY_EXISTS, `${formatPath(segments)} already exists`);
  return { parent, existing };
}

/** A client's source tag: short, printable, no spaces. */
const SOURCE_TAG = /^[A-Za-z0-9+/=:._-]{1,128}$/;

/**
 * The checks of an upload's own fields, before anything is read or written: blob id, key generation, key
 * record, size, source and binding tags, path syntax. Throws INVALID_ARGUMENT, INVALID_PATH.
 */
export function checkCreateInput(input: CreateUploadInput): void {
  checkBlobId(input.blobId);
  const { keyGeneration, keyRecord, size } = input;
  if (!Number.isInteger(keyGeneration) || keyGeneration < 1 || keyGeneration > MAX_U32) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'keyGeneration must be an integer 1..2^32-1');
  }
  checkKeyRecord(keyRecord);
  if (size !== undefined) expectedChunkLayout(size); // INVALID_ARGUMENT on a bad size
  if (input.source !== undefined && (typeof input.source !== 'string' || !SOURCE_TAG.test(input.source))) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'source must be 1..128 characters of [A-Za-z0-9+/=:._-]');
  }
  if (input.binding !== undefined && (typeof input.binding !== 'string' || !SOURCE_TAG.test(input.binding))) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'binding must be 1..128 characters of [A-Za-z0-9+/=:._-]');
  }
  parsePath(input.path);
}

/** Starts an upload: a blob in state 'uploading'. Throws as checkUploadTarget, plus INVALID_ARGUMENT, ALREADY_EXISTS (blob id). */
export async function createUpload(ctx: VaultContext, actor: Actor, input: CreateUploadInput): Promise<UploadView> {
  checkCreateInput(input);
  const { keyGeneration, keyRecord, size } = input;
  const segments = parsePath(input.path);
  const overwrite = input.overwrite === true;
  await checkUploadTarget(ctx, actor, segments, overwrite);
  const now = ctx.now();
  const path = formatPath(segments);
  const blob: BlobRecord = {
    id: input.blobId, state: 'uploading', owner: actor.user, keyGeneration, keyRecord, size: size ?? null,
    chunkCount: null, chunkSha256: null, createdAt: now, updatedAt: now, attrs: {
      path, overwrite, ...(input.source === undefined ? {} : { source: input.source }), ...(input.binding === undefined ? {} : { binding: input.binding }),
    },
  };
  try {
    await ctx.store.insertBlob(blob);
  } catch (e) {
    // the same request again (a client retrying after a lost answer, a store that applied the insert but whose
    // reply was lost): the upload it made is the answer; anything else under this id is a conflict
    const same = isCofferError(e, ErrorCode.ALREADY_EXISTS) ? await sameUpload(ctx, blob) : null;
    if (!same) throw e;
    // audited again, marked: when the first answer was lost its entry may be lost with it (an entry twice, marked,
    // is better than none)
    await audit(ctx, actor, 'upload.create', path, { blobId: blob.id, size: size ?? null, overwrite, repeated: true });
    return toUploadView(same, await ctx.store.listUploadChunks(same.id));
  }
  await audit(ctx, actor, 'upload.create', path, { blobId: blob.id, size: size ?? null, overwrite });
  return toUploadView(blob, []);
}

/** The stored upload under `blob.id` if it is still uploading and was created by exactly this request. */
async function sameUpload(ctx: VaultContext, blob: BlobRecord): Promise<BlobRecord | null> {
  const stored = await ctx.store.getBlob(blob.id);
  if (stored?.state !== 'uploading' || stored.owner !== blob.owner || stored.keyGeneration !== blob.keyGeneration || stored.size !== blob.size) return null;
  const asked = ['path', 'overwrite', 'source', 'binding'].every((k) => isDeepStrictEqual(stored.attrs[k], blob.attrs[k])); // not finalIndex: chunks may have come since
  return asked && isDeepStrictEqual(stored.keyRecord, blob.keyRecord) ? stored : null;
}

export function toUploadView(blob: BlobRecord, chunks: UploadChunkRecord[]): UploadView {
  const a = uploadAttrs(blob);
  return {
    blobId: blob.id, state: blob.state, path: a.path, owner: blob.owner, keyGeneration: blob.keyGeneration,
    keyRecord: blob.keyRecord, size: blob.size, overwrite: a.overwrite, ...(a.source === undefined ? {} : { source: a.source }),
    createdAt: blob.createdAt.toISOString(), chunks: chunks.map(chunkView),
  };
}

/** Upload state for resuming: the durable chunks. Throws NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT. */
export async function getUpload(ctx: VaultContext, actor: Actor, blobId: string): Promise<UploadView> {
  const blob = await ownUpload(ctx, actor, blobId, true);
  if (blob.state === 'committed') {
    const count = blob.chunkCount ?? 0;
    const size = blob.size ?? 0;
    const chunks = (blob.chunkSha256 ?? []).map((sha256, index) => {
      const plaintextLength = index === count - 1 ? size - index * CHUNK_SIZE : CHUNK_SIZE;
      return { blobId, index, plaintextLength, final: index === count - 1, storedSize: plaintextLength + HEADER_SIZE + TAG_SIZE, sha256, createdAt: blob.updatedAt };
    });
    return toUploadView(blob, chunks);
  }
  return toUploadView(blob, blob.state === 'uploading' ? await ctx.store.listUploadChunks(blobId) : []);
}

/**
 * Reads the first `n` bytes of a stream without losing the rest: returns them and a stream of everything
 * (those bytes included). Throws CHUNK_MISMATCH if the stream ends first.
 */
async function peek(source: AsyncIterable<Uint8Array>, n: number): Promise<{ head: Buffer; all: AsyncIterable<Uint8Array> }> {
  const it = source[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let have = 0;
  while (have < n) {
    const r = await it.next();
    if (r.done) break;
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    parts.push(b);
    have += b.length;
  }
  const first = Buffer.concat(parts);
  if (first.length < n) throw new CofferError(ErrorCode.CHUNK_MISMATCH, `chunk shorter than its ${n}-byte header`);
  async function* all(): AsyncGenerator<Uint8Array> {
    yield first;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head: first.subarray(0, n), all: all() };
}

/**
 * Stores one sealed chunk of an upload. Checks, before writing anything: the caller owns the upload, it is
 * 'uploading', the header decodes and names this blob, index and key generation, its length matches
 * `contentLength` (when given) and the declared size's layout, and no other FINAL chunk was announced.
 * Idempotent per index (a re-PUT replaces). Throws NOT_FOUND, PERMISSION_DENIED, UPLOAD_STATE, CHUNK_FORMAT,
 * CHUNK_MISMATCH, PAYLOAD_TOO_LARGE, INVALID_ARGUMENT, NO_SPACE, and the stream's own error if it breaks.
 */
export async function putChunk(
  ctx: VaultContext, actor: Actor, blobId: string, index: number, body: AsyncIterable<Uint8Array>, contentLength?: number,
): Promise<UploadChunkView> {
  checkIndex(index);
  if (contentLength !== undefined) {
    if (contentLength > MAX_SEALED_SIZE) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `a sealed chunk is at most ${MAX_SEALED_SIZE} bytes`);
    if (contentLength < HEADER_SIZE + TAG_SIZE) throw new CofferError(ErrorCode.CHUNK_MISMATCH, 'body shorter than an empty sealed chunk');
  }
  let blob = await ownUpload(ctx, actor, blobId, false);
  if (blob.state !== 'uploading') throw new CofferError(ErrorCode.UPLOAD_STATE, `upload ${blobId} is ${blob.state}`);
  const { head, all } = await peek(body, HEADER_SIZE);
  const header = decodeChunkHeader(head);
  const mismatch = (m: string): CofferError => new CofferError(ErrorCode.CHUNK_MISMATCH, `chunk ${index}: ${m}`);
  if (blobIdToHex(header.blobId) !== blobId) throw mismatch('header names another blob');
  if (header.index !== index) throw mismatch(`header says index ${header.index}`);
  if (header.keyGeneration !== blob.keyGeneration) throw mismatch(`header key generation ${header.keyGeneration}, upload has ${blob.keyGeneration}`);
  const expectedSize = header.plaintextLength + HEADER_SIZE + TAG_SIZE;
  if (contentLength !== undefined && contentLength !== expectedSize) throw mismatch(`length ${contentLength} but header implies ${expectedSize}`);
  if (blob.size !== null) {
    const layout = expectedChunkLayout(blob.size);
    if (index >= layout.chunkCount) throw mismatch(`declared size has only ${layout.chunkCount} chunks`);
    if (header.plaintextLength !== layout.plaintextLengthOf(index) || header.final !== (index === layout.chunkCount - 1)) {
      throw mismatch('length or FINAL flag disagrees with the declared size');
    }
  }
  const attrs = uploadAttrs(blob);
  if (attrs.finalIndex !== undefined) {
    if (header.final && attrs.finalIndex !== index) throw mismatch(`chunk ${attrs.finalIndex} is already FINAL`);
    if (!header.final && index >= attrs.finalIndex) throw mismatch(`chunk ${attrs.finalIndex} is FINAL; no chunk may follow or replace it as non-final`);
  } else if (header.final && blob.size === null) {
    // Announce the FINAL index before writing (compare-and-set on state; commit re-checks everything). With a
    // declared size the layout check above already pins FINAL to the last index, so no write is needed.
    blob = await ctx.store.updateBlob(blobId, 'uploading', { attrs: { ...blob.attrs, finalIndex: index } });
  }
  const stored = await ctx.chunks.put({ blobId, index }, all, {
    expectedSize, maxBytes: MAX_SEALED_SIZE,
    // streaming may take long: a commit (or abort) meanwhile must not see one of its chunk files replaced.
    // Checked again with the bytes durable, just before they take the chunk's name (a window of one rename).
    beforeRename: async () => {
      const now = await ctx.store.getBlob(blobId);
      if (now?.state !== 'uploading') throw new CofferError(ErrorCode.UPLOAD_STATE, `upload ${blobId} is ${now?.state ?? 'gone'}; chunk ${index} was not stored`);
    },
  });
  const record: UploadChunkRecord = {
    blobId, index, plaintextLength: header.plaintextLength, final: header.final, storedSize: stored.size,
    sha256: stored.sha256, createdAt: ctx.now(),
  };
  await ctx.store.putUploadChunk(record);
  // Touch the blob (updatedAt) so GC's grace period counts from the last activity, not from creation; this also
  // reports an upload aborted or expired while the chunk was streaming (UPLOAD_STATE).
  try {
    await ctx.store.updateBlob(blobId, 'uploading', {});
  } catch (e) {
    await dropLateRecords(ctx, blobId);
    throw e;
  }
  return chunkView(record);
}

/**
 * A chunk record written after its upload ended would stay forever: commit and GC's purge delete a blob's
 * upload records once, before it. Committed or purged: dropped here (a 'deleting' blob's are GC's to purge).
 */
async function dropLateRecords(ctx: VaultContext, blobId: string): Promise<void> {
  const now = await ctx.store.getBlob(blobId);
  if (now === null || now.state === 'committed') await ctx.store.deleteUploadChunks(blobId);
}

/** Abandons an upload: the blob goes to 'deleting' for GC. Idempotent. Throws NOT_FOUND, PERMISSION_DENIED, UPLOAD_STATE (committed). */
export async function abortUpload(ctx: VaultContext, actor: Actor, blobId: string): Promise<{ blobId: string; state: 'deleting' }> {
  const blob = await ownUpload(ctx, actor, blobId, true);
  if (blob.state === 'committed') throw new CofferError(ErrorCode.UPLOAD_STATE, `upload ${blobId} is already committed`);
  if (blob.state === 'uploading') {
    await ctx.store.updateBlob(blobId, 'uploading', { state: 'deleting' });
    await audit(ctx, actor, 'upload.abort', uploadAttrs(blob).path, { blobId });
  }
  return { blobId, state: 'deleting' };
}
