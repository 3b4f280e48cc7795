// The record kinds the enclave MACs and the fields each MAC binds (docs/format.md "Metadata MAC v1"). A MAC binds
// the record's identity AND what it says, so a valid MAC cannot be moved to another record or kept across an edit:
// a node binds its id, parent, name, type, blob, size and owner (a path's binding to its blob is the chain of
// node MACs from the root); a blob binds its id, state, owner, key generation, size, chunk count, every chunk's
// SHA-256 and its data key itself (so a swapped or replaced wrapped key is caught once it is opened); a grant
// binds node, user and role; a user binds name and status.
import type { Field } from './encoding.js';

export const KIND = Object.freeze({ node: 1, blob: 2, grant: 3, user: 4 } as const);
export type RecordKind = keyof typeof KIND;

export interface NodeFacts {
  id: string;
  parentId: string | null;
  name: string;
  type: 'dir' | 'file';
  blobId: string | null;
  size: number;
  owner: string;
}

export interface BlobFacts {
  id: string;
  state: string;
  owner: string;
  keyGeneration: number;
  size: number;
  chunkCount: number;
  chunkSha256: readonly string[];
  /** The blob's 32-byte data key, as opened inside the enclave. Never leaves it; bound, not stored. */
  dek: Uint8Array;
}

export interface GrantFacts {
  nodeId: string;
  user: string;
  role: string;
}

export interface UserFacts {
  name: string;
  disabled: boolean;
}

export function nodeFields(n: NodeFacts): Field[] {
  return [n.id, n.parentId, n.name, n.type, n.blobId, n.size, n.owner];
}

export function blobFields(b: BlobFacts): Field[] {
  return [b.id, b.state, b.owner, b.keyGeneration, b.size, b.chunkCount, [...b.chunkSha256], b.dek];
}

export function grantFields(g: GrantFacts): Field[] {
  return [g.nodeId, g.user, g.role];
}

export function userFields(u: UserFacts): Field[] {
  return [u.name, u.disabled ? 1 : 0];
}
