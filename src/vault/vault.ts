// The Vault: domain logic of files, directories, blobs, uploads, permissions and audit over a MetadataStore and a
// ChunkStore. Stateless apart from the GC cursor, so any number of service replicas can share the stores.
// Every method takes the acting user first; see each module for what it throws.
import type { ChunkStore } from '../../storage-backend/types.js';
import type { MetadataStore } from '../metadata/types.js';
import { CofferError, ErrorCode, toCofferError } from '../errors.js';
import { auditHead, verifyAuditChain, type AuditVerification } from './audit.js';
import { commitUpload, type CommitInput } from './commit.js';
import type { Actor, GrantView, ManifestView, NodeView, VaultContext, VaultOptions } from './context.js';
import { manifestByBlob, manifestByPath, readChunk, readUploadChunk, type ChunkInfo, type ChunkRead, type ChunkReadPlan } from './downloads.js';
import { fsck, type FsckOptions, type FsckReport } from './fsck.js';
import { runGc, type GcOptions, type GcReport, type GcState } from './gc.js';
import { deleteGrant, listGrants, putGrant } from './grants.js';
import * as integrity from './integrity.js';
import { ensureRoot } from './resolve.js';
import { getSmallFile, putSmallFile, readSmallFiles, type BatchReadItem, type SealedBufferFor, type SmallFileInput, type SmallFileRead } from './small-files.js';
import { putSmallFiles, type BatchFile, type BatchResult } from './small-file-batch.js';
import * as tree from './tree.js';
import * as uploads from './uploads.js';
import { UserRegistry, type UserView } from './users.js';
import { listUploads, type UploadSummary } from './upload-list.js';

export const DEFAULT_UPLOAD_GRACE_MS = 24 * 60 * 60 * 1000;

export class Vault {
  readonly store: MetadataStore;
  readonly chunks: ChunkStore;
  private readonly ctx: VaultContext;
  private readonly gcState: GcState = {};
  private readonly users: UserRegistry;

  private constructor(ctx: VaultContext, homes: boolean) {
    this.ctx = ctx;
    this.users = new UserRegistry(ctx, homes);
    this.store = ctx.store;
    this.chunks = ctx.chunks;
  }

