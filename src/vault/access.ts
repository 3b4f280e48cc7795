// Permissions: roles read < write < admin, inherited down the tree (docs/vault.md "Permissions").
// Effective role on a node = max of: grants on the node or an ancestor; 'admin' if the user owns the node or an
// ancestor; 'admin' for token admins; the server's defaultRootRole (a grant on '/' for every user).
// Fails closed: no grant, no ownership and defaultRootRole 'none' means no access at all.
import { CofferError, ErrorCode } from '../errors.js';
import type { Role, TreeNode } from '../metadata/types.js';
import type { Actor, VaultContext } from './context.js';

export type EffectiveRole = 'none' | Role;

const RANK: Readonly<Record<EffectiveRole, number>> = Object.freeze({ none: 0, read: 1, write: 2, admin: 3 });

export function isRole(v: unknown): v is Role {
  return v === 'read' || v === 'write' || v === 'admin';
}

function max(a: EffectiveRole, b: EffectiveRole): EffectiveRole {
  return RANK[a] >= RANK[b] ? a : b;
}

/** The caller's role on the last node of `chain` (root first): effectiveRoles for one chain. */
export async function effectiveRole(ctx: VaultContext, actor: Actor, chain: readonly TreeNode[]): Promise<EffectiveRole> {
  return (await effectiveRoles(ctx, actor, [chain]))[0] as EffectiveRole;
}

/**
 * The caller's role on the last node of each chain (a batch read's files; effectiveRole for one), the rule above
 * applied to each, with one listGrants over the nodes of the chains that need grants instead of one per chain.
 */
export async function effectiveRoles(ctx: VaultContext, actor: Actor, chains: ReadonlyArray<readonly TreeNode[]>): Promise<EffectiveRole[]> {
  if (actor.admin) return chains.map(() => 'admin');
  const owned = chains.map((chain) => chain.some((node) => node.owner !== '' && node.owner === actor.user));
  const ids = new Set<string>();
  chains.forEach((chain, i) => {
    if (!owned[i]) for (const node of chain) ids.add(node.id);
  });
  const grants = ids.size === 0 ? [] : (await ctx.store.listGrants([...ids])).filter((g) => g.user === actor.user && isRole(g.role));
  return chains.map((chain, i) => {
    if (owned[i]) return 'admin';
    let role: EffectiveRole = ctx.defaultRootRole;
    const inChain = new Set(chain.map((node) => node.id));
    for (const g of grants) {
      if (inChain.has(g.nodeId)) role = max(role, g.role);
    }
    return role;
  });
}

/** Throws PERMISSION_DENIED unless the caller has at least `needed` on the last node of `chain`. */
export async function requireRole(ctx: VaultContext, actor: Actor, chain: readonly TreeNode[], needed: Role, what: string): Promise<void> {
  checkRole(await effectiveRole(ctx, actor, chain), needed, what);
}

/** Throws PERMISSION_DENIED (requireRole's error) unless `role` is at least `needed`. */
export function checkRole(role: EffectiveRole, needed: Role, what: string): void {
  if (RANK[role] < RANK[needed]) {
    throw new CofferError(ErrorCode.PERMISSION_DENIED, `${what}: needs ${needed} permission`);
  }
}
