// Record MACs as the storage service sees them (docs/metadata.md "Record MACs"): opaque strings the enclave
// attaches to a node, a committed blob or a user after it has checked the record, stored verbatim and returned on
// every read. The service never checks them (it has no key) and never makes one; attaching a wrong MAC only makes
// the enclave refuse that record, so the permissions below only keep callers from spoiling others' records.
import { CofferError, ErrorCode } from '../errors.js';
import { checkMac } from '../metadata/common.js';
import type { TreeNode } from '../metadata/types.js';
import { requireRole } from './access.js';
import { nodeView, type Actor, type NodeView, type VaultContext } from './context.js';
import { checkUserName } from './grants.js';
import { formatPath, parsePath } from './paths.js';
import { resolveExisting } from './resolve.js';
import { audit } from './tree.js';

function requireMac(mac: unknown): string | null {
  if (mac === null) return null;
  if (mac === undefined) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'mac is required (null removes it)');
  checkMac(mac);
  return mac as string;
}

/**
 * Sets the MAC of the node at `path` if it is still at `version` (CONFLICT otherwise). Needs write on the node.
 * Throws INVALID_ARGUMENT, INVALID_PATH, NOT_FOUND, CONFLICT, PERMISSION_DENIED.
 */
export async function setNodeMac(ctx: VaultContext, actor: Actor, path: string, version: unknown, mac: unknown): Promise<NodeView> {
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'version must be a positive integer');
  const value = requireMac(mac);
  const segments = parsePath(path);
  const chain = await resolveExisting(ctx.store, segments);
  const node = chain[chain.length - 1] as TreeNode;
  await requireRole(ctx, actor, chain, 'write', `set the MAC of ${path}`);
  const updated = await ctx.store.updateNode(node.id, version, { mac: value });
  await audit(ctx, actor, 'integrity.node', formatPath(segments), { id: node.id, version: updated.version });
  return nodeView(updated, formatPath(segments));
}

/**
 * Sets the MAC of a committed blob. Needs the blob's owner or a token admin.
 * Throws INVALID_ARGUMENT, NOT_FOUND, UPLOAD_STATE (not committed), PERMISSION_DENIED.
 */
export async function setBlobMac(ctx: VaultContext, actor: Actor, blobId: string, mac: unknown): Promise<{ blobId: string }> {
  const value = requireMac(mac);
  const blob = await ctx.store.getBlob(blobId);
  if (!blob || blob.state === 'deleting') throw new CofferError(ErrorCode.NOT_FOUND, `blob ${blobId} not found`);
  if (!actor.admin && blob.owner !== actor.user) throw new CofferError(ErrorCode.PERMISSION_DENIED, `set the MAC of blob ${blobId}: only its owner or a token admin may`);
  await ctx.store.updateBlob(blobId, 'committed', { mac: value }, { strict: false });
  await audit(ctx, actor, 'integrity.blob', blobId);
  return { blobId };
}

/** Sets a user's status and MAC. Token admins only. Throws INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED. */
export async function setUserStatus(ctx: VaultContext, actor: Actor, user: unknown, disabled: unknown, mac: unknown): Promise<{ user: string; disabled: boolean; mac?: string }> {
  checkUserName(user);
  if (!actor.admin) throw new CofferError(ErrorCode.PERMISSION_DENIED, 'user status is for token admins');
  if (disabled !== undefined && typeof disabled !== 'boolean') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'disabled must be a boolean');
  const value = requireMac(mac);
  const updated = await ctx.store.updateUser(user, { disabled: disabled as boolean | undefined, mac: value });
  await audit(ctx, actor, 'integrity.user', user, { disabled: updated.disabled });
  return { user: updated.name, disabled: updated.disabled, ...(updated.mac ? { mac: updated.mac } : {}) };
}

/** A user's status as the enclave checks it. Any authenticated caller may read their own; token admins anyone's. */
export async function userStatus(ctx: VaultContext, actor: Actor, user: unknown): Promise<{ user: string; disabled: boolean; mac?: string }> {
  checkUserName(user);
  if (!actor.admin && actor.user !== user) throw new CofferError(ErrorCode.PERMISSION_DENIED, 'only your own status, unless a token admin');
  const u = await ctx.store.getUser(user);
  if (!u) throw new CofferError(ErrorCode.NOT_FOUND, `user ${user} not found`);
  return { user: u.name, disabled: u.disabled, ...(u.mac ? { mac: u.mac } : {}) };
}

/** What the enclave decides a caller's access from (docs/metadata.md "Access in the gateway"). */
export interface AccessEvidence {
  /** The nodes from the root down to `path`, each with its MAC. */
  chain: NodeView[];
  /** The caller's own grants on those nodes, each with the path of its node and its MAC. */
  grants: Array<{ path: string; user: string; role: string; mac?: string }>;
}

/**
 * The records the enclave checks (MACs) and decides the caller's access to `path` from: the node chain and the
 * caller's grants on it. The service shows them only to a caller it lets read `path` (its own decision comes
 * first; the enclave's is made again from what verifies). Throws NOT_FOUND, INVALID_PATH, PERMISSION_DENIED.
 */
export async function accessEvidence(ctx: VaultContext, actor: Actor, path: string): Promise<AccessEvidence> {
  const segments = parsePath(path);
  const chain = await resolveExisting(ctx.store, segments);
  await requireRole(ctx, actor, chain, 'read', `access evidence for ${path}`);
  const pathOf = new Map(chain.map((n, i) => [n.id, formatPath(segments.slice(0, i))]));
  const grants = await ctx.store.listGrants(chain.map((n) => n.id));
  return {
    chain: chain.map((n, i) => nodeView(n, formatPath(segments.slice(0, i)))),
    grants: grants
      .filter((g) => g.user === actor.user && pathOf.has(g.nodeId))
      .map((g) => ({ path: pathOf.get(g.nodeId) as string, user: g.user, role: g.role, ...(g.mac ? { mac: g.mac } : {}) })),
  };
}

/**
 * Appends an `integrity.refused` entry to the audit chain: the enclave refused a record (docs/metadata.md "Record
 * MACs"). Any authenticated caller (the enclave reports under the token of the request that met the record).
 * Throws INVALID_ARGUMENT for fields that are not strings of 1–1024 characters (reason: 0–1024).
 */
export async function reportRefusal(ctx: VaultContext, actor: Actor, kind: unknown, target: unknown, reason: unknown): Promise<{ recorded: true }> {
  for (const [name, v, min] of [['kind', kind, 1], ['target', target, 0], ['reason', reason, 0]] as const) {
    if (typeof v !== 'string' || v.length < min || v.length > 1024) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${name} must be a string of at most 1024 characters`);
  }
  await audit(ctx, actor, 'integrity.refused', target as string, { kind, reason });
  return { recorded: true };
}
