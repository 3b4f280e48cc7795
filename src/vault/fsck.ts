// fsck: checks that the metadata and the chunk store agree, and that every file is reachable and complete.
// It needs no key: it compares the sealed chunk files with what the metadata recorded at commit (size, SHA-256).
//
// What it finds (docs/vault.md "fsck"):
// - tree: nodes that no path reaches (parent missing, parent a file, or a cycle of parents): the two races
//   documented in "Tree operations" leave such nodes behind;
// - files: a file whose blob record is missing, is not committed, or has another size;
// - blobs: a committed blob whose record is inconsistent, or whose chunk files are missing, have the wrong size
//   or (with readData) do not hash to the SHA-256 recorded at commit; chunk files beyond the chunk count.
// With `repair`, unreachable subtrees are reattached under /lost+found (owned by no user, so the reattached
// nodes are reachable by exactly who reaches them through their own owners and grants, plus admins); nothing
// else is changed, since the other problems need a backup to fix. Every finding is confirmed by a second read
// before it is reported, so fsck can run beside a live service.
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { alignUp, alignedAllocator, BufferPool } from '../buffer-pool.js';
import { HEADER_SIZE, MAX_SEALED_SIZE, TAG_SIZE, expectedChunkLayout } from '../crypto/index.js';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { ROOT_ID, type BlobRecord, type BlobState, type MetadataStore, type TreeNode } from '../metadata/types.js';
import { SYSTEM_ACTOR, type VaultContext } from './context.js';
import { MAX_SEGMENT_BYTES } from './paths.js';
import { audit, newNode } from './tree.js';

/** The directory under the root that unreachable subtrees are reattached to. */
export const LOST_AND_FOUND = 'lost+found';

export type FsckProblemKind =
  | 'detached' // the node's parent does not exist: the node and everything under it is unreachable
  | 'cycle' // the node's parents loop without reaching the root
  | 'parent-not-dir' // the node's parent is a file
  | 'file-blob-missing' // a file points at a blob that has no record
  | 'file-blob-state' // a file points at a blob that is not committed
  | 'file-size' // a file's size differs from its blob's
  | 'blob-record' // a committed blob's size, chunk count or hashes do not agree with each other
  | 'chunk-missing' // a chunk file of a committed blob is absent
  | 'chunk-size' // a chunk file's size is not the one the blob's size implies
  | 'chunk-damaged' // a chunk file does not hash to the SHA-256 recorded at commit (readData)
  | 'chunk-extra'; // a chunk file beyond the blob's chunk count (a warning: never read)

export interface FsckProblem {
  kind: FsckProblemKind;
  /** 'warning' problems do not make fsck fail. */
  severity: 'error' | 'warning';
  message: string;
  nodeId?: string;
  blobId?: string;
  index?: number;
  /** Set when `repair` fixed it: what was done. */
  repaired?: string;
}

export interface FsckReport {
  nodes: number;
  files: number;
  directories: number;
  /** Nodes no path reaches, including those under an unreachable node (before any repair). */
  unreachable: number;
  blobs: Record<BlobState, number>;
  /** Committed blobs no file points to (GC releases them after the grace period). */
  unreferencedBlobs: number;
  chunksChecked: number;
  /** Bytes of chunk files read and hashed (readData). */
  bytesRead: number;
  problems: FsckProblem[];
  /** Problems of severity 'error' not repaired. */
  errors: number;
}

export interface FsckOptions {
  /** Read every chunk file of every committed blob and compare its SHA-256 with the recorded one. */
  readData?: boolean;
  /** Reattach unreachable subtrees under /lost+found. */
  repair?: boolean;
  /** Chunk files checked at once (default 4). */
  concurrency?: number;
  /** Called after each chunk file read with its size (progress). */
  onBytes?: (n: number) => void;
}

const PAGE = 1000;

/** Walks the whole vault. Throws store errors; findings go into the report. */
export async function fsck(ctx: VaultContext, options: FsckOptions = {}): Promise<FsckReport> {
  const report: FsckReport = {
    nodes: 0, files: 0, directories: 0, unreachable: 0, blobs: { uploading: 0, committed: 0, deleting: 0 },
    unreferencedBlobs: 0, chunksChecked: 0, bytesRead: 0, problems: [], errors: 0,
  };
  const nodes = await loadNodes(ctx.store, report);
  await checkTree(ctx, nodes, report, options.repair === true);
  const referenced = await checkBlobs(ctx, nodes, report, options);
  await checkFiles(ctx, nodes, referenced, report);
  report.errors = report.problems.filter((p) => p.severity === 'error' && !p.repaired).length;
  return report;
}

