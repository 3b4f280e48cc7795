// Chooses what a snapshot holds while the vault keeps serving (docs/backup.md "Consistency"). The tree is read
// page by page, so it is not one instant; the rule that makes it safe is per file: a file node is in the
// snapshot with the committed blob it points at, whose chunks are immutable, or it is not in it at all. A node
// is bound to its blob only at commit, so every listed file points at a whole, committed blob. What changes
// during the walk is re-read: a parent that appeared is fetched, a node that vanished is dropped, a file whose
// blob was replaced follows its new blob.
import type { BlobRecord, MetadataStore, TreeNode } from '../metadata/types.js';
import { ROOT_ID } from '../metadata/types.js';

const PAGE = 1000;

export interface Selection {
  nodes: Map<string, TreeNode>;
  /** The committed blobs that the selected file nodes point at. */
  blobs: Map<string, BlobRecord>;
  /** Audit entries 1..auditSeq go into the export (the head when the walk began). */
  auditSeq: number;
  startedAt: Date;
  /** Files left out, with why (changed during the walk, or a vault problem for fsck). */
  skipped: string[];
}

export async function selectSnapshot(store: MetadataStore, now = new Date()): Promise<Selection> {
  const auditSeq = (await store.lastAudit())?.seq ?? 0;
  const nodes = new Map<string, TreeNode>();
  let after: string | undefined;
  for (;;) {
    const page = await store.listNodes({ after, limit: PAGE });
    for (const n of page.items) nodes.set(n.id, n);
    if (page.next === null) break;
    after = page.next;
  }
  const sel: Selection = { nodes, blobs: new Map(), auditSeq, startedAt: now, skipped: [] };
  await completeAncestors(store, sel);
  const referenced = new Set<string>();
  for (const n of nodes.values()) if (n.type === 'file' && n.blobId) referenced.add(n.blobId);
  after = undefined;
  for (;;) {
    const page = await store.listBlobs({ after, limit: PAGE });
    for (const b of page.items) if (referenced.has(b.id) && b.state === 'committed') sel.blobs.set(b.id, b);
    if (page.next === null) break;
    after = page.next;
  }
  for (const n of [...nodes.values()]) {
    if (n.type === 'file' && (!n.blobId || !sel.blobs.has(n.blobId))) await refreshFile(store, sel, n.id);
  }
  return sel;
}

/** Re-reads a file node whose blob is unusable (released, purged, replaced). Drops it when nothing usable remains. */
export async function refreshFile(store: MetadataStore, sel: Selection, nodeId: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const node = await store.getNode(nodeId);
    if (!node || node.type !== 'file') {
      sel.nodes.delete(nodeId);
      if (node) sel.nodes.set(node.id, node);
      if (!node) sel.skipped.push(`${nodeId}: removed during the backup`);
      return;
    }
    sel.nodes.set(node.id, node);
    if (node.blobId && sel.blobs.has(node.blobId)) return;
    const blob = node.blobId ? await store.getBlob(node.blobId) : null;
    if (blob && blob.state === 'committed') {
      sel.blobs.set(blob.id, blob);
      return;
    }
    const again = await store.getNode(nodeId);
    if (again && again.version === node.version) {
      sel.nodes.delete(nodeId);
      sel.skipped.push(`${pathOf(sel.nodes, node)}: points at blob ${node.blobId ?? '(none)'}, which is ${blob ? blob.state : 'absent'} (run coffer fsck)`);
      return;
    }
  }
  sel.nodes.delete(nodeId);
  sel.skipped.push(`${nodeId}: kept changing during the backup`);
}

/** Fetches parents that were created after the page listing passed their id; drops nodes removed meanwhile. */
async function completeAncestors(store: MetadataStore, sel: Selection): Promise<void> {
  for (const start of [...sel.nodes.values()]) {
    let node: TreeNode | undefined = start;
    for (let guard = 0; node && node.parentId !== null && !sel.nodes.has(node.parentId) && guard < 64; guard++) {
      const parent = await store.getNode(node.parentId);
      if (parent) {
        sel.nodes.set(parent.id, parent);
        node = parent;
        continue;
      }
      const fresh = await store.getNode(node.id);
      if (!fresh) {
        sel.nodes.delete(node.id);
        node = undefined;
      } else if (fresh.parentId === node.parentId) {
        node = undefined; // detached in the vault itself (fsck reports it); kept as it is
      } else {
        sel.nodes.set(fresh.id, fresh);
        node = fresh;
      }
    }
  }
}

/** `/a/b/c` of a node, from the selected nodes (`…/` where a parent is unknown). */
export function pathOf(nodes: Map<string, TreeNode>, node: TreeNode): string {
  const names: string[] = [];
  let cur: TreeNode | undefined = node;
  for (let guard = 0; cur && cur.id !== ROOT_ID && guard < 4096; guard++) {
    names.push(cur.name);
    cur = cur.parentId === null ? undefined : nodes.get(cur.parentId);
    if (cur === undefined && names.length) names.push('…');
  }
  return `/${names.reverse().join('/')}`;
}

/** Nodes with every parent before its children (root first, then by depth); detached chains last. */
export function parentFirst(nodes: Map<string, TreeNode>): TreeNode[] {
  const depth = new Map<string, number>();
  const depthOf = (n: TreeNode): number => {
    const known = depth.get(n.id);
    if (known !== undefined) return known;
    const chain: TreeNode[] = [];
    let cur: TreeNode | undefined = n;
    let base = 0;
    while (cur && chain.length < 4096) {
      const d = depth.get(cur.id);
      if (d !== undefined) {
        base = d + 1;
        break;
      }
      chain.push(cur);
      cur = cur.parentId === null ? undefined : nodes.get(cur.parentId);
    }
    for (let i = chain.length - 1; i >= 0; i--) depth.set((chain[i] as TreeNode).id, base + (chain.length - 1 - i));
    return depth.get(n.id) ?? 0;
  };
  return [...nodes.values()].map((n) => [depthOf(n), n] as const).sort((a, b) => a[0] - b[0] || (a[1].id < b[1].id ? -1 : 1)).map(([, n]) => n);
}
