// Tree operations: stat, list, mkdir, move, remove. Each step is one single-document write with
// compare-and-set on the node's version; a recursive remove is a resumable sequence of such steps.
import { randomUUID } from 'node:crypto';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import type { TreeNode } from '../metadata/types.js';
import { requireRole } from './access.js';
import { appendAudit } from './audit.js';
import { nodeView, type Actor, type NodeView, type VaultContext } from './context.js';
import { childPath, formatPath, parsePath } from './paths.js';
import { resolveExisting, resolvePath } from './resolve.js';

export const MAX_LIST_LIMIT = 1000;

export async function audit(ctx: VaultContext, actor: Actor, action: string, target: string, details: Record<string, unknown> = {}): Promise<void> {
  await appendAudit(ctx.store, { actor: actor.user, action, target, details }, ctx.now);
}

/** Marks a committed blob no file points to any more as 'deleting' (GC removes it). Idempotent. */
export async function releaseBlob(ctx: VaultContext, actor: Actor, blobId: string | null): Promise<void> {
  if (!blobId) return;
  try {
    await ctx.store.updateBlob(blobId, 'committed', { state: 'deleting' }, { strict: true }); // audited once
    await audit(ctx, actor, 'blob.release', blobId);
  } catch (e) {
    if (!isCofferError(e, ErrorCode.UPLOAD_STATE) && !isCofferError(e, ErrorCode.NOT_FOUND)) throw e;
  }
}

/**
 * Touches a committed blob (its updatedAt) before a write that leaves it unreferenced for a moment and may put
 * it back: the target of `move --overwrite` (deleted, restored if the move fails), the blob a commit repoints a
 * file away from (repointed back if the new blob turns out released). GC's orphan sweep takes only blobs that
 * are unreferenced *and* untouched for the grace period, read afresh after it found no node, so it never takes
 * one in that moment. A blob no longer committed needs no hold.
 */
export async function holdBlob(ctx: VaultContext, blobId: string | null): Promise<void> {
  if (!blobId) return;
  try {
    await ctx.store.updateBlob(blobId, 'committed', {});
  } catch (e) {
    if (!isCofferError(e, ErrorCode.UPLOAD_STATE) && !isCofferError(e, ErrorCode.NOT_FOUND)) throw e;
  }
}

/** Throws NOT_FOUND, NOT_A_DIRECTORY, INVALID_PATH, PERMISSION_DENIED. */
export async function stat(ctx: VaultContext, actor: Actor, path: string): Promise<NodeView> {
  const segments = parsePath(path);
  const chain = await resolveExisting(ctx.store, segments);
  await requireRole(ctx, actor, chain, 'read', `stat ${path}`);
  return nodeView(chain[chain.length - 1] as TreeNode, formatPath(segments));
}

/** One page of a directory's children by name. Throws NOT_FOUND, NOT_A_DIRECTORY, INVALID_ARGUMENT, PERMISSION_DENIED. */
export async function list(
  ctx: VaultContext, actor: Actor, path: string, options: { after?: string; limit?: number } = {},
): Promise<{ items: NodeView[]; next: string | null }> {
  const segments = parsePath(path);
  const limit = options.limit ?? MAX_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `limit must be 1..${MAX_LIST_LIMIT}`);
  }
  const chain = await resolveExisting(ctx.store, segments);
  const dir = chain[chain.length - 1] as TreeNode;
  await requireRole(ctx, actor, chain, 'read', `list ${path}`);
  if (dir.type !== 'dir') throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `${path} is not a directory`);
  const dirPath = formatPath(segments);
  const page = await ctx.store.listChildren(dir.id, { after: options.after, limit });
  return { items: page.items.map((n) => nodeView(n, childPath(dirPath, n.name))), next: page.next };
}

export function newNode(actor: Actor, parentId: string, name: string, now: Date, file?: { blobId: string; size: number }): TreeNode {
  return {
    id: randomUUID(), parentId, name, type: file ? 'file' : 'dir', blobId: file?.blobId ?? null,
    size: file?.size ?? 0, owner: actor.user, createdAt: now, modifiedAt: now, version: 1,
  };
}

