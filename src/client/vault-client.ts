// Typed client for the storage service's /v1 API (docs/http-api.md). Sends and receives only sealed chunks,
// wrapped keys and metadata; sealing and opening happen in upload.ts and download.ts.
import type { IncomingMessage } from 'node:http';
import type { ChunkView, CreateUploadInput, ManifestView, NodeView, UploadChunkView, UploadView } from '../vault/index.js';
import { MAX_SEALED_SIZE } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { FILES_MEDIA_TYPE, readFileAnswers, type FileAnswer } from './file-batch.js';
import { HttpClient, readAll, type ClientOptions } from './http.js';

/** The framing of the small-file calls (src/api/framed-body.ts, docs/http-api.md): u32 J ‖ JSON ‖ sealed chunk. */
const FILE_MEDIA_TYPE = 'application/vnd.coffer.file+v1';
const FILE_BATCH_MEDIA_TYPE = 'application/vnd.coffer.file-batch+v1';

/** One file of a one-request upload (POST /v1/files, or one entry of POST /v1/files/batch). */
export type SmallFileRequest = CreateUploadRequest & { size: number };

/** One file's answer in a batch: committed, or its own error (docs/http-api.md "Many small files"). */
export type BatchFileAnswer = { node: NodeInfo; manifest: Manifest; repeated: boolean } | { error: { code: string; message: string } };

function frameHead(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const head = Buffer.allocUnsafe(4 + json.length);
  head.writeUInt32BE(json.length, 0);
  json.copy(head, 4);
  return head;
}

/** The views, with runs of views that follow each other in one ArrayBuffer made one view each. */
function adjacentJoined(views: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const v of views) {
    const last = out.at(-1);
    if (last !== undefined && last.buffer === v.buffer && last.byteOffset + last.byteLength === v.byteOffset) {
      out[out.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.byteLength + v.byteLength);
    } else {
      out.push(v);
    }
  }
  return out;
}

/** Splits a framed file answer. Throws INTEGRITY when it is not one (the service is not trusted to frame it right). */
function parseFileResponse(body: Buffer): { node: NodeInfo; manifest: Manifest; sealed: Buffer | null } {
  const bad = (m: string): CofferError => new CofferError(ErrorCode.INTEGRITY, `malformed file answer: ${m}`);
  if (body.length < 4) throw bad('shorter than its prefix');
  const j = body.readUInt32BE(0);
  if (4 + j > body.length) throw bad('JSON part longer than the body');
  let value: { node?: NodeInfo; manifest?: Manifest };
  try {
    value = JSON.parse(body.subarray(4, 4 + j).toString('utf8')) as { node?: NodeInfo; manifest?: Manifest };
  } catch {
    throw bad('JSON part is not JSON');
  }
  if (typeof value !== 'object' || value === null || !value.node || !value.manifest) throw bad('no node or manifest');
  const rest = body.subarray(4 + j);
  return { node: value.node, manifest: value.manifest, sealed: rest.length > 0 ? rest : null };
}

// The wire types are the service's own JSON views (docs/http-api.md), imported as types only: the client shares
// the contract, not the service's code.
export type NodeInfo = NodeView;
export type ChunkInfo = ChunkView | UploadChunkView;
export type Manifest = ManifestView;
export type UploadState = UploadView;
export type CreateUploadRequest = CreateUploadInput;

export class VaultClient {
  readonly http: HttpClient;

  constructor(options: ClientOptions) {
    this.http = new HttpClient(options);
  }

  whoami(): Promise<{ user: string; admin: boolean; defaultRootRole: string; home?: string | null }> {
    return this.http.json('/v1/whoami');
  }

  stat(path: string): Promise<NodeInfo> {
    return this.http.json('/v1/fs/stat', { query: { path } });
  }

  list(path: string, options: { after?: string; limit?: number } = {}): Promise<{ items: NodeInfo[]; next: string | null }> {
    return this.http.json('/v1/fs/list', { query: { path, after: options.after, limit: options.limit } });
  }

  /** Iterates over every entry of a directory, page by page. */
  async *listAll(path: string, pageSize = 1000): AsyncIterable<NodeInfo> {
    let after: string | undefined;
    for (;;) {
      const page = await this.list(path, { after, limit: pageSize });
      yield* page.items;
      if (page.next === null) return;
      after = page.next;
    }
  }

  mkdir(path: string, parents = false): Promise<NodeInfo> {
    // with parents, a second mkdir of the same path answers as the first: safe to replay
    return this.http.json('/v1/fs/mkdir', { method: 'POST', json: { path, parents }, replaySafe: parents });
  }

