// Path resolution: walks the tree from the root with getChild, collecting every node on the way (the chain is
// what permission checks need: grants inherit down from ancestors).
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { ROOT_ID, type MetadataStore, type TreeNode } from '../metadata/types.js';
import { formatPath } from './paths.js';

export interface Resolution {
  /** Existing nodes from the root down, as far as the path exists. chain[0] is the root. */
  chain: TreeNode[];
  /** True when every segment exists (the target is chain[chain.length - 1]). */
  found: boolean;
}

/** Creates the root directory if it is absent. Idempotent and safe to race. */
export async function ensureRoot(store: MetadataStore, now: Date): Promise<void> {
  if (await store.getNode(ROOT_ID)) return;
  try {
    await store.insertNode({
      id: ROOT_ID, parentId: null, name: '', type: 'dir', blobId: null, size: 0,
      owner: '', createdAt: now, modifiedAt: now, version: 1,
    });
  } catch (e) {
    if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e;
  }
}

/**
 * Walks `segments` from the root. Throws NOT_A_DIRECTORY if a file sits where a directory is needed,
 * INTERNAL if the root is missing.
 */
export async function resolvePath(store: MetadataStore, segments: readonly string[]): Promise<Resolution> {
  const root = await store.getNode(ROOT_ID);
  if (!root) throw new CofferError(ErrorCode.INTERNAL, 'the root directory is missing');
  const chain: TreeNode[] = [root];
  for (let i = 0; i < segments.length; i++) {
    const parent = chain[chain.length - 1] as TreeNode;
    if (parent.type !== 'dir') {
      throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `${formatPath(segments.slice(0, i))} is not a directory`);
    }
    const child = await store.getChild(parent.id, segments[i] as string);
    if (!child) return { chain, found: false };
    chain.push(child);
  }
  return { chain, found: true };
}

/** Resolves an existing node. Throws NOT_FOUND, NOT_A_DIRECTORY. */
export async function resolveExisting(store: MetadataStore, segments: readonly string[]): Promise<TreeNode[]> {
  const r = await resolvePath(store, segments);
  if (!r.found) throw new CofferError(ErrorCode.NOT_FOUND, `${formatPath(segments)} does not exist`);
  return r.chain;
}

/** Directories already resolved while serving one request (resolveExistingIn): parent path → its resolution. */
export type DirResolutions = Map<string, Promise<Resolution>>;

/**
 * resolveExisting for a request that names many paths (a batch read): each parent directory is walked once and
 * its chain reused for the other paths in it, so a file costs one getChild instead of one per segment. Same
 * answers and errors as resolveExisting (NOT_FOUND, NOT_A_DIRECTORY); a failed walk is not kept.
 */
export async function resolveExistingIn(store: MetadataStore, segments: readonly string[], dirs: DirResolutions): Promise<TreeNode[]> {
  if (segments.length === 0) return resolveExisting(store, segments);
  const dir = await parentIn(store, segments, dirs);
  const child = await store.getChild((dir[dir.length - 1] as TreeNode).id, segments[segments.length - 1] as string);
  if (!child) throw new CofferError(ErrorCode.NOT_FOUND, `${formatPath(segments)} does not exist`);
  return [...dir, child];
}

/**
 * resolveExistingIn for many paths at once (a batch read's group): per path, in order, its chain or the error
 * resolveExistingIn throws for it. The leaves under one directory are looked up together (one getChildren per
 * parent instead of one getChild a file). A failure that is not a CofferError (a bug) is thrown; a store
 * failure of a shared look-up (METADATA) is thrown too, for the caller to decide (readableFiles: each path alone).
 */
export async function resolveManyIn(
  store: MetadataStore, paths: ReadonlyArray<readonly string[]>, dirs: DirResolutions,
): Promise<Array<TreeNode[] | CofferError>> {
  const out: Array<TreeNode[] | CofferError> = new Array<TreeNode[] | CofferError>(paths.length);
  const under = new Map<string, { dir: TreeNode[]; at: number[] }>(); // parent id → its chain and the paths in it
  for (const [i, segments] of paths.entries()) {
    try {
      if (segments.length === 0) {
        out[i] = await resolveExisting(store, segments);
        continue;
      }
      const dir = await parentIn(store, segments, dirs);
      const id = (dir[dir.length - 1] as TreeNode).id;
      const leaves = under.get(id);
      if (leaves) leaves.at.push(i);
      else under.set(id, { dir, at: [i] });
    } catch (e) {
      if (!isCofferError(e)) throw e;
      out[i] = e;
    }
  }
  for (const [id, { dir, at }] of under) {
    const children = await store.getChildren(id, at.map((i) => (paths[i] as readonly string[]).at(-1) as string));
    at.forEach((i, k) => {
      const child = children[k];
      out[i] = child ? [...dir, child] : new CofferError(ErrorCode.NOT_FOUND, `${formatPath(paths[i] as readonly string[])} does not exist`);
    });
  }
  return out;
}

/** The chain of the directory holding `segments`' last one (≥ 1 segment), walked once per `dirs`. Throws as resolveExisting. */
async function parentIn(store: MetadataStore, segments: readonly string[], dirs: DirResolutions): Promise<TreeNode[]> {
  const parentSegments = segments.slice(0, -1);
  const key = formatPath(parentSegments);
  let dir = dirs.get(key);
  if (!dir) {
    dir = resolvePath(store, parentSegments);
    dirs.set(key, dir);
    dir.catch(() => dirs.delete(key));
  }
  const r = await dir;
  if (!r.found) throw new CofferError(ErrorCode.NOT_FOUND, `${formatPath(segments)} does not exist`);
  const parent = r.chain[r.chain.length - 1] as TreeNode;
  if (parent.type !== 'dir') throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `${key} is not a directory`);
  return r.chain;
}

/** The chain root..node by walking parentId upwards (for a node found by id). Throws NOT_FOUND if detached. */
export async function chainOf(store: MetadataStore, node: TreeNode): Promise<TreeNode[]> {
  const chain = [node];
  let cur = node;
  while (cur.parentId !== null) {
    if (chain.length > 4096) throw new CofferError(ErrorCode.INTERNAL, 'tree too deep or cyclic');
    const parent = await store.getNode(cur.parentId);
    if (!parent) throw new CofferError(ErrorCode.NOT_FOUND, `node ${node.id} is detached from the tree`);
    chain.unshift(parent);
    cur = parent;
  }
  if (cur.id !== ROOT_ID) throw new CofferError(ErrorCode.NOT_FOUND, `node ${node.id} is detached from the tree`);
  return chain;
}

/** The path of a chain (root first). */
export function pathOfChain(chain: readonly TreeNode[]): string {
  return formatPath(chain.slice(1).map((n) => n.name));
}