/**
 * Creates a directory (and, with `parents`, missing ancestors; an existing directory is then success).
 * Throws ALREADY_EXISTS, NOT_FOUND (parent missing), NOT_A_DIRECTORY, INVALID_PATH, PERMISSION_DENIED.
 */
export async function mkdir(
  ctx: VaultContext, actor: Actor, path: string, options: { parents?: boolean } = {},
): Promise<{ node: NodeView; created: boolean }> {
  const segments = parsePath(path);
  const { chain, found } = await resolvePath(ctx.store, segments);
  const last = chain[chain.length - 1] as TreeNode;
  if (found) {
    if (options.parents && last.type === 'dir') {
      await requireRole(ctx, actor, chain, 'read', `mkdir ${path}`);
      return { node: nodeView(last, formatPath(segments)), created: false };
    }
    throw new CofferError(last.type === 'dir' ? ErrorCode.ALREADY_EXISTS : ErrorCode.NOT_A_DIRECTORY, `${path} already exists`);
  }
  if (last.type !== 'dir') throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `${formatPath(segments.slice(0, chain.length - 1))} is not a directory`);
  if (!options.parents && chain.length !== segments.length) {
    throw new CofferError(ErrorCode.NOT_FOUND, `parent of ${path} does not exist`);
  }
  await requireRole(ctx, actor, chain, 'write', `mkdir ${path}`);
  let parent = last;
  for (let i = chain.length - 1; i < segments.length; i++) {
    const name = segments[i] as string;
    const node = newNode(actor, parent.id, name, ctx.now());
    try {
      await ctx.store.insertNode(node);
      await audit(ctx, actor, 'dir.create', formatPath(segments.slice(0, i + 1)), { id: node.id });
      parent = node;
    } catch (e) {
      if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e;
      const raced = await ctx.store.getChild(parent.id, name);
      const isLast = i === segments.length - 1;
      if (!raced || raced.type !== 'dir' || (isLast && !options.parents)) throw e;
      parent = raced;
    }
  }
  return { node: nodeView(parent, formatPath(segments)), created: true };
}

/**
 * Moves or renames a file or directory. Refuses moving the root, a directory into itself or a descendant
 * (INVALID_ARGUMENT), replacing a directory (IS_A_DIRECTORY), replacing a file with a directory
 * (NOT_A_DIRECTORY) and replacing a file without `overwrite` (ALREADY_EXISTS). Also NOT_FOUND, CONFLICT,
 * INVALID_PATH, PERMISSION_DENIED.
 */
export async function move(
  ctx: VaultContext, actor: Actor, from: string, to: string, options: { overwrite?: boolean } = {},
): Promise<NodeView> {
  const src = parsePath(from);
  const dst = parsePath(to);
  if (src.length === 0 || dst.length === 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'cannot move the root');
  const srcChain = await resolveExisting(ctx.store, src);
  const node = srcChain[srcChain.length - 1] as TreeNode;
  await requireRole(ctx, actor, srcChain.slice(0, -1), 'write', `move ${from}`);
  const dstParentChain = await resolveExisting(ctx.store, dst.slice(0, -1));
  const dstParent = dstParentChain[dstParentChain.length - 1] as TreeNode;
  if (dstParent.type !== 'dir') throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `parent of ${to} is not a directory`);
  await requireRole(ctx, actor, dstParentChain, 'write', `move to ${to}`);
  if (dstParentChain.some((n) => n.id === node.id)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `cannot move ${from} into itself or a descendant`);
  }
  // Into another directory, the node stops inheriting from its old ancestors and starts inheriting from the new
  // ones (owners of an ancestor are admins): a permission change, so it needs admin on the node itself. Without
  // this, `write` on a shared directory let anyone move a colleague's subtree under a directory of their own
  // and become its admin. A rename in place changes no one's access and needs `write` only.
  if (dstParent.id !== node.parentId) await requireRole(ctx, actor, srcChain, 'admin', `move ${from} into another directory`);
  const name = dst[dst.length - 1] as string;
  const existing = await ctx.store.getChild(dstParent.id, name);
  if (existing && existing.id === node.id) return nodeView(node, formatPath(dst));
  if (existing) {
    if (existing.type === 'dir') throw new CofferError(ErrorCode.IS_A_DIRECTORY, `${to} is a directory`);
    if (node.type === 'dir') throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `${to} is a file; cannot replace it with a directory`);
    if (!options.overwrite) throw new CofferError(ErrorCode.ALREADY_EXISTS, `${to} already exists`);
    await holdBlob(ctx, existing.blobId);
  }
  // a target a concurrent remove deleted first is that remove's (audited and released there): not replaced here
  const replaced = existing && (await ctx.store.deleteNode(existing.id, existing.version)) ? existing : null;
  let moved: TreeNode;
  try {
    moved = await ctx.store.updateNode(node.id, node.version, { parentId: dstParent.id, name });
  } catch (e) {
    // the source changed meanwhile (CONFLICT): a failed move must not have removed its target, so put it back
    if (replaced) await restoreNode(ctx, replaced);
    throw e;
  }
  await audit(ctx, actor, 'node.move', from, { to, id: node.id, replaced: replaced?.id ?? null });
  if (replaced) await releaseBlob(ctx, actor, replaced.blobId);
  return nodeView(moved, formatPath(dst));
}