/** What fsck keeps of a node (the whole tree is held in memory: about 200 bytes per node). */
interface NodeInfo {
  parentId: string | null;
  type: TreeNode['type'];
  blobId: string | null;
  size: number;
}

async function loadNodes(store: MetadataStore, report: FsckReport): Promise<Map<string, NodeInfo>> {
  const nodes = new Map<string, NodeInfo>();
  let after: string | undefined;
  for (;;) {
    const page = await store.listNodes({ after, limit: PAGE });
    for (const n of page.items) {
      nodes.set(n.id, { parentId: n.parentId, type: n.type, blobId: n.blobId, size: n.size });
      if (n.type === 'file') report.files++;
      else report.directories++;
    }
    if (page.next === null) break;
    after = page.next;
  }
  report.nodes = nodes.size;
  return nodes;
}

type Reach = 'ok' | 'unreachable';

/**
 * Finds the heads of unreachable subtrees: a node whose parent is missing or a file, and one node of every
 * cycle. Everything under a head is unreachable too, and is fixed with it, so only heads are reported.
 */
async function checkTree(ctx: VaultContext, nodes: Map<string, NodeInfo>, report: FsckReport, repair: boolean): Promise<void> {
  const reach = new Map<string, Reach>();
  const heads: Array<{ id: string; kind: 'detached' | 'cycle' | 'parent-not-dir' }> = [];
  for (const start of nodes.keys()) {
    if (reach.has(start)) continue;
    // walk up until a node of known reach, the root, a missing or non-directory parent, or a node already on
    // this walk (a cycle)
    const walk: string[] = [];
    const onWalk = new Set<string>();
    let id: string = start;
    let outcome: Reach;
    for (;;) {
      const known = reach.get(id);
      if (known) {
        outcome = known;
        break;
      }
      if (onWalk.has(id)) {
        const cycle = walk.slice(walk.indexOf(id));
        heads.push({ id: cycle.reduce((a, b) => (a < b ? a : b)), kind: 'cycle' });
        outcome = 'unreachable';
        break;
      }
      walk.push(id);
      onWalk.add(id);
      const node = nodes.get(id) as NodeInfo;
      if (node.parentId === null) {
        outcome = id === ROOT_ID ? 'ok' : 'unreachable';
        if (id !== ROOT_ID) heads.push({ id, kind: 'detached' });
        break;
      }
      const parent = nodes.get(node.parentId);
      if (!parent) {
        heads.push({ id, kind: 'detached' });
        outcome = 'unreachable';
        break;
      }
      if (parent.type !== 'dir') {
        heads.push({ id, kind: 'parent-not-dir' });
        outcome = 'unreachable';
        break;
      }
      id = node.parentId;
    }
    for (const w of walk) reach.set(w, outcome);
  }
  report.unreachable = [...reach.values()].filter((r) => r === 'unreachable').length;

  let lostAndFound: TreeNode | null = null;
  for (const head of heads) {
    // confirm with a fresh read: a concurrent move or remove may have changed the chain since the listing
    const node = await ctx.store.getNode(head.id);
    if (!node || (await reachable(ctx.store, node))) continue;
    const problem: FsckProblem = {
      kind: head.kind, severity: 'error', nodeId: node.id,
      message: describeUnreachable(head.kind, node),
    };
    report.problems.push(problem);
    if (!repair) continue;
    lostAndFound ??= await ensureLostAndFound(ctx);
    const name = lostName(node);
    try {
      await ctx.store.updateNode(node.id, node.version, { parentId: lostAndFound.id, name });
      problem.repaired = `reattached as /${LOST_AND_FOUND}/${name}`;
      await audit(ctx, SYSTEM_ACTOR, 'fsck.reattach', `/${LOST_AND_FOUND}/${name}`, { id: node.id, kind: head.kind, formerParentId: node.parentId, formerName: node.name });
    } catch (e) {
      if (!isCofferError(e) || (e.code !== ErrorCode.CONFLICT && e.code !== ErrorCode.NOT_FOUND)) throw e;
      problem.message += ' (changed while fsck ran: not repaired, run fsck again)';
    }
  }
}

/** Whether a path leads to the node now: its parents, read afresh, are directories up to the root, without a loop. */
async function reachable(store: MetadataStore, node: TreeNode): Promise<boolean> {
  const seen = new Set<string>([node.id]);
  let cur = node;
  while (cur.parentId !== null) {
    const parent = await store.getNode(cur.parentId);
    if (!parent || parent.type !== 'dir' || seen.has(parent.id)) return false;
    seen.add(parent.id);
    cur = parent;
  }
  return cur.id === ROOT_ID;
}

