// `backup list` and `backup prune` (docs/backup.md "Prune"). Chunks are shared by snapshots; prune never counts
// references, it recomputes them: after the manifests of the dropped snapshots are deleted, every chunk file
// and metadata export that no remaining manifest lists is garbage. Manifests go first, so a crash in between
// leaves only garbage (removed by the next prune), never a snapshot missing a chunk. A backup being created
// meanwhile would lose chunks it copied before writing its manifest, so prune refuses while a create lock exists.
// Deleted packed chunks stay deleted (the pack's dead marks, docs/format.md "Pack dead marks v1"): a second prune
// deletes and counts nothing.
import { CofferError, ErrorCode } from '../errors.js';
import { flushChunks } from './copy-chunks.js';
import { chunkKey } from './manifest.js';
import { listSnapshotRefs, loadManifest, type SnapshotRef } from './snapshots.js';
import type { BackupTarget } from './target.js';

export interface SnapshotSummary {
  id: string;
  createdAt: string;
  host: string;
  parent: string | null;
  files: number;
  directories: number;
  blobs: number;
  chunks: number;
  bytes: number;
}

/** Every snapshot at the target, oldest first. Throws INTEGRITY if a manifest does not match its name. */
export async function listSnapshots(target: BackupTarget): Promise<SnapshotSummary[]> {
  const out: SnapshotSummary[] = [];
  for (const ref of await listSnapshotRefs(target)) {
    const m = await loadManifest(target, ref);
    out.push({ id: ref.id, createdAt: m.createdAt, host: m.host, parent: m.parent, ...m.stats, chunks: m.chunks.length });
  }
  return out;
}

export interface PrunePolicy {
  keepLast: number;
  keepDaily: number;
}

/** Which snapshots a policy keeps: the last N, plus the latest of each of the N most recent UTC days. */
export function snapshotsToKeep(refs: Array<{ id: string; createdAt: string }>, policy: PrunePolicy): Set<string> {
  const sorted = [...refs].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  const keep = new Set(sorted.slice(0, policy.keepLast).map((r) => r.id));
  const days = new Set<string>();
  for (const r of sorted) {
    const day = r.createdAt.slice(0, 10);
    if (days.has(day)) continue;
    if (days.size >= policy.keepDaily) break;
    days.add(day);
    keep.add(r.id);
  }
  return keep;
}

export interface PruneReport {
  kept: string[];
  removed: string[];
  chunksDeleted: number;
  blobsDeleted: number;
  exportsDeleted: number;
  dryRun: boolean;
}

export async function pruneSnapshots(target: BackupTarget, policy: PrunePolicy, options: { dryRun?: boolean } = {}): Promise<PruneReport> {
  if (policy.keepLast < 1 && policy.keepDaily < 1) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'prune needs --keep-last or --keep-daily of at least 1 (it never removes every snapshot)');
  }
  const locks = (await target.listFiles('locks')).filter((n) => n.startsWith('create-'));
  if (locks.length > 0) {
    throw new CofferError(ErrorCode.CONFLICT, `a backup is being created at ${target.description} (lock ${locks[0]}); prune after it ends (if that run was killed, run backup create again: it resumes and clears the lock)`);
  }
  const refs = await listSnapshotRefs(target);
  const manifests = new Map<string, { ref: SnapshotRef; m: Awaited<ReturnType<typeof loadManifest>> }>();
  for (const ref of refs) manifests.set(ref.id, { ref, m: await loadManifest(target, ref) });
  const keep = snapshotsToKeep([...manifests.values()].map(({ ref, m }) => ({ id: ref.id, createdAt: m.createdAt })), policy);
  const removed = refs.filter((r) => !keep.has(r.id));
  const report: PruneReport = { kept: refs.filter((r) => keep.has(r.id)).map((r) => r.id), removed: removed.map((r) => r.id), chunksDeleted: 0, blobsDeleted: 0, exportsDeleted: 0, dryRun: options.dryRun === true };
  if (options.dryRun) return report;
  for (const r of removed) await target.deleteFile('snapshots', r.file);

  const liveChunks = new Set<string>();
  const liveBlobs = new Set<string>();
  const liveExports = new Set<string>();
  for (const id of keep) {
    const { m } = manifests.get(id) as NonNullable<ReturnType<typeof manifests.get>>;
    liveExports.add(m.metadata.path.slice('metadata/'.length));
    for (const c of m.chunks) {
      liveChunks.add(chunkKey(c));
      liveBlobs.add(c.blob);
    }
  }
  for await (const blobId of target.chunks.listBlobs()) {
    if (!liveBlobs.has(blobId)) {
      report.chunksDeleted += (await target.chunks.list(blobId)).length;
      await target.chunks.deleteBlob(blobId);
      report.blobsDeleted++;
      continue;
    }
    for (const index of await target.chunks.list(blobId)) {
      if (liveChunks.has(chunkKey({ blob: blobId, index }))) continue;
      await target.chunks.delete({ blobId, index });
      report.chunksDeleted++;
    }
  }
  for (const name of await target.listFiles('metadata')) {
    if (liveExports.has(name)) continue;
    await target.deleteFile('metadata', name);
    report.exportsDeleted++;
  }
  // a directory target's store defers fsyncs (its pack dead marks among them): one syncfs makes them durable
  if (report.chunksDeleted > 0) await flushChunks(target.chunks);
  return report;
}
