// The record kinds the enclave MACs and the fields each MAC binds (docs/format.md "Metadata MAC v1"). A MAC binds
// the record's identity AND what it says, so a valid MAC cannot be moved to another record or kept across an edit:
// a node binds its id, parent, name, type, blob, size and owner (a path's binding to its blob is the chain of
// node MACs from the root); a blob binds its id, state, owner, key generation, size, chunk count, every chunk's
// SHA-256 and its data key itself (so a swapped or replaced wrapped key is caught once it is opened); a grant
// binds node, user and role; a user binds name and status.
//
// Nodes bind their full path, not their parent's id: the gateway sees a node together with the path it asked for,
// so each node verifies on its own, and the id is bound too, so two nodes cannot swap identities (a directory's
// grants and children follow its id). The price: moving a directory means new MACs for everything under it.
import type { Field } from './encoding.js';

export const KIND = Object.freeze({ node: 1, blob: 2, grant: 3, user: 4, dataKey: 5 } as const);
export type RecordKind = keyof typeof KIND;

export interface NodeFacts {
  id: string;
  /** The node's absolute path ('/' for the root). */
  path: string;
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
}

export interface GrantFacts {
  /** The path of the node the grant is set on. */
  path: string;
  user: string;
  role: string;
}

export interface UserFacts {
  name: string;
  disabled: boolean;
}

export function nodeFields(n: NodeFacts): Field[] {
  return [n.id, n.path, n.type, n.blobId, n.size, n.owner];
}

/** `commitment` is the data key's commitment (dataKeyFields under the same key), bound so a swapped key is caught. */
export function blobFields(b: BlobFacts, commitment: Uint8Array): Field[] {
  return [b.id, b.state, b.owner, b.keyGeneration, b.size, b.chunkCount, [...b.chunkSha256], commitment];
}

export function dataKeyFields(blobId: string, dek: Uint8Array): Field[] {
  return [blobId, dek];
}

export function grantFields(g: GrantFacts): Field[] {
  return [g.path, g.user, g.role];
}

export function userFields(u: UserFacts): Field[] {
  return [u.name, u.disabled ? 1 : 0];
}
