// fsck: checks that the metadata and the chunk store agree, and that every file is reachable and complete.
// It needs no key: it compares the sealed chunk files with what the metadata recorded at commit (size, SHA-256).
//
// What it finds (docs/vault.md "fsck"):
// - tree: nodes that no path reaches (parent missing, parent a file, or a cycle of parents): the two races
//   documented in "Tree operations" leave such nodes behind;
// - files: a file whose blob record is missing, is not committed, or has another size;
// - blobs: a committed blob whose record is inconsistent, or whose chunk files are missing, have the wrong size
//   or (with readData) do not hash to the SHA-256 recorded at commit; chunk files beyond the chunk count.
// With `repair`, a missing root is recreated and unreachable subtrees are reattached under /lost+found (owned by
// no user and without grants, so a reattached node is reachable by its own owners and grants, plus admins, and
// by nobody new); nothing else is changed, since the other problems need a backup to fix. Every finding is
// confirmed by a second read before it is reported, so fsck can run beside a live service.
import os from 'node:os';
import { alignUp, alignedAllocator, BufferPool } from '../buffer-pool.js';
import { Gate } from '../gate.js';
import { HashPool } from '../hash-pool.js';
import { HEADER_SIZE, MAX_SEALED_SIZE, TAG_SIZE, expectedChunkLayout } from '../crypto/index.js';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { ROOT_ID, type BlobRecord, type BlobState, type MetadataStore, type TreeNode } from '../metadata/types.js';
import type { ChunkStore } from '../../storage-backend/types.js';
import { SYSTEM_ACTOR, type VaultContext } from './context.js';
import { MAX_SEGMENT_BYTES, checkName } from './paths.js';
import { ensureRoot } from './resolve.js';
import { nameProblemPaths } from './fsck-paths.js';
import { audit, newNode } from './tree.js';

/** The directory under the root that unreachable subtrees are reattached to. */
export const LOST_AND_FOUND = 'lost+found';

export type FsckProblemKind =
  | 'root-missing' // no root directory: no path leads anywhere (the service also recreates it at start)
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
  | 'chunk-unreadable' // the chunk store failed to stat or read a chunk file (twice)
  | 'chunk-extra'; // a chunk file beyond the blob's chunk count (a warning: never read)

export interface FsckProblem {
  kind: FsckProblemKind;
  /** 'warning' problems do not make fsck fail. */
  severity: 'error' | 'warning';
  message: string;
  /** The node concerned; for an unreachable group, the first of `nodeIds`. */
  nodeId?: string;
  /** Unreachable problems: the heads of the unreachable subtrees this problem covers. */
  nodeIds?: string[];
  /** Unreachable problems: the missing parent, or the file, the heads hang under. */
  parentId?: string;
  blobId?: string;
  index?: number;
  /** The vault paths of the files concerned (the files bound to `blobId`, or the node's own path). */
  paths?: string[];
  /** Set when `repair` fixed it: what was done. */
  repaired?: string;
}

export interface FsckReport {
  nodes: number;
  files: number;
  directories: number;
  /** Nodes no path reaches (confirmed), including those under an unreachable node; counted before any repair. */
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
  /** Recreate a missing root and reattach unreachable subtrees under /lost+found. */
  repair?: boolean;
  /** Chunk files checked at once, across blobs (default 4). */
  concurrency?: number;
  /** Called after each chunk file read with its size (progress). */
  onBytes?: (n: number) => void;
}

const PAGE = 1000;

/**
 * fsck straight over the two stores, for tools that must not change anything by merely opening a vault
 * (`Vault.open` recreates a missing root; this reports it).
 */
export function fsckStores(store: MetadataStore, chunks: ChunkStore, options: FsckOptions = {}): Promise<FsckReport> {
  return fsck({ store, chunks, defaultRootRole: 'none', uploadGraceMs: 0, now: () => new Date() }, options);
}

