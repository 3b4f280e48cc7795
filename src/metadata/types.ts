// The MetadataStore interface: the directory tree, blobs, upload sessions, users, grants, the audit log and the
// schema version. Adapters: sqlite/ (embedded default) and mongo/ (production). One contract suite
// (src/metadata/contract.case.ts) runs against both.
//
// Rules every adapter keeps (so MongoDB needs no multi-document transactions, DESIGN.md "Scale-out"):
// - every method is a single-document atomic write or a read; no method writes two records;
// - conditional writes (expectedVersion, fromState) are compare-and-set on one record;
// - idempotent where stated, so a caller may retry after a crash or a timeout;
// - errors are CofferError: NOT_FOUND, ALREADY_EXISTS (unique name per parent, blob id, audit seq),
//   CONFLICT (version mismatch), UPLOAD_STATE (blob state mismatch), METADATA (store failure; retryable when transient).
// The store holds no plaintext and no plaintext key: wrapped keys only, and it is not trusted (DESIGN.md).

import type { CofferError } from '../errors.js';

export const ROOT_ID = 'root';

export type NodeType = 'dir' | 'file';

/** A directory or file. The root has id ROOT_ID, parentId null and name ''. */
export interface TreeNode {
  id: string;
  parentId: string | null;
  name: string;
  type: NodeType;
  /** The committed blob a file points to; null for directories. */
  blobId: string | null;
  /** Plaintext size of the file's blob; 0 for directories. */
  size: number;
  owner: string;
  createdAt: Date;
  modifiedAt: Date;
  /** Incremented by every update; used for compare-and-set. */
  version: number;
  /** The enclave's MAC of this record (docs/format.md "Metadata MAC v1"), stored and returned verbatim; absent when none. */
  mac?: string | null;
}

export type BlobState = 'uploading' | 'committed' | 'deleting';

/**
 * How the blob's data key is held, as JSON. Opaque to the store. Examples:
 * { scheme: 'keyfile', wrapped: <base64>, ... } or { scheme: 'kms', keyId, ciphertextBlob, encryptionContext }.
 */
export type KeyRecord = { scheme: string } & Record<string, unknown>;

export interface BlobRecord {
  /** 32 lowercase hex characters (16 random bytes), as in the chunk header. */
  id: string;
  state: BlobState;
  owner: string;
  keyGeneration: number;
  keyRecord: KeyRecord;
  /** Plaintext size; known at commit (null while uploading unless declared). */
  size: number | null;
  chunkCount: number | null;
  /** SHA-256 (hex) of every sealed chunk file, by index; set at commit. */
  chunkSha256: string[] | null;
  createdAt: Date;
  updatedAt: Date;
  /** Free-form facts the vault keeps with the blob (e.g. the path it will be bound to at commit). */
  attrs: Record<string, unknown>;
  /** The enclave's MAC of this record (docs/format.md "Metadata MAC v1"), stored and returned verbatim; absent when none. */
  mac?: string | null;
}

/** A chunk that is durable in the chunk store for an upload in progress. */
export interface UploadChunkRecord {
  blobId: string;
  index: number;
  plaintextLength: number;
  final: boolean;
  /** Size of the sealed chunk file. */
  storedSize: number;
  sha256: string;
  createdAt: Date;
}

export interface User {
  name: string;
  createdAt: Date;
  disabled: boolean;
  /** The enclave's MAC of this record (docs/format.md "Metadata MAC v1"), stored and returned verbatim; absent when none. */
  mac?: string | null;
}

export type Role = 'read' | 'write' | 'admin';

export interface Grant {
  nodeId: string;
  user: string;
  role: Role;
  createdAt: Date;
  /** The enclave's MAC of this record (docs/format.md "Metadata MAC v1"), stored and returned verbatim; absent when none. */
  mac?: string | null;
}