  move(from: string, to: string, overwrite = false): Promise<NodeInfo> {
    return this.http.json('/v1/fs/move', { method: 'POST', json: { from, to, overwrite } });
  }

  remove(path: string, recursive = false): Promise<{ removed: number }> {
    return this.http.json('/v1/fs/remove', { method: 'POST', json: { path, recursive } });
  }

  manifestByPath(path: string): Promise<{ node: NodeInfo; manifest: Manifest }> {
    return this.http.json('/v1/fs/manifest', { query: { path } });
  }

  manifest(blobId: string): Promise<Manifest> {
    return this.http.json(`/v1/blobs/${blobId}`);
  }

  createUpload(req: CreateUploadRequest): Promise<UploadState> {
    // the same request again is answered with the upload it made (docs/http-api.md): retried like a GET
    return this.http.json('/v1/uploads', { method: 'POST', json: req, idempotent: true });
  }

  uploadState(blobId: string): Promise<UploadState> {
    return this.http.json(`/v1/uploads/${blobId}`);
  }

  putChunk(blobId: string, index: number, sealed: Uint8Array): Promise<ChunkInfo> {
    return this.http.json(`/v1/uploads/${blobId}/chunks/${index}`, {
      method: 'PUT',
      body: sealed,
      headers: { 'content-type': 'application/octet-stream' },
    });
  }

  commit(blobId: string, chunkCount: number, size: number): Promise<{ node: NodeInfo; manifest: Manifest }> {
    // idempotent (docs/http-api.md): repeated after a lost answer or a service restart
    return this.http.json(`/v1/uploads/${blobId}/commit`, { method: 'POST', json: { chunkCount, size }, idempotent: true });
  }

  /**
   * A one-chunk file created, stored and committed in one request (docs/http-api.md "Small files"). Idempotent on
   * the service's side (the same request again answers the committed file), so it is retried after transient
   * failures like a chunk PUT.
   */
  putSmallFile(req: SmallFileRequest, sealed: Uint8Array): Promise<{ node: NodeInfo; manifest: Manifest }> {
    const head = frameHead(req);
    return this.http.json('/v1/files', { method: 'POST', body: Buffer.concat([head, sealed]), headers: { 'content-type': FILE_MEDIA_TYPE }, idempotent: true });
  }

  /**
   * Many one-chunk files in one request, answered per file in order. Retried as a whole on a transient failure:
   * safe, since a file the lost attempt committed answers as repeated. Throws INTEGRITY if the answer does not
   * hold one result per file, and the service's errors for the batch as a whole.
   */
  async putSmallFiles(files: Array<{ request: SmallFileRequest; sealed: Uint8Array }>): Promise<BatchFileAnswer[]> {
    const head = frameHead({ files: files.map((f) => ({ ...f.request, sealedLength: f.sealed.byteLength })) });
    // sealed chunks laid end to end in one buffer (file-batcher.ts does) go as one piece, without a copy
    const body = [head, ...adjacentJoined(files.map((f) => f.sealed))];
    const answer = await this.http.json<{ results?: unknown }>('/v1/files/batch', { method: 'POST', body, headers: { 'content-type': FILE_BATCH_MEDIA_TYPE }, idempotent: true });
    if (!Array.isArray(answer.results) || answer.results.length !== files.length) {
      throw new CofferError(ErrorCode.INTEGRITY, 'malformed batch answer: not one result per file');
    }
    return answer.results as BatchFileAnswer[];
  }

  /** A file's node and manifest, and for a one-chunk file its sealed chunk, in one request (retried like a GET). */
  async getFile(path: string): Promise<{ node: NodeInfo; manifest: Manifest; sealed: Buffer | null }> {
    const res = await this.http.raw('/v1/fs/file', { query: { path }, headers: { accept: FILE_MEDIA_TYPE } });
    const body = await readAll(res, MAX_SEALED_SIZE + 1024 * 1024);
    return parseFileResponse(body);
  }

  /**
   * Many files as getFile answers one, in one request (at most MAX_BATCH_READ paths), yielded in order as they
   * arrive; a file's own error is its answer and the rest go on (file-batch.ts). The request is retried like a
   * GET; a failure once answers have begun throws.
   */
  async *readFiles(paths: readonly string[]): AsyncGenerator<FileAnswer> {
    const res = await this.http.raw('/v1/fs/files/read', { method: 'POST', json: { paths }, idempotent: true, headers: { accept: FILES_MEDIA_TYPE } });
    yield* readFileAnswers(res, paths);
  }