/** Walks the whole vault. Throws store errors; findings go into the report. */
export async function fsck(ctx: VaultContext, options: FsckOptions = {}): Promise<FsckReport> {
  const report: FsckReport = {
    nodes: 0, files: 0, directories: 0, unreachable: 0, blobs: { uploading: 0, committed: 0, deleting: 0 },
    unreferencedBlobs: 0, chunksChecked: 0, bytesRead: 0, problems: [], errors: 0,
  };
  const repair = options.repair === true;
  await checkRoot(ctx, report, repair);
  const nodes = await loadNodes(ctx.store, report);
  await checkTree(ctx, nodes, report, repair);
  const referenced = await checkBlobs(ctx, nodes, report, options);
  await checkFiles(ctx, nodes, referenced, report);
  await nameProblemPaths(ctx.store, report.problems);
  report.errors = report.problems.filter((p) => p.severity === 'error' && !p.repaired).length;
  return report;
}

async function checkRoot(ctx: VaultContext, report: FsckReport, repair: boolean): Promise<void> {
  if (await ctx.store.getNode(ROOT_ID)) return;
  const problem: FsckProblem = { kind: 'root-missing', severity: 'error', nodeId: ROOT_ID, message: 'the root directory is missing: no path leads anywhere until it is recreated (--repair, or the next start of the service)' };
  report.problems.push(problem);
  if (!repair) return;
  await ensureRoot(ctx.store, ctx.now());
  problem.repaired = 'recreated the root (its former children hang under it again)';
  await audit(ctx, SYSTEM_ACTOR, 'fsck.recreate-root', '/');
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
  // an absent root is reported once (checkRoot); its children are not each "detached" because of it
  if (!nodes.has(ROOT_ID)) nodes.set(ROOT_ID, { parentId: null, type: 'dir', blobId: null, size: 0 });
  return nodes;
}

type HeadKind = 'detached' | 'cycle' | 'parent-not-dir';

/** Errors of one reattachment that leave that node for the next run instead of stopping fsck. */
const UNREPAIRED: readonly ErrorCode[] = [ErrorCode.CONFLICT, ErrorCode.NOT_FOUND, ErrorCode.ALREADY_EXISTS, ErrorCode.INTERNAL];

/**
 * Finds the heads of unreachable subtrees: a node whose parent is missing or a file, and one node (the
 * smallest id) of every cycle. Everything under a head is unreachable too, and is fixed with it, so only
 * heads are reported, and `unreachable` counts the nodes under confirmed heads.
 */