/** One audit log entry. hash = SHA-256 over the canonical entry including prevHash (see src/vault/audit). */
export interface AuditEntry {
  seq: number;
  at: Date;
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export interface Page<T> {
  items: T[];
  /** Pass as `after` to get the next page; null when there is none. */
  next: string | null;
}

export interface MetadataStore {
  readonly kind: 'sqlite' | 'mongo';

  // ---- schema (used by migrations/) ----
  /** Current schema version; 0 for a new, empty store. */
  getSchemaVersion(): Promise<number>;

  // ---- tree ----
  getNode(id: string): Promise<TreeNode | null>;
  getChild(parentId: string, name: string): Promise<TreeNode | null>;
  /**
   * getChild for many names under one parent in one round (a batch read's files mostly share a directory):
   * per name, in the order given, what getChild(parentId, name) answers (a name given twice gets its node twice;
   * null where absent). A read, no more atomic than that many getChild calls. At most 10,000 names
   * (INVALID_ARGUMENT); none gives [].
   */
  getChildren(parentId: string, names: readonly string[]): Promise<Array<TreeNode | null>>;
  /** Children ordered by name (byte order), names strictly greater than `after`; limit 1..10000. */
  listChildren(parentId: string, options?: { after?: string; limit?: number }): Promise<Page<TreeNode>>;
  hasChildren(parentId: string): Promise<boolean>;
  /** Inserts a node. ALREADY_EXISTS if the id, or the name under the parent, is taken. */
  insertNode(node: TreeNode): Promise<void>;
  /**
   * Compare-and-set update of one node: applies `patch` if its version is `expectedVersion`, bumping version
   * and modifiedAt. CONFLICT on version mismatch, NOT_FOUND if absent, ALREADY_EXISTS on a name clash
   * (move/rename). Returns the updated node.
   */
  updateNode(
    id: string,
    expectedVersion: number,
    patch: Partial<Pick<TreeNode, 'parentId' | 'name' | 'blobId' | 'size' | 'owner' | 'mac'>>,
  ): Promise<TreeNode>;
  /**
   * Deletes a node if its version matches (CONFLICT otherwise). Idempotent: absent is success. Returns true
   * when this call deleted it, false when it was already gone (a concurrent remove got there first: the caller
   * must not audit or release as if it had removed it).
   */
  deleteNode(id: string, expectedVersion?: number): Promise<boolean>;
  /** Every file node pointing at the blob (normally 0 or 1). */
  findNodesByBlob(blobId: string): Promise<TreeNode[]>;
  /** All nodes ordered by id, ids strictly greater than `after`, wherever they hang (for fsck). */
  listNodes(options?: { after?: string; limit?: number }): Promise<Page<TreeNode>>;

  // ---- blobs ----
  /** ALREADY_EXISTS if the id is taken. */
  insertBlob(blob: BlobRecord): Promise<void>;
  getBlob(id: string): Promise<BlobRecord | null>;
  /** getBlob for many ids in one round, as getChildren is for getChild: per id in order, its blob or null. */
  getBlobs(ids: readonly string[]): Promise<Array<BlobRecord | null>>;
  /**
   * Compare-and-set on state: applies `patch` only if the blob is in `fromState` (UPLOAD_STATE otherwise,
   * NOT_FOUND if absent). Idempotent when the patch's state equals the current state and fromState matches,
   * unless `strict`: then only the call that made the change succeeds (for callers that audit "I did it", such
   * as two GC passes on two replicas releasing one blob).
   */
  updateBlob(
    id: string,
    fromState: BlobState,
    patch: Partial<Pick<BlobRecord, 'state' | 'size' | 'chunkCount' | 'chunkSha256' | 'keyRecord' | 'keyGeneration' | 'attrs' | 'mac'>>,
    options?: { strict?: boolean },
  ): Promise<BlobRecord>;
  /** Idempotent. Returns true when this call deleted the record, false when it was already gone. */
  deleteBlob(id: string): Promise<boolean>;
  /** Blobs in `state` last updated before `updatedBefore`, oldest first (for GC). */
  listBlobsByState(state: BlobState, updatedBefore: Date, limit: number): Promise<BlobRecord[]>;
  /** All blobs ordered by id, ids strictly greater than `after` (for rewrap, backup, verify). */
  listBlobs(options?: { after?: string; limit?: number }): Promise<Page<BlobRecord>>;