function describeUnreachable(kind: 'detached' | 'cycle' | 'parent-not-dir', node: TreeNode): string {
  const what = `${node.type === 'dir' ? 'directory' : 'file'} ${JSON.stringify(node.name)} (node ${node.id})`;
  if (kind === 'cycle') return `${what} is on a cycle of parents that never reaches the root: no path leads to it or below it`;
  if (kind === 'parent-not-dir') return `${what} hangs under a file (node ${String(node.parentId)}): no path leads to it or below it`;
  return `${what} hangs under node ${String(node.parentId)}, which does not exist: no path leads to it or below it`;
}

/** `name~id`, shortened to a valid segment; unique under lost+found because node ids are. */
function lostName(node: TreeNode): string {
  const suffix = `~${node.id}`;
  let name = node.name;
  while (Buffer.byteLength(name + suffix) > MAX_SEGMENT_BYTES) name = [...name].slice(0, -1).join('');
  return name + suffix;
}

async function ensureLostAndFound(ctx: VaultContext): Promise<TreeNode> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await ctx.store.getChild(ROOT_ID, LOST_AND_FOUND);
    if (existing) {
      if (existing.type !== 'dir') throw new CofferError(ErrorCode.NOT_A_DIRECTORY, `/${LOST_AND_FOUND} is a file: move it away to let fsck repair`);
      return existing;
    }
    const node = newNode(SYSTEM_ACTOR, ROOT_ID, LOST_AND_FOUND, ctx.now());
    try {
      await ctx.store.insertNode(node);
      await audit(ctx, SYSTEM_ACTOR, 'node.mkdir', `/${LOST_AND_FOUND}`, { id: node.id, by: 'fsck' });
      return node;
    } catch (e) {
      if (!isCofferError(e) || e.code !== ErrorCode.ALREADY_EXISTS) throw e;
    }
  }
  throw new CofferError(ErrorCode.CONFLICT, `/${LOST_AND_FOUND} keeps changing; run fsck again`);
}

/** Counts blobs by state and checks every committed blob's record and chunk files. Returns blob id → state. */
async function checkBlobs(ctx: VaultContext, nodes: Map<string, NodeInfo>, report: FsckReport, options: FsckOptions): Promise<Map<string, BlobSummary>> {
  const referenced = new Set<string>();
  for (const n of nodes.values()) if (n.blobId) referenced.add(n.blobId);
  const blobs = new Map<string, BlobSummary>();
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const limit = pLimit(concurrency);
  const bufferSize = alignUp(MAX_SEALED_SIZE);
  const buffers = options.readData ? new BufferPool(bufferSize, concurrency, alignedAllocator(bufferSize, concurrency)) : null;
  try {
    let after: string | undefined;
    for (;;) {
      const page = await ctx.store.listBlobs({ after, limit: PAGE });
      for (const blob of page.items) {
        report.blobs[blob.state]++;
        blobs.set(blob.id, { state: blob.state, size: blob.size });
        if (blob.state !== 'committed') continue;
        if (!referenced.has(blob.id)) report.unreferencedBlobs++;
        await checkCommittedBlob(ctx, blob, report, limit, buffers, options.onBytes);
      }
      if (page.next === null) break;
      after = page.next;
    }
  } finally {
    buffers?.clear();
  }
  return blobs;
}

interface BlobSummary {
  state: BlobState;
  size: number | null;
}