async function checkTree(ctx: VaultContext, nodes: Map<string, NodeInfo>, report: FsckReport, repair: boolean): Promise<void> {
  const headOf = new Map<string, string | null>(); // node id → the head it hangs under (null: reachable)
  const heads = new Map<string, HeadKind>();
  for (const start of nodes.keys()) {
    if (headOf.has(start)) continue;
    // walk up until a node already classified, the root, a missing or non-directory parent, or a node already
    // on this walk (a cycle)
    const walk: string[] = [];
    const onWalk = new Set<string>();
    let id: string = start;
    let head: string | null;
    for (;;) {
      const known = headOf.get(id);
      if (known !== undefined) {
        head = known;
        break;
      }
      if (onWalk.has(id)) {
        const cycle = walk.slice(walk.indexOf(id));
        head = cycle.reduce((a, b) => (a < b ? a : b));
        heads.set(head, 'cycle');
        break;
      }
      walk.push(id);
      onWalk.add(id);
      const node = nodes.get(id) as NodeInfo;
      const parent = node.parentId === null ? undefined : nodes.get(node.parentId);
      if (node.parentId === null && id === ROOT_ID) {
        head = null;
        break;
      }
      if (!parent || parent.type !== 'dir') {
        head = id;
        heads.set(id, parent ? 'parent-not-dir' : 'detached');
        break;
      }
      id = node.parentId as string;
    }
    for (const w of walk) headOf.set(w, head);
  }

  // confirm each head with a fresh read (a concurrent move or remove may have changed the chain since the
  // listing), then report heads that hang under the same missing node or file as one problem: deleting a
  // directory with a thousand children leaves a thousand heads but one thing to fix
  const confirmed = new Set<string>();
  const groups = new Map<string, { kind: HeadKind; parentId: string | null; heads: TreeNode[] }>();
  for (const [headId, kind] of heads) {
    const node = await ctx.store.getNode(headId);
    if (!node || (await reachable(ctx.store, node))) continue;
    confirmed.add(headId);
    const key = kind !== 'cycle' && node.parentId !== null ? `${kind}:${node.parentId}` : `${kind}:${node.id}`;
    const group = groups.get(key) ?? { kind, parentId: kind !== 'cycle' ? node.parentId : null, heads: [] };
    group.heads.push(node);
    groups.set(key, group);
  }
  for (const head of headOf.values()) if (head !== null && confirmed.has(head)) report.unreachable++;

  let lostAndFound: TreeNode | string | null = null; // the directory, or why it cannot be used
  for (const group of groups.values()) {
    group.heads.sort((a, b) => (a.id < b.id ? -1 : 1));
    const first = group.heads[0] as TreeNode;
    const problem: FsckProblem = {
      kind: group.kind, severity: 'error', nodeId: first.id, nodeIds: group.heads.map((n) => n.id),
      ...(group.parentId !== null ? { parentId: group.parentId } : {}),
      message: describeUnreachable(group.kind, group.heads),
    };
    report.problems.push(problem);
    if (!repair) continue;
    lostAndFound ??= await ensureLostAndFound(ctx);
    if (typeof lostAndFound === 'string') {
      problem.message += ` (not repaired: ${lostAndFound})`;
      continue;
    }
    // heads that shared a parent keep their names in one directory named after it; a lone head (no parent, or
    // on a cycle) goes straight into lost+found as NAME~ID
    let into: TreeNode | string = lostAndFound;
    if (group.parentId !== null) {
      const label = `${group.kind === 'parent-not-dir' ? 'under-file' : 'missing'}~${group.parentId}`;
      into = await ensurePlaceholder(ctx, lostAndFound, label);
      if (typeof into === 'string') {
        problem.message += ` (not repaired: ${into})`;
        continue;
      }
    }
    const where: string[] = [];
    const failures: string[] = [];
    for (const node of group.heads) {
      try {
        where.push(await reattach(ctx, node, into, into === lostAndFound ? lostName(node) : node.name, group.kind));
      } catch (e) {
        if (!isCofferError(e) || !UNREPAIRED.includes(e.code)) throw e;
        failures.push(`${node.id}: ${e.code === ErrorCode.CONFLICT || e.code === ErrorCode.NOT_FOUND ? 'it changed while fsck ran; run fsck again' : e.message}`);
      }
    }
    if (failures.length > 0) problem.message += ` (not repaired: ${failures.join('; ')})`;
    else problem.repaired = group.parentId !== null ? `reattached under ${parentPath(where[0] as string)}` : `reattached as ${where[0] as string}`;
  }
}

/** Moves an unreachable head under `into` as `name` (or NAME~ID if that name is taken there); returns its path. */
async function reattach(ctx: VaultContext, node: TreeNode, into: TreeNode, name: string, kind: HeadKind): Promise<string> {
  const dir = into.parentId === ROOT_ID ? `/${into.name}` : `/${LOST_AND_FOUND}/${into.name}`;
  let target = name;
  try {
    checkName(target);
    await ctx.store.updateNode(node.id, node.version, { parentId: into.id, name: target });
  } catch (e) {
    if (!isCofferError(e) || (e.code !== ErrorCode.ALREADY_EXISTS && e.code !== ErrorCode.INVALID_PATH) || target === lostName(node)) throw e;
    target = lostName(node);
    await ctx.store.updateNode(node.id, node.version, { parentId: into.id, name: target });
  }
  const at = `${dir}/${target}`;
  await audit(ctx, SYSTEM_ACTOR, 'fsck.reattach', at, { id: node.id, kind, formerParentId: node.parentId, formerName: node.name });
  return at;
}

