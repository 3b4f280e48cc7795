// Document shapes of the MongoDB collections and their conversion to and from MetadataStore records.
// Dates are BSON dates. The opaque JSON fields (keyRecord, attrs, audit details) are stored as JSON *strings*:
// they come from callers, and as strings their keys can never act as update operators ('$...') or dotted
// paths, and they round-trip byte for byte on every MongoDB-wire server (docs/metadata.md).
import { macField } from '../common.js';
import type { AuditEntry, BlobRecord, BlobState, Grant, NodeType, Role, TreeNode, UploadChunkRecord, User } from '../types.js';

export interface NodeDoc {
  _id: string;
  parentId: string | null;
  name: string;
  type: string;
  blobId: string | null;
  size: number;
  owner: string;
  createdAt: Date;
  modifiedAt: Date;
  version: number;
  mac?: string | null;
}

export interface BlobDoc {
  _id: string;
  state: string;
  owner: string;
  keyGeneration: number;
  keyRecord: string;
  size: number | null;
  chunkCount: number | null;
  chunkSha256: string[] | null;
  createdAt: Date;
  updatedAt: Date;
  attrs: string;
  mac?: string | null;
}

export interface UploadChunkDoc {
  blobId: string;
  index: number;
  plaintextLength: number;
  final: boolean;
  storedSize: number;
  sha256: string;
  createdAt: Date;
}

export interface UserDoc {
  _id: string;
  createdAt: Date;
  disabled: boolean;
  mac?: string | null;
}

export interface GrantDoc {
  nodeId: string;
  user: string;
  role: string;
  createdAt: Date;
  mac?: string | null;
}

export interface AuditDoc {
  _id: number;
  at: Date;
  actor: string;
  action: string;
  target: string;
  details: string;
  prevHash: string;
  hash: string;
}

export interface MetaDoc {
  _id: string;
  version: number;
}

export function nodeToDoc(n: TreeNode): NodeDoc {
  return {
    _id: n.id, parentId: n.parentId, name: n.name, type: n.type, blobId: n.blobId, size: n.size, owner: n.owner,
    createdAt: n.createdAt, modifiedAt: n.modifiedAt, version: n.version, mac: n.mac ?? null,
  };
}

export function nodeFromDoc(d: NodeDoc): TreeNode {
  return {
    id: d._id, parentId: d.parentId, name: d.name, type: d.type as NodeType, blobId: d.blobId, size: d.size,
    owner: d.owner, createdAt: d.createdAt, modifiedAt: d.modifiedAt, version: d.version, ...macField(d.mac),
  };
}

export function blobToDoc(b: BlobRecord): BlobDoc {
  return {
    _id: b.id, state: b.state, owner: b.owner, keyGeneration: b.keyGeneration, keyRecord: JSON.stringify(b.keyRecord),
    size: b.size, chunkCount: b.chunkCount, chunkSha256: b.chunkSha256, createdAt: b.createdAt, updatedAt: b.updatedAt,
    attrs: JSON.stringify(b.attrs), mac: b.mac ?? null,
  };
}

export function blobFromDoc(d: BlobDoc): BlobRecord {
  return {
    id: d._id, state: d.state as BlobState, owner: d.owner, keyGeneration: d.keyGeneration,
    keyRecord: JSON.parse(d.keyRecord) as BlobRecord['keyRecord'], size: d.size, chunkCount: d.chunkCount,
    chunkSha256: d.chunkSha256, createdAt: d.createdAt, updatedAt: d.updatedAt,
    attrs: JSON.parse(d.attrs) as Record<string, unknown>, ...macField(d.mac),
  };
}

export function uploadChunkToDoc(c: UploadChunkRecord): UploadChunkDoc {
  return {
    blobId: c.blobId, index: c.index, plaintextLength: c.plaintextLength, final: c.final, storedSize: c.storedSize,
    sha256: c.sha256, createdAt: c.createdAt,
  };
}

export function uploadChunkFromDoc(d: UploadChunkDoc): UploadChunkRecord {
  return {
    blobId: d.blobId, index: d.index, plaintextLength: d.plaintextLength, final: d.final, storedSize: d.storedSize,
    sha256: d.sha256, createdAt: d.createdAt,
  };
}

export function userFromDoc(d: UserDoc): User {
  return { name: d._id, createdAt: d.createdAt, disabled: d.disabled, ...macField(d.mac) };
}

export function grantFromDoc(d: GrantDoc): Grant {
  return { nodeId: d.nodeId, user: d.user, role: d.role as Role, createdAt: d.createdAt, ...macField(d.mac) };
}

export function auditToDoc(a: AuditEntry): AuditDoc {
  return {
    _id: a.seq, at: a.at, actor: a.actor, action: a.action, target: a.target, details: JSON.stringify(a.details),
    prevHash: a.prevHash, hash: a.hash,
  };
}

export function auditFromDoc(d: AuditDoc): AuditEntry {
  return {
    seq: d._id, at: d.at, actor: d.actor, action: d.action, target: d.target,
    details: JSON.parse(d.details) as Record<string, unknown>, prevHash: d.prevHash, hash: d.hash,
  };
}