/**
 * Re-inserts a node deleted by an operation that then failed; best effort, so the caller reports its own error.
 * Its blob was held (holdBlob) before the delete, so GC's orphan sweep did not take it in between. If the name
 * was taken meanwhile (or the store is failing), the blob stays committed and unreferenced: the orphan sweep
 * releases it after the grace period (audited there).
 */
async function restoreNode(ctx: VaultContext, node: TreeNode): Promise<void> {
  await ctx.store.insertNode(node).catch(() => undefined);
}

/**
 * Removes a file, an empty directory or (recursive) a subtree, depth first, one node per write; blobs of
 * removed files go to 'deleting'. Re-running after an interruption finishes the job.
 * Throws DIRECTORY_NOT_EMPTY, NOT_FOUND, INVALID_ARGUMENT (root), INVALID_PATH, PERMISSION_DENIED.
 */
export async function remove(
  ctx: VaultContext, actor: Actor, path: string, options: { recursive?: boolean } = {},
): Promise<{ removed: number }> {
  const segments = parsePath(path);
  if (segments.length === 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'cannot remove the root');
  const chain = await resolveExisting(ctx.store, segments);
  const node = chain[chain.length - 1] as TreeNode;
  await requireRole(ctx, actor, chain.slice(0, -1), 'write', `remove ${path}`);
  if (node.type === 'dir' && !options.recursive && (await ctx.store.hasChildren(node.id))) {
    throw new CofferError(ErrorCode.DIRECTORY_NOT_EMPTY, `${path} is not empty`);
  }
  const removed = await removeNode(ctx, actor, node, formatPath(segments));
  if (removed === 0) throw new CofferError(ErrorCode.NOT_FOUND, `${formatPath(segments)} was removed by someone else meanwhile`);
  return { removed };
}

async function removeNode(ctx: VaultContext, actor: Actor, node: TreeNode, path: string): Promise<number> {
  let removed = 0;
  if (node.type === 'dir') {
    for (;;) {
      // Always re-list from the start: the children we removed are gone, so this makes progress and resumes.
      const page = await ctx.store.listChildren(node.id, { limit: MAX_LIST_LIMIT });
      if (page.items.length === 0) break;
      for (const child of page.items) removed += await removeNode(ctx, actor, child, childPath(path, child.name));
    }
  }
  // a concurrent remove (another request, another replica) that deleted it first audits and releases it
  if (!(await ctx.store.deleteNode(node.id, node.version))) return removed;
  await audit(ctx, actor, node.type === 'dir' ? 'dir.remove' : 'file.remove', path, { id: node.id, blobId: node.blobId });
  await releaseBlob(ctx, actor, node.blobId);
  return removed + 1;
}