function parentPath(p: string): string {
  return p.slice(0, p.lastIndexOf('/'));
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

function describeUnreachable(kind: HeadKind, heads: readonly TreeNode[]): string {
  const one = (n: TreeNode): string => `${n.type === 'dir' ? 'directory' : 'file'} ${JSON.stringify(n.name)} (node ${n.id})`;
  const first = heads[0] as TreeNode;
  const what = heads.length === 1 ? one(first) : `${heads.length} nodes (${heads.slice(0, 3).map(one).join(', ')}${heads.length > 3 ? ', …' : ''})`;
  const verb = heads.length === 1 ? 'hangs' : 'hang';
  if (kind === 'cycle') return `${what} is on a cycle of parents that never reaches the root: no path leads to it or below it`;
  if (kind === 'parent-not-dir') return `${what} ${verb} under a file (node ${String(first.parentId)}): no path leads to them or below them`;
  if (first.parentId === null) return `${what} has no parent and is not the root: no path leads to it or below it`;
  return `${what} ${verb} under node ${first.parentId}, which does not exist: no path leads to them or below them`;
}

/**
 * `name~id`: unique under lost+found because node ids are. A name that is no valid path segment (damaged
 * metadata) has its '/' and control characters replaced; one too long is shortened; failing all, the bare id.
 */
function lostName(node: TreeNode): string {
  const suffix = `~${node.id}`;
  // eslint-disable-next-line no-control-regex
  let name = node.name.replace(/[/\u0000-\u001f\u007f]/g, '_');
  while (name.length > 0 && Buffer.byteLength(name + suffix) > MAX_SEGMENT_BYTES) name = [...name].slice(0, -1).join('');
  for (const candidate of [name + suffix, node.id]) {
    try {
      checkName(candidate);
      return candidate;
    } catch {
      // next candidate
    }
  }
  throw new CofferError(ErrorCode.INTERNAL, `node id ${JSON.stringify(node.id)} is no valid name`);
}

/**
 * /lost+found, created if absent. An existing one is used only if it is a directory owned by `:system` with no
 * grants: otherwise whoever owns it or holds a grant on it would gain access to everything reattached there.
 * Returns the reason it cannot be used instead.
 */
async function ensureLostAndFound(ctx: VaultContext): Promise<TreeNode | string> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await ctx.store.getChild(ROOT_ID, LOST_AND_FOUND);
    if (existing) {
      if (existing.type !== 'dir') return `/${LOST_AND_FOUND} is a file; move it away`;
      if (existing.owner !== SYSTEM_ACTOR.user) return `/${LOST_AND_FOUND} is owned by ${JSON.stringify(existing.owner)}, who would gain access to what is reattached there; move it away`;
      const grants = await ctx.store.listGrants([existing.id]);
      if (grants.length > 0) return `/${LOST_AND_FOUND} has grants (${grants.map((g) => `${g.user}:${g.role}`).join(', ')}) that reattached nodes would inherit; remove them or move it away`;
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
  return `/${LOST_AND_FOUND} keeps changing`;
}

/** A directory under lost+found for the heads of one missing parent or file: created, or reused if fsck made it. */
async function ensurePlaceholder(ctx: VaultContext, lostAndFound: TreeNode, name: string): Promise<TreeNode | string> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await ctx.store.getChild(lostAndFound.id, name);
    if (existing) {
      if (existing.type !== 'dir' || existing.owner !== SYSTEM_ACTOR.user) return `/${LOST_AND_FOUND}/${name} exists and was not made by fsck; move it away`;
      if ((await ctx.store.listGrants([existing.id])).length > 0) return `/${LOST_AND_FOUND}/${name} has grants that reattached nodes would inherit; remove them`;
      return existing;
    }
    const node = newNode(SYSTEM_ACTOR, lostAndFound.id, name, ctx.now());
    try {
      await ctx.store.insertNode(node);
      await audit(ctx, SYSTEM_ACTOR, 'node.mkdir', `/${LOST_AND_FOUND}/${name}`, { id: node.id, by: 'fsck' });
      return node;
    } catch (e) {
      if (!isCofferError(e) || e.code !== ErrorCode.ALREADY_EXISTS) throw e;
    }
  }
  return `/${LOST_AND_FOUND}/${name} keeps changing`;
}

