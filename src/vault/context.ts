// Shared types of the vault: who is acting, the dependencies every operation uses, and the JSON views the
// vault hands to the HTTP layer (docs/http-api.md "Node object", "Manifest object").
import type { ChunkStore } from '../../storage-backend/types.js';
import type { BlobRecord, MetadataStore, Role, TreeNode } from '../metadata/types.js';
import { CHUNK_SIZE, HEADER_SIZE, TAG_SIZE } from '../crypto/index.js';
import { macField } from '../metadata/common.js';

/** The authenticated caller. `admin` is the token's admin claim (admin everywhere). */
export interface Actor {
  user: string;
  admin: boolean;
}

/** Actor name used for changes the service makes on its own (GC). Not a valid token subject. */
export const SYSTEM_ACTOR: Actor = Object.freeze({ user: ':system', admin: true });

export type RootRole = 'none' | 'read' | 'write';

export interface VaultOptions {
  /** Role every authenticated user has on '/' (dev default 'write', serve default 'none'). */
  defaultRootRole?: RootRole;
  /** Uploads still 'uploading' after this long are garbage (default 24 h). Also the orphan grace. */
  uploadGraceMs?: number;
  /** Injectable clock (tests). */
  now?: () => Date;
  /** Give every user a home directory /home/NAME, owned by them, on first sight (development mode). */
  homes?: boolean;
}

export interface VaultContext {
  store: MetadataStore;
  chunks: ChunkStore;
  defaultRootRole: RootRole;
  uploadGraceMs: number;
  now: () => Date;
}

export interface NodeView {
  id: string;
  path: string;
  name: string;
  type: 'dir' | 'file';
  size: number;
  blobId: string | null;
  owner: string;
  createdAt: string;
  modifiedAt: string;
  version: number;
  /** The enclave's MAC of the node (docs/metadata.md "Record MACs"), verbatim; absent when none. */
  mac?: string;
}

export interface ChunkView {
  index: number;
  plaintextLength: number;
  storedSize: number;
  sha256: string;
}

export interface ManifestView {
  blobId: string;
  state: BlobRecord['state'];
  owner: string;
  keyGeneration: number;
  keyRecord: BlobRecord['keyRecord'];
  size: number;
  chunkCount: number;
  chunkSize: number;
  chunks: ChunkView[];
  /** The enclave's MAC of the blob, verbatim; absent when none. */
  mac?: string;
  /** The uploader's binding tag given at create (a client that sealed it), verbatim; absent when none. */
  binding?: string;
}

export interface GrantView {
  user: string;
  role: Role;
  createdAt: string;
  /** The enclave's MAC of the grant, verbatim; absent when none. */
  mac?: string;
  /** With `inherited` listings: the path the grant is set on, and whether that is an ancestor. */
  path?: string;
  inherited?: boolean;
}

export function nodeView(node: TreeNode, path: string): NodeView {
  return {
    id: node.id,
    path,
    name: node.name,
    type: node.type,
    size: node.size,
    blobId: node.blobId,
    owner: node.owner,
    createdAt: node.createdAt.toISOString(),
    modifiedAt: node.modifiedAt.toISOString(),
    version: node.version,
    ...macField(node.mac),
  };
}

/** Manifest of a committed blob (size, chunkCount and chunkSha256 are set at commit). */
export function manifestView(blob: BlobRecord): ManifestView {
  const size = blob.size ?? 0;
  const count = blob.chunkCount ?? 0;
  const hashes = blob.chunkSha256 ?? [];
  const chunks: ChunkView[] = [];
  for (let i = 0; i < count; i++) {
    const plaintextLength = i === count - 1 ? size - (count - 1) * CHUNK_SIZE : CHUNK_SIZE;
    chunks.push({ index: i, plaintextLength, storedSize: plaintextLength + HEADER_SIZE + TAG_SIZE, sha256: hashes[i] ?? '' });
  }
  return {
    blobId: blob.id,
    state: blob.state,
    owner: blob.owner,
    keyGeneration: blob.keyGeneration,
    keyRecord: blob.keyRecord,
    size,
    chunkCount: count,
    chunkSize: CHUNK_SIZE,
    chunks,
    ...macField(blob.mac),
    ...(typeof blob.attrs.binding === 'string' ? { binding: blob.attrs.binding } : {}),
  };
}
