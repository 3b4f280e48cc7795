// The gateway's own access decision (issue 9 point 5; docs/metadata.md "Access in the gateway"): with record MACs
// on, every operation asks the storage service for its evidence — the node chain from the root to the path and
// the caller's own grants on it (GET /v1/integrity/access) — checks every record's MAC, and decides from what
// verified, with the rules of src/vault/access.ts: token admin → admin; owner of the node or an ancestor → admin;
// else the highest of the caller's grants on the chain and the enclave's own default root role. The service's
// "yes" is necessary (it answers only callers it admits) but never sufficient: a grant or owner it made up, or
// a node of the chain that does not verify, is refused (INTEGRITY) and audited.
import type { VaultClient } from '../../src/client/vault-client.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import type { NodeInfo, RecordIntegrity } from './records.js';

export type Role = 'read' | 'write' | 'admin';
export type RootRole = 'none' | Role;
const RANK: Readonly<Record<RootRole, number>> = Object.freeze({ none: 0, read: 1, write: 2, admin: 3 });

export interface AccessActor {
  user: string;
  /** A token admin (the token was verified inside the enclave). */
  admin: boolean;
  /** The enclave's configured default role on '/' for every user (never the storage service's word). */
  defaultRootRole: RootRole;
}

/** The paths from '/' down to `path` ('/', '/a', '/a/b'). */
export function chainPaths(path: string): string[] {
  const segments = path.split('/').filter((s) => s !== '');
  return ['/', ...segments.map((_, i) => `/${segments.slice(0, i + 1).join('/')}`)];
}

/**
 * Throws PERMISSION_DENIED unless `actor` has at least `needed` on `path` by the verified records; INTEGRITY (and
 * an audited refusal) when a record of the evidence does not verify; the service's errors (NOT_FOUND, …).
 */
export async function requireVerifiedRole(
  client: VaultClient, integrity: RecordIntegrity, actor: AccessActor, path: string, needed: Role, verifiedLeaf?: NodeInfo,
): Promise<void> {
  if (actor.admin) return;
  const evidence = await client.accessEvidence(path);
  const paths = chainPaths(path);
  if (evidence.chain.length !== paths.length) {
    throw new CofferError(ErrorCode.INTEGRITY, `the storage service answered a chain of ${evidence.chain.length} nodes for ${path}`);
  }
  let role: RootRole = actor.defaultRootRole;
  for (const [i, listed] of evidence.chain.entries()) {
    let node = listed;
    // the node at `path` itself, already verified by the caller (a file endorsed just now): that record is used
    if (verifiedLeaf && i === paths.length - 1 && node.id === verifiedLeaf.id) node = verifiedLeaf;
    else await integrity.checkNode(node, paths[i] as string);
    if (node.owner !== '' && node.owner === actor.user) role = 'admin';
  }
  for (const g of evidence.grants) {
    if (g.user !== actor.user || !paths.includes(g.path)) throw new CofferError(ErrorCode.INTEGRITY, `the storage service answered a grant of ${g.user} on ${g.path} for ${path}`);
    await integrity.checkGrants(g.path, [{ user: g.user, role: g.role, createdAt: '', ...(g.mac === undefined ? {} : { mac: g.mac }) }]);
    if (g.role in RANK && RANK[g.role as Role] > RANK[role]) role = g.role as Role;
  }
  if (RANK[role] < RANK[needed]) throw new CofferError(ErrorCode.PERMISSION_DENIED, `${path}: needs ${needed} permission`);
}