/** Counts blobs by state and checks every committed blob's record and chunk files. Returns the blobs files use. */
async function checkBlobs(ctx: VaultContext, nodes: Map<string, NodeInfo>, report: FsckReport, options: FsckOptions): Promise<Map<string, BlobSummary>> {
  const referenced = new Set<string>();
  for (const n of nodes.values()) if (n.blobId) referenced.add(n.blobId);
  const used = new Map<string, BlobSummary>();
  const gate = new Gate(Math.max(1, options.concurrency ?? 4));
  const bufferSize = alignUp(MAX_SEALED_SIZE);
  // --read-data hashes on worker threads (one per core, at most one per buffer) reading the shared buffers in
  // place, while this thread reads the next chunks: as `backup verify` does (src/hash-pool.ts)
  const buffers = options.readData ? new BufferPool(bufferSize, gate.limit, alignedAllocator(bufferSize, gate.limit, { shared: true })) : null;
  const hasher = options.readData ? new HashPool(Math.min(gate.limit, os.availableParallelism())) : null;
  const check: ChunkCheck = { ctx, report, buffers, hasher, onBytes: options.onBytes };
  const blobsDone: Array<Promise<void>> = [];
  try {
    let after: string | undefined;
    for (;;) {
      const page = await ctx.store.listBlobs({ after, limit: PAGE });
      for (const blob of page.items) {
        report.blobs[blob.state]++;
        if (referenced.has(blob.id)) used.set(blob.id, { state: blob.state, size: blob.size });
        if (blob.state !== 'committed') continue;
        if (!referenced.has(blob.id)) report.unreferencedBlobs++;
        blobsDone.push((await checkCommittedBlob(check, blob, gate)).done);
        if (gate.error !== undefined) throw gate.error;
      }
      if (page.next === null) break;
      after = page.next;
    }
    await Promise.all(blobsDone);
    if (gate.error !== undefined) throw gate.error;
  } finally {
    await gate.drain(); // nothing may still be reading into a buffer when the pool is cleared
    buffers?.clear();
    await hasher?.close();
  }
  return used;
}

interface BlobSummary {
  state: BlobState;
  size: number | null;
}

interface ChunkCheck {
  ctx: VaultContext;
  report: FsckReport;
  buffers: BufferPool | null;
  /** With buffers (readData): hashes them on worker threads. */
  hasher: HashPool | null;
  onBytes: ((n: number) => void) | undefined;
}

/** Submits the blob's chunk checks; `done` settles once they are done and confirmed (it never rejects). */
async function checkCommittedBlob(c: ChunkCheck, blob: BlobRecord, gate: Gate): Promise<{ done: Promise<void> }> {
  const layout = blob.size !== null && Number.isSafeInteger(blob.size) && blob.size >= 0 ? expectedChunkLayout(blob.size) : null;
  if (!layout || blob.chunkCount !== layout.chunkCount || !blob.chunkSha256 || blob.chunkSha256.length !== layout.chunkCount) {
    c.report.problems.push({
      kind: 'blob-record', severity: 'error', blobId: blob.id,
      message: `committed blob ${blob.id} has an inconsistent record (size ${String(blob.size)}, ${String(blob.chunkCount)} chunks, ${blob.chunkSha256?.length ?? 'no'} hashes)`,
    });
    return { done: Promise.resolve() };
  }
  const hashes = blob.chunkSha256;
  const found: ChunkFinding[] = [];
  const present = new Set(await c.ctx.chunks.list(blob.id));
  for (const index of present) {
    if (index >= layout.chunkCount) found.push({ kind: 'chunk-extra', index, message: `chunk file ${index} is beyond the blob's ${layout.chunkCount} chunk(s) (never read)` });
  }
  const done: Array<Promise<void>> = [];
  for (let index = 0; index < layout.chunkCount; index++) {
    const expected = layout.plaintextLengthOf(index) + HEADER_SIZE + TAG_SIZE;
    const submitted = await gate.submit(async () => {
      const finding = await checkChunkTwice(c, blob.id, index, expected, hashes[index] as string, present.has(index));
      if (finding) found.push(finding);
      c.report.chunksChecked++;
    });
    done.push(submitted.done);
  }
  const confirmed = Promise.all(done).then(async () => {
    if (found.length === 0) return;
    // confirm: a blob released and purged while we read it is not damaged, just gone
    const now = await c.ctx.store.getBlob(blob.id);
    if (now?.state !== 'committed') return;
    found.sort((a, b) => a.index - b.index);
    for (const f of found) {
      c.report.problems.push({ kind: f.kind, severity: f.kind === 'chunk-extra' ? 'warning' : 'error', blobId: blob.id, index: f.index, message: `blob ${blob.id}: ${f.message}` });
    }
  }).catch((e: unknown) => {
    gate.error ??= e;
  });
  return { done: confirmed };
}

