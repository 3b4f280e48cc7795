// Row shapes of the SQLite schema (migrations/001-initial.ts) and their conversion to and from the
// MetadataStore records: dates are integer milliseconds, booleans 0/1, JSON fields are TEXT. Row shapes are type
// aliases, not interfaces, so that node:sqlite takes them as named parameters (an index signature).
import { macField } from '../common.js';
import type { AuditEntry, BlobRecord, BlobState, Grant, NodeType, Role, TreeNode, UploadChunkRecord, User } from '../types.js';

export type NodeRow = {
  id: string;
  parent_id: string | null;
  name: string;
  type: string;
  blob_id: string | null;
  size: number;
  owner: string;
  created_at: number;
  modified_at: number;
  version: number;
  mac: string | null;
};

export type BlobRow = {
  id: string;
  state: string;
  owner: string;
  key_generation: number;
  key_record: string;
  size: number | null;
  chunk_count: number | null;
  chunk_sha256: string | null;
  created_at: number;
  updated_at: number;
  attrs: string;
  mac: string | null;
};

export type UploadChunkRow = {
  blob_id: string;
  idx: number;
  plaintext_length: number;
  final: number;
  stored_size: number;
  sha256: string;
  created_at: number;
};

export type UserRow = {
  name: string;
  created_at: number;
  disabled: number;
  mac: string | null;
};

export type GrantRow = {
  node_id: string;
  user: string;
  role: string;
  created_at: number;
  mac: string | null;
};

export type AuditRow = {
  seq: number;
  at: number;
  actor: string;
  action: string;
  target: string;
  details: string;
  prev_hash: string;
  hash: string;
};

export function nodeFromRow(r: NodeRow): TreeNode {
  return {
    id: r.id,
    parentId: r.parent_id,
    name: r.name,
    type: r.type as NodeType,
    blobId: r.blob_id,
    size: r.size,
    owner: r.owner,
    createdAt: new Date(r.created_at),
    modifiedAt: new Date(r.modified_at),
    version: r.version,
    ...macField(r.mac),
  };
}

/**
 * The nodes columns in a fixed order, for the hot reads (stat, path resolution, listing), which ask node:sqlite
 * for arrays instead of objects: it builds a row object in C++ key by key, about 1.5x slower than reading an
 * array and building the record here (measured in issue 15, docs/runtime.md).
 */
export const NODE_COLUMNS_IN_ORDER = 'id, parent_id, name, type, blob_id, size, owner, created_at, modified_at, version, mac';

/** A node from an array row of NODE_COLUMNS_IN_ORDER. */
export function nodeFromArray(a: readonly unknown[]): TreeNode {
  return {
    id: a[0] as string,
    parentId: a[1] as string | null,
    name: a[2] as string,
    type: a[3] as NodeType,
    blobId: a[4] as string | null,
    size: a[5] as number,
    owner: a[6] as string,
    createdAt: new Date(a[7] as number),
    modifiedAt: new Date(a[8] as number),
    version: a[9] as number,
    ...macField(a[10] as string | null),
  };
}

export function nodeToRow(n: TreeNode): NodeRow {
  return {
    id: n.id,
    parent_id: n.parentId,
    name: n.name,
    type: n.type,
    blob_id: n.blobId,
    size: n.size,
    owner: n.owner,
    created_at: n.createdAt.getTime(),
    modified_at: n.modifiedAt.getTime(),
    version: n.version,
    mac: n.mac ?? null,
  };
}

export function blobFromRow(r: BlobRow): BlobRecord {
  return {
    id: r.id,
    state: r.state as BlobState,
    owner: r.owner,
    keyGeneration: r.key_generation,
    keyRecord: JSON.parse(r.key_record) as BlobRecord['keyRecord'],
    size: r.size,
    chunkCount: r.chunk_count,
    chunkSha256: r.chunk_sha256 === null ? null : (JSON.parse(r.chunk_sha256) as string[]),
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
    attrs: JSON.parse(r.attrs) as Record<string, unknown>,
    ...macField(r.mac),
  };
}

export function blobToRow(b: BlobRecord): BlobRow {
  return {
    id: b.id,
    state: b.state,
    owner: b.owner,
    key_generation: b.keyGeneration,
    key_record: JSON.stringify(b.keyRecord),
    size: b.size,
    chunk_count: b.chunkCount,
    chunk_sha256: b.chunkSha256 === null ? null : JSON.stringify(b.chunkSha256),
    created_at: b.createdAt.getTime(),
    updated_at: b.updatedAt.getTime(),
    attrs: JSON.stringify(b.attrs),
    mac: b.mac ?? null,
  };
}

export function uploadChunkFromRow(r: UploadChunkRow): UploadChunkRecord {
  return {
    blobId: r.blob_id,
    index: r.idx,
    plaintextLength: r.plaintext_length,
    final: r.final === 1,
    storedSize: r.stored_size,
    sha256: r.sha256,
    createdAt: new Date(r.created_at),
  };
}

export function uploadChunkToRow(c: UploadChunkRecord): UploadChunkRow {
  return {
    blob_id: c.blobId,
    idx: c.index,
    plaintext_length: c.plaintextLength,
    final: c.final ? 1 : 0,
    stored_size: c.storedSize,
    sha256: c.sha256,
    created_at: c.createdAt.getTime(),
  };
}

export function userFromRow(r: UserRow): User {
  return { name: r.name, createdAt: new Date(r.created_at), disabled: r.disabled === 1, ...macField(r.mac) };
}

export function grantFromRow(r: GrantRow): Grant {
  return { nodeId: r.node_id, user: r.user, role: r.role as Role, createdAt: new Date(r.created_at), ...macField(r.mac) };
}

export function auditFromRow(r: AuditRow): AuditEntry {
  return {
    seq: r.seq,
    at: new Date(r.at),
    actor: r.actor,
    action: r.action,
    target: r.target,
    details: JSON.parse(r.details) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export function auditToRow(a: AuditEntry): AuditRow {
  return {
    seq: a.seq,
    at: a.at.getTime(),
    actor: a.actor,
    action: a.action,
    target: a.target,
    details: JSON.stringify(a.details),
    prev_hash: a.prevHash,
    hash: a.hash,
  };
}