  // ---- batches (group commit of many small files; docs/metadata.md "Batches") ----
  /**
   * Inserts many blobs in one round: one SQLite transaction, one unordered MongoDB bulk write. Each insert is
   * still its own single-document write with insertBlob's rules: one that fails (ALREADY_EXISTS, a bad record)
   * fails alone and the others are applied. Returns, per blob in order, null (inserted) or its error. Throws
   * (METADATA) only when the round itself failed; then any subset may have been applied, and running the same
   * batch again is safe (the applied ones answer ALREADY_EXISTS). At most 10,000 records (INVALID_ARGUMENT).
   */
  insertBlobs(blobs: BlobRecord[]): Promise<Array<CofferError | null>>;
  /** Inserts many nodes in one round, as insertBlobs does for blobs (each with insertNode's rules). */
  insertNodes(nodes: TreeNode[]): Promise<Array<CofferError | null>>;

  // ---- upload sessions ----
  /** Records a durable chunk. Idempotent upsert on (blobId, index): the latest record wins. */
  putUploadChunk(chunk: UploadChunkRecord): Promise<void>;
  /** Ordered by index. */
  listUploadChunks(blobId: string): Promise<UploadChunkRecord[]>;
  /** Idempotent. */
  deleteUploadChunks(blobId: string): Promise<void>;

  // ---- users and grants ----
  /**
   * Idempotent: creating an existing user returns it unchanged. `createdAt` (default: now) is used only when the
   * user is created (a restore brings back the original date). INVALID_ARGUMENT for an invalid date.
   */
  ensureUser(name: string, options?: { createdAt?: Date }): Promise<User>;
  getUser(name: string): Promise<User | null>;
  listUsers(): Promise<User[]>;
  /** Compare-and-set free update of one user's status and MAC. NOT_FOUND if absent. Returns the updated user. */
  updateUser(name: string, patch: { disabled?: boolean; mac?: string | null }): Promise<User>;
  /** Sets the user's `disabled` flag (its MAC, if any, then no longer verifies: the gateway refuses the user until it re-MACs it); one write. NOT_FOUND if the user was never recorded. Idempotent. */
  setUserDisabled(name: string, disabled: boolean): Promise<User>;
  /** Upsert on (nodeId, user); the whole record is replaced, MAC included (a grant without `mac` has none). */
  putGrant(grant: Grant): Promise<void>;
  /** Idempotent. */
  deleteGrant(nodeId: string, user: string): Promise<void>;
  /** Grants on any of the given nodes (for walking a path's ancestors in one query). */
  listGrants(nodeIds: string[]): Promise<Grant[]>;

  // ---- audit log (append-only) ----
  /** Appends at entry.seq. ALREADY_EXISTS if that seq is taken (another writer won: re-read and retry). */
  appendAudit(entry: AuditEntry): Promise<void>;
  /** The entry with the highest seq, or null when the log is empty. */
  lastAudit(): Promise<AuditEntry | null>;
  /** Entries with seq > afterSeq, ascending. */
  listAudit(afterSeq: number, limit: number): Promise<AuditEntry[]>;

  /**
   * Makes every write acknowledged so far durable, whatever the adapter's per-write durability (SQLite
   * synchronous=NORMAL, MongoDB w:1 without journaling). Called before anything irreversible that relies on
   * earlier writes: GC deletes chunk files only after the writes that released them are durable.
   */
  sync(): Promise<void>;

  close(): Promise<void>;
}
