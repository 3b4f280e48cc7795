// Names the vault paths fsck's data problems touch: a damaged, missing or unreadable chunk is reported by blob
// id, and an admin needs to know whose file that is (to tell its owner, or to restore it from a backup). One
// findNodesByBlob per problem blob and a walk up each node's parents: cheap next to the checks themselves.
import { isCofferError } from '../errors.js';
import type { MetadataStore, TreeNode } from '../metadata/types.js';
import type { FsckProblem } from './fsck.js';
import { chainOf, pathOfChain } from './resolve.js';

/** Sets `paths` on every problem that concerns a file or a blob: the files bound to it, by path. Throws store errors. */
export async function nameProblemPaths(store: MetadataStore, problems: FsckProblem[]): Promise<void> {
  const byBlob = new Map<string, string[]>();
  for (const p of problems) {
    if (p.blobId !== undefined) {
      let paths = byBlob.get(p.blobId);
      if (!paths) {
        paths = await Promise.all((await store.findNodesByBlob(p.blobId)).map((n) => pathOf(store, n)));
        byBlob.set(p.blobId, paths);
      }
      if (paths.length > 0) p.paths = paths;
    } else if (p.kind.startsWith('file-') && p.nodeId !== undefined) {
      const node = await store.getNode(p.nodeId);
      if (node) p.paths = [await pathOf(store, node)];
    }
  }
}

/** The node's path, or a note that no path reaches it (fsck reports that separately). */
async function pathOf(store: MetadataStore, node: TreeNode): Promise<string> {
  try {
    return pathOfChain(await chainOf(store, node));
  } catch (e) {
    if (isCofferError(e)) return `(unreachable node ${node.id}, ${JSON.stringify(node.name)})`;
    throw e;
  }
}
