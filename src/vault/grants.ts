// Grants API: put, delete and list the grants set directly on a node. Needs admin on the node.
import { CofferError, ErrorCode } from '../errors.js';
import { checkMac, macField } from '../metadata/common.js';
import type { Role, TreeNode } from '../metadata/types.js';
import { isRole, requireRole } from './access.js';
import type { Actor, GrantView, VaultContext } from './context.js';
import { isWellFormed } from '../unicode.js';
import { formatPath, parsePath } from './paths.js';
import { resolveExisting } from './resolve.js';
import { audit } from './tree.js';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A user name as it appears in a token's `sub`. Throws INVALID_ARGUMENT. */
export function checkUserName(user: unknown): asserts user is string {
  if (typeof user !== 'string' || user.length === 0 || user.length > 128 || CONTROL.test(user) || !isWellFormed(user) || user.startsWith(':')) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'user must be 1..128 characters of well-formed Unicode, no control characters, not starting with ":"');
  }
}

async function adminNode(ctx: VaultContext, actor: Actor, path: string, what: string): Promise<{ node: TreeNode; path: string }> {
  const segments = parsePath(path);
  const chain = await resolveExisting(ctx.store, segments);
  await requireRole(ctx, actor, chain, 'admin', what);
  return { node: chain[chain.length - 1] as TreeNode, path: formatPath(segments) };
}

/**
 * Upserts a grant, with the enclave's MAC of it if given (stored verbatim, never checked here: the service has no
 * key). Throws INVALID_ARGUMENT, NOT_FOUND, INVALID_PATH, PERMISSION_DENIED.
 */
export async function putGrant(ctx: VaultContext, actor: Actor, path: string, user: unknown, role: unknown, mac?: unknown): Promise<GrantView> {
  checkUserName(user);
  if (!isRole(role)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'role must be read, write or admin');
  checkMac(mac);
  const target = await adminNode(ctx, actor, path, `grant on ${path}`);
  const createdAt = ctx.now();
  await ctx.store.putGrant({ nodeId: target.node.id, user, role: role as Role, createdAt, ...macField(mac as string | undefined) });
  await audit(ctx, actor, 'grant.put', target.path, { user, role, nodeId: target.node.id, ...(mac === undefined ? {} : { mac: true }) });
  return { user, role, createdAt: createdAt.toISOString(), ...macField(mac as string | undefined) };
}

/** Deletes a grant (idempotent). Throws INVALID_ARGUMENT, NOT_FOUND, INVALID_PATH, PERMISSION_DENIED. */
export async function deleteGrant(ctx: VaultContext, actor: Actor, path: string, user: unknown): Promise<void> {
  checkUserName(user);
  const target = await adminNode(ctx, actor, path, `revoke on ${path}`);
  await ctx.store.deleteGrant(target.node.id, user);
  await audit(ctx, actor, 'grant.delete', target.path, { user, nodeId: target.node.id });
}

/**
 * Grants set directly on the node; with `inherited`, also those on its ancestors, each marked with the path it
 * is set on (they apply here too: grants inherit down the tree). Throws NOT_FOUND, INVALID_PATH,
 * PERMISSION_DENIED.
 */
export async function listGrants(ctx: VaultContext, actor: Actor, path: string, options: { inherited?: boolean } = {}): Promise<GrantView[]> {
  const segments = parsePath(path);
  const chain = await resolveExisting(ctx.store, segments);
  await requireRole(ctx, actor, chain, 'admin', `list grants on ${path}`);
  const target = chain[chain.length - 1] as TreeNode;
  const nodes = options.inherited ? chain : [target];
  const pathOf = new Map(nodes.map((n) => [n.id, formatPath(segments.slice(0, chain.indexOf(n)))]));
  const grants = await ctx.store.listGrants(nodes.map((n) => n.id));
  const depth = (nodeId: string): number => chain.findIndex((n) => n.id === nodeId);
  return grants
    .filter((g) => pathOf.has(g.nodeId))
    .sort((a, b) => depth(a.nodeId) - depth(b.nodeId) || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
    .map((g) => {
      const view: GrantView = { user: g.user, role: g.role, createdAt: g.createdAt.toISOString(), ...macField(g.mac) };
      if (options.inherited) {
        view.path = pathOf.get(g.nodeId) as string;
        view.inherited = g.nodeId !== target.id;
      }
      return view;
    });
}