async function checkCommittedBlob(
  ctx: VaultContext, blob: BlobRecord, report: FsckReport, limit: ReturnType<typeof pLimit>, buffers: BufferPool | null,
  onBytes: ((n: number) => void) | undefined,
): Promise<void> {
  const layout = blob.size !== null && Number.isSafeInteger(blob.size) && blob.size >= 0 ? expectedChunkLayout(blob.size) : null;
  if (!layout || blob.chunkCount !== layout.chunkCount || !blob.chunkSha256 || blob.chunkSha256.length !== layout.chunkCount) {
    report.problems.push({
      kind: 'blob-record', severity: 'error', blobId: blob.id,
      message: `committed blob ${blob.id} has an inconsistent record (size ${String(blob.size)}, ${String(blob.chunkCount)} chunks, ${blob.chunkSha256?.length ?? 'no'} hashes)`,
    });
    return;
  }
  const hashes = blob.chunkSha256;
  const found: ChunkFinding[] = [];
  const present = new Set(await ctx.chunks.list(blob.id));
  for (const index of present) {
    if (index >= layout.chunkCount) found.push({ kind: 'chunk-extra', index, message: `chunk file ${index} is beyond the blob's ${layout.chunkCount} chunk(s) (never read)` });
  }
  await Promise.all(
    Array.from({ length: layout.chunkCount }, (_, index) =>
      limit(async () => {
        const expected = layout.plaintextLengthOf(index) + HEADER_SIZE + TAG_SIZE;
        const finding = await checkChunk(ctx, blob.id, index, expected, hashes[index] as string, present.has(index), buffers, report, onBytes);
        if (finding) found.push(finding);
        report.chunksChecked++;
      }),
    ),
  );
  if (found.length === 0) return;
  // confirm: a blob released and purged while we read it is not damaged, just gone
  const now = await ctx.store.getBlob(blob.id);
  if (now?.state !== 'committed') return;
  found.sort((a, b) => a.index - b.index);
  for (const f of found) {
    report.problems.push({ kind: f.kind, severity: f.kind === 'chunk-extra' ? 'warning' : 'error', blobId: blob.id, index: f.index, message: `blob ${blob.id}: ${f.message}` });
  }
}

interface ChunkFinding {
  kind: 'chunk-missing' | 'chunk-size' | 'chunk-damaged' | 'chunk-extra';
  index: number;
  message: string;
}

async function checkChunk(
  ctx: VaultContext, blobId: string, index: number, expectedSize: number, expectedSha256: string, listed: boolean,
  buffers: BufferPool | null, report: FsckReport, onBytes: ((n: number) => void) | undefined,
): Promise<ChunkFinding | null> {
  const ref = { blobId, index };
  const st = listed ? await ctx.chunks.stat(ref) : null;
  if (!st) return { kind: 'chunk-missing', index, message: `chunk file ${index} is missing` };
  if (st.size !== expectedSize) return { kind: 'chunk-size', index, message: `chunk file ${index} has ${st.size} bytes, expected ${expectedSize}` };
  if (!buffers) return null;
  const buf = buffers.acquire();
  try {
    let data: Buffer;
    try {
      data = await ctx.chunks.readInto(ref, buf);
    } catch (e) {
      if (isCofferError(e) && e.code === ErrorCode.NOT_FOUND) return { kind: 'chunk-missing', index, message: `chunk file ${index} is missing` };
      if (isCofferError(e) && (e.code === ErrorCode.PAYLOAD_TOO_LARGE || e.code === ErrorCode.INTEGRITY)) {
        return { kind: 'chunk-size', index, message: `chunk file ${index}: ${e.message}` };
      }
      throw e;
    }
    report.bytesRead += data.length;
    onBytes?.(data.length);
    const sha256 = createHash('sha256').update(data).digest('hex');
    if (sha256 !== expectedSha256) {
      return { kind: 'chunk-damaged', index, message: `chunk file ${index} hashes to ${sha256}, not the ${expectedSha256} recorded at commit` };
    }
    return null;
  } finally {
    buffers.release(buf);
  }
}

/** Every file must point at a committed blob of its size. */
async function checkFiles(ctx: VaultContext, nodes: Map<string, NodeInfo>, blobs: Map<string, BlobSummary>, report: FsckReport): Promise<void> {
  for (const [id, n] of nodes) {
    if (n.type !== 'file') continue;
    const listed = n.blobId ? blobs.get(n.blobId) : undefined;
    if (listed?.state === 'committed' && listed.size === n.size) continue;
    // confirm with fresh reads (an overwrite or a remove may have run since the listing)
    const node = await ctx.store.getNode(id);
    if (!node || node.type !== 'file') continue;
    const blob = node.blobId ? await ctx.store.getBlob(node.blobId) : null;
    const name = `file ${JSON.stringify(node.name)} (node ${node.id})`;
    if (!blob) {
      report.problems.push({ kind: 'file-blob-missing', severity: 'error', nodeId: id, ...(node.blobId ? { blobId: node.blobId } : {}), message: `${name} points at blob ${String(node.blobId)}, which has no record` });
    } else if (blob.state !== 'committed') {
      report.problems.push({ kind: 'file-blob-state', severity: 'error', nodeId: id, blobId: blob.id, message: `${name} points at blob ${blob.id}, which is ${blob.state}` });
    } else if (blob.size !== node.size) {
      report.problems.push({ kind: 'file-size', severity: 'error', nodeId: id, blobId: blob.id, message: `${name} has size ${node.size}, its blob ${blob.id} ${String(blob.size)}` });
    }
  }
}