interface ChunkFinding {
  kind: 'chunk-missing' | 'chunk-size' | 'chunk-damaged' | 'chunk-unreadable' | 'chunk-extra';
  index: number;
  message: string;
}

/** A store error (EIO, a stale NFS handle…) is tried once more, then reported as `chunk-unreadable`. */
async function checkChunkTwice(c: ChunkCheck, blobId: string, index: number, expectedSize: number, expectedSha256: string, listed: boolean): Promise<ChunkFinding | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await checkChunk(c, blobId, index, expectedSize, expectedSha256, listed);
    } catch (e) {
      if (attempt < 2) continue;
      return { kind: 'chunk-unreadable', index, message: `chunk file ${index} cannot be read: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
}

async function checkChunk(c: ChunkCheck, blobId: string, index: number, expectedSize: number, expectedSha256: string, listed: boolean): Promise<ChunkFinding | null> {
  const ref = { blobId, index };
  const st = listed ? await c.ctx.chunks.stat(ref) : null;
  if (!st) return { kind: 'chunk-missing', index, message: `chunk file ${index} is missing` };
  if (st.size !== expectedSize) return { kind: 'chunk-size', index, message: `chunk file ${index} has ${st.size} bytes, expected ${expectedSize}` };
  if (!c.buffers || !c.hasher) return null;
  const buf = c.buffers.acquire();
  try {
    let data: Buffer;
    try {
      data = await c.ctx.chunks.readInto(ref, buf);
    } catch (e) {
      if (isCofferError(e) && e.code === ErrorCode.NOT_FOUND) return { kind: 'chunk-missing', index, message: `chunk file ${index} is missing` };
      if (isCofferError(e) && (e.code === ErrorCode.PAYLOAD_TOO_LARGE || e.code === ErrorCode.INTEGRITY)) {
        return { kind: 'chunk-size', index, message: `chunk file ${index}: ${e.message}` };
      }
      throw e;
    }
    c.report.bytesRead += data.length;
    c.onBytes?.(data.length);
    const sha256 = await c.hasher.digest(data);
    if (sha256 !== expectedSha256) {
      return { kind: 'chunk-damaged', index, message: `chunk file ${index} hashes to ${sha256}, not the ${expectedSha256} recorded at commit` };
    }
    return null;
  } finally {
    c.buffers.release(buf);
  }
}

/** Every file must point at a committed blob of its size. */
async function checkFiles(ctx: VaultContext, nodes: Map<string, NodeInfo>, blobs: Map<string, BlobSummary>, report: FsckReport): Promise<void> {
  for (const [id, n] of nodes) {
    if (n.type !== 'file') continue;
    const listed = n.blobId ? blobs.get(n.blobId) : undefined;
    if (listed?.state === 'committed' && listed.size === n.size) continue;
    // confirm with fresh reads, and only if the node did not change in between (an overwrite releases the old
    // blob: node and blob read on either side of it would look like damage)
    const node = await ctx.store.getNode(id);
    if (!node || node.type !== 'file') continue;
    const blob = node.blobId ? await ctx.store.getBlob(node.blobId) : null;
    if ((await ctx.store.getNode(id))?.version !== node.version) continue;
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