  /** Opens a vault over the two stores, creating the root directory if absent (idempotent). Throws store errors. */
  static async open(store: MetadataStore, chunks: ChunkStore, options: VaultOptions = {}): Promise<Vault> {
    const now = options.now ?? (() => new Date());
    const role = options.defaultRootRole ?? 'none';
    if (role !== 'none' && role !== 'read' && role !== 'write') {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'defaultRootRole must be none, read or write');
    }
    const ctx: VaultContext = { store, chunks, defaultRootRole: role, uploadGraceMs: options.uploadGraceMs ?? DEFAULT_UPLOAD_GRACE_MS, now };
    await ensureRoot(store, now());
    return new Vault(ctx, options.homes === true);
  }

  get defaultRootRole(): VaultContext['defaultRootRole'] {
    return this.ctx.defaultRootRole;
  }

  // ---- tree ----
  stat(actor: Actor, path: string): Promise<NodeView> {
    return tree.stat(this.ctx, actor, path);
  }
  list(actor: Actor, path: string, options?: { after?: string; limit?: number }): Promise<{ items: NodeView[]; next: string | null }> {
    return tree.list(this.ctx, actor, path, options);
  }
  mkdir(actor: Actor, path: string, options?: { parents?: boolean }): Promise<{ node: NodeView; created: boolean }> {
    return tree.mkdir(this.ctx, actor, path, options);
  }
  move(actor: Actor, from: string, to: string, options?: { overwrite?: boolean }): Promise<NodeView> {
    return tree.move(this.ctx, actor, from, to, options);
  }
  remove(actor: Actor, path: string, options?: { recursive?: boolean }): Promise<{ removed: number }> {
    return tree.remove(this.ctx, actor, path, options);
  }

  // ---- grants ----
  putGrant(actor: Actor, path: string, user: unknown, role: unknown, mac?: unknown): Promise<GrantView> {
    return putGrant(this.ctx, actor, path, user, role, mac);
  }
  deleteGrant(actor: Actor, path: string, user: unknown): Promise<void> {
    return deleteGrant(this.ctx, actor, path, user);
  }
  listGrants(actor: Actor, path: string, options?: { inherited?: boolean }): Promise<GrantView[]> {
    return listGrants(this.ctx, actor, path, options);
  }

  // ---- users ----
  /** The caller's home directory (development mode's /home/NAME), or null. */
  homeOf(actor: Actor): string | null {
    return this.users.homeOf(actor.user);
  }
  listUsers(actor: Actor): Promise<UserView[]> {
    return this.users.list(actor);
  }
  setUserDisabled(actor: Actor, user: unknown, disabled: boolean): Promise<UserView> {
    return this.users.setDisabled(actor, user, disabled);
  }

  // ---- record MACs (stored verbatim for the enclave; docs/metadata.md "Record MACs") ----
  setNodeMac(actor: Actor, path: string, version: unknown, mac: unknown): Promise<NodeView> {
    return integrity.setNodeMac(this.ctx, actor, path, version, mac);
  }

  setBlobMac(actor: Actor, blobId: string, mac: unknown): Promise<{ blobId: string }> {
    return integrity.setBlobMac(this.ctx, actor, blobId, mac);
  }

  setUserStatus(actor: Actor, user: unknown, disabled: unknown, mac: unknown): Promise<{ user: string; disabled: boolean; mac?: string }> {
    return integrity.setUserStatus(this.ctx, actor, user, disabled, mac);
  }

  reportRefusal(actor: Actor, kind: unknown, target: unknown, reason: unknown): Promise<{ recorded: true }> {
    return integrity.reportRefusal(this.ctx, actor, kind, target, reason);
  }

  accessEvidence(actor: Actor, path: string): Promise<integrity.AccessEvidence> {
    return integrity.accessEvidence(this.ctx, actor, path);
  }

  userStatus(actor: Actor, user: unknown): Promise<{ user: string; disabled: boolean; mac?: string }> {
    return integrity.userStatus(this.ctx, actor, user);
  }

  // ---- uploads ----
  createUpload(actor: Actor, input: uploads.CreateUploadInput): Promise<uploads.UploadView> {
    return uploads.createUpload(this.ctx, actor, input);
  }
  getUpload(actor: Actor, blobId: string): Promise<uploads.UploadView> {
    return uploads.getUpload(this.ctx, actor, blobId);
  }
  putChunk(actor: Actor, blobId: string, index: number, body: AsyncIterable<Uint8Array>, contentLength?: number): Promise<uploads.UploadChunkView> {
    return uploads.putChunk(this.ctx, actor, blobId, index, body, contentLength);
  }
  commitUpload(actor: Actor, blobId: string, input: CommitInput): Promise<{ node: NodeView; manifest: ManifestView }> {
    return commitUpload(this.ctx, actor, blobId, input);
  }
  abortUpload(actor: Actor, blobId: string): Promise<{ blobId: string; state: 'deleting' }> {
    return uploads.abortUpload(this.ctx, actor, blobId);
  }
  /** A one-chunk file created, stored and committed in one call (small-files.ts). */
  putSmallFile(actor: Actor, input: SmallFileInput, body: AsyncIterable<Uint8Array>, contentLength: number): Promise<{ node: NodeView; manifest: ManifestView; repeated: boolean }> {
    return putSmallFile(this.ctx, actor, input, body, contentLength);
  }
  /** Many one-chunk files stored as one pack and committed in one metadata round, answered per file (small-file-batch.ts). */
  putSmallFiles(actor: Actor, files: BatchFile[]): Promise<BatchResult[]> {
    return putSmallFiles(this.ctx, actor, files);
  }
  /** A file's node, manifest and, for one chunk, its sealed bytes (small-files.ts). */
  getSmallFile(actor: Actor, path: string): Promise<SmallFileRead> {
    return getSmallFile(this.ctx, actor, path);
  }
  /** Many files as getSmallFile reads one, in order, each failing alone; sealed chunks read into `bufferFor`'s (small-files.ts). */
  readSmallFiles(actor: Actor, paths: readonly string[], bufferFor?: SealedBufferFor): AsyncGenerator<BatchReadItem> {
    return readSmallFiles(this.ctx, actor, paths, bufferFor);
  }
  listUploads(actor: Actor, options?: { all?: boolean }): Promise<UploadSummary[]> {
    return listUploads(this.ctx, actor, options);
  }

  // ---- downloads ----
  manifestByBlob(actor: Actor, blobId: string): Promise<ManifestView> {
    return manifestByBlob(this.ctx, actor, blobId);
  }
  manifestByPath(actor: Actor, path: string): Promise<{ node: NodeView; manifest: ManifestView }> {
    return manifestByPath(this.ctx, actor, path);
  }
  readChunk(actor: Actor, blobId: string, index: number, plan?: (info: ChunkInfo) => ChunkReadPlan): Promise<ChunkRead> {
    return readChunk(this.ctx, actor, blobId, index, plan);
  }
  /** A sealed chunk of the caller's own upload in progress (see downloads.ts readUploadChunk). */
  readUploadChunk(actor: Actor, blobId: string, index: number, into: Buffer): Promise<Uint8Array> {
    return readUploadChunk(this.ctx, actor, blobId, index, into);
  }

  // ---- maintenance ----
  /** One GC pass (see gc.ts). */
  runGc(now: Date = this.ctx.now(), options?: GcOptions): Promise<GcReport> {
    return runGc(this.ctx, now, this.gcState, options);
  }
  /** Checks the tree, the files and the chunk files against the metadata; repairs what it can (see fsck.ts). */
  fsck(options?: FsckOptions): Promise<FsckReport> {
    return fsck(this.ctx, options);
  }
  /** Records a user the first time it acts; refuses a disabled one (PERMISSION_DENIED). */
  admitUser(actor: Actor): Promise<void> {
    return this.users.admit(actor);
  }
  verifyAudit(): Promise<AuditVerification> {
    return verifyAuditChain(this.store);
  }
  auditHead(): Promise<{ seq: number; hash: string }> {
    return auditHead(this.store);
  }
  /** Both stores answer. Throws UNAVAILABLE otherwise. */
  async checkReady(): Promise<void> {
    try {
      await this.store.getNode('root');
      await this.chunks.stat({ blobId: '0'.repeat(32), index: 0 });
    } catch (e) {
      throw new CofferError(ErrorCode.UNAVAILABLE, `not ready: ${toCofferError(e).message}`, { cause: e, retryable: true });
    }
  }
}