  uploads(all = false): Promise<{ uploads: Array<{ blobId: string; path: string; owner: string; size: number | null; chunks: number; storedBytes: number; createdAt: string; updatedAt: string }> }> {
    return this.http.json('/v1/uploads', { query: { all: all ? 'true' : undefined } });
  }

  abort(blobId: string): Promise<unknown> {
    return this.http.json(`/v1/uploads/${blobId}`, { method: 'DELETE' });
  }

  /** One whole sealed chunk (at most 8 MiB + 64 bytes). */
  async getChunk(blobId: string, index: number): Promise<Buffer> {
    const res: IncomingMessage = await this.http.raw(`/v1/blobs/${blobId}/chunks/${index}`, {
      headers: { accept: 'application/octet-stream' },
    });
    return readAll(res, MAX_SEALED_SIZE);
  }

  /** One whole sealed chunk read into the start of `into` (e.g. a pooled buffer); returns the filled view. */
  getChunkInto(blobId: string, index: number, into: Buffer): Promise<Buffer> {
    return this.http.getInto(`/v1/blobs/${blobId}/chunks/${index}`, into.length > MAX_SEALED_SIZE ? into.subarray(0, MAX_SEALED_SIZE) : into);
  }

  /** A sealed chunk of the caller's own upload in progress, read into the start of `into` (GET /v1/uploads/{id}/chunks/{i}). */
  getUploadChunkInto(blobId: string, index: number, into: Buffer): Promise<Buffer> {
    return this.http.getInto(`/v1/uploads/${blobId}/chunks/${index}`, into.length > MAX_SEALED_SIZE ? into.subarray(0, MAX_SEALED_SIZE) : into);
  }

  grants(path: string, inherited = false): Promise<{ grants: Array<{ user: string; role: string; createdAt: string; mac?: string; path?: string; inherited?: boolean }> }> {
    return this.http.json('/v1/grants', { query: { path, inherited: inherited ? 'true' : undefined } });
  }

  users(): Promise<{ users: Array<{ name: string; createdAt: string; disabled: boolean }> }> {
    return this.http.json('/v1/users');
  }

  setUserDisabled(user: string, disabled: boolean): Promise<{ name: string; createdAt: string; disabled: boolean }> {
    return this.http.json('/v1/users/disabled', { method: 'POST', json: { user, disabled } });
  }

  /** Upserts a grant; `mac` is the enclave's MAC of it, stored verbatim (docs/metadata.md "Record MACs"). */
  putGrant(path: string, user: string, role: string, mac?: string): Promise<unknown> {
    return this.http.json('/v1/grants', { method: 'PUT', json: { path, user, role, ...(mac === undefined ? {} : { mac }) } });
  }

  /** Attaches the enclave's MAC to the node at `path` if it is still at `version` (CONFLICT otherwise). */
  setNodeMac(path: string, version: number, mac: string | null): Promise<NodeInfo> {
    return this.http.json('/v1/integrity/node', { method: 'PUT', json: { path, version, mac } });
  }

  /** Attaches the enclave's MAC to a committed blob. */
  setBlobMac(blobId: string, mac: string | null): Promise<{ blobId: string }> {
    return this.http.json('/v1/integrity/blob', { method: 'PUT', json: { blobId, mac } });
  }

  /** Records in the audit chain that the enclave refused a record (`integrity.refused`). */
  reportRefusal(refusal: { kind: string; target: string; reason: string }): Promise<unknown> {
    return this.http.json('/v1/integrity/refused', { method: 'POST', json: refusal });
  }

  /** The node chain root..path and the caller's own grants on it, with their MACs (docs/http-api.md "Record MACs"). */
  accessEvidence(path: string): Promise<{ chain: NodeInfo[]; grants: Array<{ path: string; user: string; role: string; mac?: string }> }> {
    return this.http.json('/v1/integrity/access', { query: { path } });
  }

  userStatus(user: string): Promise<{ user: string; disabled: boolean; mac?: string }> {
    return this.http.json('/v1/integrity/user', { query: { user } });
  }

  /** Token admins: a user's status with the enclave's MAC of it. */
  setUserStatus(user: string, status: { disabled?: boolean; mac: string | null }): Promise<{ user: string; disabled: boolean; mac?: string }> {
    return this.http.json('/v1/integrity/user', { method: 'PUT', json: { user, ...status } });
  }

  deleteGrant(path: string, user: string): Promise<unknown> {
    return this.http.json('/v1/grants', { method: 'DELETE', query: { path, user } });
  }

  close(): void {
    this.http.close();
  }
}
